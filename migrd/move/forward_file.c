/*
 * forward_file.c -- regular files whose open file description a moved
 * process shares with its home (forward.h, "shared files").
 *
 * Owns: which descriptions are shared with the home (the stub holds the
 * same one: a shell redirect that the stub and the process inherited), the
 * descriptors a node keeps of them (the home: the originals; where the
 * process runs: a copy of the description it was restored with), and the
 * offset handed back to the home (FILEPOS).  A file is one offset, not a
 * channel: the process reads and writes it directly where it runs, and its
 * offset travels in the image at each move.
 */
#include <dirent.h>
#include <errno.h>
#include <linux/kcmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "migrd/util/log.h"
#include "forward.h"
#include "forward_conn.h"

void fwd_files_init(struct fwd_files *fs) { fs->n = 0; }

int fwd_files_add(struct fwd_files *fs, uint32_t id, int fd)
{
    if (fs->n >= MIG_MAX_FILES || !id || fwd_files_fd(fs, id) >= 0) {
        close(fd);
        errno = fs->n >= MIG_MAX_FILES ? ENOSPC : EEXIST;
        return -1;
    }
    fs->f[fs->n].id = id;
    fs->f[fs->n].fd = fd;
    fs->n++;
    return 0;
}

int fwd_files_fd(const struct fwd_files *fs, uint32_t id)
{
    for (uint32_t i = 0; i < fs->n; i++)
        if (fs->f[i].id == id)
            return fs->f[i].fd;
    return -1;
}

/* 0: fd of pid is our `mine`; 1: it is not; -1: error (errno) */
static int same_file(pid_t pid, int fd, int mine)
{
    long r = syscall(SYS_kcmp, getpid(), pid, KCMP_FILE, mine, fd);
    return r < 0 ? -1 : r != 0;
}

uint32_t fwd_files_id_of(const struct fwd_files *fs, pid_t pid, int fd)
{
    for (uint32_t i = 0; i < fs->n; i++) {
        int r = same_file(pid, fd, fs->f[i].fd);
        if (r == 0)
            return fs->f[i].id;
        if (r < 0)
            log_warn("pid %d: comparing its fd %d with our fd %d (file %u): kcmp: %s", pid, fd, fs->f[i].fd,
                     fs->f[i].id, strerror(errno));
    }
    return 0;
}

int fwd_file_shared(pid_t pid, int fd, pid_t other)
{
    char path[64];
    struct dirent *de;
    int found = 0;
    snprintf(path, sizeof path, "/proc/%d/fd", other);
    DIR *dir = opendir(path);
    if (!dir) {
        log_warn("pid %d: fd %d: cannot list the descriptors of its stub %d (%s): %s: its file is taken "
                 "as its own", pid, fd, other, path, strerror(errno));
        return 0;
    }
    while (!found && (de = readdir(dir))) {
        if (de->d_name[0] < '0' || de->d_name[0] > '9')
            continue;
        long r = syscall(SYS_kcmp, other, pid, KCMP_FILE, atoi(de->d_name), fd);
        if (r == 0)
            found = 1;
        else if (r < 0 && errno != EBADF) {
            log_error("pid %d: comparing its fd %d with fd %s of its stub %d: kcmp: %s", pid, fd, de->d_name,
                      other, strerror(errno));
            found = -1;
        }
    }
    closedir(dir);
    return found;
}

void fwd_files_send_pos(const struct fwd_files *fs, struct fconn *c, pid_t pid)
{
    for (uint32_t i = 0; i < fs->n; i++) {
        off_t pos = lseek(fs->f[i].fd, 0, SEEK_CUR);
        if (pos < 0) {
            log_warn("pid %d: offset of its shared file %u (our fd %d): %s: not handed back", pid, fs->f[i].id,
                     fs->f[i].fd, strerror(errno));
            continue;
        }
        struct mig_filepos fp = {.id = fs->f[i].id, .pos = (uint64_t)pos};
        fconn_send(c, FWD_FILEPOS, 0, &fp, sizeof fp);
    }
}

void fwd_files_set_pos(const struct fwd_files *fs, const struct mig_filepos *fp, pid_t pid)
{
    int fd = fwd_files_fd(fs, fp->id);
    if (fd < 0) {
        log_warn("pid %d: offset for unknown shared file %u ignored", pid, fp->id);
        return;
    }
    if (fp->pos > (uint64_t)INT64_MAX || lseek(fd, (off_t)fp->pos, SEEK_SET) < 0)
        log_error("pid %d: setting the offset of its shared file %u (fd %d) to %llu: %s", pid, fp->id, fd,
                  (unsigned long long)fp->pos, strerror(errno));
}

void fwd_files_close(struct fwd_files *fs)
{
    for (uint32_t i = 0; i < fs->n; i++)
        close(fs->f[i].fd);
    fs->n = 0;
}
