/*
 * zoo -- a busier migration test program (issue 4 §5).
 *   zoo N MS CODE
 * Forks a child that stays where it was started (its home) and prints
 * "child: msg i" for every line the parent writes into a pipe to it; runs
 * two worker threads that keep counting; a timerfd paces the main loop
 * ("tick i" every MS ms, i = 1..N) and an ITIMER_REAL with a SIGALRM
 * handler counts too.  At the end it closes the pipe (the child ends), checks
 * that the threads and the itimer kept going, prints "zoo ok" and exits CODE.
 * Output is unbuffered; the child is reaped by the kernel (SIGCHLD ignored).
 */
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <sys/timerfd.h>
#include <unistd.h>

static atomic_long work[2];
static volatile sig_atomic_t alarms;
static atomic_int stop;

static void on_alarm(int sig) { (void)sig; alarms++; }

static void *worker(void *arg)
{
    atomic_long *w = arg;
    while (!atomic_load(&stop)) {
        atomic_fetch_add(w, 1);
        usleep(1000);
    }
    return NULL;
}

int main(int argc, char **argv)
{
    setvbuf(stdout, NULL, _IONBF, 0);
    if (argc != 4) {
        fprintf(stderr, "usage: zoo N MS CODE\n");
        return 2;
    }
    long n = atol(argv[1]), ms = atol(argv[2]);
    int fds[2];
    signal(SIGCHLD, SIG_IGN);
    if (pipe(fds) < 0)
        return 2;
    pid_t child = fork();
    if (child < 0)
        return 2;
    if (child == 0) {
        char line[256];
        close(fds[1]);
        FILE *in = fdopen(fds[0], "r");
        while (in && fgets(line, sizeof line, in))
            printf("child: %s", line);
        _exit(0);
    }
    close(fds[0]);
    pthread_t th[2];
    for (int i = 0; i < 2; i++)
        pthread_create(&th[i], NULL, worker, &work[i]);
    struct sigaction sa = {.sa_handler = on_alarm, .sa_flags = SA_RESTART};
    sigaction(SIGALRM, &sa, NULL);
    struct itimerval it = {{0, 100000}, {0, 100000}};
    setitimer(ITIMER_REAL, &it, NULL);
    int tfd = timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC);
    struct itimerspec ts = {{ms / 1000, (ms % 1000) * 1000000L}, {ms / 1000, (ms % 1000) * 1000000L}};
    if (tfd < 0 || timerfd_settime(tfd, 0, &ts, NULL) < 0)
        return 2;
    long last[2] = {0, 0}, stalls = 0;
    for (long i = 1; i <= n; i++) {
        uint64_t exp;
        while (read(tfd, &exp, sizeof exp) != sizeof exp)
            ;
        printf("tick %ld\n", i);
        dprintf(fds[1], "msg %ld\n", i);
        if (i % 20 == 0) {   /* the workers must have moved on */
            for (int k = 0; k < 2; k++) {
                long w = atomic_load(&work[k]);
                stalls += w == last[k];
                last[k] = w;
            }
        }
    }
    close(fds[1]);
    atomic_store(&stop, 1);
    for (int i = 0; i < 2; i++)
        pthread_join(th[i], NULL);
    if (stalls > n / 40 || alarms < n * ms / 100 / 2) {
        printf("zoo BAD: %ld worker stalls, %d alarms\n", stalls, (int)alarms);
        return 1;
    }
    usleep(200000);   /* let the child print its last lines */
    printf("zoo ok\n");
    return atoi(argv[3]);
}
