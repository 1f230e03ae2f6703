/* Loading, pinning and attaching kproxy's BPF objects; see loader.h. */
#include "ebpf/loader.h"

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <unistd.h>

#include "kproxy/lb.h"
#include "sock_destroy.skel.h"
#include "sock_lb.skel.h"
#include "tc_lb.skel.h"

#define BPF_FS_MAGIC	    0xcafe4a11
#define CGROUP2_SUPER_MAGIC 0x63677270
/* From kernels newer than the uapi headers installed here (6.1). */
#define LB_LINK_TYPE_TCX      11
#define LB_ATTACH_TCX_INGRESS 46

#define BPFFS_ROOT "/sys/fs/bpf"

struct ebpf_loader {
	char pin[PATH_MAX];
	char maps_dir[PATH_MAX + 16];
	char links_dir[PATH_MAX + 16];
	char cgroup[PATH_MAX];
	struct sock_lb_bpf *sock;
	struct tc_lb_bpf *tc;
	struct sock_destroy_bpf *destroy; /* NULL: no bpf_sock_destroy here */
};

static int quiet_print(enum libbpf_print_level level, const char *fmt, va_list ap)
{
	/* The agent says what failed one level up; libbpf's debug chatter and
	 * the verifier's log would only bury it. */
	(void)level;
	(void)fmt;
	(void)ap;
	return 0;
}

static int mkdir_p(const char *path)
{
	char buf[PATH_MAX];

	if (snprintf(buf, sizeof(buf), "%s", path) >= (int)sizeof(buf))
		return -ENAMETOOLONG;
	for (char *p = buf + 1; *p; p++) {
		if (*p != '/')
			continue;
		*p = '\0';
		if (mkdir(buf, 0700) < 0 && errno != EEXIST)
			return -errno;
		*p = '/';
	}
	if (mkdir(buf, 0700) < 0 && errno != EEXIST)
		return -errno;
	return 0;
}

/* Mounts the bpf file system at /sys/fs/bpf when the pin path is below it
 * and nothing is mounted there yet, as a fresh machine may have it. */
static int ensure_bpffs(const char *pin)
{
	struct statfs st;

	if (strncmp(pin, BPFFS_ROOT "/", sizeof(BPFFS_ROOT)) != 0)
		return 0;
	if (statfs(BPFFS_ROOT, &st) == 0 && st.f_type == BPF_FS_MAGIC)
		return 0;
	if (mkdir(BPFFS_ROOT, 0700) < 0 && errno != EEXIST)
		return -errno;
	if (mount("bpf", BPFFS_ROOT, "bpf", 0, "mode=0700") < 0)
		return -errno;
	return 0;
}

/* The cgroup v2 root: /sys/fs/cgroup on a unified layout, else the
 * "unified" mount of a hybrid one. */
static int cgroup2_root(char *buf, size_t len)
{
	static const char *const roots[] = {"/sys/fs/cgroup", "/sys/fs/cgroup/unified"};
	struct statfs st;

	for (size_t i = 0; i < 2; i++) {
		if (statfs(roots[i], &st) == 0 && st.f_type == CGROUP2_SUPER_MAGIC) {
			snprintf(buf, len, "%s", roots[i]);
			return 0;
		}
	}
	return -ENOENT;
}

static void set_pins(struct bpf_object *obj, const char *dir)
{
	struct bpf_map *map;

	bpf_object__for_each_map(map, obj)
	{
		char path[PATH_MAX + 64];

		if (bpf_map__is_internal(map))
			continue;
		snprintf(path, sizeof(path), "%s/%s", dir, bpf_map__name(map));
		bpf_map__set_pin_path(map, path);
	}
}

int ebpf_loader_map_fd(const struct ebpf_loader *l, const char *name)
{
	struct bpf_map *map = bpf_object__find_map_by_name(l->sock->obj, name);

	return map ? bpf_map__fd(map) : -ENOENT;
}

/* The id of a cgroup directory (what a cgroup link reports). */
static int cgroup_id(const char *path, uint64_t *ret)
{
	struct {
		struct file_handle fh;
		uint64_t id;
	} h = {.fh.handle_bytes = sizeof(uint64_t)};
	int mount_id;

	if (name_to_handle_at(AT_FDCWD, path, &h.fh, &mount_id, 0) < 0)
		return -errno;
	memcpy(ret, h.fh.f_handle, sizeof(*ret));
	return 0;
}

/* Points the link pinned at path (if it is still attached where it should
 * be) at prog_fd, or makes and pins a new link.  want_target: the cgroup id
 * or ifindex the link must be on. */
static int attach_pinned(const char *path, int prog_fd, int target_fd, int attach_type,
			 uint64_t want_target)
{
	struct bpf_link_info info;
	uint32_t len = sizeof(info);
	int fd, r;

	fd = bpf_obj_get(path);
	if (fd >= 0) {
		uint64_t target = 0;

		memset(&info, 0, sizeof(info));
		if (bpf_obj_get_info_by_fd(fd, &info, &len) == 0) {
			if (info.type == BPF_LINK_TYPE_CGROUP)
				target = info.cgroup.cgroup_id;
			else if (info.type == LB_LINK_TYPE_TCX)
				target = info.xdp.ifindex; /* tcx's ifindex is at the same place */
		}
		if (target && target == want_target) {
			r = bpf_link_update(fd, prog_fd, NULL);
			close(fd);
			return r < 0 ? r : 0;
		}
		/* Detached (its device or cgroup is gone) or elsewhere. */
		close(fd);
		unlink(path);
	}
	fd = bpf_link_create(prog_fd, target_fd, (enum bpf_attach_type)attach_type, NULL);
	if (fd < 0)
		return fd;
	r = bpf_obj_pin(fd, path);
	close(fd);
	return r < 0 ? r : 0;
}

static int attach_cgroup(struct ebpf_loader *l, char *err, size_t errlen)
{
	struct bpf_program *prog;
	uint64_t cgid = 0;
	int cg, r = 0;

	cg = open(l->cgroup, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (cg < 0 || (r = cgroup_id(l->cgroup, &cgid)) < 0) {
		r = cg < 0 ? -errno : r;
		snprintf(err, errlen, "opening cgroup %s: %s", l->cgroup, strerror(-r));
		if (cg >= 0)
			close(cg);
		return r;
	}
	bpf_object__for_each_program(prog, l->sock->obj)
	{
		char path[PATH_MAX + 64];

		snprintf(path, sizeof(path), "%s/cg_%s", l->links_dir, bpf_program__name(prog));
		r = attach_pinned(path, bpf_program__fd(prog), cg,
				  bpf_program__expected_attach_type(prog), cgid);
		if (r < 0) {
			snprintf(err, errlen, "attaching %s to cgroup %s: %s",
				 bpf_program__name(prog), l->cgroup, strerror(-r));
			break;
		}
	}
	close(cg);
	return r;
}

static int rm_dir_entries(const char *dir, bool rmdir_too)
{
	DIR *d = opendir(dir);
	struct dirent *e;
	int n = 0;

	if (!d)
		return errno == ENOENT ? 0 : -errno;
	while ((e = readdir(d))) {
		char path[PATH_MAX + 512];

		if (e->d_name[0] == '.')
			continue;
		snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
		if (unlink(path) == 0)
			n++;
	}
	closedir(d);
	if (rmdir_too)
		rmdir(dir);
	return n;
}

/* Removes the map pins of other layout versions. */
static void drop_old_versions(struct ebpf_loader *l)
{
	DIR *d = opendir(l->pin);
	struct dirent *e;
	char cur[16];

	if (!d)
		return;
	snprintf(cur, sizeof(cur), "v%d", KPROXY_MAP_VERSION);
	while ((e = readdir(d))) {
		char path[PATH_MAX + 512];

		if (e->d_name[0] != 'v' || !strchr("0123456789", e->d_name[1]) ||
		    strcmp(e->d_name, cur) == 0)
			continue;
		snprintf(path, sizeof(path), "%s/%s", l->pin, e->d_name);
		rm_dir_entries(path, true);
	}
	closedir(d);
}

void ebpf_loader_free(struct ebpf_loader *l)
{
	if (!l)
		return;
	sock_lb_bpf__destroy(l->sock);
	tc_lb_bpf__destroy(l->tc);
	sock_destroy_bpf__destroy(l->destroy);
	free(l);
}

static uint64_t host_netns_cookie(void)
{
	uint64_t cookie = 0;
	socklen_t len = sizeof(cookie);
	int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);

	if (fd < 0)
		return 0;
	/* SO_NETNS_COOKIE (71): the same value bpf_get_netns_cookie() gives. */
	if (getsockopt(fd, SOL_SOCKET, 71, &cookie, &len) < 0)
		cookie = 0;
	close(fd);
	return cookie;
}

int ebpf_loader_new(const struct ebpf_loader_config *cfg, struct ebpf_loader **ret, char *err,
		    size_t errlen)
{
	struct ebpf_loader *l = calloc(1, sizeof(*l));
	int r;

	if (!l)
		return -ENOMEM;
	libbpf_set_print(quiet_print);
	snprintf(l->pin, sizeof(l->pin), "%s", cfg->pin_path);
	snprintf(l->maps_dir, sizeof(l->maps_dir), "%s/v%d", l->pin, KPROXY_MAP_VERSION);
	snprintf(l->links_dir, sizeof(l->links_dir), "%s/links", l->pin);
	if (cfg->cgroup_path && *cfg->cgroup_path)
		snprintf(l->cgroup, sizeof(l->cgroup), "%s", cfg->cgroup_path);
	else if ((r = cgroup2_root(l->cgroup, sizeof(l->cgroup))) < 0) {
		snprintf(err, errlen, "no cgroup v2 hierarchy found; give --bpf-cgroup-path");
		goto fail;
	}
	if ((r = ensure_bpffs(l->pin)) < 0) {
		snprintf(err, errlen, "mounting the bpf file system at %s: %s", BPFFS_ROOT,
			 strerror(-r));
		goto fail;
	}
	if ((r = mkdir_p(l->maps_dir)) < 0 || (r = mkdir_p(l->links_dir)) < 0) {
		snprintf(err, errlen, "creating %s: %s", l->pin, strerror(-r));
		goto fail;
	}

	l->sock = sock_lb_bpf__open();
	l->tc = tc_lb_bpf__open();
	if (!l->sock || !l->tc) {
		r = -errno ? -errno : -ENOMEM;
		snprintf(err, errlen, "opening the BPF objects: %s", strerror(-r));
		goto fail;
	}
	l->sock->rodata->hostns_only = cfg->pod_lb;
	l->sock->rodata->host_netns_cookie = host_netns_cookie();
	l->tc->rodata->pod_lb = cfg->pod_lb;
	set_pins(l->sock->obj, l->maps_dir);
	set_pins(l->tc->obj, l->maps_dir);
	if ((r = sock_lb_bpf__load(l->sock)) < 0) {
		snprintf(err, errlen,
			 "loading the socket programs: %s (maps pinned under %s that do not "
			 "match this version's layout? remove them with --cleanup)",
			 strerror(-r), l->maps_dir);
		goto fail;
	}
	if ((r = tc_lb_bpf__load(l->tc)) < 0) {
		snprintf(err, errlen, "loading the packet programs: %s", strerror(-r));
		goto fail;
	}
	/* Ending sockets needs bpf_sock_destroy (Linux 6.5); without it the
	 * rest still works. */
	l->destroy = sock_destroy_bpf__open();
	if (l->destroy) {
		set_pins(l->destroy->obj, l->maps_dir);
		if (sock_destroy_bpf__load(l->destroy) < 0) {
			sock_destroy_bpf__destroy(l->destroy);
			l->destroy = NULL;
		}
	}
	if ((r = attach_cgroup(l, err, errlen)) < 0)
		goto fail;
	drop_old_versions(l);
	*ret = l;
	return 0;
fail:
	ebpf_loader_free(l);
	return r;
}

/* Keeps the pinned tc links named prefix<ifindex> of exactly the given
 * ifindexes, attaching prog to the new ones. */
static int sync_tc_links(struct ebpf_loader *l, const char *prefix, struct bpf_program *prog,
			 const uint32_t *ifs, size_t n, char *err, size_t errlen)
{
	size_t plen = strlen(prefix);
	struct dirent *e;
	DIR *d;
	int r;

	for (size_t i = 0; i < n; i++) {
		char path[PATH_MAX + 64];

		snprintf(path, sizeof(path), "%s/%s%u", l->links_dir, prefix, ifs[i]);
		r = attach_pinned(path, bpf_program__fd(prog), (int)ifs[i], LB_ATTACH_TCX_INGRESS,
				  ifs[i]);
		if (r < 0 && r != -ENODEV) {
			snprintf(err, errlen, "attaching %s to interface %u: %s",
				 bpf_program__name(prog), ifs[i], strerror(-r));
			return r;
		}
	}
	d = opendir(l->links_dir);
	if (!d)
		return 0;
	while ((e = readdir(d))) {
		char path[PATH_MAX + 512];
		unsigned long ifindex;
		bool keep = false;
		char *end;

		if (strncmp(e->d_name, prefix, plen) != 0)
			continue;
		ifindex = strtoul(e->d_name + plen, &end, 10);
		if (*end)
			continue;
		for (size_t i = 0; i < n && !keep; i++)
			keep = ifs[i] == ifindex;
		if (keep)
			continue;
		snprintf(path, sizeof(path), "%s/%s", l->links_dir, e->d_name);
		unlink(path);
	}
	closedir(d);
	return 0;
}

int ebpf_loader_attach_tc(struct ebpf_loader *l, const uint32_t *devs, size_t n_devs,
			  const uint32_t *pods, size_t n_pods, char *err, size_t errlen)
{
	int r = sync_tc_links(l, "dev_in_", l->tc->progs.lb_dev_ingress, devs, n_devs, err, errlen);

	if (r == 0)
		r = sync_tc_links(l, "pod_in_", l->tc->progs.lb_pod_ingress, pods, n_pods, err,
				  errlen);
	return r;
}

/* --- ending stale sockets ------------------------------------------------ */

struct netns_set {
	dev_t dev[256];
	ino_t ino[256];
	int fd[256];
	size_t n;
};

static struct netns_set *walk_set;

static void add_pid_netns(struct netns_set *s, const char *pid)
{
	char path[64];
	struct stat st;
	int fd;

	snprintf(path, sizeof(path), "/proc/%s/ns/net", pid);
	if (stat(path, &st) < 0)
		return;
	for (size_t i = 0; i < s->n; i++) {
		if (s->dev[i] == st.st_dev && s->ino[i] == st.st_ino)
			return;
	}
	if (s->n == sizeof(s->fd) / sizeof(s->fd[0]))
		return;
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return;
	s->dev[s->n] = st.st_dev;
	s->ino[s->n] = st.st_ino;
	s->fd[s->n++] = fd;
}

static int walk_cgroup(const char *path, const struct stat *st, int type, struct FTW *ftw)
{
	char procs[PATH_MAX + 16], line[32];
	FILE *f;

	(void)st;
	(void)ftw;
	if (type != FTW_D)
		return 0;
	snprintf(procs, sizeof(procs), "%s/cgroup.procs", path);
	f = fopen(procs, "re");
	if (!f)
		return 0;
	while (fgets(line, sizeof(line), f)) {
		line[strcspn(line, "\n")] = '\0';
		if (*line)
			add_pid_netns(walk_set, line);
	}
	fclose(f);
	return 0;
}

static int run_iter(struct bpf_program *prog)
{
	struct bpf_link *link = bpf_program__attach_iter(prog, NULL);
	char buf[256];
	ssize_t n;
	int fd, r = 0;

	if (!link)
		return -errno;
	fd = bpf_iter_create(bpf_link__fd(link));
	if (fd < 0) {
		bpf_link__destroy(link);
		return fd;
	}
	while ((n = read(fd, buf, sizeof(buf))) > 0)
		;
	if (n < 0)
		r = -errno;
	close(fd);
	bpf_link__destroy(link);
	return r;
}

int ebpf_loader_destroy_stale(struct ebpf_loader *l)
{
	struct netns_set *set;
	uint64_t before;
	int home, r = 0;

	if (!l->destroy)
		return -EOPNOTSUPP;
	set = calloc(1, sizeof(*set));
	if (!set)
		return -ENOMEM;
	home = open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC);
	if (home < 0) {
		free(set);
		return -errno;
	}
	/* The iterator sees the sockets of the namespace it is created in:
	 * visit each namespace a process of the cgroup lives in. */
	add_pid_netns(set, "thread-self");
	walk_set = set;
	nftw(l->cgroup, walk_cgroup, 16, FTW_PHYS);
	walk_set = NULL;
	before = l->destroy->bss->destroyed;
	for (size_t i = 0; i < set->n; i++) {
		if (setns(set->fd[i], CLONE_NEWNET) == 0) {
			int q = run_iter(l->destroy->progs.lb_udp_destroy);

			if (q < 0 && r == 0)
				r = q;
		}
		close(set->fd[i]);
	}
	if (setns(home, CLONE_NEWNET) < 0 && r == 0)
		r = -errno;
	close(home);
	free(set);
	if (r < 0)
		return r;
	return (int)(l->destroy->bss->destroyed - before);
}

/* --- cleanup ------------------------------------------------------------- */

int ebpf_loader_cleanup(const char *pin_path, char *err, size_t errlen)
{
	struct dirent *e;
	int removed = 0, r;
	DIR *d;

	d = opendir(pin_path);
	if (!d) {
		if (errno == ENOENT)
			return 0;
		r = -errno;
		snprintf(err, errlen, "opening %s: %s", pin_path, strerror(-r));
		return r;
	}
	/* Links first, so that programs detach before their maps go. */
	while ((e = readdir(d))) {
		char path[PATH_MAX + 512];

		if (strcmp(e->d_name, "links") != 0)
			continue;
		snprintf(path, sizeof(path), "%s/%s", pin_path, e->d_name);
		r = rm_dir_entries(path, true);
		if (r > 0)
			removed += r;
	}
	rewinddir(d);
	while ((e = readdir(d))) {
		char path[PATH_MAX + 512];

		if (e->d_name[0] != 'v' || !strchr("0123456789", e->d_name[1]))
			continue;
		snprintf(path, sizeof(path), "%s/%s", pin_path, e->d_name);
		r = rm_dir_entries(path, true);
		if (r > 0)
			removed += r;
	}
	closedir(d);
	/* The directory itself only when nothing else is in it. */
	rmdir(pin_path);
	return removed;
}
