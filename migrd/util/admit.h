/*
 * admit.h -- bounds on a listening port of migrd.
 *
 * Owns: how many accepted connections may wait at once for their handshake
 * (a peer that has not proved who it is holds a descriptor and memory for
 * nothing), how long one may wait (ADMIT_HANDSHAKE_MS: then it is dropped,
 * with a line naming it), and what happens when the daemon is out of
 * descriptors: the listener pauses for a second instead of spinning on
 * EMFILE.  Refusals are logged at most once a second, with the number left
 * unsaid.  Calls only the log and the clock; the link port, the migration
 * port and the control socket use it.
 */
#ifndef MIGRD_ADMIT_H
#define MIGRD_ADMIT_H

#include <stdbool.h>
#include <stdint.h>

struct event;
struct event_base;

#define ADMIT_HANDSHAKE_MS 10000  /* from accept to a proved handshake */

struct admit {
    struct event_base *base;
    const char *port;             /* "link port", for messages          */
    unsigned pending, max_pending;
    struct event *listener;       /* paused when out of descriptors     */
    struct event *resume;
    uint64_t last_log_ms;
    unsigned unlogged;
};

/* An accepted connection waiting for its handshake. */
struct admit_ticket;

/* listener: the port's accept event (re-added after a pause). */
int admit_init(struct admit *a, struct event_base *base, const char *port, unsigned max_pending,
               struct event *listener);
void admit_fini(struct admit *a);
/* accept() failed with err: true if the accept loop must stop (EAGAIN, or
 * out of descriptors: the listener is paused). */
bool admit_accept_failed(struct admit *a, int err);
/* Connection fd from peer was accepted: its ticket, or NULL if too many
 * wait already (logged; close it).  If it has not proved itself within
 * ADMIT_HANDSHAKE_MS, the drop is logged, the ticket ends and expired(arg)
 * is called to close it. */
struct admit_ticket *admit_take(struct admit *a, const char *peer, int fd, void (*expired)(void *arg),
                                void *arg);
/* The connection proved itself or closed (NULL: nothing). */
void admit_done(struct admit_ticket *t);
/* May a refusal be logged now (at most one line a second)?  *left_out:
 * the refusals not logged since the last line. */
bool admit_may_log(struct admit *a, unsigned *left_out);

#endif
