/*
 * check_cluster.c -- this node in the cluster: the map names it, the key
 * is there with the right owner and mode, its ports are free or migrd's.
 */
#include "check.h"

#include <dirent.h>
#include <errno.h>
#include <netdb.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "../../migrd/cluster/cluster_key.h"
#include "../../common/wire.h"

void check_map(struct check_ctx *c)
{
    char err[512];
    if (access(c->config, F_OK) < 0 && errno == ENOENT && !c->config_given) {
        check_report("cluster map", CHECK_WARN,
                     "write one (migr-cluster.conf(5); an example is in the documentation) and start migrd "
                     "--config " "FILE",
                     "no %s: migrd without --config is a cluster of this node alone", c->config);
        return;
    }
    c->map = calloc(1, sizeof *c->map);
    if (!c->map) {
        check_report("cluster map", CHECK_FAIL, NULL, "out of memory");
        return;
    }
    if (config_load(c->config, c->map, err, sizeof err) < 0) {
        free(c->map);
        c->map = NULL;
        check_report("cluster map", CHECK_FAIL, "see migr-cluster.conf(5)", "%s", err);
        return;
    }
    c->self = config_find(c->map, c->node);
    if (c->self < 0) {
        char fix[256];
        snprintf(fix, sizeof fix, "add 'node %.64s ADDRESS' to the map, or give migrd (and this check) --node NAME",
                 c->node);
        check_report("cluster map", CHECK_FAIL, fix, "%s (%d nodes) does not name this node, %s", c->config,
                     c->map->nnodes, c->node);
        return;
    }
    const struct cfg_node *n = &c->map->nodes[c->self];
    check_report("cluster map", CHECK_OK, NULL, "%s: %d node%s, this one is %s (%s, link port %u, migration port %u)",
                 c->config, c->map->nnodes, c->map->nnodes == 1 ? "" : "s", n->name, n->addr, n->port,
                 n->port + 1u);
}

void check_key(struct check_ctx *c)
{
    uint8_t key[CLUSTER_KEY_BYTES];
    char why[512], fix[1024];
    if (!c->map) {
        check_report("cluster key", CHECK_WARN, NULL, "no cluster map: no key to check");
        return;
    }
    if (!c->map->key[0]) {
        if (c->map->nnodes > 1)
            check_report("cluster key", CHECK_FAIL, "make one with 'migrctl keygen', copy it to every node, add "
                                                    "'key FILE' to the map",
                         "%s names no key: migrd refuses a map of several nodes without one", c->config);
        else
            check_report("cluster key", CHECK_OK, NULL, "none needed: the map has one node");
        return;
    }
    if (!c->root && access(c->map->key, R_OK) < 0 && errno == EACCES) {
        check_report("cluster key", CHECK_WARN, "run this check as root", "%s is not readable by uid %u (as it "
                     "should be: root's, mode 0600): not checked", c->map->key, (unsigned)c->euid);
        return;
    }
    if (cluster_key_load(c->map->key, key, why, sizeof why) < 0) {
        snprintf(fix, sizeof fix, "chown root %s && chmod 0600 %s, or make one with 'migrctl keygen %s'",
                 c->map->key, c->map->key, c->map->key);
        check_report("cluster key", CHECK_FAIL, fix, "%s", why);
        return;
    }
    memset(key, 0, sizeof key);
    check_report("cluster key", CHECK_OK, NULL, "%s: %d bytes, its owner's only (mode 0600)", c->map->key,
                 CLUSTER_KEY_BYTES);
}

/* The inode of the TCP socket listening on port, from /proc/net/tcp{,6},
 * or 0. */
static unsigned long listener_inode(unsigned port)
{
    static const char *const files[] = {"/proc/net/tcp", "/proc/net/tcp6"};
    char line[512];
    for (size_t i = 0; i < 2; i++) {
        FILE *f = fopen(files[i], "re");
        if (!f)
            continue;
        while (fgets(line, sizeof line, f)) {
            char local[128];
            unsigned st;
            unsigned long inode;
            /* sl local rem st tx:rx tr:when retrnsmt uid timeout inode */
            if (sscanf(line, " %*s %127s %*s %x %*s %*s %*s %*s %*s %lu", local, &st, &inode) != 3)
                continue;
            char *colon = strrchr(local, ':');
            if (st == 0x0a /* LISTEN */ && colon && strtoul(colon + 1, NULL, 16) == port) {
                fclose(f);
                return inode;
            }
        }
        fclose(f);
    }
    return 0;
}

/* The process holding socket inode: its pid and command, or 0 (unknown:
 * not root, or gone). */
static pid_t socket_owner(unsigned long inode, char *comm, size_t len)
{
    char want[64], path[300], link[64];
    snprintf(want, sizeof want, "socket:[%lu]", inode);
    DIR *proc = opendir("/proc");
    if (!proc)
        return 0;
    pid_t found = 0;
    for (struct dirent *p; !found && (p = readdir(proc));) {
        char *end;
        long pid = strtol(p->d_name, &end, 10);
        if (*end || pid <= 0)
            continue;
        snprintf(path, sizeof path, "/proc/%ld/fd", pid);
        DIR *fds = opendir(path);
        if (!fds)
            continue;
        for (struct dirent *f; !found && (f = readdir(fds));) {
            snprintf(path, sizeof path, "/proc/%ld/fd/%.200s", pid, f->d_name);
            ssize_t n = readlink(path, link, sizeof link - 1);
            if (n > 0 && (link[n] = 0, !strcmp(link, want)))
                found = (pid_t)pid;
        }
        closedir(fds);
    }
    closedir(proc);
    if (found) {
        snprintf(path, sizeof path, "/proc/%d/comm", found);
        FILE *f = fopen(path, "re");
        if (!f || !fgets(comm, (int)len, f))
            snprintf(comm, len, "?");
        if (f)
            fclose(f);
        comm[strcspn(comm, "\n")] = 0;
    }
    return found;
}

/* Can a listener bind ADDRESS:port?  0, or -errno (EAI errors: -EINVAL). */
static int try_bind(const struct cfg_node *n, unsigned port, char *why, size_t wl)
{
    struct addrinfo hints = {.ai_socktype = SOCK_STREAM, .ai_flags = AI_PASSIVE | AI_NUMERICSERV}, *res;
    char serv[16];
    snprintf(serv, sizeof serv, "%u", port);
    int g = getaddrinfo(n->addr, serv, &hints, &res);
    if (g) {
        snprintf(why, wl, "address %s does not resolve: %s", n->addr, gai_strerror(g));
        return -EINVAL;
    }
    int rc = 0;
    int fd = socket(res->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    int one = 1;
    if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) < 0 ||
        bind(fd, res->ai_addr, res->ai_addrlen) < 0) {
        rc = -errno;
        snprintf(why, wl, "binding %s:%u: %s", n->addr, port, strerror(errno));
    }
    if (fd >= 0)
        close(fd);
    freeaddrinfo(res);
    return rc;
}

static void check_port(struct check_ctx *c, const char *name, unsigned port)
{
    const struct cfg_node *n = &c->map->nodes[c->self];
    char why[300], comm[64], fix[256];
    int rc = try_bind(n, port, why, sizeof why);
    if (rc == 0) {
        check_report(name, CHECK_OK, NULL, "%s:%u is free (migrd not running here)", n->addr, port);
        return;
    }
    if (rc == -EADDRNOTAVAIL) {
        snprintf(fix, sizeof fix, "give node %.64s this host's address in the map", n->name);
        check_report(name, CHECK_FAIL, fix, "%s: %s is not an address of this host", why, n->addr);
        return;
    }
    if (rc != -EADDRINUSE) {
        check_report(name, CHECK_FAIL, NULL, "%s", why);
        return;
    }
    unsigned long inode = listener_inode(port);
    pid_t pid = inode ? socket_owner(inode, comm, sizeof comm) : 0;
    if (pid && !strcmp(comm, "migrd"))
        check_report(name, CHECK_OK, NULL, "%s:%u is held by migrd (pid %d)", n->addr, port, pid);
    else if (pid) {
        snprintf(fix, sizeof fix, "stop %s, or give node %.64s another port in the map", comm, n->name);
        check_report(name, CHECK_FAIL, fix, "%s:%u is held by %s (pid %d)", n->addr, port, comm, pid);
    } else
        check_report(name, c->root ? CHECK_FAIL : CHECK_WARN, c->root ? NULL : "run this check as root to see by whom",
                     "%s:%u is in use, not by a process of this namespace%s", n->addr, port,
                     c->root ? "" : " that this user can see");
}

void check_ports(struct check_ctx *c)
{
    if (!c->map || c->self < 0) {
        check_report("ports", CHECK_WARN, NULL, "no node of a map: the ports are not checked (default %u and %u)",
                     LINK_DEFAULT_PORT, LINK_DEFAULT_PORT + 1);
        return;
    }
    unsigned port = c->map->nodes[c->self].port;
    check_port(c, "link port", port);
    check_port(c, "migration port", port + 1);
}
