/* Packet-level load balancing, for what the socket-level hooks cannot see:
 * traffic that enters the node from outside (NodePorts, load-balancer IPs,
 * externalIPs), and, when socket-level balancing is limited to the host
 * namespace, pod traffic on the pod's host-side veth.
 *
 * A new flow to a frontend gets an endpoint (Maglev for external traffic,
 * a random slot for internal traffic, or its affinity entry), its
 * destination rewritten, and its source rewritten to the node's address
 * when the Service's policy says masquerade.  Two connection entries record
 * the translation: the forward one keeps later packets on the same endpoint
 * (while that endpoint exists), the reply one turns replies back into
 * packets from the frontend.  Translated packets are forwarded here, after a
 * FIB lookup, rather than handed to the stack: a masqueraded packet carries
 * one of the node's own addresses as its source, which the stack would drop
 * as a martian on input.
 *
 * Programs:
 *   lb_dev_ingress  on each --devices interface: new flows to frontends,
 *                   and replies of masqueraded flows coming back;
 *   lb_pod_ingress  on each pod's host-side veth: replies from local
 *                   endpoints, and with pod_lb, pod traffic to frontends.
 *
 * A frontend without endpoints answers with ICMP port unreachable (which a
 * connecting TCP socket reports as ECONNREFUSED, as it does for a reset), or
 * drops when the policy says so. */
#include "vmlinux.h"
#include <bpf/bpf_endian.h>
#include <bpf/bpf_helpers.h>

#include "lb.bpf.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

#define TC_ACT_OK	0
#define TC_ACT_SHOT	2
#define TC_ACT_REDIRECT 7

#define ETH_HLEN   14
#define ETH_P_IP   0x0800
#define ETH_P_IPV6 0x86DD
#define AF_INET	   2
#define AF_INET6   10

#define LB_IPPROTO_ICMPV6 58

/* lb_forward(): the frontend has no endpoints; answer with an error. */
#define LB_VERDICT_REJECT (-2)

#define TCP_FLAG_FIN 0x01
#define TCP_FLAG_SYN 0x02
#define TCP_FLAG_RST 0x04

/* Set before load: balance pod traffic per packet on the pod veths (the
 * socket-level hooks then leave pods alone). */
const volatile __u8 pod_lb = 0;

/* IPv4 and IPv6 headers as they are on the wire, without bitfields. */
struct lb_iph {
	__u8 vihl;
	__u8 tos;
	__be16 tot_len;
	__be16 id;
	__be16 frag;
	__u8 ttl;
	__u8 proto;
	__u16 check;
	__be32 saddr;
	__be32 daddr;
};

struct lb_ip6h {
	__be32 vtcfl;
	__be16 plen;
	__u8 nexthdr;
	__u8 hlim;
	__be32 saddr[4];
	__be32 daddr[4];
};

/* Addresses and ports of a packet, either family (IPv4 in word 0). */
struct lb_tuple {
	__be32 saddr[4];
	__be32 daddr[4];
	__be16 sport;
	__be16 dport;
	__u8 proto;
	__u8 family;
	__u16 pad;
};

struct lb_pkt {
	struct lb_tuple t;
	__u32 l4_off;
	__u8 tcp_flags;
	__u8 ipv4_ihl_ok; /* IPv4 header without options */
	__u16 pad;
};

/* --- parsing ------------------------------------------------------------- */

/* Fills p from the packet.  Returns 0, or -1 for what is not ours to
 * handle (other protocols, fragments, IPv6 extension headers). */
static __always_inline int lb_parse(struct __sk_buff *skb, struct lb_pkt *p)
{
	__be16 proto;
	__be16 ports[2];

	if (bpf_skb_load_bytes(skb, 12, &proto, sizeof(proto)) < 0)
		return -1;
	if (proto == bpf_htons(ETH_P_IP)) {
		struct lb_iph ip;

		if (bpf_skb_load_bytes(skb, ETH_HLEN, &ip, sizeof(ip)) < 0)
			return -1;
		if ((ip.vihl & 0x0f) < 5 || (ip.frag & bpf_htons(0x3fff)))
			return -1;
		p->t.family = LB_FAMILY_V4;
		p->t.proto = ip.proto;
		p->t.saddr[0] = ip.saddr;
		p->t.daddr[0] = ip.daddr;
		p->l4_off = ETH_HLEN + (ip.vihl & 0x0f) * 4;
		p->ipv4_ihl_ok = (ip.vihl & 0x0f) == 5;
	} else if (proto == bpf_htons(ETH_P_IPV6)) {
		struct lb_ip6h ip6;

		if (bpf_skb_load_bytes(skb, ETH_HLEN, &ip6, sizeof(ip6)) < 0)
			return -1;
		p->t.family = LB_FAMILY_V6;
		p->t.proto = ip6.nexthdr;
		__builtin_memcpy(p->t.saddr, ip6.saddr, 16);
		__builtin_memcpy(p->t.daddr, ip6.daddr, 16);
		p->l4_off = ETH_HLEN + sizeof(ip6);
	} else {
		return -1;
	}
	if (p->t.proto != IPPROTO_TCP && p->t.proto != IPPROTO_UDP)
		return -1;
	if (bpf_skb_load_bytes(skb, p->l4_off, ports, sizeof(ports)) < 0)
		return -1;
	p->t.sport = ports[0];
	p->t.dport = ports[1];
	if (p->t.proto == IPPROTO_TCP &&
	    bpf_skb_load_bytes(skb, p->l4_off + 13, &p->tcp_flags, 1) < 0)
		return -1;
	return 0;
}

/* TCP flag combinations conntrack accepts (FIN SYN RST PSH ACK URG bits);
 * any other is INVALID there, and is dropped here as kube-proxy drops
 * INVALID packets rather than forward them. */
static __always_inline bool lb_tcp_flags_valid(__u8 flags)
{
	switch (flags & 0x3f) {
	case 0x02: /* SYN */
	case 0x22: /* SYN URG */
	case 0x12: /* SYN ACK */
	case 0x04: /* RST */
	case 0x14: /* RST ACK */
	case 0x1c: /* RST ACK PSH */
	case 0x11: /* FIN ACK */
	case 0x31: /* FIN ACK URG */
	case 0x10: /* ACK */
	case 0x30: /* ACK URG */
	case 0x19: /* FIN ACK PSH */
	case 0x39: /* FIN ACK PSH URG */
	case 0x18: /* ACK PSH */
	case 0x38: /* ACK PSH URG */
		return true;
	}
	return false;
}

static __always_inline bool lb_addr_eq(const __be32 *a, const __be32 *b, __u8 family)
{
	if (family == LB_FAMILY_V4)
		return a[0] == b[0];
	return a[0] == b[0] && a[1] == b[1] && a[2] == b[2] && a[3] == b[3];
}

/* --- lookups ------------------------------------------------------------- */

static __always_inline struct lb_frontend *lb_frontend_of(const struct lb_tuple *t)
{
	if (t->family == LB_FAMILY_V4) {
		struct lb4_frontend_key k = {
			.addr = t->daddr[0], .port = t->dport, .proto = t->proto};
		struct lb_frontend *fe = bpf_map_lookup_elem(&lb4_fe, &k);

		if (fe || !bpf_map_lookup_elem(&lb4_nodeaddr, &k.addr))
			return fe;
		k.addr = 0;
		return bpf_map_lookup_elem(&lb4_fe, &k);
	} else {
		struct lb6_frontend_key k = {.port = t->dport, .proto = t->proto};
		struct lb_frontend *fe;

		__builtin_memcpy(k.addr, t->daddr, 16);
		fe = bpf_map_lookup_elem(&lb6_fe, &k);
		if (fe || !bpf_map_lookup_elem(&lb6_nodeaddr, k.addr))
			return fe;
		__builtin_memset(k.addr, 0, 16);
		return bpf_map_lookup_elem(&lb6_fe, &k);
	}
}

/* What an address that is no frontend is: a ClusterIP on another port
 * (1), unallocated in a Service CIDR (2), or neither (0). */
static __always_inline int lb_vip_kind(const struct lb_tuple *t)
{
	if (t->family == LB_FAMILY_V4) {
		struct lb4_cidr_key k = {.prefixlen = 32, .addr = t->daddr[0]};

		if (bpf_map_lookup_elem(&lb4_vip, &t->daddr[0]))
			return 1;
		return bpf_map_lookup_elem(&lb4_svccidrs, &k) ? 2 : 0;
	} else {
		struct lb6_cidr_key k = {.prefixlen = 128};

		if (bpf_map_lookup_elem(&lb6_vip, t->daddr))
			return 1;
		__builtin_memcpy(k.addr, t->daddr, 16);
		return bpf_map_lookup_elem(&lb6_svccidrs, &k) ? 2 : 0;
	}
}

/* True when the source is a pod (--cluster-cidr). */
static __always_inline bool lb_from_pod(const struct lb_tuple *t)
{
	if (t->family == LB_FAMILY_V4) {
		struct lb4_cidr_key k = {.prefixlen = 32, .addr = t->saddr[0]};

		return bpf_map_lookup_elem(&lb4_cidrs, &k) != 0;
	} else {
		struct lb6_cidr_key k = {.prefixlen = 128};

		__builtin_memcpy(k.addr, t->saddr, 16);
		return bpf_map_lookup_elem(&lb6_cidrs, &k) != 0;
	}
}

/* loadBalancerSourceRanges: true when the source may connect. */
static __always_inline bool lb_source_allowed(const struct lb_tuple *t, __u32 svc_id)
{
	if (t->family == LB_FAMILY_V4) {
		struct lb4_range_key k = {.prefixlen = 64, .svc_id = svc_id, .addr = t->saddr[0]};

		return bpf_map_lookup_elem(&lb4_ranges, &k) != 0;
	} else {
		struct lb6_range_key k = {.prefixlen = 160, .svc_id = svc_id};

		__builtin_memcpy(k.addr, t->saddr, 16);
		return bpf_map_lookup_elem(&lb6_ranges, &k) != 0;
	}
}

/* --- connection entries -------------------------------------------------- */

static __always_inline struct lb_ct *lb_ct_get(const struct lb_tuple *t, __u8 dir)
{
	if (t->family == LB_FAMILY_V4) {
		struct lb4_ct_key k = {.saddr = t->saddr[0],
				       .daddr = t->daddr[0],
				       .sport = t->sport,
				       .dport = t->dport,
				       .proto = t->proto,
				       .dir = dir};

		return bpf_map_lookup_elem(&lb4_ct, &k);
	} else {
		struct lb6_ct_key k = {
			.sport = t->sport, .dport = t->dport, .proto = t->proto, .dir = dir};

		__builtin_memcpy(k.saddr, t->saddr, 16);
		__builtin_memcpy(k.daddr, t->daddr, 16);
		return bpf_map_lookup_elem(&lb6_ct, &k);
	}
}

static __always_inline long lb_ct_put(const struct lb_tuple *t, __u8 dir, const struct lb_ct *v)
{
	if (t->family == LB_FAMILY_V4) {
		struct lb4_ct_key k = {.saddr = t->saddr[0],
				       .daddr = t->daddr[0],
				       .sport = t->sport,
				       .dport = t->dport,
				       .proto = t->proto,
				       .dir = dir};

		return bpf_map_update_elem(&lb4_ct, &k, v, BPF_ANY);
	} else {
		struct lb6_ct_key k = {
			.sport = t->sport, .dport = t->dport, .proto = t->proto, .dir = dir};

		__builtin_memcpy(k.saddr, t->saddr, 16);
		__builtin_memcpy(k.daddr, t->daddr, 16);
		return bpf_map_update_elem(&lb6_ct, &k, v, BPF_ANY);
	}
}

static __always_inline __u64 lb_ct_lifetime(const struct lb_pkt *p)
{
	if (p->t.proto != IPPROTO_TCP)
		return LB_CT_OTHER_LIFETIME * NSEC_PER_SEC;
	if (p->tcp_flags & (TCP_FLAG_FIN | TCP_FLAG_RST))
		return LB_CT_TCP_CLOSING * NSEC_PER_SEC;
	return LB_CT_TCP_LIFETIME * NSEC_PER_SEC;
}

/* Keeps a live entry alive; written only when a second has passed, so that
 * a busy flow does not write its cache line on every packet. */
static __always_inline void lb_ct_touch(struct lb_ct *ct, const struct lb_pkt *p, __u64 now)
{
	__u64 want = now + lb_ct_lifetime(p);

	if (want > ct->expires + NSEC_PER_SEC || (p->tcp_flags & (TCP_FLAG_FIN | TCP_FLAG_RST)))
		ct->expires = want;
}

/* --- rewriting and forwarding -------------------------------------------- */

static __always_inline __u32 lb_csum_off(const struct lb_pkt *p)
{
	return p->l4_off + (p->t.proto == IPPROTO_TCP ? 16 : 6);
}

static __always_inline int lb_rewrite_addr(struct __sk_buff *skb, const struct lb_pkt *p,
					   const __be32 *from, const __be32 *to, __u32 v4_off,
					   __u32 v6_off)
{
	__u64 l4 = BPF_F_PSEUDO_HDR | (p->t.proto == IPPROTO_UDP ? BPF_F_MARK_MANGLED_0 : 0);

	if (lb_addr_eq(from, to, p->t.family))
		return 0;
	if (p->t.family == LB_FAMILY_V4) {
		if (bpf_l4_csum_replace(skb, lb_csum_off(p), from[0], to[0], l4 | 4) < 0 ||
		    bpf_l3_csum_replace(skb, ETH_HLEN + 10, from[0], to[0], 4) < 0)
			return -1;
		return bpf_skb_store_bytes(skb, ETH_HLEN + v4_off, to, 4, 0) < 0 ? -1 : 0;
	} else {
		__s64 diff = bpf_csum_diff((__be32 *)from, 16, (__be32 *)to, 16, 0);

		if (bpf_l4_csum_replace(skb, lb_csum_off(p), 0, diff, l4 | BPF_F_IPV6) < 0)
			return -1;
		return bpf_skb_store_bytes(skb, ETH_HLEN + v6_off, to, 16, 0) < 0 ? -1 : 0;
	}
}

static __always_inline int lb_rewrite_port(struct __sk_buff *skb, const struct lb_pkt *p,
					   __be16 from, __be16 to, __u32 off)
{
	__u64 l4 = p->t.proto == IPPROTO_UDP ? BPF_F_MARK_MANGLED_0 : 0;

	if (from == to)
		return 0;
	if (bpf_l4_csum_replace(skb, lb_csum_off(p), from, to, l4 | 2) < 0)
		return -1;
	return bpf_skb_store_bytes(skb, p->l4_off + off, &to, 2, 0) < 0 ? -1 : 0;
}

/* Rewrites the packet's addresses and ports to those of to. */
static __always_inline int lb_rewrite(struct __sk_buff *skb, const struct lb_pkt *p,
				      const struct lb_tuple *to)
{
	if (lb_rewrite_addr(skb, p, p->t.saddr, to->saddr, 12, 8) < 0 ||
	    lb_rewrite_addr(skb, p, p->t.daddr, to->daddr, 16, 24) < 0 ||
	    lb_rewrite_port(skb, p, p->t.sport, to->sport, 0) < 0 ||
	    lb_rewrite_port(skb, p, p->t.dport, to->dport, 2) < 0)
		return -1;
	return 0;
}

/* Looks up the route of t as if it arrived on the device the packet did. */
static __always_inline long lb_fib(struct __sk_buff *skb, const struct lb_tuple *t,
				   struct bpf_fib_lookup *fib)
{
	fib->ifindex = skb->ingress_ifindex;
	fib->l4_protocol = t->proto;
	if (t->family == LB_FAMILY_V4) {
		fib->family = AF_INET;
		fib->ipv4_src = t->saddr[0];
		fib->ipv4_dst = t->daddr[0];
	} else {
		fib->family = AF_INET6;
		__builtin_memcpy(fib->ipv6_src, t->saddr, 16);
		__builtin_memcpy(fib->ipv6_dst, t->daddr, 16);
	}
	return bpf_fib_lookup(skb, fib, sizeof(*fib), 0);
}

static __always_inline bool lb_fib_ok(long rc)
{
	return rc == BPF_FIB_LKUP_RET_SUCCESS || rc == BPF_FIB_LKUP_RET_NO_NEIGH;
}

/* Decrements the TTL (hop limit), as forwarding does. */
static __always_inline int lb_ttl_dec(struct __sk_buff *skb, const struct lb_pkt *p)
{
	__u8 ttl;

	if (p->t.family == LB_FAMILY_V4) {
		__be16 old, new;

		if (bpf_skb_load_bytes(skb, ETH_HLEN + 8, &old, 2) < 0)
			return -1;
		ttl = *(__u8 *)&old;
		if (ttl <= 1)
			return -1;
		new = old;
		*(__u8 *)&new = ttl - 1;
		if (bpf_l3_csum_replace(skb, ETH_HLEN + 10, old, new, 2) < 0)
			return -1;
		return bpf_skb_store_bytes(skb, ETH_HLEN + 8, &new, 2, 0) < 0 ? -1 : 0;
	}
	if (bpf_skb_load_bytes(skb, ETH_HLEN + 7, &ttl, 1) < 0 || ttl <= 1)
		return -1;
	ttl--;
	return bpf_skb_store_bytes(skb, ETH_HLEN + 7, &ttl, 1, 0) < 0 ? -1 : 0;
}

/* Sends the rewritten packet where the FIB lookup said.  Without a route,
 * a packet whose source was not rewritten may still go through the stack. */
static __always_inline int lb_xmit(struct __sk_buff *skb, const struct lb_pkt *p,
				   struct bpf_fib_lookup *fib, long rc, bool snat)
{
	struct bpf_redir_neigh nh = {};

	if (!lb_fib_ok(rc))
		return snat ? TC_ACT_SHOT : TC_ACT_OK;
	if (lb_ttl_dec(skb, p) < 0)
		return TC_ACT_SHOT;
	if (rc == BPF_FIB_LKUP_RET_SUCCESS) {
		if (bpf_skb_store_bytes(skb, 0, fib->dmac, 6, 0) < 0 ||
		    bpf_skb_store_bytes(skb, 6, fib->smac, 6, 0) < 0)
			return TC_ACT_SHOT;
		return bpf_redirect(fib->ifindex, 0);
	}
	nh.nh_family = fib->family;
	if (fib->family == AF_INET)
		nh.ipv4_nh = fib->ipv4_dst;
	else
		__builtin_memcpy(nh.ipv6_nh, fib->ipv6_dst, 16);
	return bpf_redirect_neigh(fib->ifindex, &nh, sizeof(nh), 0);
}

/* --- ICMP port unreachable ------------------------------------------------ */

static __always_inline __u16 lb_csum_fold(__s64 sum)
{
	__u32 s = (__u32)sum;

	s = (s & 0xffff) + (s >> 16);
	s = (s & 0xffff) + (s >> 16);
	return (__u16)~s;
}

/* Turns the packet into an ICMP port unreachable from its destination and
 * sends it back out of the device it came in on.  The packet is cut to its
 * IP header and 8 bytes of payload, and 28 bytes of new headers go in
 * front. */
static __noinline int lb4_unreachable(struct __sk_buff *skb, const struct lb_pkt *p)
{
	struct {
		struct lb_iph ip;
		__u8 type, code;
		__u16 check;
		__be32 unused;
		__u8 orig[28];
	} r = {};
	__u8 mac[12];

	if (!p->ipv4_ihl_ok)
		return TC_ACT_SHOT;
	if (bpf_skb_load_bytes(skb, 0, mac, sizeof(mac)) < 0 ||
	    bpf_skb_load_bytes(skb, ETH_HLEN, r.orig, sizeof(r.orig)) < 0)
		return TC_ACT_SHOT;
	if (bpf_skb_change_tail(skb, ETH_HLEN + sizeof(r.orig), 0) < 0 ||
	    bpf_skb_adjust_room(skb, 28, BPF_ADJ_ROOM_MAC, 0) < 0)
		return TC_ACT_SHOT;
	r.ip.vihl = 0x45;
	r.ip.tos = 0xc0;
	r.ip.tot_len = bpf_htons(sizeof(r));
	r.ip.ttl = 64;
	r.ip.proto = IPPROTO_ICMP;
	r.ip.saddr = p->t.daddr[0];
	r.ip.daddr = p->t.saddr[0];
	r.ip.check = lb_csum_fold(bpf_csum_diff(0, 0, (__be32 *)&r.ip, sizeof(r.ip), 0));
	r.type = 3; /* destination unreachable */
	r.code = 3; /* port unreachable */
	r.check = lb_csum_fold(bpf_csum_diff(0, 0, (__be32 *)&r.type, 36, 0));
	if (bpf_skb_store_bytes(skb, 0, mac + 6, 6, 0) < 0 ||
	    bpf_skb_store_bytes(skb, 6, mac, 6, 0) < 0 ||
	    bpf_skb_store_bytes(skb, ETH_HLEN, &r, sizeof(r), 0) < 0)
		return TC_ACT_SHOT;
	return bpf_redirect(skb->ifindex, 0);
}

static __noinline int lb6_unreachable(struct __sk_buff *skb, const struct lb_pkt *p)
{
	/* The pseudo header comes first so that one sum covers it and the
	 * ICMPv6 message; only ip and what follows is written. */
	struct {
		__be32 ph_saddr[4];
		__be32 ph_daddr[4];
		__be32 ph_len;
		__be32 ph_next;
		struct lb_ip6h ip;
		__u8 type, code;
		__u16 check;
		__be32 unused;
		__u8 orig[48];
	} r = {};
	__u8 mac[12];

	if (bpf_skb_load_bytes(skb, 0, mac, sizeof(mac)) < 0 ||
	    bpf_skb_load_bytes(skb, ETH_HLEN, r.orig, sizeof(r.orig)) < 0)
		return TC_ACT_SHOT;
	if (bpf_skb_change_tail(skb, ETH_HLEN + sizeof(r.orig), 0) < 0 ||
	    bpf_skb_adjust_room(skb, 48, BPF_ADJ_ROOM_MAC, 0) < 0)
		return TC_ACT_SHOT;
	r.ip.vtcfl = bpf_htonl(0x60000000);
	r.ip.plen = bpf_htons(8 + sizeof(r.orig));
	r.ip.nexthdr = LB_IPPROTO_ICMPV6;
	r.ip.hlim = 64;
	__builtin_memcpy(r.ip.saddr, p->t.daddr, 16);
	__builtin_memcpy(r.ip.daddr, p->t.saddr, 16);
	__builtin_memcpy(r.ph_saddr, p->t.daddr, 16);
	__builtin_memcpy(r.ph_daddr, p->t.saddr, 16);
	r.ph_len = bpf_htonl(8 + sizeof(r.orig));
	r.ph_next = bpf_htonl(LB_IPPROTO_ICMPV6);
	r.type = 1; /* destination unreachable */
	r.code = 4; /* port unreachable */
	{
		__s64 sum = bpf_csum_diff(0, 0, r.ph_saddr, 40, 0);

		sum = bpf_csum_diff(0, 0, (__be32 *)&r.type, 56, (__u32)sum);
		r.check = lb_csum_fold(sum);
	}
	if (bpf_skb_store_bytes(skb, 0, mac + 6, 6, 0) < 0 ||
	    bpf_skb_store_bytes(skb, 6, mac, 6, 0) < 0 ||
	    bpf_skb_store_bytes(skb, ETH_HLEN, &r.ip, sizeof(r) - 40, 0) < 0)
		return TC_ACT_SHOT;
	return bpf_redirect(skb->ifindex, 0);
}

static __always_inline int lb_reject(struct __sk_buff *skb, const struct lb_pkt *p)
{
	if (p->t.proto == IPPROTO_TCP && (p->tcp_flags & TCP_FLAG_RST))
		return TC_ACT_SHOT;
	if (p->t.family == LB_FAMILY_V4)
		return lb4_unreachable(skb, p);
	return lb6_unreachable(skb, p);
}

/* --- the two directions -------------------------------------------------- */

/* A reply of a translated flow: the frontend becomes its source again and
 * the client its destination. */
static __noinline int lb_reply(struct __sk_buff *skb, const struct lb_pkt *p, struct lb_ct *ct)
{
	struct bpf_fib_lookup fib = {};
	struct lb_tuple to = p->t;
	long rc;

	lb_ct_touch(ct, p, bpf_ktime_get_boot_ns());
	__builtin_memcpy(to.saddr, ct->daddr, 16);
	__builtin_memcpy(to.daddr, ct->saddr, 16);
	to.sport = ct->dport;
	to.dport = ct->sport;
	rc = lb_fib(skb, &to, &fib);
	if (lb_rewrite(skb, p, &to) < 0)
		return TC_ACT_SHOT;
	return lb_xmit(skb, p, &fib, rc, true);
}

static __always_inline __u32 lb_flow_hash(const struct lb_tuple *t)
{
	__u32 h = 0x9e3779b9;

#pragma unroll
	for (int i = 0; i < 4; i++) {
		h ^= t->saddr[i];
		h *= 0x85ebca6b;
		h ^= h >> 13;
	}
	h ^= ((__u32)t->sport << 16) | t->dport;
	h ^= (__u32)t->proto << 8;
	h *= 0xc2b2ae35;
	h ^= h >> 16;
	return h;
}

/* Picks the masquerade address for traffic leaving through ifindex: that
 * device's, or the node's primary one (entry 0). */
static __always_inline struct lb_device *lb_masq_device(__u32 ifindex)
{
	struct lb_device *dev = bpf_map_lookup_elem(&lb_devices, &ifindex);
	__u32 primary = 0;

	return dev ? dev : bpf_map_lookup_elem(&lb_devices, &primary);
}

/* Reserves a source port on the masquerade address for a flow to the
 * backend (reply tuple "backend -> masq:port"), with its reply entry. */
static __noinline int lb_snat_port(struct lb_tuple *rt, const struct lb_ct *rv, __u64 now)
{
	for (int i = 0; i < 8; i++) {
		struct lb_ct *old;

		rt->dport = bpf_htons(LB_SNAT_PORT_MIN +
				      bpf_get_prandom_u32() %
					      (LB_SNAT_PORT_MAX - LB_SNAT_PORT_MIN + 1));
		old = lb_ct_get(rt, LB_CT_REPLY);
		if (old && old->expires > now)
			continue;
		if (lb_ct_put(rt, LB_CT_REPLY, rv) == 0)
			return 0;
	}
	return -1;
}

/* A packet of a flow that already has its endpoint. */
static __noinline int lb_established(struct __sk_buff *skb, const struct lb_pkt *p,
				     struct lb_ct *ct, __u64 now)
{
	struct bpf_fib_lookup fib = {};
	struct lb_tuple to = p->t;
	long rc;

	lb_ct_touch(ct, p, now);
	__builtin_memcpy(to.daddr, ct->daddr, 16);
	to.dport = ct->dport;
	if (ct->flags & LB_CT_F_SNAT) {
		__builtin_memcpy(to.saddr, ct->saddr, 16);
		to.sport = ct->sport;
	}
	rc = lb_fib(skb, &to, &fib);
	if (lb_rewrite(skb, p, &to) < 0)
		return TC_ACT_SHOT;
	return lb_xmit(skb, p, &fib, rc, ct->flags & LB_CT_F_SNAT);
}

/* The forward entry of an established flow, if its endpoint still exists:
 * an established flow keeps its endpoint while the endpoint exists. */
static __always_inline struct lb_ct *lb_ct_established(const struct lb_pkt *p, __u32 svc_id,
						       __u64 now)
{
	struct lb_ct *ct = lb_ct_get(&p->t, LB_CT_FWD);
	struct lb_backend *be;

	if (!ct || ct->expires <= now)
		return 0;
	be = lb_backend_of(svc_id, ct->backend_id);
	if (!be || !lb_addr_eq(be->addr, ct->daddr, p->t.family) || be->port != ct->dport)
		return 0;
	return ct;
}

/* Picks the endpoint of a new flow; returns its backend id, or 0. */
static __always_inline __u32 lb_choose(const struct lb_pkt *p, __u32 svc_id,
				       const struct lb_service *svc, bool internal)
{
	struct lb_affinity_key akey = {};
	__u32 id = 0;

	if (svc->flags & LB_SVC_F_AFFINITY) {
		__builtin_memcpy(akey.client, p->t.saddr, 16);
		akey.svc_id = svc_id;
		id = lb_affinity_get(&akey, svc, svc_id);
	}
	if (!id)
		id = internal ? lb_pick_slot(svc_id, svc, bpf_get_prandom_u32())
			      : lb_pick_maglev(svc_id, lb_flow_hash(&p->t));
	if (id && (svc->flags & LB_SVC_F_AFFINITY))
		lb_affinity_put(&akey, id);
	return id;
}

/* A packet to a frontend.  from_pod: the source is a pod, so the internal
 * endpoints apply whatever the frontend.  Returns a TC verdict, or
 * LB_VERDICT_REJECT for the caller to answer with lb_reject() (a sibling
 * call, so that the two stack frames are never live together). */
static __noinline int lb_forward(struct __sk_buff *skb, const struct lb_pkt *p,
				 const struct lb_frontend *fe, bool from_pod, bool hairpin_ok)
{
	struct bpf_fib_lookup fib = {};
	struct lb_tuple to = p->t, rt = {};
	__u64 now = bpf_ktime_get_boot_ns();
	__u32 svc_id = fe->svc_id, id;
	struct lb_backend *be;
	struct lb_service *svc;
	struct lb_ct v = {};
	bool internal, snat;
	long rc;

	svc = bpf_map_lookup_elem(&lb_svc, &svc_id);
	if (!svc)
		return TC_ACT_OK;
	internal = from_pod || fe->kind == LB_FE_CLUSTER;
	snat = fe->flags & (from_pod ? LB_FE_F_MASQ_INT : LB_FE_F_MASQ_EXT);

	if (fe->kind == LB_FE_LB && (svc->flags & LB_SVC_F_SRC_RANGES) && !from_pod &&
	    !lb_source_allowed(&p->t, svc_id))
		return TC_ACT_SHOT;
	if (internal ? !svc->count : !svc->ext_count) {
		if (svc->flags & (internal ? LB_SVC_F_INT_DROP : LB_SVC_F_EXT_DROP))
			return TC_ACT_SHOT;
		return LB_VERDICT_REJECT;
	}
	id = lb_choose(p, svc_id, svc, internal);
	be = lb_backend_of(svc_id, id);
	if (!be)
		return TC_ACT_SHOT;

	__builtin_memcpy(to.daddr, be->addr, 16);
	to.dport = be->port;
	rc = lb_fib(skb, &to, &fib);
	/* A pod reaching itself must see another source, or it drops its own
	 * address arriving from outside as a martian. */
	if (hairpin_ok && lb_addr_eq(be->addr, p->t.saddr, p->t.family))
		snat = true;
	if (snat) {
		struct lb_device *dev = lb_masq_device(lb_fib_ok(rc) ? fib.ifindex : 0);

		if (!dev)
			return TC_ACT_SHOT;
		__builtin_memset(to.saddr, 0, 16);
		if (p->t.family == LB_FAMILY_V4)
			to.saddr[0] = dev->addr4;
		else
			__builtin_memcpy(to.saddr, dev->addr6, 16);
		if (!to.saddr[0] && !to.saddr[1] && !to.saddr[2] && !to.saddr[3])
			return TC_ACT_SHOT;
	}

	/* The reply entry first: a reply can only come after the packet below
	 * has left, and it must find its entry. */
	v.expires = now + lb_ct_lifetime(p);
	__builtin_memcpy(v.daddr, p->t.daddr, 16);
	__builtin_memcpy(v.saddr, p->t.saddr, 16);
	v.dport = p->t.dport;
	v.sport = p->t.sport;
	v.backend_id = id;
	rt.family = p->t.family;
	rt.proto = p->t.proto;
	__builtin_memcpy(rt.saddr, to.daddr, 16);
	rt.sport = to.dport;
	__builtin_memcpy(rt.daddr, to.saddr, 16);
	rt.dport = to.sport;
	if (snat) {
		if (lb_snat_port(&rt, &v, now) < 0)
			return TC_ACT_SHOT;
		to.sport = rt.dport;
	} else if (lb_ct_put(&rt, LB_CT_REPLY, &v) < 0) {
		return TC_ACT_SHOT;
	}
	/* Then the forward entry, reusing v. */
	__builtin_memcpy(v.daddr, to.daddr, 16);
	__builtin_memcpy(v.saddr, to.saddr, 16);
	v.dport = to.dport;
	v.sport = to.sport;
	v.flags = snat ? LB_CT_F_SNAT : 0;
	lb_ct_put(&p->t, LB_CT_FWD, &v);

	if (lb_rewrite(skb, p, &to) < 0)
		return TC_ACT_SHOT;
	return lb_xmit(skb, p, &fib, rc, snat);
}

SEC("tc")
int lb_dev_ingress(struct __sk_buff *skb)
{
	struct lb_frontend *fe;
	struct lb_pkt p = {};
	struct lb_ct *ct;
	__u64 now;
	int r;

	if (lb_parse(skb, &p) < 0)
		return TC_ACT_OK;
	if (p.t.proto == IPPROTO_TCP && !lb_tcp_flags_valid(p.tcp_flags))
		return TC_ACT_SHOT;
	/* Replies of masqueraded flows come back to a node address. */
	ct = lb_ct_get(&p.t, LB_CT_REPLY);
	if (ct && ct->expires > bpf_ktime_get_boot_ns())
		return lb_reply(skb, &p, ct);
	fe = lb_frontend_of(&p.t);
	if (!fe)
		return TC_ACT_OK;
	now = bpf_ktime_get_boot_ns();
	ct = lb_ct_established(&p, fe->svc_id, now);
	if (ct)
		return lb_established(skb, &p, ct, now);
	r = lb_forward(skb, &p, fe, lb_from_pod(&p.t), false);
	return r == LB_VERDICT_REJECT ? lb_reject(skb, &p) : r;
}

SEC("tc")
int lb_pod_ingress(struct __sk_buff *skb)
{
	struct lb_frontend *fe;
	struct lb_pkt p = {};
	struct lb_ct *ct;
	__u64 now;
	int r;

	if (lb_parse(skb, &p) < 0)
		return TC_ACT_OK;
	if (p.t.proto == IPPROTO_TCP && !lb_tcp_flags_valid(p.tcp_flags))
		return TC_ACT_SHOT;
	/* Replies of a local endpoint to a translated flow. */
	ct = lb_ct_get(&p.t, LB_CT_REPLY);
	if (ct && ct->expires > bpf_ktime_get_boot_ns())
		return lb_reply(skb, &p, ct);
	fe = lb_frontend_of(&p.t);
	if (!fe) {
		/* Pod traffic to a Service address that serves nothing: refused
		 * on an unserved port, dropped on an unallocated address, so
		 * that it never leaves the node. */
		r = lb_vip_kind(&p.t);
		if (r == 1)
			return lb_reject(skb, &p);
		return r == 2 ? TC_ACT_SHOT : TC_ACT_OK;
	}
	if (!pod_lb)
		return TC_ACT_OK;
	now = bpf_ktime_get_boot_ns();
	ct = lb_ct_established(&p, fe->svc_id, now);
	if (ct)
		return lb_established(skb, &p, ct, now);
	r = lb_forward(skb, &p, fe, true, true);
	return r == LB_VERDICT_REJECT ? lb_reject(skb, &p) : r;
}
