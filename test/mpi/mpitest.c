/*
 * mpitest.c — shared helpers for migr's MPI test programs (see mpitest.h).
 */
#include "mpitest.h"

#include <limits.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int mt_rank = -1;
int mt_size = 0;

#define MT_VERBOSE_MAX 20 /* failure lines per rank in verbose mode */

static const char *prog_name = "mpitest";
static int verbose;
static int keep_going;
static long corrupt_min; /* 0: self-test off */
static int tamper_done;
static int fail_count;
static char watchdog_msg[256];
static size_t watchdog_len;

/* ---------------------------------------------------------------- env */

static long env_long(const char *name, long dflt)
{
    const char *v = getenv(name);
    char *end;
    long x;

    if (v == NULL || *v == '\0')
        return dflt;
    x = strtol(v, &end, 10);
    return (*end == '\0' && x >= 0) ? x : dflt;
}

/* Rounds of the body begun so far (MIGR_TEST_UNTIL mode). */
static int until_rounds;

/* Every rank evaluates `loop < mt_loops()` once before each round; in
 * MIGR_TEST_UNTIL mode each evaluation is a broadcast from rank 0, so that
 * all ranks do the same number of rounds. */
int mt_loops(void)
{
    const char *until = getenv("MIGR_TEST_UNTIL");

    if (until != NULL && *until != '\0') {
        int more = until_rounds == 0 || access(until, F_OK) != 0;

        MPI_Bcast(&more, 1, MPI_INT, 0, MPI_COMM_WORLD);
        if (!more)
            return 0;
        until_rounds++;
        return INT_MAX;
    }
    long n = env_long("MIGR_TEST_LOOPS", 1);

    return n < 1 ? 1 : (int)n;
}

/* ---------------------------------------------------------- reporting */

/* Write one complete line with a single write(2) so lines of different
 * threads or ranks do not interleave. */
static void emit_line(FILE *stream, const char *fmt, va_list ap)
{
    char line[512];
    int n = snprintf(line, sizeof(line), "%s: rank %d: ", prog_name, mt_rank);

    if (n < 0)
        return;
    vsnprintf(line + n, sizeof(line) - (size_t)n - 1, fmt, ap);
    n = (int)strlen(line);
    line[n++] = '\n';
    fflush(stream);
    if (write(fileno(stream), line, (size_t)n) < 0)
        return; /* nothing sensible left to do */
}

void mt_fail(const char *fmt, ...)
{
    int prev = __atomic_fetch_add(&fail_count, 1, __ATOMIC_SEQ_CST);
    va_list ap;

    if (prev == 0 || (verbose && prev < MT_VERBOSE_MAX)) {
        va_start(ap, fmt);
        emit_line(stderr, fmt, ap);
        va_end(ap);
    }
    if (!keep_going)
        MPI_Abort(MPI_COMM_WORLD, 1);
}

int mt_failures(void)
{
    return __atomic_load_n(&fail_count, __ATOMIC_SEQ_CST);
}

void mt_die(const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    emit_line(stderr, fmt, ap);
    va_end(ap);
    MPI_Abort(MPI_COMM_WORLD, 1);
    _exit(1); /* MPI_Abort does not return; keep the compiler informed */
}

/* ------------------------------------------------------ MPI life cycle */

static void on_mpi_error(MPI_Comm *comm, int *code, ...)
{
    char msg[MPI_MAX_ERROR_STRING];
    int len = 0;

    (void)comm;
    MPI_Error_string(*code, msg, &len);
    mt_die("MPI error: %s", msg);
}

static void on_watchdog(int sig)
{
    (void)sig;
    if (write(STDERR_FILENO, watchdog_msg, watchdog_len) < 0)
        _exit(2);
    _exit(2);
}

static void start_watchdog(void)
{
    long secs = env_long("MIGR_TEST_WATCHDOG", 100);
    int n;

    if (secs == 0)
        return;
    n = snprintf(watchdog_msg, sizeof(watchdog_msg),
                 "%s: rank %d: watchdog: not finished after %ld s (hang?)\n",
                 prog_name, mt_rank, secs);
    watchdog_len = n > 0 ? (size_t)n : 0;
    signal(SIGALRM, on_watchdog);
    alarm((unsigned)secs);
}

static void setup_common(const char *name)
{
    MPI_Errhandler eh;

    prog_name = name;
    MPI_Comm_rank(MPI_COMM_WORLD, &mt_rank);
    MPI_Comm_size(MPI_COMM_WORLD, &mt_size);
    MPI_Comm_create_errhandler(on_mpi_error, &eh);
    MPI_Comm_set_errhandler(MPI_COMM_WORLD, eh);
    MPI_Errhandler_free(&eh);
    verbose = env_long("MIGR_TEST_VERBOSE", 0) != 0;
    keep_going = env_long("MIGR_TEST_KEEP_GOING", 0) != 0;
    corrupt_min = mt_rank == mt_size - 1 ? env_long("MIGR_TEST_CORRUPT", 0)
                                         : 0;
    start_watchdog();
}

void mt_init(int *argc, char ***argv, const char *name)
{
    MPI_Init(argc, argv);
    setup_common(name);
}

void mt_init_thread(int *argc, char ***argv, const char *name, int required)
{
    int provided = MPI_THREAD_SINGLE;

    MPI_Init_thread(argc, argv, required, &provided);
    setup_common(name);
    if (provided < required)
        mt_die("MPI_Init_thread: asked for thread level %d, library "
               "provides only %d", required, provided);
}

void mt_require_ranks(int min)
{
    if (mt_size < min)
        mt_die("needs at least %d ranks, started with %d", min, mt_size);
}

int mt_finish(void)
{
    int mine[2] = { mt_failures(), mt_failures() > 0 };
    int total[2] = { 0, 0 };

    alarm(0);
    MPI_Allreduce(mine, total, 2, MPI_INT, MPI_SUM, MPI_COMM_WORLD);
    if (mt_rank == 0) {
        if (until_rounds > 0)
            printf("%s: %d rounds until %s appeared\n", prog_name, until_rounds,
                   getenv("MIGR_TEST_UNTIL"));
        if (total[0] == 0)
            printf("%s: OK (np=%d)\n", prog_name, mt_size);
        else
            printf("%s: FAILED (%d failed checks on %d ranks)\n", prog_name,
                   total[0], total[1]);
        fflush(stdout);
    }
    MPI_Finalize();
    return total[0] == 0 ? 0 : 1;
}

/* ----------------------------------------------------------- memory */

void *mt_alloc(size_t len)
{
    void *p = malloc(len ? len : 1);

    if (p == NULL)
        mt_die("out of memory allocating %zu bytes", len);
    return p;
}

/* ---------------------------------------------------------- patterns */

uint64_t mt_hash64(uint64_t x)
{
    x += 0x9e3779b97f4a7c15ULL;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
    return x ^ (x >> 31);
}

uint64_t mt_key(uint64_t a, uint64_t b, uint64_t c, uint64_t d)
{
    uint64_t h = mt_hash64(a ^ 0x6d69677274657374ULL); /* "migrtest" */

    h = mt_hash64(h ^ b);
    h = mt_hash64(h ^ c);
    return mt_hash64(h ^ d);
}

static uint64_t pattern_word(uint64_t key, size_t word)
{
    return mt_hash64(key ^ ((uint64_t)word * 0xd1342543de82ef95ULL));
}

uint8_t mt_pattern_byte(uint64_t key, size_t offset)
{
    return (uint8_t)(pattern_word(key, offset / 8) >> (8 * (offset % 8)));
}

static void word_bytes(uint64_t w, uint8_t out[8])
{
    for (int i = 0; i < 8; i++)
        out[i] = (uint8_t)(w >> (8 * i));
}

void mt_fill(void *buf, size_t len, uint64_t key)
{
    uint8_t *p = buf;
    uint8_t w[8];

    for (size_t off = 0; off < len; off += 8) {
        size_t n = len - off < 8 ? len - off : 8;

        word_bytes(pattern_word(key, off / 8), w);
        memcpy(p + off, w, n);
    }
}

int mt_verify(const void *buf, size_t len, uint64_t key, const char *what)
{
    const uint8_t *p = buf;
    uint8_t w[8];

    for (size_t off = 0; off < len; off += 8) {
        size_t n = len - off < 8 ? len - off : 8;

        word_bytes(pattern_word(key, off / 8), w);
        if (memcmp(p + off, w, n) == 0)
            continue;
        for (size_t i = 0; i < n; i++) {
            if (p[off + i] != w[i]) {
                mt_fail("%s: byte %zu of %zu is 0x%02x, expected 0x%02x",
                        what, off + i, len, p[off + i], w[i]);
                return 0;
            }
        }
    }
    return 1;
}

#define GUARD_BYTE 0xa5

void mt_guard_fill(void *buf, size_t len)
{
    memset(buf, GUARD_BYTE, len);
}

void mt_guard_set(void *end)
{
    mt_guard_fill(end, MT_GUARD_LEN);
}

int mt_guard_ok(const void *end, const char *what)
{
    const uint8_t *p = end;

    for (size_t i = 0; i < MT_GUARD_LEN; i++) {
        if (p[i] != GUARD_BYTE) {
            mt_fail("%s: byte %zu after the end overwritten (0x%02x)", what, i,
                    p[i]);
            return 0;
        }
    }
    return 1;
}

/* ------------------------------------------------------------ status */

int mt_check_status(const MPI_Status *st, int src, int tag, MPI_Datatype type,
                    int count, const char *what)
{
    int got = -1;

    if (src != MPI_ANY_SOURCE && st->MPI_SOURCE != src) {
        mt_fail("%s: status source %d, expected %d", what, st->MPI_SOURCE, src);
        return 0;
    }
    if (tag != MPI_ANY_TAG && st->MPI_TAG != tag) {
        mt_fail("%s: status tag %d, expected %d", what, st->MPI_TAG, tag);
        return 0;
    }
    MPI_Get_count(st, type, &got);
    if (got != count) {
        mt_fail("%s: status count %d, expected %d", what, got, count);
        return 0;
    }
    return 1;
}

/* ----------------------------------------------------------- pairing */

static int pair_slots(void)
{
    return mt_size + (mt_size & 1); /* odd sizes get a dummy rank */
}

int mt_pair_rounds(void)
{
    return pair_slots() - 1;
}

int mt_pair_partner(int round)
{
    int m = pair_slots();
    int p;

    if (mt_rank == m - 1)
        p = round;
    else if (mt_rank == round)
        p = m - 1;
    else
        p = ((2 * round - mt_rank) % (m - 1) + (m - 1)) % (m - 1);
    return p < mt_size ? p : -1;
}

/* --------------------------------------------------------- self-test */

void mt_tamper(void *buf, size_t len)
{
    if (corrupt_min == 0 || len == 0 || len < (size_t)corrupt_min)
        return;
    if (__atomic_exchange_n(&tamper_done, 1, __ATOMIC_SEQ_CST))
        return;
    ((uint8_t *)buf)[len / 2] ^= 0x5a;
}

/* --------------------------------------------------------------- rng */

void mt_rng_seed(mt_rng_t *r, uint64_t seed)
{
    r->s = seed;
}

uint64_t mt_rng_next(mt_rng_t *r)
{
    r->s += 0x9e3779b97f4a7c15ULL;
    return mt_hash64(r->s);
}

uint64_t mt_rng_below(mt_rng_t *r, uint64_t n)
{
    if (n == 0)
        return 0;
    return (uint64_t)(((unsigned __int128)mt_rng_next(r) * n) >> 64);
}

/* ---------------------------------------------------------- checksum */

uint32_t mt_checksum(const void *buf, size_t len)
{
    const uint8_t *p = buf;
    uint32_t h = 2166136261u;

    for (size_t i = 0; i < len; i++) {
        h ^= p[i];
        h *= 16777619u;
    }
    return h;
}

double mt_now(void)
{
    return MPI_Wtime();
}
