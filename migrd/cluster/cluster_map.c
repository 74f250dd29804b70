/*
 * cluster_map.c -- see cluster_map.h.
 */
#include "cluster_map.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/wire.h"

#define MAX_WORDS 8

static int split(char *line, char **w)
{
    int n = 0;
    char *save, *tok;
    char *hash = strchr(line, '#');
    if (hash)
        *hash = 0;
    for (tok = strtok_r(line, " \t\r\n", &save); tok; tok = strtok_r(NULL, " \t\r\n", &save)) {
        if (n == MAX_WORDS)
            return -1;
        w[n++] = tok;
    }
    return n;
}

static int parse_int(const char *s, long lo, long hi, long *out)
{
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || *end || end == s || v < lo || v > hi)
        return -1;
    *out = v;
    return 0;
}

static int name_ok(const char *s)
{
    if (!*s || strlen(s) >= CFG_NAME_MAX)
        return 0;
    for (; *s; s++)
        if (!isalnum((unsigned char)*s) && !strchr("-_.", *s))
            return 0;
    return 1;
}

static const char *parse_cluster(struct cluster_map *m, char **w, int n)
{
    if (n < 2 || !name_ok(w[1]))
        return "expected: cluster NAME [priority N] [guests yes|no]";
    if (m->nclusters == CFG_MAX_CLUSTERS)
        return "too many clusters";
    struct cfg_cluster *c = &m->clusters[m->nclusters];
    memset(c, 0, sizeof *c);
    snprintf(c->name, sizeof c->name, "%s", w[1]);
    for (int i = 2; i < n; i += 2) {
        long v;
        if (i + 1 >= n)
            return "option without a value";
        if (!strcmp(w[i], "priority")) {
            if (parse_int(w[i + 1], -1000, 1000, &v))
                return "priority must be an integer from -1000 to 1000";
            c->priority = (int)v;
        } else if (!strcmp(w[i], "guests")) {
            if (strcmp(w[i + 1], "yes") && strcmp(w[i + 1], "no"))
                return "guests must be yes or no";
            c->guests = !strcmp(w[i + 1], "yes");
        } else {
            return "unknown cluster option (priority, guests)";
        }
    }
    m->nclusters++;
    return NULL;
}

static const char *parse_node(struct cluster_map *m, char **w, int n)
{
    if (n < 3 || !name_ok(w[1]))
        return "expected: node NAME ADDRESS[:PORT] [cores N]";
    if (m->nnodes == CFG_MAX_NODES)
        return "too many nodes";
    if (config_find(m, w[1]) >= 0)
        return "node listed twice";
    if (m->nclusters == 0) {
        memset(&m->clusters[0], 0, sizeof m->clusters[0]);
        strcpy(m->clusters[0].name, "default");
        m->nclusters = 1;
    }
    struct cfg_node *d = &m->nodes[m->nnodes];
    memset(d, 0, sizeof *d);
    snprintf(d->name, sizeof d->name, "%s", w[1]);
    d->port = LINK_DEFAULT_PORT;
    d->cluster = m->nclusters - 1;
    char *colon = strrchr(w[2], ':');
    if (colon && !strchr(colon + 1, ']') && strchr(w[2], ':') == colon) {
        long v;
        *colon = 0;
        if (parse_int(colon + 1, 1, 65535, &v))
            return "port must be 1..65535";
        d->port = (uint16_t)v;
    }
    if (!*w[2] || strlen(w[2]) >= CFG_NAME_MAX)
        return "bad address";
    snprintf(d->addr, sizeof d->addr, "%s", w[2]);
    for (int i = 3; i < n; i += 2) {
        long v;
        if (i + 1 >= n || strcmp(w[i], "cores") || parse_int(w[i + 1], 1, 1 << 20, &v))
            return "unknown node option (cores N)";
        d->cores = (int)v;
    }
    m->nnodes++;
    return NULL;
}

static const char *parse_key(struct cluster_map *m, char **w, int n)
{
    if (n != 2)
        return "expected: key FILE (made with `migrctl keygen FILE`)";
    if (m->key[0])
        return "key given twice";
    if (w[1][0] != '/' || strlen(w[1]) >= sizeof m->key)
        return "the key file must be an absolute path (at most 255 bytes)";
    snprintf(m->key, sizeof m->key, "%s", w[1]);
    return NULL;
}

int config_load(const char *path, struct cluster_map *m, char *err, size_t errlen)
{
    FILE *f = fopen(path, "re");
    if (!f) {
        snprintf(err, errlen, "%s: %s", path, strerror(errno));
        return -1;
    }
    memset(m, 0, sizeof *m);
    char line[1024];
    int lineno = 0, rc = 0;
    while (fgets(line, sizeof line, f)) {
        char *w[MAX_WORDS];
        const char *what = NULL;
        lineno++;
        if (!strchr(line, '\n') && !feof(f))
            what = "line too long";
        int n = what ? 0 : split(line, w);
        if (n < 0)
            what = "too many words";
        else if (n == 0 && !what)
            continue;
        else if (!what && !strcmp(w[0], "cluster"))
            what = parse_cluster(m, w, n);
        else if (!what && !strcmp(w[0], "node"))
            what = parse_node(m, w, n);
        else if (!what && !strcmp(w[0], "key"))
            what = parse_key(m, w, n);
        else if (!what)
            what = "unknown statement (cluster, node, key)";
        if (what) {
            snprintf(err, errlen, "%s:%d: %s", path, lineno, what);
            rc = -1;
            break;
        }
    }
    fclose(f);
    if (rc == 0 && m->nnodes == 0) {
        snprintf(err, errlen, "%s: no node listed", path);
        rc = -1;
    }
    return rc;
}

void config_single(struct cluster_map *m, const char *node_name, uint16_t port)
{
    memset(m, 0, sizeof *m);
    m->nclusters = 1;
    strcpy(m->clusters[0].name, "default");
    m->nnodes = 1;
    snprintf(m->nodes[0].name, sizeof m->nodes[0].name, "%s", node_name);
    strcpy(m->nodes[0].addr, "127.0.0.1");
    m->nodes[0].port = port;
}

int config_find(const struct cluster_map *m, const char *name)
{
    for (int i = 0; i < m->nnodes; i++)
        if (!strcmp(m->nodes[i].name, name))
            return i;
    return -1;
}
