/*
 * dicom_stream.c -- every rank of a DiCOM job streams verified packets to
 * every other rank, while ranks may be moved between nodes.
 *
 * Usage: dicom_stream JOB RANK NRANKS COUNT [PAUSE_US]
 * Each rank sends COUNT packets to each other rank (one to each per round,
 * PAUSE_US between rounds), and receives from each.  Every packet carries
 * (sender, index) in its tag and contents; the receiver checks order,
 * contents and count per sender.  Exit 0 only if everything arrived
 * intact, exactly once and in order; the last line says what was seen.
 *
 * DICOM_STREAM_WHILE=FILE: a rank goes on past COUNT for as long as FILE
 * exists (a test's storm lasts as long as its moves need, whatever the
 * machine's speed), then tells each peer how many it sent in a last
 * packet of tag END_TAG; the receiver checks that it got exactly those.
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <migr/dicom.h>

#define MAXLEN 3000
#define DATA_TAG 1
#define END_TAG 2

static size_t len_of(uint32_t who, uint32_t i) { return (size_t)((who * 977u + i * 131u) % MAXLEN) + 8; }

static void fill(unsigned char *b, size_t n, uint32_t who, uint32_t i)
{
    memcpy(b, &i, 4);
    memcpy(b + 4, &who, 4);
    for (size_t k = 8; k < n; k++)
        b[k] = (unsigned char)(who * 131 + i * 7 + k);
}

/* 0: packet i of who, intact */
static int check(const unsigned char *b, size_t n, uint32_t who, uint32_t i)
{
    uint32_t gi, gw;
    if (n != len_of(who, i))
        return -1;
    memcpy(&gi, b, 4);
    memcpy(&gw, b + 4, 4);
    if (gi != i || gw != who)
        return -1;
    for (size_t k = 8; k < n; k++)
        if (b[k] != (unsigned char)(who * 131 + i * 7 + k))
            return -1;
    return 0;
}

struct peer {
    uint32_t sent, got;
    uint32_t total; /* what it sends us: COUNT, or its END_TAG word */
    int told;       /* our END_TAG packet to it is sent              */
};

/* Take every packet waiting; -1 on a wrong one. */
static int drain(dicom_mbox_t *mb, struct peer *pr, uint32_t n, uint32_t me, unsigned char *in)
{
    for (;;) {
        dicom_msg_t info;
        long got = dicom_recv(mb, NULL, in, MAXLEN + 8, &info, DICOM_NONBLOCK);
        if (got == -EAGAIN)
            return 0;
        if (got < 0) {
            fprintf(stderr, "rank %u: recv: %s\n", me, dicom_last_error());
            return -1;
        }
        uint32_t who = info.src.rank;
        if (info.tag == END_TAG && who < n && who != me && got == 4) {
            memcpy(&pr[who].total, in, 4);
            if (pr[who].total != pr[who].got) {
                fprintf(stderr, "rank %u: rank %u says it sent %u packets, %u arrived\n", me, who,
                        pr[who].total, pr[who].got);
                return -1;
            }
            continue;
        }
        if (who >= n || who == me || check(in, (size_t)got, who, pr[who].got)) {
            uint32_t gi = 0;
            if (got >= 4)
                memcpy(&gi, in, 4);
            fprintf(stderr, "rank %u: from rank %u expected packet %u (%zu bytes), got %ld bytes "
                    "saying packet %u\n", me, who, who < n ? pr[who].got : 0,
                    who < n ? len_of(who, pr[who].got) : 0, got, gi);
            return -1;
        }
        pr[who].got++;
        if (getenv("DICOM_STREAM_TRACE") && pr[who].got % 250 == 0) {
            struct timespec ts;
            clock_gettime(CLOCK_REALTIME, &ts);
            fprintf(stderr, "%ld.%03ld rank %u: %u from rank %u\n", (long)ts.tv_sec % 100,
                    ts.tv_nsec / 1000000, me, pr[who].got, who);
        }
    }
}

int main(int argc, char **argv)
{
    if (argc < 5) {
        fprintf(stderr, "usage: %s JOB RANK NRANKS COUNT [PAUSE_US]\n", argv[0]);
        return 2;
    }
    dicom_addr_t me = {(uint32_t)atoi(argv[1]), (uint32_t)atoi(argv[2])};
    uint32_t n = (uint32_t)atoi(argv[3]), count = (uint32_t)atoi(argv[4]);
    long pause_us = argc > 5 ? atol(argv[5]) : 0;
    if (n < 2 || n > 64 || me.rank >= n) {
        fprintf(stderr, "%s: need 2 <= NRANKS <= 64 and RANK < NRANKS\n", argv[0]);
        return 2;
    }
    dicom_mbox_t *mb;
    if (dicom_open(me, NULL, &mb) < 0) {
        fprintf(stderr, "dicom_open: %s\n", dicom_last_error());
        return 1;
    }
    const char *while_file = getenv("DICOM_STREAM_WHILE");
    struct peer *pr = calloc(n, sizeof *pr);
    unsigned char out[MAXLEN + 8], in[MAXLEN + 8];
    int done = 0;
    if (!pr) {
        fprintf(stderr, "rank %u: out of memory\n", me.rank);
        return 1;
    }
    for (uint32_t p = 0; p < n; p++)
        pr[p].total = while_file ? UINT32_MAX : count;
    while (!done) {
        int go_on = while_file && access(while_file, F_OK) == 0;
        done = 1;
        for (uint32_t p = 0; p < n; p++) {
            if (p == me.rank)
                continue;
            int rc = 0;
            if (pr[p].sent < count || go_on) {
                size_t len = len_of(me.rank, pr[p].sent);
                fill(out, len, me.rank, pr[p].sent);
                rc = dicom_send(mb, (dicom_addr_t){me.job, p}, DATA_TAG, out, len, DICOM_NONBLOCK);
                if (rc == 0)
                    pr[p].sent++;
            } else if (while_file && !pr[p].told) {
                rc = dicom_send(mb, (dicom_addr_t){me.job, p}, END_TAG, &pr[p].sent, 4, DICOM_NONBLOCK);
                pr[p].told = rc == 0;
            }
            if (rc < 0 && rc != -EAGAIN) {
                fprintf(stderr, "rank %u: send to %u: %s\n", me.rank, p, dicom_last_error());
                return 1;
            }
            if (pr[p].sent < count || go_on || (while_file && !pr[p].told) || pr[p].got != pr[p].total)
                done = 0;
        }
        if (drain(mb, pr, n, me.rank, in) < 0)
            return 1;
        if (!done && pause_us) {
            struct timespec ts = {pause_us / 1000000, (pause_us % 1000000) * 1000};
            nanosleep(&ts, NULL);
        }
    }
    dicom_stats_t st;
    dicom_get_stats(mb, &st);
    uint32_t least = UINT32_MAX;
    for (uint32_t p = 0; p < n; p++)
        if (p != me.rank && pr[p].got < least)
            least = pr[p].got;
    printf("rank %u on %s: %u packets to and from each of %u peers ok (dup %lu, held %lu)\n", me.rank,
           dicom_node_name(mb), while_file ? least : count, n - 1, (unsigned long)st.duplicates,
           (unsigned long)st.held);
    dicom_close(mb);
    free(pr);
    return 0;
}
