/* libFuzzer target for the kubeconfig reader: kube_config_parse() on the
 * input as YAML, with relative file names resolved under a directory that
 * does not exist.  A parse either fails with a reason or gives a config
 * whose server (when set) is a normalized http(s) URL and whose client
 * certificate and key come as a pair. */
#include <errno.h>
#include <jansson.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kube/config.h"

/* A broken expectation is a crash, with the expectation named. */
#define check(cond)                                                                               \
	do {                                                                                      \
		if (!(cond)) {                                                                    \
			fprintf(stderr, "check failed: %s (%s:%d)\n", #cond, __FILE__, __LINE__); \
			__builtin_trap();                                                         \
		}                                                                                 \
	} while (0)

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	json_object_seed(1);
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct kube_config *cfg = NULL;
	char err[512];
	int r;

	err[0] = '\0';
	r = kube_config_parse((const char *)data, size, "/nonexistent", "fuzz", &cfg, err,
			      sizeof(err));
	if (r < 0) {
		check(cfg == NULL);
		check(err[0] != '\0');
		check(memchr(err, '\0', sizeof(err)) != NULL);
		return 0;
	}
	check(cfg != NULL);
	check(cfg->origin && !strcmp(cfg->origin, "fuzz"));
	if (cfg->server) {
		size_t n = strlen(cfg->server);

		check(!strncmp(cfg->server, "https://", 8) || !strncmp(cfg->server, "http://", 7));
		check(n > 0 && cfg->server[n - 1] != '/');
	}
	check(!!(cfg->cert_file || cfg->cert_pem) == !!(cfg->key_file || cfg->key_pem));
	check(!(cfg->token && cfg->token_file));
	kube_config_free(cfg);
	return 0;
}
