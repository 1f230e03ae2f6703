/* Splitting a byte stream into newline-terminated lines, as watch streams
 * arrive: in chunks of any size, a line possibly spread over many chunks.
 * Lines longer than a limit are refused, so a stream that never sends a
 * newline cannot make the reader grow without bound. */
#ifndef KPROXY_UTIL_LINES_H
#define KPROXY_UTIL_LINES_H

#include <stddef.h>

struct line_reader {
	char *buf; /* the start of a line not yet complete */
	size_t len, cap;
	size_t max; /* longest line accepted, in bytes */
};

/* Called for each complete line, without its '\n'; a negative return stops
 * the feed and is passed on. */
typedef int (*line_fn)(void *ctx, const char *line, size_t len);

/* Feeds a chunk.  Returns 0, the first negative value fn returned, -EFBIG
 * when a line exceeds lr->max, or -ENOMEM.  After an error the partial line
 * is dropped. */
int line_reader_feed(struct line_reader *lr, const char *data, size_t len, line_fn fn, void *ctx);
/* Drops any partial line and releases the buffer; lr->max is kept. */
void line_reader_reset(struct line_reader *lr);

#endif
