/*
 * postman.c -- a DiCOM mailbox for the security suite: open one, send
 * packets from it, or count what arrives in it.
 *
 * Usage: postman open JOB RANK
 *        postman send JOB RANK DST_JOB DST_RANK COUNT
 *        postman recv JOB RANK SECONDS READY_FILE
 *        postman many JOB FIRST_RANK COUNT SECONDS READY_FILE
 *        postman signal PID SIG | postman deregister PID
 * open: exit 0 once the mailbox is open, 1 (the refusal printed) if not.
 * send: COUNT packets "packet I" to (DST_JOB, DST_RANK), then waits 1 s
 * for migrd to relay them.  recv: creates READY_FILE once the mailbox is
 * open, then prints one line per packet ("from J:R: TEXT") for SECONDS
 * and a last line "got N".  many: COUNT mailboxes (ranks FIRST_RANK on,
 * rings of 64 KiB) in one process, READY_FILE once all are open, then
 * holds them for SECONDS (a node with many mailboxes).  signal, deregister: the control requests a
 * deputy sends (CTL_PROC_SIGNAL, CTL_PROC_DONE), from anyone: prints
 * migrd's answer ("ok" or "refused: WHY"), exit 0 or 1.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "common/ctlmsg.h"
#include <migr/dicom.h>

static uint32_t num(const char *s)
{
    char *end;
    unsigned long v = strtoul(s, &end, 0);
    if (*s < '0' || *s > '9' || *end || v > 0xffffffffUL) {
        fprintf(stderr, "postman: '%s' is not a number\n", s);
        exit(2);
    }
    return (uint32_t)v;
}

static int touch(const char *path)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) {
        perror(path);
        return -1;
    }
    close(fd);
    return 0;
}

/* many: COUNT mailboxes of job JOB, ranks FIRST.. */
static int many(uint32_t job, uint32_t first, uint32_t count, uint32_t seconds, const char *ready)
{
    dicom_open_opts_t o = {.inbox_size = 64u << 10, .outbox_size = 64u << 10, .lazy_rings = 1};
    for (uint32_t i = 0; i < count; i++) {
        dicom_mbox_t *mb;
        if (dicom_open((dicom_addr_t){job, first + i}, &o, &mb) < 0) {
            printf("mailbox %u of %u (%u:%u) refused: %s\n", i + 1, count, job, first + i, dicom_last_error());
            return 1;
        }
    }
    if (touch(ready) < 0)
        return 1;
    printf("opened %u\n", count);
    fflush(stdout);
    sleep(seconds);
    return 0;
}

static double now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

/* One control request as a deputy would send it; migrd's answer printed. */
static int request(uint16_t type, const void *body, uint32_t len)
{
    static char buf[CTL_MAX_MSG];
    const char *path = getenv("MIGR_SOCKET") ? getenv("MIGR_SOCKET") : DICOM_DEFAULT_SOCKET;
    int fds[CTL_MAX_FDS], nfds, eof, fd = ctl_connect(path);
    if (fd < 0 || ctl_send(fd, type, 1, body, len, NULL, 0) < 0) {
        printf("cannot ask migrd on %s\n", path);
        return 1;
    }
    ssize_t n = ctl_recv(fd, buf, sizeof buf, fds, &nfds, &eof, 0);
    const struct ctl_hdr *h = (const void *)buf;
    if (n < 0 || eof) {
        printf("no answer\n");
        return 1;
    }
    if (h->type == CTL_ERROR && h->len == sizeof(struct ctl_error)) {
        printf("refused: %.200s\n", ((const struct ctl_error *)(h + 1))->message);
        return 1;
    }
    printf("%s\n", h->type == CTL_OK ? "ok" : ctl_type_name(h->type));
    return h->type == CTL_OK ? 0 : 1;
}

int main(int argc, char **argv)
{
    if (argc == 4 && !strcmp(argv[1], "signal")) {
        struct ctl_proc_signal s = {.pid = (int32_t)num(argv[2]), .sig = (int32_t)num(argv[3])};
        return request(CTL_PROC_SIGNAL, &s, sizeof s);
    }
    if (argc == 3 && !strcmp(argv[1], "deregister")) {
        struct ctl_proc_done s = {.pid = (int32_t)num(argv[2])};
        return request(CTL_PROC_DONE, &s, sizeof s);
    }
    if (argc == 7 && !strcmp(argv[1], "many"))
        return many(num(argv[2]), num(argv[3]), num(argv[4]), num(argv[5]), argv[6]);
    if (argc < 4) {
        fprintf(stderr, "usage: postman open|send|recv|many JOB RANK ... (see postman.c)\n");
        return 2;
    }
    dicom_addr_t me = {num(argv[2]), num(argv[3])};
    dicom_mbox_t *mb;
    if (dicom_open(me, NULL, &mb) < 0) {
        printf("refused: %s\n", dicom_last_error());
        return 1;
    }
    if (!strcmp(argv[1], "open")) {
        printf("opened %u:%u\n", me.job, me.rank);
        return 0;
    }
    if (!strcmp(argv[1], "send") && argc == 7) {
        dicom_addr_t to = {num(argv[4]), num(argv[5])};
        uint32_t n = num(argv[6]);
        for (uint32_t i = 0; i < n; i++) {
            char b[64];
            int len = snprintf(b, sizeof b, "packet %u of %u:%u", i, me.job, me.rank);
            int rc = dicom_send(mb, to, 7, b, (size_t)len + 1, DICOM_NONBLOCK);
            if (rc < 0 && rc != -EAGAIN) {
                printf("send %u: %s\n", i, strerror(-rc));
                return 1;
            }
        }
        sleep(1);
        printf("sent %u to %u:%u\n", n, to.job, to.rank);
        return 0;
    }
    if (!strcmp(argv[1], "recv") && argc == 6) {
        double end = now() + num(argv[4]);
        unsigned got = 0;
        if (touch(argv[5]) < 0)
            return 1;
        while (now() < end) {
            char b[256];
            dicom_msg_t m;
            long n = dicom_recv(mb, NULL, b, sizeof b - 1, &m, DICOM_NONBLOCK);
            if (n == -EAGAIN) {
                usleep(10000);
                continue;
            }
            if (n < 0) {
                printf("recv: %s\n", strerror((int)-n));
                return 1;
            }
            b[n < (long)sizeof b - 1 ? n : (long)sizeof b - 1] = 0;
            printf("from %u:%u: %s\n", m.src.job, m.src.rank, b);
            got++;
        }
        printf("got %u\n", got);
        return 0;
    }
    fprintf(stderr, "postman: bad arguments (see postman.c)\n");
    return 2;
}
