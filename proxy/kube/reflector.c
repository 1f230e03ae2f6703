/* List+watch of one resource; see reflector.h.
 *
 * States: LISTING (pages of a list in flight), WATCHING (a watch stream in
 * flight) and WAITING (a back-off timer armed before the next request).  A
 * list marks every cached key it meets as seen; when the last page is in,
 * keys not seen are reported deleted.  An object whose resourceVersion is the
 * one already cached is not decoded again, so a relist of an unchanged
 * cluster costs one parse of the list and no handler calls.
 *
 * Memory stays bounded whatever the server sends: a list page larger than
 * MAX_BODY or a watch line longer than MAX_LINE aborts the request and the
 * reflector lists again after a back-off. */
#include "kube/reflector.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include "kube/decode.h"
#include "util/hashmap.h"
#include "util/jsonarena.h"
#include "util/lines.h"
#include "util/log.h"

#define LIST_PAGE      500
#define MAX_BODY       (256u << 20)
#define MAX_LINE       (16u << 20)
#define MAX_ERROR_BODY 4096
#define BACKOFF_MIN_MS 500
#define BACKOFF_MAX_MS 30000
#define WATCH_MIN_S    300 /* watches last 5 to 7.5 minutes */

enum state { IDLE, LISTING, WATCHING, WAITING };
enum next { NEXT_WATCH, NEXT_LIST };

struct cache_entry {
	char *rv;
	bool seen; /* met by the list in progress */
	bool live; /* the handler holds an object for this key */
};

struct buf {
	char *p;
	size_t len, cap;
};

struct reflector {
	struct kube_client *client;
	struct loop *loop;
	const struct reflector_type *type;
	char *query;
	const struct reflector_handler *h;
	void *data;
	struct hashmap *cache;
	enum state state;
	enum next next;
	struct kube_request *req;
	struct loop_timer *timer;
	char *continue_token;
	char *list_rv;
	char *last_rv;
	struct buf body;	  /* a list page, or the start of an error response */
	struct line_reader lines; /* the watch stream */
	unsigned backoff_ms;
	bool synced;
	bool stream_broken; /* set when the stream carried something unusable */
	bool saw_event;
	uint64_t watch_started_ms;
	struct reflector_stats stats;
};

static unsigned jitter(unsigned ms)
{
	unsigned r = 0;

	if (getrandom(&r, sizeof(r), GRND_NONBLOCK) != sizeof(r))
		r = (unsigned)loop_now_ns();
	/* Somewhere in [ms, 1.5 ms). */
	return ms + r % (ms / 2 + 1);
}

static int buf_append(struct buf *b, const char *p, size_t n, size_t max)
{
	if (b->len + n + 1 > max)
		return -EFBIG;
	if (b->len + n + 1 > b->cap) {
		size_t cap = b->cap ? b->cap : 16384;
		char *np;

		while (cap < b->len + n + 1)
			cap *= 2;
		if (cap > max)
			cap = max;
		np = realloc(b->p, cap);
		if (!np)
			return -ENOMEM;
		b->p = np;
		b->cap = cap;
	}
	memcpy(b->p + b->len, p, n);
	b->len += n;
	b->p[b->len] = '\0';
	return 0;
}

static void buf_reset(struct buf *b, bool release)
{
	b->len = 0;
	if (release || b->cap > (1u << 20)) {
		free(b->p);
		b->p = NULL;
		b->cap = 0;
	}
}

/* The error body as one log line: trailing newlines cut. */
static const char *body_text(struct buf *b)
{
	if (!b->p)
		return "";
	while (b->len &&
	       (b->p[b->len - 1] == '\n' || b->p[b->len - 1] == '\r' || b->p[b->len - 1] == ' '))
		b->p[--b->len] = '\0';
	return b->p;
}

static void set_str(char **dst, const char *s)
{
	free(*dst);
	*dst = s ? strdup(s) : NULL;
}

static void start_list(struct reflector *r);
static void start_watch(struct reflector *r);

static void timer_fired(struct loop *loop, struct loop_timer *t, void *data)
{
	struct reflector *r = data;

	(void)loop;
	(void)t;
	r->state = IDLE;
	if (r->next == NEXT_LIST)
		start_list(r);
	else
		start_watch(r);
}

/* Waits before the next request: Retry-After when the server asked for one,
 * else the current back-off with jitter, which then doubles. */
static void retry_later(struct reflector *r, enum next next, long retry_after_s)
{
	unsigned delay;

	r->next = next;
	/* The server's Retry-After is a floor, never a way around the back-off:
	 * "Retry-After: 0" from a failing server must not make a tight loop. */
	delay = jitter(r->backoff_ms);
	if (retry_after_s >= 0 && (unsigned long)retry_after_s * 1000u > delay)
		delay = (unsigned)retry_after_s * 1000u;
	r->backoff_ms = r->backoff_ms * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS : r->backoff_ms * 2;
	r->state = WAITING;
	log_v(2, "%s: next %s in %u ms", r->type->kind, next == NEXT_LIST ? "list" : "watch",
	      delay);
	loop_timer_arm(r->timer, delay);
}

static void cache_entry_free(void *p)
{
	struct cache_entry *e = p;

	if (e) {
		free(e->rv);
		free(e);
	}
}

/* Applies one object (from a list or an ADDED/MODIFIED event). */
static void apply_object(struct reflector *r, json_t *obj, bool from_list)
{
	char key[OBJECT_KEY_MAX], err[512];
	struct cache_entry *e;
	const char *rv;
	void *decoded = NULL;
	int ret;

	ret = decode_object_key(obj, key, sizeof(key), err, sizeof(err));
	if (ret < 0) {
		r->stats.rejected++;
		log_warn("%s rejected: %s", r->type->kind, err);
		return;
	}
	rv = json_string_value(
		json_object_get(json_object_get(obj, "metadata"), "resourceVersion"));
	e = hashmap_get_str(r->cache, key);
	if (e && from_list)
		e->seen = true;
	if (e && rv && e->rv && !strcmp(e->rv, rv))
		return; /* unchanged since we last looked */
	if (!e) {
		e = calloc(1, sizeof(*e));
		if (!e || hashmap_put_str(r->cache, key, e, NULL) < 0) {
			free(e);
			log_error("%s %s: out of memory", r->type->kind, key);
			return;
		}
		e->seen = from_list;
	}
	set_str(&e->rv, rv);
	ret = r->type->decode(obj, &decoded, err, sizeof(err));
	if (ret < 0) {
		/* Keep whatever the handler had: a bad update must not take a
		 * working Service down with it. */
		r->stats.rejected++;
		log_warn("%s %s rejected: %s%s", r->type->kind, key, err,
			 e->live ? "; keeping its previous version" : "");
		return;
	}
	if (!decoded) {
		if (e->live) {
			e->live = false;
			r->h->remove(r->data, key);
		}
		return;
	}
	e->live = true;
	r->h->upsert(r->data, key, decoded);
}

static void remove_key(struct reflector *r, const char *key)
{
	struct cache_entry *e = hashmap_remove_str(r->cache, key);

	if (!e)
		return;
	if (e->live)
		r->h->remove(r->data, key);
	cache_entry_free(e);
}

/* After the last page: whatever the list did not mention is gone. */
static void finish_list(struct reflector *r)
{
	struct hashmap_iter it = {0};
	const void *k;
	void *v;
	char **gone = NULL;
	size_t n = 0, cap = 0;

	while (hashmap_next(r->cache, &it, &k, NULL, &v)) {
		struct cache_entry *e = v;

		if (e->seen) {
			e->seen = false;
			continue;
		}
		if (n == cap) {
			char **ng;

			cap = cap ? cap * 2 : 16;
			ng = realloc(gone, cap * sizeof(*gone));
			if (!ng)
				break;
			gone = ng;
		}
		gone[n++] = strdup(k);
	}
	for (size_t i = 0; i < n; i++) {
		if (gone[i]) {
			log_v(4, "%s %s: gone since the last list", r->type->kind, gone[i]);
			remove_key(r, gone[i]);
		}
		free(gone[i]);
	}
	free(gone);
	r->stats.lists++;
	r->synced = true;
	r->backoff_ms = BACKOFF_MIN_MS;
	set_str(&r->last_rv, r->list_rv);
	log_v(2, "%s: listed %zu objects at resourceVersion %s", r->type->kind,
	      hashmap_size(r->cache), r->list_rv ? r->list_rv : "?");
	r->h->synced(r->data);
}

static int list_data(struct kube_request *req, const char *buf, size_t len, void *data)
{
	struct reflector *r = data;
	long status = kube_request_status(req);

	return buf_append(&r->body, buf, len, status == 200 ? MAX_BODY : MAX_ERROR_BODY);
}

static void list_done(struct kube_request *req, long status, int err, const char *errmsg,
		      void *data)
{
	struct reflector *r = data;
	json_error_t jerr;
	json_t *doc, *items, *item;
	const char *cont, *rv;
	size_t i;

	r->req = NULL;
	if (status == 404 && r->type->optional) {
		log_info("%s: not served by this API server; not watching it", r->type->kind);
		buf_reset(&r->body, true);
		r->state = IDLE;
		if (!r->synced) {
			r->synced = true;
			r->h->synced(r->data);
		}
		return;
	}
	if (err < 0 || status != 200) {
		r->stats.errors++;
		if (err < 0)
			log_warn("%s: list failed: %s", r->type->kind,
				 err == -EFBIG ? "response too large" : errmsg);
		else
			log_warn("%s: list failed: HTTP %ld: %.300s", r->type->kind, status,
				 body_text(&r->body));
		buf_reset(&r->body, true);
		set_str(&r->continue_token, NULL);
		retry_later(r, NEXT_LIST,
			    (status == 429 || status >= 500) ? kube_request_retry_after(req) : -1);
		return;
	}
	/* The page's JSON lives only until its objects are decoded. */
	json_arena_begin();
	doc = json_loadb(r->body.p ? r->body.p : "", r->body.len, 0, &jerr);
	buf_reset(&r->body, false);
	items = doc ? json_object_get(doc, "items") : NULL;
	if (!doc || !json_is_object(doc) ||
	    (items && !json_is_array(items) && !json_is_null(items))) {
		r->stats.errors++;
		log_warn("%s: list response is not a list: %s", r->type->kind,
			 doc ? "unexpected JSON" : jerr.text);
		json_arena_drop(doc);
		json_arena_end();
		set_str(&r->continue_token, NULL);
		retry_later(r, NEXT_LIST, -1);
		return;
	}
	json_array_foreach(items, i, item) apply_object(r, item, true);
	cont = json_string_value(json_object_get(json_object_get(doc, "metadata"), "continue"));
	rv = json_string_value(
		json_object_get(json_object_get(doc, "metadata"), "resourceVersion"));
	if (rv && *rv)
		set_str(&r->list_rv, rv);
	if (cont && *cont) {
		set_str(&r->continue_token, cont);
		json_arena_drop(doc);
		json_arena_end();
		start_list(r);
		return;
	}
	json_arena_drop(doc);
	json_arena_end();
	set_str(&r->continue_token, NULL);
	finish_list(r);
	start_watch(r);
}

static const struct kube_request_ops list_ops = {list_data, list_done};

static char *escape(const char *s)
{
	/* Tokens and versions are opaque: escape everything but unreserved. */
	static const char hex[] = "0123456789ABCDEF";
	char *out = malloc(strlen(s) * 3 + 1), *o = out;

	if (!out)
		return NULL;
	for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
		if ((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
		    (*p >= '0' && *p <= '9') || *p == '-' || *p == '_' || *p == '.' || *p == '~') {
			*o++ = (char)*p;
		} else {
			*o++ = '%';
			*o++ = hex[*p >> 4];
			*o++ = hex[*p & 15];
		}
	}
	*o = '\0';
	return out;
}

static void start_list(struct reflector *r)
{
	char *path = NULL, *cont = NULL;
	int ret;

	if (r->continue_token && !(cont = escape(r->continue_token))) {
		retry_later(r, NEXT_LIST, -1);
		return;
	}
	if (!r->continue_token) {
		/* A fresh list: forget which keys earlier pages saw. */
		struct hashmap_iter it = {0};
		void *v;

		while (hashmap_next(r->cache, &it, NULL, NULL, &v))
			((struct cache_entry *)v)->seen = false;
	}
	ret = asprintf(&path, "%s?limit=%d%s%s%s%s", r->type->path, LIST_PAGE,
		       cont ? "&continue=" : "", cont ? cont : "", r->query ? "&" : "",
		       r->query ? r->query : "");
	free(cont);
	if (ret < 0) {
		retry_later(r, NEXT_LIST, -1);
		return;
	}
	buf_reset(&r->body, false);
	r->state = LISTING;
	log_v(6, "GET %s", path);
	ret = kube_client_get(r->client, path, false, 120, &list_ops, r, &r->req);
	free(path);
	if (ret < 0) {
		log_warn("%s: cannot start a list: %s", r->type->kind, strerror(-ret));
		retry_later(r, NEXT_LIST, -1);
	}
}

/* One line of a watch stream.  Returns 0, or -EBADMSG when the stream can no
 * longer be trusted (the reflector then lists again). */
static int watch_line(struct reflector *r, const char *line, size_t len)
{
	json_error_t jerr;
	json_t *ev, *obj;
	const char *type, *rv;
	int ret = 0;

	while (len && (line[len - 1] == '\r' || line[len - 1] == ' '))
		len--;
	if (!len)
		return 0;
	ev = json_loadb(line, len, 0, &jerr);
	if (!ev || !json_is_object(ev)) {
		log_warn("%s: watch stream sent something that is not an event (%s); listing "
			 "again",
			 r->type->kind, ev ? "not an object" : jerr.text);
		json_decref(ev);
		return -EBADMSG;
	}
	type = json_string_value(json_object_get(ev, "type"));
	obj = json_object_get(ev, "object");
	if (!type || !json_is_object(obj)) {
		log_warn("%s: watch event without type or object; listing again", r->type->kind);
		json_decref(ev);
		return -EBADMSG;
	}
	if (strcmp(type, "ERROR")) {
		/* The watch works: the next failure starts the back-off over. */
		r->backoff_ms = BACKOFF_MIN_MS;
	}
	r->saw_event = true;
	rv = json_string_value(
		json_object_get(json_object_get(obj, "metadata"), "resourceVersion"));
	if (!strcmp(type, "ADDED") || !strcmp(type, "MODIFIED")) {
		apply_object(r, obj, false);
	} else if (!strcmp(type, "DELETED")) {
		char key[OBJECT_KEY_MAX], err[256];

		if (decode_object_key(obj, key, sizeof(key), err, sizeof(err)) == 0)
			remove_key(r, key);
		else
			log_warn("%s: DELETED event for an unnamed object: %s", r->type->kind, err);
	} else if (!strcmp(type, "BOOKMARK")) {
		/* only moves the resume point */
	} else if (!strcmp(type, "ERROR")) {
		json_t *code = json_object_get(obj, "code");
		const char *msg = json_string_value(json_object_get(obj, "message"));

		if (json_integer_value(code) == 410) {
			log_v(2, "%s: watch version expired; listing again", r->type->kind);
			r->next = NEXT_LIST;
		} else {
			log_warn("%s: watch error %lld: %.300s", r->type->kind,
				 (long long)json_integer_value(code), msg ? msg : "");
			r->next = NEXT_WATCH;
		}
		rv = NULL;
		ret = -ECONNABORTED;
	} else {
		log_warn("%s: unknown watch event type \"%.32s\"; listing again", r->type->kind,
			 type);
		rv = NULL;
		ret = -EBADMSG;
	}
	if (rv && *rv)
		set_str(&r->last_rv, rv);
	json_decref(ev);
	return ret;
}

static int watch_line_cb(void *ctx, const char *line, size_t len)
{
	int r;

	json_arena_begin();
	r = watch_line(ctx, line, len);
	json_arena_end();
	return r;
}

static int watch_data(struct kube_request *req, const char *buf, size_t len, void *data)
{
	struct reflector *r = data;
	int ret;

	if (kube_request_status(req) != 200) {
		/* Keep the start of an error body for the log; drop the rest. */
		buf_append(&r->body, buf, len, MAX_ERROR_BODY);
		return 0;
	}
	ret = line_reader_feed(&r->lines, buf, len, watch_line_cb, r);
	if (ret == -EFBIG)
		log_warn("%s: watch line longer than %u bytes; listing again", r->type->kind,
			 MAX_LINE);
	if (ret == -EBADMSG || ret == -EFBIG) {
		r->stream_broken = true;
		return -EBADMSG;
	}
	return ret;
}

static void watch_done(struct kube_request *req, long status, int err, const char *errmsg,
		       void *data)
{
	struct reflector *r = data;

	r->req = NULL;
	if (r->stream_broken) {
		r->stats.errors++;
		buf_reset(&r->body, true);
		retry_later(r, NEXT_LIST, -1);
		return;
	}
	if (err == -ECONNABORTED) {
		/* An ERROR event; watch_line() chose what comes next. */
		buf_reset(&r->body, true);
		if (r->next == NEXT_LIST) {
			start_list(r);
		} else {
			r->stats.errors++;
			retry_later(r, NEXT_WATCH, -1);
		}
		return;
	}
	if (status == 410) {
		buf_reset(&r->body, true);
		start_list(r);
		return;
	}
	if (err < 0 || status != 200) {
		r->stats.errors++;
		if (err < 0)
			log_warn("%s: watch ended: %s", r->type->kind, errmsg);
		else
			log_warn("%s: watch failed: HTTP %ld: %.300s", r->type->kind, status,
				 body_text(&r->body));
		buf_reset(&r->body, true);
		retry_later(r, NEXT_WATCH,
			    (status == 429 || status >= 500) ? kube_request_retry_after(req) : -1);
		return;
	}
	/* The server closed the stream normally (timeoutSeconds): resume.  A
	 * stream that ends at once, with or without events in it, says
	 * something is wrong with the server; going straight back would make a
	 * tight loop. */
	buf_reset(&r->body, true);
	if (loop_now_ms() - r->watch_started_ms < 1000) {
		retry_later(r, NEXT_WATCH, -1);
		return;
	}
	start_watch(r);
}

static const struct kube_request_ops watch_ops = {watch_data, watch_done};

static void start_watch(struct reflector *r)
{
	char *path = NULL, *rv = NULL;
	unsigned timeout = jitter(WATCH_MIN_S);
	int ret;

	if (r->last_rv && !(rv = escape(r->last_rv))) {
		retry_later(r, NEXT_WATCH, -1);
		return;
	}
	ret = asprintf(&path, "%s?watch=1&allowWatchBookmarks=true&timeoutSeconds=%u%s%s%s%s",
		       r->type->path, timeout, rv ? "&resourceVersion=" : "", rv ? rv : "",
		       r->query ? "&" : "", r->query ? r->query : "");
	free(rv);
	if (ret < 0) {
		retry_later(r, NEXT_WATCH, -1);
		return;
	}
	buf_reset(&r->body, true);
	line_reader_reset(&r->lines);
	r->stream_broken = false;
	r->saw_event = false;
	r->watch_started_ms = loop_now_ms();
	r->state = WATCHING;
	r->stats.watch_starts++;
	log_v(6, "GET %s", path);
	/* The stream may last timeout seconds; allow a margin before curl gives up. */
	ret = kube_client_get(r->client, path, true, (long)timeout + 60, &watch_ops, r, &r->req);
	free(path);
	if (ret < 0) {
		log_warn("%s: cannot start a watch: %s", r->type->kind, strerror(-ret));
		retry_later(r, NEXT_WATCH, -1);
	}
}

int reflector_new(struct kube_client *client, struct loop *loop, const struct reflector_type *type,
		  const char *query, const struct reflector_handler *handler, void *data,
		  struct reflector **ret)
{
	struct reflector *r = calloc(1, sizeof(*r));

	if (!r)
		return -ENOMEM;
	r->client = client;
	r->loop = loop;
	r->type = type;
	r->h = handler;
	r->data = data;
	r->backoff_ms = BACKOFF_MIN_MS;
	r->lines.max = MAX_LINE;
	r->cache = hashmap_new();
	r->timer = loop_timer_new(loop, timer_fired, r);
	if (query && *query)
		r->query = strdup(query);
	if (!r->cache || !r->timer || (query && *query && !r->query)) {
		reflector_free(r);
		return -ENOMEM;
	}
	*ret = r;
	return 0;
}

void reflector_start(struct reflector *r)
{
	start_list(r);
}

void reflector_free(struct reflector *r)
{
	if (!r)
		return;
	kube_request_cancel(r->req);
	loop_timer_free(r->timer);
	hashmap_free(r->cache, cache_entry_free);
	free(r->query);
	free(r->continue_token);
	free(r->list_rv);
	free(r->last_rv);
	buf_reset(&r->body, true);
	line_reader_reset(&r->lines);
	free(r);
}

bool reflector_synced(const struct reflector *r)
{
	return r->synced;
}

const struct reflector_stats *reflector_stats(const struct reflector *r)
{
	return &r->stats;
}

const char *reflector_kind(const struct reflector *r)
{
	return r->type->kind;
}
