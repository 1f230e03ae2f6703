/* Measures the nftables dataplane on its own, without the API server: N
 * synthetic Services with E endpoints each are fed to the change tracker and
 * synced into the kernel (a full sync), then single-endpoint changes are
 * applied one at a time (incremental syncs).  Prints one line per figure:
 *
 *   full_sync services=N endpoints=E seconds=S elements=X messages=M
 *   change services=N p50_ms=A p99_ms=B max_ms=C changes=K
 *
 * Run it inside a network namespace of its own (the benchmark driver does),
 * since it programs that namespace's nftables. */
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "dataplane.h"
#include "model/tracker.h"
#include "util/loop.h"

static struct service *make_service(int i)
{
	struct service *s = calloc(1, sizeof(*s));
	char name[64];

	snprintf(name, sizeof(name), "svc-%d", i);
	s->ns = strdup("bench");
	s->name = strdup(name);
	s->type = SVC_TYPE_CLUSTER_IP;
	s->n_cluster_ips = 1;
	s->cluster_ips = calloc(1, sizeof(*s->cluster_ips));
	s->cluster_ips[0].family = AF_INET;
	s->cluster_ips[0].bytes[0] = 10;
	s->cluster_ips[0].bytes[1] = (uint8_t)(96 + (i >> 16));
	s->cluster_ips[0].bytes[2] = (uint8_t)(i >> 8);
	s->cluster_ips[0].bytes[3] = (uint8_t)i;
	s->n_ports = 1;
	s->ports = calloc(1, sizeof(*s->ports));
	s->ports[0].name = strdup("http");
	s->ports[0].protocol = IPPROTO_TCP;
	s->ports[0].port = 80;
	s->affinity_timeout = 10800;
	return s;
}

/* Endpoint addresses 10.(128+k/65536).x.y, distinct across the cluster;
 * version shifts them so that a "change" replaces one endpoint. */
static struct endpoint_slice *make_slice(int i, int e, int version)
{
	struct endpoint_slice *sl = calloc(1, sizeof(*sl));
	char name[64];

	snprintf(name, sizeof(name), "svc-%d", i);
	sl->ns = strdup("bench");
	sl->service_name = strdup(name);
	snprintf(name, sizeof(name), "svc-%d-abcde", i);
	sl->name = strdup(name);
	sl->family = AF_INET;
	sl->n_ports = 1;
	sl->ports = calloc(1, sizeof(*sl->ports));
	sl->ports[0].name = strdup("http");
	sl->ports[0].protocol = IPPROTO_TCP;
	sl->ports[0].port = 8080;
	sl->n_endpoints = (size_t)e;
	sl->endpoints = calloc((size_t)e, sizeof(*sl->endpoints));
	for (int k = 0; k < e; k++) {
		uint32_t n = (uint32_t)i * (uint32_t)e + (uint32_t)k + (k == 0 ? (uint32_t)version * 7919u : 0);

		sl->endpoints[k].addr.family = AF_INET;
		sl->endpoints[k].addr.bytes[0] = 10;
		sl->endpoints[k].addr.bytes[1] = (uint8_t)(128 + ((n >> 16) & 63));
		sl->endpoints[k].addr.bytes[2] = (uint8_t)(n >> 8);
		sl->endpoints[k].addr.bytes[3] = (uint8_t)n;
		sl->endpoints[k].conditions = EP_READY | EP_SERVING;
	}
	return sl;
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

static int sync_now(const struct dataplane_ops *ops, struct dataplane *dp, struct tracker *t,
		    bool full)
{
	struct tracker_changes ch;
	char err[512];
	int r = tracker_prepare(t, full, &ch);

	if (r < 0)
		return r;
	r = ops->sync(dp, &ch, err, sizeof(err));
	if (r < 0) {
		fprintf(stderr, "sync failed: %s\n", err);
		tracker_abort(t, &ch);
		return r;
	}
	tracker_commit(t, &ch);
	return 0;
}

int main(int argc, char **argv)
{
	int n = argc > 1 ? atoi(argv[1]) : 1000;
	int e = argc > 2 ? atoi(argv[2]) : 10;
	int changes = argc > 3 ? atoi(argv[3]) : 100;
	const struct dataplane_ops *ops = &nft_dataplane_ops;
	struct dataplane_config cfg = {.node_name = "bench-node", .ipv4 = true, .ipv6 = true,
				       .masquerade_bit = 14};
	struct dataplane_stats st;
	struct dataplane *dp;
	struct tracker *t;
	uint64_t t0, *lat;
	char key[64], err[512];

	if (n <= 0 || e <= 0 || changes < 0) {
		fprintf(stderr, "usage: bench_nft SERVICES ENDPOINTS CHANGES\n");
		return 2;
	}
	if (tracker_new("bench-node", &t) < 0 || ops->init(&cfg, &dp, err, sizeof(err)) < 0) {
		fprintf(stderr, "init failed: %s\n", err);
		return 1;
	}
	for (int i = 0; i < n; i++) {
		snprintf(key, sizeof(key), "bench/svc-%d", i);
		tracker_service_upsert(t, key, make_service(i));
		snprintf(key, sizeof(key), "bench/svc-%d-abcde", i);
		tracker_slice_upsert(t, key, make_slice(i, e, 0));
	}
	t0 = loop_now_ns();
	if (sync_now(ops, dp, t, true) < 0)
		return 1;
	ops->get_stats(dp, &st);
	printf("full_sync services=%d endpoints=%d seconds=%.4f elements=%llu messages=%llu\n", n, e,
	       (double)(loop_now_ns() - t0) / 1e9, (unsigned long long)st.elements,
	       (unsigned long long)st.messages);
	fflush(stdout);

	lat = calloc((size_t)changes + 1, sizeof(*lat));
	for (int c = 0; c < changes; c++) {
		int i = (int)(((long)c * 7919) % n);

		snprintf(key, sizeof(key), "bench/svc-%d-abcde", i);
		t0 = loop_now_ns();
		/* Odd changes also add an endpoint, which moves the Service to
		 * another load-balancing chain (a verdict-map change). */
		tracker_slice_upsert(t, key, make_slice(i, e + (c & 1), c + 1));
		if (sync_now(ops, dp, t, false) < 0)
			return 1;
		lat[c] = loop_now_ns() - t0;
	}
	if (changes) {
		qsort(lat, (size_t)changes, sizeof(*lat), cmp_u64);
		printf("change services=%d p50_ms=%.3f p99_ms=%.3f max_ms=%.3f changes=%d\n", n,
		       (double)lat[changes / 2] / 1e6, (double)lat[(changes * 99) / 100] / 1e6,
		       (double)lat[changes - 1] / 1e6, changes);
	}
	free(lat);
	ops->free(dp);
	tracker_free(t);
	return 0;
}
