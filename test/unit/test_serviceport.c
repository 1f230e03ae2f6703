/* Tests for model/serviceport, the pure function from (Service, its
 * EndpointSlices, this node) to the service ports the dataplanes program.
 * Objects are decoded from JSON with the real decoders, so the tests read
 * like API objects.  Covered: one port per (family, Service port) in
 * cluster-IP order; slice ports matched by name and protocol; slices of the
 * other family ignored; endpoints listed in several slices counted once with
 * the most ready copy winning; sorting; locality by node name; the Cluster
 * endpoint set (ready, else serving-terminating) and the Local one (local
 * ready, else local serving-terminating); zone and node topology hints and
 * when they are ignored; externalTrafficPolicy only for externally reachable
 * ports and the health-check node port with it; Services that give no ports;
 * node ports by type; load-balancer IPs, externalIPs and source ranges split
 * by family; affinity; equality after any single change; and the count of
 * local ready endpoints behind health checks. */
#include <errno.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>

#include "kube/decode.h"
#include "model/serviceport.h"
#include "unit.h"

static char err[512];

static json_t *J(const char *text)
{
	char *copy = strdup(text);
	json_error_t e;
	json_t *j;

	if (!copy)
		return NULL;
	for (char *p = copy; *p; p++) {
		if (*p == '\'')
			*p = '"';
	}
	j = json_loads(copy, 0, &e);
	if (!j)
		fprintf(stderr, "    bad test JSON at %d:%d: %s\n    %s\n", e.line, e.column,
			e.text, copy);
	free(copy);
	return j;
}

/* A Service decoded from JSON text; NULL (with a message) on failure. */
static struct service *service_json(const char *text)
{
	struct service *s = NULL;
	json_t *j = J(text);

	if (!j)
		return NULL;
	if (decode_service(j, &s, err, sizeof(err)) < 0)
		fprintf(stderr, "    decode_service: %s\n", err);
	json_decref(j);
	return s;
}

/* "web" in namespace "ns": ClusterIP 10.96.0.10, port http 80/TCP, plus the
 * given spec fields (later keys replace earlier ones) and the given tail
 * after spec (e.g. a status). */
static struct service *service2(const char *spec_extra, const char *tail)
{
	char buf[8192];

	snprintf(buf, sizeof(buf),
		 "{'metadata': {'name': 'web', 'namespace': 'ns'},"
		 " 'spec': {'clusterIP': '10.96.0.10', 'clusterIPs': ['10.96.0.10'],"
		 "  'ports': [{'name': 'http', 'port': 80, 'protocol': 'TCP'}]%s}%s}",
		 spec_extra, tail);
	return service_json(buf);
}

static struct service *service(const char *spec_extra)
{
	return service2(spec_extra, "");
}

#define HTTP_8080 "[{'name': 'http', 'port': 8080, 'protocol': 'TCP'}]"

/* A slice of "web" called name; ports NULL means http 8080/TCP. */
static struct endpoint_slice *slice(const char *name, const char *type, const char *ports,
				    const char *endpoints)
{
	struct endpoint_slice *s = NULL;
	char buf[16384];
	json_t *j;

	snprintf(buf, sizeof(buf),
		 "{'metadata': {'name': '%s', 'namespace': 'ns',"
		 "  'labels': {'kubernetes.io/service-name': 'web'}},"
		 " 'addressType': '%s', 'ports': %s, 'endpoints': %s}",
		 name, type, ports ? ports : HTTP_8080, endpoints);
	j = J(buf);
	if (!j)
		return NULL;
	if (decode_endpoint_slice(j, &s, err, sizeof(err)) < 0 || !s)
		fprintf(stderr, "    decode_endpoint_slice: %s\n", err);
	json_decref(j);
	return s;
}

static const struct model_node node_a = {"node-a", "zone-1"};

/* Renders endpoints as "addr:port/FLAGS ..." with R(eady) S(erving)
 * T(erminating) L(ocal), for exact comparisons with readable failures. */
static const char *render(const struct endpoint *eps, size_t n)
{
	static char bufs[8][4096];
	static int next;
	char *out = bufs[next++ % 8];
	size_t off = 0;

	out[0] = '\0';
	for (size_t i = 0; i < n && off < 4000; i++) {
		char a[IPADDR_STRLEN];
		uint8_t f = eps[i].flags;

		ipaddr_format(&eps[i].addr, a);
		off += (size_t)snprintf(out + off, 4096 - off,
					eps[i].addr.family == AF_INET6 ? "%s[%s]:%u/%s%s%s%s"
								       : "%s%s:%u/%s%s%s%s",
					i ? " " : "", a, eps[i].port, f & EP_READY ? "R" : "",
					f & EP_SERVING ? "S" : "", f & EP_TERMINATING ? "T" : "",
					f & EP_LOCAL ? "L" : "");
	}
	return out;
}

static const char *render_ips(const struct ipaddr *ips, size_t n)
{
	static char bufs[4][1024];
	static int next;
	char *out = bufs[next++ % 4];
	size_t off = 0;

	out[0] = '\0';
	for (size_t i = 0; i < n && off < 900; i++) {
		char a[IPADDR_STRLEN];

		off += (size_t)snprintf(out + off, 1024 - off, "%s%s", i ? " " : "",
					ipaddr_format(&ips[i], a));
	}
	return out;
}

static const char *render_cidrs(const struct cidr *c, size_t n)
{
	static char out[1024];
	size_t off = 0;

	out[0] = '\0';
	for (size_t i = 0; i < n && off < 900; i++) {
		char a[IPADDR_STRLEN];

		off += (size_t)snprintf(out + off, sizeof(out) - off, "%s%s", i ? " " : "",
					cidr_format(&c[i], a));
	}
	return out;
}

static void free_slices(struct endpoint_slice **v, size_t n)
{
	for (size_t i = 0; i < n; i++)
		endpoint_slice_free(v[i]);
}

/* --- shape ---------------------------------------------------------------- */

TEST(one_port_per_family_and_port)
{
	struct service *svc =
		service(", 'clusterIP': 'fd00::10', 'clusterIPs': ['fd00::10', '10.96.0.10'],"
			" 'ports': [{'name': 'http', 'port': 80, 'protocol': 'TCP'},"
			"           {'name': 'dns', 'port': 53, 'protocol': 'UDP'}]");
	const char *ports = "[{'name': 'http', 'port': 8080, 'protocol': 'TCP'},"
			    " {'name': 'dns', 'port': 5353, 'protocol': 'UDP'}]";
	struct endpoint_slice *sl[2] = {
		slice("web-v4", "IPv4", ports, "[{'addresses': ['10.0.0.1']}]"),
		slice("web-v6", "IPv6", ports, "[{'addresses': ['fd00:244::1']}]"),
	};
	struct svc_ports out;
	char buf[SVC_PORT_NAME_MAX];

	REQUIRE(svc && sl[0] && sl[1]);
	REQUIRE(svc_ports_build(svc, sl, 2, &node_a, &out) == 0);
	REQUIRE(out.n == 4);
	/* Primary family (the first cluster IP) first, then the Service's
	 * port order. */
	CHECK_EQ_INT(out.v[0].family, AF_INET6);
	CHECK_EQ_STR(out.v[0].port_name, "http");
	CHECK_EQ_INT(out.v[0].protocol, IPPROTO_TCP);
	CHECK_EQ_INT(out.v[0].port, 80);
	CHECK(out.v[0].has_cluster_ip);
	CHECK_EQ_STR(render_ips(&out.v[0].cluster_ip, 1), "fd00::10");
	CHECK_EQ_STR(render(out.v[0].eps, out.v[0].n_eps), "[fd00:244::1]:8080/RS");

	CHECK_EQ_INT(out.v[1].family, AF_INET6);
	CHECK_EQ_STR(out.v[1].port_name, "dns");
	CHECK_EQ_INT(out.v[1].protocol, IPPROTO_UDP);
	CHECK_EQ_INT(out.v[1].port, 53);
	CHECK_EQ_STR(render(out.v[1].eps, out.v[1].n_eps), "[fd00:244::1]:5353/RS");

	CHECK_EQ_INT(out.v[2].family, AF_INET);
	CHECK_EQ_STR(out.v[2].port_name, "http");
	CHECK_EQ_STR(render_ips(&out.v[2].cluster_ip, 1), "10.96.0.10");
	CHECK_EQ_STR(render(out.v[2].eps, out.v[2].n_eps), "10.0.0.1:8080/RS");
	CHECK_EQ_INT(out.v[3].family, AF_INET);
	CHECK_EQ_STR(out.v[3].port_name, "dns");
	CHECK_EQ_STR(render(out.v[3].eps, out.v[3].n_eps), "10.0.0.1:5353/RS");

	for (size_t i = 0; i < out.n; i++) {
		CHECK_EQ_STR(out.v[i].ns, "ns");
		CHECK_EQ_STR(out.v[i].name, "web");
		CHECK_EQ_INT(out.v[i].node_port, 0);
	}
	CHECK_EQ_STR(svc_port_format(&out.v[0], buf), "ns/web:http/TCP/IPv6");
	CHECK_EQ_STR(svc_port_format(&out.v[3], buf), "ns/web:dns/UDP");
	svc_ports_clear(&out);
	CHECK(out.v == NULL);
	CHECK_EQ_INT(out.n, 0);
	free_slices(sl, 2);
	service_free(svc);
}

TEST(no_slices_no_endpoints)
{
	struct service *svc = service("");
	struct svc_ports out;

	REQUIRE(svc);
	REQUIRE(svc_ports_build(svc, NULL, 0, &node_a, &out) == 0);
	REQUIRE(out.n == 1);
	CHECK_EQ_INT(out.v[0].n_eps, 0);
	CHECK_EQ_INT(out.v[0].n_cluster_eps, 0);
	CHECK_EQ_INT(out.v[0].n_local_eps, 0);
	svc_ports_clear(&out);
	service_free(svc);
}

TEST(ports_matched_by_name_and_protocol)
{
	struct service *svc = service(", 'ports': ["
				      " {'name': 'http', 'port': 80, 'protocol': 'TCP'},"
				      " {'name': 'dns', 'port': 53, 'protocol': 'UDP'},"
				      " {'name': 'dns-tcp', 'port': 53, 'protocol': 'TCP'},"
				      " {'name': 'metrics', 'port': 9090, 'protocol': 'TCP'}]");
	/* http exists as UDP (wrong protocol) and as TCP; dns only as UDP;
	 * metrics has no port number in this slice. */
	struct endpoint_slice *sl[1] = {
		slice("web-1", "IPv4",
		      "[{'name': 'http', 'port': 8443, 'protocol': 'UDP'},"
		      " {'name': 'dns', 'port': 5353, 'protocol': 'UDP'},"
		      " {'name': 'http', 'port': 8080, 'protocol': 'TCP'},"
		      " {'name': 'metrics', 'port': null, 'protocol': 'TCP'},"
		      " {'name': 'other', 'port': 1, 'protocol': 'TCP'}]",
		      "[{'addresses': ['10.0.0.1']}]"),
	};
	struct svc_ports out;

	REQUIRE(svc && sl[0]);
	REQUIRE(svc_ports_build(svc, sl, 1, &node_a, &out) == 0);
	REQUIRE(out.n == 4);
	CHECK_EQ_STR(render(out.v[0].eps, out.v[0].n_eps), "10.0.0.1:8080/RS");
	CHECK_EQ_STR(render(out.v[1].eps, out.v[1].n_eps), "10.0.0.1:5353/RS");
	CHECK_EQ_INT(out.v[2].n_eps, 0);
	CHECK_EQ_INT(out.v[3].n_eps, 0);
	svc_ports_clear(&out);
	free_slices(sl, 1);
	service_free(svc);

	/* An unnamed Service port matches the unnamed slice port. */
	svc = service(", 'ports': [{'port': 80}]");
	sl[0] = slice("web-1", "IPv4", "[{'port': 9376}]", "[{'addresses': ['10.0.0.2']}]");
	REQUIRE(svc && sl[0]);
	REQUIRE(svc_ports_build(svc, sl, 1, &node_a, &out) == 0);
	REQUIRE(out.n == 1);
	CHECK_EQ_STR(out.v[0].port_name, "");
	CHECK_EQ_STR(render(out.v[0].eps, out.v[0].n_eps), "10.0.0.2:9376/RS");
	svc_ports_clear(&out);
	free_slices(sl, 1);
	service_free(svc);
}

TEST(other_family_ignored)
{
	struct service *svc = service("");
	struct endpoint_slice *sl[2] = {
		slice("web-v6", "IPv6", NULL, "[{'addresses': ['fd00::1']}]"),
		slice("web-v4", "IPv4", NULL, "[{'addresses': ['10.0.0.1']}]"),
	};
	struct svc_ports out;

	REQUIRE(svc && sl[0] && sl[1]);
	REQUIRE(svc_ports_build(svc, sl, 2, &node_a, &out) == 0);
	REQUIRE(out.n == 1);
	CHECK_EQ_INT(out.v[0].family, AF_INET);
	CHECK_EQ_STR(render(out.v[0].eps, out.v[0].n_eps), "10.0.0.1:8080/RS");
	svc_ports_clear(&out);
	REQUIRE(svc_ports_build(svc, sl, 1, &node_a, &out) == 0);
	REQUIRE(out.n == 1);
	CHECK_EQ_INT(out.v[0].n_eps, 0);
	svc_ports_clear(&out);
	free_slices(sl, 2);
	service_free(svc);
}

/* --- endpoints ----------------------------------------------------------- */

TEST(duplicates_most_ready_wins)
{
	struct service *svc = service("");
	const char *terminating =
		"[{'addresses': ['10.0.0.1'], 'conditions': {'ready': false, 'serving': true,"
		" 'terminating': true}}, {'addresses': ['10.0.0.2'], 'conditions': {'ready': false,"
		" 'serving': false}}, {'addresses': ['10.0.0.3']}]";
	const char *ready = "[{'addresses': ['10.0.0.1'], 'nodeName': 'node-a'},"
			    " {'addresses': ['10.0.0.2'], 'conditions': {'ready': false,"
			    " 'serving': true, 'terminating': true}},"
			    " {'addresses': ['10.0.0.3'], 'conditions': {'ready': false}}]";
	struct endpoint_slice *sl[3] = {
		slice("web-a", "IPv4", NULL, terminating),
		slice("web-b", "IPv4", NULL, ready),
		slice("web-c", "IPv4", NULL,
		      "[{'addresses': ['10.0.0.1'], 'conditions': {"
		      "'ready': false, 'serving': false}}]"),
	};
	struct endpoint_slice *rev[3];
	struct svc_ports out, out2;

	REQUIRE(svc && sl[0] && sl[1] && sl[2]);
	REQUIRE(svc_ports_build(svc, sl, 3, &node_a, &out) == 0);
	REQUIRE(out.n == 1);
	/* .1: ready in web-b beats serving in web-a and nothing in web-c;
	 * .2: serving beats neither; .3: ready beats not ready. */
	CHECK_EQ_STR(render(out.v[0].eps, out.v[0].n_eps),
		     "10.0.0.1:8080/RSL 10.0.0.2:8080/ST 10.0.0.3:8080/RS");
	CHECK_EQ_STR(render(out.v[0].cluster_eps, out.v[0].n_cluster_eps),
		     "10.0.0.1:8080/RSL 10.0.0.3:8080/RS");

	/* The order the slices come in does not matter. */
	rev[0] = sl[2];
	rev[1] = sl[1];
	rev[2] = sl[0];
	REQUIRE(svc_ports_build(svc, rev, 3, &node_a, &out2) == 0);
	CHECK(svc_ports_equal(&out, &out2));
	svc_ports_clear(&out);
	svc_ports_clear(&out2);
	free_slices(sl, 3);
	service_free(svc);
}

TEST(same_address_different_ports_kept)
{
	/* During a targetPort change two slices name different ports for the
	 * same pod: both are distinct endpoints. */
	struct service *svc = service("");
	struct endpoint_slice *sl[2] = {
		slice("web-a", "IPv4", "[{'name': 'http', 'port': 8080}]",
		      "[{'addresses': ['10.0.0.1']}]"),
		slice("web-b", "IPv4", "[{'name': 'http', 'port': 8081}]",
		      "[{'addresses': ['10.0.0.1']}]"),
	};
	struct svc_ports out;

	REQUIRE(svc && sl[0] && sl[1]);
	REQUIRE(svc_ports_build(svc, sl, 2, &node_a, &out) == 0);
	REQUIRE(out.n == 1);
	CHECK_EQ_STR(render(out.v[0].eps, out.v[0].n_eps), "10.0.0.1:8080/RS 10.0.0.1:8081/RS");
	svc_ports_clear(&out);
	free_slices(sl, 2);
	service_free(svc);
}

TEST(endpoints_sorted)
{
	struct service *svc = service("");
	struct endpoint_slice *sl[2] = {
		slice("web-b", "IPv4", NULL,
		      "[{'addresses': ['10.0.0.10']}, {'addresses': ['9.0.0.1']},"
		      " {'addresses': ['10.0.0.2']}]"),
		slice("web-a", "IPv4", NULL,
		      "[{'addresses': ['192.168.0.1']}, {'addresses': ['10.0.0.1']}]"),
	};
	struct svc_ports out;

	REQUIRE(svc && sl[0] && sl[1]);
	REQUIRE(svc_ports_build(svc, sl, 2, &node_a, &out) == 0);
	REQUIRE(out.n == 1);
	CHECK_EQ_STR(render(out.v[0].eps, out.v[0].n_eps),
		     "9.0.0.1:8080/RS 10.0.0.1:8080/RS 10.0.0.2:8080/RS 10.0.0.10:8080/RS "
		     "192.168.0.1:8080/RS");
	svc_ports_clear(&out);
	free_slices(sl, 2);
	service_free(svc);
}

TEST(locality_by_node_name)
{
	struct service *svc = service("");
	struct endpoint_slice *sl[1] = {
		slice("web-a", "IPv4", NULL,
		      "[{'addresses': ['10.0.0.1'], 'nodeName': 'node-a'},"
		      " {'addresses': ['10.0.0.2'], 'nodeName': 'node-b'},"
		      " {'addresses': ['10.0.0.3']},"
		      " {'addresses': ['10.0.0.4'], 'nodeName': 'node-a2'}]"),
	};
	const struct model_node anon = {NULL, NULL};
	struct svc_ports out;

	REQUIRE(svc && sl[0]);
	REQUIRE(svc_ports_build(svc, sl, 1, &node_a, &out) == 0);
	REQUIRE(out.n == 1);
	CHECK_EQ_STR(render(out.v[0].eps, out.v[0].n_eps),
		     "10.0.0.1:8080/RSL 10.0.0.2:8080/RS 10.0.0.3:8080/RS 10.0.0.4:8080/RS");
	CHECK_EQ_STR(render(out.v[0].local_eps, out.v[0].n_local_eps), "10.0.0.1:8080/RSL");
	CHECK_EQ_INT(svc_port_local_ready(&out.v[0]), 1);
	svc_ports_clear(&out);

	/* A node without a name has no local endpoints. */
	REQUIRE(svc_ports_build(svc, sl, 1, &anon, &out) == 0);
	REQUIRE(out.n == 1);
	CHECK_EQ_INT(out.v[0].n_local_eps, 0);
	CHECK_EQ_INT(svc_port_local_ready(&out.v[0]), 0);
	svc_ports_clear(&out);
	free_slices(sl, 1);
	service_free(svc);
}

/* Conditions as JSON, for building endpoints. */
#define C_READY	       "{'ready': true, 'serving': true, 'terminating': false}"
#define C_SERVING_TERM "{'ready': false, 'serving': true, 'terminating': true}"
#define C_EVICTED      "{'ready': false, 'serving': false, 'terminating': true}"
#define C_NOT_READY    "{'ready': false, 'serving': false, 'terminating': false}"

TEST(cluster_endpoints_and_fallback)
{
	struct service *svc = service("");
	struct endpoint_slice *sl[1];
	struct svc_ports out;

	REQUIRE(svc);
	/* Ready ones only, when there are any. */
	sl[0] = slice("web-a", "IPv4", NULL,
		      "[{'addresses': ['10.0.0.1'], 'conditions': " C_READY "},"
		      " {'addresses': ['10.0.0.2'], 'conditions': " C_SERVING_TERM "},"
		      " {'addresses': ['10.0.0.3'], 'conditions': " C_EVICTED "},"
		      " {'addresses': ['10.0.0.4'], 'conditions': " C_NOT_READY "}]");
	REQUIRE(sl[0]);
	REQUIRE(svc_ports_build(svc, sl, 1, &node_a, &out) == 0);
	CHECK_EQ_INT(out.v[0].n_eps, 4);
	CHECK_EQ_STR(render(out.v[0].cluster_eps, out.v[0].n_cluster_eps), "10.0.0.1:8080/RS");
	svc_ports_clear(&out);
	free_slices(sl, 1);

	/* No ready one: the serving terminating ones, never evicted ones. */
	sl[0] = slice("web-a", "IPv4", NULL,
		      "[{'addresses': ['10.0.0.5'], 'conditions': " C_SERVING_TERM "},"
		      " {'addresses': ['10.0.0.2'], 'conditions': " C_SERVING_TERM "},"
		      " {'addresses': ['10.0.0.3'], 'conditions': " C_EVICTED "},"
		      " {'addresses': ['10.0.0.4'], 'conditions': " C_NOT_READY "},"
		      " {'addresses': ['10.0.0.6'], 'conditions': {'ready': false,"
		      "   'serving': true, 'terminating': false}}]");
	REQUIRE(sl[0]);
	REQUIRE(svc_ports_build(svc, sl, 1, &node_a, &out) == 0);
	CHECK_EQ_STR(render(out.v[0].cluster_eps, out.v[0].n_cluster_eps),
		     "10.0.0.2:8080/ST 10.0.0.5:8080/ST");
	svc_ports_clear(&out);
	free_slices(sl, 1);

	/* Nothing usable at all. */
	sl[0] = slice("web-a", "IPv4", NULL,
		      "[{'addresses': ['10.0.0.3'], 'conditions': " C_EVICTED "},"
		      " {'addresses': ['10.0.0.4'], 'conditions': " C_NOT_READY "}]");
	REQUIRE(sl[0]);
	REQUIRE(svc_ports_build(svc, sl, 1, &node_a, &out) == 0);
	CHECK_EQ_INT(out.v[0].n_eps, 2);
	CHECK_EQ_INT(out.v[0].n_cluster_eps, 0);
	CHECK_EQ_INT(out.v[0].n_local_eps, 0);
	svc_ports_clear(&out);
	free_slices(sl, 1);
	service_free(svc);
}

TEST(local_endpoints_and_fallback)
{
	struct service *svc =
		service(", 'type': 'NodePort', 'externalTrafficPolicy': 'Local',"
			" 'ports': [{'name': 'http', 'port': 80, 'nodePort': 30080}]");
	struct endpoint_slice *sl[1];
	struct svc_ports out;
	const struct endpoint *e;
	size_t n;

	REQUIRE(svc);
	/* Local ready ones win over local terminating and remote ones. */
	sl[0] = slice(
		"web-a", "IPv4", NULL,
		"[{'addresses': ['10.0.0.1'], 'nodeName': 'node-a', 'conditions': " C_READY "},"
		" {'addresses': ['10.0.0.2'], 'nodeName': 'node-a', 'conditions': " C_SERVING_TERM
		"},"
		" {'addresses': ['10.0.0.3'], 'nodeName': 'node-b', 'conditions': " C_READY "}]");
	REQUIRE(sl[0]);
	REQUIRE(svc_ports_build(svc, sl, 1, &node_a, &out) == 0);
	REQUIRE(out.n == 1);
	CHECK(out.v[0].etp_local);
	CHECK_EQ_STR(render(out.v[0].local_eps, out.v[0].n_local_eps), "10.0.0.1:8080/RSL");
	CHECK_EQ_STR(render(out.v[0].cluster_eps, out.v[0].n_cluster_eps),
		     "10.0.0.1:8080/RSL 10.0.0.3:8080/RS");
	/* External traffic takes the Local set, internal the Cluster set. */
	e = svc_port_external_eps(&out.v[0], &n);
	CHECK_EQ_STR(render(e, n), "10.0.0.1:8080/RSL");
	e = svc_port_internal_eps(&out.v[0], &n);
	CHECK_EQ_STR(render(e, n), "10.0.0.1:8080/RSL 10.0.0.3:8080/RS");
	CHECK_EQ_INT(svc_port_local_ready(&out.v[0]), 1);
	svc_ports_clear(&out);
	free_slices(sl, 1);

	/* No local ready one: the local serving terminating ones, even though
	 * remote ready ones exist. */
	sl[0] = slice(
		"web-a", "IPv4", NULL,
		"[{'addresses': ['10.0.0.2'], 'nodeName': 'node-a', 'conditions': " C_SERVING_TERM
		"},"
		" {'addresses': ['10.0.0.4'], 'nodeName': 'node-a', 'conditions': " C_EVICTED "},"
		" {'addresses': ['10.0.0.3'], 'nodeName': 'node-b', 'conditions': " C_READY "}]");
	REQUIRE(sl[0]);
	REQUIRE(svc_ports_build(svc, sl, 1, &node_a, &out) == 0);
	CHECK_EQ_STR(render(out.v[0].local_eps, out.v[0].n_local_eps), "10.0.0.2:8080/STL");
	CHECK_EQ_STR(render(out.v[0].cluster_eps, out.v[0].n_cluster_eps), "10.0.0.3:8080/RS");
	CHECK_EQ_INT(svc_port_local_ready(&out.v[0]), 0);
	svc_ports_clear(&out);
	free_slices(sl, 1);

	/* Only remote endpoints: Local traffic has nowhere to go. */
	sl[0] = slice("web-a", "IPv4", NULL,
		      "[{'addresses': ['10.0.0.3'], 'nodeName': 'node-b', 'conditions': " C_READY
		      "}]");
	REQUIRE(sl[0]);
	REQUIRE(svc_ports_build(svc, sl, 1, &node_a, &out) == 0);
	CHECK_EQ_INT(out.v[0].n_local_eps, 0);
	e = svc_port_external_eps(&out.v[0], &n);
	CHECK_EQ_INT(n, 0);
	svc_ports_clear(&out);
	free_slices(sl, 1);
	service_free(svc);
}

TEST(local_ready_count)
{
	struct service *svc = service("");
	struct endpoint_slice *sl[2] = {
		slice("web-a", "IPv4", NULL,
		      "[{'addresses': ['10.0.0.1'], 'nodeName': 'node-a'},"
		      " {'addresses': ['10.0.0.2'], 'nodeName': 'node-a'},"
		      " {'addresses': ['10.0.0.3'], 'nodeName': 'node-a', "
		      "'conditions': " C_SERVING_TERM "},"
		      " {'addresses': ['10.0.0.4'], 'nodeName': 'node-b'}]"),
		/* A duplicate of a local ready endpoint is counted once. */
		slice("web-b", "IPv4", NULL, "[{'addresses': ['10.0.0.2'], 'nodeName': 'node-a'}]"),
	};
	struct svc_ports out;

	REQUIRE(svc && sl[0] && sl[1]);
	REQUIRE(svc_ports_build(svc, sl, 2, &node_a, &out) == 0);
	CHECK_EQ_INT(svc_port_local_ready(&out.v[0]), 2);
	svc_ports_clear(&out);
	free_slices(sl, 2);
	service_free(svc);
}

/* --- topology ------------------------------------------------------------ */

static struct svc_ports build_one(const char *endpoints, const struct model_node *node)
{
	struct service *svc = service(", 'trafficDistribution': 'PreferClose'");
	struct endpoint_slice *sl[1] = {slice("web-a", "IPv4", NULL, endpoints)};
	struct svc_ports out = {0};

	if (svc && sl[0] && svc_ports_build(svc, sl, 1, node, &out) < 0)
		fprintf(stderr, "    svc_ports_build failed\n");
	endpoint_slice_free(sl[0]);
	service_free(svc);
	return out;
}

#define ZONE(z)	   "'hints': {'forZones': [{'name': '" z "'}]}"
#define NODEH(n)   "'hints': {'forNodes': [{'name': '" n "'}]}"
#define BOTH(z, n) "'hints': {'forZones': [{'name': '" z "'}], 'forNodes': [{'name': '" n "'}]}"

TEST(topology_zone_hints)
{
	struct svc_ports out;
	const struct model_node no_zone = {"node-a", NULL};

	/* Every ready endpoint hinted, some for this zone: only those. */
	out = build_one(
		"[{'addresses': ['10.0.0.1'], " ZONE(
			"zone-1") "},"
				  " {'addresses': ['10.0.0.2'], " ZONE(
					  "zone-2") "},"
						    " {'addresses': ['10.0.0.3'], 'hints': "
						    "{'forZones': [{'name': 'zone-2'},"
						    "   {'name': 'zone-1'}]}},"
						    " {'addresses': ['10.0.0.4'], 'nodeName': "
						    "'node-a', " ZONE("zone-2") "}]",
		&node_a);
	REQUIRE(out.n == 1);
	CHECK_EQ_INT(out.v[0].n_eps, 4);
	CHECK_EQ_STR(render(out.v[0].cluster_eps, out.v[0].n_cluster_eps),
		     "10.0.0.1:8080/RS 10.0.0.3:8080/RS");
	/* Local endpoints are not narrowed by hints. */
	CHECK_EQ_STR(render(out.v[0].local_eps, out.v[0].n_local_eps), "10.0.0.4:8080/RSL");
	svc_ports_clear(&out);

	/* Endpoints that are not ready need no hints. */
	out = build_one(
		"[{'addresses': ['10.0.0.1'], " ZONE(
			"zone-1") "},"
				  " {'addresses': ['10.0.0.2'], 'conditions': " C_SERVING_TERM "},"
				  " {'addresses': ['10.0.0.3'], " ZONE("zone-2") "}]",
		&node_a);
	REQUIRE(out.n == 1);
	CHECK_EQ_STR(render(out.v[0].cluster_eps, out.v[0].n_cluster_eps), "10.0.0.1:8080/RS");
	svc_ports_clear(&out);

	/* One ready endpoint without a hint: hints are ignored. */
	out = build_one("[{'addresses': ['10.0.0.1'], " ZONE(
				"zone-1") "},"
					  " {'addresses': ['10.0.0.2']},"
					  " {'addresses': ['10.0.0.3'], " ZONE("zone-2") "}]",
			&node_a);
	REQUIRE(out.n == 1);
	CHECK_EQ_INT(out.v[0].n_cluster_eps, 3);
	svc_ports_clear(&out);

	/* No endpoint for this zone: hints are ignored. */
	out = build_one("[{'addresses': ['10.0.0.1'], " ZONE(
				"zone-2") "},"
					  " {'addresses': ['10.0.0.2'], " ZONE("zone-3") "}]",
			&node_a);
	REQUIRE(out.n == 1);
	CHECK_EQ_INT(out.v[0].n_cluster_eps, 2);
	svc_ports_clear(&out);

	/* A node with no zone cannot use zone hints. */
	out = build_one("[{'addresses': ['10.0.0.1'], " ZONE(
				"zone-1") "},"
					  " {'addresses': ['10.0.0.2'], " ZONE("zone-2") "}]",
			&no_zone);
	REQUIRE(out.n == 1);
	CHECK_EQ_INT(out.v[0].n_cluster_eps, 2);
	svc_ports_clear(&out);
}

TEST(topology_node_hints)
{
	struct svc_ports out;

	/* Every ready endpoint has node hints and one is for this node: the
	 * node hints win over zone hints. */
	out = build_one(
		"[{'addresses': ['10.0.0.1'], " BOTH(
			"zone-1", "node-b") "},"
					    " {'addresses': ['10.0.0.2'], " BOTH(
						    "zone-1",
						    "node-a") "},"
							      " {'addresses': ['10.0.0.3'], " BOTH(
								      "zone-2", "node-c") "}]",
		&node_a);
	REQUIRE(out.n == 1);
	CHECK_EQ_STR(render(out.v[0].cluster_eps, out.v[0].n_cluster_eps), "10.0.0.2:8080/RS");
	svc_ports_clear(&out);

	/* Node hints for other nodes only: fall back to the zone hints. */
	out = build_one("[{'addresses': ['10.0.0.1'], " BOTH(
				"zone-1", "node-b") "},"
						    " {'addresses': ['10.0.0.2'], " BOTH(
							    "zone-2", "node-c") "}]",
			&node_a);
	REQUIRE(out.n == 1);
	CHECK_EQ_STR(render(out.v[0].cluster_eps, out.v[0].n_cluster_eps), "10.0.0.1:8080/RS");
	svc_ports_clear(&out);

	/* Not every ready endpoint has a node hint: zone hints apply. */
	out = build_one(
		"[{'addresses': ['10.0.0.1'], " BOTH(
			"zone-1", "node-a") "},"
					    " {'addresses': ['10.0.0.2'], " ZONE(
						    "zone-1") "},"
							      " {'addresses': ['10.0.0.3'], " ZONE(
								      "zone-2") "}]",
		&node_a);
	REQUIRE(out.n == 1);
	CHECK_EQ_STR(render(out.v[0].cluster_eps, out.v[0].n_cluster_eps),
		     "10.0.0.1:8080/RS 10.0.0.2:8080/RS");
	svc_ports_clear(&out);

	/* Node hints only, none for this node, no zone hints: all ready. */
	out = build_one("[{'addresses': ['10.0.0.1'], " NODEH(
				"node-b") "},"
					  " {'addresses': ['10.0.0.2'], " NODEH("node-c") "}]",
			&node_a);
	REQUIRE(out.n == 1);
	CHECK_EQ_INT(out.v[0].n_cluster_eps, 2);
	svc_ports_clear(&out);

	/* Node hints only, one for this node. */
	out = build_one("[{'addresses': ['10.0.0.1'], " NODEH(
				"node-b") "},"
					  " {'addresses': ['10.0.0.2'], " NODEH("node-a") "}]",
			&node_a);
	REQUIRE(out.n == 1);
	CHECK_EQ_STR(render(out.v[0].cluster_eps, out.v[0].n_cluster_eps), "10.0.0.2:8080/RS");
	svc_ports_clear(&out);
}

/* --- policies and frontends --------------------------------------------- */

static struct svc_ports build_svc(struct service *svc)
{
	struct endpoint_slice *sl[2] = {
		slice("web-a", "IPv4", NULL,
		      "[{'addresses': ['10.0.0.1'], 'nodeName': 'node-a'},"
		      " {'addresses': ['10.0.0.2'], 'nodeName': 'node-b'}]"),
		slice("web-b", "IPv6", NULL, "[{'addresses': ['fd00::1'], 'nodeName': 'node-b'}]"),
	};
	struct svc_ports out = {0};

	if (svc && sl[0] && sl[1] && svc_ports_build(svc, sl, 2, &node_a, &out) < 0)
		fprintf(stderr, "    svc_ports_build failed\n");
	free_slices(sl, 2);
	service_free(svc);
	return out;
}

TEST(etp_only_when_external)
{
	struct svc_ports out;

	/* A ClusterIP Service has no external traffic to keep local. */
	out = build_svc(
		service(", 'externalTrafficPolicy': 'Local', 'healthCheckNodePort': 32000"));
	REQUIRE(out.n == 1);
	CHECK(!out.v[0].etp_local);
	CHECK_EQ_INT(out.v[0].hc_node_port, 0);
	CHECK_EQ_INT(out.v[0].node_port, 0);
	svc_ports_clear(&out);

	/* NodePort with Local: local endpoints outside, health-check port. */
	out = build_svc(service(", 'type': 'NodePort', 'externalTrafficPolicy': 'Local',"
				" 'healthCheckNodePort': 32000,"
				" 'ports': [{'name': 'http', 'port': 80, 'nodePort': 30080}]"));
	REQUIRE(out.n == 1);
	CHECK(out.v[0].etp_local);
	CHECK_EQ_INT(out.v[0].hc_node_port, 32000);
	CHECK_EQ_INT(out.v[0].node_port, 30080);
	CHECK(svc_port_external(&out.v[0]));
	svc_ports_clear(&out);

	/* A ClusterIP Service with externalIPs is reachable from outside. */
	out = build_svc(service(", 'externalTrafficPolicy': 'Local',"
				" 'externalIPs': ['192.0.2.1']"));
	REQUIRE(out.n == 1);
	CHECK(out.v[0].etp_local);
	CHECK_EQ_STR(render_ips(out.v[0].external_ips, out.v[0].n_external_ips), "192.0.2.1");
	svc_ports_clear(&out);

	/* Cluster policy: no health-check port even if the field is set. */
	out = build_svc(service(", 'type': 'NodePort', 'externalTrafficPolicy': 'Cluster',"
				" 'healthCheckNodePort': 32000,"
				" 'ports': [{'name': 'http', 'port': 80, 'nodePort': 30080}]"));
	REQUIRE(out.n == 1);
	CHECK(!out.v[0].etp_local);
	CHECK_EQ_INT(out.v[0].hc_node_port, 0);
	svc_ports_clear(&out);

	/* internalTrafficPolicy Local applies to any type. */
	out = build_svc(service(", 'internalTrafficPolicy': 'Local'"));
	REQUIRE(out.n == 1);
	CHECK(out.v[0].itp_local);
	{
		size_t n;
		const struct endpoint *e = svc_port_internal_eps(&out.v[0], &n);

		CHECK_EQ_STR(render(e, n), "10.0.0.1:8080/RSL");
	}
	svc_ports_clear(&out);
}

TEST(ignored_services_give_no_ports)
{
	struct svc_ports out;
	const char *ignored[] = {
		"{'metadata': {'name': 'web', 'namespace': 'ns'}, 'spec': {'clusterIP': 'None',"
		" 'clusterIPs': ['None'], 'ports': [{'name': 'http', 'port': 80}]}}",
		"{'metadata': {'name': 'web', 'namespace': 'ns'}, 'spec': {'type': 'ExternalName',"
		" 'externalName': 'db.example.com', 'clusterIPs': ['10.96.0.10'],"
		" 'ports': [{'name': 'http', 'port': 80}]}}",
		"{'metadata': {'name': 'web', 'namespace': 'ns', 'labels': {"
		" 'service.kubernetes.io/service-proxy-name': 'other'}},"
		" 'spec': {'clusterIPs': ['10.96.0.10'], 'ports': [{'name': 'http', 'port': 80}]}}",
		"{'metadata': {'name': 'web', 'namespace': 'ns'}, 'spec': {'clusterIPs': "
		"['10.96.0.10']}}",
		"{'metadata': {'name': 'web', 'namespace': 'ns'}, 'spec': {'clusterIP': '',"
		" 'ports': [{'name': 'http', 'port': 80}]}}",
	};

	for (size_t i = 0; i < sizeof(ignored) / sizeof(ignored[0]); i++) {
		out = build_svc(service_json(ignored[i]));
		if (out.n)
			fprintf(stderr, "    case %zu gave %zu ports\n", i, out.n);
		CHECK_EQ_INT(out.n, 0);
		CHECK(out.v == NULL);
		svc_ports_clear(&out);
	}
	/* No Service at all. */
	REQUIRE(svc_ports_build(NULL, NULL, 0, &node_a, &out) == 0);
	CHECK_EQ_INT(out.n, 0);
	CHECK(out.v == NULL);
}

TEST(node_port_by_type)
{
	struct svc_ports out;
	const char *ports = ", 'ports': [{'name': 'http', 'port': 80, 'nodePort': 30080}]";
	char buf[512];

	snprintf(buf, sizeof(buf), ", 'type': 'NodePort'%s", ports);
	out = build_svc(service(buf));
	REQUIRE(out.n == 1);
	CHECK_EQ_INT(out.v[0].node_port, 30080);
	svc_ports_clear(&out);
	snprintf(buf, sizeof(buf), ", 'type': 'LoadBalancer'%s", ports);
	out = build_svc(service(buf));
	REQUIRE(out.n == 1);
	CHECK_EQ_INT(out.v[0].node_port, 30080);
	svc_ports_clear(&out);
	/* A stale nodePort on a ClusterIP Service is not a NodePort. */
	snprintf(buf, sizeof(buf), ", 'type': 'ClusterIP'%s", ports);
	out = build_svc(service(buf));
	REQUIRE(out.n == 1);
	CHECK_EQ_INT(out.v[0].node_port, 0);
	CHECK(!svc_port_external(&out.v[0]));
	svc_ports_clear(&out);
}

TEST(lb_ips_and_ranges_split_by_family)
{
	const char *status = ", 'status': {'loadBalancer': {'ingress': ["
			     "{'ip': '198.51.100.1'}, {'ip': '2001:db8:2::1'},"
			     " {'ip': '198.51.100.2'}]}}";
	struct svc_ports out;

	out = build_svc(
		service2(", 'type': 'LoadBalancer',"
			 " 'clusterIPs': ['10.96.0.10', 'fd00::10'],"
			 " 'externalIPs': ['2001:db8::5', '192.0.2.5'],"
			 " 'loadBalancerSourceRanges': ['203.0.113.0/24', '2001:db8:9::/48',"
			 "   '198.51.100.0/24'],"
			 " 'ports': [{'name': 'http', 'port': 80, 'nodePort': 30080}]",
			 status));
	REQUIRE(out.n == 2);
	CHECK_EQ_INT(out.v[0].family, AF_INET);
	CHECK_EQ_STR(render_ips(out.v[0].lb_ips, out.v[0].n_lb_ips), "198.51.100.1 198.51.100.2");
	CHECK_EQ_STR(render_ips(out.v[0].external_ips, out.v[0].n_external_ips), "192.0.2.5");
	CHECK_EQ_STR(render_cidrs(out.v[0].source_ranges, out.v[0].n_source_ranges),
		     "203.0.113.0/24 198.51.100.0/24");
	CHECK_EQ_INT(out.v[1].family, AF_INET6);
	CHECK_EQ_STR(render_ips(out.v[1].lb_ips, out.v[1].n_lb_ips), "2001:db8:2::1");
	CHECK_EQ_STR(render_ips(out.v[1].external_ips, out.v[1].n_external_ips), "2001:db8::5");
	CHECK_EQ_STR(render_cidrs(out.v[1].source_ranges, out.v[1].n_source_ranges),
		     "2001:db8:9::/48");
	CHECK_EQ_STR(render(out.v[1].eps, out.v[1].n_eps), "[fd00::1]:8080/RS");
	svc_ports_clear(&out);

	/* Ingress IPs of a Service that is no longer a LoadBalancer are not
	 * captured, and source ranges only guard load-balancer IPs. */
	out = build_svc(service2(", 'type': 'NodePort',"
				 " 'loadBalancerSourceRanges': ['203.0.113.0/24'],"
				 " 'ports': [{'name': 'http', 'port': 80, 'nodePort': 30080}]",
				 status));
	REQUIRE(out.n == 1);
	CHECK_EQ_INT(out.v[0].n_lb_ips, 0);
	CHECK_EQ_INT(out.v[0].n_source_ranges, 0);
	svc_ports_clear(&out);
}

TEST(affinity)
{
	struct svc_ports out;

	out = build_svc(service(", 'sessionAffinity': 'ClientIP',"
				" 'sessionAffinityConfig': {'clientIP': {'timeoutSeconds': 600}}"));
	REQUIRE(out.n == 1);
	CHECK(out.v[0].affinity);
	CHECK_EQ_INT(out.v[0].affinity_timeout, 600);
	svc_ports_clear(&out);
	out = build_svc(service(", 'sessionAffinity': 'ClientIP'"));
	REQUIRE(out.n == 1);
	CHECK(out.v[0].affinity);
	CHECK_EQ_INT(out.v[0].affinity_timeout, 10800);
	svc_ports_clear(&out);
	out = build_svc(service(""));
	REQUIRE(out.n == 1);
	CHECK(!out.v[0].affinity);
	CHECK_EQ_INT(out.v[0].affinity_timeout, 0);
	svc_ports_clear(&out);
}

/* --- equality ------------------------------------------------------------ */

static const char base_spec[] =
	", 'type': 'LoadBalancer', 'clusterIPs': ['10.96.0.10', 'fd00::10'],"
	" 'externalIPs': ['192.0.2.5'], 'loadBalancerSourceRanges': ['203.0.113.0/24'],"
	" 'externalTrafficPolicy': 'Local', 'healthCheckNodePort': 32000,"
	" 'sessionAffinity': 'ClientIP',"
	" 'ports': [{'name': 'http', 'port': 80, 'nodePort': 30080}]";
static const char base_status[] =
	", 'status': {'loadBalancer': {'ingress': [{'ip': '198.51.100.1'}]}}";
static const char base_eps[] = "[{'addresses': ['10.0.0.1'], 'nodeName': 'node-a'},"
			       " {'addresses': ['10.0.0.2'], 'nodeName': 'node-b'}]";

static struct svc_ports build_variant(const char *spec_extra, const char *status, const char *ports,
				      const char *eps, const struct model_node *node)
{
	char spec[2048];
	struct service *svc;
	struct endpoint_slice *sl[1];
	struct svc_ports out = {0};

	snprintf(spec, sizeof(spec), "%s%s", base_spec, spec_extra);
	svc = service2(spec, status);
	sl[0] = slice("web-a", "IPv4", ports, eps);
	if (!svc || !sl[0] || svc_ports_build(svc, sl, 1, node, &out) < 0)
		fprintf(stderr, "    variant did not build\n");
	endpoint_slice_free(sl[0]);
	service_free(svc);
	return out;
}

TEST(equality)
{
	static const struct {
		const char *what, *spec, *status, *ports, *eps;
	} changes[] = {
		{"port", ", 'ports': [{'name': 'http', 'port': 81, 'nodePort': 30080}]", NULL, NULL,
		 NULL},
		{"node port", ", 'ports': [{'name': 'http', 'port': 80, 'nodePort': 30081}]", NULL,
		 NULL, NULL},
		{"protocol",
		 ", 'ports': [{'name': 'http', 'port': 80, 'nodePort': 30080, 'protocol': 'UDP'}]",
		 NULL, "[{'name': 'http', 'port': 8080, 'protocol': 'UDP'}]", NULL},
		{"port name", ", 'ports': [{'name': 'web', 'port': 80, 'nodePort': 30080}]", NULL,
		 "[{'name': 'web', 'port': 8080}]", NULL},
		{"cluster IP",
		 ", 'clusterIP': '10.96.0.11', 'clusterIPs': ['10.96.0.11', 'fd00::10']", NULL,
		 NULL, NULL},
		{"external IP", ", 'externalIPs': ['192.0.2.6']", NULL, NULL, NULL},
		{"lb IP", "", ", 'status': {'loadBalancer': {'ingress': [{'ip': '198.51.100.9'}]}}",
		 NULL, NULL},
		{"source range", ", 'loadBalancerSourceRanges': ['203.0.113.0/25']", NULL, NULL,
		 NULL},
		{"etp", ", 'externalTrafficPolicy': 'Cluster'", NULL, NULL, NULL},
		{"itp", ", 'internalTrafficPolicy': 'Local'", NULL, NULL, NULL},
		{"hc port", ", 'healthCheckNodePort': 32001", NULL, NULL, NULL},
		{"affinity", ", 'sessionAffinity': 'None'", NULL, NULL, NULL},
		{"affinity timeout",
		 ", 'sessionAffinityConfig': {'clientIP': {'timeoutSeconds': 60}}", NULL, NULL,
		 NULL},
		{"target port", "", NULL, "[{'name': 'http', 'port': 8081}]", NULL},
		{"endpoint added", "", NULL, NULL,
		 "[{'addresses': ['10.0.0.1'], 'nodeName': 'node-a'},"
		 " {'addresses': ['10.0.0.2'], 'nodeName': 'node-b'}, {'addresses': "
		 "['10.0.0.3']}]"},
		{"endpoint removed", "", NULL, NULL,
		 "[{'addresses': ['10.0.0.1'], 'nodeName': 'node-a'}]"},
		{"endpoint address", "", NULL, NULL,
		 "[{'addresses': ['10.0.0.1'], 'nodeName': 'node-a'},"
		 " {'addresses': ['10.0.0.4'], 'nodeName': 'node-b'}]"},
		{"endpoint readiness", "", NULL, NULL,
		 "[{'addresses': ['10.0.0.1'], 'nodeName': 'node-a'},"
		 " {'addresses': ['10.0.0.2'], 'nodeName': 'node-b', 'conditions': " C_SERVING_TERM
		 "}]"},
		{"endpoint locality", "", NULL, NULL,
		 "[{'addresses': ['10.0.0.1'], 'nodeName': 'node-c'},"
		 " {'addresses': ['10.0.0.2'], 'nodeName': 'node-b'}]"},
	};
	struct svc_ports a = build_variant("", base_status, NULL, base_eps, &node_a);
	struct svc_ports b = build_variant("", base_status, NULL, base_eps, &node_a);
	struct svc_ports empty = {0};

	REQUIRE(a.n == 2);
	CHECK(svc_ports_equal(&a, &b));
	CHECK(svc_ports_equal(&b, &a));
	CHECK(svc_port_equal(&a.v[0], &b.v[0]));
	CHECK(!svc_port_equal(&a.v[0], &b.v[1]));
	CHECK(svc_ports_equal(NULL, NULL));
	CHECK(svc_ports_equal(NULL, &empty));
	CHECK(!svc_ports_equal(&a, NULL));
	CHECK(!svc_ports_equal(NULL, &a));
	svc_ports_clear(&b);

	for (size_t i = 0; i < sizeof(changes) / sizeof(changes[0]); i++) {
		b = build_variant(
			changes[i].spec, changes[i].status ? changes[i].status : base_status,
			changes[i].ports, changes[i].eps ? changes[i].eps : base_eps, &node_a);
		if (svc_ports_equal(&a, &b) || !b.n) {
			fprintf(stderr, "    change \"%s\" not seen\n", changes[i].what);
			CHECK(false);
		}
		svc_ports_clear(&b);
	}
	/* The node's identity changes the result through locality. */
	{
		const struct model_node other = {"node-b", "zone-1"};

		b = build_variant("", base_status, NULL, base_eps, &other);
		CHECK(!svc_ports_equal(&a, &b));
		svc_ports_clear(&b);
	}
	svc_ports_clear(&a);
}

UNIT_MAIN(T(one_port_per_family_and_port), T(no_slices_no_endpoints),
	  T(ports_matched_by_name_and_protocol), T(other_family_ignored),
	  T(duplicates_most_ready_wins), T(same_address_different_ports_kept), T(endpoints_sorted),
	  T(locality_by_node_name), T(cluster_endpoints_and_fallback),
	  T(local_endpoints_and_fallback), T(local_ready_count), T(topology_zone_hints),
	  T(topology_node_hints), T(etp_only_when_external), T(ignored_services_give_no_ports),
	  T(node_port_by_type), T(lb_ips_and_ranges_split_by_family), T(affinity), T(equality))
