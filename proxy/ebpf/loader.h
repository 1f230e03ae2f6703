/* Loading kproxy's BPF objects and attaching them, so that a restart of the
 * agent neither loses state nor leaves a moment without programs.
 *
 * Every map is pinned under <pin path>/v<KPROXY_MAP_VERSION>/ and every link
 * under <pin path>/links/.  Loading reuses the pinned maps it finds (so
 * connection entries, affinities and Services survive a restart) and
 * attaching updates the program of a pinned link in place (an atomic swap)
 * instead of detaching and attaching again.  Maps of another layout version
 * are removed once the new programs are attached. */
#ifndef KPROXY_EBPF_LOADER_H
#define KPROXY_EBPF_LOADER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct ebpf_loader;

struct ebpf_loader_config {
	const char *pin_path;	 /* bpffs directory of this agent */
	const char *cgroup_path; /* cgroup v2 directory; NULL: the v2 root */
	bool pod_lb;		 /* balance pod traffic on veths, not in sockets */
};

/* Mounts bpffs when needed, opens, pins and loads the objects, and attaches
 * the socket programs to the cgroup.  Returns 0 with *ret (the caller owns
 * it), or -errno with the reason in err. */
int ebpf_loader_new(const struct ebpf_loader_config *cfg, struct ebpf_loader **ret, char *err,
		    size_t errlen);
/* Frees memory only; pinned maps and links stay. Accepts NULL. */
void ebpf_loader_free(struct ebpf_loader *l);

/* The fd of a shared map by name ("lb_svc", "lb4_fe", ...), or -ENOENT. */
int ebpf_loader_map_fd(const struct ebpf_loader *l, const char *name);

/* Makes the packet programs attached exactly to these devices (ingress
 * program) and pod veths (pod program): new ones are attached, pinned links
 * of others removed.  Returns 0 or -errno with the reason in err. */
int ebpf_loader_attach_tc(struct ebpf_loader *l, const uint32_t *devs, size_t n_devs,
			  const uint32_t *pods, size_t n_pods, char *err, size_t errlen);

/* Ends the UDP sockets connected to backends that no longer exist, in every
 * network namespace used by a process of the cgroup.  Returns the number of
 * sockets ended, or -errno (-EOPNOTSUPP without bpf_sock_destroy). */
int ebpf_loader_destroy_stale(struct ebpf_loader *l);

/* Removes every pin and link under pin_path (and nothing else).  Returns the
 * number of objects removed, or -errno with the reason in err. */
int ebpf_loader_cleanup(const char *pin_path, char *err, size_t errlen);

#endif
