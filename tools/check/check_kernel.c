/*
 * check_kernel.c -- what migr needs of the kernel, tried for real: root,
 * ptrace, clone3 with set_tid, pidfd_open/pidfd_getfd, process_vm_readv,
 * userfaultfd, and the kernel release (see check.h).
 */
#include "check.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/sched.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ptrace.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <unistd.h>

/* The oldest release with everything the engine calls: clone3 with
 * set_tid (5.5) and pidfd_getfd (5.6). */
#define KERNEL_MIN_MAJOR 5
#define KERNEL_MIN_MINOR 6

/* The first integer in /proc/sys/PATH, or -1 (errno: ENOENT when absent). */
static long read_sysctl(const char *path)
{
    char buf[32];
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    ssize_t n = read(fd, buf, sizeof buf - 1);
    int err = errno;
    close(fd);
    if (n <= 0) {
        errno = n < 0 ? err : EINVAL;
        return -1;
    }
    buf[n] = 0;
    return strtol(buf, NULL, 10);
}

void check_root(struct check_ctx *c)
{
    if (c->root)
        check_report("root", CHECK_OK, NULL, "running as root: every check below is migrd's view");
    else
        check_report("root", CHECK_WARN, "run 'migrctl check' as root to check migrd's view",
                     "running as uid %u: migrd must run as root; this user can still run, move, list and "
                     "signal their own processes (migrctl run, migrate, ps, log); checks that need root "
                     "say so", (unsigned)c->euid);
}

void check_kernel_release(struct check_ctx *c)
{
    struct utsname u;
    int major = 0, minor = 0;
    (void)c;
    if (uname(&u) < 0) {
        check_report("kernel", CHECK_FAIL, NULL, "uname: %s", strerror(errno));
        return;
    }
    if (sscanf(u.release, "%d.%d", &major, &minor) != 2) {
        check_report("kernel", CHECK_WARN, NULL, "release '%s' is not MAJOR.MINOR...: cannot compare with %d.%d",
                     u.release, KERNEL_MIN_MAJOR, KERNEL_MIN_MINOR);
        return;
    }
    if (major < KERNEL_MIN_MAJOR || (major == KERNEL_MIN_MAJOR && minor < KERNEL_MIN_MINOR)) {
        check_report("kernel", CHECK_FAIL, "boot a kernel 5.6 or newer",
                     "%s %s: older than %d.%d (clone3 set_tid, pidfd_getfd)", u.sysname, u.release,
                     KERNEL_MIN_MAJOR, KERNEL_MIN_MINOR);
        return;
    }
    check_report("kernel", CHECK_OK, NULL,
                 "%s %s %s (>= %d.%d); processes move only between nodes running this same release", u.sysname,
                 u.release, u.machine, KERNEL_MIN_MAJOR, KERNEL_MIN_MINOR);
}

/* Yama's setting, then a real PTRACE_SEIZE of a child of ours. */
void check_ptrace(struct check_ctx *c)
{
    long scope = read_sysctl("/proc/sys/kernel/yama/ptrace_scope");
    char yama[96];
    if (scope < 0)
        snprintf(yama, sizeof yama, "no Yama (kernel.yama.ptrace_scope absent)");
    else
        snprintf(yama, sizeof yama, "kernel.yama.ptrace_scope = %ld", scope);
    if (scope >= 3) {
        check_report("ptrace", CHECK_FAIL,
                     "set kernel.yama.ptrace_scope to 1 in /etc/sysctl.d/ and reboot (3 cannot be lowered)",
                     "%s: nobody may trace a process, migrd cannot freeze one", yama);
        return;
    }
    pid_t child = check_spawn_idle();
    if (child < 0) {
        check_report("ptrace", CHECK_FAIL, NULL, "%s; fork for the test: %s", yama, strerror(errno));
        return;
    }
    long rc = ptrace(PTRACE_SEIZE, child, 0, 0);
    int err = errno;
    check_reap(child);
    if (rc < 0) {
        check_report("ptrace", CHECK_FAIL,
                     "allow ptrace (a container: give it CAP_SYS_PTRACE and a seccomp profile allowing ptrace)",
                     "%s; PTRACE_SEIZE of a child (pid %d): %s", yama, child, strerror(err));
        return;
    }
    if (scope == 2 && !c->root)
        check_report("ptrace", CHECK_WARN, NULL, "%s: only root (migrd) may trace; fine for migrd", yama);
    else
        check_report("ptrace", CHECK_OK, NULL, "%s; PTRACE_SEIZE of a child works", yama);
}

/* clone3 with set_tid asking for a pid in use (ours): EEXIST means the
 * kernel has it and lets us use it, EPERM that it needs privileges. */
void check_clone3(struct check_ctx *c)
{
    pid_t want = getpid();
    struct clone_args a = {.exit_signal = SIGCHLD, .set_tid = (uint64_t)(uintptr_t)&want, .set_tid_size = 1};
    long rc = syscall(SYS_clone3, &a, sizeof a);
    int err = errno;
    if (rc == 0)
        _exit(0); /* cannot happen (the pid is ours); never run on in a copy */
    if (rc > 0) {
        while (waitpid((pid_t)rc, NULL, 0) < 0 && errno == EINTR)
            ;
        check_report("clone3 set_tid", CHECK_WARN, NULL, "clone3 made pid %ld when asked for %d (in use)", rc, want);
        return;
    }
    if (err == EEXIST)
        check_report("clone3 set_tid", CHECK_OK, NULL, "clone3 with set_tid works (restores keep their pid)");
    else if (err == EPERM && !c->root)
        check_report("clone3 set_tid", CHECK_WARN, NULL,
                     "needs CAP_SYS_ADMIN or CAP_CHECKPOINT_RESTORE (migrd, as root, has them): not tried as uid %u",
                     (unsigned)c->euid);
    else if (err == ENOSYS)
        check_report("clone3 set_tid", CHECK_FAIL, "boot a kernel 5.6 or newer (or allow clone3 in seccomp)",
                     "clone3: %s", strerror(err));
    else if (err == EINVAL || err == E2BIG)
        check_report("clone3 set_tid", CHECK_FAIL, "boot a kernel 5.5 or newer",
                     "clone3 refuses set_tid: %s", strerror(err));
    else
        check_report("clone3 set_tid", CHECK_FAIL, c->root ? "allow clone3 (seccomp, container policy)" : NULL,
                     "clone3 with set_tid: %s", strerror(err));
}

void check_pidfd(struct check_ctx *c)
{
    (void)c;
    int pidfd = (int)syscall(SYS_pidfd_open, getpid(), 0);
    if (pidfd < 0) {
        check_report("pidfd", CHECK_FAIL, "boot a kernel 5.6 or newer", "pidfd_open(pid %d): %s", getpid(),
                     strerror(errno));
        return;
    }
    int copy = (int)syscall(SYS_pidfd_getfd, pidfd, pidfd, 0);
    int err = errno;
    if (copy >= 0)
        close(copy);
    close(pidfd);
    if (copy < 0)
        check_report("pidfd", CHECK_FAIL, "boot a kernel 5.6 or newer", "pidfd_getfd(fd %d): %s", pidfd,
                     strerror(err));
    else
        check_report("pidfd", CHECK_OK, NULL, "pidfd_open and pidfd_getfd work (descriptors are copied from a "
                                              "frozen process)");
}

static volatile uint64_t vm_readv_probe = 0x6d6967726d696772ull;

void check_vm_readv(struct check_ctx *c)
{
    (void)c;
    pid_t child = check_spawn_idle();
    if (child < 0) {
        check_report("process_vm_readv", CHECK_FAIL, NULL, "fork for the test: %s", strerror(errno));
        return;
    }
    uint64_t got = 0;
    struct iovec l = {.iov_base = &got, .iov_len = sizeof got};
    struct iovec r = {.iov_base = (void *)&vm_readv_probe, .iov_len = sizeof vm_readv_probe};
    ssize_t n = process_vm_readv(child, &l, 1, &r, 1, 0);
    int err = errno;
    check_reap(child);
    if (n != (ssize_t)sizeof got || got != vm_readv_probe)
        check_report("process_vm_readv", CHECK_FAIL, "allow process_vm_readv (seccomp, container policy)",
                     "reading 8 bytes of child pid %d: %s", child, n < 0 ? strerror(err) : "wrong bytes");
    else
        check_report("process_vm_readv", CHECK_OK, NULL, "reads another process's memory (images are copied "
                                                         "this way)");
}

/* Lazy moves need it (the pager, migrd/pager/: a restored process's
 * userfaultfd, made before its credentials are set, so root's is what
 * counts); eager moves do not: a warning at most. */
void check_userfaultfd(struct check_ctx *c)
{
    long unpriv = read_sysctl("/proc/sys/vm/unprivileged_userfaultfd");
    char knob[64] = "";
    if (unpriv >= 0)
        snprintf(knob, sizeof knob, " (vm.unprivileged_userfaultfd = %ld)", unpriv);
    int fd = (int)syscall(SYS_userfaultfd, O_CLOEXEC | O_NONBLOCK);
    int err = errno;
    if (fd >= 0) {
        close(fd);
        check_report("userfaultfd", CHECK_OK, NULL, "available%s: lazy moves can run", knob);
    } else if (err == EPERM && !c->root) {
        check_report("userfaultfd", CHECK_OK, NULL, "root only%s: enough, migrd makes it as root", knob);
    } else {
        check_report("userfaultfd", CHECK_WARN, "a kernel with CONFIG_USERFAULTFD, for lazy moves",
                     "unavailable: %s%s: only eager moves (migrctl migrate --eager) can run", strerror(err), knob);
    }
}
