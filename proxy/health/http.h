/* A small HTTP server for the agent's own endpoints (/healthz, /livez,
 * /metrics and the health-check node ports), built on libmicrohttpd and run
 * from the agent's event loop: libmicrohttpd keeps its connections in an
 * epoll set of its own, that set's descriptor is watched by the loop, and a
 * loop timer follows the deadline libmicrohttpd asks for.  No thread is
 * started and nothing blocks: a slow or idle client is dropped after a
 * timeout and costs the loop nothing meanwhile.
 *
 * A request is answered from the handler as soon as it is complete, with a
 * body built in memory.  These endpoints only read state, so methods other
 * than GET and HEAD get 405 and a request that carries a body gets 413, both
 * before the body is read; connections are kept alive otherwise. */
#ifndef KPROXY_HEALTH_HTTP_H
#define KPROXY_HEALTH_HTTP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct loop;
struct http_server;

/* What the handler sees of a request.  Strings are borrowed for the duration
 * of the handler call. */
struct http_request {
	const char *method; /* "GET" or "HEAD" (other methods get 405 without the handler) */
	const char *path;   /* decoded path without the query, e.g. "/healthz" */
	void *conn;	    /* the library's connection, for http_request_query() */
};

#define HTTP_MAX_HEADERS      8
#define HTTP_HEADER_NAME_MAX  64
#define HTTP_HEADER_VALUE_MAX 128

struct http_header {
	char name[HTTP_HEADER_NAME_MAX];
	char value[HTTP_HEADER_VALUE_MAX];
};

/* What the handler fills in.  It starts as 200, "text/plain; charset=utf-8",
 * an empty body and no extra headers. */
struct http_response {
	unsigned int status;
	char content_type[HTTP_HEADER_VALUE_MAX];
	char *body; /* malloc()ed; owned by the response */
	size_t body_len;
	size_t body_cap;
	struct http_header headers[HTTP_MAX_HEADERS];
	size_t n_headers;
};

/* Limits that keep one client from holding the loop or much memory.  Zero
 * fields take the defaults below. */
struct http_limits {
	unsigned int max_connections; /* open connections in all */
	unsigned int max_per_ip;      /* open connections from one address */
	unsigned int timeout_s;	      /* an idle or stalled connection is closed after this */
	size_t max_request;	      /* bytes for the request line and headers */
};

#define HTTP_DEFAULT_MAX_CONNECTIONS 128
#define HTTP_DEFAULT_MAX_PER_IP	     32
#define HTTP_DEFAULT_TIMEOUT_S	     10
#define HTTP_DEFAULT_MAX_REQUEST     (16 * 1024)

/* Starts a server listening on bind, one of "1.2.3.4:port", "[2001:db8::1]:port",
 * or ":port" for every address.  A wildcard ("0.0.0.0", "::" or nothing)
 * listens on both families where the host has IPv6, as kube-proxy does
 * (Go's listener takes IPv4 wildcards as dual-stack).  Port 0 picks a free
 * port (see http_server_port()).
 *
 * fn is called for each request, from inside the loop; it must not free this
 * server.  Returns 0 with a server the caller owns in *ret, or -errno with a
 * message naming the address in err: -EINVAL for an address that does not
 * parse, -EADDRINUSE, -EADDRNOTAVAIL, -EACCES from the kernel. */
int http_server_new(struct loop *loop, const char *bind,
		    void (*fn)(void *data, const struct http_request *req,
			       struct http_response *resp),
		    void *data, struct http_server **ret, char *err, size_t errlen);
/* The same with explicit limits (NULL: the defaults). */
int http_server_new_limits(struct loop *loop, const char *bind, const struct http_limits *limits,
			   void (*fn)(void *data, const struct http_request *req,
				      struct http_response *resp),
			   void *data, struct http_server **ret, char *err, size_t errlen);
/* Closes the listener and every connection.  Accepts NULL. */
void http_server_free(struct http_server *srv);

/* The port actually listened on (useful after binding port 0). */
uint16_t http_server_port(const struct http_server *srv);
/* The bind address as given, for messages. */
const char *http_server_address(const struct http_server *srv);

/* A server that keeps trying to start: while its address cannot be bound
 * (another process holds the port, the address is not configured yet) it
 * tries again every retry_ms, as kube-proxy does with its health and metrics
 * servers.  The first failure is logged naming what (e.g. "healthz") and the
 * address, and so is the recovery.  An address that does not parse is a
 * configuration error: -EINVAL at once, with the reason in err.  Otherwise
 * returns 0 with a listener the caller owns in *ret (listening or not yet),
 * or -ENOMEM. */
struct http_listener;

#define HTTP_RETRY_MS 5000

int http_listener_new(struct loop *loop, const char *what, const char *bind, uint64_t retry_ms,
		      void (*fn)(void *data, const struct http_request *req,
				 struct http_response *resp),
		      void *data, struct http_listener **ret, char *err, size_t errlen);
/* Accepts NULL. */
void http_listener_free(struct http_listener *l);
/* The server while listening, NULL while still trying. */
struct http_server *http_listener_server(const struct http_listener *l);

/* The value of query parameter name (decoded), or NULL when absent. */
const char *http_request_query(const struct http_request *req, const char *name);

/* Appends formatted text to the body.  Returns 0 or -ENOMEM. */
int http_response_printf(struct http_response *resp, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
/* Replaces the body with buf (malloc()ed, len bytes), taking ownership. */
void http_response_set_body(struct http_response *resp, char *buf, size_t len);
/* Adds a header (copied).  Returns 0, -E2BIG when the table is full or a
 * string is too long, or -EINVAL for a name or value with CR or LF. */
int http_response_header(struct http_response *resp, const char *name, const char *value);
void http_response_content_type(struct http_response *resp, const char *type);

/* Splits "host:port" / "[v6]:port" / ":port".  host gets "" for no host.
 * Returns 0 or -EINVAL.  Exposed for tests and for callers that print
 * addresses. */
int http_split_hostport(const char *s, char *host, size_t hostlen, uint16_t *ret_port);

#endif
