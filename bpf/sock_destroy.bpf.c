/* Ends the UDP sockets still connected to an endpoint that left its Service.
 *
 * A connected UDP socket (a DNS client, a proxy) was pointed at one endpoint
 * at connect() time and would keep sending there after the endpoint is gone:
 * no packet-level conntrack entry exists to flush.  The agent runs this
 * iterator after a sync that removed backends, in every network namespace
 * whose processes the socket-level programs serve; for each socket that the
 * connect hook translated (it has a reverse entry under its cookie and its
 * peer) and whose backend id no longer exists, bpf_sock_destroy() makes the
 * next send or receive fail with ECONNABORTED, so that the application
 * reconnects, and the connect hook picks a live endpoint. */
#include "vmlinux.h"
#include <bpf/bpf_endian.h>
#include <bpf/bpf_helpers.h>

#include "maps.bpf.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

#define AF_INET	 2
#define AF_INET6 10

extern int bpf_sock_destroy(struct sock_common *sk) __ksym;

/* Sockets ended by this run, for the agent's log. */
__u64 destroyed = 0;

/* True when the socket's backend id is gone. */
static __always_inline bool lb_sock_stale(const struct lb_sock *rev)
{
	__u32 id = rev->backend_id;

	return !bpf_map_lookup_elem(&lb_backends, &id);
}

SEC("iter/udp")
int lb_udp_destroy(struct bpf_iter__udp *ctx)
{
	struct udp_sock *udp = ctx->udp_sk;
	struct sock *sk = (struct sock *)udp;
	struct lb_sock *rev;
	__u64 cookie;

	if (!sk)
		return 0;
	cookie = bpf_get_socket_cookie(sk);
	if (sk->__sk_common.skc_family == AF_INET) {
		struct lb4_sock_key key = {};

		key.cookie = cookie;
		key.addr = sk->__sk_common.skc_daddr;
		key.port = sk->__sk_common.skc_dport;
		rev = bpf_map_lookup_elem(&lb4_sk_rev, &key);
	} else if (sk->__sk_common.skc_family == AF_INET6 &&
		   sk->__sk_common.skc_v6_daddr.in6_u.u6_addr32[0] == 0 &&
		   sk->__sk_common.skc_v6_daddr.in6_u.u6_addr32[1] == 0 &&
		   sk->__sk_common.skc_v6_daddr.in6_u.u6_addr32[2] == bpf_htonl(0xffff)) {
		/* A dual-stack socket connected to an IPv4 Service: the
		 * connect hook kept it with the IPv4 sockets. */
		struct lb4_sock_key key = {};

		key.cookie = cookie;
		key.addr = sk->__sk_common.skc_v6_daddr.in6_u.u6_addr32[3];
		key.port = sk->__sk_common.skc_dport;
		rev = bpf_map_lookup_elem(&lb4_sk_rev, &key);
	} else if (sk->__sk_common.skc_family == AF_INET6) {
		struct lb6_sock_key key = {};

		key.cookie = cookie;
		__builtin_memcpy(key.addr, &sk->__sk_common.skc_v6_daddr, sizeof(key.addr));
		key.port = sk->__sk_common.skc_dport;
		rev = bpf_map_lookup_elem(&lb6_sk_rev, &key);
	} else {
		return 0;
	}
	if (!rev || !lb_sock_stale(rev))
		return 0;
	if (bpf_sock_destroy((struct sock_common *)sk) == 0)
		__sync_fetch_and_add(&destroyed, 1);
	return 0;
}
