/* The --config file: a KubeProxyConfiguration
 * (kubeproxy.config.k8s.io/v1alpha1) as kubeadm writes it, read into the same
 * options the flags fill, so that an operator can point kproxy at the file
 * kube-proxy used.  Flags given on the command line override the file. */
#ifndef KPROXY_CONFIG_H
#define KPROXY_CONFIG_H

#include <stddef.h>

#include "options.h"

/* Applies the file at path onto opts.  Fields kproxy has no use for are
 * accepted (with a notice where they would change kube-proxy's behaviour);
 * unknown fields give a warning each (appended to warnings, one per line,
 * if not NULL); an invalid value is an error naming the field.  Returns 0, or
 * -errno with the reason in err.  Strings in opts may point into memory kept
 * until config_release(). */
int config_load(const char *path, struct options *opts, char *warnings, size_t warnlen, char *err,
		size_t errlen);

/* The same from YAML text, for tests. */
int config_parse(const char *text, size_t len, struct options *opts, char *warnings, size_t warnlen,
		 char *err, size_t errlen);

/* Frees what the loaded files' strings live in. */
void config_release(void);

#endif
