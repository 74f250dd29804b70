/*
 * forward_conn.h -- one framed, non-blocking connection of the migration
 * port inside migrd's event loop (forwarding channels, and the first frame
 * of every accepted connection).
 *
 * Owns: buffering, frame parsing with the checks of migrate_proto.h, and
 * the socket's life.  Frames are handed to on_frame in order; a bad frame or
 * the peer closing calls on_close once, after which the owner frees it.
 * In a cluster with a key (cluster/auth.h): the accepting side's handshake
 * (fconn_accept), and the MAC after every frame, sent and checked -- a
 * frame with a wrong one closes the connection before on_frame sees it.
 */
#ifndef MIGRD_FORWARD_CONN_H
#define MIGRD_FORWARD_CONN_H

#include <stdint.h>

#include "migrd/cluster/auth.h"
#include "migrate_proto.h"

struct evbuffer;
struct move;
struct fconn;

typedef void (*fconn_frame_fn)(struct fconn *c, const struct mig_hdr *h, const uint8_t *body);
typedef void (*fconn_close_fn)(struct fconn *c, const char *why);

struct fconn {
    struct move *d;
    struct bufferevent *bev;
    int fd;
    char peer[64];
    fconn_frame_fn on_frame;
    fconn_close_fn on_close;
    void *owner;
    uint32_t gen;
    int closed;          /* on_close was called                  */
    int stop;            /* owner asked to stop parsing frames   */
    int close_after_auth; /* closed when flushed, once authenticated */
    int hold_close;      /* parked (stop): a close by the peer waits
                            for fconn_resume, its frames kept      */
    int close_held;      /* ... and it came                      */
    struct fconn_auth *auth;   /* accepted, not yet proved        */
    struct auth_session *sess; /* authenticated: MAC on each frame */
    int peer_node;       /* the node it proved to be; -1: none  */
    unsigned purpose;    /* enum auth_purpose it proved for; 0: insecure */
    struct admit_ticket *ticket; /* accepted, no frame yet        */
};

/* A connection (its session, if any, from mig_auth_connect or
 * fconn_take_fd: mig_auth.h). */
struct fconn *fconn_new(struct move *d, int fd, const char *peer, fconn_frame_fn on_frame,
                        fconn_close_fn on_close, void *owner);
/* A connection accepted on the migration port: in a cluster with a key
 * the peer must prove itself before any frame reaches on_frame.  Until
 * its first frame it counts in `admit` and has ADMIT_HANDSHAKE_MS to send
 * it; NULL when admit refuses it (the caller closes fd). */
struct admit;
struct fconn *fconn_accept(struct move *d, int fd, const char *peer, struct admit *admit,
                           fconn_frame_fn on_frame, fconn_close_fn on_close, void *owner);
/* A connection we made to node `node` for `purpose`: in a cluster with a
 * key both prove themselves first (frames sent meanwhile wait). */
struct fconn *fconn_connect(struct move *d, int fd, int node, enum auth_purpose purpose, const char *peer,
                            fconn_frame_fn on_frame, fconn_close_fn on_close, void *owner);
int fconn_send(struct fconn *c, uint16_t type, uint32_t chan, const void *body, uint32_t len);
/* All of buffer b as frames of type (at most 64 KiB each), b drained. */
void fconn_send_buffer(struct fconn *c, uint16_t type, uint32_t chan, struct evbuffer *b);
/* Close after everything queued has been written. */
void fconn_close_when_flushed(struct fconn *c);
/* Park c: its frames stop (c->stop) and a close by the peer is held,
 * until fconn_resume parses what arrived meanwhile and then, if the peer
 * has closed, tells the owner of that moment (on_close). */
void fconn_park(struct fconn *c);
void fconn_resume(struct fconn *c);
/* Write what is queued for the peer now, waiting at most timeout_ms for
 * the socket (a daemon about to stop would drop it): 0, or -1. */
int fconn_flush_now(struct fconn *c, int timeout_ms);
/* Take the socket back (blocking, nothing buffered is lost only if the peer
 * waits for an answer; its session goes along, mig_auth.h) and free the
 * connection. */
int fconn_take_fd(struct fconn *c);
void fconn_free(struct fconn *c);
/* Free from inside one of its own callbacks (at the next loop turn). */
void fconn_free_later(struct fconn *c);

#endif
