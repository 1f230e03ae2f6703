/* The proxy's own health, with kube-proxy's semantics, and the /healthz and
 * /livez endpoints that report it.
 *
 * The agent says when a change has been queued for syncing and when a sync
 * has completed.  It is healthy while nothing is queued, or while the oldest
 * change still queued is younger than the health timeout (kube-proxy uses
 * twice the sync period).  Before the first completed sync it counts as
 * starting up, which is healthy.  /healthz additionally fails while this
 * node is going away (being deleted, or tainted by the cluster autoscaler
 * for deletion) so that load balancers drain it; /livez ignores that, since
 * restarting the agent would not help.
 *
 * Times passed in are the monotonic clock in nanoseconds (loop_now_ns());
 * the JSON shows them converted to wall-clock UTC. */
#ifndef KPROXY_HEALTH_HEALTHZ_H
#define KPROXY_HEALTH_HEALTHZ_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct healthz;
struct metrics;
struct node_info;
struct http_request;
struct http_response;

/* timeout_ms: how long a queued change may wait for a sync before the proxy
 * is unhealthy.  metrics, if not NULL, counts the answers of /healthz and
 * /livez; it must outlive the healthz.  Returns 0 with an object the caller
 * owns in *ret, or -ENOMEM. */
int healthz_new(uint64_t timeout_ms, struct metrics *metrics, struct healthz **ret);
/* Accepts NULL. */
void healthz_free(struct healthz *h);

/* A change was queued for sync at now_ns.  Only the oldest pending time is
 * kept: later calls before healthz_updated() change nothing. */
void healthz_queued(struct healthz *h, uint64_t now_ns);
/* A sync completed at now_ns: nothing is pending any more. */
void healthz_updated(struct healthz *h, uint64_t now_ns);

/* This node's object.  It is eligible unless it is being deleted or is
 * tainted ToBeDeletedByClusterAutoscaler; NULL (the object is gone) makes it
 * ineligible.  Until the first call the node counts as eligible. */
void healthz_set_node(struct healthz *h, const struct node_info *node);
void healthz_set_node_eligible(struct healthz *h, bool eligible);
bool healthz_node_eligible(const struct healthz *h);

/* The proxy's health at now_ns, ignoring the node (what /livez and the
 * service health checks report).  A NULL h is healthy. */
bool healthz_healthy(const struct healthz *h, uint64_t now_ns);

/* HTTP handler for the healthz address (data: struct healthz *): /healthz
 * and /livez; 404 for anything else. */
void healthz_http_handler(void *data, const struct http_request *req, struct http_response *resp);

/* Formats a wall-clock time (nanoseconds since the epoch) as RFC 3339 in UTC
 * with as many fractional digits as needed, as Go's time marshals it:
 * "2024-05-01T12:00:00.25Z".  buf holds at least HEALTHZ_TIME_MAX bytes. */
#define HEALTHZ_TIME_MAX 40
const char *healthz_format_time(int64_t wall_ns, char *buf);

#endif
