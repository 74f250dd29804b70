/*
 * fuzz_link.c -- libFuzzer harness: the receiving side of a link between
 * daemons (migrd/postal/link.c: frame headers, HELLO, the control frames,
 * DATA read straight into a mailbox's inbox), over a real TCP connection
 * to the link port of a postal office in this process (a cluster of two
 * nodes without a key: this node is n1, the peer claims to be n0).
 *
 * Input: byte 0 says how: bit 0, a valid HELLO from n0 goes first; bit 1,
 * the rest is a list of frames (type, 16-bit length, body) to which the
 * harness adds magic and version, else raw bytes; bit 2, the receiving
 * mailbox's owner goes away half-way through.  Byte 1: where half-way is.
 * Each input must end with the daemon closing the connection once it has
 * read to the end (EOF); a daemon that does not is hung.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <event2/event.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "common/wire.h"
#include "migrd/postal/link.h"
#include "office.h"

static struct fuzz_office office;
static uint16_t port;
static uint8_t out[1 << 18];

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc, (void)argv;
    port = (uint16_t)(20000 + (getpid() % 4000) * 2);
    office_init(&office, 2, 1, port);
    if (link_init(&office.p) < 0)
        abort();
    return 0;
}

static size_t put_frame(size_t at, uint8_t type, const void *body, uint32_t len)
{
    struct link_hdr h = {.magic = LINK_MAGIC, .version = MIGR_PROTO_VERSION, .type = type, .len = len};
    return fuzz_put_frame(out, sizeof out, at, &h, sizeof h, body, len);
}

/* Until the daemon has closed the connection (0), or -1 after `turns`. */
static int wait_closed(int fd, int turns)
{
    char sink[65536];
    for (int i = 0; i < turns; i++) {
        office_run(&office);
        ssize_t n = recv(fd, sink, sizeof sink, MSG_DONTWAIT);
        if (n == 0 || (n < 0 && errno == ECONNRESET))
            return 0;
        if (n < 0 && errno != EAGAIN)
            abort();
        if (n < 0)
            usleep(100);
    }
    return -1;
}

/* connect(), finished if a signal (libFuzzer's timer) interrupts it. */
static int connect_link(int fd, const struct sockaddr_in *sa)
{
    if (connect(fd, (const struct sockaddr *)sa, sizeof *sa) == 0)
        return 0;
    if (errno != EINTR && errno != EINPROGRESS)
        return -1;
    struct pollfd p = {.fd = fd, .events = POLLOUT};
    int err = 0;
    socklen_t el = sizeof err;
    while (poll(&p, 1, 5000) < 0)
        if (errno != EINTR)
            return -1;
    if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &el) < 0 || err) {
        errno = err ? err : errno;
        return -1;
    }
    return 0;
}

static void send_all(int fd, const uint8_t *p, size_t n)
{
    while (n) {
        ssize_t w = send(fd, p, n, MSG_DONTWAIT | MSG_NOSIGNAL);
        if (w < 0 && errno != EAGAIN)
            return; /* the daemon closed it already */
        if (w > 0)
            p += w, n -= (size_t)w;
        office_run(&office);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 2)
        return 0;
    uint8_t how = data[0], mid = data[1];
    data += 2, size -= 2;
    size_t len = 0;
    if (how & 1) {
        struct link_hello h = {.node_index = 0};
        strcpy(h.node, "n0");
        strcpy(h.kernel, "fuzz");
        len = put_frame(len, LINK_HELLO, &h, sizeof h);
    }
    if (how & 2) {
        for (size_t i = 0; i + 3 <= size;) {
            uint32_t l = data[i + 1] | (uint32_t)data[i + 2] << 8;
            uint8_t type = data[i];
            i += 3;
            if (l > size - i)
                l = (uint32_t)(size - i);
            len = put_frame(len, type, data + i, l);
            i += l;
        }
    } else {
        size_t n = size < sizeof out - len ? size : sizeof out - len;
        memcpy(out + len, data, n);
        len += n;
    }
    struct fuzz_owner w;
    office_mbox(&office, 1, 1, &w);
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)(port + 2)) /* n1, this node */, .sin_addr.s_addr = htonl(0x7f000001)};
    /* Closed with a reset: no TIME_WAIT at either end, or thousands of
     * inputs a second would run out of ports. */
    struct linger lg = {1, 0};
    if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg) < 0 || connect_link(fd, &sa) < 0) {
        perror("fuzz_link: connect to the link port");
        abort();
    }
    size_t half = (how & 4) ? len * mid / 256 : len;
    send_all(fd, out, half);
    if (how & 4 && w.m) {
        office_run(&office);
        office.p.ops.drop_owner(&w, "gone");
    }
    send_all(fd, out + half, len - half);
    shutdown(fd, SHUT_WR);
    if (wait_closed(fd, 200) < 0) {
        if (w.m) /* a DATA frame may wait for room in its inbox */
            office.p.ops.drop_owner(&w, "gone");
        if (wait_closed(fd, 2000) < 0)
            abort(); /* the daemon read EOF and kept the connection */
    }
    close(fd);
    if (w.m)
        office.p.ops.drop_owner(&w, "end");
    office_run(&office);
    office_reset(&office);
    return 0;
}
