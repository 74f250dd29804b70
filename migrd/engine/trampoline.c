/*
 * migr engine — the restore trampoline.
 *
 * Owns the pages through which the restorer drives the puppet once the
 * puppet's own code is gone: where they go (a hole free both in the
 * puppet's current layout and in the saved layout), what they hold (a
 * `syscall` instruction, the batch code that runs a table of system calls
 * with one stop at the end, and a data area for the structures that
 * injected syscalls take by pointer or for the table), and the raw thread creation used
 * inside the puppet (clone3 with set_tid; the new thread parks in pause()
 * without touching any stack, then waits for ptrace to give it its
 * registers).
 */
#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>
#include <linux/sched.h>

#include "engine_int.h"

#ifndef MAP_FIXED_NOREPLACE
#define MAP_FIXED_NOREPLACE 0x100000
#endif

static bool overlaps(const struct eng_vma *v, uint32_t n, uint64_t lo, uint64_t hi,
                     uint64_t *next)
{
	for (uint32_t i = 0; i < n; i++) {
		if (v[i].start < hi && v[i].end > lo) {
			*next = v[i].end;
			return true;
		}
	}
	return false;
}

/* Lowest address >= 1 MiB where [addr - guard, addr + size + guard) meets
 * no region of a nor b. */
int eng_find_hole(const struct eng_vma *a, uint32_t na, const struct eng_vma *b, uint32_t nb,
                  uint64_t size, uint64_t *addr)
{
	const uint64_t guard = 16 * ENG_PAGE;
	uint64_t cand = 1ULL << 20;

	while (cand + size + guard < ENG_TASK_SIZE) {
		uint64_t next;
		if (overlaps(a, na, cand - guard, cand + size + guard, &next) ||
		    overlaps(b, nb, cand - guard, cand + size + guard, &next)) {
			cand = (next + guard + ENG_PAGE - 1) & ~(ENG_PAGE - 1);
			continue;
		}
		*addr = cand;
		return 0;
	}
	return eng_fail("no free hole of %" PRIu64 " bytes in the saved layout", size);
}

/* The batch code (eng_inject_batch sets rbx = table, r12 = count, r13 =
 * tgid, r14 = tid).  Each entry is struct eng_call: the number and six
 * arguments are loaded, the result stored over ret; an entry whose result
 * is an error (-4095..-1) ends the batch unless its ret held
 * ENG_CALL_MAY_FAIL.  The end is tgkill(tgid, tid, SIGSTOP): a
 * signal-delivery stop that the tracer takes and suppresses, so nothing is
 * ever delivered and no disposition is touched.  Only relative jumps: the
 * bytes are copied into the trampoline as they are. */
extern const uint8_t eng_batch_code[], eng_batch_code_end[];
__asm__(".pushsection .rodata\n"
        ".globl eng_batch_code\n"
        ".globl eng_batch_code_end\n"
        "eng_batch_code:\n\t"
        "test %r12, %r12\n\t"
        "jz 2f\n"
        "1:\n\t"
        "mov 56(%rbx), %r15\n\t"
        "mov (%rbx), %rax\n\t"
        "mov 8(%rbx), %rdi\n\t"
        "mov 16(%rbx), %rsi\n\t"
        "mov 24(%rbx), %rdx\n\t"
        "mov 32(%rbx), %r10\n\t"
        "mov 40(%rbx), %r8\n\t"
        "mov 48(%rbx), %r9\n\t"
        "syscall\n\t"
        "mov %rax, 56(%rbx)\n\t"
        "cmp $-4095, %rax\n\t"
        "jb 3f\n\t"
        "test $1, %r15\n\t"
        "jz 2f\n"
        "3:\n\t"
        "add $64, %rbx\n\t"
        "dec %r12\n\t"
        "jnz 1b\n"
        "2:\n\t"
        "mov $234, %eax\n\t"       /* SYS_tgkill */
        "mov %r13, %rdi\n\t"
        "mov %r14, %rsi\n\t"
        "mov $19, %edx\n\t"        /* SIGSTOP */
        "syscall\n\t"
        "jmp 2b\n"
        "eng_batch_code_end:\n"
        ".popsection");

_Static_assert(TRAMP_BATCH + 96 <= TRAMP_DATA, "the batch code fits before the data area");
_Static_assert(sizeof(struct eng_call) == 64, "the batch code steps 64 bytes an entry");
_Static_assert(SYS_tgkill == 234 && SIGSTOP == 19, "the batch code's stop");

int eng_tramp_install(uint64_t addr)
{
	static const uint8_t code[] = { 0x0f, 0x05, 0xcc, 0xcc };   /* syscall; int3 */
	void *p = mmap((void *)(uintptr_t)addr, TRAMP_SIZE, PROT_READ | PROT_WRITE | PROT_EXEC,
	               MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0);

	if (p == MAP_FAILED)
		return eng_fail_errno("map the trampoline page at %#" PRIx64, addr);
	if ((uint64_t)(uintptr_t)p != addr)
		return eng_fail("trampoline page landed at %p, not %#" PRIx64, p, addr);
	memcpy(p, code, sizeof(code));
	memcpy((uint8_t *)p + TRAMP_BATCH, eng_batch_code, (size_t)(eng_batch_code_end - eng_batch_code));
	return 0;
}

long eng_spawn_thread(pid_t tid)
{
	struct clone_args ca;
	pid_t want = tid;
	long ret;

	memset(&ca, 0, sizeof(ca));
	ca.flags = CLONE_VM | CLONE_FS | CLONE_FILES | CLONE_SIGHAND | CLONE_THREAD | CLONE_SYSVSEM;
	ca.set_tid = (uint64_t)(uintptr_t)&want;
	ca.set_tid_size = 1;
	/* the child returns with rax = 0 and parks in pause() forever; it uses
	 * no stack, so it may share the creator's */
	__asm__ volatile(
		"syscall\n\t"
		"test %%rax, %%rax\n\t"
		"jnz 1f\n\t"
		"2:\n\t"
		"mov %[nr_pause], %%eax\n\t"
		"syscall\n\t"
		"jmp 2b\n\t"
		"1:\n\t"
		: "=a"(ret)
		: "0"((long)SYS_clone3), "D"(&ca), "S"(sizeof(ca)), [nr_pause] "i"(SYS_pause)
		: "rcx", "r11", "memory");
	return ret;
}
