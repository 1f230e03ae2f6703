/* Conntrack tunables; see sysctl.h. */
#include "util/sysctl.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define HASHSIZE_PATH "/sys/module/nf_conntrack/parameters/hashsize"

static void path_of(const char *name, char *buf, size_t len)
{
	size_t n;

	n = (size_t)snprintf(buf, len, "/proc/sys/%s", name);
	for (size_t i = strlen("/proc/sys/"); i < n && i < len; i++) {
		if (buf[i] == '.')
			buf[i] = '/';
	}
}

static int read_file_u64(const char *path, uint64_t *ret)
{
	char buf[64];
	ssize_t n;
	int fd = open(path, O_RDONLY | O_CLOEXEC);

	if (fd < 0)
		return -errno;
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return n < 0 ? -errno : -EIO;
	buf[n] = '\0';
	*ret = strtoull(buf, NULL, 10);
	return 0;
}

static int write_file_u64(const char *path, uint64_t value)
{
	char buf[32];
	int fd = open(path, O_WRONLY | O_CLOEXEC), n, r = 0;

	if (fd < 0)
		return -errno;
	n = snprintf(buf, sizeof(buf), "%" PRIu64 "\n", value);
	if (write(fd, buf, (size_t)n) != n)
		r = -errno;
	close(fd);
	return r;
}

int sysctl_read_u64(const char *name, uint64_t *ret)
{
	char path[256];

	path_of(name, path, sizeof(path));
	return read_file_u64(path, ret);
}

int sysctl_write_u64(const char *name, uint64_t value)
{
	char path[256];

	path_of(name, path, sizeof(path));
	return write_file_u64(path, value);
}

static void note(char *buf, size_t len, const char *what, int err)
{
	size_t used = strlen(buf);

	if (used < len)
		snprintf(buf + used, len - used, "%s: %s\n", what, strerror(-err));
}

static void set_if_given(const char *name, uint64_t ms, char *problems, size_t len)
{
	uint64_t cur;
	int r;

	if (!ms)
		return;
	/* Already right: nothing to write (and nothing to fail on read-only
	 * /proc). */
	if (sysctl_read_u64(name, &cur) == 0 && cur == ms / 1000)
		return;
	r = sysctl_write_u64(name, ms / 1000);
	if (r < 0)
		note(problems, len, name, r);
}

void sysctl_apply_conntrack(const struct conntrack_opts *ct, char *problems, size_t len)
{
	long cpus = sysconf(_SC_NPROCESSORS_ONLN);
	uint64_t want = 0, cur;
	int r;

	if (len)
		problems[0] = '\0';
	if (ct->max_per_core > 0) {
		want = (uint64_t)ct->max_per_core * (uint64_t)(cpus > 0 ? cpus : 1);
		if (want < (uint64_t)ct->min)
			want = (uint64_t)ct->min;
	}
	if (want && sysctl_read_u64("net.netfilter.nf_conntrack_max", &cur) == 0 && cur < want) {
		uint64_t hash;

		/* The hash table keeps about four entries a bucket, as kube-proxy
		 * arranges it. */
		if (read_file_u64(HASHSIZE_PATH, &hash) == 0 && hash < want / 4 &&
		    (r = write_file_u64(HASHSIZE_PATH, want / 4)) < 0)
			note(problems, len, "nf_conntrack hashsize", r);
		if ((r = sysctl_write_u64("net.netfilter.nf_conntrack_max", want)) < 0)
			note(problems, len, "net.netfilter.nf_conntrack_max", r);
	}
	set_if_given("net.netfilter.nf_conntrack_tcp_timeout_established", ct->tcp_established_ms,
		     problems, len);
	set_if_given("net.netfilter.nf_conntrack_tcp_timeout_close_wait", ct->tcp_close_wait_ms,
		     problems, len);
	if (ct->tcp_be_liberal &&
	    (sysctl_read_u64("net.netfilter.nf_conntrack_tcp_be_liberal", &cur) != 0 || cur != 1) &&
	    (r = sysctl_write_u64("net.netfilter.nf_conntrack_tcp_be_liberal", 1)) < 0)
		note(problems, len, "net.netfilter.nf_conntrack_tcp_be_liberal", r);
	set_if_given("net.netfilter.nf_conntrack_udp_timeout", ct->udp_ms, problems, len);
	set_if_given("net.netfilter.nf_conntrack_udp_timeout_stream", ct->udp_stream_ms, problems,
		     len);
}
