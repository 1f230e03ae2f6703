/* Line splitting for streams; see lines.h.  Complete lines inside a chunk
 * are handed to the callback straight from the chunk; only a line that
 * straddles chunks is copied. */
#include "util/lines.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

void line_reader_reset(struct line_reader *lr)
{
	free(lr->buf);
	lr->buf = NULL;
	lr->len = lr->cap = 0;
}

static int append(struct line_reader *lr, const char *p, size_t n)
{
	if (lr->len + n > lr->max)
		return -EFBIG;
	if (lr->len + n > lr->cap) {
		size_t cap = lr->cap ? lr->cap : 4096;
		char *nb;

		while (cap < lr->len + n)
			cap *= 2;
		if (cap > lr->max)
			cap = lr->max;
		nb = realloc(lr->buf, cap ? cap : 1);
		if (!nb)
			return -ENOMEM;
		lr->buf = nb;
		lr->cap = cap;
	}
	memcpy(lr->buf + lr->len, p, n);
	lr->len += n;
	return 0;
}

int line_reader_feed(struct line_reader *lr, const char *data, size_t len, line_fn fn, void *ctx)
{
	size_t start = 0;
	int r;

	while (start < len) {
		const char *nl = memchr(data + start, '\n', len - start);
		size_t end;

		if (!nl) {
			r = append(lr, data + start, len - start);
			if (r < 0)
				line_reader_reset(lr);
			return r;
		}
		end = (size_t)(nl - data);
		if (lr->len) {
			r = append(lr, data + start, end - start);
			if (r == 0)
				r = fn(ctx, lr->buf, lr->len);
			lr->len = 0;
		} else if (end - start > lr->max) {
			r = -EFBIG;
		} else {
			r = fn(ctx, data + start, end - start);
		}
		if (r < 0) {
			line_reader_reset(lr);
			return r;
		}
		start = end + 1;
	}
	return 0;
}
