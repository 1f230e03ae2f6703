/*
 * echod: the server that every pod of the kproxy test sandbox runs.  It
 * listens on the given TCP, UDP and SCTP ports on every IPv4 and IPv6
 * address and answers each request with one line "NAME CLIENT_IP
 * CLIENT_PORT", so a test learns which backend it reached and which source
 * address that backend saw.  TCP and SCTP connections are line oriented
 * (one answer per received line) unless the first bytes are an HTTP request,
 * in which case the connection speaks HTTP/1.1 with keep-alive and the answer
 * line is the response body.  UDP datagrams are answered from the address
 * they were sent to.  One thread, one epoll loop, non-blocking sockets; a
 * misbehaving client never stops the server, SIGTERM ends it with status 0.
 *
 * Usage: echod --name NAME [--tcp PORT]... [--udp PORT]... [--sctp PORT]...
 *              [--ready-file FILE] [--verbose]
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#ifndef IPPROTO_SCTP
#define IPPROTO_SCTP 132
#endif

#define MAX_PORTS 64
#define IN_MAX	  (64 * 1024)	/* longest request line / HTTP head kept */
#define IN_FIRST  2048		/* first input buffer; grows up to IN_MAX */
#define OUT_HIGH  (1024 * 1024) /* stop reading while this much is unsent */
#define UDP_BUF	  65536

enum kind { K_SIGNAL, K_STREAM_LISTEN, K_UDP, K_CONN };
enum mode { M_UNKNOWN, M_LINES, M_HTTP };

struct item {
	enum kind kind;
	int fd;
};

struct conn {
	struct item it; /* must stay first: epoll data points here */
	enum mode mode;
	char peer[INET6_ADDRSTRLEN];
	unsigned peer_port;
	char *in;
	size_t in_len, in_cap;
	char *out;
	size_t out_len, out_off, out_cap;
	bool peer_closed; /* EOF read: close once output drained */
	bool closing;	  /* HTTP "Connection: close" answered */
	bool reading;	  /* EPOLLIN currently requested */
	bool writing;	  /* EPOLLOUT currently requested */
};

static const char *g_name;
static bool g_verbose;
static int g_epfd;
static int g_reserve_fd = -1;
static long g_conns;

static void logmsg(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	fprintf(stderr, "echod[%s]: ", g_name ? g_name : "?");
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
	va_end(ap);
}

static void *xmalloc(size_t n)
{
	void *p = malloc(n);
	if (!p) {
		logmsg("out of memory");
		exit(1);
	}
	return p;
}

/* Text form of a socket address; IPv4-mapped IPv6 is shown as IPv4. */
static void addr_text(const struct sockaddr *sa, char *buf, size_t len, unsigned *port)
{
	buf[0] = 0;
	*port = 0;
	if (sa->sa_family == AF_INET) {
		const struct sockaddr_in *s4 = (const void *)sa;
		inet_ntop(AF_INET, &s4->sin_addr, buf, len);
		*port = ntohs(s4->sin_port);
	} else if (sa->sa_family == AF_INET6) {
		const struct sockaddr_in6 *s6 = (const void *)sa;
		if (IN6_IS_ADDR_V4MAPPED(&s6->sin6_addr))
			inet_ntop(AF_INET, &s6->sin6_addr.s6_addr[12], buf, len);
		else
			inet_ntop(AF_INET6, &s6->sin6_addr, buf, len);
		*port = ntohs(s6->sin6_port);
	}
}

static int answer_line(char *buf, size_t len, const char *ip, unsigned port)
{
	return snprintf(buf, len, "%s %s %u\n", g_name, ip, port);
}

static void ep_add(int fd, uint32_t events, void *ptr)
{
	struct epoll_event ev = {.events = events, .data.ptr = ptr};
	if (epoll_ctl(g_epfd, EPOLL_CTL_ADD, fd, &ev) < 0) {
		logmsg("epoll_ctl add: %s", strerror(errno));
		exit(1);
	}
}

/* ---------------------------------------------------------------- sockets */

/*
 * Opens one listening (stream) or bound (UDP) socket of one family.
 * Returns the fd, -1 when the family or protocol is unavailable here
 * (a warning), and exits on any other failure (a configuration error).
 */
static int open_socket(int family, int type, int proto, unsigned port, const char *what)
{
	int fd = socket(family, type | SOCK_NONBLOCK | SOCK_CLOEXEC, proto);
	if (fd < 0) {
		if (errno == EAFNOSUPPORT || errno == EPROTONOSUPPORT || errno == ESOCKTNOSUPPORT ||
		    errno == EPFNOSUPPORT) {
			logmsg("warning: %s over %s not available: %s", what,
			       family == AF_INET ? "IPv4" : "IPv6", strerror(errno));
			return -1;
		}
		logmsg("socket %s: %s", what, strerror(errno));
		exit(1);
	}
	int one = 1;
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	struct sockaddr_storage ss;
	socklen_t sl;
	memset(&ss, 0, sizeof(ss));
	if (family == AF_INET) {
		struct sockaddr_in *s4 = (void *)&ss;
		s4->sin_family = AF_INET;
		s4->sin_addr.s_addr = htonl(INADDR_ANY);
		s4->sin_port = htons(port);
		sl = sizeof(*s4);
		if (type == SOCK_DGRAM)
			setsockopt(fd, IPPROTO_IP, IP_PKTINFO, &one, sizeof(one));
	} else {
		struct sockaddr_in6 *s6 = (void *)&ss;
		s6->sin6_family = AF_INET6;
		s6->sin6_addr = in6addr_any;
		s6->sin6_port = htons(port);
		sl = sizeof(*s6);
		/* one socket per family: the IPv4 socket takes IPv4 clients */
		setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one));
		if (type == SOCK_DGRAM)
			setsockopt(fd, IPPROTO_IPV6, IPV6_RECVPKTINFO, &one, sizeof(one));
	}
	if (bind(fd, (struct sockaddr *)&ss, sl) < 0) {
		if (family == AF_INET6 && errno == EADDRNOTAVAIL) {
			logmsg("warning: %s over IPv6 not available: %s", what, strerror(errno));
			close(fd);
			return -1;
		}
		logmsg("bind %s %s port %u: %s", what, family == AF_INET ? "IPv4" : "IPv6", port,
		       strerror(errno));
		exit(1);
	}
	if (type == SOCK_STREAM && listen(fd, SOMAXCONN) < 0) {
		logmsg("listen %s port %u: %s", what, port, strerror(errno));
		exit(1);
	}
	return fd;
}

static int open_port(int type, int proto, unsigned port, const char *what)
{
	int n = 0;
	for (int i = 0; i < 2; i++) {
		int family = i == 0 ? AF_INET : AF_INET6;
		int fd = open_socket(family, type, proto, port, what);
		if (fd < 0)
			continue;
		struct item *it = xmalloc(sizeof(*it));
		it->kind = type == SOCK_DGRAM ? K_UDP : K_STREAM_LISTEN;
		it->fd = fd;
		ep_add(fd, EPOLLIN, it);
		n++;
	}
	return n;
}

/* ------------------------------------------------------------ connections */

static void conn_update_events(struct conn *c)
{
	bool want_read = !c->peer_closed && !c->closing && c->out_len - c->out_off < OUT_HIGH;
	bool want_write = c->out_len > c->out_off;
	if (want_read == c->reading && want_write == c->writing)
		return;
	struct epoll_event ev = {.events = (want_read ? EPOLLIN : 0) | (want_write ? EPOLLOUT : 0),
				 .data.ptr = c};
	epoll_ctl(g_epfd, EPOLL_CTL_MOD, c->it.fd, &ev);
	c->reading = want_read;
	c->writing = want_write;
}

static void conn_close(struct conn *c)
{
	epoll_ctl(g_epfd, EPOLL_CTL_DEL, c->it.fd, NULL);
	close(c->it.fd);
	free(c->in);
	free(c->out);
	free(c);
	g_conns--;
}

static void conn_queue(struct conn *c, const char *data, size_t len)
{
	if (c->out_off == c->out_len)
		c->out_off = c->out_len = 0;
	if (c->out_len + len > c->out_cap) {
		/* compact first, grow if still short */
		if (c->out_off > 0) {
			memmove(c->out, c->out + c->out_off, c->out_len - c->out_off);
			c->out_len -= c->out_off;
			c->out_off = 0;
		}
		if (c->out_len + len > c->out_cap) {
			size_t cap = c->out_cap ? c->out_cap : 4096;
			while (cap < c->out_len + len)
				cap *= 2;
			char *n = realloc(c->out, cap);
			if (!n) {
				logmsg("out of memory");
				exit(1);
			}
			c->out = n;
			c->out_cap = cap;
		}
	}
	memcpy(c->out + c->out_len, data, len);
	c->out_len += len;
}

/* Returns false when the connection was closed. */
static bool conn_flush(struct conn *c)
{
	while (c->out_off < c->out_len) {
		ssize_t n = send(c->it.fd, c->out + c->out_off, c->out_len - c->out_off,
				 MSG_NOSIGNAL | MSG_DONTWAIT);
		if (n > 0) {
			c->out_off += (size_t)n;
			continue;
		}
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			break;
		conn_close(c);
		return false;
	}
	if (c->out_off == c->out_len && (c->peer_closed || c->closing)) {
		shutdown(c->it.fd, SHUT_WR);
		conn_close(c);
		return false;
	}
	conn_update_events(c);
	return true;
}

static void answer_plain(struct conn *c)
{
	char line[512];
	int n = answer_line(line, sizeof(line), c->peer, c->peer_port);
	conn_queue(c, line, (size_t)n);
}

static bool starts_with(const char *buf, size_t len, const char *word)
{
	size_t wl = strlen(word);
	return len >= wl && memcmp(buf, word, wl) == 0;
}

/* Could the bytes received so far still become one of the HTTP methods? */
static bool http_prefix_pending(const char *buf, size_t len)
{
	static const char *methods[] = {"GET ", "HEAD ", "POST "};
	for (size_t i = 0; i < 3; i++) {
		size_t wl = strlen(methods[i]);
		if (len < wl && memcmp(buf, methods[i], len) == 0)
			return true;
	}
	return false;
}

/* Case-insensitive search for a header; returns its value (trimmed) or NULL. */
static const char *header_value(const char *head, size_t len, const char *name, size_t *vlen)
{
	size_t nl = strlen(name);
	const char *p = memchr(head, '\n', len); /* skip the request line */
	const char *end = head + len;
	while (p && p + 1 < end) {
		const char *line = p + 1;
		const char *eol = memchr(line, '\n', (size_t)(end - line));
		if (!eol)
			eol = end;
		if ((size_t)(eol - line) > nl && strncasecmp(line, name, nl) == 0 &&
		    line[nl] == ':') {
			const char *v = line + nl + 1;
			while (v < eol && (*v == ' ' || *v == '\t'))
				v++;
			const char *ve = eol;
			while (ve > v && (ve[-1] == '\r' || ve[-1] == ' ' || ve[-1] == '\t'))
				ve--;
			*vlen = (size_t)(ve - v);
			return v;
		}
		p = eol < end ? eol : NULL;
	}
	return NULL;
}

static bool token_in(const char *v, size_t vlen, const char *tok)
{
	size_t tl = strlen(tok);
	for (size_t i = 0; i + tl <= vlen; i++)
		if (strncasecmp(v + i, tok, tl) == 0)
			return true;
	return false;
}

/*
 * Handles as many complete HTTP requests as the input holds.  Returns the
 * number of bytes consumed.
 */
static size_t process_http(struct conn *c)
{
	size_t used = 0;
	while (!c->closing) {
		const char *buf = c->in + used;
		size_t len = c->in_len - used;
		/* end of the head: blank line, CRLF or bare LF */
		size_t head_len = 0;
		for (size_t i = 0; i + 1 < len; i++) {
			if (buf[i] == '\n' && buf[i + 1] == '\n') {
				head_len = i + 2;
				break;
			}
			if (buf[i] == '\n' && buf[i + 1] == '\r' && i + 2 < len &&
			    buf[i + 2] == '\n') {
				head_len = i + 3;
				break;
			}
		}
		if (!head_len)
			break;
		size_t vlen = 0;
		const char *v = header_value(buf, head_len, "Content-Length", &vlen);
		size_t body = 0;
		if (v) {
			char tmp[32];
			size_t k = vlen < sizeof(tmp) - 1 ? vlen : sizeof(tmp) - 1;
			memcpy(tmp, v, k);
			tmp[k] = 0;
			body = (size_t)strtoull(tmp, NULL, 10);
		}
		if (body > IN_MAX) {
			/* not worth buffering: answer and close */
			c->closing = true;
		} else if (len < head_len + body) {
			break;
		}
		bool head_only = starts_with(buf, len, "HEAD ");
		const char *eol = memchr(buf, '\n', head_len);
		bool http10 = eol && (size_t)(eol - buf) >= 8 &&
			      memcmp(eol - ((eol[-1] == '\r') ? 9 : 8), "HTTP/1.0", 8) == 0;
		bool keep = !http10;
		v = header_value(buf, head_len, "Connection", &vlen);
		if (v && token_in(v, vlen, "close"))
			keep = false;
		if (v && token_in(v, vlen, "keep-alive"))
			keep = true;
		if (!keep)
			c->closing = true;

		char line[512];
		int bl = answer_line(line, sizeof(line), c->peer, c->peer_port);
		char hdr[512];
		int hl = snprintf(hdr, sizeof(hdr),
				  "HTTP/1.1 200 OK\r\n"
				  "Content-Type: text/plain\r\n"
				  "Content-Length: %d\r\n"
				  "Connection: %s\r\n"
				  "\r\n",
				  bl, keep ? "keep-alive" : "close");
		conn_queue(c, hdr, (size_t)hl);
		if (!head_only)
			conn_queue(c, line, (size_t)bl);
		if (c->closing)
			return c->in_len;
		used += head_len + body;
	}
	return used;
}

/* Line mode: one answer per '\n'-terminated line.  Returns bytes consumed. */
static size_t process_lines(struct conn *c)
{
	size_t used = 0;
	for (;;) {
		const char *nl = memchr(c->in + used, '\n', c->in_len - used);
		if (!nl)
			break;
		answer_plain(c);
		used = (size_t)(nl - c->in) + 1;
	}
	if (c->in_len - used >= IN_MAX) {
		/* an endless line: answer it once and drop what was kept */
		answer_plain(c);
		used = c->in_len;
	}
	return used;
}

static void process_input(struct conn *c)
{
	if (c->mode == M_UNKNOWN) {
		if (starts_with(c->in, c->in_len, "GET ") ||
		    starts_with(c->in, c->in_len, "HEAD ") ||
		    starts_with(c->in, c->in_len, "POST "))
			c->mode = M_HTTP;
		else if (http_prefix_pending(c->in, c->in_len) && !c->peer_closed)
			return;
		else
			c->mode = M_LINES;
	}
	size_t used = c->mode == M_HTTP ? process_http(c) : process_lines(c);
	if (c->mode == M_HTTP && !c->closing && c->in_len - used >= IN_MAX) {
		/* a head that never ends */
		c->closing = true;
		used = c->in_len;
	}
	if (used) {
		memmove(c->in, c->in + used, c->in_len - used);
		c->in_len -= used;
	}
	if (c->peer_closed && c->in_len > 0 && c->mode == M_LINES) {
		/* the last line had no newline before the client half-closed */
		answer_plain(c);
		c->in_len = 0;
	}
}

static void conn_event(struct conn *c, uint32_t events)
{
	if (events & (EPOLLIN | EPOLLERR | EPOLLHUP)) {
		for (int rounds = 0; rounds < 16 && !c->peer_closed && !c->closing; rounds++) {
			if (c->in_len == c->in_cap && c->in_cap < IN_MAX) {
				char *n = realloc(c->in, c->in_cap * 2);
				if (!n) {
					conn_close(c);
					return;
				}
				c->in = n;
				c->in_cap *= 2;
			}
			size_t room = c->in_cap - c->in_len;
			if (room == 0)
				break;
			ssize_t n = recv(c->it.fd, c->in + c->in_len, room, MSG_DONTWAIT);
			if (n > 0) {
				c->in_len += (size_t)n;
				process_input(c);
				if (c->out_len - c->out_off >= OUT_HIGH)
					break;
				continue;
			}
			if (n == 0) {
				c->peer_closed = true;
				process_input(c);
				break;
			}
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN || errno == EWOULDBLOCK)
				break;
			/* reset or other error: nothing more can be sent */
			conn_close(c);
			return;
		}
	}
	conn_flush(c);
}

static void accept_all(struct item *l)
{
	for (;;) {
		struct sockaddr_storage ss;
		socklen_t sl = sizeof(ss);
		int fd = accept4(l->fd, (struct sockaddr *)&ss, &sl, SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (fd < 0) {
			if (errno == EINTR || errno == ECONNABORTED || errno == EPROTO)
				continue;
			if ((errno == EMFILE || errno == ENFILE) && g_reserve_fd >= 0) {
				/* out of descriptors: shed this client instead of spinning */
				close(g_reserve_fd);
				fd = accept(l->fd, NULL, NULL);
				if (fd >= 0)
					close(fd);
				g_reserve_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
				logmsg("warning: out of file descriptors, dropped a connection");
				continue;
			}
			return; /* EAGAIN or a transient error */
		}
		struct conn *c = calloc(1, sizeof(*c));
		char *in = malloc(IN_FIRST);
		if (!c || !in) {
			free(c);
			free(in);
			close(fd);
			continue;
		}
		c->it.kind = K_CONN;
		c->it.fd = fd;
		c->in = in;
		c->in_cap = IN_FIRST;
		addr_text((struct sockaddr *)&ss, c->peer, sizeof(c->peer), &c->peer_port);
		int one = 1;
		setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
		c->reading = true;
		ep_add(fd, EPOLLIN, c);
		g_conns++;
		if (g_verbose)
			logmsg("connection from %s port %u", c->peer, c->peer_port);
	}
}

/* ------------------------------------------------------------------- UDP */

static void udp_event(struct item *it)
{
	static char buf[UDP_BUF];
	for (int rounds = 0; rounds < 64; rounds++) {
		struct sockaddr_storage peer;
		char cbuf[CMSG_SPACE(sizeof(struct in6_pktinfo)) +
			  CMSG_SPACE(sizeof(struct in_pktinfo))];
		struct iovec iov = {.iov_base = buf, .iov_len = sizeof(buf)};
		struct msghdr mh = {
			.msg_name = &peer,
			.msg_namelen = sizeof(peer),
			.msg_iov = &iov,
			.msg_iovlen = 1,
			.msg_control = cbuf,
			.msg_controllen = sizeof(cbuf),
		};
		ssize_t n = recvmsg(it->fd, &mh, MSG_DONTWAIT);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return; /* EAGAIN, or an ICMP error queued by a past reply */
		}
		char ip[INET6_ADDRSTRLEN];
		unsigned port;
		addr_text((struct sockaddr *)&peer, ip, sizeof(ip), &port);
		char line[512];
		int ll = answer_line(line, sizeof(line), ip, port);
		if (g_verbose)
			logmsg("datagram from %s port %u", ip, port);

		/* reply from the address the datagram was sent to */
		char obuf[CMSG_SPACE(sizeof(struct in6_pktinfo))];
		memset(obuf, 0, sizeof(obuf));
		struct iovec oiov = {.iov_base = line, .iov_len = (size_t)ll};
		struct msghdr om = {
			.msg_name = &peer,
			.msg_namelen = mh.msg_namelen,
			.msg_iov = &oiov,
			.msg_iovlen = 1,
		};
		for (struct cmsghdr *cm = CMSG_FIRSTHDR(&mh); cm; cm = CMSG_NXTHDR(&mh, cm)) {
			if (cm->cmsg_level == IPPROTO_IP && cm->cmsg_type == IP_PKTINFO) {
				struct in_pktinfo in;
				memcpy(&in, CMSG_DATA(cm), sizeof(in));
				struct in_pktinfo outp = {0};
				outp.ipi_spec_dst = in.ipi_addr;
				om.msg_control = obuf;
				om.msg_controllen = CMSG_SPACE(sizeof(outp));
				struct cmsghdr *oc = CMSG_FIRSTHDR(&om);
				oc->cmsg_level = IPPROTO_IP;
				oc->cmsg_type = IP_PKTINFO;
				oc->cmsg_len = CMSG_LEN(sizeof(outp));
				memcpy(CMSG_DATA(oc), &outp, sizeof(outp));
			} else if (cm->cmsg_level == IPPROTO_IPV6 &&
				   cm->cmsg_type == IPV6_PKTINFO) {
				struct in6_pktinfo in6;
				memcpy(&in6, CMSG_DATA(cm), sizeof(in6));
				struct in6_pktinfo outp;
				memset(&outp, 0, sizeof(outp));
				outp.ipi6_addr = in6.ipi6_addr;
				/* link-local peers need the interface to be named */
				const struct sockaddr_in6 *p6 = (const void *)&peer;
				if (IN6_IS_ADDR_LINKLOCAL(&in6.ipi6_addr) ||
				    IN6_IS_ADDR_LINKLOCAL(&p6->sin6_addr))
					outp.ipi6_ifindex = in6.ipi6_ifindex;
				om.msg_control = obuf;
				om.msg_controllen = CMSG_SPACE(sizeof(outp));
				struct cmsghdr *oc = CMSG_FIRSTHDR(&om);
				oc->cmsg_level = IPPROTO_IPV6;
				oc->cmsg_type = IPV6_PKTINFO;
				oc->cmsg_len = CMSG_LEN(sizeof(outp));
				memcpy(CMSG_DATA(oc), &outp, sizeof(outp));
			}
		}
		if (sendmsg(it->fd, &om, MSG_DONTWAIT | MSG_NOSIGNAL) < 0 && g_verbose)
			logmsg("reply to %s port %u: %s", ip, port, strerror(errno));
	}
}

/* ------------------------------------------------------------------ main */

static void usage(void)
{
	fprintf(stderr,
		"usage: echod --name NAME [--tcp PORT]... [--udp PORT]... [--sctp PORT]...\n"
		"             [--ready-file FILE] [--verbose]\n");
	exit(2);
}

static unsigned parse_port(const char *s)
{
	char *end;
	long v = strtol(s, &end, 10);
	if (*s == 0 || *end != 0 || v < 1 || v > 65535) {
		fprintf(stderr, "echod: bad port '%s'\n", s);
		exit(2);
	}
	return (unsigned)v;
}

static void write_ready(const char *path)
{
	char tmp[4096];
	snprintf(tmp, sizeof(tmp), "%s.tmp", path);
	FILE *f = fopen(tmp, "w");
	if (!f || fprintf(f, "%d\n", (int)getpid()) < 0 || fclose(f) != 0 ||
	    rename(tmp, path) < 0) {
		logmsg("cannot write ready file %s: %s", path, strerror(errno));
		exit(1);
	}
}

int main(int argc, char **argv)
{
	unsigned tcp[MAX_PORTS], udp[MAX_PORTS], sctp[MAX_PORTS];
	int ntcp = 0, nudp = 0, nsctp = 0;
	const char *ready = NULL;

	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];
		const char *val = NULL;
		char opt[32];
		const char *eq = strchr(a, '=');
		if (strncmp(a, "--", 2) == 0 && eq && (size_t)(eq - a) < sizeof(opt)) {
			memcpy(opt, a, (size_t)(eq - a));
			opt[eq - a] = 0;
			val = eq + 1;
			a = opt;
		}
		if (strcmp(a, "--verbose") == 0 || strcmp(a, "-v") == 0) {
			g_verbose = true;
			continue;
		}
		if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0)
			usage();
		if (!val) {
			if (i + 1 >= argc)
				usage();
			val = argv[++i];
		}
		if (strcmp(a, "--name") == 0)
			g_name = val;
		else if (strcmp(a, "--ready-file") == 0)
			ready = val;
		else if (strcmp(a, "--tcp") == 0 && ntcp < MAX_PORTS)
			tcp[ntcp++] = parse_port(val);
		else if (strcmp(a, "--udp") == 0 && nudp < MAX_PORTS)
			udp[nudp++] = parse_port(val);
		else if (strcmp(a, "--sctp") == 0 && nsctp < MAX_PORTS)
			sctp[nsctp++] = parse_port(val);
		else
			usage();
	}
	if (!g_name || !*g_name || strlen(g_name) > 200)
		usage();

	setvbuf(stderr, NULL, _IOLBF, 0);
	signal(SIGPIPE, SIG_IGN);

	/* thousands of connections need thousands of descriptors */
	struct rlimit rl;
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
	}
	g_reserve_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);

	g_epfd = epoll_create1(EPOLL_CLOEXEC);
	if (g_epfd < 0) {
		logmsg("epoll_create1: %s", strerror(errno));
		return 1;
	}

	sigset_t mask;
	sigemptyset(&mask);
	sigaddset(&mask, SIGTERM);
	sigaddset(&mask, SIGINT);
	sigprocmask(SIG_BLOCK, &mask, NULL);
	struct item sig = {.kind = K_SIGNAL, .fd = signalfd(-1, &mask, SFD_NONBLOCK | SFD_CLOEXEC)};
	if (sig.fd < 0) {
		logmsg("signalfd: %s", strerror(errno));
		return 1;
	}
	ep_add(sig.fd, EPOLLIN, &sig);

	for (int i = 0; i < ntcp; i++)
		if (!open_port(SOCK_STREAM, IPPROTO_TCP, tcp[i], "tcp")) {
			logmsg("tcp port %u: no socket could be opened", tcp[i]);
			return 1;
		}
	for (int i = 0; i < nudp; i++)
		if (!open_port(SOCK_DGRAM, IPPROTO_UDP, udp[i], "udp")) {
			logmsg("udp port %u: no socket could be opened", udp[i]);
			return 1;
		}
	for (int i = 0; i < nsctp; i++)
		open_port(SOCK_STREAM, IPPROTO_SCTP, sctp[i], "sctp");

	if (ready)
		write_ready(ready);
	logmsg("ready (%d tcp, %d udp, %d sctp ports)", ntcp, nudp, nsctp);

	struct epoll_event evs[256];
	for (;;) {
		int n = epoll_wait(g_epfd, evs, 256, -1);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			logmsg("epoll_wait: %s", strerror(errno));
			return 1;
		}
		for (int i = 0; i < n; i++) {
			struct item *it = evs[i].data.ptr;
			switch (it->kind) {
			case K_SIGNAL: {
				struct signalfd_siginfo si;
				if (read(it->fd, &si, sizeof(si)) == (ssize_t)sizeof(si)) {
					if (g_verbose)
						logmsg("signal %u, exiting", si.ssi_signo);
					return 0;
				}
				break;
			}
			case K_STREAM_LISTEN:
				accept_all(it);
				break;
			case K_UDP:
				udp_event(it);
				break;
			case K_CONN:
				conn_event((struct conn *)it, evs[i].events);
				break;
			}
		}
	}
}
