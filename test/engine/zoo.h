/*
 * zoo.h — shared helpers of the engine test zoo (test/engine/).
 *
 * Every zoo program does real work for ZOO_SECONDS (default 4) seconds,
 * prints "READY" once set up (the suite starts reincarnating it then),
 * checks its own state continuously and at the end, and prints
 * "PASS <name>" and exits 0 only if everything was right.
 */
#ifndef ZOO_H
#define ZOO_H

#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

static pid_t zoo_pid0;

static inline double zoo_now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

static inline double zoo_seconds(void)
{
	const char *s = getenv("ZOO_SECONDS");
	return s ? atof(s) : 4.0;
}

/* Whether to go on working: until `end` (now + zoo_seconds()), and past it
 * while the file $ZOO_UNTIL does not exist (at most 100 s more), so that a
 * suite on a loaded machine makes all its reincarnations while the program
 * still works.  The file is looked at 20 times a second. */
static inline int zoo_running(double end)
{
	static double next;
	static int told;
	const char *until = getenv("ZOO_UNTIL");
	double now = zoo_now();

	if (now < end)
		return 1;
	if (!until || told || now > end + 100)
		return 0;
	if (now >= next) {
		next = now + 0.05;
		told = access(until, F_OK) == 0;
	}
	return !told;
}

__attribute__((format(printf, 1, 2), noreturn))
static inline void zoo_fail(const char *fmt, ...)
{
	va_list ap;
	printf("FAIL: ");
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	printf("\n");
	fflush(stdout);
	_exit(1);
}

#define ZOO_CHECK(cond, ...) do { if (!(cond)) zoo_fail(__VA_ARGS__); } while (0)

static inline void zoo_ready(void)
{
	zoo_pid0 = getpid();
	printf("READY pid %d\n", zoo_pid0);
	fflush(stdout);
}

static inline void zoo_check_identity(pid_t tid0)
{
	ZOO_CHECK(getpid() == zoo_pid0, "getpid %d != %d", getpid(), zoo_pid0);
	ZOO_CHECK(syscall(SYS_getpid) == zoo_pid0, "raw getpid changed");
	if (tid0)
		ZOO_CHECK(syscall(SYS_gettid) == tid0, "gettid %ld != %d", syscall(SYS_gettid), tid0);
}

static inline void zoo_pass(const char *name)
{
	printf("PASS %s\n", name);
	fflush(stdout);
	exit(0);
}

#endif
