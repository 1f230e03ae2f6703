/* The nftables dataplane: turns the tracker's changes into one netlink
 * transaction per sync.
 *
 * Every Service port is rendered into set elements: its frontends in the
 * verdict maps, its endpoints in the backends maps (keyed by frontend and
 * index), its masquerade and hairpin entries.  An incremental sync renders
 * each changed Service twice, as the kernel has it and as it must be, and
 * sends only the difference; a full sync rebuilds the tables in the same
 * transaction that removes the old ones, so packets never see a moment
 * without rules.
 *
 * Elements shared between Services (hairpin entries) and the load-balancing
 * chains (one per endpoint count) are reference counted; a chain is created in
 * the transaction that first needs it and removed in the one that drops its
 * last user. */
#include <netinet/in.h>
#include <errno.h>
#include <libmnl/libmnl.h>
#include <linux/netfilter.h>
#include <sys/socket.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dataplane.h"
#include "nft/batch.h"
#include "nft/conntrack.h"
#include "nft/ruleset.h"
#include "util/hashmap.h"
#include "util/log.h"

#define NFAM 2

struct elem {
	uint8_t fam; /* index into dp->fam */
	uint8_t set; /* enum nft_set */
	uint8_t key_len;
	uint8_t data_len;
	int32_t verdict;  /* for verdict maps: NFT_GOTO or NF_DROP */
	uint8_t lb_kind;  /* NFT_GOTO: enum nft_lb_kind, or 255 for the reject chain */
	uint32_t chain_n; /* NFT_GOTO to a load-balancing chain: its size */
	uint8_t key[40];
	uint8_t data[20];
};

#define LB_REJECT 255

struct elems {
	struct elem *v;
	size_t n, cap;
};

struct nft_fam {
	uint8_t nfproto; /* NFPROTO_IPV4 or NFPROTO_IPV6 */
	uint8_t af;	 /* AF_INET or AF_INET6 */
	bool enabled;
};

struct dataplane {
	struct dataplane_config cfg;
	struct cidr *cidrs;
	struct nft_conn *conn;
	struct nft_fam fam[NFAM];
	struct hashmap *chains; /* fam . kind . size -> reference count */
	struct hashmap *shared; /* fam . set . key -> reference count */
	struct hashmap *ports;	/* service port key -> struct port_state */
	bool need_full;
	struct dataplane_stats stats;
};

static bool separate_ext_set(const struct svc_port *sp)
{
	return svc_port_external(sp) && sp->etp_local != sp->itp_local;
}

/* --- load-balancing chain sizes ---
 *
 * A Service port with N endpoints is balanced by a chain of size S, a power
 * of two at least N: each of its rules draws numgen random mod S and looks
 * the slot up in the backends map, where only slots 0..N-1 exist; a draw that
 * misses falls through to the next rule (rejection sampling), so each
 * endpoint is picked with exactly the same probability.  S is kept while N
 * stays above S/4, so that scaling by a few endpoints changes only backends
 * elements and never the verdict maps, whose changes cost the kernel a walk
 * of every verdict element at commit time. */

struct port_state {
	uint32_t size[2]; /* chain size for internal and external endpoints; 0: none */
};

static uint32_t pow2_ceil(uint32_t n)
{
	uint32_t s = 1;

	while (s < n)
		s <<= 1;
	return s;
}

static uint32_t lb_size(uint32_t prev, size_t n)
{
	if (!n)
		return 0;
	if (prev && n <= prev && n * 4 > prev)
		return prev;
	return pow2_ceil((uint32_t)n);
}

static void sp_key(const struct svc_port *sp, char *buf, size_t len)
{
	snprintf(buf, len, "%s/%s:%s:%u:%u", sp->ns, sp->name, sp->port_name, sp->protocol,
		 sp->family);
}

/* The chain sizes of sp: as recorded (old, for rendering what the kernel
 * has), or chosen now from the recorded ones and recorded (new). */
static int port_sizes(struct dataplane *dp, const struct svc_port *sp, bool new,
		      uint32_t ret_size[2])
{
	char key[SVC_PORT_NAME_MAX + 32];
	struct port_state *st;
	size_t n_int, n_ext;

	sp_key(sp, key, sizeof(key));
	st = hashmap_get_str(dp->ports, key);
	if (!new) {
		if (!st)
			return -ESTALE;
		memcpy(ret_size, st->size, sizeof(st->size));
		return 0;
	}
	if (!st) {
		st = calloc(1, sizeof(*st));
		if (!st || hashmap_put_str(dp->ports, key, st, NULL) < 0) {
			free(st);
			return -ENOMEM;
		}
	}
	svc_port_internal_eps(sp, &n_int);
	svc_port_external_eps(sp, &n_ext);
	st->size[0] = lb_size(st->size[0], n_int);
	st->size[1] = separate_ext_set(sp) ? lb_size(st->size[1], n_ext) : st->size[0];
	memcpy(ret_size, st->size, sizeof(st->size));
	return 0;
}

static void port_forget(struct dataplane *dp, const struct svc_port *sp)
{
	char key[SVC_PORT_NAME_MAX + 32];

	sp_key(sp, key, sizeof(key));
	free(hashmap_remove_str(dp->ports, key));
}

/* --- rendering --- */

static struct elem *elem_new(struct elems *out, int fam, enum nft_set set)
{
	struct elem *e;

	if (out->n == out->cap) {
		size_t cap = out->cap ? out->cap * 2 : 64;
		struct elem *v = realloc(out->v, cap * sizeof(*v));

		if (!v)
			return NULL;
		out->v = v;
		out->cap = cap;
	}
	e = &out->v[out->n++];
	memset(e, 0, sizeof(*e));
	e->fam = (uint8_t)fam;
	e->set = (uint8_t)set;
	return e;
}

/* Writes address . proto . port (addr NULL: proto . port, for NodePorts)
 * as the kernel's registers hold them: proto and port each padded to 4 bytes,
 * the port in network order. */
static size_t put_key(uint8_t *buf, const struct ipaddr *addr, size_t alen, uint8_t proto,
		      uint16_t port)
{
	size_t off = addr ? alen : 0;

	memset(buf, 0, off + 8);
	if (addr)
		memcpy(buf, addr->bytes, alen);
	buf[off] = proto;
	buf[off + 4] = (uint8_t)(port >> 8);
	buf[off + 5] = (uint8_t)(port & 0xff);
	return off + 8;
}

enum fe_kind { FE_CLUSTER, FE_EXTERNAL, FE_NODEPORT };

struct render_ctx {
	struct dataplane *dp;
	int fam;
	size_t alen;
	const struct svc_port *sp;
	uint32_t size[2]; /* chain sizes, internal and external */
	struct elems *out;
};

/* The verdict for traffic of one kind: the load-balancing chain of the
 * endpoints' size, or drop/reject when there are none. */
static void set_verdict(struct render_ctx *c, struct elem *e, enum nft_lb_kind kind, uint32_t size)
{
	if (size) {
		e->verdict = NFT_GOTO;
		e->lb_kind = (uint8_t)kind;
		e->chain_n = size;
	} else if (c->sp->n_cluster_eps) {
		/* Endpoints exist, just none this traffic may use (a Local policy
		 * on a node without local endpoints): drop, as kube-proxy does. */
		e->verdict = NF_DROP;
	} else {
		e->verdict = NFT_GOTO;
		e->lb_kind = LB_REJECT;
	}
}

static bool elem_data_equal(const struct elem *a, const struct elem *b);

/* Adds the frontend's verdicts: always for traffic from inside the cluster,
 * and for traffic from outside only where it differs (the dispatch chain
 * for outside traffic falls back to the inside map). */
static int add_verdicts(struct render_ctx *c, bool np, const uint8_t *key, size_t klen,
			enum nft_lb_kind int_kind, enum nft_lb_kind ext_kind, bool sep)
{
	struct elem *ie = elem_new(c->out, c->fam, np ? SET_NP_FE_INT : SET_FE_INT), ext;

	if (!ie)
		return -ENOMEM;
	memcpy(ie->key, key, klen);
	ie->key_len = (uint8_t)klen;
	set_verdict(c, ie, int_kind, c->size[0]);
	ext = *ie;
	ext.set = np ? SET_NP_FE_EXT : SET_FE_EXT;
	if (sep)
		set_verdict(c, &ext, ext_kind, c->size[1]);
	ext.set = ie->set;
	if (!sep || elem_data_equal(ie, &ext))
		return 0;
	ext.set = np ? SET_NP_FE_EXT : SET_FE_EXT;
	ie = elem_new(c->out, c->fam, (enum nft_set)ext.set);
	if (!ie)
		return -ENOMEM;
	*ie = ext;
	return 0;
}

static int add_data(struct render_ctx *c, enum nft_set set, const uint8_t *key, size_t klen,
		    const void *data, size_t dlen)
{
	struct elem *e = elem_new(c->out, c->fam, set);

	if (!e)
		return -ENOMEM;
	memcpy(e->key, key, klen);
	e->key_len = (uint8_t)klen;
	if (dlen)
		memcpy(e->data, data, dlen);
	e->data_len = (uint8_t)dlen;
	return 0;
}

static int add_backends(struct render_ctx *c, enum nft_set set, const uint8_t *key, size_t klen,
			const struct endpoint *eps, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		uint8_t k[48], data[20] = {0};
		uint32_t idx = (uint32_t)i; /* numgen's value: host order */
		int r;

		memcpy(k, key, klen);
		memcpy(k + klen, &idx, 4);
		memcpy(data, eps[i].addr.bytes, c->alen);
		data[c->alen] = (uint8_t)(eps[i].port >> 8);
		data[c->alen + 1] = (uint8_t)(eps[i].port & 0xff);
		if ((r = add_data(c, set, k, klen + 4, data, c->alen + 4)) < 0)
			return r;
	}
	return 0;
}

/* One frontend: its verdicts for both kinds of traffic, its endpoints and
 * its masquerade entries. */
static int render_frontend(struct render_ctx *c, enum fe_kind kind, const struct ipaddr *addr,
			   uint16_t port)
{
	const struct svc_port *sp = c->sp;
	const struct dataplane_config *cfg = &c->dp->cfg;
	bool np = kind == FE_NODEPORT, sep = kind != FE_CLUSTER && separate_ext_set(sp);
	bool cidrs = cfg->n_cluster_cidrs > 0, all = cfg->masquerade_all;
	const struct endpoint *int_eps, *ext_eps;
	size_t n_int, n_ext, klen;
	uint8_t key[32];
	int r;

	klen = put_key(key, np ? NULL : addr, c->alen, sp->protocol, port);
	int_eps = svc_port_internal_eps(sp, &n_int);
	ext_eps = svc_port_external_eps(sp, &n_ext);
	/* ClusterIP traffic follows the internal policy whatever its source. */
	if ((r = add_verdicts(c, np, key, klen, np ? LB_NP : LB_SVC, np ? LB_NP_EXT : LB_SVC_EXT,
			      sep)) < 0)
		return r;
	if ((r = add_backends(c, np ? SET_NP_BACKENDS : SET_BACKENDS, key, klen, int_eps, n_int)) <
	    0)
		return r;
	if (sep && (r = add_backends(c, np ? SET_NP_BACKENDS_EXT : SET_BACKENDS_EXT, key, klen,
				     ext_eps, n_ext)) < 0)
		return r;
	/* A pod's traffic to a NodePort may arrive on another node, whose reply
	 * would bypass that node unless the source is rewritten: masquerade it,
	 * as kube-proxy does.  Other pod traffic keeps its source. */
	if ((all || np) &&
	    (r = add_data(c, np ? SET_NP_MASQ_INT : SET_MASQ_INT, key, klen, NULL, 0)) < 0)
		return r;
	if ((kind == FE_CLUSTER ? (cidrs || all) : (!sp->etp_local || all)) &&
	    (r = add_data(c, np ? SET_NP_MASQ_EXT : SET_MASQ_EXT, key, klen, NULL, 0)) < 0)
		return r;
	if ((kind == FE_CLUSTER ? (cidrs || all) : true) &&
	    (r = add_data(c, np ? SET_NP_MASQ_OUT : SET_MASQ_OUT, key, klen, NULL, 0)) < 0)
		return r;
	return 0;
}

/* Renders sp as the kernel has it (new false) or as it must become. */
static int render_port(struct dataplane *dp, const struct svc_port *sp, bool new, struct elems *out)
{
	int fam = sp->family == AF_INET ? 0 : 1;
	struct render_ctx c = {dp, fam, sp->family == AF_INET ? 4 : 16, sp, {0, 0}, out};
	int r = 0;

	if (!dp->fam[fam].enabled)
		return 0;
	if ((r = port_sizes(dp, sp, new, c.size)) < 0)
		return r;
	if (sp->has_cluster_ip)
		r = render_frontend(&c, FE_CLUSTER, &sp->cluster_ip, sp->port);
	for (size_t i = 0; r == 0 && i < sp->n_external_ips; i++)
		r = render_frontend(&c, FE_EXTERNAL, &sp->external_ips[i], sp->port);
	for (size_t i = 0; r == 0 && i < sp->n_lb_ips; i++)
		r = render_frontend(&c, FE_EXTERNAL, &sp->lb_ips[i], sp->port);
	if (r == 0 && sp->node_port)
		r = render_frontend(&c, FE_NODEPORT, NULL, sp->node_port);
	if (r < 0)
		return r;
	/* A pod may reach itself through the Service: its connection then
	 * needs masquerading, or the reply would skip the DNAT. */
	for (size_t i = 0; i < sp->n_eps; i++) {
		uint8_t key[32];

		if (!(sp->eps[i].flags & EP_LOCAL))
			continue;
		if (i && ipaddr_equal(&sp->eps[i - 1].addr, &sp->eps[i].addr))
			continue;
		memcpy(key, sp->eps[i].addr.bytes, c.alen);
		memcpy(key + c.alen, sp->eps[i].addr.bytes, c.alen);
		if ((r = add_data(&c, SET_HAIRPIN, key, 2 * c.alen, NULL, 0)) < 0)
			return r;
	}
	return 0;
}

/* --- diffing --- */

static int elem_key_cmp(const struct elem *a, const struct elem *b)
{
	if (a->fam != b->fam)
		return a->fam - b->fam;
	if (a->set != b->set)
		return a->set - b->set;
	if (a->key_len != b->key_len)
		return a->key_len - b->key_len;
	return memcmp(a->key, b->key, a->key_len);
}

static int elem_sort_cmp(const void *a, const void *b)
{
	return elem_key_cmp(a, b);
}

static bool elem_data_equal(const struct elem *a, const struct elem *b)
{
	return a->verdict == b->verdict && a->lb_kind == b->lb_kind && a->chain_n == b->chain_n &&
	       a->data_len == b->data_len && memcmp(a->data, b->data, a->data_len) == 0;
}

static bool is_shared(const struct elem *e)
{
	return e->set == SET_HAIRPIN;
}

static int elems_push(struct elems *out, const struct elem *e)
{
	struct elem *n = elem_new(out, e->fam, (enum nft_set)e->set);

	if (!n)
		return -ENOMEM;
	*n = *e;
	return 0;
}

static int shared_adjust(struct dataplane *dp, const struct elem *e, int delta, bool *ret_edge)
{
	uint8_t key[48];
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

/* Compares the sorted renderings of one Service before and after and appends
 * the element operations to dels and adds. */
static int diff(struct dataplane *dp, struct elems *old, struct elems *new, struct elems *dels,
		struct elems *adds)
{
	size_t i = 0, j = 0;
	bool edge;
	int r = 0;

	qsort(old->v, old->n, sizeof(*old->v), elem_sort_cmp);
	qsort(new->v, new->n, sizeof(*new->v), elem_sort_cmp);
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

/* --- chains --- */

static size_t chain_key(const struct elem *e, uint8_t *key)
{
	key[0] = e->fam;
	key[1] = e->lb_kind;
	memcpy(key + 2, &e->chain_n, 4);
	return 6;
}

static bool is_lb_ref(const struct elem *e)
{
	return nft_sets[e->set].data == DATA_VERDICT && e->verdict == NFT_GOTO &&
	       e->lb_kind != LB_REJECT;
}

struct chain_change {
	uint8_t fam, kind;
	uint32_t n;
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
			size_t klen;
			uintptr_t count, idx;
			void *old;

			if (!is_lb_ref(e))
				continue;
			klen = chain_key(e, key);
			count = (uintptr_t)hashmap_get(dp->chains, key, klen);
			idx = (uintptr_t)hashmap_get(touched, key, klen);
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
				if (hashmap_put(touched, key, klen, (void *)idx, NULL) < 0) {
					r = -ENOMEM;
					break;
				}
			}
			count = pass == 0 ? count - 1 : count + 1;
			v[idx - 1].after = (long)count;
			if (count)
				r = hashmap_put(dp->chains, key, klen, (void *)count, &old) < 0
					    ? -ENOMEM
					    : 0;
			else
				hashmap_remove(dp->chains, key, klen);
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

static int emit_elems(struct dataplane *dp, struct nft_batch *b, struct elems *list, bool add)
{
	int cur_fam = -1, cur_set = -1;
	int r = 0;

	qsort(list->v, list->n, sizeof(*list->v), elem_sort_cmp);
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
			const char *name = NULL;

			if (e->verdict == NFT_GOTO)
				name = e->lb_kind == LB_REJECT
					       ? NFT_NO_ENDPOINTS
					       : nft_lb_chain_name((enum nft_lb_kind)e->lb_kind,
								   e->chain_n, chain);
			r = nft_batch_elem_verdict(b, e->key, e->key_len, e->verdict, name);
		} else {
			r = nft_batch_elem(b, e->key, e->key_len, e->data_len ? e->data : NULL,
					   e->data_len);
		}
	}
	nft_batch_elems_done(b);
	return r;
}

static void reset_state(struct dataplane *dp)
{
	hashmap_clear(dp->chains, NULL);
	hashmap_clear(dp->shared, NULL);
	hashmap_clear(dp->ports, free);
	dp->stats.elements = 0;
}

static int render_ports(struct dataplane *dp, const struct svc_ports *ports, bool new,
			struct elems *out)
{
	for (size_t i = 0; ports && i < ports->n; i++) {
		int r = render_port(dp, &ports->v[i], new, out);

		if (r < 0)
			return r;
	}
	return 0;
}

static bool port_in(const struct svc_ports *ports, const struct svc_port *sp)
{
	for (size_t i = 0; ports && i < ports->n; i++) {
		const struct svc_port *o = &ports->v[i];

		if (o->family == sp->family && o->protocol == sp->protocol &&
		    !strcmp(o->port_name, sp->port_name))
			return true;
	}
	return false;
}

static int build_full(struct dataplane *dp, const struct tracker_changes *ch, struct nft_batch *b,
		      struct elems *adds)
{
	struct elems none = {0};
	struct chain_change *cc = NULL;
	size_t ncc = 0;
	int r = 0;

	reset_state(dp);
	for (int f = 0; f < NFAM && r == 0; f++) {
		struct nft_ruleset_config rc = {dp->fam[f].nfproto, dp->cidrs,
						dp->cfg.n_cluster_cidrs,
						1u << dp->cfg.masquerade_bit};

		if (dp->fam[f].enabled)
			r = nft_ruleset_build(b, &rc);
		else
			r = nft_ruleset_delete(b, dp->fam[f].nfproto);
	}
	for (size_t i = 0; i < ch->n && r == 0; i++) {
		struct elems one = {0};

		r = render_ports(dp, ch->v[i].new, true, &one);
		/* Run through diff() so shared elements are counted once. */
		if (r == 0)
			r = diff(dp, &none, &one, &none, adds);
		free(one.v);
	}
	if (r == 0)
		r = chain_refs(dp, &none, adds, &cc, &ncc);
	for (size_t i = 0; i < ncc && r == 0; i++)
		r = nft_ruleset_lb_chain(b, dp->fam[cc[i].fam].nfproto, cc[i].kind, cc[i].n, true);
	free(cc);
	if (r == 0)
		r = emit_elems(dp, b, adds, true);
	return r;
}

static int build_incremental(struct dataplane *dp, const struct tracker_changes *ch,
			     struct nft_batch *b, struct elems *dels, struct elems *adds)
{
	struct chain_change *cc = NULL;
	size_t ncc = 0;
	int r = 0;

	for (size_t i = 0; i < ch->n && r == 0; i++) {
		struct elems old = {0}, new = {0};
		const struct svc_ports *o = ch->v[i].old, *n = ch->v[i].new;

		r = render_ports(dp, o, false, &old);
		if (r == 0)
			r = render_ports(dp, n, true, &new);
		if (r == 0)
			r = diff(dp, &old, &new, dels, adds);
		free(old.v);
		free(new.v);
		for (size_t k = 0; r == 0 && o && k < o->n; k++) {
			if (!port_in(n, &o->v[k]))
				port_forget(dp, &o->v[k]);
		}
	}
	if (r == 0)
		r = chain_refs(dp, dels, adds, &cc, &ncc);
	for (size_t i = 0; i < ncc && r == 0; i++) {
		if (cc[i].before == 0 && cc[i].after > 0)
			r = nft_ruleset_lb_chain(b, dp->fam[cc[i].fam].nfproto, cc[i].kind, cc[i].n,
						 true);
	}
	if (r == 0)
		r = emit_elems(dp, b, dels, false);
	if (r == 0)
		r = emit_elems(dp, b, adds, true);
	for (size_t i = 0; i < ncc && r == 0; i++) {
		if (cc[i].before > 0 && cc[i].after == 0)
			r = nft_ruleset_lb_chain(b, dp->fam[cc[i].fam].nfproto, cc[i].kind, cc[i].n,
						 false);
	}
	free(cc);
	return r;
}

/* Whether every endpoint of a that traffic could use is still usable in b,
 * and a had some: then no conntrack entry can have gone stale. */
static bool eps_kept(const struct svc_port *a, const struct svc_port *b)
{
	const struct endpoint *ea, *eb;
	size_t na, nb;

	ea = svc_port_internal_eps(a, &na);
	eb = svc_port_internal_eps(b, &nb);
	if (!na || a->etp_local != b->etp_local || a->itp_local != b->itp_local)
		return false;
	for (size_t i = 0; i < na; i++) {
		size_t j;

		for (j = 0; j < nb; j++) {
			if (ea[i].port == eb[j].port && ipaddr_equal(&ea[i].addr, &eb[j].addr))
				break;
		}
		if (j == nb)
			return false;
	}
	ea = svc_port_external_eps(a, &na);
	eb = svc_port_external_eps(b, &nb);
	for (size_t i = 0; i < na; i++) {
		size_t j;

		for (j = 0; j < nb; j++) {
			if (ea[i].port == eb[j].port && ipaddr_equal(&ea[i].addr, &eb[j].addr))
				break;
		}
		if (j == nb)
			return false;
	}
	return true;
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

/* After a sync, deletes the UDP conntrack entries it made stale: all of them
 * after a full sync (a restart, where the previous endpoints are unknown),
 * else those of the ports whose usable endpoints lost one or went from none
 * to some, and of the ports that went away. */
static void clear_conntrack(struct dataplane *dp, const struct tracker_changes *ch, bool full)
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
	(void)dp;
	ct_plan_free(plan);
}

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
	r = full ? build_full(dp, ch, b, &adds) : build_incremental(dp, ch, b, &dels, &adds);
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
		clear_conntrack(dp, ch, full);
	}
	nft_batch_free(b);
	free(dels.v);
	free(adds.v);
	return r;
}

static void nft_free(struct dataplane *dp)
{
	if (!dp)
		return;
	nft_conn_close(dp->conn);
	hashmap_free(dp->chains, NULL);
	hashmap_free(dp->shared, NULL);
	hashmap_free(dp->ports, free);
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
	dp->fam[0] = (struct nft_fam){NFPROTO_IPV4, AF_INET, cfg->ipv4};
	dp->fam[1] = (struct nft_fam){NFPROTO_IPV6, AF_INET6, cfg->ipv6};
	dp->chains = hashmap_new();
	dp->shared = hashmap_new();
	dp->ports = hashmap_new();
	dp->need_full = true;
	if (!dp->chains || !dp->shared || !dp->ports) {
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
	.get_stats = nft_get_stats,
	.free = nft_free,
	.cleanup = nft_cleanup,
};
