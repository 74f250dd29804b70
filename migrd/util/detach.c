/*
 * detach.c -- see detach.h.
 *
 * The pipe carries lines: "E<message>" for an error the daemon logged,
 * "R" when it is ready.  The daemon's end is close-on-exec and closed at
 * ready, so nothing it starts later keeps the starting process waiting.
 */
#include "detach.h"

#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include "log.h"

static int report_fd = -1; /* the daemon's end, until ready */

static void send_line(char kind, const char *text)
{
    char buf[1024];
    int n = snprintf(buf, sizeof buf, "%c%s\n", kind, text);
    if (n < 0)
        return;
    if ((size_t)n >= sizeof buf) {
        n = (int)sizeof buf - 1;
        buf[n - 1] = '\n';
    }
    /* one write: the starting process may be gone (EPIPE), that is all */
    ssize_t w = write(report_fd, buf, (size_t)n);
    (void)w;
}

static void report_error(const char *msg)
{
    if (report_fd >= 0)
        send_line('E', msg);
}

/* Reap the daemon that ended before it was ready; say how, if it said
 * nothing itself. */
static void reap(pid_t pid, bool said)
{
    int st;
    pid_t r;
    while ((r = waitpid(pid, &st, 0)) < 0 && errno == EINTR)
        ;
    if (said)
        return;
    if (r < 0)
        fprintf(stderr, "migrd: the daemon (pid %d) ended before it was ready; waiting for it: %s\n",
                (int)pid, strerror(errno));
    else if (WIFSIGNALED(st))
        fprintf(stderr, "migrd: the daemon (pid %d) was killed by signal %d (%s) before it was ready\n",
                (int)pid, WTERMSIG(st), strsignal(WTERMSIG(st)));
    else
        fprintf(stderr, "migrd: the daemon (pid %d) exited with status %d before it was ready\n",
                (int)pid, WIFEXITED(st) ? WEXITSTATUS(st) : -1);
}

/* The starting process: relay the daemon's report, exit with its outcome. */
static void __attribute__((noreturn)) wait_ready(pid_t pid, int fd)
{
    char buf[4096];
    size_t len = 0;
    bool said = false;
    for (;;) {
        ssize_t n = read(fd, buf + len, sizeof buf - 1 - len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            fprintf(stderr, "migrd: reading the start-up report of the daemon (pid %d): %s\n", (int)pid,
                    strerror(errno));
            _exit(1);
        }
        if (n == 0)
            break;
        len += (size_t)n;
        char *nl;
        while ((nl = memchr(buf, '\n', len)) || len == sizeof buf - 1) {
            size_t end = nl ? (size_t)(nl - buf) : len;
            buf[end] = '\0';
            if (buf[0] == 'R')
                _exit(0);
            if (buf[0] == 'E') {
                fprintf(stderr, "migrd: %s\n", buf + 1);
                said = true;
            }
            size_t used = nl ? end + 1 : len;
            memmove(buf, buf + used, len - used);
            len -= used;
        }
    }
    reap(pid, said);
    _exit(1);
}

static int stdio_to_null(void)
{
    int fd = open("/dev/null", O_RDWR | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    for (int i = 0; i < 3; i++)
        if (dup2(fd, i) < 0) {
            int rc = -errno;
            close(fd);
            return rc;
        }
    close(fd);
    return 0;
}

int detach_start(void)
{
    int p[2];
    if (pipe2(p, O_CLOEXEC) < 0)
        return -errno;
    pid_t pid = fork();
    if (pid < 0) {
        int rc = -errno;
        close(p[0]);
        close(p[1]);
        return rc;
    }
    if (pid > 0) {
        close(p[1]);
        wait_ready(pid, p[0]);
    }
    close(p[0]);
    report_fd = p[1];
    const char *what = NULL;
    int rc = 0;
    if (setsid() < 0)
        rc = -errno, what = "setsid";
    else if ((rc = stdio_to_null()) < 0)
        what = "redirecting stdin, stdout and stderr to /dev/null";
    if (what) {
        char why[256];
        snprintf(why, sizeof why, "cannot detach: %s: %s", what, strerror(-rc));
        send_line('E', why);
        _exit(1);
    }
    log_set_error_hook(report_error);
    return 0;
}

void detach_ready(void)
{
    if (report_fd < 0)
        return;
    send_line('R', "");
    log_set_error_hook(NULL);
    close(report_fd);
    report_fd = -1;
}
