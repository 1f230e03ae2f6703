/* Proxy health state and the /healthz and /livez handlers; see healthz.h.
 *
 * Health is decided on the monotonic clock so that a wall-clock step cannot
 * make the proxy look stuck (or fresh); the wall clock is only read to print
 * times in the JSON answer. */
#include "health/healthz.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "health/http.h"
#include "health/metrics.h"
#include "model/objects.h"
#include "util/loop.h"

struct healthz {
	uint64_t timeout_ns;
	struct metrics *metrics;
	bool updated; /* a sync has completed */
	uint64_t last_updated_ns;
	bool pending; /* a change is queued and not yet synced */
	uint64_t oldest_queued_ns;
	bool node_eligible;
};

int healthz_new(uint64_t timeout_ms, struct metrics *metrics, struct healthz **ret)
{
	struct healthz *h = calloc(1, sizeof(*h));

	if (!h)
		return -ENOMEM;
	h->timeout_ns = timeout_ms * 1000000ull;
	h->metrics = metrics;
	/* As kube-proxy: eligible while starting, until the node says
	 * otherwise. */
	h->node_eligible = true;
	*ret = h;
	return 0;
}

void healthz_free(struct healthz *h)
{
	free(h);
}

void healthz_queued(struct healthz *h, uint64_t now_ns)
{
	if (!h || h->pending)
		return;
	h->pending = true;
	h->oldest_queued_ns = now_ns;
}

void healthz_updated(struct healthz *h, uint64_t now_ns)
{
	if (!h)
		return;
	h->pending = false;
	h->updated = true;
	h->last_updated_ns = now_ns;
}

void healthz_set_node(struct healthz *h, const struct node_info *node)
{
	if (h)
		h->node_eligible = node && !node->deleting && !node->to_be_deleted;
}

void healthz_set_node_eligible(struct healthz *h, bool eligible)
{
	if (h)
		h->node_eligible = eligible;
}

bool healthz_node_eligible(const struct healthz *h)
{
	return !h || h->node_eligible;
}

bool healthz_healthy(const struct healthz *h, uint64_t now_ns)
{
	if (!h || !h->updated || !h->pending)
		return true;
	/* A queued time "in the future" (clock read before the caller's) is
	 * simply young. */
	return now_ns < h->oldest_queued_ns || now_ns - h->oldest_queued_ns < h->timeout_ns;
}

const char *healthz_format_time(int64_t wall_ns, char *buf)
{
	int64_t sec = wall_ns / 1000000000, frac = wall_ns % 1000000000;
	time_t t;
	struct tm tm;
	size_t n;

	if (frac < 0) {
		frac += 1000000000;
		sec--;
	}
	t = (time_t)sec;
	if (!gmtime_r(&t, &tm)) {
		snprintf(buf, HEALTHZ_TIME_MAX, "0001-01-01T00:00:00Z");
		return buf;
	}
	n = strftime(buf, HEALTHZ_TIME_MAX, "%Y-%m-%dT%H:%M:%S", &tm);
	if (frac) {
		int digits = 9;

		while (frac % 10 == 0) {
			frac /= 10;
			digits--;
		}
		n += (size_t)snprintf(buf + n, HEALTHZ_TIME_MAX - n, ".%0*lld", digits,
				      (long long)frac);
	}
	snprintf(buf + n, HEALTHZ_TIME_MAX - n, "Z");
	return buf;
}

static int64_t wall_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

void healthz_http_handler(void *data, const struct http_request *req, struct http_response *resp)
{
	struct healthz *h = data;
	char last[HEALTHZ_TIME_MAX], now_s[HEALTHZ_TIME_MAX];
	bool livez, healthy, ok;
	uint64_t now = loop_now_ns();
	int64_t wall = wall_now_ns();

	http_response_header(resp, "X-Content-Type-Options", "nosniff");
	if (strcmp(req->path, "/healthz") == 0) {
		livez = false;
	} else if (strcmp(req->path, "/livez") == 0) {
		livez = true;
	} else {
		resp->status = 404;
		http_response_printf(resp, "404 page not found\n");
		return;
	}
	healthy = healthz_healthy(h, now);
	ok = healthy && (livez || h->node_eligible);
	healthz_format_time(wall, now_s);
	/* As kube-proxy: a healthy answer shows the current time as the last
	 * update (older clients read it as "the sync loop is alive"); an
	 * unhealthy one shows the real time of the last sync, or Go's zero time
	 * when there has been none. */
	if (ok)
		strcpy(last, now_s);
	else if (h->updated)
		healthz_format_time(wall - (int64_t)(now - h->last_updated_ns), last);
	else
		strcpy(last, "0001-01-01T00:00:00Z");
	resp->status = ok ? 200 : 503;
	http_response_content_type(resp, "application/json");
	http_response_printf(resp, "{\"lastUpdated\":\"%s\",\"currentTime\":\"%s\",", last, now_s);
	/* Only /healthz depends on the node, so only it reports it. */
	if (!livez)
		http_response_printf(resp, "\"nodeEligible\":%s,",
				     h->node_eligible ? "true" : "false");
	http_response_printf(resp, "\"healthy\":%s}", healthy ? "true" : "false");
	metrics_count_health_request(h->metrics, livez, resp->status);
}
