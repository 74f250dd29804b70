/*
 * migr engine — freeze and thaw.
 *
 * Owns the seized state of a process: PTRACE_SEIZE + PTRACE_INTERRUPT of
 * every thread, repeated until the thread set is stable; the bookkeeping of
 * what injection changed (registers, signal masks, scratch page) and its
 * undoing; and the three ways to let go of a frozen process (resume, leave
 * stopped, kill).  Every error path here releases what was seized.
 */
#include <dirent.h>
#include <sched.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/ptrace.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "engine_int.h"

#ifndef PTRACE_GETSIGMASK
#define PTRACE_GETSIGMASK 0x420a
#define PTRACE_SETSIGMASK 0x420b
#endif

#define ERESTARTSYS           512
#define ERESTARTNOINTR        513
#define ERESTARTNOHAND        514
#define ERESTART_RESTARTBLOCK 516

struct eng_task *eng_task_find(struct engine_frozen *fz, pid_t tid)
{
	for (uint32_t i = 0; i < fz->ntasks; i++)
		if (fz->tasks[i].tid == tid)
			return &fz->tasks[i];
	return NULL;
}

/* Redo what the kernel's signal-return path does for a syscall that the
 * stop interrupted (no handler runs).  For the live task a restart-block
 * syscall continues through restart_syscall(); an image restores into a
 * new task without the kernel's restart block, so the syscall is issued
 * again from the start (timeouts restart from their full value). */
void eng_restart_regs(struct user_regs_struct *r, bool live)
{
	if ((int64_t)r->orig_rax >= 0) {
		switch ((int64_t)r->rax) {
		case -ERESTARTSYS:
		case -ERESTARTNOINTR:
		case -ERESTARTNOHAND:
			r->rax = r->orig_rax;
			r->rip -= 2;
			break;
		case -ERESTART_RESTARTBLOCK:
			r->rax = live ? (uint64_t)SYS_restart_syscall : r->orig_rax;
			r->rip -= 2;
			break;
		default:
			break;
		}
	}
	r->orig_rax = (uint64_t)-1;
}

static bool leader_dead(pid_t pid);

/* Wait for tid's next state change.  A blocking wait could hang forever:
 * when the process is killed, the leader's exit is reported only after the
 * other (traced) threads are reaped.  So: spin briefly, then poll, and give
 * up once the thread group leader is dead. */
int eng_wait_stop(pid_t tid, int *status)
{
	pid_t tgid = tid;
	char path[64], buf[1024], *p;

	for (unsigned spins = 0;; spins++) {
		pid_t r = waitpid(tid, status, __WALL | WNOHANG);
		if (r == tid)
			return 0;
		if (r < 0 && errno != EINTR)
			return eng_fail_errno("waitpid(tid %d)", tid);
		if (spins < 200) {
			sched_yield();
			continue;
		}
		if (spins % 64 == 0) {
			if (tgid == tid) {
				snprintf(path, sizeof(path), "/proc/%d/status", tid);
				if (eng_read_file(path, buf, sizeof(buf)) > 0 &&
				    (p = strstr(buf, "\nTgid:")))
					tgid = (pid_t)strtol(p + 6, NULL, 10);
			}
			if (leader_dead(tgid))
				return eng_fail("tid %d: process %d is gone", tid, tgid);
		}
		{
			struct timespec ts = { 0, 50000 };
			nanosleep(&ts, NULL);
		}
	}
}

static void tiny_sleep(unsigned *spins)
{
	if (++*spins < 50) {
		sched_yield();
	} else {
		struct timespec ts = { 0, 200000 };
		nanosleep(&ts, NULL);
	}
}

/* One look at t: is it in a stop we control yet?  Signals that arrive
 * meanwhile are dequeued by the signal-delivery stop: keep them (stash)
 * and go on.  Returns 1 when t changed state, 0 when nothing happened. */
static int poll_frozen(struct eng_task *t, bool *gone)
{
	int st;
	pid_t r = waitpid(t->tid, &st, __WALL | WNOHANG);

	*gone = false;
	if (r < 0) {
		if (errno == EINTR)
			return 0;
		if (errno == ECHILD) {
			*gone = true;
			return 1;
		}
		return eng_fail_errno("waitpid(tid %d)", t->tid);
	}
	if (r == 0)
		return 0;
	if (WIFEXITED(st) || WIFSIGNALED(st)) {
		*gone = true;
		return 1;
	}
	if (!WIFSTOPPED(st))
		return 1;
	if ((st >> 16) == PTRACE_EVENT_STOP) {
		t->stopped = true;
		if (ptrace(PTRACE_GETREGS, t->tid, 0, &t->regs0) < 0)
			return eng_fail_errno("ptrace(PTRACE_GETREGS, tid %d)", t->tid);
		if (ptrace(PTRACE_GETSIGMASK, t->tid, sizeof(uint64_t), &t->orig_mask) < 0)
			return eng_fail_errno("ptrace(PTRACE_GETSIGMASK, tid %d)", t->tid);
		return 1;
	}
	if ((st >> 16) == 0 && WSTOPSIG(st) != (SIGTRAP | 0x80)) {
		/* signal-delivery stop: the signal is dequeued; keep it */
		struct eng_siginfo si;
		if (ptrace(PTRACE_GETSIGINFO, t->tid, 0, &si) == 0) {
			struct eng_siginfo *ns = realloc(t->stash, (t->nstash + 1) * sizeof(si));
			if (!ns)
				return eng_fail("out of memory");
			t->stash = ns;
			t->stash[t->nstash++] = si;
		}
		eng_debug("tid %d: signal %d arrived during the freeze, kept", t->tid, WSTOPSIG(st));
	}
	if (ptrace(PTRACE_CONT, t->tid, 0, 0) < 0 && errno != ESRCH)
		return eng_fail_errno("ptrace(PTRACE_CONT, tid %d)", t->tid);
	return 1;
}

static bool leader_dead(pid_t pid)
{
	char path[64], buf[512], *p;

	snprintf(path, sizeof(path), "/proc/%d/stat", pid);
	if (eng_read_file(path, buf, sizeof(buf)) < 0)
		return true;
	p = strrchr(buf, ')');
	return !p || p[2] == 'Z' || p[2] == 'X';
}

/* Wait until every seized task is stopped or gone. */
static int wait_all_frozen(struct engine_frozen *fz, uint64_t deadline)
{
	unsigned spins = 0;

	for (;;) {
		bool pending = false, progress = false;
		for (uint32_t i = 0; i < fz->ntasks; i++) {
			struct eng_task *t = &fz->tasks[i];
			bool gone;
			int r;
			if (t->stopped)
				continue;
			r = poll_frozen(t, &gone);
			if (r < 0)
				return -1;
			if (gone) {
				if (t->tid == fz->pid)
					return eng_fail("pid %d exited during the freeze", fz->pid);
				free(t->stash);
				fz->tasks[i] = fz->tasks[--fz->ntasks];
				i--;
				progress = true;
				continue;
			}
			if (r)
				progress = true;
			if (!t->stopped)
				pending = true;
		}
		if (!pending)
			return 0;
		if (progress) {
			spins = 0;
			continue;
		}
		if (leader_dead(fz->pid))
			return eng_fail("pid %d exited during the freeze", fz->pid);
		if (eng_now_ns() > deadline) {
			for (uint32_t i = 0; i < fz->ntasks; i++)
				if (!fz->tasks[i].stopped)
					return eng_fail("pid %d: thread %d did not stop in time "
					                "(uninterruptible sleep?)", fz->pid, fz->tasks[i].tid);
		}
		tiny_sleep(&spins);
	}
}

static int list_tasks(pid_t pid, pid_t **out, uint32_t *n)
{
	char path[64];
	uint32_t cap = 64, cnt = 0;
	pid_t *v = malloc(cap * sizeof(*v));
	struct dirent *de;
	DIR *d;

	snprintf(path, sizeof(path), "/proc/%d/task", pid);
	d = opendir(path);
	if (!d) {
		free(v);
		if (errno == ENOENT)
			return eng_fail("pid %d: no such process", pid);
		return eng_fail_errno("opendir %s", path);
	}
	while (v && (de = readdir(d))) {
		if (de->d_name[0] < '0' || de->d_name[0] > '9')
			continue;
		if (cnt == cap) {
			pid_t *nv = realloc(v, 2 * cap * sizeof(*v));
			if (!nv) {
				free(v);
				v = NULL;
				break;
			}
			v = nv;
			cap *= 2;
		}
		v[cnt++] = atoi(de->d_name);
	}
	closedir(d);
	if (!v)
		return eng_fail("out of memory listing threads of pid %d", pid);
	*out = v;
	*n = cnt;
	return 0;
}

static int check_traceable(pid_t pid)
{
	char path[64], buf[4096], *p;
	long tracer = 0;
	unsigned uid = 0;

	snprintf(path, sizeof(path), "/proc/%d/status", pid);
	if (eng_read_file(path, buf, sizeof(buf)) < 0) {
		if (errno == ENOENT)
			return eng_fail("pid %d: no such process", pid);
		return -1;
	}
	if ((p = strstr(buf, "\nTracerPid:")))
		tracer = strtol(p + 11, NULL, 10);
	if ((p = strstr(buf, "\nUid:")))
		uid = (unsigned)strtoul(p + 5, NULL, 10);
	if (tracer)
		return eng_fail("pid %d: being ptraced by pid %ld: not supported", pid, tracer);
	if (geteuid() != 0 && uid != geteuid())
		return eng_fail("pid %d: belongs to uid %u, not to us (uid %u): refused",
		                pid, uid, (unsigned)geteuid());
	return 0;
}

int eng_freeze(pid_t pid, int timeout_ms, struct engine_frozen **out)
{
	struct engine_frozen *fz;
	uint64_t deadline;

	if (pid <= 0)
		return eng_fail("invalid pid %d", pid);
	if (check_traceable(pid) < 0)
		return -1;
	fz = eng_xcalloc(1, sizeof(*fz));
	if (!fz)
		return -1;
	fz->pid = pid;
	fz->pidfd = eng_pidfd_open(pid);
	if (fz->pidfd < 0) {
		eng_fail_errno("pidfd_open(pid %d)", pid);
		free(fz);
		return -1;
	}
	fz->t_freeze0 = eng_now_ns();
	deadline = fz->t_freeze0 + (uint64_t)(timeout_ms > 0 ? timeout_ms : 5000) * 1000000ULL;

	for (;;) {
		pid_t *tids = NULL;
		uint32_t ntids = 0, fresh = 0;

		if (list_tasks(pid, &tids, &ntids) < 0)
			goto fail;
		for (uint32_t i = 0; i < ntids; i++) {
			struct eng_task *t, *nt;
			if (eng_task_find(fz, tids[i]))
				continue;
			if (ptrace(PTRACE_SEIZE, tids[i], 0, PTRACE_O_TRACESYSGOOD) < 0) {
				if (errno == ESRCH && tids[i] != pid)
					continue;      /* thread ended meanwhile */
				if (errno == EPERM)
					eng_fail("pid %d: not allowed to trace thread %d "
					         "(not our process, or no ptrace permission)", pid, tids[i]);
				else
					eng_fail_errno("ptrace(PTRACE_SEIZE, pid %d tid %d)", pid, tids[i]);
				free(tids);
				goto fail;
			}
			nt = realloc(fz->tasks, (fz->ntasks + 1) * sizeof(*nt));
			if (!nt) {
				ptrace(PTRACE_DETACH, tids[i], 0, 0);
				free(tids);
				eng_fail("out of memory");
				goto fail;
			}
			fz->tasks = nt;
			t = &fz->tasks[fz->ntasks++];
			memset(t, 0, sizeof(*t));
			t->tid = tids[i];
			if (ptrace(PTRACE_INTERRUPT, t->tid, 0, 0) < 0 && errno != ESRCH) {
				eng_fail_errno("ptrace(PTRACE_INTERRUPT, tid %d)", t->tid);
				free(tids);
				goto fail;
			}
			fresh++;
		}
		free(tids);
		/* test hook: the target dies while being frozen */
		if (fresh && getenv("MIGR_ENGINE_FAULT") &&
		    !strcmp(getenv("MIGR_ENGINE_FAULT"), "kill-in-freeze"))
			kill(pid, SIGKILL);
		if (wait_all_frozen(fz, deadline) < 0)
			goto fail;
		if (!fresh)
			break;
		if (eng_now_ns() > deadline) {
			eng_fail("pid %d: thread set did not settle in time", pid);
			goto fail;
		}
	}
	/* main thread first */
	for (uint32_t i = 1; i < fz->ntasks; i++) {
		if (fz->tasks[i].tid == pid) {
			struct eng_task tmp = fz->tasks[0];
			fz->tasks[0] = fz->tasks[i];
			fz->tasks[i] = tmp;
		}
	}
	fz->t_frozen = eng_now_ns();
	eng_debug("pid %d: %u threads frozen in %.3f ms", pid, fz->ntasks,
	          (fz->t_frozen - fz->t_freeze0) / 1e6);
	*out = fz;
	return 0;
fail:
	eng_wrap("freeze pid %d", pid);
	eng_release(fz, ENGINE_LEAVE_RUNNING);
	return -1;
}

/* Give a signal dequeued during the freeze back to its thread. */
static void requeue_stash(struct engine_frozen *fz, struct eng_task *t)
{
	for (uint32_t i = 0; i < t->nstash; i++) {
		siginfo_t *si = (siginfo_t *)t->stash[i].raw;
		if (si->si_code < 0 && si->si_code != SI_TKILL &&
		    syscall(SYS_rt_tgsigqueueinfo, fz->pid, t->tid, si->si_signo, si) == 0)
			continue;
		if (syscall(SYS_tgkill, fz->pid, t->tid, si->si_signo) < 0)
			eng_warn("tid %d: could not give back signal %d: %s", t->tid,
			         si->si_signo, strerror(errno));
	}
}

/* The leader's exit is reported only after every other thread is reaped:
 * collect the others first. */
static void reap_all(struct engine_frozen *fz)
{
	for (uint32_t n = fz->ntasks, i = n ? 1 % n : 0, k = 0; k < n; k++, i = (i + 1) % n) {
		int st;
		for (int tries = 0; tries < 1000; tries++) {
			pid_t r = waitpid(fz->tasks[i].tid, &st, __WALL);
			if (r < 0 && errno == EINTR)
				continue;  /* retry */
			if (r < 0 || WIFEXITED(st) || WIFSIGNALED(st))
				break;
			/* still a stop (e.g. a queued exit event): let it go on */
			ptrace(PTRACE_CONT, fz->tasks[i].tid, 0, 0);
		}
	}
}

int eng_release(struct engine_frozen *fz, int how)
{
	int rc = 0;

	if (!fz)
		return 0;
	if (how == ENGINE_KILL) {
		if (syscall(SYS_pidfd_send_signal, fz->pidfd, SIGKILL, NULL, 0) < 0 && errno != ESRCH)
			rc = eng_fail_errno("kill pid %d", fz->pid);
		reap_all(fz);
	} else {
		if (fz->scratch && fz->ntasks) {
			long r;
			if (eng_fz_inject(fz, &fz->tasks[0], &r, SYS_munmap, fz->scratch,
			                  ENG_PAGE, 0, 0) < 0 || r != 0)
				eng_warn("pid %d: could not unmap scratch page %#llx", fz->pid,
				         (unsigned long long)fz->scratch);
			fz->scratch = 0;
		}
		for (uint32_t i = 0; i < fz->ntasks; i++) {
			struct eng_task *t = &fz->tasks[i];
			if (!t->stopped)
				continue;
			if (t->injected) {
				struct user_regs_struct r = t->regs0;
				eng_restart_regs(&r, true);
				if (ptrace(PTRACE_SETREGS, t->tid, 0, &r) < 0)
					rc = eng_fail_errno("ptrace(PTRACE_SETREGS, tid %d)", t->tid);
			}
			if (t->mask_changed &&
			    ptrace(PTRACE_SETSIGMASK, t->tid, sizeof(uint64_t), &t->orig_mask) < 0)
				rc = eng_fail_errno("ptrace(PTRACE_SETSIGMASK, tid %d)", t->tid);
			requeue_stash(fz, t);
		}
		if (how == ENGINE_LEAVE_STOPPED && kill(fz->pid, SIGSTOP) < 0)
			rc = eng_fail_errno("kill(pid %d, SIGSTOP)", fz->pid);
		for (uint32_t i = fz->ntasks; i-- > 0;) {   /* the leader last */
			pid_t tid = fz->tasks[i].tid;
			if (!fz->tasks[i].stopped) {
				/* interrupted but not seen stopped yet: it stops soon (or
				 * exits); PTRACE_DETACH needs it stopped */
				uint64_t dl = eng_now_ns() + 2000000000ULL;
				unsigned spins = 0;
				int st;
				for (;;) {
					pid_t r = waitpid(tid, &st, __WALL | WNOHANG);
					if (r < 0 && errno == EINTR)
						continue;
					if (r < 0 || (r > 0 && !WIFSTOPPED(st)))
						break;                  /* gone */
					if (r > 0) {
						if ((st >> 16) == 0 && WSTOPSIG(st) != (SIGTRAP | 0x80)) {
							/* a signal-delivery stop: deliver it */
							ptrace(PTRACE_DETACH, tid, 0, WSTOPSIG(st));
							break;
						}
						ptrace(PTRACE_DETACH, tid, 0, 0);
						break;
					}
					if (eng_now_ns() > dl) {
						eng_warn("tid %d: never stopped; left to the kernel", tid);
						break;
					}
					tiny_sleep(&spins);
				}
				continue;
			}
			if (ptrace(PTRACE_DETACH, tid, 0, 0) < 0) {
				if (errno != ESRCH) {
					rc = eng_fail_errno("ptrace(PTRACE_DETACH, tid %d)", tid);
				} else {
					/* dying under us: collect it, the leader last */
					uint64_t dl = eng_now_ns() + 1000000000ULL;
					unsigned spins = 0;
					int st;
					while (waitpid(tid, &st, __WALL | WNOHANG) == 0 && eng_now_ns() < dl)
						tiny_sleep(&spins);
				}
			}
		}
	}
	for (uint32_t i = 0; i < fz->ntasks; i++)
		free(fz->tasks[i].stash);
	free(fz->tasks);
	if (fz->prebuf)
		munmap(fz->prebuf, fz->prebuf_len);
	if (fz->pidfd >= 0)
		close(fz->pidfd);
	free(fz);
	return rc;
}
