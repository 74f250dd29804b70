/*
 * mig_auth.c -- see mig_auth.h.
 */
#include "mig_auth.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "migrd/cluster/cluster.h"
#include "migrd/engine/engine.h"
#include "migrate_proto.h"

/* Blocking sockets with a session: few at a time (a move in or out, a
 * forwarding connection being set up).  The event loop and the threads
 * that read incoming moves (migrate_recv.c) share the table. */
#define MIG_AUTH_SLOTS 64
static struct {
    int fd;
    struct auth_session *s;
} slots[MIG_AUTH_SLOTS];
static pthread_mutex_t slots_lock = PTHREAD_MUTEX_INITIALIZER;

static int slot_of(int fd)
{
    for (int i = 0; i < MIG_AUTH_SLOTS; i++)
        if (slots[i].s && slots[i].fd == fd)
            return i;
    return -1;
}

struct auth_session *mig_auth_of(int fd)
{
    pthread_mutex_lock(&slots_lock);
    int i = slot_of(fd);
    struct auth_session *s = i < 0 ? NULL : slots[i].s;
    pthread_mutex_unlock(&slots_lock);
    return s;
}

struct auth_session *mig_auth_take(int fd)
{
    pthread_mutex_lock(&slots_lock);
    int i = slot_of(fd);
    struct auth_session *s = i < 0 ? NULL : slots[i].s;
    if (i >= 0)
        slots[i].s = NULL;
    pthread_mutex_unlock(&slots_lock);
    return s;
}

static void session_free(struct auth_session *s)
{
    if (s)
        auth_session_clear(s);
    free(s);
}

int mig_auth_give(int fd, struct auth_session *s)
{
    int rc = s ? -1 : 0;
    session_free(mig_auth_take(fd));
    pthread_mutex_lock(&slots_lock);
    for (int i = 0; s && i < MIG_AUTH_SLOTS; i++)
        if (!slots[i].s) {
            slots[i].fd = fd;
            slots[i].s = s;
            rc = 0;
            break;
        }
    pthread_mutex_unlock(&slots_lock);
    return rc;
}

void mig_close(int fd)
{
    session_free(mig_auth_take(fd));
    close(fd);
}

int mig_auth_connect(int fd, const struct cluster *cl, int node, enum auth_purpose purpose, char *why,
                     size_t wl)
{
    struct auth_hs hs;
    struct auth_hello peer;
    struct auth_proof mine, theirs;
    const char *name = cl->map.nodes[node].name;
    if (!cl->secure)
        return 0;
    auth_hs_begin(&hs, cl->key, purpose, true, (uint32_t)cl->self, cluster_self_name(cl));
    if (mig_write_all(fd, &hs.mine, sizeof hs.mine) < 0 || mig_read_all(fd, &peer, sizeof peer) < 0) {
        snprintf(why, wl, "authenticating with %s: %s", name, errno == EAGAIN ? "timed out" : strerror(errno));
        return -1;
    }
    if (auth_hs_peer(&hs, &peer, why, wl) < 0)
        return -1;
    int got = auth_peer_node(&hs, &cl->map, cl->self, why, wl);
    if (got < 0)
        return -1;
    if (got != node) {
        snprintf(why, wl, "connected to %s, but it says it is %.63s", name, hs.peer.name);
        return -1;
    }
    auth_hs_proof(&hs, &mine);
    if (mig_write_all(fd, &mine, sizeof mine) < 0 || mig_read_all(fd, &theirs, sizeof theirs) < 0) {
        snprintf(why, wl, "authenticating with %s: %s (does it hold the same cluster key?)", name,
                 errno == EAGAIN ? "timed out" : strerror(errno));
        return -1;
    }
    struct auth_session *s = calloc(1, sizeof *s);
    if (!s) {
        snprintf(why, wl, "out of memory");
        return -1;
    }
    if (auth_hs_check(&hs, &theirs, s) < 0) {
        free(s);
        snprintf(why, wl, "%s failed to prove it holds the cluster key", name);
        return -1;
    }
    if (mig_auth_give(fd, s) < 0) {
        session_free(s);
        snprintf(why, wl, "too many authenticated connections at once");
        return -1;
    }
    return 0;
}

static void image_tap(void *arg, const void *p, size_t n)
{
    auth_mac_update(arg, p, n);
}

void mig_image_auth_begin(int fd, bool tx, struct mig_image_auth *a)
{
    a->s = mig_auth_of(fd);
    if (!a->s)
        return;
    auth_mac_begin(a->s, tx, &a->m);
    engine_image_tap(image_tap, &a->m);
}

int mig_image_auth_end(int fd, bool tx, struct mig_image_auth *a, bool io_ok)
{
    uint8_t tag[AUTH_TAG];
    if (!a->s)
        return io_ok ? 0 : -1;
    engine_image_tap(NULL, NULL);
    if (!io_ok) {
        auth_mac_abort(&a->m);
        return -1;
    }
    if (tx)
        return auth_mac_final(&a->m, tag) < 0 ? -1 : mig_write_all(fd, tag, sizeof tag);
    if (mig_read_all(fd, tag, sizeof tag) < 0) {
        auth_mac_abort(&a->m);
        return -1;
    }
    if (!auth_mac_verify(&a->m, tag)) {
        errno = EBADMSG;
        return -1;
    }
    return 0;
}
