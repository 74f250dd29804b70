/*
 * migr engine — a thread's scheduling policy and nice value, kept across a
 * move (sched_getattr(2) at capture, sched_setattr(2) at restore).
 *
 * glibc (before 2.41) wraps neither call nor defines the kernel's struct
 * sched_attr (and <linux/sched/types.h> clashes with <sched.h>): it is
 * written out here, as far as the util clamps, which are left out (a
 * node's tuning, not the process's).
 */
#include <errno.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "engine_int.h"

#define SCHED_FLAG_RESET_ON_FORK 0x01

struct sched_attr {
	uint32_t size, sched_policy;
	uint64_t sched_flags;
	int32_t  sched_nice;
	uint32_t sched_priority;
	uint64_t sched_runtime, sched_deadline, sched_period;
};

int eng_sched_get(pid_t tid, struct eng_sched *s)
{
	struct sched_attr a;

	memset(&a, 0, sizeof(a));
	if (syscall(SYS_sched_getattr, tid, &a, sizeof(a), 0) < 0)
		return eng_fail_errno("sched_getattr(tid %d)", tid);
	*s = (struct eng_sched){
		.policy = a.sched_policy, .priority = a.sched_priority, .nice = a.sched_nice,
		.reset_on_fork = !!(a.sched_flags & SCHED_FLAG_RESET_ON_FORK),
		.runtime = a.sched_runtime, .deadline = a.sched_deadline, .period = a.sched_period,
	};
	return 0;
}

int eng_sched_set(pid_t tid, const struct eng_sched *s)
{
	struct sched_attr a = {
		.size = sizeof(a), .sched_policy = s->policy, .sched_priority = s->priority,
		.sched_nice = s->nice, .sched_flags = s->reset_on_fork ? SCHED_FLAG_RESET_ON_FORK : 0,
		.sched_runtime = s->runtime, .sched_deadline = s->deadline, .sched_period = s->period,
	};

	if (syscall(SYS_sched_setattr, tid, &a, 0) < 0)
		return eng_fail_errno("sched_setattr(tid %d, policy %u, nice %d, priority %u)", tid,
		                      s->policy, s->nice, s->priority);
	return 0;
}
