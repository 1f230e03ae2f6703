/* libFuzzer target for the YAML reader behind the kubeconfig and
 * KubeProxyConfiguration files: yamljson_parse() on the input.  A parse
 * either fails with a reason or gives a JSON value that jansson can encode
 * and read back as an equal value (the reader never builds something that
 * is not valid JSON, such as a string that is not UTF-8). */
#include <errno.h>
#include <jansson.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/yamljson.h"

/* A broken expectation is a crash, with the expectation named. */
#define check(cond)                                                                               \
	do {                                                                                      \
		if (!(cond)) {                                                                    \
			fprintf(stderr, "check failed: %s (%s:%d)\n", #cond, __FILE__, __LINE__); \
			__builtin_trap();                                                         \
		}                                                                                 \
	} while (0)

/* True when v holds a real number anywhere. */
static int has_real(json_t *v)
{
	const char *k;
	json_t *c;
	size_t i;

	if (json_is_real(v))
		return 1;
	if (json_is_object(v)) {
		json_object_foreach(v, k, c)
		{
			if (has_real(c))
				return 1;
		}
	} else if (json_is_array(v)) {
		json_array_foreach(v, i, c)
		{
			if (has_real(c))
				return 1;
		}
	}
	return 0;
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
	json_t *doc = NULL, *back;
	json_error_t jerr;
	char err[512];
	char *text;
	int r;

	err[0] = '\0';
	r = yamljson_parse((const char *)data, size, &doc, err, sizeof(err));
	if (r < 0) {
		check(r == -EBADMSG || r == -ENOMEM);
		check(doc == NULL);
		check(err[0] != '\0');
		return 0;
	}
	check(doc != NULL);
	text = json_dumps(doc, JSON_ENCODE_ANY | JSON_COMPACT);
	check(text != NULL);
	back = json_loads(text, JSON_DECODE_ANY, &jerr);
	/* Aliases can nest values deeper than jansson reads back; anything
	 * else must read back, and equal unless real numbers (which need not
	 * survive a text round trip bit for bit) are involved. */
	check(back != NULL || json_error_code(&jerr) == json_error_stack_overflow);
	if (back && !has_real(doc))
		check(json_equal(doc, back));
	json_decref(back);
	free(text);
	json_decref(doc);
	return 0;
}
