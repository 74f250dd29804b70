/*
 * creds_check.c -- an incoming process's credentials against this node's
 * user database (creds_check.h).
 */
#include "creds_check.h"

#include <errno.h>
#include <grp.h>
#include <pwd.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "migrd/engine/engine.h"

#define MAX_MEMBER_GROUPS 65536

static const char *const ID_NAME[4] = {"real", "effective", "saved", "filesystem"};

/* The user's groups here: its primary one and those it is a member of.
 * A malloc'd array and its length, or NULL with errno. */
static gid_t *member_groups(const struct passwd *pw, int *n)
{
    int want = 64;
    for (;;) {
        gid_t *g = malloc((size_t)want * sizeof *g);
        if (!g)
            return NULL;
        int got = want;
        if (getgrouplist(pw->pw_name, pw->pw_gid, g, &got) >= 0) {
            *n = got;
            return g;
        }
        free(g);
        if (got <= want || got > MAX_MEMBER_GROUPS) {
            errno = E2BIG;
            return NULL;
        }
        want = got;
    }
}

static bool has(const gid_t *g, int n, uint32_t gid)
{
    for (int i = 0; i < n; i++)
        if ((uint32_t)g[i] == gid)
            return true;
    return false;
}

int creds_user_name(uint32_t uid, char name[CREDS_USER_MAX])
{
    char buf[4096];
    struct passwd pwd, *pw = NULL;
    int rc = getpwuid_r((uid_t)uid, &pwd, buf, sizeof buf, &pw);
    name[0] = 0;
    if (rc && rc != ENOENT && rc != ESRCH) {
        errno = rc;
        return -1;
    }
    if (pw)
        snprintf(name, CREDS_USER_MAX, "%s", pw->pw_name);
    return 0;
}

int creds_check_user(uint32_t uid, const char *user, const char *src, const char *node, char *why, size_t wl)
{
    char here[CREDS_USER_MAX];
    if (uid == 0)
        return 0;
    if (creds_user_name(uid, here) < 0) {
        snprintf(why, wl, "cannot look up uid %u on %s: %s", (unsigned)uid, node, strerror(errno));
        return -1;
    }
    if (!strncmp(here, user, CREDS_USER_MAX))
        return here[0] ? 0 : (snprintf(why, wl, "uid %u has an account neither on %s nor on %s", (unsigned)uid,
                                       src, node), -1);
    if (!user[0])
        snprintf(why, wl, "uid %u has no account on %s but is %s on %s: the nodes' user databases disagree",
                 (unsigned)uid, src, here, node);
    else if (!here[0])
        snprintf(why, wl, "uid %u (%.31s on %s) has no account on %s", (unsigned)uid, user, src, node);
    else
        snprintf(why, wl, "uid %u is %.31s on %s but %s on %s: the nodes' user databases disagree", (unsigned)uid,
                 user, src, here, node);
    return -1;
}

int creds_check_local(const struct engine_image *img, uint32_t owner, const char *node, char *why, size_t wl)
{
    uint32_t uid[4], gid[4];
    const uint32_t *groups;
    uint32_t ngroups = engine_image_creds(img, uid, gid, &groups);
    if (uid[0] != owner) {
        snprintf(why, wl, "the image's real uid %u is not uid %u, whose process was offered", (unsigned)uid[0],
                 (unsigned)owner);
        return -1;
    }
    if (uid[0] == 0)
        return 0; /* root's: root may hold any id */
    for (int i = 1; i < 4; i++)
        if (uid[i] != uid[0]) {
            /* a set-uid program: this node cannot tell it from a forged one */
            snprintf(why, wl, "its %s uid %u is not its real uid %u: set-uid processes are not moved",
                     ID_NAME[i], (unsigned)uid[i], (unsigned)uid[0]);
            return -1;
        }
    char buf[4096];
    struct passwd pwd, *pw = NULL;
    int rc = getpwuid_r((uid_t)uid[0], &pwd, buf, sizeof buf, &pw);
    if (rc || !pw) {
        if (rc && rc != ENOENT && rc != ESRCH)
            snprintf(why, wl, "cannot look up uid %u on %s: %s", (unsigned)uid[0], node, strerror(rc));
        else
            snprintf(why, wl, "uid %u has no account on %s", (unsigned)uid[0], node);
        return -1;
    }
    int n = 0;
    gid_t *mine = member_groups(pw, &n);
    if (!mine) {
        snprintf(why, wl, "cannot list the groups of %s (uid %u) on %s: %s", pw->pw_name, (unsigned)uid[0], node,
                 strerror(errno));
        return -1;
    }
    rc = 0;
    for (int i = 0; i < 4 && !rc; i++)
        if (!has(mine, n, gid[i])) {
            snprintf(why, wl, "its %s gid %u is not a group of %s (uid %u) on %s", ID_NAME[i], (unsigned)gid[i],
                     pw->pw_name, (unsigned)uid[0], node);
            rc = -1;
        }
    for (uint32_t i = 0; i < ngroups && !rc; i++)
        if (!has(mine, n, groups[i])) {
            snprintf(why, wl, "its supplementary group %u is not a group of %s (uid %u) on %s",
                     (unsigned)groups[i], pw->pw_name, (unsigned)uid[0], node);
            rc = -1;
        }
    free(mine);
    return rc;
}
