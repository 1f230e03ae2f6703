/* Service × EndpointSlices × node ⇒ service ports; see serviceport.h.
 *
 * The rules follow kube-proxy's, so that traffic lands where it would have:
 * - slice ports are matched to Service ports by name and protocol;
 * - an endpoint listed in several slices (as during a slice migration)
 *   counts once, its most-ready copy winning;
 * - Cluster-policy traffic uses the ready endpoints, narrowed by topology
 *   hints only when every ready endpoint carries a hint and one of them is
 *   for this node (forNodes) or its zone (forZones); with no ready
 *   endpoint it falls back to serving terminating ones;
 * - Local-policy traffic uses this node's ready endpoints, else this
 *   node's serving terminating ones. */
#include "model/serviceport.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void svc_port_clear(struct svc_port *sp)
{
	free(sp->ns);
	free(sp->name);
	free(sp->port_name);
	free(sp->external_ips);
	free(sp->lb_ips);
	free(sp->source_ranges);
	free(sp->eps);
	free(sp->cluster_eps);
	free(sp->local_eps);
	memset(sp, 0, sizeof(*sp));
}

void svc_ports_clear(struct svc_ports *ports)
{
	if (!ports)
		return;
	for (size_t i = 0; i < ports->n; i++)
		svc_port_clear(&ports->v[i]);
	free(ports->v);
	ports->v = NULL;
	ports->n = 0;
}

static int endpoint_cmp(const void *a, const void *b)
{
	const struct endpoint *x = a, *y = b;
	int r = ipaddr_cmp(&x->addr, &y->addr);

	if (r)
		return r;
	return (int)x->port - (int)y->port;
}

static int rank(uint8_t flags)
{
	return (flags & EP_READY) ? 2 : (flags & EP_SERVING) ? 1 : 0;
}

static bool has_name(char *const *names, size_t n, const char *name)
{
	if (!name)
		return false;
	for (size_t i = 0; i < n; i++) {
		if (!strcmp(names[i], name))
			return true;
	}
	return false;
}

/* A parallel record of each endpoint's hints, which only the topology
 * filter needs. */
struct hinted {
	const struct eps_endpoint *src;
};

enum topo_mode { TOPO_NONE, TOPO_NODE, TOPO_ZONE };

static enum topo_mode topology_mode(const struct endpoint *eps, const struct hinted *h, size_t n,
				    const struct model_node *node)
{
	bool all_node = true, all_zone = true, for_node = false, for_zone = false, any = false;

	for (size_t i = 0; i < n; i++) {
		if (!(eps[i].flags & EP_READY))
			continue;
		any = true;
		if (!h[i].src->n_hint_zones)
			all_zone = false;
		else if (has_name(h[i].src->hint_zones, h[i].src->n_hint_zones, node->zone))
			for_zone = true;
		if (!h[i].src->n_hint_nodes)
			all_node = false;
		else if (has_name(h[i].src->hint_nodes, h[i].src->n_hint_nodes, node->name))
			for_node = true;
	}
	if (!any)
		return TOPO_NONE;
	if (all_node && for_node)
		return TOPO_NODE;
	if (all_zone && for_zone)
		return TOPO_ZONE;
	return TOPO_NONE;
}

static bool topology_allows(const struct hinted *h, enum topo_mode mode,
			    const struct model_node *node)
{
	switch (mode) {
	case TOPO_NODE:
		return has_name(h->src->hint_nodes, h->src->n_hint_nodes, node->name);
	case TOPO_ZONE:
		return has_name(h->src->hint_zones, h->src->n_hint_zones, node->zone);
	default:
		return true;
	}
}

static int categorize(struct svc_port *sp, const struct hinted *h, const struct model_node *node)
{
	enum topo_mode mode = topology_mode(sp->eps, h, sp->n_eps, node);
	bool local_ready = false;

	sp->cluster_eps = calloc(sp->n_eps ? sp->n_eps : 1, sizeof(struct endpoint));
	sp->local_eps = calloc(sp->n_eps ? sp->n_eps : 1, sizeof(struct endpoint));
	if (!sp->cluster_eps || !sp->local_eps)
		return -ENOMEM;
	for (size_t i = 0; i < sp->n_eps; i++) {
		if ((sp->eps[i].flags & EP_READY) && topology_allows(&h[i], mode, node))
			sp->cluster_eps[sp->n_cluster_eps++] = sp->eps[i];
		if ((sp->eps[i].flags & (EP_READY | EP_LOCAL)) == (EP_READY | EP_LOCAL))
			local_ready = true;
	}
	if (!sp->n_cluster_eps) {
		for (size_t i = 0; i < sp->n_eps; i++) {
			uint8_t f = sp->eps[i].flags;

			if ((f & (EP_SERVING | EP_TERMINATING)) == (EP_SERVING | EP_TERMINATING))
				sp->cluster_eps[sp->n_cluster_eps++] = sp->eps[i];
		}
	}
	for (size_t i = 0; i < sp->n_eps; i++) {
		uint8_t f = sp->eps[i].flags;

		if (!(f & EP_LOCAL))
			continue;
		if (local_ready
			    ? (f & EP_READY)
			    : (f & (EP_SERVING | EP_TERMINATING)) == (EP_SERVING | EP_TERMINATING))
			sp->local_eps[sp->n_local_eps++] = sp->eps[i];
	}
	return 0;
}

static const struct eps_port *match_port(const struct endpoint_slice *s,
					 const struct svc_port_spec *p)
{
	for (size_t i = 0; i < s->n_ports; i++) {
		if (s->ports[i].protocol == p->protocol && !strcmp(s->ports[i].name, p->name))
			return &s->ports[i];
	}
	return NULL;
}

static int slice_name_cmp(const void *a, const void *b)
{
	const struct endpoint_slice *x = *(struct endpoint_slice *const *)a;
	const struct endpoint_slice *y = *(struct endpoint_slice *const *)b;

	return strcmp(x->name, y->name);
}

struct gathered {
	struct endpoint ep;
	const struct eps_endpoint *src;
	size_t order; /* position in slice order, the last tie-breaker */
};

static int gathered_cmp(const void *a, const void *b)
{
	const struct gathered *x = a, *y = b;
	int r = endpoint_cmp(&x->ep, &y->ep);

	if (r)
		return r;
	if (rank(x->ep.flags) != rank(y->ep.flags))
		return rank(y->ep.flags) - rank(x->ep.flags);
	return x->order < y->order ? -1 : x->order > y->order;
}

/* Gathers the endpoints of one port and family from the slices, sorted, with
 * duplicates reduced to their most-ready copy; also fills the hints array
 * parallel to sp->eps. */
static int gather(struct svc_port *sp, const struct svc_port_spec *spec,
		  struct endpoint_slice *const *slices, size_t n_slices,
		  const struct model_node *node, struct hinted **ret_hints)
{
	struct gathered *all;
	size_t cap = 0, n = 0, out = 0;
	struct hinted *h;

	for (size_t s = 0; s < n_slices; s++) {
		if (slices[s]->family == sp->family)
			cap += slices[s]->n_endpoints;
	}
	all = calloc(cap ? cap : 1, sizeof(*all));
	sp->eps = calloc(cap ? cap : 1, sizeof(*sp->eps));
	h = calloc(cap ? cap : 1, sizeof(*h));
	if (!all || !sp->eps || !h) {
		free(all);
		free(h);
		return -ENOMEM;
	}
	for (size_t s = 0; s < n_slices; s++) {
		const struct endpoint_slice *sl = slices[s];
		const struct eps_port *port;

		if (sl->family != sp->family || !(port = match_port(sl, spec)) || !port->port)
			continue;
		for (size_t i = 0; i < sl->n_endpoints; i++) {
			const struct eps_endpoint *e = &sl->endpoints[i];
			struct gathered *g = &all[n];

			g->ep.addr = e->addr;
			g->ep.port = port->port;
			g->ep.flags = e->conditions;
			if (e->node_name && node->name && !strcmp(e->node_name, node->name))
				g->ep.flags |= EP_LOCAL;
			g->src = e;
			g->order = n++;
		}
	}
	qsort(all, n, sizeof(*all), gathered_cmp);
	for (size_t i = 0; i < n; i++) {
		if (out && endpoint_cmp(&sp->eps[out - 1], &all[i].ep) == 0)
			continue; /* a less ready copy of the one just kept */
		sp->eps[out] = all[i].ep;
		h[out].src = all[i].src;
		out++;
	}
	sp->n_eps = out;
	free(all);
	*ret_hints = h;
	return 0;
}

static int copy_family_ips(const struct ipaddr *src, size_t n, uint8_t family, struct ipaddr **ret,
			   size_t *ret_n)
{
	*ret = NULL;
	*ret_n = 0;
	if (!n)
		return 0;
	*ret = calloc(n, sizeof(**ret));
	if (!*ret)
		return -ENOMEM;
	for (size_t i = 0; i < n; i++) {
		if (src[i].family == family)
			(*ret)[(*ret_n)++] = src[i];
	}
	return 0;
}

static int build_port(const struct service *svc, const struct svc_port_spec *spec,
		      const struct ipaddr *cluster_ip, struct endpoint_slice *const *slices,
		      size_t n_slices, const struct model_node *node, struct svc_port *sp)
{
	struct hinted *hints = NULL;
	bool externally;
	int r;

	memset(sp, 0, sizeof(*sp));
	sp->ns = strdup(svc->ns);
	sp->name = strdup(svc->name);
	sp->port_name = strdup(spec->name);
	if (!sp->ns || !sp->name || !sp->port_name)
		return -ENOMEM;
	sp->family = cluster_ip->family;
	sp->protocol = spec->protocol;
	sp->port = spec->port;
	sp->has_cluster_ip = true;
	sp->cluster_ip = *cluster_ip;
	if (svc->type == SVC_TYPE_NODE_PORT || svc->type == SVC_TYPE_LOAD_BALANCER)
		sp->node_port = spec->node_port;
	if ((r = copy_family_ips(svc->external_ips, svc->n_external_ips, sp->family,
				 &sp->external_ips, &sp->n_external_ips)) < 0)
		return r;
	if (svc->type == SVC_TYPE_LOAD_BALANCER &&
	    (r = copy_family_ips(svc->lb_ips, svc->n_lb_ips, sp->family, &sp->lb_ips,
				 &sp->n_lb_ips)) < 0)
		return r;
	if (sp->n_lb_ips && svc->n_source_ranges) {
		sp->source_ranges = calloc(svc->n_source_ranges, sizeof(*sp->source_ranges));
		if (!sp->source_ranges)
			return -ENOMEM;
		for (size_t i = 0; i < svc->n_source_ranges; i++) {
			if (svc->source_ranges[i].addr.family == sp->family)
				sp->source_ranges[sp->n_source_ranges++] = svc->source_ranges[i];
		}
	}
	externally = svc_port_external(sp);
	sp->etp_local = externally && svc->etp_local;
	sp->itp_local = svc->itp_local;
	if (sp->etp_local)
		sp->hc_node_port = svc->health_check_node_port;
	sp->affinity = svc->affinity_client_ip;
	sp->affinity_timeout = svc->affinity_client_ip ? svc->affinity_timeout : 0;
	r = gather(sp, spec, slices, n_slices, node, &hints);
	if (r == 0)
		r = categorize(sp, hints, node);
	free(hints);
	return r;
}

int svc_ports_build(const struct service *svc, struct endpoint_slice *const *slices,
		    size_t n_slices, const struct model_node *node, struct svc_ports *ret)
{
	struct endpoint_slice **sorted = NULL;
	struct svc_ports out = {0};
	int r = 0;

	*ret = out;
	if (!svc || svc->headless || svc->has_proxy_name || svc->type == SVC_TYPE_EXTERNAL_NAME ||
	    !svc->n_cluster_ips || !svc->n_ports)
		return 0;
	if (n_slices) {
		sorted = malloc(n_slices * sizeof(*sorted));
		if (!sorted)
			return -ENOMEM;
		memcpy(sorted, slices, n_slices * sizeof(*sorted));
		qsort(sorted, n_slices, sizeof(*sorted), slice_name_cmp);
	}
	out.v = calloc(svc->n_ports * svc->n_cluster_ips, sizeof(*out.v));
	if (!out.v) {
		free(sorted);
		return -ENOMEM;
	}
	for (size_t f = 0; f < svc->n_cluster_ips && r == 0; f++) {
		for (size_t p = 0; p < svc->n_ports && r == 0; p++) {
			r = build_port(svc, &svc->ports[p], &svc->cluster_ips[f], sorted, n_slices,
				       node, &out.v[out.n]);
			out.n++;
		}
	}
	free(sorted);
	if (r < 0) {
		svc_ports_clear(&out);
		return r;
	}
	*ret = out;
	return 0;
}

static bool eps_equal(const struct endpoint *a, size_t na, const struct endpoint *b, size_t nb)
{
	if (na != nb)
		return false;
	for (size_t i = 0; i < na; i++) {
		if (!ipaddr_equal(&a[i].addr, &b[i].addr) || a[i].port != b[i].port ||
		    a[i].flags != b[i].flags)
			return false;
	}
	return true;
}

static bool ips_equal(const struct ipaddr *a, size_t na, const struct ipaddr *b, size_t nb)
{
	if (na != nb)
		return false;
	for (size_t i = 0; i < na; i++) {
		if (!ipaddr_equal(&a[i], &b[i]))
			return false;
	}
	return true;
}

bool svc_port_equal(const struct svc_port *a, const struct svc_port *b)
{
	if (strcmp(a->ns, b->ns) || strcmp(a->name, b->name) || strcmp(a->port_name, b->port_name))
		return false;
	if (a->family != b->family || a->protocol != b->protocol || a->port != b->port ||
	    a->node_port != b->node_port || a->hc_node_port != b->hc_node_port ||
	    a->has_cluster_ip != b->has_cluster_ip || a->etp_local != b->etp_local ||
	    a->itp_local != b->itp_local || a->affinity != b->affinity ||
	    a->affinity_timeout != b->affinity_timeout)
		return false;
	if (a->has_cluster_ip && !ipaddr_equal(&a->cluster_ip, &b->cluster_ip))
		return false;
	if (!ips_equal(a->external_ips, a->n_external_ips, b->external_ips, b->n_external_ips) ||
	    !ips_equal(a->lb_ips, a->n_lb_ips, b->lb_ips, b->n_lb_ips))
		return false;
	if (a->n_source_ranges != b->n_source_ranges)
		return false;
	for (size_t i = 0; i < a->n_source_ranges; i++) {
		if (!ipaddr_equal(&a->source_ranges[i].addr, &b->source_ranges[i].addr) ||
		    a->source_ranges[i].prefix_len != b->source_ranges[i].prefix_len)
			return false;
	}
	return eps_equal(a->eps, a->n_eps, b->eps, b->n_eps) &&
	       eps_equal(a->cluster_eps, a->n_cluster_eps, b->cluster_eps, b->n_cluster_eps) &&
	       eps_equal(a->local_eps, a->n_local_eps, b->local_eps, b->n_local_eps);
}

bool svc_ports_equal(const struct svc_ports *a, const struct svc_ports *b)
{
	size_t na = a ? a->n : 0, nb = b ? b->n : 0;

	if (na != nb)
		return false;
	for (size_t i = 0; i < na; i++) {
		if (!svc_port_equal(&a->v[i], &b->v[i]))
			return false;
	}
	return true;
}

size_t svc_port_local_ready(const struct svc_port *sp)
{
	size_t n = 0;

	for (size_t i = 0; i < sp->n_eps; i++) {
		if ((sp->eps[i].flags & (EP_READY | EP_LOCAL)) == (EP_READY | EP_LOCAL))
			n++;
	}
	return n;
}

const char *svc_port_format(const struct svc_port *sp, char *buf)
{
	snprintf(buf, SVC_PORT_NAME_MAX, "%s/%s:%s/%s%s", sp->ns, sp->name,
		 sp->port_name[0] ? sp->port_name : "", protocol_name(sp->protocol),
		 sp->family == AF_INET6 ? "/IPv6" : "");
	return buf;
}
