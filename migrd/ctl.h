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

#include <stdint.h>

struct migrd;
struct ctl_client;

int ctl_init(struct migrd *d, const char *path);   /* 0 or -errno (logged) */
void ctl_fini(struct migrd *d);

void ctl_notify_unreachable(struct ctl_client *c, uint32_t job, uint32_t rank, const char *why);
void ctl_drop_client(struct ctl_client *c, const char *why);

#endif
