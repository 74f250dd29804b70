/*
 * zoo_blocked — threads that are blocked in nanosleep, read, a futex
 * (condition variable) and epoll_wait when the process is dumped.  Their
 * syscalls must restart transparently (nanosleep, read and futex never
 * return early or with an error); epoll_wait may return EINTR as it does
 * for any stop of the process (signal(7)).  The poller does not look at
 * `stop`: it runs until the eventfd has delivered the final marker, so a
 * kick pending while the last EINTR is returned is still counted.
 */
#include "zoo.h"
#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>

static int pfd[2], efd, ep;
static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cv = PTHREAD_COND_INITIALIZER;
static uint64_t cond_gen;
static volatile int stop;
#define KICK_LAST (1ULL << 32) /* added to the last kick: tells the poller to end */

static uint64_t n_sleep, n_read, n_cond, n_epoll, n_eintr;

static void *sleeper(void *a)
{
	(void)a;
	while (!stop) {
		struct timespec ts = { 0, 300000000 }, rem;
		double t0 = zoo_now();
		long r = syscall(SYS_clock_nanosleep, CLOCK_MONOTONIC, 0, &ts, &rem);
		ZOO_CHECK(r == 0, "nanosleep returned %ld (errno %d)", r, errno);
		ZOO_CHECK(zoo_now() - t0 >= 0.299, "nanosleep returned early after %.3f s",
		          zoo_now() - t0);
		n_sleep++;
	}
	return NULL;
}

static void *reader(void *a)
{
	uint64_t want = 0;
	(void)a;
	for (;;) {
		uint64_t v;
		ssize_t n = read(pfd[0], &v, sizeof(v));
		ZOO_CHECK(n == sizeof(v), "read returned %zd (%s)", n, strerror(errno));
		if (v == ~0ULL)
			break;
		ZOO_CHECK(v == want, "read token %lu, expected %lu", (unsigned long)v,
		          (unsigned long)want);
		want++;
		n_read++;
	}
	return NULL;
}

static void *waiter(void *a)
{
	uint64_t seen = 0;
	(void)a;
	pthread_mutex_lock(&mu);
	while (!stop) {
		while (cond_gen == seen && !stop)
			pthread_cond_wait(&cv, &mu);
		seen = cond_gen;
		n_cond++;
	}
	pthread_mutex_unlock(&mu);
	return NULL;
}

static void *poller(void *a)
{
	(void)a;
	for (;;) {
		struct epoll_event ev;
		uint64_t v;
		int n = epoll_wait(ep, &ev, 1, -1);
		if (n < 0 && errno == EINTR) {
			n_eintr++;
			continue;
		}
		ZOO_CHECK(n == 1, "epoll_wait returned %d (%s)", n, strerror(errno));
		ZOO_CHECK(read(efd, &v, 8) == 8, "eventfd read");
		if (v >= KICK_LAST) {
			n_epoll += v - KICK_LAST;
			break;
		}
		n_epoll += v;
	}
	return NULL;
}

int main(void)
{
	pthread_t t[4];
	struct epoll_event ev = { .events = EPOLLIN };
	uint64_t tok = 0, kicks = 0;
	double end;

	ZOO_CHECK(pipe(pfd) == 0, "pipe");
	efd = eventfd(0, 0);
	ep = epoll_create1(0);
	ZOO_CHECK(efd >= 0 && ep >= 0 && epoll_ctl(ep, EPOLL_CTL_ADD, efd, &ev) == 0, "epoll");
	pthread_create(&t[0], NULL, sleeper, NULL);
	pthread_create(&t[1], NULL, reader, NULL);
	pthread_create(&t[2], NULL, waiter, NULL);
	pthread_create(&t[3], NULL, poller, NULL);
	zoo_ready();
	end = zoo_now() + zoo_seconds();
	while (zoo_running(end)) {
		/* everybody sleeps most of the time: a dump finds them blocked */
		usleep(250000);
		ZOO_CHECK(write(pfd[1], &tok, sizeof(tok)) == sizeof(tok), "pipe write");
		tok++;
		pthread_mutex_lock(&mu);
		cond_gen++;
		pthread_cond_signal(&cv);
		pthread_mutex_unlock(&mu);
		{
			uint64_t one = 1;
			ZOO_CHECK(write(efd, &one, 8) == 8, "eventfd write");
			kicks++;
		}
		zoo_check_identity(zoo_pid0);
	}
	stop = 1;
	{
		uint64_t last = ~0ULL, final = KICK_LAST + 1;
		ZOO_CHECK(write(pfd[1], &last, 8) == 8, "pipe write");
		pthread_mutex_lock(&mu);
		pthread_cond_signal(&cv);
		pthread_mutex_unlock(&mu);
		ZOO_CHECK(write(efd, &final, 8) == 8, "eventfd write");
		kicks++;
	}
	for (int i = 0; i < 4; i++)
		pthread_join(t[i], NULL);
	ZOO_CHECK(n_read == tok, "reader got %lu of %lu tokens", (unsigned long)n_read,
	          (unsigned long)tok);
	ZOO_CHECK(n_epoll == kicks, "poller got %lu of %lu kicks", (unsigned long)n_epoll,
	          (unsigned long)kicks);
	ZOO_CHECK(n_cond >= 1 && n_sleep >= 1, "waiter %lu, sleeper %lu", (unsigned long)n_cond,
	          (unsigned long)n_sleep);
	printf("sleeps %lu, reads %lu, cond wakeups %lu, epoll %lu (EINTR %lu)\n",
	       (unsigned long)n_sleep, (unsigned long)n_read, (unsigned long)n_cond,
	       (unsigned long)n_epoll, (unsigned long)n_eintr);
	zoo_pass("zoo_blocked");
}
