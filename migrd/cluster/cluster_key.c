/*
 * cluster_key.c -- see cluster_key.h.
 */
#include "cluster_key.h"

#include <errno.h>
#include <fcntl.h>
#include <sodium.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

int cluster_key_load(const char *path, uint8_t key[CLUSTER_KEY_BYTES], char *why, size_t wl)
{
    struct stat st;
    uint8_t buf[CLUSTER_KEY_BYTES + 1];
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
    if (fd < 0) {
        snprintf(why, wl, "cluster key %s: %s (make one with `migrctl keygen %s`)", path, strerror(errno), path);
        return -1;
    }
    ssize_t n = -1;
    if (fstat(fd, &st) < 0)
        snprintf(why, wl, "cluster key %s: fstat: %s", path, strerror(errno));
    else if (!S_ISREG(st.st_mode))
        snprintf(why, wl, "cluster key %s: not a regular file", path);
    else if (st.st_uid != 0 && st.st_uid != geteuid())
        snprintf(why, wl, "cluster key %s: owned by uid %u, not by root", path, (unsigned)st.st_uid);
    else if (st.st_mode & 077)
        snprintf(why, wl, "cluster key %s: mode %04o lets group or others read it (chmod 600 %s)", path,
                 (unsigned)(st.st_mode & 07777), path);
    else if ((n = read(fd, buf, sizeof buf)) < 0)
        snprintf(why, wl, "cluster key %s: read: %s", path, strerror(errno));
    else if (n != CLUSTER_KEY_BYTES)
        snprintf(why, wl, "cluster key %s: %s bytes, a key has exactly %d (make one with `migrctl keygen`)", path,
                 n > CLUSTER_KEY_BYTES ? "more than 32" : "fewer than 32", CLUSTER_KEY_BYTES);
    close(fd);
    if (n != CLUSTER_KEY_BYTES) {
        sodium_memzero(buf, sizeof buf);
        return -1;
    }
    memcpy(key, buf, CLUSTER_KEY_BYTES);
    sodium_memzero(buf, sizeof buf);
    return 0;
}

int cluster_key_generate(const char *path, char *why, size_t wl)
{
    uint8_t key[CLUSTER_KEY_BYTES];
    if (sodium_init() < 0) {
        snprintf(why, wl, "libsodium cannot be initialised");
        return -1;
    }
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
    if (fd < 0) {
        snprintf(why, wl, "%s: %s%s", path, strerror(errno),
                 errno == EEXIST ? " (a key is never overwritten; remove it first if you mean to)" : "");
        return -1;
    }
    randombytes_buf(key, sizeof key);
    ssize_t n = write(fd, key, sizeof key);
    int err = n < 0 ? errno : n != (ssize_t)sizeof key ? EIO : 0;
    sodium_memzero(key, sizeof key);
    if (!err && fchmod(fd, 0600) < 0)
        err = errno;
    if (!err && fsync(fd) < 0)
        err = errno;
    if (close(fd) < 0 && !err)
        err = errno;
    if (err) {
        snprintf(why, wl, "%s: writing the key: %s", path, strerror(err));
        unlink(path);
        return -1;
    }
    return 0;
}
