/* Tests for util/yamljson, the YAML reader behind kubeconfig and
 * KubeProxyConfiguration files: block and flow mappings and sequences,
 * nesting, the typing of plain scalars by YAML 1.2's core schema (null,
 * booleans, decimal/hex/octal integers, floats, everything else a string)
 * while quoted or tagged scalars stay strings, non-string keys, anchors and
 * aliases copied by value, the alias expansion bound that stops a "billion
 * laughs" document, the nesting bound, syntax errors reported as -EBADMSG
 * with the line, invalid UTF-8, empty input, multi-document streams (only
 * the first document counts) and reading from a file. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "unit.h"
#include "util/yamljson.h"

static char err[512];

/* Parses a NUL-terminated document; NULL when it fails (err says why). */
static json_t *parse(const char *text)
{
	json_t *j = NULL;
	int r;

	err[0] = '\0';
	r = yamljson_parse(text, strlen(text), &j, err, sizeof(err));
	if (r < 0) {
		fprintf(stderr, "    parse failed (%d): %s\n", r, err);
		return NULL;
	}
	return j;
}

static int parse_rc(const char *text)
{
	json_t *j = (json_t *)0x1;
	int r;

	err[0] = '\0';
	r = yamljson_parse(text, strlen(text), &j, err, sizeof(err));
	if (r == 0)
		json_decref(j);
	else if (j != (json_t *)0x1)
		return -9999; /* the output must be left alone on failure */
	return r;
}

static bool is_int(json_t *v, json_int_t want)
{
	return json_is_integer(v) && json_integer_value(v) == want;
}

static bool is_real(json_t *v, double want)
{
	return json_is_real(v) && json_real_value(v) == want;
}

static bool is_str(json_t *v, const char *want)
{
	return json_is_string(v) && !strcmp(json_string_value(v), want);
}

TEST(block_mapping)
{
	json_t *j = parse("name: web\nport: 80\nenabled: true\n# a comment\nempty:\n");

	REQUIRE(j);
	REQUIRE(json_is_object(j));
	CHECK_EQ_INT(json_object_size(j), 4);
	CHECK(is_str(json_object_get(j, "name"), "web"));
	CHECK(is_int(json_object_get(j, "port"), 80));
	CHECK(json_is_true(json_object_get(j, "enabled")));
	CHECK(json_is_null(json_object_get(j, "empty")));
	json_decref(j);
}

TEST(sequences)
{
	json_t *j = parse("- 1\n- two\n- - nested\n  - 3\n- {a: b}\n");
	json_t *f;

	REQUIRE(j);
	REQUIRE(json_is_array(j));
	CHECK_EQ_INT(json_array_size(j), 4);
	CHECK(is_int(json_array_get(j, 0), 1));
	CHECK(is_str(json_array_get(j, 1), "two"));
	CHECK(json_is_array(json_array_get(j, 2)));
	CHECK(is_str(json_array_get(json_array_get(j, 2), 0), "nested"));
	CHECK(is_int(json_array_get(json_array_get(j, 2), 1), 3));
	CHECK(is_str(json_object_get(json_array_get(j, 3), "a"), "b"));
	json_decref(j);

	f = parse("[1, \"2\", [], {}, [a, [b]]]");
	REQUIRE(f);
	CHECK_EQ_INT(json_array_size(f), 5);
	CHECK(is_int(json_array_get(f, 0), 1));
	CHECK(is_str(json_array_get(f, 1), "2"));
	CHECK(json_is_array(json_array_get(f, 2)) && !json_array_size(json_array_get(f, 2)));
	CHECK(json_is_object(json_array_get(f, 3)) && !json_object_size(json_array_get(f, 3)));
	CHECK(is_str(json_array_get(json_array_get(json_array_get(f, 4), 1), 0), "b"));
	json_decref(f);
}

TEST(nested_kubeconfig_shape)
{
	const char *doc = "apiVersion: v1\n"
			  "kind: Config\n"
			  "clusters:\n"
			  "- name: c1\n"
			  "  cluster:\n"
			  "    server: https://10.0.0.1:6443\n"
			  "    insecure-skip-tls-verify: true\n"
			  "contexts:\n"
			  "- context: {cluster: c1, user: u1}\n"
			  "  name: ctx\n"
			  "users:\n"
			  "- name: u1\n"
			  "  user:\n"
			  "    token: abc.def\n";
	json_t *j = parse(doc), *c, *u;

	REQUIRE(j);
	c = json_object_get(json_array_get(json_object_get(j, "clusters"), 0), "cluster");
	CHECK(is_str(json_object_get(c, "server"), "https://10.0.0.1:6443"));
	CHECK(json_is_true(json_object_get(c, "insecure-skip-tls-verify")));
	c = json_object_get(json_array_get(json_object_get(j, "contexts"), 0), "context");
	CHECK(is_str(json_object_get(c, "cluster"), "c1"));
	CHECK(is_str(json_object_get(c, "user"), "u1"));
	u = json_array_get(json_object_get(j, "users"), 0);
	CHECK(is_str(json_object_get(u, "name"), "u1"));
	CHECK(is_str(json_object_get(json_object_get(u, "user"), "token"), "abc.def"));
	json_decref(j);
}

TEST(plain_scalar_types)
{
	const char *doc = "n1: null\nn2: ~\nn3: Null\nn4: NULL\nn5:\n"
			  "t1: true\nt2: True\nt3: TRUE\nf1: false\nf2: False\nf3: FALSE\n"
			  "i1: 0\ni2: 42\ni3: -5\ni4: +7\ni5: 0x1f\ni6: 0o17\ni7: 0777\n"
			  "i8: 9223372036854775807\ni9: -9223372036854775808\n"
			  "r1: 1.5\nr2: -2.5e3\nr3: 1e3\nr4: 1.\nr5: -0.25\n"
			  "s1: 1.2.3.4\ns2: 10s\ns3: yes\ns4: no\ns5: on\ns6: off\n"
			  "s7: 0x\ns8: -x\ns9: 12abc\ns10: 0x-5\ns11: 1_000\n"
			  "s13: 10.0.0.0/8\ns14: inf\ns15: https://h:6443\ns16: 0xg\n";
	json_t *j = parse(doc);

	REQUIRE(j);
	CHECK(json_is_null(json_object_get(j, "n1")));
	CHECK(json_is_null(json_object_get(j, "n2")));
	CHECK(json_is_null(json_object_get(j, "n3")));
	CHECK(json_is_null(json_object_get(j, "n4")));
	CHECK(json_is_null(json_object_get(j, "n5")));
	CHECK(json_is_true(json_object_get(j, "t1")));
	CHECK(json_is_true(json_object_get(j, "t2")));
	CHECK(json_is_true(json_object_get(j, "t3")));
	CHECK(json_is_false(json_object_get(j, "f1")));
	CHECK(json_is_false(json_object_get(j, "f2")));
	CHECK(json_is_false(json_object_get(j, "f3")));
	CHECK(is_int(json_object_get(j, "i1"), 0));
	CHECK(is_int(json_object_get(j, "i2"), 42));
	CHECK(is_int(json_object_get(j, "i3"), -5));
	CHECK(is_int(json_object_get(j, "i4"), 7));
	CHECK(is_int(json_object_get(j, "i5"), 31));
	CHECK(is_int(json_object_get(j, "i6"), 15));
	/* YAML 1.2: a leading zero is not octal. */
	CHECK(is_int(json_object_get(j, "i7"), 777));
	CHECK(is_int(json_object_get(j, "i8"), 9223372036854775807LL));
	CHECK(is_int(json_object_get(j, "i9"), -9223372036854775807LL - 1));
	CHECK(is_real(json_object_get(j, "r1"), 1.5));
	CHECK(is_real(json_object_get(j, "r2"), -2500.0));
	CHECK(is_real(json_object_get(j, "r3"), 1000.0));
	CHECK(is_real(json_object_get(j, "r4"), 1.0));
	CHECK(is_real(json_object_get(j, "r5"), -0.25));
	CHECK(is_str(json_object_get(j, "s1"), "1.2.3.4"));
	CHECK(is_str(json_object_get(j, "s2"), "10s"));
	/* YAML 1.1 booleans are strings in 1.2. */
	CHECK(is_str(json_object_get(j, "s3"), "yes"));
	CHECK(is_str(json_object_get(j, "s4"), "no"));
	CHECK(is_str(json_object_get(j, "s5"), "on"));
	CHECK(is_str(json_object_get(j, "s6"), "off"));
	CHECK(is_str(json_object_get(j, "s7"), "0x"));
	CHECK(is_str(json_object_get(j, "s8"), "-x"));
	CHECK(is_str(json_object_get(j, "s9"), "12abc"));
	CHECK(is_str(json_object_get(j, "s10"), "0x-5"));
	CHECK(is_str(json_object_get(j, "s11"), "1_000"));
	CHECK(is_str(json_object_get(j, "s13"), "10.0.0.0/8"));
	CHECK(is_str(json_object_get(j, "s14"), "inf"));
	CHECK(is_str(json_object_get(j, "s15"), "https://h:6443"));
	CHECK(is_str(json_object_get(j, "s16"), "0xg"));
	json_decref(j);
}

/* The corners of the core schema's int and float patterns: hexadecimal
 * needs a lowercase "0x" and no sign, there are no hexadecimal floats, and
 * a float may start with its decimal point. */
TEST(plain_scalar_core_schema_corners)
{
	json_t *j = parse("a: 0X1F\nb: -0x1f\nc: 0x1p3\nd: .5\ne: -.5\n");

	REQUIRE(j);
	CHECK(is_str(json_object_get(j, "a"), "0X1F"));
	CHECK(is_str(json_object_get(j, "b"), "-0x1f"));
	CHECK(is_str(json_object_get(j, "c"), "0x1p3"));
	CHECK(is_real(json_object_get(j, "d"), 0.5));
	CHECK(is_real(json_object_get(j, "e"), -0.5));
	json_decref(j);
}

TEST(quoted_and_tagged_stay_strings)
{
	const char *doc = "a: \"true\"\nb: '5'\nc: \"null\"\nd: ''\ne: \"\"\nf: '0x1f'\n"
			  "g: !!str 42\nh: \"1.5\"\ni: \"tab\\there\"\nj: 'it''s'\n"
			  "k: |\n  line1\n  line2\nl: >\n  folded\n  text\n";
	json_t *j = parse(doc);

	REQUIRE(j);
	CHECK(is_str(json_object_get(j, "a"), "true"));
	CHECK(is_str(json_object_get(j, "b"), "5"));
	CHECK(is_str(json_object_get(j, "c"), "null"));
	CHECK(is_str(json_object_get(j, "d"), ""));
	CHECK(is_str(json_object_get(j, "e"), ""));
	CHECK(is_str(json_object_get(j, "f"), "0x1f"));
	CHECK(is_str(json_object_get(j, "g"), "42"));
	CHECK(is_str(json_object_get(j, "h"), "1.5"));
	CHECK(is_str(json_object_get(j, "i"), "tab\there"));
	CHECK(is_str(json_object_get(j, "j"), "it's"));
	CHECK(is_str(json_object_get(j, "k"), "line1\nline2\n"));
	CHECK(is_str(json_object_get(j, "l"), "folded text\n"));
	json_decref(j);
}

TEST(scalar_keys)
{
	json_t *j = parse("1: one\ntrue: yes\n1.5: x\n~: nothing\n\"q\": quoted\n");

	REQUIRE(j);
	CHECK(is_str(json_object_get(j, "1"), "one"));
	CHECK(is_str(json_object_get(j, "true"), "yes"));
	CHECK(is_str(json_object_get(j, "1.5"), "x"));
	CHECK(is_str(json_object_get(j, ""), "nothing"));
	CHECK(is_str(json_object_get(j, "q"), "quoted"));
	json_decref(j);

	/* A key that is a mapping or a sequence has no JSON form. */
	CHECK_EQ_INT(parse_rc("? [a, b]\n: value\n"), -EBADMSG);
	CHECK(unit_contains(err, "line 1"));
	CHECK(unit_contains(err, "key"));
	CHECK_EQ_INT(parse_rc("{x: 1}: value\n"), -EBADMSG);
}

TEST(anchors_and_aliases)
{
	const char *doc = "base: &b\n"
			  "  x: 1\n"
			  "  list: [a, b]\n"
			  "copy: *b\n"
			  "name: &n hello\n"
			  "again: *n\n"
			  "seq: &s [1, 2]\n"
			  "seqs: [*s, *s]\n";
	json_t *j = parse(doc), *base, *copy;

	REQUIRE(j);
	base = json_object_get(j, "base");
	copy = json_object_get(j, "copy");
	REQUIRE(json_is_object(base));
	REQUIRE(json_is_object(copy));
	CHECK(json_equal(base, copy));
	CHECK(is_int(json_object_get(copy, "x"), 1));
	CHECK(is_str(json_array_get(json_object_get(copy, "list"), 1), "b"));
	/* A copy, not a shared node: changing one leaves the other. */
	CHECK(base != copy);
	json_object_set_new(copy, "x", json_integer(2));
	CHECK(is_int(json_object_get(base, "x"), 1));

	CHECK(is_str(json_object_get(j, "name"), "hello"));
	CHECK(is_str(json_object_get(j, "again"), "hello"));
	CHECK_EQ_INT(json_array_size(json_object_get(j, "seqs")), 2);
	CHECK(is_int(json_array_get(json_array_get(json_object_get(j, "seqs"), 1), 1), 2));
	json_decref(j);

	/* A later anchor of the same name replaces the earlier one. */
	j = parse("a: &x 1\nb: *x\nc: &x 2\nd: *x\n");
	REQUIRE(j);
	CHECK(is_int(json_object_get(j, "b"), 1));
	CHECK(is_int(json_object_get(j, "d"), 2));
	json_decref(j);
}

TEST(alias_errors)
{
	CHECK_EQ_INT(parse_rc("a: *nowhere\n"), -EBADMSG);
	CHECK(unit_contains(err, "line 1"));
	CHECK(unit_contains(err, "anchor"));
	/* A node cannot contain an alias of itself. */
	CHECK_EQ_INT(parse_rc("a: &loop [1, *loop]\n"), -EBADMSG);
}

TEST(billion_laughs)
{
	const char *doc = "a: &a [lol, lol, lol, lol, lol, lol, lol, lol, lol]\n"
			  "b: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a]\n"
			  "c: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b]\n"
			  "d: &d [*c, *c, *c, *c, *c, *c, *c, *c, *c]\n"
			  "e: &e [*d, *d, *d, *d, *d, *d, *d, *d, *d]\n"
			  "f: &f [*e, *e, *e, *e, *e, *e, *e, *e, *e]\n"
			  "g: &g [*f, *f, *f, *f, *f, *f, *f, *f, *f]\n"
			  "h: &h [*g, *g, *g, *g, *g, *g, *g, *g, *g]\n"
			  "i: &i [*h, *h, *h, *h, *h, *h, *h, *h, *h]\n";
	json_t *j;

	CHECK_EQ_INT(parse_rc(doc), -EBADMSG);
	CHECK(unit_contains(err, "line "));
	CHECK(unit_contains(err, "limit"));

	/* Modest reuse of anchors is fine. */
	j = parse("a: &a [x, y, z]\nb: &b [*a, *a, *a]\nc: [*b, *b]\n");
	REQUIRE(j);
	CHECK_EQ_INT(json_array_size(json_object_get(j, "c")), 2);
	CHECK(is_str(
		json_array_get(json_array_get(json_array_get(json_object_get(j, "c"), 1), 2), 0),
		"x"));
	json_decref(j);
}

TEST(nesting_bound)
{
	char doc[256];
	json_t *j, *v;
	int depth;

	/* 60 levels parse; 100 are refused rather than overflowing a stack. */
	memset(doc, 0, sizeof(doc));
	memset(doc, '[', 60);
	memset(doc + 60, ']', 60);
	j = parse(doc);
	REQUIRE(j);
	for (depth = 0, v = j; json_is_array(v); depth++)
		v = json_array_get(v, 0);
	CHECK_EQ_INT(depth, 60);
	json_decref(j);

	memset(doc, 0, sizeof(doc));
	memset(doc, '[', 100);
	memset(doc + 100, ']', 100);
	CHECK_EQ_INT(parse_rc(doc), -EBADMSG);
	CHECK(unit_contains(err, "deep"));
}

TEST(syntax_errors_name_line)
{
	CHECK_EQ_INT(parse_rc("a: 1\nb: 2\n  c: 3\n"), -EBADMSG);
	CHECK(unit_contains(err, "line 3"));
	CHECK_EQ_INT(parse_rc("a: [1, 2\nb: 3\n"), -EBADMSG);
	CHECK(unit_contains(err, "line 2"));
	CHECK_EQ_INT(parse_rc("a:\n\tb: 1\n"), -EBADMSG);
	CHECK(unit_contains(err, "line 2"));
	CHECK_EQ_INT(parse_rc("x: 1\ny: 2\nz: \"unterminated\n"), -EBADMSG);
	CHECK(unit_contains(err, "line "));
	CHECK_EQ_INT(parse_rc("- a\nb: 1\n"), -EBADMSG);
	CHECK(unit_contains(err, "line 2"));
	CHECK_EQ_INT(parse_rc("{a: 1"), -EBADMSG);
	CHECK(unit_contains(err, "line "));
}

TEST(errors_without_buffer)
{
	json_t *j = NULL;

	/* A caller that does not want the message may pass no buffer. */
	CHECK_EQ_INT(yamljson_parse("a: [", 4, &j, NULL, 0), -EBADMSG);
	CHECK(j == NULL);
}

TEST(empty_document_is_null)
{
	json_t *j;

	j = parse("");
	REQUIRE(j);
	CHECK(json_is_null(j));
	json_decref(j);
	j = parse("   \n# only a comment\n\n");
	REQUIRE(j);
	CHECK(json_is_null(j));
	json_decref(j);
	j = parse("---\n");
	REQUIRE(j);
	CHECK(json_is_null(j));
	json_decref(j);
	/* A lone scalar is a document too. */
	j = parse("hello\n");
	REQUIRE(j);
	CHECK(is_str(j, "hello"));
	json_decref(j);
}

TEST(first_document_only)
{
	json_t *j;

	j = parse("a: 1\n---\nb: 2\n");
	REQUIRE(j);
	CHECK(is_int(json_object_get(j, "a"), 1));
	CHECK(json_object_get(j, "b") == NULL);
	json_decref(j);

	/* Whatever follows the first document is not even looked at. */
	j = parse("---\nfirst: yes\n...\n---\n{broken: [\n");
	REQUIRE(j);
	CHECK(is_str(json_object_get(j, "first"), "yes"));
	CHECK_EQ_INT(json_object_size(j), 1);
	json_decref(j);
}

TEST(invalid_utf8)
{
	static const char bad1[] = "a: \xff\xfe\n";
	static const char bad2[] = "a: \"\xc3\x28\"\n";
	static const char good[] = "a: \"caf\xc3\xa9\"\n";
	json_t *j;

	CHECK_EQ_INT(parse_rc(bad1), -EBADMSG);
	CHECK(err[0] != '\0');
	CHECK_EQ_INT(parse_rc(bad2), -EBADMSG);
	j = parse(good);
	REQUIRE(j);
	CHECK(is_str(json_object_get(j, "a"), "caf\xc3\xa9"));
	json_decref(j);
}

TEST(length_is_honoured)
{
	const char *text = "a: 1\nb: 2\n";
	json_t *j = NULL;

	/* Only the first len bytes are the document. */
	REQUIRE(yamljson_parse(text, 5, &j, err, sizeof(err)) == 0);
	CHECK(is_int(json_object_get(j, "a"), 1));
	CHECK(json_object_get(j, "b") == NULL);
	json_decref(j);
}

TEST(load_file)
{
	char path[] = "/tmp/kproxy-yamljson-XXXXXX";
	const char *doc =
		"kind: KubeProxyConfiguration\nmode: nftables\nbindAddressHardFail: false\n";
	json_t *j = NULL;
	int fd = mkstemp(path);

	REQUIRE(fd >= 0);
	CHECK_EQ_INT(write(fd, doc, strlen(doc)), (long long)strlen(doc));
	close(fd);
	CHECK_EQ_INT(yamljson_load_file(path, &j, err, sizeof(err)), 0);
	CHECK(is_str(json_object_get(j, "mode"), "nftables"));
	CHECK(json_is_false(json_object_get(j, "bindAddressHardFail")));
	json_decref(j);

	/* A syntax error names the file and the line. */
	fd = open(path, O_WRONLY | O_TRUNC);
	REQUIRE(fd >= 0);
	CHECK_EQ_INT(write(fd, "a: 1\nb: [\n", 10), 10);
	close(fd);
	j = NULL;
	CHECK_EQ_INT(yamljson_load_file(path, &j, err, sizeof(err)), -EBADMSG);
	CHECK(j == NULL);
	CHECK(unit_contains(err, path));
	CHECK(unit_contains(err, "line "));
	unlink(path);

	CHECK_EQ_INT(yamljson_load_file(path, &j, err, sizeof(err)), -ENOENT);
	CHECK(unit_contains(err, path));
}

UNIT_MAIN(T(block_mapping), T(sequences), T(nested_kubeconfig_shape), T(plain_scalar_types),
	  T(plain_scalar_core_schema_corners), T(quoted_and_tagged_stay_strings), T(scalar_keys),
	  T(anchors_and_aliases), T(alias_errors), T(billion_laughs), T(nesting_bound),
	  T(syntax_errors_name_line), T(errors_without_buffer), T(empty_document_is_null),
	  T(first_document_only), T(invalid_utf8), T(length_is_honoured), T(load_file))
