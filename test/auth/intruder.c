/*
 * intruder.c -- a peer without the cluster key (or with a wrong one)
 * attacking a migrd's link port and migration port, for test/suites/auth.sh.
 *
 * Usage:
 *   intruder link HOST PORT AS_NODE AS_INDEX [OPTIONS] [--announce JOB RANK]... [--data JOB RANK]...
 *   intruder offer HOST PORT AS_NODE AS_INDEX [OPTIONS]
 *   intruder fwd HOST PORT AS_NODE AS_INDEX PID [OPTIONS]
 * OPTIONS:
 *   --key FILE   run the handshake with this key (a wrong one): AUTH, a
 *                proof made with it, then the frames with MACs made with
 *                the session it derives; without --key the proof and
 *                MACs are random bytes
 *   --plain      no handshake at all: HELLO (link) or the frame (migration
 *                port) first, as a daemon of an insecure cluster does
 *   --proto N    link protocol version in the headers (default this tree's;
 *                1 talks to a migrd from before authentication)
 *   --fwd-node N fwd: the HELLO says the process runs on node N (default
 *                AS_INDEX)
 * The frames claim to come from node AS_NODE (index AS_INDEX of the map).
 * link: after the handshake, HELLO, then the ANNOUNCE and DATA frames (a
 * DATA frame is an 8-byte packet from rank 0 of the job, sequence 1).
 * offer: a MIG_OFFER for pid 4242.  fwd: a forwarding HELLO for PID as if
 * the process now ran on AS_INDEX.
 *
 * Prints one line and exits 0 if the daemon refused (closed the connection
 * within 3 s and never answered as to a peer it believed: no HELLO on the
 * link, no migration frame on the migration port), 1 if it believed us,
 * 2 on a usage or connection error.
 */
#include <errno.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/utsname.h>
#include <time.h>
#include <unistd.h>

#include "common/wire.h"
#include "migrd/cluster/auth.h"
#include "migrd/move/migrate_proto.h"

static int proto = MIGR_PROTO_VERSION;
static const char *keyfile;
static int plain;
static uint8_t key[CLUSTER_KEY_BYTES];
static struct auth_hs hs;
static struct auth_session sess;
static int have_session;
static int fwd_node = -1;

/* The daemons of the tests have IPv4 addresses. */
static int tcp_connect(const char *ip, const char *port)
{
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)atoi(port))};
    int fd = inet_pton(AF_INET, ip, &sa.sin_addr) == 1 ? socket(AF_INET, SOCK_STREAM, 0) : -1;
    if (fd >= 0 && connect(fd, (struct sockaddr *)&sa, sizeof sa) < 0) {
        close(fd);
        return -1;
    }
    return fd;
}

static void put(int fd, const void *p, size_t n)
{
    if (send(fd, p, n, MSG_NOSIGNAL) < 0 && errno != EPIPE && errno != ECONNRESET)
        perror("intruder: send");
}

/* Read exactly n bytes within ms: 0, or -1 (closed, error or timeout). */
static int get(int fd, void *p, size_t n, int ms)
{
    size_t got = 0;
    while (got < n) {
        struct pollfd pf = {.fd = fd, .events = POLLIN};
        if (poll(&pf, 1, ms) <= 0)
            return -1;
        ssize_t r = recv(fd, (char *)p + got, n - got, 0);
        if (r <= 0)
            return -1;
        got += (size_t)r;
    }
    return 0;
}

/* Our MAC of a frame (random without a session). */
static void tag_of(const void *a, size_t al, const void *b, size_t bl, uint8_t tag[AUTH_TAG])
{
    struct auth_mac m;
    if (!have_session) {
        randombytes_buf(tag, AUTH_TAG);
        return;
    }
    auth_mac_begin(&sess, true, &m);
    auth_mac_update(&m, a, al);
    auth_mac_update(&m, b, bl);
    if (auth_mac_final(&m, tag) < 0)
        randombytes_buf(tag, AUTH_TAG);
}

/* A frame: header, body and (unless --plain) our MAC of both. */
static void put_frame(int fd, const void *h, size_t hl, const void *body, size_t len)
{
    uint8_t tag[AUTH_TAG];
    put(fd, h, hl);
    put(fd, body, len);
    if (!plain) {
        tag_of(h, hl, body, len, tag);
        put(fd, tag, sizeof tag);
    }
}

/* The handshake as initiator, with a key file (a wrong key, or the right
 * one for the tests of what a key holder may not do) or none.  peer_hello:
 * the acceptor's hello, already read; read_proof reads the acceptor's
 * proof.  With the right key the session is the daemon's too. */
static void handshake(int fd, const struct auth_hello *peer_hello, int (*send_frame)(int, int, const void *, size_t),
                      int (*read_proof)(int, struct auth_proof *))
{
    struct auth_proof pr, theirs;
    char why[200];
    int ok = 0;
    if (keyfile) {
        struct auth_hello me = hs.mine;
        auth_hs_begin(&hs, key, me.purpose, true, me.node, me.name);
        ok = peer_hello && auth_hs_peer(&hs, peer_hello, why, sizeof why) == 0;
    }
    if (ok)
        auth_hs_proof(&hs, &pr);
    else
        randombytes_buf(&pr, sizeof pr);
    send_frame(fd, 0, &hs.mine, sizeof hs.mine);
    send_frame(fd, 1, &pr, sizeof pr);
    if (have_session)
        auth_session_clear(&sess);
    have_session = 0;
    if (ok && read_proof(fd, &theirs) == 0 && auth_hs_check(&hs, &theirs, &sess) == 0)
        have_session = 1;
}

/* ---------------------------------------------------------------- link */

static int link_raw(int fd, int type, const void *body, size_t len)
{
    struct link_hdr h = {LINK_MAGIC, (uint8_t)proto, (uint8_t)type, 0, (uint32_t)len, 0};
    put(fd, &h, sizeof h);
    put(fd, body, len);
    return 0;
}

static int link_auth_frame(int fd, int which, const void *body, size_t len)
{
    return link_raw(fd, which == 0 ? LINK_AUTH : LINK_PROOF, body, len);
}

static int link_proof(int fd, struct auth_proof *p)
{
    struct link_hdr h;
    if (get(fd, &h, sizeof h, 3000) < 0 || h.type != LINK_PROOF || h.len != sizeof *p)
        return -1;
    return get(fd, p, sizeof *p, 3000);
}

static void link_frame(int fd, int type, const void *body, size_t len)
{
    struct link_hdr h = {LINK_MAGIC, (uint8_t)proto, (uint8_t)type, 0, (uint32_t)len, 0};
    put_frame(fd, &h, sizeof h, body, len);
}

/* Did the daemon send HELLO (it believed us) before it closed? */
static int link_verdict(int fd)
{
    struct link_hdr h;
    char body[4096];
    int believed = 0;
    while (get(fd, &h, sizeof h, 3000) == 0) {
        if (h.magic != LINK_MAGIC || h.len > sizeof body || get(fd, body, h.len, 3000) < 0)
            break;
        if (h.type == LINK_HELLO)
            believed = 1;
    }
    return believed;
}

static int cmd_link(int fd, int argc, char **argv)
{
    struct link_hdr first;
    struct auth_hello peer;
    int have_peer = 0;
    if (!plain && get(fd, &first, sizeof first, 3000) == 0 && first.type == LINK_AUTH &&
        first.len == sizeof peer && get(fd, &peer, sizeof peer, 3000) == 0)
        have_peer = 1;
    if (!plain)
        handshake(fd, have_peer ? &peer : NULL, link_auth_frame, link_proof);
    struct link_hello hello = {.node_index = hs.mine.node};
    struct utsname u;
    snprintf(hello.node, sizeof hello.node, "%s", hs.mine.name);
    if (uname(&u) == 0)
        snprintf(hello.kernel, sizeof hello.kernel, "%.63s", u.release);
    link_frame(fd, LINK_HELLO, &hello, sizeof hello);
    for (int i = 0; i + 2 < argc; i += 3) {
        struct link_addr a = {(uint32_t)atoi(argv[i + 1]), (uint32_t)atoi(argv[i + 2])};
        if (!strcmp(argv[i], "--announce")) {
            link_frame(fd, LINK_ANNOUNCE, &a, sizeof a);
        } else if (!strcmp(argv[i], "--data")) {
            struct {
                struct link_data d;
                char payload[8];
            } f = {{a.job, 0, a.job, a.rank, 1, 8, 0, 1 /* PKT_DATA */}, "FORGED!"};
            link_frame(fd, LINK_DATA, &f, sizeof f);
        }
    }
    return link_verdict(fd);
}

/* ------------------------------------------------------ migration port */

static int mig_raw(int fd, int which, const void *body, size_t len)
{
    (void)which;
    put(fd, body, len);
    return 0;
}

static int mig_proof(int fd, struct auth_proof *p)
{
    return get(fd, p, sizeof *p, 3000);
}

static void mig_frame(int fd, uint16_t type, const void *body, uint32_t len)
{
    struct mig_hdr h = {.magic = MIG_MAGIC, .version = MIG_VERSION, .type = type, .len = len};
    put_frame(fd, &h, sizeof h, body, len);
}

/* Any migration frame back (the daemon took us for a peer)?  A daemon
 * that keeps the connection open has too, unless it sent an
 * authentication hello that was never answered with a right proof (it
 * then waits for one); after a right handshake (the real key), open
 * means taken in. */
static int mig_verdict(int fd, int hello_read)
{
    uint8_t buf[4096];
    size_t got = 0;
    int open = 0;
    for (;;) {
        struct pollfd pf = {.fd = fd, .events = POLLIN};
        if (poll(&pf, 1, 3000) <= 0) {
            open = 1;
            break;
        }
        ssize_t r = recv(fd, buf + got, sizeof buf - got, 0);
        if (r <= 0)
            break;
        got += (size_t)r;
        if (got == sizeof buf)
            break;
    }
    /* what a refusing daemon sends (of what is not read yet): its hello,
     * maybe its proof */
    size_t offs[] = {0, sizeof(struct auth_proof), sizeof(struct auth_hello),
                     sizeof(struct auth_hello) + sizeof(struct auth_proof)};
    for (size_t i = 0; i < sizeof offs / sizeof offs[0]; i++) {
        uint32_t magic;
        if (got >= offs[i] + sizeof(struct mig_hdr)) {
            memcpy(&magic, buf + offs[i], sizeof magic);
            if (magic == MIG_MAGIC)
                return 1;
        }
    }
    if (open) {
        uint32_t magic = 0;
        if (got >= sizeof magic)
            memcpy(&magic, buf, sizeof magic);
        /* open after a handshake that made a session: it took us in */
        return have_session || (!hello_read && magic != AUTH_MAGIC);
    }
    return 0;
}

static int cmd_mig(int fd, int fwd, int pid)
{
    struct auth_hello peer;
    int have_peer = 0;
    if (!plain) {
        have_peer = get(fd, &peer, sizeof peer, 3000) == 0 && peer.magic == AUTH_MAGIC;
        handshake(fd, have_peer ? &peer : NULL, mig_raw, mig_proof);
    }
    if (fwd) {
        struct mig_hello h = {.pid = pid, .gen = 99, .home = 0,
                              .node = fwd_node >= 0 ? (uint32_t)fwd_node : hs.mine.node};
        mig_frame(fd, FWD_HELLO, &h, sizeof h);
    } else {
        struct mig_offer o = {.pid = 4242, .home = hs.mine.node, .mem_bytes = 1 << 20};
        struct utsname u;
        if (uname(&u) == 0)
            snprintf(o.kernel, sizeof o.kernel, "%.63s", u.release);
        snprintf(o.cmd, sizeof o.cmd, "intruder");
        mig_frame(fd, MIG_OFFER, &o, sizeof o);
    }
    return mig_verdict(fd, have_peer);
}

int main(int argc, char **argv)
{
    int fwd_pid = 0, rest = 6;
    if (argc < 6 || sodium_init() < 0) {
        fprintf(stderr, "usage: see the comment at the top of test/auth/intruder.c\n");
        return 2;
    }
    const char *what = argv[1];
    if (!strcmp(what, "fwd")) {
        if (argc < 7)
            return 2;
        fwd_pid = atoi(argv[6]);
        rest = 7;
    }
    int i = rest;
    while (i < argc) {
        if (!strcmp(argv[i], "--key") && i + 1 < argc) {
            char why[512];
            keyfile = argv[i + 1];
            if (cluster_key_load(keyfile, key, why, sizeof why) < 0) {
                fprintf(stderr, "intruder: %s\n", why);
                return 2;
            }
            i += 2;
        } else if (!strcmp(argv[i], "--plain")) {
            plain = 1;
            i++;
        } else if (!strcmp(argv[i], "--fwd-node") && i + 1 < argc) {
            fwd_node = atoi(argv[i + 1]);
            i += 2;
        } else if (!strcmp(argv[i], "--proto") && i + 1 < argc) {
            proto = atoi(argv[i + 1]);
            i += 2;
        } else {
            break;
        }
    }
    int fd = tcp_connect(argv[2], argv[3]);
    if (fd < 0) {
        fprintf(stderr, "intruder: cannot connect to %s:%s\n", argv[2], argv[3]);
        return 2;
    }
    enum auth_purpose purpose = !strcmp(what, "link") ? AUTH_LINK : !strcmp(what, "fwd") ? AUTH_FORWARD : AUTH_MOVE;
    auth_hs_begin(&hs, key, purpose, true, (uint32_t)atoi(argv[5]), argv[4]);
    int believed;
    if (!strcmp(what, "link"))
        believed = cmd_link(fd, argc - i, argv + i);
    else if (!strcmp(what, "offer") || !strcmp(what, "fwd"))
        believed = cmd_mig(fd, fwd_pid != 0, fwd_pid);
    else
        return 2;
    close(fd);
    printf("intruder %s as %s%s%s: %s\n", what, argv[4], keyfile ? " with key file" : "",
           plain ? " (no handshake)" : "", believed ? "BELIEVED" : "refused");
    return believed;
}
