/* Tests for util/hashmap, the table behind every index the agent keeps:
 * insert, replace (with the previous value handed back), lookup and removal
 * with their return codes; keys copied on insert and compared as byte strings
 * of a given length (so embedded zero bytes and a trailing NUL matter);
 * growth through 100k keys; iteration that visits each entry exactly once,
 * also while the entry just returned is removed; and clear/free calling the
 * value destructor once per value. */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "unit.h"
#include "util/hashmap.h"

#define V(n) ((void *)(uintptr_t)(n))

static size_t freed;

static void count_free(void *v)
{
	(void)v;
	freed++;
}

TEST(put_get_remove)
{
	struct hashmap *m = hashmap_new();
	void *old = V(0xdead);

	REQUIRE(m);
	CHECK_EQ_INT(hashmap_size(m), 0);
	CHECK(hashmap_get_str(m, "a") == NULL);

	CHECK_EQ_INT(hashmap_put_str(m, "a", V(1), &old), 0);
	/* A new key leaves *ret_old alone. */
	CHECK(old == V(0xdead));
	CHECK_EQ_INT(hashmap_put_str(m, "b", V(2), NULL), 0);
	CHECK_EQ_INT(hashmap_size(m), 2);
	CHECK(hashmap_get_str(m, "a") == V(1));
	CHECK(hashmap_get_str(m, "b") == V(2));
	CHECK(hashmap_get_str(m, "c") == NULL);

	/* Replacing returns 1 and hands back the previous value. */
	CHECK_EQ_INT(hashmap_put_str(m, "a", V(10), &old), 1);
	CHECK(old == V(1));
	CHECK_EQ_INT(hashmap_size(m), 2);
	CHECK(hashmap_get_str(m, "a") == V(10));
	CHECK_EQ_INT(hashmap_put_str(m, "a", V(11), NULL), 1);
	CHECK(hashmap_get_str(m, "a") == V(11));

	CHECK(hashmap_remove_str(m, "a") == V(11));
	CHECK_EQ_INT(hashmap_size(m), 1);
	CHECK(hashmap_get_str(m, "a") == NULL);
	CHECK(hashmap_remove_str(m, "a") == NULL);
	CHECK(hashmap_remove_str(m, "zzz") == NULL);
	CHECK_EQ_INT(hashmap_size(m), 1);
	CHECK(hashmap_get_str(m, "b") == V(2));

	/* A removed key can be inserted again as new. */
	CHECK_EQ_INT(hashmap_put_str(m, "a", V(12), NULL), 0);
	CHECK(hashmap_get_str(m, "a") == V(12));
	hashmap_free(m, NULL);
}

TEST(keys_are_copied)
{
	struct hashmap *m = hashmap_new();
	char key[16];

	REQUIRE(m);
	strcpy(key, "default/web");
	CHECK_EQ_INT(hashmap_put_str(m, key, V(7), NULL), 0);
	strcpy(key, "default/xyz");
	CHECK(hashmap_get_str(m, "default/web") == V(7));
	CHECK(hashmap_get_str(m, key) == NULL);
	hashmap_free(m, NULL);
}

TEST(binary_keys)
{
	static const unsigned char k1[] = {0, 0, 1};
	static const unsigned char k2[] = {0, 0, 2};
	static const unsigned char k3[] = {0};
	static const unsigned char k4[] = {0, 0};
	static const unsigned char k5[] = {'a', 0, 'b'};
	static const unsigned char k6[] = {'a', 0, 'c'};
	struct hashmap *m = hashmap_new();
	const void *key;
	size_t key_len, seen = 0;
	struct hashmap_iter it = {0};

	REQUIRE(m);
	CHECK_EQ_INT(hashmap_put(m, k1, sizeof(k1), V(1), NULL), 0);
	CHECK_EQ_INT(hashmap_put(m, k2, sizeof(k2), V(2), NULL), 0);
	CHECK_EQ_INT(hashmap_put(m, k3, sizeof(k3), V(3), NULL), 0);
	CHECK_EQ_INT(hashmap_put(m, k4, sizeof(k4), V(4), NULL), 0);
	CHECK_EQ_INT(hashmap_put(m, k5, sizeof(k5), V(5), NULL), 0);
	CHECK_EQ_INT(hashmap_put(m, k6, sizeof(k6), V(6), NULL), 0);
	/* The empty key is a key too. */
	CHECK_EQ_INT(hashmap_put(m, "", 0, V(7), NULL), 0);
	CHECK_EQ_INT(hashmap_size(m), 7);

	CHECK(hashmap_get(m, k1, sizeof(k1)) == V(1));
	CHECK(hashmap_get(m, k2, sizeof(k2)) == V(2));
	CHECK(hashmap_get(m, k3, sizeof(k3)) == V(3));
	CHECK(hashmap_get(m, k4, sizeof(k4)) == V(4));
	CHECK(hashmap_get(m, k5, sizeof(k5)) == V(5));
	CHECK(hashmap_get(m, k6, sizeof(k6)) == V(6));
	CHECK(hashmap_get(m, "x", 0) == V(7));
	/* A prefix of a key is another key. */
	CHECK(hashmap_get(m, k1, 2) == V(4));
	CHECK(hashmap_get(m, k5, 1) == NULL);

	/* The _str helpers include the NUL, so "ab" the string and "ab" the two
	 * bytes are different keys. */
	CHECK_EQ_INT(hashmap_put(m, "ab", 2, V(8), NULL), 0);
	CHECK_EQ_INT(hashmap_put_str(m, "ab", V(9), NULL), 0);
	CHECK(hashmap_get(m, "ab", 2) == V(8));
	CHECK(hashmap_get_str(m, "ab") == V(9));

	/* Iteration hands back the exact bytes and lengths. */
	while (hashmap_next(m, &it, &key, &key_len, NULL)) {
		if (key_len == sizeof(k5) && !memcmp(key, k5, sizeof(k5)))
			seen++;
		if (key_len == sizeof(k4) && !memcmp(key, k4, sizeof(k4)))
			seen++;
	}
	CHECK_EQ_INT(seen, 2);

	CHECK(hashmap_remove(m, k4, sizeof(k4)) == V(4));
	CHECK(hashmap_get(m, k3, sizeof(k3)) == V(3));
	CHECK(hashmap_get(m, k1, sizeof(k1)) == V(1));
	hashmap_free(m, NULL);
}

TEST(many_keys)
{
	const size_t n = 100000;
	struct hashmap *m = hashmap_new();
	char key[32];
	size_t bad = 0;

	REQUIRE(m);
	for (size_t i = 0; i < n; i++) {
		snprintf(key, sizeof(key), "ns-%zu/svc-%zu", i % 97, i);
		if (hashmap_put_str(m, key, V(i + 1), NULL) != 0)
			bad++;
	}
	CHECK_EQ_INT(bad, 0);
	CHECK_EQ_INT(hashmap_size(m), n);
	for (size_t i = 0; i < n; i++) {
		snprintf(key, sizeof(key), "ns-%zu/svc-%zu", i % 97, i);
		if (hashmap_get_str(m, key) != V(i + 1))
			bad++;
	}
	CHECK_EQ_INT(bad, 0);
	/* Near misses are absent. */
	CHECK(hashmap_get_str(m, "ns-0/svc-100000") == NULL);
	CHECK(hashmap_get_str(m, "ns-1/svc-0") == NULL);

	/* Remove the even ones; the odd ones stay intact. */
	for (size_t i = 0; i < n; i += 2) {
		snprintf(key, sizeof(key), "ns-%zu/svc-%zu", i % 97, i);
		if (hashmap_remove_str(m, key) != V(i + 1))
			bad++;
	}
	CHECK_EQ_INT(bad, 0);
	CHECK_EQ_INT(hashmap_size(m), n / 2);
	for (size_t i = 0; i < n; i++) {
		void *want = i % 2 ? V(i + 1) : NULL;

		snprintf(key, sizeof(key), "ns-%zu/svc-%zu", i % 97, i);
		if (hashmap_get_str(m, key) != want)
			bad++;
	}
	CHECK_EQ_INT(bad, 0);
	hashmap_free(m, NULL);
}

TEST(iterate_each_once)
{
	const size_t n = 5000;
	struct hashmap *m = hashmap_new();
	unsigned char *seen = calloc(n, 1);
	struct hashmap_iter it = {0};
	const void *key;
	size_t key_len, visits = 0, bad = 0;
	void *value;
	char buf[32];

	REQUIRE(m);
	REQUIRE(seen);
	/* An empty table iterates to nothing. */
	CHECK(!hashmap_next(m, &it, &key, &key_len, &value));

	for (size_t i = 0; i < n; i++) {
		snprintf(buf, sizeof(buf), "k%zu", i);
		hashmap_put_str(m, buf, V(i + 1), NULL);
	}
	memset(&it, 0, sizeof(it));
	while (hashmap_next(m, &it, &key, &key_len, &value)) {
		size_t i = (uintptr_t)value - 1;

		visits++;
		if (i >= n) {
			bad++;
			continue;
		}
		seen[i]++;
		snprintf(buf, sizeof(buf), "k%zu", i);
		if (key_len != strlen(buf) + 1 || memcmp(key, buf, key_len))
			bad++;
	}
	CHECK_EQ_INT(visits, n);
	CHECK_EQ_INT(bad, 0);
	for (size_t i = 0; i < n; i++) {
		if (seen[i] != 1)
			bad++;
	}
	CHECK_EQ_INT(bad, 0);
	/* Every output is optional. */
	memset(&it, 0, sizeof(it));
	visits = 0;
	while (hashmap_next(m, &it, NULL, NULL, NULL))
		visits++;
	CHECK_EQ_INT(visits, n);
	free(seen);
	hashmap_free(m, NULL);
}

TEST(remove_while_iterating)
{
	const size_t n = 3000;
	struct hashmap *m = hashmap_new();
	unsigned char *seen = calloc(n, 1);
	struct hashmap_iter it = {0};
	const void *key;
	size_t key_len, visits = 0, bad = 0;
	void *value;
	char buf[32];

	REQUIRE(m);
	REQUIRE(seen);
	for (size_t i = 0; i < n; i++) {
		snprintf(buf, sizeof(buf), "k%zu", i);
		hashmap_put_str(m, buf, V(i + 1), NULL);
	}
	/* Remove the odd entries as they are returned: the key pointer is
	 * copied first, since it points into the entry being freed. */
	while (hashmap_next(m, &it, &key, &key_len, &value)) {
		size_t i = (uintptr_t)value - 1;

		visits++;
		seen[i]++;
		if (i % 2) {
			memcpy(buf, key, key_len);
			if (hashmap_remove(m, buf, key_len) != value)
				bad++;
		}
	}
	CHECK_EQ_INT(visits, n);
	CHECK_EQ_INT(bad, 0);
	CHECK_EQ_INT(hashmap_size(m), n / 2);
	for (size_t i = 0; i < n; i++) {
		if (seen[i] != 1)
			bad++;
		snprintf(buf, sizeof(buf), "k%zu", i);
		if (hashmap_get_str(m, buf) != (i % 2 ? NULL : V(i + 1)))
			bad++;
	}
	CHECK_EQ_INT(bad, 0);

	/* Then remove everything that is left, the same way. */
	memset(&it, 0, sizeof(it));
	visits = 0;
	while (hashmap_next(m, &it, &key, &key_len, &value)) {
		memcpy(buf, key, key_len);
		visits++;
		if (hashmap_remove(m, buf, key_len) != value)
			bad++;
	}
	CHECK_EQ_INT(visits, n / 2);
	CHECK_EQ_INT(bad, 0);
	CHECK_EQ_INT(hashmap_size(m), 0);
	free(seen);
	hashmap_free(m, NULL);
}

TEST(clear_and_free)
{
	struct hashmap *m = hashmap_new();
	struct hashmap_iter it = {0};
	char buf[32];

	REQUIRE(m);
	for (int i = 0; i < 100; i++) {
		snprintf(buf, sizeof(buf), "k%d", i);
		hashmap_put_str(m, buf, V(i + 1), NULL);
	}
	freed = 0;
	hashmap_clear(m, count_free);
	CHECK_EQ_INT(freed, 100);
	CHECK_EQ_INT(hashmap_size(m), 0);
	CHECK(hashmap_get_str(m, "k1") == NULL);
	CHECK(!hashmap_next(m, &it, NULL, NULL, NULL));

	/* The table is usable after a clear. */
	CHECK_EQ_INT(hashmap_put_str(m, "k1", V(5), NULL), 0);
	CHECK_EQ_INT(hashmap_put_str(m, "k2", V(6), NULL), 0);
	CHECK(hashmap_get_str(m, "k1") == V(5));
	CHECK_EQ_INT(hashmap_size(m), 2);
	hashmap_clear(m, NULL);
	CHECK_EQ_INT(hashmap_size(m), 0);

	for (int i = 0; i < 40; i++) {
		snprintf(buf, sizeof(buf), "k%d", i);
		hashmap_put_str(m, buf, V(i + 1), NULL);
	}
	freed = 0;
	hashmap_free(m, count_free);
	CHECK_EQ_INT(freed, 40);

	/* NULL is accepted where the header says so. */
	hashmap_free(NULL, count_free);
	CHECK_EQ_INT(hashmap_size(NULL), 0);
}

TEST(owned_values)
{
	struct hashmap *m = hashmap_new();
	void *old = NULL;
	char buf[32];

	REQUIRE(m);
	/* Heap values released by the table's destructor hook: a leak checker
	 * run over this test sees every one of them freed. */
	for (int i = 0; i < 1000; i++) {
		int *v = malloc(sizeof(*v));

		REQUIRE(v);
		*v = i;
		snprintf(buf, sizeof(buf), "k%d", i % 500);
		if (hashmap_put_str(m, buf, v, &old) == 1)
			free(old);
	}
	CHECK_EQ_INT(hashmap_size(m), 500);
	CHECK_EQ_INT(*(int *)hashmap_get_str(m, "k7"), 507);
	free(hashmap_remove_str(m, "k8"));
	CHECK_EQ_INT(hashmap_size(m), 499);
	hashmap_free(m, free);
}

UNIT_MAIN(T(put_get_remove), T(keys_are_copied), T(binary_keys), T(many_keys), T(iterate_each_once),
	  T(remove_while_iterating), T(clear_and_free), T(owned_values))
