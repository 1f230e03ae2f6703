/* nftwatch: reads nftables set elements straight from the kernel, for the
 * benchmark, which must see rules arrive in the kernel rather than trust an
 * agent's log.  Run it inside the network namespace to watch.
 *
 *   nftwatch count FAMILY TABLE SET
 *       prints "count=N" (the set's elements, by a netlink dump), or
 *       "count=-1" when the table or set does not exist
 *   nftwatch wait FAMILY TABLE SET KEYHEX COUNT TIMEOUT_MS
 *       polls (every 1 ms, one netlink get) until the element KEYHEX is in
 *       the set, and then until a dump of the set shows at least COUNT
 *       elements, all of one ruleset generation; prints "done_ns=T
 *       count=N dump_ms=D", where T (CLOCK_MONOTONIC) bounds from above the
 *       moment the set became complete (see cmd_wait), or "timeout count=N"
 *       and exits 1
 *   nftwatch serve FAMILY TABLE SET
 *       answers commands read from stdin, one per line:
 *         present KEYHEX TIMEOUT_MS  -> "ok T" once the element is there
 *         absent KEYHEX TIMEOUT_MS   -> "ok T" once it is gone
 *         count                      -> "count N"
 *       present and absent first answer "waiting" once they have seen the
 *       opposite state (or "already" when there is nothing to wait for),
 *       then "ok T" or "timeout".  While it waits it listens to
 *       the namespace's nftables notifications and checks the element again
 *       after each one (and at least every 1 ms), so T is within a few
 *       microseconds of the commit that changed it.
 *
 * FAMILY is ip or ip6; KEYHEX the element's key as the kernel stores it
 * (concatenated fields, each padded to 4 bytes).  T values are
 * CLOCK_MONOTONIC nanoseconds, comparable with Python's time.monotonic_ns().
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <arpa/inet.h>
#include <errno.h>
#include <libmnl/libmnl.h>
#include <linux/netfilter.h>
#include <linux/netfilter/nf_tables.h>
#include <linux/netfilter/nfnetlink.h>
#include <poll.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define RECV_BUF (256 * 1024)
#define KEY_MAX	 64

struct target {
	uint8_t family;
	const char *table;
	const char *set;
};

static struct mnl_socket *g_nl;
static unsigned int g_portid;
static uint32_t g_seq;
static char g_buf[RECV_BUF];

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static void die(const char *what)
{
	fprintf(stderr, "nftwatch: %s: %s\n", what, strerror(errno));
	exit(2);
}

static struct mnl_socket *open_socket(unsigned int groups)
{
	struct mnl_socket *nl = mnl_socket_open(NETLINK_NETFILTER);
	int size = 4 * 1024 * 1024;

	if (!nl)
		die("netlink socket");
	if (mnl_socket_bind(nl, groups, MNL_SOCKET_AUTOPID) < 0)
		die("netlink bind");
	/* A big receive buffer, so that dumps come in few, large reads. */
	setsockopt(mnl_socket_get_fd(nl), SOL_SOCKET, SO_RCVBUFFORCE, &size, sizeof(size));
	return nl;
}

static struct nlmsghdr *put_request(char *buf, const struct target *t, uint16_t flags)
{
	struct nlmsghdr *nlh = mnl_nlmsg_put_header(buf);
	struct nfgenmsg *nfg;

	nlh->nlmsg_type = (NFNL_SUBSYS_NFTABLES << 8) | NFT_MSG_GETSETELEM;
	nlh->nlmsg_flags = NLM_F_REQUEST | flags;
	nlh->nlmsg_seq = ++g_seq;
	nfg = mnl_nlmsg_put_extra_header(nlh, sizeof(*nfg));
	nfg->nfgen_family = t->family;
	nfg->version = NFNETLINK_V0;
	nfg->res_id = 0;
	mnl_attr_put_strz(nlh, NFTA_SET_ELEM_LIST_TABLE, t->table);
	mnl_attr_put_strz(nlh, NFTA_SET_ELEM_LIST_SET, t->set);
	return nlh;
}

/* Runs one request; cb sees each answer.  Returns 0, or -errno from the
 * kernel (-ENOENT: no such element, set or table). */
static int transact(struct nlmsghdr *nlh, mnl_cb_t cb, void *data)
{
	uint32_t seq = nlh->nlmsg_seq;
	int r;

	if (mnl_socket_sendto(g_nl, nlh, nlh->nlmsg_len) < 0)
		die("netlink send");
	for (;;) {
		ssize_t n = mnl_socket_recvfrom(g_nl, g_buf, sizeof(g_buf));

		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		r = mnl_cb_run(g_buf, (size_t)n, seq, g_portid, cb, data);
		if (r < 0)
			return errno ? -errno : -EIO;
		if (r == MNL_CB_STOP)
			return 0;
	}
}

static int ignore_cb(const struct nlmsghdr *nlh, void *data)
{
	return MNL_CB_OK;
}

/* Is the element with this key in the set?  1 yes, 0 no, -errno. */
static int has_element(const struct target *t, const uint8_t *key, size_t klen)
{
	char buf[MNL_SOCKET_BUFFER_SIZE];
	struct nlmsghdr *nlh = put_request(buf, t, NLM_F_ACK);
	struct nlattr *list, *elem, *k;
	int r;

	list = mnl_attr_nest_start(nlh, NFTA_SET_ELEM_LIST_ELEMENTS);
	elem = mnl_attr_nest_start(nlh, NFTA_LIST_ELEM);
	k = mnl_attr_nest_start(nlh, NFTA_SET_ELEM_KEY);
	mnl_attr_put(nlh, NFTA_DATA_VALUE, klen, key);
	mnl_attr_nest_end(nlh, k);
	mnl_attr_nest_end(nlh, elem);
	mnl_attr_nest_end(nlh, list);
	r = transact(nlh, ignore_cb, NULL);
	if (r == 0)
		return 1;
	if (r == -ENOENT)
		return 0;
	return r;
}

/* A dump's tally: elements, and whether every message came from the same
 * ruleset generation (the kernel puts its low 16 bits in res_id). */
struct tally {
	long count;
	int gen; /* -1 before the first message */
	bool mixed;
};

static int count_cb(const struct nlmsghdr *nlh, void *data)
{
	struct tally *tl = data;
	const struct nfgenmsg *nfg = mnl_nlmsg_get_payload(nlh);
	int gen = ntohs(nfg->res_id);
	struct nlattr *a, *e;

	if (tl->gen < 0)
		tl->gen = gen;
	else if (tl->gen != gen)
		tl->mixed = true;
	if (nlh->nlmsg_flags & NLM_F_DUMP_INTR)
		tl->mixed = true;
	mnl_attr_for_each(a, nlh, sizeof(struct nfgenmsg))
	{
		if (mnl_attr_get_type(a) != NFTA_SET_ELEM_LIST_ELEMENTS)
			continue;
		mnl_attr_for_each_nested(e, a)
		{
			if (mnl_attr_get_type(e) == NFTA_LIST_ELEM)
				tl->count++;
		}
	}
	return MNL_CB_OK;
}

/* Dumps the set: its elements (-1 when it does not exist), in tl. */
static void dump_elements(const struct target *t, struct tally *tl)
{
	char buf[MNL_SOCKET_BUFFER_SIZE];
	struct nlmsghdr *nlh = put_request(buf, t, NLM_F_DUMP);
	int r;

	memset(tl, 0, sizeof(*tl));
	tl->gen = -1;
	r = transact(nlh, count_cb, tl);
	if (r == -ENOENT) {
		tl->count = -1;
		return;
	}
	if (r < 0) {
		errno = -r;
		die("dump set elements");
	}
}

/* The number of elements in the set, or -1 when it does not exist. */
static long count_elements(const struct target *t)
{
	struct tally tl;

	dump_elements(t, &tl);
	return tl.count;
}

static int gen_cb(const struct nlmsghdr *nlh, void *data)
{
	struct nlattr *a;

	mnl_attr_for_each(a, nlh, sizeof(struct nfgenmsg))
	{
		if (mnl_attr_get_type(a) == NFTA_GEN_ID)
			*(uint32_t *)data = ntohl(mnl_attr_get_u32(a));
	}
	return MNL_CB_OK;
}

/* The current ruleset generation. */
static uint32_t get_gen(void)
{
	char buf[MNL_SOCKET_BUFFER_SIZE];
	struct nlmsghdr *nlh = mnl_nlmsg_put_header(buf);
	struct nfgenmsg *nfg;
	uint32_t gen = 0;
	int r;

	nlh->nlmsg_type = (NFNL_SUBSYS_NFTABLES << 8) | NFT_MSG_GETGEN;
	nlh->nlmsg_flags = NLM_F_REQUEST | NLM_F_ACK;
	nlh->nlmsg_seq = ++g_seq;
	nfg = mnl_nlmsg_put_extra_header(nlh, sizeof(*nfg));
	nfg->nfgen_family = AF_UNSPEC;
	nfg->version = NFNETLINK_V0;
	nfg->res_id = 0;
	r = transact(nlh, gen_cb, &gen);
	if (r < 0) {
		errno = -r;
		die("get ruleset generation");
	}
	return gen;
}

static int parse_family(const char *s)
{
	if (!strcmp(s, "ip"))
		return NFPROTO_IPV4;
	if (!strcmp(s, "ip6"))
		return NFPROTO_IPV6;
	fprintf(stderr, "nftwatch: family must be ip or ip6, not %s\n", s);
	exit(2);
}

static size_t parse_hex(const char *s, uint8_t *out)
{
	size_t n = strlen(s);

	if (n == 0 || n % 2 || n / 2 > KEY_MAX) {
		fprintf(stderr, "nftwatch: bad key %s\n", s);
		exit(2);
	}
	for (size_t i = 0; i < n / 2; i++) {
		unsigned v;

		if (sscanf(s + 2 * i, "%2x", &v) != 1) {
			fprintf(stderr, "nftwatch: bad key %s\n", s);
			exit(2);
		}
		out[i] = (uint8_t)v;
	}
	return n / 2;
}

static void sleep_us(long us)
{
	struct timespec ts = {.tv_sec = us / 1000000, .tv_nsec = (us % 1000000) * 1000};

	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}

/* Waits until the set holds the element key and at least want elements.
 * The time printed (done_ns) is an upper bound on when that became true: it
 * is taken right after reading the ruleset generation G, and a dump that
 * then reads G in every message shows the set as G left it.  A dump of a
 * large set takes long (the kernel walks the set again for every chunk),
 * which therefore never adds to done_ns. */
static int cmd_wait(const struct target *t, const char *hex, long want, long timeout_ms)
{
	uint8_t key[KEY_MAX];
	size_t klen = parse_hex(hex, key);
	uint64_t deadline = now_ns() + (uint64_t)timeout_ms * 1000000ull;
	struct tally tl = {.count = -1};
	int r;

	for (;;) {
		uint32_t gen = get_gen();
		uint64_t t_gen = now_ns();

		r = has_element(t, key, klen);
		if (r < 0) {
			errno = -r;
			die("get element");
		}
		if (r == 1) {
			dump_elements(t, &tl);
			if (tl.count >= want && !tl.mixed && tl.gen == (int)(gen & 0xffff)) {
				printf("done_ns=%llu count=%ld dump_ms=%.1f\n",
				       (unsigned long long)t_gen, tl.count,
				       (double)(now_ns() - t_gen) / 1e6);
				return 0;
			}
		}
		if (now_ns() > deadline) {
			printf("timeout count=%ld\n", r == 1 ? tl.count : count_elements(t));
			return 1;
		}
		sleep_us(1000);
	}
}

/* Drains pending notifications; true when there were any. */
static bool drain(struct mnl_socket *mon)
{
	bool any = false;

	for (;;) {
		ssize_t n = recv(mnl_socket_get_fd(mon), g_buf, sizeof(g_buf), MSG_DONTWAIT);

		if (n > 0) {
			any = true;
			continue;
		}
		/* ENOBUFS: notifications were lost, which still means a change */
		if (n < 0 && errno == ENOBUFS) {
			any = true;
			continue;
		}
		return any;
	}
}

static int cmd_serve(const struct target *t)
{
	struct mnl_socket *mon = open_socket(1u << (NFNLGRP_NFTABLES - 1));
	char line[512];

	setvbuf(stdout, NULL, _IOLBF, 0);
	while (fgets(line, sizeof(line), stdin)) {
		char verb[32], hex[2 * KEY_MAX + 2];
		long timeout_ms = 0;
		uint8_t key[KEY_MAX];
		size_t klen;
		uint64_t deadline;
		bool want;

		if (sscanf(line, "%31s", verb) != 1)
			continue;
		if (!strcmp(verb, "count")) {
			printf("count %ld\n", count_elements(t));
			continue;
		}
		if (!strcmp(verb, "quit"))
			break;
		if (sscanf(line, "%31s %129s %ld", verb, hex, &timeout_ms) != 3 ||
		    (strcmp(verb, "present") && strcmp(verb, "absent"))) {
			printf("error bad command\n");
			continue;
		}
		want = !strcmp(verb, "present");
		klen = parse_hex(hex, key);
		deadline = now_ns() + (uint64_t)timeout_ms * 1000000ull;
		drain(mon);
		for (bool first = true;; first = false) {
			uint64_t t0 = now_ns();
			int r = has_element(t, key, klen);
			struct pollfd pfd = {.fd = mnl_socket_get_fd(mon), .events = POLLIN};

			if (r < 0) {
				errno = -r;
				die("get element");
			}
			if ((r == 1) == want) {
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
			if (poll(&pfd, 1, 1) > 0)
				drain(mon);
		}
	}
	mnl_socket_close(mon);
	return 0;
}

static void usage(void)
{
	fprintf(stderr, "usage: nftwatch count FAMILY TABLE SET\n"
			"       nftwatch wait FAMILY TABLE SET KEYHEX COUNT TIMEOUT_MS\n"
			"       nftwatch serve FAMILY TABLE SET\n");
	exit(2);
}

int main(int argc, char **argv)
{
	struct target t;

	if (argc < 5)
		usage();
	t.family = (uint8_t)parse_family(argv[2]);
	t.table = argv[3];
	t.set = argv[4];
	g_nl = open_socket(0);
	g_portid = mnl_socket_get_portid(g_nl);
	if (!strcmp(argv[1], "count") && argc == 5) {
		printf("count=%ld\n", count_elements(&t));
		return 0;
	}
	if (!strcmp(argv[1], "wait") && argc == 8)
		return cmd_wait(&t, argv[5], atol(argv[6]), atol(argv[7]));
	if (!strcmp(argv[1], "serve") && argc == 5)
		return cmd_serve(&t);
	usage();
	return 2;
}
