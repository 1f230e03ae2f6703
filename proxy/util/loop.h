/* The agent's one event loop: epoll over file descriptors (curl's sockets,
 * HTTP listeners, signalfd, netlink) plus one-shot timers on the monotonic
 * clock.  Everything the agent does happens in a callback of this loop, on one
 * thread, so no module needs a lock. */
#ifndef KPROXY_UTIL_LOOP_H
#define KPROXY_UTIL_LOOP_H

#include <stdbool.h>
#include <stdint.h>

struct loop;
struct loop_timer;

/* Called with the epoll event bits (EPOLLIN, EPOLLOUT, EPOLLERR, EPOLLHUP). */
typedef void (*loop_fd_fn)(struct loop *loop, int fd, uint32_t events, void *data);
typedef void (*loop_timer_fn)(struct loop *loop, struct loop_timer *timer, void *data);

/* Returns 0 and a new loop the caller owns in *ret_loop, or -errno. */
int loop_new(struct loop **ret_loop);
/* Accepts NULL.  Timers stay owned by whoever made them: they are detached
 * here and must still be given to loop_timer_free(). */
void loop_free(struct loop *loop);

/* Watches fd for events; fd may be watched once. Returns 0 or -errno. */
int loop_add_fd(struct loop *loop, int fd, uint32_t events, loop_fd_fn fn, void *data);
int loop_mod_fd(struct loop *loop, int fd, uint32_t events);
/* Stops watching fd (it is not closed).  Safe from inside a callback. */
void loop_del_fd(struct loop *loop, int fd);

/* Returns a disarmed timer owned by the loop until loop_timer_free(), or NULL. */
struct loop_timer *loop_timer_new(struct loop *loop, loop_timer_fn fn, void *data);
/* (Re)arms the timer to fire once, delay_ms from now. */
void loop_timer_arm(struct loop_timer *timer, uint64_t delay_ms);
/* Arms the timer for an absolute monotonic time in milliseconds. */
void loop_timer_arm_at(struct loop_timer *timer, uint64_t when_ms);
void loop_timer_disarm(struct loop_timer *timer);
bool loop_timer_armed(const struct loop_timer *timer);
/* When an armed timer fires, in loop_now_ms() time. */
uint64_t loop_timer_deadline(const struct loop_timer *timer);
/* Accepts NULL; safe from inside the timer's own callback. */
void loop_timer_free(struct loop_timer *timer);

/* Runs until loop_quit(); returns the code given to it, or -errno. */
int loop_run(struct loop *loop);
void loop_quit(struct loop *loop, int code);

/* Monotonic clock in milliseconds and in nanoseconds. */
uint64_t loop_now_ms(void);
uint64_t loop_now_ns(void);

#endif
