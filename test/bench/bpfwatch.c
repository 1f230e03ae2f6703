/* bpfwatch: reads kproxy's pinned BPF maps (eBPF mode) for the benchmark,
 * which must see Services arrive in the kernel rather than trust an agent's
 * log.  Map layouts come from include/kproxy/lb.h; MAPS is the directory
 * holding the pinned maps (<pin path>/v<KPROXY_MAP_VERSION>).
 *
 *   bpfwatch count MAPS NAME
 *       prints "count=N", the entries of map NAME (-1 when not pinned)
 *   bpfwatch wait MAPS FRONTENDS BACKENDS TIMEOUT_MS
 *       polls until lb4_fe holds FRONTENDS entries and lb_slots and
 *       lb_backends hold BACKENDS each; prints "done_ns=T count=N
 *       dump_ms=D": T (CLOCK_MONOTONIC) is when the last counting pass, which
 *       took D ms, ended (entries only arrive during a full sync, so all
 *       were there by then), or "timeout count=N", exit 1
 *   bpfwatch serve MAPS
 *       answers commands read from stdin, one per line:
 *         svc ADDR PORT PROTO COUNT TIMEOUT_MS
 *       -> "waiting" (or "already" when it has them now), then "ok T" once
 *          the Service port at ADDR:PORT/PROTO (tcp, udp) has COUNT
 *          endpoints for internal traffic (lb_svc's count), polled every
 *          200 us; "timeout" when the time runs out
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <arpa/inet.h>
#include <bpf/bpf.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "kproxy/lb.h"

#define BATCH 4096

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static void sleep_us(long us)
{
	struct timespec ts = {.tv_sec = us / 1000000, .tv_nsec = (us % 1000000) * 1000};

	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}

static int open_map(const char *dir, const char *name)
{
	char path[4096];

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	return bpf_obj_get(path);
}

/* Entries in the map: batched lookups where the kernel has them, else a
 * walk with get_next_key. */
static long count_fd(int fd)
{
	struct bpf_map_info info;
	uint32_t len = sizeof(info);
	static char keys[BATCH * 64], values[BATCH * 256];
	char key[256], next[256];
	long count = 0;
	uint64_t in = 0, out = 0;
	void *inp = NULL;
	int r;

	memset(&info, 0, sizeof(info));
	if (bpf_obj_get_info_by_fd(fd, &info, &len) < 0)
		return -1;
	if (info.key_size <= 64 && info.value_size <= 256) {
		DECLARE_LIBBPF_OPTS(bpf_map_batch_opts, opts);
		for (;;) {
			uint32_t n = BATCH;

			r = bpf_map_lookup_batch(fd, inp, &out, keys, values, &n, &opts);
			if (r < 0 && errno != ENOENT)
				break; /* no batch support: walk the keys below */
			count += n;
			if (r < 0) /* ENOENT: that was the last batch */
				return count;
			in = out;
			inp = &in;
		}
	}
	count = 0;
	if (info.key_size > sizeof(key))
		return -1;
	r = bpf_map_get_next_key(fd, NULL, next);
	while (r == 0) {
		count++;
		memcpy(key, next, info.key_size);
		r = bpf_map_get_next_key(fd, key, next);
	}
	return count;
}

static long count_map(const char *dir, const char *name)
{
	int fd = open_map(dir, name);
	long n;

	if (fd < 0)
		return -1;
	n = count_fd(fd);
	close(fd);
	return n;
}

static int cmd_wait(const char *dir, long fe, long be, long timeout_ms)
{
	uint64_t deadline = now_ns() + (uint64_t)timeout_ms * 1000000ull, t_fe = 0, t_last, t_done;
	long n_fe = -1, n_slots = -1, n_be = -1;

	for (;;) {
		uint64_t t;

		t_last = now_ns();
		if (!t_fe) {
			n_fe = count_map(dir, "lb4_fe");
			if (n_fe >= fe)
				t_fe = now_ns();
		}
		if (t_fe) {
			n_slots = count_map(dir, "lb_slots");
			n_be = count_map(dir, "lb_backends");
			if (n_slots >= be && n_be >= be)
				break;
		}
		t = now_ns();
		if (t > deadline) {
			printf("timeout count=%ld frontends=%ld slots=%ld\n", n_be, n_fe, n_slots);
			return 1;
		}
		sleep_us(t_fe ? 5000 : 2000);
	}
	t_done = now_ns();
	printf("done_ns=%llu count=%ld dump_ms=%.1f\n", (unsigned long long)t_done, n_be,
	       (double)(t_done - t_last) / 1e6);
	return 0;
}

static int cmd_serve(const char *dir)
{
	int fe_fd = open_map(dir, "lb4_fe"), svc_fd = open_map(dir, "lb_svc");
	char line[512];

	if (fe_fd < 0 || svc_fd < 0) {
		fprintf(stderr, "bpfwatch: cannot open lb4_fe / lb_svc in %s: %s\n", dir,
			strerror(errno));
		return 2;
	}
	setvbuf(stdout, NULL, _IOLBF, 0);
	while (fgets(line, sizeof(line), stdin)) {
		char verb[16], addr[64], proto[8];
		unsigned port;
		long want, timeout_ms;
		struct lb4_frontend_key key;
		uint64_t deadline;

		if (sscanf(line, "%15s", verb) == 1 && !strcmp(verb, "quit"))
			break;
		if (sscanf(line, "%15s %63s %u %7s %ld %ld", verb, addr, &port, proto, &want,
			   &timeout_ms) != 6 ||
		    strcmp(verb, "svc")) {
			printf("error bad command\n");
			continue;
		}
		memset(&key, 0, sizeof(key));
		if (inet_pton(AF_INET, addr, &key.addr) != 1) {
			printf("error bad address\n");
			continue;
		}
		key.port = htons((uint16_t)port);
		key.proto = !strcmp(proto, "udp") ? IPPROTO_UDP : IPPROTO_TCP;
		deadline = now_ns() + (uint64_t)timeout_ms * 1000000ull;
		for (bool first = true;; first = false) {
			uint64_t t0 = now_ns();
			struct lb_frontend fe;
			struct lb_service svc;

			if (bpf_map_lookup_elem(fe_fd, &key, &fe) == 0 &&
			    bpf_map_lookup_elem(svc_fd, &fe.svc_id, &svc) == 0 &&
			    (long)svc.count == want) {
				if (first)
					printf("already\n");
				else
					printf("ok %llu\n", (unsigned long long)t0);
				break;
			}
			if (first)
				printf("waiting\n");
			if (t0 > deadline) {
				printf("timeout\n");
				break;
			}
			sleep_us(200);
		}
	}
	return 0;
}

int main(int argc, char **argv)
{
	if (argc == 4 && !strcmp(argv[1], "count")) {
		printf("count=%ld\n", count_map(argv[2], argv[3]));
		return 0;
	}
	if (argc == 6 && !strcmp(argv[1], "wait"))
		return cmd_wait(argv[2], atol(argv[3]), atol(argv[4]), atol(argv[5]));
	if (argc == 3 && !strcmp(argv[1], "serve"))
		return cmd_serve(argv[2]);
	fprintf(stderr, "usage: bpfwatch count MAPS NAME\n"
			"       bpfwatch wait MAPS FRONTENDS BACKENDS TIMEOUT_MS\n"
			"       bpfwatch serve MAPS\n");
	return 2;
}
