/*
 * node_addr.h -- the socket addresses of the nodes of the cluster map.
 *
 * Owns: turning a node's ADDRESS (an IPv4 or IPv6 literal or a host name,
 * see README "The cluster map") and a port into a socket address, and
 * listening on it.  The link port (link.c) and the migration port
 * (migrate.c, forward_ep.c) both go through here, so a map that works for
 * one works for the other.  Also: whether a peer's address is a node's
 * (connections are accepted only from the addresses in the map).
 */
#ifndef MIGRD_NODE_ADDR_H
#define MIGRD_NODE_ADDR_H

#include <sys/socket.h>

#include "cluster_map.h"

/* 0, or a getaddrinfo() error code (gai_strerror). */
int node_sockaddr(const struct cfg_node *n, unsigned port, struct sockaddr_storage *ss, socklen_t *len);

/* A non-blocking listening socket on the node's address and port, or
 * -errno (an address that does not resolve is logged and gives -EINVAL). */
int node_listen(const struct cfg_node *n, unsigned port);

/* Whether a connection from `peer` may come from node n: its IP address
 * is one of those n's ADDRESS resolves to (the port is not compared: a
 * connecting socket's port is ephemeral).  IPv4-mapped IPv6 counts as IPv4. */
int node_addr_is(const struct cfg_node *n, const struct sockaddr_storage *peer);
/* Whether it is the address of any node of the map. */
int node_addr_known(const struct cluster_map *m, const struct sockaddr_storage *peer);

#endif
