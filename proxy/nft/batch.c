/* Netlink transactions for nf_tables; see batch.h.
 *
 * The kernel processes a batch synchronously inside sendmsg(), so by the time
 * it returns every error is already queued on the socket: the answers are
 * read without blocking.  Only failures are reported (no message asks for an
 * ACK), which keeps the receive side small however large the batch is. */
#include "nft/batch.h"

#include <arpa/inet.h>
#include <errno.h>
#include <libmnl/libmnl.h>
#include <libnftnl/common.h>
#include <linux/netfilter/nfnetlink.h>
#include <linux/netlink.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#ifndef MNL_SOCKET_DUMP_SIZE
#define MNL_SOCKET_DUMP_SIZE 32768
#endif

/* Room kept free for one message: the largest rule or element message. */
#define MSG_RESERVE (128u * 1024)
/* Element messages stop growing here: nested attribute lengths are 16 bits. */
#define ELEMS_MAX_BYTES 60000u

struct nft_conn {
	struct mnl_socket *nl;
	uint32_t portid;
	uint32_t seq;
	int sndbuf, rcvbuf;
};

struct msg_info {
	uint32_t seq;
	char what[56];
};

struct nft_batch {
	struct nft_conn *conn;
	char *buf;
	size_t len, cap;
	uint32_t first_seq;
	struct msg_info *info;
	size_t n_info, cap_info;
	size_t count;
	/* element run in progress */
	bool in_elems;
	uint16_t elem_type, elem_family;
	char elem_table[64], elem_set[64];
	struct nlmsghdr *elem_nlh;
	struct nlattr *elem_list;
	size_t elem_count;
};

int nft_conn_open(struct nft_conn **ret)
{
	struct nft_conn *c = calloc(1, sizeof(*c));
	int one = 1, r;

	if (!c)
		return -ENOMEM;
	c->nl = mnl_socket_open2(NETLINK_NETFILTER, SOCK_CLOEXEC);
	if (!c->nl) {
		r = -errno;
		free(c);
		return r;
	}
	if (mnl_socket_bind(c->nl, 0, MNL_SOCKET_AUTOPID) < 0) {
		r = -errno;
		mnl_socket_close(c->nl);
		free(c);
		return r;
	}
	c->portid = mnl_socket_get_portid(c->nl);
	c->seq = (uint32_t)time(NULL);
	/* Error messages quote only the header of the failing message, and
	 * carry the kernel's explanation when it has one. */
	setsockopt(mnl_socket_get_fd(c->nl), SOL_NETLINK, NETLINK_CAP_ACK, &one, sizeof(one));
	setsockopt(mnl_socket_get_fd(c->nl), SOL_NETLINK, NETLINK_EXT_ACK, &one, sizeof(one));
	*ret = c;
	return 0;
}

void nft_conn_close(struct nft_conn *c)
{
	if (!c)
		return;
	mnl_socket_close(c->nl);
	free(c);
}

static int reserve(struct nft_batch *b, size_t need)
{
	if (b->cap - b->len >= need)
		return 0;
	size_t cap = b->cap ? b->cap : 1u << 20;
	char *nb;

	while (cap - b->len < need)
		cap *= 2;
	nb = realloc(b->buf, cap);
	if (!nb)
		return -ENOMEM;
	/* The buffer is zeroed so that unused padding bytes are defined. */
	memset(nb + b->cap, 0, cap - b->cap);
	b->buf = nb;
	b->cap = cap;
	return 0;
}

struct nft_batch *nft_batch_new(struct nft_conn *conn)
{
	struct nft_batch *b = calloc(1, sizeof(*b));
	struct nlmsghdr *nlh;

	if (!b || reserve(b, MSG_RESERVE) < 0) {
		free(b);
		return NULL;
	}
	b->conn = conn;
	b->first_seq = ++conn->seq;
	nlh = nftnl_batch_begin(b->buf, b->first_seq);
	b->len += nlh->nlmsg_len;
	return b;
}

void nft_batch_free(struct nft_batch *b)
{
	if (!b)
		return;
	free(b->buf);
	free(b->info);
	free(b);
}

size_t nft_batch_count(const struct nft_batch *b)
{
	return b->count;
}

size_t nft_batch_bytes(const struct nft_batch *b)
{
	return b->len;
}

static int note(struct nft_batch *b, uint32_t seq, const char *what)
{
	if (b->n_info == b->cap_info) {
		size_t cap = b->cap_info ? b->cap_info * 2 : 64;
		struct msg_info *ni = realloc(b->info, cap * sizeof(*ni));

		if (!ni)
			return -ENOMEM;
		b->info = ni;
		b->cap_info = cap;
	}
	b->info[b->n_info].seq = seq;
	snprintf(b->info[b->n_info].what, sizeof(b->info[b->n_info].what), "%s", what);
	b->n_info++;
	return 0;
}

struct nlmsghdr *nft_batch_msg(struct nft_batch *b, uint16_t type, uint16_t family, uint16_t flags,
			       const char *what)
{
	uint32_t seq;

	if (b->in_elems)
		nft_batch_elems_done(b);
	if (reserve(b, MSG_RESERVE) < 0)
		return NULL;
	seq = ++b->conn->seq;
	if (note(b, seq, what) < 0)
		return NULL;
	return nftnl_nlmsg_build_hdr(b->buf + b->len, type, family, flags, seq);
}

void nft_batch_msg_done(struct nft_batch *b, struct nlmsghdr *nlh)
{
	b->len += NLMSG_ALIGN(nlh->nlmsg_len);
	b->count++;
}

static int elems_open_msg(struct nft_batch *b)
{
	char what[160];
	uint16_t flags = b->elem_type == NFT_MSG_NEWSETELEM ? NLM_F_CREATE : 0;

	snprintf(what, sizeof(what), "%s elements of set %s",
		 b->elem_type == NFT_MSG_NEWSETELEM ? "adding" : "deleting", b->elem_set);
	b->in_elems = false; /* nft_batch_msg() must not close the run */
	b->elem_nlh = nft_batch_msg(b, b->elem_type, b->elem_family, flags, what);
	if (!b->elem_nlh)
		return -ENOMEM;
	b->in_elems = true;
	mnl_attr_put_strz(b->elem_nlh, NFTA_SET_ELEM_LIST_TABLE, b->elem_table);
	mnl_attr_put_strz(b->elem_nlh, NFTA_SET_ELEM_LIST_SET, b->elem_set);
	b->elem_list = mnl_attr_nest_start(b->elem_nlh, NFTA_SET_ELEM_LIST_ELEMENTS);
	b->elem_count = 0;
	return 0;
}

static void elems_close_msg(struct nft_batch *b)
{
	if (!b->elem_nlh)
		return;
	mnl_attr_nest_end(b->elem_nlh, b->elem_list);
	if (b->elem_count) {
		nft_batch_msg_done(b, b->elem_nlh);
	} else {
		/* Nothing was added: forget the message. */
		b->n_info--;
	}
	b->elem_nlh = NULL;
}

int nft_batch_elems(struct nft_batch *b, uint16_t type, uint16_t family, const char *table,
		    const char *set)
{
	if (b->in_elems)
		nft_batch_elems_done(b);
	b->elem_type = type;
	b->elem_family = family;
	snprintf(b->elem_table, sizeof(b->elem_table), "%s", table);
	snprintf(b->elem_set, sizeof(b->elem_set), "%s", set);
	return elems_open_msg(b);
}

void nft_batch_elems_done(struct nft_batch *b)
{
	if (!b->in_elems)
		return;
	elems_close_msg(b);
	b->in_elems = false;
}

/* Makes room for one more element of about size bytes, starting a new
 * message for the same set when the current one is full. */
static int elem_room(struct nft_batch *b, size_t size)
{
	size_t used =
		(size_t)((char *)mnl_nlmsg_get_payload_tail(b->elem_nlh) - (char *)b->elem_list);

	if (used + size < ELEMS_MAX_BYTES)
		return 0;
	elems_close_msg(b);
	return elems_open_msg(b);
}

static void put_key(struct nlmsghdr *nlh, const void *key, size_t key_len)
{
	struct nlattr *k = mnl_attr_nest_start(nlh, NFTA_SET_ELEM_KEY);

	mnl_attr_put(nlh, NFTA_DATA_VALUE, key_len, key);
	mnl_attr_nest_end(nlh, k);
}

int nft_batch_elem(struct nft_batch *b, const void *key, size_t key_len, const void *data,
		   size_t data_len)
{
	struct nlattr *e, *d;

	if (!b->in_elems || elem_room(b, key_len + data_len + 32) < 0)
		return -ENOMEM;
	e = mnl_attr_nest_start(b->elem_nlh, NFTA_LIST_ELEM);
	put_key(b->elem_nlh, key, key_len);
	if (data && b->elem_type == NFT_MSG_NEWSETELEM) {
		d = mnl_attr_nest_start(b->elem_nlh, NFTA_SET_ELEM_DATA);
		mnl_attr_put(b->elem_nlh, NFTA_DATA_VALUE, data_len, data);
		mnl_attr_nest_end(b->elem_nlh, d);
	}
	mnl_attr_nest_end(b->elem_nlh, e);
	b->elem_count++;
	return 0;
}

int nft_batch_elem_flags(struct nft_batch *b, const void *key, size_t key_len, uint32_t flags)
{
	struct nlattr *e;

	if (!b->in_elems || elem_room(b, key_len + 32) < 0)
		return -ENOMEM;
	e = mnl_attr_nest_start(b->elem_nlh, NFTA_LIST_ELEM);
	put_key(b->elem_nlh, key, key_len);
	mnl_attr_put_u32(b->elem_nlh, NFTA_SET_ELEM_FLAGS, htonl(flags));
	mnl_attr_nest_end(b->elem_nlh, e);
	b->elem_count++;
	return 0;
}

int nft_batch_elem_range(struct nft_batch *b, const void *key, size_t key_len, const void *key_end,
			 size_t key_end_len)
{
	struct nlattr *e, *k;

	if (!b->in_elems || elem_room(b, key_len + key_end_len + 40) < 0)
		return -ENOMEM;
	e = mnl_attr_nest_start(b->elem_nlh, NFTA_LIST_ELEM);
	put_key(b->elem_nlh, key, key_len);
	k = mnl_attr_nest_start(b->elem_nlh, NFTA_SET_ELEM_KEY_END);
	mnl_attr_put(b->elem_nlh, NFTA_DATA_VALUE, key_end_len, key_end);
	mnl_attr_nest_end(b->elem_nlh, k);
	mnl_attr_nest_end(b->elem_nlh, e);
	b->elem_count++;
	return 0;
}

int nft_batch_flush_set(struct nft_batch *b, uint16_t family, const char *table, const char *set)
{
	char what[96];
	struct nlmsghdr *nlh;

	snprintf(what, sizeof(what), "flushing set %s", set);
	/* A deletion without an element list removes every element. */
	nlh = nft_batch_msg(b, NFT_MSG_DELSETELEM, family, 0, what);
	if (!nlh)
		return -ENOMEM;
	mnl_attr_put_strz(nlh, NFTA_SET_ELEM_LIST_TABLE, table);
	mnl_attr_put_strz(nlh, NFTA_SET_ELEM_LIST_SET, set);
	nft_batch_msg_done(b, nlh);
	return 0;
}

int nft_batch_elem_verdict(struct nft_batch *b, const void *key, size_t key_len, int verdict,
			   const char *chain)
{
	struct nlattr *e, *d, *v;

	if (!b->in_elems || elem_room(b, key_len + 96) < 0)
		return -ENOMEM;
	e = mnl_attr_nest_start(b->elem_nlh, NFTA_LIST_ELEM);
	put_key(b->elem_nlh, key, key_len);
	if (b->elem_type == NFT_MSG_NEWSETELEM) {
		d = mnl_attr_nest_start(b->elem_nlh, NFTA_SET_ELEM_DATA);
		v = mnl_attr_nest_start(b->elem_nlh, NFTA_DATA_VERDICT);
		mnl_attr_put_u32(b->elem_nlh, NFTA_VERDICT_CODE, htonl((uint32_t)verdict));
		if (chain)
			mnl_attr_put_strz(b->elem_nlh, NFTA_VERDICT_CHAIN, chain);
		mnl_attr_nest_end(b->elem_nlh, v);
		mnl_attr_nest_end(b->elem_nlh, d);
	}
	mnl_attr_nest_end(b->elem_nlh, e);
	b->elem_count++;
	return 0;
}

static const char *what_of(const struct nft_batch *b, uint32_t seq)
{
	for (size_t i = 0; i < b->n_info; i++) {
		if (b->info[i].seq == seq)
			return b->info[i].what;
	}
	return seq == b->first_seq ? "the transaction" : "an unknown message";
}

static void ensure_bufsize(struct nft_conn *c, size_t len)
{
	int fd = mnl_socket_get_fd(c->nl);
	int want = (int)(len + 65536);

	/* A batch travels as one datagram, so the send buffer must hold it
	 * whole; FORCE lifts the sysctl cap for a privileged agent. */
	if (want > c->sndbuf) {
		if (setsockopt(fd, SOL_SOCKET, SO_SNDBUFFORCE, &want, sizeof(want)) < 0)
			setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &want, sizeof(want));
		c->sndbuf = want;
	}
	if (!c->rcvbuf) {
		int rcv = 4 << 20;

		if (setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &rcv, sizeof(rcv)) < 0)
			setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcv, sizeof(rcv));
		c->rcvbuf = rcv;
	}
}

/* Reads the error text the kernel attached to an NLMSG_ERROR (extended
 * ACK), if any. */
static const char *ext_ack_msg(const struct nlmsghdr *nlh)
{
	const struct nlmsgerr *e = mnl_nlmsg_get_payload(nlh);
	size_t off = sizeof(*e);
	const struct nlattr *a;

	if (!(nlh->nlmsg_flags & NLM_F_ACK_TLVS))
		return NULL;
	if (!(nlh->nlmsg_flags & NLM_F_CAPPED))
		off += e->msg.nlmsg_len - sizeof(struct nlmsghdr);
	mnl_attr_for_each(a, nlh, off)
	{
		if (mnl_attr_get_type(a) == NLMSGERR_ATTR_MSG)
			return mnl_attr_get_str(a);
	}
	return NULL;
}

int nft_batch_commit(struct nft_batch *b, char *err, size_t errlen)
{
	struct nft_conn *c = b->conn;
	char rbuf[MNL_SOCKET_BUFFER_SIZE];
	struct nlmsghdr *nlh;
	int first_err = 0;
	ssize_t n;

	if (errlen)
		err[0] = '\0';
	if (b->in_elems)
		nft_batch_elems_done(b);
	if (reserve(b, 64) < 0)
		return -ENOMEM;
	nlh = nftnl_batch_end(b->buf + b->len, ++c->seq);
	b->len += nlh->nlmsg_len;
	ensure_bufsize(c, b->len);
	n = mnl_socket_sendto(c->nl, b->buf, b->len);
	if (n < 0) {
		int r = -errno;

		snprintf(err, errlen, "sending %zu bytes: %s", b->len, strerror(errno));
		return r;
	}
	for (;;) {
		n = recv(mnl_socket_get_fd(c->nl), rbuf, sizeof(rbuf), MSG_DONTWAIT);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN || errno == EWOULDBLOCK)
				break;
			/* ENOBUFS: answers were lost, so the outcome is unknown. */
			if (!first_err) {
				first_err = -errno;
				snprintf(err, errlen, "reading the kernel's answer: %s",
					 strerror(errno));
			}
			break;
		}
		for (nlh = (struct nlmsghdr *)rbuf; mnl_nlmsg_ok(nlh, (int)n);
		     nlh = mnl_nlmsg_next(nlh, (int *)&n)) {
			const struct nlmsgerr *e;
			const char *msg;

			if (nlh->nlmsg_type != NLMSG_ERROR)
				continue;
			e = mnl_nlmsg_get_payload(nlh);
			if (e->error == 0 || first_err)
				continue;
			first_err = e->error;
			msg = ext_ack_msg(nlh);
			snprintf(err, errlen, "%s: %s%s%s", what_of(b, nlh->nlmsg_seq),
				 strerror(-e->error), msg ? ": " : "", msg ? msg : "");
		}
	}
	return first_err;
}

int nft_conn_dump(struct nft_conn *c, struct nlmsghdr *req,
		  int (*cb)(const struct nlmsghdr *nlh, void *data), void *data)
{
	char *rbuf = malloc(MNL_SOCKET_DUMP_SIZE);
	uint32_t seq = ++c->seq;
	int r;

	if (!rbuf)
		return -ENOMEM;
	req->nlmsg_seq = seq;
	if (mnl_socket_sendto(c->nl, req, req->nlmsg_len) < 0) {
		r = -errno;
		free(rbuf);
		return r;
	}
	for (;;) {
		ssize_t n = mnl_socket_recvfrom(c->nl, rbuf, MNL_SOCKET_DUMP_SIZE);

		if (n < 0) {
			r = -errno;
			break;
		}
		r = mnl_cb_run(rbuf, (size_t)n, seq, c->portid, (mnl_cb_t)cb, data);
		if (r <= 0) {
			r = r < 0 ? -errno : 0;
			break;
		}
	}
	free(rbuf);
	return r;
}
