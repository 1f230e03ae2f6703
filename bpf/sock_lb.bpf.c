/* Socket-level load balancing: at connect() and sendmsg() time a socket
 * whose destination is a Service frontend is pointed at one of the
 * Service's endpoints instead, so that no packet of the connection ever
 * carries the Service address and no per-packet translation is needed.
 * recvmsg() and getpeername() translate back, so that the application sees
 * the address it asked for.
 *
 * Attached to a cgroup v2 directory (by default the root), so that it sees
 * every process on the node, pods included.  Traffic from pods and from the
 * node itself is internal traffic: it uses the Service's internal endpoints
 * (internalTrafficPolicy) whatever the frontend.
 *
 * A Service without endpoints fails the call with ECONNREFUSED at once
 * (bpf_set_retval), as a reject rule would, instead of the EPERM a plain
 * "return 0" gives. */
#include "vmlinux.h"
#include <bpf/bpf_endian.h>
#include <bpf/bpf_helpers.h>

#include "lb.bpf.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

#define ECONNREFUSED 111

/* Set before load.  With hostns_only, sockets outside the node's own network
 * namespace are left alone: their packets are balanced on the pod's veth
 * instead, so that a service mesh inside the pod still sees the ClusterIP. */
const volatile __u8 hostns_only = 0;
const volatile __u64 host_netns_cookie = 0;

/* What a socket's destination resolves to. */
struct lb_choice {
	__u32 svc_id;
	__u32 backend_id;
	struct lb_backend *be;
};

/* Picks the endpoint for a socket of svc_id.  Returns 1 with *c filled, 0
 * when the socket should be left alone, -1 to refuse the call. */
static __always_inline int lb_sock_choose(struct bpf_sock_addr *ctx, __u32 svc_id,
					  struct lb_sock *sticky, struct lb_choice *c)
{
	struct lb_affinity_key akey = {};
	struct lb_service *svc;
	__u32 id = 0;

	svc = bpf_map_lookup_elem(&lb_svc, &svc_id);
	if (!svc)
		return 0;
	if (!svc->count) {
		/* Endpoints elsewhere only: the policy says drop, so let the
		 * packets go to the Service address, where nothing answers. */
		if (svc->flags & LB_SVC_F_INT_DROP)
			return 0;
		return -1;
	}
	c->svc_id = svc_id;
	if (sticky) {
		c->be = lb_backend_of(svc_id, sticky->backend_id);
		if (c->be) {
			c->backend_id = sticky->backend_id;
			return 1;
		}
	}
	if (svc->flags & LB_SVC_F_AFFINITY) {
		/* Every socket of a pod shares its network namespace; its
		 * source address is often not chosen yet at connect time. */
		akey.netns_cookie = bpf_get_netns_cookie(ctx);
		akey.svc_id = svc_id;
		id = lb_affinity_get(&akey, svc, svc_id);
	}
	if (!id)
		id = lb_pick_slot(svc_id, svc, bpf_get_prandom_u32());
	c->be = lb_backend_of(svc_id, id);
	if (!c->be)
		return 0; /* a slot being rewritten: try the next call */
	c->backend_id = id;
	if (svc->flags & LB_SVC_F_AFFINITY)
		lb_affinity_put(&akey, id);
	return 1;
}

static __always_inline bool lb_sock_skip(struct bpf_sock_addr *ctx)
{
	return hostns_only && bpf_get_netns_cookie(ctx) != host_netns_cookie;
}

/* --- IPv4 ---------------------------------------------------------------- */

/* The IPv4 work is done on an address and port the caller reads from its
 * context and writes back, so that the IPv6 hooks can run it for
 * IPv4-mapped addresses (::ffff:a.b.c.d): a dual-stack socket, as Java
 * and others open by default, connecting to an IPv4 Service. */
static __always_inline struct lb_frontend *lb4_sock_frontend(__be32 addr, __be16 port, __u8 proto)
{
	struct lb4_frontend_key key = {};
	struct lb_frontend *fe;

	key.addr = addr;
	key.port = port;
	key.proto = proto;
	fe = bpf_map_lookup_elem(&lb4_fe, &key);
	if (fe)
		return fe;
	/* A NodePort answers on every node address. */
	if (!bpf_map_lookup_elem(&lb4_nodeaddr, &key.addr))
		return 0;
	key.addr = 0;
	return bpf_map_lookup_elem(&lb4_fe, &key);
}

/* Returns what the hook returns: 1 to go on, 0 to fail the call. */
static __always_inline int lb4_xlate(struct bpf_sock_addr *ctx, __be32 *addr, __be16 *port,
				     bool unconnected)
{
	struct lb4_sock_key skey = {}, rkey = {};
	struct lb_sock *sticky = 0, rev = {}, stick = {};
	struct lb_frontend *fe;
	struct lb_choice c = {};
	__be32 vip = *addr;
	int r;

	if (lb_sock_skip(ctx))
		return 1;
	fe = lb4_sock_frontend(*addr, *port, (__u8)ctx->protocol);
	if (!fe) {
		/* A ClusterIP on a port no Service has: refused, as a reject
		 * rule would. */
		if (!bpf_map_lookup_elem(&lb4_vip, &vip))
			return 1;
		bpf_set_retval(-ECONNREFUSED);
		return 0;
	}
	skey.cookie = bpf_get_socket_cookie(ctx);
	skey.addr = *addr;
	skey.port = *port;
	if (unconnected)
		sticky = bpf_map_lookup_elem(&lb4_sk_sticky, &skey);
	r = lb_sock_choose(ctx, fe->svc_id, sticky, &c);
	if (r < 0) {
		bpf_set_retval(-ECONNREFUSED);
		return 0;
	}
	if (r == 0 || !c.be)
		return 1;
	/* Remember the frontend, for replies and getpeername(). */
	rkey.cookie = skey.cookie;
	rkey.addr = c.be->addr[0];
	rkey.port = c.be->port;
	rev.addr[0] = skey.addr;
	rev.port = skey.port;
	rev.backend_id = c.backend_id;
	bpf_map_update_elem(&lb4_sk_rev, &rkey, &rev, BPF_ANY);
	if (unconnected && (!sticky || sticky->backend_id != c.backend_id)) {
		stick.addr[0] = c.be->addr[0];
		stick.port = c.be->port;
		stick.backend_id = c.backend_id;
		bpf_map_update_elem(&lb4_sk_sticky, &skey, &stick, BPF_ANY);
	}
	*addr = c.be->addr[0];
	*port = c.be->port;
	return 1;
}

/* The frontend a translated socket asked for; false when it was not. */
static __always_inline bool lb4_restore(struct bpf_sock_addr *ctx, __be32 *addr, __be16 *port)
{
	struct lb4_sock_key key = {};
	struct lb_sock *rev;

	key.cookie = bpf_get_socket_cookie(ctx);
	key.addr = *addr;
	key.port = *port;
	rev = bpf_map_lookup_elem(&lb4_sk_rev, &key);
	if (!rev)
		return false;
	*addr = rev->addr[0];
	*port = rev->port;
	return true;
}

static __always_inline int lb4_sock_xlate(struct bpf_sock_addr *ctx, bool unconnected)
{
	__be32 addr = ctx->user_ip4;
	__be16 port = (__be16)ctx->user_port;
	int r = lb4_xlate(ctx, &addr, &port, unconnected);

	if (r == 1 && (addr != ctx->user_ip4 || port != (__be16)ctx->user_port)) {
		ctx->user_ip4 = addr;
		ctx->user_port = (__u32)port;
	}
	return r;
}

static __always_inline void lb4_sock_restore(struct bpf_sock_addr *ctx)
{
	__be32 addr = ctx->user_ip4;
	__be16 port = (__be16)ctx->user_port;

	if (lb4_restore(ctx, &addr, &port)) {
		ctx->user_ip4 = addr;
		ctx->user_port = (__u32)port;
	}
}

SEC("cgroup/connect4")
int lb4_connect(struct bpf_sock_addr *ctx)
{
	return lb4_sock_xlate(ctx, false);
}

SEC("cgroup/sendmsg4")
int lb4_sendmsg(struct bpf_sock_addr *ctx)
{
	return lb4_sock_xlate(ctx, true);
}

SEC("cgroup/recvmsg4")
int lb4_recvmsg(struct bpf_sock_addr *ctx)
{
	lb4_sock_restore(ctx);
	return 1;
}

SEC("cgroup/getpeername4")
int lb4_getpeername(struct bpf_sock_addr *ctx)
{
	lb4_sock_restore(ctx);
	return 1;
}

/* --- IPv6 ---------------------------------------------------------------- */

static __always_inline void lb6_ctx_addr(struct bpf_sock_addr *ctx, __be32 *addr)
{
	addr[0] = ctx->user_ip6[0];
	addr[1] = ctx->user_ip6[1];
	addr[2] = ctx->user_ip6[2];
	addr[3] = ctx->user_ip6[3];
}

static __always_inline void lb6_ctx_set_addr(struct bpf_sock_addr *ctx, const __be32 *addr)
{
	ctx->user_ip6[0] = addr[0];
	ctx->user_ip6[1] = addr[1];
	ctx->user_ip6[2] = addr[2];
	ctx->user_ip6[3] = addr[3];
}

/* Each function below reads the context's address once, into a local, and
 * works on that: re-reading ctx->user_ip6 on several paths lets the
 * compiler merge them into a ctx pointer plus offset, which the verifier
 * refuses. */
static __always_inline struct lb_frontend *lb6_sock_frontend(const __be32 *addr, __be16 port,
							     __u8 proto)
{
	struct lb6_frontend_key key = {};
	struct lb_frontend *fe;

	__builtin_memcpy(key.addr, addr, sizeof(key.addr));
	key.port = port;
	key.proto = proto;
	fe = bpf_map_lookup_elem(&lb6_fe, &key);
	if (fe)
		return fe;
	if (!bpf_map_lookup_elem(&lb6_nodeaddr, key.addr))
		return 0;
	__builtin_memset(key.addr, 0, sizeof(key.addr));
	return bpf_map_lookup_elem(&lb6_fe, &key);
}

/* ::ffff:a.b.c.d */
static __always_inline bool lb6_v4mapped(const __be32 *addr)
{
	return addr[0] == 0 && addr[1] == 0 && addr[2] == bpf_htonl(0xffff);
}

static __always_inline int lb6_sock_xlate(struct bpf_sock_addr *ctx, bool unconnected)
{
	struct lb6_sock_key skey = {}, rkey = {};
	struct lb_sock *sticky = 0, rev = {}, stick = {};
	struct lb6_addr_key vip = {};
	struct lb_frontend *fe;
	struct lb_choice c = {};
	__be16 port = (__be16)ctx->user_port;
	__be32 addr[4];
	int r;

	lb6_ctx_addr(ctx, addr);
	if (lb6_v4mapped(addr)) {
		__be32 a4 = addr[3];
		__be16 p4 = port;

		r = lb4_xlate(ctx, &a4, &p4, unconnected);
		if (r == 1 && (a4 != addr[3] || p4 != port)) {
			addr[3] = a4;
			lb6_ctx_set_addr(ctx, addr);
			ctx->user_port = (__u32)p4;
		}
		return r;
	}
	if (lb_sock_skip(ctx))
		return 1;
	fe = lb6_sock_frontend(addr, port, (__u8)ctx->protocol);
	if (!fe) {
		/* A ClusterIP on a port no Service has: refused, as a reject
		 * rule would. */
		__builtin_memcpy(vip.addr, addr, sizeof(vip.addr));
		if (!bpf_map_lookup_elem(&lb6_vip, &vip))
			return 1;
		bpf_set_retval(-ECONNREFUSED);
		return 0;
	}
	skey.cookie = bpf_get_socket_cookie(ctx);
	__builtin_memcpy(skey.addr, addr, sizeof(skey.addr));
	skey.port = port;
	if (unconnected)
		sticky = bpf_map_lookup_elem(&lb6_sk_sticky, &skey);
	r = lb_sock_choose(ctx, fe->svc_id, sticky, &c);
	if (r < 0) {
		bpf_set_retval(-ECONNREFUSED);
		return 0;
	}
	if (r == 0 || !c.be)
		return 1;
	rkey.cookie = skey.cookie;
	__builtin_memcpy(rkey.addr, c.be->addr, sizeof(rkey.addr));
	rkey.port = c.be->port;
	__builtin_memcpy(rev.addr, skey.addr, sizeof(rev.addr));
	rev.port = skey.port;
	rev.backend_id = c.backend_id;
	bpf_map_update_elem(&lb6_sk_rev, &rkey, &rev, BPF_ANY);
	if (unconnected && (!sticky || sticky->backend_id != c.backend_id)) {
		__builtin_memcpy(stick.addr, c.be->addr, sizeof(stick.addr));
		stick.port = c.be->port;
		stick.backend_id = c.backend_id;
		bpf_map_update_elem(&lb6_sk_sticky, &skey, &stick, BPF_ANY);
	}
	lb6_ctx_set_addr(ctx, c.be->addr);
	ctx->user_port = (__u32)c.be->port;
	return 1;
}

static __always_inline void lb6_sock_restore(struct bpf_sock_addr *ctx)
{
	struct lb6_sock_key key = {};
	struct lb_sock *rev;
	__be16 port = (__be16)ctx->user_port;
	__be32 addr[4];

	lb6_ctx_addr(ctx, addr);
	if (lb6_v4mapped(addr)) {
		__be32 a4 = addr[3];

		if (lb4_restore(ctx, &a4, &port)) {
			addr[3] = a4;
			lb6_ctx_set_addr(ctx, addr);
			ctx->user_port = (__u32)port;
		}
		return;
	}
	key.cookie = bpf_get_socket_cookie(ctx);
	__builtin_memcpy(key.addr, addr, sizeof(key.addr));
	key.port = port;
	rev = bpf_map_lookup_elem(&lb6_sk_rev, &key);
	if (!rev)
		return;
	lb6_ctx_set_addr(ctx, rev->addr);
	ctx->user_port = (__u32)rev->port;
}

SEC("cgroup/connect6")
int lb6_connect(struct bpf_sock_addr *ctx)
{
	return lb6_sock_xlate(ctx, false);
}

SEC("cgroup/sendmsg6")
int lb6_sendmsg(struct bpf_sock_addr *ctx)
{
	return lb6_sock_xlate(ctx, true);
}

SEC("cgroup/recvmsg6")
int lb6_recvmsg(struct bpf_sock_addr *ctx)
{
	lb6_sock_restore(ctx);
	return 1;
}

SEC("cgroup/getpeername6")
int lb6_getpeername(struct bpf_sock_addr *ctx)
{
	lb6_sock_restore(ctx);
	return 1;
}
