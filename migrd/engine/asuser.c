/*
 * migr engine -- opening a file as the restored process would.
 *
 * Owns: eng_open_as().  The restorer runs as root; a file the image names
 * by path (a descriptor reopened by fdpolicy.c, a file mapping of
 * mempolicy.c, the executable) is opened with the credentials the process
 * will have -- its filesystem uid and gid and its supplementary groups,
 * set on this thread only for the open (raw setfsuid/setfsgid/setgroups:
 * glibc's setgroups would change every thread) -- and without following
 * any symbolic link (openat2 RESOLVE_NO_SYMLINKS; the paths of an image are
 * the kernel's, which never contain one), then checked to be of the type
 * the image described.  What the process could not open itself on this
 * node is refused, so a move never gives it more than it had.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>
#include <linux/openat2.h>

#include "engine_int.h"

#define ENG_MAX_GROUPS 65536

static const char *type_name(uint32_t mode)
{
	switch (mode & S_IFMT) {
	case S_IFREG: return "regular file";
	case S_IFDIR: return "directory";
	case S_IFLNK: return "symbolic link";
	case S_IFBLK: return "block device";
	case S_IFCHR: return "character device";
	case S_IFIFO: return "fifo";
	case S_IFSOCK: return "socket";
	default: return "file of unknown type";
	}
}

/* openat2 without symlinks; where the kernel has no openat2, open() with
 * O_NOFOLLOW and the path the kernel resolved compared with the one asked. */
static int open_no_symlinks(const char *path, int flags)
{
	struct open_how how = {.flags = (uint64_t)(unsigned)flags | O_CLOEXEC,
	                       .resolve = RESOLVE_NO_SYMLINKS};
	if (flags & O_PATH)
		how.flags &= O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC;
	int fd = (int)syscall(SYS_openat2, AT_FDCWD, path, &how, sizeof how);
	if (fd >= 0 || errno != ENOSYS)
		return fd;
	fd = open(path, flags | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return -1;
	char self[64], real[PATH_MAX];
	snprintf(self, sizeof self, "/proc/self/fd/%d", fd);
	ssize_t n = readlink(self, real, sizeof real - 1);
	if (n < 0 || (real[n] = 0, strcmp(real, path) != 0)) {
		close(fd);
		errno = ELOOP;
		return -1;
	}
	return fd;
}

/* Become (for the file system, this thread only) the owner of creds:
 * 0, or -1 with errno (nothing changed). */
static int become(const struct eng_creds *c, gid_t *saved, int *nsaved)
{
	*nsaved = getgroups(ENG_MAX_GROUPS, saved);
	if (*nsaved < 0)
		return -1;
	if (c->ngroups > ENG_MAX_GROUPS) {
		errno = E2BIG;
		return -1;
	}
	if (syscall(SYS_setgroups, (size_t)c->ngroups, (const gid_t *)c->groups) < 0)
		return -1;
	syscall(SYS_setfsgid, (gid_t)c->gid[3]);
	syscall(SYS_setfsuid, (uid_t)c->uid[3]);
	/* setfs*id answer the previous value: ask again to see it took */
	if ((uid_t)syscall(SYS_setfsuid, -1) != c->uid[3] || (gid_t)syscall(SYS_setfsgid, -1) != c->gid[3]) {
		syscall(SYS_setfsuid, 0);
		syscall(SYS_setfsgid, 0);
		syscall(SYS_setgroups, (size_t)*nsaved, saved);
		errno = EPERM;
		return -1;
	}
	return 0;
}

static void unbecome(const gid_t *saved, int nsaved)
{
	syscall(SYS_setfsuid, 0);
	syscall(SYS_setfsgid, 0);
	if (syscall(SYS_setgroups, (size_t)nsaved, saved) < 0)
		eng_warn("restoring the restorer's groups: %s", strerror(errno));
}

int eng_open_as(const struct engine_image *img, const char *what, const char *path, int flags, uint32_t mode)
{
	static gid_t saved[ENG_MAX_GROUPS];
	const struct eng_creds *c = &img->creds;
	int nsaved = 0, fd, e;
	bool as_user = c->uid[3] != 0 || c->gid[3] != 0;

	if (as_user && become(c, saved, &nsaved) < 0)
		return eng_fail_errno("%s: cannot take the credentials of uid %u to open %s", what, c->uid[3], path);
	fd = open_no_symlinks(path, flags);
	e = errno;
	if (as_user)
		unbecome(saved, nsaved);
	if (fd < 0) {
		if (e == ELOOP)
			return eng_fail("%s: %s: a symbolic link on the way on this node (not followed)", what, path);
		if (e == EACCES || e == EPERM)
			return eng_fail("%s: uid %u may not open %s on this node (%s)", what, c->uid[3], path,
			                strerror(e));
		errno = e;
		return eng_fail_errno("%s: reopen %s as uid %u", what, path, c->uid[3]);
	}
	struct stat st;
	if (fstat(fd, &st) < 0) {
		e = errno;
		close(fd);
		errno = e;
		return eng_fail_errno("%s: fstat %s", what, path);
	}
	if ((mode & S_IFMT) && (st.st_mode & S_IFMT) != (mode & S_IFMT)) {
		close(fd);
		return eng_fail("%s: %s is a %s on this node, the image says a %s", what, path,
		                type_name(st.st_mode), type_name(mode));
	}
	return fd;
}
