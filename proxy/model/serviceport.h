/* The desired state of one Service, as the dataplanes consume it: one
 * svc_port per (port, IP family) of the Service, each with the frontends that
 * reach it (ClusterIP, NodePort, externalIPs, load-balancer IPs) and the
 * endpoints that each kind of traffic may use after the traffic policies,
 * topology hints and the terminating-endpoint fallback are applied.
 *
 * Built by a pure function of (Service, its EndpointSlices, this node), so it
 * is unit-tested without a kernel or an API server. */
#ifndef KPROXY_MODEL_SERVICEPORT_H
#define KPROXY_MODEL_SERVICEPORT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "model/objects.h"
#include "util/addr.h"

struct endpoint {
	struct ipaddr addr;
	uint16_t port;
	uint8_t flags; /* EP_READY | EP_SERVING | EP_TERMINATING | EP_LOCAL */
};

struct svc_port {
	char *ns;	 /* the Service's namespace */
	char *name;	 /* the Service's name */
	char *port_name; /* "" when unnamed */
	uint8_t family;	 /* AF_INET or AF_INET6 */
	uint8_t protocol;
	uint16_t port;
	uint16_t node_port;    /* 0: none */
	uint16_t hc_node_port; /* healthCheckNodePort, 0: none */
	bool has_cluster_ip;
	struct ipaddr cluster_ip;
	struct ipaddr *external_ips; /* of this family */
	size_t n_external_ips;
	struct ipaddr *lb_ips; /* of this family */
	size_t n_lb_ips;
	struct cidr *source_ranges; /* of this family */
	size_t n_source_ranges;
	bool etp_local; /* external traffic to local endpoints only */
	bool itp_local; /* internal traffic to local endpoints only */
	bool affinity;	/* sessionAffinity ClientIP */
	uint32_t affinity_timeout;
	/* Every endpoint of this port and family, sorted by address and port. */
	struct endpoint *eps;
	size_t n_eps;
	/* Endpoints for traffic whose policy is Cluster: the ready ones (narrowed
	 * by topology hints when they apply), else the serving terminating ones. */
	struct endpoint *cluster_eps;
	size_t n_cluster_eps;
	/* Endpoints for traffic whose policy is Local: the local ready ones, else
	 * the local serving terminating ones. */
	struct endpoint *local_eps;
	size_t n_local_eps;
};

/* All the ports of one Service. */
struct svc_ports {
	struct svc_port *v;
	size_t n;
};

struct model_node {
	const char *name; /* this node's name, for endpoint locality */
	const char *zone; /* topology.kubernetes.io/zone of this node, or NULL */
};

/* Builds the ports of svc (NULL: the Service does not exist) from its slices.
 * A Service the proxy ignores (headless, ExternalName, labelled with a
 * service-proxy-name) gives zero ports.  Returns 0 with *ret filled (the
 * caller owns it; release with svc_ports_clear()), or -ENOMEM. */
int svc_ports_build(const struct service *svc, struct endpoint_slice *const *slices,
		    size_t n_slices, const struct model_node *node, struct svc_ports *ret);
void svc_ports_clear(struct svc_ports *ports);
bool svc_port_equal(const struct svc_port *a, const struct svc_port *b);
bool svc_ports_equal(const struct svc_ports *a, const struct svc_ports *b);

/* The endpoints that traffic from inside the cluster (pods, the node itself)
 * and from outside it use. */
static inline const struct endpoint *svc_port_internal_eps(const struct svc_port *sp, size_t *n)
{
	*n = sp->itp_local ? sp->n_local_eps : sp->n_cluster_eps;
	return sp->itp_local ? sp->local_eps : sp->cluster_eps;
}

static inline const struct endpoint *svc_port_external_eps(const struct svc_port *sp, size_t *n)
{
	*n = sp->etp_local ? sp->n_local_eps : sp->n_cluster_eps;
	return sp->etp_local ? sp->local_eps : sp->cluster_eps;
}

/* True when the port is reachable from outside the cluster (a NodePort,
 * externalIPs or load-balancer IPs). */
static inline bool svc_port_external(const struct svc_port *sp)
{
	return sp->node_port || sp->n_external_ips || sp->n_lb_ips;
}

/* Number of ready endpoints on this node, what the health-check node port
 * reports. */
size_t svc_port_local_ready(const struct svc_port *sp);

/* "ns/name:port/PROTO" for messages, into buf of at least SVC_PORT_NAME_MAX. */
#define SVC_PORT_NAME_MAX 360
const char *svc_port_format(const struct svc_port *sp, char *buf);

#endif
