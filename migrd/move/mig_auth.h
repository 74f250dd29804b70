/*
 * mig_auth.h -- authentication of the migration port's connections
 * (cluster/auth.h): moves (purpose AUTH_MOVE) and forwarding connections
 * (AUTH_FORWARD).
 *
 * Owns: the connecting side's handshake (blocking, on a socket from
 * mig_connect), the session of each blocking socket (mig_send/mig_recv add
 * and check the frame MACs of the fd's session), and the MAC over the raw
 * image stream (the engine shows every byte through its tap).  The
 * accepting side's handshake runs in forward_conn.c's event loop; a
 * connection handed over to blocking I/O brings its session along
 * (mig_auth_give).  In an insecure cluster every call here is a no-op.
 */
#ifndef MIGRD_MIG_AUTH_H
#define MIGRD_MIG_AUTH_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/socket.h>

#include "migrd/cluster/auth.h"

struct cluster;

/* Prove ourselves to node `node` on fd and make it prove itself: 0 (the
 * session is the fd's now), or -1 with why. */
int mig_auth_connect(int fd, const struct cluster *cl, int node, enum auth_purpose purpose, char *why,
                     size_t wl);

/* The session of a blocking socket, or NULL. */
struct auth_session *mig_auth_of(int fd);
/* Take it away (an event-loop connection takes the socket over). */
struct auth_session *mig_auth_take(int fd);
/* Give fd a session (ownership passes); 0 or -1 (out of slots). */
int mig_auth_give(int fd, struct auth_session *s);
/* close(fd), forgetting its session. */
void mig_close(int fd);

/* The image after MIG_IMAGE, raw: begin installs the engine's tap; end
 * removes it and, if the image itself went through (io_ok), sends the tag
 * (tx) or reads and checks it: 0, or -1 (errno EBADMSG: the image was not
 * the one the peer sent). */
struct mig_image_auth {
    struct auth_session *s;
    struct auth_mac m;
};
void mig_image_auth_begin(int fd, bool tx, struct mig_image_auth *a);
int mig_image_auth_end(int fd, bool tx, struct mig_image_auth *a, bool io_ok);

#endif
