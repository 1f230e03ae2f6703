/* A netfilter netlink transaction: messages accumulated in one buffer
 * between a batch-begin and a batch-end, sent with one sendmsg() so that the
 * kernel applies all of it or none of it, and packets see either the old
 * ruleset or the new one.
 *
 * Tables, chains, sets and rules are built with libnftnl into the buffer;
 * set elements, which a sync sends by the hundred thousand, are written
 * directly as netlink attributes, packed many to a message. */
#ifndef KPROXY_NFT_BATCH_H
#define KPROXY_NFT_BATCH_H

#include <netinet/in.h> /* before any linux/ header, which would clash with it */
#include <linux/netfilter/nf_tables.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct nlmsghdr;
struct nft_batch;
struct nft_conn;

/* Opens a netfilter netlink socket.  Returns 0 or -errno. */
int nft_conn_open(struct nft_conn **ret);
void nft_conn_close(struct nft_conn *conn);

/* Returns a new empty batch (already holding the batch-begin message), or NULL. */
struct nft_batch *nft_batch_new(struct nft_conn *conn);
void nft_batch_free(struct nft_batch *b);
/* Number of messages between begin and end. */
size_t nft_batch_count(const struct nft_batch *b);
size_t nft_batch_bytes(const struct nft_batch *b);

/* Starts a message of NFT_MSG_* type; what describes it in error messages.
 * The header stays valid (room for one message is reserved) until the next
 * call on the batch.  Returns NULL on allocation failure. */
struct nlmsghdr *nft_batch_msg(struct nft_batch *b, uint16_t type, uint16_t family, uint16_t flags,
			       const char *what);
/* Accounts the message started last, after its payload has been written. */
void nft_batch_msg_done(struct nft_batch *b, struct nlmsghdr *nlh);

/* Element messages: nft_batch_elems() opens a run of NEWSETELEM or
 * DELSETELEM messages for one set; nft_batch_elem() adds one element
 * (data NULL for a plain set; chain non-NULL for a verdict "goto chain";
 * verdict is an NF_* or NFT_* verdict code when chain is NULL and
 * is_verdict); nft_batch_elems_done() closes the run.  Messages are split
 * as the attribute size limits require.  Return 0 or -ENOMEM. */
int nft_batch_elems(struct nft_batch *b, uint16_t type, uint16_t family, const char *table,
		    const char *set);
int nft_batch_elem(struct nft_batch *b, const void *key, size_t key_len, const void *data,
		   size_t data_len);
int nft_batch_elem_verdict(struct nft_batch *b, const void *key, size_t key_len, int verdict,
			   const char *chain);
/* An element with no data and NFTA_SET_ELEM_FLAGS (e.g. the end of an
 * interval, NFT_SET_ELEM_INTERVAL_END). */
int nft_batch_elem_flags(struct nft_batch *b, const void *key, size_t key_len, uint32_t flags);
/* An element of a set of ranges over a concatenation: start and end keys
 * (both inclusive). */
int nft_batch_elem_range(struct nft_batch *b, const void *key, size_t key_len, const void *key_end,
			 size_t key_end_len);
void nft_batch_elems_done(struct nft_batch *b);
/* Appends the removal of every element of a set. */
int nft_batch_flush_set(struct nft_batch *b, uint16_t family, const char *table, const char *set);

/* Sends the batch and collects the kernel's answers.  Returns 0 when the
 * kernel applied it, else -errno of the first failing message, with that
 * message's description and the kernel's explanation (if any) in err. */
int nft_batch_commit(struct nft_batch *b, char *err, size_t errlen);

/* Sends one request that is not part of a transaction (a GET dump) and feeds
 * every reply message to cb.  Returns 0 or -errno. */
int nft_conn_dump(struct nft_conn *conn, struct nlmsghdr *req,
		  int (*cb)(const struct nlmsghdr *nlh, void *data), void *data);

#endif
