/*
 * migrctl.h -- what the files of migrctl share.
 *
 *   migrctl.c         main, the table of commands, run, migrate, keygen
 *   migrctl_client.c  talking to migrd: connect, one reply, a listing
 *   migrctl_show.c    status, ps, log (a table, or JSON with --json)
 *   json.c            the JSON writer
 *   check/            `migrctl check`: can this host run migr?
 */
#ifndef MIGR_TOOLS_MIGRCTL_H
#define MIGR_TOOLS_MIGRCTL_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "../common/cli.h"
#include "../common/wire.h"

#define MIGR_DEFAULT_KEY "/etc/migr/cluster.key"
#define MIGR_DEFAULT_MAP "/etc/migr/cluster.conf"
#define REPLY_TIMEOUT_MS 5000

/* migrd's control socket (--socket, $MIGR_SOCKET or the default). */
extern const char *migrctl_socket;

/* A connection to migrd, or -1 after printing why not. */
int migrctl_connect(void);

/* One reply message into buf (CTL_MAX_MSG bytes) within timeout_ms: its
 * header, or NULL after printing why not (a refusal: migrd's reason). */
const struct ctl_hdr *migrctl_receive(int fd, char *buf, int timeout_ms);

/* Send a request without body; hand every reply to `each` until CTL_END.
 * 0, or 1 after printing why it failed. */
int migrctl_request_all(uint16_t type, void (*each)(const struct ctl_hdr *h, void *arg), void *arg);

/* "1.5 MiB" */
void migrctl_bytes(char *out, size_t len, uint64_t b);
/* At most n bytes of s into out (n + 1 bytes), each control character
 * as '?' (ps(1) does the same): for tables on a terminal. */
const char *migrctl_printable(char *out, const char *s, size_t n);
/* The user name of uid, or its number. */
const char *migrctl_user(uid_t uid, char *buf, size_t len);

int migrctl_status(const struct cli *c, int argc, char **argv);
int migrctl_ps(const struct cli *c, int argc, char **argv);
int migrctl_log(const struct cli *c, int argc, char **argv);
int migrctl_check(const struct cli *c, int argc, char **argv);

#endif
