/* Rendering of Service ports into nftables set elements.
 *
 * A Service port becomes: per frontend (ClusterIP, externalIPs, load-balancer
 * IPs, NodePort) a verdict for traffic from pods and, where it differs, one
 * for traffic from elsewhere; its endpoints as slots of the backends maps; its
 * masquerade marks; its ClusterIP in @cluster-ips; its source-range firewall;
 * and the hairpin entries of its local endpoints.  The same function renders
 * what the kernel has and what it must have, so a sync is the difference of
 * two renderings.  No I/O here. */
#ifndef KPROXY_NFT_RENDER_H
#define KPROXY_NFT_RENDER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "dataplane.h"
#include "model/serviceport.h"
#include "nft/ruleset.h"

/* Room for the longest key: an IPv6 frontend . IPv6 source, start and end. */
#define ELEM_KEY_MAX 80

struct elem {
	uint8_t fam;	 /* 0 for IPv4, 1 for IPv6 */
	uint8_t set;	 /* enum nft_set */
	uint8_t key_len; /* bytes of key[] in use, start and end keys together */
	uint8_t end_off; /* for ranges over concatenations: where the end key starts; else 0 */
	uint8_t data_len;
	uint8_t lb_kind;  /* NFT_GOTO: enum nft_lb_kind, LB_AFFINITY or LB_REJECT */
	int32_t verdict;  /* verdict maps: NFT_GOTO or NF_DROP */
	uint32_t chain_n; /* NFT_GOTO: the load-balancing chain's size, or the affinity id */
	uint8_t key[ELEM_KEY_MAX];
	uint8_t data[20];
};

struct elems {
	struct elem *v;
	size_t n, cap;
};

/* A port's session-affinity chain for one kind of traffic, as programmed. */
struct affinity_spec {
	uint32_t id;	  /* 0: none */
	uint32_t timeout; /* seconds */
	struct endpoint *eps;
	size_t n;
};

/* What the dataplane records per Service port between syncs. */
struct port_state {
	uint32_t size[2];	     /* chain sizes, internal and external endpoints */
	struct affinity_spec aff[2]; /* affinity chains, internal and external */
};

struct render_config {
	bool pod_cidrs;	     /* --cluster-cidr given */
	bool masquerade_all; /* --masquerade-all */
	bool enabled[2];     /* families programmed */
};

/* Renders sp, whose chain sizes and affinity ids are those of st, into out.
 * Returns 0 or -ENOMEM. */
int render_port(const struct render_config *cfg, const struct svc_port *sp,
		const struct port_state *st, struct elems *out);

/* The chain size for n endpoints, given the size in use (prev, 0 for none):
 * a power of two at least n, kept while n is above a quarter of it. */
uint32_t render_lb_size(uint32_t prev, size_t n);

/* Whether external traffic uses endpoints of its own (the traffic policies
 * differ on a port reachable from outside). */
bool render_separate_ext(const struct svc_port *sp);

struct elem *elems_add(struct elems *out, int fam, enum nft_set set);
int elems_push(struct elems *out, const struct elem *e);
void elems_sort(struct elems *list);
int elem_key_cmp(const struct elem *a, const struct elem *b);
bool elem_data_equal(const struct elem *a, const struct elem *b);

#endif
