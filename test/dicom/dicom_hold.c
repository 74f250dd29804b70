/*
 * dicom_hold.c -- connects to migrd's control socket, as a DiCOM client
 * does before it asks for its mailbox, and holds the connection without
 * asking: a process caught between the two, which a move must refuse.
 *
 * Usage: dicom_hold [SOCKET]   (default: $MIGR_SOCKET, else the default path)
 * Prints "connected" once connected, then waits until it is signalled.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <migr/dicom.h>

int main(int argc, char **argv)
{
    const char *path = argc > 1 ? argv[1] : getenv("MIGR_SOCKET");
    if (!path || !*path)
        path = DICOM_DEFAULT_SOCKET;
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    if (strlen(path) >= sizeof sa.sun_path) {
        fprintf(stderr, "dicom_hold: socket path too long: %s\n", path);
        return 2;
    }
    memcpy(sa.sun_path, path, strlen(path) + 1);
    int fd = socket(AF_UNIX, SOCK_SEQPACKET, 0);
    if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof sa) < 0) {
        perror("dicom_hold: connecting to migrd's control socket");
        return 1;
    }
    printf("connected\n");
    fflush(stdout);
    for (;;)
        pause();
}
