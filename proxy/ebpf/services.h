/* The Services as the BPF maps hold them, and the map writes that turn one
 * state into the next.
 *
 * Each Service port (per IP family) owns a Service id, its frontends, one
 * backend id per endpoint it uses, its internal slots, its Maglev table and
 * its source ranges.  An update writes in an order that never shows a
 * program a half-written Service: new backends, slots and Maglev entries
 * first (every slot below the count a program can see stays valid), then
 * the Service entry with its counts, then the frontends that make it
 * reachable; removals go in the reverse order, and only after every update
 * of the sync is written, so that a frontend moving from one Service to
 * another never disappears in between.
 *
 * A restarted agent starts from what it finds in the pinned maps
 * ("adopted" Services, without a name); the first full sync claims each of
 * them for the Service whose frontends it serves, keeping its ids (and so
 * the packet-level connections that refer to them), and removes what no
 * Service claimed. */
#ifndef KPROXY_EBPF_SERVICES_H
#define KPROXY_EBPF_SERVICES_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "model/serviceport.h"

/* The fds of the maps this module writes. */
struct svc_maps {
	int fe4, fe6;	      /* lb4_fe, lb6_fe */
	int svc;	      /* lb_svc */
	int slots;	      /* lb_slots */
	int backends;	      /* lb_backends */
	int maglev;	      /* lb_maglev (outer) */
	int ranges4, ranges6; /* lb4_ranges, lb6_ranges */
	int vip4, vip6;	      /* lb4_vip, lb6_vip */
};

/* How frontends are masqueraded, as the nftables dataplane decides. */
struct svc_masq {
	bool masquerade_all;
	bool have_cluster_cidrs;
};

struct svc_table_stats {
	uint64_t ops;		   /* map writes and deletes in the last sync */
	uint64_t entries;	   /* frontends, backends and slots programmed */
	uint64_t backends_removed; /* in the last sync */
};

struct svc_table;

/* Returns 0 with *ret (the caller owns it), or -ENOMEM.  The maps are
 * borrowed. */
int svc_table_new(const struct svc_maps *maps, const struct svc_masq *masq, struct svc_table **ret);
/* Accepts NULL. Frees memory only. */
void svc_table_free(struct svc_table *t);

/* Forgets what the table knew and reads the maps instead; entries that no
 * Service can reach are removed.  Returns the number of Services found, or
 * -errno. */
int svc_table_adopt(struct svc_table *t);

/* One sync: begin, then update for every changed Service port (sp NULL: the
 * port is gone), then finish.  With full, finish also removes every
 * Service port not updated in this sync.  Each returns 0 or -errno; after a
 * failure the table no longer matches the maps: adopt again. */
void svc_table_begin(struct svc_table *t, bool full);
int svc_table_update(struct svc_table *t, const char *key, const struct svc_port *sp);
int svc_table_finish(struct svc_table *t);

void svc_table_get_stats(const struct svc_table *t, struct svc_table_stats *ret);

/* "ns/name/port-name/protocol/family", into buf of SVC_KEY_MAX bytes. */
#define SVC_KEY_MAX (OBJECT_KEY_MAX + 80)
const char *svc_port_key(const struct svc_port *sp, char *buf);

#endif
