/* Tests for health/: the HTTP server wrapper (addresses, both families,
 * methods, limits, a stalled client, a port in use), /healthz and /livez in
 * each state of the proxy and the node, /metrics over HTTP, and the
 * health-check node port servers (answers, headers, counts updated in place,
 * servers started and stopped by syncs, a port that cannot be bound).
 *
 * Every server listens on loopback and is queried with libcurl from inside
 * the test: a loop timer drives a curl multi handle while the same loop
 * drives the servers, so a request completes without threads, and a deadline
 * timer bounds each one. */
#include <arpa/inet.h>
#include <curl/curl.h>
#include <errno.h>
#include <jansson.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "health/healthz.h"
#include "health/http.h"
#include "health/metrics.h"
#include "health/servicehc.h"
#include "model/objects.h"
#include "model/serviceport.h"
#include "model/tracker.h"
#include "unit.h"
#include "util/loop.h"

/* --- a client inside the loop --- */

struct fetch {
	CURLcode rc;
	long status;
	char *body;
	size_t body_len;
	char *hdrs;
	size_t hdrs_len;
};

struct pump {
	CURLM *multi;
	bool done;
	CURLcode rc;
};

static void append(char **buf, size_t *len, const char *p, size_t n)
{
	char *b = realloc(*buf, *len + n + 1);

	if (!b)
		abort();
	memcpy(b + *len, p, n);
	*len += n;
	b[*len] = '\0';
	*buf = b;
}

static size_t on_body(char *p, size_t sz, size_t n, void *ud)
{
	struct fetch *f = ud;

	append(&f->body, &f->body_len, p, sz * n);
	return sz * n;
}

static size_t on_header(char *p, size_t sz, size_t n, void *ud)
{
	struct fetch *f = ud;

	append(&f->hdrs, &f->hdrs_len, p, sz * n);
	return sz * n;
}

static void pump_tick(struct loop *loop, struct loop_timer *t, void *data)
{
	struct pump *p = data;
	CURLMsg *msg;
	int running, left;

	curl_multi_perform(p->multi, &running);
	while ((msg = curl_multi_info_read(p->multi, &left))) {
		if (msg->msg == CURLMSG_DONE) {
			p->rc = msg->data.result;
			p->done = true;
		}
	}
	if (p->done)
		loop_quit(loop, 0);
	else
		loop_timer_arm(t, 1);
}

static void deadline(struct loop *loop, struct loop_timer *t, void *data)
{
	(void)t;
	(void)data;
	loop_quit(loop, 0);
}

static void fetch_free(struct fetch *f)
{
	free(f->body);
	free(f->hdrs);
	memset(f, 0, sizeof(*f));
}

/* Requests url (method NULL: GET; "HEAD"; "POST" with body) and runs the loop
 * until the answer is in, for at most five seconds.  Returns f->rc. */
static CURLcode fetch_ex(struct loop *loop, const char *url, const char *method, const char *body,
			 const char *header, struct fetch *f)
{
	struct pump p = {.rc = CURLE_OPERATION_TIMEDOUT};
	struct curl_slist *hl = NULL;
	struct loop_timer *tick, *stop;
	CURL *c = curl_easy_init();

	memset(f, 0, sizeof(*f));
	p.multi = curl_multi_init();
	curl_easy_setopt(c, CURLOPT_URL, url);
	curl_easy_setopt(c, CURLOPT_NOPROXY, "*");
	curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, 5000L);
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
	curl_easy_setopt(c, CURLOPT_WRITEDATA, f);
	curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, on_header);
	curl_easy_setopt(c, CURLOPT_HEADERDATA, f);
	if (method && strcmp(method, "HEAD") == 0)
		curl_easy_setopt(c, CURLOPT_NOBODY, 1L);
	else if (method)
		curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
	if (body)
		curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
	if (header) {
		hl = curl_slist_append(hl, header);
		curl_easy_setopt(c, CURLOPT_HTTPHEADER, hl);
	}
	curl_multi_add_handle(p.multi, c);
	tick = loop_timer_new(loop, pump_tick, &p);
	stop = loop_timer_new(loop, deadline, NULL);
	loop_timer_arm(tick, 0);
	loop_timer_arm(stop, 5000);
	loop_run(loop);
	loop_timer_free(tick);
	loop_timer_free(stop);
	f->rc = p.rc;
	curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &f->status);
	curl_multi_remove_handle(p.multi, c);
	curl_easy_cleanup(c);
	curl_multi_cleanup(p.multi);
	curl_slist_free_all(hl);
	return f->rc;
}

static CURLcode fetch(struct loop *loop, const char *url, struct fetch *f)
{
	return fetch_ex(loop, url, NULL, NULL, NULL, f);
}

/* The value of response header name (first match), copied into buf. */
static const char *header(const struct fetch *f, const char *name, char *buf, size_t len)
{
	size_t nl = strlen(name);

	for (const char *p = f->hdrs; p && *p;) {
		const char *eol = strstr(p, "\r\n");
		size_t ll = eol ? (size_t)(eol - p) : strlen(p);

		if (ll > nl && strncasecmp(p, name, nl) == 0 && p[nl] == ':') {
			const char *v = p + nl + 1;

			while (*v == ' ')
				v++;
			snprintf(buf, len, "%.*s", (int)(ll - (size_t)(v - p)), v);
			return buf;
		}
		if (!eol)
			break;
		p = eol + 2;
	}
	return NULL;
}

static void run_for(struct loop *loop, uint64_t ms)
{
	struct loop_timer *t = loop_timer_new(loop, deadline, NULL);

	loop_timer_arm(t, ms);
	loop_run(loop);
	loop_timer_free(t);
}

/* A port nothing listens on right now. */
static uint16_t free_port(void)
{
	struct sockaddr_in sin = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t len = sizeof(sin);
	int fd = socket(AF_INET, SOCK_STREAM, 0);

	if (fd < 0 || bind(fd, (struct sockaddr *)&sin, sizeof(sin)) < 0 ||
	    getsockname(fd, (struct sockaddr *)&sin, &len) < 0)
		abort();
	close(fd);
	return ntohs(sin.sin_port);
}

/* A listening socket on 127.0.0.1:port, holding the port. */
static int hold_port(uint16_t port)
{
	struct sockaddr_in sin = {.sin_family = AF_INET,
				  .sin_addr.s_addr = htonl(INADDR_LOOPBACK),
				  .sin_port = htons(port)};
	int fd = socket(AF_INET, SOCK_STREAM, 0), on = 1;

	/* The port may have served a connection a moment ago. */
	if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof(on)) < 0 ||
	    bind(fd, (struct sockaddr *)&sin, sizeof(sin)) < 0 || listen(fd, 4) < 0)
		abort();
	return fd;
}

static int connect_to(int family, uint16_t port)
{
	struct sockaddr_in6 sin6 = {.sin6_family = AF_INET6, .sin6_port = htons(port)};
	struct sockaddr_in sin = {.sin_family = AF_INET,
				  .sin_addr.s_addr = htonl(INADDR_LOOPBACK),
				  .sin_port = htons(port)};
	int fd = socket(family, SOCK_STREAM, 0);

	sin6.sin6_addr = in6addr_loopback;
	if (fd < 0)
		return -1;
	if (connect(fd, family == AF_INET ? (struct sockaddr *)&sin : (struct sockaddr *)&sin6,
		    family == AF_INET ? sizeof(sin) : sizeof(sin6)) < 0) {
		close(fd);
		return -1;
	}
	return fd;
}

static bool have_ipv6_loopback(void)
{
	struct sockaddr_in6 sin6 = {.sin6_family = AF_INET6};
	int fd = socket(AF_INET6, SOCK_STREAM, 0);
	bool ok;

	sin6.sin6_addr = in6addr_loopback;
	ok = fd >= 0 && bind(fd, (struct sockaddr *)&sin6, sizeof(sin6)) == 0;
	if (fd >= 0)
		close(fd);
	return ok;
}

static struct loop *new_loop(void)
{
	struct loop *loop = NULL;

	signal(SIGPIPE, SIG_IGN);
	if (loop_new(&loop) < 0)
		abort();
	return loop;
}

/* --- the HTTP wrapper --- */

static int echo_calls;

/* Answers with what it saw, a header, and a status from ?status=. */
static void echo_handler(void *data, const struct http_request *req, struct http_response *resp)
{
	const char *st = http_request_query(req, "status");

	(void)data;
	echo_calls++;
	if (st)
		resp->status = (unsigned int)atoi(st);
	http_response_content_type(resp, "text/x-test");
	CHECK_EQ_INT(http_response_header(resp, "X-Test", "yes"), 0);
	CHECK_EQ_INT(http_response_header(resp, "X-Bad", "a\r\nb"), -EINVAL);
	http_response_printf(resp, "%s %s", req->method, req->path);
	if (http_request_query(req, "x"))
		http_response_printf(resp, " x=%s", http_request_query(req, "x"));
}

TEST(split_hostport)
{
	char host[64];
	uint16_t port = 0;

	CHECK_EQ_INT(http_split_hostport("127.0.0.1:10256", host, sizeof(host), &port), 0);
	CHECK_EQ_STR(host, "127.0.0.1");
	CHECK_EQ_INT(port, 10256);
	CHECK_EQ_INT(http_split_hostport("[::1]:80", host, sizeof(host), &port), 0);
	CHECK_EQ_STR(host, "::1");
	CHECK_EQ_INT(port, 80);
	CHECK_EQ_INT(http_split_hostport(":0", host, sizeof(host), &port), 0);
	CHECK_EQ_STR(host, "");
	CHECK_EQ_INT(port, 0);
	CHECK_EQ_INT(http_split_hostport("0.0.0.0:65535", host, sizeof(host), &port), 0);
	CHECK_EQ_INT(port, 65535);
	CHECK_EQ_INT(http_split_hostport("1.2.3.4", host, sizeof(host), &port), -EINVAL);
	CHECK_EQ_INT(http_split_hostport("1.2.3.4:", host, sizeof(host), &port), -EINVAL);
	CHECK_EQ_INT(http_split_hostport("1.2.3.4:65536", host, sizeof(host), &port), -EINVAL);
	CHECK_EQ_INT(http_split_hostport("1.2.3.4:-1", host, sizeof(host), &port), -EINVAL);
	CHECK_EQ_INT(http_split_hostport("1.2.3.4:8x", host, sizeof(host), &port), -EINVAL);
	CHECK_EQ_INT(http_split_hostport("::1:80", host, sizeof(host), &port), -EINVAL);
	CHECK_EQ_INT(http_split_hostport("[::1]80", host, sizeof(host), &port), -EINVAL);
	CHECK_EQ_INT(http_split_hostport("[::1:80", host, sizeof(host), &port), -EINVAL);
	CHECK_EQ_INT(http_split_hostport(NULL, host, sizeof(host), &port), -EINVAL);
}

TEST(http_bad_addresses)
{
	struct loop *loop = new_loop();
	struct http_server *srv = NULL;
	char err[256];

	CHECK_EQ_INT(
		http_server_new(loop, "localhost:80", echo_handler, NULL, &srv, err, sizeof(err)),
		-EINVAL);
	CHECK(unit_contains(err, "localhost:80"));
	CHECK_EQ_INT(http_server_new(loop, "1.2.3.4", echo_handler, NULL, &srv, err, sizeof(err)),
		     -EINVAL);
	CHECK(unit_contains(err, "\"1.2.3.4\""));
	CHECK_EQ_INT(
		http_server_new(loop, "[1.2.3.4]:80", echo_handler, NULL, &srv, err, sizeof(err)),
		-EINVAL);
	CHECK_EQ_INT(
		http_server_new(loop, "300.1.1.1:80", echo_handler, NULL, &srv, err, sizeof(err)),
		-EINVAL);
	/* An address from TEST-NET-3, which this host does not have. */
	CHECK_EQ_INT(
		http_server_new(loop, "203.0.113.77:0", echo_handler, NULL, &srv, err, sizeof(err)),
		-EADDRNOTAVAIL);
	CHECK(unit_contains(err, "203.0.113.77:0"));
	CHECK(srv == NULL);
	loop_free(loop);
}

TEST(http_serves_ipv4)
{
	struct loop *loop = new_loop();
	struct http_server *srv = NULL;
	struct fetch f;
	char url[128], err[256], v[64];

	REQUIRE(http_server_new(loop, "127.0.0.1:0", echo_handler, NULL, &srv, err, sizeof(err)) ==
		0);
	CHECK(http_server_port(srv) != 0);
	CHECK_EQ_STR(http_server_address(srv), "127.0.0.1:0");

	snprintf(url, sizeof(url), "http://127.0.0.1:%u/some/path?x=a%%20b", http_server_port(srv));
	CHECK_EQ_INT(fetch(loop, url, &f), CURLE_OK);
	CHECK_EQ_INT(f.status, 200);
	CHECK_EQ_STR(f.body, "GET /some/path x=a b");
	CHECK_EQ_STR(header(&f, "X-Test", v, sizeof(v)), "yes");
	CHECK_EQ_STR(header(&f, "Content-Type", v, sizeof(v)), "text/x-test");
	CHECK(header(&f, "X-Bad", v, sizeof(v)) == NULL);
	/* Kept alive for the next request. */
	CHECK(header(&f, "Connection", v, sizeof(v)) == NULL);
	fetch_free(&f);

	snprintf(url, sizeof(url), "http://127.0.0.1:%u/x?status=503", http_server_port(srv));
	CHECK_EQ_INT(fetch(loop, url, &f), CURLE_OK);
	CHECK_EQ_INT(f.status, 503);
	fetch_free(&f);

	/* HEAD: headers, no body. */
	CHECK_EQ_INT(fetch_ex(loop, url, "HEAD", NULL, NULL, &f), CURLE_OK);
	CHECK_EQ_INT(f.status, 503);
	CHECK_EQ_INT(f.body_len, 0);
	fetch_free(&f);

	/* Other methods and request bodies never reach the handler. */
	echo_calls = 0;
	CHECK_EQ_INT(fetch_ex(loop, url, "POST", "a=b", NULL, &f), CURLE_OK);
	CHECK_EQ_INT(f.status, 405);
	CHECK_EQ_STR(header(&f, "Allow", v, sizeof(v)), "GET, HEAD");
	fetch_free(&f);
	CHECK_EQ_INT(fetch_ex(loop, url, "GET", "a=b", NULL, &f), CURLE_OK);
	CHECK_EQ_INT(f.status, 413);
	fetch_free(&f);
	CHECK_EQ_INT(echo_calls, 0);

	/* Still serving after refusing those. */
	CHECK_EQ_INT(fetch(loop, url, &f), CURLE_OK);
	CHECK_EQ_INT(f.status, 503);
	fetch_free(&f);
	http_server_free(srv);
	http_server_free(NULL);

	/* Closed: the port no longer answers. */
	CHECK(fetch(loop, url, &f) == CURLE_COULDNT_CONNECT);
	fetch_free(&f);
	loop_free(loop);
}

TEST(http_serves_ipv6_and_wildcards)
{
	struct loop *loop = new_loop();
	struct http_server *srv = NULL;
	bool v6 = have_ipv6_loopback();
	struct fetch f;
	char url[128], err[256];

	if (v6) {
		REQUIRE(http_server_new(loop, "[::1]:0", echo_handler, NULL, &srv, err,
					sizeof(err)) == 0);
		snprintf(url, sizeof(url), "http://[::1]:%u/v6", http_server_port(srv));
		CHECK_EQ_INT(fetch(loop, url, &f), CURLE_OK);
		CHECK_EQ_STR(f.body, "GET /v6");
		fetch_free(&f);
		/* Bound to ::1 only: not reachable over IPv4. */
		snprintf(url, sizeof(url), "http://127.0.0.1:%u/v6", http_server_port(srv));
		CHECK(fetch(loop, url, &f) != CURLE_OK);
		fetch_free(&f);
		http_server_free(srv);
	} else {
		fprintf(stderr, "    (no IPv6 loopback: IPv6 cases skipped)\n");
	}

	/* Wildcards listen on both families, as Go's listener does. */
	const char *wild[] = {":0", "0.0.0.0:0", "[::]:0"};

	for (size_t i = 0; i < sizeof(wild) / sizeof(wild[0]); i++) {
		srv = NULL;
		REQUIRE(http_server_new(loop, wild[i], echo_handler, NULL, &srv, err,
					sizeof(err)) == 0);
		snprintf(url, sizeof(url), "http://127.0.0.1:%u/w", http_server_port(srv));
		CHECK_EQ_INT(fetch(loop, url, &f), CURLE_OK);
		CHECK_EQ_INT(f.status, 200);
		fetch_free(&f);
		if (v6) {
			snprintf(url, sizeof(url), "http://[::1]:%u/w", http_server_port(srv));
			CHECK_EQ_INT(fetch(loop, url, &f), CURLE_OK);
			CHECK_EQ_INT(f.status, 200);
			fetch_free(&f);
		}
		http_server_free(srv);
	}
	loop_free(loop);
}

/* Two requests in one segment: the second is already buffered when the
 * first is answered, so it is only served if the library's "work pending"
 * deadline is followed. */
TEST(http_pipelined_requests)
{
	static const char reqs[] = "GET /one HTTP/1.1\r\nHost: x\r\n\r\n"
				   "GET /two HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
	struct loop *loop = new_loop();
	struct http_server *srv = NULL;
	char err[256], buf[4096];
	size_t got = 0;
	int fd;

	REQUIRE(http_server_new(loop, "127.0.0.1:0", echo_handler, NULL, &srv, err, sizeof(err)) ==
		0);
	fd = connect_to(AF_INET, http_server_port(srv));
	REQUIRE(fd >= 0);
	CHECK(send(fd, reqs, sizeof(reqs) - 1, MSG_NOSIGNAL) == (ssize_t)sizeof(reqs) - 1);
	for (int i = 0; i < 50; i++) {
		ssize_t n;

		run_for(loop, 20);
		while ((n = recv(fd, buf + got, sizeof(buf) - 1 - got, MSG_DONTWAIT)) > 0)
			got += (size_t)n;
		buf[got] = '\0';
		if (n == 0)
			break;
	}
	CHECK(unit_contains(buf, "GET /one"));
	CHECK(unit_contains(buf, "GET /two"));
	close(fd);
	http_server_free(srv);
	loop_free(loop);
}

TEST(http_address_in_use)
{
	struct loop *loop = new_loop();
	struct http_server *a = NULL, *b = NULL;
	struct fetch f;
	char bind[64], url[128], err[256];

	REQUIRE(http_server_new(loop, "127.0.0.1:0", echo_handler, NULL, &a, err, sizeof(err)) ==
		0);
	snprintf(bind, sizeof(bind), "127.0.0.1:%u", http_server_port(a));
	CHECK_EQ_INT(http_server_new(loop, bind, echo_handler, NULL, &b, err, sizeof(err)),
		     -EADDRINUSE);
	CHECK(b == NULL);
	CHECK(unit_contains(err, bind));
	CHECK(unit_contains(err, "in use"));
	/* The wildcard of the same port collides as well. */
	snprintf(bind, sizeof(bind), ":%u", http_server_port(a));
	CHECK_EQ_INT(http_server_new(loop, bind, echo_handler, NULL, &b, err, sizeof(err)),
		     -EADDRINUSE);
	/* The first server is unaffected. */
	snprintf(url, sizeof(url), "http://127.0.0.1:%u/", http_server_port(a));
	CHECK_EQ_INT(fetch(loop, url, &f), CURLE_OK);
	CHECK_EQ_INT(f.status, 200);
	fetch_free(&f);
	http_server_free(a);
	loop_free(loop);
}

TEST(http_stalled_client_is_dropped)
{
	struct http_limits lim = {.timeout_s = 1};
	struct loop *loop = new_loop();
	struct http_server *srv = NULL;
	struct fetch f;
	char url[128], err[256], c;
	int fd;
	bool closed = false;

	REQUIRE(http_server_new_limits(loop, "127.0.0.1:0", &lim, echo_handler, NULL, &srv, err,
				       sizeof(err)) == 0);
	fd = connect_to(AF_INET, http_server_port(srv));
	REQUIRE(fd >= 0);
	/* Half a request, then nothing. */
	CHECK(send(fd, "GET /healthz HTTP/1.1\r\nHo", 25, MSG_NOSIGNAL) == 25);
	run_for(loop, 50);
	/* Others are served meanwhile. */
	snprintf(url, sizeof(url), "http://127.0.0.1:%u/other", http_server_port(srv));
	CHECK_EQ_INT(fetch(loop, url, &f), CURLE_OK);
	CHECK_EQ_STR(f.body, "GET /other");
	fetch_free(&f);
	/* The stalled connection is closed after the timeout. */
	for (int i = 0; i < 40 && !closed; i++) {
		run_for(loop, 100);
		closed = recv(fd, &c, 1, MSG_DONTWAIT) == 0;
	}
	CHECK(closed);
	close(fd);
	http_server_free(srv);
	loop_free(loop);
}

TEST(http_limits)
{
	struct http_limits lim = {.max_per_ip = 2, .max_request = 4096};
	struct loop *loop = new_loop();
	struct http_server *srv = NULL;
	char url[128], err[256], big[8192];
	struct fetch f;
	int fds[2];

	REQUIRE(http_server_new_limits(loop, "127.0.0.1:0", &lim, echo_handler, NULL, &srv, err,
				       sizeof(err)) == 0);
	snprintf(url, sizeof(url), "http://127.0.0.1:%u/", http_server_port(srv));

	/* Headers larger than the limit are refused, and the server goes on. */
	memset(big, 'a', sizeof(big));
	memcpy(big, "X-Big: ", 7);
	big[sizeof(big) - 1] = '\0';
	fetch_ex(loop, url, NULL, NULL, big, &f);
	CHECK(f.rc != CURLE_OK || f.status >= 400);
	fetch_free(&f);
	CHECK_EQ_INT(fetch(loop, url, &f), CURLE_OK);
	CHECK_EQ_INT(f.status, 200);
	fetch_free(&f);

	/* Two idle connections from one address use up its share (once the
	 * server has seen the client above close its kept-alive one)... */
	run_for(loop, 50);
	for (int i = 0; i < 2; i++) {
		fds[i] = connect_to(AF_INET, http_server_port(srv));
		REQUIRE(fds[i] >= 0);
	}
	run_for(loop, 50);
	CHECK(fetch(loop, url, &f) != CURLE_OK);
	fetch_free(&f);
	/* ...until they go away. */
	close(fds[0]);
	close(fds[1]);
	run_for(loop, 50);
	CHECK_EQ_INT(fetch(loop, url, &f), CURLE_OK);
	CHECK_EQ_INT(f.status, 200);
	fetch_free(&f);
	http_server_free(srv);
	loop_free(loop);
}

TEST(http_listener_retries)
{
	struct loop *loop = new_loop();
	struct http_listener *l = NULL;
	uint16_t port = free_port();
	struct fetch f;
	char bind[64], url[128], err[256];
	int holder;

	CHECK_EQ_INT(http_listener_new(loop, "test", "nonsense", 50, echo_handler, NULL, &l, err,
				       sizeof(err)),
		     -EINVAL);
	CHECK(unit_contains(err, "nonsense"));
	CHECK_EQ_INT(http_listener_new(loop, "test", "host.example:80", 50, echo_handler, NULL, &l,
				       err, sizeof(err)),
		     -EINVAL);
	CHECK(l == NULL);

	/* Held by someone else: not listening yet, and no error. */
	holder = hold_port(port);
	snprintf(bind, sizeof(bind), "127.0.0.1:%u", port);
	REQUIRE(http_listener_new(loop, "test", bind, 50, echo_handler, NULL, &l, err,
				  sizeof(err)) == 0);
	CHECK(http_listener_server(l) == NULL);
	run_for(loop, 120);
	CHECK(http_listener_server(l) == NULL);
	/* Released: taken on a later try. */
	close(holder);
	run_for(loop, 200);
	REQUIRE(http_listener_server(l) != NULL);
	CHECK_EQ_INT(http_server_port(http_listener_server(l)), port);
	snprintf(url, sizeof(url), "http://127.0.0.1:%u/r", port);
	CHECK_EQ_INT(fetch(loop, url, &f), CURLE_OK);
	CHECK_EQ_STR(f.body, "GET /r");
	fetch_free(&f);
	http_listener_free(l);
	http_listener_free(NULL);
	CHECK(http_listener_server(NULL) == NULL);

	/* Free while still trying: the retry timer goes with it. */
	holder = hold_port(port);
	REQUIRE(http_listener_new(loop, "test", bind, 50, echo_handler, NULL, &l, err,
				  sizeof(err)) == 0);
	http_listener_free(l);
	run_for(loop, 100);
	close(holder);
	loop_free(loop);
}

/* --- /healthz and /livez --- */

#define SEC 1000000000ull

struct hz_answer {
	long status;
	char last[64], now[64];
	int eligible; /* -1: absent */
	int healthy;
};

static bool get_health(struct loop *loop, uint16_t port, const char *path, struct hz_answer *a)
{
	char url[128], v[128];
	json_error_t jerr;
	json_t *doc, *e;
	struct fetch f;

	memset(a, 0, sizeof(*a));
	snprintf(url, sizeof(url), "http://127.0.0.1:%u%s", port, path);
	if (fetch(loop, url, &f) != CURLE_OK) {
		fetch_free(&f);
		return false;
	}
	a->status = f.status;
	CHECK_EQ_STR(header(&f, "Content-Type", v, sizeof(v)), "application/json");
	CHECK_EQ_STR(header(&f, "X-Content-Type-Options", v, sizeof(v)), "nosniff");
	doc = json_loadb(f.body ? f.body : "", f.body_len, 0, &jerr);
	fetch_free(&f);
	if (!doc)
		return false;
	snprintf(a->last, sizeof(a->last), "%s",
		 json_string_value(json_object_get(doc, "lastUpdated")) ?: "");
	snprintf(a->now, sizeof(a->now), "%s",
		 json_string_value(json_object_get(doc, "currentTime")) ?: "");
	e = json_object_get(doc, "nodeEligible");
	a->eligible = e ? json_is_true(e) : -1;
	a->healthy = json_is_true(json_object_get(doc, "healthy"));
	json_decref(doc);
	return true;
}

static int render_contains(struct metrics *m, const char *line)
{
	char *text = NULL;
	int found;

	if (metrics_render(m, &text, NULL) < 0)
		return -1;
	found = strstr(text, line) != NULL;
	free(text);
	return found;
}

TEST(healthz_states)
{
	struct loop *loop = new_loop();
	struct metrics *m = NULL;
	struct healthz *h = NULL;
	struct http_server *srv = NULL;
	struct hz_answer a;
	struct node_info node = {.name = "n1"};
	char err[256];
	uint16_t port;

	REQUIRE(metrics_new("nftables", &m) == 0);
	REQUIRE(healthz_new(1000, m, &h) == 0);
	REQUIRE(http_server_new(loop, "127.0.0.1:0", healthz_http_handler, h, &srv, err,
				sizeof(err)) == 0);
	port = http_server_port(srv);

	/* Fresh: starting up counts as healthy; a healthy answer shows the
	 * current time as the last update. */
	REQUIRE(get_health(loop, port, "/healthz", &a));
	CHECK_EQ_INT(a.status, 200);
	CHECK_EQ_STR(a.last, a.now);
	CHECK_EQ_INT(a.eligible, 1);
	CHECK_EQ_INT(a.healthy, 1);
	CHECK(strlen(a.now) >= 20 && a.now[strlen(a.now) - 1] == 'Z' && a.now[10] == 'T');
	REQUIRE(get_health(loop, port, "/livez", &a));
	CHECK_EQ_INT(a.status, 200);
	CHECK_EQ_INT(a.eligible, -1);

	/* A change queued before the first sync does not count: kube-proxy is
	 * healthy until its first update. */
	healthz_queued(h, loop_now_ns() - 10 * SEC);
	CHECK(healthz_healthy(h, loop_now_ns()));

	/* Synced, then a change pending for less than the timeout. */
	healthz_updated(h, loop_now_ns() - 5 * SEC);
	healthz_queued(h, loop_now_ns());
	CHECK(healthz_healthy(h, loop_now_ns()));
	REQUIRE(get_health(loop, port, "/healthz", &a));
	CHECK_EQ_INT(a.status, 200);
	CHECK_EQ_INT(a.healthy, 1);

	/* Pending longer than the timeout: both fail, and the last update is
	 * the real one, about five seconds ago. */
	healthz_updated(h, loop_now_ns() - 5 * SEC);
	healthz_queued(h, loop_now_ns() - 2 * SEC);
	/* Only the oldest queued time counts. */
	healthz_queued(h, loop_now_ns());
	CHECK(!healthz_healthy(h, loop_now_ns()));
	REQUIRE(get_health(loop, port, "/healthz", &a));
	CHECK_EQ_INT(a.status, 503);
	CHECK_EQ_INT(a.healthy, 0);
	CHECK_EQ_INT(a.eligible, 1);
	CHECK(strcmp(a.last, a.now) < 0);
	CHECK(strncmp(a.last, a.now, 10) == 0 || a.now[11] == '0');
	REQUIRE(get_health(loop, port, "/livez", &a));
	CHECK_EQ_INT(a.status, 503);

	/* A sync clears it. */
	healthz_updated(h, loop_now_ns());
	REQUIRE(get_health(loop, port, "/healthz", &a));
	CHECK_EQ_INT(a.status, 200);
	REQUIRE(get_health(loop, port, "/livez", &a));
	CHECK_EQ_INT(a.status, 200);

	/* A node being deleted fails /healthz but not /livez. */
	node.deleting = true;
	healthz_set_node(h, &node);
	CHECK(!healthz_node_eligible(h));
	REQUIRE(get_health(loop, port, "/healthz", &a));
	CHECK_EQ_INT(a.status, 503);
	CHECK_EQ_INT(a.eligible, 0);
	CHECK_EQ_INT(a.healthy, 1);
	REQUIRE(get_health(loop, port, "/livez", &a));
	CHECK_EQ_INT(a.status, 200);
	CHECK_EQ_STR(a.last, a.now);

	node.deleting = false;
	node.to_be_deleted = true;
	healthz_set_node(h, &node);
	REQUIRE(get_health(loop, port, "/healthz", &a));
	CHECK_EQ_INT(a.status, 503);
	node.to_be_deleted = false;
	healthz_set_node(h, &node);
	REQUIRE(get_health(loop, port, "/healthz", &a));
	CHECK_EQ_INT(a.status, 200);
	healthz_set_node(h, NULL);
	REQUIRE(get_health(loop, port, "/healthz", &a));
	CHECK_EQ_INT(a.status, 503);
	healthz_set_node_eligible(h, true);

	/* Anything else is not found. */
	{
		char url[128];
		struct fetch f;

		snprintf(url, sizeof(url), "http://127.0.0.1:%u/healthz/x", port);
		CHECK_EQ_INT(fetch(loop, url, &f), CURLE_OK);
		CHECK_EQ_INT(f.status, 404);
		fetch_free(&f);
	}

	/* Every answer was counted. */
	CHECK_EQ_INT(render_contains(m, "kubeproxy_proxy_healthz_total{code=\"200\"} 4\n"), 1);
	CHECK_EQ_INT(render_contains(m, "kubeproxy_proxy_healthz_total{code=\"503\"} 4\n"), 1);
	CHECK_EQ_INT(render_contains(m, "kubeproxy_proxy_livez_total{code=\"200\"} 3\n"), 1);
	CHECK_EQ_INT(render_contains(m, "kubeproxy_proxy_livez_total{code=\"503\"} 1\n"), 1);

	http_server_free(srv);
	healthz_free(h);
	healthz_free(NULL);
	metrics_free(m);
	loop_free(loop);
}

TEST(healthz_never_synced_and_ineligible)
{
	struct loop *loop = new_loop();
	struct healthz *h = NULL;
	struct http_server *srv = NULL;
	struct hz_answer a;
	char err[256];

	/* No metrics: answers are not counted, nothing breaks. */
	REQUIRE(healthz_new(60000, NULL, &h) == 0);
	REQUIRE(http_server_new(loop, "127.0.0.1:0", healthz_http_handler, h, &srv, err,
				sizeof(err)) == 0);
	healthz_set_node_eligible(h, false);
	REQUIRE(get_health(loop, http_server_port(srv), "/healthz", &a));
	CHECK_EQ_INT(a.status, 503);
	/* Go's zero time: there has been no update to show. */
	CHECK_EQ_STR(a.last, "0001-01-01T00:00:00Z");
	http_server_free(srv);
	healthz_free(h);
	loop_free(loop);
	CHECK(healthz_healthy(NULL, 0));
}

TEST(healthz_time_format)
{
	char buf[HEALTHZ_TIME_MAX];

	CHECK_EQ_STR(healthz_format_time(0, buf), "1970-01-01T00:00:00Z");
	CHECK_EQ_STR(healthz_format_time(1700000000ll * 1000000000ll, buf), "2023-11-14T22:13:20Z");
	CHECK_EQ_STR(healthz_format_time(1700000000ll * 1000000000ll + 123456789, buf),
		     "2023-11-14T22:13:20.123456789Z");
	CHECK_EQ_STR(healthz_format_time(1700000000ll * 1000000000ll + 250000000, buf),
		     "2023-11-14T22:13:20.25Z");
	CHECK_EQ_STR(healthz_format_time(1700000000ll * 1000000000ll + 1000, buf),
		     "2023-11-14T22:13:20.000001Z");
	CHECK_EQ_STR(healthz_format_time(-500000000ll, buf), "1969-12-31T23:59:59.5Z");
}

/* --- /metrics over HTTP --- */

TEST(metrics_endpoint)
{
	struct loop *loop = new_loop();
	struct metrics *m = NULL;
	struct http_server *srv = NULL;
	struct fetch f;
	char url[128], err[256], v[128];
	uint16_t port;

	REQUIRE(metrics_new("ebpf", &m) == 0);
	REQUIRE(http_server_new(loop, "127.0.0.1:0", metrics_http_handler, m, &srv, err,
				sizeof(err)) == 0);
	port = http_server_port(srv);
	metrics_sync_done(m, true, 0.003);
	metrics_set_dataplane_elements(m, 1234);

	snprintf(url, sizeof(url), "http://127.0.0.1:%u/metrics", port);
	CHECK_EQ_INT(fetch(loop, url, &f), CURLE_OK);
	CHECK_EQ_INT(f.status, 200);
	CHECK_EQ_STR(header(&f, "Content-Type", v, sizeof(v)),
		     "text/plain; version=0.0.4; charset=utf-8");
	CHECK(unit_contains(f.body, "# TYPE kubeproxy_sync_proxy_rules_duration_seconds "
				    "histogram\n"));
	CHECK(unit_contains(f.body, "kubeproxy_sync_full_proxy_rules_duration_seconds_count 1\n"));
	CHECK(unit_contains(f.body, "kproxy_dataplane_elements 1234\n"));
	fetch_free(&f);

	snprintf(url, sizeof(url), "http://127.0.0.1:%u/proxyMode", port);
	CHECK_EQ_INT(fetch(loop, url, &f), CURLE_OK);
	CHECK_EQ_STR(f.body, "ebpf");
	fetch_free(&f);
	snprintf(url, sizeof(url), "http://127.0.0.1:%u/healthz", port);
	CHECK_EQ_INT(fetch(loop, url, &f), CURLE_OK);
	CHECK_EQ_INT(f.status, 200);
	CHECK_EQ_STR(f.body, "ok");
	fetch_free(&f);
	snprintf(url, sizeof(url), "http://127.0.0.1:%u/nothing", port);
	CHECK_EQ_INT(fetch(loop, url, &f), CURLE_OK);
	CHECK_EQ_INT(f.status, 404);
	fetch_free(&f);

	http_server_free(srv);
	metrics_free(m);
	loop_free(loop);
}

/* --- health-check node ports --- */

struct hc_answer {
	long status;
	char ns[64], name[64];
	long local;
	int healthy;
	char weight[32];
};

static CURLcode get_hc(struct loop *loop, uint16_t port, const char *path, struct hc_answer *a)
{
	char url[128], v[128];
	json_error_t jerr;
	struct fetch f;
	json_t *doc, *svc;
	CURLcode rc;

	memset(a, 0, sizeof(*a));
	snprintf(url, sizeof(url), "http://127.0.0.1:%u%s", port, path);
	rc = fetch(loop, url, &f);
	if (rc != CURLE_OK) {
		fetch_free(&f);
		return rc;
	}
	a->status = f.status;
	CHECK_EQ_STR(header(&f, "Content-Type", v, sizeof(v)), "application/json");
	CHECK_EQ_STR(header(&f, "X-Content-Type-Options", v, sizeof(v)), "nosniff");
	snprintf(a->weight, sizeof(a->weight), "%s",
		 header(&f, "X-Load-Balancing-Endpoint-Weight", v, sizeof(v)) ?: "(none)");
	/* kube-proxy's layout: indented with tabs, no trailing newline. */
	CHECK(f.body && strncmp(f.body, "{\n\t\"service\": {\n\t\t\"namespace\": ", 31) == 0);
	CHECK(f.body && f.body[f.body_len - 1] == '}');
	doc = json_loadb(f.body ? f.body : "", f.body_len, 0, &jerr);
	fetch_free(&f);
	if (!doc)
		return CURLE_WEIRD_SERVER_REPLY;
	svc = json_object_get(doc, "service");
	snprintf(a->ns, sizeof(a->ns), "%s",
		 json_string_value(json_object_get(svc, "namespace")) ?: "");
	snprintf(a->name, sizeof(a->name), "%s",
		 json_string_value(json_object_get(svc, "name")) ?: "");
	a->local = (long)json_integer_value(json_object_get(doc, "localEndpoints"));
	a->healthy = json_is_true(json_object_get(doc, "serviceProxyHealthy"));
	json_decref(doc);
	return CURLE_OK;
}

static struct ipaddr loopback4(void)
{
	struct ipaddr a;

	ipaddr_parse("127.0.0.1", &a);
	return a;
}

TEST(servicehc_serves_and_follows_syncs)
{
	struct loop *loop = new_loop();
	struct healthz *h = NULL;
	struct servicehc *s = NULL;
	struct ipaddr lo = loopback4();
	struct hc_answer a;
	uint16_t p1 = free_port(), p2 = free_port(), p3;

	while ((p3 = free_port()) == p1 || p3 == p2)
		;
	REQUIRE(healthz_new(1000, NULL, &h) == 0);
	REQUIRE(servicehc_new(loop, h, &lo, 1, &s) == 0);
	{
		struct servicehc_service v[] = {
			{"default", "web", p1, 2},
			{"shop", "cart", p2, 0},
			{"default", "no-port", 0, 3}, /* no server wanted */
		};

		CHECK_EQ_INT(servicehc_sync(s, v, 3), 0);
	}
	CHECK_EQ_INT(servicehc_size(s), 2);
	CHECK(servicehc_listening(s, "default", "web"));
	CHECK(servicehc_listening(s, "shop", "cart"));
	CHECK(!servicehc_listening(s, "default", "no-port"));

	/* Local endpoints and a healthy proxy: 200, on any path. */
	REQUIRE(get_hc(loop, p1, "/", &a) == CURLE_OK);
	CHECK_EQ_INT(a.status, 200);
	CHECK_EQ_STR(a.ns, "default");
	CHECK_EQ_STR(a.name, "web");
	CHECK_EQ_INT(a.local, 2);
	CHECK_EQ_INT(a.healthy, 1);
	CHECK_EQ_STR(a.weight, "2");
	REQUIRE(get_hc(loop, p1, "/anything/at/all?x=1", &a) == CURLE_OK);
	CHECK_EQ_INT(a.status, 200);
	/* No local endpoints: 503, weight 0. */
	REQUIRE(get_hc(loop, p2, "/", &a) == CURLE_OK);
	CHECK_EQ_INT(a.status, 503);
	CHECK_EQ_STR(a.name, "cart");
	CHECK_EQ_INT(a.local, 0);
	CHECK_EQ_INT(a.healthy, 1);
	CHECK_EQ_STR(a.weight, "0");

	/* An unhealthy proxy fails every Service. */
	healthz_updated(h, loop_now_ns() - 10 * SEC);
	healthz_queued(h, loop_now_ns() - 5 * SEC);
	REQUIRE(get_hc(loop, p1, "/", &a) == CURLE_OK);
	CHECK_EQ_INT(a.status, 503);
	CHECK_EQ_INT(a.local, 2);
	CHECK_EQ_INT(a.healthy, 0);
	CHECK_EQ_STR(a.weight, "2");
	healthz_updated(h, loop_now_ns());

	/* Counts change in place; removed Services close their port; a moved
	 * port closes the old one and opens the new. */
	{
		struct servicehc_service v[] = {
			{"default", "web", p3, 0},
			{"shop", "cart", p2, 5},
		};
		int fd = connect_to(AF_INET, p2);

		/* A connection open across the sync survives it: the cart
		 * server was not restarted. */
		REQUIRE(fd >= 0);
		CHECK_EQ_INT(servicehc_sync(s, v, 2), 0);
		CHECK(send(fd, "GET / HTTP/1.0\r\n\r\n", 18, MSG_NOSIGNAL) == 18);
		run_for(loop, 100);
		{
			char buf[512];
			ssize_t n = recv(fd, buf, sizeof(buf) - 1, MSG_DONTWAIT);

			CHECK(n > 12);
			if (n > 12) {
				buf[n] = '\0';
				CHECK(strncmp(buf, "HTTP/1.0 200", 12) == 0 ||
				      strncmp(buf, "HTTP/1.1 200", 12) == 0);
			}
		}
		close(fd);
	}
	REQUIRE(get_hc(loop, p2, "/", &a) == CURLE_OK);
	CHECK_EQ_INT(a.status, 200);
	CHECK_EQ_INT(a.local, 5);
	CHECK_EQ_STR(a.weight, "5");
	CHECK(get_hc(loop, p1, "/", &a) == CURLE_COULDNT_CONNECT);
	REQUIRE(get_hc(loop, p3, "/", &a) == CURLE_OK);
	CHECK_EQ_INT(a.status, 503);
	CHECK_EQ_STR(a.name, "web");

	{
		struct servicehc_service v[] = {{"shop", "cart", p2, 1}};

		CHECK_EQ_INT(servicehc_sync(s, v, 1), 0);
	}
	CHECK_EQ_INT(servicehc_size(s), 1);
	CHECK(get_hc(loop, p3, "/", &a) == CURLE_COULDNT_CONNECT);
	CHECK_EQ_INT(servicehc_sync(s, NULL, 0), 0);
	CHECK_EQ_INT(servicehc_size(s), 0);
	CHECK(get_hc(loop, p2, "/", &a) == CURLE_COULDNT_CONNECT);

	servicehc_free(s);
	servicehc_free(NULL);
	healthz_free(h);
	loop_free(loop);
}

TEST(servicehc_port_in_use)
{
	struct loop *loop = new_loop();
	struct servicehc *s = NULL;
	struct ipaddr lo = loopback4();
	struct hc_answer a;
	uint16_t busy = free_port(), ok;
	int holder;

	while ((ok = free_port()) == busy)
		;
	holder = hold_port(busy);
	REQUIRE(servicehc_new(loop, NULL, &lo, 1, &s) == 0);
	{
		struct servicehc_service v[] = {
			{"default", "blocked", busy, 1},
			{"default", "fine", ok, 1},
		};

		CHECK_EQ_INT(servicehc_sync(s, v, 2), 0);
		CHECK(!servicehc_listening(s, "default", "blocked"));
		CHECK(servicehc_listening(s, "default", "fine"));
		REQUIRE(get_hc(loop, ok, "/", &a) == CURLE_OK);
		CHECK_EQ_INT(a.status, 200);

		/* Still held: the next sync tries again and fails quietly. */
		CHECK_EQ_INT(servicehc_sync(s, v, 2), 0);
		CHECK(!servicehc_listening(s, "default", "blocked"));

		/* Released: the next sync takes it. */
		close(holder);
		CHECK_EQ_INT(servicehc_sync(s, v, 2), 0);
		CHECK(servicehc_listening(s, "default", "blocked"));
		REQUIRE(get_hc(loop, busy, "/", &a) == CURLE_OK);
		CHECK_EQ_INT(a.status, 200);
		CHECK_EQ_STR(a.name, "blocked");
	}

	/* Without a sync, the retry timer takes a released port. */
	CHECK_EQ_INT(servicehc_sync(s, NULL, 0), 0);
	holder = hold_port(busy);
	{
		struct servicehc_service v[] = {{"default", "blocked", busy, 1}};

		CHECK_EQ_INT(servicehc_sync(s, v, 1), 0);
	}
	CHECK(!servicehc_listening(s, "default", "blocked"));
	close(holder);
	run_for(loop, SERVICEHC_RETRY_MS + 500);
	CHECK(servicehc_listening(s, "default", "blocked"));
	REQUIRE(get_hc(loop, busy, "/", &a) == CURLE_OK);
	CHECK_EQ_INT(a.status, 200);

	servicehc_free(s);
	loop_free(loop);
}

TEST(servicehc_addresses)
{
	struct loop *loop = new_loop();
	struct servicehc *s = NULL;
	struct ipaddr found[16], lo = loopback4(), lo6;
	struct cidr nets[2];
	struct hc_answer a;
	uint16_t port = free_port();
	bool v6 = have_ipv6_loopback();
	int n;

	/* --nodeport-addresses style selection of this host's addresses. */
	REQUIRE(cidr_parse("127.0.0.0/8", false, &nets[0]) == 0);
	REQUIRE(cidr_parse("::1/128", false, &nets[1]) == 0);
	n = servicehc_local_addresses(nets, 2, found, 16);
	CHECK(n >= 1);
	CHECK(n >= 1 && ipaddr_equal(&found[0], &lo));
	if (v6) {
		ipaddr_parse("::1", &lo6);
		CHECK_EQ_INT(n, 2);
		CHECK(n == 2 && ipaddr_equal(&found[1], &lo6));
	}
	CHECK_EQ_INT(servicehc_local_addresses(nets, 2, found, 0), 0);
	REQUIRE(cidr_parse("203.0.113.0/24", false, &nets[0]) == 0);
	CHECK_EQ_INT(servicehc_local_addresses(nets, 1, found, 16), 0);

	/* Every address first, then loopback only, then both loopbacks. */
	REQUIRE(servicehc_new(loop, NULL, NULL, 0, &s) == 0);
	{
		struct servicehc_service v[] = {{"default", "web", port, 1}};

		CHECK_EQ_INT(servicehc_sync(s, v, 1), 0);
	}
	CHECK(servicehc_listening(s, "default", "web"));
	REQUIRE(get_hc(loop, port, "/", &a) == CURLE_OK);
	CHECK_EQ_INT(a.status, 200);
	CHECK_EQ_INT(servicehc_set_addresses(s, &lo, 1), 0);
	CHECK(servicehc_listening(s, "default", "web"));
	REQUIRE(get_hc(loop, port, "/", &a) == CURLE_OK);
	CHECK_EQ_INT(a.status, 200);
	/* The same set again changes nothing. */
	CHECK_EQ_INT(servicehc_set_addresses(s, &lo, 1), 0);
	if (v6) {
		struct ipaddr both[2] = {lo, lo6};

		CHECK_EQ_INT(servicehc_set_addresses(s, both, 2), 0);
		CHECK(servicehc_listening(s, "default", "web"));
		REQUIRE(get_hc(loop, port, "/", &a) == CURLE_OK);
		CHECK_EQ_INT(a.status, 200);
	}
	CHECK_EQ_INT(servicehc_set_addresses(s, NULL, 0), 0);
	REQUIRE(get_hc(loop, port, "/", &a) == CURLE_OK);
	CHECK_EQ_INT(a.status, 200);
	servicehc_free(s);
	loop_free(loop);
}

/* Ports of one Service built by hand: 10.0.0.1 and 10.0.0.2 local and ready
 * on both ports, 10.0.0.3 local but not ready, 10.0.0.4 ready elsewhere;
 * one local ready IPv6 endpoint. */
static struct endpoint eps_a[] = {
	{.port = 80, .flags = EP_READY | EP_SERVING | EP_LOCAL},
	{.port = 80, .flags = EP_READY | EP_SERVING | EP_LOCAL},
	{.port = 80, .flags = EP_SERVING | EP_TERMINATING | EP_LOCAL},
	{.port = 80, .flags = EP_READY | EP_SERVING},
};
static struct endpoint eps_b[] = {
	{.port = 443, .flags = EP_READY | EP_SERVING | EP_LOCAL},
	{.port = 443, .flags = EP_READY | EP_SERVING | EP_LOCAL},
};
static struct endpoint eps_6[] = {
	{.port = 80, .flags = EP_READY | EP_SERVING | EP_LOCAL},
};

static void fill_eps(void)
{
	ipaddr_parse("10.0.0.1", &eps_a[0].addr);
	ipaddr_parse("10.0.0.2", &eps_a[1].addr);
	ipaddr_parse("10.0.0.3", &eps_a[2].addr);
	ipaddr_parse("10.0.0.4", &eps_a[3].addr);
	ipaddr_parse("10.0.0.1", &eps_b[0].addr);
	ipaddr_parse("10.0.0.2", &eps_b[1].addr);
	ipaddr_parse("fd00::1", &eps_6[0].addr);
}

static void make_port(struct svc_port *sp, const char *ns, const char *name, uint8_t family,
		      uint16_t hc, struct endpoint *eps, size_t n)
{
	memset(sp, 0, sizeof(*sp));
	sp->ns = (char *)ns;
	sp->name = (char *)name;
	sp->port_name = (char *)"";
	sp->family = family;
	sp->hc_node_port = hc;
	sp->etp_local = hc != 0;
	sp->eps = eps;
	sp->n_eps = n;
}

TEST(servicehc_counts_from_ports)
{
	struct svc_port v[3];
	struct svc_ports ports = {v, 3};
	uint32_t count;
	uint16_t port;

	fill_eps();
	make_port(&v[0], "default", "web", AF_INET, 31000, eps_a, 4);
	make_port(&v[1], "default", "web", AF_INET, 31000, eps_b, 2);
	make_port(&v[2], "default", "web", AF_INET6, 31000, eps_6, 1);
	servicehc_from_ports(&ports, &port, &count);
	CHECK_EQ_INT(port, 31000);
	/* Two IPv4 addresses (each on two ports), one IPv6: the larger. */
	CHECK_EQ_INT(count, 2);

	ports.n = 1;
	v[0].eps = eps_a + 2;
	v[0].n_eps = 2;
	servicehc_from_ports(&ports, &port, &count);
	CHECK_EQ_INT(count, 0);

	v[0].hc_node_port = 0;
	servicehc_from_ports(&ports, &port, &count);
	CHECK_EQ_INT(port, 0);
	servicehc_from_ports(NULL, &port, &count);
	CHECK_EQ_INT(port, 0);
	CHECK_EQ_INT(count, 0);
}

TEST(servicehc_apply_changes)
{
	struct loop *loop = new_loop();
	struct servicehc *s = NULL;
	struct ipaddr lo = loopback4();
	struct svc_port web[1], shop[1], web2[1];
	struct svc_ports web_ports = {web, 1}, shop_ports = {shop, 1}, web2_ports = {web2, 1};
	struct hc_answer a;
	uint16_t p1 = free_port(), p2;

	while ((p2 = free_port()) == p1)
		;
	fill_eps();
	make_port(web, "default", "web", AF_INET, p1, eps_a, 4);
	make_port(shop, "shop", "cart", AF_INET, p2, eps_a + 2, 2);
	make_port(web2, "default", "web", AF_INET, p1, eps_b, 1);
	REQUIRE(servicehc_new(loop, NULL, &lo, 1, &s) == 0);
	{
		struct tracker_change c[] = {
			{.key = (char *)"default/web", .new = &web_ports},
			{.key = (char *)"shop/cart", .new = &shop_ports},
		};
		struct tracker_changes ch = {.v = c, .n = 2, .full = true};

		CHECK_EQ_INT(servicehc_apply(s, &ch), 0);
	}
	CHECK_EQ_INT(servicehc_size(s), 2);
	REQUIRE(get_hc(loop, p1, "/", &a) == CURLE_OK);
	CHECK_EQ_INT(a.status, 200);
	CHECK_EQ_INT(a.local, 2);
	REQUIRE(get_hc(loop, p2, "/", &a) == CURLE_OK);
	CHECK_EQ_INT(a.status, 503);

	/* Partial: web's count changes; cart is deleted. */
	{
		struct tracker_change c[] = {
			{.key = (char *)"default/web", .old = &web_ports, .new = &web2_ports},
			{.key = (char *)"shop/cart", .old = &shop_ports, .new = NULL},
		};
		struct tracker_changes ch = {.v = c, .n = 2};

		CHECK_EQ_INT(servicehc_apply(s, &ch), 0);
	}
	CHECK_EQ_INT(servicehc_size(s), 1);
	REQUIRE(get_hc(loop, p1, "/", &a) == CURLE_OK);
	CHECK_EQ_INT(a.local, 1);
	CHECK(get_hc(loop, p2, "/", &a) == CURLE_COULDNT_CONNECT);

	/* A full sync without web closes it. */
	{
		struct tracker_change c[] = {{.key = (char *)"shop/cart", .new = &shop_ports}};
		struct tracker_changes ch = {.v = c, .n = 1, .full = true};

		CHECK_EQ_INT(servicehc_apply(s, &ch), 0);
	}
	CHECK(!servicehc_listening(s, "default", "web"));
	CHECK(servicehc_listening(s, "shop", "cart"));
	CHECK(get_hc(loop, p1, "/", &a) == CURLE_COULDNT_CONNECT);
	servicehc_free(s);
	loop_free(loop);
}

UNIT_MAIN(T(split_hostport), T(http_bad_addresses), T(http_serves_ipv4),
	  T(http_serves_ipv6_and_wildcards), T(http_pipelined_requests), T(http_address_in_use),
	  T(http_stalled_client_is_dropped), T(http_limits), T(http_listener_retries),
	  T(healthz_states), T(healthz_never_synced_and_ineligible), T(healthz_time_format),
	  T(metrics_endpoint), T(servicehc_serves_and_follows_syncs), T(servicehc_port_in_use),
	  T(servicehc_addresses), T(servicehc_counts_from_ports), T(servicehc_apply_changes))
