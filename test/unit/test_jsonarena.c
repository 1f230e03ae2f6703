/* Tests for util/jsonarena, the bump allocator jansson uses while the agent
 * parses list pages and watch events.  Covered: values made before a window
 * survive it and can be freed inside or after it; documents parsed inside a
 * window are usable until its end; allocations larger than a block; nested
 * windows ending only at the outermost end; memory kept between windows
 * bounded; and the same documents parsed without any window. */
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "util/jsonarena.h"
#include "unit.h"

static json_t *outside; /* made before any window */

TEST(install_before_any_value)
{
	json_arena_install();
	outside = json_pack("{s:s, s:[i,i,i]}", "name", "kept", "ports", 80, 443, 8080);
	REQUIRE(outside != NULL);
}

TEST(document_lives_until_the_window_ends)
{
	json_error_t e;
	json_t *doc;

	json_arena_begin();
	doc = json_loads("{\"items\":[{\"a\":\"x\"},{\"a\":\"y\"}],\"n\":2}", 0, &e);
	REQUIRE(doc != NULL);
	CHECK_EQ_INT(json_array_size(json_object_get(doc, "items")), 2);
	CHECK_EQ_STR(json_string_value(json_object_get(
			     json_array_get(json_object_get(doc, "items"), 1), "a")),
		     "y");
	/* A value from before the window, used and changed inside it. */
	CHECK_EQ_STR(json_string_value(json_object_get(outside, "name")), "kept");
	json_decref(doc);
	json_arena_end();
	CHECK_EQ_INT(json_integer_value(json_array_get(json_object_get(outside, "ports"), 2)),
		     8080);
}

TEST(values_from_outside_freed_inside)
{
	json_t *v = json_string("made outside");

	REQUIRE(v != NULL);
	json_arena_begin();
	json_decref(v); /* really freed: ASan would see a leak otherwise */
	json_arena_end();
}

TEST(large_and_many_allocations)
{
	size_t big = 3u << 20;
	char *text = malloc(big + 3);
	json_error_t e;
	json_t *doc;

	REQUIRE(text != NULL);
	text[0] = '"';
	memset(text + 1, 'k', big);
	text[big + 1] = '"';
	text[big + 2] = '\0';
	for (int round = 0; round < 3; round++) {
		json_arena_begin();
		doc = json_loads(text, JSON_DECODE_ANY, &e);
		REQUIRE(doc != NULL);
		CHECK_EQ_INT(json_string_length(doc), big);
		/* Thousands of small values across several blocks. */
		json_t *arr = json_array();
		for (int i = 0; i < 100000; i++)
			json_array_append_new(arr, json_integer(i));
		CHECK_EQ_INT(json_integer_value(json_array_get(arr, 99999)), 99999);
		json_decref(arr);
		json_decref(doc);
		json_arena_end();
		/* Only a couple of standard blocks are kept between windows. */
		CHECK(json_arena_retained() <= 2u << 20);
	}
	free(text);
}

TEST(dropped_document_is_taken_back_at_the_end)
{
	json_error_t e;

	for (int i = 0; i < 50; i++) {
		json_arena_begin();
		json_t *doc = json_loads("{\"items\":[{\"a\":\"x\"},{\"b\":[1,2,3]}]}", 0, &e);
		REQUIRE(doc != NULL);
		json_arena_drop(doc);
		json_arena_end();
	}
	CHECK(json_arena_retained() <= 2u << 20);
}

TEST(nested_windows)
{
	json_t *a, *b;

	json_arena_begin();
	a = json_string("outer");
	json_arena_begin();
	b = json_string("inner");
	json_arena_end();
	/* Still inside the outer window: both alive. */
	CHECK_EQ_STR(json_string_value(a), "outer");
	CHECK_EQ_STR(json_string_value(b), "inner");
	json_decref(b);
	json_decref(a);
	json_arena_end();
	/* An unmatched end is ignored. */
	json_arena_end();
	a = json_string("after");
	CHECK_EQ_STR(json_string_value(a), "after");
	json_decref(a);
}

TEST(outside_value_still_whole)
{
	char *s = json_dumps(outside, JSON_SORT_KEYS | JSON_COMPACT);

	CHECK_EQ_STR(s, "{\"name\":\"kept\",\"ports\":[80,443,8080]}");
	free(s);
	json_decref(outside);
}

UNIT_MAIN(T(install_before_any_value), T(document_lives_until_the_window_ends),
	  T(values_from_outside_freed_inside), T(large_and_many_allocations),
	  T(dropped_document_is_taken_back_at_the_end), T(nested_windows),
	  T(outside_value_still_whole))
