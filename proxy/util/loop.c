/* epoll event loop with one-shot timers; see loop.h.
 *
 * File descriptor entries are kept in an array indexed by fd.  An entry
 * removed during dispatch is only marked dead and freed after the current
 * batch of events, so a callback may remove any fd (its own or another's)
 * without the dispatcher touching freed memory.  Timers sit in a list sorted
 * by deadline; the agent has a handful of them, so a heap would buy nothing. */
#include "util/loop.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <time.h>
#include <unistd.h>

struct fd_entry {
	int fd;
	bool dead;
	loop_fd_fn fn;
	void *data;
	struct fd_entry *next_dead;
};

struct loop_timer {
	struct loop *loop;
	loop_timer_fn fn;
	void *data;
	uint64_t when_ms;
	bool armed;
	bool firing;
	bool freed;
	struct loop_timer *prev, *next;
};

struct loop {
	int epfd;
	struct fd_entry **fds;
	int nfds;
	struct fd_entry *dead;
	struct loop_timer *timers; /* armed ones, sorted by when_ms */
	bool quit;
	int code;
};

uint64_t loop_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

uint64_t loop_now_ms(void)
{
	return loop_now_ns() / 1000000ull;
}

int loop_new(struct loop **ret_loop)
{
	struct loop *loop = calloc(1, sizeof(*loop));

	if (!loop)
		return -ENOMEM;
	loop->epfd = epoll_create1(EPOLL_CLOEXEC);
	if (loop->epfd < 0) {
		int err = -errno;

		free(loop);
		return err;
	}
	*ret_loop = loop;
	return 0;
}

static void reap_dead(struct loop *loop)
{
	while (loop->dead) {
		struct fd_entry *e = loop->dead;

		loop->dead = e->next_dead;
		free(e);
	}
}

void loop_free(struct loop *loop)
{
	if (!loop)
		return;
	for (int i = 0; i < loop->nfds; i++)
		free(loop->fds[i]);
	free(loop->fds);
	reap_dead(loop);
	while (loop->timers) {
		struct loop_timer *t = loop->timers;

		loop->timers = t->next;
		t->loop = NULL;
	}
	close(loop->epfd);
	free(loop);
}

int loop_add_fd(struct loop *loop, int fd, uint32_t events, loop_fd_fn fn, void *data)
{
	struct epoll_event ev = {.events = events};
	struct fd_entry *e;

	if (fd < 0)
		return -EBADF;
	if (fd >= loop->nfds) {
		int n = loop->nfds ? loop->nfds : 64;
		struct fd_entry **fds;

		while (n <= fd)
			n *= 2;
		fds = realloc(loop->fds, (size_t)n * sizeof(*fds));
		if (!fds)
			return -ENOMEM;
		memset(fds + loop->nfds, 0, (size_t)(n - loop->nfds) * sizeof(*fds));
		loop->fds = fds;
		loop->nfds = n;
	}
	if (loop->fds[fd])
		return -EEXIST;
	e = calloc(1, sizeof(*e));
	if (!e)
		return -ENOMEM;
	e->fd = fd;
	e->fn = fn;
	e->data = data;
	ev.data.ptr = e;
	if (epoll_ctl(loop->epfd, EPOLL_CTL_ADD, fd, &ev) < 0) {
		int err = -errno;

		free(e);
		return err;
	}
	loop->fds[fd] = e;
	return 0;
}

int loop_mod_fd(struct loop *loop, int fd, uint32_t events)
{
	struct epoll_event ev = {.events = events};

	if (fd < 0 || fd >= loop->nfds || !loop->fds[fd])
		return -ENOENT;
	ev.data.ptr = loop->fds[fd];
	if (epoll_ctl(loop->epfd, EPOLL_CTL_MOD, fd, &ev) < 0)
		return -errno;
	return 0;
}

void loop_del_fd(struct loop *loop, int fd)
{
	struct fd_entry *e;

	if (fd < 0 || fd >= loop->nfds || !loop->fds[fd])
		return;
	e = loop->fds[fd];
	loop->fds[fd] = NULL;
	/* The fd may already be closed by its owner; ignore the error. */
	epoll_ctl(loop->epfd, EPOLL_CTL_DEL, fd, NULL);
	e->dead = true;
	e->next_dead = loop->dead;
	loop->dead = e;
}

struct loop_timer *loop_timer_new(struct loop *loop, loop_timer_fn fn, void *data)
{
	struct loop_timer *t = calloc(1, sizeof(*t));

	if (!t)
		return NULL;
	t->loop = loop;
	t->fn = fn;
	t->data = data;
	return t;
}

static void timer_unlink(struct loop_timer *t)
{
	if (!t->armed)
		return;
	if (t->prev)
		t->prev->next = t->next;
	else if (t->loop)
		t->loop->timers = t->next;
	if (t->next)
		t->next->prev = t->prev;
	t->prev = t->next = NULL;
	t->armed = false;
}

void loop_timer_arm_at(struct loop_timer *t, uint64_t when_ms)
{
	struct loop_timer **pp, *prev = NULL;

	if (!t || !t->loop)
		return;
	timer_unlink(t);
	t->when_ms = when_ms;
	for (pp = &t->loop->timers; *pp && (*pp)->when_ms <= when_ms; pp = &(*pp)->next)
		prev = *pp;
	t->next = *pp;
	t->prev = prev;
	if (*pp)
		(*pp)->prev = t;
	*pp = t;
	t->armed = true;
}

void loop_timer_arm(struct loop_timer *t, uint64_t delay_ms)
{
	loop_timer_arm_at(t, loop_now_ms() + delay_ms);
}

void loop_timer_disarm(struct loop_timer *t)
{
	if (t)
		timer_unlink(t);
}

bool loop_timer_armed(const struct loop_timer *t)
{
	return t && t->armed;
}

uint64_t loop_timer_deadline(const struct loop_timer *t)
{
	return t->when_ms;
}

void loop_timer_free(struct loop_timer *t)
{
	if (!t)
		return;
	timer_unlink(t);
	if (t->firing) {
		/* Freed by run_timers() once the callback returns. */
		t->freed = true;
		return;
	}
	free(t);
}

static void run_timers(struct loop *loop)
{
	uint64_t now = loop_now_ms();

	while (loop->timers && loop->timers->when_ms <= now && !loop->quit) {
		struct loop_timer *t = loop->timers;

		timer_unlink(t);
		t->firing = true;
		t->fn(loop, t, t->data);
		t->firing = false;
		if (t->freed)
			free(t);
	}
}

static int next_timeout(struct loop *loop)
{
	uint64_t now;

	if (!loop->timers)
		return -1;
	now = loop_now_ms();
	if (loop->timers->when_ms <= now)
		return 0;
	if (loop->timers->when_ms - now > 60000)
		return 60000;
	return (int)(loop->timers->when_ms - now);
}

int loop_run(struct loop *loop)
{
	struct epoll_event evs[64];

	loop->quit = false;
	while (!loop->quit) {
		int n = epoll_wait(loop->epfd, evs, 64, next_timeout(loop));

		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		for (int i = 0; i < n && !loop->quit; i++) {
			struct fd_entry *e = evs[i].data.ptr;

			if (!e->dead)
				e->fn(loop, e->fd, evs[i].events, e->data);
		}
		reap_dead(loop);
		run_timers(loop);
	}
	return loop->code;
}

void loop_quit(struct loop *loop, int code)
{
	loop->quit = true;
	loop->code = code;
}
