/*
 * migr engine — running system calls inside a stopped thread.
 *
 * Owns syscall injection: point a stopped thread's rip at a `syscall`
 * instruction (the target's own vDSO has one; the restore trampoline has
 * one), load the number and arguments, and run it with PTRACE_SYSCALL up to
 * the syscall-exit stop.  No SIGTRAP is ever raised in the target, so its
 * signal dispositions are never touched.  Also owns reading and writing the
 * memory of another process (process_vm_readv/writev, /proc/PID/mem for
 * pages that are not readable or writable).
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ptrace.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <unistd.h>

#include "engine_int.h"

#ifndef PTRACE_SETSIGMASK
#define PTRACE_GETSIGMASK 0x420a
#define PTRACE_SETSIGMASK 0x420b
#endif

/* Continue tid with PTRACE_SYSCALL until the next syscall stop. */
static int to_syscall_stop(pid_t tid, long nr)
{
	int st;

	for (;;) {
		if (ptrace(PTRACE_SYSCALL, tid, 0, 0) < 0)
			return eng_fail_errno("ptrace(PTRACE_SYSCALL, tid %d, syscall %ld)", tid, nr);
		if (eng_wait_stop(tid, &st) < 0)
			return -1;
		if (WIFEXITED(st) || WIFSIGNALED(st))
			return eng_fail("tid %d ended during injected syscall %ld", tid, nr);
		if (WIFSTOPPED(st) && WSTOPSIG(st) == (SIGTRAP | 0x80))
			return 0;
		/* a signal-delivery stop of an unblockable signal or a group
		 * stop: suppress it and carry on */
		eng_debug("tid %d: stop %#x during injected syscall %ld", tid, st, nr);
	}
}

int eng_inject(pid_t tid, uint64_t sc_ip, long nr, const uint64_t a[6], long *ret)
{
	struct user_regs_struct r;

	if (ptrace(PTRACE_GETREGS, tid, 0, &r) < 0)
		return eng_fail_errno("ptrace(PTRACE_GETREGS, tid %d)", tid);
	r.rip = sc_ip;
	r.rax = (uint64_t)nr;
	r.orig_rax = (uint64_t)-1;   /* no restart logic at the current stop */
	r.rdi = a[0];
	r.rsi = a[1];
	r.rdx = a[2];
	r.r10 = a[3];
	r.r8 = a[4];
	r.r9 = a[5];
	if (ptrace(PTRACE_SETREGS, tid, 0, &r) < 0)
		return eng_fail_errno("ptrace(PTRACE_SETREGS, tid %d)", tid);
	if (to_syscall_stop(tid, nr) < 0 || to_syscall_stop(tid, nr) < 0)
		return -1;
	if (ptrace(PTRACE_GETREGS, tid, 0, &r) < 0)
		return eng_fail_errno("ptrace(PTRACE_GETREGS, tid %d)", tid);
	*ret = (long)r.rax;
	return 0;
}

int eng_inject_batch(pid_t pid, pid_t tid, uint64_t tramp, struct eng_call *c, uint32_t n)
{
	struct user_regs_struct r;
	uint64_t table = tramp + TRAMP_DATA;
	int st;

	if (n > ENG_BATCH_MAX)
		return eng_fail("a batch of %u syscalls is more than the trampoline holds (%zu)", n,
		                (size_t)ENG_BATCH_MAX);
	if (eng_mem_write(pid, table, c, n * sizeof(*c)) < 0)
		return eng_wrap("write a batch of %u syscalls into pid %d", n, pid);
	if (ptrace(PTRACE_GETREGS, tid, 0, &r) < 0)
		return eng_fail_errno("ptrace(PTRACE_GETREGS, tid %d)", tid);
	r.rip = tramp + TRAMP_BATCH;
	r.orig_rax = (uint64_t)-1;
	r.rbx = table;
	r.r12 = n;
	r.r13 = (uint64_t)pid;
	r.r14 = (uint64_t)tid;
	if (ptrace(PTRACE_SETREGS, tid, 0, &r) < 0)
		return eng_fail_errno("ptrace(PTRACE_SETREGS, tid %d)", tid);
	for (;;) {
		if (ptrace(PTRACE_CONT, tid, 0, 0) < 0)
			return eng_fail_errno("ptrace(PTRACE_CONT, tid %d, a batch of %u syscalls)", tid, n);
		if (eng_wait_stop(tid, &st) < 0)
			return -1;
		if (WIFEXITED(st) || WIFSIGNALED(st))
			return eng_fail("tid %d ended during a batch of %u syscalls", tid, n);
		if (WIFSTOPPED(st) && WSTOPSIG(st) == SIGSTOP && (st >> 16) == 0)
			break;
		/* another signal-delivery stop or a group stop: suppressed */
		eng_debug("tid %d: stop %#x during a batch of %u syscalls", tid, st, n);
	}
	if (eng_mem_read(pid, table, c, n * sizeof(*c)) < 0)
		return eng_wrap("read the results of a batch of %u syscalls from pid %d", n, pid);
	return 0;
}

int eng_inject6(pid_t tid, uint64_t sc_ip, long *ret, long nr, uint64_t a0, uint64_t a1,
                uint64_t a2, uint64_t a3, uint64_t a4, uint64_t a5)
{
	uint64_t a[6] = { a0, a1, a2, a3, a4, a5 };

	return eng_inject(tid, sc_ip, nr, a, ret);
}

int eng_fz_inject(struct engine_frozen *fz, struct eng_task *t, long *ret, long nr,
                  uint64_t a0, uint64_t a1, uint64_t a2, uint64_t a3)
{
	if (!t->mask_changed) {
		uint64_t all = ~0ULL;
		if (ptrace(PTRACE_SETSIGMASK, t->tid, sizeof(all), &all) < 0)
			return eng_fail_errno("ptrace(PTRACE_SETSIGMASK, tid %d)", t->tid);
		t->mask_changed = true;
	}
	t->injected = true;
	return eng_inject6(t->tid, fz->syscall_ip, ret, nr, a0, a1, a2, a3, 0, 0);
}

int eng_find_syscall_insn(pid_t pid, uint64_t *ip)
{
	struct eng_vma *v = NULL;
	uint32_t n = 0;
	int rc = -1;

	if (eng_parse_maps(pid, &v, &n) < 0)
		return -1;
	/* vDSO first, then any executable mapping */
	for (int pass = 0; pass < 2 && rc < 0; pass++) {
		for (uint32_t i = 0; i < n && rc < 0; i++) {
			size_t len = v[i].end - v[i].start;
			uint8_t *buf;
			if (!(v[i].prot & 4) || v[i].kind == VMA_VSYSCALL)
				continue;
			if ((pass == 0) != (v[i].kind == VMA_VDSO))
				continue;
			if (len > (1u << 20))
				len = 1u << 20;
			buf = malloc(len);
			if (!buf)
				break;
			if (eng_mem_read(pid, v[i].start, buf, len) == 0) {
				for (size_t k = 0; k + 1 < len; k++) {
					if (buf[k] == 0x0f && buf[k + 1] == 0x05) {
						*ip = v[i].start + k;
						rc = 0;
						break;
					}
				}
			}
			free(buf);
		}
	}
	eng_free_vmas(v, n);
	if (rc < 0)
		return eng_fail("pid %d: no syscall instruction found to inject through", pid);
	return 0;
}

static int mem_file_io(pid_t pid, uint64_t addr, void *buf, size_t len, bool wr)
{
	char path[64];
	int fd;
	size_t done = 0;

	snprintf(path, sizeof(path), "/proc/%d/mem", pid);
	fd = open(path, (wr ? O_WRONLY : O_RDONLY) | O_CLOEXEC);
	if (fd < 0)
		return eng_fail_errno("open %s", path);
	while (done < len) {
		ssize_t n = wr ? pwrite(fd, (uint8_t *)buf + done, len - done, (off_t)(addr + done))
		               : pread(fd, (uint8_t *)buf + done, len - done, (off_t)(addr + done));
		if (n <= 0) {
			if (n < 0 && errno == EINTR)
				continue;
			eng_fail_errno("%s pid %d memory at %#llx (%zu bytes)", wr ? "write" : "read",
			               pid, (unsigned long long)(addr + done), len - done);
			close(fd);
			return -1;
		}
		done += (size_t)n;
	}
	close(fd);
	return 0;
}

int eng_mem_read(pid_t pid, uint64_t addr, void *buf, size_t len)
{
	struct iovec l = { buf, len }, r = { (void *)(uintptr_t)addr, len };
	ssize_t n = process_vm_readv(pid, &l, 1, &r, 1, 0);

	if (n == (ssize_t)len)
		return 0;
	return mem_file_io(pid, addr, buf, len, false);
}

int eng_mem_write(pid_t pid, uint64_t addr, const void *buf, size_t len)
{
	struct iovec l = { (void *)buf, len }, r = { (void *)(uintptr_t)addr, len };
	ssize_t n = process_vm_writev(pid, &l, 1, &r, 1, 0);

	if (n == (ssize_t)len)
		return 0;
	return mem_file_io(pid, addr, (void *)buf, len, true);
}
