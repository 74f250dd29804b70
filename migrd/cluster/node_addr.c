/*
 * node_addr.c -- see node_addr.h.
 */
#include "node_addr.h"

#include <errno.h>
#include <netdb.h>
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
