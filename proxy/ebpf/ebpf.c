/* The eBPF dataplane: socket-level load balancing for everything that
 * starts on the node (pods and host processes, through cgroup hooks) and
 * packet-level load balancing for what arrives from outside (tc programs on
 * the devices) and for replies to pods' endpoints (on the pods' veths).
 *
 * A sync writes the changed Services into the pinned maps (services.c), and
 * keeps the node's side current: its addresses (NodePorts answer on them),
 * the devices and pod veths the packet programs are attached to.  After a
 * sync that removed endpoints, UDP sockets still connected to them are
 * ended so that their applications reconnect to a live endpoint.
 *
 * Nothing is removed on exit: a restarted agent loads the same pinned maps,
 * swaps its programs into the pinned links and claims the Services it finds
 * (services.h), so that no connection and no moment of service is lost. */
#include <errno.h>
#include <net/if.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include <bpf/bpf.h>
#include <linux/rtnetlink.h>

#include "dataplane.h"
#include "ebpf/loader.h"
#include "ebpf/netlink.h"
#include "ebpf/services.h"
#include "kproxy/lb.h"
#include "util/log.h"

#define DEFAULT_PIN_PATH "/sys/fs/bpf/kproxy"

struct dataplane {
	struct dataplane_config cfg;
	char pin_path[512];
	struct ebpf_loader *loader;
	struct svc_table *svcs;
	bool need_adopt;
	int nodeaddr4, nodeaddr6, devices_fd;
	uint32_t *devs, *pods; /* attached now */
	size_t n_devs, n_pods;
	bool tc_done;
	struct ipaddr *primary; /* --nodeport-addresses=primary: the Node's addresses */
	size_t n_primary;
	/* SCTP Service ports are translated by nftables rules: rewriting an SCTP
	 * packet means recomputing its CRC32c, which BPF here cannot offload. */
	struct dataplane *sctp;
	struct dataplane_stats stats;
};

static int map_fd(struct dataplane *dp, const char *name)
{
	return ebpf_loader_map_fd(dp->loader, name);
}

/* --- the node ------------------------------------------------------------ */

static bool is_loopback(const struct ipaddr *a)
{
	static const uint8_t lo6[16] = {[15] = 1};

	return a->family == AF_INET ? a->bytes[0] == 127 : memcmp(a->bytes, lo6, 16) == 0;
}

static bool in_list(const uint32_t *v, size_t n, uint32_t x)
{
	for (size_t i = 0; i < n; i++) {
		if (v[i] == x)
			return true;
	}
	return false;
}

/* Whether NodePorts answer on a local address (--nodeport-addresses). */
static bool nodeport_addr(const struct dataplane *dp, const struct ipaddr *a)
{
	if (dp->cfg.nodeport_primary) {
		for (size_t i = 0; i < dp->n_primary; i++) {
			if (ipaddr_equal(&dp->primary[i], a))
				return true;
		}
		return false;
	}
	if (!dp->cfg.n_nodeport_cidrs)
		return true;
	for (size_t i = 0; i < dp->cfg.n_nodeport_cidrs; i++) {
		if (cidr_contains(&dp->cfg.nodeport_cidrs[i], a))
			return true;
	}
	return false;
}

/* Makes a hash map from addresses to 1 hold exactly want[0..n). */
static int sync_addr_map(int fd, size_t klen, const uint8_t *want, size_t n)
{
	uint8_t key[16], next[16], *gone = NULL;
	size_t n_gone = 0;
	void *prev = NULL;
	uint32_t one = 1;
	int r = 0;

	for (size_t i = 0; i < n && r == 0; i++)
		r = bpf_map_update_elem(fd, want + i * klen, &one, BPF_ANY);
	while (r == 0 && bpf_map_get_next_key(fd, prev, next) == 0) {
		bool keep = false;

		memcpy(key, next, klen);
		prev = key;
		for (size_t i = 0; i < n && !keep; i++)
			keep = memcmp(want + i * klen, key, klen) == 0;
		if (keep)
			continue;
		if (!(gone = realloc(gone, (n_gone + 1) * klen)))
			return -ENOMEM;
		memcpy(gone + n_gone++ * klen, key, klen);
	}
	for (size_t i = 0; i < n_gone; i++)
		bpf_map_delete_elem(fd, gone + i * klen);
	free(gone);
	return r;
}

/* The devices: those named by --devices, or those holding a node address. */
static bool is_device(const struct dataplane *dp, const struct nl_link *l, const struct nl_addr *a,
		      int n_a)
{
	if (dp->cfg.devices && *dp->cfg.devices) {
		const char *p = dp->cfg.devices;
		size_t len = strlen(l->name);

		while (*p) {
			size_t n = strcspn(p, ",");

			if (n == len && strncmp(p, l->name, n) == 0)
				return true;
			p += n + (p[n] == ',');
		}
		return false;
	}
	if (strcmp(l->name, "lo") == 0)
		return false;
	for (int i = 0; i < n_a; i++) {
		if (a[i].ifindex == l->ifindex && a[i].scope == RT_SCOPE_UNIVERSE &&
		    !is_loopback(&a[i].addr))
			return true;
	}
	return false;
}

/* Reads the node's addresses and links and brings the maps and the
 * packet-program attachments in line with them. */
static int refresh_node(struct dataplane *dp, char *err, size_t errlen)
{
	struct nl_addr *a = NULL;
	struct nl_link *l = NULL;
	uint8_t *v4 = NULL, *v6 = NULL;
	uint32_t *devs = NULL, *pods = NULL;
	size_t n4 = 0, n6 = 0, nd = 0, np = 0;
	struct lb_device primary = {0};
	int na, nl, r = -ENOMEM;

	na = nl_dump_addrs(&a);
	nl = na < 0 ? na : nl_dump_links(&l);
	if (na < 0 || nl < 0) {
		r = na < 0 ? na : nl;
		snprintf(err, errlen, "reading the node's addresses and links: %s", strerror(-r));
		free(a);
		return r;
	}
	v4 = calloc((size_t)na + 1, 4);
	v6 = calloc((size_t)na + 1, 16);
	devs = calloc((size_t)nl + 1, sizeof(*devs));
	pods = calloc((size_t)nl + 1, sizeof(*pods));
	if (!v4 || !v6 || !devs || !pods)
		goto out;
	for (int i = 0; i < na; i++) {
		if (a[i].scope != RT_SCOPE_UNIVERSE || is_loopback(&a[i].addr) ||
		    !nodeport_addr(dp, &a[i].addr))
			continue;
		if (a[i].addr.family == AF_INET)
			memcpy(v4 + 4 * n4++, a[i].addr.bytes, 4);
		else
			memcpy(v6 + 16 * n6++, a[i].addr.bytes, 16);
	}
	for (int i = 0; i < nl; i++) {
		if (is_device(dp, &l[i], a, na))
			devs[nd++] = l[i].ifindex;
		else if (strcmp(l[i].kind, "veth") == 0)
			pods[np++] = l[i].ifindex;
	}
	/* Masquerade addresses: each device's own, and entry 0 for traffic
	 * that leaves elsewhere (the first device's). */
	for (size_t d = 0; d < nd; d++) {
		struct lb_device dev = {0};
		uint32_t key = devs[d];

		for (int i = 0; i < na; i++) {
			if (a[i].ifindex != devs[d] || a[i].scope != RT_SCOPE_UNIVERSE)
				continue;
			if (a[i].addr.family == AF_INET && !dev.addr4)
				memcpy(&dev.addr4, a[i].addr.bytes, 4);
			else if (a[i].addr.family == AF_INET6 && !dev.addr6[0])
				memcpy(dev.addr6, a[i].addr.bytes, 16);
		}
		if (!primary.addr4)
			primary.addr4 = dev.addr4;
		if (!primary.addr6[0])
			memcpy(primary.addr6, dev.addr6, 16);
		bpf_map_update_elem(dp->devices_fd, &key, &dev, BPF_ANY);
	}
	{
		uint32_t zero = 0;

		bpf_map_update_elem(dp->devices_fd, &zero, &primary, BPF_ANY);
	}
	if ((r = sync_addr_map(dp->nodeaddr4, 4, v4, n4)) < 0 ||
	    (r = sync_addr_map(dp->nodeaddr6, 16, v6, n6)) < 0) {
		snprintf(err, errlen, "writing the node addresses: %s", strerror(-r));
		goto out;
	}
	/* Attach only when the sets changed: pods come and go far less often
	 * than syncs run. */
	r = 0;
	if (!dp->tc_done || nd != dp->n_devs || np != dp->n_pods ||
	    memcmp(devs, dp->devs, nd * sizeof(*devs)) != 0 ||
	    memcmp(pods, dp->pods, np * sizeof(*pods)) != 0) {
		r = ebpf_loader_attach_tc(dp->loader, devs, nd, pods, np, err, errlen);
		if (r == 0) {
			free(dp->devs);
			free(dp->pods);
			dp->devs = devs;
			dp->pods = pods;
			dp->n_devs = nd;
			dp->n_pods = np;
			devs = pods = NULL;
			dp->tc_done = true;
		}
	}
	/* Devices that went away keep no masquerade entry. */
	{
		uint32_t key, next, *prev = NULL;

		while (bpf_map_get_next_key(dp->devices_fd, prev, &next) == 0) {
			key = next;
			prev = &key;
			if (key && !in_list(dp->devs, dp->n_devs, key)) {
				bpf_map_delete_elem(dp->devices_fd, &key);
				prev = NULL;
			}
		}
	}
out:
	if (r == -ENOMEM)
		snprintf(err, errlen, "out of memory");
	free(a);
	free(l);
	free(v4);
	free(v6);
	free(devs);
	free(pods);
	return r;
}

/* Makes a pair of tries hold exactly these CIDRs. */
static int write_cidr_tries(int fd4, int fd6, const struct cidr *cidrs, size_t n)
{
	uint8_t key[20], next[20];
	uint32_t one = 1;
	int r;

	/* Start from empty: the flag may have changed since the last run. */
	for (int f = 0; f < 2; f++) {
		int fd = f ? fd6 : fd4;

		while (bpf_map_get_next_key(fd, NULL, next) == 0) {
			memcpy(key, next, sizeof(key));
			if (bpf_map_delete_elem(fd, key) < 0)
				break;
		}
	}
	for (size_t i = 0; i < n; i++) {
		const struct cidr *c = &cidrs[i];

		if (c->addr.family == AF_INET) {
			struct lb4_cidr_key k = {.prefixlen = c->prefix_len};

			memcpy(&k.addr, c->addr.bytes, 4);
			r = bpf_map_update_elem(fd4, &k, &one, BPF_ANY);
		} else {
			struct lb6_cidr_key k = {.prefixlen = c->prefix_len};

			memcpy(k.addr, c->addr.bytes, 16);
			r = bpf_map_update_elem(fd6, &k, &one, BPF_ANY);
		}
		if (r < 0)
			return r;
	}
	return 0;
}

/* --- the dataplane interface --------------------------------------------- */

static void ebpf_free(struct dataplane *dp)
{
	if (!dp)
		return;
	svc_table_free(dp->svcs);
	ebpf_loader_free(dp->loader);
	if (dp->sctp)
		nft_dataplane_ops.free(dp->sctp);
	free((void *)dp->cfg.cluster_cidrs);
	free((void *)dp->cfg.nodeport_cidrs);
	free(dp->primary);
	free(dp->devs);
	free(dp->pods);
	free(dp);
}

static int ebpf_init(const struct dataplane_config *cfg, struct dataplane **ret, char *err,
		     size_t errlen)
{
	struct dataplane *dp = calloc(1, sizeof(*dp));
	struct ebpf_loader_config lc;
	struct svc_maps m;
	struct svc_masq mq;
	int r;

	if (!dp)
		return -ENOMEM;
	dp->cfg = *cfg;
	/* Own copies, so that nothing points into the caller's memory. */
	dp->cfg.cluster_cidrs = NULL;
	if (cfg->n_cluster_cidrs) {
		struct cidr *c = calloc(cfg->n_cluster_cidrs, sizeof(*c));

		if (!c) {
			free(dp);
			return -ENOMEM;
		}
		memcpy(c, cfg->cluster_cidrs, cfg->n_cluster_cidrs * sizeof(*c));
		dp->cfg.cluster_cidrs = c;
	}
	dp->cfg.nodeport_cidrs = NULL;
	if (cfg->n_nodeport_cidrs) {
		struct cidr *c = calloc(cfg->n_nodeport_cidrs, sizeof(*c));

		if (!c) {
			ebpf_free(dp);
			return -ENOMEM;
		}
		memcpy(c, cfg->nodeport_cidrs, cfg->n_nodeport_cidrs * sizeof(*c));
		dp->cfg.nodeport_cidrs = c;
	}
	snprintf(dp->pin_path, sizeof(dp->pin_path), "%s",
		 cfg->bpf_pin_path && *cfg->bpf_pin_path ? cfg->bpf_pin_path : DEFAULT_PIN_PATH);
	/* Masquerading pod traffic needs its packets: with --masquerade-all pod
	 * traffic is balanced on the veths, where its source can be rewritten. */
	lc = (struct ebpf_loader_config){dp->pin_path, cfg->bpf_cgroup_path,
					 cfg->bpf_pod_lb || cfg->masquerade_all};
	r = ebpf_loader_new(&lc, &dp->loader, err, errlen);
	if (r < 0)
		goto fail;
	m = (struct svc_maps){
		.fe4 = map_fd(dp, "lb4_fe"),
		.fe6 = map_fd(dp, "lb6_fe"),
		.svc = map_fd(dp, "lb_svc"),
		.slots = map_fd(dp, "lb_slots"),
		.backends = map_fd(dp, "lb_backends"),
		.maglev = map_fd(dp, "lb_maglev"),
		.ranges4 = map_fd(dp, "lb4_ranges"),
		.ranges6 = map_fd(dp, "lb6_ranges"),
		.vip4 = map_fd(dp, "lb4_vip"),
		.vip6 = map_fd(dp, "lb6_vip"),
	};
	dp->nodeaddr4 = map_fd(dp, "lb4_nodeaddr");
	dp->nodeaddr6 = map_fd(dp, "lb6_nodeaddr");
	dp->devices_fd = map_fd(dp, "lb_devices");
	mq = (struct svc_masq){cfg->masquerade_all, cfg->n_cluster_cidrs > 0};
	if ((r = svc_table_new(&m, &mq, &dp->svcs)) < 0) {
		snprintf(err, errlen, "out of memory");
		goto fail;
	}
	/* Claim what a previous run left before writing anything. */
	r = svc_table_adopt(dp->svcs);
	if (r < 0) {
		snprintf(err, errlen, "reading the pinned maps under %s: %s", dp->pin_path,
			 strerror(-r));
		goto fail;
	}
	if (r > 0)
		log_info("ebpf: found %d service ports in the pinned maps; keeping them", r);
	r = write_cidr_tries(map_fd(dp, "lb4_cidrs"), map_fd(dp, "lb6_cidrs"),
			     dp->cfg.cluster_cidrs, dp->cfg.n_cluster_cidrs);
	if (r < 0) {
		snprintf(err, errlen, "writing the cluster CIDRs: %s", strerror(-r));
		goto fail;
	}
	if ((r = refresh_node(dp, err, errlen)) < 0)
		goto fail;
	if ((r = nft_dataplane_ops.init(cfg, &dp->sctp, err, errlen)) < 0)
		goto fail;
	log_info("ebpf: maps pinned under %s; socket programs on cgroup %s; %zu device(s), "
		 "%zu pod veth(s)%s",
		 dp->pin_path, cfg->bpf_cgroup_path ? cfg->bpf_cgroup_path : "(v2 root)",
		 dp->n_devs, dp->n_pods, lc.pod_lb ? "; pod traffic balanced per packet" : "");
	*ret = dp;
	return 0;
fail:
	ebpf_free(dp);
	return r;
}

static int sync_changes(struct dataplane *dp, const struct tracker_changes *ch)
{
	char key[SVC_KEY_MAX];
	int r = 0;

	svc_table_begin(dp->svcs, ch->full);
	for (size_t i = 0; i < ch->n && r == 0; i++) {
		const struct svc_ports *o = ch->v[i].old, *n = ch->v[i].new;

		/* Ports the Service no longer has. */
		for (size_t j = 0; o && j < o->n && r == 0; j++) {
			bool kept = false;

			svc_port_key(&o->v[j], key);
			for (size_t k = 0; n && k < n->n && !kept; k++) {
				char nkey[SVC_KEY_MAX];

				kept = strcmp(key, svc_port_key(&n->v[k], nkey)) == 0;
			}
			if (!kept)
				r = svc_table_update(dp->svcs, key, NULL);
		}
		for (size_t j = 0; n && j < n->n && r == 0; j++) {
			const struct svc_port *sp = &n->v[j];

			if ((sp->family == AF_INET && !dp->cfg.ipv4) ||
			    (sp->family == AF_INET6 && !dp->cfg.ipv6) ||
			    sp->protocol == IPPROTO_SCTP)
				continue;
			r = svc_table_update(dp->svcs, svc_port_key(sp, key), sp);
		}
	}
	if (r == 0)
		r = svc_table_finish(dp->svcs);
	else
		svc_table_finish(dp->svcs);
	return r;
}

/* Copies of ports (shallow: the nftables dataplane only reads them) that
 * keep only SCTP. */
static int only_sctp(const struct svc_ports *in, struct svc_ports *out)
{
	out->v = NULL;
	out->n = 0;
	if (!in)
		return 0;
	out->v = calloc(in->n ? in->n : 1, sizeof(*out->v));
	if (!out->v)
		return -ENOMEM;
	for (size_t i = 0; i < in->n; i++) {
		if (in->v[i].protocol == IPPROTO_SCTP)
			out->v[out->n++] = in->v[i];
	}
	return 0;
}

/* Hands the SCTP part of the changes to the nftables dataplane. */
static int sync_sctp(struct dataplane *dp, const struct tracker_changes *ch, char *err,
		     size_t errlen)
{
	struct tracker_changes f = {.full = ch->full};
	struct svc_ports *ports;
	int r = 0;

	f.v = calloc(ch->n ? ch->n : 1, sizeof(*f.v));
	ports = calloc(2 * (ch->n ? ch->n : 1), sizeof(*ports));
	if (!f.v || !ports) {
		free(f.v);
		free(ports);
		return -ENOMEM;
	}
	for (size_t i = 0; i < ch->n && r == 0; i++) {
		struct svc_ports *o = &ports[2 * i], *n = &ports[2 * i + 1];

		if ((r = only_sctp(ch->v[i].old, o)) < 0 || (r = only_sctp(ch->v[i].new, n)) < 0)
			break;
		if (!o->n && !n->n)
			continue;
		f.v[f.n].key = ch->v[i].key;
		f.v[f.n].old = o->n ? o : NULL;
		f.v[f.n].new = n->n ? n : NULL;
		f.n++;
	}
	if (r == 0 && (f.n || f.full))
		r = nft_dataplane_ops.sync(dp->sctp, &f, err, errlen);
	for (size_t i = 0; i < 2 * ch->n; i++)
		free(ports[i].v);
	free(ports);
	free(f.v);
	return r;
}

static int ebpf_sync(struct dataplane *dp, const struct tracker_changes *ch, char *err,
		     size_t errlen)
{
	struct svc_table_stats st;
	int r;

	if (dp->need_adopt) {
		if (!ch->full) {
			snprintf(err, errlen, "a full sync is needed after an earlier failure");
			return -EAGAIN;
		}
		r = svc_table_adopt(dp->svcs);
		if (r < 0) {
			snprintf(err, errlen, "reading the pinned maps: %s", strerror(-r));
			dp->stats.failures++;
			return r;
		}
		dp->need_adopt = false;
	}
	if ((r = refresh_node(dp, err, errlen)) < 0) {
		dp->stats.failures++;
		return r;
	}
	if (!ch->full && ch->n == 0)
		return 0;
	if ((r = sync_sctp(dp, ch, err, errlen)) < 0) {
		dp->stats.failures++;
		return r;
	}
	r = sync_changes(dp, ch);
	svc_table_get_stats(dp->svcs, &st);
	if (r < 0) {
		snprintf(err, errlen, "writing the service maps: %s", strerror(-r));
		/* Part of the sync may be in the maps: only what is there now can
		 * be trusted. */
		dp->need_adopt = true;
		dp->stats.failures++;
		return r;
	}
	dp->stats.syncs++;
	dp->stats.messages = st.ops;
	dp->stats.last_changes = st.ops;
	dp->stats.elements = st.entries;
	log_v(4, "ebpf: %llu map operations, %llu entries", (unsigned long long)st.ops,
	      (unsigned long long)st.entries);
	if (st.backends_removed) {
		int n = ebpf_loader_destroy_stale(dp->loader);

		if (n > 0)
			log_v(2, "ebpf: ended %d UDP socket(s) connected to removed endpoints", n);
		else if (n < 0 && n != -EOPNOTSUPP)
			log_warn("ebpf: ending sockets of removed endpoints: %s", strerror(-n));
	}
	return 0;
}

/* The ServiceCIDRs: pod traffic to an address in them that no Service has
 * is dropped rather than routed on. */
static int ebpf_set_service_cidrs(struct dataplane *dp, const struct cidr *cidrs, size_t n,
				  char *err, size_t errlen)
{
	int r = write_cidr_tries(map_fd(dp, "lb4_svccidrs"), map_fd(dp, "lb6_svccidrs"), cidrs, n);

	if (r < 0)
		snprintf(err, errlen, "writing the service CIDRs: %s", strerror(-r));
	return r;
}

/* This node's object: its addresses are where NodePorts answer under
 * --nodeport-addresses=primary. */
static int ebpf_set_node(struct dataplane *dp, const struct node_info *node, char *err,
			 size_t errlen)
{
	size_t n = node ? node->n_addrs : 0;
	struct ipaddr *v = n ? calloc(n, sizeof(*v)) : NULL;

	if (n && !v) {
		snprintf(err, errlen, "out of memory");
		return -ENOMEM;
	}
	if (n)
		memcpy(v, node->addrs, n * sizeof(*v));
	free(dp->primary);
	dp->primary = v;
	dp->n_primary = n;
	return refresh_node(dp, err, errlen);
}

static void ebpf_get_stats(struct dataplane *dp, struct dataplane_stats *ret)
{
	*ret = dp->stats;
}

static int ebpf_cleanup(const struct dataplane_config *cfg, char *err, size_t errlen)
{
	const char *pin =
		cfg->bpf_pin_path && *cfg->bpf_pin_path ? cfg->bpf_pin_path : DEFAULT_PIN_PATH;

	return ebpf_loader_cleanup(pin, err, errlen);
}

const struct dataplane_ops ebpf_dataplane_ops = {
	.name = "ebpf",
	.init = ebpf_init,
	.sync = ebpf_sync,
	.set_node = ebpf_set_node,
	.set_service_cidrs = ebpf_set_service_cidrs,
	.get_stats = ebpf_get_stats,
	.free = ebpf_free,
	.cleanup = ebpf_cleanup,
};
