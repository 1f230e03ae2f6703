/* The metrics registry, its text rendering, and the agent's metric set; see
 * metrics.h.
 *
 * Families and series live in plain arrays: the agent has a few dozen
 * series, and a scrape sorts them once, so nothing smarter pays off.
 * Histogram buckets are kept per bucket and made cumulative when rendered,
 * which keeps an observation to one binary search and two additions. */
#include "health/metrics.h"

#include <dirent.h>
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include "health/http.h"
#include "model/serviceport.h"
#include "model/tracker.h"

struct metric {
	struct metrics_family *fam;
	char *values[METRICS_MAX_LABELS];
	double value;	   /* counter or gauge value; histogram sum */
	uint64_t count;	   /* histogram observations */
	uint64_t *buckets; /* histogram: observations per bucket, not cumulative */
};

struct metrics_family {
	enum metrics_type type;
	char *name;
	char *help;
	char *labels[METRICS_MAX_LABELS];
	size_t n_labels;
	double *bounds;
	size_t n_bounds;
	struct metric **series;
	size_t n_series, cap_series;
};

struct metrics_registry {
	struct metrics_family **fams;
	size_t n, cap;
};

/* --- registry --- */

int metrics_registry_new(struct metrics_registry **ret)
{
	struct metrics_registry *reg = calloc(1, sizeof(*reg));

	if (!reg)
		return -ENOMEM;
	*ret = reg;
	return 0;
}

static void metric_free(struct metric *m)
{
	if (!m)
		return;
	for (size_t i = 0; i < METRICS_MAX_LABELS; i++)
		free(m->values[i]);
	free(m->buckets);
	free(m);
}

static void family_free(struct metrics_family *f)
{
	if (!f)
		return;
	for (size_t i = 0; i < f->n_series; i++)
		metric_free(f->series[i]);
	free(f->series);
	for (size_t i = 0; i < f->n_labels; i++)
		free(f->labels[i]);
	free(f->bounds);
	free(f->name);
	free(f->help);
	free(f);
}

void metrics_registry_free(struct metrics_registry *reg)
{
	if (!reg)
		return;
	for (size_t i = 0; i < reg->n; i++)
		family_free(reg->fams[i]);
	free(reg->fams);
	free(reg);
}

static bool valid_name(const char *s, bool colons)
{
	if (!s || !*s)
		return false;
	for (const char *p = s; *p; p++) {
		bool alpha = (*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || *p == '_' ||
			     (colons && *p == ':');

		if (!alpha && !(p != s && *p >= '0' && *p <= '9'))
			return false;
	}
	return true;
}

int metrics_family_new(struct metrics_registry *reg, enum metrics_type type, const char *name,
		       const char *help, const char *const *label_names, const double *bounds,
		       size_t n_bounds, struct metrics_family **ret)
{
	struct metrics_family *f;

	if (!valid_name(name, true) || (type == METRICS_HISTOGRAM) != (bounds != NULL))
		return -EINVAL;
	for (size_t i = 1; i < n_bounds; i++) {
		if (!(bounds[i] > bounds[i - 1]))
			return -EINVAL;
	}
	for (size_t i = 0; i < reg->n; i++) {
		if (strcmp(reg->fams[i]->name, name) == 0)
			return -EEXIST;
	}
	if (reg->n == reg->cap) {
		size_t cap = reg->cap ? reg->cap * 2 : 32;
		struct metrics_family **v = realloc(reg->fams, cap * sizeof(*v));

		if (!v)
			return -ENOMEM;
		reg->fams = v;
		reg->cap = cap;
	}
	f = calloc(1, sizeof(*f));
	if (!f)
		return -ENOMEM;
	f->type = type;
	f->name = strdup(name);
	f->help = strdup(help ? help : "");
	if (!f->name || !f->help)
		goto nomem;
	for (size_t i = 0; label_names && label_names[i]; i++) {
		const char *l = label_names[i];

		/* "le" is the bucket label; "__" names are reserved. */
		if (i == METRICS_MAX_LABELS || !valid_name(l, false) || strncmp(l, "__", 2) == 0 ||
		    (type == METRICS_HISTOGRAM && strcmp(l, "le") == 0)) {
			family_free(f);
			return -EINVAL;
		}
		f->labels[i] = strdup(l);
		if (!f->labels[i])
			goto nomem;
		f->n_labels++;
	}
	if (bounds) {
		f->bounds = malloc((n_bounds ? n_bounds : 1) * sizeof(*f->bounds));
		if (!f->bounds)
			goto nomem;
		memcpy(f->bounds, bounds, n_bounds * sizeof(*f->bounds));
		f->n_bounds = n_bounds;
	}
	reg->fams[reg->n++] = f;
	if (ret)
		*ret = f;
	return 0;
nomem:
	family_free(f);
	return -ENOMEM;
}

int metrics_series(struct metrics_family *f, const char *const *values, struct metric **ret)
{
	struct metric *m;

	for (size_t i = 0; i < f->n_series; i++) {
		size_t j;

		for (j = 0; j < f->n_labels; j++) {
			if (strcmp(f->series[i]->values[j], values[j]) != 0)
				break;
		}
		if (j == f->n_labels) {
			*ret = f->series[i];
			return 0;
		}
	}
	if (f->n_series == f->cap_series) {
		size_t cap = f->cap_series ? f->cap_series * 2 : 4;
		struct metric **v = realloc(f->series, cap * sizeof(*v));

		if (!v)
			return -ENOMEM;
		f->series = v;
		f->cap_series = cap;
	}
	m = calloc(1, sizeof(*m));
	if (!m)
		return -ENOMEM;
	m->fam = f;
	for (size_t j = 0; j < f->n_labels; j++) {
		m->values[j] = strdup(values[j]);
		if (!m->values[j]) {
			metric_free(m);
			return -ENOMEM;
		}
	}
	if (f->type == METRICS_HISTOGRAM && f->n_bounds) {
		m->buckets = calloc(f->n_bounds, sizeof(*m->buckets));
		if (!m->buckets) {
			metric_free(m);
			return -ENOMEM;
		}
	}
	f->series[f->n_series++] = m;
	*ret = m;
	return 0;
}

/* --- updates --- */

void metrics_inc(struct metric *m)
{
	metrics_add(m, 1);
}

void metrics_add(struct metric *m, double v)
{
	if (m)
		m->value += v;
}

void metrics_set(struct metric *m, double v)
{
	if (m)
		m->value = v;
}

void metrics_observe(struct metric *m, double v)
{
	size_t lo = 0, hi;

	if (!m || m->fam->type != METRICS_HISTOGRAM)
		return;
	/* The first bucket whose upper bound is >= v; past the last bound the
	 * observation only shows in +Inf, which is the total count. */
	hi = m->fam->n_bounds;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (m->fam->bounds[mid] >= v)
			hi = mid;
		else
			lo = mid + 1;
	}
	if (lo < m->fam->n_bounds)
		m->buckets[lo]++;
	m->count++;
	m->value += v;
}

double metrics_value(const struct metric *m)
{
	return m ? m->value : 0;
}

uint64_t metrics_count(const struct metric *m)
{
	return m ? m->count : 0;
}

void metrics_exponential_buckets(double start, double factor, size_t count, double *out)
{
	for (size_t i = 0; i < count; i++) {
		out[i] = start;
		start *= factor;
	}
}

void metrics_linear_buckets(double start, double width, size_t count, double *out)
{
	for (size_t i = 0; i < count; i++)
		out[i] = start + width * (double)i;
}

/* --- rendering --- */

/* Prometheus' own client prints floats as Go's strconv 'g' with the
 * shortest round-trip precision: plain decimal for exponents from -4 to 5,
 * "d.ddde+XX" outside.  Matching it matters for bucket bounds, because
 * queries select buckets by the exact text of their le label. */
const char *metrics_format_float(double v, char *buf)
{
	char tmp[METRICS_FLOAT_MAX];
	int prec, exp;

	if (isnan(v))
		return strcpy(buf, "NaN");
	if (isinf(v))
		return strcpy(buf, v > 0 ? "+Inf" : "-Inf");
	if (v == 0)
		return strcpy(buf, signbit(v) ? "-0" : "0");
	for (prec = 1; prec < 17; prec++) {
		snprintf(tmp, sizeof(tmp), "%.*e", prec - 1, v);
		if (strtod(tmp, NULL) == v)
			break;
	}
	snprintf(tmp, sizeof(tmp), "%.*e", prec - 1, v);
	exp = atoi(strchr(tmp, 'e') + 1);
	if (exp < -4 || exp >= 6) {
		strcpy(buf, tmp);
		return buf;
	}
	snprintf(buf, METRICS_FLOAT_MAX, "%.*f", prec - 1 - exp > 0 ? prec - 1 - exp : 0, v);
	return buf;
}

struct buf {
	char *p;
	size_t len, cap;
	bool oom;
};

static void buf_grow(struct buf *b, size_t need)
{
	size_t cap;
	char *p;

	if (b->oom || b->len + need + 1 <= b->cap)
		return;
	cap = b->cap ? b->cap : 4096;
	while (cap < b->len + need + 1)
		cap *= 2;
	p = realloc(b->p, cap);
	if (!p) {
		b->oom = true;
		return;
	}
	b->p = p;
	b->cap = cap;
}

static void buf_putc(struct buf *b, char c)
{
	buf_grow(b, 1);
	if (b->oom)
		return;
	b->p[b->len++] = c;
	b->p[b->len] = '\0';
}

static void buf_puts(struct buf *b, const char *s)
{
	size_t n = strlen(s);

	buf_grow(b, n);
	if (b->oom)
		return;
	memcpy(b->p + b->len, s, n + 1);
	b->len += n;
}

/* HELP text escapes backslash and newline; label values also the quote. */
static void buf_escaped(struct buf *b, const char *s, bool quote)
{
	for (; *s; s++) {
		if (*s == '\\')
			buf_puts(b, "\\\\");
		else if (*s == '\n')
			buf_puts(b, "\\n");
		else if (quote && *s == '"')
			buf_puts(b, "\\\"");
		else
			buf_putc(b, *s);
	}
}

static void buf_float(struct buf *b, double v)
{
	char tmp[METRICS_FLOAT_MAX];

	buf_puts(b, metrics_format_float(v, tmp));
}

/* name{a="x",b="y",le="0.5"} value */
static void put_sample(struct buf *b, const struct metric *m, const char *suffix, const char *le,
		       double v)
{
	const struct metrics_family *f = m->fam;

	buf_puts(b, f->name);
	buf_puts(b, suffix);
	if (f->n_labels || le) {
		buf_putc(b, '{');
		for (size_t i = 0; i < f->n_labels; i++) {
			if (i)
				buf_putc(b, ',');
			buf_puts(b, f->labels[i]);
			buf_puts(b, "=\"");
			buf_escaped(b, m->values[i], true);
			buf_putc(b, '"');
		}
		if (le) {
			if (f->n_labels)
				buf_putc(b, ',');
			buf_puts(b, "le=\"");
			buf_puts(b, le);
			buf_putc(b, '"');
		}
		buf_putc(b, '}');
	}
	buf_putc(b, ' ');
	buf_float(b, v);
	buf_putc(b, '\n');
}

static void put_series(struct buf *b, const struct metric *m)
{
	const struct metrics_family *f = m->fam;
	char le[METRICS_FLOAT_MAX];
	uint64_t cum = 0;

	if (f->type != METRICS_HISTOGRAM) {
		put_sample(b, m, "", NULL, m->value);
		return;
	}
	for (size_t i = 0; i < f->n_bounds; i++) {
		cum += m->buckets[i];
		put_sample(b, m, "_bucket", metrics_format_float(f->bounds[i], le), (double)cum);
	}
	put_sample(b, m, "_bucket", "+Inf", (double)m->count);
	put_sample(b, m, "_sum", NULL, m->value);
	put_sample(b, m, "_count", NULL, (double)m->count);
}

static int cmp_family(const void *a, const void *b)
{
	const struct metrics_family *x = *(struct metrics_family *const *)a;
	const struct metrics_family *y = *(struct metrics_family *const *)b;

	return strcmp(x->name, y->name);
}

static int cmp_series(const void *a, const void *b)
{
	const struct metric *x = *(struct metric *const *)a;
	const struct metric *y = *(struct metric *const *)b;

	for (size_t i = 0; i < x->fam->n_labels; i++) {
		int r = strcmp(x->values[i], y->values[i]);

		if (r)
			return r;
	}
	return 0;
}

static const char *type_name(enum metrics_type t)
{
	return t == METRICS_COUNTER ? "counter" : t == METRICS_GAUGE ? "gauge" : "histogram";
}

int metrics_registry_render(const struct metrics_registry *reg, char **ret_text, size_t *ret_len)
{
	struct metrics_family **fams = NULL;
	struct metric **series = NULL;
	size_t max_series = 0;
	struct buf b = {0};

	if (reg->n) {
		fams = malloc(reg->n * sizeof(*fams));
		if (!fams)
			return -ENOMEM;
		memcpy(fams, reg->fams, reg->n * sizeof(*fams));
		qsort(fams, reg->n, sizeof(*fams), cmp_family);
	}
	for (size_t i = 0; i < reg->n; i++) {
		if (fams[i]->n_series > max_series)
			max_series = fams[i]->n_series;
	}
	if (max_series && !(series = malloc(max_series * sizeof(*series)))) {
		free(fams);
		return -ENOMEM;
	}
	buf_grow(&b, 0);
	for (size_t i = 0; i < reg->n && !b.oom; i++) {
		const struct metrics_family *f = fams[i];

		/* As Prometheus' own client: a family without series is left
		 * out entirely. */
		if (!f->n_series)
			continue;
		buf_puts(&b, "# HELP ");
		buf_puts(&b, f->name);
		buf_putc(&b, ' ');
		buf_escaped(&b, f->help, false);
		buf_puts(&b, "\n# TYPE ");
		buf_puts(&b, f->name);
		buf_putc(&b, ' ');
		buf_puts(&b, type_name(f->type));
		buf_putc(&b, '\n');
		memcpy(series, f->series, f->n_series * sizeof(*series));
		qsort(series, f->n_series, sizeof(*series), cmp_series);
		for (size_t j = 0; j < f->n_series; j++)
			put_series(&b, series[j]);
	}
	free(series);
	free(fams);
	if (b.oom) {
		free(b.p);
		return -ENOMEM;
	}
	*ret_text = b.p;
	if (ret_len)
		*ret_len = b.len;
	return 0;
}

/* --- the agent's metrics --- */

/* kube-proxy's sync durations: 1 ms doubling to about 16 s. */
#define SYNC_BUCKETS 15
/* kube-proxy's network programming latency: 0 (a leftover of how its bucket
 * lists are merged, kept so that the le labels match), 0.25 s and 0.5 s,
 * then every second to 59 s, every 5 s to 115 s, every 30 s to 5 min. */
#define NETPROG_BUCKETS (1 + 2 + 59 + 12 + 7)

struct metrics {
	struct metrics_registry *reg;
	char *proxy_mode;
	struct metric *sync_all, *sync_full, *sync_partial;
	struct metric *last_sync, *last_queued;
	struct metric *netprog;
	struct metric *ep_pending, *ep_total, *svc_pending, *svc_total;
	struct metric *no_local_internal, *no_local_external;
	struct metrics_family *healthz, *livez;
	struct metrics_family *rejected, *restarts, *lists;
	struct metric *sync_failures, *dp_elements;
	struct metric *kproxy_rss;
	struct metric *rss, *vsize, *cpu, *start_time, *open_fds, *max_fds;
	/* The "no local endpoints" counts, kept exact as integers between
	 * incremental updates. */
	int64_t no_local_int, no_local_ext;
	void (*on_render)(struct metrics *m, void *data);
	void *on_render_data;
};

struct metric_def {
	struct metric **slot;
	enum metrics_type type;
	const char *name;
	const char *help;
};

static double wall_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* The process start as seconds since the epoch: the boot time plus the
 * start offset in /proc/self/stat; the current time if /proc says nothing. */
static double process_start_time(void)
{
	unsigned long long start_ticks = 0, btime = 0;
	char line[256], stat[1024];
	long hz = sysconf(_SC_CLK_TCK);
	const char *p;
	FILE *f;
	size_t n;
	int field;

	f = fopen("/proc/stat", "re");
	if (f) {
		while (fgets(line, sizeof(line), f)) {
			if (sscanf(line, "btime %llu", &btime) == 1)
				break;
		}
		fclose(f);
	}
	f = fopen("/proc/self/stat", "re");
	if (!f)
		return wall_now();
	n = fread(stat, 1, sizeof(stat) - 1, f);
	fclose(f);
	stat[n] = '\0';
	/* Fields are counted after the command name, which may hold spaces. */
	p = strrchr(stat, ')');
	for (field = 2; p && field < 22; field++)
		p = strchr(p + 1, ' ');
	if (!p || !btime || hz <= 0 || sscanf(p + 1, "%llu", &start_ticks) != 1)
		return wall_now();
	return (double)btime + (double)start_ticks / (double)hz;
}

static int add_simple(struct metrics_registry *reg, const struct metric_def *d, const double *b,
		      size_t nb)
{
	struct metrics_family *f;
	int r;

	r = metrics_family_new(reg, d->type, d->name, d->help, NULL, b, nb, &f);
	if (r < 0)
		return r;
	return metrics_series(f, NULL, d->slot);
}

int metrics_new(const char *proxy_mode, struct metrics **ret)
{
	static const char *const code_label[] = {"code", NULL};
	static const char *const kind_label[] = {"kind", NULL};
	static const char *const policy_label[] = {"traffic_policy", NULL};
	double sync_b[SYNC_BUCKETS], net_b[NETPROG_BUCKETS];
	struct metrics_family *f;
	struct metrics *m;
	int r;

	m = calloc(1, sizeof(*m));
	if (!m)
		return -ENOMEM;
	m->proxy_mode = strdup(proxy_mode ? proxy_mode : "");
	if (!m->proxy_mode || (r = metrics_registry_new(&m->reg)) < 0) {
		r = -ENOMEM;
		goto fail;
	}
	metrics_exponential_buckets(0.001, 2, SYNC_BUCKETS, sync_b);
	net_b[0] = 0;
	metrics_linear_buckets(0.25, 0.25, 2, net_b + 1);
	metrics_linear_buckets(1, 1, 59, net_b + 3);
	metrics_linear_buckets(60, 5, 12, net_b + 62);
	metrics_linear_buckets(120, 30, 7, net_b + 74);

	const struct metric_def hist[] = {
		{&m->sync_all, METRICS_HISTOGRAM, "kubeproxy_sync_proxy_rules_duration_seconds",
		 "Time taken by one sync of the proxy rules, in seconds"},
		{&m->sync_full, METRICS_HISTOGRAM,
		 "kubeproxy_sync_full_proxy_rules_duration_seconds",
		 "Time taken by one full sync (every rule rewritten), in seconds"},
		{&m->sync_partial, METRICS_HISTOGRAM,
		 "kubeproxy_sync_partial_proxy_rules_duration_seconds",
		 "Time taken by one partial sync (changed services only), in seconds"},
	};
	const struct metric_def plain[] = {
		{&m->last_sync, METRICS_GAUGE, "kubeproxy_sync_proxy_rules_last_timestamp_seconds",
		 "Unix time of the last successful sync of the proxy rules"},
		{&m->last_queued, METRICS_GAUGE,
		 "kubeproxy_sync_proxy_rules_last_queued_timestamp_seconds",
		 "Unix time at which a sync of the proxy rules was last asked for"},
		{&m->ep_pending, METRICS_GAUGE,
		 "kubeproxy_sync_proxy_rules_endpoint_changes_pending",
		 "Endpoint changes received and not yet synced"},
		{&m->ep_total, METRICS_COUNTER, "kubeproxy_sync_proxy_rules_endpoint_changes_total",
		 "Endpoint changes received since start"},
		{&m->svc_pending, METRICS_GAUGE,
		 "kubeproxy_sync_proxy_rules_service_changes_pending",
		 "Service changes received and not yet synced"},
		{&m->svc_total, METRICS_COUNTER, "kubeproxy_sync_proxy_rules_service_changes_total",
		 "Service changes received since start"},
		{&m->sync_failures, METRICS_COUNTER, "kproxy_sync_failures_total",
		 "Syncs the dataplane refused or failed to apply"},
		{&m->dp_elements, METRICS_GAUGE, "kproxy_dataplane_elements",
		 "nftables rule elements or BPF map entries the agent has programmed"},
		{&m->kproxy_rss, METRICS_GAUGE, "kproxy_process_resident_memory_bytes",
		 "Resident memory of the agent, in bytes"},
		{&m->rss, METRICS_GAUGE, "process_resident_memory_bytes",
		 "Resident memory size in bytes"},
		{&m->vsize, METRICS_GAUGE, "process_virtual_memory_bytes",
		 "Virtual memory size in bytes"},
		{&m->cpu, METRICS_COUNTER, "process_cpu_seconds_total",
		 "User and system CPU time spent, in seconds"},
		{&m->start_time, METRICS_GAUGE, "process_start_time_seconds",
		 "Start time of the process since the Unix epoch, in seconds"},
		{&m->open_fds, METRICS_GAUGE, "process_open_fds", "Open file descriptors"},
		{&m->max_fds, METRICS_GAUGE, "process_max_fds", "Limit on open file descriptors"},
	};

	for (size_t i = 0; i < sizeof(hist) / sizeof(hist[0]); i++) {
		if ((r = add_simple(m->reg, &hist[i], sync_b, SYNC_BUCKETS)) < 0)
			goto fail;
	}
	if ((r = add_simple(
		     m->reg,
		     &(struct metric_def){&m->netprog, METRICS_HISTOGRAM,
					  "kubeproxy_network_programming_duration_seconds",
					  "Time from an endpoint change in the cluster to its "
					  "being programmed on this node, in seconds"},
		     net_b, NETPROG_BUCKETS)) < 0)
		goto fail;
	for (size_t i = 0; i < sizeof(plain) / sizeof(plain[0]); i++) {
		if ((r = add_simple(m->reg, &plain[i], NULL, 0)) < 0)
			goto fail;
	}
	/* kube-proxy declares this one a gauge despite its name. */
	if ((r = metrics_family_new(m->reg, METRICS_GAUGE,
				    "kubeproxy_sync_proxy_rules_no_local_endpoints_total",
				    "Service ports with a Local traffic policy and no local "
				    "endpoints while other nodes have some",
				    policy_label, NULL, 0, &f)) < 0 ||
	    (r = metrics_series(f, (const char *const[]){"internal"}, &m->no_local_internal)) < 0 ||
	    (r = metrics_series(f, (const char *const[]){"external"}, &m->no_local_external)) < 0)
		goto fail;
	if ((r = metrics_family_new(m->reg, METRICS_COUNTER, "kubeproxy_proxy_healthz_total",
				    "Answers to /healthz by HTTP status", code_label, NULL, 0,
				    &m->healthz)) < 0 ||
	    (r = metrics_family_new(m->reg, METRICS_COUNTER, "kubeproxy_proxy_livez_total",
				    "Answers to /livez by HTTP status", code_label, NULL, 0,
				    &m->livez)) < 0 ||
	    (r = metrics_family_new(m->reg, METRICS_COUNTER, "kproxy_objects_rejected_total",
				    "API objects the agent could not decode and ignored",
				    kind_label, NULL, 0, &m->rejected)) < 0 ||
	    (r = metrics_family_new(m->reg, METRICS_COUNTER, "kproxy_watch_restarts_total",
				    "Watches started again after the first one", kind_label, NULL,
				    0, &m->restarts)) < 0 ||
	    (r = metrics_family_new(m->reg, METRICS_COUNTER, "kproxy_lists_total",
				    "Complete lists of API objects", kind_label, NULL, 0,
				    &m->lists)) < 0)
		goto fail;
	/* Zero-valued series from the start, so that rates and alerts work
	 * before the first probe. */
	for (int i = 0; i < 2; i++) {
		const char *const code[] = {i ? "503" : "200"};
		struct metric *unused;

		if ((r = metrics_series(m->healthz, code, &unused)) < 0 ||
		    (r = metrics_series(m->livez, code, &unused)) < 0)
			goto fail;
	}
	metrics_set(m->start_time, process_start_time());
	*ret = m;
	return 0;
fail:
	metrics_free(m);
	return r;
}

void metrics_free(struct metrics *m)
{
	if (!m)
		return;
	metrics_registry_free(m->reg);
	free(m->proxy_mode);
	free(m);
}

struct metrics_registry *metrics_get_registry(struct metrics *m)
{
	return m->reg;
}

void metrics_sync_queued(struct metrics *m)
{
	if (m)
		metrics_set(m->last_queued, wall_now());
}

void metrics_sync_done(struct metrics *m, bool full, double seconds)
{
	if (!m)
		return;
	metrics_observe(m->sync_all, seconds);
	metrics_observe(full ? m->sync_full : m->sync_partial, seconds);
	metrics_set(m->last_sync, wall_now());
}

void metrics_sync_failed(struct metrics *m)
{
	if (m)
		metrics_inc(m->sync_failures);
}

void metrics_set_changes(struct metrics *m, uint64_t service_total, uint64_t endpoint_total,
			 uint64_t service_pending, uint64_t endpoint_pending)
{
	if (!m)
		return;
	metrics_set(m->svc_total, (double)service_total);
	metrics_set(m->ep_total, (double)endpoint_total);
	metrics_set(m->svc_pending, (double)service_pending);
	metrics_set(m->ep_pending, (double)endpoint_pending);
}

/* As kube-proxy counts them: a port whose Service has usable endpoints
 * somewhere (ready, or serving while terminating) but none on this node,
 * once for each Local policy that then has nothing to send to. */
static void count_no_local(const struct svc_ports *ports, int64_t *internal, int64_t *external)
{
	for (size_t i = 0; ports && i < ports->n; i++) {
		const struct svc_port *sp = &ports->v[i];
		bool any = false;

		for (size_t j = 0; j < sp->n_eps && !any; j++) {
			uint8_t fl = sp->eps[j].flags;

			any = (fl & EP_READY) ||
			      (fl & (EP_SERVING | EP_TERMINATING)) == (EP_SERVING | EP_TERMINATING);
		}
		if (!any || sp->n_local_eps)
			continue;
		if (sp->itp_local)
			(*internal)++;
		if (sp->etp_local)
			(*external)++;
	}
}

void metrics_apply_changes(struct metrics *m, const struct tracker_changes *ch)
{
	int64_t oi = 0, oe = 0, ni = 0, ne = 0;

	if (!m || !ch)
		return;
	if (ch->full)
		m->no_local_int = m->no_local_ext = 0;
	for (size_t i = 0; i < ch->n; i++) {
		if (!ch->full)
			count_no_local(ch->v[i].old, &oi, &oe);
		count_no_local(ch->v[i].new, &ni, &ne);
	}
	m->no_local_int += ni - oi;
	m->no_local_ext += ne - oe;
	/* Never below zero, whatever order the changes came in. */
	if (m->no_local_int < 0)
		m->no_local_int = 0;
	if (m->no_local_ext < 0)
		m->no_local_ext = 0;
	metrics_set(m->no_local_internal, (double)m->no_local_int);
	metrics_set(m->no_local_external, (double)m->no_local_ext);
}

void metrics_set_no_local(struct metrics *m, uint64_t internal, uint64_t external)
{
	if (!m)
		return;
	m->no_local_int = (int64_t)internal;
	m->no_local_ext = (int64_t)external;
	metrics_set(m->no_local_internal, (double)internal);
	metrics_set(m->no_local_external, (double)external);
}

static void set_kind(struct metrics_family *f, const char *kind, uint64_t v)
{
	struct metric *s;

	if (metrics_series(f, (const char *const[]){kind}, &s) == 0)
		metrics_set(s, (double)v);
}

void metrics_set_reflector(struct metrics *m, const char *kind, uint64_t rejected,
			   uint64_t watch_restarts, uint64_t lists)
{
	if (!m || !kind)
		return;
	set_kind(m->rejected, kind, rejected);
	set_kind(m->restarts, kind, watch_restarts);
	set_kind(m->lists, kind, lists);
}

void metrics_set_dataplane_elements(struct metrics *m, uint64_t elements)
{
	if (m)
		metrics_set(m->dp_elements, (double)elements);
}

void metrics_observe_network_programming(struct metrics *m, double seconds)
{
	if (m)
		metrics_observe(m->netprog, seconds);
}

void metrics_count_health_request(struct metrics *m, bool livez, unsigned int code)
{
	char s[16];
	struct metric *c;

	if (!m)
		return;
	snprintf(s, sizeof(s), "%u", code);
	if (metrics_series(livez ? m->livez : m->healthz, (const char *const[]){s}, &c) == 0)
		metrics_inc(c);
}

/* Reads the numbers the process metrics need; a value /proc does not give
 * keeps its last reading. */
static void read_process(struct metrics *m)
{
	unsigned long long size = 0, resident = 0, utime, stime, vsize;
	long page = sysconf(_SC_PAGESIZE), hz = sysconf(_SC_CLK_TCK);
	struct rlimit rl;
	char stat[1024];
	const char *p;
	DIR *dir;
	FILE *f;
	size_t n;

	f = fopen("/proc/self/statm", "re");
	if (f) {
		if (fscanf(f, "%llu %llu", &size, &resident) == 2) {
			metrics_set(m->kproxy_rss, (double)resident * (double)page);
			metrics_set(m->rss, (double)resident * (double)page);
		}
		fclose(f);
	}
	f = fopen("/proc/self/stat", "re");
	if (f) {
		n = fread(stat, 1, sizeof(stat) - 1, f);
		fclose(f);
		stat[n] = '\0';
		p = strrchr(stat, ')');
		/* After the name: state is field 3, utime 14, stime 15, vsize 23. */
		if (p && sscanf(p + 2,
				"%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu %*d %*d "
				"%*d %*d %*d %*d %*u %llu",
				&utime, &stime, &vsize) == 3) {
			if (hz > 0)
				metrics_set(m->cpu, (double)(utime + stime) / (double)hz);
			metrics_set(m->vsize, (double)vsize);
		}
	}
	dir = opendir("/proc/self/fd");
	if (dir) {
		size_t fds = 0;
		struct dirent *de;

		while ((de = readdir(dir)))
			fds += de->d_name[0] != '.';
		closedir(dir);
		/* Less the descriptor of the listing itself. */
		metrics_set(m->open_fds, (double)(fds ? fds - 1 : 0));
	}
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0)
		metrics_set(m->max_fds, (double)rl.rlim_cur);
}

void metrics_on_render(struct metrics *m, void (*fn)(struct metrics *m, void *data), void *data)
{
	m->on_render = fn;
	m->on_render_data = data;
}

int metrics_render(struct metrics *m, char **ret_text, size_t *ret_len)
{
	if (m->on_render)
		m->on_render(m, m->on_render_data);
	read_process(m);
	return metrics_registry_render(m->reg, ret_text, ret_len);
}

void metrics_http_handler(void *data, const struct http_request *req, struct http_response *resp)
{
	struct metrics *m = data;
	char *text;
	size_t len;

	http_response_header(resp, "X-Content-Type-Options", "nosniff");
	if (strcmp(req->path, "/metrics") == 0) {
		if (metrics_render(m, &text, &len) < 0) {
			resp->status = 500;
			http_response_printf(resp, "out of memory\n");
			return;
		}
		http_response_content_type(resp, "text/plain; version=0.0.4; charset=utf-8");
		http_response_set_body(resp, text, len);
	} else if (strcmp(req->path, "/healthz") == 0) {
		http_response_printf(resp, "ok");
	} else if (strcmp(req->path, "/proxyMode") == 0) {
		http_response_printf(resp, "%s", m->proxy_mode);
	} else {
		resp->status = 404;
		http_response_printf(resp, "404 page not found\n");
	}
}
