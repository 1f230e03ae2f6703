/* kproxy's entry point: parses the flags, connects the API reflectors to the
 * change tracker and the tracker to the chosen dataplane, and runs the event
 * loop until SIGTERM.
 *
 * Syncs are rate limited as kube-proxy's are: a change is applied at once if
 * the last sync was at least --min-sync-period ago, else when that period has
 * passed; and a sync runs at least every --sync-period.  Nothing is
 * programmed until the first complete lists of Services and EndpointSlices
 * are in: a half-listed cluster would delete live Services. */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/epoll.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include "dataplane.h"
#include "health/healthz.h"
#include "health/http.h"
#include "health/metrics.h"
#include "health/servicehc.h"
#include "kube/client.h"
#include "kube/config.h"
#include "kube/decode.h"
#include "kube/reflector.h"
#include "model/tracker.h"
#include "config.h"
#include "options.h"
#include "util/hashmap.h"
#include "util/jsonarena.h"
#include "util/log.h"
#include "util/loop.h"
#include "util/sysctl.h"

#ifndef KPROXY_VERSION
#define KPROXY_VERSION "0.1.0"
#endif

#define RETRY_MS 1000

struct agent {
	struct options opts;
	char node_name[256];
	struct loop *loop;
	struct kube_config *kcfg;
	struct kube_client *client;
	struct reflector *services, *slices, *node, *cidrs;
	struct hashmap *service_cidrs;	  /* name -> struct service_cidr */
	struct hashmap *endpoints_counts; /* Endpoints key -> slices it stands for */
	struct tracker *tracker;
	const struct dataplane_ops *dp_ops;
	struct dataplane *dp;
	struct loop_timer *sync_timer;
	uint64_t last_sync_ms;
	uint64_t last_check_ms;
	bool synced_once;
	bool need_full;
	int sigfd;
	/* health/: /healthz and /livez, /metrics, health-check node ports */
	struct metrics *metrics;
	struct healthz *healthz;
	struct http_listener *healthz_http, *metrics_http;
	struct servicehc *servicehc;
	struct tracker_stats synced_stats; /* the tracker's counters at the last sync */
};

static void schedule_sync(struct agent *a);

/* --- reflector glue --- */

static int dec_service(json_t *obj, void **ret, char *err, size_t errlen)
{
	return decode_service(obj, (struct service **)ret, err, errlen);
}

static int dec_slice(json_t *obj, void **ret, char *err, size_t errlen)
{
	return decode_endpoint_slice(obj, (struct endpoint_slice **)ret, err, errlen);
}

static int dec_node(json_t *obj, void **ret, char *err, size_t errlen)
{
	return decode_node(obj, (struct node_info **)ret, err, errlen);
}

static void free_service(void *p)
{
	service_free(p);
}

static void free_slice(void *p)
{
	endpoint_slice_free(p);
}

static void free_node(void *p)
{
	node_info_free(p);
}

static int dec_endpoints(json_t *obj, void **ret, char *err, size_t errlen)
{
	return decode_endpoints(obj, (struct endpoints_obj **)ret, err, errlen);
}

static void free_endpoints(void *p)
{
	endpoints_obj_free(p);
}

static int dec_cidr(json_t *obj, void **ret, char *err, size_t errlen)
{
	return decode_service_cidr(obj, (struct service_cidr **)ret, err, errlen);
}

static void free_cidr(void *p)
{
	service_cidr_free(p);
}

static const struct reflector_type service_type = {"Service", "/api/v1/services", dec_service,
						   free_service, false};
static const struct reflector_type slice_type = {
	"EndpointSlice", "/apis/discovery.k8s.io/v1/endpointslices", dec_slice, free_slice, false};
static const struct reflector_type node_type = {"Node", "/api/v1/nodes", dec_node, free_node,
						false};
static const struct reflector_type endpoints_type = {"Endpoints", "/api/v1/endpoints",
						     dec_endpoints, free_endpoints, false};
static const struct reflector_type cidr_type = {
	"ServiceCIDR", "/apis/networking.k8s.io/v1/servicecidrs", dec_cidr, free_cidr, true};

static void svc_upsert(void *data, const char *key, void *obj)
{
	struct agent *a = data;

	tracker_service_upsert(a->tracker, key, obj);
	schedule_sync(a);
}

static void svc_remove(void *data, const char *key)
{
	struct agent *a = data;

	tracker_service_remove(a->tracker, key);
	schedule_sync(a);
}

static void slice_upsert(void *data, const char *key, void *obj)
{
	struct agent *a = data;

	tracker_slice_upsert(a->tracker, key, obj);
	schedule_sync(a);
}

static void slice_remove(void *data, const char *key)
{
	struct agent *a = data;

	tracker_slice_remove(a->tracker, key);
	schedule_sync(a);
}

/* --nodeport-addresses=primary: health-check node ports listen on those of
 * the node's addresses that this host has. */
static void servicehc_node_addresses(struct agent *a, const struct node_info *node)
{
	struct cidr exact[MAX_CIDRS];
	struct ipaddr local[MAX_CIDRS];
	size_t n = 0;
	int r;

	for (size_t i = 0; i < node->n_addrs && n < MAX_CIDRS; i++, n++) {
		exact[n].addr = node->addrs[i];
		exact[n].prefix_len = node->addrs[i].family == AF_INET ? 32 : 128;
	}
	r = servicehc_local_addresses(exact, n, local, MAX_CIDRS);
	if (r > 0)
		servicehc_set_addresses(a->servicehc, local, (size_t)r);
}

/* An Endpoints object stands for the slices it decoded into, keyed
 * "<ns>/<name>#<i>"; those it no longer has are removed. */
static void endpoints_set(struct agent *a, const char *key, struct endpoints_obj *e)
{
	uintptr_t before = (uintptr_t)hashmap_get_str(a->endpoints_counts, key);
	size_t n = e ? e->n_slices : 0;
	char sk[OBJECT_KEY_MAX + 16];

	for (size_t i = 0; i < n; i++) {
		snprintf(sk, sizeof(sk), "%s#%zu", key, i);
		tracker_slice_upsert(a->tracker, sk, e->slices[i]);
		e->slices[i] = NULL;
	}
	for (size_t i = n; i < before; i++) {
		snprintf(sk, sizeof(sk), "%s#%zu", key, i);
		tracker_slice_remove(a->tracker, sk);
	}
	if (n)
		hashmap_put_str(a->endpoints_counts, key, (void *)(uintptr_t)n, NULL);
	else
		hashmap_remove_str(a->endpoints_counts, key);
	endpoints_obj_free(e);
	schedule_sync(a);
}

static void endpoints_upsert(void *data, const char *key, void *obj)
{
	endpoints_set(data, key, obj);
}

static void endpoints_remove(void *data, const char *key)
{
	endpoints_set(data, key, NULL);
}

static void node_upsert(void *data, const char *key, void *obj)
{
	struct agent *a = data;
	const struct node_info *node = obj;
	char err[512];

	(void)key;
	/* /healthz fails while the node is being deleted. */
	healthz_set_node(a->healthz, node);
	if (a->opts.nodeport_primary)
		servicehc_node_addresses(a, node);
	/* The node's addresses and pod CIDRs feed --nodeport-addresses=primary
	 * and --detect-local-mode=NodeCIDR. */
	if (a->dp_ops->set_node && a->dp_ops->set_node(a->dp, node, err, sizeof(err)) < 0) {
		log_error("%s: programming the node's addresses: %s", a->dp_ops->name, err);
		a->need_full = true;
	}
	tracker_node_set(a->tracker, obj);
	schedule_sync(a);
}

static void node_remove(void *data, const char *key)
{
	struct agent *a = data;

	(void)key;
	healthz_set_node(a->healthz, NULL);
	tracker_node_set(a->tracker, NULL);
	schedule_sync(a);
}

static void synced(void *data)
{
	schedule_sync(data);
}

/* Hands every ServiceCIDR's ranges to the dataplane. */
static void push_service_cidrs(struct agent *a)
{
	struct cidr all[64];
	struct hashmap_iter it = {0};
	char err[512];
	size_t n = 0;
	void *v;

	if (!a->dp_ops->set_service_cidrs)
		return;
	while (hashmap_next(a->service_cidrs, &it, NULL, NULL, &v)) {
		const struct service_cidr *sc = v;

		for (size_t i = 0; i < sc->n_cidrs && n < sizeof(all) / sizeof(all[0]); i++)
			all[n++] = sc->cidrs[i];
	}
	if (a->dp_ops->set_service_cidrs(a->dp, all, n, err, sizeof(err)) < 0) {
		log_error("%s: programming the ServiceCIDRs: %s", a->dp_ops->name, err);
		a->need_full = true;
		schedule_sync(a);
	}
}

static void cidr_upsert(void *data, const char *key, void *obj)
{
	struct agent *a = data;
	void *old = NULL;

	if (hashmap_put_str(a->service_cidrs, key, obj, &old) < 0) {
		service_cidr_free(obj);
		return;
	}
	service_cidr_free(old);
	push_service_cidrs(a);
}

static void cidr_remove(void *data, const char *key)
{
	struct agent *a = data;

	service_cidr_free(hashmap_remove_str(a->service_cidrs, key));
	push_service_cidrs(a);
}

static void cidr_synced(void *data)
{
	(void)data;
}

static const struct reflector_handler svc_handler = {svc_upsert, svc_remove, synced};
static const struct reflector_handler slice_handler = {slice_upsert, slice_remove, synced};
static const struct reflector_handler node_handler = {node_upsert, node_remove, synced};
static const struct reflector_handler cidr_handler = {cidr_upsert, cidr_remove, cidr_synced};
static const struct reflector_handler endpoints_handler = {endpoints_upsert, endpoints_remove,
							   synced};

/* --- syncing --- */

static bool ready_to_sync(struct agent *a)
{
	return reflector_synced(a->services) && reflector_synced(a->slices);
}

/* kubeproxy_network_programming_duration_seconds: from the change that
 * made the endpoints controller rewrite a slice to its rules being in the
 * kernel here. */
static void observe_programming(struct agent *a)
{
	const double *v;
	size_t n = tracker_trigger_times(a->tracker, &v);
	struct timespec now;
	double t;

	if (!n)
		return;
	clock_gettime(CLOCK_REALTIME, &now);
	t = (double)now.tv_sec + (double)now.tv_nsec / 1e9;
	for (size_t i = 0; i < n; i++)
		metrics_observe_network_programming(a->metrics, t > v[i] ? t - v[i] : 0);
}

static void do_sync(struct agent *a)
{
	struct tracker_changes ch;
	bool full = !a->synced_once || a->need_full;
	uint64_t t0 = loop_now_ns();
	char err[512];
	int r;

	if (!ready_to_sync(a))
		return;
	a->last_sync_ms = loop_now_ms();
	/* The periodic sync: whatever happens below, come back within the
	 * sync period; and see that the kernel still holds what was put there. */
	loop_timer_arm(a->sync_timer, a->opts.sync_ms ? a->opts.sync_ms : 30000);
	if (!full && a->dp_ops->check &&
	    loop_now_ms() - a->last_check_ms >= (a->opts.sync_ms ? a->opts.sync_ms : 30000)) {
		a->last_check_ms = loop_now_ms();
		if (a->dp_ops->check(a->dp, err, sizeof(err)) == 1) {
			log_warn("%s: %s; restoring everything with a full sync", a->dp_ops->name,
				 err);
			full = true;
		}
	}
	if (!full && tracker_pending(a->tracker) == 0) {
		/* Nothing left to apply: the rules are up to date. */
		healthz_updated(a->healthz, loop_now_ns());
		return;
	}
	r = tracker_prepare(a->tracker, full, &ch);
	if (r < 0) {
		log_error("sync: %s", strerror(-r));
		metrics_sync_failed(a->metrics);
		loop_timer_arm(a->sync_timer, RETRY_MS);
		return;
	}
	r = a->dp_ops->sync(a->dp, &ch, err, sizeof(err));
	if (r < 0) {
		log_error("%s sync failed: %s; retrying with a full sync", a->dp_ops->name, err);
		tracker_abort(a->tracker, &ch);
		metrics_sync_failed(a->metrics);
		a->need_full = true;
		loop_timer_arm(a->sync_timer, RETRY_MS);
		return;
	}
	log_v(2, "%s %s sync: %zu services changed in %.3f ms", a->dp_ops->name,
	      full ? "full" : "partial", ch.n, (double)(loop_now_ns() - t0) / 1e6);
	if (!a->synced_once)
		log_info("first %s sync done: %zu services", a->dp_ops->name, ch.n);
	metrics_sync_done(a->metrics, full, (double)(loop_now_ns() - t0) / 1e9);
	/* Both read the changes' old and new ports: before the commit. */
	metrics_apply_changes(a->metrics, &ch);
	observe_programming(a);
	a->need_full = false;
	if (servicehc_apply(a->servicehc, &ch) < 0) {
		/* Out of memory: the next, full, sync lists every Service again. */
		log_error("health check node ports: %s", strerror(ENOMEM));
		a->need_full = true;
		loop_timer_arm(a->sync_timer, RETRY_MS);
	}
	tracker_commit(a->tracker, &ch);
	tracker_get_stats(a->tracker, &a->synced_stats);
	healthz_updated(a->healthz, loop_now_ns());
	a->synced_once = true;
}

static void sync_fired(struct loop *loop, struct loop_timer *t, void *data)
{
	(void)loop;
	(void)t;
	do_sync(data);
}

/* Runs a sync now, or as soon as --min-sync-period allows (never later than
 * a sync already planned). */
static void schedule_sync(struct agent *a)
{
	uint64_t now = loop_now_ms(), at = a->last_sync_ms + a->opts.min_sync_ms;

	/* A change waits for a sync: /healthz fails if it waits too long. */
	healthz_queued(a->healthz, loop_now_ns());
	metrics_sync_queued(a->metrics);

	if (!a->last_sync_ms || at < now)
		at = now;
	if (loop_timer_armed(a->sync_timer) && loop_timer_deadline(a->sync_timer) <= at)
		return;
	loop_timer_arm_at(a->sync_timer, at);
}

/* --- metrics read when scraped --- */

static void collect_metrics(struct metrics *m, void *data)
{
	struct agent *a = data;
	struct reflector *refl[] = {a->services, a->slices, a->node, a->cidrs};
	struct dataplane_stats ds;
	struct tracker_stats ts;

	tracker_get_stats(a->tracker, &ts);
	/* The tracker counts events; those since the last sync are pending. */
	metrics_set_changes(m, ts.service_changes, ts.endpoint_changes,
			    ts.service_changes - a->synced_stats.service_changes,
			    ts.endpoint_changes - a->synced_stats.endpoint_changes);
	a->dp_ops->get_stats(a->dp, &ds);
	metrics_set_dataplane_elements(m, ds.elements);
	for (size_t i = 0; i < sizeof(refl) / sizeof(refl[0]); i++) {
		const struct reflector_stats *st;

		if (!refl[i])
			continue;
		st = reflector_stats(refl[i]);
		/* Every list is followed by a watch: the first is no restart. */
		metrics_set_reflector(m, reflector_kind(refl[i]), st->rejected,
				      st->watch_starts ? st->watch_starts - 1 : 0, st->lists);
	}
}

/* --- health and metrics servers --- */

static int start_health(struct agent *a)
{
	uint64_t sync_ms = a->opts.sync_ms ? a->opts.sync_ms : 30000;
	struct ipaddr addrs[MAX_CIDRS];
	char err[512];
	int r, n = 0;

	/* As kube-proxy: unhealthy when a change waits twice the sync period. */
	if ((r = metrics_new(a->dp_ops->name, &a->metrics)) < 0 ||
	    (r = healthz_new(2 * sync_ms, a->metrics, &a->healthz)) < 0) {
		log_error("start-up: %s", strerror(-r));
		return r;
	}
	metrics_on_render(a->metrics, collect_metrics, a);
	/* --nodeport-addresses CIDRs: health-check node ports listen on the
	 * local addresses inside them; otherwise on every address (for
	 * "primary", node_upsert() narrows that once the Node is known). */
	if (a->opts.n_nodeport_cidrs) {
		n = servicehc_local_addresses(a->opts.nodeport_cidrs, a->opts.n_nodeport_cidrs,
					      addrs, MAX_CIDRS);
		if (n <= 0) {
			log_warn("no local address inside --nodeport-addresses; health check "
				 "node ports listen on every address");
			n = 0;
		}
	}
	if ((r = servicehc_new(a->loop, a->healthz, addrs, (size_t)n, &a->servicehc)) < 0) {
		log_error("start-up: %s", strerror(-r));
		return r;
	}
	/* An empty address turns a server off, as in kube-proxy. */
	if (a->opts.healthz_bind && *a->opts.healthz_bind &&
	    (r = http_listener_new(a->loop, "healthz", a->opts.healthz_bind, HTTP_RETRY_MS,
				   healthz_http_handler, a->healthz, &a->healthz_http, err,
				   sizeof(err))) < 0) {
		log_error("--healthz-bind-address: %s", err);
		return r;
	}
	if (a->opts.metrics_bind && *a->opts.metrics_bind &&
	    (r = http_listener_new(a->loop, "metrics", a->opts.metrics_bind, HTTP_RETRY_MS,
				   metrics_http_handler, a->metrics, &a->metrics_http, err,
				   sizeof(err))) < 0) {
		log_error("--metrics-bind-address: %s", err);
		return r;
	}
	/* As kube-proxy's sync loop starts: fresh, so that a change that then
	 * never gets synced (a list that never completes) shows one health
	 * timeout later. */
	healthz_updated(a->healthz, loop_now_ns());
	metrics_sync_queued(a->metrics);
	return 0;
}

/* --- signals --- */

static void on_signal(struct loop *loop, int fd, uint32_t events, void *data)
{
	struct signalfd_siginfo si;

	(void)events;
	(void)data;
	while (read(fd, &si, sizeof(si)) == sizeof(si)) {
		if (si.ssi_signo == SIGTERM || si.ssi_signo == SIGINT) {
			log_info("received signal %u; exiting (rules stay in place)", si.ssi_signo);
			loop_quit(loop, 0);
		}
	}
}

static int setup_signals(struct agent *a)
{
	sigset_t set;

	sigemptyset(&set);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGHUP);
	sigprocmask(SIG_BLOCK, &set, NULL);
	signal(SIGPIPE, SIG_IGN);
	a->sigfd = signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC);
	if (a->sigfd < 0)
		return -errno;
	return loop_add_fd(a->loop, a->sigfd, EPOLLIN, on_signal, a);
}

/* --- start-up --- */

static int node_name(const struct options *o, char *buf, size_t len)
{
	if (o->hostname_override && *o->hostname_override) {
		snprintf(buf, len, "%s", o->hostname_override);
	} else if (gethostname(buf, len) < 0) {
		return -errno;
	}
	buf[len - 1] = '\0';
	for (char *p = buf; *p; p++) {
		if (*p >= 'A' && *p <= 'Z')
			*p = (char)(*p - 'A' + 'a');
	}
	return 0;
}

/* --cleanup: removes what either dataplane left, as kube-proxy's --cleanup
 * removes the rules of all its modes. */
static int run_cleanup(const struct options *o)
{
	const struct dataplane_ops *ops[] = {&nft_dataplane_ops, &ebpf_dataplane_ops};
	struct dataplane_config cfg = {
		.bpf_cgroup_path = o->bpf_cgroup_path,
		.bpf_pin_path = o->bpf_pin_path,
		.devices = o->devices,
	};
	int failed = 0;

	for (size_t i = 0; i < sizeof(ops) / sizeof(ops[0]); i++) {
		char err[512];
		int r = ops[i]->cleanup(&cfg, err, sizeof(err));

		if (r < 0) {
			log_error("cleanup (%s): %s", ops[i]->name, err);
			failed = 1;
		} else {
			log_info("cleanup (%s): removed %d object(s)", ops[i]->name, r);
		}
	}
	return failed;
}

static int start(struct agent *a)
{
	struct dataplane_config dcfg = {
		.node_name = a->node_name,
		.ipv4 = true,
		.ipv6 = true,
		.cluster_cidrs = a->opts.cluster_cidrs,
		.n_cluster_cidrs = a->opts.n_cluster_cidrs,
		.masquerade_all = a->opts.masquerade_all,
		.masquerade_bit = (uint32_t)a->opts.masquerade_bit,
		.detect_local = a->opts.detect_local,
		.pod_iface = a->opts.detect_local == DETECT_LOCAL_BRIDGE ? a->opts.pod_bridge
									 : a->opts.pod_iface_prefix,
		.bpf_cgroup_path = a->opts.bpf_cgroup_path,
		.bpf_pin_path = a->opts.bpf_pin_path,
		.devices = a->opts.devices,
		.bpf_pod_lb = a->opts.bpf_sock_hostns_only,
		.nodeport_cidrs = a->opts.nodeport_cidrs,
		.n_nodeport_cidrs = a->opts.n_nodeport_cidrs,
		.nodeport_primary = a->opts.nodeport_primary,
	};
	char err[512], query[512];
	int r;

	r = kube_config_load(a->opts.kubeconfig, a->opts.master, &a->kcfg, err, sizeof(err));
	if (r < 0) {
		log_error("%s", err);
		return r;
	}
	log_info("API server %s (%s); node \"%s\"; mode %s", a->kcfg->server, a->kcfg->origin,
		 a->node_name, a->dp_ops->name);
	r = a->dp_ops->init(&dcfg, &a->dp, err, sizeof(err));
	if (r < 0) {
		log_error("%s dataplane: %s", a->dp_ops->name, err);
		return r;
	}
	if ((r = loop_new(&a->loop)) < 0 || (r = setup_signals(a)) < 0 ||
	    (r = tracker_new(a->node_name, &a->tracker)) < 0 ||
	    (r = kube_client_new(a->loop, a->kcfg, &a->client)) < 0) {
		log_error("start-up: %s", strerror(-r));
		return r;
	}
	a->sync_timer = loop_timer_new(a->loop, sync_fired, a);
	if (!a->sync_timer)
		return -ENOMEM;
	if ((r = start_health(a)) < 0)
		return r;
	/* As kube-proxy: skip objects of other proxies and headless Services. */
	snprintf(query, sizeof(query), "labelSelector=%s",
		 "%21service.kubernetes.io%2Fservice-proxy-name%2C%21service.kubernetes.io%"
		 "2Fheadless");
	if ((r = reflector_new(a->client, a->loop, &service_type, query, &svc_handler, a,
			       &a->services)) < 0 ||
	    (r = reflector_new(a->client, a->loop,
			       a->opts.use_core_endpoints ? &endpoints_type : &slice_type, query,
			       a->opts.use_core_endpoints ? &endpoints_handler : &slice_handler, a,
			       &a->slices)) < 0)
		return r;
	if (!(a->endpoints_counts = hashmap_new()))
		return -ENOMEM;
	snprintf(query, sizeof(query), "fieldSelector=metadata.name%%3D%s", a->node_name);
	if ((r = reflector_new(a->client, a->loop, &node_type, query, &node_handler, a, &a->node)) <
	    0)
		return r;
	if (!(a->service_cidrs = hashmap_new()))
		return -ENOMEM;
	if ((r = reflector_new(a->client, a->loop, &cidr_type, NULL, &cidr_handler, a, &a->cidrs)) <
	    0)
		return r;
	reflector_start(a->services);
	reflector_start(a->slices);
	reflector_start(a->node);
	reflector_start(a->cidrs);
	return 0;
}

static void stop(struct agent *a)
{
	http_listener_free(a->healthz_http);
	http_listener_free(a->metrics_http);
	servicehc_free(a->servicehc);
	healthz_free(a->healthz);
	metrics_free(a->metrics);
	reflector_free(a->services);
	reflector_free(a->slices);
	reflector_free(a->node);
	reflector_free(a->cidrs);
	hashmap_free(a->service_cidrs, free_cidr);
	hashmap_free(a->endpoints_counts, NULL);
	kube_client_free(a->client);
	loop_timer_free(a->sync_timer);
	tracker_free(a->tracker);
	if (a->dp)
		a->dp_ops->free(a->dp);
	kube_config_free(a->kcfg);
	if (a->sigfd > 0)
		close(a->sigfd);
	loop_free(a->loop);
}

/* Reads the command line and, when --config names a file, that file with
 * the command line applied over it again, so flags win. */
static int load_options(int argc, char **argv, struct options *o)
{
	char err[512], notices[2048] = "", warnings[4096] = "";
	const char *file;
	int r;

	options_defaults(o);
	if (options_apply(argc, argv, o, notices, sizeof(notices), err, sizeof(err)) < 0) {
		fprintf(stderr, "kproxy: %s\nRun kproxy --help for the flags.\n", err);
		return -EINVAL;
	}
	if (o->config && *o->config && !o->show_help && !o->show_version) {
		file = o->config;
		options_defaults(o);
		r = config_load(file, o, warnings, sizeof(warnings), err, sizeof(err));
		if (r < 0) {
			fprintf(stderr, "kproxy: %s\n", err);
			return r;
		}
		notices[0] = '\0';
		options_apply(argc, argv, o, notices, sizeof(notices), err, sizeof(err));
		o->config = file;
	}
	if (options_validate(o, err, sizeof(err)) < 0) {
		fprintf(stderr, "kproxy: %s\n", err);
		return -EINVAL;
	}
	log_verbosity = (int)o->verbosity;
	for (char *line = strtok(warnings, "\n"); line; line = strtok(NULL, "\n"))
		log_warn("--config %s: %s", o->config, line);
	for (char *line = strtok(notices, "\n"); line; line = strtok(NULL, "\n"))
		log_info("%s", line);
	return 0;
}

int main(int argc, char **argv)
{
	struct agent a;
	char problems[1024];
	int r;

	/* Before any JSON value exists: list pages and watch events are then
	 * parsed into an arena (util/jsonarena.h). */
	json_arena_install();
	memset(&a, 0, sizeof(a));
	if (load_options(argc, argv, &a.opts) < 0)
		return 1;
	if (a.opts.show_help) {
		options_usage(stdout);
		return 0;
	}
	if (a.opts.show_version) {
		printf("kproxy %s\n", KPROXY_VERSION);
		return 0;
	}
	if (a.opts.cleanup) {
		r = run_cleanup(&a.opts);
		config_release();
		return r;
	}
	a.dp_ops = a.opts.mode == MODE_EBPF ? &ebpf_dataplane_ops : &nft_dataplane_ops;
	if (node_name(&a.opts, a.node_name, sizeof(a.node_name)) < 0) {
		log_error("cannot determine the node name; give --hostname-override");
		config_release();
		return 1;
	}
	sysctl_apply_conntrack(&a.opts.conntrack, problems, sizeof(problems));
	for (char *line = strtok(problems, "\n"); line; line = strtok(NULL, "\n"))
		log_warn("conntrack setting not applied: %s", line);
	a.sigfd = -1;
	r = start(&a);
	if (r == 0)
		r = loop_run(a.loop);
	stop(&a);
	config_release();
	return r < 0 ? 1 : 0;
}
