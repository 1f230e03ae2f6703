/* A reflector mirrors one kind of API object into the agent, as client-go's
 * reflector does: a paginated list, then a watch from the list's
 * resourceVersion; on a watch that ends it resumes from the last version
 * seen, on 410 Gone or anything unparseable it lists again and reports the
 * objects that vanished meanwhile as deleted.  Failures back off
 * exponentially with jitter and honour Retry-After.
 *
 * Objects are decoded once, by the type's decoder, into typed structs that
 * are handed to the handler; the reflector keeps only each object's key and
 * resourceVersion. */
#ifndef KPROXY_KUBE_REFLECTOR_H
#define KPROXY_KUBE_REFLECTOR_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#include "kube/client.h"

struct reflector;

struct reflector_type {
	const char *kind; /* "Service", for messages */
	const char *path; /* "/api/v1/services" */
	/* See decode.h for the contract: an object, NULL (ignore), or -EBADMSG. */
	int (*decode)(json_t *obj, void **ret_obj, char *err, size_t errlen);
	void (*free_obj)(void *obj);
	/* The API server may not serve this resource (404): then the reflector
	 * says so once, counts as synced and stops. */
	bool optional;
};

struct reflector_handler {
	/* A new or changed object; the handler takes ownership of obj. */
	void (*upsert)(void *data, const char *key, void *obj);
	/* The object is gone (or is no longer one the agent acts on). */
	void (*remove)(void *data, const char *key);
	/* A list has completed: the handler has seen every object there is. */
	void (*synced)(void *data);
};

struct reflector_stats {
	uint64_t rejected;     /* objects refused by the decoder */
	uint64_t lists;	       /* lists completed */
	uint64_t watch_starts; /* watches started */
	uint64_t errors;       /* failed requests and broken streams */
};

/* query: extra query parameters ("labelSelector=...&fieldSelector=..."),
 * already escaped, or NULL.  Returns 0 or -errno. */
int reflector_new(struct kube_client *client, struct loop *loop, const struct reflector_type *type,
		  const char *query, const struct reflector_handler *handler, void *data,
		  struct reflector **ret);
void reflector_start(struct reflector *r);
/* Accepts NULL.  Cancels any request in flight. */
void reflector_free(struct reflector *r);

/* True once a first list has completed. */
bool reflector_synced(const struct reflector *r);
const struct reflector_stats *reflector_stats(const struct reflector *r);
const char *reflector_kind(const struct reflector *r);

#endif
