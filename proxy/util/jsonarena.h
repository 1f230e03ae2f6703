/* Bump allocation for short-lived JSON documents.
 *
 * A list page of 500 EndpointSlices is several megabytes of JSON that
 * jansson turns into hundreds of thousands of small allocations, freed
 * again as soon as the page is decoded; malloc and free were half of the
 * agent's CPU in a full sync.  Between json_arena_begin() and
 * json_arena_end(), jansson allocates from large blocks instead, and frees
 * cost nothing; json_arena_end() takes everything back at once.
 *
 * Every JSON value created inside the window must be done with by
 * json_arena_end(), which takes its memory back (values created outside it
 * are unaffected, and may be used and freed inside it); and a string
 * json_dumps() returns inside a window is not free()'s to release.  Outside
 * windows jansson allocates with plain malloc.  Not thread-safe: the agent
 * has one thread. */
#ifndef KPROXY_UTIL_JSONARENA_H
#define KPROXY_UTIL_JSONARENA_H

#include <jansson.h>
#include <stddef.h>

/* Installs the allocator into jansson; call before any JSON value exists. */
void json_arena_install(void);
void json_arena_begin(void);
void json_arena_end(void);
/* Done with v, created inside the current window: json_decref() when the
 * arena is not installed, else nothing, since json_arena_end() takes all
 * of it back at once (walking a large document to free it costs as much as
 * decoding it). */
void json_arena_drop(json_t *v);
/* Bytes held by the arena between windows (for tests and metrics). */
size_t json_arena_retained(void);

#endif
