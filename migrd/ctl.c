/*
 * ctl.c -- see ctl.h.
 */
#include "ctl.h"

#include <errno.h>
#include <event2/event.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "common/ctlmsg.h"
#include "migrd/move/migrate.h"
#include "migrd/postal/link.h"
#include "migrd/postal/mbox.h"
#include "migrd/util/admit.h"
#include "migrd/util/clock.h"
#include "migrd/util/log.h"
#include "migrd.h"

struct ctl_client {
    struct ctl_server *srv;
    struct ctl_client *next, **pprev;
    int fd;
    struct event *ev;
    pid_t pid;
    uid_t uid;
    struct mbox *mbox;       /* the mailbox this client registered */
};

struct ctl_server {
    struct migrd *d;
    int lfd;
    struct event *lev;
    char path[sizeof ((struct sockaddr_un *)0)->sun_path];
    struct ctl_client *clients;
    struct admit admit;      /* out of descriptors: the listener pauses */
    char buf[CTL_MAX_MSG];
    int fds[CTL_MAX_FDS];    /* those of the message in buf: a handler
                                that takes one sets it to -1            */
    int nfds;
};

/* Control connections one user other than root may hold at once (each
 * DiCOM mailbox holds one: a node's ranks and their tools stay far below). */
#define CTL_MAX_PER_UID 512

static unsigned clients_of(const struct ctl_server *srv, uid_t uid)
{
    unsigned n = 0;
    for (const struct ctl_client *c = srv->clients; c; c = c->next)
        n += c->uid == uid;
    return n;
}

static void reply_error(struct ctl_client *c, uint32_t reqid, int err, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static void reply_error(struct ctl_client *c, uint32_t reqid, int err, const char *fmt, ...)
{
    struct ctl_error e = {.err = err};
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(e.message, sizeof e.message, fmt, ap);
    va_end(ap);
    log_info("refused uid %u (pid %d): %s", (unsigned)c->uid, c->pid, e.message);
    ctl_send(c->fd, CTL_ERROR, reqid, &e, sizeof e, NULL, 0);
}

static void client_free(struct ctl_client *c)
{
    *c->pprev = c->next;
    if (c->next)
        c->next->pprev = c->pprev;
    if (c->mbox) {
        c->mbox->owner = NULL;
        mbox_owner_gone(c->mbox);
    }
    event_free(c->ev);
    if (c->fd >= 0)
        close(c->fd);
    free(c);
}

/* postal_ops: the mailbox of this connection moved away with its process. */
static void ctl_release_client(void *owner)
{
    struct ctl_client *c = owner;
    c->mbox = NULL;
}

static int ctl_client_fd(void *owner) { return ((struct ctl_client *)owner)->fd; }

static void on_client(evutil_socket_t fd, short what, void *arg);

/* postal_ops: answer the requests waiting on this connection now (a move
 * waits for its process to leave a DiCOM critical section, which may be
 * waiting for our answer).  A connection that is closing is left to the
 * event loop. */
static void ctl_serve_client(void *owner)
{
    struct ctl_client *c = owner;
    for (int i = 0; i < 8; i++) {
        char b;
        ssize_t n = recv(c->fd, &b, 1, MSG_PEEK | MSG_DONTWAIT);
        if (n <= 0)
            return;
        on_client(c->fd, EV_READ, c);
    }
}

/* postal_ops: the owner of a mailbox broke the protocol. */
static void ctl_drop_client(void *owner, const char *why)
{
    struct ctl_client *c = owner;
    log_warn("dropping client pid %d: %s", c->pid, why);
    client_free(c);
}

static void do_register(struct ctl_client *c, const struct ctl_hdr *h)
{
    struct migrd *d = c->srv->d;
    const struct ctl_register *r = (const void *)(h + 1);
    if (c->mbox) {
        reply_error(c, h->reqid, EBUSY, "this connection already has mailbox %u:%u", c->mbox->job,
                    c->mbox->rank);
        return;
    }
    struct mbox *m;
    int rc = mbox_create(&d->postal, r->job, r->rank, c->pid, c->uid, r->inbox_size, r->outbox_size, c, &m);
    if (rc == -EADDRINUSE) {
        reply_error(c, h->reqid, EADDRINUSE, "job %u rank %u already has a mailbox on node %s", r->job,
                    r->rank, cluster_self_name(&d->cl));
        return;
    }
    if (rc == -EPERM) {
        reply_error(c, h->reqid, EPERM, "uid %u may not open mailbox %u:%u (pid %d): job %u belongs to another user",
                    (unsigned)c->uid, r->job, r->rank, c->pid, r->job);
        return;
    }
    if (rc == -EINVAL) {
        reply_error(c, h->reqid, EINVAL,
                    "ring sizes %u/%u: each must be a power of two from %u to %u bytes", r->inbox_size,
                    r->outbox_size, RING_MIN_SIZE, d->postal.max_ring);
        return;
    }
    if (rc < 0) {
        reply_error(c, h->reqid, -rc, "cannot create the mailbox: %s", strerror(-rc));
        return;
    }
    c->mbox = m;
    struct ctl_registered rep = {.map_size = m->map_len,
                                 .inbox_off = mbox_inbox_off(m), .inbox_size = m->inbox.size,
                                 .outbox_off = mbox_outbox_off(m), .outbox_size = m->outbox.size};
    snprintf(rep.node, sizeof rep.node, "%s", cluster_self_name(&d->cl));
    int fds[4] = {m->memfd, m->proc_bell, m->daemon_bell, d->postal.node_fd};
    rc = ctl_send(c->fd, CTL_REGISTERED, h->reqid, &rep, sizeof rep, fds, 4);
    if (rc < 0) {
        log_warn("answering the registration of pid %d: %s", c->pid, strerror(-rc));
        return;
    }
    log_info("registered job %u rank %u (pid %d, uid %u, rings %u/%u)", r->job, r->rank, c->pid,
             (unsigned)c->uid, r->inbox_size, r->outbox_size);
}

static void do_lookup(struct ctl_client *c, const struct ctl_hdr *h)
{
    const struct ctl_lookup *q = (const void *)(h + 1);
    struct mbox *m = mbox_find(&c->srv->d->postal, q->job, q->rank);
    struct ctl_lookup_reply rep = {.where = LOOKUP_REMOTE};
    if (m && !m->closing && (c->uid == 0 || c->uid == m->uid)) {
        rep.where = LOOKUP_LOCAL;
        rep.map_size = m->map_len;
        rep.inbox_off = mbox_inbox_off(m);
        rep.inbox_size = m->inbox.size;
        int fds[2] = {m->memfd, m->proc_bell};
        ctl_send(c->fd, CTL_LOOKUP_REPLY, h->reqid, &rep, sizeof rep, fds, 2);
        return;
    }
    /* Not here, or not ours to map: migrd relays. */
    ctl_send(c->fd, CTL_LOOKUP_REPLY, h->reqid, &rep, sizeof rep, NULL, 0);
}

struct status_ctx {
    struct ctl_batch *b;
    uid_t uid;               /* of the requester */
    int rc;                  /* 0, or -errno: sending failed */
};

/* Another user's mailbox shows only its pid and uid (as ps(1) would show
 * the process): not its job, rank, rings or traffic. */
static int status_proc(struct mbox *m, void *arg)
{
    struct status_ctx *s = arg;
    if (s->uid != 0 && s->uid != m->uid) {
        struct ctl_status_proc p = {.pid = m->pid, .uid = m->uid, .flags = CTL_STATUS_HIDDEN};
        return (s->rc = ctl_batch_add(s->b, &p)) < 0;
    }
    struct ctl_status_proc p = {
        .job = m->job, .rank = m->rank, .pid = m->pid, .uid = m->uid,
        .inbox_used = ring_used(&m->inbox), .inbox_size = m->inbox.size,
        .outbox_used = ring_used(&m->outbox), .outbox_size = m->outbox.size,
        .relayed_out = m->relayed_out, .delivered_in = m->delivered_in,
        .critical = atomic_load(&m->sh->critical)};
    return (s->rc = ctl_batch_add(s->b, &p)) < 0;
}

/* The nodes, then the mailboxes, in a few messages (struct ctl_batch): one
 * message per mailbox fills the requester's socket buffer on a node with
 * a few hundred of them, and the listing stops half-way. */
static void do_status(struct ctl_client *c, const struct ctl_hdr *h)
{
    static struct ctl_batch b;
    struct migrd *d = c->srv->d;
    int rc = 0;
    ctl_batch_init(&b, c->fd, CTL_STATUS_NODE, h->reqid, sizeof(struct ctl_status_node));
    for (int k = 0; k < d->cl.map.nnodes && rc == 0; k++) {
        /* This node first. */
        int i = k == 0 ? d->cl.self : (k <= d->cl.self ? k - 1 : k);
        struct ctl_status_node n = {.port = d->cl.map.nodes[i].port, .self = i == d->cl.self};
        snprintf(n.name, sizeof n.name, "%s", d->cl.map.nodes[i].name);
        snprintf(n.addr, sizeof n.addr, "%s", d->cl.map.nodes[i].addr);
        if (i == d->cl.self) {
            n.connected = 1;
            n.nprocs = mbox_count(&d->postal);
            n.uptime_ms = migrd_now_ms() - d->start_ms;
        } else {
            link_status(&d->postal, i, &n);
        }
        rc = ctl_batch_add(&b, &n);
    }
    if (rc == 0)
        rc = ctl_batch_retype(&b, CTL_STATUS_PROC, sizeof(struct ctl_status_proc));
    struct status_ctx s = {&b, c->uid, 0};
    if (rc == 0 && mbox_foreach(&d->postal, status_proc, &s) != 0)
        rc = s.rc;
    if (rc == 0)
        rc = ctl_batch_end(&b);
    if (rc < 0)
        log_debug("sending the status to pid %d (fd %d): %s", c->pid, c->fd, strerror(-rc));
}

static void do_proc_register(struct ctl_client *c, const struct ctl_hdr *h);
static void do_proc_signal(struct ctl_client *c, const struct ctl_hdr *h);
static void do_proc_done(struct ctl_client *c, const struct ctl_hdr *h);
static void do_proc_hold(struct ctl_client *c, const struct ctl_hdr *h);
static void do_migrate(struct ctl_client *c, const struct ctl_hdr *h);
static void do_ps(struct ctl_client *c, const struct ctl_hdr *h);
static void do_log(struct ctl_client *c, const struct ctl_hdr *h);

static const struct {
    size_t len;
    void (*fn)(struct ctl_client *, const struct ctl_hdr *);
} handlers[CTL_TYPE_MAX] = {
    [CTL_REGISTER] = {sizeof(struct ctl_register), do_register},
    [CTL_LOOKUP] = {sizeof(struct ctl_lookup), do_lookup},
    [CTL_STATUS] = {0, do_status},
    [CTL_PROC_REGISTER] = {sizeof(struct ctl_proc_register), do_proc_register},
    [CTL_PROC_SIGNAL] = {sizeof(struct ctl_proc_signal), do_proc_signal},
    [CTL_PROC_DONE] = {sizeof(struct ctl_proc_done), do_proc_done},
    [CTL_PROC_HOLD] = {sizeof(struct ctl_proc_hold), do_proc_hold},
    [CTL_MIGRATE] = {sizeof(struct ctl_migrate), do_migrate},
    [CTL_PS] = {0, do_ps},
    [CTL_LOG] = {0, do_log},
};

static void on_client(evutil_socket_t fd, short what, void *arg)
{
    struct ctl_client *c = arg;
    struct ctl_server *srv = c->srv;
    int eof;
    (void)what;
    ssize_t n = ctl_recv(fd, srv->buf, sizeof srv->buf, srv->fds, &srv->nfds, &eof, MSG_DONTWAIT);
    if (n < 0 || eof || ((const struct ctl_hdr *)srv->buf)->type != CTL_PROC_HOLD) {
        for (int i = 0; i < srv->nfds; i++)
            close(srv->fds[i]); /* only a stub giving back a process sends descriptors */
        srv->nfds = 0;
    }
    if (n == -EAGAIN)
        return;
    if (eof || n == -ECONNRESET) {
        log_debug("client pid %d disconnected", c->pid);
        /* a stub that ended before its process (killed): end the process */
        migrate_ctl_stub_gone(&srv->d->move, c->pid);
        client_free(c);
        return;
    }
    if (n < 0) {
        log_error("client pid %d (fd %d): %s: closing it", c->pid, fd,
                  n == -EPROTO ? "malformed control message" : strerror((int)-n));
        client_free(c);
        return;
    }
    const struct ctl_hdr *h = (const void *)srv->buf;
    if (!handlers[h->type].fn || h->len != handlers[h->type].len) {
        log_error("client pid %d: unexpected %s request of %u bytes: closing it", c->pid,
                  ctl_type_name(h->type), h->len);
        reply_error(c, h->reqid, EPROTO, "unexpected %s request of %u bytes", ctl_type_name(h->type), h->len);
        client_free(c);
    } else {
        handlers[h->type].fn(c, h);
    }
    for (int i = 0; i < srv->nfds; i++)
        if (srv->fds[i] >= 0)
            close(srv->fds[i]);
    srv->nfds = 0;
}

/* Watch a new client's connection and list it; frees c on failure. */
static int client_start(struct ctl_server *srv, struct ctl_client *c, int fd, pid_t pid, uid_t uid)
{
    c->srv = srv;
    c->fd = fd;
    c->pid = pid;
    c->uid = uid;
    c->ev = event_new(srv->d->base, fd, EV_READ | EV_PERSIST, on_client, c);
    if (!c->ev || event_add(c->ev, NULL) < 0) {
        log_warn("cannot watch the control connection fd %d of pid %d", fd, pid);
        if (c->ev)
            event_free(c->ev);
        free(c);
        return -1;
    }
    c->next = srv->clients;
    if (c->next)
        c->next->pprev = &c->next;
    c->pprev = &srv->clients;
    srv->clients = c;
    return 0;
}

static void on_accept(evutil_socket_t lfd, short what, void *arg)
{
    struct ctl_server *srv = arg;
    (void)what;
    for (;;) {
        int fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            if (admit_accept_failed(&srv->admit, errno))
                return;
            continue;
        }
        struct ucred cr;
        socklen_t cl = sizeof cr;
        struct ctl_client *c = calloc(1, sizeof *c);
        if (!c || getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cr, &cl) < 0) {
            log_warn("new client on fd %d: %s", fd, c ? strerror(errno) : "out of memory");
            free(c);
            close(fd);
            continue;
        }
        unsigned left_out;
        if (cr.uid != 0 && clients_of(srv, cr.uid) >= CTL_MAX_PER_UID) {
            if (admit_may_log(&srv->admit, &left_out))
                log_warn("control socket: connection of pid %d refused: uid %u holds %u connections already "
                         "(%u such lines left out)", cr.pid, (unsigned)cr.uid, CTL_MAX_PER_UID, left_out);
            free(c);
            close(fd);
            continue;
        }
        if (client_start(srv, c, fd, cr.pid, cr.uid) < 0)
            close(fd);
    }
}

/* move_ops: the control connection of a process that moved here, with the
 * mailbox made from its snapshot (migrd/move/migrate_postal.c). */
static int ctl_adopt_client(void *core, int fd, pid_t pid, uid_t uid, struct mbox *m)
{
    struct migrd *d = core;
    struct ctl_client *c = calloc(1, sizeof *c);
    if (!c)
        return -ENOMEM;
    if (client_start(d->ctl, c, fd, pid, uid) < 0)
        return -ENOMEM;
    int rc = mbox_register(m, c);
    if (rc < 0) {
        c->fd = -1; /* the caller keeps fd */
        client_free(c);
        return rc;
    }
    c->mbox = m;
    log_info("adopted the mailbox %u:%u of pid %d (uid %u), moved here", m->job, m->rank, pid, (unsigned)uid);
    return 0;
}

/* move_ops: the control connections a moving process must not hold (a
 * reply with descriptors could not follow it through its home). */
static int ctl_control_fds(void *core, const void *owner, int *fds, int max)
{
    struct migrd *d = core;
    int n = 0;
    on_accept(d->ctl->lfd, EV_READ, d->ctl);
    for (struct ctl_client *c = d->ctl->clients; c; c = c->next)
        if (c != owner && c->fd >= 0) {
            if (n < max)
                fds[n] = c->fd;
            n++;
        }
    return n;
}

/* postal_ops: a packet the owner of a mailbox sent cannot be delivered. */
static void ctl_notify_unreachable(void *owner, uint32_t job, uint32_t rank, const char *why)
{
    struct ctl_client *c = owner;
    struct ctl_event ev = {.type = CTL_EV_UNREACHABLE, .job = job, .rank = rank};
    snprintf(ev.reason, sizeof ev.reason, "%s", why);
    int rc = ctl_send(c->fd, CTL_EVENT, 0, &ev, sizeof ev, NULL, 0);
    if (rc < 0)
        log_warn("telling pid %d that %u:%u is unreachable: %s", c->pid, job, rank, strerror(-rc));
}

/* Is another daemon answering on `path`? */
static bool socket_alive(const char *path)
{
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    snprintf(sa.sun_path, sizeof sa.sun_path, "%s", path);
    int fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return false;
    bool alive = connect(fd, (struct sockaddr *)&sa, sizeof sa) == 0;
    close(fd);
    return alive;
}

static int make_parent_dir(const char *path)
{
    char dir[108];
    snprintf(dir, sizeof dir, "%s", path);
    char *slash = strrchr(dir, '/');
    if (!slash || slash == dir)
        return 0;
    *slash = 0;
    if (mkdir(dir, 0755) < 0 && errno != EEXIST)
        return -errno;
    return 0;
}

int ctl_init(struct migrd *d, const char *path)
{
    struct ctl_server *srv = calloc(1, sizeof *srv);
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    if (!srv)
        return -ENOMEM;
    d->ctl = srv;
    srv->d = d;
    d->postal.ops = (struct postal_ops){.unreachable = ctl_notify_unreachable, .drop_owner = ctl_drop_client,
                                        .release = ctl_release_client, .serve = ctl_serve_client,
                                        .fd = ctl_client_fd};
    d->move.ops = (struct move_ops){.core = d, .adopt_client = ctl_adopt_client,
                                    .control_fds = ctl_control_fds};
    srv->lfd = -1;
    if (strlen(path) >= sizeof sa.sun_path) {
        log_error("control socket path too long: %s", path);
        return -ENAMETOOLONG;
    }
    memcpy(srv->path, path, strlen(path) + 1); /* both sun_path-sized, length checked */
    memcpy(sa.sun_path, path, strlen(path) + 1);
    if (socket_alive(path)) {
        log_error("another migrd already answers on %s", path);
        return -EADDRINUSE;
    }
    int rc = make_parent_dir(path);
    if (rc < 0) {
        log_error("creating the directory of %s: %s", path, strerror(-rc));
        return rc;
    }
    unlink(path); /* a stale socket of a daemon that died */
    srv->lfd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (srv->lfd < 0 || bind(srv->lfd, (struct sockaddr *)&sa, sizeof sa) < 0 ||
        chmod(path, 0666) < 0 || listen(srv->lfd, 128) < 0) {
        rc = -errno;
        log_error("control socket %s: %s", path, strerror(-rc));
        return rc;
    }
    srv->lev = event_new(d->base, srv->lfd, EV_READ | EV_PERSIST, on_accept, srv);
    if (!srv->lev || event_add(srv->lev, NULL) < 0 ||
        admit_init(&srv->admit, d->base, "control socket", 0, srv->lev) < 0)
        return -ENOMEM;
    return 0;
}

void ctl_fini(struct migrd *d)
{
    struct ctl_server *srv = d->ctl;
    if (!srv)
        return;
    while (srv->clients)
        client_free(srv->clients);
    admit_fini(&srv->admit);
    if (srv->lev)
        event_free(srv->lev);
    if (srv->lfd >= 0) {
        close(srv->lfd);
        unlink(srv->path);
    }
    free(srv);
    d->ctl = NULL;
}

/* ---- migratable processes (migrate.h) ---- */

/* Who asks: the credentials the kernel gave at connect (SO_PEERCRED), or
 * those of the image for a connection adopted with a moved process. */
static struct ctl_caller caller(const struct ctl_client *c)
{
    return (struct ctl_caller){.fd = c->fd, .pid = c->pid, .uid = c->uid};
}

static void do_proc_register(struct ctl_client *c, const struct ctl_hdr *h)
{
    struct ctl_caller who = caller(c);
    migrate_ctl_register(&c->srv->d->move, &who, h->reqid, (const void *)(h + 1));
}

static void do_proc_signal(struct ctl_client *c, const struct ctl_hdr *h)
{
    struct ctl_caller who = caller(c);
    migrate_ctl_signal(&c->srv->d->move, &who, h->reqid, (const void *)(h + 1));
}

static void do_proc_done(struct ctl_client *c, const struct ctl_hdr *h)
{
    struct ctl_caller who = caller(c);
    migrate_ctl_done(&c->srv->d->move, &who, h->reqid, (const void *)(h + 1));
}

static void do_proc_hold(struct ctl_client *c, const struct ctl_hdr *h)
{
    struct ctl_caller who = caller(c);
    migrate_ctl_take_back(&c->srv->d->move, &who, h->reqid, (const void *)(h + 1), c->srv->fds, c->srv->nfds);
}

static void do_migrate(struct ctl_client *c, const struct ctl_hdr *h)
{
    struct ctl_caller who = caller(c);
    migrate_ctl_migrate(&c->srv->d->move, &who, h->reqid, (const void *)(h + 1));
}

static void do_ps(struct ctl_client *c, const struct ctl_hdr *h)
{
    struct ctl_caller who = caller(c);
    migrate_ctl_ps(&c->srv->d->move, &who, h->reqid);
}

static void do_log(struct ctl_client *c, const struct ctl_hdr *h)
{
    struct ctl_caller who = caller(c);
    migrate_ctl_log(&c->srv->d->move, &who, h->reqid);
}
