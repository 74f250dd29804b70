/*
 * cluster.h -- what this node knows of the cluster it belongs to.
 *
 * Owns: the cluster map (cluster_map.h), which of its nodes this one is,
 * this node's kernel release and CPU features (what a process moving in
 * may need), and the cluster key with which daemons authenticate each
 * other (auth.h).  Set once at start-up by the core and read by the postal
 * office (links) and the move subsystem; later also the gossip view and
 * the migration policy.  The cluster folder calls only util/ and common/.
 */
#ifndef MIGRD_CLUSTER_H
#define MIGRD_CLUSTER_H

#include <stdbool.h>
#include <stdint.h>

#include "cluster_key.h"
#include "cluster_map.h"
#include "cpu_features.h"

struct cluster {
    struct cluster_map map;
    int self;                  /* index of this node in map.nodes        */
    char kernel[64];           /* uname -r                               */
    struct cpu_features cpu;   /* what a process moving in may rely on   */
    /* Peers must prove they hold this key (auth.h); false only for one
     * node alone or with --insecure: then nothing is authenticated. */
    bool secure;
    uint8_t key[CLUSTER_KEY_BYTES];
};

static inline const struct cfg_node *cluster_self(const struct cluster *c) { return &c->map.nodes[c->self]; }
static inline const char *cluster_self_name(const struct cluster *c) { return c->map.nodes[c->self].name; }

#endif
