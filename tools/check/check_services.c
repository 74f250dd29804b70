/*
 * check_services.c -- what runs on top: the Open MPI components visible
 * to Open MPI, and migrd answering on its control socket.
 */
#include "check.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../../common/ctlmsg.h"
#include "../migrctl.h"

#ifndef MIGR_OMPI_COMPONENTDIR
#define MIGR_OMPI_COMPONENTDIR "/usr/lib/x86_64-linux-gnu/openmpi/lib/openmpi3"
#endif

static const char *const components[][2] = {{"btl", "dicom"}, {"odls", "migr"}};
#define NCOMP (sizeof components / sizeof components[0])

/* Which components `ompi_info --parsable` lists (it searches what Open MPI
 * searches: mca_base_component_path, OMPI_MCA_... included).  -1 when
 * ompi_info cannot be run. */
static int ompi_info_lists(int seen[NCOMP])
{
    char line[512], want[64];
    FILE *p = popen("ompi_info --parsable 2>/dev/null", "re");
    if (!p)
        return -1;
    int any = 0;
    while (fgets(line, sizeof line, p)) {
        any = 1;
        for (size_t i = 0; i < NCOMP; i++) {
            snprintf(want, sizeof want, "mca:%s:%s:", components[i][0], components[i][1]);
            seen[i] |= !strncmp(line, want, strlen(want));
        }
    }
    int st = pclose(p);
    return any && st != -1 ? 0 : -1;
}

/* The directories Open MPI searches for components, as a path. */
static const char *component_path(char *buf, size_t len)
{
    const char *env = getenv("OMPI_MCA_mca_base_component_path");
    snprintf(buf, len, "%s", env && *env ? env : MIGR_OMPI_COMPONENTDIR);
    return buf;
}

/* Is mca_TYPE_NAME.so in one of the directories of path (SYS_DEFAULT:
 * Open MPI's own)?  That directory into dir, or 0. */
static int find_component(const char *path, const char *type, const char *name, char *dir, size_t len)
{
    char copy[4096], file[4400];
    snprintf(copy, sizeof copy, "%s", path);
    for (char *save, *d = strtok_r(copy, ":", &save); d; d = strtok_r(NULL, ":", &save)) {
        const char *real = !strcmp(d, "SYS_DEFAULT") ? MIGR_OMPI_COMPONENTDIR : d;
        snprintf(file, sizeof file, "%s/mca_%s_%s.so", real, type, name);
        if (access(file, R_OK) == 0) {
            snprintf(dir, len, "%s", real);
            return 1;
        }
    }
    return 0;
}

void check_ompi(struct check_ctx *c)
{
    int seen[NCOMP] = {0};
    char path[4096], dir[4096], missing[128] = "", fix[600];
    (void)c;
    int listed = ompi_info_lists(seen);
    component_path(path, sizeof path);
    for (size_t i = 0; i < NCOMP; i++) {
        if (listed < 0)
            seen[i] = find_component(path, components[i][0], components[i][1], dir, sizeof dir);
        if (!seen[i])
            snprintf(missing + strlen(missing), sizeof missing - strlen(missing), "%s%s %s", *missing ? ", " : "",
                     components[i][0], components[i][1]);
    }
    snprintf(fix, sizeof fix, "install migr's components into %s, or point Open MPI at them: "
                              "OMPI_MCA_mca_base_component_path=DIR:SYS_DEFAULT", MIGR_OMPI_COMPONENTDIR);
    if (*missing)
        check_report("open mpi", CHECK_FAIL, fix, "%s does not list %s (searched %s)",
                     listed < 0 ? "no ompi_info; the component directory" : "ompi_info", missing, path);
    else
        check_report("open mpi", CHECK_OK, NULL, "%s lists btl dicom and odls migr", listed < 0 ? path : "ompi_info");
}

void check_migrd(struct check_ctx *c)
{
    static char buf[CTL_MAX_MSG];
    char fix[256];
    int fd = ctl_connect(migrctl_socket);
    if (fd < 0) {
        snprintf(fix, sizeof fix, "start it (systemctl start migrd, or migrd --config %s)", c->config);
        check_report("migrd", CHECK_WARN, fix, "no migrd answers on %s: %s", migrctl_socket, strerror(-fd));
        return;
    }
    int rc = ctl_send(fd, CTL_STATUS, 1, NULL, 0, NULL, 0);
    const struct ctl_hdr *h = rc < 0 ? NULL : migrctl_receive(fd, buf, REPLY_TIMEOUT_MS);
    /* the nodes, several per message, this one first */
    if (rc < 0 || !h || h->type != CTL_STATUS_NODE || !h->len || h->len % sizeof(struct ctl_status_node)) {
        close(fd);
        check_report("migrd", CHECK_FAIL, "see migrd's log (journalctl -u migrd)",
                     "migrd on %s does not answer a status request%s%s", migrctl_socket, rc < 0 ? ": " : "",
                     rc < 0 ? strerror(-rc) : "");
        return;
    }
    const struct ctl_status_node *n = (const void *)(h + 1);
    char name[sizeof n->name + 1];
    snprintf(name, sizeof name, "%.64s", n->name);
    close(fd); /* the rest of the answer is not needed */
    if (c->self >= 0 && strcmp(name, c->map->nodes[c->self].name))
        check_report("migrd", CHECK_WARN, "give this check the --node migrd has",
                     "migrd on %s is node %s, not %s", migrctl_socket, name, c->map->nodes[c->self].name);
    else
        check_report("migrd", CHECK_OK, NULL, "answers on %s: node %s, up %.1f s, %u process%s registered",
                     migrctl_socket, name, (double)n->uptime_ms / 1000, n->nprocs, n->nprocs == 1 ? "" : "es");
}
