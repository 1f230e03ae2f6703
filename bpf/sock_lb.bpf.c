/* Socket-level load balancing: at connect() and sendmsg() time a socket
 * whose destination is a Service frontend is pointed at one of the
 * Service's endpoints instead, so that no packet of the connection ever
 * carries the Service address and no per-packet translation is needed.
 *
 * Attached to a cgroup v2 directory (by default the root), so that it sees
 * every process on the node, pods included. */
#include "vmlinux.h"
#include <bpf/bpf_endian.h>
#include <bpf/bpf_helpers.h>

#include "kproxy/lb.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, LB_MAX_SERVICES);
	__type(key, struct lb4_key);
	__type(value, struct lb4_service);
} lb4_services SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, LB_MAX_BACKENDS);
	__type(key, __u32);
	__type(value, struct lb4_backend);
} lb4_backends SEC(".maps");

static __always_inline const struct lb4_backend *lb4_pick(struct lb4_key *key,
							  const struct lb4_service *svc)
{
	const struct lb4_service *slot;

	key->backend_slot = (__u16)(bpf_get_prandom_u32() % svc->count) + 1;
	slot = bpf_map_lookup_elem(&lb4_services, key);
	if (!slot)
		return 0;
	return bpf_map_lookup_elem(&lb4_backends, &slot->backend_id);
}

/* Returns 1 to let the call proceed (with or without a new destination), 0
 * to fail it. */
static __always_inline int lb4_translate(struct bpf_sock_addr *ctx)
{
	struct lb4_key key = {};
	const struct lb4_service *svc;
	const struct lb4_backend *be;

	key.address = ctx->user_ip4;
	key.dport = (__be16)ctx->user_port;
	key.proto = (__u8)ctx->protocol;
	svc = bpf_map_lookup_elem(&lb4_services, &key);
	if (!svc)
		return 1; /* not a Service: leave the socket alone */
	if (!svc->count)
		return 0; /* no endpoints: fail at once rather than time out */
	be = lb4_pick(&key, svc);
	if (!be)
		return 1; /* a slot being rewritten: the packet path still has it */
	ctx->user_ip4 = be->address;
	ctx->user_port = (__u32)be->port;
	return 1;
}

SEC("cgroup/connect4")
int sock4_connect(struct bpf_sock_addr *ctx)
{
	return lb4_translate(ctx);
}

SEC("cgroup/sendmsg4")
int sock4_sendmsg(struct bpf_sock_addr *ctx)
{
	return lb4_translate(ctx);
}
