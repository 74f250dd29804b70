/*
 * badframes.c -- throws malformed and oversized messages at a migrd and
 * checks that it refuses each one (closes that connection) and keeps
 * serving: after every case a fresh, well-formed STATUS request must be
 * answered.
 *
 * Usage: badframes ctl SOCKET              (control socket cases)
 *        badframes link HOST PORT SOCKET   (inter-node port cases; SOCKET
 *                                           is the same daemon's control
 *                                           socket, used for the check)
 * Prints one suite line per case (PASS:/FAIL:) and exits non-zero if any
 * case failed.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "common/ctlmsg.h"
#include "common/wire.h"

static const char *ctl_path;
static int failures;

/* Wait until the peer closes fd (read returns 0 or an error): 1 if it did
 * within 3 s. Replies (CTL_ERROR) before the close are fine. */
static int closed_by_peer(int fd)
{
    char buf[CTL_MAX_MSG];
    for (int i = 0; i < 30; i++) {
        struct pollfd p = {.fd = fd, .events = POLLIN};
        if (poll(&p, 1, 100) <= 0)
            continue;
        ssize_t n = recv(fd, buf, sizeof buf, 0);
        if (n <= 0)
            return 1;
    }
    return 0;
}

/* The daemon still answers a well-formed STATUS on a new connection. */
static int still_serving(void)
{
    int fd = ctl_connect(ctl_path);
    if (fd < 0)
        return 0;
    int ok = ctl_send(fd, CTL_STATUS, 7, NULL, 0, NULL, 0) == 0;
    struct pollfd p = {.fd = fd, .events = POLLIN};
    char buf[CTL_MAX_MSG];
    int fds[CTL_MAX_FDS], nfds, eof;
    ok = ok && poll(&p, 1, 3000) == 1 && ctl_recv(fd, buf, sizeof buf, fds, &nfds, &eof, 0) > 0 &&
         ((struct ctl_hdr *)buf)->type == CTL_STATUS_NODE;
    close(fd);
    return ok;
}

static void verdict(const char *name, int refused)
{
    int serving = still_serving();
    if (refused && serving) {
        printf("PASS: %s\n", name);
    } else {
        printf("FAIL: %s: %s\n", name, !refused ? "not refused" : "daemon stopped serving");
        failures++;
    }
    fflush(stdout);
}

static void ctl_case(const char *name, const void *msg, size_t len)
{
    int fd = ctl_connect(ctl_path);
    if (fd < 0) {
        printf("FAIL: %s: cannot connect to %s: %s\n", name, ctl_path, strerror(-fd));
        failures++;
        return;
    }
    int refused = send(fd, msg, len, 0) >= 0 && closed_by_peer(fd);
    close(fd);
    verdict(name, refused);
}

static void ctl_cases(void)
{
    struct {
        struct ctl_hdr h;
        char body[64];
    } m;
    char big[CTL_MAX_MSG + 100];
#define RESET(t, l) (memset(&m, 0, sizeof m), m.h = (struct ctl_hdr){CTL_MAGIC, MIGR_PROTO_VERSION, (t), (l), 1})
    RESET(CTL_STATUS, 0);
    m.h.magic = 0xdeadbeef;
    ctl_case("control socket: bad magic refused", &m, sizeof m.h);
    RESET(CTL_STATUS, 0);
    m.h.version = 99;
    ctl_case("control socket: unknown protocol version refused", &m, sizeof m.h);
    RESET(CTL_STATUS, 0);
    ctl_case("control socket: truncated header refused", &m, 5);
    RESET(CTL_REGISTER, 40);
    ctl_case("control socket: length field larger than the message refused", &m, sizeof m.h + 8);
    RESET(200, 0);
    ctl_case("control socket: unknown message type refused", &m, sizeof m.h);
    RESET(CTL_REGISTER, 3);
    ctl_case("control socket: REGISTER with a wrong body size refused", &m, sizeof m.h + 3);
    RESET(CTL_REGISTERED, 0);
    ctl_case("control socket: a reply type sent as a request refused", &m, sizeof m.h);
    memset(big, 0, sizeof big);
    *(struct ctl_hdr *)big = (struct ctl_hdr){CTL_MAGIC, MIGR_PROTO_VERSION, CTL_STATUS, sizeof big - sizeof(struct ctl_hdr), 1};
    ctl_case("control socket: oversized message refused", big, sizeof big);
    RESET(CTL_REGISTER, sizeof(struct ctl_register));
    struct ctl_register *r = (void *)m.body;
    *r = (struct ctl_register){.job = 1, .rank = 1, .inbox_size = 12345, .outbox_size = 1 << 20};
    int fd = ctl_connect(ctl_path);
    char buf[CTL_MAX_MSG];
    int fds[CTL_MAX_FDS], nfds = 0, eof;
    send(fd, &m, sizeof m.h + sizeof *r, 0);
    struct pollfd p = {.fd = fd, .events = POLLIN};
    int refused = poll(&p, 1, 3000) == 1 && ctl_recv(fd, buf, sizeof buf, fds, &nfds, &eof, 0) > 0 &&
                  ((struct ctl_hdr *)buf)->type == CTL_ERROR;
    close(fd);
    verdict("control socket: REGISTER with an invalid ring size answered with an error", refused);
}

static int tcp_connect(const char *host, const char *port)
{
    struct addrinfo hints = {.ai_socktype = SOCK_STREAM}, *res;
    if (getaddrinfo(host, port, &hints, &res))
        return -1;
    int fd = socket(res->ai_family, SOCK_STREAM, 0);
    if (fd >= 0 && connect(fd, res->ai_addr, res->ai_addrlen) < 0) {
        close(fd);
        fd = -1;
    }
    freeaddrinfo(res);
    return fd;
}

static void link_case(const char *name, const char *host, const char *port, const void *msg, size_t len)
{
    int fd = tcp_connect(host, port);
    if (fd < 0) {
        printf("FAIL: %s: cannot connect to %s:%s\n", name, host, port);
        failures++;
        return;
    }
    int refused = send(fd, msg, len, MSG_NOSIGNAL) >= 0 && closed_by_peer(fd);
    close(fd);
    verdict(name, refused);
}

static void link_cases(const char *host, const char *port)
{
    struct {
        struct link_hdr h;
        union {
            struct link_hello hello;
            struct link_data data;
        } b;
    } f;
#define LRESET(t, l) (memset(&f, 0, sizeof f), f.h = (struct link_hdr){LINK_MAGIC, MIGR_PROTO_VERSION, (t), 0, (l), 0})
    LRESET(LINK_HELLO, sizeof f.b.hello);
    f.h.magic = 0x12345678;
    link_case("link port: bad magic refused", host, port, &f, sizeof f.h);
    LRESET(LINK_HELLO, sizeof f.b.hello);
    f.h.version = 77;
    link_case("link port: unknown protocol version refused", host, port, &f, sizeof f.h);
    LRESET(LINK_DATA, sizeof f.b.data);
    link_case("link port: DATA before HELLO refused", host, port, &f, sizeof f.h + sizeof f.b.data);
    LRESET(LINK_HELLO, sizeof f.b.hello);
    snprintf(f.b.hello.node, sizeof f.b.hello.node, "intruder");
    link_case("link port: HELLO from a node not in the map refused", host, port, &f, sizeof f.h + sizeof f.b.hello);
    LRESET(LINK_HELLO, 12);
    link_case("link port: HELLO of the wrong size refused", host, port, &f, sizeof f.h + 12);
    LRESET(LINK_TYPE_MAX + 5, 0);
    link_case("link port: unknown frame type refused", host, port, &f, sizeof f.h);
    /* Oversized DATA, sent after a valid-looking HELLO is impossible
     * without a node name: check the size limit before HELLO too. */
    LRESET(LINK_DATA, LINK_MAX_FRAME + 1);
    link_case("link port: oversized frame refused", host, port, &f, sizeof f.h);
    unsigned char junk[4096];
    for (size_t i = 0; i < sizeof junk; i++)
        junk[i] = (unsigned char)(i * 97 + 13);
    link_case("link port: random bytes refused", host, port, junk, sizeof junk);
}

int main(int argc, char **argv)
{
    if (argc == 3 && !strcmp(argv[1], "ctl")) {
        ctl_path = argv[2];
        ctl_cases();
    } else if (argc == 5 && !strcmp(argv[1], "link")) {
        ctl_path = argv[4];
        link_cases(argv[2], argv[3]);
    } else {
        fprintf(stderr, "usage: %s ctl SOCKET | %s link HOST PORT SOCKET\n", argv[0], argv[0]);
        return 2;
    }
    return failures ? 1 : 0;
}
