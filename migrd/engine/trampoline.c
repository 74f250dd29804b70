/*
 * migr engine — the restore trampoline.
 *
 * Owns the one page through which the restorer drives the puppet once the
 * puppet's own code is gone: where it goes (a hole free both in the
 * puppet's current layout and in the saved layout), what it holds (a
 * `syscall` instruction followed by a data area for the structures that
 * injected syscalls take by pointer), and the raw thread creation used
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
