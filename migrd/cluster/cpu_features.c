/*
 * cpu_features.c -- see cpu_features.h.
 */
#include "cpu_features.h"

#include <stdio.h>
#include <string.h>

#if defined(__x86_64__) || defined(__i386__)
#include <cpuid.h>
#endif

struct cpuf_bit {
    uint8_t word, bit;
    const char *name;
};

/* The compared features: instruction-set extensions user code can execute
 * (names as in /proc/cpuinfo), and the register state the kernel saves. */
static const struct cpuf_bit cpuf_table[] = {
    {CPUF_1_EDX, 25, "sse"},          {CPUF_1_EDX, 26, "sse2"},
    {CPUF_1_ECX, 0, "pni"},           {CPUF_1_ECX, 1, "pclmulqdq"},
    {CPUF_1_ECX, 9, "ssse3"},         {CPUF_1_ECX, 12, "fma"},
    {CPUF_1_ECX, 13, "cx16"},         {CPUF_1_ECX, 19, "sse4_1"},
    {CPUF_1_ECX, 20, "sse4_2"},       {CPUF_1_ECX, 22, "movbe"},
    {CPUF_1_ECX, 23, "popcnt"},       {CPUF_1_ECX, 25, "aes"},
    {CPUF_1_ECX, 28, "avx"},          {CPUF_1_ECX, 29, "f16c"},
    {CPUF_1_ECX, 30, "rdrand"},       {CPUF_7_EBX, 3, "bmi1"},
    {CPUF_7_EBX, 5, "avx2"},          {CPUF_7_EBX, 8, "bmi2"},
    {CPUF_7_EBX, 9, "erms"},          {CPUF_7_EBX, 16, "avx512f"},
    {CPUF_7_EBX, 17, "avx512dq"},     {CPUF_7_EBX, 18, "rdseed"},
    {CPUF_7_EBX, 19, "adx"},          {CPUF_7_EBX, 21, "avx512ifma"},
    {CPUF_7_EBX, 23, "clflushopt"},   {CPUF_7_EBX, 24, "clwb"},
    {CPUF_7_EBX, 28, "avx512cd"},     {CPUF_7_EBX, 29, "sha_ni"},
    {CPUF_7_EBX, 30, "avx512bw"},     {CPUF_7_EBX, 31, "avx512vl"},
    {CPUF_7_ECX, 1, "avx512vbmi"},    {CPUF_7_ECX, 6, "avx512_vbmi2"},
    {CPUF_7_ECX, 8, "gfni"},          {CPUF_7_ECX, 9, "vaes"},
    {CPUF_7_ECX, 10, "vpclmulqdq"},   {CPUF_7_ECX, 11, "avx512_vnni"},
    {CPUF_7_ECX, 12, "avx512_bitalg"}, {CPUF_7_ECX, 14, "avx512_vpopcntdq"},
    {CPUF_7_ECX, 22, "rdpid"},        {CPUF_7_EDX, 4, "fsrm"},
    {CPUF_7_EDX, 8, "avx512_vp2intersect"}, {CPUF_7_EDX, 14, "serialize"},
    {CPUF_7_EDX, 22, "amx_bf16"},     {CPUF_7_EDX, 23, "avx512_fp16"},
    {CPUF_7_EDX, 24, "amx_tile"},     {CPUF_7_EDX, 25, "amx_int8"},
    {CPUF_81_ECX, 0, "lahf_lm"},      {CPUF_81_ECX, 5, "abm"},
    {CPUF_81_ECX, 6, "sse4a"},        {CPUF_81_ECX, 8, "3dnowprefetch"},
    {CPUF_81_ECX, 11, "xop"},         {CPUF_81_ECX, 16, "fma4"},
    {CPUF_81_EDX, 27, "rdtscp"},      {CPUF_81_EDX, 29, "lm"},
    {CPUF_XCR0, 1, "xstate:sse"},     {CPUF_XCR0, 2, "xstate:avx"},
    {CPUF_XCR0, 5, "xstate:opmask"},  {CPUF_XCR0, 6, "xstate:zmm_hi256"},
    {CPUF_XCR0, 7, "xstate:hi16_zmm"}, {CPUF_XCR0, 9, "xstate:pkru"},
    {CPUF_XCR0, 17, "xstate:amx_tilecfg"}, {CPUF_XCR0, 18, "xstate:amx_tiledata"},
};

#define CPUF_N (sizeof cpuf_table / sizeof cpuf_table[0])

static void keep_compared(struct cpu_features *f)
{
    struct cpu_features mask = {{0}};
    for (size_t i = 0; i < CPUF_N; i++)
        mask.word[cpuf_table[i].word] |= 1u << cpuf_table[i].bit;
    for (int w = 0; w < CPUF_WORDS; w++)
        f->word[w] &= mask.word[w];
}

void cpuf_read(struct cpu_features *f)
{
    memset(f, 0, sizeof *f);
#if defined(__x86_64__) || defined(__i386__)
    unsigned a, b, c, d, max = __get_cpuid_max(0, NULL);
    if (max >= 1 && __get_cpuid(1, &a, &b, &c, &d)) {
        f->word[CPUF_1_ECX] = c;
        f->word[CPUF_1_EDX] = d;
        if (c & bit_OSXSAVE) {
            unsigned lo, hi;
            __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
            f->word[CPUF_XCR0] = lo;
        }
    }
    if (max >= 7 && __get_cpuid_count(7, 0, &a, &b, &c, &d)) {
        f->word[CPUF_7_EBX] = b;
        f->word[CPUF_7_ECX] = c;
        f->word[CPUF_7_EDX] = d;
    }
    if (__get_cpuid_max(0x80000000u, NULL) >= 0x80000001u && __get_cpuid(0x80000001u, &a, &b, &c, &d)) {
        f->word[CPUF_81_ECX] = c;
        f->word[CPUF_81_EDX] = d;
    }
#endif
    keep_compared(f);
}

int cpuf_hide(struct cpu_features *f, const char *name)
{
    for (size_t i = 0; i < CPUF_N; i++)
        if (!strcmp(cpuf_table[i].name, name)) {
            f->word[cpuf_table[i].word] &= ~(1u << cpuf_table[i].bit);
            return 0;
        }
    return -1;
}

const char *cpuf_missing(const struct cpu_features *need, const struct cpu_features *have)
{
    for (size_t i = 0; i < CPUF_N; i++) {
        uint32_t m = 1u << cpuf_table[i].bit;
        if ((need->word[cpuf_table[i].word] & m) && !(have->word[cpuf_table[i].word] & m))
            return cpuf_table[i].name;
    }
    return NULL;
}

int cpuf_names(const struct cpu_features *f, char *buf, size_t len)
{
    size_t used = 0;
    int n = 0;
    if (len)
        buf[0] = 0;
    for (size_t i = 0; i < CPUF_N; i++) {
        if (!(f->word[cpuf_table[i].word] & 1u << cpuf_table[i].bit))
            continue;
        n++;
        if (used < len) {
            int w = snprintf(buf + used, len - used, "%s%s", used ? " " : "", cpuf_table[i].name);
            used += w > 0 ? (size_t)w : 0;
        }
    }
    return n;
}
