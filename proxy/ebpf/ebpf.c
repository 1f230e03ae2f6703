/* The eBPF dataplane.  Not available yet: selecting it fails at start-up
 * with a clear message, and --cleanup finds nothing of it to remove. */
#include <errno.h>
#include <stdio.h>

#include "dataplane.h"

static int ebpf_init(const struct dataplane_config *cfg, struct dataplane **ret, char *err,
		     size_t errlen)
{
	(void)cfg;
	(void)ret;
	snprintf(err, errlen, "the eBPF dataplane is not available yet; use --proxy-mode=nftables");
	return -ENOTSUP;
}

static int ebpf_cleanup(const struct dataplane_config *cfg, char *err, size_t errlen)
{
	(void)cfg;
	(void)err;
	(void)errlen;
	return 0;
}

const struct dataplane_ops ebpf_dataplane_ops = {
	.name = "ebpf",
	.init = ebpf_init,
	.cleanup = ebpf_cleanup,
};
