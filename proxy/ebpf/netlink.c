/* rtnetlink dumps of addresses and links; see netlink.h.  One short-lived
 * socket per dump keeps this free of state. */
#include "ebpf/netlink.h"

#include <errno.h>
#include <libmnl/libmnl.h>
#include <linux/if.h>
#include <linux/if_addr.h>
#include <linux/if_link.h>
#include <linux/rtnetlink.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

struct vec {
	void *v;
	size_t n, cap, size;
	int err;
};

static void *vec_push(struct vec *vec)
{
	if (vec->n == vec->cap) {
		size_t cap = vec->cap ? vec->cap * 2 : 16;
		void *v = realloc(vec->v, cap * vec->size);

		if (!v) {
			vec->err = -ENOMEM;
			return NULL;
		}
		vec->v = v;
		vec->cap = cap;
	}
	memset((char *)vec->v + vec->n * vec->size, 0, vec->size);
	return (char *)vec->v + vec->n++ * vec->size;
}

static int addr_cb(const struct nlmsghdr *nlh, void *data)
{
	const struct ifaddrmsg *ifa = mnl_nlmsg_get_payload(nlh);
	struct vec *vec = data;
	const struct nlattr *attr;
	const void *local = NULL, *address = NULL;
	size_t alen = ifa->ifa_family == AF_INET ? 4 : 16;
	struct nl_addr *a;

	if (ifa->ifa_family != AF_INET && ifa->ifa_family != AF_INET6)
		return MNL_CB_OK;
	mnl_attr_for_each(attr, nlh, sizeof(*ifa))
	{
		if (mnl_attr_get_type(attr) == IFA_LOCAL && mnl_attr_get_payload_len(attr) == alen)
			local = mnl_attr_get_payload(attr);
		else if (mnl_attr_get_type(attr) == IFA_ADDRESS &&
			 mnl_attr_get_payload_len(attr) == alen)
			address = mnl_attr_get_payload(attr);
	}
	/* IFA_LOCAL is the address itself on point-to-point links. */
	if (!local)
		local = address;
	if (!local)
		return MNL_CB_OK;
	a = vec_push(vec);
	if (!a)
		return MNL_CB_ERROR;
	a->ifindex = ifa->ifa_index;
	a->scope = ifa->ifa_scope;
	a->addr.family = ifa->ifa_family;
	memcpy(a->addr.bytes, local, alen);
	return MNL_CB_OK;
}

static int link_cb(const struct nlmsghdr *nlh, void *data)
{
	const struct ifinfomsg *ifi = mnl_nlmsg_get_payload(nlh);
	struct vec *vec = data;
	const struct nlattr *attr;
	struct nl_link *l = vec_push(vec);

	if (!l)
		return MNL_CB_ERROR;
	l->ifindex = (uint32_t)ifi->ifi_index;
	l->up = ifi->ifi_flags & IFF_UP;
	mnl_attr_for_each(attr, nlh, sizeof(*ifi))
	{
		if (mnl_attr_get_type(attr) == IFLA_IFNAME) {
			strncpy(l->name, mnl_attr_get_str(attr), sizeof(l->name) - 1);
		} else if (mnl_attr_get_type(attr) == IFLA_LINKINFO) {
			const struct nlattr *in;

			mnl_attr_for_each_nested(in, attr)
			{
				if (mnl_attr_get_type(in) == IFLA_INFO_KIND)
					strncpy(l->kind, mnl_attr_get_str(in), sizeof(l->kind) - 1);
			}
		}
	}
	return MNL_CB_OK;
}

static int dump(uint16_t type, size_t hdrlen, mnl_cb_t cb, struct vec *vec)
{
	char buf[32768]; /* a dump batch; larger than a page, as libmnl advises */
	struct mnl_socket *nl;
	struct nlmsghdr *nlh;
	unsigned int seq = (unsigned int)time(NULL), portid;
	ssize_t len;
	int r = 0;

	nl = mnl_socket_open(NETLINK_ROUTE);
	if (!nl)
		return -errno;
	if (mnl_socket_bind(nl, 0, MNL_SOCKET_AUTOPID) < 0) {
		r = -errno;
		mnl_socket_close(nl);
		return r;
	}
	portid = mnl_socket_get_portid(nl);
	nlh = mnl_nlmsg_put_header(buf);
	nlh->nlmsg_type = type;
	nlh->nlmsg_flags = NLM_F_REQUEST | NLM_F_DUMP;
	nlh->nlmsg_seq = seq;
	/* ifaddrmsg and ifinfomsg both start with the family. */
	*(uint8_t *)mnl_nlmsg_put_extra_header(nlh, hdrlen) = AF_UNSPEC;
	if (mnl_socket_sendto(nl, nlh, nlh->nlmsg_len) < 0) {
		r = -errno;
		goto out;
	}
	while ((len = mnl_socket_recvfrom(nl, buf, sizeof(buf))) > 0) {
		r = mnl_cb_run(buf, (size_t)len, seq, portid, cb, vec);
		if (r <= MNL_CB_STOP)
			break;
	}
	if (len < 0)
		r = -errno;
	else if (r < 0)
		r = vec->err ? vec->err : -errno;
	else
		r = 0;
out:
	mnl_socket_close(nl);
	return r;
}

int nl_dump_addrs(struct nl_addr **ret)
{
	struct vec vec = {.size = sizeof(struct nl_addr)};
	int r = dump(RTM_GETADDR, sizeof(struct ifaddrmsg), addr_cb, &vec);

	if (r < 0) {
		free(vec.v);
		return r;
	}
	*ret = vec.v;
	return (int)vec.n;
}

int nl_dump_links(struct nl_link **ret)
{
	struct vec vec = {.size = sizeof(struct nl_link)};
	int r = dump(RTM_GETLINK, sizeof(struct ifinfomsg), link_cb, &vec);

	if (r < 0) {
		free(vec.v);
		return r;
	}
	*ret = vec.v;
	return (int)vec.n;
}
