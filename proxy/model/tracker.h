/* The change tracker: the agent's cache of Services, EndpointSlices and its
 * Node, and the record of what the dataplane was last given.
 *
 * Reflectors feed it objects as they arrive.  Each event only marks the
 * affected Service dirty; at sync time tracker_prepare() rebuilds the dirty
 * Services' ports, drops those that came out the same as what the dataplane
 * already has (changes that cancelled out), and hands the dataplane the rest
 * as (old, new) pairs.  tracker_commit() then makes "new" the published
 * state; after a failed sync the changes stay pending.  A sync therefore
 * costs in proportion to what changed, not to the size of the cluster. */
#ifndef KPROXY_MODEL_TRACKER_H
#define KPROXY_MODEL_TRACKER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "model/objects.h"
#include "model/serviceport.h"

struct tracker;

struct tracker_change {
	char *key;		     /* "namespace/name" of the Service */
	const struct svc_ports *old; /* what the dataplane has; NULL for nothing */
	struct svc_ports *new;	     /* what it must have; NULL for nothing */
};

struct tracker_changes {
	struct tracker_change *v;
	size_t n;
	bool full; /* every Service is listed, old is NULL: rebuild from scratch */
};

struct tracker_stats {
	uint64_t service_changes;  /* Service events seen */
	uint64_t endpoint_changes; /* EndpointSlice events seen */
	size_t services;	   /* Services known */
	size_t slices;		   /* EndpointSlices known */
};

/* node_name: this node, for endpoint locality; copied. Returns 0 or -ENOMEM. */
int tracker_new(const char *node_name, struct tracker **ret);
void tracker_free(struct tracker *t);

/* Take ownership of the object. */
void tracker_service_upsert(struct tracker *t, const char *key, struct service *svc);
void tracker_service_remove(struct tracker *t, const char *key);
void tracker_slice_upsert(struct tracker *t, const char *key, struct endpoint_slice *slice);
void tracker_slice_remove(struct tracker *t, const char *key);
/* This node's object (zone label for topology); NULL when it is gone. */
void tracker_node_set(struct tracker *t, struct node_info *node);
const struct node_info *tracker_node(const struct tracker *t);

/* Number of Services with changes not yet given to the dataplane. */
size_t tracker_pending(const struct tracker *t);

/* Computes the changes.  full: every Service, for a dataplane that rebuilds.
 * Returns 0, or -ENOMEM (nothing is lost: the changes stay pending). */
int tracker_prepare(struct tracker *t, bool full, struct tracker_changes *ret);
/* The dataplane applied the changes: publish them and release ret. */
void tracker_commit(struct tracker *t, struct tracker_changes *changes);
/* Trigger times (seconds since the epoch, from the endpoints controller's
 * annotation) of the endpoint changes the pending sync carries; valid until
 * tracker_commit(), which forgets them. */
size_t tracker_trigger_times(const struct tracker *t, const double **ret);
/* The dataplane failed: keep the changes pending and release ret. */
void tracker_abort(struct tracker *t, struct tracker_changes *changes);

/* Visits every published Service port (for health checks and metrics). */
void tracker_foreach_port(const struct tracker *t,
			  void (*fn)(const struct svc_port *sp, void *data), void *data);

void tracker_get_stats(const struct tracker *t, struct tracker_stats *ret);

#endif
