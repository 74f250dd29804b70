/*
 * dicom_pingpong.c -- two DiCOM processes exchange verified packets.
 *
 * Usage: dicom_pingpong JOB RANK PEER_RANK COUNT [MAXSIZE]
 * Rank with the smaller number sends first.  Every packet carries
 * (sender, index) and a pattern; the receiver checks order, contents and
 * count, then answers.  Exit 0 only if everything arrived intact, once and
 * in order.  Used by the test suite on one node and across virtual nodes.
 *
 * Environment: DICOM_PINGPONG_MAX_FAULTS=N fails the run if the exchanges
 * after the first one took more than N page faults (the rings must come
 * populated); DICOM_PINGPONG_LAZY=1 opens the mailbox with lazy_rings;
 * DICOM_PINGPONG_SINGLE=1 opens it single_thread and sends every other
 * packet with dicom_send_reserve/commit, checking that the safe-point word
 * says "inside a send" between the two and "outside" before and after.
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#include <migr/dicom.h>

static void fill(unsigned char *b, size_t n, uint32_t who, uint32_t i)
{
    for (size_t k = 0; k < n; k++)
        b[k] = (unsigned char)(who * 131 + i * 7 + k);
}

static int check(const unsigned char *b, size_t n, uint32_t who, uint32_t i)
{
    for (size_t k = 0; k < n; k++)
        if (b[k] != (unsigned char)(who * 131 + i * 7 + k))
            return -1;
    return 0;
}

static long minor_faults(void)
{
    struct rusage ru;
    if (getrusage(RUSAGE_SELF, &ru) < 0) {
        perror("getrusage");
        exit(1);
    }
    return ru.ru_minflt;
}

/* A zero-copy send (retried while there is no room) that checks the
 * safe-point word migrd reads when it moves the process. */
static int send_checked(dicom_mbox_t *mb, dicom_addr_t peer, uint16_t tag, const void *buf, size_t n)
{
    const volatile uint32_t *critical = dicom_critical_word(mb);
    dicom_txn_t txn;
    int rc;

    if (*critical != 0) {
        fprintf(stderr, "safe point: the word says %u before a send\n", *critical);
        return -1;
    }
    while ((rc = dicom_send_reserve(mb, peer, tag, n, &txn)) == -EAGAIN)
        if (*critical != 0) {
            fprintf(stderr, "safe point: the word says %u after a refused reservation\n", *critical);
            return -1;
        }
    if (rc < 0)
        return rc;
    if (*critical != 1) {
        fprintf(stderr, "safe point: the word says %u inside a send, expected 1\n", *critical);
        return -1;
    }
    memcpy(txn.data, buf, n);
    dicom_send_commit(mb, &txn, n);
    if (*critical != 0) {
        fprintf(stderr, "safe point: the word says %u after a send\n", *critical);
        return -1;
    }
    return 0;
}

static size_t size_of(uint32_t i, size_t max)
{
    /* 0 .. max, mostly small */
    uint64_t x = (uint64_t)i * 2654435761u;
    return (i % 7 == 0) ? (size_t)(x % (max + 1)) : (size_t)(x % 257);
}

int main(int argc, char **argv)
{
    if (argc < 5) {
        fprintf(stderr, "usage: %s JOB RANK PEER_RANK COUNT [MAXSIZE]\n", argv[0]);
        return 2;
    }
    dicom_addr_t me = {(uint32_t)atoi(argv[1]), (uint32_t)atoi(argv[2])};
    dicom_addr_t peer = {me.job, (uint32_t)atoi(argv[3])};
    uint32_t count = (uint32_t)atoi(argv[4]);
    size_t max = argc > 5 ? (size_t)atol(argv[5]) : 65536;
    const char *max_faults = getenv("DICOM_PINGPONG_MAX_FAULTS");
    const char *lazy = getenv("DICOM_PINGPONG_LAZY");
    const char *single = getenv("DICOM_PINGPONG_SINGLE");
    dicom_open_opts_t opts = {.lazy_rings = lazy && *lazy == '1',
                              .single_thread = single && *single == '1'};
    long faults0 = 0;
    dicom_mbox_t *mb;
    int rc = dicom_open(me, &opts, &mb);
    if (rc < 0) {
        fprintf(stderr, "dicom_open: %s\n", dicom_last_error());
        return 1;
    }
    if (max > dicom_max_payload(mb))
        max = dicom_max_payload(mb);
    unsigned char *buf = malloc(max), *in = malloc(max);
    int first = me.rank < peer.rank;
    for (uint32_t i = 0; i < count; i++) {
        if (i == 1)
            faults0 = minor_faults(); /* both routes are mapped by now */
        for (int turn = 0; turn < 2; turn++) {
            int sending = (turn == 0) == first;
            size_t n = size_of(i, max);
            if (sending) {
                fill(buf, n, me.rank, i);
                rc = opts.single_thread && i % 2 ? send_checked(mb, peer, (uint16_t)(i & 0xffff), buf, n)
                                                 : dicom_send(mb, peer, (uint16_t)(i & 0xffff), buf, n, 0);
                if (rc < 0) {
                    fprintf(stderr, "send %u: %s\n", i, dicom_last_error());
                    return 1;
                }
            } else {
                dicom_msg_t info;
                long got = dicom_recv(mb, &peer, in, max, &info, 0);
                if (got < 0) {
                    fprintf(stderr, "recv %u: %s\n", i, dicom_last_error());
                    return 1;
                }
                if ((size_t)got != n || info.tag != (uint16_t)(i & 0xffff) || check(in, n, peer.rank, i)) {
                    fprintf(stderr, "packet %u from %u: got %ld bytes tag %u, expected %zu bytes tag %u%s\n",
                            i, peer.rank, got, info.tag, n, i & 0xffff,
                            (size_t)got == n ? " (contents differ)" : "");
                    return 1;
                }
            }
        }
    }
    long faults = minor_faults() - faults0;
    if (max_faults && count > 1 && faults > atol(max_faults)) {
        fprintf(stderr, "rank %u: %ld page faults in exchanges 1..%u, more than %s: cold rings?\n",
                me.rank, faults, count - 1, max_faults);
        return 1;
    }
    dicom_stats_t st;
    dicom_get_stats(mb, &st);
    printf("rank %u on %s: %u exchanges ok (local %lu, remote %lu, dup %lu, held %lu, %ld page faults)\n",
           me.rank, dicom_node_name(mb), count, (unsigned long)st.sent_local,
           (unsigned long)st.sent_remote, (unsigned long)st.duplicates, (unsigned long)st.held, faults);
    dicom_close(mb);
    free(buf);
    free(in);
    return 0;
}
