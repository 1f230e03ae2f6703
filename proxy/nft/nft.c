/* The nftables dataplane: turns the tracker's changes into one netlink
 * transaction per sync.
 *
 * Each changed Service is rendered twice (render.c), as the kernel has it and
 * as it must be, and only the difference is sent; a full sync rebuilds the
 * tables in the same transaction that removes the old ones, so packets never
 * see a moment without rules.  Around the elements, the transaction creates
 * what they will point at (load-balancing chains, affinity chains and their
 * client sets) and afterwards removes what nothing points at any more.
 *
 * Kept between syncs, per Service port: the load-balancing chain sizes and
 * the affinity chains (struct port_state); shared elements (hairpin and
 * ClusterIP entries) and load-balancing chains are reference counted. */
#include <netinet/in.h>
#include <errno.h>
#include <libmnl/libmnl.h>
#include <libnftnl/common.h>
#include <libnftnl/rule.h>
#include <linux/netfilter.h>
#include <sys/socket.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dataplane.h"
#include "nft/batch.h"
#include "nft/conntrack.h"
#include "nft/render.h"
#include "nft/ruleset.h"
#include "util/hashmap.h"
#include "util/log.h"

#define NFAM 2

struct nft_fam {
	uint8_t nfproto; /* NFPROTO_IPV4 or NFPROTO_IPV6 */
	bool enabled;
};

struct dataplane {
	struct dataplane_config cfg;
	struct cidr *cidrs;
	struct render_config rcfg;
	struct nft_conn *conn;
	struct nft_fam fam[NFAM];
	struct hashmap *chains; /* fam . kind . size -> reference count */
	struct hashmap *shared; /* fam . set . key -> reference count */
	struct hashmap *ports;	/* service port key -> struct port_state */
	uint32_t next_aff_id;
	struct cidr *service_cidrs;
	size_t n_service_cidrs;
	struct cidr *nodeport_addrs; /* --nodeport-addresses, or the node's addresses */
	size_t n_nodeport_addrs;
	struct cidr *pod_sources; /* --cluster-cidr, or the node's pod CIDRs */
	size_t n_pod_sources;
	char *pod_iface;
	bool need_full;
	/* Rules per fixed chain after the last full build, to notice someone
	 * else flushing or deleting them. */
	struct hashmap *reference;
	struct dataplane_stats stats;
};

/* A change to one port's affinity chain for one kind of traffic. */
struct aff_op {
	uint8_t nfproto;
	struct affinity_spec old, new; /* the eps arrays are owned here */
};

struct aff_ops {
	struct aff_op *v;
	size_t n, cap;
};

/* --- per-port state --- */

static void sp_key(const struct svc_port *sp, char *buf, size_t len)
{
	snprintf(buf, len, "%s/%s:%s:%u:%u", sp->ns, sp->name, sp->port_name, sp->protocol,
		 sp->family);
}

static void spec_clear(struct affinity_spec *s)
{
	free(s->eps);
	memset(s, 0, sizeof(*s));
}

static void port_state_free(void *p)
{
	struct port_state *st = p;

	if (!st)
		return;
	spec_clear(&st->aff[0]);
	spec_clear(&st->aff[1]);
	free(st);
}

static int spec_copy(struct affinity_spec *dst, uint32_t id, uint32_t timeout,
		     const struct endpoint *eps, size_t n)
{
	dst->id = id;
	dst->timeout = timeout;
	dst->n = n;
	dst->eps = NULL;
	if (!n)
		return 0;
	dst->eps = malloc(n * sizeof(*eps));
	if (!dst->eps)
		return -ENOMEM;
	memcpy(dst->eps, eps, n * sizeof(*eps));
	return 0;
}

/* The state sp must have, derived from its previous state (prev, may be
 * NULL).  The result owns its arrays. */
static int next_state(struct dataplane *dp, const struct svc_port *sp,
		      const struct port_state *prev, struct port_state *ret)
{
	const struct endpoint *eps[2];
	size_t n[2];
	bool sep = render_separate_ext(sp);

	memset(ret, 0, sizeof(*ret));
	eps[0] = svc_port_internal_eps(sp, &n[0]);
	eps[1] = svc_port_external_eps(sp, &n[1]);
	ret->size[0] = render_lb_size(prev ? prev->size[0] : 0, n[0]);
	ret->size[1] = sep ? render_lb_size(prev ? prev->size[1] : 0, n[1]) : ret->size[0];
	for (int k = 0; k < (sep ? 2 : 1); k++) {
		const struct affinity_spec *p = prev ? &prev->aff[k] : NULL;
		uint32_t id;

		if (!sp->affinity || !n[k])
			continue;
		/* A chain keeps its id (and so its clients) while the timeout
		 * stays; the timeout belongs to the sets, which cannot change it. */
		if (p && p->id && p->timeout == sp->affinity_timeout)
			id = p->id;
		else
			id = ++dp->next_aff_id;
		if (spec_copy(&ret->aff[k], id, sp->affinity_timeout, eps[k], n[k]) < 0) {
			spec_clear(&ret->aff[0]);
			return -ENOMEM;
		}
	}
	return 0;
}

static struct port_state *port_state_get(struct dataplane *dp, const struct svc_port *sp)
{
	char key[SVC_PORT_NAME_MAX + 32];

	sp_key(sp, key, sizeof(key));
	return hashmap_get_str(dp->ports, key);
}

/* Makes st (taking its arrays) the recorded state of sp; NULL forgets sp. */
static int port_state_set(struct dataplane *dp, const struct svc_port *sp,
			  const struct port_state *st)
{
	char key[SVC_PORT_NAME_MAX + 32];
	struct port_state *copy = NULL;
	void *old = NULL;

	sp_key(sp, key, sizeof(key));
	if (!st) {
		port_state_free(hashmap_remove_str(dp->ports, key));
		return 0;
	}
	copy = malloc(sizeof(*copy));
	if (!copy)
		return -ENOMEM;
	*copy = *st;
	if (hashmap_put_str(dp->ports, key, copy, &old) < 0) {
		free(copy);
		return -ENOMEM;
	}
	port_state_free(old);
	return 0;
}

static int aff_push(struct aff_ops *ops, uint8_t nfproto, const struct affinity_spec *old,
		    const struct affinity_spec *new)
{
	struct aff_op *op;

	if ((!old || !old->id) && (!new || !new->id))
		return 0;
	if (old && new && old->id == new->id && old->n == new->n &&
	    (!old->n || !memcmp(old->eps, new->eps, old->n * sizeof(*old->eps))))
		return 0;
	if (ops->n == ops->cap) {
		size_t cap = ops->cap ? ops->cap * 2 : 16;
		struct aff_op *v = realloc(ops->v, cap * sizeof(*v));

		if (!v)
			return -ENOMEM;
		ops->v = v;
		ops->cap = cap;
	}
	op = &ops->v[ops->n];
	memset(op, 0, sizeof(*op));
	op->nfproto = nfproto;
	if ((old && old->id && spec_copy(&op->old, old->id, old->timeout, old->eps, old->n) < 0) ||
	    (new &&new->id &&spec_copy(&op->new, new->id, new->timeout, new->eps, new->n) < 0)) {
		spec_clear(&op->old);
		spec_clear(&op->new);
		return -ENOMEM;
	}
	ops->n++;
	return 0;
}

static void aff_ops_free(struct aff_ops *ops)
{
	for (size_t i = 0; i < ops->n; i++) {
		spec_clear(&ops->v[i].old);
		spec_clear(&ops->v[i].new);
	}
	free(ops->v);
}

/* --- diffing --- */

static bool is_shared(const struct elem *e)
{
	return e->set == SET_HAIRPIN || e->set == SET_CLUSTER_IPS;
}

static int shared_adjust(struct dataplane *dp, const struct elem *e, int delta, bool *ret_edge)
{
	uint8_t key[2 + ELEM_KEY_MAX];
	size_t klen = 2 + e->key_len;
	uintptr_t count;
	void *old;

	key[0] = e->fam;
	key[1] = e->set;
	memcpy(key + 2, e->key, e->key_len);
	count = (uintptr_t)hashmap_get(dp->shared, key, klen);
	if (delta > 0) {
		*ret_edge = count == 0;
		if (hashmap_put(dp->shared, key, klen, (void *)(count + 1), &old) < 0)
			return -ENOMEM;
	} else {
		*ret_edge = count == 1;
		if (count <= 1)
			hashmap_remove(dp->shared, key, klen);
		else
			hashmap_put(dp->shared, key, klen, (void *)(count - 1), &old);
	}
	return 0;
}

/* Compares the renderings of one Service before and after and appends the
 * element operations to dels and adds. */
static int diff(struct dataplane *dp, struct elems *old, struct elems *new, struct elems *dels,
		struct elems *adds)
{
	size_t i = 0, j = 0;
	bool edge;
	int r = 0;

	elems_sort(old);
	elems_sort(new);
	while (r == 0 && (i < old->n || j < new->n)) {
		int c = i == old->n ? 1 : j == new->n ? -1 : elem_key_cmp(&old->v[i], &new->v[j]);

		if (c < 0) {
			if (is_shared(&old->v[i])) {
				r = shared_adjust(dp, &old->v[i], -1, &edge);
				if (r == 0 && edge)
					r = elems_push(dels, &old->v[i]);
			} else {
				r = elems_push(dels, &old->v[i]);
			}
			i++;
		} else if (c > 0) {
			if (is_shared(&new->v[j])) {
				r = shared_adjust(dp, &new->v[j], 1, &edge);
				if (r == 0 && edge)
					r = elems_push(adds, &new->v[j]);
			} else {
				r = elems_push(adds, &new->v[j]);
			}
			j++;
		} else {
			if (!elem_data_equal(&old->v[i], &new->v[j])) {
				r = elems_push(dels, &old->v[i]);
				if (r == 0)
					r = elems_push(adds, &new->v[j]);
			}
			i++;
			j++;
		}
	}
	return r;
}

/* --- load-balancing chains --- */

static bool is_lb_ref(const struct elem *e)
{
	return nft_sets[e->set].data == DATA_VERDICT && e->verdict == NFT_GOTO &&
	       e->lb_kind < LB_KINDS;
}

struct chain_change {
	uint8_t fam, kind;
	uint32_t size;
	long before, after;
};

/* Applies the reference changes of dels and adds to dp->chains and lists
 * the chains that come into use or fall out of use. */
static int chain_refs(struct dataplane *dp, const struct elems *dels, const struct elems *adds,
		      struct chain_change **ret, size_t *ret_n)
{
	struct hashmap *touched = hashmap_new();
	struct chain_change *v = NULL;
	size_t n = 0, cap = 0;
	int r = 0;

	if (!touched)
		return -ENOMEM;
	for (int pass = 0; pass < 2 && r == 0; pass++) {
		const struct elems *list = pass == 0 ? dels : adds;

		for (size_t i = 0; i < list->n && r == 0; i++) {
			const struct elem *e = &list->v[i];
			uint8_t key[8];
			uintptr_t count, idx;
			void *old;

			if (!is_lb_ref(e))
				continue;
			key[0] = e->fam;
			key[1] = e->lb_kind;
			memcpy(key + 2, &e->chain_n, 4);
			count = (uintptr_t)hashmap_get(dp->chains, key, 6);
			idx = (uintptr_t)hashmap_get(touched, key, 6);
			if (!idx) {
				if (n == cap) {
					struct chain_change *nv;

					cap = cap ? cap * 2 : 16;
					nv = realloc(v, cap * sizeof(*v));
					if (!nv) {
						r = -ENOMEM;
						break;
					}
					v = nv;
				}
				v[n] = (struct chain_change){e->fam, e->lb_kind, e->chain_n,
							     (long)count, (long)count};
				idx = ++n;
				if (hashmap_put(touched, key, 6, (void *)idx, NULL) < 0) {
					r = -ENOMEM;
					break;
				}
			}
			count = pass == 0 ? count - 1 : count + 1;
			v[idx - 1].after = (long)count;
			if (count)
				r = hashmap_put(dp->chains, key, 6, (void *)count, &old) < 0
					    ? -ENOMEM
					    : 0;
			else
				hashmap_remove(dp->chains, key, 6);
		}
	}
	hashmap_free(touched, NULL);
	if (r < 0) {
		free(v);
		return r;
	}
	*ret = v;
	*ret_n = n;
	return 0;
}

/* --- emitting --- */

static const char *verdict_chain(const struct elem *e, char *buf)
{
	if (e->verdict != NFT_GOTO)
		return NULL;
	if (e->lb_kind == LB_REJECT)
		return NFT_NO_ENDPOINTS;
	if (e->lb_kind == LB_AFFINITY)
		return nft_affinity_chain_name(e->chain_n, buf);
	return nft_lb_chain_name((enum nft_lb_kind)e->lb_kind, e->chain_n, buf);
}

static int emit_elems(struct dataplane *dp, struct nft_batch *b, struct elems *list, bool add)
{
	int cur_fam = -1, cur_set = -1;
	int r = 0;

	elems_sort(list);
	for (size_t i = 0; i < list->n && r == 0; i++) {
		const struct elem *e = &list->v[i];

		if (e->fam != cur_fam || e->set != cur_set) {
			cur_fam = e->fam;
			cur_set = e->set;
			r = nft_batch_elems(b, add ? NFT_MSG_NEWSETELEM : NFT_MSG_DELSETELEM,
					    dp->fam[cur_fam].nfproto, NFT_TABLE_NAME,
					    nft_sets[cur_set].name);
			if (r < 0)
				break;
		}
		if (nft_sets[e->set].data == DATA_VERDICT) {
			char chain[24];

			r = nft_batch_elem_verdict(b, e->key, e->key_len, e->verdict,
						   verdict_chain(e, chain));
		} else if (e->end_off) {
			r = nft_batch_elem_range(b, e->key, e->end_off, e->key + e->end_off,
						 (size_t)(e->key_len - e->end_off));
		} else {
			r = nft_batch_elem(b, e->key, e->key_len, e->data_len ? e->data : NULL,
					   e->data_len);
		}
	}
	nft_batch_elems_done(b);
	return r;
}

static bool spec_has(const struct affinity_spec *s, const struct endpoint *ep)
{
	for (size_t i = 0; i < s->n; i++) {
		if (s->eps[i].port == ep->port && ipaddr_equal(&s->eps[i].addr, &ep->addr))
			return true;
	}
	return false;
}

static int emit_affinity_chain(struct nft_batch *b, uint8_t nfproto, const struct affinity_spec *s,
			       bool exists)
{
	struct ipaddr addrs[s->n ? s->n : 1];
	uint16_t ports[s->n ? s->n : 1];
	struct nft_affinity aff = {s->id, nfproto, s->timeout, addrs, ports, s->n};

	for (size_t i = 0; i < s->n; i++) {
		addrs[i] = s->eps[i].addr;
		ports[i] = s->eps[i].port;
	}
	return nft_ruleset_affinity_chain(b, &aff, true, exists);
}

/* Before the elements: client sets and chains the new verdicts point at. */
static int emit_affinity_before(struct nft_batch *b, const struct aff_ops *ops)
{
	int r = 0;

	for (size_t i = 0; i < ops->n && r == 0; i++) {
		const struct aff_op *op = &ops->v[i];
		bool same = op->old.id && op->old.id == op->new.id;

		if (!op->new.id)
			continue;
		for (size_t k = 0; k < op->new.n &&r == 0; k++) {
			if (same && spec_has(&op->old, &op->new.eps[k]))
				continue;
			r = nft_ruleset_affinity_set(
				b, op->nfproto, op->new.id,
				nft_affinity_endpoint_id(&op->new.eps[k].addr, op->new.eps[k].port),
				op->new.timeout, true);
		}
		if (r == 0)
			r = emit_affinity_chain(b, op->nfproto, &op->new, same);
	}
	return r;
}

/* After the elements: what nothing points at any more. */
static int emit_affinity_after(struct nft_batch *b, const struct aff_ops *ops)
{
	int r = 0;

	for (size_t i = 0; i < ops->n && r == 0; i++) {
		const struct aff_op *op = &ops->v[i];
		bool same = op->old.id && op->old.id == op->new.id;
		struct nft_affinity aff = {op->old.id, op->nfproto, 0, NULL, NULL, 0};

		if (!op->old.id)
			continue;
		if (!same)
			r = nft_ruleset_affinity_chain(b, &aff, false, true);
		for (size_t k = 0; k < op->old.n && r == 0; k++) {
			if (same && spec_has(&op->new, &op->old.eps[k]))
				continue;
			r = nft_ruleset_affinity_set(
				b, op->nfproto, op->old.id,
				nft_affinity_endpoint_id(&op->old.eps[k].addr, op->old.eps[k].port),
				0, false);
		}
	}
	return r;
}

/* Writes prefixes into an interval set, replacing its elements when flush:
 * each prefix is a start element and an end element one past its last
 * address (none when that wraps around). */
static int emit_prefixes(struct dataplane *dp, struct nft_batch *b, enum nft_set set,
			 const struct cidr *cidrs, size_t n, bool flush)
{
	int r = 0;

	for (int f = 0; f < NFAM && r == 0; f++) {
		uint8_t af = f == 0 ? AF_INET : AF_INET6;
		size_t alen = f == 0 ? 4 : 16;

		if (!dp->fam[f].enabled)
			continue;
		if (flush && (r = nft_batch_flush_set(b, dp->fam[f].nfproto, NFT_TABLE_NAME,
						      nft_sets[set].name)) < 0)
			break;
		r = nft_batch_elems(b, NFT_MSG_NEWSETELEM, dp->fam[f].nfproto, NFT_TABLE_NAME,
				    nft_sets[set].name);
		for (size_t i = 0; i < n && r == 0; i++) {
			const struct cidr *c = &cidrs[i];
			uint8_t end[16];
			bool overflow = true;

			if (c->addr.family != af)
				continue;
			memcpy(end, c->addr.bytes, alen);
			for (size_t bit = c->prefix_len; bit < alen * 8; bit++)
				end[bit / 8] |= (uint8_t)(0x80u >> (bit % 8));
			for (size_t k = alen; k-- > 0;) {
				if (++end[k] != 0) {
					overflow = false;
					break;
				}
			}
			r = nft_batch_elem(b, c->addr.bytes, alen, NULL, 0);
			if (r == 0 && !overflow)
				r = nft_batch_elem_flags(b, end, alen, NFT_SET_ELEM_INTERVAL_END);
		}
		nft_batch_elems_done(b);
	}
	return r;
}

/* Replaces the elements of one prefix set outside a sync. */
static int replace_prefixes(struct dataplane *dp, enum nft_set set, const struct cidr *cidrs,
			    size_t n, char *err, size_t errlen)
{
	struct nft_batch *b;
	int r;

	if (dp->need_full)
		return 0; /* the coming full sync writes them */
	b = nft_batch_new(dp->conn);
	if (!b)
		return -ENOMEM;
	r = emit_prefixes(dp, b, set, cidrs, n, true);
	if (r == 0)
		r = nft_batch_commit(b, err, errlen);
	else
		snprintf(err, errlen, "building the transaction: %s", strerror(-r));
	nft_batch_free(b);
	if (r < 0)
		dp->need_full = true;
	return r;
}

static int store_prefixes(struct cidr **dst, size_t *dst_n, const struct cidr *src, size_t n)
{
	struct cidr *copy = NULL;

	if (n) {
		copy = malloc(n * sizeof(*copy));
		if (!copy)
			return -ENOMEM;
		memcpy(copy, src, n * sizeof(*copy));
	}
	free(*dst);
	*dst = copy;
	*dst_n = n;
	return 0;
}

/* --- building a transaction --- */

static void reset_state(struct dataplane *dp)
{
	hashmap_clear(dp->chains, NULL);
	hashmap_clear(dp->shared, NULL);
	hashmap_clear(dp->ports, port_state_free);
	dp->next_aff_id = 0;
	dp->stats.elements = 0;
}

static const struct svc_port *find_port(const struct svc_ports *ports, const struct svc_port *sp)
{
	for (size_t i = 0; ports && i < ports->n; i++) {
		const struct svc_port *o = &ports->v[i];

		if (o->family == sp->family && o->protocol == sp->protocol &&
		    !strcmp(o->port_name, sp->port_name))
			return o;
	}
	return NULL;
}

/* Renders one Service's change into element operations and affinity ops,
 * and records its new per-port state. */
static int render_change(struct dataplane *dp, const struct svc_ports *o, const struct svc_ports *n,
			 struct elems *dels, struct elems *adds, struct aff_ops *ops)
{
	struct elems old = {0}, new = {0};
	int r = 0;

	for (size_t k = 0; o && k < o->n && r == 0; k++) {
		const struct port_state *st = port_state_get(dp, &o->v[k]);

		if (!st) {
			r = -ESTALE; /* the kernel state is not what we think: rebuild */
			break;
		}
		r = render_port(&dp->rcfg, &o->v[k], st, &old);
	}
	for (size_t k = 0; n && k < n->n && r == 0; k++) {
		const struct svc_port *prev_sp = find_port(o, &n->v[k]);
		const struct port_state *prev = prev_sp ? port_state_get(dp, prev_sp) : NULL;
		uint8_t nfproto = n->v[k].family == AF_INET ? NFPROTO_IPV4 : NFPROTO_IPV6;
		struct port_state st;

		if ((r = next_state(dp, &n->v[k], prev, &st)) < 0)
			break;
		r = render_port(&dp->rcfg, &n->v[k], &st, &new);
		for (int c = 0; c < 2 && r == 0; c++)
			r = aff_push(ops, nfproto, prev ? &prev->aff[c] : NULL, &st.aff[c]);
		if (r == 0)
			r = port_state_set(dp, &n->v[k], &st);
		if (r < 0) {
			spec_clear(&st.aff[0]);
			spec_clear(&st.aff[1]);
		}
	}
	for (size_t k = 0; o && k < o->n && r == 0; k++) {
		const struct port_state *st;
		uint8_t nfproto = o->v[k].family == AF_INET ? NFPROTO_IPV4 : NFPROTO_IPV6;

		if (find_port(n, &o->v[k]))
			continue;
		st = port_state_get(dp, &o->v[k]);
		for (int c = 0; c < 2 && r == 0 && st; c++)
			r = aff_push(ops, nfproto, &st->aff[c], NULL);
		if (r == 0)
			r = port_state_set(dp, &o->v[k], NULL);
	}
	if (r == 0)
		r = diff(dp, &old, &new, dels, adds);
	free(old.v);
	free(new.v);
	return r;
}

static int build(struct dataplane *dp, const struct tracker_changes *ch, bool full,
		 struct nft_batch *b, struct elems *dels, struct elems *adds)
{
	struct chain_change *cc = NULL;
	struct aff_ops ops = {0};
	size_t ncc = 0;
	int r = 0;

	if (full) {
		reset_state(dp);
		for (int f = 0; f < NFAM && r == 0; f++) {
			bool by_iface = dp->cfg.detect_local == DETECT_LOCAL_BRIDGE ||
					dp->cfg.detect_local == DETECT_LOCAL_IFACE_PREFIX;
			struct nft_ruleset_config rc = {
				dp->fam[f].nfproto, by_iface ? dp->cfg.pod_iface : NULL,
				dp->cfg.detect_local == DETECT_LOCAL_IFACE_PREFIX,
				1u << dp->cfg.masquerade_bit,
				dp->cfg.n_nodeport_cidrs > 0 || dp->cfg.nodeport_primary};

			if (dp->fam[f].enabled)
				r = nft_ruleset_build(b, &rc);
			else
				r = nft_ruleset_delete(b, dp->fam[f].nfproto);
		}
		if (r == 0)
			r = emit_prefixes(dp, b, SET_SERVICE_CIDRS, dp->service_cidrs,
					  dp->n_service_cidrs, false);
		if (r == 0)
			r = emit_prefixes(dp, b, SET_NODEPORT_ADDRS, dp->nodeport_addrs,
					  dp->n_nodeport_addrs, false);
		if (r == 0)
			r = emit_prefixes(dp, b, SET_POD_SOURCES, dp->pod_sources,
					  dp->n_pod_sources, false);
	}
	for (size_t i = 0; i < ch->n && r == 0; i++)
		r = render_change(dp, full ? NULL : ch->v[i].old, ch->v[i].new, dels, adds, &ops);
	if (r == 0)
		r = chain_refs(dp, dels, adds, &cc, &ncc);
	for (size_t i = 0; i < ncc && r == 0; i++) {
		if (cc[i].before == 0 && cc[i].after > 0)
			r = nft_ruleset_lb_chain(b, dp->fam[cc[i].fam].nfproto, cc[i].kind,
						 cc[i].size, true);
	}
	if (r == 0)
		r = emit_affinity_before(b, &ops);
	if (r == 0)
		r = emit_elems(dp, b, dels, false);
	if (r == 0)
		r = emit_elems(dp, b, adds, true);
	if (r == 0)
		r = emit_affinity_after(b, &ops);
	for (size_t i = 0; i < ncc && r == 0; i++) {
		if (cc[i].before > 0 && cc[i].after == 0)
			r = nft_ruleset_lb_chain(b, dp->fam[cc[i].fam].nfproto, cc[i].kind,
						 cc[i].size, false);
	}
	free(cc);
	aff_ops_free(&ops);
	return r;
}

/* --- conntrack --- */

static bool eps_subset(const struct endpoint *a, size_t na, const struct endpoint *b, size_t nb)
{
	for (size_t i = 0; i < na; i++) {
		size_t j;

		for (j = 0; j < nb; j++) {
			if (a[i].port == b[j].port && ipaddr_equal(&a[i].addr, &b[j].addr))
				break;
		}
		if (j == nb)
			return false;
	}
	return true;
}

/* Whether every endpoint traffic could use before is still usable, and there
 * were some: then no conntrack entry can have gone stale. */
static bool eps_kept(const struct svc_port *a, const struct svc_port *b)
{
	const struct endpoint *ea, *eb;
	size_t na, nb;

	ea = svc_port_internal_eps(a, &na);
	eb = svc_port_internal_eps(b, &nb);
	if (!na || a->etp_local != b->etp_local || a->itp_local != b->itp_local ||
	    !eps_subset(ea, na, eb, nb))
		return false;
	ea = svc_port_external_eps(a, &na);
	eb = svc_port_external_eps(b, &nb);
	return eps_subset(ea, na, eb, nb);
}

/* After a sync, deletes the UDP conntrack entries it made stale: all of them
 * after a full sync (a restart, where the previous endpoints are unknown),
 * else those of the ports whose usable endpoints lost one or went from none
 * to some, and of the ports that went away. */
static void clear_conntrack(const struct tracker_changes *ch, bool full)
{
	struct ct_plan *plan = ct_plan_new();
	int r = 0;

	if (!plan)
		return;
	for (size_t i = 0; i < ch->n && r == 0; i++) {
		const struct svc_ports *o = full ? NULL : ch->v[i].old, *n = ch->v[i].new;

		for (size_t k = 0; n && k < n->n && r == 0; k++) {
			const struct svc_port *prev = find_port(o, &n->v[k]);

			if (full || !prev || !eps_kept(prev, &n->v[k]))
				r = ct_plan_add_port(plan, &n->v[k], false);
		}
		for (size_t k = 0; o && k < o->n && r == 0; k++) {
			if (!find_port(n, &o->v[k]))
				r = ct_plan_add_port(plan, &o->v[k], true);
		}
	}
	if (r == 0 && ct_plan_size(plan)) {
		r = ct_plan_run(plan);
		if (r > 0)
			log_v(2, "conntrack: deleted %d stale UDP entries", r);
	}
	if (r < 0)
		log_warn("conntrack: could not clear stale UDP entries: %s", strerror(-r));
	ct_plan_free(plan);
}

/* --- the dataplane interface --- */

static void remember_reference(struct dataplane *dp);

static int nft_sync(struct dataplane *dp, const struct tracker_changes *ch, char *err,
		    size_t errlen)
{
	struct elems dels = {0}, adds = {0};
	bool full = ch->full || dp->need_full;
	struct nft_batch *b;
	int r;

	if (!full && ch->n == 0)
		return 0;
	if (dp->need_full && !ch->full) {
		snprintf(err, errlen, "a full sync is needed after an earlier failure");
		return -EAGAIN;
	}
	b = nft_batch_new(dp->conn);
	if (!b) {
		snprintf(err, errlen, "out of memory");
		return -ENOMEM;
	}
	r = build(dp, ch, full, b, &dels, &adds);
	if (r < 0) {
		snprintf(err, errlen, "building the transaction: %s", strerror(-r));
	} else {
		dp->stats.messages = nft_batch_count(b);
		r = nft_batch_commit(b, err, errlen);
	}
	if (r < 0) {
		/* The bookkeeping above already moved on; only a rebuild from the
		 * tracker's full state can be trusted now. */
		dp->need_full = true;
		dp->stats.failures++;
	} else {
		dp->need_full = false;
		dp->stats.syncs++;
		dp->stats.last_changes = adds.n + dels.n;
		dp->stats.elements += adds.n;
		dp->stats.elements -= dels.n;
		log_v(4, "nftables: %zu messages, %zu bytes, +%zu -%zu elements",
		      nft_batch_count(b), nft_batch_bytes(b), adds.n, dels.n);
		if (full)
			remember_reference(dp);
		clear_conntrack(ch, full);
	}
	nft_batch_free(b);
	free(dels.v);
	free(adds.v);
	return r;
}

static int nft_set_service_cidrs(struct dataplane *dp, const struct cidr *cidrs, size_t n,
				 char *err, size_t errlen)
{
	int r = store_prefixes(&dp->service_cidrs, &dp->n_service_cidrs, cidrs, n);

	return r < 0 ? r : replace_prefixes(dp, SET_SERVICE_CIDRS, cidrs, n, err, errlen);
}

static int nft_set_node(struct dataplane *dp, const struct node_info *node, char *err,
			size_t errlen)
{
	int r;

	if (dp->cfg.nodeport_primary) {
		struct cidr cidrs[16];
		size_t n = 0;

		for (size_t i = 0; node && i < node->n_addrs && n < 16; i++) {
			cidrs[n].addr = node->addrs[i];
			cidrs[n].prefix_len = node->addrs[i].family == AF_INET ? 32 : 128;
			n++;
		}
		if ((r = store_prefixes(&dp->nodeport_addrs, &dp->n_nodeport_addrs, cidrs, n)) <
			    0 ||
		    (r = replace_prefixes(dp, SET_NODEPORT_ADDRS, cidrs, n, err, errlen)) < 0)
			return r;
	}
	if (dp->cfg.detect_local == DETECT_LOCAL_NODE_CIDR) {
		size_t n = node ? node->n_pod_cidrs : 0;

		if ((r = store_prefixes(&dp->pod_sources, &dp->n_pod_sources,
					node ? node->pod_cidrs : NULL, n)) < 0 ||
		    (r = replace_prefixes(dp, SET_POD_SOURCES, dp->pod_sources, n, err, errlen)) <
			    0)
			return r;
	}
	return 0;
}

struct rule_count_ctx {
	struct hashmap *counts; /* "family/chain" -> rule count */
	uint8_t family;
};

static int count_rule(const struct nlmsghdr *nlh, void *data)
{
	struct rule_count_ctx *c = data;
	struct nftnl_rule *r = nftnl_rule_alloc();
	char key[96];
	uintptr_t n;

	if (!r)
		return MNL_CB_ERROR;
	if (nftnl_rule_nlmsg_parse(nlh, r) == 0 &&
	    !strcmp(nftnl_rule_get_str(r, NFTNL_RULE_TABLE), NFT_TABLE_NAME)) {
		snprintf(key, sizeof(key), "%u/%s", c->family,
			 nftnl_rule_get_str(r, NFTNL_RULE_CHAIN));
		n = (uintptr_t)hashmap_get_str(c->counts, key);
		hashmap_put_str(c->counts, key, (void *)(n + 1), NULL);
	}
	nftnl_rule_free(r);
	return MNL_CB_OK;
}

/* Counts the rules of kproxy's tables, per chain, into counts.  Returns 0,
 * or -ENOENT when a table is missing. */
static int count_rules(struct dataplane *dp, struct hashmap *counts)
{
	for (int f = 0; f < NFAM; f++) {
		char buf[MNL_SOCKET_BUFFER_SIZE];
		struct rule_count_ctx c = {counts, dp->fam[f].nfproto};
		struct nlmsghdr *nlh;
		struct nftnl_rule *r;
		int ret;

		if (!dp->fam[f].enabled)
			continue;
		r = nftnl_rule_alloc();
		if (!r)
			return -ENOMEM;
		nlh = nftnl_nlmsg_build_hdr(buf, NFT_MSG_GETRULE, dp->fam[f].nfproto, NLM_F_DUMP,
					    0);
		nftnl_rule_set_str(r, NFTNL_RULE_TABLE, NFT_TABLE_NAME);
		nftnl_rule_nlmsg_build_payload(nlh, r);
		nftnl_rule_free(r);
		ret = nft_conn_dump(dp->conn, nlh, count_rule, &c);
		if (ret < 0)
			return ret;
	}
	return 0;
}

/* The fixed chains (the load-balancing and affinity chains come and go with
 * Services and are not compared). */
static bool fixed_chain(const char *key)
{
	const char *chain = strchr(key, '/');

	chain = chain ? chain + 1 : key;
	return strncmp(chain, "lb-", 3) && strncmp(chain, "np-", 3) && strncmp(chain, "aff-", 4);
}

static void remember_reference(struct dataplane *dp)
{
	hashmap_clear(dp->reference, NULL);
	if (count_rules(dp, dp->reference) < 0)
		hashmap_clear(dp->reference, NULL);
}

/* Whether kproxy's tables are still as it left them: present, with every
 * fixed chain holding the rules it was built with.  1 means a full rebuild
 * is needed. */
static int nft_check(struct dataplane *dp, char *err, size_t errlen)
{
	struct hashmap *now;
	struct hashmap_iter it = {0};
	const void *k;
	void *v;
	int r, changed = 0;

	if (dp->need_full || !hashmap_size(dp->reference))
		return 0;
	now = hashmap_new();
	if (!now)
		return -ENOMEM;
	r = count_rules(dp, now);
	if (r < 0) {
		hashmap_free(now, NULL);
		if (r == -ENOENT) {
			snprintf(err, errlen, "a kproxy table is gone");
			return 1;
		}
		snprintf(err, errlen, "listing kproxy's rules: %s", strerror(-r));
		return r;
	}
	while (hashmap_next(dp->reference, &it, &k, NULL, &v)) {
		if (fixed_chain(k) && hashmap_get_str(now, k) != v) {
			snprintf(err, errlen, "the rules of chain %s changed", (const char *)k);
			changed = 1;
			break;
		}
	}
	hashmap_free(now, NULL);
	return changed;
}

static void nft_free(struct dataplane *dp)
{
	if (!dp)
		return;
	nft_conn_close(dp->conn);
	hashmap_free(dp->chains, NULL);
	hashmap_free(dp->shared, NULL);
	hashmap_free(dp->ports, port_state_free);
	hashmap_free(dp->reference, NULL);
	free(dp->service_cidrs);
	free(dp->nodeport_addrs);
	free(dp->pod_sources);
	free(dp->pod_iface);
	free(dp->cidrs);
	free(dp);
}

static int nft_init(const struct dataplane_config *cfg, struct dataplane **ret, char *err,
		    size_t errlen)
{
	struct dataplane *dp = calloc(1, sizeof(*dp));
	int r;

	if (!dp)
		return -ENOMEM;
	dp->cfg = *cfg;
	if (cfg->n_cluster_cidrs) {
		dp->cidrs = calloc(cfg->n_cluster_cidrs, sizeof(*dp->cidrs));
		if (!dp->cidrs) {
			free(dp);
			return -ENOMEM;
		}
		memcpy(dp->cidrs, cfg->cluster_cidrs, cfg->n_cluster_cidrs * sizeof(*dp->cidrs));
	}
	dp->cfg.cluster_cidrs = dp->cidrs;
	if (store_prefixes(&dp->nodeport_addrs, &dp->n_nodeport_addrs, cfg->nodeport_cidrs,
			   cfg->n_nodeport_cidrs) < 0) {
		nft_free(dp);
		return -ENOMEM;
	}
	dp->cfg.nodeport_cidrs = NULL;
	if (cfg->detect_local == DETECT_LOCAL_CLUSTER_CIDR &&
	    store_prefixes(&dp->pod_sources, &dp->n_pod_sources, cfg->cluster_cidrs,
			   cfg->n_cluster_cidrs) < 0) {
		nft_free(dp);
		return -ENOMEM;
	}
	if (cfg->pod_iface && !(dp->pod_iface = strdup(cfg->pod_iface))) {
		nft_free(dp);
		return -ENOMEM;
	}
	dp->cfg.pod_iface = dp->pod_iface;
	dp->fam[0] = (struct nft_fam){NFPROTO_IPV4, cfg->ipv4};
	dp->fam[1] = (struct nft_fam){NFPROTO_IPV6, cfg->ipv6};
	/* Whether pod traffic can be told apart from the rest. */
	dp->rcfg = (struct render_config){cfg->detect_local != DETECT_LOCAL_CLUSTER_CIDR ||
						  cfg->n_cluster_cidrs > 0,
					  cfg->masquerade_all,
					  {cfg->ipv4, cfg->ipv6}};
	dp->chains = hashmap_new();
	dp->shared = hashmap_new();
	dp->ports = hashmap_new();
	dp->reference = hashmap_new();
	dp->need_full = true;
	if (!dp->chains || !dp->shared || !dp->ports || !dp->reference) {
		nft_free(dp);
		return -ENOMEM;
	}
	r = nft_conn_open(&dp->conn);
	if (r < 0) {
		snprintf(err, errlen, "opening a netfilter netlink socket: %s", strerror(-r));
		nft_free(dp);
		return r;
	}
	*ret = dp;
	return 0;
}

static void nft_get_stats(struct dataplane *dp, struct dataplane_stats *ret)
{
	*ret = dp->stats;
}

static int nft_cleanup(const struct dataplane_config *cfg, char *err, size_t errlen)
{
	static const uint8_t fams[NFAM] = {NFPROTO_IPV4, NFPROTO_IPV6};
	struct nft_conn *conn;
	int removed = 0, r;

	(void)cfg;
	r = nft_conn_open(&conn);
	if (r < 0) {
		snprintf(err, errlen, "opening a netfilter netlink socket: %s", strerror(-r));
		return r;
	}
	for (int f = 0; f < NFAM; f++) {
		struct nft_batch *b = nft_batch_new(conn);
		struct nlmsghdr *nlh;
		char inner[256];

		if (!b) {
			r = -ENOMEM;
			break;
		}
		/* A plain delete, so that an absent table answers ENOENT. */
		nlh = nft_batch_msg(b, NFT_MSG_DELTABLE, fams[f], 0, "deleting table");
		if (nlh) {
			mnl_attr_put_strz(nlh, NFTA_TABLE_NAME, NFT_TABLE_NAME);
			nft_batch_msg_done(b, nlh);
		}
		r = nlh ? nft_batch_commit(b, inner, sizeof(inner)) : -ENOMEM;
		nft_batch_free(b);
		if (r == 0) {
			removed++;
		} else if (r != -ENOENT) {
			snprintf(err, errlen, "removing table %s %s: %s",
				 fams[f] == NFPROTO_IPV4 ? "ip" : "ip6", NFT_TABLE_NAME, inner);
			break;
		}
		r = 0;
	}
	nft_conn_close(conn);
	return r < 0 ? r : removed;
}

const struct dataplane_ops nft_dataplane_ops = {
	.name = "nftables",
	.init = nft_init,
	.sync = nft_sync,
	.set_service_cidrs = nft_set_service_cidrs,
	.set_node = nft_set_node,
	.check = nft_check,
	.get_stats = nft_get_stats,
	.free = nft_free,
	.cleanup = nft_cleanup,
};
