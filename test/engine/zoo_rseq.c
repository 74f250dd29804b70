/*
 * zoo_rseq — what the kernel gives a process besides memory: rseq
 * (sched_getcpu, the cpu_id in the registered area), the vDSO
 * (clock_gettime agrees with the syscall; AT_SYSINFO_EHDR is the [vdso]
 * mapping), pid and tids, thread names, /proc/self/exe and cmdline, cwd,
 * umask and rlimits, all after reincarnations.
 */
#include "zoo.h"
#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <sched.h>
#include <stdint.h>
#include <sys/auxv.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/rseq.h>
#include <sys/stat.h>

static char exe0[PATH_MAX], cwd0[PATH_MAX], cmd0[4096];
static size_t cmdlen0;
static volatile int stop;

static void check_rseq(void)
{
	int cpu = sched_getcpu();
	long ncpu = sysconf(_SC_NPROCESSORS_CONF);
	ZOO_CHECK(cpu >= 0 && cpu < ncpu, "sched_getcpu %d", cpu);
	if (__rseq_size > 0) {
		struct rseq *rs = (struct rseq *)((char *)__builtin_thread_pointer() + __rseq_offset);
		long r;
		ZOO_CHECK((int)rs->cpu_id >= 0 && (int)rs->cpu_id < ncpu,
		          "rseq area cpu_id %d: rseq not registered", (int)rs->cpu_id);
		/* registering the same area again answers EBUSY only if the
		 * kernel still has it registered */
		r = syscall(SYS_rseq, rs, __rseq_size < 32 ? 32 : __rseq_size, 0, RSEQ_SIG);
		ZOO_CHECK(r < 0 && errno == EBUSY, "rseq is not registered (%ld, %s)", r, strerror(errno));
	}
}

static void check_clock(void)
{
	struct timespec a, b, c;
	clock_gettime(CLOCK_MONOTONIC, &a);
	syscall(SYS_clock_gettime, CLOCK_MONOTONIC, &b);
	clock_gettime(CLOCK_MONOTONIC, &c);
	double ta = a.tv_sec + a.tv_nsec / 1e9, tb = b.tv_sec + b.tv_nsec / 1e9,
	       tc = c.tv_sec + c.tv_nsec / 1e9;
	ZOO_CHECK(ta <= tb && tb <= tc && tc - ta < 0.5, "vDSO clock disagrees with the kernel");
	clock_gettime(CLOCK_REALTIME, &a);
	ZOO_CHECK(labs(a.tv_sec - time(NULL)) <= 1, "vDSO realtime clock wrong");
}

static void *worker(void *arg)
{
	pid_t tid = (pid_t)syscall(SYS_gettid);
	char name[16];
	(void)arg;
	prctl(PR_SET_NAME, "zoo-worker");
	while (!stop) {
		check_rseq();
		check_clock();
		zoo_check_identity(tid);
		prctl(PR_GET_NAME, name);
		ZOO_CHECK(!strcmp(name, "zoo-worker"), "thread name '%s'", name);
		usleep(1000);
	}
	return NULL;
}

static void read_cmdline(char *buf, size_t cap, size_t *len)
{
	FILE *f = fopen("/proc/self/cmdline", "r");
	*len = f ? fread(buf, 1, cap, f) : 0;
	if (f)
		fclose(f);
}

int main(int argc, char **argv)
{
	pthread_t t;
	double end;
	struct rlimit rl = { 777, 4096 }, now;
	uint64_t rounds = 0;
	(void)argc; (void)argv;

	ZOO_CHECK(readlink("/proc/self/exe", exe0, sizeof(exe0) - 1) > 0, "readlink exe");
	ZOO_CHECK(getcwd(cwd0, sizeof(cwd0)), "getcwd");
	read_cmdline(cmd0, sizeof(cmd0), &cmdlen0);
	setrlimit(RLIMIT_NOFILE, &rl);
	umask(027);
	prctl(PR_SET_NAME, "zoo-main");
	zoo_ready();
	pthread_create(&t, NULL, worker, NULL);
	end = zoo_now() + zoo_seconds();
	while (zoo_running(end)) {
		char buf[PATH_MAX] = "", cmd[4096], name[16];
		size_t cl;
		unsigned long vdso = getauxval(AT_SYSINFO_EHDR);
		FILE *f;
		char line[512];
		int vdso_ok = 0;
		mode_t um;

		check_rseq();
		check_clock();
		zoo_check_identity(zoo_pid0);
		ZOO_CHECK(readlink("/proc/self/exe", buf, sizeof(buf) - 1) > 0 && !strcmp(buf, exe0),
		          "/proc/self/exe is '%s', was '%s'", buf, exe0);
		read_cmdline(cmd, sizeof(cmd), &cl);
		ZOO_CHECK(cl == cmdlen0 && !memcmp(cmd, cmd0, cl), "/proc/self/cmdline changed");
		ZOO_CHECK(getcwd(buf, sizeof(buf)) && !strcmp(buf, cwd0), "cwd changed");
		um = umask(027);
		ZOO_CHECK(um == 027, "umask %03o", um);
		getrlimit(RLIMIT_NOFILE, &now);
		ZOO_CHECK(now.rlim_cur == 777 && now.rlim_max == 4096, "RLIMIT_NOFILE %lu/%lu",
		          (unsigned long)now.rlim_cur, (unsigned long)now.rlim_max);
		prctl(PR_GET_NAME, name);
		ZOO_CHECK(!strcmp(name, "zoo-main"), "main thread name '%s'", name);
		f = fopen("/proc/self/maps", "r");
		while (f && fgets(line, sizeof(line), f))
			if (strstr(line, "[vdso]") && strtoul(line, NULL, 16) == vdso)
				vdso_ok = 1;
		if (f)
			fclose(f);
		ZOO_CHECK(vdso_ok, "AT_SYSINFO_EHDR %#lx is not the [vdso] mapping", vdso);
		rounds++;
		usleep(5000);
	}
	stop = 1;
	pthread_join(t, NULL);
	printf("%lu rounds, cpu %d\n", (unsigned long)rounds, sched_getcpu());
	zoo_pass("zoo_rseq");
}
