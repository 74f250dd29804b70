/*
 * migrctl_client.c -- see migrctl.h.
 */
#include "migrctl.h"

#include <errno.h>
#include <poll.h>
#include <pwd.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "../common/ctlmsg.h"

const char *migrctl_socket;

int migrctl_connect(void)
{
    int fd = ctl_connect(migrctl_socket);
    if (fd < 0) {
        fprintf(stderr, "migrctl: no migrd answers on %s: %s\n", migrctl_socket, strerror(-fd));
        return -1;
    }
    return fd;
}

const struct ctl_hdr *migrctl_receive(int fd, char *buf, int timeout_ms)
{
    struct pollfd p = {.fd = fd, .events = POLLIN};
    int fds[CTL_MAX_FDS], nfds, eof;
    int ready = poll(&p, 1, timeout_ms);
    if (ready <= 0) {
        if (ready < 0)
            fprintf(stderr, "migrctl: waiting for migrd's answer on %s: %s\n", migrctl_socket, strerror(errno));
        else
            fprintf(stderr, "migrctl: migrd did not answer within %d s\n", timeout_ms / 1000);
        return NULL;
    }
    ssize_t n = ctl_recv(fd, buf, CTL_MAX_MSG, fds, &nfds, &eof, 0);
    for (int i = 0; i < nfds; i++)
        close(fds[i]);
    if (eof || n < 0) {
        fprintf(stderr, "migrctl: reading migrd's answer: %s\n", eof ? "connection closed" : strerror((int)-n));
        return NULL;
    }
    const struct ctl_hdr *h = (const void *)buf;
    if (h->type == CTL_ERROR && h->len == sizeof(struct ctl_error)) {
        const struct ctl_error *e = (const void *)(h + 1);
        fprintf(stderr, "migrctl: migrd refused: %.200s\n", e->message);
        return NULL;
    }
    return h;
}

int migrctl_request_all(uint16_t type, void (*each)(const struct ctl_hdr *h, void *arg), void *arg)
{
    static char buf[CTL_MAX_MSG];
    int fd = migrctl_connect();
    if (fd < 0)
        return 1;
    int rc = ctl_send(fd, type, 1, NULL, 0, NULL, 0);
    if (rc < 0) {
        fprintf(stderr, "migrctl: sending the %s request on %s: %s\n", ctl_type_name(type), migrctl_socket,
                strerror(-rc));
        close(fd);
        return 1;
    }
    for (;;) {
        const struct ctl_hdr *h = migrctl_receive(fd, buf, REPLY_TIMEOUT_MS);
        if (!h) {
            close(fd);
            return 1;
        }
        if (h->type == CTL_END)
            break;
        each(h, arg);
    }
    close(fd);
    return 0;
}

void migrctl_bytes(char *out, size_t len, uint64_t b)
{
    const char *u[] = {"B", "KiB", "MiB", "GiB", "TiB"};
    double v = (double)b;
    int i = 0;
    while (v >= 1024 && i < 4)
        v /= 1024, i++;
    snprintf(out, len, i ? "%.1f %s" : "%.0f %s", v, u[i]);
}

const char *migrctl_user(uid_t uid, char *buf, size_t len)
{
    struct passwd *pw = getpwuid(uid);
    if (pw && pw->pw_name)
        snprintf(buf, len, "%s", pw->pw_name);
    else
        snprintf(buf, len, "%u", (unsigned)uid);
    return buf;
}

const char *migrctl_printable(char *out, const char *s, size_t n)
{
    size_t i;
    for (i = 0; i < n && s[i]; i++)
        out[i] = (unsigned char)s[i] < 0x20 || s[i] == 0x7f ? '?' : s[i];
    out[i] = 0;
    return out;
}
