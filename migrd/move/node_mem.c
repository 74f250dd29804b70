/*
 * node_mem.c -- the memory a process moving in may use (see node_mem.h).
 */
#include "node_mem.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The first number in file `dir/name`; UINT64_MAX for "max" or an absent
 * file (no limit to read). */
static uint64_t read_u64(const char *dir, const char *name)
{
    char path[4096 + 64], word[32] = "";
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "re");
    if (!f)
        return UINT64_MAX;
    int ok = fscanf(f, "%31s", word);
    fclose(f);
    char *end;
    unsigned long long v = ok == 1 ? strtoull(word, &end, 10) : 0;
    return ok == 1 && end != word && !*end ? (uint64_t)v : UINT64_MAX;
}

static uint64_t host_available(void)
{
    char line[256];
    unsigned long long kb = 0;
    FILE *f = fopen("/proc/meminfo", "re");
    if (!f)
        return UINT64_MAX;
    while (fgets(line, sizeof line, f))
        if (sscanf(line, "MemAvailable: %llu kB", &kb) == 1)
            break;
    fclose(f);
    return kb ? (uint64_t)kb * 1024 : UINT64_MAX;
}

/* The mount point of the memory hierarchy (v1: a cgroup mount with the
 * memory option; v2: the cgroup2 mount) into mnt; 1 for v1, 2 for v2, 0. */
static int memory_mount(char *mnt, size_t len)
{
    char line[4096];
    int found = 0;
    FILE *f = fopen("/proc/self/mountinfo", "re");
    if (!f)
        return 0;
    while (!found && fgets(line, sizeof line, f)) {
        char *sep = strstr(line, " - "), point[2048], fstype[64], opts[1024];
        if (!sep || sscanf(line, "%*s %*s %*s %*s %2047s", point) != 1 ||
            sscanf(sep + 3, "%63s %*s %1023s", fstype, opts) != 2)
            continue;
        char copy[1024 + 2];
        snprintf(copy, sizeof copy, ",%s,", opts);
        if (!strcmp(fstype, "cgroup") && strstr(copy, ",memory,"))
            found = 1;
        else if (!strcmp(fstype, "cgroup2"))
            found = 2;
        if (found)
            snprintf(mnt, len, "%s", point);
    }
    fclose(f);
    return found;
}

/* migrd's own cgroup in that hierarchy (from /proc/self/cgroup). */
static int own_cgroup(int version, char *path, size_t len)
{
    char line[4096];
    int ok = -1;
    FILE *f = fopen("/proc/self/cgroup", "re");
    if (!f)
        return -1;
    while (ok < 0 && fgets(line, sizeof line, f)) {
        char *c1 = strchr(line, ':'), *c2 = c1 ? strchr(c1 + 1, ':') : NULL;
        if (!c2)
            continue;
        *c2 = 0;
        char ctls[1024 + 2];
        snprintf(ctls, sizeof ctls, ",%s,", c1 + 1);
        if (version == 1 ? strstr(ctls, ",memory,") != NULL : !strcmp(line, "0")) {
            c2[1 + strcspn(c2 + 1, "\n")] = 0;
            snprintf(path, len, "%s", c2 + 1);
            ok = 0;
        }
    }
    fclose(f);
    return ok;
}

uint64_t node_mem_available(char *bound, size_t len)
{
    char mnt[2048], cg[2048], dir[4096 + 8];
    uint64_t best = host_available();
    snprintf(bound, len, "the host");
    int v = memory_mount(mnt, sizeof mnt);
    if (!v || own_cgroup(v, cg, sizeof cg) < 0)
        return best;
    /* from migrd's cgroup up to the hierarchy's root */
    for (;;) {
        snprintf(dir, sizeof dir, "%s%s", mnt, strcmp(cg, "/") ? cg : "");
        uint64_t limit = read_u64(dir, v == 1 ? "memory.limit_in_bytes" : "memory.max");
        uint64_t used = read_u64(dir, v == 1 ? "memory.usage_in_bytes" : "memory.current");
        if (limit != UINT64_MAX && used != UINT64_MAX) {
            uint64_t room = limit > used ? limit - used : 0;
            if (room < best) {
                best = room;
                size_t n = strlen(cg); /* a long path: its end tells most */
                snprintf(bound, len, "memory cgroup %s%s", n > 40 ? "..." : "", n > 40 ? cg + n - 40 : cg);
            }
        }
        char *slash = strrchr(cg, '/');
        if (!slash || slash == cg) {
            if (!strcmp(cg, "/"))
                break;
            strcpy(cg, "/");
        } else {
            *slash = 0;
        }
    }
    return best;
}
