/*
 * zoo_regs — values live in SSE/AVX registers (ymm0-ymm15), general
 * registers (r12-r15) and the MXCSR rounding mode across reincarnations:
 * a long register-only spin is interrupted by the dump; afterwards every
 * register must still hold its value.
 */
#include "zoo.h"
#include <stdint.h>

static uint64_t in[16][4] __attribute__((aligned(32)));
static uint64_t out[16][4] __attribute__((aligned(32)));

#define LOAD(n) "vmovdqa " #n "*32(%[in]), %%ymm" #n "\n\t"
#define STORE(n) "vmovdqa %%ymm" #n ", " #n "*32(%[out])\n\t"

/* spin `loops` times touching only registers; returns r12..r15 checksum */
__attribute__((target("avx2")))
static uint64_t spin(uint64_t loops)
{
	uint64_t r;

	__asm__ volatile(
		LOAD(0) LOAD(1) LOAD(2) LOAD(3) LOAD(4) LOAD(5) LOAD(6) LOAD(7)
		LOAD(8) LOAD(9) LOAD(10) LOAD(11) LOAD(12) LOAD(13) LOAD(14) LOAD(15)
		"mov $0x1111111111111111, %%r12\n\t"
		"mov $0x2222222222222222, %%r13\n\t"
		"mov $0x3333333333333333, %%r14\n\t"
		"mov $0x4444444444444444, %%r15\n\t"
		"1:\n\t"
		"add $1, %%r12\n\t"
		"sub $1, %%r13\n\t"
		"dec %[n]\n\t"
		"jnz 1b\n\t"
		STORE(0) STORE(1) STORE(2) STORE(3) STORE(4) STORE(5) STORE(6) STORE(7)
		STORE(8) STORE(9) STORE(10) STORE(11) STORE(12) STORE(13) STORE(14) STORE(15)
		"mov %%r12, %%rax\n\t"
		"add %%r13, %%rax\n\t"
		"xor %%r14, %%rax\n\t"
		"xor %%r15, %%rax\n\t"
		"mov %%rax, %[r]\n\t"
		"vzeroupper\n\t"
		: [r] "=m"(r), [n] "+r"(loops)
		: [in] "r"(in), [out] "r"(out)
		: "rax", "r12", "r13", "r14", "r15", "memory", "cc",
		  "xmm0", "xmm1", "xmm2", "xmm3", "xmm4", "xmm5", "xmm6", "xmm7",
		  "xmm8", "xmm9", "xmm10", "xmm11", "xmm12", "xmm13", "xmm14", "xmm15");
	return r;
}

int main(void)
{
	double end;
	uint64_t rounds = 0, seed = 0x0123456789abcdefULL;
	volatile float third;
	unsigned mxcsr = 0;

	if (!__builtin_cpu_supports("avx2")) {
		printf("SKIP no AVX2\n");
		zoo_pass("zoo_regs");
	}
	/* round toward zero: kept in MXCSR across the dump */
	__asm__ volatile("stmxcsr %0" : "=m"(mxcsr));
	mxcsr = (mxcsr & ~0x6000u) | 0x6000u;
	__asm__ volatile("ldmxcsr %0" : : "m"(mxcsr));
	zoo_ready();
	end = zoo_now() + zoo_seconds();
	while (zoo_running(end)) {
		uint64_t want, got, loops = 300000000;   /* ~0.1 s */
		unsigned cur;
		for (int i = 0; i < 16; i++)
			for (int k = 0; k < 4; k++) {
				seed = seed * 6364136223846793005ULL + 1442695040888963407ULL;
				in[i][k] = seed;
			}
		got = spin(loops);
		want = ((0x1111111111111111ULL + loops) + (0x2222222222222222ULL - loops)) ^
		       0x3333333333333333ULL ^ 0x4444444444444444ULL;
		ZOO_CHECK(got == want, "general registers changed during the spin");
		ZOO_CHECK(!memcmp(in, out, sizeof(in)), "vector registers changed during the spin");
		__asm__ volatile("stmxcsr %0" : "=m"(cur));
		ZOO_CHECK((cur & 0x6000u) == 0x6000u, "MXCSR rounding mode lost (%#x)", cur);
		third = 1.0f;
		third = third / 3.0f;
		ZOO_CHECK(third * 3.0f < 1.0f, "rounding toward zero not in effect");
		rounds++;
		zoo_check_identity(zoo_pid0);
	}
	printf("%lu spins with live registers\n", (unsigned long)rounds);
	zoo_pass("zoo_regs");
}
