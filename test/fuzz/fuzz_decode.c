/* libFuzzer target for the API object decoders and the model behind them.
 *
 * The input is one JSON document, as a list response or a watch event
 * carries it.  The document itself, its "object" member (a watch event) and
 * each member of its "items" array (a list) go through decode_object_key()
 * and every object decoder (Service, EndpointSlice, core/v1 Endpoints,
 * ServiceCIDR, Node).  Whatever decodes is
 * handed to a change tracker, which then computes and publishes the
 * dataplane's view (partial and full syncs, then removals), so the model's
 * merging of Services, slices and the Node runs on hostile objects too.
 * Decoders must never crash, leak or leave a half-built object behind; an
 * accepted object must satisfy the invariants the model relies on. */
#include <errno.h>
#include <stdbool.h>
#include <jansson.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kube/decode.h"
#include "model/tracker.h"

#define MAX_KEYS 64

/* Keys handed to the tracker, so that they can be removed again. */
struct fed {
	char svc[MAX_KEYS][OBJECT_KEY_MAX];
	size_t n_svc;
	char slice[MAX_KEYS][OBJECT_KEY_MAX];
	size_t n_slice;
	bool overflow; /* more objects than keys recorded */
};

/* A broken expectation is a crash, with the expectation named. */
#define check(cond)                                                                               \
	do {                                                                                      \
		if (!(cond)) {                                                                    \
			fprintf(stderr, "check failed: %s (%s:%d)\n", #cond, __FILE__, __LINE__); \
			__builtin_trap();                                                         \
		}                                                                                 \
	} while (0)

static void check_service(const struct service *s)
{
	check(s->ns && s->name && *s->ns && *s->name);
	check(s->n_cluster_ips <= 2);
	for (size_t i = 0; i < s->n_ports; i++) {
		check(s->ports[i].name != NULL);
		check(s->ports[i].port != 0);
	}
	for (size_t i = 0; i < s->n_cluster_ips; i++)
		check(s->cluster_ips[i].family == AF_INET || s->cluster_ips[i].family == AF_INET6);
}

static void check_slice(const struct endpoint_slice *s)
{
	check(s->ns && s->name && s->service_name);
	check(s->family == AF_INET || s->family == AF_INET6);
	for (size_t i = 0; i < s->n_endpoints; i++)
		check(s->endpoints[i].addr.family == s->family);
	for (size_t i = 0; i < s->n_ports; i++)
		check(s->ports[i].name != NULL);
}

/* Runs every decoder on obj, feeding what decodes into the tracker. */
static void decode_all(struct tracker *t, struct fed *fed, json_t *obj)
{
	char key[OBJECT_KEY_MAX], err[512];
	struct service *svc = NULL;
	struct endpoint_slice *slice = NULL;
	struct node_info *node = NULL;
	struct endpoints_obj *eps = NULL;
	struct service_cidr *sc = NULL;
	int has_key, r;

	err[0] = '\0';
	has_key = decode_object_key(obj, key, sizeof(key), err, sizeof(err)) == 0;
	/* A rejection always says why. */
	check(has_key || err[0]);

	err[0] = '\0';
	r = decode_service(obj, &svc, err, sizeof(err));
	check(r == 0 || r == -EBADMSG || r == -ENOMEM);
	check(r == 0 || (!svc && err[0]));
	if (svc) {
		check(has_key);
		check_service(svc);
		if (fed->n_svc < MAX_KEYS)
			strcpy(fed->svc[fed->n_svc++], key);
		else
			fed->overflow = true;
		tracker_service_upsert(t, key, svc);
	}

	err[0] = '\0';
	r = decode_endpoint_slice(obj, &slice, err, sizeof(err));
	check(r == 0 || r == -EBADMSG || r == -ENOMEM);
	check(r == 0 || (!slice && err[0]));
	if (slice) {
		check(has_key);
		check_slice(slice);
		if (fed->n_slice < MAX_KEYS)
			strcpy(fed->slice[fed->n_slice++], key);
		else
			fed->overflow = true;
		tracker_slice_upsert(t, key, slice);
	}

	/* A core/v1 Endpoints stands for the slices it decodes into, which
	 * the agent keys "<key>#<i>". */
	err[0] = '\0';
	r = decode_endpoints(obj, &eps, err, sizeof(err));
	check(r == 0 || r == -EBADMSG || r == -ENOMEM);
	check(r == 0 || (!eps && err[0]));
	if (eps) {
		check(has_key);
		for (size_t i = 0; i < eps->n_slices; i++) {
			char sk[OBJECT_KEY_MAX];

			check_slice(eps->slices[i]);
			snprintf(sk, sizeof(sk), "%.300s#%zu", key, i);
			if (fed->n_slice < MAX_KEYS)
				strcpy(fed->slice[fed->n_slice++], sk);
			else
				fed->overflow = true;
			tracker_slice_upsert(t, sk, eps->slices[i]);
			eps->slices[i] = NULL;
		}
		endpoints_obj_free(eps);
	}

	err[0] = '\0';
	r = decode_service_cidr(obj, &sc, err, sizeof(err));
	check(r == 0 || r == -EBADMSG || r == -ENOMEM);
	check(r == 0 || (!sc && err[0]));
	if (sc) {
		check(sc->name && sc->n_cidrs <= 2);
		for (size_t i = 0; i < sc->n_cidrs; i++)
			check(sc->cidrs[i].addr.family == AF_INET ||
			      sc->cidrs[i].addr.family == AF_INET6);
		service_cidr_free(sc);
	}

	err[0] = '\0';
	r = decode_node(obj, &node, err, sizeof(err));
	check(r == 0 || r == -EBADMSG || r == -ENOMEM);
	check(r == 0 || (!node && err[0]));
	if (node) {
		check(node->name != NULL);
		tracker_node_set(t, node);
	}
}

/* a comes before b in the order svc_port.eps is kept in: address, then port. */
static int ep_before(const struct endpoint *a, const struct endpoint *b)
{
	int r = ipaddr_cmp(&a->addr, &b->addr);

	return r < 0 || (r == 0 && a->port < b->port);
}

static int ep_in(const struct endpoint *e, const struct endpoint *v, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		if (!ipaddr_cmp(&e->addr, &v[i].addr) && e->port == v[i].port)
			return 1;
	}
	return 0;
}

/* The contract of serviceport.h, checked on every published port. */
static void visit_port(const struct svc_port *sp, void *data)
{
	char buf[SVC_PORT_NAME_MAX];
	const struct endpoint *eps;
	size_t n;

	(void)data;
	svc_port_format(sp, buf);
	check(memchr(buf, '\0', sizeof(buf)) != NULL);
	check(sp->family == AF_INET || sp->family == AF_INET6);
	check(!sp->has_cluster_ip || sp->cluster_ip.family == sp->family);
	for (size_t i = 0; i < sp->n_external_ips; i++)
		check(sp->external_ips[i].family == sp->family);
	for (size_t i = 0; i < sp->n_lb_ips; i++)
		check(sp->lb_ips[i].family == sp->family);
	for (size_t i = 0; i < sp->n_source_ranges; i++)
		check(sp->source_ranges[i].addr.family == sp->family);
	/* Every endpoint once, sorted, usable (a port), of the port's family. */
	for (size_t i = 0; i < sp->n_eps; i++) {
		check(sp->eps[i].addr.family == sp->family);
		check(sp->eps[i].port != 0);
		check(i == 0 || ep_before(&sp->eps[i - 1], &sp->eps[i]));
	}
	check(sp->n_cluster_eps <= sp->n_eps && sp->n_local_eps <= sp->n_eps);
	for (size_t i = 0; i < sp->n_cluster_eps; i++)
		check(ep_in(&sp->cluster_eps[i], sp->eps, sp->n_eps));
	for (size_t i = 0; i < sp->n_local_eps; i++) {
		check(ep_in(&sp->local_eps[i], sp->eps, sp->n_eps));
		check(sp->local_eps[i].flags & EP_LOCAL);
	}
	eps = svc_port_internal_eps(sp, &n);
	check(n <= sp->n_eps && (n == 0 || eps != NULL));
	eps = svc_port_external_eps(sp, &n);
	check(n <= sp->n_eps && (n == 0 || eps != NULL));
	check(svc_port_local_ready(sp) <= sp->n_eps);
}

/* One sync as the agent runs it, with the dataplane always succeeding. */
static void sync_once(struct tracker *t, bool full)
{
	struct tracker_changes ch;

	if (tracker_prepare(t, full, &ch) < 0)
		return;
	for (size_t i = 0; i < ch.n; i++) {
		check(ch.v[i].key != NULL);
		if (!full && ch.v[i].old && ch.v[i].new)
			check(!svc_ports_equal(ch.v[i].old, ch.v[i].new));
	}
	tracker_commit(t, &ch);
	check(tracker_pending(t) == 0);
	tracker_foreach_port(t, visit_port, NULL);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	/* Reproducible hash table layouts from one run to the next. */
	json_object_seed(1);
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct fed fed;
	struct tracker *t;
	json_error_t jerr;
	json_t *doc, *items, *item;
	size_t i;

	doc = json_loadb((const char *)data, size, JSON_DECODE_ANY, &jerr);
	if (!doc)
		return 0;
	if (tracker_new("node1", &t) < 0) {
		json_decref(doc);
		return 0;
	}
	memset(&fed, 0, sizeof(fed));
	decode_all(t, &fed, doc);
	if (json_is_object(doc) && json_object_get(doc, "object"))
		decode_all(t, &fed, json_object_get(doc, "object"));
	items = json_is_object(doc) ? json_object_get(doc, "items") : NULL;
	json_array_foreach(items, i, item)
	{
		decode_all(t, &fed, item);
	}
	json_decref(doc);

	sync_once(t, false);
	sync_once(t, true);
	/* Take it all down again, a slice and a Service at a time. */
	for (i = 0; i < fed.n_slice; i++) {
		tracker_slice_remove(t, fed.slice[i]);
		if (i % 2)
			sync_once(t, false);
	}
	sync_once(t, false);
	tracker_node_set(t, NULL);
	for (i = 0; i < fed.n_svc; i++)
		tracker_service_remove(t, fed.svc[i]);
	sync_once(t, false);
	{
		struct tracker_stats st;

		tracker_get_stats(t, &st);
		check(fed.overflow || (st.services == 0 && st.slices == 0));
	}
	tracker_free(t);
	return 0;
}
