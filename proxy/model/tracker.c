/* The change tracker; see tracker.h.
 *
 * Indexes: services by "ns/name"; slices by "ns/slice-name"; and for each
 * Service key the group of slices that name it (a slice may arrive before
 * its Service, so groups exist independently of Services).  "dirty" holds
 * the Service keys touched since the last commit; "published" the ports the
 * dataplane was last given for each Service. */
#include "model/tracker.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "util/hashmap.h"

struct slice_group {
	struct endpoint_slice **v;
	size_t n, cap;
};

struct tracker {
	char *node_name;
	struct node_info *node;
	struct hashmap *services;  /* key → struct service */
	struct hashmap *slices;	   /* slice key → struct endpoint_slice */
	struct hashmap *groups;	   /* service key → struct slice_group */
	struct hashmap *dirty;	   /* service key → (void *)1 */
	struct hashmap *published; /* service key → struct svc_ports */
	struct tracker_stats stats;
	double start_time; /* wall clock at tracker_new() */
	double *triggers;  /* trigger times of endpoint changes not yet synced */
	size_t n_triggers, cap_triggers;
};

/* Bounded so that a storm of changes during a long outage of the dataplane
 * cannot grow memory; the oldest changes are the ones measured. */
#define TRIGGERS_MAX 4096

static void note_trigger(struct tracker *t, const struct endpoint_slice *old,
			 const struct endpoint_slice *s)
{
	/* Like kube-proxy: only changes made after the agent started, and each
	 * annotation value once (a resync of an unchanged slice is not a new
	 * change). */
	if (s->trigger_time <= t->start_time || (old && old->trigger_time == s->trigger_time))
		return;
	if (t->n_triggers == t->cap_triggers) {
		size_t cap = t->cap_triggers ? t->cap_triggers * 2 : 16;
		double *v;

		if (cap > TRIGGERS_MAX || !(v = realloc(t->triggers, cap * sizeof(*v))))
			return;
		t->triggers = v;
		t->cap_triggers = cap;
	}
	t->triggers[t->n_triggers++] = s->trigger_time;
}

static void group_free(void *p)
{
	struct slice_group *g = p;

	if (g) {
		free(g->v);
		free(g);
	}
}

static void ports_free(void *p)
{
	struct svc_ports *ports = p;

	svc_ports_clear(ports);
	free(ports);
}

static void service_free_v(void *p)
{
	service_free(p);
}

static void slice_free_v(void *p)
{
	endpoint_slice_free(p);
}

int tracker_new(const char *node_name, struct tracker **ret)
{
	struct tracker *t = calloc(1, sizeof(*t));
	struct timespec now;

	if (!t)
		return -ENOMEM;

	clock_gettime(CLOCK_REALTIME, &now);
	t->start_time = (double)now.tv_sec + (double)now.tv_nsec / 1e9;
	t->node_name = strdup(node_name ? node_name : "");
	t->services = hashmap_new();
	t->slices = hashmap_new();
	t->groups = hashmap_new();
	t->dirty = hashmap_new();
	t->published = hashmap_new();
	if (!t->node_name || !t->services || !t->slices || !t->groups || !t->dirty ||
	    !t->published) {
		tracker_free(t);
		return -ENOMEM;
	}
	*ret = t;
	return 0;
}

void tracker_free(struct tracker *t)
{
	if (!t)
		return;
	hashmap_free(t->services, service_free_v);
	hashmap_free(t->slices, slice_free_v);
	hashmap_free(t->groups, group_free);
	hashmap_free(t->dirty, NULL);
	hashmap_free(t->published, ports_free);
	node_info_free(t->node);
	free(t->node_name);
	free(t->triggers);
	free(t);
}

static void mark_dirty(struct tracker *t, const char *key)
{
	/* On allocation failure the change is lost until the next full sync,
	 * which rebuilds every Service anyway. */
	hashmap_put_str(t->dirty, key, (void *)1, NULL);
}

void tracker_service_upsert(struct tracker *t, const char *key, struct service *svc)
{
	void *old = NULL;

	if (hashmap_put_str(t->services, key, svc, &old) < 0) {
		service_free(svc);
		return;
	}
	service_free(old);
	t->stats.service_changes++;
	mark_dirty(t, key);
}

void tracker_service_remove(struct tracker *t, const char *key)
{
	struct service *svc = hashmap_remove_str(t->services, key);

	if (!svc)
		return;
	service_free(svc);
	t->stats.service_changes++;
	mark_dirty(t, key);
}

static void slice_service_key(const struct endpoint_slice *s, char *buf, size_t len)
{
	snprintf(buf, len, "%s/%s", s->ns, s->service_name);
}

static void group_remove(struct tracker *t, const char *svc_key, struct endpoint_slice *s)
{
	struct slice_group *g = hashmap_get_str(t->groups, svc_key);

	if (!g)
		return;
	for (size_t i = 0; i < g->n; i++) {
		if (g->v[i] == s) {
			g->v[i] = g->v[--g->n];
			break;
		}
	}
	if (!g->n)
		group_free(hashmap_remove_str(t->groups, svc_key));
}

static int group_add(struct tracker *t, const char *svc_key, struct endpoint_slice *s)
{
	struct slice_group *g = hashmap_get_str(t->groups, svc_key);

	if (!g) {
		g = calloc(1, sizeof(*g));
		if (!g || hashmap_put_str(t->groups, svc_key, g, NULL) < 0) {
			free(g);
			return -ENOMEM;
		}
	}
	if (g->n == g->cap) {
		size_t cap = g->cap ? g->cap * 2 : 4;
		struct endpoint_slice **v = realloc(g->v, cap * sizeof(*v));

		if (!v)
			return -ENOMEM;
		g->v = v;
		g->cap = cap;
	}
	g->v[g->n++] = s;
	return 0;
}

void tracker_slice_upsert(struct tracker *t, const char *key, struct endpoint_slice *slice)
{
	char svc_key[OBJECT_KEY_MAX];
	struct endpoint_slice *old = hashmap_get_str(t->slices, key);

	note_trigger(t, old, slice);
	if (old) {
		slice_service_key(old, svc_key, sizeof(svc_key));
		group_remove(t, svc_key, old);
		mark_dirty(t, svc_key);
	}
	slice_service_key(slice, svc_key, sizeof(svc_key));
	if (hashmap_put_str(t->slices, key, slice, NULL) < 0) {
		hashmap_remove_str(t->slices, key);
		endpoint_slice_free(slice);
		endpoint_slice_free(old);
		return;
	}
	endpoint_slice_free(old);
	if (group_add(t, svc_key, slice) < 0) {
		/* Keep the indexes consistent: drop the slice entirely. */
		endpoint_slice_free(hashmap_remove_str(t->slices, key));
	}
	t->stats.endpoint_changes++;
	mark_dirty(t, svc_key);
}

void tracker_slice_remove(struct tracker *t, const char *key)
{
	char svc_key[OBJECT_KEY_MAX];
	struct endpoint_slice *old = hashmap_remove_str(t->slices, key);

	if (!old)
		return;
	slice_service_key(old, svc_key, sizeof(svc_key));
	group_remove(t, svc_key, old);
	endpoint_slice_free(old);
	t->stats.endpoint_changes++;
	mark_dirty(t, svc_key);
}

static void mark_all_dirty(struct tracker *t)
{
	struct hashmap_iter it = {0};
	const void *k;

	while (hashmap_next(t->services, &it, &k, NULL, NULL))
		mark_dirty(t, k);
}

void tracker_node_set(struct tracker *t, struct node_info *node)
{
	const char *old_zone = t->node ? t->node->zone : NULL;
	const char *new_zone = node ? node->zone : NULL;
	bool zone_changed =
		(!old_zone) != (!new_zone) || (old_zone && new_zone && strcmp(old_zone, new_zone));

	node_info_free(t->node);
	t->node = node;
	/* Topology hints are matched against the zone: every Service may change. */
	if (zone_changed)
		mark_all_dirty(t);
}

const struct node_info *tracker_node(const struct tracker *t)
{
	return t->node;
}

size_t tracker_pending(const struct tracker *t)
{
	return hashmap_size(t->dirty);
}

static int build_for(struct tracker *t, const char *key, struct svc_ports **ret)
{
	struct model_node node = {t->node_name, t->node ? t->node->zone : NULL};
	const struct service *svc = hashmap_get_str(t->services, key);
	const struct slice_group *g = hashmap_get_str(t->groups, key);
	struct svc_ports *ports = calloc(1, sizeof(*ports));
	int r;

	if (!ports)
		return -ENOMEM;
	r = svc_ports_build(svc, g ? g->v : NULL, g ? g->n : 0, &node, ports);
	if (r < 0) {
		free(ports);
		return r;
	}
	if (!ports->n) {
		free(ports);
		ports = NULL;
	}
	*ret = ports;
	return 0;
}

static int add_change(struct tracker_changes *c, size_t *cap, const char *key,
		      const struct svc_ports *old, struct svc_ports *new)
{
	if (c->n == *cap) {
		size_t ncap = *cap ? *cap * 2 : 64;
		struct tracker_change *v = realloc(c->v, ncap * sizeof(*v));

		if (!v)
			return -ENOMEM;
		c->v = v;
		*cap = ncap;
	}
	c->v[c->n].key = strdup(key);
	if (!c->v[c->n].key)
		return -ENOMEM;
	c->v[c->n].old = old;
	c->v[c->n].new = new;
	c->n++;
	return 0;
}

static void changes_release(struct tracker_changes *c, bool free_new)
{
	for (size_t i = 0; i < c->n; i++) {
		free(c->v[i].key);
		if (free_new)
			ports_free(c->v[i].new);
	}
	free(c->v);
	memset(c, 0, sizeof(*c));
}

int tracker_prepare(struct tracker *t, bool full, struct tracker_changes *ret)
{
	struct tracker_changes c = {.full = full};
	struct hashmap *keys = full ? t->services : t->dirty;
	struct hashmap_iter it = {0};
	size_t cap = 0;
	const void *k;
	int r = 0;

	while (hashmap_next(keys, &it, &k, NULL, NULL)) {
		const struct svc_ports *old = hashmap_get_str(t->published, k);
		struct svc_ports *new = NULL;

		if ((r = build_for(t, k, &new)) < 0)
			break;
		if (!full && svc_ports_equal(old, new)) {
			ports_free(new);
			continue;
		}
		if (full && !new)
			continue;
		if ((r = add_change(&c, &cap, k, full ? NULL : old, new)) < 0) {
			ports_free(new);
			break;
		}
	}
	if (r < 0) {
		changes_release(&c, true);
		return r;
	}
	*ret = c;
	return 0;
}

void tracker_commit(struct tracker *t, struct tracker_changes *c)
{
	if (c->full)
		hashmap_clear(t->published, ports_free);
	for (size_t i = 0; i < c->n; i++) {
		struct svc_ports *new = c->v[i].new;
		void *old = NULL;

		if (!new) {
			ports_free(hashmap_remove_str(t->published, c->v[i].key));
		} else if (hashmap_put_str(t->published, c->v[i].key, new, &old) < 0) {
			/* Cannot record it: make sure the next sync looks again. */
			ports_free(new);
			mark_dirty(t, c->v[i].key);
			continue;
		} else {
			ports_free(old);
		}
		c->v[i].new = NULL;
	}
	/* Services dirtied but unchanged were dropped from the list; they are
	 * clean too.  A full sync covered everything. */
	hashmap_clear(t->dirty, NULL);
	t->n_triggers = 0;
	changes_release(c, true);
}

size_t tracker_trigger_times(const struct tracker *t, const double **ret)
{
	*ret = t->triggers;
	return t->n_triggers;
}

void tracker_abort(struct tracker *t, struct tracker_changes *c)
{
	for (size_t i = 0; i < c->n; i++)
		mark_dirty(t, c->v[i].key);
	changes_release(c, true);
}

void tracker_foreach_port(const struct tracker *t, void (*fn)(const struct svc_port *, void *),
			  void *data)
{
	struct hashmap_iter it = {0};
	void *v;

	while (hashmap_next(t->published, &it, NULL, NULL, &v)) {
		const struct svc_ports *ports = v;

		for (size_t i = 0; i < ports->n; i++)
			fn(&ports->v[i], data);
	}
}

void tracker_get_stats(const struct tracker *t, struct tracker_stats *ret)
{
	*ret = t->stats;
	ret->services = hashmap_size(t->services);
	ret->slices = hashmap_size(t->slices);
}
