/* Map layouts shared by the BPF programs in bpf/ and the agent's eBPF
 * dataplane in proxy/ebpf/.  This is the one definition of each; both sides
 * include it.  Every struct has explicit padding so that its size and layout
 * are the same for clang -target bpf and for the host compiler, and the user
 * side checks the sizes with _Static_assert.
 *
 * The model, in the order a lookup walks it:
 *
 *   frontend (address, port, protocol)  -> service id and frontend kind
 *   service id                          -> endpoint counts and flags
 *   (service id, slot)                  -> backend id   (internal traffic)
 *   service id -> Maglev table[slot]    -> backend id   (external traffic)
 *   backend id                          -> endpoint address and port
 *
 * Backend ids belong to one (service, endpoint) pair and are never shared,
 * so "this backend id still exists" means "this endpoint still serves this
 * Service": that is how a connection, a sticky UDP socket or an affinity
 * entry learns that its endpoint went away.
 *
 * The agent writes a Service so that a reader never sees a slot that is not
 * filled: new backends and slots first, then the counts, and removals in
 * the reverse order (see proxy/ebpf/services.c). */
#ifndef KPROXY_LB_H
#define KPROXY_LB_H

/* BPF programs get the kernel's types from vmlinux.h instead. */
#ifndef __VMLINUX_H__
#include <linux/types.h>
#endif

/* Bumped whenever a layout below changes, and part of every pinned map's
 * path, so that a new agent never reuses a pin of an incompatible layout. */
#define KPROXY_MAP_VERSION 2

#define LB_MAX_FRONTENDS (1u << 16)
#define LB_MAX_SERVICES	 (1u << 16)
#define LB_MAX_SLOTS	 (1u << 20)
#define LB_MAX_BACKENDS	 (1u << 20)
#define LB_MAX_MAGLEV	 (1u << 14) /* services with external frontends */
#define LB_CT_SIZE	 (1u << 18) /* packet-level connections (two entries each) */
#define LB_SOCK_SIZE	 (1u << 18) /* translated sockets */
#define LB_AFFINITY_SIZE (1u << 16)
#define LB_MAX_NODEADDRS 256
#define LB_MAX_CIDRS	 1024
#define LB_MAX_DEVICES	 64

/* Entries of each Service's Maglev table; a prime well above the number of
 * endpoints a Service has, so that each gets a near-equal share. */
#define LB_MAGLEV_SIZE 1021

/* Address families in backend entries (not AF_*, which BPF code lacks). */
#define LB_FAMILY_V4 4
#define LB_FAMILY_V6 6

/* --- frontends ----------------------------------------------------------- */

struct lb4_frontend_key {
	__be32 addr; /* frontend address; 0 for a NodePort (any node address) */
	__be16 port; /* frontend port, or the NodePort */
	__u8 proto;  /* IPPROTO_TCP, IPPROTO_UDP or IPPROTO_SCTP */
	__u8 pad;    /* zero */
};

struct lb6_frontend_key {
	__be32 addr[4]; /* frontend address; all zero for a NodePort */
	__be16 port;	/* frontend port, or the NodePort */
	__u8 proto;	/* IPPROTO_* */
	__u8 pad;	/* zero */
};

enum lb_frontend_kind {
	LB_FE_CLUSTER = 1,  /* a ClusterIP */
	LB_FE_EXTERNAL = 2, /* an externalIP */
	LB_FE_LB = 3,	    /* a load-balancer ingress IP */
	LB_FE_NODEPORT = 4, /* a NodePort on any node address */
};

/* Packet-level traffic to this frontend gets its source rewritten to the
 * node's address when it comes from a pod (MASQ_INT) or from outside the
 * cluster (MASQ_EXT); the same choices as the nftables dataplane's. */
#define LB_FE_F_MASQ_INT (1u << 0)
#define LB_FE_F_MASQ_EXT (1u << 1)

struct lb_frontend {
	__u32 svc_id; /* the Service port this frontend reaches */
	__u8 kind;    /* enum lb_frontend_kind */
	__u8 flags;   /* LB_FE_F_* */
	__u16 pad;    /* zero */
};

/* --- services ------------------------------------------------------------ */

/* Internal traffic has endpoints elsewhere but none it may use (a Local
 * policy on a node without local endpoints): drop instead of rejecting. */
#define LB_SVC_F_INT_DROP (1u << 0)
/* The same for external traffic. */
#define LB_SVC_F_EXT_DROP (1u << 1)
/* sessionAffinity: ClientIP. */
#define LB_SVC_F_AFFINITY (1u << 2)
/* loadBalancerSourceRanges apply to the load-balancer IPs. */
#define LB_SVC_F_SRC_RANGES (1u << 3)

struct lb_service {
	__u32 count;		/* endpoints for internal traffic: slots 0..count-1 */
	__u32 ext_count;	/* endpoints for external traffic (in the Maglev table) */
	__u32 affinity_timeout; /* seconds, with LB_SVC_F_AFFINITY */
	__u16 flags;		/* LB_SVC_F_* */
	__u8 family;		/* LB_FAMILY_V4 or LB_FAMILY_V6 */
	__u8 proto;		/* IPPROTO_* */
};

struct lb_slot_key {
	__u32 svc_id; /* the Service port */
	__u32 slot;   /* 0..count-1 */
};

/* Backends of the same Service that run on this node. */
#define LB_BE_F_LOCAL (1u << 0)

struct lb_backend {
	__be32 addr[4]; /* endpoint address; IPv4 in addr[0], the rest zero */
	__be16 port;	/* endpoint port */
	__u8 family;	/* LB_FAMILY_V4 or LB_FAMILY_V6 */
	__u8 flags;	/* LB_BE_F_* */
	__u32 svc_id;	/* the Service port this backend belongs to */
};

/* --- session affinity ---------------------------------------------------- */

struct lb_affinity_key {
	__u64 netns_cookie; /* socket level: the client's network namespace; else 0 */
	__be32 client[4];   /* packet level: the client's address; else zero */
	__u32 svc_id;	    /* the Service port */
	__u32 pad;	    /* zero */
};

struct lb_affinity {
	__u64 last_ns;	  /* bpf_ktime_get_boot_ns() of the last use */
	__u32 backend_id; /* the endpoint chosen */
	__u32 pad;	  /* zero */
};

/* --- socket level -------------------------------------------------------- */

/* A translated socket, found by its cookie and the address it was pointed
 * at: for the reverse map the backend (so recvmsg and getpeername show the
 * frontend again), for the sticky map the frontend (so an unconnected UDP
 * socket keeps its endpoint from one datagram to the next). */
struct lb4_sock_key {
	__u64 cookie; /* bpf_get_socket_cookie() */
	__be32 addr;  /* backend (reverse map) or frontend (sticky map) address */
	__be16 port;  /* its port */
	__u16 pad;    /* zero */
};

struct lb6_sock_key {
	__u64 cookie;	/* bpf_get_socket_cookie() */
	__be32 addr[4]; /* backend (reverse map) or frontend (sticky map) address */
	__be16 port;	/* its port */
	__u16 pad;	/* zero */
	__u32 pad2;	/* zero */
};

struct lb_sock {
	__be32 addr[4];	  /* reverse map: the frontend; sticky map: the backend */
	__be16 port;	  /* its port */
	__u16 pad;	  /* zero */
	__u32 backend_id; /* the backend chosen, to tell when it goes away */
};

/* --- packet level -------------------------------------------------------- */

enum lb_ct_dir {
	LB_CT_FWD = 0,	 /* client -> frontend, as it arrives */
	LB_CT_REPLY = 1, /* backend -> translated source, as replies arrive */
};

struct lb4_ct_key {
	__be32 saddr; /* source address of the packet */
	__be32 daddr; /* destination address */
	__be16 sport; /* source port */
	__be16 dport; /* destination port */
	__u8 proto;   /* IPPROTO_* */
	__u8 dir;     /* enum lb_ct_dir */
	__u16 pad;    /* zero */
};

struct lb6_ct_key {
	__be32 saddr[4]; /* source address of the packet */
	__be32 daddr[4]; /* destination address */
	__be16 sport;	 /* source port */
	__be16 dport;	 /* destination port */
	__u8 proto;	 /* IPPROTO_* */
	__u8 dir;	 /* enum lb_ct_dir */
	__u16 pad;	 /* zero */
};

/* The connection's source was rewritten (masquerade, hairpin). */
#define LB_CT_F_SNAT (1u << 0)

/* Forward entry: where the connection goes (backend, and the new source when
 * LB_CT_F_SNAT).  Reply entry: what a reply's addresses become again (the
 * frontend as its source, the client as its destination). */
struct lb_ct {
	__u64 expires;	  /* bpf_ktime_get_boot_ns() after which the entry is stale */
	__be32 daddr[4];  /* forward: backend; reply: frontend address */
	__be32 saddr[4];  /* forward: new source (with SNAT); reply: client address */
	__be16 dport;	  /* forward: backend port; reply: frontend port */
	__be16 sport;	  /* forward: new source port; reply: client port */
	__u32 backend_id; /* the backend (forward entries) */
	__u8 flags;	  /* LB_CT_F_* */
	__u8 pad[7];	  /* zero */
};

/* First and last source port used when rewriting the source; above the
 * default local port range (32768-60999), so that no local socket collides. */
#define LB_SNAT_PORT_MIN 61000
#define LB_SNAT_PORT_MAX 65535

/* How long an idle connection keeps its entries, in seconds. */
#define LB_CT_TCP_LIFETIME   21600
#define LB_CT_TCP_CLOSING    10
#define LB_CT_OTHER_LIFETIME 60

/* --- node ---------------------------------------------------------------- */

/* Node addresses (NodePorts answer on them), per family: address -> 1. */
struct lb6_addr_key {
	__be32 addr[4]; /* the address */
};

/* ClusterIPs (every port): address -> number of Service ports on it.  A
 * connection to a ClusterIP on a port no Service has is refused, as
 * kube-proxy refuses it; lb4_vip is keyed by __be32, lb6_vip by
 * struct lb6_addr_key. */

/* Cluster CIDRs, Service CIDRs and source ranges are longest-prefix-match
 * tries; an address in a Service CIDR that is no ClusterIP is dropped. */
struct lb4_cidr_key {
	__u32 prefixlen; /* bits of addr that count */
	__be32 addr;	 /* the prefix */
};

struct lb6_cidr_key {
	__u32 prefixlen; /* bits of addr that count */
	__be32 addr[4];	 /* the prefix */
};

/* loadBalancerSourceRanges: the prefix length counts the 32 bits of svc_id
 * first, so that one trie holds the ranges of every Service. */
struct lb4_range_key {
	__u32 prefixlen; /* 32 + the range's prefix length */
	__u32 svc_id;	 /* the Service port */
	__be32 addr;	 /* the range */
};

struct lb6_range_key {
	__u32 prefixlen; /* 32 + the range's prefix length */
	__u32 svc_id;	 /* the Service port */
	__be32 addr[4];	 /* the range */
};

/* A device that takes NodePort and load-balancer traffic, by ifindex: the
 * addresses its translated traffic is masqueraded to. */
struct lb_device {
	__be32 addr4;	 /* an IPv4 address of the device, or 0 */
	__be32 addr6[4]; /* a global IPv6 address of the device, or zero */
};

#endif
