/*
 * link.c -- see link.h.
 *
 * Sending: each link has a FIFO of items (a frame header plus up to two more
 * pieces).  An item made from an outbox record points into the shared ring;
 * the record is consumed from the outbox only when the whole frame has been
 * written.  Control frames and kept copies are heap items.
 *
 * Receiving: a small state machine: frame header, then either a control
 * body (read into a buffer) or a DATA frame, whose payload is read straight
 * into a reservation in the receiver's inbox.  If that inbox is full the
 * link stops reading until its owner makes room.
 *
 * Authentication (cluster/auth.h, when the cluster has a key): each side
 * sends AUTH, then PROOF once it has the peer's AUTH; only after the
 * peer's proof is right does HELLO follow, and from then on every frame
 * carries a MAC, checked before the frame is believed.  A DATA frame has
 * two: one after its link_data (the header: a wrong one closes the
 * connection) and one after the payload, which is read straight into the
 * inbox and committed only if that MAC is right; if not, the packet is
 * dropped and the link goes on (the framing was authenticated; the bytes
 * may have been changed in shared memory by a local process, at either
 * end, which must not let it cut the link of everyone else).  A connection is taken from an
 * address of the map only, and the node it authenticates as must have
 * that address.  Nothing of an established link changes before a new
 * connection has proved itself.
 */
#include "link.h"

#include <arpa/inet.h>
#include <errno.h>
#include <event2/event.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include "common/wire.h"
#include "migrd/cluster/auth.h"
#include "migrd/cluster/cluster.h"
#include "migrd/cluster/node_addr.h"
#include "migrd/util/admit.h"
#include "migrd/util/clock.h"
#include "migrd/util/log.h"
#include "jobs.h"
#include "location.h"
#include "mbox.h"
#include "office.h"
#include "postal.h"

/* A node unreachable this long has its waiting packets refused. */
#define LINK_DOWN_TIMEOUT_MS 10000
#define LINK_RETRY_MIN_MS    100
#define LINK_RETRY_MAX_MS    2000
#define LINK_STABLE_MS       5000  /* up this long: reconnect quickly again */
#define LINK_SOCKBUF         (4 << 20)
#define LINK_CTL_MAX         4096   /* largest non-DATA body */
#define LINK_MAX_PENDING     32     /* accepted, no HELLO yet: at once */

struct txitem {
    struct txitem *next;
    struct link_hdr hdr;
    struct link_data data;       /* DATA frames                        */
    struct iovec base[3];        /* the frame's pieces, without MACs     */
    int nbase;
    struct iovec iov[5];         /* what is written: base and the MACs   */
    int niov;
    uint8_t tag[2][AUTH_TAG];
    size_t total, done;
    struct mbox *m;              /* outbox record: release when written */
    struct dicom_pkt rec;        /* its header, as ring_take copied it  */
    void *heap;                  /* kept copy or control body: free     */
};

enum rx_state { RX_HDR, RX_BODY, RX_DATA_HDR, RX_HTAG, RX_TARGET, RX_PAYLOAD, RX_TAG, RX_STALLED };

/* A connection's authentication (NULL in an insecure cluster). */
enum auth_phase { AP_HELLO, AP_PROOF, AP_DONE };
struct link_auth {
    enum auth_phase phase;
    int node;                    /* the node it claims in its AUTH      */
    struct auth_hs hs;
    struct auth_session s;
    struct auth_mac rmac;        /* of the frame being received         */
    bool rmac_on;                /* bytes read go into rmac             */
    uint8_t rtag[AUTH_TAG];
};

struct conn {
    struct link_set *set;
    int fd;
    int node;                    /* -1 until HELLO                      */
    bool outgoing;               /* we connected                        */
    char peer[64];               /* address, for messages               */
    struct sockaddr_storage addr;
    struct link_auth *auth;
    struct event *rev, *wev;
    struct txitem *q, **q_tail;
    size_t queued;
    bool hello_seen;
    struct admit_ticket *ticket; /* accepted, no HELLO yet             */
    /* receiving */
    enum rx_state rx;
    struct link_hdr rh;
    struct link_data rd;
    size_t rgot;
    char body[LINK_CTL_MAX];
    struct mbox *rx_mbox;        /* DATA: receiving inbox, or NULL: discard */
    bool refused;                /* a DATA frame into another user's job seen */
    bool refused_announce;       /* an ANNOUNCE of another user's job seen    */
    struct ring_resv rx_resv;
    char discard[16384];
    /* Bytes read from the socket and not yet parsed: small frames cost one
     * read() for many; large payloads are read straight into the inbox. */
    char rbuf[65536];
    size_t rpos, rlen;
    /* The last read() returned less than asked: the socket is empty until
     * the event loop says it is readable again (saves a read() that would
     * fail with EAGAIN at the end of every burst). */
    bool drained;
    struct waiter rx_wait;
    struct mbox *stalled_on;     /* RX_STALLED: whose inbox we wait for  */
    bool flushing, dead;
    char dead_why[128];
    uint64_t frames_in, frames_out, bytes_in, bytes_out;
};

struct peer {
    struct link_set *set;
    int node;
    struct conn *c;              /* the established connection, if any   */
    bool connecting;
    struct event *retry;
    int retry_ms;
    uint64_t down_since_ms, up_since_ms;
    struct txitem *backlog, **backlog_tail; /* kept copies while down    */
    uint64_t frames_in, frames_out, bytes_in, bytes_out; /* closed conns */
};

struct link_set {
    struct postal *d;
    int lfd;
    struct event *lev, *tick;
    struct admit admit;          /* accepted connections before HELLO   */
    struct peer *peers;          /* one per node in the map             */
};

static void conn_close(struct conn *c, const char *why);
static void conn_flush(struct conn *c);
static void start_connect(struct postal *d, int node);
static void schedule_retry(struct postal *d, int node);

static const char *node_name(struct link_set *s, int node)
{
    return node >= 0 ? s->d->cl->map.nodes[node].name : "?";
}

/* ------------------------------------------------------------ sending --- */

static void item_done(struct txitem *it, bool written)
{
    if (it->m) {
        struct mbox *m = it->m;
        if (written)
            ring_release(&m->outbox, &it->rec), m->relayed_out++;
        m->tx_busy = false;
        postal_drain(m); /* not written: stays in the outbox and is routed again */
    }
    free(it->heap);
    free(it);
}

/* MAC of base pieces [from, to) into tag k, appended to the iovec. */
static void add_tag(struct conn *c, struct txitem *it, int from, int to, int k)
{
    struct auth_mac m;
    auth_mac_begin(&c->auth->s, true, &m);
    for (int i = from; i < to; i++)
        auth_mac_update(&m, it->base[i].iov_base, it->base[i].iov_len);
    if (auth_mac_final(&m, it->tag[k]) < 0 && !c->dead) {
        /* Closed from the event loop, never under a caller's feet. */
        snprintf(c->dead_why, sizeof c->dead_why, "the frame's MAC could not be computed");
        c->dead = true;
        event_active(c->rev, EV_READ, 0);
    }
    it->iov[it->niov++] = (struct iovec){it->tag[k], AUTH_TAG};
    it->total += AUTH_TAG;
}

/* The iovec to write: the frame and, on an authenticated link, its MACs
 * in the connection's order of frames (a DATA frame: header, MAC, payload,
 * MAC). */
static void tag_item(struct conn *c, struct txitem *it)
{
    bool authed = c->auth && c->auth->phase == AP_DONE;
    bool data = it->hdr.type == LINK_DATA;
    it->niov = 0;
    it->total = 0;
    for (int i = 0; i < it->nbase; i++) {
        it->iov[it->niov++] = it->base[i];
        it->total += it->base[i].iov_len;
        if (authed && data && i == 1)
            add_tag(c, it, 0, 2, 0);
    }
    if (authed)
        add_tag(c, it, data ? 2 : 0, it->nbase, 1);
}

static void enqueue(struct conn *c, struct txitem *it)
{
    tag_item(c, it);
    it->next = NULL;
    *c->q_tail = it;
    c->q_tail = &it->next;
    c->queued++;
    conn_flush(c);
}

static struct txitem *item_new(uint8_t type, uint32_t len)
{
    struct txitem *it = calloc(1, sizeof *it);
    if (!it)
        return NULL;
    it->hdr = (struct link_hdr){.magic = LINK_MAGIC, .version = MIGR_PROTO_VERSION, .type = type, .len = len};
    it->base[0] = (struct iovec){&it->hdr, sizeof it->hdr};
    it->nbase = 1;
    return it;
}

/* A DATA frame for the packet whose header is k (private memory: every
 * length below is the one that was checked), whose payload is at p,
 * vouched for by uid (the owner of its outbox, or postal_copy_uid). */
static struct txitem *data_item(const struct dicom_pkt *k, const void *p, uid_t uid)
{
    struct txitem *it = item_new(LINK_DATA, (uint32_t)(sizeof(struct link_data) + k->len));
    if (!it)
        return NULL;
    it->data = (struct link_data){k->src_job, k->src_rank, k->dst_job, k->dst_rank, k->seq, k->len, k->tag, k->kind,
                                (uint32_t)uid, 0};
    it->base[1] = (struct iovec){&it->data, sizeof it->data};
    it->base[2] = (struct iovec){(void *)p, k->len};
    it->nbase = 3;
    return it;
}

static void conn_flush(struct conn *c)
{
    if (c->flushing || c->dead)
        return;
    c->flushing = true;
    while (c->q && !c->dead) {
        struct txitem *it = c->q;
        struct iovec iov[5];
        int n = 0;
        size_t skip = it->done;
        for (int i = 0; i < it->niov; i++) {
            if (skip >= it->iov[i].iov_len) {
                skip -= it->iov[i].iov_len;
                continue;
            }
            iov[n].iov_base = (char *)it->iov[i].iov_base + skip;
            iov[n++].iov_len = it->iov[i].iov_len - skip;
            skip = 0;
        }
        ssize_t w = writev(c->fd, iov, n);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            if (errno == EAGAIN) {
                event_add(c->wev, NULL);
                break;
            }
            /* Closed from the event loop, never under a caller's feet. */
            snprintf(c->dead_why, sizeof c->dead_why, "write: %s", strerror(errno));
            c->dead = true;
            event_active(c->rev, EV_READ, 0);
            return;
        }
        it->done += (size_t)w;
        c->bytes_out += (size_t)w;
        if (it->done < it->total)
            continue;
        c->q = it->next;
        if (!c->q)
            c->q_tail = &c->q;
        c->queued--;
        c->frames_out++;
        item_done(it, true);
    }
    c->flushing = false;
    if (!c->q)
        event_del(c->wev);
}

static void on_writable(evutil_socket_t fd, short what, void *arg)
{
    struct conn *c = arg;
    (void)fd;
    (void)what;
    postal_busy(c->set->d);
    conn_flush(c);
}

bool link_is_up(struct postal *d, int node)
{
    return node >= 0 && node < d->cl->map.nnodes && d->links->peers[node].c != NULL;
}

int link_send_record(struct postal *d, int node, struct mbox *m, const struct dicom_pkt *k,
                     const void *payload)
{
    struct conn *c = d->links ? d->links->peers[node].c : NULL;
    if (!c)
        return -ENOTCONN;
    struct txitem *it = data_item(k, payload, m->uid);
    if (!it)
        return -ENOMEM;
    it->m = m;
    it->rec = *k;
    m->tx_busy = true;
    enqueue(c, it);
    return 0;
}

void link_send_copy(struct postal *d, int node, struct dicom_pkt *copy)
{
    if (!d->links) {
        free(copy); /* shutting down: nothing will carry it */
        return;
    }
    struct peer *p = &d->links->peers[node];
    struct txitem *it = data_item(copy, pkt_payload(copy), postal_copy_uid(copy));
    if (!it) {
        postal_unreachable(d, copy, "out of memory");
        free(copy);
        return;
    }
    it->heap = copy;
    if (p->c) {
        enqueue(p->c, it);
        return;
    }
    it->next = NULL;
    *p->backlog_tail = it;
    p->backlog_tail = &it->next;
}

/* A control frame with a copy of body; 0 or -ENOMEM. */
static int conn_send(struct conn *c, uint8_t type, const void *body, uint32_t len)
{
    struct txitem *it = item_new(type, len);
    void *copy = len ? malloc(len) : NULL;
    if (!it || (len && !copy)) {
        free(it);
        free(copy);
        return -ENOMEM;
    }
    if (len) {
        memcpy(copy, body, len);
        it->heap = copy;
        it->base[1] = (struct iovec){copy, len};
        it->nbase = 2;
    }
    enqueue(c, it);
    return 0;
}

void link_send_ctl(struct postal *d, int node, uint8_t type, const void *body, uint32_t len)
{
    if (!d->links)
        return; /* shutting down: the links are gone */
    struct conn *c = d->links->peers[node].c;
    if (!c)
        return; /* a node that comes up later gets the state in location_link_up() */
    if (conn_send(c, type, body, len) < 0)
        log_error("out of memory sending a control frame to %s", node_name(d->links, node));
}

void link_broadcast(struct postal *d, uint8_t type, const void *body, uint32_t len)
{
    for (int i = 0; i < d->cl->map.nnodes; i++)
        if (i != d->cl->self)
            link_send_ctl(d, i, type, body, len);
}

/* ---------------------------------------------------------- receiving --- */

/* The inbox a DATA frame is being read into stays while it is (its owner
 * may go meanwhile: a rank that exits, a hostile one); then it may close. */
static void rx_hold(struct conn *c, struct mbox *m)
{
    c->rx_mbox = m;
    m->rx_links++;
}

static void rx_unhold(struct conn *c)
{
    struct mbox *m = c->rx_mbox;
    c->rx_mbox = NULL;
    if (m && --m->rx_links == 0 && m->closing && !m->exiled)
        mbox_maybe_free(m);
}

static void rx_reset(struct conn *c)
{
    c->rx = RX_HDR;
    c->rgot = 0;
    rx_unhold(c);
}

/* Read into dst up to `want` bytes total (c->rgot so far).  Returns 1 when
 * complete, 0 if more is needed later, -1 if the connection closed. */
static int read_some(struct conn *c, void *dst, size_t want)
{
    while (c->rgot < want) {
        size_t need = want - c->rgot;
        if (c->rpos < c->rlen) {
            size_t n = c->rlen - c->rpos < need ? c->rlen - c->rpos : need;
            memcpy((char *)dst + c->rgot, c->rbuf + c->rpos, n);
            if (c->auth && c->auth->rmac_on)
                auth_mac_update(&c->auth->rmac, (char *)dst + c->rgot, n);
            c->rpos += n;
            c->rgot += n;
            continue;
        }
        if (c->drained)
            return 0;
        bool direct = need >= sizeof c->rbuf / 4;
        size_t ask = direct ? need : sizeof c->rbuf;
        ssize_t n = read(c->fd, direct ? (char *)dst + c->rgot : c->rbuf, ask);
        if (n > 0) {
            c->drained = (size_t)n < ask;
            c->bytes_in += (size_t)n;
            if (direct) {
                if (c->auth && c->auth->rmac_on)
                    auth_mac_update(&c->auth->rmac, (char *)dst + c->rgot, (size_t)n);
                c->rgot += (size_t)n;
            } else {
                c->rpos = 0;
                c->rlen = (size_t)n;
            }
            continue;
        }
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && errno == EAGAIN)
            return 0;
        char why[128];
        snprintf(why, sizeof why, n == 0 ? "closed by peer" : "read: %s", strerror(errno));
        conn_close(c, why);
        return -1;
    }
    return 1;
}

/* Like read_some(), for a payload nobody will receive. */
static int read_discard(struct conn *c, size_t want)
{
    while (c->rgot < want) {
        size_t piece = want - c->rgot < sizeof c->discard ? want - c->rgot : sizeof c->discard;
        size_t before = c->rgot;
        c->rgot = 0;
        int r = read_some(c, c->discard, piece);
        if (r < 0)
            return r;
        c->rgot += before;
        if (r == 0)
            return 0;
    }
    return 1;
}

static bool hdr_ok(struct conn *c, char *why, size_t wl)
{
    const struct link_hdr *h = &c->rh;
    if (h->magic != LINK_MAGIC) {
        snprintf(why, wl, "bad frame magic 0x%08x", h->magic);
        return false;
    }
    if (h->version != MIGR_PROTO_VERSION) {
        snprintf(why, wl, "protocol version %u, this migrd speaks %u", h->version, MIGR_PROTO_VERSION);
        return false;
    }
    if (h->type == 0 || h->type >= LINK_TYPE_MAX) {
        snprintf(why, wl, "unknown frame type %u", h->type);
        return false;
    }
    if (h->type == LINK_DATA && (h->len < sizeof(struct link_data) || h->len > LINK_MAX_FRAME)) {
        snprintf(why, wl, "DATA frame of %u bytes (limit %u)", h->len, LINK_MAX_FRAME);
        return false;
    }
    if (c->auth && c->auth->phase != AP_DONE) {
        unsigned expect = c->auth->phase == AP_HELLO ? LINK_AUTH : LINK_PROOF;
        if (h->type != expect) {
            snprintf(why, wl, "frame type %u before authentication (expected %u)", h->type, expect);
            return false;
        }
    } else if (h->type == LINK_AUTH || h->type == LINK_PROOF) {
        snprintf(why, wl, "authentication frame %u %s", h->type,
                 c->auth ? "after authentication" : "but this cluster has no key (migrd --insecure)");
        return false;
    } else if (!c->hello_seen && h->type != LINK_HELLO) {
        snprintf(why, wl, "frame type %u before HELLO", h->type);
        return false;
    }
    if (h->type == LINK_DATA)
        return true;
    size_t want = h->type == LINK_HELLO ? sizeof(struct link_hello)
                  : h->type == LINK_AUTH ? sizeof(struct auth_hello)
                  : h->type == LINK_PROOF ? sizeof(struct auth_proof)
                  : h->type == LINK_PING ? 0 : sizeof(struct link_addr);
    if (h->len != want) {
        snprintf(why, wl, "frame type %u with %u bytes, expected %zu", h->type, h->len, want);
        return false;
    }
    return true;
}

/* An accepted connection must come from the address of the node it
 * claims to be. */
static bool peer_addr_ok(struct conn *c, int node, char *why, size_t wl)
{
    const struct cfg_node *n = &c->set->d->cl->map.nodes[node];
    if (c->outgoing || node_addr_is(n, &c->addr))
        return true;
    snprintf(why, wl, "claims to be %s, whose address in the map is %s", n->name, n->addr);
    return false;
}

static bool take_hello(struct conn *c, char *why, size_t wl)
{
    struct postal *d = c->set->d;
    struct link_hello *h = (struct link_hello *)c->body;
    h->node[sizeof h->node - 1] = 0;
    h->kernel[sizeof h->kernel - 1] = 0;
    int node = config_find(&d->cl->map, h->node);
    if (c->hello_seen) {
        snprintf(why, wl, "second HELLO");
        return false;
    }
    if (node < 0 || node == d->cl->self) {
        snprintf(why, wl, "HELLO from '%.63s', which is not another node of the cluster map", h->node);
        return false;
    }
    if (c->node >= 0 && c->node != node) {
        snprintf(why, wl, "connected to %s but it says it is %.63s", node_name(c->set, c->node), h->node);
        return false;
    }
    if (c->auth && c->auth->node != node) {
        snprintf(why, wl, "authenticated as %s but its HELLO says %.63s", node_name(c->set, c->auth->node), h->node);
        return false;
    }
    if (!c->auth && !peer_addr_ok(c, node, why, wl))
        return false;
    if (strcmp(h->kernel, d->cl->kernel))
        log_warn("node %s runs kernel %s, this node %s: moves between them will be refused", h->node,
                 h->kernel, d->cl->kernel);
    c->hello_seen = true;
    admit_done(c->ticket);
    c->ticket = NULL;
    c->node = node;
    struct peer *p = &c->set->peers[node];
    if (p->c && p->c != c)
        conn_close(p->c, "replaced by a new connection");
    p->c = c;
    p->connecting = false;
    p->up_since_ms = migrd_now_ms();
    log_info("link to %s (%s) is up%s", h->node, c->peer, c->auth ? ", authenticated" : " (NOT authenticated)");
    /* What waited for this node goes first, then what it should know. */
    while (p->backlog) {
        struct txitem *it = p->backlog;
        p->backlog = it->next;
        enqueue(c, it);
    }
    p->backlog_tail = &p->backlog;
    location_link_up(d, node);
    return true;
}

static void send_hello(struct conn *c);

/* The peer's AUTH: which node it claims to be; our proof goes back. */
static bool take_auth(struct conn *c, char *why, size_t wl)
{
    struct postal *d = c->set->d;
    struct link_auth *a = c->auth;
    struct auth_proof pr;
    if (auth_hs_peer(&a->hs, c->body, why, wl) < 0)
        return false;
    int node = auth_peer_node(&a->hs, &d->cl->map, d->cl->self, why, wl);
    if (node < 0)
        return false;
    if (c->node >= 0 && c->node != node) {
        snprintf(why, wl, "connected to %s but it says it is %.63s", node_name(c->set, c->node), a->hs.peer.name);
        return false;
    }
    if (!peer_addr_ok(c, node, why, wl))
        return false;
    a->node = node;
    a->phase = AP_PROOF;
    auth_hs_proof(&a->hs, &pr);
    if (conn_send(c, LINK_PROOF, &pr, sizeof pr) < 0) {
        snprintf(why, wl, "out of memory");
        return false;
    }
    return true;
}

/* The peer's PROOF: it holds the key, or the connection goes. */
static bool take_proof(struct conn *c, char *why, size_t wl)
{
    struct link_auth *a = c->auth;
    if (auth_hs_check(&a->hs, (const struct auth_proof *)c->body, &a->s) < 0) {
        snprintf(why, wl, "%.63s failed to prove it holds the cluster key (wrong key, or not a daemon of "
                 "this cluster)", a->hs.peer.name);
        return false;
    }
    a->phase = AP_DONE;
    send_hello(c);
    return true;
}

static bool take_ctl(struct conn *c, char *why, size_t wl)
{
    struct postal *d = c->set->d;
    const struct link_addr *a = (const void *)c->body;
    switch (c->rh.type) {
    case LINK_AUTH:
        return take_auth(c, why, wl);
    case LINK_PROOF:
        return take_proof(c, why, wl);
    case LINK_HELLO:
        return take_hello(c, why, wl);
    case LINK_ANNOUNCE:
        if (!jobs_may_send(d, a->uid, a->job)) {
            if (!c->refused_announce) { /* one line per connection */
                uid_t owner = 0;
                c->refused_announce = true;
                jobs_owner(d, a->job, &owner);
                log_warn("ignored ANNOUNCE of %u:%u (uid %u) from %s: job %u belongs to uid %u here", a->job,
                         a->rank, a->uid, c->peer, a->job, (unsigned)owner);
            }
            break;
        }
        location_learn(d, a->job, a->rank, c->node);
        break;
    case LINK_GONE:
        location_gone(d, a->job, a->rank, c->node);
        break;
    case LINK_LOCATE: {
        struct mbox *m = mbox_find(d, a->job, a->rank);
        struct link_addr ans = {a->job, a->rank, m ? (uint32_t)m->uid : 0, 0};
        if (m && !m->closing)
            link_send_ctl(d, c->node, LINK_ANNOUNCE, &ans, sizeof ans);
        else
            link_send_ctl(d, c->node, LINK_NOT_HERE, &ans, sizeof ans);
        break;
    }
    default: /* NOT_HERE, PING: nothing to do (the locator retries) */
        break;
    }
    return true;
}

static void rx_resume(struct waiter *w)
{
    struct conn *c = (struct conn *)((char *)w - offsetof(struct conn, rx_wait));
    c->stalled_on = NULL;
    c->rx = RX_TARGET; /* try to reserve again */
    event_add(c->rev, NULL);
    event_active(c->rev, EV_READ, 0);
}

/* Pick the inbox for the DATA frame whose link_data is in c->rd.
 * Returns false if the link must wait for room. */
static bool rx_target(struct conn *c, char *why, size_t wl, bool *bad)
{
    struct postal *d = c->set->d;
    const struct link_data *ld = &c->rd;
    *bad = false;
    if (ld->len != c->rh.len - sizeof *ld || (ld->kind != PKT_DATA && ld->kind != PKT_NOP)) {
        snprintf(why, wl, "DATA frame with inconsistent length %u / kind %u", ld->len, ld->kind);
        *bad = true;
        return false;
    }
    /* An exiled mailbox still takes packets: exile.c forwards them. */
    struct mbox *m = mbox_find_any(d, ld->dst_job, ld->dst_rank);
    rx_unhold(c);
    if (m && !jobs_may_send(d, ld->src_uid, ld->dst_job)) {
        if (!c->refused) { /* one line per connection */
            c->refused = true;
            struct dicom_pkt k = {.src_job = ld->src_job, .src_rank = ld->src_rank, .dst_job = ld->dst_job,
                                  .dst_rank = ld->dst_rank};
            postal_may_enter(d, ld->src_uid, &k, c->peer);
        }
        return true; /* discard the payload */
    }
    if (!m || m->closing || m->broken || ld->len > ring_max_payload(m->inbox.size)) {
        if (!m)
            log_debug("DATA for %u:%u, which is not here: dropped", ld->dst_job, ld->dst_rank);
        else if (!m->closing && !m->broken)
            log_error("DATA of %u bytes for %u:%u exceeds its inbox: dropped", ld->len, ld->dst_job, ld->dst_rank);
        return true; /* discard the payload */
    }
    int rc = m->kept ? -EAGAIN : mbox_reserve(m, ld->len, &c->rx_resv);
    if (rc == -EPROTO)
        return true; /* its owner broke the inbox: it is being closed */
    if (rc < 0) {
        c->rx = RX_STALLED;
        event_del(c->rev);
        c->rx_wait.resume = rx_resume;
        c->stalled_on = m;
        mbox_wait_inbox(m, &c->rx_wait, ld->len);
        return false;
    }
    rx_hold(c, m);
    pkt_fill(c->rx_resv.pkt, ld->src_job, ld->src_rank, ld->dst_job, ld->dst_rank, ld->seq, ld->tag, ld->kind,
             ld->len);
    return true;
}

/* Drop the reserved record: publish it as a NOP with seq 0 (always a
 * duplicate), which breaks no sender's sequence. */
static void rx_cancel(struct conn *c)
{
    c->rx_resv.pkt->kind = PKT_NOP;
    c->rx_resv.pkt->len = 0;
    c->rx_resv.pkt->seq = 0;
    if (ring_commit(&c->rx_mbox->inbox, &c->rx_resv))
        mbox_ring_owner(c->rx_mbox);
    rx_unhold(c);
}

static void rx_complete_data(struct conn *c)
{
    struct mbox *m = c->rx_mbox;
    if (m) {
        if (ring_commit(&m->inbox, &c->rx_resv))
            mbox_ring_owner(m);
        m->delivered_in++;
    }
    c->frames_in++;
    rx_reset(c);
}

/* A whole frame is in and, on an authenticated link, its MAC was right. */
static bool rx_deliver(struct conn *c, char *why, size_t wl)
{
    if (c->rh.type == LINK_DATA) {
        rx_complete_data(c);
        return true;
    }
    if (!take_ctl(c, why, wl))
        return false;
    c->frames_in++;
    rx_reset(c);
    return true;
}

/* The frame's bytes are in: its MAC next, or deliver it. */
static bool rx_end(struct conn *c, char *why, size_t wl)
{
    if (c->auth && c->auth->rmac_on) {
        c->auth->rmac_on = false;
        c->rgot = 0;
        c->rx = RX_TAG;
        return true;
    }
    return rx_deliver(c, why, wl);
}

static void on_readable(evutil_socket_t fd, short what, void *arg)
{
    struct conn *c = arg;
    char why[160];
    int r;
    (void)fd;
    (void)what;
    postal_busy(c->set->d);
    c->drained = false;
    if (c->dead) {
        snprintf(why, sizeof why, "%s", c->dead_why);
        conn_close(c, why);
        return;
    }
    for (;;) {
        switch (c->rx) {
        case RX_HDR:
            if ((r = read_some(c, &c->rh, sizeof c->rh)) <= 0)
                return;
            if (!hdr_ok(c, why, sizeof why))
                goto bad;
            if (c->auth && c->auth->phase == AP_DONE) {
                auth_mac_begin(&c->auth->s, false, &c->auth->rmac);
                auth_mac_update(&c->auth->rmac, &c->rh, sizeof c->rh);
                c->auth->rmac_on = true;
            }
            c->rgot = 0;
            c->rx = c->rh.type == LINK_DATA ? RX_DATA_HDR : RX_BODY;
            break;
        case RX_BODY:
            if ((r = read_some(c, c->body, c->rh.len)) <= 0)
                return;
            if (!rx_end(c, why, sizeof why))
                goto bad;
            break;
        case RX_DATA_HDR:
            if ((r = read_some(c, &c->rd, sizeof c->rd)) <= 0)
                return;
            c->rx = RX_TARGET;
            if (c->auth) { /* its header's MAC first */
                c->auth->rmac_on = false;
                c->rgot = 0;
                c->rx = RX_HTAG;
            }
            break;
        case RX_HTAG:
            if ((r = read_some(c, c->auth->rtag, AUTH_TAG)) <= 0)
                return;
            if (!auth_mac_verify(&c->auth->rmac, c->auth->rtag)) {
                snprintf(why, sizeof why, "DATA header with a wrong MAC (forged, replayed or corrupted)");
                goto bad;
            }
            c->rx = RX_TARGET;
            break;
        case RX_TARGET: {
            bool badf;
            if (!rx_target(c, why, sizeof why, &badf)) {
                if (badf)
                    goto bad;
                return; /* stalled until the inbox has room */
            }
            c->rgot = 0;
            c->rx = RX_PAYLOAD;
            if (c->auth) {
                auth_mac_begin(&c->auth->s, false, &c->auth->rmac);
                c->auth->rmac_on = true;
            }
            if (c->rd.len == 0 && !rx_end(c, why, sizeof why))
                goto bad;
            break;
        }
        case RX_PAYLOAD: {
            size_t len = c->rd.len;
            r = c->rx_mbox ? read_some(c, pkt_payload(c->rx_resv.pkt), len) : read_discard(c, len);
            if (r <= 0)
                return;
            if (!rx_end(c, why, sizeof why))
                goto bad;
            break;
        }
        case RX_TAG:
            if ((r = read_some(c, c->auth->rtag, AUTH_TAG)) <= 0)
                return;
            if (!auth_mac_verify(&c->auth->rmac, c->auth->rtag)) {
                if (c->rh.type != LINK_DATA) {
                    snprintf(why, sizeof why, "frame type %u with a wrong MAC (forged, replayed or corrupted)",
                             c->rh.type);
                    goto bad;
                }
                log_error("link from %s (%s): DATA for %u:%u with a wrong payload MAC (changed in memory at "
                          "either end, or on the way): dropped", node_name(c->set, c->node), c->peer,
                          c->rd.dst_job, c->rd.dst_rank);
                if (c->rx_mbox)
                    rx_cancel(c);
            }
            if (!rx_deliver(c, why, sizeof why))
                goto bad;
            break;
        case RX_STALLED:
            return;
        }
    }
bad:
    log_error("link from %s (%s): %s: connection closed", node_name(c->set, c->node), c->peer, why);
    conn_close(c, why);
}

/* -------------------------------------------------------- connections --- */

/* admit: an accepted connection sent no HELLO in time. */
static void handshake_expired(void *arg)
{
    struct conn *c = arg;
    c->ticket = NULL;
    conn_close(c, "no handshake in time");
}

static void conn_free(struct conn *c)
{
    admit_done(c->ticket);
    if (c->rev)
        event_free(c->rev);
    if (c->wev)
        event_free(c->wev);
    if (c->fd >= 0)
        close(c->fd);
    if (c->auth) {
        auth_mac_abort(&c->auth->rmac);
        auth_session_clear(&c->auth->s);
        sodium_memzero(c->auth, sizeof *c->auth);
    }
    free(c->auth);
    free(c);
}

static void conn_close(struct conn *c, const char *why)
{
    struct link_set *s = c->set;
    struct postal *d = s->d;
    if (c->rx_mbox && (c->rx == RX_PAYLOAD || c->rx == RX_TAG))
        rx_cancel(c); /* half-read: the sender's daemon never consumed it
                       * from its outbox (it was not fully written) and
                       * sends it again */
    rx_unhold(c);
    if (c->node >= 0 && s->peers[c->node].c == c) {
        struct peer *p = &s->peers[c->node];
        p->c = NULL;
        p->down_since_ms = migrd_now_ms();
        p->frames_in += c->frames_in;
        p->frames_out += c->frames_out;
        p->bytes_in += c->bytes_in;
        p->bytes_out += c->bytes_out;
        log_warn("link to %s (%s) is down: %s", node_name(s, c->node), c->peer, why);
        /* Unsent frames: records go back to their outboxes (re-routed when
         * the link is back), copies go to the backlog. */
        struct txitem *it = c->q;
        c->q = NULL;
        while (it) {
            struct txitem *next = it->next;
            if (it->m) {
                item_done(it, false);
            } else if (it->hdr.type == LINK_DATA) {
                it->done = 0;
                it->next = NULL;
                *p->backlog_tail = it;
                p->backlog_tail = &it->next;
            } else {
                item_done(it, false);
            }
            it = next;
        }
        /* Back off, unless the link had been up a while: a peer that
         * accepts and drops at once is not hammered. */
        if (migrd_now_ms() - p->up_since_ms >= LINK_STABLE_MS)
            p->retry_ms = LINK_RETRY_MIN_MS;
        if (c->node > d->cl->self)
            schedule_retry(d, c->node);
    } else {
        log_debug("connection from %s closed: %s", c->peer, why);
        while (c->q) {
            struct txitem *it = c->q;
            c->q = it->next;
            item_done(it, false);
        }
        /* Ours, and it never got as far as HELLO: try again later. */
        if (c->outgoing && c->node >= 0 && !s->peers[c->node].c && d->links)
            schedule_retry(d, c->node);
    }
    /* Nothing may resume this connection any more. */
    if (c->stalled_on)
        mbox_unwait(c->stalled_on, &c->rx_wait);
    conn_free(c);
}

static struct conn *conn_new(struct link_set *s, int fd, int node, const char *peer,
                             const struct sockaddr_storage *addr)
{
    struct conn *c = calloc(1, sizeof *c);
    if (!c)
        return NULL;
    if (s->d->cl->secure && !(c->auth = calloc(1, sizeof *c->auth))) {
        free(c);
        return NULL;
    }
    c->set = s;
    c->fd = fd;
    c->node = node;
    c->outgoing = node >= 0;
    if (addr)
        c->addr = *addr;
    c->q_tail = &c->q;
    snprintf(c->peer, sizeof c->peer, "%s", peer);
    c->rev = event_new(s->d->base, fd, EV_READ | EV_PERSIST, on_readable, c);
    c->wev = event_new(s->d->base, fd, EV_WRITE | EV_PERSIST, on_writable, c);
    if (!c->rev || !c->wev || event_add(c->rev, NULL) < 0) {
        c->fd = -1;
        conn_free(c);
        return NULL;
    }
    int one = 1, buf = LINK_SOCKBUF;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &buf, sizeof buf);
    setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &buf, sizeof buf);
    return c;
}

static void send_hello(struct conn *c)
{
    struct postal *d = c->set->d;
    struct link_hello h = {.node_index = (uint32_t)d->cl->self};
    snprintf(h.node, sizeof h.node, "%s", cluster_self_name(d->cl));
    snprintf(h.kernel, sizeof h.kernel, "%s", d->cl->kernel);
    if (conn_send(c, LINK_HELLO, &h, sizeof h) < 0) {
        snprintf(c->dead_why, sizeof c->dead_why, "out of memory");
        c->dead = true;
        event_active(c->rev, EV_READ, 0);
    }
}

/* The first frame of a connection: AUTH when the cluster has a key. */
static void send_first(struct conn *c)
{
    struct postal *d = c->set->d;
    if (!c->auth) {
        send_hello(c);
        return;
    }
    auth_hs_begin(&c->auth->hs, d->cl->key, AUTH_LINK, c->outgoing, (uint32_t)d->cl->self,
                  cluster_self_name(d->cl));
    if (conn_send(c, LINK_AUTH, &c->auth->hs.mine, sizeof c->auth->hs.mine) < 0) {
        snprintf(c->dead_why, sizeof c->dead_why, "out of memory");
        c->dead = true;
        event_active(c->rev, EV_READ, 0);
    }
}

static void on_retry(evutil_socket_t fd, short what, void *arg);

static void schedule_retry(struct postal *d, int node)
{
    struct peer *p = &d->links->peers[node];
    struct timeval tv = {p->retry_ms / 1000, (p->retry_ms % 1000) * 1000};
    p->connecting = false;
    if (!p->retry)
        p->retry = evtimer_new(d->base, on_retry, p);
    if (p->retry)
        evtimer_add(p->retry, &tv);
    p->retry_ms = p->retry_ms * 2 > LINK_RETRY_MAX_MS ? LINK_RETRY_MAX_MS : p->retry_ms * 2;
}

struct pending_connect {
    struct postal *d;
    int node, fd;
    struct event *ev;
};

static void on_connected(evutil_socket_t fd, short what, void *arg)
{
    struct pending_connect *pc = arg;
    struct postal *d = pc->d;
    int node = pc->node, err = 0;
    socklen_t el = sizeof err;
    (void)what;
    event_free(pc->ev);
    free(pc);
    if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &el) < 0)
        err = errno;
    if (err) {
        log_debug("connect to %s (%s): %s", d->cl->map.nodes[node].name, d->cl->map.nodes[node].addr, strerror(err));
        close(fd);
        schedule_retry(d, node);
        return;
    }
    struct conn *c = conn_new(d->links, fd, node, d->cl->map.nodes[node].addr, NULL);
    if (!c) {
        close(fd);
        schedule_retry(d, node);
        return;
    }
    send_first(c); /* still "connecting" until its HELLO */
}

static void start_connect(struct postal *d, int node)
{
    struct peer *p = &d->links->peers[node];
    const struct cfg_node *n = &d->cl->map.nodes[node];
    struct sockaddr_storage ss;
    socklen_t sl;
    if (p->connecting || p->c)
        return;
    p->connecting = true;
    int rc = node_sockaddr(n, n->port, &ss, &sl);
    if (rc) {
        log_error("address of node %s (%s): %s", n->name, n->addr, gai_strerror(rc));
        schedule_retry(d, node);
        return;
    }
    int fd = socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        log_error("socket for node %s: %s", n->name, strerror(errno));
        schedule_retry(d, node);
        return;
    }
    if (connect(fd, (struct sockaddr *)&ss, sl) < 0 && errno != EINPROGRESS) {
        log_debug("connect to %s (%s): %s", n->name, n->addr, strerror(errno));
        close(fd);
        schedule_retry(d, node);
        return;
    }
    struct pending_connect *pc = calloc(1, sizeof *pc);
    if (pc) {
        *pc = (struct pending_connect){d, node, fd, NULL};
        pc->ev = event_new(d->base, fd, EV_WRITE, on_connected, pc);
    }
    if (!pc || !pc->ev || event_add(pc->ev, NULL) < 0) {
        free(pc);
        close(fd);
        schedule_retry(d, node);
    }
}

static void on_retry(evutil_socket_t fd, short what, void *arg)
{
    struct peer *p = arg;
    (void)fd;
    (void)what;
    start_connect(p->set->d, p->node);
}

static void on_accept(evutil_socket_t lfd, short what, void *arg)
{
    struct link_set *s = arg;
    (void)what;
    for (;;) {
        struct sockaddr_storage ss;
        socklen_t sl = sizeof ss;
        int fd = accept4(lfd, (struct sockaddr *)&ss, &sl, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            if (admit_accept_failed(&s->admit, errno))
                return;
            continue;
        }
        char host[64] = "?", serv[16] = "";
        getnameinfo((struct sockaddr *)&ss, sl, host, sizeof host, serv, sizeof serv,
                    NI_NUMERICHOST | NI_NUMERICSERV);
        char peer[96];
        snprintf(peer, sizeof peer, "%s:%s", host, serv);
        if (!node_addr_known(&s->d->cl->map, &ss)) {
            log_warn("link port: connection from %s, which is no node's address in the cluster map: refused",
                     peer);
            close(fd);
            continue;
        }
        struct conn *c = conn_new(s, fd, -1, peer, &ss);
        if (!c) {
            close(fd);
            continue;
        }
        if (!(c->ticket = admit_take(&s->admit, peer, fd, handshake_expired, c))) {
            conn_close(c, "too many connections wait for their handshake");
            continue;
        }
        send_first(c);
    }
}

/* Refuse what waited too long for a node that stays down. */
static void on_tick(evutil_socket_t fd, short what, void *arg)
{
    struct link_set *s = arg;
    uint64_t now = migrd_now_ms();
    (void)fd;
    (void)what;
    for (int i = 0; i < s->d->cl->map.nnodes; i++) {
        struct peer *p = &s->peers[i];
        if (p->c || !p->backlog || now - p->down_since_ms < LINK_DOWN_TIMEOUT_MS)
            continue;
        char why[128];
        snprintf(why, sizeof why, "node %s unreachable for %d s", s->d->cl->map.nodes[i].name,
                 LINK_DOWN_TIMEOUT_MS / 1000);
        while (p->backlog) {
            struct txitem *it = p->backlog;
            p->backlog = it->next;
            postal_unreachable(s->d, it->heap, why);
            item_done(it, false);
        }
        p->backlog_tail = &p->backlog;
    }
}

static int listen_on(struct postal *d)
{
    const struct cfg_node *n = &d->cl->map.nodes[d->cl->self];
    int fd = node_listen(n, n->port);
    if (fd < 0 && fd != -EINVAL)
        log_error("cannot listen on %s:%u (node %s): %s", n->addr, n->port, n->name, strerror(-fd));
    return fd;
}

int link_init(struct postal *d)
{
    struct link_set *s = calloc(1, sizeof *s);
    if (!s)
        return -ENOMEM;
    d->links = s;
    s->d = d;
    s->lfd = -1;
    s->peers = calloc((size_t)d->cl->map.nnodes, sizeof *s->peers);
    if (!s->peers)
        return -ENOMEM;
    for (int i = 0; i < d->cl->map.nnodes; i++) {
        s->peers[i].set = s;
        s->peers[i].node = i;
        s->peers[i].backlog_tail = &s->peers[i].backlog;
        s->peers[i].retry_ms = LINK_RETRY_MIN_MS;
        s->peers[i].down_since_ms = migrd_now_ms();
    }
    if (d->cl->map.nnodes == 1)
        return 0; /* a one-node cluster needs no link port */
    int fd = listen_on(d);
    if (fd < 0)
        return fd;
    s->lfd = fd;
    s->lev = event_new(d->base, fd, EV_READ | EV_PERSIST, on_accept, s);
    struct timeval tv = {1, 0};
    s->tick = event_new(d->base, -1, EV_PERSIST, on_tick, s);
    if (!s->lev || !s->tick || event_add(s->lev, NULL) < 0 || event_add(s->tick, &tv) < 0 ||
        admit_init(&s->admit, d->base, "link port", LINK_MAX_PENDING, s->lev) < 0)
        return -ENOMEM;
    /* The node listed first connects; the other one accepts. */
    for (int i = d->cl->self + 1; i < d->cl->map.nnodes; i++)
        start_connect(d, i);
    return 0;
}

void link_fini(struct postal *d)
{
    struct link_set *s = d->links;
    if (!s)
        return;
    for (int i = 0; s->peers && i < d->cl->map.nnodes; i++) {
        struct peer *p = &s->peers[i];
        if (p->c) {
            struct conn *c = p->c;
            p->c = NULL;
            c->node = -1;
            conn_close(c, "shutting down");
        }
        while (p->backlog) {
            struct txitem *it = p->backlog;
            p->backlog = it->next;
            item_done(it, false);
        }
        if (p->retry)
            event_free(p->retry);
    }
    admit_fini(&s->admit);
    if (s->lev)
        event_free(s->lev);
    if (s->tick)
        event_free(s->tick);
    if (s->lfd >= 0)
        close(s->lfd);
    free(s->peers);
    free(s);
    d->links = NULL;
}

void link_status(struct postal *d, int node, struct ctl_status_node *out)
{
    struct peer *p = &d->links->peers[node];
    out->connected = p->c != NULL;
    out->frames_in = p->frames_in + (p->c ? p->c->frames_in : 0);
    out->frames_out = p->frames_out + (p->c ? p->c->frames_out : 0);
    out->bytes_in = p->bytes_in + (p->c ? p->c->bytes_in : 0);
    out->bytes_out = p->bytes_out + (p->c ? p->c->bytes_out : 0);
}
