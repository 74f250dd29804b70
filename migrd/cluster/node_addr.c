/*
 * node_addr.c -- see node_addr.h.
 */
#include "node_addr.h"

#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "migrd/util/log.h"

int node_sockaddr(const struct cfg_node *n, unsigned port, struct sockaddr_storage *ss, socklen_t *len)
{
    struct addrinfo hints = {.ai_socktype = SOCK_STREAM, .ai_flags = AI_NUMERICSERV}, *res;
    char serv[8];
    snprintf(serv, sizeof serv, "%u", port);
    int rc = getaddrinfo(n->addr, serv, &hints, &res);
    if (rc)
        return rc;
    memcpy(ss, res->ai_addr, res->ai_addrlen);
    *len = res->ai_addrlen;
    freeaddrinfo(res);
    return 0;
}

int node_listen(const struct cfg_node *n, unsigned port)
{
    struct sockaddr_storage ss;
    socklen_t sl;
    int one = 1, rc = node_sockaddr(n, port, &ss, &sl);
    if (rc) {
        log_error("address of this node %s (%s): %s", n->name, n->addr, gai_strerror(rc));
        return -EINVAL;
    }
    int fd = socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -errno;
    if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) < 0 || bind(fd, (struct sockaddr *)&ss, sl) < 0 ||
        listen(fd, 64) < 0) {
        rc = -errno;
        close(fd);
        return rc;
    }
    return fd;
}

/* The IP of a socket address, IPv4-mapped IPv6 as IPv4: family, bytes. */
static int ip_of(const struct sockaddr *sa, const uint8_t **ip)
{
    if (sa->sa_family == AF_INET) {
        *ip = (const uint8_t *)&((const struct sockaddr_in *)sa)->sin_addr;
        return AF_INET;
    }
    if (sa->sa_family == AF_INET6) {
        const struct in6_addr *a = &((const struct sockaddr_in6 *)sa)->sin6_addr;
        if (IN6_IS_ADDR_V4MAPPED(a)) {
            *ip = a->s6_addr + 12;
            return AF_INET;
        }
        *ip = a->s6_addr;
        return AF_INET6;
    }
    return -1;
}

int node_addr_is(const struct cfg_node *n, const struct sockaddr_storage *peer)
{
    struct addrinfo hints = {.ai_socktype = SOCK_STREAM}, *res, *r;
    const uint8_t *pip, *nip;
    int pf = ip_of((const struct sockaddr *)peer, &pip), match = 0;
    if (pf < 0 || getaddrinfo(n->addr, NULL, &hints, &res))
        return 0;
    for (r = res; r && !match; r = r->ai_next)
        match = ip_of(r->ai_addr, &nip) == pf && !memcmp(pip, nip, pf == AF_INET ? 4 : 16);
    freeaddrinfo(res);
    return match;
}

int node_addr_known(const struct cluster_map *m, const struct sockaddr_storage *peer)
{
    for (int i = 0; i < m->nnodes; i++)
        if (node_addr_is(&m->nodes[i], peer))
            return 1;
    return 0;
}
