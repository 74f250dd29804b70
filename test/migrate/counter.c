/*
 * counter -- a migration test program with steady, checkable output.
 *   counter N MS CODE   print "tick i" for i = 1..N every MS ms, exit CODE
 *   counter echo CODE   print "got: LINE" for every stdin line; exit CODE at EOF
 * Output is unbuffered so that what is written before a move is visible.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

int main(int argc, char **argv)
{
    setvbuf(stdout, NULL, _IONBF, 0);
    if (argc == 3 && !strcmp(argv[1], "echo")) {
        char line[4096];
        while (fgets(line, sizeof line, stdin))
            printf("got: %s", line);
        return atoi(argv[2]);
    }
    if (argc != 4) {
        fprintf(stderr, "usage: counter N MS CODE | counter echo CODE\n");
        return 2;
    }
    long n = atol(argv[1]), ms = atol(argv[2]);
    for (long i = 1; i <= n; i++) {
        struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
        printf("tick %ld\n", i);
        while (nanosleep(&ts, &ts) != 0)
            ;
    }
    return atoi(argv[3]);
}
