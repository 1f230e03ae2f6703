/* Flag parsing; see options.h.  Defaults are kube-proxy's: healthz on
 * 0.0.0.0:10256, metrics on 127.0.0.1:10249, masquerade bit 14, a minimum of
 * 1s and a maximum of 30s between syncs, conntrack sized 32768 entries per
 * core (at least 131072) with a 24h established and 1h close-wait timeout. */
#include "options.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

enum kind {
	K_STRING,
	K_BOOL,
	K_INT,
	K_DURATION,
	K_CIDRS,
	K_MODE,
	K_NODEPORT,
	K_DETECT,
	K_IGNORED, /* a kube-proxy flag with no effect here: noticed, not refused */
};

struct flag {
	const char *name;
	enum kind kind;
	size_t offset;
	const char *help;
	long long min, max; /* K_INT */
	bool takes_value;   /* K_IGNORED */
};

#define OFF(field) offsetof(struct options, field)
#define F(n, k, field, h)                        \
	{                                        \
		n, k, OFF(field), h, 0, 0, false \
	}
#define FI(n, field, lo, hi, h)                        \
	{                                              \
		n, K_INT, OFF(field), h, lo, hi, false \
	}
#define IGN(n, value, h)                        \
	{                                       \
		n, K_IGNORED, 0, h, 0, 0, value \
	}

static const struct flag flags[] = {
	F("kubeconfig", K_STRING, kubeconfig, "path to a kubeconfig file"),
	F("master", K_STRING, master, "API server address (overrides the kubeconfig's)"),
	F("hostname-override", K_STRING, hostname_override,
	  "this node's name, if not the host name"),
	F("config", K_STRING, config, "a KubeProxyConfiguration file; flags given override it"),
	F("proxy-mode", K_MODE, mode, "nftables (default; iptables and ipvs mean it too) or ebpf"),
	F("cluster-cidr", K_CIDRS, cluster_cidrs, "pod CIDRs, comma-separated"),
	F("detect-local-mode", K_DETECT, detect_local,
	  "how pod traffic is recognised: ClusterCIDR, NodeCIDR, BridgeInterface, "
	  "InterfaceNamePrefix"),
	F("pod-bridge-interface", K_STRING, pod_bridge, "the pods' bridge (BridgeInterface mode)"),
	F("pod-interface-name-prefix", K_STRING, pod_iface_prefix,
	  "prefix of the pods' interfaces (InterfaceNamePrefix mode)"),
	F("nodeport-addresses", K_NODEPORT, nodeport_cidrs,
	  "CIDRs of the node addresses NodePorts answer on, or \"primary\""),
	F("healthz-bind-address", K_STRING, healthz_bind, "address:port of /healthz and /livez"),
	F("metrics-bind-address", K_STRING, metrics_bind, "address:port of /metrics"),
	F("masquerade-all", K_BOOL, masquerade_all, "masquerade all Service traffic"),
	FI("iptables-masquerade-bit", masquerade_bit, 0, 31,
	   "fwmark bit marking traffic for masquerading (0-31)"),
	F("min-sync-period", K_DURATION, min_sync_ms, "least time between two syncs"),
	F("sync-period", K_DURATION, sync_ms, "most time between two syncs"),
	F("iptables-min-sync-period", K_DURATION, min_sync_ms, "the same as --min-sync-period"),
	F("iptables-sync-period", K_DURATION, sync_ms, "the same as --sync-period"),
	FI("conntrack-max-per-core", conntrack.max_per_core, 0, 1LL << 31,
	   "conntrack entries per CPU (0: leave nf_conntrack_max alone)"),
	FI("conntrack-min", conntrack.min, 0, 1LL << 31, "conntrack entries at least"),
	F("conntrack-tcp-timeout-established", K_DURATION, conntrack.tcp_established_ms,
	  "idle timeout of established TCP connections (0: leave it)"),
	F("conntrack-tcp-timeout-close-wait", K_DURATION, conntrack.tcp_close_wait_ms,
	  "timeout of TCP connections in CLOSE_WAIT (0: leave it)"),
	F("conntrack-tcp-be-liberal", K_BOOL, conntrack.tcp_be_liberal,
	  "mark only out-of-window RSTs INVALID"),
	F("conntrack-udp-timeout", K_DURATION, conntrack.udp_ms,
	  "idle timeout of unreplied UDP flows (0: leave it)"),
	F("conntrack-udp-timeout-stream", K_DURATION, conntrack.udp_stream_ms,
	  "idle timeout of replied UDP flows (0: leave it)"),
	F("use-core-endpoints", K_BOOL, use_core_endpoints,
	  "read core/v1 Endpoints instead of EndpointSlices (for clusters or tools that publish "
	  "only those)"),
	F("cleanup", K_BOOL, cleanup, "remove everything kproxy programmed, then exit"),
	FI("v", verbosity, 0, 10, "log verbosity (0-10)"),
	F("bpf-cgroup-path", K_STRING, bpf_cgroup_path,
	  "cgroup v2 directory for socket load balancing (ebpf mode)"),
	F("bpf-pin-path", K_STRING, bpf_pin_path,
	  "bpffs directory for kproxy's pinned maps and links (ebpf mode)"),
	F("devices", K_STRING, devices, "interfaces for NodePort/LoadBalancer traffic (ebpf mode)"),
	F("bpf-lb-sock-hostns-only", K_BOOL, bpf_sock_hostns_only,
	  "socket-level balancing for host processes only; pod traffic is balanced per packet "
	  "on the pods' veths, so meshes in pods see the ClusterIP (ebpf mode)"),
	F("version", K_BOOL, show_version, "print the version and exit"),
	F("help", K_BOOL, show_help, "print this help and exit"),
	IGN("bind-address", true, "kube-proxy's idea of the node IP; kproxy reads the Node"),
	IGN("bind-address-hard-fail", false, "bind failures of health servers are logged"),
	IGN("oom-score-adj", true, "set the OOM score in the DaemonSet instead"),
	IGN("profiling", false, "no profiling endpoint"),
	IGN("feature-gates", true, "kproxy has no feature gates"),
	IGN("kube-api-qps", true, "kproxy only lists and watches"),
	IGN("kube-api-burst", true, "kproxy only lists and watches"),
	IGN("kube-api-content-type", true, "kproxy speaks JSON"),
	IGN("config-sync-period", true, "watches resume from their resourceVersion"),
	IGN("proxy-port-range", true, "the userspace proxy is gone"),
	IGN("masquerade-bit", true, "use --iptables-masquerade-bit"),
	IGN("logtostderr", false, "kproxy logs to standard error"),
	IGN("alsologtostderr", false, "kproxy logs to standard error"),
	IGN("log-dir", true, "kproxy logs to standard error"),
	IGN("log-file", true, "kproxy logs to standard error"),
	IGN("vmodule", true, "use --v"),
};

#define NFLAGS (sizeof(flags) / sizeof(flags[0]))

void options_defaults(struct options *o)
{
	memset(o, 0, sizeof(*o));
	o->mode = MODE_NFTABLES;
	o->detect_local = DETECT_LOCAL_CLUSTER_CIDR;
	o->healthz_bind = "0.0.0.0:10256";
	o->metrics_bind = "127.0.0.1:10249";
	o->masquerade_bit = 14;
	o->min_sync_ms = 1000;
	o->sync_ms = 30000;
	o->conntrack.max_per_core = 32768;
	o->conntrack.min = 131072;
	o->conntrack.tcp_established_ms = 24ull * 3600 * 1000;
	o->conntrack.tcp_close_wait_ms = 3600ull * 1000;
	o->bpf_cgroup_path = "/sys/fs/cgroup";
	o->bpf_pin_path = "/sys/fs/bpf/kproxy";
}

int parse_duration_ms(const char *s, uint64_t *ret_ms)
{
	static const struct {
		const char *unit;
		double ms;
	} units[] = {{"ns", 1e-6}, {"us", 1e-3}, {"µs", 1e-3},	{"ms", 1},
		     {"s", 1000},  {"m", 60000}, {"h", 3600000}};
	double total = 0;
	const char *p = s;

	if (!s || !*s)
		return -EINVAL;
	if (!strcmp(s, "0")) {
		*ret_ms = 0;
		return 0;
	}
	while (*p) {
		char num[32], *end;
		size_t len = 0, digits = 0, best = 0, best_len = 0;
		double v;

		/* Decimal digits with at most one point, as Go durations are: no
		 * signs, exponents or hexadecimal. */
		while ((p[len] >= '0' && p[len] <= '9') || p[len] == '.') {
			digits += p[len] != '.';
			len++;
		}
		if (!digits || len >= sizeof(num) || memchr(p, '.', len) != memrchr(p, '.', len))
			return -EINVAL;
		memcpy(num, p, len);
		num[len] = '\0';
		v = strtod(num, &end);
		if (*end)
			return -EINVAL;
		p += len;
		for (size_t i = 0; i < sizeof(units) / sizeof(units[0]); i++) {
			size_t n = strlen(units[i].unit);

			if (!strncmp(p, units[i].unit, n) && n > best_len) {
				best = i;
				best_len = n;
			}
		}
		if (!best_len)
			return -EINVAL;
		total += v * units[best].ms;
		p += best_len;
	}
	if (total > 1e12)
		return -EINVAL;
	*ret_ms = (uint64_t)(total + 0.5);
	return 0;
}

int parse_cidr_list(const char *s, struct cidr *out, size_t max, char *err, size_t errlen)
{
	char buf[1024], *save = NULL, *tok;
	int n = 0;

	if (strlen(s) >= sizeof(buf)) {
		snprintf(err, errlen, "list too long");
		return -EINVAL;
	}
	strcpy(buf, s);
	for (tok = strtok_r(buf, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
		while (*tok == ' ')
			tok++;
		if (!*tok)
			continue;
		if ((size_t)n == max) {
			snprintf(err, errlen, "more than %zu CIDRs", max);
			return -EINVAL;
		}
		if (cidr_parse(tok, true, &out[n]) < 0) {
			snprintf(err, errlen, "\"%s\" is not a CIDR", tok);
			return -EINVAL;
		}
		n++;
	}
	return n;
}

int parse_detect_local(const char *s, enum detect_local *ret)
{
	if (!s || !*s || !strcmp(s, "ClusterCIDR"))
		*ret = DETECT_LOCAL_CLUSTER_CIDR;
	else if (!strcmp(s, "NodeCIDR"))
		*ret = DETECT_LOCAL_NODE_CIDR;
	else if (!strcmp(s, "BridgeInterface"))
		*ret = DETECT_LOCAL_BRIDGE;
	else if (!strcmp(s, "InterfaceNamePrefix"))
		*ret = DETECT_LOCAL_IFACE_PREFIX;
	else
		return -EINVAL;
	return 0;
}

static int parse_bool(const char *v, bool *ret)
{
	if (!v || !strcmp(v, "true") || !strcmp(v, "1") || !strcmp(v, "t") || !strcmp(v, "True"))
		*ret = true;
	else if (!strcmp(v, "false") || !strcmp(v, "0") || !strcmp(v, "f") || !strcmp(v, "False"))
		*ret = false;
	else
		return -EINVAL;
	return 0;
}

static int apply(const struct flag *f, const char *v, struct options *o, char *notices,
		 size_t noticelen, char *err, size_t errlen)
{
	void *field = (char *)o + f->offset;
	char inner[256];
	uint64_t ms;
	char *end;
	long long n;
	int r;

	switch (f->kind) {
	case K_STRING:
		*(const char **)field = v;
		return 0;
	case K_BOOL:
		if (parse_bool(v, field) < 0) {
			snprintf(err, errlen, "--%s: \"%s\" is not true or false", f->name, v);
			return -EINVAL;
		}
		return 0;
	case K_INT:
		errno = 0;
		n = strtoll(v, &end, 10);
		if (errno || end == v || *end || n < f->min || n > f->max) {
			snprintf(err, errlen, "--%s: \"%s\" is not a number in %lld-%lld", f->name,
				 v, f->min, f->max);
			return -EINVAL;
		}
		*(int64_t *)field = n;
		return 0;
	case K_DURATION:
		if (parse_duration_ms(v, &ms) < 0) {
			snprintf(err, errlen, "--%s: \"%s\" is not a duration (like 1s or 250ms)",
				 f->name, v);
			return -EINVAL;
		}
		*(uint64_t *)field = ms;
		return 0;
	case K_CIDRS:
		r = parse_cidr_list(v, o->cluster_cidrs, MAX_CIDRS, inner, sizeof(inner));
		if (r < 0) {
			snprintf(err, errlen, "--%s: %s", f->name, inner);
			return r;
		}
		o->n_cluster_cidrs = (size_t)r;
		return 0;
	case K_NODEPORT:
		if (!strcmp(v, "primary")) {
			o->nodeport_primary = true;
			o->n_nodeport_cidrs = 0;
			return 0;
		}
		r = parse_cidr_list(v, o->nodeport_cidrs, MAX_CIDRS, inner, sizeof(inner));
		if (r < 0) {
			snprintf(err, errlen, "--%s: %s", f->name, inner);
			return r;
		}
		o->n_nodeport_cidrs = (size_t)r;
		o->nodeport_primary = false;
		return 0;
	case K_MODE:
		if (!strcmp(v, "nftables") || !strcmp(v, "") || !strcmp(v, "iptables") ||
		    !strcmp(v, "ipvs")) {
			o->mode = MODE_NFTABLES;
		} else if (!strcmp(v, "ebpf")) {
			o->mode = MODE_EBPF;
		} else {
			snprintf(err, errlen, "--proxy-mode: \"%s\" is not a mode (nftables, ebpf)",
				 v);
			return -EINVAL;
		}
		if (notices && (!strcmp(v, "iptables") || !strcmp(v, "ipvs"))) {
			size_t used = strlen(notices);

			snprintf(notices + used, noticelen - used,
				 "--proxy-mode=%s: using kproxy's nftables dataplane\n", v);
		}
		return 0;
	case K_DETECT:
		if (parse_detect_local(v, &o->detect_local) < 0) {
			snprintf(err, errlen,
				 "--detect-local-mode: \"%s\" is not one of ClusterCIDR, NodeCIDR, "
				 "BridgeInterface, InterfaceNamePrefix",
				 v);
			return -EINVAL;
		}
		return 0;
	case K_IGNORED:
		if (notices) {
			size_t used = strlen(notices);

			snprintf(notices + used, noticelen - used, "--%s has no effect: %s\n",
				 f->name, f->help);
		}
		return 0;
	}
	return -EINVAL;
}

int options_apply(int argc, char **argv, struct options *o, char *notices, size_t noticelen,
		  char *err, size_t errlen)
{
	for (int i = 1; i < argc; i++) {
		const char *arg = argv[i], *name, *eq, *v = NULL;
		const struct flag *f = NULL;
		size_t len;

		if (arg[0] != '-') {
			snprintf(err, errlen, "unexpected argument \"%s\"", arg);
			return -EINVAL;
		}
		name = arg + (arg[1] == '-' ? 2 : 1);
		eq = strchr(name, '=');
		len = eq ? (size_t)(eq - name) : strlen(name);
		for (size_t k = 0; k < NFLAGS; k++) {
			if (strlen(flags[k].name) == len && !strncmp(flags[k].name, name, len)) {
				f = &flags[k];
				break;
			}
		}
		if (!f && len == 1 && name[0] == 'h') {
			o->show_help = true;
			continue;
		}
		if (!f) {
			snprintf(err, errlen, "unknown flag --%.*s", (int)len, name);
			return -EINVAL;
		}
		if (eq) {
			v = eq + 1;
		} else if (f->kind != K_BOOL && !(f->kind == K_IGNORED && !f->takes_value)) {
			if (i + 1 >= argc) {
				snprintf(err, errlen, "--%s needs a value", f->name);
				return -EINVAL;
			}
			v = argv[++i];
		}
		if (apply(f, v, o, notices, noticelen, err, errlen) < 0)
			return -EINVAL;
	}
	return 0;
}

int options_parse(int argc, char **argv, struct options *o, char *err, size_t errlen)
{
	options_defaults(o);
	return options_apply(argc, argv, o, NULL, 0, err, errlen);
}

int options_validate(const struct options *o, char *err, size_t errlen)
{
	if (o->detect_local == DETECT_LOCAL_BRIDGE && (!o->pod_bridge || !*o->pod_bridge)) {
		snprintf(err, errlen,
			 "detect-local-mode BridgeInterface needs "
			 "--pod-bridge-interface (detectLocal.bridgeInterface)");
		return -EINVAL;
	}
	if (o->detect_local == DETECT_LOCAL_IFACE_PREFIX &&
	    (!o->pod_iface_prefix || !*o->pod_iface_prefix)) {
		snprintf(err, errlen,
			 "detect-local-mode InterfaceNamePrefix needs "
			 "--pod-interface-name-prefix (detectLocal.interfaceNamePrefix)");
		return -EINVAL;
	}
	if ((o->pod_bridge && strlen(o->pod_bridge) >= 16) ||
	    (o->pod_iface_prefix && strlen(o->pod_iface_prefix) >= 16)) {
		snprintf(err, errlen, "interface names are at most 15 characters");
		return -EINVAL;
	}
	return 0;
}

void options_usage(FILE *out)
{
	fprintf(out, "Usage: kproxy [flags]\n\nA kube-proxy replacement: programs nftables or "
		     "eBPF so that Service traffic reaches its endpoints.\n\nFlags:\n");
	for (size_t k = 0; k < NFLAGS; k++) {
		if (flags[k].kind != K_IGNORED)
			fprintf(out, "  --%-34s %s\n", flags[k].name, flags[k].help);
	}
	fprintf(out, "\nAccepted for compatibility with kube-proxy, without effect:\n");
	for (size_t k = 0; k < NFLAGS; k++) {
		if (flags[k].kind == K_IGNORED)
			fprintf(out, "  --%-34s %s\n", flags[k].name, flags[k].help);
	}
}
