/* Command-line flags, spelled as kube-proxy spells them so that a DaemonSet's
 * command line carries over unchanged: "--flag=value" and "--flag value",
 * booleans as "--flag", "--flag=true" or "--flag=false". */
#ifndef KPROXY_OPTIONS_H
#define KPROXY_OPTIONS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "util/addr.h"

enum proxy_mode { MODE_NFTABLES, MODE_EBPF };

#define MAX_CIDRS 16

struct options {
	const char *kubeconfig;
	const char *master;
	const char *hostname_override;
	const char *config;
	enum proxy_mode mode;
	bool mode_set;
	struct cidr cluster_cidrs[MAX_CIDRS];
	size_t n_cluster_cidrs;
	struct cidr nodeport_cidrs[MAX_CIDRS];
	size_t n_nodeport_cidrs;
	bool nodeport_primary; /* --nodeport-addresses=primary */
	const char *healthz_bind;
	const char *metrics_bind;
	bool masquerade_all;
	uint32_t masquerade_bit;
	uint64_t min_sync_ms;
	uint64_t sync_ms;
	bool cleanup;
	int verbosity;
	const char *bpf_cgroup_path;
	const char *bpf_pin_path;
	const char *devices;
	bool show_version;
	bool show_help;
};

/* Fills opts with kube-proxy's defaults, then applies argv.  Returns 0, or
 * -EINVAL with a message naming the flag and the problem in err.  The
 * strings in opts point into argv. */
int options_parse(int argc, char **argv, struct options *opts, char *err, size_t errlen);

/* Parses a Go-style duration ("1s", "250ms", "1m30s", "0") into
 * milliseconds.  Returns 0 or -EINVAL. */
int parse_duration_ms(const char *s, uint64_t *ret_ms);

/* Parses a comma-separated list of CIDRs into out (at most max).  Returns the
 * count, or -EINVAL naming the bad entry in err. */
int parse_cidr_list(const char *s, struct cidr *out, size_t max, char *err, size_t errlen);

void options_usage(FILE *f);

#endif
