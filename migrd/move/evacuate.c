/*
 * evacuate.c -- at a stop, the guests leave first (migrate.h).
 *
 * Owns: the moves that take every process running here with its home
 * elsewhere to another node before migrd stops (a restart, `systemctl
 * stop`): to its home, or, if that refuses or cannot be reached, to each
 * other node in turn; a process back at its home here goes to another
 * node.  Without them a guest would lose its relays (migrd holds their
 * near ends) and run on as an orphan.  The stop waits for the
 * last of them, and for the processes of this home that are between two
 * locations (what their anchors read here is not sent yet), at most
 * EVACUATE_MS.
 */
#include <event2/event.h>
#include <stdlib.h>

#include "migrd/cluster/cluster.h"
#include "migrd/util/log.h"
#include "forward.h"
#include "migrate.h"
#include "migrate_proc.h"
#include "move.h"

#define EVACUATE_MS 4000

struct evacuation {
    struct move *d;
    unsigned left;            /* guests whose moves have not ended     */
    struct event *timer;      /* the bound on the whole evacuation     */
    struct event *linger;     /* waiting for the last frames home      */
    void (*done)(void *arg);
    void *arg;
};

struct evac_one {
    struct evacuation *e;
    pid_t pid;
    int home;
    int tried;                /* the nodes tried, in order: home first */
};

static int try_next(struct evac_one *o, struct mproc *p);

static void evac_free(struct evacuation *e)
{
    if (e->timer)
        event_free(e->timer);
    if (e->linger)
        event_free(e->linger);
    free(e);
}

static void evac_end(struct evacuation *e)
{
    void (*done)(void *) = e->done;
    void *arg = e->arg;
    evac_free(e);
    done(arg);
}

static void evac_timeout(evutil_socket_t fd, short what, void *arg)
{
    struct evacuation *e = arg;
    (void)fd;
    (void)what;
    log_warn("stopping: %u guest(s) not moved away within %d ms: stopping without them", e->left, EVACUATE_MS);
    e->done(e->arg);
    e->done = NULL; /* the moves still under way end in migrate_out_fini */
}

/* A process of this home between two locations: the input its anchor
 * read here waits for the new one, and would be lost with the hand-over
 * to its stub (migrate_hold_all). */
static bool anchors_between(struct move *d)
{
    for (struct mproc *p = mproc_first(d); p; p = p->next)
        if (p->is_home && p->anchor && !p->here && p->state != MP_EXITED && !fwd_anchor_in_service(p->anchor))
            return true;
    return false;
}

/* Every move has ended: once the connections the guests had to their
 * homes have delivered their last frames (END), and the processes of this
 * home are in service where they went, the stop goes on. */
static void settled(evutil_socket_t fd, short what, void *arg)
{
    static const struct timeval tick = {0, 20000};
    struct evacuation *e = arg;
    (void)fd;
    (void)what;
    if ((fwd_ep_lingering() || anchors_between(e->d)) && e->done && event_add(e->linger, &tick) == 0)
        return;
    if (e->done)
        evac_end(e);
    else
        evac_free(e);
}

static void one_ended(struct evac_one *o)
{
    struct evacuation *e = o->e;
    free(o);
    if (--e->left == 0)
        settled(-1, 0, e);
}

static void moved(struct move *d, int rc, const struct migrate_result *res, struct fconn *home, void *arg)
{
    struct evac_one *o = arg;
    (void)home;
    if (rc == 0) {
        log_info("stopping: pid %d moved to %s", o->pid, res->message);
        one_ended(o);
        return;
    }
    log_warn("stopping: pid %d could not move: %s", o->pid, res->message);
    struct mproc *p = mproc_find(d, o->home, o->pid);
    if (!p || !p->here || try_next(o, p) < 0)
        one_ended(o);
}

/* The next node to try (its home first, then the others in map order):
 * 0 when a move started, -1 when none is left. */
static int try_next(struct evac_one *o, struct mproc *p)
{
    struct move *d = o->e->d;
    while (o->tried <= d->cl->map.nnodes) {
        int k = o->tried++, n = k == 0 ? o->home : k - 1;
        struct migrate_result res;
        if (n == d->cl->self || (k > 0 && n == o->home))
            continue;
        if (migrate_out_start(d, p, d->cl->map.nodes[n].name, 0, CTL_MOVE_EAGER, 0, moved, o, &res) == 0)
            return 0;
        log_warn("stopping: pid %d cannot move to %s: %s", o->pid, d->cl->map.nodes[n].name, res.message);
    }
    return -1;
}

int migrate_evacuate(struct move *d, void (*done)(void *arg), void *arg)
{
    struct evacuation *e = calloc(1, sizeof *e);
    const struct timeval tv = {EVACUATE_MS / 1000, (EVACUATE_MS % 1000) * 1000};
    d->stopping = true;
    if (!e || !(e->timer = evtimer_new(d->base, evac_timeout, e)) ||
        !(e->linger = evtimer_new(d->base, settled, e)) || evtimer_add(e->timer, &tv) < 0) {
        log_error("stopping: cannot move the guests away: out of memory");
        if (e)
            evac_free(e);
        return 0;
    }
    e->d = d;
    e->done = done;
    e->arg = arg;
    for (struct mproc *p = mproc_first(d); p; p = p->next) {
        struct evac_one *o;
        /* a process back at home goes too: its home then hands what it
         * holds of it to its stub (migrate_hold_all) */
        if ((p->is_home && !p->anchor) || !p->here || !p->child || p->out || p->state != MP_RUNNING)
            continue;
        if (!(o = calloc(1, sizeof *o))) {
            log_error("stopping: pid %d: cannot move it away: out of memory", p->pid);
            continue;
        }
        *o = (struct evac_one){.e = e, .pid = p->pid, .home = p->home};
        e->left++;
        if (try_next(o, p) < 0) {
            log_error("stopping: pid %d has no node to go to: it is lost", p->pid);
            e->left--;
            free(o);
        }
    }
    if (e->left == 0) {
        if (!anchors_between(d)) {
            evac_free(e);
            return 0;
        }
        /* a process of this home is moving between two other nodes */
        event_active(e->linger, EV_TIMEOUT, 0);
        return 1;
    }
    log_info("stopping: moving %u guest(s) away first", e->left);
    return (int)e->left;
}
