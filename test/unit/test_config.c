/* Tests for the KubeProxyConfiguration reader (config.h): the file kubeadm
 * writes (with its nulls, empty strings and zero durations meaning "not
 * given"), a file that sets every field kproxy uses, the section of the mode
 * in use winning over the other, unknown fields as warnings, and invalid
 * values as errors naming the field. */
#include <errno.h>
#include <string.h>

#include "config.h"
#include "unit.h"

static char err[512], warnings[2048];
static struct options o;

static int parse(const char *yaml)
{
	options_defaults(&o);
	err[0] = '\0';
	return config_parse(yaml, strlen(yaml), &o, warnings, sizeof(warnings), err, sizeof(err));
}

/* As kubeadm writes it: most fields empty. */
static const char kubeadm_file[] = "apiVersion: kubeproxy.config.k8s.io/v1alpha1\n"
				   "bindAddress: 0.0.0.0\n"
				   "bindAddressHardFail: false\n"
				   "clientConnection:\n"
				   "  acceptContentTypes: \"\"\n"
				   "  burst: 0\n"
				   "  contentType: \"\"\n"
				   "  kubeconfig: /var/lib/kube-proxy/kubeconfig.conf\n"
				   "  qps: 0\n"
				   "clusterCIDR: 10.244.0.0/16\n"
				   "configSyncPeriod: 0s\n"
				   "conntrack:\n"
				   "  maxPerCore: null\n"
				   "  min: null\n"
				   "  tcpCloseWaitTimeout: null\n"
				   "  tcpEstablishedTimeout: null\n"
				   "detectLocal:\n"
				   "  bridgeInterface: \"\"\n"
				   "  interfaceNamePrefix: \"\"\n"
				   "detectLocalMode: \"\"\n"
				   "enableProfiling: false\n"
				   "healthzBindAddress: \"\"\n"
				   "hostnameOverride: \"\"\n"
				   "iptables:\n"
				   "  masqueradeAll: false\n"
				   "  masqueradeBit: null\n"
				   "  minSyncPeriod: 0s\n"
				   "  syncPeriod: 0s\n"
				   "ipvs:\n"
				   "  excludeCIDRs: null\n"
				   "  scheduler: \"\"\n"
				   "  strictARP: false\n"
				   "kind: KubeProxyConfiguration\n"
				   "metricsBindAddress: \"\"\n"
				   "mode: \"\"\n"
				   "nodePortAddresses: null\n"
				   "oomScoreAdj: null\n"
				   "portRange: \"\"\n"
				   "showHiddenMetricsForVersion: \"\"\n"
				   "udpIdleTimeout: 0s\n"
				   "winkernel:\n"
				   "  enableDSR: false\n"
				   "  networkName: \"\"\n";

TEST(kubeadm_file_keeps_defaults_for_what_it_leaves_empty)
{
	REQUIRE(parse(kubeadm_file) == 0);
	CHECK_EQ_STR(o.kubeconfig, "/var/lib/kube-proxy/kubeconfig.conf");
	CHECK_EQ_INT(o.n_cluster_cidrs, 1);
	CHECK_EQ_INT(o.min_sync_ms, 1000);
	CHECK_EQ_INT(o.sync_ms, 30000);
	CHECK_EQ_INT(o.masquerade_bit, 14);
	CHECK(!o.masquerade_all);
	CHECK_EQ_STR(o.healthz_bind, "0.0.0.0:10256");
	CHECK_EQ_STR(o.metrics_bind, "127.0.0.1:10249");
	CHECK_EQ_INT(o.conntrack.max_per_core, 32768);
	CHECK_EQ_INT(o.mode, MODE_NFTABLES);
	CHECK_EQ_STR(warnings, "");
}

TEST(every_field_kproxy_uses)
{
	REQUIRE(parse("apiVersion: kubeproxy.config.k8s.io/v1alpha1\n"
		      "kind: KubeProxyConfiguration\n"
		      "mode: nftables\n"
		      "hostnameOverride: node-7\n"
		      "healthzBindAddress: 0.0.0.0:12256\n"
		      "metricsBindAddress: 0.0.0.0:12249\n"
		      "clusterCIDR: 10.244.0.0/16,fd00:244::/48\n"
		      "detectLocalMode: InterfaceNamePrefix\n"
		      "detectLocal: {interfaceNamePrefix: veth}\n"
		      "nodePortAddresses: [primary, 192.168.0.0/24]\n"
		      "nftables: {masqueradeAll: true, masqueradeBit: 9, minSyncPeriod: 250ms,\n"
		      "           syncPeriod: 1m}\n"
		      "conntrack: {maxPerCore: 0, min: 1000, tcpEstablishedTimeout: 2h0m0s,\n"
		      "            tcpCloseWaitTimeout: 30m, tcpBeLiberal: true, udpTimeout: 30s,\n"
		      "            udpStreamTimeout: 2m}\n"
		      "logging: {verbosity: 3}\n") == 0);
	CHECK_EQ_STR(o.hostname_override, "node-7");
	CHECK_EQ_STR(o.healthz_bind, "0.0.0.0:12256");
	CHECK_EQ_STR(o.metrics_bind, "0.0.0.0:12249");
	CHECK_EQ_INT(o.n_cluster_cidrs, 2);
	CHECK_EQ_INT(o.detect_local, DETECT_LOCAL_IFACE_PREFIX);
	CHECK_EQ_STR(o.pod_iface_prefix, "veth");
	CHECK(o.nodeport_primary);
	CHECK_EQ_INT(o.n_nodeport_cidrs, 1);
	CHECK(o.masquerade_all);
	CHECK_EQ_INT(o.masquerade_bit, 9);
	CHECK_EQ_INT(o.min_sync_ms, 250);
	CHECK_EQ_INT(o.sync_ms, 60000);
	CHECK_EQ_INT(o.conntrack.max_per_core, 0);
	CHECK_EQ_INT(o.conntrack.min, 1000);
	CHECK_EQ_INT(o.conntrack.tcp_established_ms, 2 * 3600 * 1000);
	CHECK_EQ_INT(o.conntrack.tcp_close_wait_ms, 30 * 60 * 1000);
	CHECK(o.conntrack.tcp_be_liberal);
	CHECK_EQ_INT(o.conntrack.udp_ms, 30000);
	CHECK_EQ_INT(o.conntrack.udp_stream_ms, 120000);
	CHECK_EQ_INT(o.verbosity, 3);
	CHECK_EQ_STR(warnings, "");
}

TEST(the_modes_section_wins)
{
	static const char both[] = "apiVersion: kubeproxy.config.k8s.io/v1alpha1\n"
				   "kind: KubeProxyConfiguration\n"
				   "mode: %s\n"
				   "iptables: {syncPeriod: 10s, minSyncPeriod: 2s}\n"
				   "nftables: {syncPeriod: 20s}\n";
	char buf[512];

	snprintf(buf, sizeof(buf), both, "nftables");
	REQUIRE(parse(buf) == 0);
	CHECK_EQ_INT(o.sync_ms, 20000);
	CHECK_EQ_INT(o.min_sync_ms, 2000); /* the nftables section is silent on it */
	snprintf(buf, sizeof(buf), both, "iptables");
	REQUIRE(parse(buf) == 0);
	CHECK_EQ_INT(o.sync_ms, 10000);
	CHECK(unit_contains(warnings, "using kproxy's nftables dataplane"));
	snprintf(buf, sizeof(buf), both, "ebpf");
	REQUIRE(parse(buf) == 0);
	CHECK_EQ_INT(o.mode, MODE_EBPF);
}

TEST(unknown_fields_warn)
{
	REQUIRE(parse("apiVersion: kubeproxy.config.k8s.io/v1alpha1\n"
		      "kind: KubeProxyConfiguration\n"
		      "frobnicate: 3\n"
		      "conntrack: {extra: 1}\n") == 0);
	CHECK(unit_contains(warnings, "frobnicate: unknown field"));
	CHECK(unit_contains(warnings, "conntrack.extra: unknown field"));
}

TEST(invalid_values_name_the_field)
{
	static const struct {
		const char *yaml, *field;
	} cases[] = {
		{"mode: userspace\n", "mode"},
		{"clusterCIDR: 10.244.0.0/99\n", "clusterCIDR"},
		{"nftables: {syncPeriod: soon}\n", "nftables.syncPeriod"},
		{"iptables: {masqueradeBit: 40}\n", "iptables.masqueradeBit"},
		{"conntrack: {maxPerCore: many}\n", "conntrack.maxPerCore"},
		{"conntrack: {tcpBeLiberal: sometimes}\n", "conntrack.tcpBeLiberal"},
		{"nodePortAddresses: [10.0.0.0/33]\n", "nodePortAddresses[0]"},
		{"nodePortAddresses: 10.0.0.0/8\n", "nodePortAddresses"},
		{"detectLocalMode: Guess\n", "detectLocalMode"},
		{"clientConnection: [a]\n", "clientConnection"},
		{"healthzBindAddress: 10256\n", "healthzBindAddress"},
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char buf[512];

		snprintf(buf, sizeof(buf),
			 "apiVersion: kubeproxy.config.k8s.io/v1alpha1\nkind: "
			 "KubeProxyConfiguration\n%s",
			 cases[i].yaml);
		CHECK_EQ_INT(parse(buf), -EINVAL);
		CHECK(unit_contains(err, cases[i].field));
	}
}

TEST(wrong_kind_or_version_or_not_yaml)
{
	CHECK_EQ_INT(parse("apiVersion: v1\nkind: ConfigMap\n"), -EINVAL);
	CHECK(unit_contains(err, "kind"));
	CHECK_EQ_INT(parse("apiVersion: kubelet.config.k8s.io/v1beta1\n"
			   "kind: KubeProxyConfiguration\n"),
		     -EINVAL);
	CHECK(unit_contains(err, "apiVersion"));
	CHECK(parse("a: [unclosed\n") < 0);
	CHECK(unit_contains(err, "line"));
	CHECK_EQ_INT(parse("- just\n- a list\n"), -EINVAL);
}

TEST(missing_file)
{
	options_defaults(&o);
	CHECK_EQ_INT(config_load("/nonexistent/kproxy.yaml", &o, NULL, 0, err, sizeof(err)),
		     -ENOENT);
	CHECK(unit_contains(err, "/nonexistent/kproxy.yaml"));
}

static void release(void)
{
	config_release();
}

TEST(zz_release)
{
	release();
	CHECK(1);
}

UNIT_MAIN(T(kubeadm_file_keeps_defaults_for_what_it_leaves_empty), T(every_field_kproxy_uses),
	  T(the_modes_section_wins), T(unknown_fields_warn), T(invalid_values_name_the_field),
	  T(wrong_kind_or_version_or_not_yaml), T(missing_file), T(zz_release))
