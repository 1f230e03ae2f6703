/* Flag parsing; see options.h.  Defaults are kube-proxy's: healthz on
 * 0.0.0.0:10256, metrics on 127.0.0.1:10249, masquerade bit 14, a minimum of
 * 1s and a maximum of 30s between syncs. */
#include "options.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

enum kind { K_STRING, K_BOOL, K_INT, K_DURATION, K_CIDRS, K_MODE, K_NODEPORT };

struct flag {
	const char *name;
	enum kind kind;
	size_t offset;
	const char *help;
};

#define F(n, k, field, h)                                \
	{                                                \
		n, k, offsetof(struct options, field), h \
	}

static const struct flag flags[] = {
	F("kubeconfig", K_STRING, kubeconfig, "path to a kubeconfig file"),
	F("master", K_STRING, master, "API server address (overrides the kubeconfig's)"),
	F("hostname-override", K_STRING, hostname_override,
	  "this node's name, if not the host name"),
	F("config", K_STRING, config, "a KubeProxyConfiguration file (not supported yet)"),
	F("proxy-mode", K_MODE, mode, "nftables (default) or ebpf"),
	F("cluster-cidr", K_CIDRS, cluster_cidrs,
	  "pod CIDRs, comma-separated (traffic from "
	  "elsewhere to a ClusterIP is masqueraded)"),
	F("nodeport-addresses", K_NODEPORT, nodeport_cidrs,
	  "CIDRs of the node addresses NodePorts answer on, or \"primary\""),
	F("healthz-bind-address", K_STRING, healthz_bind, "address:port of /healthz and /livez"),
	F("metrics-bind-address", K_STRING, metrics_bind, "address:port of /metrics"),
	F("masquerade-all", K_BOOL, masquerade_all, "masquerade all Service traffic"),
	F("iptables-masquerade-bit", K_INT, masquerade_bit,
	  "fwmark bit used to mark traffic for "
	  "masquerading (0-31)"),
	F("min-sync-period", K_DURATION, min_sync_ms, "least time between two syncs"),
	F("sync-period", K_DURATION, sync_ms, "most time between two syncs"),
	F("cleanup", K_BOOL, cleanup, "remove everything kproxy programmed, then exit"),
	F("v", K_INT, verbosity, "log verbosity (0-10)"),
	F("bpf-cgroup-path", K_STRING, bpf_cgroup_path,
	  "cgroup v2 directory for socket load "
	  "balancing (ebpf mode)"),
	F("bpf-pin-path", K_STRING, bpf_pin_path,
	  "bpffs directory for kproxy's pinned maps and "
	  "links (ebpf mode)"),
	F("devices", K_STRING, devices, "interfaces for NodePort/LoadBalancer traffic (ebpf mode)"),
	F("version", K_BOOL, show_version, "print the version and exit"),
	F("help", K_BOOL, show_help, "print this help and exit"),
};

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
		char *end;
		double v;
		size_t best = 0, best_len = 0;

		char num[32];
		size_t len = 0, digits = 0;

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

static int apply(const struct flag *f, const char *v, struct options *o, char *err, size_t errlen)
{
	void *field = (char *)o + f->offset;
	char inner[256];
	uint64_t ms;
	char *end;
	long n;
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
		n = strtol(v, &end, 10);
		if (errno || end == v || *end || n < 0 ||
		    n > (f->offset == offsetof(struct options, masquerade_bit) ? 31 : 100)) {
			snprintf(err, errlen, "--%s: \"%s\" is not a valid number here", f->name,
				 v);
			return -EINVAL;
		}
		if (f->offset == offsetof(struct options, verbosity))
			o->verbosity = (int)n;
		else
			o->masquerade_bit = (uint32_t)n;
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
		o->mode_set = true;
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
		return 0;
	}
	return -EINVAL;
}

int options_parse(int argc, char **argv, struct options *o, char *err, size_t errlen)
{
	memset(o, 0, sizeof(*o));
	o->mode = MODE_NFTABLES;
	o->healthz_bind = "0.0.0.0:10256";
	o->metrics_bind = "127.0.0.1:10249";
	o->masquerade_bit = 14;
	o->min_sync_ms = 1000;
	o->sync_ms = 30000;
	o->bpf_cgroup_path = "/sys/fs/cgroup";
	o->bpf_pin_path = "/sys/fs/bpf/kproxy";

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
		for (size_t k = 0; k < sizeof(flags) / sizeof(flags[0]); k++) {
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
		} else if (f->kind != K_BOOL) {
			if (i + 1 >= argc) {
				snprintf(err, errlen, "--%s needs a value", f->name);
				return -EINVAL;
			}
			v = argv[++i];
		}
		if (apply(f, v, o, err, errlen) < 0)
			return -EINVAL;
	}
	return 0;
}

void options_usage(FILE *out)
{
	fprintf(out, "Usage: kproxy [flags]\n\nA kube-proxy replacement: programs nftables or "
		     "eBPF so that Service traffic reaches its endpoints.\n\nFlags:\n");
	for (size_t k = 0; k < sizeof(flags) / sizeof(flags[0]); k++)
		fprintf(out, "  --%-24s %s\n", flags[k].name, flags[k].help);
}
