/* Chained hash table with power-of-two bucket counts; see hashmap.h.
 *
 * Each entry is one allocation holding the key bytes after the header.  The
 * table doubles when it holds more entries than buckets, so chains stay short
 * and a lookup costs one hash and a comparison or two. */
#include "util/hashmap.h"

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/random.h>

struct entry {
	struct entry *next;
	uint64_t hash;
	void *value;
	size_t key_len;
	unsigned char key[];
};

struct hashmap {
	struct entry **buckets;
	size_t nbuckets; /* a power of two */
	size_t size;
};

static uint64_t hash_seed;

static uint64_t hash_bytes(const void *key, size_t len)
{
	const unsigned char *p = key;
	uint64_t h;

	if (!hash_seed) {
		uint64_t s = 0;

		if (getrandom(&s, sizeof(s), GRND_NONBLOCK) != sizeof(s))
			s = (uint64_t)(uintptr_t)&s;
		hash_seed = s | 1;
	}
	/* FNV-1a over the bytes, started from the seed, then a final avalanche
	 * (the murmur3 finaliser) so that low bits depend on every byte. */
	h = 0xcbf29ce484222325ull ^ hash_seed;
	for (size_t i = 0; i < len; i++) {
		h ^= p[i];
		h *= 0x100000001b3ull;
	}
	h ^= h >> 33;
	h *= 0xff51afd7ed558ccdull;
	h ^= h >> 33;
	h *= 0xc4ceb9fe1a85ec53ull;
	h ^= h >> 33;
	return h;
}

struct hashmap *hashmap_new(void)
{
	struct hashmap *map = calloc(1, sizeof(*map));

	if (!map)
		return NULL;
	map->nbuckets = 16;
	map->buckets = calloc(map->nbuckets, sizeof(*map->buckets));
	if (!map->buckets) {
		free(map);
		return NULL;
	}
	return map;
}

void hashmap_clear(struct hashmap *map, void (*free_value)(void *value))
{
	for (size_t i = 0; i < map->nbuckets; i++) {
		struct entry *e = map->buckets[i];

		while (e) {
			struct entry *next = e->next;

			if (free_value)
				free_value(e->value);
			free(e);
			e = next;
		}
		map->buckets[i] = NULL;
	}
	map->size = 0;
}

void hashmap_free(struct hashmap *map, void (*free_value)(void *value))
{
	if (!map)
		return;
	for (size_t i = 0; i < map->nbuckets; i++) {
		struct entry *e = map->buckets[i];

		while (e) {
			struct entry *next = e->next;

			if (free_value)
				free_value(e->value);
			free(e);
			e = next;
		}
	}
	free(map->buckets);
	free(map);
}

static struct entry **find(const struct hashmap *map, const void *key, size_t key_len,
			   uint64_t hash)
{
	struct entry **pp = &map->buckets[hash & (map->nbuckets - 1)];

	for (; *pp; pp = &(*pp)->next) {
		if ((*pp)->hash == hash && (*pp)->key_len == key_len &&
		    memcmp((*pp)->key, key, key_len) == 0)
			return pp;
	}
	return pp;
}

static void grow(struct hashmap *map)
{
	size_t n = map->nbuckets * 2;
	struct entry **b = calloc(n, sizeof(*b));

	if (!b)
		return; /* keep working with longer chains */
	for (size_t i = 0; i < map->nbuckets; i++) {
		struct entry *e = map->buckets[i];

		while (e) {
			struct entry *next = e->next;
			size_t j = e->hash & (n - 1);

			e->next = b[j];
			b[j] = e;
			e = next;
		}
	}
	free(map->buckets);
	map->buckets = b;
	map->nbuckets = n;
}

int hashmap_put(struct hashmap *map, const void *key, size_t key_len, void *value, void **ret_old)
{
	uint64_t hash = hash_bytes(key, key_len);
	struct entry **pp = find(map, key, key_len, hash);
	struct entry *e;

	if (*pp) {
		if (ret_old)
			*ret_old = (*pp)->value;
		(*pp)->value = value;
		return 1;
	}
	e = malloc(sizeof(*e) + key_len);
	if (!e)
		return -ENOMEM;
	e->next = NULL;
	e->hash = hash;
	e->value = value;
	e->key_len = key_len;
	memcpy(e->key, key, key_len);
	*pp = e;
	map->size++;
	if (map->size > map->nbuckets)
		grow(map);
	return 0;
}

void *hashmap_get(const struct hashmap *map, const void *key, size_t key_len)
{
	struct entry **pp = find(map, key, key_len, hash_bytes(key, key_len));

	return *pp ? (*pp)->value : NULL;
}

void *hashmap_remove(struct hashmap *map, const void *key, size_t key_len)
{
	struct entry **pp = find(map, key, key_len, hash_bytes(key, key_len));
	struct entry *e = *pp;
	void *value;

	if (!e)
		return NULL;
	*pp = e->next;
	value = e->value;
	free(e);
	map->size--;
	return value;
}

size_t hashmap_size(const struct hashmap *map)
{
	return map ? map->size : 0;
}

bool hashmap_next(const struct hashmap *map, struct hashmap_iter *iter, const void **ret_key,
		  size_t *ret_key_len, void **ret_value)
{
	struct entry *e = iter->entry;

	/* iter->entry is the entry to return next (already looked up), so the
	 * caller may free the one just returned. */
	if (!e) {
		while (iter->bucket < map->nbuckets && !map->buckets[iter->bucket])
			iter->bucket++;
		if (iter->bucket >= map->nbuckets)
			return false;
		e = map->buckets[iter->bucket];
	}
	if (e->next) {
		iter->entry = e->next;
	} else {
		iter->entry = NULL;
		iter->bucket++;
	}
	if (ret_key)
		*ret_key = e->key;
	if (ret_key_len)
		*ret_key_len = e->key_len;
	if (ret_value)
		*ret_value = e->value;
	return true;
}
