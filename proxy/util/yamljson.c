/* YAML to jansson through libyaml's event parser; see yamljson.h.
 *
 * The parser's events are folded into a stack of open containers.  Anchors
 * are remembered by name and aliases take a deep copy of the anchored value,
 * counted against a node budget so that nested aliases ("billion laughs")
 * fail instead of exhausting memory. */
#include "util/yamljson.h"

#include <errno.h>
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <yaml.h>

#define MAX_DEPTH 64
#define MAX_NODES 1000000
#define MAX_FILE  (16u << 20)

struct frame {
	json_t *container;
	char *pending_key; /* for mappings: the key waiting for its value */
	char *anchor;
};

struct anchor {
	char *name;
	json_t *value;
	struct anchor *next;
};

struct builder {
	struct frame stack[MAX_DEPTH];
	int depth;
	json_t *root;
	struct anchor *anchors;
	size_t nodes;
	char *err;
	size_t errlen;
};

static size_t count_nodes(json_t *v)
{
	size_t n = 1;

	if (json_is_object(v)) {
		const char *k;
		json_t *c;

		json_object_foreach(v, k, c) n += count_nodes(c);
	} else if (json_is_array(v)) {
		size_t i;
		json_t *c;

		json_array_foreach(v, i, c) n += count_nodes(c);
	}
	return n;
}

static bool is_null(const char *s)
{
	return !*s || !strcmp(s, "~") || !strcmp(s, "null") || !strcmp(s, "Null") ||
	       !strcmp(s, "NULL");
}

static bool all_of(const char *s, const char *set)
{
	return *s && strspn(s, set) == strlen(s);
}

/* YAML 1.2 core schema floats: [-+]? ( . digits | digits [. digits?] )
 * ( [eE] [-+]? digits )?.  The infinities and NaN have no JSON form and stay
 * strings. */
static bool core_float(const char *s, double *ret)
{
	const char *p = s;
	char *end;
	size_t digits = 0;

	if (*p == '-' || *p == '+')
		p++;
	while (*p >= '0' && *p <= '9') {
		p++;
		digits++;
	}
	if (*p == '.') {
		p++;
		while (*p >= '0' && *p <= '9') {
			p++;
			digits++;
		}
	}
	if (!digits)
		return false;
	if (*p == 'e' || *p == 'E') {
		p++;
		if (*p == '-' || *p == '+')
			p++;
		if (!(*p >= '0' && *p <= '9'))
			return false;
		while (*p >= '0' && *p <= '9')
			p++;
	}
	if (*p)
		return false;
	errno = 0;
	*ret = strtod(s, &end);
	return !*end && !errno && isfinite(*ret);
}

static json_t *plain_scalar(const char *s)
{
	const char *digits = s;
	long long v;
	double d;
	int base = 10;

	if (is_null(s))
		return json_null();
	if (!strcmp(s, "true") || !strcmp(s, "True") || !strcmp(s, "TRUE"))
		return json_true();
	if (!strcmp(s, "false") || !strcmp(s, "False") || !strcmp(s, "FALSE"))
		return json_false();
	/* Integers: [-+]? decimal digits, 0o octal, 0x hexadecimal. */
	if (s[0] == '0' && s[1] == 'x' && all_of(s + 2, "0123456789abcdefABCDEF")) {
		base = 16;
		digits = s + 2;
	} else if (s[0] == '0' && s[1] == 'o' && all_of(s + 2, "01234567")) {
		base = 8;
		digits = s + 2;
	} else if (!all_of(s + (s[0] == '-' || s[0] == '+'), "0123456789")) {
		digits = NULL;
	}
	if (digits) {
		char *end;

		errno = 0;
		v = strtoll(digits, &end, base);
		if (!*end && !errno)
			return json_integer(v);
	}
	if (core_float(s, &d))
		return json_real(d);
	return json_string(s);
}

static int fail(struct builder *b, const yaml_event_t *ev, const char *msg)
{
	snprintf(b->err, b->errlen, "line %zu column %zu: %s", ev->start_mark.line + 1,
		 ev->start_mark.column + 1, msg);
	return -EBADMSG;
}

static int remember_anchor(struct builder *b, const char *name, json_t *value)
{
	struct anchor *a;

	if (!name)
		return 0;
	a = calloc(1, sizeof(*a));
	if (!a)
		return -ENOMEM;
	a->name = strdup(name);
	a->value = json_incref(value);
	a->next = b->anchors;
	b->anchors = a;
	return a->name ? 0 : -ENOMEM;
}

/* Places a finished value into the open container (or as the root). Takes
 * the caller's reference to value. */
static int place(struct builder *b, const yaml_event_t *ev, json_t *value)
{
	struct frame *f;

	if (!value)
		return -ENOMEM;
	if (b->depth == 0) {
		if (!b->root)
			b->root = value;
		else
			json_decref(value);
		return 0;
	}
	f = &b->stack[b->depth - 1];
	if (json_is_array(f->container))
		return json_array_append_new(f->container, value) ? -ENOMEM : 0;
	if (!f->pending_key) {
		/* value is a key; keys must be scalars */
		if (json_is_string(value)) {
			f->pending_key = strdup(json_string_value(value));
		} else if (json_is_integer(value) || json_is_real(value) ||
			   json_is_boolean(value)) {
			char *s = json_dumps(value, JSON_ENCODE_ANY);

			f->pending_key = s;
		} else if (json_is_null(value)) {
			f->pending_key = strdup("");
		} else {
			json_decref(value);
			return fail(b, ev, "mapping key is not a scalar");
		}
		json_decref(value);
		return f->pending_key ? 0 : -ENOMEM;
	}
	if (json_object_set_new(f->container, f->pending_key, value)) {
		free(f->pending_key);
		f->pending_key = NULL;
		return -ENOMEM;
	}
	free(f->pending_key);
	f->pending_key = NULL;
	return 0;
}

static int handle(struct builder *b, yaml_event_t *ev)
{
	json_t *v;
	int r;

	switch (ev->type) {
	case YAML_SCALAR_EVENT: {
		const char *s = (const char *)ev->data.scalar.value;

		if (++b->nodes > MAX_NODES)
			return fail(b, ev, "document too large");
		if (ev->data.scalar.style == YAML_PLAIN_SCALAR_STYLE && !ev->data.scalar.tag)
			v = plain_scalar(s);
		else
			v = json_stringn(s, ev->data.scalar.length);
		if (!v) /* not valid UTF-8, or out of memory */
			return fail(b, ev, "scalar is not valid UTF-8");
		r = remember_anchor(b, (const char *)ev->data.scalar.anchor, v);
		if (r < 0) {
			json_decref(v);
			return r;
		}
		return place(b, ev, v);
	}
	case YAML_ALIAS_EVENT: {
		const char *name = (const char *)ev->data.alias.anchor;

		for (struct anchor *a = b->anchors; a; a = a->next) {
			if (strcmp(a->name, name))
				continue;
			b->nodes += count_nodes(a->value);
			if (b->nodes > MAX_NODES)
				return fail(b, ev, "aliases expand past the size limit");
			return place(b, ev, json_deep_copy(a->value));
		}
		return fail(b, ev, "alias to an unknown anchor");
	}
	case YAML_SEQUENCE_START_EVENT:
	case YAML_MAPPING_START_EVENT: {
		const char *anchor = ev->type == YAML_SEQUENCE_START_EVENT
					     ? (const char *)ev->data.sequence_start.anchor
					     : (const char *)ev->data.mapping_start.anchor;
		struct frame *f;

		if (b->depth >= MAX_DEPTH)
			return fail(b, ev, "nesting too deep");
		if (++b->nodes > MAX_NODES)
			return fail(b, ev, "document too large");
		f = &b->stack[b->depth];
		memset(f, 0, sizeof(*f));
		f->container = ev->type == YAML_SEQUENCE_START_EVENT ? json_array() : json_object();
		if (!f->container)
			return -ENOMEM;
		if (anchor && !(f->anchor = strdup(anchor))) {
			json_decref(f->container);
			return -ENOMEM;
		}
		b->depth++;
		return 0;
	}
	case YAML_SEQUENCE_END_EVENT:
	case YAML_MAPPING_END_EVENT: {
		struct frame *f = &b->stack[--b->depth];

		v = f->container;
		r = remember_anchor(b, f->anchor, v);
		free(f->anchor);
		free(f->pending_key);
		if (r < 0) {
			json_decref(v);
			return r;
		}
		return place(b, ev, v);
	}
	default:
		return 0;
	}
}

int yamljson_parse(const char *buf, size_t len, json_t **ret_json, char *err, size_t errlen)
{
	struct builder b = {.err = err, .errlen = errlen};
	yaml_parser_t parser;
	bool done = false;
	int r = 0;

	if (errlen)
		err[0] = '\0';
	if (!yaml_parser_initialize(&parser))
		return -ENOMEM;
	yaml_parser_set_input_string(&parser, (const unsigned char *)buf, len);
	while (!done) {
		yaml_event_t ev;

		if (!yaml_parser_parse(&parser, &ev)) {
			snprintf(err, errlen, "line %zu column %zu: %s",
				 parser.problem_mark.line + 1, parser.problem_mark.column + 1,
				 parser.problem ? parser.problem : "syntax error");
			r = -EBADMSG;
			break;
		}
		/* Only the first document counts. */
		if (ev.type == YAML_DOCUMENT_END_EVENT || ev.type == YAML_STREAM_END_EVENT)
			done = true;
		else
			r = handle(&b, &ev);
		yaml_event_delete(&ev);
		if (r < 0)
			break;
	}
	yaml_parser_delete(&parser);
	while (b.depth > 0) {
		struct frame *f = &b.stack[--b.depth];

		json_decref(f->container);
		free(f->pending_key);
		free(f->anchor);
	}
	while (b.anchors) {
		struct anchor *a = b.anchors;

		b.anchors = a->next;
		json_decref(a->value);
		free(a->name);
		free(a);
	}
	if (r < 0) {
		json_decref(b.root);
		if (r == -ENOMEM && errlen)
			snprintf(err, errlen, "out of memory");
		return r == -ENOMEM ? r : -EBADMSG;
	}
	*ret_json = b.root ? b.root : json_null();
	return 0;
}

int yamljson_load_file(const char *path, json_t **ret_json, char *err, size_t errlen)
{
	FILE *f = fopen(path, "re");
	char *buf = NULL;
	size_t len = 0, cap = 0;
	int r;

	if (!f) {
		r = -errno;
		snprintf(err, errlen, "%s: %s", path, strerror(-r));
		return r;
	}
	for (;;) {
		size_t n;

		if (len == cap) {
			char *nb;

			cap = cap ? cap * 2 : 8192;
			if (cap > MAX_FILE + 1) {
				snprintf(err, errlen, "%s: file larger than %u bytes", path,
					 MAX_FILE);
				free(buf);
				fclose(f);
				return -EFBIG;
			}
			nb = realloc(buf, cap);
			if (!nb) {
				free(buf);
				fclose(f);
				return -ENOMEM;
			}
			buf = nb;
		}
		n = fread(buf + len, 1, cap - len, f);
		len += n;
		if (n == 0)
			break;
	}
	if (ferror(f)) {
		r = -EIO;
		snprintf(err, errlen, "%s: read error", path);
	} else {
		char inner[256];

		r = yamljson_parse(buf, len, ret_json, inner, sizeof(inner));
		if (r < 0)
			snprintf(err, errlen, "%s: %s", path, inner);
	}
	free(buf);
	fclose(f);
	return r;
}
