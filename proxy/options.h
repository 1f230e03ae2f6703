/* Command-line flags, spelled as kube-proxy spells them so that a DaemonSet's
 * command line carries over unchanged: "--flag=value" and "--flag value",
 * booleans as "--flag", "--flag=true" or "--flag=false".  kube-proxy flags
 * that have no meaning here are accepted with a notice rather than refused. */
#ifndef KPROXY_OPTIONS_H
#define KPROXY_OPTIONS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "util/addr.h"

enum proxy_mode { MODE_NFTABLES, MODE_EBPF };

/* How traffic from this node's pods is told apart (--detect-local-mode). */
enum detect_local {
	DETECT_LOCAL_CLUSTER_CIDR, /* source inside --cluster-cidr (the default) */
	DETECT_LOCAL_NODE_CIDR,	   /* source inside the Node's spec.podCIDRs */
	DETECT_LOCAL_BRIDGE,	   /* arrived through --pod-bridge-interface */
	DETECT_LOCAL_IFACE_PREFIX, /* arrived through an interface named --pod-interface-name-prefix* */
};

#define MAX_CIDRS 16

/* Conntrack settings, applied as kube-proxy applies them; 0 leaves the
 * kernel's value alone. */
struct conntrack_opts {
	int64_t max_per_core; /* nf_conntrack_max = max(this * CPUs, min) */
	int64_t min;
	uint64_t tcp_established_ms; /* nf_conntrack_tcp_timeout_established */
	uint64_t tcp_close_wait_ms;  /* nf_conntrack_tcp_timeout_close_wait */
	bool tcp_be_liberal;	     /* nf_conntrack_tcp_be_liberal */
	uint64_t udp_ms;	     /* nf_conntrack_udp_timeout */
	uint64_t udp_stream_ms;	     /* nf_conntrack_udp_timeout_stream */
};

struct options {
	const char *kubeconfig;
	const char *master;
	const char *hostname_override;
	const char *config;
	enum proxy_mode mode;
	struct cidr cluster_cidrs[MAX_CIDRS];
	size_t n_cluster_cidrs;
	enum detect_local detect_local;
	const char *pod_bridge;	      /* --pod-bridge-interface */
	const char *pod_iface_prefix; /* --pod-interface-name-prefix */
	struct cidr nodeport_cidrs[MAX_CIDRS];
	size_t n_nodeport_cidrs;
	bool nodeport_primary; /* --nodeport-addresses=primary */
	const char *healthz_bind;
	const char *metrics_bind;
	bool masquerade_all;
	int64_t masquerade_bit;
	uint64_t min_sync_ms;
	uint64_t sync_ms;
	struct conntrack_opts conntrack;
	bool cleanup;
	int64_t verbosity;
	const char *bpf_cgroup_path;
	const char *bpf_pin_path;
	const char *devices;
	bool bpf_sock_hostns_only;
	bool use_core_endpoints; /* read core/v1 Endpoints instead of EndpointSlices */
	bool show_version;
	bool show_help;
};

/* kube-proxy's defaults. */
void options_defaults(struct options *opts);

/* Applies argv (without touching fields argv does not set).  Returns 0, or
 * -EINVAL with a message naming the flag and the problem in err.  Strings
 * in opts point into argv.  Notices about accepted-but-unused flags go to
 * notices (one per line) when not NULL. */
int options_apply(int argc, char **argv, struct options *opts, char *notices, size_t noticelen,
		  char *err, size_t errlen);

/* options_defaults() then options_apply(), without notices. */
int options_parse(int argc, char **argv, struct options *opts, char *err, size_t errlen);

/* Cross-field checks once flags and file are in (e.g. a detect-local mode
 * that needs its interface).  Returns 0 or -EINVAL with err. */
int options_validate(const struct options *opts, char *err, size_t errlen);

/* Parses a Go-style duration ("1s", "250ms", "1m30s", "0") into
 * milliseconds.  Returns 0 or -EINVAL. */
int parse_duration_ms(const char *s, uint64_t *ret_ms);

/* Parses a comma-separated list of CIDRs into out (at most max).  Returns the
 * count, or -EINVAL naming the bad entry in err. */
int parse_cidr_list(const char *s, struct cidr *out, size_t max, char *err, size_t errlen);

/* Parses --detect-local-mode's value; returns 0 or -EINVAL. */
int parse_detect_local(const char *s, enum detect_local *ret);

void options_usage(FILE *f);

#endif
