/* libFuzzer target for the watch-stream path: framing by the line reader,
 * then each line parsed and decoded as the reflector does it.
 *
 * Input layout: the first byte gives the number of chunk sizes that follow
 * (1-8); each of those bytes, plus one, is the size of the next chunk, the
 * sizes repeating until the stream is used up.  The rest is the stream.  So
 * the fuzzer chooses both the bytes and where the network splits them.
 *
 * The reader's output is checked against a plain split of the whole stream
 * at '\n': the same lines, in the same order, until the first line longer
 * than the limit, which must be refused with -EFBIG (the reflector then
 * lists again; here the next chunk starts a fresh stream).  Events go to the
 * decoders and a change tracker, as ADDED/MODIFIED/DELETED would. */
#include <errno.h>
#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kube/decode.h"
#include "model/tracker.h"
#include "util/lines.h"

#define FUZZ_MAX_LINE 4096

struct ctx {
	struct tracker *tracker;
	/* Reference lines: the stream split at '\n' from ref_pos on. */
	const char *stream;
	size_t stream_len;
	size_t ref_pos;
	bool diverged; /* after an error the reference is not followed */
	size_t events;
};

/* A broken expectation is a crash, with the expectation named. */
#define check(cond)                                                                               \
	do {                                                                                      \
		if (!(cond)) {                                                                    \
			fprintf(stderr, "check failed: %s (%s:%d)\n", #cond, __FILE__, __LINE__); \
			__builtin_trap();                                                         \
		}                                                                                 \
	} while (0)

static void apply_event(struct ctx *c, const char *type, json_t *obj)
{
	char key[OBJECT_KEY_MAX], err[512];
	struct service *svc = NULL;
	struct endpoint_slice *slice = NULL;
	struct node_info *node = NULL;
	const char *kind = json_string_value(json_object_get(obj, "kind"));

	if (decode_object_key(obj, key, sizeof(key), err, sizeof(err)) < 0)
		return;
	if (!strcmp(type, "DELETED")) {
		if (!kind || !strcmp(kind, "Service"))
			tracker_service_remove(c->tracker, key);
		if (!kind || !strcmp(kind, "EndpointSlice"))
			tracker_slice_remove(c->tracker, key);
		if (kind && !strcmp(kind, "Node"))
			tracker_node_set(c->tracker, NULL);
		return;
	}
	if (strcmp(type, "ADDED") && strcmp(type, "MODIFIED"))
		return;
	/* The reflector of each kind runs its own decoder; without a kind,
	 * try them all. */
	if ((!kind || !strcmp(kind, "Service")) &&
	    decode_service(obj, &svc, err, sizeof(err)) == 0 && svc)
		tracker_service_upsert(c->tracker, key, svc);
	if ((!kind || !strcmp(kind, "EndpointSlice")) &&
	    decode_endpoint_slice(obj, &slice, err, sizeof(err)) == 0 && slice)
		tracker_slice_upsert(c->tracker, key, slice);
	if ((!kind || !strcmp(kind, "Node")) && decode_node(obj, &node, err, sizeof(err)) == 0 &&
	    node)
		tracker_node_set(c->tracker, node);
}

static int on_line(void *data, const char *line, size_t len)
{
	struct ctx *c = data;
	json_error_t jerr;
	json_t *ev;
	const char *type;

	check(len <= FUZZ_MAX_LINE);
	check(memchr(line, '\n', len) == NULL);
	if (!c->diverged) {
		const char *start = c->stream + c->ref_pos;
		const char *nl = memchr(start, '\n', c->stream_len - c->ref_pos);

		/* The reader handed over a line: the reference has a complete one
		 * here, with the same bytes. */
		check(nl != NULL);
		check((size_t)(nl - start) == len);
		check(memcmp(start, line, len) == 0);
		c->ref_pos += len + 1;
	}

	while (len && (line[len - 1] == '\r' || line[len - 1] == ' '))
		len--;
	if (!len)
		return 0;
	ev = json_loadb(line, len, 0, &jerr);
	if (!ev)
		return 0;
	type = json_string_value(json_object_get(ev, "type"));
	if (json_is_object(ev) && type && json_is_object(json_object_get(ev, "object"))) {
		apply_event(c, type, json_object_get(ev, "object"));
		c->events++;
	}
	json_decref(ev);
	return 0;
}

static void sync_once(struct tracker *t)
{
	struct tracker_changes ch;

	if (tracker_prepare(t, false, &ch) == 0)
		tracker_commit(t, &ch);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	json_object_seed(1);
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct line_reader lr = {.max = FUZZ_MAX_LINE};
	struct ctx c = {0};
	const uint8_t *sizes;
	size_t n_sizes, pos, k = 0;

	if (size < 2)
		return 0;
	n_sizes = (size_t)(data[0] % 8) + 1;
	if (size < 1 + n_sizes)
		return 0;
	sizes = data + 1;
	c.stream = (const char *)data + 1 + n_sizes;
	c.stream_len = size - 1 - n_sizes;
	if (tracker_new("node1", &c.tracker) < 0)
		return 0;

	for (pos = 0; pos < c.stream_len; k++) {
		size_t chunk = (size_t)sizes[k % n_sizes] + 1;
		int r;

		if (chunk > c.stream_len - pos)
			chunk = c.stream_len - pos;
		r = line_reader_feed(&lr, c.stream + pos, chunk, on_line, &c);
		check(r == 0 || r == -EFBIG || r == -ENOMEM);
		if (r == -EFBIG && !c.diverged) {
			/* Refused: the reference's next line (complete or not) must
			 * be longer than the limit. */
			const char *start = c.stream + c.ref_pos;
			const char *nl = memchr(start, '\n', c.stream_len - c.ref_pos);
			size_t ref_len = nl ? (size_t)(nl - start) : c.stream_len - c.ref_pos;

			check(ref_len > FUZZ_MAX_LINE);
			c.diverged = true;
		}
		pos += chunk;
		if (k % 4 == 3)
			sync_once(c.tracker);
	}
	if (!c.diverged) {
		/* Whatever is left after the last newline is a partial line, kept
		 * in the reader and never handed over. */
		check(memchr(c.stream + c.ref_pos, '\n', c.stream_len - c.ref_pos) == NULL);
		check(lr.len == c.stream_len - c.ref_pos);
	}
	sync_once(c.tracker);
	line_reader_reset(&lr);
	tracker_free(c.tracker);
	return 0;
}
