/* Prometheus metrics: a small registry of counters, gauges and histograms
 * with optional labels, rendered in the Prometheus text exposition format
 * (version 0.0.4), and on top of it the agent's own set, named as
 * kube-proxy names them where they mean the same thing so that existing
 * dashboards and alerts keep working.
 *
 * Updating a value is a store into a struct the caller holds a pointer to;
 * all the formatting work happens when /metrics is scraped. */
#ifndef KPROXY_HEALTH_METRICS_H
#define KPROXY_HEALTH_METRICS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct http_request;
struct http_response;
struct tracker_changes;

/* --- the generic registry --- */

enum metrics_type {
	METRICS_COUNTER,
	METRICS_GAUGE,
	METRICS_HISTOGRAM,
};

#define METRICS_MAX_LABELS 4

struct metrics_registry;
struct metrics_family; /* one metric name with its HELP, TYPE and label names */
struct metric;	       /* one series of a family: a set of label values */

/* Returns 0 and an empty registry the caller owns, or -ENOMEM. */
int metrics_registry_new(struct metrics_registry **ret);
/* Accepts NULL.  Frees every family and series. */
void metrics_registry_free(struct metrics_registry *reg);

/* Declares a family.  label_names: NULL, or a NULL-terminated list of at
 * most METRICS_MAX_LABELS names.  bounds: a histogram's bucket upper bounds,
 * strictly increasing (the +Inf bucket is implicit); NULL otherwise.  The
 * strings and bounds are copied.  Returns 0 with the family (owned by the
 * registry) in *ret, -EEXIST for a name already declared, -EINVAL for a bad
 * name, label or bounds, or -ENOMEM. */
int metrics_family_new(struct metrics_registry *reg, enum metrics_type type, const char *name,
		       const char *help, const char *const *label_names, const double *bounds,
		       size_t n_bounds, struct metrics_family **ret);
/* Finds the series with these label values (as many as the family has
 * names; NULL for a family without labels), creating it at zero.  Returns 0
 * with the series (owned by the registry) in *ret, or -ENOMEM. */
int metrics_series(struct metrics_family *fam, const char *const *label_values,
		   struct metric **ret);

/* Updates.  All accept NULL so that callers need no checks when a metric
 * could not be created. */
void metrics_inc(struct metric *m);
void metrics_add(struct metric *m, double v);
void metrics_set(struct metric *m, double v);
void metrics_observe(struct metric *m, double v);
/* A counter's or gauge's value; a histogram's sum.  0 for NULL. */
double metrics_value(const struct metric *m);
/* A histogram's number of observations. */
uint64_t metrics_count(const struct metric *m);

/* Renders every family that has series, sorted by name, into a malloc()ed
 * NUL-terminated text the caller owns.  Returns 0 or -ENOMEM. */
int metrics_registry_render(const struct metrics_registry *reg, char **ret_text, size_t *ret_len);

/* Fills out[0..count) with start, start*factor, ... (count >= 1, start > 0,
 * factor > 1) or start, start+width, ... (width > 0). */
void metrics_exponential_buckets(double start, double factor, size_t count, double *out);
void metrics_linear_buckets(double start, double width, size_t count, double *out);

/* Formats v as Prometheus expects ("+Inf", "NaN", shortest round-trip
 * decimal otherwise) into buf of at least METRICS_FLOAT_MAX bytes. */
#define METRICS_FLOAT_MAX 32
const char *metrics_format_float(double v, char *buf);

/* --- the agent's metrics --- */

struct metrics;

/* Creates the registry with every metric of the agent.  proxy_mode is what
 * /proxyMode answers ("nftables", "ebpf"); copied.  Returns 0 with an object
 * the caller owns in *ret, or -ENOMEM. */
int metrics_new(const char *proxy_mode, struct metrics **ret);
/* Accepts NULL. */
void metrics_free(struct metrics *m);
/* The underlying registry, for adding more metrics. */
struct metrics_registry *metrics_get_registry(struct metrics *m);

/* A sync was queued (a change arrived): sets the last-queued timestamp. */
void metrics_sync_queued(struct metrics *m);
/* A sync succeeded after seconds: observes the duration histograms (all
 * syncs, and full or partial) and sets the last-sync timestamp. */
void metrics_sync_done(struct metrics *m, bool full, double seconds);
/* A sync failed. */
void metrics_sync_failed(struct metrics *m);
/* From the change tracker: events seen in all, and changes not yet synced. */
void metrics_set_changes(struct metrics *m, uint64_t service_total, uint64_t endpoint_total,
			 uint64_t service_pending, uint64_t endpoint_pending);
/* Updates the "no local endpoints" gauges from the changes just synced (call
 * before tracker_commit(), while old and new are both valid).  Work is in
 * proportion to the changes; a full sync recounts from zero. */
void metrics_apply_changes(struct metrics *m, const struct tracker_changes *changes);
/* Sets the "no local endpoints" gauges directly. */
void metrics_set_no_local(struct metrics *m, uint64_t internal, uint64_t external);
/* From one reflector's stats; kind is "Service", "EndpointSlice", "Node"... */
void metrics_set_reflector(struct metrics *m, const char *kind, uint64_t rejected,
			   uint64_t watch_restarts, uint64_t lists);
/* Rule elements (nftables) or map entries (eBPF) programmed now. */
void metrics_set_dataplane_elements(struct metrics *m, uint64_t elements);
/* Time from an endpoint change in the cluster to its being programmed. */
void metrics_observe_network_programming(struct metrics *m, double seconds);
/* Counts a /healthz (livez false) or /livez (livez true) answer. */
void metrics_count_health_request(struct metrics *m, bool livez, unsigned int code);

/* fn is called at the start of every render, to copy in values that are
 * cheaper to read when scraped than to push on every change (counters kept
 * by other modules).  One callback; NULL removes it. */
void metrics_on_render(struct metrics *m, void (*fn)(struct metrics *m, void *data), void *data);

/* Reads the process's memory and CPU from /proc and renders everything.
 * Returns 0 with a malloc()ed text the caller owns, or -ENOMEM. */
int metrics_render(struct metrics *m, char **ret_text, size_t *ret_len);

/* HTTP handler for the metrics address (data: struct metrics *): /metrics,
 * /healthz ("ok", as kube-proxy's metrics server answers it) and
 * /proxyMode; 404 for anything else. */
void metrics_http_handler(void *data, const struct http_request *req, struct http_response *resp);

#endif
