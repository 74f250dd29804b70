/*
 * migr engine — restore.
 *
 * Owns turning a checked image into a running process with the saved pid
 * and tids.  The restorer opens or creates every object the process needs
 * (files, pipes, sockets, eventfds, ... : fdpolicy.c; mapped files and
 * shared memory: mempolicy.c), then clone3()s a puppet with set_tid = pid.
 * The puppet, still running the restorer's code, installs the descriptors
 * at their numbers, sets cwd, umask, personality, signal handlers and
 * itimers, maps the trampoline page, creates the other threads with their
 * tids and parks.  The restorer then seizes every thread and, through the
 * trampoline, replaces the address space (moves [vvar], [vvar_vclock],
 * [vdso] to their saved addresses, unmaps everything else, maps every saved
 * region, writes the saved pages), sets the mm fields (PR_SET_MM_MAP),
 * per-thread state, rlimits, credentials last, and finally every register,
 * and lets go.  Any failure kills the puppet: nothing half-restored stays.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/personality.h>
#include <sys/prctl.h>
#include <sys/ptrace.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/time.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <linux/capability.h>
#include <linux/prctl.h>
#include <linux/sched.h>

#include "engine_int.h"

#ifndef PTRACE_SETSIGMASK
#define PTRACE_GETSIGMASK 0x420a
#define PTRACE_SETSIGMASK 0x420b
#endif
#ifndef PTRACE_GET_RSEQ_CONFIGURATION
#define PTRACE_GET_RSEQ_CONFIGURATION 0x420f
#endif
#ifndef NT_X86_XSTATE
#define NT_X86_XSTATE 0x202
#endif
#ifndef MREMAP_FIXED
#define MREMAP_MAYMOVE 1
#define MREMAP_FIXED 2
#endif
#ifndef MADV_WIPEONFORK
#define MADV_WIPEONFORK 18
#endif
#ifndef SS_AUTODISARM
#define SS_AUTODISARM (1U << 31)
#endif
#ifndef MADV_POPULATE_WRITE
#define MADV_POPULATE_WRITE 23
#endif
#ifndef MLOCK_ONFAULT
#define MLOCK_ONFAULT 1
#endif

/* shared page between the restorer and the puppet before the swap */
struct puppet_ctl {
	volatile int state;            /* 0 starting, 1 ready, -1 failed */
	char msg[1024];
};

struct eng_restore {
	struct engine_image *img;
	struct engine_restore_opts opts;
	uint64_t t0;
	pid_t pid;
	int pidfd;
	uint64_t tramp;
	int helper_base;
	int nhelpers;
	int *helpers;                  /* restorer fds moved into the puppet */
	int *fd_helper;                /* per image fd: its helper index, or -1 */
	int exe_src, exe_pfd;
	int ctl_rd, ctl_wr;
	struct puppet_ctl *ctl;
	uint32_t nseized;
	bool *fill;                    /* per vma: saved pages are written */
	bool *move;                    /* per vma: its piece of the page buffer is
	                                  moved in (implies fill) */
	uint32_t *move_run;            /* per vma: the run that covers it, if move */
	bool moving;                   /* some region is moved */
	struct rbatch *rb;             /* system calls waiting to run in the puppet */
};

/* System calls gathered to run in the puppet's main thread in one batch
 * (eng_inject_batch): mapping, advising, populating and protecting the
 * regions takes hundreds of calls for a process with many mappings, and an
 * injected call costs two ptrace stops. */
#define RB_MAX 128
struct rbatch {
	struct eng_call c[RB_MAX];
	const char *what[RB_MAX];      /* NULL: a failure is only logged */
	int32_t vma[RB_MAX];           /* the region it is for, or -1 */
	uint32_t n;
};

/* ------------------------------------------------------------ checks */

static int find_special(const struct eng_vma *v, uint32_t n, uint32_t kind)
{
	for (uint32_t i = 0; i < n; i++)
		if (v[i].kind == kind)
			return (int)i;
	return -1;
}

static int check_host(const struct engine_image *img, bool pid_must_be_free)
{
	char rel[65], mach[65];
	struct eng_vma *mine = NULL;
	uint32_t nmine = 0;
	static const uint32_t specials[] = { VMA_VVAR, VMA_VVAR_VCLOCK, VMA_VDSO };

	if (eng_kernel_release(rel, sizeof(rel), mach, sizeof(mach)) < 0)
		return -1;
	if (strcmp(rel, img->kernel))
		return eng_fail("kernel differs: image from \"%s\", this host runs \"%s\" "
		                "(the vDSO would not match)", img->kernel, rel);
	if (strcmp(mach, img->machine))
		return eng_fail("machine differs: image %s, host %s", img->machine, mach);
	if (img->xcr0 & ~eng_xcr0())
		return eng_fail("CPU lacks register state of the image (xcr0 %#" PRIx64 " here %#" PRIx64 ")",
		                img->xcr0, eng_xcr0());
	if (eng_parse_maps(getpid(), &mine, &nmine) < 0)
		return -1;
	for (size_t k = 0; k < sizeof(specials) / sizeof(specials[0]); k++) {
		int a = find_special(img->vmas, img->nvmas, specials[k]);
		int b = find_special(mine, nmine, specials[k]);
		if (a < 0)
			continue;
		if (b < 0 || mine[b].end - mine[b].start != img->vmas[a].end - img->vmas[a].start) {
			eng_free_vmas(mine, nmine);
			return eng_fail("[%s] of the image does not match this kernel's",
			                eng_vma_kind_name(specials[k]));
		}
	}
	eng_free_vmas(mine, nmine);
	if (pid_must_be_free) {
		for (uint32_t i = 0; i < img->nthreads; i++) {
			char p[64];
			snprintf(p, sizeof(p), "/proc/%d", img->threads[i].tid);
			if (access(p, F_OK) == 0) {
				char comm[64] = "?";
				snprintf(p, sizeof(p), "/proc/%d/comm", img->threads[i].tid);
				if (eng_read_file(p, comm, sizeof(comm)) > 0)
					comm[strcspn(comm, "\n")] = 0;
				return eng_fail("%s %d is in use on this host (by \"%s\")",
				                i ? "tid" : "pid", img->threads[i].tid, comm);
			}
		}
	}
	return 0;
}

/* ------------------------------------------------------------ the puppet */

static void puppet_fail(struct eng_restore *rs)
{
	snprintf(rs->ctl->msg, sizeof(rs->ctl->msg), "%s", engine_strerror());
	rs->ctl->state = -1;
	_exit(1);
}

static void puppet_main(struct eng_restore *rs)
{
	struct engine_image *img = rs->img;
	sigset_t all;

	sigfillset(&all);
	sigprocmask(SIG_SETMASK, &all, NULL);
	/* the restorer's descriptors become helpers at helper_base + k */
	for (int k = 0; k < rs->nhelpers; k++)
		if (dup3(rs->helpers[k], rs->helper_base + k, O_CLOEXEC) < 0) {
			eng_fail_errno("puppet: dup3(%d, %d)", rs->helpers[k], rs->helper_base + k);
			puppet_fail(rs);
		}
	if (syscall(SYS_close_range, 0, rs->helper_base - 1, 0) < 0 ||
	    syscall(SYS_close_range, rs->helper_base + rs->nhelpers, ~0U, 0) < 0) {
		eng_fail_errno("puppet: close_range");
		puppet_fail(rs);
	}
	for (uint32_t i = 0; i < img->nfds; i++)
		if (rs->fd_helper[i] >= 0)
			img->fds[i].src = rs->helper_base + rs->fd_helper[i];
	if (eng_fds_install(img, rs->helper_base) < 0)
		puppet_fail(rs);
	if (chdir(img->cwd) < 0) {
		eng_fail_errno("puppet: chdir %s", img->cwd);
		puppet_fail(rs);
	}
	umask(img->umask);
	if (personality(img->personality) < 0) {
		eng_fail_errno("puppet: personality(%#x)", img->personality);
		puppet_fail(rs);
	}
	for (int s = 1; s <= ENG_NSIG; s++) {
		if (s == SIGKILL || s == SIGSTOP)
			continue;
		if (syscall(SYS_rt_sigaction, s, &img->sigact[s - 1], NULL, 8) < 0) {
			eng_fail_errno("puppet: rt_sigaction(%d)", s);
			puppet_fail(rs);
		}
	}
	for (int w = 0; w < 3; w++) {
		struct itimerval it = {
			{ img->itimer[w].int_sec, img->itimer[w].int_usec },
			{ img->itimer[w].val_sec, img->itimer[w].val_usec } };
		/* an expired interval timer whose signal is still pending shows 0:
		 * the kernel re-arms it when the signal is taken; do it now */
		if (!it.it_value.tv_sec && !it.it_value.tv_usec)
			it.it_value = it.it_interval;
		if (setitimer(w, &it, NULL) < 0) {
			eng_fail_errno("puppet: setitimer(%d)", w);
			puppet_fail(rs);
		}
	}
	if (eng_tramp_install(rs->tramp) < 0)
		puppet_fail(rs);
	for (uint32_t i = 1; i < img->nthreads; i++) {
		long r = eng_spawn_thread(img->threads[i].tid);
		if (r < 0) {
			errno = (int)-r;
			if (errno == EEXIST)
				eng_fail("tid %d is in use on this host", img->threads[i].tid);
			else
				eng_fail_errno("puppet: clone3 thread with tid %d", img->threads[i].tid);
			puppet_fail(rs);
		}
	}
	rs->ctl->state = 1;
	if (write(rs->helper_base, "R", 1) != 1)
		_exit(1);
	for (;;)
		syscall(SYS_pause);
}

/* ------------------------------------------------------------ driving */

static int sc(struct eng_restore *rs, pid_t tid, long *ret, long nr, uint64_t a0, uint64_t a1,
              uint64_t a2, uint64_t a3, uint64_t a4, uint64_t a5)
{
	return eng_inject6(tid, rs->tramp, ret, nr, a0, a1, a2, a3, a4, a5);
}

/* run a syscall in tid that must not fail */
static int must(struct eng_restore *rs, pid_t tid, const char *what, long nr, uint64_t a0,
                uint64_t a1, uint64_t a2, uint64_t a3, uint64_t a4, uint64_t a5)
{
	long r;

	if (sc(rs, tid, &r, nr, a0, a1, a2, a3, a4, a5) < 0)
		return eng_wrap("%s", what);
	if (r < 0 && r > -4096)
		return eng_fail("tid %d: %s: %s", tid, what, strerror((int)-r));
	return 0;
}

/* Run what is gathered; the first call that failed (what set) fails it all,
 * named as must() names it, with its region.  An mmap must land at its
 * address. */
static int rb_flush(struct eng_restore *rs)
{
	struct rbatch *b = rs->rb;
	uint32_t n = b->n;

	b->n = 0;
	if (!n)
		return 0;
	if (eng_inject_batch(rs->pid, rs->pid, rs->tramp, b->c, n) < 0)
		return -1;
	for (uint32_t i = 0; i < n; i++) {
		long r = (long)b->c[i].ret;
		bool failed = r < 0 && r > -4096;
		bool elsewhere = !failed && b->c[i].nr == SYS_mmap && (uint64_t)r != b->c[i].a[0];
		const struct eng_vma *e = b->vma[i] >= 0 ? &rs->img->vmas[b->vma[i]] : NULL;
		if (!b->what[i]) {
			if (failed)
				eng_debug("restore pid %d: syscall %" PRIu64 "(%#" PRIx64 ", %#" PRIx64 ", %" PRIu64
				          "): %s", rs->pid, b->c[i].nr, b->c[i].a[0], b->c[i].a[1], b->c[i].a[2],
				          strerror((int)-r));
			continue;
		}
		if (!failed && !elsewhere)
			continue;
		if (e)
			return eng_fail("tid %d: %s %#" PRIx64 "-%#" PRIx64 " (%s%s%s): %s", rs->pid, b->what[i],
			                e->start, e->end, eng_vma_kind_name(e->kind), e->path[0] ? " " : "",
			                e->path, failed ? strerror((int)-r) : "landed elsewhere");
		return eng_fail("tid %d: %s: %s", rs->pid, b->what[i], failed ? strerror((int)-r) : "landed elsewhere");
	}
	return 0;
}

/* Gather a call for the next batch (run now if the batch is full); what:
 * the message if it fails (NULL: it may fail); vma: its region or -1. */
static int rb_add(struct eng_restore *rs, const char *what, int32_t vma, long nr, uint64_t a0, uint64_t a1,
                  uint64_t a2, uint64_t a3, uint64_t a4, uint64_t a5)
{
	struct rbatch *b = rs->rb;

	if (b->n == RB_MAX && rb_flush(rs) < 0)
		return -1;
	b->c[b->n] = (struct eng_call){ .nr = (uint64_t)nr, .a = { a0, a1, a2, a3, a4, a5 },
	                                .ret = what ? 0 : ENG_CALL_MAY_FAIL };
	b->what[b->n] = what;
	b->vma[b->n] = vma;
	b->n++;
	return 0;
}

static int data_write(struct eng_restore *rs, uint64_t off, const void *p, size_t len)
{
	if (TRAMP_DATA + off + len > TRAMP_SIZE)
		return eng_fail("trampoline data area too small (%zu bytes)", len);
	return eng_mem_write(rs->pid, rs->tramp + TRAMP_DATA + off, p, len);
}

static int seize_puppet(struct eng_restore *rs)
{
	for (uint32_t i = 0; i < rs->img->nthreads; i++) {
		pid_t tid = rs->img->threads[i].tid;
		int st;
		if (ptrace(PTRACE_SEIZE, tid, 0, PTRACE_O_TRACESYSGOOD | PTRACE_O_EXITKILL) < 0)
			return eng_fail_errno("ptrace(PTRACE_SEIZE, puppet tid %d)", tid);
		rs->nseized = i + 1;
		if (ptrace(PTRACE_INTERRUPT, tid, 0, 0) < 0)
			return eng_fail_errno("ptrace(PTRACE_INTERRUPT, puppet tid %d)", tid);
		for (;;) {
			if (eng_wait_stop(tid, &st) < 0)
				return -1;
			if (WIFEXITED(st) || WIFSIGNALED(st))
				return eng_fail("puppet tid %d died", tid);
			if (WIFSTOPPED(st) && (st >> 16) == PTRACE_EVENT_STOP)
				break;
			if (ptrace(PTRACE_CONT, tid, 0, 0) < 0)
				return eng_fail_errno("ptrace(PTRACE_CONT, puppet tid %d)", tid);
		}
	}
	return 0;
}

static int unregister_own_rseq(struct eng_restore *rs)
{
	struct { uint64_t ptr; uint32_t len, sig, flags, pad; } rc;
	long r;

	memset(&rc, 0, sizeof(rc));
	r = ptrace(PTRACE_GET_RSEQ_CONFIGURATION, rs->pid, sizeof(rc), &rc);
	if (r <= 0 || !rc.ptr)
		return 0;
	return must(rs, rs->pid, "unregister the puppet's rseq", SYS_rseq, rc.ptr, rc.len, 1,
	            rc.sig, 0, 0);
}

static int swap_memory(struct eng_restore *rs)
{
	struct engine_image *img = rs->img;
	static const uint32_t specials[] = { VMA_VVAR, VMA_VVAR_VCLOCK, VMA_VDSO };
	struct eng_vma *cur = NULL, keep[8], avoid[2];
	uint32_t navoid = 1;
	uint32_t ncur = 0, nkeep = 0;
	uint64_t lo = ~0ULL, hi = 0, tmp, at = 0;
	pid_t pid = rs->pid;
	int rc = -1;

	if (eng_parse_maps(pid, &cur, &ncur) < 0)
		return -1;
	for (size_t k = 0; k < 3; k++) {
		int c = find_special(cur, ncur, specials[k]);
		if (c >= 0 && find_special(img->vmas, img->nvmas, specials[k]) >= 0) {
			if (cur[c].start < lo)
				lo = cur[c].start;
			if (cur[c].end > hi)
				hi = cur[c].end;
		}
	}
	memset(avoid, 0, sizeof(avoid));
	avoid[0].start = rs->tramp;
	avoid[0].end = rs->tramp + TRAMP_SIZE;
	if (rs->moving) {      /* the inherited pieces of the page buffer stay */
		avoid[1].start = (uint64_t)(uintptr_t)img->pages;
		avoid[1].end = avoid[1].start + img->pages_map_len;
		navoid = 2;
	}
	/* the kernel's own mappings go to a place free everywhere, then home */
	if (hi > lo) {
		struct eng_vma *both = calloc(ncur + navoid, sizeof(*both));
		if (!both) {
			eng_fail("out of memory");
			goto out;
		}
		memcpy(both, cur, ncur * sizeof(*cur));
		memcpy(both + ncur, avoid, navoid * sizeof(*avoid));
		if (eng_find_hole(both, ncur + navoid, img->vmas, img->nvmas, hi - lo, &tmp) < 0) {
			free(both);
			goto out;
		}
		free(both);
		for (size_t k = 0; k < 3; k++) {
			int c = find_special(cur, ncur, specials[k]);
			if (c < 0 || find_special(img->vmas, img->nvmas, specials[k]) < 0)
				continue;
			if (must(rs, pid, "move a kernel mapping aside", SYS_mremap, cur[c].start,
			         cur[c].end - cur[c].start, cur[c].end - cur[c].start,
			         MREMAP_MAYMOVE | MREMAP_FIXED, tmp + (cur[c].start - lo), 0) < 0)
				goto out;
		}
		for (size_t k = 0; k < 3; k++) {
			int c = find_special(cur, ncur, specials[k]);
			int s = find_special(img->vmas, img->nvmas, specials[k]);
			if (c < 0 || s < 0)
				continue;
			if (must(rs, pid, "move a kernel mapping to its saved address", SYS_mremap,
			         tmp + (cur[c].start - lo), cur[c].end - cur[c].start,
			         cur[c].end - cur[c].start, MREMAP_MAYMOVE | MREMAP_FIXED,
			         img->vmas[s].start, 0) < 0)
				goto out;
			keep[nkeep++] = img->vmas[s];
		}
	}
	for (uint32_t k = 0; k < navoid; k++)
		keep[nkeep++] = avoid[k];
	/* sort keep by address (tiny) */
	for (uint32_t i = 0; i < nkeep; i++)
		for (uint32_t j = i + 1; j < nkeep; j++)
			if (keep[j].start < keep[i].start) {
				struct eng_vma t = keep[i];
				keep[i] = keep[j];
				keep[j] = t;
			}
	for (uint32_t i = 0; i <= nkeep; i++) {
		uint64_t end = i < nkeep ? keep[i].start : ENG_TASK_SIZE;
		if (end > at && must(rs, pid, "unmap the restorer's memory", SYS_munmap, at, end - at,
		                     0, 0, 0, 0) < 0)
			goto out;
		if (i < nkeep)
			at = keep[i].end;
	}
	rc = 0;
out:
	eng_free_vmas(cur, ncur);
	return rc;
}

/* Move the piece of the page buffer (inherited by the puppet) that holds
 * all of region i's pages to the region's place: they become its pages,
 * nothing is allocated or copied.  The piece is mapped as the region would
 * be (private anonymous, accounted, read-write while filling).  1: moved;
 * 0: not moved (the region is then mapped and written the ordinary way,
 * from the restorer's intact copy); -1: error. */
static int move_region(struct eng_restore *rs, uint32_t i)
{
	struct engine_image *img = rs->img;
	const struct eng_vma *e = &img->vmas[i];
	uint64_t len = e->end - e->start;
	uint64_t from = (uint64_t)(uintptr_t)img->pages + img->runs[rs->move_run[i]].off;
	long r;

	if (sc(rs, rs->pid, &r, SYS_mremap, from, len, len, MREMAP_MAYMOVE | MREMAP_FIXED,
	       e->start, 0) < 0)
		return eng_wrap("move saved pages %#" PRIx64 " to region %#" PRIx64 "-%#" PRIx64,
		                from, e->start, e->end);
	if ((uint64_t)r == e->start) {
		img->vmas[i].taken = true;
		return 1;
	}
	if (r >= 0 || r <= -4096)
		return eng_fail("pid %d: saved pages moved to %#lx, not to region %#" PRIx64 "-%#" PRIx64,
		                rs->pid, (unsigned long)r, e->start, e->end);
	eng_debug("restore pid %d: mremap %#" PRIx64 " to region %#" PRIx64 "-%#" PRIx64
	          ": %s; written instead", rs->pid, from, e->start, e->end, strerror((int)-r));
	rs->move[i] = false;
	return 0;
}

/* map region i afresh (read-write while it is filled): gathered */
static int map_region(struct eng_restore *rs, uint32_t i)
{
	struct eng_vma *e = &rs->img->vmas[i];
	uint64_t len = e->end - e->start, flags, off = 0, fd = (uint64_t)-1;
	uint32_t prot0 = e->prot | (rs->fill[i] ? PROT_READ | PROT_WRITE : 0);

	if (e->kind == VMA_ANON || e->as_private) {
		flags = MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED;
		if (e->vmflags & VMF_GROWSDOWN)
			flags |= MAP_GROWSDOWN;
		if ((e->vmflags & VMF_NORESERVE) ||
		    ((e->prot & PROT_WRITE) && !(e->vmflags & VMF_ACCOUNT)))
			flags |= MAP_NORESERVE;
	} else {
		flags = (e->kind == VMA_FILE_PRIVATE ? MAP_PRIVATE : MAP_SHARED) | MAP_FIXED;
		fd = (uint64_t)(int64_t)e->pfd;
		off = e->pgoff;
	}
	return rb_add(rs, "map region", (int32_t)i, SYS_mmap, e->start, len, prot0, flags, fd, off);
}

static int map_regions(struct eng_restore *rs)
{
	struct engine_image *img = rs->img;
	static const struct { uint32_t flag; int advice; } adv[] = {
		{ VMF_HUGEPAGE, MADV_HUGEPAGE }, { VMF_NOHUGEPAGE, MADV_NOHUGEPAGE },
		{ VMF_RANDOM, MADV_RANDOM }, { VMF_SEQUENTIAL, MADV_SEQUENTIAL },
		{ VMF_DONTDUMP, MADV_DONTDUMP }, { VMF_DONTFORK, MADV_DONTFORK },
		{ VMF_WIPEONFORK, MADV_WIPEONFORK }, { VMF_MERGEABLE, MADV_MERGEABLE },
	};

	for (uint32_t i = 0; i < img->nvmas; i++) {
		struct eng_vma *e = &img->vmas[i];
		uint64_t len = e->end - e->start;
		int moved = 0;

		if (eng_vma_kind_is_special(e->kind))
			continue;
		/* a move is one call of its own, which may fall back to mapping */
		if (rs->move[i] && (rb_flush(rs) < 0 || (moved = move_region(rs, i)) < 0))
			return -1;
		if (!moved && map_region(rs, i) < 0)
			return -1;
		for (size_t k = 0; k < sizeof(adv) / sizeof(adv[0]); k++)
			if ((e->vmflags & adv[k].flag) &&
			    rb_add(rs, NULL, (int32_t)i, SYS_madvise, e->start, len, (uint64_t)adv[k].advice, 0, 0,
			           0) < 0)
				return -1;
	}
	return rb_flush(rs);
}

static int fill_memory(struct eng_restore *rs, uint64_t *bytes)
{
	struct engine_image *img = rs->img;
	struct iovec lio[1024], rio[1024];
	uint32_t v = 0, k = 0, moved = 0;
	uint64_t moved_bytes = 0;
	size_t want = 0;

	*bytes = 0;
	/* big runs are faulted in by the puppet in one call each: far cheaper
	 * than the faults taken inside process_vm_writev */
	for (uint32_t i = 0; i < img->nruns; i++) {
		while (v < img->nvmas && img->vmas[v].end <= img->runs[i].addr)
			v++;
		if (v >= img->nvmas || !rs->fill[v] || rs->move[v] || img->runs[i].npages < 16)
			continue;
		if (rs->opts.thp_fill && img->vmas[v].kind == VMA_ANON &&
		    !(img->vmas[v].vmflags & VMF_NOHUGEPAGE)) {
			/* whole 2 MiB blocks inside the run: transparent huge pages */
			uint64_t lo = (img->runs[i].addr + (2u << 20) - 1) & ~((uint64_t)(2u << 20) - 1);
			uint64_t hi = (img->runs[i].addr + img->runs[i].npages * ENG_PAGE) &
			              ~((uint64_t)(2u << 20) - 1);
			if (hi > lo && rb_add(rs, NULL, (int32_t)v, SYS_madvise, lo, hi - lo, MADV_HUGEPAGE, 0, 0,
			                      0) < 0)
				return -1;
		}
		if (rb_add(rs, NULL, (int32_t)v, SYS_madvise, img->runs[i].addr, img->runs[i].npages * ENG_PAGE,
		           MADV_POPULATE_WRITE, 0, 0, 0) < 0)
			return -1;
	}
	if (rb_flush(rs) < 0)
		return -1;
	v = 0;
	for (uint32_t i = 0; i <= img->nruns; i++) {
		bool flush = i == img->nruns || k == 1024;
		if (flush && k) {
			ssize_t got = process_vm_writev(rs->pid, lio, k, rio, k, 0);
			if (got != (ssize_t)want) {
				for (uint32_t j = 0; j < k; j++)
					if (eng_mem_write(rs->pid, (uint64_t)(uintptr_t)rio[j].iov_base,
					                  lio[j].iov_base, lio[j].iov_len) < 0)
						return -1;
			}
			*bytes += want;
			k = 0;
			want = 0;
		}
		if (i == img->nruns)
			break;
		while (v < img->nvmas && img->vmas[v].end <= img->runs[i].addr)
			v++;
		if (v >= img->nvmas || !rs->fill[v] || rs->move[v])
			continue;
		lio[k].iov_base = img->pages + img->runs[i].off;
		lio[k].iov_len = img->runs[i].npages * ENG_PAGE;
		rio[k].iov_base = (void *)(uintptr_t)img->runs[i].addr;
		rio[k].iov_len = lio[k].iov_len;
		want += lio[k].iov_len;
		k++;
	}
	for (uint32_t i = 0; i < img->nvmas; i++)
		if (rs->move[i]) {
			moved++;
			moved_bytes += img->vmas[i].end - img->vmas[i].start;
		}
	*bytes += moved_bytes;
	eng_debug("restore pid %d: %u regions (%" PRIu64 " bytes) taken over from the page buffer, "
	          "%zu bytes written", rs->pid, moved, moved_bytes, (size_t)(*bytes - moved_bytes));
	/* what is left in the puppet of the inherited page buffer goes */
	if (rs->moving &&
	    must(rs, rs->pid, "unmap the rest of the inherited page buffer", SYS_munmap,
	         (uint64_t)(uintptr_t)img->pages, img->pages_map_len, 0, 0, 0, 0) < 0)
		return -1;
	return 0;
}

static int finish_regions(struct eng_restore *rs)
{
	struct engine_image *img = rs->img;

	for (uint32_t i = 0; i < img->nvmas; i++) {
		struct eng_vma *e = &img->vmas[i];
		uint64_t len = e->end - e->start;
		if (eng_vma_kind_is_special(e->kind))
			continue;
		if (rs->fill[i] && (e->prot & 3) != 3 &&
		    rb_add(rs, "mprotect a restored region", (int32_t)i, SYS_mprotect, e->start, len,
		           e->prot, 0, 0, 0) < 0)
			return -1;
		if ((e->vmflags & VMF_LOCKED) &&
		    rb_add(rs, "mlock a restored region", (int32_t)i, SYS_mlock2, e->start, len,
		           (e->vmflags & VMF_LOCKONFAULT) ? MLOCK_ONFAULT : 0, 0, 0, 0) < 0)
			return -1;
	}
	return rb_flush(rs);
}

static int set_mm(struct eng_restore *rs)
{
	struct engine_image *img = rs->img;
	struct prctl_mm_map m;
	uint64_t auxv_off = (sizeof(m) + 15) & ~15ULL;

	memset(&m, 0, sizeof(m));
	m.start_code = img->mm.start_code;
	m.end_code = img->mm.end_code;
	m.start_data = img->mm.start_data;
	m.end_data = img->mm.end_data;
	m.start_brk = img->mm.start_brk;
	m.brk = img->mm.brk;
	m.start_stack = img->mm.start_stack;
	m.arg_start = img->mm.arg_start;
	m.arg_end = img->mm.arg_end;
	m.env_start = img->mm.env_start;
	m.env_end = img->mm.env_end;
	m.auxv = (__u64 *)(uintptr_t)(rs->tramp + TRAMP_DATA + auxv_off);
	m.auxv_size = img->auxv_len;
	m.exe_fd = (uint32_t)rs->exe_pfd;
	if (data_write(rs, 0, &m, sizeof(m)) < 0 ||
	    data_write(rs, auxv_off, img->auxv, img->auxv_len) < 0)
		return -1;
	return must(rs, rs->pid, "prctl(PR_SET_MM_MAP)", SYS_prctl, PR_SET_MM, PR_SET_MM_MAP,
	            rs->tramp + TRAMP_DATA, sizeof(m), 0, 0);
}

static int queue_signal(struct eng_restore *rs, pid_t tid, const struct eng_siginfo *si, bool shared)
{
	int signo;
	long r;

	memcpy(&signo, si->raw, sizeof(signo));
	if (data_write(rs, 0, si, sizeof(*si)) < 0)
		return -1;
	if (shared) {
		if (sc(rs, tid, &r, SYS_rt_sigqueueinfo, (uint64_t)rs->pid, (uint64_t)signo,
		       rs->tramp + TRAMP_DATA, 0, 0, 0) < 0)
			return -1;
	} else if (sc(rs, tid, &r, SYS_rt_tgsigqueueinfo, (uint64_t)rs->pid, (uint64_t)tid,
	              (uint64_t)signo, rs->tramp + TRAMP_DATA, 0, 0) < 0) {
		return -1;
	}
	if (r < 0)
		return eng_fail("tid %d: requeue pending signal %d: %s", tid, signo, strerror((int)-r));
	return 0;
}

static int thread_state(struct eng_restore *rs, struct eng_thread *th)
{
	pid_t tid = th->tid;
	stack_t ss;

	if (th->rseq_ptr &&
	    must(rs, tid, "register rseq", SYS_rseq, th->rseq_ptr, th->rseq_len, 0, th->rseq_sig,
	         0, 0) < 0)
		return -1;
	if (th->robust_head &&
	    must(rs, tid, "set_robust_list", SYS_set_robust_list, th->robust_head, th->robust_len,
	         0, 0, 0, 0) < 0)
		return -1;
	if (must(rs, tid, "set_tid_address", SYS_set_tid_address, th->clear_tid, 0, 0, 0, 0, 0) < 0)
		return -1;
	memset(&ss, 0, sizeof(ss));
	if (th->ss_flags & SS_DISABLE) {
		ss.ss_flags = SS_DISABLE;
	} else {
		ss.ss_sp = (void *)(uintptr_t)th->ss_sp;
		ss.ss_size = th->ss_size;
		ss.ss_flags = th->ss_flags & SS_AUTODISARM;
	}
	if (data_write(rs, 0, &ss, sizeof(ss)) < 0 ||
	    must(rs, tid, "sigaltstack", SYS_sigaltstack, rs->tramp + TRAMP_DATA, 0, 0, 0, 0, 0) < 0)
		return -1;
	if (data_write(rs, 0, th->comm, sizeof(th->comm)) < 0 ||
	    must(rs, tid, "prctl(PR_SET_NAME)", SYS_prctl, PR_SET_NAME, rs->tramp + TRAMP_DATA,
	         0, 0, 0, 0) < 0)
		return -1;
	for (uint32_t k = 0; k < th->npending; k++)
		if (queue_signal(rs, tid, &th->pending[k], false) < 0)
			return -1;
	return 0;
}

static int cap_last(void)
{
	char buf[32];

	if (eng_read_file("/proc/sys/kernel/cap_last_cap", buf, sizeof(buf)) < 0)
		return 40;
	return atoi(buf);
}

/* credentials of one thread (they are per thread in the kernel) */
static int thread_creds(struct eng_restore *rs, pid_t tid)
{
	const struct eng_creds *c = &rs->img->creds;
	int last = cap_last();
	uint64_t full = last >= 63 ? ~0ULL : (1ULL << (last + 1)) - 1;
	bool keep_caps = c->uid[1] != 0 && (c->cap_prm | c->cap_eff | c->cap_inh);

	if (c->ngroups > 0 && data_write(rs, 0, c->groups, c->ngroups * sizeof(uint32_t)) < 0)
		return -1;
	if (must(rs, tid, "setgroups", SYS_setgroups, c->ngroups, rs->tramp + TRAMP_DATA, 0, 0, 0,
	         0) < 0)
		return -1;
	if ((c->cap_bnd & full) != full) {
		for (int cap = 0; cap <= last; cap++)
			if (!(c->cap_bnd & (1ULL << cap)) &&
			    must(rs, tid, "prctl(PR_CAPBSET_DROP)", SYS_prctl, PR_CAPBSET_DROP,
			         (uint64_t)cap, 0, 0, 0, 0) < 0)
				return -1;
	}
	if (must(rs, tid, "setresgid", SYS_setresgid, c->gid[0], c->gid[1], c->gid[2], 0, 0, 0) < 0 ||
	    (c->gid[3] != c->gid[1] &&
	     must(rs, tid, "setfsgid", SYS_setfsgid, c->gid[3], 0, 0, 0, 0, 0) < 0))
		return -1;
	if (keep_caps &&
	    must(rs, tid, "prctl(PR_SET_KEEPCAPS)", SYS_prctl, PR_SET_KEEPCAPS, 1, 0, 0, 0, 0) < 0)
		return -1;
	if (must(rs, tid, "setresuid", SYS_setresuid, c->uid[0], c->uid[1], c->uid[2], 0, 0, 0) < 0)
		return -1;
	if (c->uid[3] != c->uid[1]) {
		long r;
		if (sc(rs, tid, &r, SYS_setfsuid, c->uid[3], 0, 0, 0, 0, 0) < 0)
			return -1;
	}
	if (keep_caps || c->uid[1] == 0) {
		struct __user_cap_header_struct h = { _LINUX_CAPABILITY_VERSION_3, 0 };
		struct __user_cap_data_struct d[2] = {
			{ (uint32_t)c->cap_eff, (uint32_t)c->cap_prm, (uint32_t)c->cap_inh },
			{ (uint32_t)(c->cap_eff >> 32), (uint32_t)(c->cap_prm >> 32),
			  (uint32_t)(c->cap_inh >> 32) } };
		if (data_write(rs, 0, &h, sizeof(h)) < 0 || data_write(rs, 64, d, sizeof(d)) < 0 ||
		    must(rs, tid, "capset", SYS_capset, rs->tramp + TRAMP_DATA,
		         rs->tramp + TRAMP_DATA + 64, 0, 0, 0, 0) < 0)
			return -1;
	}
	return 0;
}

static int final_registers(struct eng_restore *rs)
{
	for (uint32_t i = 0; i < rs->img->nthreads; i++) {
		struct eng_thread *th = &rs->img->threads[i];
		struct iovec iov = { th->xstate, th->xstate_len };
		if (ptrace(PTRACE_SETREGSET, th->tid, NT_X86_XSTATE, &iov) < 0)
			return eng_fail_errno("ptrace(PTRACE_SETREGSET xstate, tid %d)", th->tid);
		if (ptrace(PTRACE_SETSIGMASK, th->tid, sizeof(uint64_t), &th->sigmask) < 0)
			return eng_fail_errno("ptrace(PTRACE_SETSIGMASK, tid %d)", th->tid);
		if (ptrace(PTRACE_SETREGS, th->tid, 0, &th->regs) < 0)
			return eng_fail_errno("ptrace(PTRACE_SETREGS, tid %d)", th->tid);
	}
	return 0;
}

/* ------------------------------------------------------------ setup */

static int add_helper(struct eng_restore *rs, int fd)
{
	int *nh = realloc(rs->helpers, (size_t)(rs->nhelpers + 1) * sizeof(int));

	if (!nh)
		return eng_fail("out of memory");
	rs->helpers = nh;
	rs->helpers[rs->nhelpers] = fd;
	return rs->nhelpers++;
}

static int highest_open_fd(void)
{
	DIR *d = opendir("/proc/self/fd");
	struct dirent *de;
	int hi = 2;

	if (!d)
		return 1024;
	while ((de = readdir(d)))
		if (de->d_name[0] >= '0' && de->d_name[0] <= '9' && atoi(de->d_name) > hi)
			hi = atoi(de->d_name);
	closedir(d);
	return hi;
}

/* Every descriptor the puppet needs from us goes to helper_base + k: above
 * all target numbers and above everything we hold, so that moving them
 * never clobbers another. */
static int plan_helpers(struct eng_restore *rs)
{
	struct engine_image *img = rs->img;
	int maxfd = highest_open_fd(), k;
	struct rlimit rl;

	for (uint32_t i = 0; i < img->nfds; i++)
		if (img->fds[i].fd > maxfd)
			maxfd = img->fds[i].fd;
	rs->helper_base = maxfd + 1;
	rs->fd_helper = eng_xcalloc(img->nfds, sizeof(int));
	if (!rs->fd_helper)
		return -1;
	if (add_helper(rs, rs->ctl_wr) != 0)
		return -1;
	for (uint32_t i = 0; i < img->nfds; i++) {
		struct eng_fd *f = &img->fds[i];
		rs->fd_helper[i] = -1;
		if (f->same_as >= 0)
			continue;
		if ((k = add_helper(rs, f->src)) < 0)
			return -1;
		rs->fd_helper[i] = k;
	}
	for (uint32_t i = 0; i < img->nvmas; i++) {
		struct eng_vma *e = &img->vmas[i];
		e->pfd = -1;
		if (e->src_fd < 0 || e->as_private)
			continue;
		for (uint32_t j = 0; j < i; j++)
			if (img->vmas[j].src_fd == e->src_fd && img->vmas[j].pfd >= 0)
				e->pfd = img->vmas[j].pfd;
		if (e->pfd >= 0)
			continue;
		if ((k = add_helper(rs, e->src_fd)) < 0)
			return -1;
		e->pfd = rs->helper_base + k;
	}
	rs->exe_pfd = -1;
	if (rs->exe_src >= 0) {
		if ((k = add_helper(rs, rs->exe_src)) < 0)
			return -1;
		rs->exe_pfd = rs->helper_base + k;
	}
	/* our own limit must allow the helpers (the puppet inherits it) */
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 &&
	    rl.rlim_cur < (rlim_t)(rs->helper_base + rs->nhelpers + 16)) {
		rlim_t need = (rlim_t)(rs->helper_base + rs->nhelpers + 16);
		if (rl.rlim_max < need)
			rl.rlim_max = need;
		rl.rlim_cur = need;
		if (setrlimit(RLIMIT_NOFILE, &rl) < 0)
			return eng_fail_errno("raise RLIMIT_NOFILE to %lu", (unsigned long)need);
	}
	return 0;
}

/* A region can take its piece of a movable page buffer as it is when one
 * saved run covers it whole and it is mapped as the buffer is: private
 * anonymous, accounted, not growing down, without huge page advice (the
 * advice set after the move could not undo the buffer's).  Only regions of
 * 2 MiB or more: below that writing costs about as much, and it keeps small
 * regions (libraries' .bss) on the long-tested copy path (see ENGINE.md,
 * open question). */
#define TAKE_MIN_PAGES 512

static bool can_move(const struct eng_restore *rs, const struct eng_vma *e,
                     const struct eng_run *run)
{
	return rs->img->pages_movable && !rs->opts.thp_fill && e->kind == VMA_ANON &&
	       (e->vmflags & VMF_ACCOUNT) &&
	       !(e->vmflags & (VMF_NORESERVE | VMF_GROWSDOWN | VMF_HUGEPAGE)) &&
	       run->addr == e->start && run->addr + run->npages * ENG_PAGE == e->end &&
	       run->npages >= TAKE_MIN_PAGES;
}

static void plan_fill(struct eng_restore *rs)
{
	struct engine_image *img = rs->img;
	uint32_t v = 0;

	for (uint32_t i = 0; i < img->nruns; i++) {
		while (v < img->nvmas && img->vmas[v].end <= img->runs[i].addr)
			v++;
		if (v < img->nvmas) {
			struct eng_vma *e = &img->vmas[v];
			if (!(e->kind == VMA_FILE_SHARED && !e->as_private) &&
			    !(e->kind == VMA_SHMEM && img->handover))
				rs->fill[v] = true;
			if (rs->fill[v] && can_move(rs, e, &img->runs[i])) {
				rs->move[v] = true;
				rs->move_run[v] = i;
				rs->moving = true;
			}
		}
	}
}

/* The puppet keeps the page buffer at the restorer's address while the
 * regions are mapped: it must lie outside the saved layout.  If it does
 * not, the restorer's buffer moves to a hole free in both layouts (page
 * tables only); if that fails, everything is written the ordinary way. */
static void place_buffer(struct eng_restore *rs)
{
	struct engine_image *img = rs->img;
	const uint64_t guard = 16 * ENG_PAGE;
	uint64_t lo = (uint64_t)(uintptr_t)img->pages, hi = lo + img->pages_map_len, at;
	struct eng_vma *mine = NULL;
	uint32_t nmine = 0;
	bool clash = false;
	void *p;

	if (!rs->moving)
		return;
	for (uint32_t i = 0; i < img->nvmas && !clash; i++)
		clash = img->vmas[i].start < hi + guard && lo < img->vmas[i].end + guard;
	if (!clash)
		return;
	if (eng_parse_maps(getpid(), &mine, &nmine) < 0 ||
	    eng_find_hole(mine, nmine, img->vmas, img->nvmas, img->pages_map_len, &at) < 0) {
		eng_debug("restore pid %d: no hole for the page buffer (%s): written instead",
		          img->pid, engine_strerror());
		goto nomove;
	}
	p = mremap(img->pages, img->pages_map_len, img->pages_map_len,
	           MREMAP_MAYMOVE | MREMAP_FIXED, (void *)(uintptr_t)at);
	if (p == MAP_FAILED) {
		eng_debug("restore pid %d: mremap the page buffer to %#" PRIx64 ": %s: written instead",
		          img->pid, at, strerror(errno));
		goto nomove;
	}
	img->pages = p;
	eng_free_vmas(mine, nmine);
	return;
nomove:
	eng_free_vmas(mine, nmine);
	memset(rs->move, 0, img->nvmas * sizeof(*rs->move));
	rs->moving = false;
}

static void kill_puppet(struct eng_restore *rs)
{
	int st;

	syscall(SYS_pidfd_send_signal, rs->pidfd, SIGKILL, NULL, 0);
	/* the leader's exit is reported after the other threads are reaped */
	for (uint32_t i = rs->nseized; i-- > 0;)
		while (waitpid(rs->img->threads[i].tid, &st, __WALL) < 0 && errno == EINTR)
			;
	if (!rs->opts.sibling)
		while (waitpid(rs->pid, &st, __WALL) < 0 && errno == EINTR)
			;
}

static int wait_ready(struct eng_restore *rs)
{
	struct pollfd p = { rs->ctl_rd, POLLIN, 0 };
	char c;
	int r;

	do
		r = poll(&p, 1, 20000);
	while (r < 0 && errno == EINTR);
	if (r == 0)
		return eng_fail("puppet %d did not get ready in 20 s", rs->pid);
	if (read(rs->ctl_rd, &c, 1) == 1 && c == 'R' && rs->ctl->state == 1)
		return 0;
	if (rs->ctl->state == -1)
		return eng_fail("puppet %d: %s", rs->pid, rs->ctl->msg);
	return eng_fail("puppet %d died while getting ready", rs->pid);
}

/* The pieces of the page buffer that regions take as they are must be
 * inherited by the puppet (the buffer is not, normally): advice on or off
 * around the clone.  A piece that cannot be inherited is written instead. */
static void buffer_inherit(struct eng_restore *rs, bool on)
{
	struct engine_image *img = rs->img;

	if (!rs->moving)
		return;
	rs->moving = false;
	for (uint32_t i = 0; i < img->nvmas; i++) {
		uint8_t *p;
		uint64_t len;
		if (!rs->move[i])
			continue;
		p = img->pages + img->runs[rs->move_run[i]].off;
		len = img->vmas[i].end - img->vmas[i].start;
		if (madvise(p, len, on ? MADV_DOFORK : MADV_DONTFORK) < 0) {
			if (on) {
				eng_debug("restore pid %d: madvise(%p, %" PRIu64 ", MADV_DOFORK): %s: "
				          "region %#" PRIx64 " written instead", img->pid, (void *)p, len,
				          strerror(errno), img->vmas[i].start);
				rs->move[i] = false;
				continue;
			}
			eng_warn("restore pid %d: madvise(%p, %" PRIu64 ", MADV_DONTFORK): %s", img->pid,
			         (void *)p, len, strerror(errno));
		}
		rs->moving = true;
	}
}

static int create_puppet(struct eng_restore *rs)
{
	struct clone_args ca;
	pid_t want = rs->img->pid;
	uint64_t deadline = eng_now_ns() + (uint64_t)(rs->opts.wait_pid_ms > 0 ?
	                                              rs->opts.wait_pid_ms : 0) * 1000000ULL;
	long r;
	int err;

	memset(&ca, 0, sizeof(ca));
	ca.flags = CLONE_PIDFD | (rs->opts.sibling ? CLONE_PARENT : 0);
	ca.pidfd = (uint64_t)(uintptr_t)&rs->pidfd;
	ca.exit_signal = rs->opts.sibling ? 0 : SIGCHLD;
	ca.set_tid = (uint64_t)(uintptr_t)&want;
	ca.set_tid_size = 1;
	buffer_inherit(rs, true);
	for (;;) {
		r = eng_clone3(&ca, sizeof(ca));
		if (r == 0) {
			puppet_main(rs);
			_exit(1);
		}
		if (r > 0)
			break;
		if (errno == EEXIST && eng_now_ns() < deadline) {
			struct timespec ts = { 0, 200000 };
			nanosleep(&ts, NULL);
			continue;
		}
		err = errno;
		buffer_inherit(rs, false);
		errno = err;
		if (errno == EEXIST)
			return eng_fail("pid %d is in use on this host%s", want,
			                rs->opts.wait_pid_ms ? " (its zombie was not reaped in time)" : "");
		if (errno == EPERM)
			return eng_fail("clone3 with set_tid %d: not permitted (needs CAP_SYS_ADMIN)", want);
		return eng_fail_errno("clone3 with set_tid %d", want);
	}
	buffer_inherit(rs, false);
	rs->pid = (pid_t)r;
	return 0;
}

void eng_restore_abort(struct eng_restore *rs)
{
	if (!rs)
		return;
	eng_close(&rs->ctl_rd);
	eng_close(&rs->ctl_wr);
	eng_close(&rs->exe_src);
	eng_close(&rs->pidfd);
	if (rs->ctl)
		munmap(rs->ctl, sizeof(*rs->ctl));
	free(rs->helpers);
	free(rs->fd_helper);
	free(rs->fill);
	free(rs->move);
	free(rs->move_run);
	free(rs->rb);
	eng_fds_unprepare(rs->img);
	eng_vmas_unprepare(rs->img);
	free(rs);
}

int eng_restore_prepare(struct engine_image *img, const struct engine_restore_opts *opts,
                        struct eng_restore **out)
{
	struct eng_restore *rs = eng_xcalloc(1, sizeof(*rs));
	struct eng_vma *mine = NULL;
	uint32_t nmine = 0;
	int p[2];

	if (!rs)
		return -1;
	rs->img = img;
	rs->opts = *opts;
	rs->pidfd = -1;
	rs->exe_src = -1;
	rs->exe_pfd = -1;
	rs->ctl_rd = rs->ctl_wr = -1;
	rs->t0 = eng_now_ns();
	if (check_host(img, !img->handover && opts->wait_pid_ms == 0) < 0)
		goto fail;
	rs->fill = eng_xcalloc(img->nvmas, sizeof(bool));
	rs->move = eng_xcalloc(img->nvmas, sizeof(bool));
	rs->move_run = eng_xcalloc(img->nvmas, sizeof(uint32_t));
	rs->rb = eng_xcalloc(1, sizeof(*rs->rb));
	if (!rs->fill || !rs->move || !rs->move_run || !rs->rb)
		goto fail;
	/* objects first: nothing is created when one is missing */
	if (eng_vmas_prepare(img) < 0 || eng_fds_prepare(img, opts->external_null) < 0)
		goto fail;
	plan_fill(rs);
	place_buffer(rs);
	rs->exe_src = eng_open_as(img, "executable", img->exe, O_RDONLY, S_IFREG);
	if (rs->exe_src < 0)
		eng_warn("restore pid %d: %s (/proc/%d/exe will be wrong)", img->pid, engine_strerror(),
		         img->pid);
	rs->ctl = mmap(NULL, sizeof(*rs->ctl), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS,
	               -1, 0);
	if (rs->ctl == MAP_FAILED) {
		rs->ctl = NULL;
		eng_fail_errno("mmap control page");
		goto fail;
	}
	if (pipe2(p, O_CLOEXEC) < 0) {
		eng_fail_errno("pipe2");
		goto fail;
	}
	rs->ctl_rd = p[0];
	rs->ctl_wr = p[1];
	if (plan_helpers(rs) < 0)
		goto fail;
	if (eng_parse_maps(getpid(), &mine, &nmine) < 0 ||
	    eng_find_hole(mine, nmine, img->vmas, img->nvmas, TRAMP_SIZE, &rs->tramp) < 0) {
		eng_free_vmas(mine, nmine);
		goto fail;
	}
	eng_free_vmas(mine, nmine);
	*out = rs;
	return 0;
fail:
	eng_wrap("restore pid %d", img->pid);
	eng_restore_abort(rs);
	return -1;
}

/* A lazy move: the process makes a userfaultfd while it still has the
 * restorer's credentials (faults taken inside the kernel are caught too),
 * the restorer takes it out (pidfd_getfd) and closes it in the process,
 * and the callee registers what is away, all before the process runs. */
static int give_userfaultfd(struct eng_restore *rs)
{
	long nfd;
	if (sc(rs, rs->pid, &nfd, SYS_userfaultfd, O_CLOEXEC | O_NONBLOCK, 0, 0, 0, 0, 0) < 0)
		return eng_wrap("userfaultfd in pid %d", rs->pid);
	if (nfd < 0)
		return eng_fail("pid %d: userfaultfd: %s", rs->pid, strerror((int)-nfd));
	int uffd = eng_pidfd_getfd(rs->pidfd, (int)nfd);
	int e = errno;
	if (must(rs, rs->pid, "close the userfaultfd", SYS_close, (uint64_t)nfd, 0, 0, 0, 0, 0) < 0) {
		if (uffd >= 0)
			close(uffd);
		return -1;
	}
	if (uffd < 0)
		return eng_fail("pid %d: taking its userfaultfd (fd %ld): %s", rs->pid, nfd, strerror(e));
	if (rs->opts.userfault(rs->opts.userfault_arg, rs->pid, uffd) < 0)
		return eng_wrap("pid %d: registering its pages away", rs->pid);
	return 0;
}

int eng_restore_run(struct eng_restore *rs, pid_t *restored, struct engine_stats *st)
{
	struct engine_image *img = rs->img;
	uint64_t bytes = 0, t0 = rs->t0 = eng_now_ns();
	int rc = -1;

	eng_debug("restore pid %d: objects ready after %.3f ms", img->pid, (eng_now_ns() - t0) / 1e6);
	if (create_puppet(rs) < 0)
		goto out;
	eng_close(&rs->ctl_wr);
	eng_debug("restore pid %d: puppet created after %.3f ms", img->pid, (eng_now_ns() - t0) / 1e6);
	if (wait_ready(rs) < 0)
		goto out_kill;
	eng_debug("restore pid %d: puppet ready after %.3f ms", img->pid, (eng_now_ns() - t0) / 1e6);
	if (seize_puppet(rs) < 0 || unregister_own_rseq(rs) < 0 || swap_memory(rs) < 0 ||
	    map_regions(rs) < 0 || fill_memory(rs, &bytes) < 0 || finish_regions(rs) < 0 ||
	    set_mm(rs) < 0)
		goto out_kill;
	eng_debug("restore pid %d: memory in place after %.3f ms (%" PRIu64 " bytes)", img->pid,
	          (eng_now_ns() - t0) / 1e6, bytes);
	if (rs->opts.userfault && give_userfaultfd(rs) < 0)
		goto out_kill;
	if (must(rs, rs->pid, "close the restorer's helper descriptors", SYS_close_range,
	         (uint64_t)rs->helper_base, ~0U, 0, 0, 0, 0) < 0)
		goto out_kill;
	for (uint32_t i = 0; i < img->nthreads; i++)
		if (thread_state(rs, &img->threads[i]) < 0)
			goto out_kill;
	for (uint32_t k = 0; k < img->nshared; k++)
		if (queue_signal(rs, rs->pid, &img->shared[k], true) < 0)
			goto out_kill;
	for (int r = 0; r < ENG_NRLIMIT; r++) {
		struct rlimit rl = { img->rlim[r][0], img->rlim[r][1] };
		if (prlimit(rs->pid, r, &rl, NULL) < 0) {
			eng_fail_errno("prlimit(pid %d, resource %d)", rs->pid, r);
			goto out_kill;
		}
	}
	for (uint32_t i = 0; i < img->nthreads; i++)
		if (eng_sched_set(img->threads[i].tid, &img->threads[i].sched) < 0)
			goto out_kill;
	for (uint32_t i = img->nthreads; i-- > 0;)
		if (thread_creds(rs, img->threads[i].tid) < 0)
			goto out_kill;
	if (must(rs, rs->pid, "prctl(PR_SET_DUMPABLE)", SYS_prctl, PR_SET_DUMPABLE, img->dumpable,
	         0, 0, 0, 0) < 0)
		goto out_kill;
	/* pages away: if the restorer dies, its userfaultfd goes and the
	 * faults would read zeros; the process dies with it instead (after
	 * the credentials, which clear the parent-death signal) */
	if (rs->opts.userfault &&
	    must(rs, rs->pid, "prctl(PR_SET_PDEATHSIG, SIGKILL)", SYS_prctl, PR_SET_PDEATHSIG, SIGKILL, 0, 0,
	         0, 0) < 0)
		goto out_kill;
	/* last injected call: the trampoline unmaps itself (the thread stays in
	 * its syscall-exit stop, it never returns there) */
	if (must(rs, rs->pid, "unmap the trampoline", SYS_munmap, rs->tramp, TRAMP_SIZE, 0, 0, 0,
	         0) < 0)
		goto out_kill;
	if (final_registers(rs) < 0)
		goto out_kill;
	for (uint32_t i = 0; i < img->nthreads; i++)
		if (ptrace(PTRACE_DETACH, img->threads[i].tid, 0, 0) < 0) {
			eng_fail_errno("ptrace(PTRACE_DETACH, tid %d)", img->threads[i].tid);
			goto out_kill;
		}
	rc = 0;
	if (restored)
		*restored = rs->pid;
	if (st) {
		st->memory_bytes = bytes;
		st->restore_ns = eng_now_ns() - t0;
	}
	goto out;
out_kill:
	kill_puppet(rs);
out:
	if (rc < 0)
		eng_wrap("restore pid %d", img->pid);
	eng_restore_abort(rs);
	return rc;
}

/* The pages a process took over from the page buffer were shared with the
 * restorer (fork), and the kernel keeps them marked as possibly shared
 * until each is touched again, even once the restorer has let them go: the
 * next capture (process_vm_readv pins them) would clear the marks page by
 * page while the process is frozen.  Done here instead, while it runs: the
 * restorer unmaps its copy, then reads the taken pages once into a small
 * scratch area, in steps so that a daemon can do other work in between.
 * Only an optimization: failures are logged, not errors. */
enum { SETTLE_SCRATCH = 256 << 10, SETTLE_NIOV = 16 };

struct engine_settle {
	pid_t    pid;
	uint32_t n, next;              /* taken readable regions, the one being read */
	uint64_t at;                   /* next address in it */
	uint64_t settled, t_ns;        /* bytes read, time spent */
	struct { uint64_t start, end; } *regions;
	uint8_t  scratch[SETTLE_SCRATCH];
};

void eng_settle_free(struct engine_settle *s)
{
	if (!s)
		return;
	free(s->regions);
	free(s);
}

struct engine_settle *eng_settle_begin(struct engine_image *img, pid_t pid)
{
	struct engine_settle *s;
	uint32_t n = 0;

	for (uint32_t i = 0; i < img->nvmas; i++)
		n += img->vmas[i].taken && (img->vmas[i].prot & PROT_READ);
	if (!img->pages)
		return NULL;
	if (munmap(img->pages, img->pages_map_len) < 0) {
		eng_debug("pid %d: munmap page buffer %p: %s", pid, (void *)img->pages, strerror(errno));
		return NULL;
	}
	img->pages = NULL;
	if (!n)
		return NULL;
	s = calloc(1, sizeof(*s));
	if (s)
		s->regions = calloc(n, sizeof(*s->regions));
	if (!s || !s->regions) {
		eng_debug("pid %d: settle taken pages: out of memory", pid);
		eng_settle_free(s);
		return NULL;
	}
	s->pid = pid;
	for (uint32_t i = 0; i < img->nvmas; i++)
		if (img->vmas[i].taken && (img->vmas[i].prot & PROT_READ)) {
			s->regions[s->n].start = img->vmas[i].start;
			s->regions[s->n++].end = img->vmas[i].end;
		}
	s->at = s->regions[0].start;
	return s;
}

int eng_settle_step(struct engine_settle *s, uint64_t max_bytes)
{
	const uint64_t chunk = (uint64_t)SETTLE_SCRATCH * SETTLE_NIOV;
	struct iovec lio[SETTLE_NIOV];
	uint64_t t0 = eng_now_ns(), done = 0;

	for (int k = 0; k < SETTLE_NIOV; k++) {
		lio[k].iov_base = s->scratch;
		lio[k].iov_len = SETTLE_SCRATCH;
	}
	while (s->next < s->n && done < max_bytes) {
		uint64_t end = s->regions[s->next].end;
		struct iovec rio = { (void *)(uintptr_t)s->at, end - s->at < chunk ? end - s->at : chunk };
		ssize_t got = process_vm_readv(s->pid, lio, SETTLE_NIOV, &rio, 1, 0);
		if (got != (ssize_t)rio.iov_len) {
			eng_debug("pid %d: settle taken pages at %#" PRIx64 ": %s", s->pid, s->at,
			          got < 0 ? strerror(errno) : "short read");
			s->next = s->n;
			break;
		}
		s->at += rio.iov_len;
		done += rio.iov_len;
		if (s->at == end && ++s->next < s->n)
			s->at = s->regions[s->next].start;
	}
	s->settled += done;
	s->t_ns += eng_now_ns() - t0;
	if (s->next < s->n)
		return 1;
	eng_debug("pid %d: %" PRIu64 " taken bytes settled in %.3f ms", s->pid, s->settled,
	          s->t_ns / 1e6);
	return 0;
}

void eng_restore_settle(struct engine_image *img, pid_t pid)
{
	struct engine_settle *s = eng_settle_begin(img, pid);

	if (s)
		eng_settle_step(s, UINT64_MAX);
	eng_settle_free(s);
}

int eng_restore(struct engine_image *img, const struct engine_restore_opts *opts,
                pid_t *restored, struct engine_stats *st)
{
	struct eng_restore *rs;

	if (eng_restore_prepare(img, opts, &rs) < 0)
		return -1;
	rs->t0 = eng_now_ns();
	return eng_restore_run(rs, restored, st);
}
