/* Standard base64 decoding, for the "-data" fields of kubeconfig files. */
#ifndef KPROXY_UTIL_BASE64_H
#define KPROXY_UTIL_BASE64_H

#include <stddef.h>

/* Decodes s (padding optional, whitespace ignored).  Returns 0 with a new
 * NUL-terminated buffer the caller owns in *ret_buf and its length (without
 * the NUL) in *ret_len, or -EINVAL for text that is not base64. */
int base64_decode(const char *s, char **ret_buf, size_t *ret_len);

#endif
