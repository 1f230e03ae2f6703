/* Endpoint selection shared by the socket-level and the packet-level
 * programs: from a Service id to a backend, by random slot (internal
 * traffic), by Maglev table (external traffic) or by session affinity.
 *
 * Every function takes what it needs as arguments and returns a backend id
 * (0: none), so that both paths make the same choices. */
#ifndef KPROXY_LB_BPF_H
#define KPROXY_LB_BPF_H

#include "maps.bpf.h"

#define NSEC_PER_SEC 1000000000ull

/* Returns the backend when id still names one of svc_id's endpoints. */
static __always_inline struct lb_backend *lb_backend_of(__u32 svc_id, __u32 id)
{
	struct lb_backend *be;

	if (!id)
		return 0;
	be = bpf_map_lookup_elem(&lb_backends, &id);
	if (!be || be->svc_id != svc_id)
		return 0;
	return be;
}

/* A backend for internal traffic: slot hash % count. */
static __always_inline __u32 lb_pick_slot(__u32 svc_id, const struct lb_service *svc, __u32 hash)
{
	struct lb_slot_key key = {.svc_id = svc_id};
	__u32 *id;

	if (!svc->count)
		return 0;
	key.slot = hash % svc->count;
	id = bpf_map_lookup_elem(&lb_slots, &key);
	return id ? *id : 0;
}

/* A backend for external traffic: the Maglev table entry of the flow's hash,
 * so that every packet of a flow, and every node, picks the same one. */
static __always_inline __u32 lb_pick_maglev(__u32 svc_id, __u32 hash)
{
	__u32 idx = hash % LB_MAGLEV_SIZE, *id;
	void *table;

	table = bpf_map_lookup_elem(&lb_maglev, &svc_id);
	if (!table)
		return 0;
	id = bpf_map_lookup_elem(table, &idx);
	return id ? *id : 0;
}

/* The endpoint this client used last, if the affinity has not expired and
 * the endpoint still serves the Service. */
static __always_inline __u32 lb_affinity_get(const struct lb_affinity_key *key,
					     const struct lb_service *svc, __u32 svc_id)
{
	struct lb_affinity *a = bpf_map_lookup_elem(&lb_affinity, key);
	__u64 now = bpf_ktime_get_boot_ns();

	if (!a)
		return 0;
	if (now - a->last_ns > (__u64)svc->affinity_timeout * NSEC_PER_SEC)
		return 0;
	if (!lb_backend_of(svc_id, a->backend_id))
		return 0;
	a->last_ns = now;
	return a->backend_id;
}

static __always_inline void lb_affinity_put(const struct lb_affinity_key *key, __u32 backend_id)
{
	struct lb_affinity a = {.last_ns = bpf_ktime_get_boot_ns(), .backend_id = backend_id};

	bpf_map_update_elem(&lb_affinity, key, &a, BPF_ANY);
}

#endif
