/*
 * arrive.c -- ends the moment it runs on another node than the one it
 * started on (its UTS name changes with the move): says where it
 * arrived and exits 7.  A process whose end follows its restore by
 * microseconds, while the new node is still proving itself to the home.
 */
#include <stdio.h>
#include <string.h>
#include <sys/utsname.h>

int main(void)
{
    struct utsname was, now;
    if (uname(&was) < 0) {
        perror("arrive: uname");
        return 1;
    }
    printf("started on %s\n", was.nodename);
    fflush(stdout);
    do {
        if (uname(&now) < 0) {
            perror("arrive: uname");
            return 1;
        }
    } while (strcmp(was.nodename, now.nodename) == 0);
    printf("arrived on %s\n", now.nodename);
    return 7;
}
