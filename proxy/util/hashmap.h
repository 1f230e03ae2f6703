/* A hash table from byte-string keys to pointers, used for every index the
 * agent keeps (objects by namespace/name, slices by Service, programmed
 * frontends by address).  The table owns copies of its keys; values are the
 * caller's.  The hash is seeded per process so that names chosen by whoever
 * creates API objects cannot be used to degrade lookups. */
#ifndef KPROXY_UTIL_HASHMAP_H
#define KPROXY_UTIL_HASHMAP_H

#include <stdbool.h>
#include <stddef.h>
#include <string.h>

struct hashmap;

struct hashmap_iter {
	size_t bucket;
	void *entry;
};

/* Returns a new empty table the caller owns, or NULL on allocation failure. */
struct hashmap *hashmap_new(void);
/* Accepts NULL.  free_value, if not NULL, is called on every value. */
void hashmap_free(struct hashmap *map, void (*free_value)(void *value));

/* Removes every entry, calling free_value (if not NULL) on each value. */
void hashmap_clear(struct hashmap *map, void (*free_value)(void *value));

/* Inserts or replaces.  When the key was present its old value is stored in
 * *ret_old (if ret_old is not NULL) and 1 is returned; 0 for a new key;
 * -ENOMEM on failure (the table is unchanged). */
int hashmap_put(struct hashmap *map, const void *key, size_t key_len, void *value, void **ret_old);
/* Returns the value, or NULL when absent. */
void *hashmap_get(const struct hashmap *map, const void *key, size_t key_len);
/* Removes the key; returns its value, or NULL when absent. */
void *hashmap_remove(struct hashmap *map, const void *key, size_t key_len);
size_t hashmap_size(const struct hashmap *map);

/* Iteration in no particular order.  Initialise the iterator with {0}.  The
 * entry last returned may be removed while iterating; nothing else may be
 * inserted or removed. *ret_key is a borrowed pointer into the table. */
bool hashmap_next(const struct hashmap *map, struct hashmap_iter *iter, const void **ret_key,
		  size_t *ret_key_len, void **ret_value);

static inline int hashmap_put_str(struct hashmap *map, const char *key, void *value, void **ret_old)
{
	return hashmap_put(map, key, strlen(key) + 1, value, ret_old);
}

static inline void *hashmap_get_str(const struct hashmap *map, const char *key)
{
	return hashmap_get(map, key, strlen(key) + 1);
}

static inline void *hashmap_remove_str(struct hashmap *map, const char *key)
{
	return hashmap_remove(map, key, strlen(key) + 1);
}

#endif
