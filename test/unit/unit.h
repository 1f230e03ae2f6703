/* A minimal unit-test harness for kproxy's C tests.
 *
 * A test file defines functions with TEST(name) and lists them in
 * UNIT_MAIN(...).  Each test runs in order; CHECK() records a failure with its
 * file and line and carries on, REQUIRE() ends the test.  The program prints
 * "PASS name" / "FAIL name" lines and a closing "N passed, N failed" line,
 * and exits non-zero when anything failed.  An argument filters tests by
 * substring.  Header-only, so each test file is one program. */
#ifndef KPROXY_TEST_UNIT_H
#define KPROXY_TEST_UNIT_H

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct unit_test {
	const char *name;
	void (*fn)(void);
};

static int unit_failures_in_test;

#define TEST(name) static void test_##name(void)
#define T(name)                    \
	{                          \
#name, test_##name \
	}

#define CHECK(cond)                                                                          \
	do {                                                                                 \
		if (!(cond)) {                                                               \
			fprintf(stderr, "    %s:%d: CHECK(%s) failed\n", __FILE__, __LINE__, \
				#cond);                                                      \
			unit_failures_in_test++;                                             \
		}                                                                            \
	} while (0)

#define REQUIRE(cond)                                                                          \
	do {                                                                                   \
		if (!(cond)) {                                                                 \
			fprintf(stderr, "    %s:%d: REQUIRE(%s) failed\n", __FILE__, __LINE__, \
				#cond);                                                        \
			unit_failures_in_test++;                                               \
			return;                                                                \
		}                                                                              \
	} while (0)

#define CHECK_EQ_INT(a, b)                                                                        \
	do {                                                                                      \
		long long _a = (long long)(a), _b = (long long)(b);                               \
		if (_a != _b) {                                                                   \
			fprintf(stderr, "    %s:%d: %s == %lld, expected %s == %lld\n", __FILE__, \
				__LINE__, #a, _a, #b, _b);                                        \
			unit_failures_in_test++;                                                  \
		}                                                                                 \
	} while (0)

#define CHECK_EQ_STR(a, b)                                                                      \
	do {                                                                                    \
		const char *_a = (a), *_b = (b);                                                \
		if (!_a || !_b || strcmp(_a, _b)) {                                             \
			fprintf(stderr, "    %s:%d: %s is \"%s\", expected \"%s\"\n", __FILE__, \
				__LINE__, #a, _a ? _a : "(null)", _b ? _b : "(null)");          \
			unit_failures_in_test++;                                                \
		}                                                                               \
	} while (0)

/* True when haystack contains needle (for checking error messages). */
static inline bool unit_contains(const char *haystack, const char *needle)
{
	return haystack && needle && strstr(haystack, needle) != NULL;
}

static inline int unit_run(const struct unit_test *tests, size_t n, int argc, char **argv)
{
	int passed = 0, failed = 0;

	for (size_t i = 0; i < n; i++) {
		if (argc > 1 && !strstr(tests[i].name, argv[1]))
			continue;
		unit_failures_in_test = 0;
		tests[i].fn();
		if (unit_failures_in_test) {
			printf("FAIL %s\n", tests[i].name);
			failed++;
		} else {
			printf("PASS %s\n", tests[i].name);
			passed++;
		}
		fflush(stdout);
	}
	printf("%d passed, %d failed\n", passed, failed);
	return failed ? 1 : 0;
}

#define UNIT_MAIN(...)                                                                \
	int main(int argc, char **argv)                                               \
	{                                                                             \
		static const struct unit_test tests[] = {__VA_ARGS__};                \
		return unit_run(tests, sizeof(tests) / sizeof(tests[0]), argc, argv); \
	}

#endif
