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
 */
#ifndef MIGRD_CREDS_CHECK_H
#define MIGRD_CREDS_CHECK_H

#include <stddef.h>

struct engine_image;

/* 0, or -1 with why ("uid 1234 has no account on n2", ...). */
int creds_check_local(const struct engine_image *img, const char *node, char *why, size_t wl);

#endif
