/* Tests for the command-line flags (options.h), spelled as kube-proxy spells
 * them: the defaults, "--flag=value" and "--flag value", booleans with and
 * without a value, Go-style durations, CIDR lists, --nodeport-addresses
 * "primary", the proxy modes (iptables and ipvs taken as nftables), and the
 * errors for a bad value, an unknown flag and a missing value, each naming
 * the flag. */
#include <errno.h>
#include <stdarg.h>
#include <stdint.h>
#include <string.h>

#include "options.h"
#include "unit.h"

static char err[512];
static struct options o;

/* Parses a NULL-terminated list of arguments (argv[0] is supplied). */
static int parse_args(const char *first, ...)
{
	char *argv[32] = {"kproxy"};
	int argc = 1;
	va_list ap;

	va_start(ap, first);
	for (const char *a = first; a && argc < 31; a = va_arg(ap, const char *))
		argv[argc++] = (char *)a;
	va_end(ap);
	argv[argc] = NULL;
	err[0] = '\0';
	return options_parse(argc, argv, &o, err, sizeof(err));
}

static bool cidr_is(const struct cidr *c, const char *want)
{
	char buf[IPADDR_STRLEN];

	cidr_format(c, buf);
	if (strcmp(buf, want))
		fprintf(stderr, "    prefix %s, expected %s\n", buf, want);
	return !strcmp(buf, want);
}

TEST(defaults)
{
	REQUIRE(parse_args(NULL) == 0);
	CHECK_EQ_INT(o.min_sync_ms, 1000);
	CHECK_EQ_INT(o.sync_ms, 30000);
	CHECK_EQ_STR(o.healthz_bind, "0.0.0.0:10256");
	CHECK_EQ_STR(o.metrics_bind, "127.0.0.1:10249");
	CHECK_EQ_INT(o.masquerade_bit, 14);
	CHECK_EQ_INT(o.mode, MODE_NFTABLES);
	CHECK(!o.masquerade_all);
	CHECK(!o.cleanup);
	CHECK_EQ_INT(o.verbosity, 0);
	CHECK(o.kubeconfig == NULL);
	CHECK(o.master == NULL);
	CHECK(o.hostname_override == NULL);
	CHECK(o.config == NULL);
	CHECK_EQ_INT(o.n_cluster_cidrs, 0);
	CHECK_EQ_INT(o.n_nodeport_cidrs, 0);
	CHECK(!o.nodeport_primary);
	CHECK(!o.show_help);
	CHECK(!o.show_version);
}

TEST(equals_and_separate_values)
{
	REQUIRE(parse_args("--kubeconfig=/etc/kp/kubeconfig", "--master", "https://m:6443",
			   "--hostname-override", "node-a", "--healthz-bind-address=127.0.0.1:1",
			   "--metrics-bind-address", "0.0.0.0:9999", "--config=/etc/kp/config.yaml",
			   "--bpf-cgroup-path", "/sys/fs/cgroup/unified", "--devices=eth0,eth1",
			   NULL) == 0);
	CHECK_EQ_STR(o.kubeconfig, "/etc/kp/kubeconfig");
	CHECK_EQ_STR(o.master, "https://m:6443");
	CHECK_EQ_STR(o.hostname_override, "node-a");
	CHECK_EQ_STR(o.healthz_bind, "127.0.0.1:1");
	CHECK_EQ_STR(o.metrics_bind, "0.0.0.0:9999");
	CHECK_EQ_STR(o.config, "/etc/kp/config.yaml");
	CHECK_EQ_STR(o.bpf_cgroup_path, "/sys/fs/cgroup/unified");
	CHECK_EQ_STR(o.devices, "eth0,eth1");

	/* One dash works too, as in Go's flag packages; a value may contain '='. */
	REQUIRE(parse_args("-kubeconfig", "/a=b", "-master=https://x", NULL) == 0);
	CHECK_EQ_STR(o.kubeconfig, "/a=b");
	CHECK_EQ_STR(o.master, "https://x");

	/* The last occurrence wins, and parsing starts from the defaults. */
	REQUIRE(parse_args("--master=a", "--master=b", NULL) == 0);
	CHECK_EQ_STR(o.master, "b");
	REQUIRE(parse_args(NULL) == 0);
	CHECK(o.master == NULL);
}

TEST(booleans)
{
	REQUIRE(parse_args("--masquerade-all", NULL) == 0);
	CHECK(o.masquerade_all);
	REQUIRE(parse_args("--masquerade-all=true", NULL) == 0);
	CHECK(o.masquerade_all);
	REQUIRE(parse_args("--masquerade-all=false", NULL) == 0);
	CHECK(!o.masquerade_all);
	REQUIRE(parse_args("--masquerade-all", "--masquerade-all=0", NULL) == 0);
	CHECK(!o.masquerade_all);
	REQUIRE(parse_args("--cleanup=1", NULL) == 0);
	CHECK(o.cleanup);
	REQUIRE(parse_args("--version", "--help", NULL) == 0);
	CHECK(o.show_version);
	CHECK(o.show_help);
	REQUIRE(parse_args("-h", NULL) == 0);
	CHECK(o.show_help);

	CHECK_EQ_INT(parse_args("--masquerade-all=yes", NULL), -EINVAL);
	CHECK(unit_contains(err, "--masquerade-all"));
	CHECK(unit_contains(err, "yes"));
	/* A boolean does not take the next argument as its value. */
	CHECK_EQ_INT(parse_args("--masquerade-all", "false", NULL), -EINVAL);
	CHECK(unit_contains(err, "false"));
}

TEST(durations)
{
	static const struct {
		const char *in;
		uint64_t ms;
	} good[] = {
		{"1s", 1000},	{"250ms", 250},	  {"1m30s", 90000}, {"0", 0},
		{"1.5s", 1500}, {"2h", 7200000},  {"0s", 0},	    {"1h2m3s4ms", 3723004},
		{"2000us", 2},	{"1000000ns", 1}, {"0.5m", 30000},  {"10ms5ms", 15},
	};
	static const char *const bad[] = {"",	 "10",	"1x",  "-1s", "s",    "1.5", "1 s",
					  " 1s", "1s ", "+1s", "1S",  "1sec", "ms",  "1m30"};

	for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
		uint64_t ms = 424242;

		if (parse_duration_ms(good[i].in, &ms) != 0)
			fprintf(stderr, "    \"%s\" rejected\n", good[i].in);
		CHECK_EQ_INT(ms, good[i].ms);
	}
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		uint64_t ms = 424242;

		if (parse_duration_ms(bad[i], &ms) != -EINVAL)
			fprintf(stderr, "    \"%s\" accepted\n", bad[i]);
		CHECK_EQ_INT(ms, 424242);
	}
	CHECK_EQ_INT(parse_duration_ms(NULL, NULL), -EINVAL);

	REQUIRE(parse_args("--min-sync-period=250ms", "--sync-period", "1m", NULL) == 0);
	CHECK_EQ_INT(o.min_sync_ms, 250);
	CHECK_EQ_INT(o.sync_ms, 60000);
	REQUIRE(parse_args("--min-sync-period=0", NULL) == 0);
	CHECK_EQ_INT(o.min_sync_ms, 0);
	CHECK_EQ_INT(parse_args("--sync-period=10", NULL), -EINVAL);
	CHECK(unit_contains(err, "--sync-period"));
	CHECK(unit_contains(err, "\"10\""));
}

/* Go's time.ParseDuration takes decimal numbers only: no exponents and no
 * hexadecimal, which strtod would otherwise accept. */
TEST(durations_decimal_only)
{
	uint64_t ms = 424242;

	CHECK_EQ_INT(parse_duration_ms("1e3s", &ms), -EINVAL);
	CHECK_EQ_INT(parse_duration_ms("0x10s", &ms), -EINVAL);
	CHECK_EQ_INT(parse_duration_ms("1e-3s", &ms), -EINVAL);
	CHECK_EQ_INT(ms, 424242);
}

TEST(cidr_lists)
{
	struct cidr out[4];
	int n;

	REQUIRE(parse_args("--cluster-cidr=10.244.0.0/16,fd00:244::/56", NULL) == 0);
	REQUIRE(o.n_cluster_cidrs == 2);
	CHECK(cidr_is(&o.cluster_cidrs[0], "10.244.0.0/16"));
	CHECK(cidr_is(&o.cluster_cidrs[1], "fd00:244::/56"));
	REQUIRE(parse_args("--cluster-cidr", "10.0.0.0/8", NULL) == 0);
	REQUIRE(o.n_cluster_cidrs == 1);
	CHECK(cidr_is(&o.cluster_cidrs[0], "10.0.0.0/8"));
	/* Empty items and spaces after commas are skipped; host bits cleared. */
	REQUIRE(parse_args("--cluster-cidr=10.1.2.3/16,, 192.168.0.0/24,", NULL) == 0);
	REQUIRE(o.n_cluster_cidrs == 2);
	CHECK(cidr_is(&o.cluster_cidrs[0], "10.1.0.0/16"));
	CHECK(cidr_is(&o.cluster_cidrs[1], "192.168.0.0/24"));

	CHECK_EQ_INT(parse_args("--cluster-cidr=10.0.0.0/8,banana", NULL), -EINVAL);
	CHECK(unit_contains(err, "--cluster-cidr"));
	CHECK(unit_contains(err, "banana"));
	CHECK_EQ_INT(parse_args("--cluster-cidr=10.0.0.0", NULL), -EINVAL);
	CHECK(unit_contains(err, "--cluster-cidr"));

	n = parse_cidr_list("1.0.0.0/8,2.0.0.0/8,3.0.0.0/8,4.0.0.0/8", out, 4, err, sizeof(err));
	CHECK_EQ_INT(n, 4);
	n = parse_cidr_list("1.0.0.0/8,2.0.0.0/8,3.0.0.0/8,4.0.0.0/8,5.0.0.0/8", out, 4, err,
			    sizeof(err));
	CHECK_EQ_INT(n, -EINVAL);
	CHECK(unit_contains(err, "4"));
	n = parse_cidr_list("", out, 4, err, sizeof(err));
	CHECK_EQ_INT(n, 0);
}

TEST(nodeport_addresses)
{
	REQUIRE(parse_args("--nodeport-addresses=primary", NULL) == 0);
	CHECK(o.nodeport_primary);
	CHECK_EQ_INT(o.n_nodeport_cidrs, 0);
	REQUIRE(parse_args("--nodeport-addresses", "10.0.0.0/8,::/0", NULL) == 0);
	CHECK(!o.nodeport_primary);
	REQUIRE(o.n_nodeport_cidrs == 2);
	CHECK(cidr_is(&o.nodeport_cidrs[0], "10.0.0.0/8"));
	CHECK(cidr_is(&o.nodeport_cidrs[1], "::/0"));
	/* The last one given wins. */
	REQUIRE(parse_args("--nodeport-addresses=primary", "--nodeport-addresses=10.0.0.0/8",
			   NULL) == 0);
	CHECK(!o.nodeport_primary);
	CHECK_EQ_INT(o.n_nodeport_cidrs, 1);
	REQUIRE(parse_args("--nodeport-addresses=10.0.0.0/8", "--nodeport-addresses=primary",
			   NULL) == 0);
	CHECK(o.nodeport_primary);
	CHECK_EQ_INT(o.n_nodeport_cidrs, 0);
	CHECK_EQ_INT(parse_args("--nodeport-addresses=secondary", NULL), -EINVAL);
	CHECK(unit_contains(err, "--nodeport-addresses"));
}

TEST(proxy_modes)
{
	REQUIRE(parse_args("--proxy-mode=ebpf", NULL) == 0);
	CHECK_EQ_INT(o.mode, MODE_EBPF);
	REQUIRE(parse_args("--proxy-mode", "nftables", NULL) == 0);
	CHECK_EQ_INT(o.mode, MODE_NFTABLES);
	/* kube-proxy's other modes are served by nftables. */
	REQUIRE(parse_args("--proxy-mode=iptables", NULL) == 0);
	CHECK_EQ_INT(o.mode, MODE_NFTABLES);
	REQUIRE(parse_args("--proxy-mode=ipvs", NULL) == 0);
	CHECK_EQ_INT(o.mode, MODE_NFTABLES);
	REQUIRE(parse_args("--proxy-mode=", NULL) == 0);
	CHECK_EQ_INT(o.mode, MODE_NFTABLES);

	CHECK_EQ_INT(parse_args("--proxy-mode=userspace", NULL), -EINVAL);
	CHECK(unit_contains(err, "--proxy-mode"));
	CHECK(unit_contains(err, "userspace"));
	CHECK_EQ_INT(parse_args("--proxy-mode=EBPF", NULL), -EINVAL);
	CHECK(unit_contains(err, "--proxy-mode"));
}

TEST(numbers)
{
	REQUIRE(parse_args("--v=4", NULL) == 0);
	CHECK_EQ_INT(o.verbosity, 4);
	REQUIRE(parse_args("--v", "2", NULL) == 0);
	CHECK_EQ_INT(o.verbosity, 2);
	REQUIRE(parse_args("-v=10", NULL) == 0);
	CHECK_EQ_INT(o.verbosity, 10);
	REQUIRE(parse_args("--iptables-masquerade-bit=0", NULL) == 0);
	CHECK_EQ_INT(o.masquerade_bit, 0);
	REQUIRE(parse_args("--iptables-masquerade-bit", "31", NULL) == 0);
	CHECK_EQ_INT(o.masquerade_bit, 31);
	/* Setting one number leaves the other alone. */
	CHECK_EQ_INT(o.verbosity, 0);

	CHECK_EQ_INT(parse_args("--iptables-masquerade-bit=32", NULL), -EINVAL);
	CHECK(unit_contains(err, "--iptables-masquerade-bit"));
	CHECK_EQ_INT(parse_args("--v=-1", NULL), -EINVAL);
	CHECK(unit_contains(err, "--v"));
	CHECK_EQ_INT(parse_args("--v=four", NULL), -EINVAL);
	CHECK_EQ_INT(parse_args("--v=4x", NULL), -EINVAL);
	CHECK_EQ_INT(parse_args("--v=", NULL), -EINVAL);
	CHECK_EQ_INT(parse_args("--v=99999999999999999999", NULL), -EINVAL);
}

TEST(errors)
{
	CHECK_EQ_INT(parse_args("--frobnicate=1", NULL), -EINVAL);
	CHECK(unit_contains(err, "unknown flag"));
	CHECK(unit_contains(err, "--frobnicate"));
	/* A flag's name must match whole, not as a prefix. */
	CHECK_EQ_INT(parse_args("--kube=x", NULL), -EINVAL);
	CHECK(unit_contains(err, "--kube"));
	CHECK_EQ_INT(parse_args("--kubeconfigs=x", NULL), -EINVAL);

	CHECK_EQ_INT(parse_args("--kubeconfig", NULL), -EINVAL);
	CHECK(unit_contains(err, "--kubeconfig"));
	CHECK(unit_contains(err, "value"));
	CHECK_EQ_INT(parse_args("--v=1", "--min-sync-period", NULL), -EINVAL);
	CHECK(unit_contains(err, "--min-sync-period"));

	CHECK_EQ_INT(parse_args("stray", NULL), -EINVAL);
	CHECK(unit_contains(err, "stray"));
	CHECK_EQ_INT(parse_args("--", NULL), -EINVAL);
}

TEST(kube_proxy_flags_without_effect_are_noticed)
{
	char *argv[] = {"kproxy",
			"--bind-address=0.0.0.0",
			"--oom-score-adj",
			"-999",
			"--profiling",
			"--proxy-mode=iptables",
			NULL};
	char notices[1024] = "";

	options_defaults(&o);
	REQUIRE(options_apply(6, argv, &o, notices, sizeof(notices), err, sizeof(err)) == 0);
	CHECK(unit_contains(notices, "--bind-address has no effect"));
	CHECK(unit_contains(notices, "--oom-score-adj has no effect"));
	CHECK(unit_contains(notices, "--profiling has no effect"));
	CHECK(unit_contains(notices, "--proxy-mode=iptables"));
	CHECK_EQ_INT(o.mode, MODE_NFTABLES);
}

TEST(conntrack_and_detect_local_flags)
{
	REQUIRE(parse_args(NULL) == 0);
	CHECK_EQ_INT(o.conntrack.max_per_core, 32768);
	CHECK_EQ_INT(o.conntrack.min, 131072);
	CHECK_EQ_INT(o.conntrack.tcp_established_ms, 24LL * 3600 * 1000);
	CHECK_EQ_INT(o.conntrack.tcp_close_wait_ms, 3600 * 1000);
	CHECK_EQ_INT(o.detect_local, DETECT_LOCAL_CLUSTER_CIDR);
	REQUIRE(parse_args("--conntrack-max-per-core=0", "--conntrack-tcp-timeout-established",
			   "2h", "--conntrack-tcp-be-liberal", "--conntrack-udp-timeout=45s",
			   NULL) == 0);
	CHECK_EQ_INT(o.conntrack.max_per_core, 0);
	CHECK_EQ_INT(o.conntrack.tcp_established_ms, 2 * 3600 * 1000);
	CHECK(o.conntrack.tcp_be_liberal);
	CHECK_EQ_INT(o.conntrack.udp_ms, 45000);
	CHECK_EQ_INT(parse_args("--conntrack-min=-5", NULL), -EINVAL);
	CHECK(unit_contains(err, "--conntrack-min"));
	REQUIRE(parse_args("--detect-local-mode=InterfaceNamePrefix", "--pod-interface-name-prefix",
			   "veth", NULL) == 0);
	CHECK_EQ_INT(o.detect_local, DETECT_LOCAL_IFACE_PREFIX);
	CHECK_EQ_INT(options_validate(&o, err, sizeof(err)), 0);
	REQUIRE(parse_args("--detect-local-mode=BridgeInterface", NULL) == 0);
	CHECK_EQ_INT(options_validate(&o, err, sizeof(err)), -EINVAL);
	CHECK(unit_contains(err, "pod-bridge-interface"));
	CHECK_EQ_INT(parse_args("--detect-local-mode=Magic", NULL), -EINVAL);
	CHECK(unit_contains(err, "--detect-local-mode"));
}

UNIT_MAIN(T(kube_proxy_flags_without_effect_are_noticed), T(conntrack_and_detect_local_flags),
	  T(defaults), T(equals_and_separate_values), T(booleans), T(durations),
	  T(durations_decimal_only), T(cidr_lists), T(nodeport_addresses), T(proxy_modes),
	  T(numbers), T(errors))
