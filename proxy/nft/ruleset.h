/* The shape of kproxy's nftables tables, "ip kproxy" and "ip6 kproxy": the
 * fixed chains and sets, and the handful of load-balancing chains, one per
 * endpoint count in use.  Per-Service state lives only in set elements (see
 * nft.c), so the number of chains does not grow with the number of Services
 * and the kernel never has to validate thousands of jump targets.
 *
 *   prerouting (nat, dstnat)  pod sources -> dispatch-int, others -> dispatch-ext
 *   output     (nat, dstnat)  -> dispatch-out
 *   dispatch-{int,ext,out}    mark for masquerade when the frontend is in
 *                             @masq-{int,ext,out}, then
 *                             ip daddr . meta l4proto . th dport vmap @fe-{int,ext};
 *                             on local addresses the same for NodePorts,
 *                             keyed meta l4proto . th dport (@np-*)
 *   lb-N, lb-ext-N            dnat to ip daddr . meta l4proto . th dport .
 *                             numgen random mod N map @backends(-ext)
 *   np-N, np-ext-N            the same for NodePorts, from @np-backends(-ext)
 *   no-endpoints              TCP reset / ICMP port unreachable
 *   postrouting (nat, srcnat) masquerade marked traffic and hairpin traffic
 *
 * The -ext variants serve external traffic of Services whose external and
 * internal traffic policies differ (and so use different endpoints).
 */
#ifndef KPROXY_NFT_RULESET_H
#define KPROXY_NFT_RULESET_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "nft/batch.h"
#include "util/addr.h"

#define NFT_TABLE_NAME "kproxy"
/* The chain that rejects traffic to Services without endpoints. */
#define NFT_NO_ENDPOINTS "no-endpoints"

enum nft_set {
	SET_FE_INT,	     /* frontend -> verdict, for traffic from pods */
	SET_FE_EXT,	     /* frontend -> verdict, for traffic from elsewhere */
	SET_NP_FE_INT,	     /* NodePort -> verdict, for traffic from pods */
	SET_NP_FE_EXT,	     /* NodePort -> verdict, for traffic from elsewhere */
	SET_BACKENDS,	     /* frontend . index -> endpoint */
	SET_BACKENDS_EXT,    /* frontend . index -> endpoint, external policy */
	SET_NP_BACKENDS,     /* NodePort . index -> endpoint */
	SET_NP_BACKENDS_EXT, /* NodePort . index -> endpoint, external policy */
	SET_MASQ_INT,	     /* frontends whose pod traffic is masqueraded */
	SET_MASQ_EXT,	     /* frontends whose outside traffic is masqueraded */
	SET_MASQ_OUT,	     /* frontends whose node-originated traffic is masqueraded */
	SET_NP_MASQ_INT,     /* the same three for NodePorts */
	SET_NP_MASQ_EXT,
	SET_NP_MASQ_OUT,
	SET_HAIRPIN,	    /* endpoint . endpoint: a pod reaching itself */
	SET_CLUSTER_IPS,    /* every ClusterIP: traffic left untranslated is refused */
	SET_SERVICE_CIDRS,  /* the ServiceCIDRs: unallocated addresses are dropped */
	SET_FW_FRONTENDS,   /* load-balancer frontends with loadBalancerSourceRanges */
	SET_FW_ALLOW,	    /* frontend . source range allowed to reach it */
	SET_NODEPORT_ADDRS, /* --nodeport-addresses */
	SET_POD_SOURCES,    /* pod CIDRs: traffic from them is "internal" */
	SET_COUNT,
};

/* Keys: a frontend is address . protocol . port, a NodePort protocol . port;
 * backends add the endpoint's index. */
enum nft_key_kind {
	KEY_FRONTEND,
	KEY_NODEPORT,
	KEY_FRONTEND_IDX,
	KEY_NODEPORT_IDX,
	KEY_PAIR,
	KEY_ADDR,
	KEY_FRONTEND_SADDR, /* frontend . source address */
};
enum nft_data_kind { DATA_NONE, DATA_VERDICT, DATA_ENDPOINT };

/* Set flavours: hashed, intervals of one field (rbtree), or intervals over
 * a concatenation (pipapo; elements carry a start key and an end key). */
enum nft_set_shape { SHAPE_HASH, SHAPE_INTERVAL, SHAPE_CONCAT_INTERVAL };

struct nft_set_def {
	const char *name;
	enum nft_key_kind key;
	enum nft_data_kind data;
	enum nft_set_shape shape;
};

extern const struct nft_set_def nft_sets[SET_COUNT];

/* Load-balancing chain kinds, by the map they read. */
enum nft_lb_kind { LB_SVC, LB_SVC_EXT, LB_NP, LB_NP_EXT, LB_KINDS };

/* Verdict targets other than the load-balancing chains, in elem.lb_kind. */
enum { LB_AFFINITY = 100, LB_REJECT = 255 };

struct nft_ruleset_config {
	uint8_t family; /* NFPROTO_IPV4 or NFPROTO_IPV6 */
	/* Pod traffic: from @pod-sources, or (when pod_iface is set) arriving
	 * on that interface, or on any whose name starts with it (iface_prefix). */
	const char *pod_iface;
	bool iface_prefix;
	uint32_t masq_mark; /* the fwmark bit meaning "masquerade me" */
	/* NodePorts answer only on local addresses in @nodeport-addresses
	 * (--nodeport-addresses), instead of on every local address. */
	bool nodeport_restricted;
};

/* Byte sizes of keys and data in a family. */
size_t nft_key_len(uint8_t family, enum nft_key_kind kind);
size_t nft_data_len(uint8_t family, enum nft_data_kind kind);

/* Appends, for one family: delete whatever table is there (without failing
 * when there is none), then create the table, its sets, its fixed chains and
 * rules.  Elements and load-balancing chains come after. */
int nft_ruleset_build(struct nft_batch *b, const struct nft_ruleset_config *cfg);
/* Appends the removal of the family's table, if present. */
int nft_ruleset_delete(struct nft_batch *b, uint8_t family);
/* Draws of the random slot a load-balancing chain makes before it settles
 * for slot 0: with more than a quarter of the slots filled, all draws miss
 * with probability below (3/4)^32, about 1e-4. */
#define NFT_LB_DRAWS 32

/* Appends the creation (add) or deletion of load-balancing chain kind-size. */
int nft_ruleset_lb_chain(struct nft_batch *b, uint8_t family, enum nft_lb_kind kind, uint32_t size,
			 bool add);
/* The chain of a Service port with session affinity (one per port and kind
 * of traffic): the endpoints in turn, each with its set of recent clients,
 * then a uniform random pick that records the client.  Endpoint i's set is
 * "aff-<id>-<nft_affinity_endpoint_id() in hex>" and must exist.  Appends the chain with its rules (replacing any rules it
 * had) when add, else its removal. */
struct nft_affinity {
	uint32_t id;
	uint8_t family;	  /* NFPROTO_* */
	uint32_t timeout; /* seconds */
	const struct ipaddr *addrs;
	const uint16_t *ports;
	size_t n;
};
int nft_ruleset_affinity_chain(struct nft_batch *b, const struct nft_affinity *aff, bool add,
			       bool exists);
/* Creates or deletes the client set of one endpoint of an affinity chain. */
int nft_ruleset_affinity_set(struct nft_batch *b, uint8_t family, uint32_t id, uint32_t ep,
			     uint32_t timeout, bool add);
/* The stable number naming an endpoint's client set. */
uint32_t nft_affinity_endpoint_id(const struct ipaddr *addr, uint16_t port);
/* Writes "aff-<id>" into buf (at least 24 bytes). */
const char *nft_affinity_chain_name(uint32_t id, char *buf);

/* Writes "lb-5", "np-ext-5", ... into buf (at least 24 bytes). */
const char *nft_lb_chain_name(enum nft_lb_kind kind, uint32_t n, char *buf);

#endif
