/*
 * check_host.c -- what of this host decides where its processes may go
 * and how much may come: the CPU features an image may rely on, and the
 * cgroup hierarchy whose memory limits bound a process moving in.
 */
#include "check.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/statfs.h>

#include "../../migrd/cluster/cpu_features.h"

#ifndef CGROUP2_SUPER_MAGIC
#define CGROUP2_SUPER_MAGIC 0x63677270
#endif

void check_cpu(struct check_ctx *c)
{
    struct cpu_features f;
    char names[1024];
    (void)c;
    cpuf_read(&f);
    int n = cpuf_names(&f, names, sizeof names);
    if (!n) {
        check_report("cpu features", CHECK_WARN, NULL, "none of the compared features found (not x86-64?): "
                                                      "moves between different CPUs are not checked");
        return;
    }
    check_report("cpu features", CHECK_OK, NULL,
                 "%d that images may rely on: %s; processes started here move only to nodes that have all of "
                 "them (migrd --hide-cpu-feature evens out a mixed cluster)", n, names);
}

/* Is there a cgroup mount of this type (and with this option) in mountinfo? */
static int mounted(const char *fstype, const char *option, char *point, size_t len)
{
    char line[4096];
    int found = 0;
    FILE *f = fopen("/proc/self/mountinfo", "re");
    if (!f)
        return -errno;
    while (!found && fgets(line, sizeof line, f)) {
        char *sep = strstr(line, " - "), mnt[2048], type[64], opts[1024], wrapped[1030];
        if (!sep || sscanf(line, "%*s %*s %*s %*s %2047s", mnt) != 1 || sscanf(sep + 3, "%63s %*s %1023s", type, opts) != 2)
            continue;
        snprintf(wrapped, sizeof wrapped, ",%s,", opts);
        if (!strcmp(type, fstype) && (!option || strstr(wrapped, option))) {
            found = 1;
            snprintf(point, len, "%s", mnt);
        }
    }
    fclose(f);
    return found;
}

void check_cgroup(struct check_ctx *c)
{
    struct statfs s;
    char v1[2048] = "", v2[2048] = "";
    (void)c;
    if (statfs("/sys/fs/cgroup", &s) == 0 && s.f_type == CGROUP2_SUPER_MAGIC) {
        check_report("cgroup", CHECK_OK, NULL, "v2 (unified) at /sys/fs/cgroup: memory limits of migrd's cgroup "
                                               "bound what may move in");
        return;
    }
    int has_v1 = mounted("cgroup", ",memory,", v1, sizeof v1);
    int has_v2 = mounted("cgroup2", NULL, v2, sizeof v2);
    if (has_v1 < 0) {
        check_report("cgroup", CHECK_WARN, NULL, "reading /proc/self/mountinfo: %s", strerror(-has_v1));
    } else if (has_v1) {
        check_report("cgroup", CHECK_OK, NULL, "v1%s%s%s: memory controller at %s bounds what may move in",
                     has_v2 ? " (hybrid, cgroup2 at " : "", has_v2 ? v2 : "", has_v2 ? ")" : "", v1);
    } else if (has_v2) {
        check_report("cgroup", CHECK_OK, NULL, "v2 at %s: memory limits of migrd's cgroup bound what may move in", v2);
    } else {
        check_report("cgroup", CHECK_WARN, "mount cgroup2 on /sys/fs/cgroup (systemd does)",
                     "no memory cgroup mounted: only the host's MemAvailable bounds what may move in");
    }
}
