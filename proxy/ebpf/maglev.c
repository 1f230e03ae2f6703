/* Maglev table population; see maglev.h.  Each backend walks its own
 * permutation of the table (an offset and a skip derived from two hashes of
 * its name) and the backends take turns claiming the next free entry of
 * their walk until the table is full. */
#include "ebpf/maglev.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

/* FNV-1a over the name, from a seed, so that two seeds give two hashes. */
static uint64_t name_hash(const struct maglev_backend *be, uint64_t seed)
{
	uint64_t h = seed;
	uint8_t buf[20];
	size_t len = ipaddr_len(&be->addr);

	memcpy(buf, be->addr.bytes, len);
	buf[len] = (uint8_t)(be->port >> 8);
	buf[len + 1] = (uint8_t)(be->port & 0xff);
	for (size_t i = 0; i < len + 2; i++) {
		h ^= buf[i];
		h *= 0x100000001b3ull;
	}
	/* Mix the high bits down; FNV's low bits are weak for small inputs. */
	h ^= h >> 33;
	h *= 0xff51afd7ed558ccdull;
	h ^= h >> 33;
	return h;
}

int maglev_fill(const struct maglev_backend *bes, size_t n, uint32_t *table, uint32_t size)
{
	uint32_t *offset, *skip, *next;
	uint8_t *taken;
	uint32_t filled = 0;

	if (!n || size < 2)
		return -EINVAL;
	offset = calloc(n, sizeof(*offset));
	skip = calloc(n, sizeof(*skip));
	next = calloc(n, sizeof(*next));
	taken = calloc(size, 1);
	if (!offset || !skip || !next || !taken) {
		free(offset);
		free(skip);
		free(next);
		free(taken);
		return -ENOMEM;
	}
	for (size_t i = 0; i < n; i++) {
		offset[i] = (uint32_t)(name_hash(&bes[i], 0xcbf29ce484222325ull) % size);
		skip[i] = (uint32_t)(name_hash(&bes[i], 0x84222325cbf29ce4ull) % (size - 1)) + 1;
	}
	while (filled < size) {
		for (size_t i = 0; i < n && filled < size; i++) {
			uint32_t c;

			/* Each walk visits every entry once (size is prime), so
			 * this ends. */
			do {
				c = (uint32_t)((offset[i] + (uint64_t)next[i] * skip[i]) % size);
				next[i]++;
			} while (taken[c]);
			taken[c] = 1;
			table[c] = bes[i].id;
			filled++;
		}
	}
	free(offset);
	free(skip);
	free(next);
	free(taken);
	return 0;
}
