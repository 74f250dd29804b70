/*
 * mpitest.h — shared helpers for migr's self-checking MPI test programs.
 *
 * Every program in test/mpi/ is built from <name>.c + mpitest.c.  The
 * helpers own four things and nothing else:
 *
 *   - life cycle: mt_init()/mt_init_thread() start MPI, install a one-line
 *     MPI error handler and a watchdog; mt_finish() reconciles the failure
 *     counts of all ranks, finalizes and returns the process exit status.
 *   - failure reporting: mt_fail() reports a failed check as ONE line on
 *     stderr and aborts the job (or counts it, see MIGR_TEST_KEEP_GOING):
 *         "<program>: rank <r>: <reason>"
 *   - data patterns: mt_fill()/mt_verify() write and check a byte pattern
 *     that depends on a 64-bit key (built with mt_key() from size, source,
 *     destination, iteration, ...) and on the byte offset, so lost, moved,
 *     duplicated or foreign fragments are all detected.
 *   - a small seeded PRNG (splitmix64) and a checksum.
 *
 * Environment knobs (all optional):
 *   MIGR_TEST_WATCHDOG=<s>  abort with a reason after <s> seconds (default
 *                           100, 0 disables) so a hang has a message.
 *   MIGR_TEST_LOOPS=<n>     repeat the program's body n times (default 1);
 *                           handy as a long-running workload for migration
 *                           (then raise or disable the watchdog).
 *   MIGR_TEST_UNTIL=<path>  instead: repeat the body until the file <path>
 *                           exists (rank 0 looks before each round and
 *                           broadcasts the answer; at least one round), and
 *                           print "<program>: <n> rounds until <path>
 *                           appeared": a workload that lasts exactly as long
 *                           as a test needs it to, whatever the load.
 *   MIGR_TEST_KEEP_GOING=1  count failed checks and go on to the end (the
 *                           default is to MPI_Abort at the first one: after
 *                           a lost or misrouted message a program may hang).
 *   MIGR_TEST_VERBOSE=1     print every failed check, not just the first.
 *   MIGR_TEST_CORRUPT=<n>   self-test: the last rank flips the middle byte
 *                           of the first buffer of at least <n> bytes given
 *                           to mt_tamper(); the program must then FAIL.
 */
#ifndef MIGR_TEST_MPITEST_H
#define MIGR_TEST_MPITEST_H

#include <mpi.h>
#include <stddef.h>
#include <stdint.h>

/* Set once by mt_init*(): rank and size in MPI_COMM_WORLD. */
extern int mt_rank;
extern int mt_size;

/* Life cycle.  mt_init_thread() fails the program (exit 1) with a clear
 * line if the library does not provide `required`. */
void mt_init(int *argc, char ***argv, const char *name);
void mt_init_thread(int *argc, char ***argv, const char *name, int required);
int mt_finish(void);
int mt_loops(void);
/* Dies with a clear line unless the job has at least `min` ranks. */
void mt_require_ranks(int min);

/* Failure reporting; thread-safe.  MT_CHECK evaluates to 1 when cond holds. */
void mt_fail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
#define MT_CHECK(cond, ...) ((cond) ? 1 : (mt_fail(__VA_ARGS__), 0))
int mt_failures(void);
/* Print one line on stderr and MPI_Abort: for conditions that make going
 * on pointless (allocation failure, impossible state). */
void mt_die(const char *fmt, ...)
    __attribute__((format(printf, 1, 2), noreturn));

/* Memory: never returns NULL (dies with a reason). */
void *mt_alloc(size_t len);

/* Keys and patterns. */
uint64_t mt_hash64(uint64_t x);
uint64_t mt_key(uint64_t a, uint64_t b, uint64_t c, uint64_t d);
void mt_fill(void *buf, size_t len, uint64_t key);
/* Returns 1 when buf holds the pattern of key; else counts a failure that
 * names `what` and the first bad offset, and returns 0. */
int mt_verify(const void *buf, size_t len, uint64_t key, const char *what);
uint8_t mt_pattern_byte(uint64_t key, size_t offset);

/* Guard bytes after a receive buffer, to catch overruns: mt_guard_set()
 * marks MT_GUARD_LEN bytes at `end`; mt_guard_fill() marks any range (e.g.
 * a whole receive buffer before a receive of unknown size). */
#define MT_GUARD_LEN 64
void mt_guard_set(void *end);
void mt_guard_fill(void *buf, size_t len);
int mt_guard_ok(const void *end, const char *what);

/* Status checks: source, tag (either may be MPI_ANY_* to skip) and the
 * number of `type` elements received.  Return 1 when all match. */
int mt_check_status(const MPI_Status *st, int src, int tag, MPI_Datatype type,
                    int count, const char *what);

/* Round-robin pairing (circle method): over mt_pair_rounds() rounds every
 * rank meets every other rank exactly once.  mt_pair_partner() gives this
 * rank's partner in a round, or -1 when it sits the round out (odd size). */
int mt_pair_rounds(void);
int mt_pair_partner(int round);

/* Self-test hook: every program passes each received buffer through it
 * before checking.  A no-op unless MIGR_TEST_CORRUPT is set. */
void mt_tamper(void *buf, size_t len);

/* Seeded PRNG (splitmix64).  Not thread-safe per state; use one per thread. */
typedef struct {
    uint64_t s;
} mt_rng_t;
void mt_rng_seed(mt_rng_t *r, uint64_t seed);
uint64_t mt_rng_next(mt_rng_t *r);
uint64_t mt_rng_below(mt_rng_t *r, uint64_t n); /* uniform in [0, n) */

/* 32-bit checksum (FNV-1a) of a byte range. */
uint32_t mt_checksum(const void *buf, size_t len);

/* Wall-clock seconds (MPI_Wtime). */
double mt_now(void);

#endif /* MIGR_TEST_MPITEST_H */
