/* libmicrohttpd driven by the agent's loop; see http.h.
 *
 * The listening socket is opened here rather than by the library so that a
 * bind failure comes back as an errno that can be reported with the address
 * it concerns, and so that wildcard addresses get the same dual-stack
 * treatment as kube-proxy's.  The library then runs in its "external epoll"
 * mode: its epoll descriptor sits in the loop, MHD_run() is called when it is
 * readable or when the library's own deadline (connection timeouts, data it
 * has buffered) comes due, and the deadline is re-read after every run. */
#include "health/http.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "util/log.h"
#include "util/loop.h"

#define LISTEN_BACKLOG 128

struct http_server {
	struct loop *loop;
	struct MHD_Daemon *daemon;
	int epfd; /* the library's epoll descriptor, watched by the loop */
	struct loop_timer *timer;
	void (*fn)(void *data, const struct http_request *req, struct http_response *resp);
	void *data;
	uint16_t port;
	char address[96];
};

/* --- addresses --- */

static int parse_port(const char *s, uint16_t *ret)
{
	unsigned long v = 0;

	if (!*s || strlen(s) > 5)
		return -EINVAL;
	for (const char *p = s; *p; p++) {
		if (*p < '0' || *p > '9')
			return -EINVAL;
		v = v * 10 + (unsigned long)(*p - '0');
	}
	if (v > 65535)
		return -EINVAL;
	*ret = (uint16_t)v;
	return 0;
}

int http_split_hostport(const char *s, char *host, size_t hostlen, uint16_t *ret_port)
{
	const char *colon, *hstart, *hend;
	size_t n;

	if (!s)
		return -EINVAL;
	if (s[0] == '[') {
		hstart = s + 1;
		hend = strchr(hstart, ']');
		if (!hend || hend[1] != ':')
			return -EINVAL;
		colon = hend + 1;
	} else {
		colon = strrchr(s, ':');
		/* An IPv6 address must be bracketed: "::1:80" is ambiguous. */
		if (!colon || memchr(s, ':', (size_t)(colon - s)))
			return -EINVAL;
		hstart = s;
		hend = colon;
	}
	n = (size_t)(hend - hstart);
	if (n >= hostlen)
		return -EINVAL;
	memcpy(host, hstart, n);
	host[n] = '\0';
	return parse_port(colon + 1, ret_port);
}

/* Opens, binds and listens; returns the descriptor or -errno. */
static int listen_on(int family, const void *addr, uint16_t port, bool dual_stack)
{
	struct sockaddr_in6 sin6 = {.sin6_family = AF_INET6, .sin6_port = htons(port)};
	struct sockaddr_in sin = {.sin_family = AF_INET, .sin_port = htons(port)};
	const struct sockaddr *sa;
	socklen_t salen;
	int fd, on = 1, off = 0, r;

	if (family == AF_INET6) {
		memcpy(&sin6.sin6_addr, addr, 16);
		sa = (const struct sockaddr *)&sin6;
		salen = sizeof(sin6);
	} else {
		memcpy(&sin.sin_addr, addr, 4);
		sa = (const struct sockaddr *)&sin;
		salen = sizeof(sin);
	}
	fd = socket(family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	/* A restarted agent must not wait for the old connections' TIME_WAIT. */
	if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof(on)) < 0)
		goto fail;
	if (family == AF_INET6 &&
	    setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, dual_stack ? &off : &on, sizeof(int)) < 0)
		goto fail;
	if (bind(fd, sa, salen) < 0 || listen(fd, LISTEN_BACKLOG) < 0)
		goto fail;
	return fd;
fail:
	r = -errno;
	close(fd);
	return r;
}

/* Parses bind into a family and address; a wildcard (no host, 0.0.0.0 or
 * ::) gives family 0.  Returns 0, or -EINVAL with err filled. */
static int parse_bind(const char *bind, int *ret_family, unsigned char *addr, uint16_t *ret_port,
		      char *err, size_t errlen)
{
	static const unsigned char any[16];
	char host[INET6_ADDRSTRLEN + 1];
	bool bracketed = bind && bind[0] == '[';

	memset(addr, 0, 16);
	if (http_split_hostport(bind, host, sizeof(host), ret_port) < 0) {
		snprintf(err, errlen,
			 "bad listen address \"%s\": want IPv4:port, [IPv6]:port or :port",
			 bind ? bind : "");
		return -EINVAL;
	}
	if (!host[0]) {
		*ret_family = 0;
	} else if (!bracketed && inet_pton(AF_INET, host, addr) == 1) {
		*ret_family = memcmp(addr, any, 4) ? AF_INET : 0;
	} else if (bracketed && inet_pton(AF_INET6, host, addr) == 1) {
		*ret_family = memcmp(addr, any, 16) ? AF_INET6 : 0;
	} else {
		snprintf(err, errlen, "bad listen address \"%s\": \"%s\" is not an IP address",
			 bind, host);
		return -EINVAL;
	}
	return 0;
}

/* Resolves bind to a listening socket.  Returns the descriptor or -errno
 * with err filled. */
static int open_listener(const char *bind, uint16_t *ret_port, char *err, size_t errlen)
{
	unsigned char addr[16];
	struct sockaddr_storage ss;
	socklen_t sslen = sizeof(ss);
	uint16_t port;
	int family, fd;

	fd = parse_bind(bind, &family, addr, &port, err, errlen);
	if (fd < 0)
		return fd;
	if (family) {
		fd = listen_on(family, addr, port, false);
	} else {
		/* Every address: one IPv6 socket that also takes IPv4, unless the
		 * host has no IPv6 at all. */
		fd = listen_on(AF_INET6, addr, port, true);
		if (fd == -EAFNOSUPPORT || fd == -EADDRNOTAVAIL)
			fd = listen_on(AF_INET, addr, port, false);
	}
	if (fd < 0) {
		snprintf(err, errlen, "cannot listen on %s: %s", bind, strerror(-fd));
		return fd;
	}
	if (getsockname(fd, (struct sockaddr *)&ss, &sslen) == 0)
		*ret_port = ntohs(ss.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&ss)->sin6_port
							   : ((struct sockaddr_in *)&ss)->sin_port);
	else
		*ret_port = port;
	return fd;
}

/* --- responses --- */

static void response_init(struct http_response *resp)
{
	memset(resp, 0, sizeof(*resp));
	resp->status = 200;
	snprintf(resp->content_type, sizeof(resp->content_type), "text/plain; charset=utf-8");
}

int http_response_printf(struct http_response *resp, const char *fmt, ...)
{
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(NULL, 0, fmt, ap);
	va_end(ap);
	if (n < 0)
		return -EINVAL;
	if (resp->body_len + (size_t)n + 1 > resp->body_cap) {
		size_t cap = resp->body_cap ? resp->body_cap : 256;
		char *p;

		while (cap < resp->body_len + (size_t)n + 1)
			cap *= 2;
		p = realloc(resp->body, cap);
		if (!p)
			return -ENOMEM;
		resp->body = p;
		resp->body_cap = cap;
	}
	va_start(ap, fmt);
	vsnprintf(resp->body + resp->body_len, resp->body_cap - resp->body_len, fmt, ap);
	va_end(ap);
	resp->body_len += (size_t)n;
	return 0;
}

void http_response_set_body(struct http_response *resp, char *buf, size_t len)
{
	free(resp->body);
	resp->body = buf;
	resp->body_len = len;
	resp->body_cap = len;
}

static bool has_crlf(const char *s)
{
	return strpbrk(s, "\r\n") != NULL;
}

int http_response_header(struct http_response *resp, const char *name, const char *value)
{
	struct http_header *h;

	if (has_crlf(name) || has_crlf(value) || !*name)
		return -EINVAL;
	if (resp->n_headers == HTTP_MAX_HEADERS || strlen(name) >= HTTP_HEADER_NAME_MAX ||
	    strlen(value) >= HTTP_HEADER_VALUE_MAX)
		return -E2BIG;
	h = &resp->headers[resp->n_headers++];
	snprintf(h->name, sizeof(h->name), "%s", name);
	snprintf(h->value, sizeof(h->value), "%s", value);
	return 0;
}

void http_response_content_type(struct http_response *resp, const char *type)
{
	if (!has_crlf(type))
		snprintf(resp->content_type, sizeof(resp->content_type), "%s", type);
}

const char *http_request_query(const struct http_request *req, const char *name)
{
	return MHD_lookup_connection_value(req->conn, MHD_GET_ARGUMENT_KIND, name);
}

/* Hands the response to the library; the body's ownership goes with it. */
static enum MHD_Result send_response(struct MHD_Connection *conn, struct http_response *resp)
{
	struct MHD_Response *r;
	enum MHD_Result ret;

	if (resp->body_len) {
		r = MHD_create_response_from_buffer_with_free_callback(resp->body_len, resp->body,
								       free);
		if (!r)
			free(resp->body);
	} else {
		free(resp->body);
		r = MHD_create_response_from_buffer(0, (void *)"", MHD_RESPMEM_PERSISTENT);
	}
	resp->body = NULL;
	if (!r)
		return MHD_NO; /* out of memory: the library drops the connection */
	MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, resp->content_type);
	for (size_t i = 0; i < resp->n_headers; i++)
		MHD_add_response_header(r, resp->headers[i].name, resp->headers[i].value);
	ret = MHD_queue_response(conn, resp->status, r);
	MHD_destroy_response(r);
	return ret;
}

static bool has_request_body(struct MHD_Connection *conn)
{
	const char *cl =
		MHD_lookup_connection_value(conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);

	if (MHD_lookup_connection_value(conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_TRANSFER_ENCODING))
		return true;
	return cl && strspn(cl, "0") != strlen(cl);
}

/* Per-request state, kept in the library's per-connection slot. */
static char req_pending, req_answered;

/* The library calls this once the headers are in, then again for each piece
 * of a body and once more when the request is complete.  A request that
 * will be refused is answered on the first call, before any body is read,
 * which makes the library close the connection afterwards; the others are
 * answered on the last call, which keeps the connection alive for the next
 * request. */
static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url,
				  const char *method, const char *version, const char *upload_data,
				  size_t *upload_data_size, void **con_cls)
{
	struct http_server *srv = cls;
	struct http_request req = {.method = method, .path = url, .conn = conn};
	struct http_response resp;

	(void)version;
	(void)upload_data;
	if (*con_cls == &req_answered) {
		*upload_data_size = 0;
		return MHD_YES;
	}
	response_init(&resp);
	if (!*con_cls) {
		if (strcmp(method, MHD_HTTP_METHOD_GET) != 0 &&
		    strcmp(method, MHD_HTTP_METHOD_HEAD) != 0) {
			resp.status = MHD_HTTP_METHOD_NOT_ALLOWED;
			http_response_header(&resp, MHD_HTTP_HEADER_ALLOW, "GET, HEAD");
			http_response_printf(&resp, "method not allowed\n");
		} else if (has_request_body(conn)) {
			resp.status = 413;
			http_response_printf(&resp, "request bodies are not accepted\n");
		} else {
			*con_cls = &req_pending;
			return MHD_YES;
		}
		*con_cls = &req_answered;
		return send_response(conn, &resp);
	}
	if (*upload_data_size) {
		*upload_data_size = 0;
		return MHD_YES;
	}
	*con_cls = &req_answered;
	srv->fn(srv->data, &req, &resp);
	return send_response(conn, &resp);
}

static void on_log(void *cls, const char *fmt, va_list ap)
{
	struct http_server *srv = cls;
	char msg[512];
	size_t n;

	if (!log_enabled(4))
		return;
	vsnprintf(msg, sizeof(msg), fmt, ap);
	n = strlen(msg);
	while (n && (msg[n - 1] == '\n' || msg[n - 1] == '\r'))
		msg[--n] = '\0';
	log_v(4, "http %s: %s", srv->address, msg);
}

/* --- driving the library from the loop --- */

static void rearm(struct http_server *srv, uint64_t min_ms)
{
	MHD_UNSIGNED_LONG_LONG t;

	if (MHD_get_timeout(srv->daemon, &t) == MHD_YES)
		loop_timer_arm(srv->timer, t > min_ms ? (uint64_t)t : min_ms);
	else
		loop_timer_disarm(srv->timer);
}

static void on_ready(struct loop *loop, int fd, uint32_t events, void *data)
{
	struct http_server *srv = data;

	(void)loop;
	(void)fd;
	(void)events;
	MHD_run(srv->daemon);
	rearm(srv, 0);
}

/* The library's deadline came due.  A deadline of zero means it holds work it
 * could not finish; waiting at least a millisecond lets the loop serve its
 * other descriptors in between. */
static void on_timer(struct loop *loop, struct loop_timer *t, void *data)
{
	struct http_server *srv = data;

	(void)loop;
	(void)t;
	MHD_run(srv->daemon);
	rearm(srv, 1);
}

int http_server_new(struct loop *loop, const char *bind,
		    void (*fn)(void *data, const struct http_request *req,
			       struct http_response *resp),
		    void *data, struct http_server **ret, char *err, size_t errlen)
{
	return http_server_new_limits(loop, bind, NULL, fn, data, ret, err, errlen);
}

int http_server_new_limits(struct loop *loop, const char *bind, const struct http_limits *limits,
			   void (*fn)(void *data, const struct http_request *req,
				      struct http_response *resp),
			   void *data, struct http_server **ret, char *err, size_t errlen)
{
	struct http_limits lim = {0};
	const union MHD_DaemonInfo *info;
	struct http_server *srv;
	int fd, r;

	if (limits)
		lim = *limits;
	if (!lim.max_connections)
		lim.max_connections = HTTP_DEFAULT_MAX_CONNECTIONS;
	if (!lim.max_per_ip)
		lim.max_per_ip = HTTP_DEFAULT_MAX_PER_IP;
	if (!lim.timeout_s)
		lim.timeout_s = HTTP_DEFAULT_TIMEOUT_S;
	if (!lim.max_request)
		lim.max_request = HTTP_DEFAULT_MAX_REQUEST;
	if (MHD_is_feature_supported(MHD_FEATURE_EPOLL) != MHD_YES) {
		snprintf(err, errlen, "cannot serve %s: libmicrohttpd was built without epoll",
			 bind ? bind : "");
		return -ENOTSUP;
	}
	srv = calloc(1, sizeof(*srv));
	if (!srv) {
		snprintf(err, errlen, "cannot serve %s: out of memory", bind ? bind : "");
		return -ENOMEM;
	}
	srv->loop = loop;
	srv->fn = fn;
	srv->data = data;
	srv->epfd = -1;
	snprintf(srv->address, sizeof(srv->address), "%s", bind ? bind : "");
	fd = open_listener(bind, &srv->port, err, errlen);
	if (fd < 0) {
		free(srv);
		return fd;
	}
	srv->timer = loop_timer_new(loop, on_timer, srv);
	if (!srv->timer) {
		snprintf(err, errlen, "cannot serve %s: out of memory", srv->address);
		close(fd);
		free(srv);
		return -ENOMEM;
	}
	srv->daemon = MHD_start_daemon(
		MHD_USE_EPOLL | MHD_USE_ERROR_LOG, 0, NULL, NULL, on_request, srv,
		MHD_OPTION_EXTERNAL_LOGGER, on_log, srv, MHD_OPTION_LISTEN_SOCKET, fd,
		MHD_OPTION_CONNECTION_LIMIT, lim.max_connections,
		MHD_OPTION_PER_IP_CONNECTION_LIMIT, lim.max_per_ip, MHD_OPTION_CONNECTION_TIMEOUT,
		lim.timeout_s, MHD_OPTION_CONNECTION_MEMORY_LIMIT, lim.max_request, MHD_OPTION_END);
	if (!srv->daemon) {
		/* Whether the library closed the socket on its way out is not
		 * specified; nothing else runs meanwhile, so an open descriptor
		 * with this number is still ours. */
		if (fcntl(fd, F_GETFD) >= 0)
			close(fd);
		loop_timer_free(srv->timer);
		free(srv);
		snprintf(err, errlen, "cannot serve %s: libmicrohttpd failed to start", bind);
		return -EIO;
	}
	info = MHD_get_daemon_info(srv->daemon, MHD_DAEMON_INFO_EPOLL_FD);
	if (!info) {
		r = -EIO;
		goto fail;
	}
	srv->epfd = info->epoll_fd;
	r = loop_add_fd(loop, srv->epfd, EPOLLIN, on_ready, srv);
	if (r < 0) {
		srv->epfd = -1;
		goto fail;
	}
	rearm(srv, 0);
	*ret = srv;
	return 0;
fail:
	snprintf(err, errlen, "cannot serve %s: %s", srv->address, strerror(-r));
	http_server_free(srv);
	return r;
}

void http_server_free(struct http_server *srv)
{
	if (!srv)
		return;
	if (srv->epfd >= 0)
		loop_del_fd(srv->loop, srv->epfd);
	/* Closes the listening socket, the epoll descriptor and every
	 * connection. */
	if (srv->daemon)
		MHD_stop_daemon(srv->daemon);
	loop_timer_free(srv->timer);
	free(srv);
}

uint16_t http_server_port(const struct http_server *srv)
{
	return srv->port;
}

const char *http_server_address(const struct http_server *srv)
{
	return srv->address;
}

/* --- a server that retries --- */

struct http_listener {
	struct loop *loop;
	char *what;
	char *bind;
	uint64_t retry_ms;
	void (*fn)(void *data, const struct http_request *req, struct http_response *resp);
	void *data;
	struct http_server *srv;
	struct loop_timer *retry;
	bool failed; /* a failure was logged */
};

static void listener_try(struct http_listener *l)
{
	char err[256];
	int r;

	r = http_server_new(l->loop, l->bind, l->fn, l->data, &l->srv, err, sizeof(err));
	if (r == 0) {
		if (l->failed)
			log_info("%s server: now listening on %s", l->what, l->bind);
		l->failed = false;
		return;
	}
	l->srv = NULL;
	if (!l->failed)
		log_error("%s server: %s; retrying every %llu ms", l->what, err,
			  (unsigned long long)l->retry_ms);
	l->failed = true;
	loop_timer_arm(l->retry, l->retry_ms);
}

static void on_listener_retry(struct loop *loop, struct loop_timer *t, void *data)
{
	(void)loop;
	(void)t;
	listener_try(data);
}

int http_listener_new(struct loop *loop, const char *what, const char *bind, uint64_t retry_ms,
		      void (*fn)(void *data, const struct http_request *req,
				 struct http_response *resp),
		      void *data, struct http_listener **ret, char *err, size_t errlen)
{
	struct http_listener *l;
	unsigned char addr[16];
	uint16_t port;
	int family, r;

	/* Only a well-formed address is worth retrying. */
	r = parse_bind(bind, &family, addr, &port, err, errlen);
	if (r < 0)
		return r;
	l = calloc(1, sizeof(*l));
	if (!l) {
		snprintf(err, errlen, "%s server: out of memory", what);
		return -ENOMEM;
	}
	l->loop = loop;
	l->what = strdup(what);
	l->bind = strdup(bind);
	l->retry_ms = retry_ms ? retry_ms : HTTP_RETRY_MS;
	l->fn = fn;
	l->data = data;
	l->retry = loop_timer_new(loop, on_listener_retry, l);
	if (!l->what || !l->bind || !l->retry) {
		http_listener_free(l);
		snprintf(err, errlen, "%s server: out of memory", what);
		return -ENOMEM;
	}
	listener_try(l);
	*ret = l;
	return 0;
}

void http_listener_free(struct http_listener *l)
{
	if (!l)
		return;
	http_server_free(l->srv);
	loop_timer_free(l->retry);
	free(l->what);
	free(l->bind);
	free(l);
}

struct http_server *http_listener_server(const struct http_listener *l)
{
	return l ? l->srv : NULL;
}
