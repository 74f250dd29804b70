/*
 * ctlmsg.c -- see ctlmsg.h.
 */
#include "ctlmsg.h"

#include <errno.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

int ctl_connect(const char *path)
{
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    if (strlen(path) >= sizeof sa.sun_path)
        return -ENAMETOOLONG;
    strcpy(sa.sun_path, path);
    int fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -errno;
    if (connect(fd, (struct sockaddr *)&sa, sizeof sa) < 0) {
        int e = errno;
        close(fd);
        return -e;
    }
    return fd;
}

int ctl_send(int fd, uint16_t type, uint32_t reqid, const void *body, uint32_t len,
             const int *fds, int nfds)
{
    struct ctl_hdr h = {.magic = CTL_MAGIC, .version = MIGR_PROTO_VERSION, .type = type,
                        .len = len, .reqid = reqid};
    struct iovec iov[2] = {{&h, sizeof h}, {(void *)body, len}};
    union {
        char buf[CMSG_SPACE(sizeof(int) * CTL_MAX_FDS)];
        struct cmsghdr align;
    } cm;
    struct msghdr msg = {.msg_iov = iov, .msg_iovlen = len ? 2 : 1};
    if (sizeof h + len > CTL_MAX_MSG || nfds < 0 || nfds > CTL_MAX_FDS)
        return -EMSGSIZE;
    if (nfds > 0) {
        memset(&cm, 0, sizeof cm);
        msg.msg_control = cm.buf;
        msg.msg_controllen = CMSG_SPACE(sizeof(int) * (size_t)nfds);
        struct cmsghdr *c = CMSG_FIRSTHDR(&msg);
        c->cmsg_level = SOL_SOCKET;
        c->cmsg_type = SCM_RIGHTS;
        c->cmsg_len = CMSG_LEN(sizeof(int) * (size_t)nfds);
        memcpy(CMSG_DATA(c), fds, sizeof(int) * (size_t)nfds);
    }
    for (;;) {
        ssize_t n = sendmsg(fd, &msg, MSG_NOSIGNAL);
        if (n >= 0)
            return 0;
        if (errno != EINTR)
            return -errno;
    }
}

static void close_all(int *fds, int *nfds)
{
    for (int i = 0; i < *nfds; i++)
        close(fds[i]);
    *nfds = 0;
}

static int take_fds(struct msghdr *msg, int *fds, int *nfds)
{
    *nfds = 0;
    for (struct cmsghdr *c = CMSG_FIRSTHDR(msg); c; c = CMSG_NXTHDR(msg, c)) {
        if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS)
            continue;
        size_t n = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
        for (size_t i = 0; i < n; i++) {
            int f;
            memcpy(&f, CMSG_DATA(c) + i * sizeof(int), sizeof f);
            if (*nfds < CTL_MAX_FDS)
                fds[(*nfds)++] = f;
            else
                close(f);
        }
    }
    return (msg->msg_flags & MSG_CTRUNC) ? -EPROTO : 0;
}

ssize_t ctl_recv(int fd, void *buf, size_t cap, int *fds, int *nfds, int *eof, int flags)
{
    union {
        char buf[CMSG_SPACE(sizeof(int) * CTL_MAX_FDS)];
        struct cmsghdr align;
    } cm;
    struct iovec iov = {buf, cap};
    struct msghdr msg = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = cm.buf,
                         .msg_controllen = sizeof cm.buf};
    ssize_t n;
    *nfds = 0;
    *eof = 0;
    do {
        n = recvmsg(fd, &msg, flags | MSG_CMSG_CLOEXEC);
    } while (n < 0 && errno == EINTR);
    if (n < 0)
        return -errno;
    if (take_fds(&msg, fds, nfds) < 0) {
        close_all(fds, nfds);
        return -EPROTO;
    }
    if (n == 0) {
        close_all(fds, nfds);
        *eof = 1;
        return 0;
    }
    const struct ctl_hdr *h = buf;
    if ((msg.msg_flags & MSG_TRUNC) || (size_t)n < sizeof *h || h->magic != CTL_MAGIC ||
        h->version != MIGR_PROTO_VERSION || h->type == 0 || h->type >= CTL_TYPE_MAX ||
        h->len != (size_t)n - sizeof *h) {
        close_all(fds, nfds);
        return -EPROTO;
    }
    return (ssize_t)h->len;
}

const char *ctl_type_name(unsigned type)
{
    static const char *const names[CTL_TYPE_MAX] = {
        [CTL_REGISTER] = "REGISTER", [CTL_REGISTERED] = "REGISTERED", [CTL_LOOKUP] = "LOOKUP",
        [CTL_LOOKUP_REPLY] = "LOOKUP_REPLY", [CTL_STATUS] = "STATUS",
        [CTL_STATUS_NODE] = "STATUS_NODE", [CTL_STATUS_PROC] = "STATUS_PROC", [CTL_END] = "END",
        [CTL_EVENT] = "EVENT", [CTL_ERROR] = "ERROR", [CTL_PROC_REGISTER] = "PROC_REGISTER",
        [CTL_PROC_EVENT] = "PROC_EVENT", [CTL_PROC_SIGNAL] = "PROC_SIGNAL", [CTL_PROC_DONE] = "PROC_DONE",
        [CTL_MIGRATE] = "MIGRATE", [CTL_MIGRATE_DONE] = "MIGRATE_DONE", [CTL_PS] = "PS",
        [CTL_PS_PROC] = "PS_PROC", [CTL_OK] = "OK", [CTL_LOG] = "LOG", [CTL_LOG_MOVE] = "LOG_MOVE",
        [CTL_PROC_HOLD] = "PROC_HOLD"};
    return type < CTL_TYPE_MAX && names[type] ? names[type] : "?";
}

void ctl_batch_init(struct ctl_batch *b, int fd, uint16_t type, uint32_t reqid, uint32_t rec)
{
    b->fd = fd;
    b->type = type;
    b->reqid = reqid;
    b->rec = rec;
    b->used = 0;
}

static int batch_flush(struct ctl_batch *b)
{
    if (!b->used)
        return 0;
    int rc = ctl_send(b->fd, b->type, b->reqid, b->buf, b->used, NULL, 0);
    b->used = 0;
    return rc;
}

int ctl_batch_add(struct ctl_batch *b, const void *rec)
{
    if (b->used + b->rec > sizeof b->buf) {
        int rc = batch_flush(b);
        if (rc < 0)
            return rc;
    }
    memcpy(b->buf + b->used, rec, b->rec);
    b->used += b->rec;
    return 0;
}

int ctl_batch_retype(struct ctl_batch *b, uint16_t type, uint32_t rec)
{
    int rc = batch_flush(b);
    b->type = type;
    b->rec = rec;
    return rc;
}

int ctl_batch_end(struct ctl_batch *b)
{
    int rc = batch_flush(b);
    return rc < 0 ? rc : ctl_send(b->fd, CTL_END, b->reqid, NULL, 0, NULL, 0);
}
