/*
 * migr engine — logging and error text.
 *
 * Owns the one place where engine log lines go (a level and an optional
 * sink set by engine_set_log()) and the per-thread "last error" text that
 * every failing engine call leaves for engine_strerror().
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "engine_int.h"

static int log_level = ENGINE_LOG_WARN;
static void (*log_sink)(int, const char *);
static __thread char last_error[1024];

void engine_set_log(int level, void (*sink)(int, const char *))
{
	log_level = level;
	log_sink = sink;
}

const char *engine_strerror(void)
{
	return last_error[0] ? last_error : "no error";
}

void eng_log(int level, const char *fmt, ...)
{
	static const char *names[] = { "error", "warn", "info", "debug" };
	char line[1024];
	va_list ap;

	if (level > log_level)
		return;
	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	if (log_sink)
		log_sink(level, line);
	else
		fprintf(stderr, "migr-engine %s: %s\n", names[level & 3], line);
}

int eng_fail(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(last_error, sizeof(last_error), fmt, ap);
	va_end(ap);
	eng_debug("error: %s", last_error);
	return -1;
}

int eng_fail_errno(const char *fmt, ...)
{
	int err = errno;
	size_t n;
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(last_error, sizeof(last_error), fmt, ap);
	va_end(ap);
	n = strlen(last_error);
	snprintf(last_error + n, sizeof(last_error) - n, ": %s", strerror(err));
	eng_debug("error: %s", last_error);
	errno = err;
	return -1;
}

int eng_wrap(const char *fmt, ...)
{
	char ctx[512], old[sizeof(last_error)];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(ctx, sizeof(ctx), fmt, ap);
	va_end(ap);
	memcpy(old, last_error, sizeof(old));
	{
		size_t n = strlen(ctx);
		memcpy(last_error, ctx, n);
		last_error[n] = 0;
		if (n + 2 < sizeof(last_error)) {
			memcpy(last_error + n, ": ", 3);
			n += 2;
			const char *tail = old[0] ? old : "failed";
			size_t t = strlen(tail);
			if (t > sizeof(last_error) - n - 1)
				t = sizeof(last_error) - n - 1;
			memcpy(last_error + n, tail, t);
			last_error[n + t] = 0;
		}
	}
	return -1;
}

void engine_set_error(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(last_error, sizeof(last_error), fmt, ap);
	va_end(ap);
}
