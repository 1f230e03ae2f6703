/* Removal of stale UDP conntrack entries.
 *
 * NAT decisions live in conntrack, not in the ruleset: a UDP "connection" (a
 * DNS client reusing its source port, say) keeps going to the endpoint it was
 * first sent to, even after that endpoint is gone, and one first seen while
 * its Service had no endpoints stays un-translated.  Neither ever times out
 * while the client keeps sending.  After a sync, the entries that point at
 * endpoints a frontend no longer has, or that a frontend with endpoints left
 * untranslated, are deleted, so the next datagram is balanced afresh.
 *
 * Only entries whose original destination is one of the frontends given are
 * looked at, and only those that no longer match are deleted: live entries
 * survive, including across a restart of the agent. */
#ifndef KPROXY_NFT_CONNTRACK_H
#define KPROXY_NFT_CONNTRACK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "model/serviceport.h"

struct ct_plan;

/* Returns an empty plan the caller owns, or NULL. */
struct ct_plan *ct_plan_new(void);
void ct_plan_free(struct ct_plan *plan);

/* Adds every UDP frontend of sp (ClusterIP, externalIPs, load-balancer IPs,
 * NodePort) with the endpoints its traffic may now go to, or with none when
 * the port is gone.  Other protocols are ignored.  Returns 0 or -ENOMEM. */
int ct_plan_add_port(struct ct_plan *plan, const struct svc_port *sp, bool gone);
/* Number of frontends in the plan. */
size_t ct_plan_size(const struct ct_plan *plan);

/* Lists the kernel's UDP entries of both families and deletes those of the
 * plan's frontends that are stale.  Returns the number deleted, or -errno. */
int ct_plan_run(struct ct_plan *plan);

/* Exposed for tests: whether an entry would be deleted.  orig_dst/port is the
 * client's destination, reply_src/port where the reply comes from, dnat
 * whether conntrack translated the destination. */
bool ct_plan_is_stale(const struct ct_plan *plan, const struct ipaddr *orig_dst, uint16_t orig_port,
		      const struct ipaddr *reply_src, uint16_t reply_port, bool dnat);

#endif
