/* The Service table and its map writes; see services.h for the order of
 * writes and why. */
#include "ebpf/services.h"

#include <bpf/bpf.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ebpf/maglev.h"
#include "kproxy/lb.h"
#include "util/hashmap.h"

_Static_assert(sizeof(struct lb4_frontend_key) == 8, "lb4_frontend_key layout");
_Static_assert(sizeof(struct lb6_frontend_key) == 20, "lb6_frontend_key layout");
_Static_assert(sizeof(struct lb_frontend) == 8, "lb_frontend layout");
_Static_assert(sizeof(struct lb_service) == 16, "lb_service layout");
_Static_assert(sizeof(struct lb_slot_key) == 8, "lb_slot_key layout");
_Static_assert(sizeof(struct lb_backend) == 24, "lb_backend layout");
_Static_assert(sizeof(struct lb4_range_key) == 12, "lb4_range_key layout");
_Static_assert(sizeof(struct lb6_range_key) == 24, "lb6_range_key layout");

#define FE_KEY_MAX  sizeof(struct lb6_frontend_key)
#define RNG_KEY_MAX sizeof(struct lb6_range_key)

struct fe {
	uint8_t family; /* AF_INET or AF_INET6 */
	uint8_t klen;
	uint8_t key[FE_KEY_MAX]; /* the map key, as written */
	struct lb_frontend val;
};

struct be {
	struct ipaddr addr;
	uint16_t port;
	uint8_t flags; /* LB_BE_F_* */
	uint32_t id;
};

struct rng {
	uint8_t family;
	uint8_t klen;
	uint8_t key[RNG_KEY_MAX];
};

/* One Service port as the maps hold it (or, while an update is written, as
 * they will). */
struct svc {
	char *key; /* NULL: adopted from the maps and not claimed yet */
	uint32_t id;
	uint8_t family;
	struct lb_service val;
	struct fe *fes;
	size_t n_fes;
	struct be *bes; /* sorted by address and port */
	size_t n_bes;
	uint32_t *slots; /* backend ids of slots 0..n_slots-1 */
	size_t n_slots;
	uint32_t *maglev; /* LB_MAGLEV_SIZE ids; NULL when unknown or none */
	int maglev_fd;	  /* the inner map, or -1 */
	struct rng *rngs;
	size_t n_rngs;
	bool seen; /* updated in this full sync */
};

struct pending {
	struct svc *cur;  /* what the maps held before this sync; may be NULL */
	struct svc *want; /* what they hold after it; NULL: removed */
};

struct svc_table {
	struct svc_maps m;
	struct svc_masq masq;
	struct hashmap *by_key;	  /* key -> struct svc */
	struct hashmap *by_id;	  /* Service id -> struct svc (owns them) */
	struct hashmap *fe_owner; /* family . frontend key -> struct svc */
	struct hashmap *be_used;  /* backend ids in use */
	struct hashmap *vips;	  /* family . ClusterIP -> Service ports on it */
	uint32_t next_svc, next_be;
	struct pending *pend;
	size_t n_pend, cap_pend;
	bool full;
	struct svc_table_stats stats;
};

/* --- small helpers ------------------------------------------------------- */

static void svc_free(struct svc *s)
{
	if (!s)
		return;
	if (s->maglev_fd >= 0)
		close(s->maglev_fd);
	free(s->key);
	free(s->fes);
	free(s->bes);
	free(s->slots);
	free(s->maglev);
	free(s->rngs);
	free(s);
}

static struct svc *svc_alloc(void)
{
	struct svc *s = calloc(1, sizeof(*s));

	if (s)
		s->maglev_fd = -1;
	return s;
}

static void *grow(void *v, size_t n, size_t size)
{
	/* Grows by powers of two as n crosses them. */
	if (n && (n & (n - 1)))
		return v;
	return realloc(v, (n ? n * 2 : 1) * size);
}

#define PUSH(arr, n)                                                                             \
	({                                                                                       \
		void *_g = grow((arr), (n), sizeof(*(arr)));                                     \
		_g ? ((arr) = _g, memset(&(arr)[(n)], 0, sizeof(*(arr))), &(arr)[(n)++]) : NULL; \
	})

static int be_cmp(const void *a, const void *b)
{
	const struct be *x = a, *y = b;
	int r = ipaddr_cmp(&x->addr, &y->addr);

	return r ? r : (int)x->port - (int)y->port;
}

static struct be *be_find(const struct svc *s, const struct ipaddr *addr, uint16_t port)
{
	struct be k = {.addr = *addr, .port = port};

	if (!s || !s->n_bes)
		return NULL;
	return bsearch(&k, s->bes, s->n_bes, sizeof(*s->bes), be_cmp);
}

static bool be_has_id(const struct svc *s, uint32_t id)
{
	for (size_t i = 0; s && i < s->n_bes; i++) {
		if (s->bes[i].id == id)
			return true;
	}
	return false;
}

static const struct fe *fe_find(const struct svc *s, const struct fe *f)
{
	for (size_t i = 0; s && i < s->n_fes; i++) {
		if (s->fes[i].family == f->family && s->fes[i].klen == f->klen &&
		    memcmp(s->fes[i].key, f->key, f->klen) == 0)
			return &s->fes[i];
	}
	return NULL;
}

static bool rng_has(const struct svc *s, const struct rng *r)
{
	for (size_t i = 0; s && i < s->n_rngs; i++) {
		if (s->rngs[i].family == r->family && s->rngs[i].klen == r->klen &&
		    memcmp(s->rngs[i].key, r->key, r->klen) == 0)
			return true;
	}
	return false;
}

static size_t owner_key(const struct fe *f, uint8_t *buf)
{
	buf[0] = f->family;
	memcpy(buf + 1, f->key, f->klen);
	return 1 + (size_t)f->klen;
}

static uint32_t alloc_id(struct hashmap *used, uint32_t *next)
{
	for (;;) {
		uint32_t id = (*next)++;

		if (*next == 0)
			*next = 1;
		if (id && !hashmap_get(used, &id, sizeof(id)))
			return id;
	}
}

const char *svc_port_key(const struct svc_port *sp, char *buf)
{
	snprintf(buf, SVC_KEY_MAX, "%s/%s/%s/%u/%u", sp->ns, sp->name, sp->port_name, sp->protocol,
		 sp->family);
	return buf;
}

/* Map writes, counted.  Deleting what is already gone is not an error. */
static int map_put(struct svc_table *t, int fd, const void *key, const void *val)
{
	t->stats.ops++;
	return bpf_map_update_elem(fd, key, val, BPF_ANY);
}

static int map_del(struct svc_table *t, int fd, const void *key)
{
	int r;

	t->stats.ops++;
	r = bpf_map_delete_elem(fd, key);
	return r == -ENOENT ? 0 : r;
}

static int fe_fd(const struct svc_table *t, uint8_t family)
{
	return family == AF_INET ? t->m.fe4 : t->m.fe6;
}

static int rng_fd(const struct svc_table *t, uint8_t family)
{
	return family == AF_INET ? t->m.ranges4 : t->m.ranges6;
}

/* Counts a ClusterIP frontend in (delta 1) or out (-1) of the ClusterIP
 * map, which holds an address while any Service port uses it. */
static int vip_ref(struct svc_table *t, const struct fe *f, int delta)
{
	uint8_t key[17];
	size_t alen = f->family == AF_INET ? 4 : 16;
	uintptr_t n;
	int fd = f->family == AF_INET ? t->m.vip4 : t->m.vip6;

	if (f->val.kind != LB_FE_CLUSTER)
		return 0;
	key[0] = f->family;
	memcpy(key + 1, f->key, alen); /* both frontend keys start with the address */
	n = (uintptr_t)hashmap_get(t->vips, key, 1 + alen);
	if (delta > 0) {
		uint32_t one = 1;

		if (hashmap_put(t->vips, key, 1 + alen, (void *)(n + 1), NULL) < 0)
			return -ENOMEM;
		return n ? 0 : map_put(t, fd, key + 1, &one);
	}
	if (n > 1) {
		hashmap_put(t->vips, key, 1 + alen, (void *)(n - 1), NULL);
		return 0;
	}
	hashmap_remove(t->vips, key, 1 + alen);
	return map_del(t, fd, key + 1);
}

/* --- building the desired state ----------------------------------------- */

static int add_fe(struct svc *w, const struct ipaddr *addr, uint16_t port, uint8_t kind,
		  uint8_t flags, uint8_t proto)
{
	struct fe *f = PUSH(w->fes, w->n_fes);

	if (!f)
		return -ENOMEM;
	f->family = w->family;
	f->val.svc_id = w->id;
	f->val.kind = kind;
	f->val.flags = flags;
	if (w->family == AF_INET) {
		struct lb4_frontend_key k = {.port = htons(port), .proto = proto};

		if (addr)
			memcpy(&k.addr, addr->bytes, 4);
		memcpy(f->key, &k, sizeof(k));
		f->klen = sizeof(k);
	} else {
		struct lb6_frontend_key k = {.port = htons(port), .proto = proto};

		if (addr)
			memcpy(k.addr, addr->bytes, 16);
		memcpy(f->key, &k, sizeof(k));
		f->klen = sizeof(k);
	}
	return 0;
}

static int add_eps(struct svc *w, const struct endpoint *eps, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		struct be *b = PUSH(w->bes, w->n_bes);

		if (!b)
			return -ENOMEM;
		b->addr = eps[i].addr;
		b->port = eps[i].port;
		b->flags = (eps[i].flags & EP_LOCAL) ? LB_BE_F_LOCAL : 0;
	}
	return 0;
}

/* Builds what the maps must hold for sp, reusing cur's ids where the same
 * Service port and endpoints are still there. */
static int build_want(struct svc_table *t, const char *key, const struct svc_port *sp,
		      const struct svc *cur, struct svc **ret)
{
	const struct svc_masq *mq = &t->masq;
	const struct endpoint *int_eps, *ext_eps;
	bool external = svc_port_external(sp), all = mq->masquerade_all;
	uint8_t ext_masq = (!sp->etp_local || all) ? LB_FE_F_MASQ_EXT : 0;
	size_t n_int, n_ext, k = 0;
	struct svc *w = svc_alloc();
	int r = -ENOMEM;

	if (!w || !(w->key = strdup(key)))
		goto fail;
	int_eps = svc_port_internal_eps(sp, &n_int);
	ext_eps = svc_port_external_eps(sp, &n_ext);
	w->family = sp->family;
	w->id = cur ? cur->id : alloc_id(t->by_id, &t->next_svc);
	w->val.count = (uint32_t)n_int;
	w->val.ext_count = external ? (uint32_t)n_ext : 0;
	w->val.family = sp->family == AF_INET ? LB_FAMILY_V4 : LB_FAMILY_V6;
	w->val.proto = sp->protocol;
	if (!n_int && sp->n_cluster_eps)
		w->val.flags |= LB_SVC_F_INT_DROP;
	if (external && !n_ext && sp->n_cluster_eps)
		w->val.flags |= LB_SVC_F_EXT_DROP;
	if (sp->affinity) {
		w->val.flags |= LB_SVC_F_AFFINITY;
		w->val.affinity_timeout = sp->affinity_timeout;
	}
	if (sp->n_source_ranges && sp->n_lb_ips)
		w->val.flags |= LB_SVC_F_SRC_RANGES;

	/* Frontends, masqueraded as the nftables dataplane does. */
	if (sp->has_cluster_ip &&
	    (r = add_fe(w, &sp->cluster_ip, sp->port, LB_FE_CLUSTER,
			(all ? LB_FE_F_MASQ_INT : 0) |
				((mq->have_cluster_cidrs || all) ? LB_FE_F_MASQ_EXT : 0),
			sp->protocol)) < 0)
		goto fail;
	for (size_t i = 0; i < sp->n_external_ips; i++) {
		r = add_fe(w, &sp->external_ips[i], sp->port, LB_FE_EXTERNAL,
			   (all ? LB_FE_F_MASQ_INT : 0) | ext_masq, sp->protocol);
		if (r < 0)
			goto fail;
	}
	for (size_t i = 0; i < sp->n_lb_ips; i++) {
		r = add_fe(w, &sp->lb_ips[i], sp->port, LB_FE_LB,
			   (all ? LB_FE_F_MASQ_INT : 0) | ext_masq, sp->protocol);
		if (r < 0)
			goto fail;
	}
	/* A pod's traffic to a NodePort may arrive on another node, whose
	 * reply would bypass that node unless the source is rewritten. */
	if (sp->node_port && (r = add_fe(w, NULL, sp->node_port, LB_FE_NODEPORT,
					 LB_FE_F_MASQ_INT | ext_masq, sp->protocol)) < 0)
		goto fail;

	/* Backends: every endpoint either kind of traffic uses, once. */
	r = -ENOMEM;
	if (add_eps(w, int_eps, n_int) < 0 || (external && add_eps(w, ext_eps, n_ext) < 0))
		goto fail;
	if (w->n_bes)
		qsort(w->bes, w->n_bes, sizeof(*w->bes), be_cmp);
	for (size_t i = 0; i < w->n_bes; i++) {
		const struct be *old;

		if (k && be_cmp(&w->bes[k - 1], &w->bes[i]) == 0) {
			w->bes[k - 1].flags |= w->bes[i].flags;
			continue;
		}
		w->bes[k] = w->bes[i];
		old = be_find(cur, &w->bes[k].addr, w->bes[k].port);
		w->bes[k].id = old ? old->id : alloc_id(t->be_used, &t->next_be);
		if (!old && hashmap_put(t->be_used, &w->bes[k].id, 4, w, NULL) < 0)
			goto fail;
		k++;
	}
	w->n_bes = k;

	/* Internal slots, in endpoint order. */
	if (n_int && !(w->slots = calloc(n_int, sizeof(*w->slots))))
		goto fail;
	w->n_slots = n_int;
	for (size_t i = 0; i < n_int; i++)
		w->slots[i] = be_find(w, &int_eps[i].addr, int_eps[i].port)->id;

	/* The Maglev table of external traffic. */
	if (external && n_ext) {
		struct maglev_backend *mb = calloc(n_ext, sizeof(*mb));

		w->maglev = calloc(LB_MAGLEV_SIZE, sizeof(*w->maglev));
		if (!mb || !w->maglev) {
			free(mb);
			goto fail;
		}
		for (size_t i = 0; i < n_ext; i++) {
			mb[i].addr = ext_eps[i].addr;
			mb[i].port = ext_eps[i].port;
			mb[i].id = be_find(w, &ext_eps[i].addr, ext_eps[i].port)->id;
		}
		r = maglev_fill(mb, n_ext, w->maglev, LB_MAGLEV_SIZE);
		free(mb);
		if (r < 0)
			goto fail;
	}

	/* loadBalancerSourceRanges, keyed by Service id. */
	for (size_t i = 0; w->val.flags & LB_SVC_F_SRC_RANGES && i < sp->n_source_ranges; i++) {
		const struct cidr *c = &sp->source_ranges[i];
		struct rng *g = PUSH(w->rngs, w->n_rngs);

		r = -ENOMEM;
		if (!g)
			goto fail;
		g->family = w->family;
		if (w->family == AF_INET) {
			struct lb4_range_key rk = {.prefixlen = 32u + c->prefix_len,
						   .svc_id = w->id};

			memcpy(&rk.addr, c->addr.bytes, 4);
			memcpy(g->key, &rk, sizeof(rk));
			g->klen = sizeof(rk);
		} else {
			struct lb6_range_key rk = {.prefixlen = 32u + c->prefix_len,
						   .svc_id = w->id};

			memcpy(rk.addr, c->addr.bytes, 16);
			memcpy(g->key, &rk, sizeof(rk));
			g->klen = sizeof(rk);
		}
	}
	*ret = w;
	return 0;
fail:
	/* Ids taken for new backends go back. */
	for (size_t i = 0; w && i < w->n_bes; i++) {
		if (hashmap_get(t->be_used, &w->bes[i].id, 4) == w)
			hashmap_remove(t->be_used, &w->bes[i].id, 4);
	}
	svc_free(w);
	return r;
}

/* --- writing ------------------------------------------------------------- */

static int write_maglev(struct svc_table *t, const struct svc *cur, struct svc *w)
{
	uint32_t keys[LB_MAGLEV_SIZE];
	uint32_t count = LB_MAGLEV_SIZE;
	int r;

	if (cur && cur->maglev_fd >= 0 && cur->maglev) {
		/* Only the entries whose backend changed: about 1/n of them for
		 * one endpoint more or less. */
		for (uint32_t i = 0; i < LB_MAGLEV_SIZE; i++) {
			if (cur->maglev[i] != w->maglev[i] &&
			    (r = map_put(t, cur->maglev_fd, &i, &w->maglev[i])) < 0)
				return r;
		}
		w->maglev_fd = dup(cur->maglev_fd);
		return w->maglev_fd < 0 ? -errno : 0;
	}
	for (uint32_t i = 0; i < LB_MAGLEV_SIZE; i++)
		keys[i] = i;
	if (cur && cur->maglev_fd >= 0) {
		/* Adopted: the contents are unknown; rewrite them in place. */
		w->maglev_fd = dup(cur->maglev_fd);
		if (w->maglev_fd < 0)
			return -errno;
		t->stats.ops++;
		return bpf_map_update_batch(w->maglev_fd, keys, w->maglev, &count, NULL);
	}
	/* A new table, filled before the Service can reach it. */
	w->maglev_fd = bpf_map_create(BPF_MAP_TYPE_ARRAY, "lb_maglev_tab", sizeof(uint32_t),
				      sizeof(uint32_t), LB_MAGLEV_SIZE, NULL);
	if (w->maglev_fd < 0)
		return w->maglev_fd;
	t->stats.ops++;
	r = bpf_map_update_batch(w->maglev_fd, keys, w->maglev, &count, NULL);
	if (r < 0)
		return r;
	return map_put(t, t->m.maglev, &w->id, &w->maglev_fd);
}

/* The first half of an update: everything that adds or changes. */
static int apply_adds(struct svc_table *t, const struct svc *cur, struct svc *w)
{
	uint8_t okey[1 + FE_KEY_MAX];
	int r;

	for (size_t i = 0; i < w->n_bes; i++) {
		const struct be *b = &w->bes[i], *old = be_find(cur, &b->addr, b->port);
		struct lb_backend v = {.port = htons(b->port), .flags = b->flags, .svc_id = w->id};

		if (old && old->id == b->id && old->flags == b->flags)
			continue;
		v.family = b->addr.family == AF_INET ? LB_FAMILY_V4 : LB_FAMILY_V6;
		memcpy(v.addr, b->addr.bytes, ipaddr_len(&b->addr));
		if ((r = map_put(t, t->m.backends, &b->id, &v)) < 0)
			return r;
	}
	for (size_t i = 0; i < w->n_slots; i++) {
		struct lb_slot_key k = {.svc_id = w->id, .slot = (uint32_t)i};

		if (cur && i < cur->n_slots && cur->slots[i] == w->slots[i])
			continue;
		if ((r = map_put(t, t->m.slots, &k, &w->slots[i])) < 0)
			return r;
	}
	if (w->maglev && (r = write_maglev(t, cur, w)) < 0)
		return r;
	for (size_t i = 0; i < w->n_rngs; i++) {
		uint32_t one = 1;

		if (!rng_has(cur, &w->rngs[i]) &&
		    (r = map_put(t, rng_fd(t, w->family), w->rngs[i].key, &one)) < 0)
			return r;
	}
	if (!cur || memcmp(&cur->val, &w->val, sizeof(w->val)) != 0) {
		if ((r = map_put(t, t->m.svc, &w->id, &w->val)) < 0)
			return r;
	}
	/* Last, what makes the Service reachable. */
	for (size_t i = 0; i < w->n_fes; i++) {
		const struct fe *f = &w->fes[i], *old = fe_find(cur, f);
		size_t klen = owner_key(f, okey);
		void *owner = hashmap_get(t->fe_owner, okey, klen);

		if (!(old && owner == cur && memcmp(&old->val, &f->val, sizeof(f->val)) == 0) &&
		    (r = map_put(t, fe_fd(t, f->family), f->key, &f->val)) < 0)
			return r;
		if (hashmap_put(t->fe_owner, okey, klen, w, NULL) < 0)
			return -ENOMEM;
		if ((r = vip_ref(t, f, 1)) < 0)
			return r;
	}
	return 0;
}

/* The second half: what cur had and w (NULL: nothing) no longer has. */
static int apply_removals(struct svc_table *t, struct svc *cur, const struct svc *w)
{
	uint8_t okey[1 + FE_KEY_MAX];
	int r;

	for (size_t i = 0; i < cur->n_fes; i++) {
		const struct fe *f = &cur->fes[i];
		size_t klen = owner_key(f, okey);

		if ((r = vip_ref(t, f, -1)) < 0)
			return r;
		/* Still ours (not taken over by w or another Service). */
		if (hashmap_get(t->fe_owner, okey, klen) != cur)
			continue;
		if ((r = map_del(t, fe_fd(t, f->family), f->key)) < 0)
			return r;
		hashmap_remove(t->fe_owner, okey, klen);
	}
	if (!w && (r = map_del(t, t->m.svc, &cur->id)) < 0)
		return r;
	for (size_t i = w ? w->n_slots : 0; i < cur->n_slots; i++) {
		struct lb_slot_key k = {.svc_id = cur->id, .slot = (uint32_t)i};

		if ((r = map_del(t, t->m.slots, &k)) < 0)
			return r;
	}
	if (cur->maglev_fd >= 0 && !(w && w->maglev_fd >= 0) &&
	    (r = map_del(t, t->m.maglev, &cur->id)) < 0)
		return r;
	for (size_t i = 0; i < cur->n_rngs; i++) {
		if (!rng_has(w, &cur->rngs[i]) &&
		    (r = map_del(t, rng_fd(t, cur->family), cur->rngs[i].key)) < 0)
			return r;
	}
	/* Backends go last: nothing refers to them any more. */
	for (size_t i = 0; i < cur->n_bes; i++) {
		uint32_t id = cur->bes[i].id;

		if (be_has_id(w, id))
			continue;
		if ((r = map_del(t, t->m.backends, &id)) < 0)
			return r;
		hashmap_remove(t->be_used, &id, sizeof(id));
		t->stats.backends_removed++;
	}
	return 0;
}

static size_t svc_entries(const struct svc *s)
{
	return s ? s->n_fes + s->n_bes + s->n_slots : 0;
}

static int pending_add(struct svc_table *t, struct svc *cur, struct svc *want)
{
	struct pending *p = PUSH(t->pend, t->n_pend);

	if (!p)
		return -ENOMEM;
	p->cur = cur;
	p->want = want;
	return 0;
}

void svc_table_begin(struct svc_table *t, bool full)
{
	struct hashmap_iter it = {0};
	void *v;

	t->full = full;
	t->stats.ops = 0;
	t->stats.backends_removed = 0;
	while (full && hashmap_next(t->by_id, &it, NULL, NULL, &v))
		((struct svc *)v)->seen = false;
}

/* An adopted Service serving one of w's frontends, with w's family and
 * protocol. */
static struct svc *claim_adopted(struct svc_table *t, const struct svc_port *sp)
{
	struct svc tmp = {.family = sp->family, .maglev_fd = -1};
	struct svc *found = NULL;
	uint8_t okey[1 + FE_KEY_MAX];

	if (sp->has_cluster_ip)
		add_fe(&tmp, &sp->cluster_ip, sp->port, 0, 0, sp->protocol);
	for (size_t i = 0; i < sp->n_external_ips; i++)
		add_fe(&tmp, &sp->external_ips[i], sp->port, 0, 0, sp->protocol);
	for (size_t i = 0; i < sp->n_lb_ips; i++)
		add_fe(&tmp, &sp->lb_ips[i], sp->port, 0, 0, sp->protocol);
	if (sp->node_port)
		add_fe(&tmp, NULL, sp->node_port, 0, 0, sp->protocol);
	for (size_t i = 0; i < tmp.n_fes && !found; i++) {
		struct svc *s = hashmap_get(t->fe_owner, okey, owner_key(&tmp.fes[i], okey));

		if (s && !s->key && s->val.proto == sp->protocol &&
		    s->val.family == (sp->family == AF_INET ? LB_FAMILY_V4 : LB_FAMILY_V6))
			found = s;
	}
	free(tmp.fes);
	return found;
}

int svc_table_update(struct svc_table *t, const char *key, const struct svc_port *sp)
{
	struct svc *cur = hashmap_get_str(t->by_key, key), *w = NULL;
	int r;

	if (!cur && sp && (cur = claim_adopted(t, sp))) {
		if (!(cur->key = strdup(key)) || hashmap_put_str(t->by_key, key, cur, NULL) < 0)
			return -ENOMEM;
	}
	if (!sp) {
		if (!cur)
			return 0;
		hashmap_remove_str(t->by_key, key);
		hashmap_remove(t->by_id, &cur->id, sizeof(cur->id));
		return pending_add(t, cur, NULL);
	}
	if ((r = build_want(t, key, sp, cur, &w)) < 0)
		return r;
	w->seen = true;
	if ((r = pending_add(t, cur, w)) < 0) {
		svc_free(w);
		return r;
	}
	/* From here on w is the table's, even if writing it fails. */
	if (hashmap_put_str(t->by_key, key, w, NULL) < 0 ||
	    hashmap_put(t->by_id, &w->id, sizeof(w->id), w, NULL) < 0)
		return -ENOMEM;
	return apply_adds(t, cur, w);
}

int svc_table_finish(struct svc_table *t)
{
	struct hashmap_iter it = {0};
	int r = 0;
	void *v;

	if (t->full) {
		/* Whatever this full sync did not name goes. */
		struct svc **gone = NULL;
		size_t n = 0;

		while (hashmap_next(t->by_id, &it, NULL, NULL, &v)) {
			if (((struct svc *)v)->seen)
				continue;
			if (!PUSH(gone, n)) {
				free(gone);
				return -ENOMEM;
			}
			gone[n - 1] = v;
		}
		for (size_t i = 0; i < n && r == 0; i++) {
			if (gone[i]->key)
				hashmap_remove_str(t->by_key, gone[i]->key);
			hashmap_remove(t->by_id, &gone[i]->id, sizeof(gone[i]->id));
			r = pending_add(t, gone[i], NULL);
			if (r < 0)
				svc_free(gone[i]);
		}
		free(gone);
		if (r < 0)
			return r;
	}
	for (size_t i = 0; i < t->n_pend; i++) {
		struct pending *p = &t->pend[i];

		if (p->cur && r == 0)
			r = apply_removals(t, p->cur, p->want);
		if (r == 0) {
			t->stats.entries += svc_entries(p->want);
			t->stats.entries -= svc_entries(p->cur);
		}
		svc_free(p->cur);
		p->cur = NULL;
	}
	t->n_pend = 0;
	return r;
}

void svc_table_get_stats(const struct svc_table *t, struct svc_table_stats *ret)
{
	*ret = t->stats;
}

/* --- adoption ------------------------------------------------------------ */

static void free_svc_value(void *v)
{
	svc_free(v);
}

static void reset(struct svc_table *t)
{
	for (size_t i = 0; i < t->n_pend; i++)
		svc_free(t->pend[i].cur);
	t->n_pend = 0;
	hashmap_clear(t->by_key, NULL);
	hashmap_clear(t->fe_owner, NULL);
	hashmap_clear(t->be_used, NULL);
	hashmap_clear(t->vips, NULL);
	hashmap_clear(t->by_id, free_svc_value);
	t->next_svc = t->next_be = 1;
	t->stats.entries = 0;
}

/* Calls fn on each key (and value, when vsize) of a map; deleting from the
 * map inside fn is not allowed (collect instead). */
static int map_each(int fd, size_t ksize, size_t vsize,
		    int (*fn)(struct svc_table *t, const void *key, const void *val),
		    struct svc_table *t)
{
	uint8_t key[64], next[64], val[64];
	void *prev = NULL;
	int r;

	while (bpf_map_get_next_key(fd, prev, next) == 0) {
		memcpy(key, next, ksize);
		prev = key;
		if (vsize && bpf_map_lookup_elem(fd, key, val) < 0)
			continue;
		if ((r = fn(t, key, vsize ? val : NULL)) < 0)
			return r;
	}
	return 0;
}

/* Keys found in the maps that nothing can reach, removed after the walk. */
static struct {
	int fd;
	uint8_t key[24];
} * strays;
static size_t n_strays;

static int stray(int fd, const void *key, size_t len)
{
	void *g = grow(strays, n_strays, sizeof(*strays));

	if (!g)
		return -ENOMEM;
	strays = g;
	strays[n_strays].fd = fd;
	memcpy(strays[n_strays++].key, key, len);
	return 0;
}

static struct svc *by_id(struct svc_table *t, uint32_t id)
{
	return hashmap_get(t->by_id, &id, sizeof(id));
}

static int adopt_svc(struct svc_table *t, const void *key, const void *val)
{
	struct svc *s = svc_alloc();
	uint32_t id;

	if (!s)
		return -ENOMEM;
	memcpy(&id, key, sizeof(id));
	s->id = id;
	memcpy(&s->val, val, sizeof(s->val));
	s->family = s->val.family == LB_FAMILY_V4 ? AF_INET : AF_INET6;
	if (hashmap_put(t->by_id, &id, sizeof(id), s, NULL) < 0) {
		svc_free(s);
		return -ENOMEM;
	}
	if (id >= t->next_svc)
		t->next_svc = id + 1;
	return 0;
}

static int adopt_backend(struct svc_table *t, const void *key, const void *val)
{
	const struct lb_backend *v = val;
	struct svc *s = by_id(t, v->svc_id);
	struct be *b;
	uint32_t id;

	memcpy(&id, key, sizeof(id));
	if (!s)
		return stray(t->m.backends, key, sizeof(id));
	if (!(b = PUSH(s->bes, s->n_bes)))
		return -ENOMEM;
	b->id = id;
	b->port = ntohs(v->port);
	b->flags = v->flags;
	b->addr.family = v->family == LB_FAMILY_V4 ? AF_INET : AF_INET6;
	memcpy(b->addr.bytes, v->addr, ipaddr_len(&b->addr));
	if (id >= t->next_be)
		t->next_be = id + 1;
	return hashmap_put(t->be_used, &id, sizeof(id), s, NULL) < 0 ? -ENOMEM : 0;
}

static int adopt_slot(struct svc_table *t, const void *key, const void *val)
{
	const struct lb_slot_key *k = key;
	struct svc *s = by_id(t, k->svc_id);

	if (!s || k->slot >= LB_MAX_SLOTS)
		return stray(t->m.slots, key, sizeof(*k));
	if (k->slot >= s->n_slots) {
		uint32_t *v = realloc(s->slots, (k->slot + 1) * sizeof(*v));

		if (!v)
			return -ENOMEM;
		memset(v + s->n_slots, 0, (k->slot + 1 - s->n_slots) * sizeof(*v));
		s->slots = v;
		s->n_slots = k->slot + 1;
	}
	memcpy(&s->slots[k->slot], val, sizeof(uint32_t));
	return 0;
}

static int adopt_fe(struct svc_table *t, const void *key, const void *val, uint8_t family,
		    size_t klen)
{
	const struct lb_frontend *v = val;
	struct svc *s = by_id(t, v->svc_id);
	uint8_t okey[1 + FE_KEY_MAX];
	struct fe *f;

	if (!s)
		return stray(fe_fd(t, family), key, klen);
	if (!(f = PUSH(s->fes, s->n_fes)))
		return -ENOMEM;
	f->family = family;
	f->klen = (uint8_t)klen;
	memcpy(f->key, key, klen);
	f->val = *v;
	if (hashmap_put(t->fe_owner, okey, owner_key(f, okey), s, NULL) < 0)
		return -ENOMEM;
	return vip_ref(t, f, 1);
}

static int adopt_fe4(struct svc_table *t, const void *key, const void *val)
{
	return adopt_fe(t, key, val, AF_INET, sizeof(struct lb4_frontend_key));
}

static int adopt_fe6(struct svc_table *t, const void *key, const void *val)
{
	return adopt_fe(t, key, val, AF_INET6, sizeof(struct lb6_frontend_key));
}

static int adopt_rng(struct svc_table *t, const void *key, uint8_t family, size_t klen)
{
	uint32_t id;
	struct svc *s;
	struct rng *g;

	memcpy(&id, (const uint8_t *)key + 4, sizeof(id));
	s = by_id(t, id);
	if (!s)
		return stray(rng_fd(t, family), key, klen);
	if (!(g = PUSH(s->rngs, s->n_rngs)))
		return -ENOMEM;
	g->family = family;
	g->klen = (uint8_t)klen;
	memcpy(g->key, key, klen);
	return 0;
}

static int adopt_rng4(struct svc_table *t, const void *key, const void *val)
{
	(void)val;
	return adopt_rng(t, key, AF_INET, sizeof(struct lb4_range_key));
}

static int adopt_rng6(struct svc_table *t, const void *key, const void *val)
{
	(void)val;
	return adopt_rng(t, key, AF_INET6, sizeof(struct lb6_range_key));
}

static int adopt_maglev(struct svc_table *t, const void *key, const void *val)
{
	uint32_t id, inner;
	struct svc *s;

	memcpy(&id, key, sizeof(id));
	memcpy(&inner, val, sizeof(inner));
	s = by_id(t, id);
	if (!s)
		return stray(t->m.maglev, key, sizeof(id));
	/* A lookup from user space gives the inner map's id. */
	s->maglev_fd = bpf_map_get_fd_by_id(inner);
	return 0;
}

int svc_table_adopt(struct svc_table *t)
{
	int r;

	reset(t);
	n_strays = 0;
	if ((r = map_each(t->m.svc, sizeof(uint32_t), sizeof(struct lb_service), adopt_svc, t)) <
		    0 ||
	    (r = map_each(t->m.backends, sizeof(uint32_t), sizeof(struct lb_backend), adopt_backend,
			  t)) < 0 ||
	    (r = map_each(t->m.slots, sizeof(struct lb_slot_key), sizeof(uint32_t), adopt_slot,
			  t)) < 0 ||
	    (r = map_each(t->m.fe4, sizeof(struct lb4_frontend_key), sizeof(struct lb_frontend),
			  adopt_fe4, t)) < 0 ||
	    (r = map_each(t->m.fe6, sizeof(struct lb6_frontend_key), sizeof(struct lb_frontend),
			  adopt_fe6, t)) < 0 ||
	    (r = map_each(t->m.maglev, sizeof(uint32_t), sizeof(uint32_t), adopt_maglev, t)) < 0 ||
	    (r = map_each(t->m.ranges4, sizeof(struct lb4_range_key), 0, adopt_rng4, t)) < 0 ||
	    (r = map_each(t->m.ranges6, sizeof(struct lb6_range_key), 0, adopt_rng6, t)) < 0)
		goto out;
	{
		struct hashmap_iter it = {0};
		void *v;

		while (hashmap_next(t->by_id, &it, NULL, NULL, &v)) {
			struct svc *s = v;

			if (s->n_bes)
				qsort(s->bes, s->n_bes, sizeof(*s->bes), be_cmp);
			t->stats.entries += svc_entries(s);
		}
	}
	for (size_t i = 0; i < n_strays; i++)
		bpf_map_delete_elem(strays[i].fd, strays[i].key);
	r = (int)hashmap_size(t->by_id);
out:
	free(strays);
	strays = NULL;
	n_strays = 0;
	return r;
}

/* --- lifecycle ----------------------------------------------------------- */

void svc_table_free(struct svc_table *t)
{
	if (!t)
		return;
	if (t->by_id)
		reset(t);
	hashmap_free(t->by_key, NULL);
	hashmap_free(t->by_id, NULL);
	hashmap_free(t->fe_owner, NULL);
	hashmap_free(t->be_used, NULL);
	hashmap_free(t->vips, NULL);
	free(t->pend);
	free(t);
}

int svc_table_new(const struct svc_maps *maps, const struct svc_masq *masq, struct svc_table **ret)
{
	struct svc_table *t = calloc(1, sizeof(*t));

	if (!t)
		return -ENOMEM;
	t->m = *maps;
	t->masq = *masq;
	t->next_svc = t->next_be = 1;
	t->by_key = hashmap_new();
	t->by_id = hashmap_new();
	t->fe_owner = hashmap_new();
	t->be_used = hashmap_new();
	t->vips = hashmap_new();
	if (!t->by_key || !t->by_id || !t->fe_owner || !t->be_used || !t->vips) {
		svc_table_free(t);
		return -ENOMEM;
	}
	*ret = t;
	return 0;
}
