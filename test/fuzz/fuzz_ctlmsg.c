/*
 * fuzz_ctlmsg.c -- libFuzzer harness: the control-socket message reader
 * (common/ctlmsg.c, ctl_recv), which sees every datagram a local user
 * sends to migrd.  The input is one datagram; its first byte says how many
 * descriptors ride along (SCM_RIGHTS, 0-3).  ctl_recv must accept only a
 * well-formed message whose length fields agree with what arrived, and
 * leave no received descriptor open when it refuses one.
 */
#include <fcntl.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "common/ctlmsg.h"

static int sv[2] = {-1, -1};

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc, (void)argv;
    int big = 1 << 20;
    if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) < 0 ||
        setsockopt(sv[0], SOL_SOCKET, SO_SNDBUF, &big, sizeof big) < 0)
        abort();
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1 || size > CTL_MAX_MSG * 2)
        return 0;
    int nsend = data[0] % 4, sent[3];
    data++, size--;
    for (int i = 0; i < nsend; i++)
        if ((sent[i] = open("/dev/null", O_RDONLY | O_CLOEXEC)) < 0)
            abort();
    union {
        char buf[CMSG_SPACE(sizeof(int) * 3)];
        struct cmsghdr align;
    } cm;
    struct iovec iov = {(void *)data, size};
    struct msghdr msg = {.msg_iov = &iov, .msg_iovlen = 1};
    if (nsend) {
        msg.msg_control = cm.buf;
        msg.msg_controllen = CMSG_SPACE(sizeof(int) * nsend);
        struct cmsghdr *c = CMSG_FIRSTHDR(&msg);
        c->cmsg_level = SOL_SOCKET;
        c->cmsg_type = SCM_RIGHTS;
        c->cmsg_len = CMSG_LEN(sizeof(int) * nsend);
        memcpy(CMSG_DATA(c), sent, sizeof(int) * nsend);
    }
    if (size == 0 || sendmsg(sv[0], &msg, 0) < 0) {
        for (int i = 0; i < nsend; i++)
            close(sent[i]);
        return 0;
    }
    for (int i = 0; i < nsend; i++)
        close(sent[i]);
    static char buf[CTL_MAX_MSG];
    int fds[CTL_MAX_FDS], nfds = -1, eof;
    ssize_t n = ctl_recv(sv[1], buf, sizeof buf, fds, &nfds, &eof, MSG_DONTWAIT);
    if (n < 0 || eof) {
        if (nfds != 0)
            abort(); /* refused, yet descriptors handed out */
    } else {
        const struct ctl_hdr *h = (const void *)buf;
        if ((size_t)n != h->len || sizeof *h + h->len != size || h->magic != CTL_MAGIC ||
            h->type == 0 || h->type >= CTL_TYPE_MAX || nfds > CTL_MAX_FDS)
            abort(); /* accepted, yet the length fields lie */
        (void)ctl_type_name(h->type);
        for (int i = 0; i < nfds; i++)
            if (fcntl(fds[i], F_GETFD) != FD_CLOEXEC || close(fds[i]) < 0)
                abort();
    }
    return 0;
}
