/*
 * deputy.c -- see deputy.h.  The stub's only state: is CMD still our child
 * at home, or did migrd tell us it moved away (then its death here is the
 * end of the source copy, and the real end comes as an EXITED event)?
 */
#include "deputy.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common/ctlmsg.h"
#include "common/wire.h"

#define REREGISTER_MS 200
#define GIVE_BACK_TRIES 300 /* of REREGISTER_MS: a minute */

static int connect_migrd(const char *path)
{
    int fd = ctl_connect(path);
    if (fd < 0) {
        fprintf(stderr, "migrctl run: no migrd answers on %s: %s\n", path, strerror(-fd));
        return -1;
    }
    return fd;
}

/* End like CMD ended. */
static int finish(int ctl, pid_t pid, int status)
{
    struct ctl_proc_done done = {.pid = pid, .status = status};
    if (ctl >= 0)
        ctl_send(ctl, CTL_PROC_DONE, 0, &done, sizeof done, NULL, 0);
    if (WIFSIGNALED(status)) {
        int sig = WTERMSIG(status);
        sigset_t s;
        /* CMD dumped its own core if it was to; the deputy's is not wanted */
        setrlimit(RLIMIT_CORE, &(struct rlimit){0, 0});
        signal(sig, SIG_DFL);
        sigemptyset(&s);
        sigaddset(&s, sig);
        sigprocmask(SIG_UNBLOCK, &s, NULL);
        raise(sig);
        return 128 + sig;
    }
    return WIFEXITED(status) ? WEXITSTATUS(status) : 1;
}

/* What the home held of CMD while it runs elsewhere, given to the deputy
 * by a migrd that stops (CTL_PROC_HOLD parts with their descriptors), for
 * the next migrd. */
#define HOLD_MAX_PARTS 16
static struct {
    struct ctl_proc_hold part[HOLD_MAX_PARTS];
    int fds[HOLD_MAX_PARTS][CTL_MAX_FDS];
    int n;
    int complete;            /* the last part is in */
} held;

static void held_drop(void)
{
    for (int k = 0; k < held.n; k++)
        for (uint32_t i = 0; i < held.part[k].n; i++)
            close(held.fds[k][i]);
    held.n = held.complete = 0;
}

/* A part of what the home held: kept with its descriptors, or dropped
 * (they are closed) if it is not the next one. */
static void held_add(const struct ctl_proc_hold *h, int *fds, int nfds)
{
    if (h->part == 0)
        held_drop();
    if (held.complete || (int)h->part != held.n || held.n >= HOLD_MAX_PARTS || h->n > CTL_MAX_FDS ||
        (int)h->n != nfds)
        return;
    held.part[held.n] = *h;
    for (int i = 0; i < nfds; i++) {
        held.fds[held.n][i] = fds[i];
        fds[i] = -1;
    }
    held.n++;
    held.complete = h->last != 0;
}

/* One message from migrd; *moved / *exit_status updated.  0, 1 (nothing
 * waiting), -1 (migrd gone). */
static int read_event(int ctl, int flags, int *moved, int *exited, int *exit_status, pid_t pid)
{
    static char buf[CTL_MAX_MSG];
    int fds[CTL_MAX_FDS], nfds = 0, eof = 0;
    ssize_t n = ctl_recv(ctl, buf, sizeof buf, fds, &nfds, &eof, flags);
    const struct ctl_hdr *h = (const void *)buf;
    if (n >= 0 && !eof && h->type == CTL_PROC_HOLD && h->len == sizeof(struct ctl_proc_hold))
        held_add((const void *)(h + 1), fds, nfds);
    for (int i = 0; i < nfds; i++)
        if (fds[i] >= 0)
            close(fds[i]);
    if (n == -EAGAIN)
        return 1;
    if (eof || n < 0)
        return -1;
    if (h->type == CTL_PROC_EVENT && h->len == sizeof(struct ctl_proc_event)) {
        const struct ctl_proc_event *ev = (const void *)(h + 1);
        if (ev->type == CTL_PEV_MOVED) {
            *moved = 1;
        } else if (ev->type == CTL_PEV_EXITED) {
            *exited = 1;
            *exit_status = ev->status;
        }
    } else if (h->type == CTL_ERROR && h->len == sizeof(struct ctl_error)) {
        fprintf(stderr, "migrctl run: pid %d: migrd: %.200s\n", pid,
                ((const struct ctl_error *)(h + 1))->message);
    }
    return 0;
}

static int await_registration(int ctl, pid_t pid)
{
    static char buf[CTL_MAX_MSG];
    struct pollfd p = {.fd = ctl, .events = POLLIN};
    int fds[CTL_MAX_FDS], nfds = 0, eof = 0;
    if (poll(&p, 1, 5000) <= 0) {
        fprintf(stderr, "migrctl run: migrd did not answer the registration of pid %d\n", pid);
        return -1;
    }
    ssize_t n = ctl_recv(ctl, buf, sizeof buf, fds, &nfds, &eof, 0);
    for (int i = 0; i < nfds; i++)
        close(fds[i]);
    const struct ctl_hdr *h = (const void *)buf;
    if (eof || n < 0) {
        fprintf(stderr, "migrctl run: registering pid %d: %s\n", pid, eof ? "migrd closed the connection" : strerror((int)-n));
        return -1;
    }
    if (h->type == CTL_ERROR && h->len == sizeof(struct ctl_error)) {
        fprintf(stderr, "migrctl run: migrd refused pid %d: %.200s\n", pid,
                ((const struct ctl_error *)(h + 1))->message);
        return -1;
    }
    return h->type == CTL_OK ? 0 : -1;
}

/* migrd went away while CMD ran here, never moved: register it with the
 * next migrd on the socket.  The connection, -1 (none answers yet: try
 * again later) or -2 (it refused: give up). */
static int register_again(const char *sock_path, const struct ctl_proc_register *reg)
{
    int fd = ctl_connect(sock_path);
    if (fd < 0)
        return -1;
    if (ctl_send(fd, CTL_PROC_REGISTER, 1, reg, sizeof *reg, NULL, 0) < 0 || await_registration(fd, reg->pid) < 0) {
        close(fd);
        return -2;
    }
    return fd;
}

/* Likewise for CMD running elsewhere: give the next migrd what the home
 * held of it (then the deputy's copies go). */
static int give_back(const char *sock_path, pid_t pid)
{
    int fd = ctl_connect(sock_path), rc = 0;
    if (fd < 0)
        return -1;
    for (int k = 0; k < held.n && rc == 0; k++)
        rc = ctl_send(fd, CTL_PROC_HOLD, 1, &held.part[k], sizeof held.part[k], held.fds[k], (int)held.part[k].n);
    if (rc < 0 || await_registration(fd, pid) < 0) {
        close(fd);
        return -2;
    }
    held_drop();
    return fd;
}

int migrctl_run(const char *sock_path, const struct deputy_opts *o, char **cmd)
{
    struct ctl_proc_register reg = {0};
    if (o->is_rank) {
        reg.job = o->job;
        reg.rank = o->rank;
        reg.flags = CTL_PROC_RANK;
    }
    int ctl = connect_migrd(sock_path);
    if (ctl < 0)
        return 1;
    /* Every signal the deputy can catch is CMD's (SIGCHLD is the deputy's). */
    sigset_t set, old;
    sigfillset(&set);
    sigprocmask(SIG_BLOCK, &set, &old);
    int sfd = signalfd(-1, &set, SFD_CLOEXEC | SFD_NONBLOCK);
    if (sfd < 0) {
        perror("migrctl run: signalfd");
        return 1;
    }
    pid_t pid = fork();
    if (pid < 0) {
        perror("migrctl run: fork");
        return 1;
    }
    if (pid == 0) {
        sigprocmask(SIG_SETMASK, &old, NULL);
        execvp(cmd[0], cmd);
        fprintf(stderr, "migrctl run: cannot start %s: %s\n", cmd[0], strerror(errno));
        _exit(127);
    }
    reg.pid = pid;
    reg.flags |= o->no_migrate ? CTL_PROC_NO_MIGRATE : 0;
    const char *base = strrchr(cmd[0], '/');
    snprintf(reg.cmd, sizeof reg.cmd, "%s", base ? base + 1 : cmd[0]);
    if (ctl_send(ctl, CTL_PROC_REGISTER, 1, &reg, sizeof reg, NULL, 0) < 0 ||
        await_registration(ctl, pid) < 0) {
        kill(pid, SIGKILL);
        waitpid(pid, NULL, 0);
        return 1;
    }
    if (o->pidfile) {
        char tmp[4200];
        FILE *f;
        snprintf(tmp, sizeof tmp, "%s.tmp", o->pidfile);
        if (!(f = fopen(tmp, "w")) || fprintf(f, "%d\n", pid) < 0 || fclose(f) != 0 || rename(tmp, o->pidfile) < 0)
            fprintf(stderr, "migrctl run: writing pid file %s: %s\n", o->pidfile, strerror(errno));
    }
    int moved = 0, exited = 0, status = 0, child_gone = 0, again = 0;
    for (;;) {
        struct pollfd p[2] = {{.fd = sfd, .events = POLLIN}, {.fd = ctl, .events = POLLIN}};
        /* without migrd: every REREGISTER_MS, look for the next one */
        if (poll(p, ctl >= 0 ? 2 : 1, again ? REREGISTER_MS : -1) < 0 && errno != EINTR) {
            perror("migrctl run: poll");
            return 1;
        }
        if (again && (held.complete || !child_gone)) {
            int fd = held.complete ? give_back(sock_path, pid) : register_again(sock_path, &reg);
            if (fd >= 0 || fd == -2)
                again = 0;
            if (fd >= 0)
                ctl = fd;
            /* elsewhere, nothing but a migrd here can tell how CMD ends */
            if (moved && ctl < 0 && (fd == -2 || ++again > GIVE_BACK_TRIES)) {
                fprintf(stderr, "migrctl run: pid %d ran elsewhere and no migrd took it back: it is lost\n",
                        pid);
                return 255;
            }
        }
        if (ctl >= 0 && (p[1].revents & (POLLIN | POLLHUP))) {
            if (read_event(ctl, MSG_DONTWAIT, &moved, &exited, &status, pid) < 0) {
                close(ctl);
                ctl = -1;
                if (moved && !held.complete) {
                    fprintf(stderr, "migrctl run: migrd ended while pid %d ran elsewhere: it is lost\n", pid);
                    return 255;
                }
                again = 1;
            }
            if (exited)
                return finish(ctl, pid, status);
        }
        struct signalfd_siginfo si;
        while (read(sfd, &si, sizeof si) == sizeof si) {
            if (si.ssi_signo != SIGCHLD) {
                struct ctl_proc_signal s = {.pid = pid, .sig = (int)si.ssi_signo};
                if (ctl < 0 || ctl_send(ctl, CTL_PROC_SIGNAL, 2, &s, sizeof s, NULL, 0) < 0)
                    kill(pid, (int)si.ssi_signo);
                continue;
            }
            int st;
            if (child_gone || waitpid(pid, &st, WNOHANG) != pid)
                continue;
            child_gone = 1;
            /* migrd says MOVED before it ends the source copy */
            while (ctl >= 0 && read_event(ctl, MSG_DONTWAIT, &moved, &exited, &status, pid) == 0)
                ;
            if (exited)
                return finish(ctl, pid, status);
            if (!moved)
                return finish(ctl, pid, st);
        }
    }
}
