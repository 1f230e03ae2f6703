/* The interface both dataplanes implement.  The agent's core hands a
 * dataplane the model's changes since the last sync; the dataplane makes the
 * kernel match them in one atomic step, or fails and leaves the kernel as it
 * was (the core then retries with a full sync). */
#ifndef KPROXY_DATAPLANE_H
#define KPROXY_DATAPLANE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "model/tracker.h"
#include "options.h"
#include "util/addr.h"

struct dataplane_config {
	const char *node_name;
	bool ipv4, ipv6;		  /* families to program */
	const struct cidr *cluster_cidrs; /* --cluster-cidr; may be empty */
	size_t n_cluster_cidrs;
	bool masquerade_all;
	uint32_t masquerade_bit; /* bit number of the masquerade fwmark, 0-31 */
	/* How traffic from pods is recognised: by cluster_cidrs, by the Node's
	 * podCIDRs (set_node), or by the interface it arrives on. */
	enum detect_local detect_local;
	const char *pod_iface; /* the bridge, or the interface name prefix */
	/* --nodeport-addresses: NodePorts answer only on local addresses inside
	 * these (or, with nodeport_primary, on the addresses given later with
	 * set_node_addresses); none of either: on every local address. */
	const struct cidr *nodeport_cidrs;
	size_t n_nodeport_cidrs;
	bool nodeport_primary;
	/* eBPF mode only */
	const char *bpf_cgroup_path; /* cgroup v2 directory for socket hooks */
	const char *bpf_pin_path;    /* bpffs directory for pinned maps and links */
	const char *devices;	     /* comma-separated interfaces, or NULL for auto */
	bool bpf_pod_lb;	     /* balance pod traffic per packet on the veths */
};

struct dataplane_stats {
	uint64_t syncs;	       /* successful syncs */
	uint64_t failures;     /* failed syncs */
	uint64_t messages;     /* netlink messages or map operations in the last sync */
	uint64_t elements;     /* rule elements or map entries programmed now */
	uint64_t last_changes; /* elements added or removed by the last sync */
};

struct dataplane;

struct dataplane_ops {
	const char *name;
	/* Prepares the dataplane; touches nothing in the kernel yet.  Returns 0
	 * or -errno with the reason in err. */
	int (*init)(const struct dataplane_config *cfg, struct dataplane **ret, char *err,
		    size_t errlen);
	/* Applies changes.  changes->full means "this is everything; replace
	 * whatever is in the kernel".  Returns 0, or -errno with the reason in err
	 * (the kernel then still holds the previous state). */
	int (*sync)(struct dataplane *dp, const struct tracker_changes *changes, char *err,
		    size_t errlen);
	/* The ServiceCIDRs (traffic to their unallocated addresses is dropped).
	 * Optional; returns 0 or -errno with the reason in err. */
	int (*set_service_cidrs)(struct dataplane *dp, const struct cidr *cidrs, size_t n,
				 char *err, size_t errlen);
	/* This node's object changed: its addresses (--nodeport-addresses
	 * primary) and pod CIDRs (detect-local NodeCIDR).  Optional; returns 0 or
	 * -errno with the reason in err. */
	int (*set_node)(struct dataplane *dp, const struct node_info *node, char *err,
			size_t errlen);
	/* Called every --sync-period: whether what is in the kernel is still
	 * what the dataplane put there (someone may have flushed it).  Returns
	 * 0 when it is, 1 (with the reason in err) when a full sync must restore
	 * it, or -errno.  Optional. */
	int (*check)(struct dataplane *dp, char *err, size_t errlen);
	void (*get_stats)(struct dataplane *dp, struct dataplane_stats *ret);
	/* Frees memory only; what was programmed stays in the kernel so that a
	 * restarted agent takes over without a gap. */
	void (*free)(struct dataplane *dp);
	/* Removes everything this dataplane ever put in the kernel (for eBPF
	 * mode, under cfg's pin path and cgroup).  Returns the number of objects
	 * removed (0 when there was nothing), or -errno with the reason in err. */
	int (*cleanup)(const struct dataplane_config *cfg, char *err, size_t errlen);
};

extern const struct dataplane_ops nft_dataplane_ops;
extern const struct dataplane_ops ebpf_dataplane_ops;

#endif
