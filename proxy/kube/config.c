/* Kubeconfig and in-cluster configuration; see config.h.
 *
 * The kubeconfig is read through the YAML reader into JSON values and then
 * walked: current-context names a context, which names a cluster (server and
 * how to verify it) and a user (how to authenticate).  Relative file names
 * are taken relative to the kubeconfig's own directory, as kubectl does. */
#include "kube/config.h"

#include <errno.h>
#include <jansson.h>
#include <libgen.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "util/base64.h"
#include "util/yamljson.h"

#define SA_DIR "/var/run/secrets/kubernetes.io/serviceaccount"

void kube_config_free(struct kube_config *cfg)
{
	if (!cfg)
		return;
	free(cfg->server);
	free(cfg->token);
	free(cfg->token_file);
	free(cfg->ca_file);
	free(cfg->ca_pem);
	free(cfg->cert_file);
	free(cfg->cert_pem);
	free(cfg->key_file);
	free(cfg->key_pem);
	free(cfg->tls_server_name);
	free(cfg->origin);
	free(cfg);
}

/* Finds the entry named name in a list of {name, <field>: {...}}. */
static json_t *find_named(json_t *list, const char *name, const char *field)
{
	size_t i;
	json_t *v;

	if (!json_is_array(list))
		return NULL;
	json_array_foreach(list, i, v)
	{
		const char *n = json_string_value(json_object_get(v, "name"));

		if (n && !strcmp(n, name)) {
			json_t *inner = json_object_get(v, field);

			/* An entry without its body reads as empty: the entry itself
			 * has none of the body's fields. */
			return json_is_object(inner) ? inner : v;
		}
	}
	return NULL;
}

static int opt_string(json_t *obj, const char *key, const char *where, const char **ret, char *err,
		      size_t errlen)
{
	json_t *v = json_object_get(obj, key);

	*ret = NULL;
	if (!v || json_is_null(v))
		return 0;
	if (!json_is_string(v)) {
		snprintf(err, errlen, "%s.%s: expected a string", where, key);
		return -EINVAL;
	}
	*ret = json_string_value(v);
	return 0;
}

static char *resolve_path(const char *dir, const char *file)
{
	char *out;

	if (file[0] == '/' || !dir)
		return strdup(file);
	if (asprintf(&out, "%s/%s", dir, file) < 0)
		return NULL;
	return out;
}

static int take_data(const char *b64, const char *what, char **ret, size_t *ret_len, char *err,
		     size_t errlen)
{
	int r = base64_decode(b64, ret, ret_len);

	if (r == -EINVAL)
		snprintf(err, errlen, "%s: not valid base64", what);
	return r;
}

/* Sets *dst to a resolved path or decoded data; a field given both ways uses
 * the data, as kubectl does. */
static int take_file_or_data(json_t *obj, const char *file_key, const char *data_key,
			     const char *where, const char *dir, char **file_dst, char **data_dst,
			     size_t *data_len, char *err, size_t errlen)
{
	const char *file, *data;
	char what[128];
	int r;

	if ((r = opt_string(obj, file_key, where, &file, err, errlen)) < 0 ||
	    (r = opt_string(obj, data_key, where, &data, err, errlen)) < 0)
		return r;
	if (data && *data) {
		snprintf(what, sizeof(what), "%s.%s", where, data_key);
		return take_data(data, what, data_dst, data_len, err, errlen);
	}
	if (file && *file) {
		*file_dst = resolve_path(dir, file);
		if (!*file_dst)
			return -ENOMEM;
		if (access(*file_dst, R_OK) < 0) {
			r = -errno;
			snprintf(err, errlen, "%s.%s: cannot read %s: %s", where, file_key,
				 *file_dst, strerror(errno));
			return r;
		}
	}
	return 0;
}

/* scheme://host[:port][/path], host a name, an IPv4 address or [IPv6]. */
static bool valid_url(const char *s)
{
	const char *host = strstr(s, "://"), *end, *port = NULL;

	if (!host)
		return false;
	host += 3;
	for (const char *p = s; *p; p++) {
		if ((unsigned char)*p <= ' ' || *p == 0x7f)
			return false;
	}
	if (strstr(host, "://"))
		return false;
	end = host + strcspn(host, "/?#");
	if (end == host)
		return false;
	if (*host == '[') {
		const char *close = memchr(host, ']', (size_t)(end - host));

		if (!close || close == host + 1)
			return false;
		if (close + 1 < end) {
			if (close[1] != ':')
				return false;
			port = close + 2;
		}
	} else {
		const char *colon = memchr(host, ':', (size_t)(end - host));

		if (colon == host)
			return false;
		if (colon) {
			if (memchr(colon + 1, ':', (size_t)(end - colon - 1)))
				return false;
			port = colon + 1;
		}
	}
	if (port) {
		unsigned long v = 0;

		if (port == end)
			return false;
		for (const char *p = port; p < end; p++) {
			if (*p < '0' || *p > '9' ||
			    (v = v * 10 + (unsigned long)(*p - '0')) > 65535)
				return false;
		}
		if (v == 0)
			return false;
	}
	return true;
}

static int normalize_server(const char *server, char **ret, char *err, size_t errlen)
{
	size_t n;
	char *s;

	if (strncmp(server, "https://", 8) && strncmp(server, "http://", 7)) {
		/* client-go accepts "host:port" and means https. */
		if (strstr(server, "://")) {
			snprintf(err, errlen, "server \"%s\": only http and https are supported",
				 server);
			return -EINVAL;
		}
		if (asprintf(&s, "https://%s", server) < 0)
			return -ENOMEM;
	} else if (!(s = strdup(server))) {
		return -ENOMEM;
	}
	/* Drop trailing slashes, but never into the scheme's "://". */
	n = strlen(s);
	while (n > 0 && s[n - 1] == '/' && (n < 3 || strcmp(s + n - 3, "://")))
		s[--n] = '\0';
	/* A host (and optional port) must follow the scheme; a path after it is
	 * fine (API servers behind proxies have one). */
	if (!valid_url(s)) {
		snprintf(err, errlen, "server \"%s\" is not a URL", server);
		free(s);
		return -EINVAL;
	}
	*ret = s;
	return 0;
}

static int parse_doc(json_t *doc, const char *dir, struct kube_config *cfg, char *err,
		     size_t errlen)
{
	const char *cur = NULL, *cluster_name = NULL, *user_name = NULL, *server = NULL;
	const char *token = NULL, *token_file = NULL, *tls_name = NULL;
	json_t *ctx = NULL, *cluster, *user = NULL, *v;
	int r;

	if (!json_is_object(doc)) {
		snprintf(err, errlen, "not a kubeconfig (expected a mapping at the top)");
		return -EINVAL;
	}
	if ((r = opt_string(doc, "current-context", "kubeconfig", &cur, err, errlen)) < 0)
		return r;
	if (cur && *cur) {
		ctx = find_named(json_object_get(doc, "contexts"), cur, "context");
		if (!ctx) {
			snprintf(err, errlen, "current-context \"%s\" is not among the contexts",
				 cur);
			return -EINVAL;
		}
	} else if (json_array_size(json_object_get(doc, "contexts")) == 1) {
		ctx = json_object_get(json_array_get(json_object_get(doc, "contexts"), 0),
				      "context");
	}
	if (ctx) {
		if ((r = opt_string(ctx, "cluster", "context", &cluster_name, err, errlen)) < 0 ||
		    (r = opt_string(ctx, "user", "context", &user_name, err, errlen)) < 0)
			return r;
	} else if (json_array_size(json_object_get(doc, "clusters")) == 1) {
		/* No context at all: a file with one cluster and at most one user. */
		cluster_name = json_string_value(json_object_get(
			json_array_get(json_object_get(doc, "clusters"), 0), "name"));
		if (json_array_size(json_object_get(doc, "users")) == 1)
			user_name = json_string_value(json_object_get(
				json_array_get(json_object_get(doc, "users"), 0), "name"));
	}
	if (!cluster_name) {
		snprintf(err, errlen, "no current-context, and no single cluster to use");
		return -EINVAL;
	}
	cluster = find_named(json_object_get(doc, "clusters"), cluster_name, "cluster");
	if (!cluster) {
		snprintf(err, errlen, "cluster \"%s\" is not among the clusters", cluster_name);
		return -EINVAL;
	}
	if (user_name && *user_name) {
		user = find_named(json_object_get(doc, "users"), user_name, "user");
		if (!user) {
			snprintf(err, errlen, "user \"%s\" is not among the users", user_name);
			return -EINVAL;
		}
	}

	if ((r = opt_string(cluster, "server", "cluster", &server, err, errlen)) < 0)
		return r;
	if (server && *server && (r = normalize_server(server, &cfg->server, err, errlen)) < 0)
		return r;
	v = json_object_get(cluster, "insecure-skip-tls-verify");
	cfg->insecure =
		json_is_true(v) || (json_is_string(v) && !strcmp(json_string_value(v), "true"));
	if ((r = opt_string(cluster, "tls-server-name", "cluster", &tls_name, err, errlen)) < 0)
		return r;
	if (tls_name && *tls_name && !(cfg->tls_server_name = strdup(tls_name)))
		return -ENOMEM;
	if ((r = take_file_or_data(cluster, "certificate-authority", "certificate-authority-data",
				   "cluster", dir, &cfg->ca_file, &cfg->ca_pem, &cfg->ca_pem_len,
				   err, errlen)) < 0)
		return r;
	if (!user)
		return 0;
	if (json_object_get(user, "exec") || json_object_get(user, "auth-provider")) {
		snprintf(err, errlen,
			 "user \"%s\": exec and auth-provider credentials are not "
			 "supported; use a token, a token file or a client certificate",
			 user_name);
		return -ENOTSUP;
	}
	if ((r = opt_string(user, "token", "user", &token, err, errlen)) < 0 ||
	    (r = opt_string(user, "tokenFile", "user", &token_file, err, errlen)) < 0)
		return r;
	if (token && *token && !(cfg->token = strdup(token)))
		return -ENOMEM;
	if (!cfg->token && token_file && *token_file) {
		cfg->token_file = resolve_path(dir, token_file);
		if (!cfg->token_file)
			return -ENOMEM;
	}
	if ((r = take_file_or_data(user, "client-certificate", "client-certificate-data", "user",
				   dir, &cfg->cert_file, &cfg->cert_pem, &cfg->cert_pem_len, err,
				   errlen)) < 0 ||
	    (r = take_file_or_data(user, "client-key", "client-key-data", "user", dir,
				   &cfg->key_file, &cfg->key_pem, &cfg->key_pem_len, err, errlen)) <
		    0)
		return r;
	if (!!(cfg->cert_file || cfg->cert_pem) != !!(cfg->key_file || cfg->key_pem)) {
		snprintf(err, errlen,
			 "user \"%s\": a client certificate needs a client key and "
			 "the other way round",
			 user_name);
		return -EINVAL;
	}
	return 0;
}

int kube_config_parse(const char *text, size_t len, const char *dir, const char *origin,
		      struct kube_config **ret_cfg, char *err, size_t errlen)
{
	struct kube_config *cfg;
	json_t *doc;
	int r;

	r = yamljson_parse(text, len, &doc, err, errlen);
	if (r < 0)
		return r;
	cfg = calloc(1, sizeof(*cfg));
	if (!cfg) {
		json_decref(doc);
		return -ENOMEM;
	}
	r = parse_doc(doc, dir, cfg, err, errlen);
	json_decref(doc);
	if (r == 0 && !(cfg->origin = strdup(origin)))
		r = -ENOMEM;
	if (r < 0) {
		if (r == -ENOMEM)
			snprintf(err, errlen, "out of memory");
		kube_config_free(cfg);
		return r;
	}
	*ret_cfg = cfg;
	return 0;
}

static int read_file(const char *path, char **ret, size_t *ret_len)
{
	FILE *f = fopen(path, "re");
	char *buf;
	long n;

	if (!f)
		return -errno;
	if (fseek(f, 0, SEEK_END) < 0 || (n = ftell(f)) < 0 || fseek(f, 0, SEEK_SET) < 0 ||
	    n > (16 << 20)) {
		fclose(f);
		return -EFBIG;
	}
	buf = malloc((size_t)n + 1);
	if (!buf) {
		fclose(f);
		return -ENOMEM;
	}
	if (fread(buf, 1, (size_t)n, f) != (size_t)n) {
		free(buf);
		fclose(f);
		return -EIO;
	}
	buf[n] = '\0';
	fclose(f);
	*ret = buf;
	*ret_len = (size_t)n;
	return 0;
}

static int load_kubeconfig(const char *path, struct kube_config **ret_cfg, char *err, size_t errlen)
{
	char origin[512], inner[400];
	char *text = NULL, *pathcopy;
	size_t len = 0;
	int r;

	r = read_file(path, &text, &len);
	if (r < 0) {
		snprintf(err, errlen, "kubeconfig %s: %s", path, strerror(-r));
		return r;
	}
	pathcopy = strdup(path);
	if (!pathcopy) {
		free(text);
		return -ENOMEM;
	}
	snprintf(origin, sizeof(origin), "kubeconfig %s", path);
	r = kube_config_parse(text, len, dirname(pathcopy), origin, ret_cfg, inner, sizeof(inner));
	if (r < 0)
		snprintf(err, errlen, "kubeconfig %s: %s", path, inner);
	free(pathcopy);
	free(text);
	return r;
}

static int load_in_cluster(struct kube_config **ret_cfg, char *err, size_t errlen)
{
	const char *host = getenv("KUBERNETES_SERVICE_HOST");
	const char *port = getenv("KUBERNETES_SERVICE_PORT");
	struct kube_config *cfg = calloc(1, sizeof(*cfg));
	int r;

	if (!cfg)
		return -ENOMEM;
	if (strchr(host, ':'))
		r = asprintf(&cfg->server, "https://[%s]:%s", host, port);
	else
		r = asprintf(&cfg->server, "https://%s:%s", host, port);
	if (r < 0) {
		cfg->server = NULL;
		kube_config_free(cfg);
		return -ENOMEM;
	}
	cfg->token_file = strdup(SA_DIR "/token");
	cfg->ca_file = strdup(SA_DIR "/ca.crt");
	cfg->origin = strdup("in-cluster service account");
	if (!cfg->token_file || !cfg->ca_file || !cfg->origin) {
		kube_config_free(cfg);
		return -ENOMEM;
	}
	if (access(cfg->token_file, R_OK) < 0) {
		r = -errno;
		snprintf(err, errlen, "in-cluster configuration: cannot read %s: %s",
			 cfg->token_file, strerror(errno));
		kube_config_free(cfg);
		return r;
	}
	*ret_cfg = cfg;
	return 0;
}

int kube_config_load(const char *kubeconfig, const char *master, struct kube_config **ret_cfg,
		     char *err, size_t errlen)
{
	struct kube_config *cfg = NULL;
	int r;

	if (kubeconfig && *kubeconfig) {
		r = load_kubeconfig(kubeconfig, &cfg, err, errlen);
	} else if (getenv("KUBERNETES_SERVICE_HOST") && *getenv("KUBERNETES_SERVICE_HOST") &&
		   getenv("KUBERNETES_SERVICE_PORT") && *getenv("KUBERNETES_SERVICE_PORT")) {
		r = load_in_cluster(&cfg, err, errlen);
	} else if (master && *master) {
		cfg = calloc(1, sizeof(*cfg));
		r = cfg && (cfg->origin = strdup("--master")) ? 0 : -ENOMEM;
	} else {
		snprintf(err, errlen,
			 "no API server: give --kubeconfig or --master, or run in a "
			 "cluster");
		r = -EINVAL;
	}
	if (r < 0) {
		kube_config_free(cfg);
		return r;
	}
	if (master && *master) {
		free(cfg->server);
		cfg->server = NULL;
		r = normalize_server(master, &cfg->server, err, errlen);
		if (r < 0) {
			kube_config_free(cfg);
			return r;
		}
	}
	if (!cfg->server) {
		snprintf(err, errlen, "%s: no server given", cfg->origin);
		kube_config_free(cfg);
		return -EINVAL;
	}
	*ret_cfg = cfg;
	return 0;
}
