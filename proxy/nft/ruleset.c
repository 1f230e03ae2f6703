/* Builds the fixed part of the nftables tables with libnftnl; see ruleset.h.
 *
 * Rules are assembled expression by expression, in the forms nft itself
 * produces, so that "nft list ruleset" shows them as ordinary nft syntax.
 *
 * Register use (32-bit registers, NFT_REG32_00 = 8): a key is built from
 * register 8 up (daddr, 4 or 16 bytes; then l4proto; then dport; then the
 * numgen index), and a looked-up endpoint lands in register 8 (address, then
 * port). */
#include "nft/ruleset.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/icmp6.h>
#include <netinet/ip_icmp.h>
#include <errno.h>
#include <libmnl/libmnl.h>
#include <libnftnl/chain.h>
#include <libnftnl/expr.h>
#include <libnftnl/rule.h>
#include <libnftnl/set.h>
#include <libnftnl/table.h>
#include <linux/netfilter.h>
#include <linux/netfilter/nf_nat.h>
#include <linux/netfilter/nf_tables.h>
#include <linux/netfilter/nf_conntrack_common.h>
#include <linux/netfilter/nf_conntrack_tuple_common.h>
#include <linux/rtnetlink.h>
#include <stdio.h>
#include <string.h>

#define R_KEY  NFT_REG32_00
#define R_TMP  NFT_REG32_00
#define DSTNAT -100
#define SRCNAT 100

/* nft's type ids, so that "nft list ruleset" shows the sets readably. */
#define T_IPADDR  7
#define T_IP6ADDR 8
#define T_PROTO	  12
#define T_SERVICE 13
#define T_MARK	  19
#define TYPE_BITS 6

const struct nft_set_def nft_sets[SET_COUNT] = {
	[SET_FE_INT] = {"fe-int", KEY_FRONTEND, DATA_VERDICT},
	[SET_FE_EXT] = {"fe-ext", KEY_FRONTEND, DATA_VERDICT},
	[SET_NP_FE_INT] = {"np-fe-int", KEY_NODEPORT, DATA_VERDICT},
	[SET_NP_FE_EXT] = {"np-fe-ext", KEY_NODEPORT, DATA_VERDICT},
	[SET_BACKENDS] = {"backends", KEY_FRONTEND_IDX, DATA_ENDPOINT},
	[SET_BACKENDS_EXT] = {"backends-ext", KEY_FRONTEND_IDX, DATA_ENDPOINT},
	[SET_NP_BACKENDS] = {"np-backends", KEY_NODEPORT_IDX, DATA_ENDPOINT},
	[SET_NP_BACKENDS_EXT] = {"np-backends-ext", KEY_NODEPORT_IDX, DATA_ENDPOINT},
	[SET_MASQ_INT] = {"masq-int", KEY_FRONTEND, DATA_NONE},
	[SET_MASQ_EXT] = {"masq-ext", KEY_FRONTEND, DATA_NONE},
	[SET_MASQ_OUT] = {"masq-out", KEY_FRONTEND, DATA_NONE},
	[SET_NP_MASQ_INT] = {"np-masq-int", KEY_NODEPORT, DATA_NONE},
	[SET_NP_MASQ_EXT] = {"np-masq-ext", KEY_NODEPORT, DATA_NONE},
	[SET_NP_MASQ_OUT] = {"np-masq-out", KEY_NODEPORT, DATA_NONE},
	[SET_HAIRPIN] = {"hairpin", KEY_PAIR, DATA_NONE},
	[SET_CLUSTER_IPS] = {"cluster-ips", KEY_ADDR, DATA_NONE},
	[SET_SERVICE_CIDRS] = {"service-cidrs", KEY_ADDR, DATA_NONE, SHAPE_INTERVAL},
	[SET_FW_FRONTENDS] = {"firewall-frontends", KEY_FRONTEND, DATA_NONE},
	[SET_FW_ALLOW] = {"firewall-allow", KEY_FRONTEND_SADDR, DATA_NONE, SHAPE_CONCAT_INTERVAL},
	[SET_NODEPORT_ADDRS] = {"nodeport-addresses", KEY_ADDR, DATA_NONE, SHAPE_INTERVAL},
	[SET_POD_SOURCES] = {"pod-sources", KEY_ADDR, DATA_NONE, SHAPE_INTERVAL},
};

static size_t addr_len(uint8_t family)
{
	return family == NFPROTO_IPV4 ? 4 : 16;
}

size_t nft_key_len(uint8_t family, enum nft_key_kind kind)
{
	switch (kind) {
	case KEY_FRONTEND:
		return addr_len(family) + 8; /* address . proto (padded) . port (padded) */
	case KEY_NODEPORT:
		return 8;
	case KEY_FRONTEND_IDX:
		return addr_len(family) + 12; /* ... . index */
	case KEY_NODEPORT_IDX:
		return 12;
	case KEY_PAIR:
		return 2 * addr_len(family);
	case KEY_ADDR:
		return addr_len(family);
	case KEY_FRONTEND_SADDR:
		return 2 * addr_len(family) + 8;
	}
	return 0;
}

size_t nft_data_len(uint8_t family, enum nft_data_kind kind)
{
	return kind == DATA_ENDPOINT ? addr_len(family) + 4 : 0; /* address . port (padded) */
}

static uint32_t addr_type(uint8_t family)
{
	return family == NFPROTO_IPV4 ? T_IPADDR : T_IP6ADDR;
}

static uint32_t concat(uint32_t a, uint32_t b)
{
	return (a << TYPE_BITS) | b;
}

static uint32_t key_type(uint8_t family, enum nft_key_kind kind)
{
	uint32_t np = concat(T_PROTO, T_SERVICE);

	switch (kind) {
	case KEY_FRONTEND:
		return concat(concat(addr_type(family), T_PROTO), T_SERVICE);
	case KEY_NODEPORT:
		return np;
	case KEY_FRONTEND_IDX:
		return concat(concat(concat(addr_type(family), T_PROTO), T_SERVICE), T_MARK);
	case KEY_NODEPORT_IDX:
		return concat(np, T_MARK);
	case KEY_PAIR:
		return concat(addr_type(family), addr_type(family));
	case KEY_ADDR:
		return addr_type(family);
	case KEY_FRONTEND_SADDR:
		return concat(concat(concat(addr_type(family), T_PROTO), T_SERVICE),
			      addr_type(family));
	}
	return 0;
}

const char *nft_lb_chain_name(enum nft_lb_kind kind, uint32_t n, char *buf)
{
	static const char *const prefix[LB_KINDS] = {"lb", "lb-ext", "np", "np-ext"};

	snprintf(buf, 24, "%s-%u", prefix[kind], n);
	return buf;
}

/* --- expression helpers; each returns the expression added, or NULL --- */

/* Set when an expression could not be allocated; put_rule() then refuses
 * the rule rather than send it with a piece missing. */
static bool expr_failed;

static struct nftnl_expr *add(struct nftnl_rule *r, const char *name)
{
	struct nftnl_expr *e = nftnl_expr_alloc(name);

	if (e)
		nftnl_rule_add_expr(r, e);
	else
		expr_failed = true;
	return e;
}

static void e_payload(struct nftnl_rule *r, uint32_t base, uint32_t off, uint32_t len,
		      uint32_t dreg)
{
	struct nftnl_expr *e = add(r, "payload");

	if (!e)
		return;
	nftnl_expr_set_u32(e, NFTNL_EXPR_PAYLOAD_BASE, base);
	nftnl_expr_set_u32(e, NFTNL_EXPR_PAYLOAD_OFFSET, off);
	nftnl_expr_set_u32(e, NFTNL_EXPR_PAYLOAD_LEN, len);
	nftnl_expr_set_u32(e, NFTNL_EXPR_PAYLOAD_DREG, dreg);
}

static void e_meta_load(struct nftnl_rule *r, uint32_t key, uint32_t dreg)
{
	struct nftnl_expr *e = add(r, "meta");

	if (!e)
		return;
	nftnl_expr_set_u32(e, NFTNL_EXPR_META_KEY, key);
	nftnl_expr_set_u32(e, NFTNL_EXPR_META_DREG, dreg);
}

static void e_meta_store(struct nftnl_rule *r, uint32_t key, uint32_t sreg)
{
	struct nftnl_expr *e = add(r, "meta");

	if (!e)
		return;
	nftnl_expr_set_u32(e, NFTNL_EXPR_META_KEY, key);
	nftnl_expr_set_u32(e, NFTNL_EXPR_META_SREG, sreg);
}

static void e_cmp(struct nftnl_rule *r, uint32_t sreg, uint32_t op, const void *data, size_t len)
{
	struct nftnl_expr *e = add(r, "cmp");

	if (!e)
		return;
	nftnl_expr_set_u32(e, NFTNL_EXPR_CMP_SREG, sreg);
	nftnl_expr_set_u32(e, NFTNL_EXPR_CMP_OP, op);
	nftnl_expr_set(e, NFTNL_EXPR_CMP_DATA, data, (uint32_t)len);
}

/* dreg = (sreg & mask) ^ xor over len bytes. */
static void e_bitwise(struct nftnl_rule *r, uint32_t sreg, uint32_t dreg, const void *mask,
		      const void * xor, size_t len)
{
	struct nftnl_expr *e = add(r, "bitwise");

	if (!e)
		return;
	nftnl_expr_set_u32(e, NFTNL_EXPR_BITWISE_SREG, sreg);
	nftnl_expr_set_u32(e, NFTNL_EXPR_BITWISE_DREG, dreg);
	nftnl_expr_set_u32(e, NFTNL_EXPR_BITWISE_LEN, (uint32_t)len);
	nftnl_expr_set(e, NFTNL_EXPR_BITWISE_MASK, mask, (uint32_t)len);
	nftnl_expr_set(e, NFTNL_EXPR_BITWISE_XOR, xor, (uint32_t)len);
}

static void e_lookup(struct nftnl_rule *r, const char *set, uint32_t sreg, int dreg)
{
	struct nftnl_expr *e = add(r, "lookup");

	if (!e)
		return;
	nftnl_expr_set_str(e, NFTNL_EXPR_LOOKUP_SET, set);
	nftnl_expr_set_u32(e, NFTNL_EXPR_LOOKUP_SREG, sreg);
	if (dreg >= 0)
		nftnl_expr_set_u32(e, NFTNL_EXPR_LOOKUP_DREG, (uint32_t)dreg);
}

static void e_imm(struct nftnl_rule *r, uint32_t dreg, const void *data, size_t len)
{
	struct nftnl_expr *e = add(r, "immediate");

	if (!e)
		return;
	nftnl_expr_set_u32(e, NFTNL_EXPR_IMM_DREG, dreg);
	nftnl_expr_set(e, NFTNL_EXPR_IMM_DATA, data, (uint32_t)len);
}

static void e_verdict(struct nftnl_rule *r, int verdict)
{
	struct nftnl_expr *e = add(r, "immediate");

	if (!e)
		return;
	nftnl_expr_set_u32(e, NFTNL_EXPR_IMM_DREG, NFT_REG_VERDICT);
	nftnl_expr_set_u32(e, NFTNL_EXPR_IMM_VERDICT, (uint32_t)verdict);
}

/* ct state & bits != 0 */
static void e_ct_state(struct nftnl_rule *r, uint32_t bits)
{
	struct nftnl_expr *e = add(r, "ct");
	uint32_t zero = 0;

	if (e) {
		nftnl_expr_set_u32(e, NFTNL_EXPR_CT_KEY, NFT_CT_STATE);
		nftnl_expr_set_u32(e, NFTNL_EXPR_CT_DREG, R_TMP);
	}
	e_bitwise(r, R_TMP, R_TMP, &bits, &zero, 4);
	e_cmp(r, R_TMP, NFT_CMP_NEQ, &zero, 4);
}

static void e_goto(struct nftnl_rule *r, const char *chain)
{
	struct nftnl_expr *e = add(r, "immediate");

	if (!e)
		return;
	nftnl_expr_set_u32(e, NFTNL_EXPR_IMM_DREG, NFT_REG_VERDICT);
	nftnl_expr_set_u32(e, NFTNL_EXPR_IMM_VERDICT, (uint32_t)NFT_GOTO);
	nftnl_expr_set_str(e, NFTNL_EXPR_IMM_CHAIN, chain);
}

static void e_masq(struct nftnl_rule *r)
{
	struct nftnl_expr *e = add(r, "masq");

	if (e)
		nftnl_expr_set_u32(e, NFTNL_EXPR_MASQ_FLAGS, NF_NAT_RANGE_PROTO_RANDOM_FULLY);
}

/* Loads the packet's frontend key: daddr . l4proto . th dport, or for
 * NodePorts l4proto . th dport.  Returns the next free register. */
static uint32_t e_frontend_key(struct nftnl_rule *r, uint8_t family, bool nodeport)
{
	uint32_t alen = (uint32_t)addr_len(family);
	uint32_t reg = R_KEY;

	if (!nodeport) {
		e_payload(r, NFT_PAYLOAD_NETWORK_HEADER, family == NFPROTO_IPV4 ? 16 : 24, alen,
			  reg);
		reg += alen / 4;
	}
	e_meta_load(r, NFT_META_L4PROTO, reg++);
	e_payload(r, NFT_PAYLOAD_TRANSPORT_HEADER, 2, 2, reg++);
	return reg;
}

/* Matches destinations that NodePorts answer on: local addresses other than
 * loopback, and only those in @nodeport-addresses when restricted. */
static void e_nodeport_addr(struct nftnl_rule *r, uint8_t family, bool restricted)
{
	struct nftnl_expr *e = add(r, "fib");
	uint32_t local = RTN_LOCAL;

	if (!e)
		return;
	nftnl_expr_set_u32(e, NFTNL_EXPR_FIB_FLAGS, NFTA_FIB_F_DADDR);
	nftnl_expr_set_u32(e, NFTNL_EXPR_FIB_RESULT, NFT_FIB_RESULT_ADDRTYPE);
	nftnl_expr_set_u32(e, NFTNL_EXPR_FIB_DREG, R_TMP);
	e_cmp(r, R_TMP, NFT_CMP_EQ, &local, sizeof(local));
	if (family == NFPROTO_IPV4) {
		uint8_t mask[4] = {255, 0, 0, 0}, zero[4] = {0}, net[4] = {127, 0, 0, 0};

		e_payload(r, NFT_PAYLOAD_NETWORK_HEADER, 16, 4, R_TMP);
		e_bitwise(r, R_TMP, R_TMP, mask, zero, 4);
		e_cmp(r, R_TMP, NFT_CMP_NEQ, net, 4);
	} else {
		struct in6_addr lo = IN6ADDR_LOOPBACK_INIT;

		e_payload(r, NFT_PAYLOAD_NETWORK_HEADER, 24, 16, R_TMP);
		e_cmp(r, R_TMP, NFT_CMP_NEQ, &lo, 16);
	}
	if (restricted) {
		e_payload(r, NFT_PAYLOAD_NETWORK_HEADER, family == NFPROTO_IPV4 ? 16 : 24,
			  family == NFPROTO_IPV4 ? 4 : 16, R_TMP);
		e_lookup(r, nft_sets[SET_NODEPORT_ADDRS].name, R_TMP, -1);
	}
}

static void e_set_mark(struct nftnl_rule *r, uint32_t bit, bool toggle)
{
	uint32_t mask = toggle ? 0xffffffffu : ~bit, xor = bit;

	e_meta_load(r, NFT_META_MARK, R_TMP);
	e_bitwise(r, R_TMP, R_TMP, &mask, &xor, 4);
	e_meta_store(r, NFT_META_MARK, R_TMP);
}

/* --- message helpers --- */

static int put_rule(struct nft_batch *b, struct nftnl_rule *r, const char *what)
{
	struct nlmsghdr *nlh = NULL;

	if (!expr_failed)
		nlh = nft_batch_msg(b, NFT_MSG_NEWRULE,
				    (uint16_t)nftnl_rule_get_u32(r, NFTNL_RULE_FAMILY),
				    NLM_F_CREATE | NLM_F_APPEND, what);
	expr_failed = false;
	if (!nlh) {
		nftnl_rule_free(r);
		return -ENOMEM;
	}
	nftnl_rule_nlmsg_build_payload(nlh, r);
	nft_batch_msg_done(b, nlh);
	nftnl_rule_free(r);
	return 0;
}

static struct nftnl_rule *new_rule(uint8_t family, const char *chain)
{
	struct nftnl_rule *r = nftnl_rule_alloc();

	if (!r)
		return NULL;
	nftnl_rule_set_u32(r, NFTNL_RULE_FAMILY, family);
	nftnl_rule_set_str(r, NFTNL_RULE_TABLE, NFT_TABLE_NAME);
	nftnl_rule_set_str(r, NFTNL_RULE_CHAIN, chain);
	return r;
}

static int put_chain_typed(struct nft_batch *b, uint8_t family, const char *name, int hook,
			   int prio, const char *type, bool add_it)
{
	struct nftnl_chain *c = nftnl_chain_alloc();
	struct nlmsghdr *nlh;
	char what[64];

	if (!c)
		return -ENOMEM;
	nftnl_chain_set_u32(c, NFTNL_CHAIN_FAMILY, family);
	nftnl_chain_set_str(c, NFTNL_CHAIN_TABLE, NFT_TABLE_NAME);
	nftnl_chain_set_str(c, NFTNL_CHAIN_NAME, name);
	if (hook >= 0) {
		nftnl_chain_set_u32(c, NFTNL_CHAIN_HOOKNUM, (uint32_t)hook);
		nftnl_chain_set_s32(c, NFTNL_CHAIN_PRIO, prio);
		nftnl_chain_set_str(c, NFTNL_CHAIN_TYPE, type);
		nftnl_chain_set_u32(c, NFTNL_CHAIN_POLICY, NF_ACCEPT);
	}
	snprintf(what, sizeof(what), "%s chain %s", add_it ? "adding" : "deleting", name);
	nlh = nft_batch_msg(b, add_it ? NFT_MSG_NEWCHAIN : NFT_MSG_DELCHAIN, family,
			    add_it ? NLM_F_CREATE : 0, what);
	if (!nlh) {
		nftnl_chain_free(c);
		return -ENOMEM;
	}
	nftnl_chain_nlmsg_build_payload(nlh, c);
	nft_batch_msg_done(b, nlh);
	nftnl_chain_free(c);
	return 0;
}

static int put_chain(struct nft_batch *b, uint8_t family, const char *name, int hook, int prio,
		     bool add_it)
{
	return put_chain_typed(b, family, name, hook, prio, "nat", add_it);
}

static int put_set(struct nft_batch *b, uint8_t family, const struct nft_set_def *def)
{
	struct nftnl_set *s = nftnl_set_alloc();
	struct nlmsghdr *nlh;
	uint32_t flags = 0;
	char what[64];

	if (!s)
		return -ENOMEM;
	nftnl_set_set_u32(s, NFTNL_SET_FAMILY, family);
	nftnl_set_set_str(s, NFTNL_SET_TABLE, NFT_TABLE_NAME);
	nftnl_set_set_str(s, NFTNL_SET_NAME, def->name);
	nftnl_set_set_u32(s, NFTNL_SET_KEY_TYPE, key_type(family, def->key));
	nftnl_set_set_u32(s, NFTNL_SET_KEY_LEN, (uint32_t)nft_key_len(family, def->key));
	switch (def->data) {
	case DATA_VERDICT:
		flags |= NFT_SET_MAP;
		nftnl_set_set_u32(s, NFTNL_SET_DATA_TYPE, NFT_DATA_VERDICT);
		nftnl_set_set_u32(s, NFTNL_SET_DATA_LEN, 0);
		break;
	case DATA_ENDPOINT:
		flags |= NFT_SET_MAP;
		nftnl_set_set_u32(s, NFTNL_SET_DATA_TYPE, concat(addr_type(family), T_SERVICE));
		nftnl_set_set_u32(s, NFTNL_SET_DATA_LEN, (uint32_t)nft_data_len(family, def->data));
		break;
	case DATA_NONE:
		break;
	}
	if (def->shape == SHAPE_INTERVAL)
		flags |= NFT_SET_INTERVAL;
	if (def->shape == SHAPE_CONCAT_INTERVAL) {
		/* Field lengths as nft gives them: address, proto, port, address. */
		uint8_t fields[NFT_REG32_COUNT] = {0};

		fields[0] = (uint8_t)addr_len(family);
		fields[1] = 1;
		fields[2] = 2;
		fields[3] = (uint8_t)addr_len(family);
		flags |= NFT_SET_INTERVAL | NFT_SET_CONCAT;
		nftnl_set_set_data(s, NFTNL_SET_DESC_CONCAT, fields, sizeof(fields));
	}
	nftnl_set_set_u32(s, NFTNL_SET_FLAGS, flags);
	nftnl_set_set_u32(s, NFTNL_SET_ID, (uint32_t)(def - nft_sets) + 1);
	snprintf(what, sizeof(what), "adding set %s", def->name);
	nlh = nft_batch_msg(b, NFT_MSG_NEWSET, family, NLM_F_CREATE, what);
	if (!nlh) {
		nftnl_set_free(s);
		return -ENOMEM;
	}
	nftnl_set_nlmsg_build_payload(nlh, s);
	nft_batch_msg_done(b, nlh);
	nftnl_set_free(s);
	return 0;
}

static int put_table(struct nft_batch *b, uint8_t family, uint16_t type)
{
	struct nftnl_table *t = nftnl_table_alloc();
	struct nlmsghdr *nlh;

	if (!t)
		return -ENOMEM;
	nftnl_table_set_u32(t, NFTNL_TABLE_FAMILY, family);
	nftnl_table_set_str(t, NFTNL_TABLE_NAME, NFT_TABLE_NAME);
	nlh = nft_batch_msg(b, type, family, type == NFT_MSG_NEWTABLE ? NLM_F_CREATE : 0,
			    type == NFT_MSG_NEWTABLE ? "adding table" : "deleting table");
	if (!nlh) {
		nftnl_table_free(t);
		return -ENOMEM;
	}
	nftnl_table_nlmsg_build_payload(nlh, t);
	nft_batch_msg_done(b, nlh);
	nftnl_table_free(t);
	return 0;
}

int nft_ruleset_delete(struct nft_batch *b, uint8_t family)
{
	int r;

	/* Adding an existing table is a no-op, so add-then-delete removes the
	 * table whether or not it was there, without failing the batch. */
	if ((r = put_table(b, family, NFT_MSG_NEWTABLE)) < 0)
		return r;
	return put_table(b, family, NFT_MSG_DELTABLE);
}

/* prerouting: pod traffic is "internal", everything else "external". */
static int build_prerouting(struct nft_batch *b, const struct nft_ruleset_config *cfg)
{
	uint8_t fam = cfg->family;
	struct nftnl_rule *r;
	int ret;

	if (!(r = new_rule(fam, "prerouting")))
		return -ENOMEM;
	if (cfg->pod_iface) {
		char name[16] = {0};
		size_t len = strlen(cfg->pod_iface);

		/* iifname "name" or "prefix*": compare the first len bytes, or
		 * the whole NUL-padded name. */
		snprintf(name, sizeof(name), "%s", cfg->pod_iface);
		e_meta_load(r, NFT_META_IIFNAME, R_TMP);
		e_cmp(r, R_TMP, NFT_CMP_EQ, name, cfg->iface_prefix ? len : sizeof(name));
	} else {
		e_payload(r, NFT_PAYLOAD_NETWORK_HEADER, fam == NFPROTO_IPV4 ? 12 : 8,
			  (uint32_t)addr_len(fam), R_TMP);
		e_lookup(r, nft_sets[SET_POD_SOURCES].name, R_TMP, -1);
	}
	e_goto(r, "dispatch-int");
	if ((ret = put_rule(b, r, "adding rule to prerouting")) < 0)
		return ret;
	if (!(r = new_rule(fam, "prerouting")))
		return -ENOMEM;
	e_goto(r, "dispatch-ext");
	return put_rule(b, r, "adding rule to prerouting");
}

/* The dispatch chain for one kind of traffic: mark what must be
 * masqueraded, then look the frontend up in fe and, when fe holds only what
 * differs for outside traffic, in the inside map after it; first by address,
 * then for NodePorts. */
static int build_dispatch(struct nft_batch *b, const struct nft_ruleset_config *cfg,
			  const char *chain, enum nft_set masq, enum nft_set fe,
			  enum nft_set np_masq, enum nft_set np_fe, bool fallback)
{
	uint8_t fam = cfg->family;
	int ret;

	for (int nodeport = 0; nodeport <= 1; nodeport++) {
		enum nft_set maps[2] = {nodeport ? np_fe : fe,
					nodeport ? SET_NP_FE_INT : SET_FE_INT};
		struct nftnl_rule *r;

		if (!(r = new_rule(fam, chain)))
			return -ENOMEM;
		if (nodeport)
			e_nodeport_addr(r, fam, cfg->nodeport_restricted);
		e_frontend_key(r, fam, nodeport);
		e_lookup(r, nft_sets[nodeport ? np_masq : masq].name, R_KEY, -1);
		e_set_mark(r, cfg->masq_mark, false);
		if ((ret = put_rule(b, r, "adding masquerade-mark rule")) < 0)
			return ret;

		for (int m = 0; m < (fallback ? 2 : 1); m++) {
			if (!(r = new_rule(fam, chain)))
				return -ENOMEM;
			if (nodeport)
				e_nodeport_addr(r, fam, cfg->nodeport_restricted);
			e_frontend_key(r, fam, nodeport);
			e_lookup(r, nft_sets[maps[m]].name, R_KEY, NFT_REG_VERDICT);
			if ((ret = put_rule(b, r, "adding frontend rule")) < 0)
				return ret;
		}
	}
	return 0;
}

static int build_postrouting(struct nft_batch *b, const struct nft_ruleset_config *cfg)
{
	uint8_t fam = cfg->family;
	uint32_t alen = (uint32_t)addr_len(fam), zero32 = 0;
	uint32_t bit = cfg->masq_mark, dnat = IPS_DST_NAT, mask_dnat = IPS_DST_NAT;
	struct nftnl_rule *r;
	int ret;

	/* meta mark & bit == bit: clear the bit, masquerade. */
	if (!(r = new_rule(fam, "postrouting")))
		return -ENOMEM;
	e_meta_load(r, NFT_META_MARK, R_TMP);
	e_bitwise(r, R_TMP, R_TMP, &bit, &zero32, 4);
	e_cmp(r, R_TMP, NFT_CMP_EQ, &bit, 4);
	e_set_mark(r, bit, true);
	e_masq(r);
	if ((ret = put_rule(b, r, "adding masquerade rule")) < 0)
		return ret;

	/* ct status dnat, saddr . daddr in @hairpin: masquerade. */
	if (!(r = new_rule(fam, "postrouting")))
		return -ENOMEM;
	{
		struct nftnl_expr *e = add(r, "ct");

		if (e) {
			nftnl_expr_set_u32(e, NFTNL_EXPR_CT_KEY, NFT_CT_STATUS);
			nftnl_expr_set_u32(e, NFTNL_EXPR_CT_DREG, R_TMP);
		}
		e_bitwise(r, R_TMP, R_TMP, &mask_dnat, &zero32, 4);
		e_cmp(r, R_TMP, NFT_CMP_EQ, &dnat, 4);
	}
	e_payload(r, NFT_PAYLOAD_NETWORK_HEADER, fam == NFPROTO_IPV4 ? 12 : 8, alen, R_KEY);
	e_payload(r, NFT_PAYLOAD_NETWORK_HEADER, fam == NFPROTO_IPV4 ? 16 : 24, alen,
		  R_KEY + alen / 4);
	e_lookup(r, nft_sets[SET_HAIRPIN].name, R_KEY, -1);
	e_masq(r);
	return put_rule(b, r, "adding hairpin rule");
}

static int build_reject(struct nft_batch *b, uint8_t fam)
{
	struct nftnl_rule *r;
	struct nftnl_expr *e;
	uint8_t tcp = IPPROTO_TCP;
	int ret;

	if (!(r = new_rule(fam, NFT_NO_ENDPOINTS)))
		return -ENOMEM;
	e_meta_load(r, NFT_META_L4PROTO, R_TMP);
	e_cmp(r, R_TMP, NFT_CMP_EQ, &tcp, 1);
	if ((e = add(r, "reject")))
		nftnl_expr_set_u32(e, NFTNL_EXPR_REJECT_TYPE, NFT_REJECT_TCP_RST);
	if ((ret = put_rule(b, r, "adding reject rule")) < 0)
		return ret;
	if (!(r = new_rule(fam, NFT_NO_ENDPOINTS)))
		return -ENOMEM;
	if ((e = add(r, "reject"))) {
		nftnl_expr_set_u32(e, NFTNL_EXPR_REJECT_TYPE, NFT_REJECT_ICMP_UNREACH);
		nftnl_expr_set_u8(e, NFTNL_EXPR_REJECT_CODE,
				  fam == NFPROTO_IPV4 ? ICMP_PORT_UNREACH
						      : ICMP6_DST_UNREACH_NOPORT);
	}
	return put_rule(b, r, "adding reject rule");
}

/* Refuses traffic to a ClusterIP on a port it does not serve (the packet
 * reached here untranslated) and drops traffic to unallocated addresses of
 * the ServiceCIDRs; both only for new connections.  Used on the forward and
 * output paths, after DNAT. */
static int build_cluster_ips_check(struct nft_batch *b, uint8_t fam, const char *chain)
{
	uint32_t alen = (uint32_t)addr_len(fam);
	struct nftnl_rule *r;
	int ret;

	if (!(r = new_rule(fam, chain)))
		return -ENOMEM;
	e_ct_state(r, NF_CT_STATE_BIT(IP_CT_NEW));
	e_payload(r, NFT_PAYLOAD_NETWORK_HEADER, fam == NFPROTO_IPV4 ? 16 : 24, alen, R_KEY);
	e_lookup(r, nft_sets[SET_CLUSTER_IPS].name, R_KEY, -1);
	e_goto(r, NFT_NO_ENDPOINTS);
	if ((ret = put_rule(b, r, "adding cluster-ip check")) < 0)
		return ret;
	if (!(r = new_rule(fam, chain)))
		return -ENOMEM;
	e_ct_state(r, NF_CT_STATE_BIT(IP_CT_NEW));
	e_payload(r, NFT_PAYLOAD_NETWORK_HEADER, fam == NFPROTO_IPV4 ? 16 : 24, alen, R_KEY);
	e_lookup(r, nft_sets[SET_SERVICE_CIDRS].name, R_KEY, -1);
	e_verdict(r, NF_DROP);
	return put_rule(b, r, "adding service-cidr check");
}

/* Filter chains: loadBalancerSourceRanges before DNAT, conntrack INVALID
 * drops and the ClusterIP checks after it. */
static int build_filters(struct nft_batch *b, uint8_t fam)
{
	uint32_t alen = (uint32_t)addr_len(fam);
	struct nftnl_rule *r;
	struct nftnl_expr *e;
	int ret;

	if ((ret = put_chain_typed(b, fam, "filter-prerouting", NF_INET_PRE_ROUTING, -110, "filter",
				   true)) < 0 ||
	    (ret = put_chain_typed(b, fam, "filter-forward", NF_INET_FORWARD, 0, "filter", true)) <
		    0 ||
	    (ret = put_chain_typed(b, fam, "filter-output", NF_INET_LOCAL_OUT, -90, "filter",
				   true)) < 0)
		return ret;

	/* ip daddr . proto . dport @firewall-frontends
	 * ip daddr . proto . dport . ip saddr != @firewall-allow drop */
	if (!(r = new_rule(fam, "filter-prerouting")))
		return -ENOMEM;
	e_frontend_key(r, fam, false);
	e_lookup(r, nft_sets[SET_FW_FRONTENDS].name, R_KEY, -1);
	e_payload(r, NFT_PAYLOAD_NETWORK_HEADER, fam == NFPROTO_IPV4 ? 12 : 8, alen,
		  R_KEY + alen / 4 + 2);
	if ((e = add(r, "lookup"))) {
		nftnl_expr_set_str(e, NFTNL_EXPR_LOOKUP_SET, nft_sets[SET_FW_ALLOW].name);
		nftnl_expr_set_u32(e, NFTNL_EXPR_LOOKUP_SREG, R_KEY);
		nftnl_expr_set_u32(e, NFTNL_EXPR_LOOKUP_FLAGS, NFT_LOOKUP_F_INV);
	}
	e_verdict(r, NF_DROP);
	if ((ret = put_rule(b, r, "adding source-range rule")) < 0)
		return ret;

	/* Packets conntrack cannot place (out of window, say) would otherwise
	 * reach an endpoint untranslated and be answered with a reset. */
	if (!(r = new_rule(fam, "filter-forward")))
		return -ENOMEM;
	e_ct_state(r, NF_CT_STATE_INVALID_BIT);
	e_verdict(r, NF_DROP);
	if ((ret = put_rule(b, r, "adding invalid-state rule")) < 0)
		return ret;
	if ((ret = build_cluster_ips_check(b, fam, "filter-forward")) < 0)
		return ret;
	return build_cluster_ips_check(b, fam, "filter-output");
}

int nft_ruleset_build(struct nft_batch *b, const struct nft_ruleset_config *cfg)
{
	uint8_t fam = cfg->family;
	struct nftnl_rule *r;
	int ret;

	if ((ret = nft_ruleset_delete(b, fam)) < 0 ||
	    (ret = put_table(b, fam, NFT_MSG_NEWTABLE)) < 0)
		return ret;
	for (int i = 0; i < SET_COUNT; i++) {
		if ((ret = put_set(b, fam, &nft_sets[i])) < 0)
			return ret;
	}
	if ((ret = put_chain(b, fam, "dispatch-int", -1, 0, true)) < 0 ||
	    (ret = put_chain(b, fam, "dispatch-ext", -1, 0, true)) < 0 ||
	    (ret = put_chain(b, fam, "dispatch-out", -1, 0, true)) < 0 ||
	    (ret = put_chain(b, fam, NFT_NO_ENDPOINTS, -1, 0, true)) < 0 ||
	    (ret = put_chain(b, fam, "prerouting", NF_INET_PRE_ROUTING, DSTNAT, true)) < 0 ||
	    (ret = put_chain(b, fam, "output", NF_INET_LOCAL_OUT, DSTNAT, true)) < 0 ||
	    (ret = put_chain(b, fam, "postrouting", NF_INET_POST_ROUTING, SRCNAT, true)) < 0)
		return ret;
	if ((ret = build_reject(b, fam)) < 0 || (ret = build_filters(b, fam)) < 0 ||
	    (ret = build_dispatch(b, cfg, "dispatch-int", SET_MASQ_INT, SET_FE_INT, SET_NP_MASQ_INT,
				  SET_NP_FE_INT, false)) < 0 ||
	    (ret = build_dispatch(b, cfg, "dispatch-ext", SET_MASQ_EXT, SET_FE_EXT, SET_NP_MASQ_EXT,
				  SET_NP_FE_EXT, true)) < 0 ||
	    (ret = build_dispatch(b, cfg, "dispatch-out", SET_MASQ_OUT, SET_FE_INT, SET_NP_MASQ_OUT,
				  SET_NP_FE_INT, false)) < 0 ||
	    (ret = build_prerouting(b, cfg)) < 0 || (ret = build_postrouting(b, cfg)) < 0)
		return ret;
	if (!(r = new_rule(fam, "output")))
		return -ENOMEM;
	e_goto(r, "dispatch-out");
	return put_rule(b, r, "adding rule to output");
}

int nft_ruleset_lb_chain(struct nft_batch *b, uint8_t fam, enum nft_lb_kind kind, uint32_t size,
			 bool add_it)
{
	static const enum nft_set maps[LB_KINDS] = {SET_BACKENDS, SET_BACKENDS_EXT, SET_NP_BACKENDS,
						    SET_NP_BACKENDS_EXT};
	uint32_t alen = (uint32_t)addr_len(fam), reg;
	char name[24];
	int ret;

	nft_lb_chain_name(kind, size, name);
	if ((ret = put_chain(b, fam, name, -1, 0, add_it)) < 0 || !add_it)
		return ret;
	/* NFT_LB_DRAWS draws of "dnat to <frontend> . numgen random mod size map
	 * @backends"; a draw of an empty slot misses and falls through to the
	 * next.  The last rule draws from slot 0 only, so a connection is never
	 * left unbalanced however unlucky the draws. */
	for (uint32_t draw = 0; draw <= (size > 1 ? NFT_LB_DRAWS : 0); draw++) {
		struct nftnl_rule *r = new_rule(fam, name);
		struct nftnl_expr *e;

		if (!r)
			return -ENOMEM;
		reg = e_frontend_key(r, fam, kind == LB_NP || kind == LB_NP_EXT);
		if ((e = add(r, "numgen"))) {
			nftnl_expr_set_u32(e, NFTNL_EXPR_NG_DREG, reg);
			nftnl_expr_set_u32(e, NFTNL_EXPR_NG_MODULUS,
					   draw == NFT_LB_DRAWS ? 1 : size);
			nftnl_expr_set_u32(e, NFTNL_EXPR_NG_TYPE, NFT_NG_RANDOM);
			nftnl_expr_set_u32(e, NFTNL_EXPR_NG_OFFSET, 0);
		}
		e_lookup(r, nft_sets[maps[kind]].name, R_KEY, R_KEY);
		if ((e = add(r, "nat"))) {
			nftnl_expr_set_u32(e, NFTNL_EXPR_NAT_TYPE, NFT_NAT_DNAT);
			nftnl_expr_set_u32(e, NFTNL_EXPR_NAT_FAMILY, fam);
			nftnl_expr_set_u32(e, NFTNL_EXPR_NAT_REG_ADDR_MIN, R_KEY);
			nftnl_expr_set_u32(e, NFTNL_EXPR_NAT_REG_PROTO_MIN, R_KEY + alen / 4);
		}
		if ((ret = put_rule(b, r, "adding load-balancing rule")) < 0)
			return ret;
	}
	return 0;
}

const char *nft_affinity_chain_name(uint32_t id, char *buf)
{
	snprintf(buf, 24, "aff-%u", id);
	return buf;
}

static void affinity_set_name(uint32_t id, uint32_t ep, char *buf, size_t len)
{
	snprintf(buf, len, "aff-%u-%08x", id, ep);
}

int nft_ruleset_affinity_set(struct nft_batch *b, uint8_t fam, uint32_t id, uint32_t ep,
			     uint32_t timeout, bool add_it)
{
	struct nftnl_set *s = nftnl_set_alloc();
	struct nlmsghdr *nlh;
	char name[48], what[96];

	if (!s)
		return -ENOMEM;
	affinity_set_name(id, ep, name, sizeof(name));
	nftnl_set_set_u32(s, NFTNL_SET_FAMILY, fam);
	nftnl_set_set_str(s, NFTNL_SET_TABLE, NFT_TABLE_NAME);
	nftnl_set_set_str(s, NFTNL_SET_NAME, name);
	if (add_it) {
		nftnl_set_set_u32(s, NFTNL_SET_KEY_TYPE, addr_type(fam));
		nftnl_set_set_u32(s, NFTNL_SET_KEY_LEN, (uint32_t)addr_len(fam));
		nftnl_set_set_u32(s, NFTNL_SET_FLAGS, NFT_SET_TIMEOUT | NFT_SET_EVAL);
		nftnl_set_set_u64(s, NFTNL_SET_TIMEOUT, (uint64_t)timeout * 1000);
		nftnl_set_set_u32(s, NFTNL_SET_ID, 1000 + id);
	}
	snprintf(what, sizeof(what), "%s set %s", add_it ? "adding" : "deleting", name);
	nlh = nft_batch_msg(b, add_it ? NFT_MSG_NEWSET : NFT_MSG_DELSET, fam,
			    add_it ? NLM_F_CREATE : 0, what);
	if (!nlh) {
		nftnl_set_free(s);
		return -ENOMEM;
	}
	nftnl_set_nlmsg_build_payload(nlh, s);
	nft_batch_msg_done(b, nlh);
	nftnl_set_free(s);
	return 0;
}

/* update @set { ip saddr } dnat ip to addr:port */
static void e_affinity_pick(struct nftnl_rule *r, const struct nft_affinity *aff, size_t i,
			    const char *set)
{
	uint32_t alen = (uint32_t)addr_len(aff->family);
	uint8_t port[4] = {(uint8_t)(aff->ports[i] >> 8), (uint8_t)(aff->ports[i] & 0xff), 0, 0};
	struct nftnl_expr *e;

	e_payload(r, NFT_PAYLOAD_NETWORK_HEADER, aff->family == NFPROTO_IPV4 ? 12 : 8, alen, R_KEY);
	if ((e = add(r, "dynset"))) {
		nftnl_expr_set_str(e, NFTNL_EXPR_DYNSET_SET_NAME, set);
		nftnl_expr_set_u32(e, NFTNL_EXPR_DYNSET_SREG_KEY, R_KEY);
		nftnl_expr_set_u32(e, NFTNL_EXPR_DYNSET_OP, NFT_DYNSET_OP_UPDATE);
	}
	e_imm(r, R_KEY, aff->addrs[i].bytes, alen);
	e_imm(r, R_KEY + alen / 4, port, 2);
	if ((e = add(r, "nat"))) {
		nftnl_expr_set_u32(e, NFTNL_EXPR_NAT_TYPE, NFT_NAT_DNAT);
		nftnl_expr_set_u32(e, NFTNL_EXPR_NAT_FAMILY, aff->family);
		nftnl_expr_set_u32(e, NFTNL_EXPR_NAT_REG_ADDR_MIN, R_KEY);
		nftnl_expr_set_u32(e, NFTNL_EXPR_NAT_REG_PROTO_MIN, R_KEY + alen / 4);
	}
}

int nft_ruleset_affinity_chain(struct nft_batch *b, const struct nft_affinity *aff, bool add_it,
			       bool exists)
{
	uint32_t alen = (uint32_t)addr_len(aff->family);
	char name[24], set[48];
	int ret;

	nft_affinity_chain_name(aff->id, name);
	if (!add_it)
		return put_chain(b, aff->family, name, -1, 0, false);
	if (exists) {
		/* A rule deletion naming only the chain flushes it. */
		struct nftnl_rule *r = new_rule(aff->family, name);
		struct nlmsghdr *nlh;

		if (!r)
			return -ENOMEM;
		nlh = nft_batch_msg(b, NFT_MSG_DELRULE, aff->family, 0, "flushing affinity chain");
		if (!nlh) {
			nftnl_rule_free(r);
			return -ENOMEM;
		}
		nftnl_rule_nlmsg_build_payload(nlh, r);
		nft_batch_msg_done(b, nlh);
		nftnl_rule_free(r);
	} else if ((ret = put_chain(b, aff->family, name, -1, 0, true)) < 0) {
		return ret;
	}
	/* A client seen recently goes back to its endpoint. */
	for (size_t i = 0; i < aff->n; i++) {
		struct nftnl_rule *r = new_rule(aff->family, name);
		uint32_t h = nft_affinity_endpoint_id(&aff->addrs[i], aff->ports[i]);

		if (!r)
			return -ENOMEM;
		affinity_set_name(aff->id, h, set, sizeof(set));
		e_payload(r, NFT_PAYLOAD_NETWORK_HEADER, aff->family == NFPROTO_IPV4 ? 12 : 8, alen,
			  R_KEY);
		e_lookup(r, set, R_KEY, -1);
		e_affinity_pick(r, aff, i, set);
		if ((ret = put_rule(b, r, "adding affinity rule")) < 0)
			return ret;
	}
	/* A new client: endpoint i with probability 1/(n-i) among those left,
	 * which makes every endpoint equally likely. */
	for (size_t i = 0; i < aff->n; i++) {
		struct nftnl_rule *r = new_rule(aff->family, name);
		uint32_t h = nft_affinity_endpoint_id(&aff->addrs[i], aff->ports[i]);
		struct nftnl_expr *e;
		uint32_t zero = 0;

		if (!r)
			return -ENOMEM;
		affinity_set_name(aff->id, h, set, sizeof(set));
		if (i + 1 < aff->n && (e = add(r, "numgen"))) {
			nftnl_expr_set_u32(e, NFTNL_EXPR_NG_DREG, R_TMP);
			nftnl_expr_set_u32(e, NFTNL_EXPR_NG_MODULUS, (uint32_t)(aff->n - i));
			nftnl_expr_set_u32(e, NFTNL_EXPR_NG_TYPE, NFT_NG_RANDOM);
			nftnl_expr_set_u32(e, NFTNL_EXPR_NG_OFFSET, 0);
			e_cmp(r, R_TMP, NFT_CMP_EQ, &zero, 4);
		}
		e_affinity_pick(r, aff, i, set);
		if ((ret = put_rule(b, r, "adding affinity rule")) < 0)
			return ret;
	}
	return 0;
}

uint32_t nft_affinity_endpoint_id(const struct ipaddr *addr, uint16_t port)
{
	uint32_t h = 2166136261u;

	for (size_t i = 0; i < 16; i++) {
		h ^= addr->bytes[i];
		h *= 16777619u;
	}
	h ^= port;
	h *= 16777619u;
	return h;
}
