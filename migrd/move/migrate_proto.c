/*
 * migrate_proto.c -- see migrate_proto.h.
 */
#include "migrate_proto.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <string.h>
#include <stdbool.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include "migrd/cluster/node_addr.h"
#include "mig_auth.h"

int mig_hdr_check(const struct mig_hdr *h, const char **why)
{
    if (h->magic != MIG_MAGIC)
        *why = "bad magic (not a migr migration stream)";
    else if (h->version != MIG_VERSION)
        *why = "unsupported protocol version";
    else if (h->type == 0 || h->type >= MIG_TYPE_MAX)
        *why = "unknown frame type";
    else if (h->len > MIG_MAX_BODY)
        *why = "frame longer than the limit";
    else
        return 0;
    return -1;
}

const char *mig_type_name(unsigned type)
{
    static const char *const names[MIG_TYPE_MAX] = {
        [MIG_OFFER] = "OFFER", [MIG_ACCEPT] = "ACCEPT", [MIG_REFUSE] = "REFUSE",
        [MIG_CHANMAP] = "CHANMAP", [MIG_INPUT] = "INPUT", [MIG_INPUT_EOF] = "INPUT_EOF",
        [MIG_IMAGE] = "IMAGE", [MIG_RESTORED] = "RESTORED", [MIG_FAILED] = "FAILED",
        [FWD_HELLO] = "HELLO", [FWD_DATA] = "DATA", [FWD_EOF] = "EOF", [FWD_EXIT] = "EXIT",
        [FWD_SIGNAL] = "SIGNAL", [FWD_END] = "END", [FWD_END_ACK] = "END_ACK",
        [FWD_RETURN] = "RETURN", [FWD_MOVE] = "MOVE", [FWD_MOVE_RESULT] = "MOVE_RESULT",
        [MIG_POSTAL] = "POSTAL", [MIG_POSTAL_RING] = "POSTAL_RING",
        [MIG_FILEMAP] = "FILEMAP", [FWD_FILEPOS] = "FILEPOS",
        [MIG_LAZY_DIR] = "LAZY_DIR", [MIG_PAGE_REQ] = "PAGE_REQ", [MIG_PAGES] = "PAGES",
        [MIG_PAGES_DONE] = "PAGES_DONE", [FWD_WELCOME] = "WELCOME"};
    return type < MIG_TYPE_MAX && names[type] ? names[type] : "?";
}

int mig_write_all(int fd, const void *buf, size_t len)
{
    const char *p = buf;
    while (len) {
        ssize_t n = send(fd, p, len, MSG_NOSIGNAL);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return -1;
        p += n;
        len -= (size_t)n;
    }
    return 0;
}

/* All of iov[0..n) (changed on the way) with as few system calls as the
 * socket allows: 0 or -1. */
static int io_all(int fd, struct iovec *iov, int n, bool out)
{
    for (;;) {
        while (n > 0 && iov->iov_len == 0)
            iov++, n--;
        if (n == 0)
            return 0;
        struct msghdr mh = {.msg_iov = iov, .msg_iovlen = (size_t)n};
        ssize_t r = out ? sendmsg(fd, &mh, MSG_NOSIGNAL) : recvmsg(fd, &mh, 0);
        if (r < 0 && errno == EINTR)
            continue;
        if (r == 0 && !out)
            errno = ECONNRESET;
        if (r <= 0)
            return -1;
        size_t k = (size_t)r;
        while (n > 0 && k >= iov->iov_len)
            k -= iov->iov_len, iov++, n--;
        if (n > 0) {
            iov->iov_base = (char *)iov->iov_base + k;
            iov->iov_len -= k;
        }
    }
}

int mig_read_all(int fd, void *buf, size_t len)
{
    char *p = buf;
    while (len) {
        ssize_t n = read(fd, p, len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n == 0)
            errno = ECONNRESET;
        if (n <= 0)
            return -1;
        p += n;
        len -= (size_t)n;
    }
    return 0;
}

int mig_send(int fd, uint16_t type, uint32_t chan, const void *body, uint32_t len)
{
    struct mig_hdr h = {.magic = MIG_MAGIC, .version = MIG_VERSION, .type = type, .len = len,
                        .chan = chan};
    struct auth_session *s = mig_auth_of(fd);
    uint8_t tag[AUTH_TAG];
    /* one system call for the frame and its MAC (it was three) */
    struct iovec iov[3] = {{&h, sizeof h}, {(void *)body, len}, {tag, s ? sizeof tag : 0}};
    if (s && mig_frame_tag(s, &h, body, tag) < 0)
        return -1;
    return io_all(fd, iov, 3, true);
}

int mig_recv(int fd, struct mig_hdr *h, void *buf, size_t cap)
{
    const char *why;
    struct auth_session *s = mig_auth_of(fd);
    struct auth_mac m;
    uint8_t tag[AUTH_TAG];
    if (mig_read_all(fd, h, sizeof *h) < 0)
        return -1;
    if (mig_hdr_check(h, &why) < 0 || h->len > cap) {
        errno = EPROTO;
        return -1;
    }
    /* the body and its MAC with one read when they are in */
    struct iovec iov[2] = {{buf, h->len}, {tag, s ? sizeof tag : 0}};
    if (io_all(fd, iov, 2, false) < 0)
        return -1;
    if (!s)
        return 0;
    auth_mac_begin(s, false, &m);
    auth_mac_update(&m, h, sizeof *h);
    auth_mac_update(&m, buf, h->len);
    if (!auth_mac_verify(&m, tag)) {
        errno = EBADMSG;
        return -1;
    }
    return 0;
}

int mig_frame_tag(struct auth_session *s, const struct mig_hdr *h, const void *body, uint8_t tag[AUTH_TAG])
{
    struct auth_mac m;
    auth_mac_begin(s, true, &m);
    auth_mac_update(&m, h, sizeof *h);
    auth_mac_update(&m, body, h->len);
    return auth_mac_final(&m, tag);
}

int mig_set_timeouts(int fd, int io_timeout_ms)
{
    struct timeval tv = {.tv_sec = io_timeout_ms / 1000, .tv_usec = (io_timeout_ms % 1000) * 1000};
    int one = 1;
    if (setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv) < 0 ||
        setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv) < 0 ||
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one) < 0)
        return -1;
    return 0;
}

int mig_stream_opts(int fd)
{
    /* 8 MiB: the engine writes the pages in 2 MiB pieces; SO_*BUFFORCE
     * (root) goes past net.core.[rw]mem_max, the plain one is the fallback */
    int sz = 8 << 20;
    if (setsockopt(fd, SOL_SOCKET, SO_SNDBUFFORCE, &sz, sizeof sz) < 0)
        setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &sz, sizeof sz);
    if (setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &sz, sizeof sz) < 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &sz, sizeof sz);
    /* Keepalive notices a dead peer or link while nothing is in flight
     * (the source waiting for the restore, the destination for the
     * image); TCP_USER_TIMEOUT while data is (a cut link in mid-stream:
     * retransmissions would otherwise go on until the I/O timeouts).  A
     * receiver that is alive but keeps a zero window answers the window
     * probes, which does not count as unacknowledged (Linux >= 5.10). */
    unsigned user_timeout = MIG_DEAD_PEER_MS;
    int one = 1, idle = 2, intvl = 1, cnt = MIG_DEAD_PEER_MS / 1000 - 2;
    if (setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &one, sizeof one) < 0 ||
        setsockopt(fd, IPPROTO_TCP, TCP_KEEPIDLE, &idle, sizeof idle) < 0 ||
        setsockopt(fd, IPPROTO_TCP, TCP_KEEPINTVL, &intvl, sizeof intvl) < 0 ||
        setsockopt(fd, IPPROTO_TCP, TCP_KEEPCNT, &cnt, sizeof cnt) < 0 ||
        setsockopt(fd, IPPROTO_TCP, TCP_USER_TIMEOUT, &user_timeout, sizeof user_timeout) < 0)
        return -1;
    return 0;
}

int mig_connect(const struct cfg_node *n, unsigned port, int timeout_ms, int io_timeout_ms)
{
    struct sockaddr_storage ss;
    socklen_t sl;
    if (node_sockaddr(n, port, &ss, &sl))
        return -EINVAL;
    int fd = socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -errno;
    int err = 0;
    if (connect(fd, (struct sockaddr *)&ss, sl) < 0) {
        if (errno != EINPROGRESS) {
            err = errno;
        } else {
            struct pollfd p = {.fd = fd, .events = POLLOUT};
            socklen_t el = sizeof err;
            int n = poll(&p, 1, timeout_ms);
            if (n == 0)
                err = ETIMEDOUT;
            else if (n < 0 || getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &el) < 0)
                err = errno;
        }
    }
    if (!err && (fcntl(fd, F_SETFL, 0) < 0 || mig_set_timeouts(fd, io_timeout_ms) < 0))
        err = errno;
    if (err) {
        close(fd);
        return -err;
    }
    return fd;
}
