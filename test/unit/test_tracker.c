/* Tests for model/tracker, the cache of Services, EndpointSlices and this
 * Node that turns events into per-Service (old, new) changes for the
 * dataplane.  Covered: nothing pending at first; a Service and its slice
 * giving one change with no old state; commit making it the published
 * state; updates that change nothing (or change and change back) dropped
 * from the list and cleared by the commit; a slice that arrives before its
 * Service; a slice relabelled to another Service touching both; Service and
 * slice removal; full syncs listing every Service with ports and no old
 * state; abort keeping changes pending; a zone change of this node
 * re-evaluating every Service (topology hints); locality by the node name
 * given at creation; tracker_foreach_port over the published ports; the
 * statistics counters; and a thousand Services of which one changes. */
#include <errno.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>

#include "kube/decode.h"
#include "model/tracker.h"
#include "unit.h"

static char err[512];

static json_t *J(const char *text)
{
	char *copy = strdup(text);
	json_error_t e;
	json_t *j;

	if (!copy)
		return NULL;
	for (char *p = copy; *p; p++) {
		if (*p == '\'')
			*p = '"';
	}
	j = json_loads(copy, 0, &e);
	if (!j)
		fprintf(stderr, "    bad test JSON at %d:%d: %s\n", e.line, e.column, e.text);
	free(copy);
	return j;
}

/* Service name in namespace "ns" with the given cluster IP and one port
 * http 80/TCP; spec_extra adds or replaces spec fields. */
static struct service *svc(const char *name, const char *cluster_ip, const char *spec_extra)
{
	struct service *s = NULL;
	char buf[4096];
	json_t *j;

	snprintf(buf, sizeof(buf),
		 "{'metadata': {'name': '%s', 'namespace': 'ns'},"
		 " 'spec': {'clusterIP': '%s', 'ports': [{'name': 'http', 'port': 80}]%s}}",
		 name, cluster_ip, spec_extra);
	j = J(buf);
	if (j && decode_service(j, &s, err, sizeof(err)) < 0)
		fprintf(stderr, "    decode_service: %s\n", err);
	json_decref(j);
	return s;
}

/* Slice name in namespace "ns" for Service service, http 8080/TCP. */
static struct endpoint_slice *slice(const char *name, const char *service, const char *endpoints)
{
	struct endpoint_slice *s = NULL;
	char buf[8192];
	json_t *j;

	snprintf(buf, sizeof(buf),
		 "{'metadata': {'name': '%s', 'namespace': 'ns',"
		 "  'labels': {'kubernetes.io/service-name': '%s'}},"
		 " 'addressType': 'IPv4', 'ports': [{'name': 'http', 'port': 8080}],"
		 " 'endpoints': %s}",
		 name, service, endpoints);
	j = J(buf);
	if (j && (decode_endpoint_slice(j, &s, err, sizeof(err)) < 0 || !s))
		fprintf(stderr, "    decode_endpoint_slice: %s\n", err);
	json_decref(j);
	return s;
}

static struct node_info *node(const char *name, const char *zone)
{
	struct node_info *n = NULL;
	char buf[512];
	json_t *j;

	if (zone)
		snprintf(buf, sizeof(buf),
			 "{'metadata': {'name': '%s', 'labels': {"
			 "'topology.kubernetes.io/zone': '%s'}}}",
			 name, zone);
	else
		snprintf(buf, sizeof(buf), "{'metadata': {'name': '%s'}}", name);
	j = J(buf);
	if (j && decode_node(j, &n, err, sizeof(err)) < 0)
		fprintf(stderr, "    decode_node: %s\n", err);
	json_decref(j);
	return n;
}

/* "addr:port/FLAGS" list of the Cluster endpoints of the first port. */
static const char *cluster_eps(const struct svc_ports *p)
{
	static char bufs[4][1024];
	static int next;
	char *out = bufs[next++ % 4];
	size_t off = 0;

	out[0] = '\0';
	if (!p || !p->n)
		return "(none)";
	for (size_t i = 0; i < p->v[0].n_cluster_eps && off < 900; i++) {
		const struct endpoint *e = &p->v[0].cluster_eps[i];
		char a[IPADDR_STRLEN];

		off += (size_t)snprintf(out + off, sizeof(bufs[0]) - off, "%s%s:%u%s", i ? " " : "",
					ipaddr_format(&e->addr, a), e->port,
					e->flags & EP_LOCAL ? "/L" : "");
	}
	return out;
}

static const struct tracker_change *find_change(const struct tracker_changes *c, const char *key)
{
	for (size_t i = 0; i < c->n; i++) {
		if (!strcmp(c->v[i].key, key))
			return &c->v[i];
	}
	return NULL;
}

/* Prepares, checks the number of changes, commits. */
static size_t sync_now(struct tracker *t, bool full)
{
	struct tracker_changes c;
	size_t n;

	if (tracker_prepare(t, full, &c) < 0)
		return (size_t)-1;
	n = c.n;
	tracker_commit(t, &c);
	return n;
}

struct visit {
	size_t ports;
	char names[16][64];
};

static void visit_port(const struct svc_port *sp, void *data)
{
	struct visit *v = data;

	if (v->ports < 16)
		snprintf(v->names[v->ports], sizeof(v->names[0]), "%s/%s:%u", sp->ns, sp->name,
			 sp->port);
	v->ports++;
}

static bool visited(const struct visit *v, const char *name)
{
	for (size_t i = 0; i < v->ports && i < 16; i++) {
		if (!strcmp(v->names[i], name))
			return true;
	}
	return false;
}

TEST(empty)
{
	struct tracker *t = NULL;
	struct tracker_changes c;
	struct tracker_stats st;
	struct visit v = {0};

	REQUIRE(tracker_new("node-a", &t) == 0);
	CHECK_EQ_INT(tracker_pending(t), 0);
	CHECK(tracker_node(t) == NULL);
	REQUIRE(tracker_prepare(t, false, &c) == 0);
	CHECK_EQ_INT(c.n, 0);
	CHECK(!c.full);
	tracker_commit(t, &c);
	CHECK_EQ_INT(tracker_pending(t), 0);
	tracker_foreach_port(t, visit_port, &v);
	CHECK_EQ_INT(v.ports, 0);
	tracker_get_stats(t, &st);
	CHECK_EQ_INT(st.service_changes, 0);
	CHECK_EQ_INT(st.endpoint_changes, 0);
	CHECK_EQ_INT(st.services, 0);
	CHECK_EQ_INT(st.slices, 0);
	/* Removing what is not there changes nothing. */
	tracker_service_remove(t, "ns/ghost");
	tracker_slice_remove(t, "ns/ghost-1");
	CHECK_EQ_INT(tracker_pending(t), 0);
	tracker_get_stats(t, &st);
	CHECK_EQ_INT(st.service_changes, 0);
	CHECK_EQ_INT(st.endpoint_changes, 0);
	tracker_free(t);
	tracker_free(NULL);
}

TEST(service_and_slice_one_change)
{
	struct tracker *t = NULL;
	struct tracker_changes c;
	const struct tracker_change *ch;
	struct visit v = {0};

	REQUIRE(tracker_new("node-a", &t) == 0);
	tracker_service_upsert(t, "ns/web", svc("web", "10.96.0.10", ""));
	CHECK_EQ_INT(tracker_pending(t), 1);
	tracker_slice_upsert(
		t, "ns/web-1",
		slice("web-1", "web", "[{'addresses': ['10.0.0.1'], 'nodeName': 'node-a'}]"));
	/* Both events touch the same Service. */
	CHECK_EQ_INT(tracker_pending(t), 1);

	REQUIRE(tracker_prepare(t, false, &c) == 0);
	REQUIRE(c.n == 1);
	ch = &c.v[0];
	CHECK_EQ_STR(ch->key, "ns/web");
	CHECK(ch->old == NULL);
	REQUIRE(ch->new != NULL);
	REQUIRE(ch->new->n == 1);
	CHECK_EQ_INT(ch->new->v[0].port, 80);
	CHECK_EQ_STR(cluster_eps(ch->new), "10.0.0.1:8080/L");
	tracker_commit(t, &c);
	CHECK_EQ_INT(tracker_pending(t), 0);

	tracker_foreach_port(t, visit_port, &v);
	CHECK_EQ_INT(v.ports, 1);
	CHECK(visited(&v, "ns/web:80"));

	/* Nothing new: nothing to do. */
	REQUIRE(tracker_prepare(t, false, &c) == 0);
	CHECK_EQ_INT(c.n, 0);
	tracker_commit(t, &c);
	tracker_free(t);
}

TEST(update_gives_old_and_new)
{
	struct tracker *t = NULL;
	struct tracker_changes c;
	struct visit v = {0};

	REQUIRE(tracker_new("node-a", &t) == 0);
	tracker_service_upsert(t, "ns/web", svc("web", "10.96.0.10", ""));
	tracker_slice_upsert(t, "ns/web-1", slice("web-1", "web", "[{'addresses': ['10.0.0.1']}]"));
	CHECK_EQ_INT(sync_now(t, false), 1);

	tracker_slice_upsert(t, "ns/web-1",
			     slice("web-1", "web",
				   "[{'addresses': ['10.0.0.1']}, {'addresses': ['10.0.0.2']}]"));
	CHECK_EQ_INT(tracker_pending(t), 1);
	REQUIRE(tracker_prepare(t, false, &c) == 0);
	REQUIRE(c.n == 1);
	REQUIRE(c.v[0].old && c.v[0].new);
	CHECK_EQ_STR(cluster_eps(c.v[0].old), "10.0.0.1:8080");
	CHECK_EQ_STR(cluster_eps(c.v[0].new), "10.0.0.1:8080 10.0.0.2:8080");
	tracker_commit(t, &c);

	/* The Service's port changes: same key, new port. */
	tracker_service_upsert(
		t, "ns/web", svc("web", "10.96.0.10", ", 'ports': [{'name': 'http', 'port': 81}]"));
	REQUIRE(tracker_prepare(t, false, &c) == 0);
	REQUIRE(c.n == 1);
	REQUIRE(c.v[0].old && c.v[0].new);
	CHECK_EQ_INT(c.v[0].old->v[0].port, 80);
	CHECK_EQ_INT(c.v[0].new->v[0].port, 81);
	tracker_commit(t, &c);
	tracker_foreach_port(t, visit_port, &v);
	CHECK_EQ_INT(v.ports, 1);
	CHECK(visited(&v, "ns/web:81"));
	tracker_free(t);
}

TEST(changes_that_cancel_out)
{
	struct tracker *t = NULL;
	struct tracker_changes c;
	const char *eps = "[{'addresses': ['10.0.0.1']}, {'addresses': ['10.0.0.2']}]";

	REQUIRE(tracker_new("node-a", &t) == 0);
	tracker_service_upsert(t, "ns/web", svc("web", "10.96.0.10", ""));
	tracker_slice_upsert(t, "ns/web-1", slice("web-1", "web", eps));
	CHECK_EQ_INT(sync_now(t, false), 1);

	/* The same objects again (a resync, a relist). */
	tracker_service_upsert(t, "ns/web", svc("web", "10.96.0.10", ""));
	tracker_slice_upsert(t, "ns/web-1", slice("web-1", "web", eps));
	CHECK_EQ_INT(tracker_pending(t), 1);
	REQUIRE(tracker_prepare(t, false, &c) == 0);
	CHECK_EQ_INT(c.n, 0);
	tracker_commit(t, &c);
	CHECK_EQ_INT(tracker_pending(t), 0);

	/* An endpoint goes unready and comes back before the sync. */
	tracker_slice_upsert(t, "ns/web-1",
			     slice("web-1", "web",
				   "[{'addresses': ['10.0.0.1']}, {'addresses': ['10.0.0.2'],"
				   " 'conditions': {'ready': false}}]"));
	tracker_slice_upsert(t, "ns/web-1", slice("web-1", "web", eps));
	REQUIRE(tracker_prepare(t, false, &c) == 0);
	CHECK_EQ_INT(c.n, 0);
	tracker_commit(t, &c);
	CHECK_EQ_INT(tracker_pending(t), 0);

	/* A Service removed and re-created the same. */
	tracker_service_remove(t, "ns/web");
	tracker_service_upsert(t, "ns/web", svc("web", "10.96.0.10", ""));
	CHECK_EQ_INT(sync_now(t, false), 0);
	CHECK_EQ_INT(tracker_pending(t), 0);

	/* A change to a field the dataplane does not use. */
	tracker_service_upsert(t, "ns/web",
			       svc("web", "10.96.0.10", ", 'selector': {'app': 'other'}"));
	CHECK_EQ_INT(sync_now(t, false), 0);
	tracker_free(t);
}

TEST(slice_before_service)
{
	struct tracker *t = NULL;
	struct tracker_changes c;

	REQUIRE(tracker_new("node-a", &t) == 0);
	tracker_slice_upsert(t, "ns/web-1", slice("web-1", "web", "[{'addresses': ['10.0.0.1']}]"));
	CHECK_EQ_INT(tracker_pending(t), 1);
	/* No Service yet: nothing for the dataplane. */
	REQUIRE(tracker_prepare(t, false, &c) == 0);
	CHECK_EQ_INT(c.n, 0);
	tracker_commit(t, &c);
	CHECK_EQ_INT(tracker_pending(t), 0);

	tracker_service_upsert(t, "ns/web", svc("web", "10.96.0.10", ""));
	REQUIRE(tracker_prepare(t, false, &c) == 0);
	REQUIRE(c.n == 1);
	CHECK(c.v[0].old == NULL);
	CHECK_EQ_STR(cluster_eps(c.v[0].new), "10.0.0.1:8080");
	tracker_commit(t, &c);
	tracker_free(t);
}

TEST(slice_moves_between_services)
{
	struct tracker *t = NULL;
	struct tracker_changes c;
	const struct tracker_change *web, *api;
	struct tracker_stats st;

	REQUIRE(tracker_new("node-a", &t) == 0);
	tracker_service_upsert(t, "ns/web", svc("web", "10.96.0.10", ""));
	tracker_service_upsert(t, "ns/api", svc("api", "10.96.0.11", ""));
	tracker_slice_upsert(t, "ns/s1", slice("s1", "web", "[{'addresses': ['10.0.0.1']}]"));
	CHECK_EQ_INT(sync_now(t, false), 2);

	/* The same slice, now labelled for api. */
	tracker_slice_upsert(t, "ns/s1", slice("s1", "api", "[{'addresses': ['10.0.0.1']}]"));
	CHECK_EQ_INT(tracker_pending(t), 2);
	REQUIRE(tracker_prepare(t, false, &c) == 0);
	CHECK_EQ_INT(c.n, 2);
	web = find_change(&c, "ns/web");
	api = find_change(&c, "ns/api");
	REQUIRE(web && api);
	CHECK_EQ_STR(cluster_eps(web->old), "10.0.0.1:8080");
	CHECK_EQ_STR(cluster_eps(web->new), "");
	CHECK_EQ_STR(cluster_eps(api->old), "");
	CHECK_EQ_STR(cluster_eps(api->new), "10.0.0.1:8080");
	tracker_commit(t, &c);
	tracker_get_stats(t, &st);
	CHECK_EQ_INT(st.slices, 1);
	CHECK_EQ_INT(st.services, 2);

	/* Removing it now affects api only. */
	tracker_slice_remove(t, "ns/s1");
	CHECK_EQ_INT(tracker_pending(t), 1);
	REQUIRE(tracker_prepare(t, false, &c) == 0);
	REQUIRE(c.n == 1);
	CHECK_EQ_STR(c.v[0].key, "ns/api");
	CHECK_EQ_STR(cluster_eps(c.v[0].new), "");
	tracker_commit(t, &c);
	tracker_free(t);
}

TEST(two_slices_one_service)
{
	struct tracker *t = NULL;
	struct tracker_changes c;

	REQUIRE(tracker_new("node-a", &t) == 0);
	tracker_service_upsert(t, "ns/web", svc("web", "10.96.0.10", ""));
	tracker_slice_upsert(t, "ns/web-1", slice("web-1", "web", "[{'addresses': ['10.0.0.2']}]"));
	tracker_slice_upsert(t, "ns/web-2", slice("web-2", "web", "[{'addresses': ['10.0.0.1']}]"));
	REQUIRE(tracker_prepare(t, false, &c) == 0);
	REQUIRE(c.n == 1);
	CHECK_EQ_STR(cluster_eps(c.v[0].new), "10.0.0.1:8080 10.0.0.2:8080");
	tracker_commit(t, &c);

	tracker_slice_remove(t, "ns/web-1");
	REQUIRE(tracker_prepare(t, false, &c) == 0);
	REQUIRE(c.n == 1);
	CHECK_EQ_STR(cluster_eps(c.v[0].new), "10.0.0.1:8080");
	tracker_commit(t, &c);
	tracker_free(t);
}

TEST(service_removed)
{
	struct tracker *t = NULL;
	struct tracker_changes c;
	struct visit v = {0};
	struct tracker_stats st;

	REQUIRE(tracker_new("node-a", &t) == 0);
	tracker_service_upsert(t, "ns/web", svc("web", "10.96.0.10", ""));
	tracker_service_upsert(t, "ns/api", svc("api", "10.96.0.11", ""));
	tracker_slice_upsert(t, "ns/web-1", slice("web-1", "web", "[{'addresses': ['10.0.0.1']}]"));
	CHECK_EQ_INT(sync_now(t, false), 2);

	tracker_service_remove(t, "ns/web");
	CHECK_EQ_INT(tracker_pending(t), 1);
	REQUIRE(tracker_prepare(t, false, &c) == 0);
	REQUIRE(c.n == 1);
	CHECK_EQ_STR(c.v[0].key, "ns/web");
	REQUIRE(c.v[0].old != NULL);
	CHECK_EQ_INT(c.v[0].old->n, 1);
	CHECK_EQ_STR(cluster_eps(c.v[0].old), "10.0.0.1:8080");
	CHECK(c.v[0].new == NULL);
	tracker_commit(t, &c);

	tracker_foreach_port(t, visit_port, &v);
	CHECK_EQ_INT(v.ports, 1);
	CHECK(visited(&v, "ns/api:80"));
	CHECK(!visited(&v, "ns/web:80"));
	tracker_get_stats(t, &st);
	CHECK_EQ_INT(st.services, 1);
	/* The slice is still known, waiting for its Service to come back. */
	CHECK_EQ_INT(st.slices, 1);
	tracker_service_upsert(t, "ns/web", svc("web", "10.96.0.10", ""));
	REQUIRE(tracker_prepare(t, false, &c) == 0);
	REQUIRE(c.n == 1);
	CHECK(c.v[0].old == NULL);
	CHECK_EQ_STR(cluster_eps(c.v[0].new), "10.0.0.1:8080");
	tracker_commit(t, &c);

	/* A Service turning headless is a removal for the dataplane. */
	tracker_service_upsert(t, "ns/web", svc("web", "None", ""));
	REQUIRE(tracker_prepare(t, false, &c) == 0);
	REQUIRE(c.n == 1);
	CHECK(c.v[0].old != NULL);
	CHECK(c.v[0].new == NULL);
	tracker_commit(t, &c);
	tracker_free(t);
}

TEST(full_prepare)
{
	struct tracker *t = NULL;
	struct tracker_changes c;
	struct visit v = {0};

	REQUIRE(tracker_new("node-a", &t) == 0);
	tracker_service_upsert(t, "ns/web", svc("web", "10.96.0.10", ""));
	tracker_service_upsert(t, "ns/api", svc("api", "10.96.0.11", ""));
	tracker_service_upsert(t, "ns/db", svc("db", "None", ""));
	tracker_slice_upsert(t, "ns/web-1", slice("web-1", "web", "[{'addresses': ['10.0.0.1']}]"));
	CHECK_EQ_INT(sync_now(t, false), 2);

	/* Everything with ports, none with an old state, even though
	 * nothing changed. */
	REQUIRE(tracker_prepare(t, true, &c) == 0);
	CHECK(c.full);
	CHECK_EQ_INT(c.n, 2);
	for (size_t i = 0; i < c.n; i++) {
		CHECK(c.v[i].old == NULL);
		CHECK(c.v[i].new != NULL);
	}
	CHECK(find_change(&c, "ns/web") != NULL);
	CHECK(find_change(&c, "ns/api") != NULL);
	CHECK(find_change(&c, "ns/db") == NULL);
	CHECK_EQ_STR(cluster_eps(find_change(&c, "ns/web")->new), "10.0.0.1:8080");
	tracker_commit(t, &c);
	CHECK_EQ_INT(tracker_pending(t), 0);
	tracker_foreach_port(t, visit_port, &v);
	CHECK_EQ_INT(v.ports, 2);
	CHECK_EQ_INT(sync_now(t, false), 0);

	/* A full sync with changes pending covers them too. */
	tracker_service_remove(t, "ns/api");
	tracker_slice_upsert(t, "ns/web-1",
			     slice("web-1", "web",
				   "[{'addresses': ['10.0.0.1']}, {'addresses': ['10.0.0.3']}]"));
	REQUIRE(tracker_prepare(t, true, &c) == 0);
	REQUIRE(c.n == 1);
	CHECK_EQ_STR(c.v[0].key, "ns/web");
	CHECK_EQ_STR(cluster_eps(c.v[0].new), "10.0.0.1:8080 10.0.0.3:8080");
	tracker_commit(t, &c);
	CHECK_EQ_INT(tracker_pending(t), 0);
	memset(&v, 0, sizeof(v));
	tracker_foreach_port(t, visit_port, &v);
	CHECK_EQ_INT(v.ports, 1);
	CHECK(visited(&v, "ns/web:80"));
	CHECK_EQ_INT(sync_now(t, false), 0);
	tracker_free(t);
}

TEST(abort_keeps_pending)
{
	struct tracker *t = NULL;
	struct tracker_changes c;
	struct visit v = {0};

	REQUIRE(tracker_new("node-a", &t) == 0);
	tracker_service_upsert(t, "ns/web", svc("web", "10.96.0.10", ""));
	REQUIRE(tracker_prepare(t, false, &c) == 0);
	CHECK_EQ_INT(c.n, 1);
	tracker_abort(t, &c);
	CHECK_EQ_INT(tracker_pending(t), 1);
	tracker_foreach_port(t, visit_port, &v);
	CHECK_EQ_INT(v.ports, 0);

	/* The same change again, still against nothing. */
	REQUIRE(tracker_prepare(t, false, &c) == 0);
	REQUIRE(c.n == 1);
	CHECK(c.v[0].old == NULL);
	CHECK(c.v[0].new != NULL);
	tracker_commit(t, &c);
	CHECK_EQ_INT(tracker_pending(t), 0);

	/* An aborted update keeps the published state as the old one. */
	tracker_slice_upsert(t, "ns/web-1", slice("web-1", "web", "[{'addresses': ['10.0.0.1']}]"));
	REQUIRE(tracker_prepare(t, false, &c) == 0);
	REQUIRE(c.n == 1);
	tracker_abort(t, &c);
	REQUIRE(tracker_prepare(t, false, &c) == 0);
	REQUIRE(c.n == 1);
	REQUIRE(c.v[0].old != NULL);
	CHECK_EQ_STR(cluster_eps(c.v[0].old), "");
	CHECK_EQ_STR(cluster_eps(c.v[0].new), "10.0.0.1:8080");
	tracker_commit(t, &c);

	/* A failed full sync leaves the Services it listed pending. */
	REQUIRE(tracker_prepare(t, true, &c) == 0);
	CHECK_EQ_INT(c.n, 1);
	tracker_abort(t, &c);
	CHECK_EQ_INT(tracker_pending(t), 1);
	CHECK_EQ_INT(sync_now(t, true), 1);
	CHECK_EQ_INT(tracker_pending(t), 0);
	tracker_free(t);
}

TEST(node_zone_marks_all)
{
	struct tracker *t = NULL;
	struct tracker_changes c;
	const char *hinted =
		"[{'addresses': ['10.0.0.1'], 'hints': {'forZones': [{'name': 'z1'}]}},"
		" {'addresses': ['10.0.0.2'], 'hints': {'forZones': [{'name': 'z2'}]}}]";

	REQUIRE(tracker_new("node-a", &t) == 0);
	tracker_service_upsert(t, "ns/web", svc("web", "10.96.0.10", ""));
	tracker_service_upsert(t, "ns/api", svc("api", "10.96.0.11", ""));
	tracker_slice_upsert(t, "ns/web-1", slice("web-1", "web", hinted));
	REQUIRE(tracker_prepare(t, false, &c) == 0);
	/* No node yet, so no zone: hints are not used. */
	CHECK_EQ_STR(cluster_eps(find_change(&c, "ns/web")->new), "10.0.0.1:8080 10.0.0.2:8080");
	tracker_commit(t, &c);

	tracker_node_set(t, node("node-a", "z1"));
	REQUIRE(tracker_node(t) != NULL);
	CHECK_EQ_STR(tracker_node(t)->zone, "z1");
	CHECK_EQ_INT(tracker_pending(t), 2);
	REQUIRE(tracker_prepare(t, false, &c) == 0);
	/* Only the Service whose result changed is listed. */
	REQUIRE(c.n == 1);
	CHECK_EQ_STR(c.v[0].key, "ns/web");
	CHECK_EQ_STR(cluster_eps(c.v[0].new), "10.0.0.1:8080");
	tracker_commit(t, &c);

	/* The same zone again (a Node update for another reason). */
	tracker_node_set(t, node("node-a", "z1"));
	CHECK_EQ_INT(tracker_pending(t), 0);

	tracker_node_set(t, node("node-a", "z2"));
	CHECK_EQ_INT(tracker_pending(t), 2);
	REQUIRE(tracker_prepare(t, false, &c) == 0);
	REQUIRE(c.n == 1);
	CHECK_EQ_STR(cluster_eps(c.v[0].new), "10.0.0.2:8080");
	tracker_commit(t, &c);

	/* The Node going away loses the zone. */
	tracker_node_set(t, NULL);
	CHECK(tracker_node(t) == NULL);
	CHECK_EQ_INT(tracker_pending(t), 2);
	REQUIRE(tracker_prepare(t, false, &c) == 0);
	REQUIRE(c.n == 1);
	CHECK_EQ_STR(cluster_eps(c.v[0].new), "10.0.0.1:8080 10.0.0.2:8080");
	tracker_commit(t, &c);
	tracker_free(t);
}

TEST(locality_from_node_name)
{
	struct tracker *t = NULL;
	struct tracker_changes c;

	REQUIRE(tracker_new("node-b", &t) == 0);
	tracker_service_upsert(t, "ns/web", svc("web", "10.96.0.10", ""));
	tracker_slice_upsert(t, "ns/web-1",
			     slice("web-1", "web",
				   "[{'addresses': ['10.0.0.1'], 'nodeName': 'node-a'},"
				   " {'addresses': ['10.0.0.2'], 'nodeName': 'node-b'}]"));
	REQUIRE(tracker_prepare(t, false, &c) == 0);
	REQUIRE(c.n == 1);
	CHECK_EQ_STR(cluster_eps(c.v[0].new), "10.0.0.1:8080 10.0.0.2:8080/L");
	tracker_commit(t, &c);
	tracker_free(t);
}

TEST(stats)
{
	struct tracker *t = NULL;
	struct tracker_stats st;

	REQUIRE(tracker_new("node-a", &t) == 0);
	tracker_service_upsert(t, "ns/web", svc("web", "10.96.0.10", ""));
	tracker_service_upsert(t, "ns/web", svc("web", "10.96.0.10", ""));
	tracker_service_upsert(t, "ns/api", svc("api", "10.96.0.11", ""));
	tracker_slice_upsert(t, "ns/web-1", slice("web-1", "web", "[]"));
	tracker_slice_upsert(t, "ns/web-2", slice("web-2", "web", "[]"));
	tracker_slice_upsert(t, "ns/web-2", slice("web-2", "web", "[]"));
	tracker_get_stats(t, &st);
	CHECK_EQ_INT(st.service_changes, 3);
	CHECK_EQ_INT(st.endpoint_changes, 3);
	CHECK_EQ_INT(st.services, 2);
	CHECK_EQ_INT(st.slices, 2);

	tracker_service_remove(t, "ns/api");
	tracker_service_remove(t, "ns/api");
	tracker_slice_remove(t, "ns/web-2");
	tracker_get_stats(t, &st);
	CHECK_EQ_INT(st.service_changes, 4);
	CHECK_EQ_INT(st.endpoint_changes, 4);
	CHECK_EQ_INT(st.services, 1);
	CHECK_EQ_INT(st.slices, 1);
	tracker_free(t);
}

TEST(many_services_one_change)
{
	struct tracker *t = NULL;
	struct tracker_changes c;
	struct visit v = {0};
	char key[64], name[32], ip[32], eps[128];

	REQUIRE(tracker_new("node-a", &t) == 0);
	for (int i = 0; i < 1000; i++) {
		snprintf(name, sizeof(name), "svc-%d", i);
		snprintf(key, sizeof(key), "ns/svc-%d", i);
		snprintf(ip, sizeof(ip), "10.96.%d.%d", i / 200, i % 200 + 1);
		tracker_service_upsert(t, key, svc(name, ip, ""));
		snprintf(key, sizeof(key), "ns/svc-%d-abc", i);
		snprintf(name, sizeof(name), "svc-%d-abc", i);
		snprintf(eps, sizeof(eps), "[{'addresses': ['10.1.%d.%d']}]", i / 200, i % 200 + 1);
		snprintf(ip, sizeof(ip), "svc-%d", i);
		tracker_slice_upsert(t, key, slice(name, ip, eps));
	}
	CHECK_EQ_INT(tracker_pending(t), 1000);
	CHECK_EQ_INT(sync_now(t, false), 1000);
	tracker_foreach_port(t, visit_port, &v);
	CHECK_EQ_INT(v.ports, 1000);

	tracker_slice_upsert(t, "ns/svc-500-abc",
			     slice("svc-500-abc", "svc-500", "[{'addresses': ['10.2.0.1']}]"));
	CHECK_EQ_INT(tracker_pending(t), 1);
	REQUIRE(tracker_prepare(t, false, &c) == 0);
	REQUIRE(c.n == 1);
	CHECK_EQ_STR(c.v[0].key, "ns/svc-500");
	CHECK_EQ_STR(cluster_eps(c.v[0].old), "10.1.2.101:8080");
	CHECK_EQ_STR(cluster_eps(c.v[0].new), "10.2.0.1:8080");
	tracker_commit(t, &c);
	tracker_free(t);
}

/* A slice whose trigger-time annotation is t seconds since the epoch. */
static struct endpoint_slice *slice_at(const char *name, double t)
{
	struct endpoint_slice *s = slice(name, "web", "[{'addresses': ['10.0.0.1']}]");

	if (s)
		s->trigger_time = t;
	return s;
}

TEST(trigger_times)
{
	struct tracker *t = NULL;
	struct tracker_changes c;
	const double *v;
	double later = 4102444800.0; /* 2100-01-01: after the tracker started */

	REQUIRE(tracker_new("node-a", &t) == 0);
	tracker_service_upsert(t, "ns/web", svc("web", "10.96.0.10", ""));
	/* Before the agent started: part of the initial state, not measured. */
	tracker_slice_upsert(t, "ns/web-1", slice_at("web-1", 1000.0));
	CHECK_EQ_INT(tracker_trigger_times(t, &v), 0);
	tracker_slice_upsert(t, "ns/web-1", slice_at("web-1", later));
	/* The same annotation again (a resync): still one change. */
	tracker_slice_upsert(t, "ns/web-1", slice_at("web-1", later));
	tracker_slice_upsert(t, "ns/web-2", slice_at("web-2", later + 1));
	REQUIRE(tracker_trigger_times(t, &v) == 2);
	CHECK(v[0] == later && v[1] == later + 1);
	/* A failed sync keeps them for the retry; a commit forgets them. */
	REQUIRE(tracker_prepare(t, false, &c) == 0);
	tracker_abort(t, &c);
	CHECK_EQ_INT(tracker_trigger_times(t, &v), 2);
	REQUIRE(tracker_prepare(t, false, &c) == 0);
	tracker_commit(t, &c);
	CHECK_EQ_INT(tracker_trigger_times(t, &v), 0);
	/* Bounded however long the dataplane stays down. */
	for (int i = 0; i < 10000; i++)
		tracker_slice_upsert(t, "ns/web-1", slice_at("web-1", later + 2 + i));
	CHECK(tracker_trigger_times(t, &v) <= 4096);
	CHECK(v[0] == later + 2);
	tracker_free(t);
}

UNIT_MAIN(T(empty), T(service_and_slice_one_change), T(update_gives_old_and_new),
	  T(changes_that_cancel_out), T(slice_before_service), T(slice_moves_between_services),
	  T(two_slices_one_service), T(service_removed), T(full_prepare), T(abort_keeps_pending),
	  T(node_zone_marks_all), T(locality_from_node_name), T(stats), T(many_services_one_change),
	  T(trigger_times))
