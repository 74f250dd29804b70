/*
 * zoo_sched — threads with their own scheduling: the main thread at nice 5,
 * one SCHED_BATCH thread at nice 3, one SCHED_IDLE thread, one
 * SCHED_OTHER thread at nice 9 with SCHED_FLAG_RESET_ON_FORK; each checks
 * its own policy, nice value and flag all along (they must survive every
 * reincarnation).
 */
#include "zoo.h"
#include <pthread.h>
#include <sched.h>
#include <stdint.h>

#define SCHED_FLAG_RESET_ON_FORK 0x01

struct sched_attr { /* the kernel's; glibc before 2.41 has none */
	uint32_t size, sched_policy;
	uint64_t sched_flags;
	int32_t  sched_nice;
	uint32_t sched_priority;
	uint64_t sched_runtime, sched_deadline, sched_period;
};

struct want {
	const char *name;
	unsigned policy;
	int nice;
	unsigned long long flags;
};

static volatile int done;
static int ready; /* threads whose scheduling is set */

static void set(const struct want *w)
{
	struct sched_attr a = { .size = sizeof(a), .sched_policy = w->policy, .sched_nice = w->nice,
	                        .sched_flags = w->flags };
	ZOO_CHECK(syscall(SYS_sched_setattr, 0, &a, 0) == 0, "%s: sched_setattr: %m", w->name);
}

static void check(const struct want *w)
{
	struct sched_attr a;
	memset(&a, 0, sizeof(a));
	ZOO_CHECK(syscall(SYS_sched_getattr, 0, &a, sizeof(a), 0) == 0, "%s: sched_getattr: %m", w->name);
	ZOO_CHECK(a.sched_policy == w->policy, "%s: policy %u, want %u", w->name, a.sched_policy, w->policy);
	ZOO_CHECK(w->policy == SCHED_IDLE || a.sched_nice == w->nice, "%s: nice %d, want %d", w->name,
	          a.sched_nice, w->nice);
	ZOO_CHECK((a.sched_flags & SCHED_FLAG_RESET_ON_FORK) == w->flags, "%s: flags 0x%llx, want 0x%llx",
	          w->name, (unsigned long long)a.sched_flags, w->flags);
}

static void *run(void *arg)
{
	const struct want *w = arg;
	set(w);
	__atomic_add_fetch(&ready, 1, __ATOMIC_SEQ_CST);
	while (!done) {
		check(w);
		usleep(2000);
	}
	check(w);
	return NULL;
}

int main(void)
{
	static const struct want main_w = { "main", SCHED_OTHER, 5, 0 };
	static const struct want th[] = {
		{ "batch", SCHED_BATCH, 3, 0 },
		{ "idle", SCHED_IDLE, 0, 0 },
		{ "reset-on-fork", SCHED_OTHER, 9, SCHED_FLAG_RESET_ON_FORK },
	};
	pthread_t t[3];
	double end;

	set(&main_w);
	for (int i = 0; i < 3; i++)
		ZOO_CHECK(pthread_create(&t[i], NULL, run, (void *)&th[i]) == 0, "pthread_create");
	while (__atomic_load_n(&ready, __ATOMIC_SEQ_CST) < 3)
		usleep(1000);
	zoo_ready();
	end = zoo_now() + zoo_seconds();
	while (zoo_now() < end) {
		check(&main_w);
		usleep(2000);
	}
	done = 1;
	for (int i = 0; i < 3; i++)
		ZOO_CHECK(pthread_join(t[i], NULL) == 0, "pthread_join");
	zoo_pass("zoo_sched");
}
