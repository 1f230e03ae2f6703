/* The API objects the agent acts on, decoded once from JSON into typed,
 * validated structs (see kube/decode.c).  Every string and array here is
 * owned by its object and freed by the matching _free() function; nothing
 * points back into the JSON it came from. */
#ifndef KPROXY_MODEL_OBJECTS_H
#define KPROXY_MODEL_OBJECTS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "util/addr.h"

/* Longest "namespace/name" key: a 63-byte namespace, '/', a 253-byte name. */
#define OBJECT_KEY_MAX 320

enum svc_type {
	SVC_TYPE_CLUSTER_IP,
	SVC_TYPE_NODE_PORT,
	SVC_TYPE_LOAD_BALANCER,
	SVC_TYPE_EXTERNAL_NAME,
};

/* spec.trafficDistribution, and the older topology annotations mapped onto it. */
enum traffic_dist {
	TRAFFIC_DIST_NONE,
	TRAFFIC_DIST_PREFER_ZONE, /* PreferClose, PreferSameZone, topology-mode Auto */
	TRAFFIC_DIST_PREFER_NODE, /* PreferSameNode */
};

struct svc_port_spec {
	char *name;	    /* "" when the port is unnamed */
	uint8_t protocol;   /* IPPROTO_TCP, IPPROTO_UDP or IPPROTO_SCTP */
	uint16_t port;	    /* 1-65535 */
	uint16_t node_port; /* 0 when the Service has none for this port */
};

struct service {
	char *ns;
	char *name;
	enum svc_type type;
	bool headless;	     /* clusterIP "None" */
	bool has_proxy_name; /* labelled service.kubernetes.io/service-proxy-name */
	/* spec.clusterIPs (or clusterIP), primary family first; at most one per family. */
	struct ipaddr *cluster_ips;
	size_t n_cluster_ips;
	struct ipaddr *external_ips;
	size_t n_external_ips;
	/* status.loadBalancer.ingress[].ip, without those whose ipMode is Proxy. */
	struct ipaddr *lb_ips;
	size_t n_lb_ips;
	struct cidr *source_ranges; /* spec.loadBalancerSourceRanges */
	size_t n_source_ranges;
	struct svc_port_spec *ports;
	size_t n_ports;
	bool etp_local;
	bool itp_local;
	uint16_t health_check_node_port;
	bool affinity_client_ip;
	uint32_t affinity_timeout; /* seconds; 10800 when not given */
	enum traffic_dist traffic_dist;
};

/* Endpoint conditions, also used for model endpoints. */
enum {
	EP_READY = 1u << 0,
	EP_SERVING = 1u << 1,
	EP_TERMINATING = 1u << 2,
	EP_LOCAL = 1u << 3, /* on this node (model only) */
};

struct eps_port {
	char *name;	  /* "" when unnamed */
	uint8_t protocol; /* IPPROTO_* */
	uint16_t port;	  /* 0: the slice gives no port (the endpoint cannot be used) */
};

struct eps_endpoint {
	struct ipaddr addr; /* addresses[0], as kube-proxy uses */
	uint8_t conditions; /* EP_READY | EP_SERVING | EP_TERMINATING */
	char *node_name;    /* NULL when absent */
	char *zone;	    /* NULL when absent */
	char **hint_zones;  /* hints.forZones[].name */
	size_t n_hint_zones;
	char **hint_nodes; /* hints.forNodes[].name */
	size_t n_hint_nodes;
};

struct endpoint_slice {
	char *ns;
	char *name;
	char *service_name; /* label kubernetes.io/service-name */
	uint8_t family;	    /* AF_INET or AF_INET6 (FQDN slices are not decoded) */
	struct eps_port *ports;
	size_t n_ports;
	struct eps_endpoint *endpoints;
	size_t n_endpoints;
	/* annotation endpoints.kubernetes.io/last-change-trigger-time, seconds
	 * since the epoch; 0 when absent or unreadable */
	double trigger_time;
};

struct node_info {
	char *name;
	char *zone;	      /* label topology.kubernetes.io/zone, or NULL */
	bool deleting;	      /* metadata.deletionTimestamp set */
	bool to_be_deleted;   /* tainted ToBeDeletedByClusterAutoscaler */
	struct ipaddr *addrs; /* status.addresses of type InternalIP/ExternalIP */
	size_t n_addrs;
	struct cidr pod_cidrs[2]; /* spec.podCIDRs (or podCIDR) */
	size_t n_pod_cidrs;
};

/* A networking.k8s.io ServiceCIDR: the ranges ClusterIPs are allocated from. */
struct service_cidr {
	char *name;
	struct cidr cidrs[2]; /* at most one per family */
	size_t n_cidrs;
};

/* A core/v1 Endpoints object, read as the EndpointSlices it would be: one
 * per subset and address family. */
struct endpoints_obj {
	struct endpoint_slice **slices;
	size_t n_slices;
};

/* All accept NULL. */
void endpoints_obj_free(struct endpoints_obj *e);
void service_cidr_free(struct service_cidr *sc);
void service_free(struct service *svc);
void endpoint_slice_free(struct endpoint_slice *slice);
void node_info_free(struct node_info *node);

const char *protocol_name(uint8_t protocol);

#endif
