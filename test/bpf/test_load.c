/* Loads every BPF object kproxy builds through its skeleton, so that the
 * kernel's verifier checks each program: a program the verifier rejects
 * fails here, not on a user's node.  Needs root (CAP_BPF). */
#include <bpf/libbpf.h>
#include <errno.h>
#include <stdarg.h>

#include "kproxy/lb.h"
#include "sock_lb.skel.h"
#include "unit.h"

_Static_assert(sizeof(struct lb4_key) == 12, "lb4_key layout");
_Static_assert(sizeof(struct lb4_service) == 16, "lb4_service layout");
_Static_assert(sizeof(struct lb4_backend) == 8, "lb4_backend layout");

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
	CHECK(bpf_program__fd(skel->progs.sock4_connect) >= 0);
	CHECK(bpf_program__fd(skel->progs.sock4_sendmsg) >= 0);
	CHECK(bpf_map__fd(skel->maps.lb4_services) >= 0);
	sock_lb_bpf__destroy(skel);
}

UNIT_MAIN(T(sock_lb_loads))
