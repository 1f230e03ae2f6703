/* Tests for kube/decode, the validating decoders from API JSON to the
 * model's structs.  Realistic objects (fixtures/service-lb.json,
 * endpointslice-v4.json, node.json, shaped like what the API server
 * returns) check that every field the model uses is read: Service type,
 * dual-stack cluster IPs and headless Services, ports, externalIPs,
 * load-balancer ingress (ipMode Proxy and hostname-only entries skipped),
 * source ranges from the field and the older annotation, traffic policies,
 * health-check node port, session affinity, traffic distribution and the
 * topology annotations, the service-proxy-name label; EndpointSlice
 * families, skipped FQDN and unlabelled slices, condition defaults, node,
 * zone and hints; Node zone, deletion and addresses.  Then each fixture is
 * mutated one field at a time into hostile input, which must be rejected
 * with -EBADMSG, no object, and a message naming the field.  Large and
 * deeply nested content in fields the agent does not read is ignored. */
#include <errno.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>

#include "kube/decode.h"
#include "unit.h"

static char err[512];

/* JSON written with single quotes, so that the C literals stay readable. */
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
	j = json_loads(copy, JSON_DECODE_ANY, &e);
	if (!j)
		fprintf(stderr, "    bad test JSON at %d:%d: %s\n", e.line, e.column, e.text);
	free(copy);
	return j;
}

static json_t *fixture(const char *name)
{
	char path[256];
	json_error_t e;
	json_t *j;

	snprintf(path, sizeof(path), "test/unit/fixtures/%s", name);
	j = json_load_file(path, 0, &e);
	if (!j)
		fprintf(stderr, "    cannot load %s: %s\n", path, e.text);
	return j;
}

/* Sets (or, with value NULL, deletes) the value at path, creating objects on
 * the way.  Path: keys separated by '.', "[n]" for an array element, "[key]"
 * for a key that contains dots or slashes.  Takes the reference to value. */
static bool set_path(json_t *root, const char *path, json_t *value)
{
	json_t *cur = root;
	const char *p = path;
	char tok[256];

	for (;;) {
		bool index = false, last;
		size_t n;

		if (*p == '[') {
			const char *close = strchr(p, ']');

			if (!close)
				return false;
			n = (size_t)(close - p - 1);
			memcpy(tok, p + 1, n);
			tok[n] = '\0';
			index = n && strspn(tok, "0123456789") == n;
			p = close + 1;
		} else {
			n = strcspn(p, ".[");
			memcpy(tok, p, n);
			tok[n] = '\0';
			p += n;
		}
		if (*p == '.')
			p++;
		last = !*p;
		if (last) {
			if (index) {
				size_t i = strtoul(tok, NULL, 10);

				if (!value)
					return json_array_remove(cur, i) == 0;
				if (i == json_array_size(cur))
					return json_array_append_new(cur, value) == 0;
				return json_array_set_new(cur, i, value) == 0;
			}
			if (!value)
				return json_object_del(cur, tok) == 0;
			return json_object_set_new(cur, tok, value) == 0;
		}
		if (index) {
			cur = json_array_get(cur, strtoul(tok, NULL, 10));
		} else {
			json_t *next = json_object_get(cur, tok);

			if (!next) {
				next = json_object();
				json_object_set_new(cur, tok, next);
			}
			cur = next;
		}
		if (!cur)
			return false;
	}
}

static bool ip_is(const struct ipaddr *a, const char *want)
{
	char buf[IPADDR_STRLEN];

	ipaddr_format(a, buf);
	if (strcmp(buf, want))
		fprintf(stderr, "    address %s, expected %s\n", buf, want);
	return !strcmp(buf, want);
}

static bool cidr_is(const struct cidr *c, const char *want)
{
	char buf[IPADDR_STRLEN];

	cidr_format(c, buf);
	if (strcmp(buf, want))
		fprintf(stderr, "    prefix %s, expected %s\n", buf, want);
	return !strcmp(buf, want);
}

/* Decodes a Service from JSON text; NULL on failure (err says why). */
static struct service *svc_from(json_t *j)
{
	struct service *s = NULL;
	int r;

	err[0] = '\0';
	if (!j)
		return NULL;
	r = decode_service(j, &s, err, sizeof(err));
	json_decref(j);
	if (r < 0) {
		fprintf(stderr, "    decode_service: %d %s\n", r, err);
		return NULL;
	}
	return s;
}

/* A minimal valid ClusterIP Service plus the given spec fields (later keys
 * replace earlier ones). */
static struct service *svc_with(const char *spec_extra)
{
	char buf[4096];

	snprintf(buf, sizeof(buf),
		 "{'metadata': {'name': 'web', 'namespace': 'ns'},"
		 " 'spec': {'clusterIP': '10.96.0.10', 'clusterIPs': ['10.96.0.10'],"
		 " 'ports': [{'name': 'http', 'port': 80, 'protocol': 'TCP'}]%s}}",
		 spec_extra);
	return svc_from(J(buf));
}

/* Decodes json (taking it) as a Service and expects a rejection naming
 * want in the message. */
static bool svc_rejected(json_t *j, const char *want)
{
	struct service *s = (struct service *)0x1;
	int r;

	err[0] = '\0';
	if (!j)
		return false;
	r = decode_service(j, &s, err, sizeof(err));
	json_decref(j);
	if (r != -EBADMSG || s != NULL || !unit_contains(err, want)) {
		fprintf(stderr,
			"    decode_service: %d, object %p, message \"%s\", wanted \"%s\"\n", r,
			(void *)s, err, want);
		if (r == 0)
			service_free(s);
		return false;
	}
	return true;
}

static bool slice_rejected(json_t *j, const char *want)
{
	struct endpoint_slice *s = (struct endpoint_slice *)0x1;
	int r;

	err[0] = '\0';
	if (!j)
		return false;
	r = decode_endpoint_slice(j, &s, err, sizeof(err));
	json_decref(j);
	if (r != -EBADMSG || s != NULL || !unit_contains(err, want)) {
		fprintf(stderr,
			"    decode_endpoint_slice: %d, object %p, message \"%s\", wanted \"%s\"\n",
			r, (void *)s, err, want);
		if (r == 0)
			endpoint_slice_free(s);
		return false;
	}
	return true;
}

static struct endpoint_slice *slice_from(json_t *j, int *ret_r)
{
	struct endpoint_slice *s = (struct endpoint_slice *)0x1;
	int r;

	err[0] = '\0';
	if (!j) {
		*ret_r = -1000;
		return NULL;
	}
	r = decode_endpoint_slice(j, &s, err, sizeof(err));
	json_decref(j);
	*ret_r = r;
	if (r < 0)
		fprintf(stderr, "    decode_endpoint_slice: %d %s\n", r, err);
	return r < 0 ? NULL : s;
}

/* --- Services ------------------------------------------------------------ */

TEST(service_fixture_every_field)
{
	struct service *s = svc_from(fixture("service-lb.json"));

	REQUIRE(s);
	CHECK_EQ_STR(s->ns, "shop");
	CHECK_EQ_STR(s->name, "web");
	CHECK_EQ_INT(s->type, SVC_TYPE_LOAD_BALANCER);
	CHECK(!s->headless);
	CHECK(!s->has_proxy_name);

	REQUIRE(s->n_cluster_ips == 2);
	CHECK_EQ_INT(s->cluster_ips[0].family, AF_INET);
	CHECK(ip_is(&s->cluster_ips[0], "10.96.10.20"));
	CHECK_EQ_INT(s->cluster_ips[1].family, AF_INET6);
	CHECK(ip_is(&s->cluster_ips[1], "fd00:10:96::14"));

	REQUIRE(s->n_ports == 3);
	CHECK_EQ_STR(s->ports[0].name, "http");
	CHECK_EQ_INT(s->ports[0].protocol, IPPROTO_TCP);
	CHECK_EQ_INT(s->ports[0].port, 80);
	CHECK_EQ_INT(s->ports[0].node_port, 30080);
	CHECK_EQ_STR(s->ports[1].name, "dns");
	CHECK_EQ_INT(s->ports[1].protocol, IPPROTO_UDP);
	CHECK_EQ_INT(s->ports[1].port, 53);
	CHECK_EQ_INT(s->ports[1].node_port, 30053);
	CHECK_EQ_STR(s->ports[2].name, "sig");
	CHECK_EQ_INT(s->ports[2].protocol, IPPROTO_SCTP);
	CHECK_EQ_INT(s->ports[2].port, 9000);
	CHECK_EQ_INT(s->ports[2].node_port, 30900);

	/* The duplicate 192.0.2.10 is listed once. */
	REQUIRE(s->n_external_ips == 2);
	CHECK(ip_is(&s->external_ips[0], "192.0.2.10"));
	CHECK(ip_is(&s->external_ips[1], "2001:db8::10"));

	/* Proxy-mode, hostname-only and repeated ingress points are left out. */
	REQUIRE(s->n_lb_ips == 2);
	CHECK(ip_is(&s->lb_ips[0], "198.51.100.1"));
	CHECK(ip_is(&s->lb_ips[1], "2001:db8:2::1"));

	REQUIRE(s->n_source_ranges == 2);
	CHECK(cidr_is(&s->source_ranges[0], "203.0.113.0/24"));
	CHECK(cidr_is(&s->source_ranges[1], "2001:db8:1::/48"));

	CHECK(s->etp_local);
	CHECK(!s->itp_local);
	CHECK_EQ_INT(s->health_check_node_port, 32100);
	CHECK(s->affinity_client_ip);
	CHECK_EQ_INT(s->affinity_timeout, 600);
	CHECK_EQ_INT(s->traffic_dist, TRAFFIC_DIST_PREFER_ZONE);
	service_free(s);
}

TEST(service_defaults)
{
	struct service *s = svc_from(J("{'metadata': {'name': 'plain', 'namespace': 'default'},"
				       " 'spec': {'clusterIP': '10.96.0.1',"
				       "          'ports': [{'port': 443}]}}"));

	REQUIRE(s);
	CHECK_EQ_INT(s->type, SVC_TYPE_CLUSTER_IP);
	CHECK(!s->headless);
	REQUIRE(s->n_cluster_ips == 1);
	CHECK(ip_is(&s->cluster_ips[0], "10.96.0.1"));
	REQUIRE(s->n_ports == 1);
	/* Unnamed, TCP, no node port. */
	CHECK_EQ_STR(s->ports[0].name, "");
	CHECK_EQ_INT(s->ports[0].protocol, IPPROTO_TCP);
	CHECK_EQ_INT(s->ports[0].port, 443);
	CHECK_EQ_INT(s->ports[0].node_port, 0);
	CHECK_EQ_INT(s->n_external_ips, 0);
	CHECK_EQ_INT(s->n_lb_ips, 0);
	CHECK_EQ_INT(s->n_source_ranges, 0);
	CHECK(!s->etp_local);
	CHECK(!s->itp_local);
	CHECK_EQ_INT(s->health_check_node_port, 0);
	CHECK(!s->affinity_client_ip);
	CHECK_EQ_INT(s->affinity_timeout, 10800);
	CHECK_EQ_INT(s->traffic_dist, TRAFFIC_DIST_NONE);
	CHECK(!s->has_proxy_name);
	service_free(s);

	/* Explicit nulls and empty strings mean the same as absent fields. */
	s = svc_with(", 'type': '', 'sessionAffinity': null, 'externalTrafficPolicy': '',"
		     " 'internalTrafficPolicy': null, 'externalIPs': null, 'status': null");
	REQUIRE(s);
	CHECK_EQ_INT(s->type, SVC_TYPE_CLUSTER_IP);
	CHECK(!s->affinity_client_ip);
	CHECK(!s->etp_local);
	service_free(s);
}

TEST(service_types)
{
	struct service *s;

	s = svc_with(", 'type': 'NodePort'");
	REQUIRE(s);
	CHECK_EQ_INT(s->type, SVC_TYPE_NODE_PORT);
	service_free(s);
	s = svc_with(", 'type': 'ClusterIP'");
	REQUIRE(s);
	CHECK_EQ_INT(s->type, SVC_TYPE_CLUSTER_IP);
	service_free(s);
	s = svc_from(J("{'metadata': {'name': 'ext', 'namespace': 'ns'},"
		       " 'spec': {'type': 'ExternalName', 'externalName': 'db.example.com'}}"));
	REQUIRE(s);
	CHECK_EQ_INT(s->type, SVC_TYPE_EXTERNAL_NAME);
	CHECK_EQ_INT(s->n_cluster_ips, 0);
	CHECK_EQ_INT(s->n_ports, 0);
	service_free(s);
}

TEST(service_cluster_ips)
{
	struct service *s;

	/* Headless, in either spelling. */
	s = svc_with(", 'clusterIP': 'None', 'clusterIPs': ['None']");
	REQUIRE(s);
	CHECK(s->headless);
	CHECK_EQ_INT(s->n_cluster_ips, 0);
	service_free(s);
	s = svc_with(", 'clusterIP': 'None', 'clusterIPs': null");
	REQUIRE(s);
	CHECK(s->headless);
	service_free(s);

	/* IPv6 primary: the order of clusterIPs is kept. */
	s = svc_with(", 'clusterIP': 'fd00::a', 'clusterIPs': ['fd00::a', '10.96.0.10']");
	REQUIRE(s);
	REQUIRE(s->n_cluster_ips == 2);
	CHECK_EQ_INT(s->cluster_ips[0].family, AF_INET6);
	CHECK(ip_is(&s->cluster_ips[0], "fd00::a"));
	CHECK(ip_is(&s->cluster_ips[1], "10.96.0.10"));
	service_free(s);

	/* clusterIPs without clusterIP, and clusterIP without clusterIPs. */
	s = svc_with(", 'clusterIP': null, 'clusterIPs': ['10.96.0.11']");
	REQUIRE(s);
	REQUIRE(s->n_cluster_ips == 1);
	CHECK(ip_is(&s->cluster_ips[0], "10.96.0.11"));
	service_free(s);
	s = svc_with(", 'clusterIP': '10.96.0.12', 'clusterIPs': []");
	REQUIRE(s);
	REQUIRE(s->n_cluster_ips == 1);
	CHECK(ip_is(&s->cluster_ips[0], "10.96.0.12"));
	service_free(s);

	/* Not allocated yet. */
	s = svc_with(", 'clusterIP': '', 'clusterIPs': null");
	REQUIRE(s);
	CHECK(!s->headless);
	CHECK_EQ_INT(s->n_cluster_ips, 0);
	service_free(s);
}

TEST(service_lb_status)
{
	struct service *s;

	s = svc_with(", 'type': 'LoadBalancer'}, 'status': {'loadBalancer': {'ingress': ["
		     "{'hostname': 'a.example'}, {'ip': '1.1.1.1', 'ipMode': 'Proxy'}]}");
	REQUIRE(s);
	CHECK_EQ_INT(s->n_lb_ips, 0);
	service_free(s);
	s = svc_with(", 'type': 'LoadBalancer'}, 'status': {'loadBalancer': {}");
	REQUIRE(s);
	CHECK_EQ_INT(s->n_lb_ips, 0);
	service_free(s);
	s = svc_with(", 'type': 'LoadBalancer'}, 'status': {'loadBalancer': {'ingress': ["
		     "{'ip': '1.1.1.1', 'hostname': 'a.example', 'ipMode': 'VIP'}, {'ip': ''}]}");
	REQUIRE(s);
	REQUIRE(s->n_lb_ips == 1);
	CHECK(ip_is(&s->lb_ips[0], "1.1.1.1"));
	service_free(s);
}

TEST(service_source_ranges)
{
	struct service *s;

	/* Spaces around the entries are tolerated; host bits are cleared. */
	s = svc_with(", 'loadBalancerSourceRanges': [' 10.1.2.3/8 ', '192.168.0.0/16']");
	REQUIRE(s);
	REQUIRE(s->n_source_ranges == 2);
	CHECK(cidr_is(&s->source_ranges[0], "10.0.0.0/8"));
	CHECK(cidr_is(&s->source_ranges[1], "192.168.0.0/16"));
	service_free(s);

	/* The annotation, when the field is empty. */
	s = svc_from(J("{'metadata': {'name': 'web', 'namespace': 'ns', 'annotations': {"
		       "  'service.beta.kubernetes.io/load-balancer-source-ranges':"
		       "  '10.0.0.0/8, 2001:db8::/32 ,,192.168.1.1/32'}},"
		       " 'spec': {'clusterIPs': ['10.96.0.10'], 'loadBalancerSourceRanges': [],"
		       "  'ports': [{'port': 80}]}}"));
	REQUIRE(s);
	REQUIRE(s->n_source_ranges == 3);
	CHECK(cidr_is(&s->source_ranges[0], "10.0.0.0/8"));
	CHECK(cidr_is(&s->source_ranges[1], "2001:db8::/32"));
	CHECK(cidr_is(&s->source_ranges[2], "192.168.1.1/32"));
	service_free(s);

	/* The field wins over the annotation. */
	s = svc_from(
		J("{'metadata': {'name': 'web', 'namespace': 'ns', 'annotations': {"
		  "  'service.beta.kubernetes.io/load-balancer-source-ranges': '10.0.0.0/8'}},"
		  " 'spec': {'clusterIPs': ['10.96.0.10'],"
		  "  'loadBalancerSourceRanges': ['172.16.0.0/12'], 'ports': [{'port': 80}]}}"));
	REQUIRE(s);
	REQUIRE(s->n_source_ranges == 1);
	CHECK(cidr_is(&s->source_ranges[0], "172.16.0.0/12"));
	service_free(s);

	/* A bad annotation is named. */
	CHECK(svc_rejected(J("{'metadata': {'name': 'web', 'namespace': 'ns', 'annotations': {"
			     "  'service.beta.kubernetes.io/load-balancer-source-ranges':"
			     "  '10.0.0.0/8,banana'}},"
			     " 'spec': {'clusterIPs': ['10.96.0.10'], 'ports': [{'port': 80}]}}"),
			   "load-balancer-source-ranges"));
	CHECK(unit_contains(err, "banana"));
}

TEST(service_policies_and_affinity)
{
	struct service *s;

	s = svc_with(", 'type': 'NodePort', 'externalTrafficPolicy': 'Local',"
		     " 'internalTrafficPolicy': 'Local', 'healthCheckNodePort': 31000");
	REQUIRE(s);
	CHECK(s->etp_local);
	CHECK(s->itp_local);
	CHECK_EQ_INT(s->health_check_node_port, 31000);
	service_free(s);

	/* "Global" is the old spelling of Cluster. */
	s = svc_with(", 'externalTrafficPolicy': 'Global', 'internalTrafficPolicy': 'Cluster'");
	REQUIRE(s);
	CHECK(!s->etp_local);
	CHECK(!s->itp_local);
	service_free(s);

	s = svc_with(", 'sessionAffinity': 'ClientIP'");
	REQUIRE(s);
	CHECK(s->affinity_client_ip);
	CHECK_EQ_INT(s->affinity_timeout, 10800);
	service_free(s);
	s = svc_with(", 'sessionAffinity': 'ClientIP', 'sessionAffinityConfig': {'clientIP': {}}");
	REQUIRE(s);
	CHECK_EQ_INT(s->affinity_timeout, 10800);
	service_free(s);
	s = svc_with(", 'sessionAffinity': 'ClientIP',"
		     " 'sessionAffinityConfig': {'clientIP': {'timeoutSeconds': 86400}}");
	REQUIRE(s);
	CHECK_EQ_INT(s->affinity_timeout, 86400);
	service_free(s);
	s = svc_with(", 'sessionAffinity': 'ClientIP',"
		     " 'sessionAffinityConfig': {'clientIP': {'timeoutSeconds': 1}}");
	REQUIRE(s);
	CHECK_EQ_INT(s->affinity_timeout, 1);
	service_free(s);
	s = svc_with(", 'sessionAffinity': 'None'");
	REQUIRE(s);
	CHECK(!s->affinity_client_ip);
	service_free(s);
}

static struct service *svc_annotated(const char *annotations, const char *spec_extra)
{
	char buf[2048];

	snprintf(buf, sizeof(buf),
		 "{'metadata': {'name': 'web', 'namespace': 'ns', 'annotations': {%s}},"
		 " 'spec': {'clusterIPs': ['10.96.0.10'], 'ports': [{'port': 80}]%s}}",
		 annotations, spec_extra);
	return svc_from(J(buf));
}

TEST(service_traffic_distribution)
{
	static const struct {
		const char *annotations, *spec;
		int want;
	} cases[] = {
		{"", ", 'trafficDistribution': 'PreferClose'", TRAFFIC_DIST_PREFER_ZONE},
		{"", ", 'trafficDistribution': 'PreferSameZone'", TRAFFIC_DIST_PREFER_ZONE},
		{"", ", 'trafficDistribution': 'PreferSameNode'", TRAFFIC_DIST_PREFER_NODE},
		/* Values from the future are ignored, not errors. */
		{"", ", 'trafficDistribution': 'PreferMars'", TRAFFIC_DIST_NONE},
		{"'service.kubernetes.io/topology-mode': 'Auto'", "", TRAFFIC_DIST_PREFER_ZONE},
		{"'service.kubernetes.io/topology-mode': 'auto'", "", TRAFFIC_DIST_PREFER_ZONE},
		{"'service.kubernetes.io/topology-aware-hints': 'Auto'", "",
		 TRAFFIC_DIST_PREFER_ZONE},
		{"'service.kubernetes.io/topology-mode': 'Disabled'", "", TRAFFIC_DIST_NONE},
		/* The field wins over the annotation. */
		{"'service.kubernetes.io/topology-mode': 'Auto'",
		 ", 'trafficDistribution': 'PreferSameNode'", TRAFFIC_DIST_PREFER_NODE},
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct service *s = svc_annotated(cases[i].annotations, cases[i].spec);

		REQUIRE(s);
		if ((int)s->traffic_dist != cases[i].want)
			fprintf(stderr, "    case %zu\n", i);
		CHECK_EQ_INT(s->traffic_dist, cases[i].want);
		service_free(s);
	}
}

TEST(service_proxy_name_label)
{
	struct service *s;

	s = svc_from(J("{'metadata': {'name': 'web', 'namespace': 'ns', 'labels': {"
		       "  'service.kubernetes.io/service-proxy-name': 'other-proxy'}},"
		       " 'spec': {'clusterIPs': ['10.96.0.10'], 'ports': [{'port': 80}]}}"));
	REQUIRE(s);
	CHECK(s->has_proxy_name);
	service_free(s);
	s = svc_from(J("{'metadata': {'name': 'web', 'namespace': 'ns', 'labels': {'app': 'x'}},"
		       " 'spec': {'clusterIPs': ['10.96.0.10'], 'ports': [{'port': 80}]}}"));
	REQUIRE(s);
	CHECK(!s->has_proxy_name);
	service_free(s);
}

/* One field of the fixture replaced (value NULL: removed), and the part of
 * the message that must name it. */
struct mutation {
	const char *path;
	const char *value;
	const char *want;
};

static bool mutated_service_rejected(const struct mutation *m)
{
	json_t *j = fixture("service-lb.json");

	if (!j)
		return false;
	if (!set_path(j, m->path, m->value ? J(m->value) : NULL)) {
		fprintf(stderr, "    cannot set %s\n", m->path);
		json_decref(j);
		return false;
	}
	return svc_rejected(j, m->want);
}

TEST(service_hostile_fields)
{
	static const struct mutation cases[] = {
		{"spec.ports[0].protocol", "'ICMP'", "spec.ports[0].protocol"},
		{"spec.ports[1].protocol", "'tcp'", "spec.ports[1].protocol"},
		{"spec.ports[0].port", "0", "spec.ports[0].port"},
		{"spec.ports[0].port", "70000", "spec.ports[0].port"},
		{"spec.ports[0].port", "-80", "spec.ports[0].port"},
		{"spec.ports[0].port", "'80'", "spec.ports[0].port"},
		{"spec.ports[0].port", "80.5", "spec.ports[0].port"},
		{"spec.ports[0].port", "true", "spec.ports[0].port"},
		{"spec.ports[2].port", NULL, "spec.ports[2].port"},
		{"spec.ports[0].nodePort", "70000", "spec.ports[0].nodePort"},
		{"spec.ports[0].nodePort", "-1", "spec.ports[0].nodePort"},
		{"spec.ports[0].name", "'HTTP'", "spec.ports[0].name"},
		{"spec.ports[0].name", "'abcdefghijklmnop'", "spec.ports[0].name"},
		{"spec.ports[0].name", "'-http'", "spec.ports[0].name"},
		{"spec.ports[0].name", "'ht--tp'", "spec.ports[0].name"},
		{"spec.ports[0].name", "'8080'", "spec.ports[0].name"},
		{"spec.ports[0].name", "['http']", "spec.ports[0].name"},
		{"spec.ports[1].name", "'http'", "spec.ports[1].name"},
		{"spec.ports[0]", "'80/TCP'", "spec.ports[0]"},
		{"spec.ports", "{}", "spec.ports"},
		{"spec.ports", "'80'", "spec.ports"},
		{"spec", NULL, "spec"},
		{"spec", "[]", "spec"},
		{"spec", "'ClusterIP'", "spec"},
		{"metadata", NULL, "metadata"},
		{"metadata", "[]", "metadata"},
		{"metadata.name", NULL, "metadata.name"},
		{"metadata.name", "''", "metadata.name"},
		{"metadata.name", "'Web'", "metadata.name"},
		{"metadata.name", "'web.shop'", "metadata.name"},
		{"metadata.name", "7", "metadata.name"},
		{"metadata.namespace", "'Shop'", "metadata.namespace"},
		{"metadata.namespace", "'shop_1'", "metadata.namespace"},
		{"metadata.namespace", NULL, "metadata.namespace"},
		{"metadata.namespace", "['shop']", "metadata.namespace"},
		{"metadata.labels", "[]", "metadata.labels"},
		{"metadata.annotations", "'x'", "metadata.annotations"},
		{"spec.type", "'Balanced'", "spec.type"},
		{"spec.type", "1", "spec.type"},
		{"spec.clusterIP", "'banana'", "spec.clusterIP"},
		{"spec.clusterIP", "'10.96.10.21'", "spec.clusterIP"},
		{"spec.clusterIPs", "['10.96.10.20', '10.96.10.21']", "spec.clusterIPs"},
		{"spec.clusterIPs", "['10.96.10.20', 'fd00::1', '10.96.10.21']", "spec.clusterIPs"},
		{"spec.clusterIPs", "['10.96.10.20', 'banana']", "spec.clusterIPs[1]"},
		{"spec.clusterIPs", "'10.96.10.20'", "spec.clusterIPs"},
		{"spec.externalIPs", "['1.2.3.4', 5]", "spec.externalIPs[1]"},
		{"spec.externalIPs", "['1.2.3.4', '1.2.3']", "spec.externalIPs[1]"},
		{"spec.externalIPs", "['01.2.3.4']", "spec.externalIPs[0]"},
		{"spec.externalIPs", "{'ip': '1.2.3.4'}", "spec.externalIPs"},
		{"spec.sessionAffinity", "'Sticky'", "spec.sessionAffinity"},
		{"spec.sessionAffinityConfig.clientIP.timeoutSeconds", "0", "timeoutSeconds"},
		{"spec.sessionAffinityConfig.clientIP.timeoutSeconds", "86401", "timeoutSeconds"},
		{"spec.sessionAffinityConfig.clientIP.timeoutSeconds", "'600'", "timeoutSeconds"},
		{"spec.sessionAffinityConfig.clientIP", "[]",
		 "spec.sessionAffinityConfig.clientIP"},
		{"spec.externalTrafficPolicy", "'Nearby'", "spec.externalTrafficPolicy"},
		{"spec.internalTrafficPolicy", "'local'", "spec.internalTrafficPolicy"},
		{"spec.healthCheckNodePort", "-1", "spec.healthCheckNodePort"},
		{"spec.healthCheckNodePort", "65536", "spec.healthCheckNodePort"},
		{"spec.loadBalancerSourceRanges", "['10.0.0.0/33']",
		 "spec.loadBalancerSourceRanges[0]"},
		{"spec.loadBalancerSourceRanges", "['10.0.0.0/8', 8]",
		 "spec.loadBalancerSourceRanges[1]"},
		{"spec.loadBalancerSourceRanges", "'10.0.0.0/8'", "spec.loadBalancerSourceRanges"},
		{"spec.trafficDistribution", "5", "spec.trafficDistribution"},
		{"status", "[]", "status"},
		{"status.loadBalancer.ingress", "{}", "status.loadBalancer.ingress"},
		{"status.loadBalancer.ingress[0]", "'198.51.100.1'",
		 "status.loadBalancer.ingress[0]"},
		{"status.loadBalancer.ingress[0].ip", "'lb'", "status.loadBalancer.ingress[0].ip"},
		{"status.loadBalancer.ingress[3].ip", "7", "status.loadBalancer.ingress[3].ip"},
		{"status.loadBalancer.ingress[0].ipMode", "'Teleport'",
		 "status.loadBalancer.ingress[0].ipMode"},
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		if (!mutated_service_rejected(&cases[i])) {
			fprintf(stderr, "    case %s = %s\n", cases[i].path,
				cases[i].value ? cases[i].value : "(removed)");
			CHECK(false);
		}
	}
}

TEST(service_hostile_names)
{
	char name[301];
	json_t *j;

	memset(name, 'a', 300);
	name[300] = '\0';
	j = fixture("service-lb.json");
	REQUIRE(j);
	set_path(j, "metadata.name", json_string(name));
	CHECK(svc_rejected(j, "metadata.name"));

	/* 64 characters: a valid subdomain, but not a valid Service name. */
	name[64] = '\0';
	j = fixture("service-lb.json");
	REQUIRE(j);
	set_path(j, "metadata.name", json_string(name));
	CHECK(svc_rejected(j, "metadata.name"));

	j = fixture("service-lb.json");
	REQUIRE(j);
	set_path(j, "metadata.namespace", json_string(name));
	CHECK(svc_rejected(j, "metadata.namespace"));

	/* A NUL inside a name would cut it short in C. */
	j = fixture("service-lb.json");
	REQUIRE(j);
	set_path(j, "metadata.name", json_stringn("web\0evil", 8));
	CHECK(svc_rejected(j, "metadata.name"));

	/* Not an object at all. */
	CHECK(svc_rejected(J("[]"), "object"));
	CHECK(svc_rejected(J("'Service'"), "object"));
}

TEST(service_limits)
{
	char *buf = malloc(64 * 1024);
	size_t off = 0;
	json_t *j;

	REQUIRE(buf);
	/* 1001 ports is more than a Service may have. */
	j = fixture("service-lb.json");
	REQUIRE(j);
	{
		json_t *ports = json_array();

		for (int i = 0; i < 1001; i++)
			json_array_append_new(ports, json_pack("{s:i}", "port", 1 + i));
		set_path(j, "spec.ports", ports);
	}
	CHECK(svc_rejected(j, "spec.ports"));

	/* 65 externalIPs is more than the decoder accepts. */
	off = (size_t)snprintf(buf, 64 * 1024, "[");
	for (int i = 0; i < 65; i++)
		off += (size_t)snprintf(buf + off, 64 * 1024 - off, "%s'10.0.%d.1'", i ? "," : "",
					i);
	snprintf(buf + off, 64 * 1024 - off, "]");
	j = fixture("service-lb.json");
	REQUIRE(j);
	set_path(j, "spec.externalIPs", J(buf));
	CHECK(svc_rejected(j, "spec.externalIPs"));
	free(buf);
}

TEST(huge_unrelated_field)
{
	const size_t big = 5u << 20;
	char *s = malloc(big + 1);
	json_t *j;
	char *text;
	struct service *svc;

	REQUIRE(s);
	memset(s, 'x', big);
	s[big] = '\0';
	j = fixture("service-lb.json");
	REQUIRE(j);
	set_path(j, "metadata.annotations[kubectl.kubernetes.io/last-applied-configuration]",
		 json_string(s));
	free(s);
	/* Through text, as it arrives from the API server. */
	text = json_dumps(j, JSON_COMPACT);
	json_decref(j);
	REQUIRE(text);
	CHECK(strlen(text) > big);
	j = json_loads(text, 0, NULL);
	free(text);
	REQUIRE(j);
	svc = svc_from(j);
	REQUIRE(svc);
	CHECK_EQ_STR(svc->name, "web");
	CHECK_EQ_INT(svc->n_ports, 3);
	service_free(svc);
}

TEST(deep_garbage_ignored)
{
	const int depth = 1000;
	char *text = malloc((size_t)depth * 8 + 64);
	size_t off = 0;
	struct service *svc;
	json_t *j;

	REQUIRE(text);
	for (int i = 0; i < depth; i++)
		off += (size_t)sprintf(text + off, i % 2 ? "[" : "{\"k\":");
	off += (size_t)sprintf(text + off, "null");
	for (int i = depth - 1; i >= 0; i--)
		off += (size_t)sprintf(text + off, i % 2 ? "]" : "}");
	j = json_loads(text, 0, NULL);
	free(text);
	REQUIRE(j);
	{
		json_t *svcj = fixture("service-lb.json");

		REQUIRE(svcj);
		set_path(svcj, "spec.futureField", j);
		set_path(svcj, "status.somethingElse",
			 json_pack("{s:[i,s,{s:b}]}", "x", 1, "y", "z", false));
		svc = svc_from(svcj);
	}
	REQUIRE(svc);
	CHECK_EQ_INT(svc->n_ports, 3);
	CHECK_EQ_INT(svc->n_lb_ips, 2);
	service_free(svc);
}

/* --- object keys --------------------------------------------------------- */

TEST(object_keys)
{
	char key[OBJECT_KEY_MAX], name[254], ns[64], buf[600];
	json_t *j;

	j = J("{'metadata': {'name': 'web', 'namespace': 'shop'}}");
	CHECK_EQ_INT(decode_object_key(j, key, sizeof(key), err, sizeof(err)), 0);
	CHECK_EQ_STR(key, "shop/web");
	json_decref(j);

	/* Cluster-scoped objects have no namespace. */
	j = J("{'metadata': {'name': 'node-a.example.internal'}}");
	CHECK_EQ_INT(decode_object_key(j, key, sizeof(key), err, sizeof(err)), 0);
	CHECK_EQ_STR(key, "node-a.example.internal");
	json_decref(j);
	j = J("{'metadata': {'name': 'n1', 'namespace': ''}}");
	CHECK_EQ_INT(decode_object_key(j, key, sizeof(key), err, sizeof(err)), 0);
	CHECK_EQ_STR(key, "n1");
	json_decref(j);

	/* The longest names fit in OBJECT_KEY_MAX. */
	memset(name, 'a', 253);
	name[253] = '\0';
	for (int i = 63; i < 253; i += 64)
		name[i] = '.';
	memset(ns, 'b', 63);
	ns[63] = '\0';
	snprintf(buf, sizeof(buf), "{'metadata': {'name': '%s', 'namespace': '%s'}}", name, ns);
	j = J(buf);
	CHECK_EQ_INT(decode_object_key(j, key, sizeof(key), err, sizeof(err)), 0);
	CHECK_EQ_INT(strlen(key), 63 + 1 + 253);
	CHECK(key[63] == '/');
	json_decref(j);

	static const char *const bad[] = {
		"[]",
		"{}",
		"{'metadata': null}",
		"{'metadata': {}}",
		"{'metadata': {'name': ''}}",
		"{'metadata': {'name': '-web'}}",
		"{'metadata': {'name': 'web-'}}",
		"{'metadata': {'name': 'a..b'}}",
		"{'metadata': {'name': 'a.'}}",
		"{'metadata': {'name': '.a'}}",
		"{'metadata': {'name': 'a/b'}}",
		"{'metadata': {'name': 'a b'}}",
		"{'metadata': {'name': 'ok', 'namespace': 'a.b'}}",
		"{'metadata': {'name': 'ok', 'namespace': '-a'}}",
		"{'metadata': {'name': 'ok', 'namespace': 5}}",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		int r;

		j = J(bad[i]);
		r = decode_object_key(j, key, sizeof(key), err, sizeof(err));
		if (r != -EBADMSG)
			fprintf(stderr, "    %s gave %d\n", bad[i], r);
		CHECK_EQ_INT(r, -EBADMSG);
		CHECK(unit_contains(err, "metadata") || unit_contains(err, "object"));
		json_decref(j);
	}
	/* A label longer than 63 characters inside a name. */
	memset(name, 'a', 100);
	name[100] = '\0';
	snprintf(buf, sizeof(buf), "{'metadata': {'name': '%s'}}", name);
	j = J(buf);
	CHECK_EQ_INT(decode_object_key(j, key, sizeof(key), err, sizeof(err)), -EBADMSG);
	CHECK(unit_contains(err, "metadata.name"));
	json_decref(j);
}

/* --- EndpointSlices ------------------------------------------------------ */

TEST(slice_fixture)
{
	struct endpoint_slice *s;
	int r;

	s = slice_from(fixture("endpointslice-v4.json"), &r);
	CHECK_EQ_INT(r, 0);
	REQUIRE(s);
	CHECK_EQ_STR(s->ns, "shop");
	CHECK_EQ_STR(s->name, "web-7xk2p");
	CHECK_EQ_STR(s->service_name, "web");
	CHECK_EQ_INT(s->family, AF_INET);

	REQUIRE(s->n_ports == 3);
	CHECK_EQ_STR(s->ports[0].name, "http");
	CHECK_EQ_INT(s->ports[0].protocol, IPPROTO_TCP);
	CHECK_EQ_INT(s->ports[0].port, 8080);
	CHECK_EQ_STR(s->ports[1].name, "dns");
	CHECK_EQ_INT(s->ports[1].protocol, IPPROTO_UDP);
	CHECK_EQ_INT(s->ports[1].port, 53);
	/* port null: the slice gives no port. */
	CHECK_EQ_STR(s->ports[2].name, "");
	CHECK_EQ_INT(s->ports[2].protocol, IPPROTO_TCP);
	CHECK_EQ_INT(s->ports[2].port, 0);

	REQUIRE(s->n_endpoints == 6);
	CHECK(ip_is(&s->endpoints[0].addr, "10.244.1.5"));
	CHECK_EQ_INT(s->endpoints[0].conditions, EP_READY | EP_SERVING);
	CHECK_EQ_STR(s->endpoints[0].node_name, "node-a");
	CHECK_EQ_STR(s->endpoints[0].zone, "zone-1");
	REQUIRE(s->endpoints[0].n_hint_zones == 1);
	CHECK_EQ_STR(s->endpoints[0].hint_zones[0], "zone-1");
	CHECK_EQ_INT(s->endpoints[0].n_hint_nodes, 0);

	/* Only the first address counts, as in kube-proxy. */
	CHECK(ip_is(&s->endpoints[1].addr, "10.244.2.7"));
	CHECK_EQ_INT(s->endpoints[1].conditions, EP_SERVING | EP_TERMINATING);
	CHECK_EQ_STR(s->endpoints[1].node_name, "node-b");
	REQUIRE(s->endpoints[1].n_hint_zones == 2);
	CHECK_EQ_STR(s->endpoints[1].hint_zones[0], "zone-2");
	CHECK_EQ_STR(s->endpoints[1].hint_zones[1], "zone-3");
	REQUIRE(s->endpoints[1].n_hint_nodes == 1);
	CHECK_EQ_STR(s->endpoints[1].hint_nodes[0], "node-b");

	/* Empty conditions: ready, hence serving, not terminating. */
	CHECK_EQ_INT(s->endpoints[2].conditions, EP_READY | EP_SERVING);
	CHECK(s->endpoints[2].node_name == NULL);
	CHECK(s->endpoints[2].zone == NULL);
	/* ready false and serving absent: serving follows ready. */
	CHECK_EQ_INT(s->endpoints[3].conditions, 0);
	/* No conditions at all. */
	CHECK_EQ_INT(s->endpoints[4].conditions, EP_READY | EP_SERVING);
	/* Explicit serving false is kept apart from ready; nulls are absent. */
	CHECK_EQ_INT(s->endpoints[5].conditions, EP_READY);
	CHECK(s->endpoints[5].node_name == NULL);
	CHECK_EQ_INT(s->endpoints[5].n_hint_zones, 0);
	endpoint_slice_free(s);
}

static json_t *slice_json(const char *type, const char *endpoints)
{
	char buf[8192];

	snprintf(buf, sizeof(buf),
		 "{'metadata': {'name': 's1', 'namespace': 'ns',"
		 "  'labels': {'kubernetes.io/service-name': 'web'}},"
		 " 'addressType': '%s', 'ports': [{'name': 'http', 'port': 8080}],"
		 " 'endpoints': %s}",
		 type, endpoints);
	return J(buf);
}

TEST(slice_families)
{
	struct endpoint_slice *s;
	int r;

	s = slice_from(slice_json("IPv6", "[{'addresses': ['fd00:244::5'],"
					  " 'conditions': {'ready': true, 'terminating': true}}]"),
		       &r);
	CHECK_EQ_INT(r, 0);
	REQUIRE(s);
	CHECK_EQ_INT(s->family, AF_INET6);
	REQUIRE(s->n_endpoints == 1);
	CHECK(ip_is(&s->endpoints[0].addr, "fd00:244::5"));
	CHECK_EQ_INT(s->endpoints[0].conditions, EP_READY | EP_SERVING | EP_TERMINATING);
	endpoint_slice_free(s);

	/* FQDN slices are valid but nothing for a proxy. */
	s = slice_from(slice_json("FQDN", "[{'addresses': ['db.example.com']}]"), &r);
	CHECK_EQ_INT(r, 0);
	CHECK(s == NULL);

	/* No endpoints at all is a valid, empty slice. */
	s = slice_from(slice_json("IPv4", "[]"), &r);
	CHECK_EQ_INT(r, 0);
	REQUIRE(s);
	CHECK_EQ_INT(s->n_endpoints, 0);
	endpoint_slice_free(s);
	s = slice_from(slice_json("IPv4", "null"), &r);
	CHECK_EQ_INT(r, 0);
	REQUIRE(s);
	CHECK_EQ_INT(s->n_endpoints, 0);
	endpoint_slice_free(s);
}

TEST(slice_without_service_label)
{
	struct endpoint_slice *s;
	int r;

	s = slice_from(J("{'metadata': {'name': 's1', 'namespace': 'ns', 'labels': {'a': 'b'}},"
			 " 'addressType': 'IPv4', 'endpoints': [{'addresses': ['10.0.0.1']}]}"),
		       &r);
	CHECK_EQ_INT(r, 0);
	CHECK(s == NULL);
	s = slice_from(J("{'metadata': {'name': 's1', 'namespace': 'ns'},"
			 " 'addressType': 'IPv4', 'endpoints': []}"),
		       &r);
	CHECK_EQ_INT(r, 0);
	CHECK(s == NULL);
	s = slice_from(J("{'metadata': {'name': 's1', 'namespace': 'ns',"
			 "  'labels': {'kubernetes.io/service-name': ''}},"
			 " 'addressType': 'IPv4', 'endpoints': []}"),
		       &r);
	CHECK_EQ_INT(r, 0);
	CHECK(s == NULL);
}

static bool mutated_slice_rejected(const struct mutation *m)
{
	json_t *j = fixture("endpointslice-v4.json");

	if (!j)
		return false;
	if (!set_path(j, m->path, m->value ? J(m->value) : NULL)) {
		fprintf(stderr, "    cannot set %s\n", m->path);
		json_decref(j);
		return false;
	}
	return slice_rejected(j, m->want);
}

TEST(slice_hostile_fields)
{
	static const struct mutation cases[] = {
		{"endpoints[1].addresses", "['fd00::7']", "endpoints[1].addresses[0]"},
		{"endpoints[0].addresses", "['banana']", "endpoints[0].addresses[0]"},
		{"endpoints[0].addresses", "[7]", "endpoints[0].addresses[0]"},
		{"endpoints[0].addresses", "[]", "endpoints[0].addresses"},
		{"endpoints[2].addresses", NULL, "endpoints[2].addresses"},
		{"endpoints[0].addresses", "'10.244.1.5'", "endpoints[0].addresses"},
		{"endpoints[0]", "'10.244.1.5'", "endpoints[0]"},
		{"endpoints", "{}", "endpoints"},
		{"endpoints[0].conditions", "[]", "endpoints[0].conditions"},
		{"endpoints[0].conditions.ready", "'yes'", "endpoints[0].conditions.ready"},
		{"endpoints[0].conditions.serving", "1", "endpoints[0].conditions.serving"},
		{"endpoints[0].conditions.terminating", "'false'",
		 "endpoints[0].conditions.terminating"},
		{"endpoints[0].nodeName", "5", "endpoints[0].nodeName"},
		{"endpoints[0].zone", "{}", "endpoints[0].zone"},
		{"endpoints[0].hints", "[]", "endpoints[0].hints"},
		{"endpoints[0].hints.forZones", "{}", "endpoints[0].hints.forZones"},
		{"endpoints[0].hints.forZones", "['zone-1']", "endpoints[0].hints.forZones[0]"},
		{"endpoints[0].hints.forZones", "[{}]", "endpoints[0].hints.forZones[0].name"},
		{"endpoints[1].hints.forNodes", "[{'name': 3}]",
		 "endpoints[1].hints.forNodes[0].name"},
		{"addressType", NULL, "addressType"},
		{"addressType", "'IPv5'", "addressType"},
		{"addressType", "4", "addressType"},
		{"metadata.namespace", NULL, "metadata.namespace"},
		{"metadata.namespace", "'Shop'", "metadata.namespace"},
		{"metadata.name", "'Web_1'", "metadata.name"},
		{"metadata", NULL, "metadata"},
		{"metadata.labels", "'x'", "metadata.labels"},
		{"metadata.labels[kubernetes.io/service-name]", "'Web'",
		 "kubernetes.io/service-name"},
		{"metadata.labels[kubernetes.io/service-name]", "7", "kubernetes.io/service-name"},
		{"ports", "{}", "ports"},
		{"ports[0]", "8080", "ports[0]"},
		{"ports[0].protocol", "'HTTP'", "ports[0].protocol"},
		{"ports[0].port", "0", "ports[0].port"},
		{"ports[0].port", "65536", "ports[0].port"},
		{"ports[0].port", "'8080'", "ports[0].port"},
		{"ports[0].name", "'Http'", "ports[0].name"},
		{"ports[1].name", "'a-very-long-name'", "ports[1].name"},
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		if (!mutated_slice_rejected(&cases[i])) {
			fprintf(stderr, "    case %s = %s\n", cases[i].path,
				cases[i].value ? cases[i].value : "(removed)");
			CHECK(false);
		}
	}
}

TEST(slice_limits)
{
	json_t *j, *eps;

	/* 1000 endpoints is the most a slice may hold ... */
	j = fixture("endpointslice-v4.json");
	REQUIRE(j);
	eps = json_array();
	for (int i = 0; i < 1000; i++) {
		char ip[32];

		snprintf(ip, sizeof(ip), "10.1.%d.%d", i / 250, i % 250 + 1);
		json_array_append_new(eps, json_pack("{s:[s]}", "addresses", ip));
	}
	set_path(j, "endpoints", json_incref(eps));
	{
		struct endpoint_slice *s;
		int r;

		s = slice_from(j, &r);
		CHECK_EQ_INT(r, 0);
		REQUIRE(s);
		CHECK_EQ_INT(s->n_endpoints, 1000);
		CHECK(ip_is(&s->endpoints[999].addr, "10.1.3.250"));
		endpoint_slice_free(s);
	}
	/* ... and one more is refused. */
	json_array_append_new(eps, json_pack("{s:[s]}", "addresses", "10.2.0.1"));
	j = fixture("endpointslice-v4.json");
	REQUIRE(j);
	set_path(j, "endpoints", eps);
	CHECK(slice_rejected(j, "endpoints"));
	CHECK(unit_contains(err, "1001"));

	/* A bad endpoint deep in a large slice is named by its index. */
	j = fixture("endpointslice-v4.json");
	REQUIRE(j);
	eps = json_array();
	for (int i = 0; i < 600; i++)
		json_array_append_new(
			eps, json_pack("{s:[s]}", "addresses", i == 517 ? "fd00::1" : "10.3.0.1"));
	set_path(j, "endpoints", eps);
	CHECK(slice_rejected(j, "endpoints[517].addresses[0]"));
}

/* --- Nodes --------------------------------------------------------------- */

static struct node_info *node_from(json_t *j, int *ret_r)
{
	struct node_info *n = (struct node_info *)0x1;
	int r;

	err[0] = '\0';
	r = decode_node(j, &n, err, sizeof(err));
	json_decref(j);
	*ret_r = r;
	return r < 0 ? (n == NULL ? NULL : (struct node_info *)0x2) : n;
}

TEST(node_fixture)
{
	struct node_info *n;
	int r;

	n = node_from(fixture("node.json"), &r);
	CHECK_EQ_INT(r, 0);
	REQUIRE(n);
	CHECK_EQ_STR(n->name, "node-a.example.internal");
	/* The GA zone label wins over the beta one. */
	CHECK_EQ_STR(n->zone, "eu-west-1a");
	CHECK(!n->deleting);
	CHECK(!n->to_be_deleted);
	/* InternalIP and ExternalIP only; unparsable addresses are skipped. */
	REQUIRE(n->n_addrs == 3);
	CHECK(ip_is(&n->addrs[0], "10.0.0.5"));
	CHECK(ip_is(&n->addrs[1], "203.0.113.5"));
	CHECK(ip_is(&n->addrs[2], "fd00::5"));
	node_info_free(n);
}

TEST(node_zone_deletion_taints)
{
	struct node_info *n;
	json_t *j;
	int r;

	/* Only the beta label. */
	j = fixture("node.json");
	REQUIRE(j);
	set_path(j, "metadata.labels[topology.kubernetes.io/zone]", NULL);
	n = node_from(j, &r);
	REQUIRE(n);
	CHECK_EQ_STR(n->zone, "old-zone");
	node_info_free(n);

	/* No zone label at all. */
	n = node_from(J("{'metadata': {'name': 'bare'}}"), &r);
	CHECK_EQ_INT(r, 0);
	REQUIRE(n);
	CHECK_EQ_STR(n->name, "bare");
	CHECK(n->zone == NULL);
	CHECK_EQ_INT(n->n_addrs, 0);
	CHECK(!n->deleting);
	node_info_free(n);

	j = fixture("node.json");
	REQUIRE(j);
	set_path(j, "metadata.deletionTimestamp", json_string("2024-06-01T00:00:00Z"));
	n = node_from(j, &r);
	REQUIRE(n);
	CHECK(n->deleting);
	CHECK(!n->to_be_deleted);
	node_info_free(n);

	j = fixture("node.json");
	REQUIRE(j);
	set_path(j, "spec.taints[1]",
		 J("{'key': 'ToBeDeletedByClusterAutoscaler', 'value': '1717200000',"
		   " 'effect': 'NoSchedule'}"));
	n = node_from(j, &r);
	REQUIRE(n);
	CHECK(n->to_be_deleted);
	CHECK(!n->deleting);
	node_info_free(n);

	/* Wrong types where the decoder looks are errors naming the field. */
	j = fixture("node.json");
	REQUIRE(j);
	set_path(j, "metadata.labels", J("[]"));
	n = node_from(j, &r);
	CHECK_EQ_INT(r, -EBADMSG);
	CHECK(n == NULL);
	CHECK(unit_contains(err, "metadata.labels"));
	j = fixture("node.json");
	REQUIRE(j);
	set_path(j, "metadata.labels[topology.kubernetes.io/zone]", J("3"));
	n = node_from(j, &r);
	CHECK_EQ_INT(r, -EBADMSG);
	CHECK(unit_contains(err, "topology.kubernetes.io/zone"));
	j = fixture("node.json");
	REQUIRE(j);
	set_path(j, "status.addresses", J("{}"));
	n = node_from(j, &r);
	CHECK_EQ_INT(r, -EBADMSG);
	CHECK(unit_contains(err, "status.addresses"));
	j = fixture("node.json");
	REQUIRE(j);
	set_path(j, "spec.taints", J("'none'"));
	n = node_from(j, &r);
	CHECK_EQ_INT(r, -EBADMSG);
	CHECK(unit_contains(err, "spec.taints"));
	j = fixture("node.json");
	REQUIRE(j);
	set_path(j, "metadata.name", J("'Node_A'"));
	n = node_from(j, &r);
	CHECK_EQ_INT(r, -EBADMSG);
	CHECK(n == NULL);
	CHECK(unit_contains(err, "metadata.name"));
}

TEST(core_endpoints_as_slices)
{
	json_t *j =
		J("{'metadata':{'name':'web','namespace':'shop'},"
		  "'subsets':[{'addresses':[{'ip':'10.0.0.1','nodeName':'n1'},{'ip':'fd00::1'}],"
		  "'notReadyAddresses':[{'ip':'10.0.0.2'}],"
		  "'ports':[{'name':'http','port':8080,'protocol':'TCP'}]},"
		  "{'addresses':[{'ip':'10.0.0.3'}],'ports':[{'port':53,'protocol':'UDP'}]}]}");
	struct endpoints_obj *e = NULL;

	REQUIRE(decode_endpoints(j, &e, err, sizeof(err)) == 0);
	REQUIRE(e && e->n_slices == 3);
	CHECK_EQ_STR(e->slices[0]->name, "web.0.v4");
	CHECK_EQ_STR(e->slices[0]->service_name, "web");
	CHECK_EQ_INT(e->slices[0]->n_endpoints, 2);
	CHECK_EQ_INT(e->slices[0]->endpoints[0].conditions, EP_READY | EP_SERVING);
	CHECK_EQ_STR(e->slices[0]->endpoints[0].node_name, "n1");
	CHECK_EQ_INT(e->slices[0]->endpoints[1].conditions, 0);
	CHECK_EQ_STR(e->slices[1]->name, "web.0.v6");
	CHECK_EQ_INT(e->slices[1]->family, AF_INET6);
	CHECK_EQ_INT(e->slices[2]->ports[0].protocol, IPPROTO_UDP);
	CHECK_EQ_STR(e->slices[2]->ports[0].name, "");
	endpoints_obj_free(e);
	json_decref(j);

	j = J("{'metadata':{'name':'web','namespace':'shop'},"
	      "'subsets':[{'addresses':[{'ip':'banana'}],'ports':[{'port':80}]}]}");
	CHECK_EQ_INT(decode_endpoints(j, &e, err, sizeof(err)), -EBADMSG);
	CHECK(unit_contains(err, "subsets[0].addresses[0].ip"));
	json_decref(j);
	j = J("{'metadata':{'name':'web','namespace':'shop'},"
	      "'subsets':[{'addresses':[{'ip':'10.0.0.1'}],'ports':[{'port':0}]}]}");
	CHECK_EQ_INT(decode_endpoints(j, &e, err, sizeof(err)), -EBADMSG);
	CHECK(unit_contains(err, "subsets[0].ports[0]"));
	json_decref(j);
}

TEST(rfc3339_and_trigger_time)
{
	struct endpoint_slice *s = NULL;
	double v = -1;
	json_t *j;

	CHECK(decode_rfc3339("1970-01-01T00:00:00Z", &v) == 0 && v == 0);
	CHECK(decode_rfc3339("2026-11-23T10:00:00Z", &v) == 0 && v == 1795428000.0);
	CHECK(decode_rfc3339("2026-11-23T10:00:00.25Z", &v) == 0 && v == 1795428000.25);
	CHECK(decode_rfc3339("2026-11-23T12:30:00+02:30", &v) == 0 && v == 1795428000.0);
	CHECK(decode_rfc3339("2026-11-23T07:00:00-03:00", &v) == 0 && v == 1795428000.0);
	CHECK(decode_rfc3339("2026-11-23T10:00:00", &v) == -EINVAL);
	CHECK(decode_rfc3339("2026-11-23T10:00:00.Z", &v) == -EINVAL);
	CHECK(decode_rfc3339("2026-13-23T10:00:00Z", &v) == -EINVAL);
	CHECK(decode_rfc3339("2026-11-23T10:00:00Zjunk", &v) == -EINVAL);
	CHECK(decode_rfc3339("yesterday", &v) == -EINVAL);
	CHECK(decode_rfc3339("", &v) == -EINVAL);
	CHECK(decode_rfc3339(NULL, &v) == -EINVAL);

	j = J("{'metadata': {'name': 'a', 'namespace': 'ns', 'labels':"
	      " {'kubernetes.io/service-name': 'web'}, 'annotations':"
	      " {'endpoints.kubernetes.io/last-change-trigger-time': '2026-11-23T10:00:00.5Z'}},"
	      " 'addressType': 'IPv4', 'endpoints': []}");
	REQUIRE(decode_endpoint_slice(j, &s, err, sizeof(err)) == 0 && s);
	CHECK(s->trigger_time == 1795428000.5);
	endpoint_slice_free(s);
	json_decref(j);
	/* An unreadable time loses the measurement, not the slice. */
	j = J("{'metadata': {'name': 'a', 'namespace': 'ns', 'labels':"
	      " {'kubernetes.io/service-name': 'web'}, 'annotations':"
	      " {'endpoints.kubernetes.io/last-change-trigger-time': 17}},"
	      " 'addressType': 'IPv4', 'endpoints': []}");
	s = NULL;
	REQUIRE(decode_endpoint_slice(j, &s, err, sizeof(err)) == 0 && s);
	CHECK(s->trigger_time == 0);
	endpoint_slice_free(s);
	json_decref(j);
}

UNIT_MAIN(T(service_fixture_every_field), T(service_defaults), T(service_types),
	  T(service_cluster_ips), T(service_lb_status), T(service_source_ranges),
	  T(service_policies_and_affinity), T(service_traffic_distribution),
	  T(service_proxy_name_label), T(service_hostile_fields), T(service_hostile_names),
	  T(service_limits), T(huge_unrelated_field), T(deep_garbage_ignored), T(object_keys),
	  T(slice_fixture), T(slice_families), T(slice_without_service_label),
	  T(slice_hostile_fields), T(slice_limits), T(node_fixture), T(node_zone_deletion_taints),
	  T(core_endpoints_as_slices), T(rfc3339_and_trigger_time))
