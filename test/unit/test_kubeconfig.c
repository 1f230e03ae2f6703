/* Tests for kube/config: reading a kubeconfig (current-context choosing the
 * context, which names the cluster and the user; the single-context and
 * single-cluster shortcuts), errors that name what is missing, bearer
 * tokens inline and from a file, file names taken relative to the
 * kubeconfig's directory, base64 "-data" fields, client certificate and key
 * pairing, insecure-skip-tls-verify, unsupported exec and auth-provider
 * users, server URL normalisation; and kube_config_load choosing between a
 * kubeconfig file, the in-cluster service-account environment and --master,
 * with --master overriding the server.  Files are created under /tmp and
 * removed again. */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "kube/config.h"
#include "unit.h"

static char err[1024];

/* A scratch directory with a CA, a client certificate and a client key. */
static char tmpdir[64];

static bool write_file(const char *path, const char *text)
{
	FILE *f = fopen(path, "w");
	bool ok;

	if (!f)
		return false;
	ok = fputs(text, f) >= 0;
	return fclose(f) == 0 && ok;
}

static bool make_tmpdir(void)
{
	char path[PATH_MAX];

	strcpy(tmpdir, "/tmp/kproxy-kubeconfig-XXXXXX");
	if (!mkdtemp(tmpdir))
		return false;
	snprintf(path, sizeof(path), "%s/ca.crt", tmpdir);
	if (!write_file(path, "-----BEGIN CERTIFICATE-----\nCA\n-----END CERTIFICATE-----\n"))
		return false;
	snprintf(path, sizeof(path), "%s/client.crt", tmpdir);
	if (!write_file(path, "client cert\n"))
		return false;
	snprintf(path, sizeof(path), "%s/client.key", tmpdir);
	return write_file(path, "client key\n");
}

static void remove_tmpdir(void)
{
	static const char *const files[] = {"ca.crt", "client.crt", "client.key", "config",
					    "token"};
	char path[PATH_MAX];

	for (size_t i = 0; i < sizeof(files) / sizeof(files[0]); i++) {
		snprintf(path, sizeof(path), "%s/%s", tmpdir, files[i]);
		unlink(path);
	}
	rmdir(tmpdir);
}

static struct kube_config *parse_in(const char *text, const char *dir)
{
	struct kube_config *cfg = NULL;
	int r;

	err[0] = '\0';
	r = kube_config_parse(text, strlen(text), dir, "test", &cfg, err, sizeof(err));
	if (r < 0) {
		fprintf(stderr, "    parse failed (%d): %s\n", r, err);
		return NULL;
	}
	return cfg;
}

static struct kube_config *parse(const char *text)
{
	return parse_in(text, "/etc/kproxy");
}

static int parse_rc_in(const char *text, const char *dir)
{
	struct kube_config *cfg = (struct kube_config *)0x1;
	int r;

	err[0] = '\0';
	r = kube_config_parse(text, strlen(text), dir, "test", &cfg, err, sizeof(err));
	if (r == 0)
		kube_config_free(cfg);
	else if (cfg != (struct kube_config *)0x1)
		return -9999; /* the output must be left alone on failure */
	return r;
}

static int parse_rc(const char *text)
{
	return parse_rc_in(text, "/etc/kproxy");
}

static const char two_contexts[] = "apiVersion: v1\n"
				   "kind: Config\n"
				   "current-context: second\n"
				   "clusters:\n"
				   "- name: one\n"
				   "  cluster:\n"
				   "    server: https://one.example:6443\n"
				   "- name: two\n"
				   "  cluster:\n"
				   "    server: https://two.example:443\n"
				   "    tls-server-name: api.two\n"
				   "contexts:\n"
				   "- name: first\n"
				   "  context: {cluster: one, user: alice}\n"
				   "- name: second\n"
				   "  context:\n"
				   "    cluster: two\n"
				   "    user: bob\n"
				   "users:\n"
				   "- name: alice\n"
				   "  user: {token: alice-token}\n"
				   "- name: bob\n"
				   "  user:\n"
				   "    token: bob-token\n";

TEST(current_context_selects)
{
	struct kube_config *cfg = parse(two_contexts);

	REQUIRE(cfg);
	CHECK_EQ_STR(cfg->server, "https://two.example:443");
	CHECK_EQ_STR(cfg->token, "bob-token");
	CHECK_EQ_STR(cfg->tls_server_name, "api.two");
	CHECK(cfg->token_file == NULL);
	CHECK(cfg->ca_file == NULL && cfg->ca_pem == NULL);
	CHECK(cfg->cert_file == NULL && cfg->cert_pem == NULL);
	CHECK(cfg->key_file == NULL && cfg->key_pem == NULL);
	CHECK(!cfg->insecure);
	CHECK_EQ_STR(cfg->origin, "test");
	kube_config_free(cfg);
	kube_config_free(NULL);
}

TEST(single_context_or_cluster_without_current)
{
	struct kube_config *cfg;

	/* One context and no current-context: that context. */
	cfg = parse("clusters:\n"
		    "- {name: a, cluster: {server: 'https://a:6443'}}\n"
		    "- {name: b, cluster: {server: 'https://b:6443'}}\n"
		    "contexts:\n"
		    "- {name: only, context: {cluster: b, user: u}}\n"
		    "users:\n"
		    "- {name: u, user: {token: t}}\n");
	REQUIRE(cfg);
	CHECK_EQ_STR(cfg->server, "https://b:6443");
	CHECK_EQ_STR(cfg->token, "t");
	kube_config_free(cfg);

	/* No context at all: the one cluster and the one user. */
	cfg = parse("clusters:\n"
		    "- {name: a, cluster: {server: 'https://a:6443'}}\n"
		    "users:\n"
		    "- {name: u, user: {token: t2}}\n");
	REQUIRE(cfg);
	CHECK_EQ_STR(cfg->server, "https://a:6443");
	CHECK_EQ_STR(cfg->token, "t2");
	kube_config_free(cfg);

	/* A context with a cluster but no user: no credentials. */
	cfg = parse("current-context: c\n"
		    "clusters: [{name: a, cluster: {server: 'https://a:6443'}}]\n"
		    "contexts: [{name: c, context: {cluster: a}}]\n");
	REQUIRE(cfg);
	CHECK_EQ_STR(cfg->server, "https://a:6443");
	CHECK(cfg->token == NULL && cfg->token_file == NULL);
	kube_config_free(cfg);
}

TEST(missing_references_named)
{
	CHECK_EQ_INT(parse_rc("current-context: nope\n"
			      "clusters: [{name: a, cluster: {server: 'https://a'}}]\n"
			      "contexts: [{name: c, context: {cluster: a}}]\n"),
		     -EINVAL);
	CHECK(unit_contains(err, "\"nope\""));
	CHECK(unit_contains(err, "context"));

	CHECK_EQ_INT(parse_rc("current-context: c\n"
			      "clusters: [{name: a, cluster: {server: 'https://a'}}]\n"
			      "contexts: [{name: c, context: {cluster: gone, user: u}}]\n"
			      "users: [{name: u, user: {token: t}}]\n"),
		     -EINVAL);
	CHECK(unit_contains(err, "cluster"));
	CHECK(unit_contains(err, "\"gone\""));

	CHECK_EQ_INT(parse_rc("current-context: c\n"
			      "clusters: [{name: a, cluster: {server: 'https://a'}}]\n"
			      "contexts: [{name: c, context: {cluster: a, user: ghost}}]\n"
			      "users: [{name: u, user: {token: t}}]\n"),
		     -EINVAL);
	CHECK(unit_contains(err, "user"));
	CHECK(unit_contains(err, "\"ghost\""));

	/* Two clusters and nothing to choose between them. */
	CHECK_EQ_INT(parse_rc("clusters:\n"
			      "- {name: a, cluster: {server: 'https://a'}}\n"
			      "- {name: b, cluster: {server: 'https://b'}}\n"),
		     -EINVAL);
	CHECK(unit_contains(err, "current-context"));

	/* Not a kubeconfig at all. */
	CHECK_EQ_INT(parse_rc("- just\n- a list\n"), -EINVAL);
	CHECK(unit_contains(err, "mapping"));
	CHECK_EQ_INT(parse_rc(""), -EINVAL);
	/* Not YAML at all. */
	CHECK_EQ_INT(parse_rc("clusters: [\n"), -EBADMSG);
	CHECK(unit_contains(err, "line "));
	/* Wrong types. */
	CHECK_EQ_INT(parse_rc("current-context: [a]\n"), -EINVAL);
	CHECK(unit_contains(err, "current-context"));
	CHECK_EQ_INT(parse_rc("clusters: [{name: a, cluster: {server: [x]}}]\n"), -EINVAL);
	CHECK(unit_contains(err, "server"));
}

/* A list entry that has a name but no body (a context without "context:",
 * a cluster without "cluster:") is treated as empty.  Run under the leak
 * checker, this also shows that the empty body is released. */
TEST(entries_without_body)
{
	struct kube_config *cfg;

	CHECK_EQ_INT(parse_rc("current-context: c\n"
			      "clusters: [{name: a, cluster: {server: 'https://a'}}]\n"
			      "contexts: [{name: c}]\n"),
		     -EINVAL);
	CHECK(unit_contains(err, "cluster"));

	cfg = parse("current-context: c\n"
		    "clusters: [{name: a}]\n"
		    "contexts: [{name: c, context: {cluster: a, user: u}}]\n"
		    "users: [{name: u}]\n");
	REQUIRE(cfg);
	CHECK(cfg->server == NULL);
	CHECK(cfg->token == NULL);
	kube_config_free(cfg);
}

TEST(token_and_token_file)
{
	struct kube_config *cfg;

	cfg = parse("clusters: [{name: a, cluster: {server: 'https://a:1'}}]\n"
		    "users: [{name: u, user: {tokenFile: secrets/token}}]\n");
	REQUIRE(cfg);
	CHECK(cfg->token == NULL);
	/* Relative to the kubeconfig's directory, and not read yet (it is
	 * re-read whenever it changes). */
	CHECK_EQ_STR(cfg->token_file, "/etc/kproxy/secrets/token");
	kube_config_free(cfg);

	cfg = parse("clusters: [{name: a, cluster: {server: 'https://a:1'}}]\n"
		    "users: [{name: u, user: {tokenFile: /var/run/token}}]\n");
	REQUIRE(cfg);
	CHECK_EQ_STR(cfg->token_file, "/var/run/token");
	kube_config_free(cfg);

	/* Both given: the inline token wins. */
	cfg = parse("clusters: [{name: a, cluster: {server: 'https://a:1'}}]\n"
		    "users: [{name: u, user: {token: inline, tokenFile: /var/run/token}}]\n");
	REQUIRE(cfg);
	CHECK_EQ_STR(cfg->token, "inline");
	CHECK(cfg->token_file == NULL);
	kube_config_free(cfg);

	CHECK_EQ_INT(parse_rc("clusters: [{name: a, cluster: {server: 'https://a:1'}}]\n"
			      "users: [{name: u, user: {token: 12}}]\n"),
		     -EINVAL);
	CHECK(unit_contains(err, "token"));
}

TEST(ca_file_relative_to_dir)
{
	char want[PATH_MAX];
	struct kube_config *cfg;

	REQUIRE(make_tmpdir());
	cfg = parse_in("clusters:\n"
		       "- name: a\n"
		       "  cluster:\n"
		       "    server: https://a:6443\n"
		       "    certificate-authority: ca.crt\n",
		       tmpdir);
	REQUIRE(cfg);
	snprintf(want, sizeof(want), "%s/ca.crt", tmpdir);
	CHECK_EQ_STR(cfg->ca_file, want);
	CHECK(cfg->ca_pem == NULL);
	kube_config_free(cfg);

	/* An absolute name is used as it is. */
	snprintf(want, sizeof(want),
		 "clusters: [{name: a, cluster: {server: 'https://a', "
		 "certificate-authority: '%s/ca.crt'}}]\n",
		 tmpdir);
	cfg = parse_in(want, "/nonexistent");
	REQUIRE(cfg);
	CHECK(unit_contains(cfg->ca_file, tmpdir));
	kube_config_free(cfg);

	/* A CA file that is not there is an error naming it. */
	CHECK_EQ_INT(parse_rc_in("clusters: [{name: a, cluster: {server: 'https://a', "
				 "certificate-authority: missing-ca.pem}}]\n",
				 tmpdir),
		     -ENOENT);
	CHECK(unit_contains(err, "certificate-authority"));
	CHECK(unit_contains(err, "missing-ca.pem"));
	CHECK(unit_contains(err, tmpdir));
	remove_tmpdir();
}

TEST(data_fields_base64)
{
	/* "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n" */
	const char *doc =
		"clusters:\n"
		"- name: a\n"
		"  cluster:\n"
		"    server: https://a:6443\n"
		"    certificate-authority: /does/not/matter\n"
		"    certificate-authority-data: "
		"LS0tLS1CRUdJTiBDRVJUSUZJQ0FURS0tLS0tCk1JSUIKLS0tLS1FTkQgQ0VSVElGSUNBVEUtLS0tLQo=\n"
		"users:\n"
		"- name: u\n"
		"  user:\n"
		"    client-certificate-data: Y2VydA==\n"
		"    client-key-data: a2V5IGJ5dGVz\n";
	struct kube_config *cfg = parse(doc);

	REQUIRE(cfg);
	/* Data wins over a file given too, which is then not even checked. */
	CHECK(cfg->ca_file == NULL);
	CHECK_EQ_STR(cfg->ca_pem, "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n");
	CHECK_EQ_INT(cfg->ca_pem_len, 59);
	CHECK_EQ_STR(cfg->cert_pem, "cert");
	CHECK_EQ_INT(cfg->cert_pem_len, 4);
	CHECK_EQ_STR(cfg->key_pem, "key bytes");
	CHECK_EQ_INT(cfg->key_pem_len, 9);
	CHECK(cfg->cert_file == NULL && cfg->key_file == NULL);
	kube_config_free(cfg);

	CHECK_EQ_INT(parse_rc("clusters: [{name: a, cluster: {server: 'https://a', "
			      "certificate-authority-data: 'not*base64'}}]\n"),
		     -EINVAL);
	CHECK(unit_contains(err, "certificate-authority-data"));
	CHECK(unit_contains(err, "base64"));
	CHECK_EQ_INT(parse_rc("clusters: [{name: a, cluster: {server: 'https://a'}}]\n"
			      "users: [{name: u, user: {client-certificate-data: 'Y2VydA==', "
			      "client-key-data: '%%%'}}]\n"),
		     -EINVAL);
	CHECK(unit_contains(err, "client-key-data"));
}

TEST(client_cert_files_and_pairing)
{
	char doc[1024], want[PATH_MAX];
	struct kube_config *cfg;

	REQUIRE(make_tmpdir());
	cfg = parse_in("clusters: [{name: a, cluster: {server: 'https://a:6443'}}]\n"
		       "users: [{name: u, user: {client-certificate: client.crt, "
		       "client-key: client.key}}]\n",
		       tmpdir);
	REQUIRE(cfg);
	snprintf(want, sizeof(want), "%s/client.crt", tmpdir);
	CHECK_EQ_STR(cfg->cert_file, want);
	snprintf(want, sizeof(want), "%s/client.key", tmpdir);
	CHECK_EQ_STR(cfg->key_file, want);
	CHECK(cfg->cert_pem == NULL && cfg->key_pem == NULL);
	kube_config_free(cfg);

	/* A certificate without a key, and the other way round, is an error. */
	CHECK_EQ_INT(parse_rc_in("clusters: [{name: a, cluster: {server: 'https://a'}}]\n"
				 "users: [{name: u, user: {client-certificate: client.crt}}]\n",
				 tmpdir),
		     -EINVAL);
	CHECK(unit_contains(err, "\"u\""));
	CHECK(unit_contains(err, "key"));
	CHECK_EQ_INT(parse_rc("clusters: [{name: a, cluster: {server: 'https://a'}}]\n"
			      "users: [{name: u, user: {client-key-data: 'a2V5'}}]\n"),
		     -EINVAL);
	CHECK(unit_contains(err, "certificate"));

	/* A key file that is missing is named. */
	snprintf(doc, sizeof(doc),
		 "clusters: [{name: a, cluster: {server: 'https://a'}}]\n"
		 "users: [{name: u, user: {client-certificate: client.crt, "
		 "client-key: nokey.pem}}]\n");
	CHECK_EQ_INT(parse_rc_in(doc, tmpdir), -ENOENT);
	CHECK(unit_contains(err, "client-key"));
	CHECK(unit_contains(err, "nokey.pem"));
	remove_tmpdir();
}

TEST(insecure_skip_tls_verify)
{
	struct kube_config *cfg;

	cfg = parse("clusters: [{name: a, cluster: {server: 'https://a', "
		    "insecure-skip-tls-verify: true}}]\n");
	REQUIRE(cfg);
	CHECK(cfg->insecure);
	kube_config_free(cfg);
	cfg = parse("clusters: [{name: a, cluster: {server: 'https://a', "
		    "insecure-skip-tls-verify: 'true'}}]\n");
	REQUIRE(cfg);
	CHECK(cfg->insecure);
	kube_config_free(cfg);
	cfg = parse("clusters: [{name: a, cluster: {server: 'https://a', "
		    "insecure-skip-tls-verify: false}}]\n");
	REQUIRE(cfg);
	CHECK(!cfg->insecure);
	kube_config_free(cfg);
}

TEST(exec_and_auth_provider_refused)
{
	CHECK_EQ_INT(parse_rc("clusters: [{name: a, cluster: {server: 'https://a'}}]\n"
			      "users:\n"
			      "- name: cloud\n"
			      "  user:\n"
			      "    exec:\n"
			      "      apiVersion: client.authentication.k8s.io/v1\n"
			      "      command: get-token\n"),
		     -ENOTSUP);
	CHECK(unit_contains(err, "exec"));
	CHECK(unit_contains(err, "\"cloud\""));
	CHECK_EQ_INT(parse_rc("clusters: [{name: a, cluster: {server: 'https://a'}}]\n"
			      "users: [{name: g, user: {auth-provider: {name: gcp}}}]\n"),
		     -ENOTSUP);
	CHECK(unit_contains(err, "auth-provider"));
}

static char *server_of(const char *server)
{
	char doc[512];
	struct kube_config *cfg;
	char *s;

	snprintf(doc, sizeof(doc), "clusters: [{name: a, cluster: {server: '%s'}}]\n", server);
	cfg = parse(doc);
	if (!cfg)
		return NULL;
	s = cfg->server ? strdup(cfg->server) : NULL;
	kube_config_free(cfg);
	return s;
}

TEST(server_normalized)
{
	static const struct {
		const char *in, *want;
	} cases[] = {
		{"10.0.0.1:6443", "https://10.0.0.1:6443"},
		{"api.example.com", "https://api.example.com"},
		{"https://api:6443/", "https://api:6443"},
		{"https://api:6443///", "https://api:6443"},
		{"http://api:8080", "http://api:8080"},
		{"https://[fd00::1]:6443/", "https://[fd00::1]:6443"},
		{"https://api:6443/prefix/", "https://api:6443/prefix"},
	};
	char doc[256];

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char *s = server_of(cases[i].in);

		CHECK_EQ_STR(s, cases[i].want);
		free(s);
	}
	CHECK_EQ_INT(parse_rc("clusters: [{name: a, cluster: {server: 'ftp://files:21'}}]\n"),
		     -EINVAL);
	CHECK(unit_contains(err, "ftp://files:21"));
	CHECK_EQ_INT(parse_rc("clusters: [{name: a, cluster: {server: 'https://a b'}}]\n"),
		     -EINVAL);
	CHECK(unit_contains(err, "server"));
	snprintf(doc, sizeof(doc), "clusters: [{name: a, cluster: {server: 'https:///'}}]\n");
	CHECK_EQ_INT(parse_rc(doc), -EINVAL);
	/* Hosts and ports that are not: each named in the error. */
	static const char *const bad[] = {
		"https://10.0.0.1:6443://",
		"https://a:0",
		"https://a:65536",
		"https://a:",
		"https://a:64x",
		"https://:6443",
		"https://[fd00::1",
		"https://[]:1",
		"https://[fd00::1]x",
		"https://a:1:2",
		"https://a\t",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		snprintf(doc, sizeof(doc), "clusters: [{name: a, cluster: {server: \"%s\"}}]\n",
			 bad[i]);
		CHECK_EQ_INT(parse_rc(doc), -EINVAL);
		CHECK(unit_contains(err, "is not a URL"));
	}
}

/* The shortest URLs: a one-letter host is a host under either scheme. */
TEST(server_short_host)
{
	char *s = server_of("https://a");

	CHECK_EQ_STR(s, "https://a");
	free(s);
	s = server_of("http://a");
	CHECK_EQ_STR(s, "http://a");
	free(s);
}

static void clear_env(void)
{
	unsetenv("KUBERNETES_SERVICE_HOST");
	unsetenv("KUBERNETES_SERVICE_PORT");
}

TEST(load_kubeconfig_file)
{
	char path[PATH_MAX], want[PATH_MAX + 32];
	struct kube_config *cfg = NULL;

	clear_env();
	REQUIRE(make_tmpdir());
	snprintf(path, sizeof(path), "%s/config", tmpdir);
	REQUIRE(write_file(path, "clusters:\n"
				 "- name: a\n"
				 "  cluster:\n"
				 "    server: https://from-file:6443\n"
				 "    certificate-authority: ca.crt\n"
				 "users:\n"
				 "- name: u\n"
				 "  user: {tokenFile: token}\n"));

	REQUIRE(kube_config_load(path, NULL, &cfg, err, sizeof(err)) == 0);
	CHECK_EQ_STR(cfg->server, "https://from-file:6443");
	/* Relative names are resolved against the file's own directory. */
	snprintf(want, sizeof(want), "%s/token", tmpdir);
	CHECK_EQ_STR(cfg->token_file, want);
	snprintf(want, sizeof(want), "%s/ca.crt", tmpdir);
	CHECK_EQ_STR(cfg->ca_file, want);
	CHECK(unit_contains(cfg->origin, path));
	kube_config_free(cfg);

	/* --master overrides the server and keeps the credentials. */
	cfg = NULL;
	REQUIRE(kube_config_load(path, "10.9.9.9:6443/", &cfg, err, sizeof(err)) == 0);
	CHECK_EQ_STR(cfg->server, "https://10.9.9.9:6443");
	snprintf(want, sizeof(want), "%s/token", tmpdir);
	CHECK_EQ_STR(cfg->token_file, want);
	kube_config_free(cfg);

	/* A bad --master is an error, not a silent fallback. */
	cfg = NULL;
	CHECK_EQ_INT(kube_config_load(path, "gopher://x", &cfg, err, sizeof(err)), -EINVAL);
	CHECK(cfg == NULL);

	/* A parse error names the file. */
	REQUIRE(write_file(path, "clusters: [\n"));
	CHECK(kube_config_load(path, NULL, &cfg, err, sizeof(err)) < 0);
	CHECK(unit_contains(err, path));
	CHECK(cfg == NULL);

	/* A file without a server and no --master: nothing to talk to. */
	REQUIRE(write_file(path, "clusters: [{name: a, cluster: {}}]\n"));
	CHECK_EQ_INT(kube_config_load(path, NULL, &cfg, err, sizeof(err)), -EINVAL);
	CHECK(unit_contains(err, "no server"));
	CHECK(cfg == NULL);
	/* ... while --master fills the gap. */
	REQUIRE(kube_config_load(path, "https://m:6443", &cfg, err, sizeof(err)) == 0);
	CHECK_EQ_STR(cfg->server, "https://m:6443");
	kube_config_free(cfg);
	cfg = NULL;
	remove_tmpdir();

	/* A kubeconfig that is not there. */
	CHECK_EQ_INT(kube_config_load("/nonexistent/kubeconfig", NULL, &cfg, err, sizeof(err)),
		     -ENOENT);
	CHECK(unit_contains(err, "/nonexistent/kubeconfig"));
	CHECK(cfg == NULL);
}

TEST(load_master_only_and_nothing)
{
	struct kube_config *cfg = NULL;

	clear_env();
	REQUIRE(kube_config_load(NULL, "https://master.example:6443/", &cfg, err, sizeof(err)) ==
		0);
	CHECK_EQ_STR(cfg->server, "https://master.example:6443");
	CHECK(cfg->token == NULL && cfg->token_file == NULL && cfg->ca_file == NULL);
	CHECK_EQ_STR(cfg->origin, "--master");
	kube_config_free(cfg);

	cfg = NULL;
	CHECK_EQ_INT(kube_config_load(NULL, NULL, &cfg, err, sizeof(err)), -EINVAL);
	CHECK(unit_contains(err, "--kubeconfig"));
	CHECK(cfg == NULL);
	CHECK_EQ_INT(kube_config_load("", "", &cfg, err, sizeof(err)), -EINVAL);
	CHECK(cfg == NULL);

	/* Half of the in-cluster environment is no environment. */
	setenv("KUBERNETES_SERVICE_HOST", "10.96.0.1", 1);
	CHECK_EQ_INT(kube_config_load(NULL, NULL, &cfg, err, sizeof(err)), -EINVAL);
	CHECK(unit_contains(err, "--kubeconfig"));
	clear_env();
}

TEST(load_in_cluster_without_token)
{
	struct kube_config *cfg = NULL;

	if (access("/var/run/secrets/kubernetes.io/serviceaccount/token", F_OK) == 0) {
		fprintf(stderr, "    skipped: this machine has a service-account token\n");
		return;
	}
	clear_env();
	setenv("KUBERNETES_SERVICE_HOST", "10.96.0.1", 1);
	setenv("KUBERNETES_SERVICE_PORT", "443", 1);
	CHECK_EQ_INT(kube_config_load(NULL, NULL, &cfg, err, sizeof(err)), -ENOENT);
	CHECK(cfg == NULL);
	CHECK(unit_contains(err, "/var/run/secrets/kubernetes.io/serviceaccount/token"));
	CHECK(unit_contains(err, "in-cluster"));

	setenv("KUBERNETES_SERVICE_HOST", "fd00::1", 1);
	CHECK_EQ_INT(kube_config_load(NULL, NULL, &cfg, err, sizeof(err)), -ENOENT);
	CHECK(cfg == NULL);

	/* A kubeconfig, when given, is used instead of the environment. */
	CHECK_EQ_INT(kube_config_load("/nonexistent/kubeconfig", NULL, &cfg, err, sizeof(err)),
		     -ENOENT);
	CHECK(unit_contains(err, "/nonexistent/kubeconfig"));
	clear_env();
}

UNIT_MAIN(T(current_context_selects), T(single_context_or_cluster_without_current),
	  T(missing_references_named), T(entries_without_body), T(token_and_token_file),
	  T(ca_file_relative_to_dir), T(data_fields_base64), T(client_cert_files_and_pairing),
	  T(insecure_skip_tls_verify), T(exec_and_auth_provider_refused), T(server_normalized),
	  T(server_short_host), T(load_kubeconfig_file), T(load_master_only_and_nothing),
	  T(load_in_cluster_without_token))
