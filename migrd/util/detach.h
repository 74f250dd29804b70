/*
 * detach.h -- going into the background only once the daemon is ready.
 *
 * Owns: the fork, the new session, stdio to /dev/null, and a pipe from the
 * daemon to the process that started it.  The starting process waits on
 * that pipe: it exits 0 when the daemon says it is ready (every socket
 * bound, the pidfile written), or prints the daemon's error lines
 * ("migrd: ...", or how it died if it said nothing) and exits 1.
 */
#ifndef MIGRD_DETACH_H
#define MIGRD_DETACH_H

/* Fork; only the daemon returns 0 (a daemon that cannot make its session
 * reports why and exits).  -errno: no pipe or no fork, nothing detached;
 * the caller says so on stderr.  Until detach_ready, every error the daemon
 * logs is also sent to the waiting process. */
int detach_start(void);

/* Tell the waiting process that the daemon is up; no-op in the foreground. */
void detach_ready(void);

#endif
