/* klog-style log lines on standard error; see log.h for the format. */
#include "util/log.h"

#include <stdarg.h>
#include <stdio.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

int log_verbosity;

void log_printf(char severity, const char *file, int line, const char *fmt, ...)
{
	struct timeval tv;
	struct tm tm;
	char msg[2048];
	va_list ap;

	gettimeofday(&tv, NULL);
	gmtime_r(&tv.tv_sec, &tm);
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	/* One fprintf per line so that lines from concurrent processes sharing a
	 * file do not interleave mid-line. */
	fprintf(stderr, "%c%02d%02d %02d:%02d:%02d.%06ld %7d %s:%d] %s\n", severity, tm.tm_mon + 1,
		tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, (long)tv.tv_usec, (int)getpid(), file,
		line, msg);
}
