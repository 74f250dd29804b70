/*
 * creds_check.h -- the destination's own judgement of the credentials an
 * incoming process is vouched for with (issue 8, part 3).
 *
 * The source vouches for them (its copy of the process's credentials,
 * under the image's MAC); before anything is restored, this node checks
 * them against its own user database: the user must have an account here,
 * and every group id the process holds (real, effective, saved and
 * filesystem gid, and each supplementary group) must be the user's
 * primary group or a group the user is a member of here, and its four
 * uids must be the same (set-uid processes are not moved).  Processes of
 * root (real uid 0) are not limited.  The restore then sets exactly those
 * ids (engine/restore.c), never more.  A set-gid program that holds a
 * group its user is not in is refused too: this node cannot tell it from
 * a forged one.
 *
 * Uids are taken to name the same user on every node (as Slurm and Open
 * MPI take them), and that is checked, not trusted: the source names the
 * owner's account in its offer, and the destination refuses a process
 * whose uid is another user's here, or nobody's.
 */
#ifndef MIGRD_CREDS_CHECK_H
#define MIGRD_CREDS_CHECK_H

#include <stddef.h>
#include <stdint.h>

struct engine_image;

#define CREDS_USER_MAX 32 /* a user name and its NUL, as offers carry it */

/* The name of uid's account on this node into name (CREDS_USER_MAX), ""
 * when it has none: 0, or -1 with errno (the user database failed). */
int creds_user_name(uint32_t uid, char name[CREDS_USER_MAX]);

/* Whether uid, named `user` on node `src` ("": no account there), is the
 * same user on this node `node`: 0, or -1 with why ("uid 1001 is alice on
 * n1 but bob on n2 ...").  Root (uid 0) is root everywhere. */
int creds_check_user(uint32_t uid, const char *user, const char *src, const char *node, char *why, size_t wl);

/* The image's credentials, which must be those of `uid` (the offer's),
 * against this node's user database: 0, or -1 with why ("uid 1234 has no
 * account on n2", ...). */
int creds_check_local(const struct engine_image *img, uint32_t uid, const char *node, char *why, size_t wl);

#endif
