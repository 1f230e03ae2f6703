/* Health-check node port servers; see servicehc.h.
 *
 * One instance per Service, keyed "namespace/name", holding its port, its
 * local endpoint count and its listeners (one for every address, or one per
 * configured node address).  Changes are applied in two steps, first
 * closing what is no longer wanted and then opening what is missing, so
 * that a port one Service gives up in a sync can be taken by another in the
 * same sync. */
#include "health/servicehc.h"

#include <errno.h>
#include <ifaddrs.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "health/healthz.h"
#include "health/http.h"
#include "model/serviceport.h"
#include "model/tracker.h"
#include "util/hashmap.h"
#include "util/log.h"
#include "util/loop.h"

struct hc_instance {
	struct servicehc *owner;
	char *ns;
	char *name;
	uint16_t port;
	uint32_t count;
	struct http_server **srvs; /* NULL entries until listening */
	size_t n_srvs;
	bool listening;
	bool failure_logged; /* the current port's bind failure was reported */
	bool seen;	     /* in the set being applied */
};

struct servicehc {
	struct loop *loop;
	struct healthz *hz;
	struct ipaddr *addrs;
	size_t n_addrs;
	struct hashmap *by_key;	  /* "ns/name" -> struct hc_instance */
	size_t not_listening;	  /* instances waiting for their port */
	struct loop_timer *retry; /* armed while not_listening > 0 */
};

static void on_retry(struct loop *loop, struct loop_timer *t, void *data);

int servicehc_new(struct loop *loop, struct healthz *hz, const struct ipaddr *addrs, size_t n_addrs,
		  struct servicehc **ret)
{
	struct servicehc *s = calloc(1, sizeof(*s));

	if (!s)
		return -ENOMEM;
	s->loop = loop;
	s->hz = hz;
	s->by_key = hashmap_new();
	s->retry = loop_timer_new(loop, on_retry, s);
	if (n_addrs) {
		s->addrs = calloc(n_addrs, sizeof(*s->addrs));
		if (s->addrs) {
			memcpy(s->addrs, addrs, n_addrs * sizeof(*addrs));
			s->n_addrs = n_addrs;
		}
	}
	if (!s->by_key || !s->retry || (n_addrs && !s->addrs)) {
		servicehc_free(s);
		return -ENOMEM;
	}
	*ret = s;
	return 0;
}

/* --- one Service's servers --- */

static void hc_handler(void *data, const struct http_request *req, struct http_response *resp)
{
	struct hc_instance *inst = data;
	bool healthy = healthz_healthy(inst->owner->hz, loop_now_ns());
	char weight[16];

	(void)req;
	snprintf(weight, sizeof(weight), "%u", inst->count);
	http_response_content_type(resp, "application/json");
	http_response_header(resp, "X-Content-Type-Options", "nosniff");
	http_response_header(resp, "X-Load-Balancing-Endpoint-Weight", weight);
	resp->status = inst->count && healthy ? 200 : 503;
	/* kube-proxy's layout, tabs and all, for anyone who matches on it.
	 * Namespaces and names are DNS labels, so they need no escaping. */
	http_response_printf(
		resp,
		"{\n\t\"service\": {\n\t\t\"namespace\": \"%s\",\n\t\t\"name\": \"%s\"\n"
		"\t},\n\t\"localEndpoints\": %u,\n\t\"serviceProxyHealthy\": %s\n}",
		inst->ns, inst->name, inst->count, healthy ? "true" : "false");
}

static void close_servers(struct hc_instance *inst)
{
	for (size_t i = 0; i < inst->n_srvs; i++) {
		http_server_free(inst->srvs[i]);
		inst->srvs[i] = NULL;
	}
	if (inst->listening) {
		inst->listening = false;
		inst->owner->not_listening++;
	}
}

/* Opens every listener of the instance, or none: a half-open set would
 * answer on some node addresses and not others. */
static void open_servers(struct hc_instance *inst)
{
	struct servicehc *s = inst->owner;
	char bind[IPADDR_STRLEN + 16], err[256], ip[IPADDR_STRLEN];
	int r = 0;

	if (inst->listening)
		return;
	if (!inst->srvs) {
		size_t n = s->n_addrs ? s->n_addrs : 1;

		inst->srvs = calloc(n, sizeof(*inst->srvs));
		if (!inst->srvs)
			return; /* tried again with the next sync or retry */
		inst->n_srvs = n;
	}
	for (size_t i = 0; i < inst->n_srvs && r == 0; i++) {
		if (!s->n_addrs)
			snprintf(bind, sizeof(bind), ":%u", inst->port);
		else if (s->addrs[i].family == AF_INET6)
			snprintf(bind, sizeof(bind), "[%s]:%u", ipaddr_format(&s->addrs[i], ip),
				 inst->port);
		else
			snprintf(bind, sizeof(bind), "%s:%u", ipaddr_format(&s->addrs[i], ip),
				 inst->port);
		r = http_server_new(s->loop, bind, hc_handler, inst, &inst->srvs[i], err,
				    sizeof(err));
	}
	if (r < 0) {
		for (size_t i = 0; i < inst->n_srvs; i++) {
			http_server_free(inst->srvs[i]);
			inst->srvs[i] = NULL;
		}
		if (!inst->failure_logged)
			log_error("health check of service %s/%s: %s; will retry", inst->ns,
				  inst->name, err);
		inst->failure_logged = true;
		return;
	}
	if (inst->failure_logged)
		log_info("health check of service %s/%s: now listening on port %u", inst->ns,
			 inst->name, inst->port);
	else
		log_v(2, "health check of service %s/%s: listening on port %u", inst->ns,
		      inst->name, inst->port);
	inst->failure_logged = false;
	inst->listening = true;
	s->not_listening--;
}

static void instance_free(struct hc_instance *inst)
{
	if (!inst)
		return;
	close_servers(inst);
	inst->owner->not_listening--;
	free(inst->srvs);
	free(inst->ns);
	free(inst->name);
	free(inst);
}

static void free_value(void *v)
{
	instance_free(v);
}

void servicehc_free(struct servicehc *s)
{
	if (!s)
		return;
	hashmap_free(s->by_key, free_value);
	loop_timer_free(s->retry);
	free(s->addrs);
	free(s);
}

/* Records what the Service wants; opening the port is left to
 * open_pending().  Returns 0 or -ENOMEM. */
static int upsert(struct servicehc *s, const char *ns, const char *name, uint16_t port,
		  uint32_t count)
{
	char key[OBJECT_KEY_MAX + 2];
	struct hc_instance *inst;

	snprintf(key, sizeof(key), "%s/%s", ns, name);
	inst = hashmap_get_str(s->by_key, key);
	if (inst) {
		inst->seen = true;
		inst->count = count;
		if (inst->port != port) {
			log_v(2, "health check of service %s/%s: moving from port %u to %u", ns,
			      name, inst->port, port);
			close_servers(inst);
			inst->port = port;
			inst->failure_logged = false;
		}
		return 0;
	}
	inst = calloc(1, sizeof(*inst));
	if (!inst)
		return -ENOMEM;
	inst->owner = s;
	inst->ns = strdup(ns);
	inst->name = strdup(name);
	inst->port = port;
	inst->count = count;
	inst->seen = true;
	s->not_listening++;
	if (!inst->ns || !inst->name || hashmap_put_str(s->by_key, key, inst, NULL) < 0) {
		instance_free(inst);
		return -ENOMEM;
	}
	return 0;
}

/* key may point into the table itself (while iterating), so it is not used
 * after the removal. */
static void remove_key(struct servicehc *s, const char *key)
{
	struct hc_instance *inst = hashmap_get_str(s->by_key, key);

	if (!inst)
		return;
	log_v(2, "health check of service %s/%s: closing port %u", inst->ns, inst->name,
	      inst->port);
	hashmap_remove_str(s->by_key, key);
	instance_free(inst);
}

static void open_pending(struct servicehc *s)
{
	struct hashmap_iter it = {0};
	void *v;

	if (!s->not_listening) {
		loop_timer_disarm(s->retry);
		return;
	}
	while (hashmap_next(s->by_key, &it, NULL, NULL, &v))
		open_servers(v);
	if (s->not_listening)
		loop_timer_arm(s->retry, SERVICEHC_RETRY_MS);
	else
		loop_timer_disarm(s->retry);
}

static void on_retry(struct loop *loop, struct loop_timer *t, void *data)
{
	(void)loop;
	(void)t;
	open_pending(data);
}

static void clear_seen(struct servicehc *s)
{
	struct hashmap_iter it = {0};
	void *v;

	while (hashmap_next(s->by_key, &it, NULL, NULL, &v))
		((struct hc_instance *)v)->seen = false;
}

static void remove_unseen(struct servicehc *s)
{
	struct hashmap_iter it = {0};
	const void *key;
	void *v;

	while (hashmap_next(s->by_key, &it, &key, NULL, &v)) {
		if (!((struct hc_instance *)v)->seen)
			remove_key(s, key);
	}
}

int servicehc_sync(struct servicehc *s, const struct servicehc_service *v, size_t n)
{
	int r = 0;

	clear_seen(s);
	for (size_t i = 0; i < n; i++) {
		if (!v[i].port)
			continue;
		if (upsert(s, v[i].ns, v[i].name, v[i].port, v[i].local_endpoints) < 0)
			r = -ENOMEM;
	}
	/* After a failed insertion the set is incomplete: keep the old
	 * servers rather than close ones that are still wanted. */
	if (r == 0)
		remove_unseen(s);
	open_pending(s);
	return r;
}

int servicehc_set_addresses(struct servicehc *s, const struct ipaddr *addrs, size_t n_addrs)
{
	struct hashmap_iter it = {0};
	struct ipaddr *copy = NULL;
	void *v;

	if (n_addrs == s->n_addrs &&
	    (!n_addrs || memcmp(addrs, s->addrs, n_addrs * sizeof(*addrs)) == 0))
		return 0;
	if (n_addrs) {
		copy = calloc(n_addrs, sizeof(*copy));
		if (!copy)
			return -ENOMEM;
		memcpy(copy, addrs, n_addrs * sizeof(*addrs));
	}
	free(s->addrs);
	s->addrs = copy;
	s->n_addrs = n_addrs;
	/* The listener arrays are sized for the old set: drop them with the
	 * servers; open_servers() makes new ones. */
	while (hashmap_next(s->by_key, &it, NULL, NULL, &v)) {
		struct hc_instance *inst = v;

		close_servers(inst);
		free(inst->srvs);
		inst->srvs = NULL;
		inst->n_srvs = 0;
	}
	open_pending(s);
	return 0;
}

int servicehc_local_addresses(const struct cidr *cidrs, size_t n_cidrs, struct ipaddr *out,
			      size_t max)
{
	struct ifaddrs *ifs, *ifa;
	size_t n = 0;

	if (getifaddrs(&ifs) < 0)
		return -errno;
	for (ifa = ifs; ifa; ifa = ifa->ifa_next) {
		struct ipaddr a = {0};
		bool dup = false;

		if (!ifa->ifa_addr)
			continue;
		if (ifa->ifa_addr->sa_family == AF_INET) {
			a.family = AF_INET;
			memcpy(a.bytes, &((struct sockaddr_in *)ifa->ifa_addr)->sin_addr, 4);
		} else if (ifa->ifa_addr->sa_family == AF_INET6) {
			const struct in6_addr *in6 =
				&((struct sockaddr_in6 *)ifa->ifa_addr)->sin6_addr;

			if (IN6_IS_ADDR_LINKLOCAL(in6))
				continue;
			a.family = AF_INET6;
			memcpy(a.bytes, in6, 16);
		} else {
			continue;
		}
		for (size_t i = 0; i < n && !dup; i++)
			dup = ipaddr_equal(&out[i], &a);
		for (size_t i = 0; i < n_cidrs && !dup && n < max; i++) {
			if (cidr_contains(&cidrs[i], &a)) {
				out[n++] = a;
				break;
			}
		}
	}
	freeifaddrs(ifs);
	return (int)n;
}

static int cmp_addr(const void *a, const void *b)
{
	return ipaddr_cmp(a, b);
}

void servicehc_from_ports(const struct svc_ports *ports, uint16_t *ret_port,
			  uint32_t *ret_local_endpoints)
{
	struct ipaddr stack[64], *addrs = stack;
	uint32_t per_family[2] = {0, 0};
	size_t total = 0, n = 0;
	uint16_t port = 0;

	*ret_port = 0;
	*ret_local_endpoints = 0;
	if (!ports)
		return;
	for (size_t i = 0; i < ports->n; i++) {
		if (ports->v[i].hc_node_port && !port)
			port = ports->v[i].hc_node_port;
		total += ports->v[i].n_eps;
	}
	if (!port)
		return;
	*ret_port = port;
	if (total > sizeof(stack) / sizeof(stack[0])) {
		addrs = malloc(total * sizeof(*addrs));
		if (!addrs) {
			/* Without memory to de-duplicate, the largest port's
			 * count is a lower bound that keeps the answer right
			 * (zero or not). */
			for (size_t i = 0; i < ports->n; i++) {
				uint32_t c = (uint32_t)svc_port_local_ready(&ports->v[i]);

				if (c > *ret_local_endpoints)
					*ret_local_endpoints = c;
			}
			return;
		}
	}
	for (size_t i = 0; i < ports->n; i++) {
		const struct svc_port *sp = &ports->v[i];

		for (size_t j = 0; j < sp->n_eps; j++) {
			if ((sp->eps[j].flags & (EP_READY | EP_LOCAL)) == (EP_READY | EP_LOCAL))
				addrs[n++] = sp->eps[j].addr;
		}
	}
	qsort(addrs, n, sizeof(*addrs), cmp_addr);
	for (size_t i = 0; i < n; i++) {
		if (i == 0 || !ipaddr_equal(&addrs[i], &addrs[i - 1]))
			per_family[addrs[i].family == AF_INET6]++;
	}
	*ret_local_endpoints = per_family[0] > per_family[1] ? per_family[0] : per_family[1];
	if (addrs != stack)
		free(addrs);
}

int servicehc_apply(struct servicehc *s, const struct tracker_changes *ch)
{
	int r = 0;

	if (ch->full)
		clear_seen(s);
	for (size_t i = 0; i < ch->n; i++) {
		const struct tracker_change *c = &ch->v[i];
		const struct svc_port *sp = c->new && c->new->n ? &c->new->v[0] : NULL;
		uint32_t count;
		uint16_t port;

		servicehc_from_ports(c->new, &port, &count);
		if (port && sp) {
			if (upsert(s, sp->ns, sp->name, port, count) < 0)
				r = -ENOMEM;
		} else if (!ch->full) {
			remove_key(s, c->key);
		}
	}
	if (ch->full && r == 0)
		remove_unseen(s);
	open_pending(s);
	return r;
}

size_t servicehc_size(const struct servicehc *s)
{
	return hashmap_size(s->by_key);
}

bool servicehc_listening(const struct servicehc *s, const char *ns, const char *name)
{
	char key[OBJECT_KEY_MAX + 2];
	const struct hc_instance *inst;

	snprintf(key, sizeof(key), "%s/%s", ns, name);
	inst = hashmap_get_str(s->by_key, key);
	return inst && inst->listening;
}
