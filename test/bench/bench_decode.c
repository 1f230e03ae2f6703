/* Measures the API side of a full sync without a network: N Services and
 * their EndpointSlices (E endpoints each), serialized as the API server's
 * list responses (pages of 500, as the agent asks for), are parsed,
 * decoded, fed to the change tracker and turned into the dataplane's
 * per-Service ports (tracker_prepare, full).  Prints one line:
 *
 *   decode services=N endpoints=E list_bytes=B parse_s=P decode_s=D
 *       model_s=M total_s=T rss_mib=R
 *
 * parse: JSON text to jansson values; decode: values to the model's structs
 * (every field validated) and into the tracker; model: the ports every
 * Service must serve, with their endpoint sets.  rss_mib is the resident
 * memory once everything is held, the way the agent holds it (the JSON is
 * freed page by page).
 *
 * usage: bench_decode [SERVICES] [ENDPOINTS]   (default 10000 10) */
#include <jansson.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "kube/decode.h"
#include "model/tracker.h"
#include "util/jsonarena.h"

#define PAGE 500

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static double rss_mib(void)
{
	FILE *f = fopen("/proc/self/status", "r");
	char line[256];
	double kb = 0;

	if (!f)
		return 0;
	while (fgets(line, sizeof(line), f)) {
		if (!strncmp(line, "VmRSS:", 6))
			kb = strtod(line + 6, NULL);
	}
	fclose(f);
	return kb / 1024;
}

/* A growing string. */
struct sbuf {
	char *p;
	size_t len, cap;
};

static void put(struct sbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void put(struct sbuf *b, const char *fmt, ...)
{
	va_list ap;
	int n;

	for (;;) {
		va_start(ap, fmt);
		n = vsnprintf(b->p + b->len, b->cap - b->len, fmt, ap);
		va_end(ap);
		if (n >= 0 && (size_t)n < b->cap - b->len)
			break;
		b->cap = b->cap ? b->cap * 2 : 1 << 20;
		b->p = realloc(b->p, b->cap);
		if (!b->p) {
			perror("realloc");
			exit(1);
		}
	}
	b->len += (size_t)n;
}

/* One list page of Services [from, to), shaped like the API server's. */
static void services_page(struct sbuf *b, int from, int to)
{
	b->len = 0;
	put(b, "{\"kind\":\"ServiceList\",\"apiVersion\":\"v1\",\"metadata\":"
	       "{\"resourceVersion\":\"1000\"},\"items\":[");
	for (int i = from; i < to; i++) {
		put(b,
		    "%s{\"metadata\":{\"name\":\"svc-%05d\",\"namespace\":\"bench\","
		    "\"uid\":\"00000000-0000-4000-8000-%012d\",\"resourceVersion\":\"%d\","
		    "\"creationTimestamp\":\"2026-01-01T00:00:00Z\","
		    "\"labels\":{\"app\":\"svc-%05d\"}},"
		    "\"spec\":{\"clusterIP\":\"10.%d.%d.%d\",\"clusterIPs\":[\"10.%d.%d.%d\"],"
		    "\"type\":\"ClusterIP\",\"sessionAffinity\":\"None\","
		    "\"ipFamilies\":[\"IPv4\"],\"ipFamilyPolicy\":\"SingleStack\","
		    "\"internalTrafficPolicy\":\"Cluster\",\"selector\":{\"app\":\"svc-%05d\"},"
		    "\"ports\":[{\"name\":\"http\",\"protocol\":\"TCP\",\"port\":80,"
		    "\"targetPort\":8080}]},\"status\":{\"loadBalancer\":{}}}",
		    i > from ? "," : "", i, i, i + 1, i, 96 + (i >> 16), (i >> 8) & 255, i & 255,
		    96 + (i >> 16), (i >> 8) & 255, i & 255, i);
	}
	put(b, "]}");
}

/* One list page of EndpointSlices [from, to), e endpoints each. */
static void slices_page(struct sbuf *b, int from, int to, int e)
{
	b->len = 0;
	put(b, "{\"kind\":\"EndpointSliceList\",\"apiVersion\":\"discovery.k8s.io/v1\","
	       "\"metadata\":{\"resourceVersion\":\"1000\"},\"items\":[");
	for (int i = from; i < to; i++) {
		put(b,
		    "%s{\"metadata\":{\"name\":\"svc-%05d-x7k2p\",\"namespace\":\"bench\","
		    "\"uid\":\"00000000-0000-4000-9000-%012d\",\"resourceVersion\":\"%d\","
		    "\"generateName\":\"svc-%05d-\",\"labels\":{\"kubernetes.io/service-name\":"
		    "\"svc-%05d\",\"endpointslice.kubernetes.io/managed-by\":"
		    "\"endpointslice-controller.k8s.io\"},\"annotations\":{"
		    "\"endpoints.kubernetes.io/last-change-trigger-time\":"
		    "\"2026-01-01T00:00:00Z\"}},\"addressType\":\"IPv4\",\"endpoints\":[",
		    i > from ? "," : "", i, i, i + 1, i, i);
		for (int k = 0; k < e; k++) {
			unsigned a = (unsigned)i * (unsigned)e + (unsigned)k;

			put(b,
			    "%s{\"addresses\":[\"10.%u.%u.%u\"],\"conditions\":{\"ready\":true,"
			    "\"serving\":true,\"terminating\":false},\"nodeName\":\"node-%u\","
			    "\"zone\":\"zone-%u\",\"targetRef\":{\"kind\":\"Pod\",\"namespace\":"
			    "\"bench\",\"name\":\"svc-%05d-%d\",\"uid\":"
			    "\"00000000-0000-4000-a000-%012u\"}}",
			    k ? "," : "", 128 + (a >> 16), (a >> 8) & 255, a & 255, a % 100, a % 3,
			    i, k, a);
		}
		put(b, "],\"ports\":[{\"name\":\"http\",\"protocol\":\"TCP\",\"port\":8080}]}");
	}
	put(b, "]}");
}

int main(int argc, char **argv)
{
	int n = argc > 1 ? atoi(argv[1]) : 10000, e = argc > 2 ? atoi(argv[2]) : 10;
	double parse = 0, decode = 0, t0, t1, t2;
	struct tracker *t = NULL;
	struct tracker_changes ch;
	struct sbuf b = {0};
	size_t bytes = 0, ports = 0;
	char err[512], key[OBJECT_KEY_MAX];

	bool arena = !getenv("BENCH_NO_ARENA");

	if (arena)
		json_arena_install();
	if (n <= 0 || e <= 0 || tracker_new("node-0", &t) < 0) {
		fprintf(stderr, "usage: bench_decode [SERVICES] [ENDPOINTS]\n");
		return 2;
	}
	for (int kind = 0; kind < 2; kind++) {
		for (int from = 0; from < n; from += PAGE) {
			int to = from + PAGE < n ? from + PAGE : n;
			json_error_t jerr;
			json_t *doc, *item;
			size_t i;

			if (kind == 0)
				services_page(&b, from, to);
			else
				slices_page(&b, from, to, e);
			bytes += b.len;
			t0 = now_s();
			json_arena_begin();
			doc = json_loadb(b.p, b.len, 0, &jerr);
			t1 = now_s();
			if (!doc) {
				fprintf(stderr, "bad generated JSON: %s\n", jerr.text);
				return 1;
			}
			json_array_foreach(json_object_get(doc, "items"), i, item)
			{
				if (decode_object_key(item, key, sizeof(key), err, sizeof(err)) <
				    0) {
					fprintf(stderr, "key: %s\n", err);
					return 1;
				}
				if (kind == 0) {
					struct service *s = NULL;

					if (decode_service(item, &s, err, sizeof(err)) < 0 || !s) {
						fprintf(stderr, "service: %s\n", err);
						return 1;
					}
					tracker_service_upsert(t, key, s);
				} else {
					struct endpoint_slice *s = NULL;

					if (decode_endpoint_slice(item, &s, err, sizeof(err)) < 0 ||
					    !s) {
						fprintf(stderr, "slice: %s\n", err);
						return 1;
					}
					tracker_slice_upsert(t, key, s);
				}
			}
			json_arena_drop(doc);
			json_arena_end();
			t2 = now_s();
			parse += t1 - t0;
			decode += t2 - t1;
		}
	}
	free(b.p);
	t0 = now_s();
	if (tracker_prepare(t, true, &ch) < 0) {
		fprintf(stderr, "tracker_prepare failed\n");
		return 1;
	}
	t1 = now_s();
	for (size_t i = 0; i < ch.n; i++)
		ports += ch.v[i].new ? ch.v[i].new->n : 0;
	if (ports != (size_t)n) {
		fprintf(stderr, "expected %d service ports, got %zu\n", n, ports);
		return 1;
	}
	tracker_commit(t, &ch);
	printf("decode services=%d endpoints=%d list_bytes=%zu parse_s=%.4f decode_s=%.4f "
	       "model_s=%.4f total_s=%.4f rss_mib=%.1f\n",
	       n, n * e, bytes, parse, decode, t1 - t0, parse + decode + (t1 - t0), rss_mib());
	tracker_free(t);
	return 0;
}
