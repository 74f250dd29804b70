/*
 * ctl.h -- migrd's control socket.
 *
 * Owns: the Unix socket local processes talk to (registration of a mailbox,
 * look-ups, status for migrctl), the identity of each client (SO_PEERCRED)
 * and who may do what: a process registers only itself; another process's
 * inbox is handed out only to the same user or root.  A malformed request
 * closes that client, with an error in the log; other clients go on.
 */
#ifndef MIGRD_CTL_H
#define MIGRD_CTL_H

struct migrd;

/* Listen on `path`; also registers, as the postal office's postal_ops, how
 * the owner of a mailbox (a control client) hears of undeliverable packets
 * and is dropped.  0 or -errno (logged). */
int ctl_init(struct migrd *d, const char *path);
void ctl_fini(struct migrd *d);

#endif
