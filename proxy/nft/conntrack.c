/* Stale UDP conntrack entries; see conntrack.h.
 *
 * The plan indexes frontends by (family, address, port) and NodePorts by
 * (family, port).  The kernel's table is dumped once per family through
 * libnetfilter_conntrack; the entries to delete are collected during the dump
 * and deleted afterwards on a second handle, since a handle cannot take new
 * requests while it is dumping. */
#include "nft/conntrack.h"

#include <netinet/in.h>
#include <errno.h>
#include <libnetfilter_conntrack/libnetfilter_conntrack.h>
#include <stdlib.h>
#include <string.h>

#include "util/hashmap.h"

struct ct_frontend {
	struct endpoint *eps; /* where its traffic may go now */
	size_t n;
};

struct ct_plan {
	struct hashmap *by_addr; /* family . address . port -> struct ct_frontend */
	struct hashmap *by_port; /* family . port (NodePorts) -> struct ct_frontend */
	size_t n;
};

static void frontend_free(void *p)
{
	struct ct_frontend *f = p;

	if (f) {
		free(f->eps);
		free(f);
	}
}

struct ct_plan *ct_plan_new(void)
{
	struct ct_plan *p = calloc(1, sizeof(*p));

	if (!p)
		return NULL;
	p->by_addr = hashmap_new();
	p->by_port = hashmap_new();
	if (!p->by_addr || !p->by_port) {
		ct_plan_free(p);
		return NULL;
	}
	return p;
}

void ct_plan_free(struct ct_plan *p)
{
	if (!p)
		return;
	hashmap_free(p->by_addr, frontend_free);
	hashmap_free(p->by_port, frontend_free);
	free(p);
}

size_t ct_plan_size(const struct ct_plan *p)
{
	return p->n;
}

static size_t make_key(uint8_t *key, uint8_t family, const struct ipaddr *addr, uint16_t port)
{
	size_t n = 0;

	key[n++] = family;
	if (addr) {
		memcpy(key + n, addr->bytes, 16);
		n += 16;
	}
	memcpy(key + n, &port, 2);
	return n + 2;
}

static int add_eps(struct ct_frontend *f, const struct endpoint *eps, size_t n)
{
	struct endpoint *v;

	if (!n)
		return 0;
	v = realloc(f->eps, (f->n + n) * sizeof(*v));
	if (!v)
		return -ENOMEM;
	memcpy(v + f->n, eps, n * sizeof(*v));
	f->eps = v;
	f->n += n;
	return 0;
}

static int add_frontend(struct ct_plan *p, const struct svc_port *sp, bool gone,
			const struct ipaddr *addr, uint16_t port)
{
	struct hashmap *map = addr ? p->by_addr : p->by_port;
	uint8_t key[24];
	size_t klen = make_key(key, sp->family, addr, port);
	struct ct_frontend *f = hashmap_get(map, key, klen);
	const struct endpoint *eps;
	size_t n;
	int r;

	if (!f) {
		f = calloc(1, sizeof(*f));
		if (!f || hashmap_put(map, key, klen, f, NULL) < 0) {
			free(f);
			return -ENOMEM;
		}
		p->n++;
	}
	if (gone)
		return 0;
	/* Traffic of either kind may use these; an entry to any of them is live. */
	eps = svc_port_internal_eps(sp, &n);
	if ((r = add_eps(f, eps, n)) < 0)
		return r;
	if (sp->etp_local != sp->itp_local) {
		eps = svc_port_external_eps(sp, &n);
		r = add_eps(f, eps, n);
	}
	return r;
}

int ct_plan_add_port(struct ct_plan *p, const struct svc_port *sp, bool gone)
{
	int r = 0;

	if (sp->protocol != IPPROTO_UDP)
		return 0;
	if (sp->has_cluster_ip)
		r = add_frontend(p, sp, gone, &sp->cluster_ip, sp->port);
	for (size_t i = 0; r == 0 && i < sp->n_external_ips; i++)
		r = add_frontend(p, sp, gone, &sp->external_ips[i], sp->port);
	for (size_t i = 0; r == 0 && i < sp->n_lb_ips; i++)
		r = add_frontend(p, sp, gone, &sp->lb_ips[i], sp->port);
	if (r == 0 && sp->node_port)
		r = add_frontend(p, sp, gone, NULL, sp->node_port);
	return r;
}

bool ct_plan_is_stale(const struct ct_plan *p, const struct ipaddr *orig_dst, uint16_t orig_port,
		      const struct ipaddr *reply_src, uint16_t reply_port, bool dnat)
{
	uint8_t key[24];
	const struct ct_frontend *f;
	bool nodeport = false;

	f = hashmap_get(p->by_addr, key, make_key(key, orig_dst->family, orig_dst, orig_port));
	if (!f) {
		f = hashmap_get(p->by_port, key, make_key(key, orig_dst->family, NULL, orig_port));
		nodeport = true;
	}
	if (!f)
		return false;
	if (!dnat) {
		/* Untranslated while the frontend has endpoints: first seen when it
		 * had none.  For a NodePort the port alone does not prove the entry
		 * is ours (it may be traffic through the node), so leave it. */
		return !nodeport && f->n > 0;
	}
	for (size_t i = 0; i < f->n; i++) {
		if (f->eps[i].port == reply_port && ipaddr_equal(&f->eps[i].addr, reply_src))
			return false;
	}
	return true;
}

struct dump_ctx {
	const struct ct_plan *plan;
	struct nf_conntrack **stale;
	size_t n, cap;
	int err;
};

static void get_addr(const struct nf_conntrack *ct, uint8_t family, int attr4, int attr6,
		     struct ipaddr *ret)
{
	memset(ret, 0, sizeof(*ret));
	ret->family = family;
	if (family == AF_INET)
		memcpy(ret->bytes, nfct_get_attr(ct, attr4), 4);
	else
		memcpy(ret->bytes, nfct_get_attr(ct, attr6), 16);
}

static int on_entry(enum nf_conntrack_msg_type type, struct nf_conntrack *ct, void *data)
{
	struct dump_ctx *c = data;
	struct ipaddr dst, src;
	uint8_t family;
	uint16_t dport, sport;
	bool dnat;

	(void)type;
	if (nfct_get_attr_u8(ct, ATTR_L4PROTO) != IPPROTO_UDP)
		return NFCT_CB_CONTINUE;
	family = nfct_get_attr_u8(ct, ATTR_L3PROTO);
	if (family != AF_INET && family != AF_INET6)
		return NFCT_CB_CONTINUE;
	get_addr(ct, family, ATTR_ORIG_IPV4_DST, ATTR_ORIG_IPV6_DST, &dst);
	get_addr(ct, family, ATTR_REPL_IPV4_SRC, ATTR_REPL_IPV6_SRC, &src);
	dport = ntohs(nfct_get_attr_u16(ct, ATTR_ORIG_PORT_DST));
	sport = ntohs(nfct_get_attr_u16(ct, ATTR_REPL_PORT_SRC));
	dnat = nfct_get_attr_u32(ct, ATTR_STATUS) & IPS_DST_NAT;
	if (!ct_plan_is_stale(c->plan, &dst, dport, &src, sport, dnat))
		return NFCT_CB_CONTINUE;
	if (c->n == c->cap) {
		size_t cap = c->cap ? c->cap * 2 : 64;
		struct nf_conntrack **v = realloc(c->stale, cap * sizeof(*v));

		if (!v) {
			c->err = -ENOMEM;
			return NFCT_CB_STOP;
		}
		c->stale = v;
		c->cap = cap;
	}
	c->stale[c->n] = nfct_clone(ct);
	if (c->stale[c->n])
		c->n++;
	return NFCT_CB_CONTINUE;
}

int ct_plan_run(struct ct_plan *p)
{
	static const uint8_t families[] = {AF_INET, AF_INET6};
	struct dump_ctx c = {.plan = p};
	struct nfct_handle *dump = NULL, *del = NULL;
	int deleted = 0, r = 0;

	if (!p->n)
		return 0;
	dump = nfct_open(CONNTRACK, 0);
	del = nfct_open(CONNTRACK, 0);
	if (!dump || !del) {
		r = -errno ? -errno : -EIO;
		goto out;
	}
	nfct_callback_register(dump, NFCT_T_ALL, on_entry, &c);
	for (size_t f = 0; f < sizeof(families) && r == 0; f++) {
		struct nfct_filter_dump *fd = nfct_filter_dump_create();

		if (!fd) {
			r = -ENOMEM;
			break;
		}
		nfct_filter_dump_set_attr_u8(fd, NFCT_FILTER_DUMP_L3NUM, families[f]);
		if (nfct_query(dump, NFCT_Q_DUMP_FILTER, fd) < 0)
			r = -errno;
		nfct_filter_dump_destroy(fd);
	}
	if (c.err)
		r = c.err;
	for (size_t i = 0; i < c.n; i++) {
		/* ENOENT: it expired meanwhile, which is as good. */
		if (nfct_query(del, NFCT_Q_DESTROY, c.stale[i]) == 0)
			deleted++;
		nfct_destroy(c.stale[i]);
	}
	free(c.stale);
out:
	if (dump)
		nfct_close(dump);
	if (del)
		nfct_close(del);
	return r < 0 ? r : deleted;
}
