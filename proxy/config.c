/* KubeProxyConfiguration files; see config.h.
 *
 * The file is read through the YAML reader and walked against a table of the
 * fields kube-proxy's v1alpha1 configuration has.  A field given as null, an
 * empty string or a zero duration counts as not given, as kube-proxy's own
 * defaulting treats it.  The documents stay alive until config_release(),
 * since options keep pointers to their strings. */
#include "config.h"

#include <errno.h>
#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/yamljson.h"

struct cfgctx {
	struct options *o;
	char *warnings;
	size_t warnlen;
	char *err;
	size_t errlen;
	const char *mode; /* the file's mode, for choosing iptables vs nftables sections */
};

struct field {
	const char *name;
	int (*apply)(struct cfgctx *c, json_t *v, const char *path);
};

static json_t **docs;
static size_t n_docs;

void config_release(void)
{
	for (size_t i = 0; i < n_docs; i++)
		json_decref(docs[i]);
	free(docs);
	docs = NULL;
	n_docs = 0;
}

static void warn(struct cfgctx *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void warn(struct cfgctx *c, const char *fmt, ...)
{
	size_t used;
	va_list ap;

	if (!c->warnings || !c->warnlen)
		return;
	used = strlen(c->warnings);
	if (used + 2 >= c->warnlen)
		return;
	va_start(ap, fmt);
	vsnprintf(c->warnings + used, c->warnlen - used - 1, fmt, ap);
	va_end(ap);
	used = strlen(c->warnings);
	c->warnings[used] = '\n';
	c->warnings[used + 1] = '\0';
}

static int bad(struct cfgctx *c, const char *path, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static int bad(struct cfgctx *c, const char *path, const char *fmt, ...)
{
	char msg[256];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	snprintf(c->err, c->errlen, "%s: %s", path, msg);
	return -EINVAL;
}

static bool unset(json_t *v)
{
	return !v || json_is_null(v) || (json_is_string(v) && !*json_string_value(v));
}

static int want_string(struct cfgctx *c, json_t *v, const char *path, const char **ret)
{
	*ret = NULL;
	if (unset(v))
		return 0;
	if (!json_is_string(v))
		return bad(c, path, "expected a string");
	*ret = json_string_value(v);
	return 0;
}

static int want_bool(struct cfgctx *c, json_t *v, const char *path, bool *ret, bool *present)
{
	*present = false;
	if (unset(v))
		return 0;
	if (!json_is_boolean(v))
		return bad(c, path, "expected true or false");
	*ret = json_is_true(v);
	*present = true;
	return 0;
}

static int want_int(struct cfgctx *c, json_t *v, const char *path, long long min, long long max,
		    int64_t *ret)
{
	if (unset(v))
		return 0;
	if (!json_is_integer(v) || json_integer_value(v) < min || json_integer_value(v) > max)
		return bad(c, path, "expected a whole number in %lld-%lld", min, max);
	*ret = json_integer_value(v);
	return 0;
}

/* Durations: "24h0m0s"-style strings; "0s" or absent leave the default. */
static int want_duration(struct cfgctx *c, json_t *v, const char *path, uint64_t *ret)
{
	uint64_t ms;

	if (unset(v))
		return 0;
	if (!json_is_string(v) || parse_duration_ms(json_string_value(v), &ms) < 0)
		return bad(c, path, "expected a duration like \"1s\" or \"24h0m0s\"");
	if (ms)
		*ret = ms;
	return 0;
}

static int walk(struct cfgctx *c, json_t *obj, const char *path, const struct field *fields);

/* --- the fields --- */

static int f_ignore(struct cfgctx *c, json_t *v, const char *path)
{
	(void)c;
	(void)v;
	(void)path;
	return 0;
}

static int f_kubeconfig(struct cfgctx *c, json_t *v, const char *path)
{
	const char *s;
	int r = want_string(c, v, path, &s);

	if (r == 0 && s)
		c->o->kubeconfig = s;
	return r;
}

static const struct field client_fields[] = {
	{"kubeconfig", f_kubeconfig}, {"acceptContentTypes", f_ignore},
	{"contentType", f_ignore},    {"qps", f_ignore},
	{"burst", f_ignore},	      {NULL, NULL},
};

static int f_client(struct cfgctx *c, json_t *v, const char *path)
{
	return walk(c, v, path, client_fields);
}

#define STRING_FIELD(fn, member)                                     \
	static int fn(struct cfgctx *c, json_t *v, const char *path) \
	{                                                            \
		const char *s;                                       \
		int r = want_string(c, v, path, &s);                 \
                                                                     \
		if (r == 0 && s)                                     \
			c->o->member = s;                            \
		return r;                                            \
	}

STRING_FIELD(f_hostname, hostname_override)
STRING_FIELD(f_healthz, healthz_bind)
STRING_FIELD(f_metrics, metrics_bind)

static int f_cluster_cidr(struct cfgctx *c, json_t *v, const char *path)
{
	char inner[256];
	const char *s;
	int r = want_string(c, v, path, &s);

	if (r < 0 || !s)
		return r;
	r = parse_cidr_list(s, c->o->cluster_cidrs, MAX_CIDRS, inner, sizeof(inner));
	if (r < 0)
		return bad(c, path, "%s", inner);
	c->o->n_cluster_cidrs = (size_t)r;
	return 0;
}

static int f_detect_mode(struct cfgctx *c, json_t *v, const char *path)
{
	const char *s;
	int r = want_string(c, v, path, &s);

	if (r < 0 || !s)
		return r;
	if (parse_detect_local(s, &c->o->detect_local) < 0)
		return bad(c, path,
			   "\"%s\" is not one of ClusterCIDR, NodeCIDR, BridgeInterface, "
			   "InterfaceNamePrefix",
			   s);
	return 0;
}

STRING_FIELD(f_bridge, pod_bridge)
STRING_FIELD(f_iface_prefix, pod_iface_prefix)

static const struct field detect_fields[] = {
	{"bridgeInterface", f_bridge},
	{"interfaceNamePrefix", f_iface_prefix},
	{NULL, NULL},
};

static int f_detect(struct cfgctx *c, json_t *v, const char *path)
{
	return walk(c, v, path, detect_fields);
}

static int f_mode(struct cfgctx *c, json_t *v, const char *path)
{
	const char *s;
	int r = want_string(c, v, path, &s);

	if (r < 0 || !s)
		return r;
	c->mode = s;
	if (!strcmp(s, "nftables") || !strcmp(s, "iptables") || !strcmp(s, "ipvs"))
		c->o->mode = MODE_NFTABLES;
	else if (!strcmp(s, "ebpf"))
		c->o->mode = MODE_EBPF;
	else
		return bad(c, path,
			   "\"%s\" is not a mode kproxy has (nftables, ebpf; iptables and "
			   "ipvs mean nftables)",
			   s);
	if (strcmp(s, "nftables") && strcmp(s, "ebpf"))
		warn(c, "%s: %s: using kproxy's nftables dataplane", path, s);
	return 0;
}

static int f_masq_all(struct cfgctx *c, json_t *v, const char *path)
{
	bool b, present;
	int r = want_bool(c, v, path, &b, &present);

	if (r == 0 && present && b)
		c->o->masquerade_all = true;
	return r;
}

static int f_masq_bit(struct cfgctx *c, json_t *v, const char *path)
{
	return want_int(c, v, path, 0, 31, &c->o->masquerade_bit);
}

static int f_min_sync(struct cfgctx *c, json_t *v, const char *path)
{
	return want_duration(c, v, path, &c->o->min_sync_ms);
}

static int f_sync(struct cfgctx *c, json_t *v, const char *path)
{
	return want_duration(c, v, path, &c->o->sync_ms);
}

static const struct field rules_fields[] = {
	{"masqueradeAll", f_masq_all},	  {"masqueradeBit", f_masq_bit},
	{"minSyncPeriod", f_min_sync},	  {"syncPeriod", f_sync},
	{"localhostNodePorts", f_ignore}, {NULL, NULL},
};

/* The iptables and nftables sections mean the same to kproxy; the one of
 * the file's mode wins, the other is read only where the first says
 * nothing. */
static int f_rules(struct cfgctx *c, json_t *v, const char *path)
{
	return walk(c, v, path, rules_fields);
}

static int f_nodeport_addrs(struct cfgctx *c, json_t *v, const char *path)
{
	json_t *e;
	size_t i;
	char p[96];

	if (unset(v))
		return 0;
	if (!json_is_array(v))
		return bad(c, path, "expected a list of CIDRs or \"primary\"");
	c->o->n_nodeport_cidrs = 0;
	c->o->nodeport_primary = false;
	json_array_foreach(v, i, e)
	{
		snprintf(p, sizeof(p), "%s[%zu]", path, i);
		if (!json_is_string(e))
			return bad(c, p, "expected a string");
		if (!strcmp(json_string_value(e), "primary")) {
			c->o->nodeport_primary = true;
			continue;
		}
		if (c->o->n_nodeport_cidrs == MAX_CIDRS)
			return bad(c, p, "more than %d CIDRs", MAX_CIDRS);
		if (cidr_parse(json_string_value(e), true,
			       &c->o->nodeport_cidrs[c->o->n_nodeport_cidrs]) < 0)
			return bad(c, p, "\"%.64s\" is not a CIDR", json_string_value(e));
		c->o->n_nodeport_cidrs++;
	}
	return 0;
}

static int f_ct_max_per_core(struct cfgctx *c, json_t *v, const char *path)
{
	return want_int(c, v, path, 0, 1LL << 31, &c->o->conntrack.max_per_core);
}

static int f_ct_min(struct cfgctx *c, json_t *v, const char *path)
{
	return want_int(c, v, path, 0, 1LL << 31, &c->o->conntrack.min);
}

static int f_ct_established(struct cfgctx *c, json_t *v, const char *path)
{
	return want_duration(c, v, path, &c->o->conntrack.tcp_established_ms);
}

static int f_ct_close_wait(struct cfgctx *c, json_t *v, const char *path)
{
	return want_duration(c, v, path, &c->o->conntrack.tcp_close_wait_ms);
}

static int f_ct_liberal(struct cfgctx *c, json_t *v, const char *path)
{
	bool b, present;
	int r = want_bool(c, v, path, &b, &present);

	if (r == 0 && present)
		c->o->conntrack.tcp_be_liberal = b;
	return r;
}

static int f_ct_udp(struct cfgctx *c, json_t *v, const char *path)
{
	return want_duration(c, v, path, &c->o->conntrack.udp_ms);
}

static int f_ct_udp_stream(struct cfgctx *c, json_t *v, const char *path)
{
	return want_duration(c, v, path, &c->o->conntrack.udp_stream_ms);
}

static const struct field conntrack_fields[] = {
	{"maxPerCore", f_ct_max_per_core},
	{"min", f_ct_min},
	{"tcpEstablishedTimeout", f_ct_established},
	{"tcpCloseWaitTimeout", f_ct_close_wait},
	{"tcpBeLiberal", f_ct_liberal},
	{"udpTimeout", f_ct_udp},
	{"udpStreamTimeout", f_ct_udp_stream},
	{"max", f_ignore},
	{NULL, NULL},
};

static int f_conntrack(struct cfgctx *c, json_t *v, const char *path)
{
	return walk(c, v, path, conntrack_fields);
}

static int f_ipvs(struct cfgctx *c, json_t *v, const char *path)
{
	(void)v;
	(void)path;
	(void)c;
	return 0;
}

static int f_logging(struct cfgctx *c, json_t *v, const char *path)
{
	json_t *verb = json_object_get(v, "verbosity");

	if (!json_is_object(v) && !unset(v))
		return bad(c, path, "expected a mapping");
	return want_int(c, verb, "logging.verbosity", 0, 10, &c->o->verbosity);
}

static const struct field linux_fields[] = {
	{"conntrack", f_conntrack},
	{"masqueradeAll", f_masq_all},
	{"oomScoreAdj", f_ignore},
	{NULL, NULL},
};

static int f_linux(struct cfgctx *c, json_t *v, const char *path)
{
	return walk(c, v, path, linux_fields);
}

static const struct field top_fields[] = {
	{"apiVersion", f_ignore}, /* checked before the walk */
	{"kind", f_ignore},
	{"clientConnection", f_client},
	{"hostnameOverride", f_hostname},
	{"bindAddress", f_ignore},
	{"healthzBindAddress", f_healthz},
	{"metricsBindAddress", f_metrics},
	{"bindAddressHardFail", f_ignore},
	{"enableProfiling", f_ignore},
	{"showHiddenMetricsForVersion", f_ignore},
	{"clusterCIDR", f_cluster_cidr},
	{"detectLocalMode", f_detect_mode},
	{"detectLocal", f_detect},
	{"mode", f_mode},
	{"iptables", f_ignore}, /* read after the walk, see config_parse() */
	{"nftables", f_ignore},
	{"ipvs", f_ipvs},
	{"winkernel", f_ignore},
	{"windows", f_ignore},
	{"linux", f_linux},
	{"nodePortAddresses", f_nodeport_addrs},
	{"conntrack", f_conntrack},
	{"configSyncPeriod", f_ignore},
	{"portRange", f_ignore},
	{"udpIdleTimeout", f_ignore},
	{"oomScoreAdj", f_ignore},
	{"featureGates", f_ignore},
	{"logging", f_logging},
	{"syncPeriod", f_sync},
	{"minSyncPeriod", f_min_sync},
	{NULL, NULL},
};

static int walk(struct cfgctx *c, json_t *obj, const char *path, const struct field *fields)
{
	const char *key;
	json_t *v;

	if (unset(obj))
		return 0;
	if (!json_is_object(obj))
		return bad(c, path, "expected a mapping");
	json_object_foreach(obj, key, v)
	{
		const struct field *f;
		char p[160];
		int r;

		snprintf(p, sizeof(p), "%s%s%s", path, *path ? "." : "", key);
		for (f = fields; f->name; f++) {
			if (!strcmp(f->name, key))
				break;
		}
		if (!f->name) {
			warn(c, "%s: unknown field, ignored", p);
			continue;
		}
		if ((r = f->apply(c, v, p)) < 0)
			return r;
	}
	return 0;
}

int config_parse(const char *text, size_t len, struct options *o, char *warnings, size_t warnlen,
		 char *err, size_t errlen)
{
	struct cfgctx c = {o, warnings, warnlen, err, errlen, NULL};
	const char *api, *kind;
	json_t *doc, **nd;
	int r;

	if (warnings && warnlen)
		warnings[0] = '\0';
	r = yamljson_parse(text, len, &doc, err, errlen);
	if (r < 0)
		return r;
	nd = realloc(docs, (n_docs + 1) * sizeof(*docs));
	if (!nd) {
		json_decref(doc);
		return -ENOMEM;
	}
	docs = nd;
	docs[n_docs++] = doc;
	if (!json_is_object(doc))
		return bad(&c, "the file", "expected a KubeProxyConfiguration mapping");
	api = json_string_value(json_object_get(doc, "apiVersion"));
	kind = json_string_value(json_object_get(doc, "kind"));
	if (!kind || strcmp(kind, "KubeProxyConfiguration"))
		return bad(&c, "kind", "expected KubeProxyConfiguration, got \"%s\"",
			   kind ? kind : "");
	if (!api || strncmp(api, "kubeproxy.config.k8s.io/", 24))
		return bad(&c, "apiVersion",
			   "expected kubeproxy.config.k8s.io/v1alpha1, got \"%s\"", api ? api : "");
	if (strcmp(api + 24, "v1alpha1") && strcmp(api + 24, "v1alpha2"))
		warn(&c, "apiVersion: %s is newer than kproxy knows; reading it as v1alpha1", api);
	if ((r = walk(&c, doc, "", top_fields)) < 0)
		return r;
	/* The rules section of the mode in use, then the other where it is
	 * silent: read the other first so the mode's own values win. */
	{
		bool nft = c.mode && (!strcmp(c.mode, "nftables") || !strcmp(c.mode, "ebpf"));
		const char *first = nft ? "iptables" : "nftables",
			   *second = nft ? "nftables" : "iptables";

		if ((r = f_rules(&c, json_object_get(doc, first), first)) < 0 ||
		    (r = f_rules(&c, json_object_get(doc, second), second)) < 0)
			return r;
	}
	if (json_object_get(doc, "ipvs") && c.mode && !strcmp(c.mode, "ipvs"))
		warn(&c, "ipvs: IPVS settings do not apply to kproxy");
	return 0;
}

int config_load(const char *path, struct options *o, char *warnings, size_t warnlen, char *err,
		size_t errlen)
{
	FILE *f = fopen(path, "re");
	char *buf = NULL, inner[400];
	size_t len = 0, cap = 0;
	int r;

	if (!f) {
		r = -errno;
		snprintf(err, errlen, "--config %s: %s", path, strerror(-r));
		return r;
	}
	for (;;) {
		size_t n;

		if (len == cap) {
			char *nb;

			cap = cap ? cap * 2 : 8192;
			if (cap > (4u << 20)) {
				snprintf(err, errlen, "--config %s: file too large", path);
				free(buf);
				fclose(f);
				return -EFBIG;
			}
			nb = realloc(buf, cap);
			if (!nb) {
				free(buf);
				fclose(f);
				return -ENOMEM;
			}
			buf = nb;
		}
		n = fread(buf + len, 1, cap - len, f);
		len += n;
		if (!n)
			break;
	}
	fclose(f);
	r = config_parse(buf, len, o, warnings, warnlen, inner, sizeof(inner));
	if (r < 0)
		snprintf(err, errlen, "--config %s: %s", path, inner);
	free(buf);
	return r;
}
