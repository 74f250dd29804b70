/*
 * zoo_signals — signal handlers (one on an alternate stack), blocked and
 * pending signals (standard, queued real-time with values, process-wide
 * and thread-directed), an interval timer, all across reincarnations.
 */
#include "zoo.h"
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <sys/time.h>

#define ALTSZ (64 * 1024)
static uint8_t *altstack;
static volatile sig_atomic_t usr1_count, usr1_off_stack, usr2_count, alrm_count;
static volatile int rt_vals[16], rt_n, thr_val = -1;
static int rt_sig, thr_sig;

static void on_usr1(int s, siginfo_t *si, void *uc)
{
	uint8_t here;
	(void)s; (void)si; (void)uc;
	if (&here < altstack || &here >= altstack + ALTSZ)
		usr1_off_stack++;
	usr1_count++;
}

static void on_usr2(int s) { (void)s; usr2_count++; }
static void on_alrm(int s) { (void)s; alrm_count++; }

static void on_rt(int s, siginfo_t *si, void *uc)
{
	(void)s; (void)uc;
	if (rt_n < 16)
		rt_vals[rt_n++] = si->si_value.sival_int;
}

static void on_thr(int s, siginfo_t *si, void *uc)
{
	(void)s; (void)uc;
	thr_val = si->si_value.sival_int;
}

static volatile int thr_go;

static void *thr(void *a)
{
	sigset_t m;
	(void)a;
	sigemptyset(&m);
	sigaddset(&m, thr_sig);
	pthread_sigmask(SIG_BLOCK, &m, NULL);
	while (!thr_go)
		usleep(1000);          /* pending, blocked, directed at this thread */
	{
		sigset_t p;
		sigpending(&p);
		ZOO_CHECK(sigismember(&p, thr_sig), "thread-directed signal no longer pending");
	}
	pthread_sigmask(SIG_UNBLOCK, &m, NULL);
	ZOO_CHECK(thr_val == 4242, "thread signal value %d", thr_val);
	return NULL;
}

int main(void)
{
	struct sigaction sa;
	stack_t ss;
	sigset_t block, pend;
	pthread_t t;
	double end;
	struct itimerval it = { { 0, 20000 }, { 0, 20000 } };

	rt_sig = SIGRTMIN + 2;
	thr_sig = SIGRTMIN + 3;
	altstack = malloc(ALTSZ);
	ss.ss_sp = altstack;
	ss.ss_size = ALTSZ;
	ss.ss_flags = 0;
	ZOO_CHECK(sigaltstack(&ss, NULL) == 0, "sigaltstack");
	memset(&sa, 0, sizeof(sa));
	sa.sa_sigaction = on_usr1;
	sa.sa_flags = SA_SIGINFO | SA_ONSTACK | SA_RESTART;
	sigaction(SIGUSR1, &sa, NULL);
	sa.sa_handler = on_usr2;
	sa.sa_flags = 0;
	sigaction(SIGUSR2, &sa, NULL);
	sa.sa_handler = on_alrm;
	sa.sa_flags = SA_RESTART;
	sigaction(SIGALRM, &sa, NULL);
	sa.sa_sigaction = on_rt;
	sa.sa_flags = SA_SIGINFO;
	sigaction(rt_sig, &sa, NULL);
	sa.sa_sigaction = on_thr;
	sigaction(thr_sig, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);

	/* blocked, pending: SIGUSR2 and five queued real-time signals */
	sigemptyset(&block);
	sigaddset(&block, SIGUSR2);
	sigaddset(&block, rt_sig);
	sigaddset(&block, thr_sig);
	sigprocmask(SIG_BLOCK, &block, NULL);
	raise(SIGUSR2);
	for (int v = 1; v <= 5; v++) {
		union sigval sv = { .sival_int = v * 11 };
		ZOO_CHECK(sigqueue(getpid(), rt_sig, sv) == 0, "sigqueue");
	}
	pthread_create(&t, NULL, thr, NULL);
	usleep(10000);
	{
		union sigval sv = { .sival_int = 4242 };
		ZOO_CHECK(pthread_sigqueue(t, thr_sig, sv) == 0, "pthread_sigqueue");
	}
	setitimer(ITIMER_REAL, &it, NULL);
	zoo_ready();
	end = zoo_now() + zoo_seconds();
	while (zoo_running(end)) {
		int before = usr1_count;
		volatile double x = 0;
		for (int i = 0; i < 200000; i++)
			x += i * 0.5;
		raise(SIGUSR1);
		ZOO_CHECK(usr1_count == before + 1, "SIGUSR1 handler did not run");
		ZOO_CHECK(usr1_off_stack == 0, "SIGUSR1 handler ran off the alternate stack");
		sigpending(&pend);
		ZOO_CHECK(sigismember(&pend, SIGUSR2), "SIGUSR2 no longer pending");
		ZOO_CHECK(sigismember(&pend, rt_sig), "real-time signal no longer pending");
		ZOO_CHECK(usr2_count == 0 && rt_n == 0, "blocked signal delivered");
		zoo_check_identity(zoo_pid0);
		usleep(2000);
	}
	{
		stack_t cur;
		struct sigaction q;
		sigaltstack(NULL, &cur);
		ZOO_CHECK(cur.ss_sp == altstack && cur.ss_size == ALTSZ && !(cur.ss_flags & SS_DISABLE),
		          "alternate stack lost");
		sigaction(SIGUSR1, NULL, &q);
		ZOO_CHECK(q.sa_sigaction == on_usr1 && (q.sa_flags & SA_ONSTACK), "SIGUSR1 action lost");
		sigaction(SIGPIPE, NULL, &q);
		ZOO_CHECK(q.sa_handler == SIG_IGN, "SIGPIPE no longer ignored");
	}
	setitimer(ITIMER_REAL, &(struct itimerval){ { 0, 0 }, { 0, 0 } }, NULL);
	ZOO_CHECK(alrm_count > zoo_seconds() * 50 * 0.5, "itimer: only %d SIGALRM", (int)alrm_count);
	sigprocmask(SIG_UNBLOCK, &block, NULL);
	ZOO_CHECK(usr2_count == 1, "SIGUSR2 delivered %d times", (int)usr2_count);
	ZOO_CHECK(rt_n == 5, "%d real-time signals delivered, expected 5", rt_n);
	for (int i = 0; i < 5; i++)
		ZOO_CHECK(rt_vals[i] == (i + 1) * 11, "real-time signal %d value %d", i, rt_vals[i]);
	thr_go = 1;
	pthread_join(t, NULL);
	printf("SIGUSR1 %d on altstack, SIGALRM %d, queued values ok\n", (int)usr1_count,
	       (int)alrm_count);
	zoo_pass("zoo_signals");
}
