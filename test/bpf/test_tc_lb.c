/* Packet fixtures for the packet-level programs (bpf/tc_lb.bpf.c), run with
 * BPF_PROG_TEST_RUN: each fixture names what it checks, builds an input
 * packet, fills the maps, and states the verdict and the packet that must
 * come out (byte for byte, checksums included).
 *
 * The test runs in a network namespace of its own with one veth whose far
 * end has a permanent neighbour entry, so that the programs' FIB lookups
 * find a route and a MAC address without touching the host's network.
 * Needs root. */
#include <arpa/inet.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <errno.h>
#include <linux/if_ether.h>
#include <net/if.h>
#include <sched.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdlib.h>
#include <unistd.h>

#include "kproxy/lb.h"
#include "tc_lb.skel.h"
#include "unit.h"

#define TC_ACT_OK	0
#define TC_ACT_SHOT	2
#define TC_ACT_REDIRECT 7

static const uint8_t MAC_DEV[6] = {0x02, 0, 0, 0, 0, 0x01};  /* dev0, the node's device */
static const uint8_t MAC_PEER[6] = {0x02, 0, 0, 0, 0, 0x02}; /* the neighbour on dev0 */
static const uint8_t MAC_CLIENT[6] = {0x02, 0, 0, 0, 0, 0x03};

static int ifindex_dev;

/* --- packets ------------------------------------------------------------- */

struct pkt {
	uint8_t b[256];
	size_t len;
};

static uint32_t sum16(const void *p, size_t n, uint32_t s)
{
	const uint8_t *b = p;

	for (size_t i = 0; i + 1 < n; i += 2)
		s += (uint32_t)(b[i] << 8 | b[i + 1]);
	if (n & 1)
		s += (uint32_t)(b[n - 1] << 8);
	return s;
}

static uint16_t fold(uint32_t s)
{
	while (s >> 16)
		s = (s & 0xffff) + (s >> 16);
	return (uint16_t)~s;
}

static void put16(uint8_t *p, uint16_t v)
{
	p[0] = (uint8_t)(v >> 8);
	p[1] = (uint8_t)v;
}

/* An Ethernet + IPv4 or IPv6 + TCP (SYN) or UDP ("hi") packet with correct
 * checksums. */
static struct pkt build(int af, uint8_t proto, const uint8_t *smac, const uint8_t *dmac,
			const char *saddr, const char *daddr, uint16_t sport, uint16_t dport,
			uint8_t ttl)
{
	struct pkt p = {0};
	uint8_t *ip = p.b + 14, *l4;
	size_t l4len = proto == IPPROTO_TCP ? 20 : 10, iplen = af == AF_INET ? 20 : 40;
	uint32_t s = 0;

	memcpy(p.b, dmac, 6);
	memcpy(p.b + 6, smac, 6);
	put16(p.b + 12, af == AF_INET ? ETH_P_IP : ETH_P_IPV6);
	if (af == AF_INET) {
		ip[0] = 0x45;
		put16(ip + 2, (uint16_t)(iplen + l4len));
		ip[8] = ttl;
		ip[9] = proto;
		inet_pton(AF_INET, saddr, ip + 12);
		inet_pton(AF_INET, daddr, ip + 16);
		put16(ip + 10, fold(sum16(ip, 20, 0)));
		s = sum16(ip + 12, 8, 0);
	} else {
		ip[0] = 0x60;
		put16(ip + 4, (uint16_t)l4len);
		ip[6] = proto;
		ip[7] = ttl;
		inet_pton(AF_INET6, saddr, ip + 8);
		inet_pton(AF_INET6, daddr, ip + 24);
		s = sum16(ip + 8, 32, 0);
	}
	l4 = ip + iplen;
	put16(l4, sport);
	put16(l4 + 2, dport);
	if (proto == IPPROTO_TCP) {
		l4[4] = 0x11; /* seq */
		l4[12] = 0x50;
		l4[13] = 0x02; /* SYN */
		put16(l4 + 14, 64240);
	} else {
		put16(l4 + 4, (uint16_t)l4len);
		l4[8] = 'h';
		l4[9] = 'i';
	}
	s += proto + (uint32_t)l4len;
	put16(l4 + (proto == IPPROTO_TCP ? 16 : 6), fold(sum16(l4, l4len, s)));
	p.len = 14 + iplen + l4len;
	return p;
}

static void dump(const char *what, const struct pkt *p)
{
	fprintf(stderr, "    %s:", what);
	for (size_t i = 0; i < p->len; i++)
		fprintf(stderr, "%s%02x", i % 16 ? " " : "\n      ", p->b[i]);
	fprintf(stderr, "\n");
}

/* --- maps ---------------------------------------------------------------- */

static void addr_of(int af, const char *s, __be32 *out)
{
	memset(out, 0, 16);
	inet_pton(af, s, out);
}

/* A Service with one frontend and the given endpoints (all for internal
 * and external traffic; a Maglev table spread over them). */
static void add_service(struct tc_lb_bpf *sk, uint32_t id, int af, uint8_t proto, const char *fe,
			uint16_t port, uint8_t kind, uint8_t fe_flags, const char *const *eps,
			uint16_t ep_port, uint32_t n, uint16_t svc_flags)
{
	struct lb_service svc = {.count = n,
				 .ext_count = n,
				 .flags = svc_flags,
				 .family = af == AF_INET ? LB_FAMILY_V4 : LB_FAMILY_V6,
				 .proto = proto};
	struct lb_frontend f = {.svc_id = id, .kind = kind, .flags = fe_flags};
	uint32_t table[LB_MAGLEV_SIZE], keys[LB_MAGLEV_SIZE], count = LB_MAGLEV_SIZE;
	int inner;

	bpf_map__update_elem(sk->maps.lb_svc, &id, 4, &svc, sizeof(svc), 0);
	for (uint32_t i = 0; i < n; i++) {
		struct lb_backend be = {.port = htons(ep_port), .svc_id = id, .family = svc.family};
		struct lb_slot_key sk_ = {id, i};
		uint32_t bid = id * 100 + i + 1;

		addr_of(af, eps[i], be.addr);
		bpf_map__update_elem(sk->maps.lb_backends, &bid, 4, &be, sizeof(be), 0);
		bpf_map__update_elem(sk->maps.lb_slots, &sk_, sizeof(sk_), &bid, 4, 0);
	}
	for (uint32_t i = 0; i < LB_MAGLEV_SIZE; i++) {
		keys[i] = i;
		table[i] = n ? id * 100 + i % n + 1 : 0;
	}
	if (n) {
		inner = bpf_map_create(BPF_MAP_TYPE_ARRAY, NULL, 4, 4, LB_MAGLEV_SIZE, NULL);
		bpf_map_update_batch(inner, keys, table, &count, NULL);
		bpf_map__update_elem(sk->maps.lb_maglev, &id, 4, &inner, 4, 0);
		close(inner);
	}
	if (af == AF_INET) {
		struct lb4_frontend_key k = {.port = htons(port), .proto = proto};

		if (fe)
			inet_pton(AF_INET, fe, &k.addr);
		bpf_map__update_elem(sk->maps.lb4_fe, &k, sizeof(k), &f, sizeof(f), 0);
	} else {
		struct lb6_frontend_key k = {.port = htons(port), .proto = proto};

		if (fe)
			inet_pton(AF_INET6, fe, k.addr);
		bpf_map__update_elem(sk->maps.lb6_fe, &k, sizeof(k), &f, sizeof(f), 0);
	}
}

static struct tc_lb_bpf *setup(void)
{
	struct tc_lb_bpf *sk = tc_lb_bpf__open_and_load();
	struct lb_device dev = {0};
	__be32 node4;
	struct lb6_addr_key node6;
	uint32_t one = 1, key = 0;

	if (!sk)
		return NULL;
	inet_pton(AF_INET, "10.0.0.1", &node4);
	inet_pton(AF_INET6, "fd00::1", node6.addr);
	bpf_map__update_elem(sk->maps.lb4_nodeaddr, &node4, 4, &one, 4, 0);
	bpf_map__update_elem(sk->maps.lb6_nodeaddr, &node6, sizeof(node6), &one, 4, 0);
	dev.addr4 = node4;
	memcpy(dev.addr6, node6.addr, 16);
	bpf_map__update_elem(sk->maps.lb_devices, &key, 4, &dev, sizeof(dev), 0);
	key = (uint32_t)ifindex_dev;
	bpf_map__update_elem(sk->maps.lb_devices, &key, 4, &dev, sizeof(dev), 0);
	return sk;
}

/* Runs prog on in; returns the verdict, with the packet in out. */
static int run(struct bpf_program *prog, const struct pkt *in, struct pkt *out)
{
	struct __sk_buff ctx = {.ifindex = (uint32_t)ifindex_dev,
				.ingress_ifindex = (uint32_t)ifindex_dev};
	LIBBPF_OPTS(bpf_test_run_opts, o, .data_in = in->b, .data_size_in = (uint32_t)in->len,
		    .data_out = out->b, .data_size_out = sizeof(out->b), .ctx_in = &ctx,
		    .ctx_size_in = sizeof(ctx));
	int r = bpf_prog_test_run_opts(bpf_program__fd(prog), &o);

	if (r < 0) {
		fprintf(stderr, "    test run: %s\n", strerror(-r));
		return -1;
	}
	out->len = o.data_size_out;
	return (int)o.retval;
}

/* Compares, naming the first differing byte. */
static bool same(const struct pkt *got, const struct pkt *want)
{
	if (got->len == want->len && memcmp(got->b, want->b, got->len) == 0)
		return true;
	dump("got", got);
	dump("want", want);
	return false;
}

/* --- fixtures ------------------------------------------------------------ */

struct fixture {
	const char *description;
	int af;
	uint8_t proto;
	/* input: client -> frontend */
	const char *client, *frontend;
	uint16_t cport, fport;
	/* the Service */
	uint8_t kind, fe_flags;
	uint16_t svc_flags;
	const char *const *eps;
	uint32_t n_eps;
	/* expected */
	int verdict;
	const char *out_src, *out_dst; /* NULL: no rewritten packet to check */
	uint16_t out_dport;
	bool snat_port; /* the source port is a fresh one from the SNAT range */
};

static const char *const eps4[] = {"10.0.0.2"};
static const char *const eps6[] = {"fd00::2"};

static const struct fixture fixtures[] = {
	{"NodePort TCP from outside, ETP Cluster: DNAT to the endpoint, SNAT to the node", AF_INET,
	 IPPROTO_TCP, "192.0.2.7", "10.0.0.1", 40000, 30080, LB_FE_NODEPORT, LB_FE_F_MASQ_EXT, 0,
	 eps4, 1, TC_ACT_REDIRECT, "10.0.0.1", "10.0.0.2", 8080, true},
	{"NodePort UDP from outside, ETP Local: DNAT only, the client's address kept", AF_INET,
	 IPPROTO_UDP, "192.0.2.7", "10.0.0.1", 40000, 30080, LB_FE_NODEPORT, 0, 0, eps4, 1,
	 TC_ACT_REDIRECT, "192.0.2.7", "10.0.0.2", 8080, false},
	{"LoadBalancer IP over IPv6 TCP, ETP Cluster", AF_INET6, IPPROTO_TCP, "2001:db8::7",
	 "fd00:90::1", 40000, 80, LB_FE_LB, LB_FE_F_MASQ_EXT, 0, eps6, 1, TC_ACT_REDIRECT,
	 "fd00::1", "fd00::2", 8080, true},
	{"externalIP UDP over IPv6, ETP Local", AF_INET6, IPPROTO_UDP, "2001:db8::7", "fd00:90::2",
	 40000, 53, LB_FE_EXTERNAL, 0, 0, eps6, 1, TC_ACT_REDIRECT, "2001:db8::7", "fd00::2", 8080,
	 false},
	{"not a frontend: passed on untouched", AF_INET, IPPROTO_TCP, "192.0.2.7", "10.0.0.9",
	 40000, 80, 0, 0, 0, NULL, 0, TC_ACT_OK, "192.0.2.7", "10.0.0.9", 80, false},
	{"no endpoints, TCP: ICMP port unreachable back out of the device", AF_INET, IPPROTO_TCP,
	 "192.0.2.7", "10.0.0.1", 40000, 30080, LB_FE_NODEPORT, LB_FE_F_MASQ_EXT, 0, NULL, 0,
	 TC_ACT_REDIRECT, NULL, NULL, 0, false},
	{"no endpoints, UDP over IPv6: ICMPv6 port unreachable", AF_INET6, IPPROTO_UDP,
	 "2001:db8::7", "fd00::1", 40000, 30080, LB_FE_NODEPORT, LB_FE_F_MASQ_EXT, 0, NULL, 0,
	 TC_ACT_REDIRECT, NULL, NULL, 0, false},
	{"no local endpoints under ETP Local: dropped", AF_INET, IPPROTO_UDP, "192.0.2.7",
	 "10.0.0.1", 40000, 30080, LB_FE_NODEPORT, 0, LB_SVC_F_EXT_DROP, NULL, 0, TC_ACT_SHOT, NULL,
	 NULL, 0, false},
	{"loadBalancerSourceRanges: a source outside every range is dropped", AF_INET, IPPROTO_TCP,
	 "192.0.2.7", "10.90.0.1", 40000, 80, LB_FE_LB, LB_FE_F_MASQ_EXT, LB_SVC_F_SRC_RANGES, eps4,
	 1, TC_ACT_SHOT, NULL, NULL, 0, false},
};

static void check_fixture(const struct fixture *f)
{
	struct tc_lb_bpf *sk = setup();
	struct pkt in, out = {0}, want;
	int v;

	fprintf(stderr, "  - %s\n", f->description);
	REQUIRE(sk);
	if (f->kind)
		add_service(sk, 1, f->af, f->proto, f->kind == LB_FE_NODEPORT ? NULL : f->frontend,
			    f->fport, f->kind, f->fe_flags, f->eps, 8080, f->n_eps, f->svc_flags);
	in = build(f->af, f->proto, MAC_CLIENT, MAC_DEV, f->client, f->frontend, f->cport, f->fport,
		   64);
	v = run(sk->progs.lb_dev_ingress, &in, &out);
	CHECK_EQ_INT(v, f->verdict);
	if (f->out_src) {
		uint16_t sport = f->cport;
		size_t l4 = 14 + (f->af == AF_INET ? 20 : 40);
		bool fwd = f->verdict == TC_ACT_REDIRECT;

		if (f->snat_port) {
			sport = (uint16_t)(out.b[l4] << 8 | out.b[l4 + 1]);
			CHECK(sport >= LB_SNAT_PORT_MIN);
		}
		/* Forwarded: new MACs from the neighbour entry, one hop less. */
		want = build(f->af, f->proto, fwd ? MAC_DEV : MAC_CLIENT, fwd ? MAC_PEER : MAC_DEV,
			     f->out_src, f->out_dst, sport, f->out_dport, fwd ? 63 : 64);
		CHECK(same(&out, &want));
	}
	if (!f->out_src && f->verdict == TC_ACT_REDIRECT) {
		/* An ICMP error from the frontend to the client, quoting the
		 * packet, with valid checksums. */
		size_t ipl = f->af == AF_INET ? 20 : 40;
		const uint8_t *ip = out.b + 14, *icmp = ip + ipl;
		uint32_t s = 0;

		CHECK(memcmp(out.b, MAC_CLIENT, 6) == 0);
		CHECK_EQ_INT(out.len, 14 + 2 * ipl + 8 + 8);
		if (f->af == AF_INET) {
			CHECK_EQ_INT(fold(sum16(ip, 20, 0)), 0);
			CHECK_EQ_INT(icmp[0], 3);
			CHECK_EQ_INT(icmp[1], 3);
			CHECK_EQ_INT(fold(sum16(icmp, 36, 0)), 0);
			CHECK(memcmp(icmp + 8, in.b + 14, 28) == 0);
		} else {
			s = sum16(ip + 8, 32, 0) + 58 + 56;
			CHECK_EQ_INT(icmp[0], 1);
			CHECK_EQ_INT(icmp[1], 4);
			CHECK_EQ_INT(fold(sum16(icmp, 56, s)), 0);
			CHECK(memcmp(icmp + 8, in.b + 14, 48) == 0);
		}
	}
	tc_lb_bpf__destroy(sk);
}

TEST(fixtures)
{
	for (size_t i = 0; i < sizeof(fixtures) / sizeof(fixtures[0]); i++)
		check_fixture(&fixtures[i]);
}

/* A reply from the endpoint to the masquerade address is turned back into
 * a packet from the frontend to the client. */
TEST(reply_is_reverse_translated)
{
	struct tc_lb_bpf *sk = setup();
	struct pkt in, out = {0}, rep, want;
	uint16_t sport;

	REQUIRE(sk);
	add_service(sk, 1, AF_INET, IPPROTO_TCP, NULL, 30080, LB_FE_NODEPORT, LB_FE_F_MASQ_EXT,
		    eps4, 8080, 1, 0);
	in = build(AF_INET, IPPROTO_TCP, MAC_CLIENT, MAC_DEV, "192.0.2.7", "10.0.0.1", 40000, 30080,
		   64);
	REQUIRE(run(sk->progs.lb_dev_ingress, &in, &out) == TC_ACT_REDIRECT);
	sport = (uint16_t)(out.b[34] << 8 | out.b[35]);
	rep = build(AF_INET, IPPROTO_TCP, MAC_PEER, MAC_DEV, "10.0.0.2", "10.0.0.1", 8080, sport,
		    64);
	/* The client sits behind the neighbour too (the default route). */
	CHECK_EQ_INT(run(sk->progs.lb_dev_ingress, &rep, &out), TC_ACT_REDIRECT);
	want = build(AF_INET, IPPROTO_TCP, MAC_DEV, MAC_PEER, "10.0.0.1", "192.0.2.7", 30080, 40000,
		     63);
	CHECK(same(&out, &want));
	/* The same flow's next packet keeps its endpoint and port. */
	CHECK_EQ_INT(run(sk->progs.lb_dev_ingress, &in, &out), TC_ACT_REDIRECT);
	CHECK_EQ_INT(out.b[34] << 8 | out.b[35], sport);
	tc_lb_bpf__destroy(sk);
}

static int quiet(enum libbpf_print_level level, const char *fmt, va_list ap)
{
	return level == LIBBPF_WARN ? vfprintf(stderr, fmt, ap) : 0;
}

/* A private network: dev0 (10.0.0.1/24, fd00::1/64) with the neighbour
 * 10.0.0.2 / fd00::2 at MAC_PEER, which is also the default gateway. */
static int private_net(void)
{
	static const char *const cmds[] = {
		"ip link set lo up",
		"ip link add dev0 address 02:00:00:00:00:01 type veth peer name dev1",
		"ip link set dev0 up",
		"ip link set dev1 up",
		"ip addr add 10.0.0.1/24 dev dev0",
		"ip addr add fd00::1/64 dev dev0 nodad",
		"ip neigh add 10.0.0.2 lladdr 02:00:00:00:00:02 dev dev0 nud permanent",
		"ip neigh add fd00::2 lladdr 02:00:00:00:00:02 dev dev0 nud permanent",
		"ip route add default via 10.0.0.2",
		"ip route add ::/0 via fd00::2",
		"sysctl -qw net.ipv4.ip_forward=1 net.ipv6.conf.all.forwarding=1",
	};

	if (unshare(CLONE_NEWNET) < 0)
		return -errno;
	for (size_t i = 0; i < sizeof(cmds) / sizeof(cmds[0]); i++) {
		if (system(cmds[i]) != 0) {
			fprintf(stderr, "failed: %s\n", cmds[i]);
			return -EIO;
		}
	}
	ifindex_dev = (int)if_nametoindex("dev0");
	return ifindex_dev > 0 ? 0 : -ENODEV;
}

int main(int argc, char **argv)
{
	static const struct unit_test tests[] = {T(fixtures), T(reply_is_reverse_translated)};

	libbpf_set_print(quiet);
	if (private_net() < 0) {
		printf("0 passed, 1 failed\n");
		return 1;
	}
	return unit_run(tests, sizeof(tests) / sizeof(tests[0]), argc, argv);
}
