/* YAML documents (kubeconfig, KubeProxyConfiguration) read into jansson
 * values, so that the agent reads every structured input, JSON from the API
 * server or YAML from a file, through the same accessors. */
#ifndef KPROXY_UTIL_YAMLJSON_H
#define KPROXY_UTIL_YAMLJSON_H

#include <jansson.h>
#include <stddef.h>

/* Parses the first YAML document of buf.  Plain scalars are typed as YAML 1.2's
 * core schema types them (null, true/false, integers, floats, else strings);
 * quoted scalars are always strings.  Aliases are expanded with a bound on the
 * total size, so a hostile file cannot blow up memory.  Returns 0 and a new
 * reference the caller owns in *ret_json, or -EBADMSG with a message naming
 * the line and column in err. An empty document gives a JSON null. */
int yamljson_parse(const char *buf, size_t len, json_t **ret_json, char *err, size_t errlen);
/* The same for a file; -errno when it cannot be read. */
int yamljson_load_file(const char *path, json_t **ret_json, char *err, size_t errlen);

#endif
