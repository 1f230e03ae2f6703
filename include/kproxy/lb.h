/* Map layouts shared by the BPF programs in bpf/ and the agent's eBPF
 * dataplane in proxy/ebpf/.  This is the one definition of each; both sides
 * include it.  Every struct has explicit padding so that its size and layout
 * are the same for clang -target bpf and for the host compiler, and the user
 * side checks the sizes with _Static_assert.
 *
 * Services are found by frontend (address, port, protocol).  Slot 0 of a
 * frontend is the service entry (how many backend slots it has); slots
 * 1..count hold backend ids, written before the count grows and cleared after
 * it shrinks, so a program never reads a slot that is not filled. */
#ifndef KPROXY_LB_H
#define KPROXY_LB_H

/* BPF programs get the kernel's types from vmlinux.h instead. */
#ifndef __VMLINUX_H__
#include <linux/types.h>
#endif

/* Bumped whenever a layout below changes, and part of every pinned map's
 * name, so that a new agent never reuses a pin of an incompatible layout. */
#define KPROXY_MAP_VERSION 1

#define LB_MAX_SERVICES (1u << 18) /* frontends plus backend slots */
#define LB_MAX_BACKENDS (1u << 18)

struct lb4_key {
	__be32 address;	    /* frontend address */
	__be16 dport;	    /* frontend port */
	__u16 backend_slot; /* 0: the service entry; 1..count: a backend slot */
	__u8 proto;	    /* IPPROTO_TCP, IPPROTO_UDP or IPPROTO_SCTP */
	__u8 pad[3];	    /* zero */
};

struct lb4_service {
	__u32 backend_id;	/* in a backend slot: the backend's id; 0 in the service entry */
	__u16 count;		/* in the service entry: number of backend slots */
	__u8 flags;		/* LB_SVC_F_* */
	__u8 pad;		/* zero */
	__u32 affinity_timeout; /* seconds, for LB_SVC_F_AFFINITY */
	__u32 rev_nat_index;	/* id of the frontend, for reverse translation */
};

/* The service has endpoints only elsewhere: drop instead of rejecting. */
#define LB_SVC_F_DROP_NO_LOCAL (1u << 0)
/* sessionAffinity: ClientIP. */
#define LB_SVC_F_AFFINITY (1u << 1)

struct lb4_backend {
	__be32 address; /* endpoint address */
	__be16 port;	/* endpoint port */
	__u8 proto;	/* IPPROTO_* */
	__u8 flags;	/* reserved, zero */
};

#endif
