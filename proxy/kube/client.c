/* libcurl multi-socket integration; see client.h.
 *
 * curl reports the sockets it wants watched through the socket callback and
 * the next time-out through the timer callback; the loop calls back into
 * curl_multi_socket_action() for both and then collects finished transfers.
 * The bearer token is re-read from its file when the file changes, because
 * bound service-account tokens are rotated under a running agent. */
#include "kube/client.h"

#include <curl/curl.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/stat.h>
#include <time.h>

#include "util/log.h"

struct kube_client {
	struct loop *loop;
	const struct kube_config *cfg;
	CURLM *multi;
	struct loop_timer *timer;
	struct kube_request *requests; /* in flight */
	/* token re-read from cfg->token_file */
	char *file_token;
	struct timespec token_mtime;
	bool in_action;
};

struct kube_request {
	struct kube_client *client;
	CURL *easy;
	struct curl_slist *headers;
	const struct kube_request_ops *ops;
	void *data;
	int abort_err;
	long retry_after;
	char errbuf[CURL_ERROR_SIZE];
	struct kube_request *prev, *next;
};

static int curl_global_done;

static void request_free(struct kube_request *req)
{
	struct kube_client *c = req->client;

	if (req->prev)
		req->prev->next = req->next;
	else
		c->requests = req->next;
	if (req->next)
		req->next->prev = req->prev;
	curl_multi_remove_handle(c->multi, req->easy);
	curl_easy_cleanup(req->easy);
	curl_slist_free_all(req->headers);
	free(req);
}

static void check_done(struct kube_client *c)
{
	CURLMsg *msg;
	int left;

	while ((msg = curl_multi_info_read(c->multi, &left))) {
		struct kube_request *req = NULL;
		long status = 0;
		int err = 0;
		const char *errmsg = "";

		if (msg->msg != CURLMSG_DONE)
			continue;
		curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, (char **)&req);
		curl_easy_getinfo(msg->easy_handle, CURLINFO_RESPONSE_CODE, &status);
		if (req->abort_err) {
			err = req->abort_err;
			errmsg = "aborted by the receiver";
		} else if (msg->data.result != CURLE_OK) {
			switch (msg->data.result) {
			case CURLE_OPERATION_TIMEDOUT:
				err = -ETIMEDOUT;
				break;
			case CURLE_COULDNT_CONNECT:
				err = -ECONNREFUSED;
				break;
			case CURLE_PEER_FAILED_VERIFICATION:
			case CURLE_SSL_CACERT_BADFILE:
			case CURLE_SSL_CONNECT_ERROR:
				err = -EPERM;
				break;
			default:
				err = -EIO;
			}
			errmsg =
				req->errbuf[0] ? req->errbuf : curl_easy_strerror(msg->data.result);
		}
		req->ops->done(req, status, err, errmsg, req->data);
		request_free(req);
	}
}

static void socket_event(struct loop *loop, int fd, uint32_t events, void *data)
{
	struct kube_client *c = data;
	int running, mask = 0;

	(void)loop;
	if (events & EPOLLIN)
		mask |= CURL_CSELECT_IN;
	if (events & EPOLLOUT)
		mask |= CURL_CSELECT_OUT;
	if (events & (EPOLLERR | EPOLLHUP))
		mask |= CURL_CSELECT_ERR;
	curl_multi_socket_action(c->multi, fd, mask, &running);
	check_done(c);
}

static int socket_cb(CURL *easy, curl_socket_t fd, int what, void *userp, void *socketp)
{
	struct kube_client *c = userp;
	uint32_t events = 0;

	(void)easy;
	(void)socketp;
	if (what == CURL_POLL_REMOVE) {
		loop_del_fd(c->loop, fd);
		return 0;
	}
	if (what & CURL_POLL_IN)
		events |= EPOLLIN;
	if (what & CURL_POLL_OUT)
		events |= EPOLLOUT;
	if (loop_mod_fd(c->loop, fd, events) == -ENOENT)
		loop_add_fd(c->loop, fd, events, socket_event, c);
	return 0;
}

static void timer_fired(struct loop *loop, struct loop_timer *t, void *data)
{
	struct kube_client *c = data;
	int running;

	(void)loop;
	(void)t;
	curl_multi_socket_action(c->multi, CURL_SOCKET_TIMEOUT, 0, &running);
	check_done(c);
}

static int timer_cb(CURLM *multi, long timeout_ms, void *userp)
{
	struct kube_client *c = userp;

	(void)multi;
	if (timeout_ms < 0)
		loop_timer_disarm(c->timer);
	else
		loop_timer_arm(c->timer, (uint64_t)timeout_ms);
	return 0;
}

int kube_client_new(struct loop *loop, const struct kube_config *cfg,
		    struct kube_client **ret_client)
{
	struct kube_client *c;

	if (!curl_global_done) {
		if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
			return -EIO;
		curl_global_done = 1;
	}
	c = calloc(1, sizeof(*c));
	if (!c)
		return -ENOMEM;
	c->loop = loop;
	c->cfg = cfg;
	c->multi = curl_multi_init();
	c->timer = loop_timer_new(loop, timer_fired, c);
	if (!c->multi || !c->timer) {
		kube_client_free(c);
		return -ENOMEM;
	}
	curl_multi_setopt(c->multi, CURLMOPT_SOCKETFUNCTION, socket_cb);
	curl_multi_setopt(c->multi, CURLMOPT_SOCKETDATA, c);
	curl_multi_setopt(c->multi, CURLMOPT_TIMERFUNCTION, timer_cb);
	curl_multi_setopt(c->multi, CURLMOPT_TIMERDATA, c);
	/* Watches share one HTTP/2 connection when the server offers it. */
	curl_multi_setopt(c->multi, CURLMOPT_PIPELINING, CURLPIPE_MULTIPLEX);
	*ret_client = c;
	return 0;
}

void kube_client_free(struct kube_client *c)
{
	if (!c)
		return;
	while (c->requests)
		request_free(c->requests);
	if (c->multi)
		curl_multi_cleanup(c->multi);
	loop_timer_free(c->timer);
	free(c->file_token);
	free(c);
}

/* Returns the current bearer token (borrowed), re-reading the token file when
 * its modification time changed. */
static const char *current_token(struct kube_client *c)
{
	struct stat st;

	if (c->cfg->token)
		return c->cfg->token;
	if (!c->cfg->token_file)
		return NULL;
	if (stat(c->cfg->token_file, &st) == 0 &&
	    (!c->file_token || st.st_mtim.tv_sec != c->token_mtime.tv_sec ||
	     st.st_mtim.tv_nsec != c->token_mtime.tv_nsec)) {
		FILE *f = fopen(c->cfg->token_file, "re");
		char buf[16384];
		size_t n;

		if (f) {
			n = fread(buf, 1, sizeof(buf) - 1, f);
			fclose(f);
			buf[n] = '\0';
			while (n > 0 &&
			       (buf[n - 1] == '\n' || buf[n - 1] == '\r' || buf[n - 1] == ' '))
				buf[--n] = '\0';
			if (n > 0) {
				char *tok = strdup(buf);

				if (tok) {
					if (c->file_token)
						log_v(2,
						      "token file %s changed; using the new token",
						      c->cfg->token_file);
					free(c->file_token);
					c->file_token = tok;
					c->token_mtime = st.st_mtim;
				}
			}
		}
	}
	return c->file_token;
}

static size_t write_cb(char *ptr, size_t size, size_t nmemb, void *userdata)
{
	struct kube_request *req = userdata;
	size_t n = size * nmemb;
	int r;

	r = req->ops->data(req, ptr, n, req->data);
	if (r < 0) {
		req->abort_err = r;
		return 0; /* makes curl fail the transfer */
	}
	return n;
}

static size_t header_cb(char *buf, size_t size, size_t nitems, void *userdata)
{
	struct kube_request *req = userdata;
	size_t n = size * nitems;

	if (n > 12 && !strncasecmp(buf, "Retry-After:", 12)) {
		char tmp[32];
		size_t len = n - 12 < sizeof(tmp) - 1 ? n - 12 : sizeof(tmp) - 1;
		char *end;
		long v;

		memcpy(tmp, buf + 12, len);
		tmp[len] = '\0';
		v = strtol(tmp, &end, 10);
		if (end != tmp && v >= 0)
			req->retry_after = v > 3600 ? 3600 : v;
	}
	return n;
}

int kube_client_get(struct kube_client *c, const char *path, bool stream, long timeout_s,
		    const struct kube_request_ops *ops, void *data, struct kube_request **ret_req)
{
	const struct kube_config *cfg = c->cfg;
	struct kube_request *req;
	const char *token;
	char *url = NULL;
	CURL *e;

	req = calloc(1, sizeof(*req));
	if (!req)
		return -ENOMEM;
	req->client = c;
	req->ops = ops;
	req->data = data;
	req->retry_after = -1;
	req->easy = e = curl_easy_init();
	if (!e || asprintf(&url, "%s%s", cfg->server, path) < 0) {
		curl_easy_cleanup(e);
		free(req);
		return -ENOMEM;
	}
	curl_easy_setopt(e, CURLOPT_URL, url);
	free(url);
	curl_easy_setopt(e, CURLOPT_PRIVATE, req);
	curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, write_cb);
	curl_easy_setopt(e, CURLOPT_WRITEDATA, req);
	curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, header_cb);
	curl_easy_setopt(e, CURLOPT_HEADERDATA, req);
	curl_easy_setopt(e, CURLOPT_ERRORBUFFER, req->errbuf);
	curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT, 10L);
	curl_easy_setopt(e, CURLOPT_TCP_KEEPALIVE, 1L);
	curl_easy_setopt(e, CURLOPT_TCP_KEEPIDLE, 30L);
	curl_easy_setopt(e, CURLOPT_TCP_KEEPINTVL, 10L);
	curl_easy_setopt(e, CURLOPT_ACCEPT_ENCODING, "");
	curl_easy_setopt(e, CURLOPT_USERAGENT, "kproxy");
	curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
	if (!stream)
		curl_easy_setopt(e, CURLOPT_TIMEOUT, timeout_s > 0 ? timeout_s : 60L);
	else if (timeout_s > 0)
		curl_easy_setopt(e, CURLOPT_TIMEOUT, timeout_s);

	if (cfg->insecure) {
		curl_easy_setopt(e, CURLOPT_SSL_VERIFYPEER, 0L);
		curl_easy_setopt(e, CURLOPT_SSL_VERIFYHOST, 0L);
	}
	if (cfg->ca_pem) {
		struct curl_blob blob = {cfg->ca_pem, cfg->ca_pem_len, CURL_BLOB_COPY};

		curl_easy_setopt(e, CURLOPT_CAINFO_BLOB, &blob);
	} else if (cfg->ca_file) {
		curl_easy_setopt(e, CURLOPT_CAINFO, cfg->ca_file);
	}
	if (cfg->cert_pem) {
		struct curl_blob blob = {cfg->cert_pem, cfg->cert_pem_len, CURL_BLOB_COPY};

		curl_easy_setopt(e, CURLOPT_SSLCERT_BLOB, &blob);
	} else if (cfg->cert_file) {
		curl_easy_setopt(e, CURLOPT_SSLCERT, cfg->cert_file);
	}
	if (cfg->key_pem) {
		struct curl_blob blob = {cfg->key_pem, cfg->key_pem_len, CURL_BLOB_COPY};

		curl_easy_setopt(e, CURLOPT_SSLKEY_BLOB, &blob);
	} else if (cfg->key_file) {
		curl_easy_setopt(e, CURLOPT_SSLKEY, cfg->key_file);
	}

	req->headers = curl_slist_append(NULL, "Accept: application/json");
	token = current_token(c);
	if (token) {
		char *h;

		if (asprintf(&h, "Authorization: Bearer %s", token) >= 0) {
			req->headers = curl_slist_append(req->headers, h);
			free(h);
		}
	}
	curl_easy_setopt(e, CURLOPT_HTTPHEADER, req->headers);

	req->next = c->requests;
	if (c->requests)
		c->requests->prev = req;
	c->requests = req;
	if (curl_multi_add_handle(c->multi, e) != CURLM_OK) {
		request_free(req);
		return -EIO;
	}
	if (ret_req)
		*ret_req = req;
	return 0;
}

void kube_request_cancel(struct kube_request *req)
{
	if (req)
		request_free(req);
}

long kube_request_status(struct kube_request *req)
{
	long status = 0;

	curl_easy_getinfo(req->easy, CURLINFO_RESPONSE_CODE, &status);
	return status;
}

long kube_request_retry_after(struct kube_request *req)
{
	return req->retry_after;
}
