/* Validating decoders from API JSON to the model's structs; see decode.h.
 *
 * The API server validates objects before storing them, but the agent does
 * not trust that: a bug, a misbehaving proxy in front of the server or a
 * hostile aggregated API could hand it anything.  Every field is checked for
 * its JSON type and its range, and the first problem found rejects the
 * object with a message that names the field, e.g.
 * "spec.ports[1].port: 70000 is out of range 1-65535". */
#include "kube/decode.h"

#include <errno.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define MAX_SLICE_ENDPOINTS 1000
#define MAX_SLICE_PORTS	    100
#define MAX_SVC_PORTS	    1000
#define MAX_IPS		    64
#define MAX_HINTS	    64
#define MAX_SOURCE_RANGES   1000

struct dctx {
	char *err;
	size_t errlen;
};

static int bad(struct dctx *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static int bad(struct dctx *c, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(c->err, c->errlen, fmt, ap);
	va_end(ap);
	return -EBADMSG;
}

static const char *type_name(json_t *v)
{
	switch (json_typeof(v)) {
	case JSON_OBJECT:
		return "an object";
	case JSON_ARRAY:
		return "an array";
	case JSON_STRING:
		return "a string";
	case JSON_INTEGER:
		return "an integer";
	case JSON_REAL:
		return "a number";
	case JSON_TRUE:
	case JSON_FALSE:
		return "a boolean";
	default:
		return "null";
	}
}

/* Field accessors.  A field that is absent or JSON null counts as not given;
 * one of the wrong type is an error. */

static int get_object(struct dctx *c, json_t *parent, const char *key, const char *path,
		      json_t **ret)
{
	json_t *v = json_object_get(parent, key);

	if (!v || json_is_null(v)) {
		*ret = NULL;
		return 0;
	}
	if (!json_is_object(v))
		return bad(c, "%s: expected an object, got %s", path, type_name(v));
	*ret = v;
	return 0;
}

static int get_array(struct dctx *c, json_t *parent, const char *key, const char *path, size_t max,
		     json_t **ret)
{
	json_t *v = json_object_get(parent, key);

	if (!v || json_is_null(v)) {
		*ret = NULL;
		return 0;
	}
	if (!json_is_array(v))
		return bad(c, "%s: expected an array, got %s", path, type_name(v));
	if (json_array_size(v) > max)
		return bad(c, "%s: %zu entries, more than the limit of %zu", path,
			   json_array_size(v), max);
	*ret = v;
	return 0;
}

static int get_string(struct dctx *c, json_t *parent, const char *key, const char *path,
		      size_t max_len, const char **ret)
{
	json_t *v = json_object_get(parent, key);

	if (!v || json_is_null(v)) {
		*ret = NULL;
		return 0;
	}
	if (!json_is_string(v))
		return bad(c, "%s: expected a string, got %s", path, type_name(v));
	if (json_string_length(v) > max_len)
		return bad(c, "%s: longer than %zu characters", path, max_len);
	if (strlen(json_string_value(v)) != json_string_length(v))
		return bad(c, "%s: contains a NUL character", path);
	*ret = json_string_value(v);
	return 0;
}

static int get_bool(struct dctx *c, json_t *parent, const char *key, const char *path, int *ret)
{
	json_t *v = json_object_get(parent, key);

	if (!v || json_is_null(v)) {
		*ret = -1;
		return 0;
	}
	if (!json_is_boolean(v))
		return bad(c, "%s: expected a boolean, got %s", path, type_name(v));
	*ret = json_is_true(v);
	return 0;
}

/* Integers within [min, max]; *present tells whether the field was given. */
static int get_int(struct dctx *c, json_t *parent, const char *key, const char *path, long long min,
		   long long max, long long *ret, bool *present)
{
	json_t *v = json_object_get(parent, key);

	*present = false;
	if (!v || json_is_null(v))
		return 0;
	if (!json_is_integer(v))
		return bad(c, "%s: expected an integer, got %s", path, type_name(v));
	if (json_integer_value(v) < min || json_integer_value(v) > max)
		return bad(c, "%s: %lld is out of range %lld-%lld", path,
			   (long long)json_integer_value(v), min, max);
	*ret = json_integer_value(v);
	*present = true;
	return 0;
}

/* RFC 1123 label (DNS_LABEL in the API): lowercase alphanumerics and '-',
 * starting and ending alphanumeric, at most 63 characters. */
static bool is_dns_label(const char *s)
{
	size_t n = strlen(s);

	if (n == 0 || n > 63)
		return false;
	for (size_t i = 0; i < n; i++) {
		char ch = s[i];
		bool alnum = (ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9');

		if (!alnum && !(ch == '-' && i > 0 && i < n - 1))
			return false;
	}
	return true;
}

/* RFC 1123 subdomain: dot-separated labels, at most 253 characters. */
static bool is_dns_subdomain(const char *s)
{
	char label[64];
	size_t n = strlen(s);
	const char *p = s;

	if (n == 0 || n > 253)
		return false;
	while (*p) {
		const char *dot = strchr(p, '.');
		size_t len = dot ? (size_t)(dot - p) : strlen(p);

		if (len == 0 || len > 63)
			return false;
		memcpy(label, p, len);
		label[len] = '\0';
		if (!is_dns_label(label))
			return false;
		p += len;
		if (*p == '.') {
			p++;
			if (!*p)
				return false;
		}
	}
	return true;
}

/* IANA service name, as port names must be: at most 15 characters of
 * lowercase alphanumerics and '-', at least one letter, no leading,
 * trailing or doubled '-'. */
static bool is_port_name(const char *s)
{
	size_t n = strlen(s);
	bool letter = false;

	if (n == 0 || n > 15 || s[0] == '-' || s[n - 1] == '-')
		return false;
	for (size_t i = 0; i < n; i++) {
		char ch = s[i];

		if (ch >= 'a' && ch <= 'z')
			letter = true;
		else if (ch == '-') {
			if (s[i + 1] == '-')
				return false;
		} else if (!(ch >= '0' && ch <= '9'))
			return false;
	}
	return letter;
}

static int parse_protocol(struct dctx *c, const char *s, const char *path, uint8_t *ret)
{
	if (!s || !strcmp(s, "TCP"))
		*ret = IPPROTO_TCP;
	else if (!strcmp(s, "UDP"))
		*ret = IPPROTO_UDP;
	else if (!strcmp(s, "SCTP"))
		*ret = IPPROTO_SCTP;
	else
		return bad(c, "%s: unknown protocol \"%.32s\"", path, s);
	return 0;
}

static int parse_ip(struct dctx *c, json_t *v, const char *path, struct ipaddr *ret)
{
	if (!json_is_string(v))
		return bad(c, "%s: expected a string, got %s", path, type_name(v));
	if (ipaddr_parse(json_string_value(v), ret) < 0)
		return bad(c, "%s: \"%.64s\" is not an IP address", path, json_string_value(v));
	return 0;
}

int decode_object_key(json_t *obj, char *buf, size_t len, char *err, size_t errlen)
{
	struct dctx c = {err, errlen};
	const char *ns = NULL, *name = NULL;
	json_t *meta = NULL;
	int r;

	if (!json_is_object(obj))
		return bad(&c, "object: expected an object, got %s", type_name(obj));
	if ((r = get_object(&c, obj, "metadata", "metadata", &meta)) < 0)
		return r;
	if (!meta)
		return bad(&c, "metadata: missing");
	if ((r = get_string(&c, meta, "name", "metadata.name", 253, &name)) < 0 ||
	    (r = get_string(&c, meta, "namespace", "metadata.namespace", 63, &ns)) < 0)
		return r;
	if (!name || !is_dns_subdomain(name))
		return bad(&c, "metadata.name: \"%.64s\" is not a valid name", name ? name : "");
	if (ns && *ns && !is_dns_label(ns))
		return bad(&c, "metadata.namespace: \"%.64s\" is not a valid namespace", ns);
	if (ns && *ns)
		snprintf(buf, len, "%s/%s", ns, name);
	else
		snprintf(buf, len, "%s", name);
	return 0;
}

static int get_labels(struct dctx *c, json_t *obj, json_t **ret)
{
	json_t *meta = json_object_get(obj, "metadata");
	json_t *labels;
	int r;

	if ((r = get_object(c, meta, "labels", "metadata.labels", &labels)) < 0)
		return r;
	*ret = labels;
	return 0;
}

/* Reads an array of IP strings into a new array (owned by the caller),
 * optionally deduplicated. */
static int decode_ip_list(struct dctx *c, json_t *arr, const char *path, struct ipaddr **ret,
			  size_t *ret_n)
{
	struct ipaddr *ips;
	size_t n = 0, i;
	json_t *v;
	char p[96];

	*ret = NULL;
	*ret_n = 0;
	if (!arr || json_array_size(arr) == 0)
		return 0;
	ips = calloc(json_array_size(arr), sizeof(*ips));
	if (!ips)
		return -ENOMEM;
	json_array_foreach(arr, i, v)
	{
		struct ipaddr a;
		bool dup = false;
		int r;

		snprintf(p, sizeof(p), "%s[%zu]", path, i);
		if ((r = parse_ip(c, v, p, &a)) < 0) {
			free(ips);
			return r;
		}
		for (size_t j = 0; j < n; j++)
			dup |= ipaddr_equal(&ips[j], &a);
		if (!dup)
			ips[n++] = a;
	}
	*ret = ips;
	*ret_n = n;
	return 0;
}

static int decode_svc_ports(struct dctx *c, json_t *spec, struct service *svc)
{
	json_t *ports, *p;
	size_t i;
	int r;

	if ((r = get_array(c, spec, "ports", "spec.ports", MAX_SVC_PORTS, &ports)) < 0)
		return r;
	if (!ports || !json_array_size(ports))
		return 0;
	svc->ports = calloc(json_array_size(ports), sizeof(*svc->ports));
	if (!svc->ports)
		return -ENOMEM;
	json_array_foreach(ports, i, p)
	{
		struct svc_port_spec *sp = &svc->ports[svc->n_ports];
		const char *name = NULL, *proto = NULL;
		long long port = 0, node_port = 0;
		bool has_port, has_np;
		char path[64];

		if (!json_is_object(p))
			return bad(c, "spec.ports[%zu]: expected an object, got %s", i,
				   type_name(p));
		snprintf(path, sizeof(path), "spec.ports[%zu].name", i);
		if ((r = get_string(c, p, "name", path, 63, &name)) < 0)
			return r;
		if (name && *name && !is_port_name(name))
			return bad(c, "%s: \"%s\" is not a valid port name", path, name);
		snprintf(path, sizeof(path), "spec.ports[%zu].protocol", i);
		if ((r = get_string(c, p, "protocol", path, 16, &proto)) < 0 ||
		    (r = parse_protocol(c, proto, path, &sp->protocol)) < 0)
			return r;
		snprintf(path, sizeof(path), "spec.ports[%zu].port", i);
		if ((r = get_int(c, p, "port", path, 1, 65535, &port, &has_port)) < 0)
			return r;
		if (!has_port)
			return bad(c, "%s: missing", path);
		snprintf(path, sizeof(path), "spec.ports[%zu].nodePort", i);
		if ((r = get_int(c, p, "nodePort", path, 0, 65535, &node_port, &has_np)) < 0)
			return r;
		for (size_t j = 0; j < svc->n_ports; j++) {
			if (!strcmp(svc->ports[j].name, name ? name : ""))
				return bad(c, "spec.ports[%zu].name: \"%s\" is used twice", i,
					   name ? name : "");
		}
		sp->name = strdup(name ? name : "");
		if (!sp->name)
			return -ENOMEM;
		sp->port = (uint16_t)port;
		sp->node_port = (uint16_t)node_port;
		svc->n_ports++;
	}
	return 0;
}

static int decode_svc_cluster_ips(struct dctx *c, json_t *spec, struct service *svc)
{
	const char *cip = NULL;
	json_t *cips;
	int r;

	if ((r = get_string(c, spec, "clusterIP", "spec.clusterIP", 64, &cip)) < 0 ||
	    (r = get_array(c, spec, "clusterIPs", "spec.clusterIPs", 2, &cips)) < 0)
		return r;
	if ((cip && !strcmp(cip, "None")) ||
	    (cips && json_array_size(cips) && json_is_string(json_array_get(cips, 0)) &&
	     !strcmp(json_string_value(json_array_get(cips, 0)), "None"))) {
		svc->headless = true;
		return 0;
	}
	if (cips && json_array_size(cips)) {
		if ((r = decode_ip_list(c, cips, "spec.clusterIPs", &svc->cluster_ips,
					&svc->n_cluster_ips)) < 0)
			return r;
		if (svc->n_cluster_ips == 2 &&
		    svc->cluster_ips[0].family == svc->cluster_ips[1].family)
			return bad(c, "spec.clusterIPs: two addresses of the same family");
		if (cip && *cip) {
			struct ipaddr a;

			if (ipaddr_parse(cip, &a) < 0)
				return bad(c, "spec.clusterIP: \"%.64s\" is not an IP address",
					   cip);
			if (!ipaddr_equal(&a, &svc->cluster_ips[0]))
				return bad(c, "spec.clusterIP: differs from spec.clusterIPs[0]");
		}
		return 0;
	}
	if (cip && *cip) {
		svc->cluster_ips = calloc(1, sizeof(*svc->cluster_ips));
		if (!svc->cluster_ips)
			return -ENOMEM;
		if (ipaddr_parse(cip, &svc->cluster_ips[0]) < 0)
			return bad(c, "spec.clusterIP: \"%.64s\" is not an IP address", cip);
		svc->n_cluster_ips = 1;
	}
	return 0;
}

static int decode_svc_lb_status(struct dctx *c, json_t *obj, struct service *svc)
{
	json_t *status, *lb, *ingress, *ing;
	size_t i;
	int r;

	if ((r = get_object(c, obj, "status", "status", &status)) < 0)
		return r;
	if (!status)
		return 0;
	if ((r = get_object(c, status, "loadBalancer", "status.loadBalancer", &lb)) < 0)
		return r;
	if (!lb)
		return 0;
	if ((r = get_array(c, lb, "ingress", "status.loadBalancer.ingress", MAX_IPS, &ingress)) < 0)
		return r;
	if (!ingress || !json_array_size(ingress))
		return 0;
	svc->lb_ips = calloc(json_array_size(ingress), sizeof(*svc->lb_ips));
	if (!svc->lb_ips)
		return -ENOMEM;
	json_array_foreach(ingress, i, ing)
	{
		const char *ip = NULL, *mode = NULL;
		char path[64];
		struct ipaddr a;
		bool dup = false;

		if (!json_is_object(ing))
			return bad(c,
				   "status.loadBalancer.ingress[%zu]: expected an object, got %s",
				   i, type_name(ing));
		snprintf(path, sizeof(path), "status.loadBalancer.ingress[%zu].ip", i);
		if ((r = get_string(c, ing, "ip", path, 64, &ip)) < 0)
			return r;
		snprintf(path, sizeof(path), "status.loadBalancer.ingress[%zu].ipMode", i);
		if ((r = get_string(c, ing, "ipMode", path, 16, &mode)) < 0)
			return r;
		if (mode && strcmp(mode, "VIP") && strcmp(mode, "Proxy"))
			return bad(c, "%s: unknown mode \"%s\"", path, mode);
		/* Hostname-only ingress points are the load balancer's business. */
		if (!ip || !*ip)
			continue;
		if (ipaddr_parse(ip, &a) < 0)
			return bad(c,
				   "status.loadBalancer.ingress[%zu].ip: \"%.64s\" is not an IP "
				   "address",
				   i, ip);
		/* With ipMode Proxy the load balancer delivers traffic to the node
		 * with its own address as destination: the node must not capture the
		 * ingress IP. */
		if (mode && !strcmp(mode, "Proxy"))
			continue;
		for (size_t j = 0; j < svc->n_lb_ips; j++)
			dup |= ipaddr_equal(&svc->lb_ips[j], &a);
		if (!dup)
			svc->lb_ips[svc->n_lb_ips++] = a;
	}
	return 0;
}

static int decode_source_ranges(struct dctx *c, json_t *obj, json_t *spec, struct service *svc)
{
	json_t *ranges, *v;
	const char *annotation = NULL;
	size_t i;
	int r;

	if ((r = get_array(c, spec, "loadBalancerSourceRanges", "spec.loadBalancerSourceRanges",
			   MAX_SOURCE_RANGES, &ranges)) < 0)
		return r;
	if (!ranges || !json_array_size(ranges)) {
		/* The older annotation, honoured when the field is empty. */
		json_t *meta = json_object_get(obj, "metadata"), *ann;

		if ((r = get_object(c, meta, "annotations", "metadata.annotations", &ann)) < 0)
			return r;
		if (ann && (r = get_string(c, ann,
					   "service.beta.kubernetes.io/load-balancer-source-ranges",
					   "metadata.annotations[load-balancer-source-ranges]",
					   65536, &annotation)) < 0)
			return r;
		if (!annotation || !*annotation)
			return 0;
		{
			char *copy = strdup(annotation), *save = NULL, *tok;
			size_t cap = 1;

			if (!copy)
				return -ENOMEM;
			for (const char *p = annotation; *p; p++)
				cap += *p == ',';
			if (cap > MAX_SOURCE_RANGES) {
				free(copy);
				return bad(
					c,
					"load-balancer-source-ranges annotation: too many ranges");
			}
			svc->source_ranges = calloc(cap, sizeof(*svc->source_ranges));
			if (!svc->source_ranges) {
				free(copy);
				return -ENOMEM;
			}
			for (tok = strtok_r(copy, ",", &save); tok;
			     tok = strtok_r(NULL, ",", &save)) {
				while (*tok == ' ')
					tok++;
				for (char *e = tok + strlen(tok); e > tok && e[-1] == ' '; e--)
					e[-1] = '\0';
				if (!*tok)
					continue;
				if (cidr_parse(tok, true,
					       &svc->source_ranges[svc->n_source_ranges]) < 0) {
					r = bad(c,
						"load-balancer-source-ranges annotation: \"%.64s\" "
						"is "
						"not a CIDR",
						tok);
					free(copy);
					return r;
				}
				svc->n_source_ranges++;
			}
			free(copy);
		}
		return 0;
	}
	svc->source_ranges = calloc(json_array_size(ranges), sizeof(*svc->source_ranges));
	if (!svc->source_ranges)
		return -ENOMEM;
	json_array_foreach(ranges, i, v)
	{
		char buf[80];
		const char *s;
		size_t len;

		if (!json_is_string(v))
			return bad(c,
				   "spec.loadBalancerSourceRanges[%zu]: expected a string, got %s",
				   i, type_name(v));
		s = json_string_value(v);
		while (*s == ' ')
			s++;
		len = strlen(s);
		while (len && s[len - 1] == ' ')
			len--;
		if (len >= sizeof(buf))
			return bad(c, "spec.loadBalancerSourceRanges[%zu]: too long", i);
		memcpy(buf, s, len);
		buf[len] = '\0';
		if (cidr_parse(buf, true, &svc->source_ranges[svc->n_source_ranges]) < 0)
			return bad(c, "spec.loadBalancerSourceRanges[%zu]: \"%.64s\" is not a CIDR",
				   i, buf);
		svc->n_source_ranges++;
	}
	return 0;
}

static int decode_policy(struct dctx *c, json_t *spec, const char *key, bool *ret_local)
{
	const char *v = NULL;
	char path[64];
	int r;

	snprintf(path, sizeof(path), "spec.%s", key);
	if ((r = get_string(c, spec, key, path, 32, &v)) < 0)
		return r;
	if (!v || !*v || !strcmp(v, "Cluster") || !strcmp(v, "Global"))
		*ret_local = false;
	else if (!strcmp(v, "Local"))
		*ret_local = true;
	else
		return bad(c, "%s: unknown policy \"%s\"", path, v);
	return 0;
}

static int decode_service_fields(struct dctx *c, json_t *obj, struct service *svc)
{
	const char *type = NULL, *affinity = NULL, *dist = NULL, *ns, *name;
	json_t *meta, *spec, *labels, *ann, *eips, *sac;
	long long v;
	bool present;
	int r;

	meta = json_object_get(obj, "metadata");
	name = json_string_value(json_object_get(meta, "name"));
	ns = json_string_value(json_object_get(meta, "namespace"));
	if (!ns || !*ns)
		return bad(c, "metadata.namespace: missing");
	if (!is_dns_label(name))
		return bad(c, "metadata.name: \"%.64s\" is not a valid Service name", name);
	svc->ns = strdup(ns);
	svc->name = strdup(name);
	if (!svc->ns || !svc->name)
		return -ENOMEM;
	if ((r = get_labels(c, obj, &labels)) < 0)
		return r;
	svc->has_proxy_name =
		labels && json_object_get(labels, "service.kubernetes.io/service-proxy-name");
	if ((r = get_object(c, meta, "annotations", "metadata.annotations", &ann)) < 0)
		return r;

	if ((r = get_object(c, obj, "spec", "spec", &spec)) < 0)
		return r;
	if (!spec)
		return bad(c, "spec: missing");
	if ((r = get_string(c, spec, "type", "spec.type", 32, &type)) < 0)
		return r;
	if (!type || !*type || !strcmp(type, "ClusterIP"))
		svc->type = SVC_TYPE_CLUSTER_IP;
	else if (!strcmp(type, "NodePort"))
		svc->type = SVC_TYPE_NODE_PORT;
	else if (!strcmp(type, "LoadBalancer"))
		svc->type = SVC_TYPE_LOAD_BALANCER;
	else if (!strcmp(type, "ExternalName"))
		svc->type = SVC_TYPE_EXTERNAL_NAME;
	else
		return bad(c, "spec.type: unknown type \"%.32s\"", type);

	if ((r = decode_svc_cluster_ips(c, spec, svc)) < 0 ||
	    (r = decode_svc_ports(c, spec, svc)) < 0)
		return r;
	if ((r = get_array(c, spec, "externalIPs", "spec.externalIPs", MAX_IPS, &eips)) < 0 ||
	    (r = decode_ip_list(c, eips, "spec.externalIPs", &svc->external_ips,
				&svc->n_external_ips)) < 0)
		return r;
	if ((r = decode_svc_lb_status(c, obj, svc)) < 0 ||
	    (r = decode_source_ranges(c, obj, spec, svc)) < 0)
		return r;
	if ((r = decode_policy(c, spec, "externalTrafficPolicy", &svc->etp_local)) < 0 ||
	    (r = decode_policy(c, spec, "internalTrafficPolicy", &svc->itp_local)) < 0)
		return r;
	if ((r = get_int(c, spec, "healthCheckNodePort", "spec.healthCheckNodePort", 0, 65535, &v,
			 &present)) < 0)
		return r;
	svc->health_check_node_port = present ? (uint16_t)v : 0;

	if ((r = get_string(c, spec, "sessionAffinity", "spec.sessionAffinity", 32, &affinity)) < 0)
		return r;
	if (affinity && !strcmp(affinity, "ClientIP"))
		svc->affinity_client_ip = true;
	else if (affinity && *affinity && strcmp(affinity, "None"))
		return bad(c, "spec.sessionAffinity: unknown value \"%.32s\"", affinity);
	svc->affinity_timeout = 10800;
	if ((r = get_object(c, spec, "sessionAffinityConfig", "spec.sessionAffinityConfig", &sac)) <
	    0)
		return r;
	if (sac) {
		json_t *cip;

		if ((r = get_object(c, sac, "clientIP", "spec.sessionAffinityConfig.clientIP",
				    &cip)) < 0)
			return r;
		if (cip && (r = get_int(c, cip, "timeoutSeconds",
					"spec.sessionAffinityConfig.clientIP.timeoutSeconds", 1,
					86400, &v, &present)) < 0)
			return r;
		if (cip && present)
			svc->affinity_timeout = (uint32_t)v;
	}

	if ((r = get_string(c, spec, "trafficDistribution", "spec.trafficDistribution", 64,
			    &dist)) < 0)
		return r;
	if (dist && (!strcmp(dist, "PreferClose") || !strcmp(dist, "PreferSameZone")))
		svc->traffic_dist = TRAFFIC_DIST_PREFER_ZONE;
	else if (dist && !strcmp(dist, "PreferSameNode"))
		svc->traffic_dist = TRAFFIC_DIST_PREFER_NODE;
	/* Unknown values are ignored, as the field's API says consumers must. */
	if (svc->traffic_dist == TRAFFIC_DIST_NONE && ann) {
		const char *mode = NULL, *hints = NULL;

		if ((r = get_string(c, ann, "service.kubernetes.io/topology-mode",
				    "metadata.annotations[topology-mode]", 64, &mode)) < 0 ||
		    (r = get_string(c, ann, "service.kubernetes.io/topology-aware-hints",
				    "metadata.annotations[topology-aware-hints]", 64, &hints)) < 0)
			return r;
		if ((mode && (!strcmp(mode, "Auto") || !strcmp(mode, "auto"))) ||
		    (hints && (!strcmp(hints, "Auto") || !strcmp(hints, "auto"))))
			svc->traffic_dist = TRAFFIC_DIST_PREFER_ZONE;
	}
	return 0;
}

int decode_service(json_t *obj, struct service **ret_obj, char *err, size_t errlen)
{
	struct dctx c = {err, errlen};
	char key[OBJECT_KEY_MAX];
	struct service *svc;
	int r;

	*ret_obj = NULL;
	if ((r = decode_object_key(obj, key, sizeof(key), err, errlen)) < 0)
		return r;
	svc = calloc(1, sizeof(*svc));
	if (!svc)
		return -ENOMEM;
	r = decode_service_fields(&c, obj, svc);
	if (r < 0) {
		service_free(svc);
		if (r == -ENOMEM)
			bad(&c, "out of memory");
		return r;
	}
	*ret_obj = svc;
	return 0;
}

static int decode_hint_names(struct dctx *c, json_t *hints, const char *key, const char *path,
			     char ***ret, size_t *ret_n)
{
	json_t *arr, *h;
	size_t i;
	int r;

	if ((r = get_array(c, hints, key, path, MAX_HINTS, &arr)) < 0)
		return r;
	if (!arr || !json_array_size(arr))
		return 0;
	*ret = calloc(json_array_size(arr), sizeof(char *));
	if (!*ret)
		return -ENOMEM;
	json_array_foreach(arr, i, h)
	{
		const char *name = NULL;
		char p[96];

		if (!json_is_object(h))
			return bad(c, "%s[%zu]: expected an object, got %s", path, i, type_name(h));
		snprintf(p, sizeof(p), "%s[%zu].name", path, i);
		if ((r = get_string(c, h, "name", p, 253, &name)) < 0)
			return r;
		if (!name)
			return bad(c, "%s: missing", p);
		(*ret)[*ret_n] = strdup(name);
		if (!(*ret)[*ret_n])
			return -ENOMEM;
		(*ret_n)++;
	}
	return 0;
}

static int decode_slice_endpoint(struct dctx *c, json_t *e, size_t i, uint8_t family,
				 struct eps_endpoint *ep)
{
	const char *node = NULL, *zone = NULL;
	json_t *addrs, *cond, *hints;
	int ready, serving, terminating;
	char path[96];
	int r;

	if (!json_is_object(e))
		return bad(c, "endpoints[%zu]: expected an object, got %s", i, type_name(e));
	snprintf(path, sizeof(path), "endpoints[%zu].addresses", i);
	if ((r = get_array(c, e, "addresses", path, 100, &addrs)) < 0)
		return r;
	if (!addrs || !json_array_size(addrs))
		return bad(c, "%s: empty", path);
	snprintf(path, sizeof(path), "endpoints[%zu].addresses[0]", i);
	if ((r = parse_ip(c, json_array_get(addrs, 0), path, &ep->addr)) < 0)
		return r;
	if (ep->addr.family != family)
		return bad(c, "%s: %s is not an address of the slice's family", path,
			   json_string_value(json_array_get(addrs, 0)));

	snprintf(path, sizeof(path), "endpoints[%zu].conditions", i);
	if ((r = get_object(c, e, "conditions", path, &cond)) < 0)
		return r;
	ready = serving = terminating = -1;
	if (cond) {
		snprintf(path, sizeof(path), "endpoints[%zu].conditions.ready", i);
		if ((r = get_bool(c, cond, "ready", path, &ready)) < 0)
			return r;
		snprintf(path, sizeof(path), "endpoints[%zu].conditions.serving", i);
		if ((r = get_bool(c, cond, "serving", path, &serving)) < 0)
			return r;
		snprintf(path, sizeof(path), "endpoints[%zu].conditions.terminating", i);
		if ((r = get_bool(c, cond, "terminating", path, &terminating)) < 0)
			return r;
	}
	/* An absent ready means ready; an absent serving means the value of
	 * ready; an absent terminating means not terminating. */
	if (ready < 0)
		ready = 1;
	if (serving < 0)
		serving = ready;
	if (terminating < 0)
		terminating = 0;
	ep->conditions = (uint8_t)((ready ? EP_READY : 0) | (serving ? EP_SERVING : 0) |
				   (terminating ? EP_TERMINATING : 0));

	snprintf(path, sizeof(path), "endpoints[%zu].nodeName", i);
	if ((r = get_string(c, e, "nodeName", path, 253, &node)) < 0)
		return r;
	snprintf(path, sizeof(path), "endpoints[%zu].zone", i);
	if ((r = get_string(c, e, "zone", path, 253, &zone)) < 0)
		return r;
	if ((node && *node && !(ep->node_name = strdup(node))) ||
	    (zone && *zone && !(ep->zone = strdup(zone))))
		return -ENOMEM;

	snprintf(path, sizeof(path), "endpoints[%zu].hints", i);
	if ((r = get_object(c, e, "hints", path, &hints)) < 0)
		return r;
	if (hints) {
		snprintf(path, sizeof(path), "endpoints[%zu].hints.forZones", i);
		if ((r = decode_hint_names(c, hints, "forZones", path, &ep->hint_zones,
					   &ep->n_hint_zones)) < 0)
			return r;
		snprintf(path, sizeof(path), "endpoints[%zu].hints.forNodes", i);
		if ((r = decode_hint_names(c, hints, "forNodes", path, &ep->hint_nodes,
					   &ep->n_hint_nodes)) < 0)
			return r;
	}
	return 0;
}

/* RFC 3339 date-time as the API server writes it ("2026-01-02T03:04:05Z",
 * optionally with a fraction of a second or a numeric offset). */
int decode_rfc3339(const char *s, double *ret)
{
	int Y, M, D, h, m, sec, n = 0;
	double frac = 0;
	struct tm tm = {0};
	time_t t;

	if (!s ||
	    sscanf(s, "%4d-%2d-%2d%*1[Tt ]%2d:%2d:%2d%n", &Y, &M, &D, &h, &m, &sec, &n) != 6 ||
	    n != 19)
		return -EINVAL;
	if (M < 1 || M > 12 || D < 1 || D > 31 || h > 23 || m > 59 || sec > 60 || Y < 1970)
		return -EINVAL;
	s += n;
	if (*s == '.') {
		double scale = 0.1;

		if (!(s[1] >= '0' && s[1] <= '9'))
			return -EINVAL;
		for (s++; *s >= '0' && *s <= '9'; s++, scale /= 10)
			frac += (*s - '0') * scale;
	}
	tm.tm_year = Y - 1900;
	tm.tm_mon = M - 1;
	tm.tm_mday = D;
	tm.tm_hour = h;
	tm.tm_min = m;
	tm.tm_sec = sec;
	t = timegm(&tm);
	if (*s == 'Z' || *s == 'z') {
		s++;
	} else if (*s == '+' || *s == '-') {
		int oh, om, k = 0;

		if (sscanf(s + 1, "%2d:%2d%n", &oh, &om, &k) != 2 || k != 5 || oh > 23 || om > 59)
			return -EINVAL;
		t += (*s == '+' ? -1 : 1) * (time_t)(oh * 3600 + om * 60);
		s += 6;
	} else {
		return -EINVAL;
	}
	if (*s)
		return -EINVAL;
	*ret = (double)t + frac;
	return 0;
}

/* The time of the change that made the endpoints controller write this
 * object, for kubeproxy_network_programming_duration_seconds.  A value that
 * does not parse only loses the measurement, never the object. */
static double trigger_time(json_t *obj)
{
	json_t *ann = json_object_get(json_object_get(obj, "metadata"), "annotations");
	double t = 0;

	if (decode_rfc3339(json_string_value(json_object_get(
				   ann, "endpoints.kubernetes.io/last-change-trigger-time")),
			   &t) < 0)
		return 0;
	return t;
}

static int decode_slice_fields(struct dctx *c, json_t *obj, struct endpoint_slice *s, bool *skip)
{
	const char *at = NULL, *svc_name = NULL, *ns, *name;
	json_t *meta, *labels, *ports, *eps, *v;
	size_t i;
	int r;

	meta = json_object_get(obj, "metadata");
	name = json_string_value(json_object_get(meta, "name"));
	ns = json_string_value(json_object_get(meta, "namespace"));
	if (!ns || !*ns)
		return bad(c, "metadata.namespace: missing");
	if ((r = get_string(c, obj, "addressType", "addressType", 16, &at)) < 0)
		return r;
	if (!at)
		return bad(c, "addressType: missing");
	if (!strcmp(at, "IPv4"))
		s->family = AF_INET;
	else if (!strcmp(at, "IPv6"))
		s->family = AF_INET6;
	else if (!strcmp(at, "FQDN")) {
		*skip = true;
		return 0;
	} else
		return bad(c, "addressType: unknown type \"%.16s\"", at);
	if ((r = get_labels(c, obj, &labels)) < 0)
		return r;
	if (labels &&
	    (r = get_string(c, labels, "kubernetes.io/service-name",
			    "metadata.labels[kubernetes.io/service-name]", 63, &svc_name)) < 0)
		return r;
	if (!svc_name || !*svc_name) {
		/* Not managed for a Service: nothing for a proxy to do. */
		*skip = true;
		return 0;
	}
	if (!is_dns_label(svc_name))
		return bad(c,
			   "metadata.labels[kubernetes.io/service-name]: \"%.64s\" is not a "
			   "valid Service name",
			   svc_name);
	s->ns = strdup(ns);
	s->name = strdup(name);
	s->service_name = strdup(svc_name);
	if (!s->ns || !s->name || !s->service_name)
		return -ENOMEM;

	if ((r = get_array(c, obj, "ports", "ports", MAX_SLICE_PORTS, &ports)) < 0)
		return r;
	if (ports && json_array_size(ports)) {
		s->ports = calloc(json_array_size(ports), sizeof(*s->ports));
		if (!s->ports)
			return -ENOMEM;
		json_array_foreach(ports, i, v)
		{
			struct eps_port *p = &s->ports[s->n_ports];
			const char *pname = NULL, *proto = NULL;
			long long port = 0;
			bool present;
			char path[64];

			if (!json_is_object(v))
				return bad(c, "ports[%zu]: expected an object, got %s", i,
					   type_name(v));
			snprintf(path, sizeof(path), "ports[%zu].name", i);
			if ((r = get_string(c, v, "name", path, 63, &pname)) < 0)
				return r;
			if (pname && *pname && !is_port_name(pname))
				return bad(c, "%s: \"%s\" is not a valid port name", path, pname);
			snprintf(path, sizeof(path), "ports[%zu].protocol", i);
			if ((r = get_string(c, v, "protocol", path, 16, &proto)) < 0 ||
			    (r = parse_protocol(c, proto, path, &p->protocol)) < 0)
				return r;
			snprintf(path, sizeof(path), "ports[%zu].port", i);
			if ((r = get_int(c, v, "port", path, 1, 65535, &port, &present)) < 0)
				return r;
			p->port = present ? (uint16_t)port : 0;
			p->name = strdup(pname ? pname : "");
			if (!p->name)
				return -ENOMEM;
			s->n_ports++;
		}
	}

	if ((r = get_array(c, obj, "endpoints", "endpoints", MAX_SLICE_ENDPOINTS, &eps)) < 0)
		return r;
	if (eps && json_array_size(eps)) {
		s->endpoints = calloc(json_array_size(eps), sizeof(*s->endpoints));
		if (!s->endpoints)
			return -ENOMEM;
		json_array_foreach(eps, i, v)
		{
			/* Count first, so a partly decoded endpoint is freed too. */
			s->n_endpoints++;
			if ((r = decode_slice_endpoint(c, v, i, s->family, &s->endpoints[i])) < 0)
				return r;
		}
	}
	return 0;
}

int decode_endpoint_slice(json_t *obj, struct endpoint_slice **ret_obj, char *err, size_t errlen)
{
	struct dctx c = {err, errlen};
	char key[OBJECT_KEY_MAX];
	struct endpoint_slice *s;
	bool skip = false;
	int r;

	*ret_obj = NULL;
	if ((r = decode_object_key(obj, key, sizeof(key), err, errlen)) < 0)
		return r;
	s = calloc(1, sizeof(*s));
	if (!s)
		return -ENOMEM;
	r = decode_slice_fields(&c, obj, s, &skip);
	if (r < 0 || skip) {
		endpoint_slice_free(s);
		if (r == -ENOMEM)
			bad(&c, "out of memory");
		return r;
	}
	s->trigger_time = trigger_time(obj);
	*ret_obj = s;
	return 0;
}

int decode_node(json_t *obj, struct node_info **ret_obj, char *err, size_t errlen)
{
	struct dctx c = {err, errlen};
	char key[OBJECT_KEY_MAX];
	json_t *meta, *labels, *spec, *taints, *status, *addrs, *v;
	const char *zone = NULL;
	struct node_info *n;
	size_t i;
	int r;

	*ret_obj = NULL;
	if ((r = decode_object_key(obj, key, sizeof(key), err, errlen)) < 0)
		return r;
	n = calloc(1, sizeof(*n));
	if (!n)
		return -ENOMEM;
	meta = json_object_get(obj, "metadata");
	n->name = strdup(json_string_value(json_object_get(meta, "name")));
	if (!n->name)
		goto nomem;
	n->deleting = json_is_string(json_object_get(meta, "deletionTimestamp"));
	if ((r = get_labels(&c, obj, &labels)) < 0)
		goto fail;
	if (labels) {
		if ((r = get_string(&c, labels, "topology.kubernetes.io/zone",
				    "metadata.labels[topology.kubernetes.io/zone]", 253, &zone)) <
		    0)
			goto fail;
		if (!zone &&
		    (r = get_string(&c, labels, "failure-domain.beta.kubernetes.io/zone",
				    "metadata.labels[failure-domain.beta.kubernetes.io/zone]", 253,
				    &zone)) < 0)
			goto fail;
		if (zone && *zone && !(n->zone = strdup(zone)))
			goto nomem;
	}
	if ((r = get_object(&c, obj, "spec", "spec", &spec)) < 0)
		goto fail;
	if (spec) {
		json_t *cidrs;
		const char *one = NULL;

		if ((r = get_array(&c, spec, "taints", "spec.taints", 1000, &taints)) < 0 ||
		    (r = get_array(&c, spec, "podCIDRs", "spec.podCIDRs", 2, &cidrs)) < 0 ||
		    (r = get_string(&c, spec, "podCIDR", "spec.podCIDR", 64, &one)) < 0)
			goto fail;
		json_array_foreach(cidrs, i, v)
		{
			if (!json_is_string(v) || cidr_parse(json_string_value(v), true,
							     &n->pod_cidrs[n->n_pod_cidrs]) < 0) {
				r = bad(&c, "spec.podCIDRs[%zu]: not a CIDR", i);
				goto fail;
			}
			n->n_pod_cidrs++;
		}
		if (!n->n_pod_cidrs && one) {
			if (cidr_parse(one, true, &n->pod_cidrs[0]) < 0) {
				r = bad(&c, "spec.podCIDR: \"%.64s\" is not a CIDR", one);
				goto fail;
			}
			n->n_pod_cidrs = 1;
		}
		json_array_foreach(taints, i, v)
		{
			const char *k = json_string_value(json_object_get(v, "key"));

			if (k && !strcmp(k, "ToBeDeletedByClusterAutoscaler"))
				n->to_be_deleted = true;
		}
	}
	if ((r = get_object(&c, obj, "status", "status", &status)) < 0)
		goto fail;
	if (status) {
		if ((r = get_array(&c, status, "addresses", "status.addresses", MAX_IPS, &addrs)) <
		    0)
			goto fail;
		if (addrs && json_array_size(addrs)) {
			n->addrs = calloc(json_array_size(addrs), sizeof(*n->addrs));
			if (!n->addrs)
				goto nomem;
			json_array_foreach(addrs, i, v)
			{
				const char *type = json_string_value(json_object_get(v, "type"));
				const char *a = json_string_value(json_object_get(v, "address"));

				if (!type || !a ||
				    (strcmp(type, "InternalIP") && strcmp(type, "ExternalIP")))
					continue;
				if (ipaddr_parse(a, &n->addrs[n->n_addrs]) == 0)
					n->n_addrs++;
			}
		}
	}
	*ret_obj = n;
	return 0;
nomem:
	r = -ENOMEM;
	bad(&c, "out of memory");
fail:
	node_info_free(n);
	return r;
}

int decode_service_cidr(json_t *obj, struct service_cidr **ret_obj, char *err, size_t errlen)
{
	struct dctx c = {err, errlen};
	char key[OBJECT_KEY_MAX];
	struct service_cidr *sc;
	json_t *spec = NULL, *cidrs = NULL, *v;
	size_t i;
	int r;

	*ret_obj = NULL;
	if ((r = decode_object_key(obj, key, sizeof(key), err, errlen)) < 0)
		return r;
	sc = calloc(1, sizeof(*sc));
	if (!sc || !(sc->name = strdup(key))) {
		free(sc);
		return -ENOMEM;
	}
	if ((r = get_object(&c, obj, "spec", "spec", &spec)) < 0 ||
	    (r = get_array(&c, spec, "cidrs", "spec.cidrs", 2, &cidrs)) < 0)
		goto fail;
	json_array_foreach(cidrs, i, v)
	{
		if (!json_is_string(v)) {
			r = bad(&c, "spec.cidrs[%zu]: expected a string, got %s", i, type_name(v));
			goto fail;
		}
		if (cidr_parse(json_string_value(v), false, &sc->cidrs[sc->n_cidrs]) < 0) {
			r = bad(&c, "spec.cidrs[%zu]: \"%.64s\" is not a CIDR", i,
				json_string_value(v));
			goto fail;
		}
		sc->n_cidrs++;
	}
	*ret_obj = sc;
	return 0;
fail:
	service_cidr_free(sc);
	return r;
}

/* One family's addresses of one subset as a slice. */
static int endpoints_subset_slice(struct dctx *c, const char *ns, const char *name, size_t si,
				  json_t *subset, uint8_t family, struct endpoint_slice **ret)
{
	static const char *const lists[2] = {"addresses", "notReadyAddresses"};
	struct endpoint_slice *sl = calloc(1, sizeof(*sl));
	json_t *ports, *v;
	size_t total = 0, i;
	char buf[300];
	int r;

	*ret = NULL;
	if (!sl)
		return -ENOMEM;
	snprintf(buf, sizeof(buf), "%s.%zu.%s", name, si, family == AF_INET ? "v4" : "v6");
	sl->ns = strdup(ns);
	sl->name = strdup(buf);
	sl->service_name = strdup(name);
	sl->family = family;
	if (!sl->ns || !sl->name || !sl->service_name) {
		endpoint_slice_free(sl);
		return -ENOMEM;
	}
	snprintf(buf, sizeof(buf), "subsets[%zu].ports", si);
	if ((r = get_array(c, subset, "ports", buf, MAX_SLICE_PORTS, &ports)) < 0)
		goto fail;
	sl->ports = calloc(json_array_size(ports) + 1, sizeof(*sl->ports));
	if (!sl->ports)
		goto nomem;
	json_array_foreach(ports, i, v)
	{
		struct eps_port *p = &sl->ports[sl->n_ports];
		const char *pname = NULL, *proto = NULL;
		long long port = 0;
		bool present;

		snprintf(buf, sizeof(buf), "subsets[%zu].ports[%zu]", si, i);
		if (!json_is_object(v)) {
			r = bad(c, "%s: expected an object, got %s", buf, type_name(v));
			goto fail;
		}
		if ((r = get_string(c, v, "name", buf, 63, &pname)) < 0 ||
		    (r = get_string(c, v, "protocol", buf, 16, &proto)) < 0 ||
		    (r = parse_protocol(c, proto, buf, &p->protocol)) < 0 ||
		    (r = get_int(c, v, "port", buf, 1, 65535, &port, &present)) < 0)
			goto fail;
		if (!present) {
			r = bad(c, "%s.port: missing", buf);
			goto fail;
		}
		p->port = (uint16_t)port;
		if (!(p->name = strdup(pname ? pname : "")))
			goto nomem;
		sl->n_ports++;
	}
	for (int l = 0; l < 2; l++) {
		json_t *arr;

		snprintf(buf, sizeof(buf), "subsets[%zu].%s", si, lists[l]);
		if ((r = get_array(c, subset, lists[l], buf, MAX_SLICE_ENDPOINTS, &arr)) < 0)
			goto fail;
		total += json_array_size(arr);
	}
	sl->endpoints = calloc(total + 1, sizeof(*sl->endpoints));
	if (!sl->endpoints)
		goto nomem;
	for (int l = 0; l < 2; l++) {
		json_t *arr = json_object_get(subset, lists[l]);

		json_array_foreach(arr, i, v)
		{
			struct eps_endpoint *ep = &sl->endpoints[sl->n_endpoints];
			const char *ip = NULL, *node = NULL;
			struct ipaddr a;

			snprintf(buf, sizeof(buf), "subsets[%zu].%s[%zu]", si, lists[l], i);
			if (!json_is_object(v)) {
				r = bad(c, "%s: expected an object, got %s", buf, type_name(v));
				goto fail;
			}
			if ((r = get_string(c, v, "ip", buf, 64, &ip)) < 0 ||
			    (r = get_string(c, v, "nodeName", buf, 253, &node)) < 0)
				goto fail;
			if (!ip || ipaddr_parse(ip, &a) < 0) {
				r = bad(c, "%s.ip: \"%.64s\" is not an IP address", buf,
					ip ? ip : "");
				goto fail;
			}
			if (a.family != family)
				continue;
			ep->addr = a;
			ep->conditions = l == 0 ? (EP_READY | EP_SERVING) : 0;
			if (node && *node && !(ep->node_name = strdup(node)))
				goto nomem;
			sl->n_endpoints++;
		}
	}
	if (!sl->n_endpoints) {
		endpoint_slice_free(sl);
		return 0;
	}
	*ret = sl;
	return 0;
nomem:
	r = -ENOMEM;
fail:
	endpoint_slice_free(sl);
	return r;
}

int decode_endpoints(json_t *obj, struct endpoints_obj **ret_obj, char *err, size_t errlen)
{
	struct dctx c = {err, errlen};
	char key[OBJECT_KEY_MAX];
	struct endpoints_obj *e;
	const char *ns, *name;
	json_t *subsets, *sub;
	size_t i;
	int r;

	*ret_obj = NULL;
	if ((r = decode_object_key(obj, key, sizeof(key), err, errlen)) < 0)
		return r;
	name = json_string_value(json_object_get(json_object_get(obj, "metadata"), "name"));
	ns = json_string_value(json_object_get(json_object_get(obj, "metadata"), "namespace"));
	if (!ns || !*ns)
		return bad(&c, "metadata.namespace: missing");
	if (!is_dns_label(name))
		return bad(&c, "metadata.name: \"%.64s\" is not a valid Service name", name);
	if ((r = get_array(&c, obj, "subsets", "subsets", 1000, &subsets)) < 0)
		return r;
	e = calloc(1, sizeof(*e));
	if (!e)
		return -ENOMEM;
	e->slices = calloc(2 * json_array_size(subsets) + 1, sizeof(*e->slices));
	if (!e->slices) {
		free(e);
		return -ENOMEM;
	}
	json_array_foreach(subsets, i, sub)
	{
		if (!json_is_object(sub)) {
			r = bad(&c, "subsets[%zu]: expected an object, got %s", i, type_name(sub));
			goto fail;
		}
		for (int f = 0; f < 2; f++) {
			struct endpoint_slice *sl;

			r = endpoints_subset_slice(&c, ns, name, i, sub, f ? AF_INET6 : AF_INET,
						   &sl);
			if (r < 0)
				goto fail;
			if (sl) {
				sl->trigger_time = trigger_time(obj);
				e->slices[e->n_slices++] = sl;
			}
		}
	}
	*ret_obj = e;
	return 0;
fail:
	if (r == -ENOMEM)
		bad(&c, "out of memory");
	endpoints_obj_free(e);
	return r;
}
