/* Destructors and small helpers for the decoded API objects. */
#include "model/objects.h"

#include <netinet/in.h>
#include <stdlib.h>

static void free_strv(char **v, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(v[i]);
	free(v);
}

void endpoints_obj_free(struct endpoints_obj *e)
{
	if (!e)
		return;
	for (size_t i = 0; i < e->n_slices; i++)
		endpoint_slice_free(e->slices[i]);
	free(e->slices);
	free(e);
}

void service_cidr_free(struct service_cidr *sc)
{
	if (!sc)
		return;
	free(sc->name);
	free(sc);
}

void service_free(struct service *svc)
{
	if (!svc)
		return;
	free(svc->ns);
	free(svc->name);
	free(svc->cluster_ips);
	free(svc->external_ips);
	free(svc->lb_ips);
	free(svc->source_ranges);
	for (size_t i = 0; i < svc->n_ports; i++)
		free(svc->ports[i].name);
	free(svc->ports);
	free(svc);
}

void endpoint_slice_free(struct endpoint_slice *slice)
{
	if (!slice)
		return;
	free(slice->ns);
	free(slice->name);
	free(slice->service_name);
	for (size_t i = 0; i < slice->n_ports; i++)
		free(slice->ports[i].name);
	free(slice->ports);
	for (size_t i = 0; i < slice->n_endpoints; i++) {
		struct eps_endpoint *ep = &slice->endpoints[i];

		free(ep->node_name);
		free(ep->zone);
		free_strv(ep->hint_zones, ep->n_hint_zones);
		free_strv(ep->hint_nodes, ep->n_hint_nodes);
	}
	free(slice->endpoints);
	free(slice);
}

void node_info_free(struct node_info *node)
{
	if (!node)
		return;
	free(node->name);
	free(node->zone);
	free(node->addrs);
	free(node);
}

const char *protocol_name(uint8_t protocol)
{
	switch (protocol) {
	case IPPROTO_TCP:
		return "TCP";
	case IPPROTO_UDP:
		return "UDP";
	case IPPROTO_SCTP:
		return "SCTP";
	default:
		return "?";
	}
}
