/*
 * hostile.c -- a DiCOM client that writes into its own mapped mailbox what
 * an attacker would: records, lengths and positions that break the ring's
 * rules (common/ring.h), to check that migrd, which reads them, stays up.
 *
 * Usage: hostile CASE JOB
 *   pad0      a PAD record of slot 0 at the head of the outbox (hung migrd)
 *   badlen    a DATA record whose len runs past its slot (re-read forever)
 *   dfetch    valid records whose len is flipped to 8 MiB while migrd reads
 *             them (the double fetch: an 8 MiB over-read in postal_copy and
 *             mbox_deliver); the records go to a second mailbox of JOB
 *   head      the outbox's head put 8 bytes before the ring's end (migrd
 *             read a header 40 bytes past the ring)
 *   tail      rank 1's inbox tail put off a record boundary, then rank 0
 *             sends it a packet through migrd (a PAD header past the end)
 *   nodepage  try to write the node page (map it writable, mprotect it,
 *             write(2) to it): every way must fail
 * Mailboxes: (JOB, 0), and for dfetch and tail (JOB, 1) too.
 * Exit status: 0 if what the case expects happened -- for pad0, badlen and
 * tail migrd closes the broken mailbox (its control connection ends) within
 * 10 s; for dfetch, head and nodepage migrd just goes on -- else 1; prints
 * one line saying which.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "dicom/dicom_internal.h"

static dicom_mbox_t *open_box(uint32_t job, uint32_t rank)
{
    dicom_mbox_t *mb;
    dicom_open_opts_t o = {.inbox_size = 1u << 16, .outbox_size = 1u << 16};
    int rc = dicom_open((dicom_addr_t){job, rank}, &o, &mb);
    if (rc < 0) {
        fprintf(stderr, "hostile: dicom_open %u:%u: %s\n", job, rank, dicom_last_error());
        exit(2);
    }
    return mb;
}

static void bell(dicom_mbox_t *mb)
{
    uint64_t one = 1;
    if (write(mb->daemon_bell, &one, sizeof one) < 0)
        perror("hostile: doorbell");
}

/* A record at the outbox's tail, by hand: slot, len and kind as given. */
static struct dicom_pkt *forge(dicom_mbox_t *mb, uint32_t slot, uint32_t len, uint16_t kind, dicom_addr_t dst)
{
    struct ring *r = &mb->outbox;
    uint64_t t = atomic_load(&r->ctl->tail);
    struct dicom_pkt *k = (struct dicom_pkt *)(r->data + (t & r->mask));
    pkt_fill(k, mb->self.job, mb->self.rank, dst.job, dst.rank, 1, 0, kind, len);
    k->slot = slot;
    atomic_store(&r->ctl->tail, t + (slot ? slot : RING_ALIGN));
    atomic_store(&k->commit, t + 1);
    return k;
}

/* Does migrd end mb's control connection within ms? */
static int closed_by_migrd(dicom_mbox_t *mb, int ms)
{
    char buf[4096];
    for (int waited = 0; waited < ms; waited += 100) {
        struct pollfd p = {.fd = mb->ctl_fd, .events = POLLIN};
        if (poll(&p, 1, 100) <= 0)
            continue;
        ssize_t n = recv(mb->ctl_fd, buf, sizeof buf, MSG_DONTWAIT);
        if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR))
            return 1;
    }
    return 0;
}

static int expect_closed(dicom_mbox_t *mb, const char *what)
{
    bell(mb);
    if (closed_by_migrd(mb, 10000)) {
        printf("hostile: %s: migrd closed mailbox %u:%u\n", what, mb->self.job, mb->self.rank);
        return 0;
    }
    printf("hostile: %s: mailbox %u:%u still open after 10 s\n", what, mb->self.job, mb->self.rank);
    return 1;
}

static uint64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* Records of 16 bytes to (job, 1), each len flipped between 16 and 8 MiB
 * until migrd has taken it (or has closed the mailbox). */
static int double_fetch(dicom_mbox_t *mb, dicom_mbox_t *peer)
{
    struct ring *r = &mb->outbox;
    unsigned sent = 0, closed = 0;
    uint64_t end = now_ms() + 3000;
    while (now_ms() < end && !closed) {
        struct ring_resv rv;
        if (ring_reserve(r, 16, &rv) < 0) {
            closed = closed_by_migrd(mb, 10);
            continue;
        }
        pkt_fill(rv.pkt, mb->self.job, 0, mb->self.job, 1, ++sent, 0, PKT_DATA, 16);
        ring_commit(r, &rv);
        bell(mb);
        volatile uint32_t *len = &rv.pkt->len;
        /* mostly 16, now and then 8 MiB for a moment: a length checked
         * while it is 16 and read again later is caught at 8 MiB */
        for (unsigned i = 0; i < 200000 && atomic_load(&r->ctl->head) <= rv.pos; i++) {
            *len = (i % 8) == 7 ? 8u << 20 : 16;
            *len = 16;
        }
        /* keep rank 1's inbox from filling up */
        for (dicom_msg_t m; dicom_peek(peer, &m) > 0;)
            dicom_release(peer, &m);
        if ((sent & 63) == 0)
            closed = closed_by_migrd(mb, 1);
    }
    printf("hostile: dfetch: %u records flipped, mailbox %s\n", sent,
           closed ? "closed by migrd (it saw a bad length)" : "still open");
    return 0;
}

static int node_page(dicom_mbox_t *mb)
{
    const char *page = (const char *)mb->node_page;
    int bad = 0;
    if (mprotect((void *)page, MBOX_PAGE, PROT_READ | PROT_WRITE) == 0) {
        printf("hostile: nodepage: mprotect made the node page writable\n");
        bad = 1;
    }
    /* Reopen its object read-write (as root through map_files; a user could
     * through a descriptor migrd handed out) and try to map or write it. */
    char path[128];
    snprintf(path, sizeof path, "/proc/self/map_files/%lx-%lx", (unsigned long)page,
             (unsigned long)(page + MBOX_PAGE));
    int fd = open(path, O_RDWR);
    if (fd < 0) {
        printf("hostile: nodepage: cannot reopen %s: %s (not tried)\n", path, strerror(errno));
    } else {
        void *w = mmap(NULL, MBOX_PAGE, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
        if (w != MAP_FAILED) {
            printf("hostile: nodepage: the node page was mapped writable\n");
            bad = 1;
        }
        if (pwrite(fd, "x", 1, 100) == 1) {
            printf("hostile: nodepage: write(2) to the node page succeeded\n");
            bad = 1;
        }
        close(fd);
    }
    if (!bad)
        printf("hostile: nodepage: every write to the node page was refused\n");
    return bad;
}

int main(int argc, char **argv)
{
    if (argc != 3) {
        fprintf(stderr, "usage: hostile pad0|badlen|dfetch|head|tail|nodepage JOB\n");
        return 2;
    }
    const char *c = argv[1];
    uint32_t job = (uint32_t)strtoul(argv[2], NULL, 0);
    dicom_mbox_t *mb = open_box(job, 0);
    dicom_addr_t nobody = {job, 7};
    if (!strcmp(c, "pad0")) {
        forge(mb, 0, 0, PKT_PAD, nobody);
        return expect_closed(mb, c);
    }
    if (!strcmp(c, "badlen")) {
        forge(mb, 64, 4096, PKT_DATA, nobody);
        return expect_closed(mb, c);
    }
    if (!strcmp(c, "dfetch"))
        return double_fetch(mb, open_box(job, 1));
    if (!strcmp(c, "head")) {
        atomic_store(&mb->outbox.ctl->head, mb->outbox.size - 8);
        bell(mb);
        sleep(1);
        printf("hostile: head: outbox head put at %llu\n", (unsigned long long)(mb->outbox.size - 8));
        return 0;
    }
    if (!strcmp(c, "tail")) {
        dicom_mbox_t *victim = open_box(job, 1);
        atomic_store(&victim->inbox.ctl->tail, victim->inbox.size - 8);
        atomic_store(&victim->inbox.ctl->head, victim->inbox.size - 8);
        forge(mb, 128, 16, PKT_DATA, victim->self);
        bell(mb);
        return expect_closed(victim, c);
    }
    if (!strcmp(c, "nodepage"))
        return node_page(mb);
    fprintf(stderr, "hostile: unknown case %s\n", c);
    return 2;
}
