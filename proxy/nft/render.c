/* Service ports to set elements; see render.h.
 *
 * Keys are laid out as the kernel's registers hold them when the rules build
 * them: an address, then the protocol and the port each padded to four bytes
 * (the port in network order), then for backends the slot number as numgen
 * leaves it (host order). */
#include "nft/render.h"

#include <netinet/in.h>
#include <errno.h>
#include <linux/netfilter.h>
#include <stdlib.h>
#include <string.h>

struct elem *elems_add(struct elems *out, int fam, enum nft_set set)
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

int elems_push(struct elems *out, const struct elem *e)
{
	struct elem *n = elems_add(out, e->fam, (enum nft_set)e->set);

	if (!n)
		return -ENOMEM;
	*n = *e;
	return 0;
}

int elem_key_cmp(const struct elem *a, const struct elem *b)
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

void elems_sort(struct elems *list)
{
	qsort(list->v, list->n, sizeof(*list->v), elem_sort_cmp);
}

bool elem_data_equal(const struct elem *a, const struct elem *b)
{
	return a->verdict == b->verdict && a->lb_kind == b->lb_kind && a->chain_n == b->chain_n &&
	       a->data_len == b->data_len && memcmp(a->data, b->data, a->data_len) == 0;
}

uint32_t render_lb_size(uint32_t prev, size_t n)
{
	uint32_t s = 1;

	if (!n)
		return 0;
	if (prev && n <= prev && n * 4 > prev)
		return prev;
	while (s < n)
		s <<= 1;
	return s;
}

bool render_separate_ext(const struct svc_port *sp)
{
	return svc_port_external(sp) && sp->etp_local != sp->itp_local;
}

/* address . proto . port, or proto . port for NodePorts (addr NULL). */
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

struct ctx {
	const struct render_config *cfg;
	int fam;
	size_t alen;
	const struct svc_port *sp;
	const struct port_state *st;
	struct elems *out;
};

/* The verdict for one kind of traffic (class 0 internal, 1 external). */
static void set_verdict(struct ctx *c, struct elem *e, enum nft_lb_kind kind, int class)
{
	if (c->sp->affinity && c->st->aff[class].id && c->st->aff[class].n) {
		e->verdict = NFT_GOTO;
		e->lb_kind = LB_AFFINITY;
		e->chain_n = c->st->aff[class].id;
	} else if (c->st->size[class]) {
		e->verdict = NFT_GOTO;
		e->lb_kind = (uint8_t)kind;
		e->chain_n = c->st->size[class];
	} else if (c->sp->n_cluster_eps) {
		/* Endpoints exist, just none this traffic may use (a Local policy
		 * on a node without local endpoints): drop, as kube-proxy does. */
		e->verdict = NF_DROP;
	} else {
		e->verdict = NFT_GOTO;
		e->lb_kind = LB_REJECT;
	}
}

/* The frontend's verdicts: always for traffic from inside the cluster, and
 * for traffic from outside only where it differs (the dispatch chain for
 * outside traffic falls back to the inside map). */
static int add_verdicts(struct ctx *c, bool np, const uint8_t *key, size_t klen, bool sep)
{
	enum nft_set iset = np ? SET_NP_FE_INT : SET_FE_INT, xset = np ? SET_NP_FE_EXT : SET_FE_EXT;
	struct elem *ie = elems_add(c->out, c->fam, iset), ext;

	if (!ie)
		return -ENOMEM;
	memcpy(ie->key, key, klen);
	ie->key_len = (uint8_t)klen;
	set_verdict(c, ie, np ? LB_NP : LB_SVC, 0);
	if (!sep)
		return 0;
	ext = *ie;
	set_verdict(c, &ext, np ? LB_NP_EXT : LB_SVC_EXT, 1);
	if (elem_data_equal(ie, &ext))
		return 0;
	ext.set = (uint8_t)xset;
	return elems_push(c->out, &ext);
}

static int add_key(struct ctx *c, enum nft_set set, const uint8_t *key, size_t klen,
		   const void *data, size_t dlen)
{
	struct elem *e = elems_add(c->out, c->fam, set);

	if (!e)
		return -ENOMEM;
	memcpy(e->key, key, klen);
	e->key_len = (uint8_t)klen;
	if (dlen)
		memcpy(e->data, data, dlen);
	e->data_len = (uint8_t)dlen;
	return 0;
}

static int add_backends(struct ctx *c, enum nft_set set, const uint8_t *key, size_t klen,
			const struct endpoint *eps, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		uint8_t k[ELEM_KEY_MAX], data[20] = {0};
		uint32_t slot = (uint32_t)i;
		int r;

		memcpy(k, key, klen);
		memcpy(k + klen, &slot, 4);
		memcpy(data, eps[i].addr.bytes, c->alen);
		data[c->alen] = (uint8_t)(eps[i].port >> 8);
		data[c->alen + 1] = (uint8_t)(eps[i].port & 0xff);
		if ((r = add_key(c, set, k, klen + 4, data, c->alen + 4)) < 0)
			return r;
	}
	return 0;
}

/* The last address of a prefix. */
static void cidr_last(const struct cidr *cidr, size_t alen, uint8_t *out)
{
	memcpy(out, cidr->addr.bytes, alen);
	for (size_t bit = cidr->prefix_len; bit < alen * 8; bit++)
		out[bit / 8] |= (uint8_t)(0x80u >> (bit % 8));
}

/* loadBalancerSourceRanges: the frontend is firewalled, and each range may
 * reach it. */
static int add_firewall(struct ctx *c, const uint8_t *key, size_t klen)
{
	const struct svc_port *sp = c->sp;
	int r;

	if ((r = add_key(c, SET_FW_FRONTENDS, key, klen, NULL, 0)) < 0)
		return r;
	for (size_t i = 0; i < sp->n_source_ranges; i++) {
		struct elem *e = elems_add(c->out, c->fam, SET_FW_ALLOW);
		size_t half = klen + c->alen;

		if (!e)
			return -ENOMEM;
		memcpy(e->key, key, klen);
		memcpy(e->key + klen, sp->source_ranges[i].addr.bytes, c->alen);
		memcpy(e->key + half, key, klen);
		cidr_last(&sp->source_ranges[i], c->alen, e->key + half + klen);
		e->key_len = (uint8_t)(2 * half);
		e->end_off = (uint8_t)half;
	}
	return 0;
}

static int render_frontend(struct ctx *c, enum fe_kind kind, const struct ipaddr *addr,
			   uint16_t port)
{
	const struct svc_port *sp = c->sp;
	bool np = kind == FE_NODEPORT, sep = kind != FE_CLUSTER && render_separate_ext(sp);
	bool cidrs = c->cfg->pod_cidrs, all = c->cfg->masquerade_all;
	const struct endpoint *int_eps, *ext_eps;
	size_t n_int, n_ext, klen;
	uint8_t key[32];
	int r;

	klen = put_key(key, np ? NULL : addr, c->alen, sp->protocol, port);
	int_eps = svc_port_internal_eps(sp, &n_int);
	ext_eps = svc_port_external_eps(sp, &n_ext);
	/* ClusterIP traffic follows the internal policy whatever its source. */
	if ((r = add_verdicts(c, np, key, klen, sep)) < 0)
		return r;
	if (!sp->affinity) {
		if ((r = add_backends(c, np ? SET_NP_BACKENDS : SET_BACKENDS, key, klen, int_eps,
				      n_int)) < 0)
			return r;
		if (sep && (r = add_backends(c, np ? SET_NP_BACKENDS_EXT : SET_BACKENDS_EXT, key,
					     klen, ext_eps, n_ext)) < 0)
			return r;
	}
	/* A pod's traffic to a NodePort may arrive on another node, whose reply
	 * would bypass that node unless the source is rewritten: masquerade it,
	 * as kube-proxy does.  Other pod traffic keeps its source. */
	if ((all || np) &&
	    (r = add_key(c, np ? SET_NP_MASQ_INT : SET_MASQ_INT, key, klen, NULL, 0)) < 0)
		return r;
	if ((kind == FE_CLUSTER ? (cidrs || all) : (!sp->etp_local || all)) &&
	    (r = add_key(c, np ? SET_NP_MASQ_EXT : SET_MASQ_EXT, key, klen, NULL, 0)) < 0)
		return r;
	if ((kind == FE_CLUSTER ? (cidrs || all) : true) &&
	    (r = add_key(c, np ? SET_NP_MASQ_OUT : SET_MASQ_OUT, key, klen, NULL, 0)) < 0)
		return r;
	if (kind == FE_CLUSTER &&
	    (r = add_key(c, SET_CLUSTER_IPS, addr->bytes, c->alen, NULL, 0)) < 0)
		return r;
	return 0;
}

int render_port(const struct render_config *cfg, const struct svc_port *sp,
		const struct port_state *st, struct elems *out)
{
	int fam = sp->family == AF_INET ? 0 : 1;
	struct ctx c = {cfg, fam, sp->family == AF_INET ? 4 : 16, sp, st, out};
	int r = 0;

	if (!cfg->enabled[fam])
		return 0;
	if (sp->has_cluster_ip)
		r = render_frontend(&c, FE_CLUSTER, &sp->cluster_ip, sp->port);
	for (size_t i = 0; r == 0 && i < sp->n_external_ips; i++)
		r = render_frontend(&c, FE_EXTERNAL, &sp->external_ips[i], sp->port);
	for (size_t i = 0; r == 0 && i < sp->n_lb_ips; i++) {
		r = render_frontend(&c, FE_EXTERNAL, &sp->lb_ips[i], sp->port);
		if (r == 0 && sp->n_source_ranges) {
			uint8_t key[32];
			size_t klen = put_key(key, &sp->lb_ips[i], c.alen, sp->protocol, sp->port);

			r = add_firewall(&c, key, klen);
		}
	}
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
		if ((r = add_key(&c, SET_HAIRPIN, key, 2 * c.alen, NULL, 0)) < 0)
			return r;
	}
	return 0;
}
