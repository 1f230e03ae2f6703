#include "util/jsonarena.h"

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>

struct block {
	struct block *next;
	size_t size, used;
	max_align_t data[];
};

#define BLOCK_SIZE (1u << 20)
/* Blocks kept for the next window; more than this is given back. */
#define KEEP_BLOCKS 2

static struct block *active; /* blocks in use; the one being filled first */
static struct block *spare;  /* emptied standard blocks kept for reuse */
static unsigned depth;
static bool installed;

static void *arena_take(size_t n)
{
	struct block *b = active;
	void *p;

	n = (n + 15) & ~(size_t)15;
	if (n > BLOCK_SIZE / 4) {
		/* A block of its own, behind the one being filled. */
		b = malloc(sizeof(*b) + n);
		if (!b)
			return NULL;
		b->size = b->used = n;
		if (active) {
			b->next = active->next;
			active->next = b;
		} else {
			b->next = NULL;
			active = b;
		}
		return b->data;
	}
	if (!b || b->size - b->used < n) {
		if (spare) {
			b = spare;
			spare = b->next;
		} else {
			b = malloc(sizeof(*b) + BLOCK_SIZE);
			if (!b)
				return NULL;
			b->size = BLOCK_SIZE;
		}
		b->used = 0;
		b->next = active;
		active = b;
	}
	p = (char *)b->data + b->used;
	b->used += n;
	return p;
}

/* Outside a window jansson gets plain malloc memory, so that what it hands
 * out (json_dumps() results) can be released with free() as usual. */
static void *arena_malloc(size_t n)
{
	if (n > SIZE_MAX - 16)
		return NULL;
	return depth ? arena_take(n) : malloc(n);
}

/* Memory of a block in use is taken back at the window's end; anything else
 * came from malloc.  Only the blocks of the current window are searched:
 * outside a window none is in use. */
static void arena_free(void *p)
{
	if (!p)
		return;
	for (struct block *b = active; b; b = b->next) {
		if ((char *)p >= (char *)b->data && (char *)p < (char *)b->data + b->size)
			return;
	}
	free(p);
}

void json_arena_install(void)
{
	json_set_alloc_funcs(arena_malloc, arena_free);
	installed = true;
}

void json_arena_begin(void)
{
	depth++;
}

void json_arena_drop(json_t *v)
{
	if (!installed || !depth)
		json_decref(v);
}

void json_arena_end(void)
{
	unsigned kept = 0;

	if (!depth || --depth)
		return;
	for (struct block *b = spare; b; b = b->next)
		kept++;
	/* Keep a few standard blocks for the next window; give the rest back. */
	while (active) {
		struct block *b = active;

		active = b->next;
		if (kept < KEEP_BLOCKS && b->size == BLOCK_SIZE) {
			b->next = spare;
			spare = b;
			kept++;
		} else {
			free(b);
		}
	}
}

size_t json_arena_retained(void)
{
	size_t n = 0;

	for (struct block *b = active; b; b = b->next)
		n += b->size;
	for (struct block *b = spare; b; b = b->next)
		n += b->size;
	return n;
}
