/*
 * probe: the client that kproxy's end-to-end tests send traffic with.  It
 * makes TCP, UDP, SCTP or HTTP requests to one address and port (normally a
 * Service address, or a pod running echod), prints one line per request
 * (echod's answer "NAME CLIENT_IP CLIENT_PORT", or "ERROR <kind>") and
 * exits 0 only when every request was answered.  Every wait has a deadline
 * so a test fails as soon as its time-out says.  A "--hold" mode keeps one
 * connection (or one UDP socket) busy for a while and reports whether any
 * request in that time went unanswered, which is how tests check that an
 * agent restart or an endpoint change breaks no established flow.
 *
 * Usage: probe [options] tcp|udp|sctp|http ADDR PORT   (see usage() below)
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <linux/errqueue.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#ifndef IPPROTO_SCTP
#define IPPROTO_SCTP 132
#endif

enum proto { P_TCP, P_UDP, P_SCTP, P_HTTP };

struct endpoint {
	struct sockaddr_storage ss;
	socklen_t len;
	int family;
	bool has_port;
};

static struct {
	enum proto proto;
	struct endpoint target;
	char addr_text[INET6_ADDRSTRLEN + 8];
	unsigned port;
	long count;
	long interval_ms; /* -1: not given */
	long timeout_ms;
	bool have_bind;
	struct endpoint bind;
	bool connected;
	bool same_socket;
	bool expect_fail;
	double hold_s; /* 0: not in hold mode */
	bool json;
	bool connect_only; /* TCP/SCTP: success once connected */
	const char *path;
	const char *message;
} o = {.count = 1, .interval_ms = -1, .timeout_ms = 2000, .path = "/"};

struct result {
	bool ok;
	char answer[1024]; /* the answer line, without the newline */
	bool parsed;	   /* answer looked like "NAME IP PORT" */
	char name[256];
	char client_ip[INET6_ADDRSTRLEN];
	unsigned client_port;
	int status;			   /* HTTP status, 0 otherwise */
	char error[256];		   /* kind, when !ok */
	char stray[INET6_ADDRSTRLEN + 16]; /* UDP: a reply came from elsewhere */
	double ms;
};

/* A stream connection (TCP, SCTP, HTTP) or a UDP socket. */
struct conn {
	int fd;
	bool dead; /* stream broke: later requests fail alike */
	char dead_kind[256];
	bool eof;    /* the peer closed its side */
	bool broken; /* a receive error (reset, ...) */
	char buf[16384];
	size_t len;
	int owed; /* answers still due to timed-out requests */
};

/* ------------------------------------------------------------ utilities */

static double now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec * 1000.0 + (double)ts.tv_nsec / 1e6;
}

static void sleep_until(double t_ms)
{
	struct timespec ts;
	ts.tv_sec = (time_t)(t_ms / 1000.0);
	ts.tv_nsec = (long)((t_ms - (double)ts.tv_sec * 1000.0) * 1e6);
	if (ts.tv_nsec >= 1000000000L) {
		ts.tv_sec++;
		ts.tv_nsec -= 1000000000L;
	}
	while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) == EINTR)
		;
}

static void set_kind_errno(char *k, size_t n, int e)
{
	switch (e) {
	case ECONNREFUSED:
		snprintf(k, n, "refused");
		break;
	case ETIMEDOUT:
		snprintf(k, n, "timeout");
		break;
	case ECONNRESET:
	case EPIPE:
	case ECONNABORTED:
		snprintf(k, n, "reset");
		break;
	case EHOSTUNREACH:
	case ENETUNREACH:
		snprintf(k, n, "unreachable");
		break;
	default:
		snprintf(k, n, "error:%s", strerror(e));
	}
}

/*
 * Waits until fd shows one of the events or the deadline passes.  Returns
 * the revents (POLLERR/POLLHUP included), or 0 at the deadline.
 */
static int wait_fd(int fd, short events, double deadline)
{
	for (;;) {
		double left = deadline - now_ms();
		if (left <= 0)
			return 0;
		struct pollfd p = {.fd = fd, .events = events};
		int ms = (int)left;
		if ((double)ms < left)
			ms++; /* round up: never wake before the deadline */
		int n = poll(&p, 1, ms);
		if (n > 0)
			return p.revents;
		if (n < 0 && errno != EINTR)
			return POLLERR;
	}
}

static void fmt_addr(const struct sockaddr *sa, char *buf, size_t n, unsigned *port)
{
	buf[0] = 0;
	*port = 0;
	if (sa->sa_family == AF_INET) {
		const struct sockaddr_in *s = (const void *)sa;
		inet_ntop(AF_INET, &s->sin_addr, buf, n);
		*port = ntohs(s->sin_port);
	} else if (sa->sa_family == AF_INET6) {
		const struct sockaddr_in6 *s = (const void *)sa;
		if (IN6_IS_ADDR_V4MAPPED(&s->sin6_addr))
			inet_ntop(AF_INET, &s->sin6_addr.s6_addr[12], buf, n);
		else
			inet_ntop(AF_INET6, &s->sin6_addr, buf, n);
		*port = ntohs(s->sin6_port);
	}
}

static bool same_endpoint(const struct sockaddr_storage *a, const struct endpoint *b)
{
	if (a->ss_family != b->family)
		return false;
	if (a->ss_family == AF_INET) {
		const struct sockaddr_in *x = (const void *)a, *y = (const void *)&b->ss;
		return x->sin_port == y->sin_port && x->sin_addr.s_addr == y->sin_addr.s_addr;
	}
	const struct sockaddr_in6 *x = (const void *)a, *y = (const void *)&b->ss;
	return x->sin6_port == y->sin6_port &&
	       memcmp(&x->sin6_addr, &y->sin6_addr, sizeof(x->sin6_addr)) == 0;
}

/* Parses a numeric address (IPv6 zone allowed) and optional port. */
static bool parse_endpoint(const char *text, const char *port, struct endpoint *ep)
{
	struct addrinfo hints = {.ai_flags = AI_NUMERICHOST | AI_NUMERICSERV,
				 .ai_family = AF_UNSPEC};
	struct addrinfo *res = NULL;
	if (getaddrinfo(text, port ? port : "0", &hints, &res) != 0 || !res)
		return false;
	memset(ep, 0, sizeof(*ep));
	memcpy(&ep->ss, res->ai_addr, res->ai_addrlen);
	ep->len = res->ai_addrlen;
	ep->family = res->ai_family;
	ep->has_port = port != NULL && strcmp(port, "0") != 0;
	freeaddrinfo(res);
	return true;
}

/* "ADDR", "ADDR:PORT" (IPv4), "[ADDR]:PORT" or a bare IPv6 address. */
static bool parse_bind(const char *s, struct endpoint *ep)
{
	char host[256];
	const char *port = NULL;
	if (s[0] == '[') {
		const char *close = strchr(s, ']');
		if (!close || (size_t)(close - s - 1) >= sizeof(host))
			return false;
		memcpy(host, s + 1, (size_t)(close - s - 1));
		host[close - s - 1] = 0;
		if (close[1] == ':')
			port = close + 2;
		else if (close[1] != 0)
			return false;
	} else {
		const char *c = strchr(s, ':');
		if (strlen(s) >= sizeof(host))
			return false;
		strcpy(host, s);
		if (c && !strchr(c + 1, ':')) { /* exactly one colon: IPv4 with port */
			host[c - s] = 0;
			port = c + 1;
		}
	}
	return parse_endpoint(host, port, ep);
}

static void json_str(FILE *f, const char *s)
{
	fputc('"', f);
	for (; *s; s++) {
		unsigned char ch = (unsigned char)*s;
		if (ch == '"' || ch == '\\')
			fprintf(f, "\\%c", ch);
		else if (ch == '\n')
			fputs("\\n", f);
		else if (ch == '\r')
			fputs("\\r", f);
		else if (ch == '\t')
			fputs("\\t", f);
		else if (ch < 0x20)
			fprintf(f, "\\u%04x", ch);
		else
			fputc(ch, f);
	}
	fputc('"', f);
}

static void parse_answer(struct result *r)
{
	char copy[sizeof(r->answer)];
	snprintf(copy, sizeof(copy), "%s", r->answer);
	char *save = NULL;
	char *name = strtok_r(copy, " ", &save);
	char *ip = name ? strtok_r(NULL, " ", &save) : NULL;
	char *port = ip ? strtok_r(NULL, " ", &save) : NULL;
	char *extra = port ? strtok_r(NULL, " ", &save) : NULL;
	if (!port || extra)
		return;
	char *end;
	long p = strtol(port, &end, 10);
	unsigned char tmp[16];
	if (*end || p < 0 || p > 65535 ||
	    (inet_pton(AF_INET, ip, tmp) != 1 && inet_pton(AF_INET6, ip, tmp) != 1))
		return;
	snprintf(r->name, sizeof(r->name), "%s", name);
	snprintf(r->client_ip, sizeof(r->client_ip), "%s", ip);
	r->client_port = (unsigned)p;
	r->parsed = true;
}

static void fail(struct result *r, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(r->error, sizeof(r->error), fmt, ap);
	va_end(ap);
	r->ok = false;
}

static void fail_errno(struct result *r, int e)
{
	set_kind_errno(r->error, sizeof(r->error), e);
	r->ok = false;
}

/* ---------------------------------------------------------------- streams */

static void conn_close(struct conn *c)
{
	if (c->fd >= 0)
		close(c->fd);
	c->fd = -1;
	c->len = 0;
	c->owed = 0;
	c->eof = c->broken = false;
}

static void conn_kill(struct conn *c, const char *kind)
{
	conn_close(c);
	c->dead = true;
	snprintf(c->dead_kind, sizeof(c->dead_kind), "%s", kind);
}

static int open_socket(int type, int proto, struct result *r)
{
	int fd = socket(o.target.family, type | SOCK_NONBLOCK | SOCK_CLOEXEC, proto);
	if (fd < 0) {
		fail_errno(r, errno);
		return -1;
	}
	if (o.have_bind) {
		int one = 1;
		if (o.bind.has_port)
			setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
		/* a source address that is not (yet) local is still allowed */
		if (o.target.family == AF_INET)
			setsockopt(fd, IPPROTO_IP, IP_FREEBIND, &one, sizeof(one));
		else
			setsockopt(fd, IPPROTO_IPV6, IPV6_FREEBIND, &one, sizeof(one));
		if (bind(fd, (struct sockaddr *)&o.bind.ss, o.bind.len) < 0) {
			fail_errno(r, errno);
			close(fd);
			return -1;
		}
	}
	return fd;
}

static bool stream_connect(struct conn *c, double deadline, struct result *r)
{
	int proto = o.proto == P_SCTP ? IPPROTO_SCTP : IPPROTO_TCP;
	int fd = open_socket(SOCK_STREAM, proto, r);
	if (fd < 0)
		return false;
	if (proto == IPPROTO_TCP) {
		int one = 1;
		setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	}
	if (connect(fd, (struct sockaddr *)&o.target.ss, o.target.len) < 0) {
		if (errno != EINPROGRESS) {
			fail_errno(r, errno);
			close(fd);
			return false;
		}
		int ev = wait_fd(fd, POLLOUT, deadline);
		if (ev == 0) {
			fail(r, "timeout");
			close(fd);
			return false;
		}
		int err = 0;
		socklen_t el = sizeof(err);
		if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &el) < 0)
			err = errno;
		if (err) {
			fail_errno(r, err);
			close(fd);
			return false;
		}
	}
	c->fd = fd;
	c->len = 0;
	c->owed = 0;
	return true;
}

static bool stream_send(struct conn *c, const char *data, size_t len, double deadline,
			struct result *r)
{
	size_t off = 0;
	while (off < len) {
		ssize_t n = send(c->fd, data + off, len - off, MSG_NOSIGNAL | MSG_DONTWAIT);
		if (n > 0) {
			off += (size_t)n;
			continue;
		}
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
			if (wait_fd(c->fd, POLLOUT, deadline) == 0) {
				fail(r, "timeout");
				return false;
			}
			continue;
		}
		fail_errno(r, n < 0 ? errno : EPIPE);
		conn_kill(c, r->error);
		return false;
	}
	return true;
}

/*
 * Reads more bytes into c->buf.  False with r->error set at a time-out, an
 * error (c->broken) or the end of the stream (c->eof); the buffer is kept.
 */
static bool stream_fill(struct conn *c, double deadline, struct result *r)
{
	if (c->len >= sizeof(c->buf)) {
		fail(r, "error:answer too long");
		c->broken = true;
		return false;
	}
	for (;;) {
		ssize_t n = recv(c->fd, c->buf + c->len, sizeof(c->buf) - c->len, MSG_DONTWAIT);
		if (n > 0) {
			c->len += (size_t)n;
			return true;
		}
		if (n == 0) {
			fail(r, "error:closed");
			c->eof = true;
			return false;
		}
		if (errno == EINTR)
			continue;
		if (errno != EAGAIN && errno != EWOULDBLOCK) {
			fail_errno(r, errno);
			c->broken = true;
			return false;
		}
		if (wait_fd(c->fd, POLLIN, deadline) == 0) {
			fail(r, "timeout");
			return false;
		}
	}
}

static void consume(struct conn *c, size_t n)
{
	memmove(c->buf, c->buf + n, c->len - n);
	c->len -= n;
}

/* One '\n'-terminated line into out (without the newline). */
static bool stream_line(struct conn *c, char *out, size_t outn, double deadline, struct result *r)
{
	for (;;) {
		char *nl = memchr(c->buf, '\n', c->len);
		if (nl) {
			size_t l = (size_t)(nl - c->buf);
			size_t k = l < outn - 1 ? l : outn - 1;
			memcpy(out, c->buf, k);
			out[k] = 0;
			if (k && out[k - 1] == '\r')
				out[k - 1] = 0;
			consume(c, l + 1);
			return true;
		}
		if (!stream_fill(c, deadline, r))
			return false;
	}
}

/* Waits until c->buf holds "\r\n" at or after pos; returns its offset. */
static bool find_crlf(struct conn *c, size_t pos, size_t *at, double deadline, struct result *r)
{
	for (;;) {
		char *e = pos <= c->len ? memmem(c->buf + pos, c->len - pos, "\r\n", 2) : NULL;
		if (e) {
			*at = (size_t)(e - c->buf);
			return true;
		}
		if (!stream_fill(c, deadline, r))
			return false;
	}
}

/*
 * Reads one whole HTTP response (Content-Length, chunked, or ended by the
 * connection): r->status and the first body line in r->answer.  False when
 * no complete response arrived.
 */
static bool http_response(struct conn *c, double deadline, struct result *r)
{
	size_t head = 0;
	for (;;) {
		char *e = memmem(c->buf, c->len, "\r\n\r\n", 4);
		if (e) {
			head = (size_t)(e - c->buf) + 4;
			break;
		}
		e = memmem(c->buf, c->len, "\n\n", 2);
		if (e) {
			head = (size_t)(e - c->buf) + 2;
			break;
		}
		if (!stream_fill(c, deadline, r))
			return false;
	}
	int status = 0;
	if (sscanf(c->buf, "HTTP/%*d.%*d %d", &status) != 1) {
		fail(r, "error:bad http response");
		c->broken = true;
		return false;
	}
	long clen = -1;
	bool close_after = false, chunked = false;
	for (char *p = c->buf; p < c->buf + head;) {
		char *eol = memchr(p, '\n', (size_t)(c->buf + head - p));
		if (!eol)
			break;
		if (strncasecmp(p, "Content-Length:", 15) == 0)
			clen = strtol(p + 15, NULL, 10);
		else if (strncasecmp(p, "Connection:", 11) == 0 &&
			 memmem(p, (size_t)(eol - p), "close", 5))
			close_after = true;
		else if (strncasecmp(p, "Transfer-Encoding:", 18) == 0 &&
			 memmem(p, (size_t)(eol - p), "chunked", 7))
			chunked = true;
		p = eol + 1;
	}
	char body[1024];
	size_t blen = 0, end;
	if (chunked) {
		size_t pos = head, at;
		for (;;) {
			if (!find_crlf(c, pos, &at, deadline, r))
				return false;
			size_t sz = (size_t)strtoul(c->buf + pos, NULL, 16);
			pos = at + 2;
			if (sz == 0)
				break;
			while (c->len < pos + sz + 2)
				if (!stream_fill(c, deadline, r))
					return false;
			size_t k = sz < sizeof(body) - 1 - blen ? sz : sizeof(body) - 1 - blen;
			memcpy(body + blen, c->buf + pos, k);
			blen += k;
			pos += sz + 2;
		}
		for (;;) { /* trailer lines up to an empty one */
			if (!find_crlf(c, pos, &at, deadline, r))
				return false;
			bool empty = at == pos;
			pos = at + 2;
			if (empty)
				break;
		}
		end = pos;
	} else {
		size_t body_len;
		if (clen >= 0) {
			if ((size_t)clen > sizeof(c->buf) - head) {
				fail(r, "error:answer too long");
				c->broken = true;
				return false;
			}
			while (c->len < head + (size_t)clen)
				if (!stream_fill(c, deadline, r))
					return false;
			body_len = (size_t)clen;
		} else {
			/* no length: the body ends with the connection */
			while (stream_fill(c, deadline, r))
				;
			if (!c->eof)
				return false;
			r->error[0] = 0;
			body_len = c->len - head;
			close_after = true;
		}
		blen = body_len < sizeof(body) - 1 ? body_len : sizeof(body) - 1;
		memcpy(body, c->buf + head, blen);
		end = head + body_len;
	}
	body[blen] = 0;
	char *nl = memchr(body, '\n', blen);
	size_t l = nl ? (size_t)(nl - body) : blen;
	if (l >= sizeof(r->answer))
		l = sizeof(r->answer) - 1;
	memcpy(r->answer, body, l);
	r->answer[l] = 0;
	if (l && r->answer[l - 1] == '\r')
		r->answer[l - 1] = 0;
	r->status = status;
	consume(c, end);
	if (close_after)
		conn_close(c);
	return true;
}

/* One request and its answer on the stream connection c (opened if need be). */
static bool stream_request(struct conn *c, bool keep, double deadline, struct result *r)
{
	if (c->dead) {
		fail(r, "%s", c->dead_kind);
		return false;
	}
	if (c->fd < 0 && !stream_connect(c, deadline, r))
		return false;
	if (o.connect_only) {
		snprintf(r->answer, sizeof(r->answer), "connected");
		return true;
	}
	char req[1024];
	int n;
	if (o.proto == P_HTTP) {
		char host[INET6_ADDRSTRLEN + 16];
		if (o.target.family == AF_INET6)
			snprintf(host, sizeof(host), "[%s]:%u", o.addr_text, o.port);
		else
			snprintf(host, sizeof(host), "%s:%u", o.addr_text, o.port);
		n = snprintf(req, sizeof(req),
			     "GET %s HTTP/1.1\r\nHost: %s\r\nUser-Agent: kproxy-probe\r\n"
			     "Accept: */*\r\nConnection: %s\r\n\r\n",
			     o.path, host, keep ? "keep-alive" : "close");
	} else {
		n = snprintf(req, sizeof(req), "%s\n", o.message);
	}
	bool got = stream_send(c, req, (size_t)n, deadline, r);
	/* answers owed to earlier, timed-out requests come first */
	while (got && c->owed > 0) {
		struct result skip = {0};
		got = o.proto == P_HTTP
			      ? http_response(c, deadline, &skip)
			      : stream_line(c, skip.answer, sizeof(skip.answer), deadline, &skip);
		if (got)
			c->owed--;
		else
			snprintf(r->error, sizeof(r->error), "%s", skip.error);
		if (got && c->fd < 0) {
			/* the late answer closed the connection: this request is lost */
			fail(r, "error:closed");
			return false;
		}
	}
	if (got) {
		if (o.proto == P_HTTP)
			got = http_response(c, deadline, r);
		else
			got = stream_line(c, r->answer, sizeof(r->answer), deadline, r);
	}
	if (!got) {
		r->ok = false;
		if (c->fd >= 0 && (c->eof || c->broken))
			conn_kill(c, r->error);
		else if (c->fd >= 0 && strcmp(r->error, "timeout") == 0)
			c->owed++;
		return false;
	}
	if (o.proto == P_HTTP && (r->status < 200 || r->status > 299)) {
		fail(r, "http-%d", r->status);
		return false;
	}
	return true;
}

/* ------------------------------------------------------------------- UDP */

static void udp_drain(int fd)
{
	char buf[2048];
	for (;;) {
		char cbuf[512];
		struct iovec iov = {.iov_base = buf, .iov_len = sizeof(buf)};
		struct msghdr mh = {.msg_iov = &iov,
				    .msg_iovlen = 1,
				    .msg_control = cbuf,
				    .msg_controllen = sizeof(cbuf)};
		if (recvmsg(fd, &mh, MSG_ERRQUEUE | MSG_DONTWAIT) < 0)
			break;
	}
	for (;;) {
		ssize_t n = recv(fd, buf, sizeof(buf), MSG_DONTWAIT);
		if (n < 0 && errno != EINTR && errno != EAGAIN && errno != EWOULDBLOCK)
			continue; /* a pending ICMP error was consumed; look again */
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			break;
	}
}

static bool udp_open(struct conn *c, struct result *r)
{
	int fd = open_socket(SOCK_DGRAM, IPPROTO_UDP, r);
	if (fd < 0)
		return false;
	int one = 1;
	/* learn of ICMP errors even on an unconnected socket */
	if (o.target.family == AF_INET)
		setsockopt(fd, IPPROTO_IP, IP_RECVERR, &one, sizeof(one));
	else
		setsockopt(fd, IPPROTO_IPV6, IPV6_RECVERR, &one, sizeof(one));
	if (o.connected && connect(fd, (struct sockaddr *)&o.target.ss, o.target.len) < 0) {
		fail_errno(r, errno);
		close(fd);
		return false;
	}
	c->fd = fd;
	return true;
}

static bool udp_request(struct conn *c, double deadline, struct result *r)
{
	if (c->fd < 0) {
		if (!udp_open(c, r))
			return false;
	} else {
		udp_drain(c->fd); /* late answers to earlier requests */
	}
	char msg[512];
	int ml = snprintf(msg, sizeof(msg), "%s\n", o.message);
	for (;;) {
		ssize_t n = o.connected ? send(c->fd, msg, (size_t)ml, MSG_NOSIGNAL)
					: sendto(c->fd, msg, (size_t)ml, MSG_NOSIGNAL,
						 (struct sockaddr *)&o.target.ss, o.target.len);
		if (n >= 0)
			break;
		if (errno == EINTR)
			continue;
		fail_errno(r, errno);
		udp_drain(c->fd);
		return false;
	}
	for (;;) {
		if (wait_fd(c->fd, POLLIN, deadline) == 0) {
			fail(r, "timeout");
			return false;
		}
		struct sockaddr_storage from;
		socklen_t fl = sizeof(from);
		char buf[2048];
		ssize_t n = recvfrom(c->fd, buf, sizeof(buf) - 1, MSG_DONTWAIT,
				     (struct sockaddr *)&from, &fl);
		if (n < 0) {
			if (errno == EINTR || errno == EAGAIN || errno == EWOULDBLOCK)
				continue;
			fail_errno(r, errno);
			udp_drain(c->fd);
			return false;
		}
		if (!o.connected && !same_endpoint(&from, &o.target)) {
			/* a connected socket would never see this: keep waiting */
			char ip[INET6_ADDRSTRLEN];
			unsigned port;
			fmt_addr((struct sockaddr *)&from, ip, sizeof(ip), &port);
			snprintf(r->stray, sizeof(r->stray), "%s:%u", ip, port);
			continue;
		}
		buf[n] = 0;
		char *nl = memchr(buf, '\n', (size_t)n);
		if (nl)
			*nl = 0;
		size_t l = strlen(buf);
		if (l >= sizeof(r->answer))
			l = sizeof(r->answer) - 1;
		memcpy(r->answer, buf, l);
		r->answer[l] = 0;
		return true;
	}
}

/* --------------------------------------------------------------- requests */

static void one_request(struct conn *c, bool reuse, struct result *r)
{
	memset(r, 0, sizeof(*r));
	double t0 = now_ms();
	double deadline = t0 + (double)o.timeout_ms;
	bool ok;
	if (o.proto == P_UDP)
		ok = udp_request(c, deadline, r);
	else
		ok = stream_request(c, reuse, deadline, r);
	r->ms = now_ms() - t0;
	r->ok = ok;
	if (ok)
		parse_answer(r);
	if (!reuse) {
		conn_close(c);
		c->dead = false;
	}
}

static void print_result(long seq, const struct result *r)
{
	if (!o.json) {
		if (r->ok)
			printf("%s\n", r->answer);
		else
			printf("ERROR %s\n", r->error);
		return;
	}
	printf("{\"seq\":%ld,\"ok\":%s", seq, r->ok ? "true" : "false");
	if (r->ok) {
		if (r->parsed) {
			printf(",\"name\":");
			json_str(stdout, r->name);
			printf(",\"client_ip\":");
			json_str(stdout, r->client_ip);
			printf(",\"client_port\":%u", r->client_port);
		}
		printf(",\"answer\":");
		json_str(stdout, r->answer);
	} else {
		printf(",\"error\":");
		json_str(stdout, r->error);
	}
	if (r->status)
		printf(",\"status\":%d", r->status);
	if (r->stray[0]) {
		printf(",\"stray_from\":");
		json_str(stdout, r->stray);
	}
	printf(",\"ms\":%.3f}\n", r->ms);
}

static int run_count(void)
{
	struct conn c = {.fd = -1};
	long failed = 0;
	double start = now_ms();
	long interval = o.interval_ms < 0 ? 0 : o.interval_ms;
	for (long i = 0; i < o.count; i++) {
		if (i > 0 && interval > 0)
			sleep_until(start + (double)(i * interval));
		struct result r;
		one_request(&c, o.same_socket, &r);
		if (!r.ok)
			failed++;
		print_result(i + 1, &r);
	}
	conn_close(&c);
	if (o.expect_fail)
		return failed == o.count ? 0 : 1;
	return failed == 0 ? 0 : 1;
}

static int run_hold(void)
{
	struct conn c = {.fd = -1};
	long sent = 0, ok = 0, failed = 0;
	char first_error[256] = "none";
	long interval = o.interval_ms < 0 ? 100 : o.interval_ms;
	if (interval < 1)
		interval = 1;
	double start = now_ms();
	double end = start + o.hold_s * 1000.0;
	/* names of the backends that answered, in order of first answer */
	char names[16][256];
	long name_counts[16];
	int nnames = 0;
	for (long i = 0;; i++) {
		double t = start + (double)(i * interval);
		if (t >= end)
			break;
		sleep_until(t);
		struct result r;
		one_request(&c, true, &r);
		sent++;
		if (r.ok) {
			ok++;
			if (r.parsed) {
				int k;
				for (k = 0; k < nnames && strcmp(names[k], r.name) != 0; k++)
					;
				if (k == nnames && nnames < 16) {
					snprintf(names[k], sizeof(names[k]), "%s", r.name);
					name_counts[k] = 0;
					nnames++;
				}
				if (k < nnames)
					name_counts[k]++;
			}
		} else {
			failed++;
			if (failed == 1)
				snprintf(first_error, sizeof(first_error), "%s", r.error);
			fprintf(stderr, "probe: request %ld at %.0f ms failed: %s\n", sent,
				now_ms() - start, r.error);
		}
		if (c.dead)
			break; /* the one connection is gone: nothing more to hold */
	}
	conn_close(&c);
	if (o.json) {
		printf("{\"sent\":%ld,\"ok\":%ld,\"failed\":%ld,\"first_error\":", sent, ok,
		       failed);
		if (failed)
			json_str(stdout, first_error);
		else
			printf("null");
		printf(",\"names\":{");
		for (int k = 0; k < nnames; k++) {
			if (k)
				printf(",");
			json_str(stdout, names[k]);
			printf(":%ld", name_counts[k]);
		}
		printf("}}\n");
	} else {
		printf("sent %ld ok %ld failed %ld first_error %s\n", sent, ok, failed,
		       first_error);
	}
	if (o.expect_fail)
		return failed > 0 ? 0 : 1;
	return failed == 0 ? 0 : 1;
}

/* ------------------------------------------------------------------ main */

static void usage(void)
{
	fprintf(stderr,
		"usage: probe [options] tcp|udp|sctp|http ADDR PORT\n"
		"  --count N          N requests, a new connection/socket each (default 1)\n"
		"  --interval MS      time between request starts (hold mode: default 100)\n"
		"  --timeout MS       time limit of each request (default 2000)\n"
		"  --bind ADDR[:PORT] source address ([v6]:port for IPv6 with a port)\n"
		"  --connected        UDP: connect() the socket (ICMP errors seen as refused)\n"
		"  --same-socket      reuse one connection/socket for all requests\n"
		"  --expect-fail      exit 0 only if every request failed\n"
		"  --hold SECONDS     one connection/socket, a request every interval;\n"
		"                     prints 'sent N ok N failed N first_error KIND'\n"
		"  --json             one JSON object per line\n"
		"  --path PATH        HTTP request path (default /)\n"
		"  --message TEXT     TCP/UDP/SCTP request text (default hello)\n"
		"  --connect-only     TCP/SCTP/HTTP: a request succeeds once connected\n"
		"                     (prints 'connected'); for servers that are not echod\n"
		"errors: ERROR refused|timeout|reset|unreachable|http-CODE|error:TEXT\n");
	exit(2);
}

static long parse_long(const char *opt, const char *s, long min)
{
	char *end;
	errno = 0;
	long v = strtol(s, &end, 10);
	if (!*s || *end || errno || v < min) {
		fprintf(stderr, "probe: bad value for %s: '%s'\n", opt, s);
		exit(2);
	}
	return v;
}

int main(int argc, char **argv)
{
	const char *pos[3];
	int npos = 0;
	setvbuf(stdout, NULL, _IOLBF, 0);
	signal(SIGPIPE, SIG_IGN);
	o.message = "hello";

	for (int i = 1; i < argc; i++) {
		char *a = argv[i];
		if (strncmp(a, "--", 2) != 0 || a[2] == 0) {
			if (npos >= 3)
				usage();
			pos[npos++] = a;
			continue;
		}
		char opt[32];
		const char *val = NULL;
		char *eq = strchr(a, '=');
		if (eq && (size_t)(eq - a) < sizeof(opt)) {
			memcpy(opt, a, (size_t)(eq - a));
			opt[eq - a] = 0;
			val = eq + 1;
		} else {
			snprintf(opt, sizeof(opt), "%s", a);
		}
		bool flag = true;
		if (strcmp(opt, "--connected") == 0)
			o.connected = true;
		else if (strcmp(opt, "--same-socket") == 0)
			o.same_socket = true;
		else if (strcmp(opt, "--expect-fail") == 0)
			o.expect_fail = true;
		else if (strcmp(opt, "--json") == 0)
			o.json = true;
		else if (strcmp(opt, "--connect-only") == 0)
			o.connect_only = true;
		else if (strcmp(opt, "--help") == 0)
			usage();
		else
			flag = false;
		if (flag)
			continue;
		if (!val) {
			if (i + 1 >= argc)
				usage();
			val = argv[++i];
		}
		if (strcmp(opt, "--count") == 0)
			o.count = parse_long(opt, val, 1);
		else if (strcmp(opt, "--interval") == 0)
			o.interval_ms = parse_long(opt, val, 0);
		else if (strcmp(opt, "--timeout") == 0)
			o.timeout_ms = parse_long(opt, val, 1);
		else if (strcmp(opt, "--hold") == 0) {
			char *end;
			o.hold_s = strtod(val, &end);
			if (*end || !(o.hold_s > 0)) {
				fprintf(stderr, "probe: bad value for --hold: '%s'\n", val);
				exit(2);
			}
		} else if (strcmp(opt, "--bind") == 0) {
			if (!parse_bind(val, &o.bind)) {
				fprintf(stderr, "probe: bad --bind address '%s'\n", val);
				exit(2);
			}
			o.have_bind = true;
		} else if (strcmp(opt, "--path") == 0)
			o.path = val;
		else if (strcmp(opt, "--message") == 0)
			o.message = val;
		else {
			fprintf(stderr, "probe: unknown option %s\n", opt);
			usage();
		}
	}
	if (npos != 3)
		usage();
	if (strcmp(pos[0], "tcp") == 0)
		o.proto = P_TCP;
	else if (strcmp(pos[0], "udp") == 0)
		o.proto = P_UDP;
	else if (strcmp(pos[0], "sctp") == 0)
		o.proto = P_SCTP;
	else if (strcmp(pos[0], "http") == 0)
		o.proto = P_HTTP;
	else
		usage();
	o.port = (unsigned)parse_long("PORT", pos[2], 1);
	if (o.port > 65535)
		usage();
	if (!parse_endpoint(pos[1], pos[2], &o.target)) {
		fprintf(stderr, "probe: bad address '%s' (numeric IPv4 or IPv6 expected)\n",
			pos[1]);
		exit(2);
	}
	snprintf(o.addr_text, sizeof(o.addr_text), "%s", pos[1]);
	if (o.have_bind && o.bind.family != o.target.family) {
		fprintf(stderr, "probe: --bind and ADDR are of different families\n");
		exit(2);
	}
	if (o.connect_only && o.proto == P_UDP) {
		fprintf(stderr, "probe: --connect-only is for connection protocols\n");
		exit(2);
	}
	if (strchr(o.message, '\n') || strlen(o.message) > 400) {
		fprintf(stderr, "probe: --message must be one short line\n");
		exit(2);
	}
	return o.hold_s > 0 ? run_hold() : run_count();
}
