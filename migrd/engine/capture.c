/*
 * migr engine — capture of thread and process state.
 *
 * Owns everything of a frozen process that is neither memory (mempolicy.c)
 * nor file descriptors (fdpolicy.c): per thread the registers (restart of
 * an interrupted syscall and rseq abort already applied), xstate, signal
 * mask and pending signals, sigaltstack, robust list, rseq registration,
 * clear_child_tid and name; per process the credentials, cwd, exe, umask,
 * personality, rlimits, mm fields, auxv, itimers and signal handlers.
 * What /proc and ptrace do not show is asked by injecting the syscall into
 * the frozen threads through a scratch page that is unmapped afterwards.
 */
#include <elf.h>
#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/ptrace.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/time.h>
#include <sys/uio.h>
#include <unistd.h>

#include "engine_int.h"

#ifndef PTRACE_GET_RSEQ_CONFIGURATION
#define PTRACE_GET_RSEQ_CONFIGURATION 0x420f
#endif
#ifndef PTRACE_PEEKSIGINFO
#define PTRACE_PEEKSIGINFO 0x4209
#endif
#ifndef PTRACE_PEEKSIGINFO_SHARED
#define PTRACE_PEEKSIGINFO_SHARED 1
#endif
#ifndef NT_X86_XSTATE
#define NT_X86_XSTATE 0x202
#endif

struct rseq_config { uint64_t ptr; uint32_t len, sig, flags, pad; };
struct peeksiginfo_args { uint64_t off; uint32_t flags; int32_t nr; };

/* all queued signals of tid (shared: the process-wide queue) */
static int peek_signals(pid_t tid, bool shared, struct eng_siginfo **out, uint32_t *n)
{
	struct eng_siginfo *v = *out;
	uint32_t cnt = *n;

	for (;;) {
		struct peeksiginfo_args a = { cnt - *n, shared ? PTRACE_PEEKSIGINFO_SHARED : 0, 64 };
		struct eng_siginfo batch[64];
		long got = ptrace(PTRACE_PEEKSIGINFO, tid, &a, batch);
		struct eng_siginfo *nv;
		if (got < 0)
			return eng_fail_errno("ptrace(PTRACE_PEEKSIGINFO, tid %d)", tid);
		if (got == 0)
			break;
		if (cnt + (uint32_t)got > ENG_MAX_PENDING)
			return eng_fail("tid %d: too many pending signals", tid);
		nv = realloc(v, (cnt + (size_t)got) * sizeof(*v));
		if (!nv)
			return eng_fail("out of memory");
		v = nv;
		memcpy(v + cnt, batch, (size_t)got * sizeof(*v));
		cnt += (uint32_t)got;
		*out = v;
		if (got < 64)
			break;
	}
	*out = v;
	*n = cnt;
	return 0;
}

/* A thread stopped inside an rseq critical section continues at the abort
 * handler, as the kernel would have sent it there on its way back. */
static void rseq_fixup(pid_t pid, struct eng_thread *th)
{
	uint64_t cs_ptr;
	struct { uint32_t version, flags; uint64_t start_ip, post_commit_offset, abort_ip; } cs;

	if (!th->rseq_ptr)
		return;
	if (eng_mem_read(pid, th->rseq_ptr + 8, &cs_ptr, sizeof(cs_ptr)) < 0 || !cs_ptr)
		return;
	if (eng_mem_read(pid, cs_ptr, &cs, sizeof(cs)) < 0)
		return;
	if (th->regs.rip - cs.start_ip < cs.post_commit_offset) {
		eng_debug("tid %d: inside rseq critical section, continues at abort %#" PRIx64,
		          th->tid, cs.abort_ip);
		th->regs.rip = cs.abort_ip;
	}
}

int eng_capture_threads(struct engine_frozen *fz, struct engine_image *img)
{
	static uint8_t xbuf[ENG_MAX_XSTATE];

	img->threads = eng_xcalloc(fz->ntasks, sizeof(*img->threads));
	if (!img->threads)
		return -1;
	img->nthreads = fz->ntasks;
	for (uint32_t i = 0; i < fz->ntasks; i++) {
		struct eng_task *t = &fz->tasks[i];
		struct eng_thread *th = &img->threads[i];
		struct iovec iov = { xbuf, sizeof(xbuf) };
		struct rseq_config rc;
		char path[96];
		long r;

		th->tid = t->tid;
		th->regs = t->regs0;
		eng_restart_regs(&th->regs, false);
		th->sigmask = t->orig_mask;
		if (ptrace(PTRACE_GETREGSET, t->tid, NT_X86_XSTATE, &iov) < 0)
			return eng_fail_errno("ptrace(PTRACE_GETREGSET NT_X86_XSTATE, tid %d)", t->tid);
		th->xstate_len = (uint32_t)iov.iov_len;
		th->xstate = malloc(iov.iov_len);
		if (!th->xstate)
			return eng_fail("out of memory");
		memcpy(th->xstate, xbuf, iov.iov_len);
		/* XSAVE header: the components this state holds (xstate_bv) */
		if (iov.iov_len >= 520) {
			uint64_t bv;
			memcpy(&bv, xbuf + 512, 8);
			img->xcr0 |= bv;
		}
		/* signals dequeued during the freeze come first */
		if (t->nstash) {
			th->pending = malloc(t->nstash * sizeof(*th->pending));
			if (!th->pending)
				return eng_fail("out of memory");
			memcpy(th->pending, t->stash, t->nstash * sizeof(*th->pending));
			th->npending = t->nstash;
		}
		if (peek_signals(t->tid, false, &th->pending, &th->npending) < 0)
			return -1;
		if (syscall(SYS_get_robust_list, t->tid, &th->robust_head, &th->robust_len) < 0)
			return eng_fail_errno("get_robust_list(tid %d)", t->tid);
		memset(&rc, 0, sizeof(rc));
		r = ptrace(PTRACE_GET_RSEQ_CONFIGURATION, t->tid, sizeof(rc), &rc);
		if (r < 0 && errno != EIO && errno != EINVAL)
			return eng_fail_errno("ptrace(PTRACE_GET_RSEQ_CONFIGURATION, tid %d)", t->tid);
		if (r > 0) {
			th->rseq_ptr = rc.ptr;
			th->rseq_len = rc.len;
			th->rseq_sig = rc.sig;
		}
		rseq_fixup(fz->pid, th);
		snprintf(path, sizeof(path), "/proc/%d/task/%d/comm", fz->pid, t->tid);
		if (eng_read_file(path, th->comm, sizeof(th->comm)) < 0)
			return -1;
		th->comm[strcspn(th->comm, "\n")] = 0;
		if (eng_sched_get(t->tid, &th->sched) < 0)
			return -1;
	}
	if (peek_signals(fz->pid, true, &img->shared, &img->nshared) < 0)
		return -1;
	return 0;
}

static int status_field(const char *status, const char *key, const char **val)
{
	const char *p = strstr(status, key);

	if (!p)
		return -1;
	*val = p + strlen(key);
	return 0;
}

static int parse_status(struct engine_image *img, const char *st, pid_t pid)
{
	const char *v;
	struct eng_creds *c = &img->creds;

	if (status_field(st, "\nUmask:", &v) == 0)
		img->umask = (uint32_t)strtoul(v, NULL, 8);
	if (status_field(st, "\nUid:", &v) < 0 ||
	    sscanf(v, "%u %u %u %u", &c->uid[0], &c->uid[1], &c->uid[2], &c->uid[3]) != 4)
		return eng_fail("pid %d: no Uid line in /proc status", pid);
	if (status_field(st, "\nGid:", &v) < 0 ||
	    sscanf(v, "%u %u %u %u", &c->gid[0], &c->gid[1], &c->gid[2], &c->gid[3]) != 4)
		return eng_fail("pid %d: no Gid line in /proc status", pid);
	if (status_field(st, "\nGroups:", &v) == 0) {
		char *end;
		for (;;) {
			unsigned long g;
			uint32_t *ng;
			while (*v == ' ' || *v == '\t')
				v++;
			if (*v < '0' || *v > '9')
				break;
			g = strtoul(v, &end, 10);
			ng = realloc(c->groups, (c->ngroups + 1) * sizeof(*ng));
			if (!ng)
				return eng_fail("out of memory");
			c->groups = ng;
			c->groups[c->ngroups++] = (uint32_t)g;
			v = end;
		}
	}
	if (status_field(st, "\nCapInh:", &v) == 0)
		c->cap_inh = strtoull(v, NULL, 16);
	if (status_field(st, "\nCapPrm:", &v) == 0)
		c->cap_prm = strtoull(v, NULL, 16);
	if (status_field(st, "\nCapEff:", &v) == 0)
		c->cap_eff = strtoull(v, NULL, 16);
	if (status_field(st, "\nCapBnd:", &v) == 0)
		c->cap_bnd = strtoull(v, NULL, 16);
	if (status_field(st, "\nCapAmb:", &v) == 0)
		c->cap_amb = strtoull(v, NULL, 16);
	if (status_field(st, "\nSeccomp:", &v) == 0 && strtol(v, NULL, 10) != 0)
		return eng_fail("pid %d: seccomp filter: not supported", pid);
	if (status_field(st, "\nx86_Thread_features:", &v) == 0 && strstr(v, "shstk") &&
	    strstr(v, "shstk") < strchr(v, '\n'))
		return eng_fail("pid %d: shadow stack enabled: not supported", pid);
	return 0;
}

static int parse_stat(struct engine_image *img, const char *st, pid_t pid)
{
	const char *p = strrchr(st, ')');
	unsigned long long f[60] = { 0 };
	int n = 0;
	const char *lp = strchr(st, '(');

	if (!p || !lp)
		return eng_fail("pid %d: unreadable /proc stat", pid);
	snprintf(img->comm, sizeof(img->comm), "%.*s", (int)(p - lp - 1), lp + 1);
	p += 2;
	/* field 3 (state) is a letter; fields 4.. are numbers */
	if (*p)
		p += 2;
	for (n = 4; n < 60 && *p; n++) {
		char *end;
		f[n] = strtoull(p, &end, 10);
		if (end == p)
			break;
		p = end;
		while (*p == ' ')
			p++;
	}
	if (n < 52)
		return eng_fail("pid %d: short /proc stat (%d fields)", pid, n);
	img->ppid = (int32_t)f[4];
	img->pgid = (int32_t)f[5];
	img->sid = (int32_t)f[6];
	img->mm.start_code = f[26];
	img->mm.end_code = f[27];
	img->mm.start_stack = f[28];
	img->mm.start_data = f[45];
	img->mm.end_data = f[46];
	img->mm.start_brk = f[47];
	img->mm.arg_start = f[48];
	img->mm.arg_end = f[49];
	img->mm.env_start = f[50];
	img->mm.env_end = f[51];
	return 0;
}

/* /proc/PID/limits lists the resources in their numeric order */
static int parse_limits(struct engine_image *img, pid_t pid)
{
	char path[64], buf[4096], *line, *save = NULL;
	int r = -1;

	snprintf(path, sizeof(path), "/proc/%d/limits", pid);
	if (eng_read_file(path, buf, sizeof(buf)) < 0)
		return -1;
	for (line = strtok_r(buf, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
		char soft[32], hard[32];
		if (r < 0) {        /* header */
			r = 0;
			continue;
		}
		if (r >= ENG_NRLIMIT || strlen(line) < 26 ||
		    sscanf(line + 26, "%31s %31s", soft, hard) != 2)
			break;
		img->rlim[r][0] = strcmp(soft, "unlimited") ? strtoull(soft, NULL, 10) : RLIM_INFINITY;
		img->rlim[r][1] = strcmp(hard, "unlimited") ? strtoull(hard, NULL, 10) : RLIM_INFINITY;
		r++;
	}
	if (r != ENG_NRLIMIT)
		return eng_fail("pid %d: unreadable %s", pid, path);
	return 0;
}

static int capture_rlimits(struct engine_image *img, pid_t pid)
{
	for (int r = 0; r < ENG_NRLIMIT; r++) {
		struct rlimit rl;
		if (prlimit(pid, r, NULL, &rl) < 0) {
			/* without CAP_SYS_RESOURCE another user's limits are not
			 * ours to ask: /proc says the same */
			if (errno == EPERM)
				return parse_limits(img, pid);
			return eng_fail_errno("prlimit(pid %d, resource %d)", pid, r);
		}
		img->rlim[r][0] = rl.rlim_cur;
		img->rlim[r][1] = rl.rlim_max;
	}
	return 0;
}

/* state only an injected syscall can tell */
static int capture_injected(struct engine_frozen *fz, struct engine_image *img,
                            uint64_t sigmask_query)
{
	struct eng_task *main = &fz->tasks[0];
	long r;

	if (eng_find_syscall_insn(fz->pid, &fz->syscall_ip) < 0)
		return -1;
	if (eng_fz_inject(fz, main, &r, SYS_mmap, 0, ENG_PAGE, PROT_READ | PROT_WRITE,
	                  MAP_PRIVATE | MAP_ANONYMOUS) < 0)
		return -1;
	if (r < 0 && r > -4096)
		return eng_fail("pid %d: injected mmap of a scratch page: %s", fz->pid, strerror((int)-r));
	fz->scratch = (uint64_t)r;

	for (int sig = 1; sig <= ENG_NSIG; sig++) {
		if (sig == SIGKILL || sig == SIGSTOP || !(sigmask_query & (1ULL << (sig - 1))))
			continue;
		if (eng_fz_inject(fz, main, &r, SYS_rt_sigaction, (uint64_t)sig, 0, fz->scratch, 8) < 0)
			return -1;
		if (r < 0)
			return eng_fail("pid %d: injected rt_sigaction(%d): %s", fz->pid, sig,
			                strerror((int)-r));
		if (eng_mem_read(fz->pid, fz->scratch, &img->sigact[sig - 1],
		                 sizeof(img->sigact[0])) < 0)
			return -1;
	}
	if (eng_fz_inject(fz, main, &r, SYS_brk, 0, 0, 0, 0) < 0)
		return -1;
	img->mm.brk = (uint64_t)r;
	for (int w = 0; w < 3; w++) {
		struct itimerval it;
		if (eng_fz_inject(fz, main, &r, SYS_getitimer, (uint64_t)w, fz->scratch, 0, 0) < 0)
			return -1;
		if (r < 0)
			return eng_fail("pid %d: injected getitimer(%d): %s", fz->pid, w, strerror((int)-r));
		if (eng_mem_read(fz->pid, fz->scratch, &it, sizeof(it)) < 0)
			return -1;
		img->itimer[w].int_sec = it.it_interval.tv_sec;
		img->itimer[w].int_usec = it.it_interval.tv_usec;
		img->itimer[w].val_sec = it.it_value.tv_sec;
		img->itimer[w].val_usec = it.it_value.tv_usec;
	}
	if (eng_fz_inject(fz, main, &r, SYS_prctl, PR_GET_DUMPABLE, 0, 0, 0) < 0)
		return -1;
	img->dumpable = (uint32_t)r;
	for (uint32_t i = 0; i < fz->ntasks; i++) {
		struct eng_task *t = &fz->tasks[i];
		struct eng_thread *th = &img->threads[i];
		stack_t ss;
		uint64_t ctid = 0;

		if (eng_fz_inject(fz, t, &r, SYS_sigaltstack, 0, fz->scratch, 0, 0) < 0)
			return -1;
		if (r < 0)
			return eng_fail("tid %d: injected sigaltstack: %s", t->tid, strerror((int)-r));
		if (eng_mem_read(fz->pid, fz->scratch, &ss, sizeof(ss)) < 0)
			return -1;
		th->ss_sp = (uint64_t)(uintptr_t)ss.ss_sp;
		th->ss_size = ss.ss_size;
		th->ss_flags = ss.ss_flags;
		if (eng_fz_inject(fz, t, &r, SYS_prctl, PR_GET_TID_ADDRESS, fz->scratch, 0, 0) < 0)
			return -1;
		if (r == 0 && eng_mem_read(fz->pid, fz->scratch, &ctid, sizeof(ctid)) < 0)
			return -1;
		th->clear_tid = ctid;
	}
	if (eng_fz_inject(fz, main, &r, SYS_munmap, fz->scratch, ENG_PAGE, 0, 0) < 0)
		return -1;
	fz->scratch = 0;
	return 0;
}

int eng_capture_process(struct engine_frozen *fz, struct engine_image *img)
{
	char path[64], buf[16384], lnk[ENG_MAX_PATH];
	uint64_t sigign = 0, sigcgt = 0;
	struct stat st;
	const char *v;
	size_t alen;
	pid_t pid = fz->pid;

	img->pid = pid;
	if (eng_kernel_release(img->kernel, sizeof(img->kernel), img->machine,
	                       sizeof(img->machine)) < 0)
		return -1;
	snprintf(path, sizeof(path), "/proc/%d/stat", pid);
	if (eng_read_file(path, buf, sizeof(buf)) < 0 || parse_stat(img, buf, pid) < 0)
		return -1;
	snprintf(path, sizeof(path), "/proc/%d/status", pid);
	if (eng_read_file(path, buf, sizeof(buf)) < 0 || parse_status(img, buf, pid) < 0)
		return -1;
	if (status_field(buf, "\nSigIgn:", &v) == 0)
		sigign = strtoull(v, NULL, 16);
	if (status_field(buf, "\nSigCgt:", &v) == 0)
		sigcgt = strtoull(v, NULL, 16);
	snprintf(path, sizeof(path), "/proc/%d/timers", pid);
	if (eng_read_file(path, buf, sizeof(buf)) >= 0 && buf[0])
		return eng_fail("pid %d: POSIX timers (timer_create): not supported", pid);
	snprintf(path, sizeof(path), "/proc/%d/cwd", pid);
	if (eng_readlink(path, lnk, sizeof(lnk)) < 0 || !(img->cwd = eng_xstrdup(lnk)))
		return -1;
	snprintf(path, sizeof(path), "/proc/%d/exe", pid);
	if (eng_readlink(path, lnk, sizeof(lnk)) < 0)
		return -1;
	if (strlen(lnk) > 10 && !strcmp(lnk + strlen(lnk) - 10, " (deleted)"))
		lnk[strlen(lnk) - 10] = 0;
	if (!(img->exe = eng_xstrdup(lnk)))
		return -1;
	if (stat(path, &st) == 0) {
		img->exe_dev = st.st_dev;
		img->exe_ino = st.st_ino;
		img->exe_size = (uint64_t)st.st_size;
	}
	snprintf(path, sizeof(path), "/proc/%d/personality", pid);
	if (eng_read_file(path, buf, sizeof(buf)) >= 0)
		img->personality = (uint32_t)strtoul(buf, NULL, 16);
	if (capture_rlimits(img, pid) < 0)
		return -1;
	snprintf(path, sizeof(path), "/proc/%d/auxv", pid);
	img->auxv = (uint8_t *)eng_read_file_alloc(path, &alen);
	if (!img->auxv)
		return -1;
	img->auxv_len = (uint32_t)alen;
	for (int s = 0; s < ENG_NSIG; s++)
		img->sigact[s].handler = 0;   /* SIG_DFL unless asked */
	if (capture_injected(fz, img, sigign | sigcgt | (1ULL << (SIGCHLD - 1))) < 0)
		return eng_wrap("capture state of pid %d", pid);
	return 0;
}
