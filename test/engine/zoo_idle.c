/*
 * zoo_idle — a small target for the suite's bad cases: beats a counter in
 * a file-backed heartbeat, with N threads, optionally holding something the
 * engine must refuse (an inotify fd, a netlink socket, a POSIX timer).
 *   zoo_idle [-t THREADS] [-u inotify|netlink|timer] [-s SECONDS]
 */
#include "zoo.h"
#include <pthread.h>
#include <signal.h>
#include <sys/inotify.h>
#include <sys/socket.h>
#include <linux/netlink.h>

static void *spin(void *a)
{
	(void)a;
	for (;;)
		usleep(1000);
	return NULL;
}

int main(int argc, char **argv)
{
	int c, nthreads = 0;
	double secs = 30, end;
	const char *unsup = NULL;
	unsigned long beat = 0;

	while ((c = getopt(argc, argv, "t:u:s:")) != -1) {
		switch (c) {
		case 't': nthreads = atoi(optarg); break;
		case 'u': unsup = optarg; break;
		case 's': secs = atof(optarg); break;
		default: return 2;
		}
	}
	if (unsup && !strcmp(unsup, "inotify"))
		ZOO_CHECK(inotify_init1(0) >= 0, "inotify_init1");
	if (unsup && !strcmp(unsup, "netlink"))
		ZOO_CHECK(socket(AF_NETLINK, SOCK_RAW, NETLINK_ROUTE) >= 0, "netlink socket");
	if (unsup && !strcmp(unsup, "timer")) {
		timer_t t;
		struct sigevent ev = { .sigev_notify = SIGEV_NONE };
		ZOO_CHECK(timer_create(CLOCK_MONOTONIC, &ev, &t) == 0, "timer_create");
	}
	for (int i = 0; i < nthreads; i++) {
		pthread_t t;
		ZOO_CHECK(pthread_create(&t, NULL, spin, NULL) == 0, "pthread_create");
	}
	zoo_ready();
	end = zoo_now() + secs;
	while (zoo_now() < end) {
		printf("beat %lu\n", ++beat);
		fflush(stdout);
		usleep(20000);
	}
	zoo_pass("zoo_idle");
}
