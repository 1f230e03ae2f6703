/* connbench: new-connection load for the benchmark's datapath rows.  Each
 * request is a fresh TCP connection: connect, send one line, read the answer
 * line (echod's "NAME CLIENT_IP CLIENT_PORT"), close.  Since conntrack and
 * NAT do their work on a connection's first packet, the connection rate is
 * what a Service proxy's per-connection cost shows in.
 *
 *   connbench [-c CONCURRENCY] [-d SECONDS] [-w WARMUP_SECONDS]
 *             [-t TIMEOUT_MS] ADDR:PORT...
 *
 * CONCURRENCY connections are kept in flight (default 1); targets are used in
 * turn.  Connections are closed with a reset (SO_LINGER 0) so that neither
 * the client's TIME_WAIT sockets nor conntrack's TIME_WAIT entries pile up
 * and limit the rate.  Prints one line:
 *
 *   conns=N errors=E seconds=S cps=R p50_ms=A p90_ms=B p99_ms=C max_ms=D
 *   err_refused=.. err_reset=.. err_timeout=.. err_other=..
 *
 * Latency is from the start of connect() to the answer line, for the
 * connections that completed after the warm-up.  Exit status 0 when at
 * least one connection completed. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define MAX_TARGETS 64
#define MAX_CONC    1024

enum state { S_IDLE, S_CONNECTING, S_READING };

struct slot {
	int fd;
	enum state st;
	uint64_t start;
	size_t got;
	char buf[256];
};

static struct sockaddr_in g_targets[MAX_TARGETS];
static int g_ntargets, g_next;
static int g_ep;
static long g_timeout_ms = 2000;
static uint64_t *g_lat;
static size_t g_nlat, g_caplat;
static long g_errors[4]; /* refused, reset, timeout, other */
static bool g_measuring;

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static void fail(const char *what)
{
	fprintf(stderr, "connbench: %s: %s\n", what, strerror(errno));
	exit(2);
}

static void count_error(int err)
{
	if (!g_measuring)
		return;
	if (err == ECONNREFUSED)
		g_errors[0]++;
	else if (err == ECONNRESET || err == EPIPE)
		g_errors[1]++;
	else if (err == ETIMEDOUT)
		g_errors[2]++;
	else
		g_errors[3]++;
}

static void record(uint64_t ns)
{
	if (!g_measuring)
		return;
	if (g_nlat == g_caplat) {
		g_caplat = g_caplat ? g_caplat * 2 : 65536;
		g_lat = realloc(g_lat, g_caplat * sizeof(*g_lat));
		if (!g_lat)
			fail("memory");
	}
	g_lat[g_nlat++] = ns;
}

static void finish(struct slot *s)
{
	if (s->fd >= 0)
		close(s->fd); /* SO_LINGER 0: a reset, no TIME_WAIT */
	s->fd = -1;
	s->st = S_IDLE;
}

static void start(struct slot *s)
{
	struct linger lg = {.l_onoff = 1, .l_linger = 0};
	struct epoll_event ev = {.events = EPOLLOUT, .data.ptr = s};
	const struct sockaddr_in *t = &g_targets[g_next];
	int one = 1;

	g_next = (g_next + 1) % g_ntargets;
	s->fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (s->fd < 0)
		fail("socket");
	setsockopt(s->fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
	setsockopt(s->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	s->start = now_ns();
	s->got = 0;
	if (connect(s->fd, (const struct sockaddr *)t, sizeof(*t)) < 0 && errno != EINPROGRESS) {
		count_error(errno);
		finish(s);
		return;
	}
	s->st = S_CONNECTING;
	if (epoll_ctl(g_ep, EPOLL_CTL_ADD, s->fd, &ev) < 0)
		fail("epoll_ctl");
}

static void on_event(struct slot *s)
{
	static const char req[] = "connbench\n";
	int err = 0;
	socklen_t len = sizeof(err);

	if (s->st == S_CONNECTING) {
		struct epoll_event ev = {.events = EPOLLIN, .data.ptr = s};

		if (getsockopt(s->fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0 || err) {
			count_error(err ? err : errno);
			finish(s);
			return;
		}
		if (send(s->fd, req, sizeof(req) - 1, MSG_NOSIGNAL) != (ssize_t)sizeof(req) - 1) {
			count_error(errno);
			finish(s);
			return;
		}
		s->st = S_READING;
		if (epoll_ctl(g_ep, EPOLL_CTL_MOD, s->fd, &ev) < 0)
			fail("epoll_ctl");
		return;
	}
	for (;;) {
		ssize_t n = recv(s->fd, s->buf + s->got, sizeof(s->buf) - s->got, 0);

		if (n > 0) {
			s->got += (size_t)n;
			if (memchr(s->buf, '\n', s->got)) {
				record(now_ns() - s->start);
				finish(s);
				return;
			}
			if (s->got == sizeof(s->buf)) {
				count_error(EPROTO);
				finish(s);
				return;
			}
			continue;
		}
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			return;
		count_error(n == 0 ? ECONNRESET : errno);
		finish(s);
		return;
	}
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

static double pct_ms(double p)
{
	size_t i;

	if (!g_nlat)
		return 0;
	i = (size_t)(p * (double)(g_nlat - 1) + 0.5);
	return (double)g_lat[i] / 1e6;
}

static void add_target(const char *arg)
{
	char host[64];
	const char *colon = strrchr(arg, ':');
	size_t hl;

	if (g_ntargets == MAX_TARGETS || !colon || (hl = (size_t)(colon - arg)) >= sizeof(host)) {
		fprintf(stderr, "connbench: bad target %s (ADDR:PORT, at most %d)\n", arg,
			MAX_TARGETS);
		exit(2);
	}
	memcpy(host, arg, hl);
	host[hl] = 0;
	memset(&g_targets[g_ntargets], 0, sizeof(g_targets[0]));
	g_targets[g_ntargets].sin_family = AF_INET;
	g_targets[g_ntargets].sin_port = htons((uint16_t)atoi(colon + 1));
	if (inet_pton(AF_INET, host, &g_targets[g_ntargets].sin_addr) != 1) {
		fprintf(stderr, "connbench: bad address %s\n", host);
		exit(2);
	}
	g_ntargets++;
}

int main(int argc, char **argv)
{
	double seconds = 3, warmup = 0.5;
	int conc = 1, opt;
	struct slot *slots;
	struct epoll_event evs[256];
	uint64_t t_begin, t_measure, t_end, t_last_check = 0;

	while ((opt = getopt(argc, argv, "c:d:w:t:")) != -1) {
		switch (opt) {
		case 'c':
			conc = atoi(optarg);
			break;
		case 'd':
			seconds = atof(optarg);
			break;
		case 'w':
			warmup = atof(optarg);
			break;
		case 't':
			g_timeout_ms = atol(optarg);
			break;
		default:
			goto usage;
		}
	}
	for (int i = optind; i < argc; i++)
		add_target(argv[i]);
	if (!g_ntargets || conc < 1 || conc > MAX_CONC || seconds <= 0 || warmup < 0)
		goto usage;
	signal(SIGPIPE, SIG_IGN);
	g_ep = epoll_create1(EPOLL_CLOEXEC);
	if (g_ep < 0)
		fail("epoll_create1");
	slots = calloc((size_t)conc, sizeof(*slots));
	if (!slots)
		fail("memory");
	t_begin = now_ns();
	t_measure = t_begin + (uint64_t)(warmup * 1e9);
	t_end = t_measure + (uint64_t)(seconds * 1e9);
	g_measuring = warmup == 0;
	for (int i = 0; i < conc; i++) {
		slots[i].fd = -1;
		start(&slots[i]);
	}
	for (;;) {
		int n = epoll_wait(g_ep, evs, 256, 10);
		uint64_t now;

		if (n < 0 && errno != EINTR)
			fail("epoll_wait");
		for (int i = 0; i < n; i++)
			on_event(evs[i].data.ptr);
		now = now_ns();
		if (!g_measuring && now >= t_measure) {
			g_measuring = true;
			t_measure = now;
		}
		if (now >= t_end)
			break;
		/* time-outs, checked every few milliseconds */
		if (now - t_last_check > 5000000ull) {
			t_last_check = now;
			for (int i = 0; i < conc; i++) {
				if (slots[i].st != S_IDLE &&
				    now - slots[i].start > (uint64_t)g_timeout_ms * 1000000ull) {
					count_error(ETIMEDOUT);
					finish(&slots[i]);
				}
			}
		}
		for (int i = 0; i < conc; i++) {
			if (slots[i].st == S_IDLE)
				start(&slots[i]);
		}
	}
	t_end = now_ns();
	qsort(g_lat, g_nlat, sizeof(*g_lat), cmp_u64);
	{
		double secs = (double)(t_end - t_measure) / 1e9;
		long errors = g_errors[0] + g_errors[1] + g_errors[2] + g_errors[3];

		printf("conns=%zu errors=%ld seconds=%.3f cps=%.1f p50_ms=%.4f p90_ms=%.4f "
		       "p99_ms=%.4f max_ms=%.4f err_refused=%ld err_reset=%ld err_timeout=%ld "
		       "err_other=%ld\n",
		       g_nlat, errors, secs, (double)g_nlat / secs, pct_ms(0.50), pct_ms(0.90),
		       pct_ms(0.99), g_nlat ? (double)g_lat[g_nlat - 1] / 1e6 : 0.0, g_errors[0],
		       g_errors[1], g_errors[2], g_errors[3]);
	}
	return g_nlat ? 0 : 1;
usage:
	fprintf(stderr, "usage: connbench [-c CONCURRENCY] [-d SECONDS] [-w WARMUP_SECONDS] "
			"[-t TIMEOUT_MS] ADDR:PORT...\n");
	return 2;
}
