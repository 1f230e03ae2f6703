/* Where the API server is and how to authenticate to it: from a kubeconfig
 * file (clusters, users, contexts, current-context), from the in-cluster
 * service-account environment, or from --master alone. */
#ifndef KPROXY_KUBE_CONFIG_H
#define KPROXY_KUBE_CONFIG_H

#include <stdbool.h>
#include <stddef.h>

struct kube_config {
	char *server;	  /* "https://host:port", no trailing slash */
	char *token;	  /* bearer token given inline, or NULL */
	char *token_file; /* bearer token file, re-read when it changes, or NULL */
	char *ca_file;	  /* PEM file of CAs to trust, or NULL */
	char *ca_pem;	  /* PEM text of CAs to trust, or NULL */
	size_t ca_pem_len;
	char *cert_file; /* client certificate (PEM) file, or NULL */
	char *cert_pem;	 /* client certificate PEM text, or NULL */
	size_t cert_pem_len;
	char *key_file; /* client key file, or NULL */
	char *key_pem;	/* client key PEM text, or NULL */
	size_t key_pem_len;
	char *tls_server_name; /* name to verify instead of the host's, or NULL */
	bool insecure;	       /* insecure-skip-tls-verify */
	char *origin;	       /* where this came from, for messages */
};

/* Loads the configuration as kube-proxy does: the kubeconfig file when one is
 * given, else the in-cluster environment (KUBERNETES_SERVICE_HOST/PORT and the
 * service-account token and CA), else --master alone.  master, when not NULL,
 * overrides the server.  Returns 0 and a config the caller owns, or -errno
 * with the reason in err. */
int kube_config_load(const char *kubeconfig, const char *master, struct kube_config **ret_cfg,
		     char *err, size_t errlen);

/* Parses kubeconfig YAML text; dir resolves relative file names.  For tests
 * and the loader above. */
int kube_config_parse(const char *text, size_t len, const char *dir, const char *origin,
		      struct kube_config **ret_cfg, char *err, size_t errlen);

/* Accepts NULL. */
void kube_config_free(struct kube_config *cfg);

#endif
