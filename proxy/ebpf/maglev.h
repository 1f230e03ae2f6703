/* Maglev consistent hashing (Eisenbud et al., NSDI 2016): fills a lookup
 * table of a prime size so that each backend owns a near-equal share of the
 * entries, and adding or removing one backend moves only about its share.
 *
 * A backend's place in the table depends only on its name (here its
 * address and port), so every node computes the same table for the same
 * endpoints, and a restarted agent the same one it had. */
#ifndef KPROXY_EBPF_MAGLEV_H
#define KPROXY_EBPF_MAGLEV_H

#include <stddef.h>
#include <stdint.h>

#include "util/addr.h"

struct maglev_backend {
	struct ipaddr addr; /* endpoint address */
	uint16_t port;	    /* endpoint port */
	uint32_t id;	    /* what the table entries hold */
};

/* Fills table[0..size-1] (size prime) with the ids of the n backends
 * (n > 0).  Returns 0, or -ENOMEM. */
int maglev_fill(const struct maglev_backend *bes, size_t n, uint32_t *table, uint32_t size);

#endif
