/*
 * zoo_threads — many threads with a mutex, a condition variable, a barrier
 * and thread-local storage, working while they are reincarnated.
 */
#include "zoo.h"
#include <pthread.h>
#include <stdint.h>

#define NT 8

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cv = PTHREAD_COND_INITIALIZER;
static pthread_barrier_t bar;
static uint64_t shared_sum, per_thread[NT], rounds[NT];
static uint64_t token;            /* passed around with the condvar */
static volatile int stop;  /* written by main before the round barrier */
static __thread uint64_t tls_count;
static __thread int tls_id = -1;
static __thread char tls_tag[32];

static void *worker(void *arg)
{
	int id = (int)(intptr_t)arg;
	pid_t tid = (pid_t)syscall(SYS_gettid);
	int last;

	tls_id = id;
	snprintf(tls_tag, sizeof(tls_tag), "worker-%d", id);
	for (;;) {
		/* mutex-protected work */
		for (int k = 0; k < 1000; k++) {
			pthread_mutex_lock(&mu);
			shared_sum++;
			pthread_mutex_unlock(&mu);
			tls_count++;
		}
		per_thread[id] += 1000;
		/* token ring through the condvar */
		pthread_mutex_lock(&mu);
		while (token % NT != (uint64_t)id)
			pthread_cond_wait(&cv, &mu);
		token++;
		pthread_cond_broadcast(&cv);
		pthread_mutex_unlock(&mu);
		/* everybody meets */
		pthread_barrier_wait(&bar);
		last = stop;    /* main decides before this round's first barrier */
		rounds[id]++;
		ZOO_CHECK(tls_id == id, "thread %d: TLS id became %d", id, tls_id);
		ZOO_CHECK(tls_count == per_thread[id], "thread %d: TLS count %lu != %lu", id,
		          (unsigned long)tls_count, (unsigned long)per_thread[id]);
		zoo_check_identity(tid);
		pthread_barrier_wait(&bar);
		if (last)
			break;
	}
	{
		char want[32];
		snprintf(want, sizeof(want), "worker-%d", id);
		ZOO_CHECK(!strcmp(tls_tag, want), "thread %d: TLS tag '%s'", id, tls_tag);
	}
	return NULL;
}

int main(void)
{
	pthread_t th[NT];
	double end;
	uint64_t total = 0;

	pthread_barrier_init(&bar, NULL, NT + 1);
	for (int i = 0; i < NT; i++)
		pthread_create(&th[i], NULL, worker, (void *)(intptr_t)i);
	zoo_ready();
	end = zoo_now() + zoo_seconds();
	for (;;) {
		if (!zoo_running(end))
			stop = 1;       /* seen by everybody after the second barrier */
		pthread_barrier_wait(&bar);
		pthread_barrier_wait(&bar);
		zoo_check_identity(zoo_pid0);
		if (stop)
			break;
	}
	for (int i = 0; i < NT; i++)
		pthread_join(th[i], NULL);
	for (int i = 0; i < NT; i++) {
		total += per_thread[i];
		ZOO_CHECK(rounds[i] > 0, "thread %d made no round", i);
	}
	ZOO_CHECK(total == shared_sum, "sum %lu != %lu", (unsigned long)shared_sum,
	          (unsigned long)total);
	printf("rounds %lu, sum %lu\n", (unsigned long)rounds[0], (unsigned long)shared_sum);
	zoo_pass("zoo_threads");
}
