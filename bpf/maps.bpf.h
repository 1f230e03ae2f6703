/* The maps every kproxy BPF object shares.  Each object that includes this
 * header gets its own definitions, but the agent pins every map under its
 * pin path before loading, so that all objects (and every restart of the
 * agent) use the same kernel maps: a definition here is the layout of one
 * pinned map, and changing it means bumping KPROXY_MAP_VERSION.
 *
 * Layouts and the meaning of each entry are in include/kproxy/lb.h. */
#ifndef KPROXY_MAPS_BPF_H
#define KPROXY_MAPS_BPF_H

#include "kproxy/lb.h"

/* Frontends: (address, port, protocol) -> Service port. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, LB_MAX_FRONTENDS);
	__type(key, struct lb4_frontend_key);
	__type(value, struct lb_frontend);
	__uint(map_flags, BPF_F_NO_PREALLOC);
} lb4_fe SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, LB_MAX_FRONTENDS);
	__type(key, struct lb6_frontend_key);
	__type(value, struct lb_frontend);
	__uint(map_flags, BPF_F_NO_PREALLOC);
} lb6_fe SEC(".maps");

/* Service ports by id. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, LB_MAX_SERVICES);
	__type(key, __u32);
	__type(value, struct lb_service);
	__uint(map_flags, BPF_F_NO_PREALLOC);
} lb_svc SEC(".maps");

/* Endpoints for internal traffic: (service, slot) -> backend id. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, LB_MAX_SLOTS);
	__type(key, struct lb_slot_key);
	__type(value, __u32);
	__uint(map_flags, BPF_F_NO_PREALLOC);
} lb_slots SEC(".maps");

/* Endpoints by backend id. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, LB_MAX_BACKENDS);
	__type(key, __u32);
	__type(value, struct lb_backend);
	__uint(map_flags, BPF_F_NO_PREALLOC);
} lb_backends SEC(".maps");

/* Endpoints for external traffic: a Maglev table of backend ids per
 * Service, so that one endpoint change moves only its share of flows. */
struct lb_maglev_inner {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, LB_MAGLEV_SIZE);
	__type(key, __u32);
	__type(value, __u32);
};

struct {
	__uint(type, BPF_MAP_TYPE_HASH_OF_MAPS);
	__uint(max_entries, LB_MAX_MAGLEV);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, __u32);
	__array(values, struct lb_maglev_inner);
} lb_maglev SEC(".maps");

/* sessionAffinity: ClientIP. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, LB_AFFINITY_SIZE);
	__type(key, struct lb_affinity_key);
	__type(value, struct lb_affinity);
} lb_affinity SEC(".maps");

/* Socket level: translated sockets, by backend (reverse) and by frontend
 * (sticky). */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, LB_SOCK_SIZE);
	__type(key, struct lb4_sock_key);
	__type(value, struct lb_sock);
} lb4_sk_rev SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, LB_SOCK_SIZE);
	__type(key, struct lb6_sock_key);
	__type(value, struct lb_sock);
} lb6_sk_rev SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, LB_SOCK_SIZE);
	__type(key, struct lb4_sock_key);
	__type(value, struct lb_sock);
} lb4_sk_sticky SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, LB_SOCK_SIZE);
	__type(key, struct lb6_sock_key);
	__type(value, struct lb_sock);
} lb6_sk_sticky SEC(".maps");

/* Packet level: translated connections. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, LB_CT_SIZE);
	__type(key, struct lb4_ct_key);
	__type(value, struct lb_ct);
} lb4_ct SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, LB_CT_SIZE);
	__type(key, struct lb6_ct_key);
	__type(value, struct lb_ct);
} lb6_ct SEC(".maps");

/* This node's addresses (NodePorts answer on each). */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, LB_MAX_NODEADDRS);
	__type(key, __be32);
	__type(value, __u32);
} lb4_nodeaddr SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, LB_MAX_NODEADDRS);
	__type(key, struct lb6_addr_key);
	__type(value, __u32);
} lb6_nodeaddr SEC(".maps");

/* ClusterIPs, whatever the port. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, LB_MAX_FRONTENDS);
	__type(key, __be32);
	__type(value, __u32);
	__uint(map_flags, BPF_F_NO_PREALLOC);
} lb4_vip SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, LB_MAX_FRONTENDS);
	__type(key, struct lb6_addr_key);
	__type(value, __u32);
	__uint(map_flags, BPF_F_NO_PREALLOC);
} lb6_vip SEC(".maps");

/* The Service CIDRs (ServiceCIDR objects). */
struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(max_entries, LB_MAX_CIDRS);
	__type(key, struct lb4_cidr_key);
	__type(value, __u32);
	__uint(map_flags, BPF_F_NO_PREALLOC);
} lb4_svccidrs SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(max_entries, LB_MAX_CIDRS);
	__type(key, struct lb6_cidr_key);
	__type(value, __u32);
	__uint(map_flags, BPF_F_NO_PREALLOC);
} lb6_svccidrs SEC(".maps");

/* --cluster-cidr: sources that count as pods. */
struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(max_entries, LB_MAX_CIDRS);
	__type(key, struct lb4_cidr_key);
	__type(value, __u32);
	__uint(map_flags, BPF_F_NO_PREALLOC);
} lb4_cidrs SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(max_entries, LB_MAX_CIDRS);
	__type(key, struct lb6_cidr_key);
	__type(value, __u32);
	__uint(map_flags, BPF_F_NO_PREALLOC);
} lb6_cidrs SEC(".maps");

/* loadBalancerSourceRanges of every Service. */
struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(max_entries, LB_MAX_FRONTENDS);
	__type(key, struct lb4_range_key);
	__type(value, __u32);
	__uint(map_flags, BPF_F_NO_PREALLOC);
} lb4_ranges SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(max_entries, LB_MAX_FRONTENDS);
	__type(key, struct lb6_range_key);
	__type(value, __u32);
	__uint(map_flags, BPF_F_NO_PREALLOC);
} lb6_ranges SEC(".maps");

/* The devices taking NodePort traffic, with their masquerade addresses. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, LB_MAX_DEVICES);
	__type(key, __u32);
	__type(value, struct lb_device);
} lb_devices SEC(".maps");

#endif
