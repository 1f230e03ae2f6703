/* Health-check node ports: for every Service with externalTrafficPolicy
 * Local and a healthCheckNodePort, an HTTP server on that port that tells
 * the cloud load balancer whether this node should get the Service's
 * traffic.  It answers any path with 200 while the Service has ready
 * endpoints on this node and the proxy is healthy, else 503, with
 * kube-proxy's JSON body and the X-Load-Balancing-Endpoint-Weight header
 * (the number of local endpoints), so load balancers configured for
 * kube-proxy behave the same.
 *
 * The set of servers follows the Services: new ports are opened, ports no
 * longer wanted are closed, and endpoint counts change in place without
 * touching the listeners.  A port that cannot be opened (another process
 * holds it) is logged once and tried again on later syncs and every few
 * seconds; the other Services' servers are not affected. */
#ifndef KPROXY_HEALTH_SERVICEHC_H
#define KPROXY_HEALTH_SERVICEHC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "util/addr.h"

struct loop;
struct healthz;
struct servicehc;
struct svc_ports;
struct tracker_changes;

/* One Service that wants a health-check server. */
struct servicehc_service {
	const char *ns;
	const char *name;
	uint16_t port;		  /* healthCheckNodePort, 1-65535 */
	uint32_t local_endpoints; /* ready endpoints on this node */
};

/* How long a port that could not be opened waits before the next try when
 * no sync comes first. */
#define SERVICEHC_RETRY_MS 5000

/* addrs: the node addresses to listen on (copied), or none for every
 * address.  hz (may be NULL: always healthy) must outlive the servicehc.
 * Returns 0 with an object the caller owns in *ret, or -ENOMEM. */
int servicehc_new(struct loop *loop, struct healthz *hz, const struct ipaddr *addrs, size_t n_addrs,
		  struct servicehc **ret);
/* Closes every server.  Accepts NULL. */
void servicehc_free(struct servicehc *s);

/* Listens on these node addresses from now on (none: every address); the
 * servers of every Service are reopened when the set changes.  Returns 0 or
 * -ENOMEM. */
int servicehc_set_addresses(struct servicehc *s, const struct ipaddr *addrs, size_t n_addrs);

/* The addresses of this host's interfaces inside one of cidrs, as
 * --nodeport-addresses selects them (IPv6 link-local ones left out: they
 * cannot be bound without an interface); at most max of them into out.
 * Returns how many, or -errno. */
int servicehc_local_addresses(const struct cidr *cidrs, size_t n_cidrs, struct ipaddr *out,
			      size_t max);

/* Makes the servers match v[0..n): the whole desired set.  Returns 0, or
 * -ENOMEM (what could be done is done; call again).  Ports that cannot be
 * opened are not an error here: they are logged and retried. */
int servicehc_sync(struct servicehc *s, const struct servicehc_service *v, size_t n);

/* Applies the tracker's changes just given to the dataplane (call before
 * tracker_commit(), while they are valid).  Only the changed Services are
 * looked at; a full change set replaces everything.  Returns 0 or -ENOMEM. */
int servicehc_apply(struct servicehc *s, const struct tracker_changes *changes);

/* What a Service's ports say for the health check: its healthCheckNodePort
 * (0: it needs no server) and the number of distinct ready endpoint
 * addresses on this node, counted per IP family and the larger taken, as
 * kube-proxy counts endpoints per family by address (an endpoint serving
 * two ports is one). */
void servicehc_from_ports(const struct svc_ports *ports, uint16_t *ret_port,
			  uint32_t *ret_local_endpoints);

/* Services with a health check wanted, and whether one is listening now. */
size_t servicehc_size(const struct servicehc *s);
bool servicehc_listening(const struct servicehc *s, const char *ns, const char *name);

#endif
