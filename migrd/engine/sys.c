/*
 * migr engine — small system helpers shared by every module: reading /proc
 * files, full reads/writes, raw system calls that glibc 2.36 does not wrap
 * (clone3, pidfd_getfd, kcmp), the CPU's XCR0 and the kernel release.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/utsname.h>
#include <time.h>
#include <unistd.h>
#include <linux/kcmp.h>

#include "engine_int.h"

uint64_t eng_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
}

ssize_t eng_read_file(const char *path, char *buf, size_t cap)
{
	size_t len = 0;
	int fd = open(path, O_RDONLY | O_CLOEXEC);

	if (fd < 0)
		return eng_fail_errno("open %s", path);
	while (len + 1 < cap) {
		ssize_t n = read(fd, buf + len, cap - 1 - len);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			eng_fail_errno("read %s", path);
			close(fd);
			return -1;
		}
		if (n == 0)
			break;
		len += (size_t)n;
	}
	buf[len] = 0;
	close(fd);
	return (ssize_t)len;
}

char *eng_read_file_alloc(const char *path, size_t *lenp)
{
	size_t cap = 8192, len = 0;
	char *buf = malloc(cap);
	int fd;

	if (!buf) {
		eng_fail("out of memory reading %s", path);
		return NULL;
	}
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		eng_fail_errno("open %s", path);
		free(buf);
		return NULL;
	}
	for (;;) {
		ssize_t n;
		if (len + 1 >= cap) {
			char *nb = realloc(buf, cap * 2);
			if (!nb) {
				eng_fail("out of memory reading %s", path);
				goto fail;
			}
			buf = nb;
			cap *= 2;
		}
		n = read(fd, buf + len, cap - 1 - len);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			eng_fail_errno("read %s", path);
			goto fail;
		}
		if (n == 0)
			break;
		len += (size_t)n;
	}
	buf[len] = 0;
	close(fd);
	if (lenp)
		*lenp = len;
	return buf;
fail:
	close(fd);
	free(buf);
	return NULL;
}

int eng_readlink(const char *path, char *buf, size_t cap)
{
	ssize_t n = readlink(path, buf, cap - 1);

	if (n < 0)
		return eng_fail_errno("readlink %s", path);
	buf[n] = 0;
	return 0;
}

int eng_read_full(int fd, void *buf, size_t len)
{
	uint8_t *p = buf;

	while (len) {
		ssize_t n = read(fd, p, len);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return eng_fail_errno("read fd %d", fd);
		}
		if (n == 0)
			return eng_fail("read fd %d: unexpected end of data (truncated)", fd);
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

int eng_write_full(int fd, const void *buf, size_t len)
{
	const uint8_t *p = buf;

	while (len) {
		ssize_t n = write(fd, p, len);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return eng_fail_errno("write fd %d", fd);
		}
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

void *eng_xcalloc(size_t n, size_t sz)
{
	void *p = calloc(n ? n : 1, sz ? sz : 1);

	if (!p)
		eng_fail("out of memory (%zu x %zu bytes)", n, sz);
	return p;
}

char *eng_xstrdup(const char *s)
{
	char *p = strdup(s ? s : "");

	if (!p)
		eng_fail("out of memory");
	return p;
}

long eng_clone3(void *args, size_t size)
{
	return syscall(SYS_clone3, args, size);
}

int eng_pidfd_open(pid_t pid)
{
	return (int)syscall(SYS_pidfd_open, pid, 0);
}

int eng_pidfd_getfd(int pidfd, int fd)
{
	return (int)syscall(SYS_pidfd_getfd, pidfd, fd, 0);
}

int eng_kcmp_file(pid_t pid, int fd1, int fd2)
{
	long r = syscall(SYS_kcmp, pid, pid, KCMP_FILE, fd1, fd2);

	if (r < 0)
		return eng_fail_errno("kcmp(pid %d, fd %d, fd %d)", pid, fd1, fd2);
	return r == 0 ? 0 : 1;
}

uint64_t eng_xcr0(void)
{
	uint32_t eax, edx;

	__asm__ volatile("xgetbv" : "=a"(eax), "=d"(edx) : "c"(0));
	return ((uint64_t)edx << 32) | eax;
}

int eng_kernel_release(char *rel, size_t rlen, char *mach, size_t mlen)
{
	struct utsname u;

	if (uname(&u) < 0)
		return eng_fail_errno("uname");
	snprintf(rel, rlen, "%s %s", u.release, u.version);
	snprintf(mach, mlen, "%s", u.machine);
	return 0;
}

void eng_close(int *fd)
{
	if (*fd >= 0)
		close(*fd);
	*fd = -1;
}
