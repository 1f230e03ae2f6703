/* HTTP requests to the API server through libcurl's multi interface, driven
 * by the agent's event loop: curl tells the loop which sockets to watch and
 * when to wake it, and never blocks.  Authentication (bearer token, token
 * file, client certificate) and TLS verification come from a kube_config. */
#ifndef KPROXY_KUBE_CLIENT_H
#define KPROXY_KUBE_CLIENT_H

#include <stdbool.h>
#include <stddef.h>

#include "kube/config.h"
#include "util/loop.h"

struct kube_client;
struct kube_request;

struct kube_request_ops {
	/* Body bytes as they arrive.  Return 0 to go on, or a negative errno to
	 * abort the request (done() is then called with that error). */
	int (*data)(struct kube_request *req, const char *buf, size_t len, void *data);
	/* Called once when the request ends.  status is the HTTP status (0 when
	 * none was received); err is 0 when the transfer completed, else a
	 * negative errno with a description in errmsg.  The request is freed
	 * after this returns. */
	void (*done)(struct kube_request *req, long status, int err, const char *errmsg,
		     void *data);
};

/* Creates a client; cfg is borrowed and must outlive it.  Returns 0 or -errno. */
int kube_client_new(struct loop *loop, const struct kube_config *cfg,
		    struct kube_client **ret_client);
/* Accepts NULL.  Pending requests are cancelled without callbacks. */
void kube_client_free(struct kube_client *client);

/* Starts GET <server><path_and_query>.  A stream request has no overall time
 * limit (for watches); others give up after timeout_s seconds.  The request
 * belongs to the client; *ret_req (optional) may be used to cancel it until
 * done() has been called.  Returns 0 or -errno. */
int kube_client_get(struct kube_client *client, const char *path_and_query, bool stream,
		    long timeout_s, const struct kube_request_ops *ops, void *data,
		    struct kube_request **ret_req);

/* Cancels a request; its done() is not called. */
void kube_request_cancel(struct kube_request *req);

/* The HTTP status once headers have arrived (0 before). */
long kube_request_status(struct kube_request *req);
/* Seconds from a Retry-After header, or -1. */
long kube_request_retry_after(struct kube_request *req);

#endif
