/*
 * cluster_map.h -- the cluster map: which nodes exist, where, in which cluster.
 *
 * Owns: parsing the map file and deciding which entry is this node.
 *
 * Format (one statement per line, '#' starts a comment):
 *   cluster NAME [priority N] [guests yes|no]
 *   node NAME ADDRESS[:PORT] [cores N]
 *   key FILE      the cluster key (cluster_key.h), an absolute path; every
 *                 daemon must hold the same key.  A map of several nodes
 *                 without it is refused unless migrd runs with --insecure.
 * Nodes belong to the cluster named last before them (a map without a
 * `cluster` line has one cluster, "default").  With no map file at all the
 * cluster is this node alone.
 */
#ifndef MIGRD_CLUSTER_MAP_H
#define MIGRD_CLUSTER_MAP_H

#include <stddef.h>
#include <stdint.h>

#define CFG_NAME_MAX 64
#define CFG_MAX_NODES 1024
#define CFG_MAX_CLUSTERS 64

struct cfg_cluster {
    char name[CFG_NAME_MAX];
    int priority;
    int guests;   /* may take guests from other clusters */
};

struct cfg_node {
    char name[CFG_NAME_MAX];
    char addr[CFG_NAME_MAX];
    uint16_t port;
    int cores;    /* 0: not stated */
    int cluster;  /* index into clusters[] */
};

struct cluster_map {
    int nclusters, nnodes;
    char key[256];            /* key FILE, or "" */
    struct cfg_cluster clusters[CFG_MAX_CLUSTERS];
    struct cfg_node nodes[CFG_MAX_NODES];
};

/* Parse `path`; on error returns -1 and writes "file:line: what" to err. */
int config_load(const char *path, struct cluster_map *map, char *err, size_t errlen);

/* The one-node map used without a file. */
void config_single(struct cluster_map *map, const char *node_name, uint16_t port);

/* Index of the node called `name`, or -1. */
int config_find(const struct cluster_map *map, const char *name);

#endif
