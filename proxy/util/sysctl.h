/* Kernel tunables the agent sets at start-up: the conntrack table size and
 * timeouts, as kube-proxy sets them (--conntrack-* flags, the conntrack
 * section of the config file). */
#ifndef KPROXY_UTIL_SYSCTL_H
#define KPROXY_UTIL_SYSCTL_H

#include <stddef.h>
#include <stdint.h>

#include "options.h"

/* Reads /proc/sys/<name with dots as slashes> into *ret.  Returns 0 or -errno. */
int sysctl_read_u64(const char *name, uint64_t *ret);
/* Writes a value.  Returns 0 or -errno. */
int sysctl_write_u64(const char *name, uint64_t value);

/* Applies the conntrack settings: nf_conntrack_max is raised (never lowered)
 * to max(max_per_core x CPUs, min) along with the hash table size, and the
 * timeouts given are set.  What cannot be set (read-only /proc or /sys in a
 * container, or a value only the initial network namespace may change) is
 * reported, one line per setting, in problems; it is not an error. */
void sysctl_apply_conntrack(const struct conntrack_opts *ct, char *problems, size_t len);

#endif
