/* Loads every BPF object kproxy builds through its skeleton, so that the
 * kernel's verifier checks each program: a program the verifier rejects
 * fails here, not on a user's node.  Also checks that the shared map
 * layouts have the sizes both compilers must agree on.  Needs root
 * (CAP_BPF). */
#include <bpf/libbpf.h>
#include <errno.h>
#include <stdarg.h>

#include "kproxy/lb.h"
#include "sock_destroy.skel.h"
#include "sock_lb.skel.h"
#include "tc_lb.skel.h"
#include "unit.h"

_Static_assert(sizeof(struct lb4_frontend_key) == 8, "lb4_frontend_key layout");
_Static_assert(sizeof(struct lb6_frontend_key) == 20, "lb6_frontend_key layout");
_Static_assert(sizeof(struct lb_frontend) == 8, "lb_frontend layout");
_Static_assert(sizeof(struct lb_service) == 16, "lb_service layout");
_Static_assert(sizeof(struct lb_backend) == 24, "lb_backend layout");
_Static_assert(sizeof(struct lb_ct) == 56, "lb_ct layout");
_Static_assert(sizeof(struct lb4_ct_key) == 16, "lb4_ct_key layout");
_Static_assert(sizeof(struct lb6_ct_key) == 40, "lb6_ct_key layout");

static int quiet(enum libbpf_print_level level, const char *fmt, va_list ap)
{
	/* Keep the verifier's log for failures only. */
	if (level == LIBBPF_WARN)
		return vfprintf(stderr, fmt, ap);
	return 0;
}

TEST(sock_lb_loads)
{
	struct sock_lb_bpf *skel;

	libbpf_set_print(quiet);
	skel = sock_lb_bpf__open_and_load();
	REQUIRE(skel != NULL);
	CHECK(bpf_program__fd(skel->progs.lb4_connect) >= 0);
	CHECK(bpf_program__fd(skel->progs.lb6_sendmsg) >= 0);
	CHECK(bpf_program__fd(skel->progs.lb6_getpeername) >= 0);
	sock_lb_bpf__destroy(skel);
}

TEST(tc_lb_loads)
{
	struct tc_lb_bpf *skel;

	libbpf_set_print(quiet);
	skel = tc_lb_bpf__open();
	REQUIRE(skel != NULL);
	/* Load the per-packet pod path too, so the verifier sees all of it. */
	skel->rodata->pod_lb = 1;
	REQUIRE(tc_lb_bpf__load(skel) == 0);
	CHECK(bpf_program__fd(skel->progs.lb_dev_ingress) >= 0);
	CHECK(bpf_program__fd(skel->progs.lb_pod_ingress) >= 0);
	tc_lb_bpf__destroy(skel);
}

TEST(sock_destroy_loads)
{
	struct sock_destroy_bpf *skel;

	libbpf_set_print(quiet);
	skel = sock_destroy_bpf__open_and_load();
	REQUIRE(skel != NULL);
	CHECK(bpf_program__fd(skel->progs.lb_udp_destroy) >= 0);
	sock_destroy_bpf__destroy(skel);
}

UNIT_MAIN(T(sock_lb_loads), T(tc_lb_loads), T(sock_destroy_loads))
