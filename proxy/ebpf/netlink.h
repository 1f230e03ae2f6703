/* What the eBPF dataplane needs to know about the node's network, read over
 * rtnetlink: its addresses (NodePorts answer on them, and masqueraded
 * traffic leaves from them) and its links (the devices taking outside
 * traffic, and the pods' host-side veths). */
#ifndef KPROXY_EBPF_NETLINK_H
#define KPROXY_EBPF_NETLINK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "util/addr.h"

struct nl_addr {
	uint32_t ifindex;
	struct ipaddr addr;
	uint8_t scope; /* RT_SCOPE_* */
};

struct nl_link {
	uint32_t ifindex;
	char name[16];
	char kind[16]; /* "veth", "dummy", ...; "" when the kernel gives none */
	bool up;
};

/* Dumps every address, or every link, of the current network namespace.
 * Return the count with *ret an array the caller frees, or -errno. */
int nl_dump_addrs(struct nl_addr **ret);
int nl_dump_links(struct nl_link **ret);

#endif
