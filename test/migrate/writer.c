/*
 * writer -- a migration test program that writes numbered lines to files.
 *   writer N MS CODE [--stderr] [--own PATH]
 * For i = 1..N, every MS ms: "out i" to stdout, with --stderr also
 * "err i" to stderr, with --own also "own i" to PATH (which it opens
 * itself, truncated), checking after each write that the offset of its
 * own descriptor is where its own writes left it; exit CODE, or 3 (with
 * "OWN OFFSET" on stderr) when an offset was wrong.  Every line is one
 * write(2), so nothing is buffered across a move.
 */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static void line(int fd, const char *tag, long i)
{
    char buf[64];
    int n = snprintf(buf, sizeof buf, "%s %ld\n", tag, i);
    if (write(fd, buf, (size_t)n) != n) {
        perror("writer: write");
        exit(4);
    }
}

int main(int argc, char **argv)
{
    int err = 0, own = -1;
    if (argc < 4) {
        fprintf(stderr, "usage: writer N MS CODE [--stderr] [--own PATH]\n");
        return 2;
    }
    for (int a = 4; a < argc; a++) {
        if (!strcmp(argv[a], "--stderr")) {
            err = 1;
        } else if (!strcmp(argv[a], "--own") && a + 1 < argc) {
            own = open(argv[++a], O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
            if (own < 0) {
                perror(argv[a]);
                return 2;
            }
        } else {
            fprintf(stderr, "writer: unknown argument %s\n", argv[a]);
            return 2;
        }
    }
    long n = atol(argv[1]), ms = atol(argv[2]);
    off_t at = 0;
    for (long i = 1; i <= n; i++) {
        struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
        line(1, "out", i);
        if (err)
            line(2, "err", i);
        if (own >= 0) {
            char buf[64];
            at += snprintf(buf, sizeof buf, "own %ld\n", i);
            line(own, "own", i);
            if (lseek(own, 0, SEEK_CUR) != at) {
                fprintf(stderr, "writer: OWN OFFSET %lld, not %lld, after line %ld\n",
                        (long long)lseek(own, 0, SEEK_CUR), (long long)at, i);
                return 3;
            }
        }
        while (nanosleep(&ts, &ts) != 0)
            ;
    }
    return atoi(argv[3]);
}
