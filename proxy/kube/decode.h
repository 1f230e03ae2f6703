/* Decoding of API objects (JSON from list and watch responses) into the
 * model's typed structs, with every field the agent uses validated.
 *
 * Each decoder returns:
 *   0 with *ret_obj set:  a valid object, owned by the caller;
 *   0 with *ret_obj NULL: a valid object the agent does not act on (an FQDN
 *                         EndpointSlice, a slice with no Service label);
 *   -EBADMSG:             the object is invalid; err names the field and why.
 * Nothing is logged here. */
#ifndef KPROXY_KUBE_DECODE_H
#define KPROXY_KUBE_DECODE_H

#include <jansson.h>
#include <stddef.h>

#include "model/objects.h"

/* Writes "namespace/name" (or "name" for cluster-scoped objects) of obj's
 * metadata into buf.  Returns 0, or -EBADMSG when metadata is missing or
 * the names are not valid Kubernetes names. */
int decode_object_key(json_t *obj, char *buf, size_t len, char *err, size_t errlen);

int decode_service(json_t *obj, struct service **ret_obj, char *err, size_t errlen);
int decode_endpoint_slice(json_t *obj, struct endpoint_slice **ret_obj, char *err, size_t errlen);
int decode_node(json_t *obj, struct node_info **ret_obj, char *err, size_t errlen);
/* A core/v1 Endpoints: subsets' addresses (ready) and notReadyAddresses
 * (neither ready nor serving) with the subset's ports, as slices named
 * "<name>.<subset>.<family>". */
/* An RFC 3339 date-time to seconds since the epoch; -EINVAL when it is not one. */
int decode_rfc3339(const char *s, double *ret);

int decode_endpoints(json_t *obj, struct endpoints_obj **ret_obj, char *err, size_t errlen);
int decode_service_cidr(json_t *obj, struct service_cidr **ret_obj, char *err, size_t errlen);

#endif
