/* Tests for health/metrics: number formatting as Prometheus' Go client prints
 * it (bucket labels are matched by their exact text), the registry's checks
 * on names, labels and bounds, the text format (HELP/TYPE lines, escaping,
 * sorting, families without series left out, cumulative histogram buckets
 * with +Inf, _sum and _count), and the agent's metric set: kube-proxy's names
 * and bucket layouts, the update functions, the "no local endpoints" gauges
 * kept up to date from tracker changes, and the process metrics read from
 * /proc.  Every rendered text is also parsed back line by line. */
#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "health/metrics.h"
#include "model/objects.h"
#include "model/serviceport.h"
#include "model/tracker.h"
#include "unit.h"

/* Checks that text is well-formed exposition format: comment lines are
 * "# HELP name text" or "# TYPE name type" with TYPE before the family's
 * samples, and every other line is name{labels} value with a value that
 * parses.  Returns the number of samples, or -1. */
static int parse_exposition(const char *text)
{
	char current[256] = "";
	int samples = 0;

	for (const char *p = text; *p;) {
		const char *eol = strchr(p, '\n');
		char line[1024], name[256];
		size_t len;

		if (!eol)
			return -1; /* every line ends with a newline */
		len = (size_t)(eol - p);
		if (len >= sizeof(line))
			return -1;
		memcpy(line, p, len);
		line[len] = '\0';
		p = eol + 1;
		if (strncmp(line, "# HELP ", 7) == 0)
			continue;
		if (strncmp(line, "# TYPE ", 7) == 0) {
			char type[32];

			if (sscanf(line + 7, "%255s %31s", current, type) != 2)
				return -1;
			if (strcmp(type, "counter") && strcmp(type, "gauge") &&
			    strcmp(type, "histogram"))
				return -1;
			continue;
		}
		{
			const char *sp = strrchr(line, ' ');
			const char *brace = strchr(line, '{');
			size_t nl = (size_t)((brace && brace < sp ? brace : sp) - line);
			char *end;

			if (!sp || nl >= sizeof(name))
				return -1;
			memcpy(name, line, nl);
			name[nl] = '\0';
			/* Samples belong to the family declared last. */
			if (strncmp(name, current, strlen(current)) != 0)
				return -1;
			if (strcmp(sp + 1, "+Inf") && strcmp(sp + 1, "NaN")) {
				strtod(sp + 1, &end);
				if (*end)
					return -1;
			}
			if (brace && line[sp - line - 1] != '}')
				return -1;
			samples++;
		}
	}
	return samples;
}

/* The value of the sample whose line starts with prefix ("name{...} "). */
static double sample(const char *text, const char *prefix)
{
	size_t n = strlen(prefix);

	for (const char *p = text; p && *p; p = strchr(p, '\n'), p = p ? p + 1 : NULL) {
		if (strncmp(p, prefix, n) == 0)
			return strtod(p + n, NULL);
	}
	return NAN;
}

TEST(float_format)
{
	char b[METRICS_FLOAT_MAX];

	CHECK_EQ_STR(metrics_format_float(0, b), "0");
	CHECK_EQ_STR(metrics_format_float(1, b), "1");
	CHECK_EQ_STR(metrics_format_float(-2, b), "-2");
	CHECK_EQ_STR(metrics_format_float(0.001, b), "0.001");
	CHECK_EQ_STR(metrics_format_float(0.25, b), "0.25");
	CHECK_EQ_STR(metrics_format_float(16.384, b), "16.384");
	CHECK_EQ_STR(metrics_format_float(300, b), "300");
	CHECK_EQ_STR(metrics_format_float(999999, b), "999999");
	CHECK_EQ_STR(metrics_format_float(1e6, b), "1e+06");
	CHECK_EQ_STR(metrics_format_float(1234567, b), "1.234567e+06");
	CHECK_EQ_STR(metrics_format_float(0.0001, b), "0.0001");
	CHECK_EQ_STR(metrics_format_float(0.00001, b), "1e-05");
	CHECK_EQ_STR(metrics_format_float(0.1 + 0.2, b), "0.30000000000000004");
	CHECK_EQ_STR(metrics_format_float(1700000000.5, b), "1.7000000005e+09");
	CHECK_EQ_STR(metrics_format_float(INFINITY, b), "+Inf");
	CHECK_EQ_STR(metrics_format_float(-INFINITY, b), "-Inf");
	CHECK_EQ_STR(metrics_format_float(NAN, b), "NaN");
}

TEST(registry_checks)
{
	static const char *const le[] = {"le", NULL};
	static const char *const bad[] = {"1x", NULL};
	static const char *const reserved[] = {"__x", NULL};
	static const char *const five[] = {"a", "b", "c", "d", "e", NULL};
	const double up[] = {1, 2}, flat[] = {1, 1};
	struct metrics_registry *reg = NULL;
	struct metrics_family *f = NULL;

	REQUIRE(metrics_registry_new(&reg) == 0);
	CHECK_EQ_INT(metrics_family_new(reg, METRICS_COUNTER, "ok_total", "h", NULL, NULL, 0, &f),
		     0);
	CHECK_EQ_INT(metrics_family_new(reg, METRICS_GAUGE, "ok_total", "h", NULL, NULL, 0, &f),
		     -EEXIST);
	CHECK_EQ_INT(metrics_family_new(reg, METRICS_GAUGE, "9bad", "h", NULL, NULL, 0, &f),
		     -EINVAL);
	CHECK_EQ_INT(metrics_family_new(reg, METRICS_GAUGE, "bad-name", "h", NULL, NULL, 0, &f),
		     -EINVAL);
	CHECK_EQ_INT(metrics_family_new(reg, METRICS_GAUGE, "", "h", NULL, NULL, 0, &f), -EINVAL);
	CHECK_EQ_INT(metrics_family_new(reg, METRICS_GAUGE, "ns:sub_x", "h", NULL, NULL, 0, &f), 0);
	CHECK_EQ_INT(metrics_family_new(reg, METRICS_GAUGE, "g1", "h", bad, NULL, 0, &f), -EINVAL);
	CHECK_EQ_INT(metrics_family_new(reg, METRICS_GAUGE, "g2", "h", reserved, NULL, 0, &f),
		     -EINVAL);
	CHECK_EQ_INT(metrics_family_new(reg, METRICS_GAUGE, "g3", "h", five, NULL, 0, &f), -EINVAL);
	CHECK_EQ_INT(metrics_family_new(reg, METRICS_HISTOGRAM, "h1", "h", le, up, 2, &f), -EINVAL);
	CHECK_EQ_INT(metrics_family_new(reg, METRICS_HISTOGRAM, "h2", "h", NULL, flat, 2, &f),
		     -EINVAL);
	CHECK_EQ_INT(metrics_family_new(reg, METRICS_HISTOGRAM, "h3", "h", NULL, NULL, 0, &f),
		     -EINVAL);
	CHECK_EQ_INT(metrics_family_new(reg, METRICS_GAUGE, "g4", "h", NULL, up, 2, &f), -EINVAL);
	CHECK_EQ_INT(metrics_family_new(reg, METRICS_HISTOGRAM, "h4", "h", NULL, up, 2, &f), 0);
	/* A label named le is fine outside histograms. */
	CHECK_EQ_INT(metrics_family_new(reg, METRICS_GAUGE, "g5", "h", le, NULL, 0, &f), 0);
	metrics_registry_free(reg);
	metrics_registry_free(NULL);

	/* Updates on a missing metric are no-ops. */
	metrics_inc(NULL);
	metrics_set(NULL, 1);
	metrics_observe(NULL, 1);
	CHECK(metrics_value(NULL) == 0);
}

TEST(render_counters_and_gauges)
{
	static const char *const labels[] = {"kind", "path", NULL};
	struct metrics_registry *reg = NULL;
	struct metrics_family *c = NULL, *g = NULL, *empty = NULL;
	struct metric *a = NULL, *b = NULL, *a2 = NULL, *plain = NULL;
	char *text = NULL;
	size_t len = 0;

	REQUIRE(metrics_registry_new(&reg) == 0);
	REQUIRE(metrics_family_new(reg, METRICS_COUNTER, "zz_requests_total",
				   "Requests, by \\kind\\\nand path", labels, NULL, 0, &c) == 0);
	REQUIRE(metrics_family_new(reg, METRICS_GAUGE, "aa_temperature", "Degrees", NULL, NULL, 0,
				   &g) == 0);
	REQUIRE(metrics_family_new(reg, METRICS_GAUGE, "mm_unused", "Never set", labels, NULL, 0,
				   &empty) == 0);
	REQUIRE(metrics_series(c, (const char *const[]){"Service", "/a\"b\\c\nd"}, &b) == 0);
	REQUIRE(metrics_series(c, (const char *const[]){"Node", "/"}, &a) == 0);
	/* The same values give the same series. */
	REQUIRE(metrics_series(c, (const char *const[]){"Node", "/"}, &a2) == 0);
	CHECK(a == a2);
	REQUIRE(metrics_series(g, NULL, &plain) == 0);
	metrics_inc(a);
	metrics_inc(a2);
	metrics_add(b, 2.5);
	metrics_set(plain, -3.25);
	CHECK(metrics_value(a) == 2);

	REQUIRE(metrics_registry_render(reg, &text, &len) == 0);
	CHECK_EQ_INT(len, strlen(text));
	CHECK_EQ_STR(text, "# HELP aa_temperature Degrees\n"
			   "# TYPE aa_temperature gauge\n"
			   "aa_temperature -3.25\n"
			   "# HELP zz_requests_total Requests, by \\\\kind\\\\\\nand path\n"
			   "# TYPE zz_requests_total counter\n"
			   "zz_requests_total{kind=\"Node\",path=\"/\"} 2\n"
			   "zz_requests_total{kind=\"Service\",path=\"/a\\\"b\\\\c\\nd\"} 2.5\n");
	CHECK_EQ_INT(parse_exposition(text), 3);
	free(text);
	metrics_registry_free(reg);
}

TEST(render_histogram)
{
	static const char *const labels[] = {"op", NULL};
	const double bounds[] = {0.1, 0.5, 1};
	struct metrics_registry *reg = NULL;
	struct metrics_family *h = NULL;
	struct metric *m = NULL;
	char *text = NULL;

	REQUIRE(metrics_registry_new(&reg) == 0);
	REQUIRE(metrics_family_new(reg, METRICS_HISTOGRAM, "op_seconds", "Op time", labels, bounds,
				   3, &h) == 0);
	REQUIRE(metrics_series(h, (const char *const[]){"sync"}, &m) == 0);
	/* A value equal to a bound falls in that bound's bucket. */
	metrics_observe(m, 0.05);
	metrics_observe(m, 0.1);
	metrics_observe(m, 0.7);
	metrics_observe(m, 1);
	metrics_observe(m, 30);
	CHECK_EQ_INT(metrics_count(m), 5);
	REQUIRE(metrics_registry_render(reg, &text, NULL) == 0);
	CHECK_EQ_STR(text, "# HELP op_seconds Op time\n"
			   "# TYPE op_seconds histogram\n"
			   "op_seconds_bucket{op=\"sync\",le=\"0.1\"} 2\n"
			   "op_seconds_bucket{op=\"sync\",le=\"0.5\"} 2\n"
			   "op_seconds_bucket{op=\"sync\",le=\"1\"} 4\n"
			   "op_seconds_bucket{op=\"sync\",le=\"+Inf\"} 5\n"
			   "op_seconds_sum{op=\"sync\"} 31.85\n"
			   "op_seconds_count{op=\"sync\"} 5\n");
	CHECK_EQ_INT(parse_exposition(text), 6);
	free(text);
	metrics_registry_free(reg);
}

/* Checks that name's buckets are exactly les, cumulative, and end in +Inf
 * equal to _count. */
static void check_buckets(const char *text, const char *name, const char *const *les, size_t n)
{
	char prefix[256];
	double prev = 0, v;

	for (size_t i = 0; i < n; i++) {
		snprintf(prefix, sizeof(prefix), "%s_bucket{le=\"%s\"} ", name, les[i]);
		v = sample(text, prefix);
		CHECK(!isnan(v));
		if (isnan(v)) {
			fprintf(stderr, "    missing %s\n", prefix);
			return;
		}
		CHECK(v >= prev);
		prev = v;
	}
	snprintf(prefix, sizeof(prefix), "%s_bucket{le=\"+Inf\"} ", name);
	v = sample(text, prefix);
	CHECK(v >= prev);
	snprintf(prefix, sizeof(prefix), "%s_count ", name);
	CHECK(sample(text, prefix) == v);
}

static int count_lines(const char *text, const char *prefix)
{
	int n = 0;

	for (const char *p = text; p && *p; p = strchr(p, '\n'), p = p ? p + 1 : NULL)
		n += strncmp(p, prefix, strlen(prefix)) == 0;
	return n;
}

TEST(agent_metrics)
{
	static const char *const sync_le[] = {"0.001", "0.002", "0.004", "0.008", "0.016",
					      "0.032", "0.064", "0.128", "0.256", "0.512",
					      "1.024", "2.048", "4.096", "8.192", "16.384"};
	static const char *const net_le[] = {"0",  "0.25", "0.5", "1",	 "2",	"30",  "59",
					     "60", "65",   "115", "120", "150", "270", "300"};
	static const char *const names[] = {
		"kubeproxy_sync_proxy_rules_duration_seconds",
		"kubeproxy_sync_full_proxy_rules_duration_seconds",
		"kubeproxy_sync_partial_proxy_rules_duration_seconds",
		"kubeproxy_sync_proxy_rules_last_timestamp_seconds",
		"kubeproxy_sync_proxy_rules_last_queued_timestamp_seconds",
		"kubeproxy_network_programming_duration_seconds",
		"kubeproxy_sync_proxy_rules_endpoint_changes_pending",
		"kubeproxy_sync_proxy_rules_endpoint_changes_total",
		"kubeproxy_sync_proxy_rules_service_changes_pending",
		"kubeproxy_sync_proxy_rules_service_changes_total",
		"kubeproxy_sync_proxy_rules_no_local_endpoints_total",
		"kubeproxy_proxy_healthz_total",
		"kubeproxy_proxy_livez_total",
		"kproxy_objects_rejected_total",
		"kproxy_watch_restarts_total",
		"kproxy_lists_total",
		"kproxy_dataplane_elements",
		"kproxy_sync_failures_total",
		"kproxy_process_resident_memory_bytes",
		"process_start_time_seconds",
		"process_resident_memory_bytes",
		"process_cpu_seconds_total",
	};
	struct metrics *m = NULL;
	char *text = NULL, line[256];
	double now = (double)time(NULL), v;

	REQUIRE(metrics_new("nftables", &m) == 0);
	metrics_sync_queued(m);
	metrics_sync_done(m, true, 0.0015);
	metrics_sync_done(m, false, 0.0005);
	metrics_sync_done(m, false, 100);
	metrics_sync_failed(m);
	metrics_sync_failed(m);
	metrics_set_changes(m, 10, 20, 1, 2);
	metrics_set_reflector(m, "Service", 3, 1, 2);
	metrics_set_reflector(m, "EndpointSlice", 0, 4, 5);
	metrics_set_reflector(m, "Service", 4, 1, 2);
	metrics_set_dataplane_elements(m, 4242);
	metrics_observe_network_programming(m, 0.3);
	metrics_observe_network_programming(m, 61);
	metrics_count_health_request(m, false, 200);
	metrics_count_health_request(m, true, 503);
	metrics_count_health_request(m, true, 500);
	REQUIRE(metrics_render(m, &text, NULL) == 0);
	CHECK(parse_exposition(text) > 100);

	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		snprintf(line, sizeof(line), "# HELP %s ", names[i]);
		CHECK(unit_contains(text, line));
		snprintf(line, sizeof(line), "# TYPE %s ", names[i]);
		CHECK(unit_contains(text, line));
		if (!unit_contains(text, line))
			fprintf(stderr, "    missing %s\n", names[i]);
	}
	CHECK(unit_contains(text,
			    "# TYPE kubeproxy_sync_proxy_rules_duration_seconds histogram\n"));
	CHECK(unit_contains(text, "# TYPE kubeproxy_sync_proxy_rules_no_local_endpoints_total "
				  "gauge\n"));
	CHECK(unit_contains(text, "# TYPE kproxy_lists_total counter\n"));

	/* kube-proxy's bucket layouts. */
	check_buckets(text, "kubeproxy_sync_proxy_rules_duration_seconds", sync_le, 15);
	CHECK_EQ_INT(count_lines(text, "kubeproxy_sync_proxy_rules_duration_seconds_bucket"), 16);
	check_buckets(text, "kubeproxy_network_programming_duration_seconds", net_le, 14);
	CHECK_EQ_INT(count_lines(text, "kubeproxy_network_programming_duration_seconds_bucket"),
		     82);
	CHECK(sample(text, "kubeproxy_sync_proxy_rules_duration_seconds_bucket{le=\"0.001\"} ") ==
	      1);
	CHECK(sample(text, "kubeproxy_sync_proxy_rules_duration_seconds_bucket{le=\"0.002\"} ") ==
	      2);
	CHECK(sample(text, "kubeproxy_sync_proxy_rules_duration_seconds_bucket{le=\"16.384\"} ") ==
	      2);
	CHECK(sample(text, "kubeproxy_sync_proxy_rules_duration_seconds_count ") == 3);
	CHECK(sample(text, "kubeproxy_sync_full_proxy_rules_duration_seconds_count ") == 1);
	CHECK(sample(text, "kubeproxy_sync_partial_proxy_rules_duration_seconds_count ") == 2);
	CHECK(sample(text, "kubeproxy_network_programming_duration_seconds_bucket{le=\"0.25\"} ") ==
	      0);
	CHECK(sample(text, "kubeproxy_network_programming_duration_seconds_bucket{le=\"0.5\"} ") ==
	      1);
	CHECK(sample(text, "kubeproxy_network_programming_duration_seconds_bucket{le=\"65\"} ") ==
	      2);

	v = sample(text, "kubeproxy_sync_proxy_rules_last_timestamp_seconds ");
	CHECK(v >= now - 5 && v <= now + 5);
	v = sample(text, "kubeproxy_sync_proxy_rules_last_queued_timestamp_seconds ");
	CHECK(v >= now - 5 && v <= now + 5);
	CHECK(sample(text, "kubeproxy_sync_proxy_rules_service_changes_total ") == 10);
	CHECK(sample(text, "kubeproxy_sync_proxy_rules_endpoint_changes_total ") == 20);
	CHECK(sample(text, "kubeproxy_sync_proxy_rules_service_changes_pending ") == 1);
	CHECK(sample(text, "kubeproxy_sync_proxy_rules_endpoint_changes_pending ") == 2);
	CHECK(sample(text, "kproxy_sync_failures_total ") == 2);
	CHECK(sample(text, "kproxy_dataplane_elements ") == 4242);
	CHECK(sample(text, "kproxy_objects_rejected_total{kind=\"Service\"} ") == 4);
	CHECK(sample(text, "kproxy_objects_rejected_total{kind=\"EndpointSlice\"} ") == 0);
	CHECK(sample(text, "kproxy_watch_restarts_total{kind=\"EndpointSlice\"} ") == 4);
	CHECK(sample(text, "kproxy_lists_total{kind=\"Service\"} ") == 2);
	/* Known codes are there from the start; others appear when used. */
	CHECK(sample(text, "kubeproxy_proxy_healthz_total{code=\"200\"} ") == 1);
	CHECK(sample(text, "kubeproxy_proxy_healthz_total{code=\"503\"} ") == 0);
	CHECK(sample(text, "kubeproxy_proxy_livez_total{code=\"503\"} ") == 1);
	CHECK(sample(text, "kubeproxy_proxy_livez_total{code=\"500\"} ") == 1);
	CHECK(sample(text, "kubeproxy_sync_proxy_rules_no_local_endpoints_total{traffic_policy="
			   "\"internal\"} ") == 0);

	/* The process, from /proc. */
	v = sample(text, "kproxy_process_resident_memory_bytes ");
	CHECK(v > 100000 && v < 1e11);
	CHECK(sample(text, "process_resident_memory_bytes ") == v);
	v = sample(text, "process_start_time_seconds ");
	CHECK(v > now - 3600 && v <= now + 1);
	CHECK(sample(text, "process_open_fds ") >= 3);
	CHECK(sample(text, "process_cpu_seconds_total ") >= 0);
	free(text);
	metrics_free(m);
	metrics_free(NULL);
}

/* Endpoints for the "no local endpoints" counts. */
static struct endpoint remote_ready[] = {{.port = 80, .flags = EP_READY | EP_SERVING}};
static struct endpoint local_ready[] = {{.port = 80, .flags = EP_READY | EP_SERVING | EP_LOCAL}};
static struct endpoint remote_terminating[] = {{.port = 80, .flags = EP_SERVING | EP_TERMINATING}};

static void port_of(struct svc_port *sp, bool itp, bool etp, struct endpoint *eps, size_t n,
		    bool local)
{
	memset(sp, 0, sizeof(*sp));
	sp->ns = (char *)"ns";
	sp->name = (char *)"svc";
	sp->port_name = (char *)"";
	sp->family = AF_INET;
	sp->itp_local = itp;
	sp->etp_local = etp;
	sp->eps = eps;
	sp->n_eps = n;
	if (local) {
		sp->local_eps = eps;
		sp->n_local_eps = n;
	}
	if (!itp || !etp) {
		sp->cluster_eps = eps;
		sp->n_cluster_eps = n;
	}
}

TEST(no_local_endpoints)
{
	struct svc_port a[2], b[1], c[1], d[1], b2[1];
	struct svc_ports pa = {a, 2}, pb = {b, 1}, pc = {c, 1}, pd = {d, 1}, pb2 = {b2, 1};
	struct metrics *m = NULL;
	char *text = NULL;

	REQUIRE(metrics_new("nftables", &m) == 0);
	/* a: both policies Local, endpoints only elsewhere: counts for both,
	 * on each of its two ports. */
	port_of(&a[0], true, true, remote_ready, 1, false);
	port_of(&a[1], true, true, remote_ready, 1, false);
	/* b: external Local, a local endpoint: nothing. */
	port_of(&b[0], false, true, local_ready, 1, true);
	/* c: internal Local, no endpoints anywhere: nothing (the Service has
	 * none at all, which is not this metric). */
	port_of(&c[0], true, false, NULL, 0, false);
	/* d: external Local, only a terminating endpoint elsewhere that still
	 * serves: counts. */
	port_of(&d[0], false, true, remote_terminating, 1, false);
	{
		struct tracker_change ch[] = {
			{.key = (char *)"ns/a", .new = &pa},
			{.key = (char *)"ns/b", .new = &pb},
			{.key = (char *)"ns/c", .new = &pc},
			{.key = (char *)"ns/d", .new = &pd},
		};
		struct tracker_changes changes = {.v = ch, .n = 4, .full = true};

		metrics_apply_changes(m, &changes);
	}
	REQUIRE(metrics_render(m, &text, NULL) == 0);
	CHECK(sample(text, "kubeproxy_sync_proxy_rules_no_local_endpoints_total{traffic_policy="
			   "\"internal\"} ") == 2);
	CHECK(sample(text, "kubeproxy_sync_proxy_rules_no_local_endpoints_total{traffic_policy="
			   "\"external\"} ") == 3);
	free(text);

	/* b loses its local endpoint, a is deleted. */
	port_of(&b2[0], false, true, remote_ready, 1, false);
	{
		struct tracker_change ch[] = {
			{.key = (char *)"ns/b", .old = &pb, .new = &pb2},
			{.key = (char *)"ns/a", .old = &pa, .new = NULL},
		};
		struct tracker_changes changes = {.v = ch, .n = 2};

		metrics_apply_changes(m, &changes);
	}
	REQUIRE(metrics_render(m, &text, NULL) == 0);
	CHECK(sample(text, "kubeproxy_sync_proxy_rules_no_local_endpoints_total{traffic_policy="
			   "\"internal\"} ") == 0);
	CHECK(sample(text, "kubeproxy_sync_proxy_rules_no_local_endpoints_total{traffic_policy="
			   "\"external\"} ") == 2);
	free(text);

	/* A full sync starts the count again. */
	{
		struct tracker_change ch[] = {{.key = (char *)"ns/b", .new = &pb}};
		struct tracker_changes changes = {.v = ch, .n = 1, .full = true};

		metrics_apply_changes(m, &changes);
	}
	REQUIRE(metrics_render(m, &text, NULL) == 0);
	CHECK(sample(text, "kubeproxy_sync_proxy_rules_no_local_endpoints_total{traffic_policy="
			   "\"external\"} ") == 0);
	free(text);
	metrics_set_no_local(m, 7, 8);
	REQUIRE(metrics_render(m, &text, NULL) == 0);
	CHECK(sample(text, "kubeproxy_sync_proxy_rules_no_local_endpoints_total{traffic_policy="
			   "\"internal\"} ") == 7);
	free(text);
	metrics_free(m);
}

static int renders;

static void on_render(struct metrics *m, void *data)
{
	renders++;
	metrics_set_dataplane_elements(m, (uint64_t)(uintptr_t)data);
}

TEST(values_pulled_at_render)
{
	struct metrics *m = NULL;
	char *text = NULL;

	REQUIRE(metrics_new("nftables", &m) == 0);
	metrics_on_render(m, on_render, (void *)(uintptr_t)77);
	REQUIRE(metrics_render(m, &text, NULL) == 0);
	CHECK_EQ_INT(renders, 1);
	CHECK(sample(text, "kproxy_dataplane_elements ") == 77);
	free(text);
	metrics_on_render(m, NULL, NULL);
	REQUIRE(metrics_render(m, &text, NULL) == 0);
	CHECK_EQ_INT(renders, 1);
	free(text);
	metrics_free(m);
}

TEST(extra_metrics_through_the_registry)
{
	struct metrics *m = NULL;
	struct metrics_family *f = NULL;
	struct metric *s = NULL;
	char *text = NULL;

	REQUIRE(metrics_new("ebpf", &m) == 0);
	REQUIRE(metrics_family_new(metrics_get_registry(m), METRICS_GAUGE, "kproxy_test_gauge",
				   "A test", NULL, NULL, 0, &f) == 0);
	REQUIRE(metrics_series(f, NULL, &s) == 0);
	metrics_set(s, 12);
	CHECK_EQ_INT(metrics_family_new(metrics_get_registry(m), METRICS_GAUGE,
					"kproxy_dataplane_elements", "dup", NULL, NULL, 0, &f),
		     -EEXIST);
	REQUIRE(metrics_render(m, &text, NULL) == 0);
	CHECK(sample(text, "kproxy_test_gauge ") == 12);
	free(text);
	metrics_free(m);
}

UNIT_MAIN(T(float_format), T(registry_checks), T(render_counters_and_gauges), T(render_histogram),
	  T(agent_metrics), T(no_local_endpoints), T(values_pulled_at_render),
	  T(extra_metrics_through_the_registry))
