/*
 * cpu_features.h -- the instruction-set features a process may rely on.
 *
 * Owns: reading this CPU's features (cpuid leaves 1, 7 and 0x80000001, and
 * the state components the kernel enabled, XCR0) and comparing two sets.
 * A program chooses its code paths from cpuid once, usually at start-up
 * (glibc's ifuncs, libm, BLAS kernels): moved to a CPU without one of those
 * features it dies of SIGILL at some later instruction.  A move is
 * therefore refused unless the destination has every feature of the
 * source; since every move checks this, each node a process ever runs on
 * has at least the features of its home.
 *
 * Only features that user code can execute are compared (the table in
 * cpu_features.c); bits that differ harmlessly between hosts (hypervisor,
 * OS support flags, microcode mitigations) are not.
 */
#ifndef MIGRD_CPU_FEATURES_H
#define MIGRD_CPU_FEATURES_H

#include <stddef.h>
#include <stdint.h>

enum {
    CPUF_1_ECX, CPUF_1_EDX,                 /* leaf 1                     */
    CPUF_7_EBX, CPUF_7_ECX, CPUF_7_EDX,     /* leaf 7, subleaf 0          */
    CPUF_81_ECX, CPUF_81_EDX,               /* leaf 0x80000001            */
    CPUF_XCR0,                              /* enabled state (low 32 bits) */
    CPUF_WORDS
};

struct cpu_features {
    uint32_t word[CPUF_WORDS];
};

/* This CPU's features (only the compared bits are kept). */
void cpuf_read(struct cpu_features *f);

/* Clear the feature called name (e.g. "avx2", as in /proc/cpuinfo).
 * 0, or -1 when no compared feature has that name. */
int cpuf_hide(struct cpu_features *f, const char *name);

/* The names of the compared features f has, blank-separated, into buf
 * (truncated to len); their number. */
int cpuf_names(const struct cpu_features *f, char *buf, size_t len);

/* NULL when `have` has every feature of `need`; otherwise the name of the
 * first one missing. */
const char *cpuf_missing(const struct cpu_features *need, const struct cpu_features *have);

#endif
