/* Logging in the line format of klog, which kube-proxy uses, so that the
 * agent's output reads like the component it replaces and log pipelines that
 * parse kube-proxy lines keep working:
 *
 *   I1123 09:11:23.123456    1234 watch.c:42] message
 *
 * Errors, warnings and info lines always print; verbose lines print when the
 * level given with --v is at least theirs.  Library-like modules return
 * errors instead of logging them; the caller one level up says why. */
#ifndef KPROXY_UTIL_LOG_H
#define KPROXY_UTIL_LOG_H

#include <stdbool.h>

/* The --v level: 0 quiet, 2 sync summaries, 4 every object, 6 every request. */
extern int log_verbosity;

void log_printf(char severity, const char *file, int line, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

#define log_error(...) log_printf('E', __FILE_NAME__, __LINE__, __VA_ARGS__)
#define log_warn(...)  log_printf('W', __FILE_NAME__, __LINE__, __VA_ARGS__)
#define log_info(...)  log_printf('I', __FILE_NAME__, __LINE__, __VA_ARGS__)
#define log_v(level, ...)                                                      \
	do {                                                                   \
		if (log_verbosity >= (level))                                  \
			log_printf('I', __FILE_NAME__, __LINE__, __VA_ARGS__); \
	} while (0)

static inline bool log_enabled(int level)
{
	return log_verbosity >= level;
}

#endif
