/*
 * deputy — test stand-in for migr's deputy (doc/ARCHITECTURE.md).
 *
 * Starts a program as its child and stays its parent for the program's
 * whole life, across reincarnations: on SIGUSR1 it runs
 *     migr-ckpt reincarnate --sibling PID
 * so that the restored process (same pid) is again the deputy's child.
 * The death of the old incarnation (SIGKILL while migr-ckpt runs) is not
 * the program's end; the deputy exits with the program's real exit status
 * (or 128+signal), like the real deputy does for the orted.
 *
 *   deputy -c MIGR_CKPT -p PIDFILE [-r RESULTS] [-l LOG] [-m MODE] [-i IMG]
 *          [-a OPTION] [-k] [-v] -- PROG ARGS...
 *
 * PIDFILE gets the program's pid ("%r" in PIDFILE, RESULTS and LOG is
 * replaced by the Open MPI rank); RESULTS gets one line per reincarnation: "ok" or "fail RC";
 * LOG collects migr-ckpt's output.  MODE says how the program is moved:
 *   reincarnate  migr-ckpt reincarnate --sibling PID            (default)
 *   image        migr-ckpt dump PID -o IMG --kill, then restore -i IMG
 *   pipe         migr-ckpt dump PID -o - --kill | migr-ckpt restore -i -
 * -a adds one option to `migr-ckpt reincarnate` (e.g. --thp-fill).
 * The program gets only fds 0-2 unless -k (keep all inherited fds).
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

static const char *ckpt = "migr-ckpt", *results, *logfile, *mode = "reincarnate";
static const char *image = "deputy.img";
static const char *extra;     /* one more migr-ckpt option (-a) */
static char results_buf[4096], log_buf[4096];
static int verbose;

static void subst(char *dst, size_t cap, const char *pat)
{
	const char *rank = getenv("OMPI_COMM_WORLD_RANK");
	size_t n = 0;

	for (; *pat && n + 16 < cap; pat++) {
		if (pat[0] == '%' && pat[1] == 'r') {
			n += (size_t)snprintf(dst + n, cap - n, "%s", rank ? rank : "0");
			pat++;
		} else {
			dst[n++] = *pat;
		}
	}
	dst[n] = 0;
}

static void note_result(const char *line)
{
	int fd;

	if (!results)
		return;
	fd = open(results, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
	if (fd >= 0) {
		if (write(fd, line, strlen(line)) < 0)
			perror("deputy: write results");
		close(fd);
	}
}

static void to_log(void)
{
	sigset_t none;

	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);
	if (logfile) {
		int fd = open(logfile, O_WRONLY | O_CREAT | O_APPEND, 0644);
		if (fd >= 0) {
			dup2(fd, 2);
			close(fd);
		}
	}
}

/* run migr-ckpt with args (NULL-terminated), stdin/stdout as given */
static pid_t run_ckpt(int in, int out, const char **args)
{
	pid_t m = fork();

	if (m == 0) {
		const char *argv[16];
		int n = 0;
		to_log();
		if (in >= 0)
			dup2(in, 0);
		dup2(out >= 0 ? out : 2, 1);
		argv[n++] = ckpt;
		if (verbose)
			argv[n++] = "-v";
		while (*args && n < 15)
			argv[n++] = *args++;
		argv[n] = NULL;
		execv(ckpt, (char *const *)argv);
		perror("deputy: exec migr-ckpt");
		_exit(127);
	}
	return m;
}

static int wait_child(pid_t p)
{
	int st;

	while (waitpid(p, &st, 0) < 0)
		if (errno != EINTR)
			return 127;
	return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

/* one move of the program; returns a pid to wait for (its exit status is
 * the result) */
static pid_t start_ckpt(pid_t target)
{
	static char pidbuf[16];

	snprintf(pidbuf, sizeof(pidbuf), "%d", target);
	if (!strcmp(mode, "pipe")) {
		/* restore reads while dump writes; restore is our child, so the
		 * program is ours again */
		int p[2];
		pid_t d, r;
		const char *da[] = { "dump", pidbuf, "-o", "-", "--kill", NULL };
		const char *ra[] = { "restore", "-i", "-", "--sibling", "--wait-pid", "5000", NULL };
		if (pipe(p) < 0)
			return -1;
		d = run_ckpt(-1, p[1], da);
		r = run_ckpt(p[0], -1, ra);
		close(p[0]);
		close(p[1]);
		(void)d;   /* reaped by the main loop */
		return r;
	}
	if (!strcmp(mode, "image")) {
		/* dump to a file first (a helper child waits for it), then
		 * restore from the file as our own child */
		pid_t h = fork();
		if (h == 0) {
			const char *da[] = { "dump", pidbuf, "-o", image, "--kill", NULL };
			_exit(wait_child(run_ckpt(-1, -1, da)));
		}
		return h;
	}
	{
		const char *a[] = { "reincarnate", "--sibling", pidbuf, extra, NULL };
		return run_ckpt(-1, -1, a);
	}
}

int main(int argc, char **argv)
{
	char pidfile[4096] = "";
	sigset_t set;
	pid_t child, ckpt_pid = 0;
	int c, requests = 0, status = 0;
	int expect_kill = 0, lost = 0, keep_fds = 0, restoring = 0;

	while ((c = getopt(argc, argv, "+c:p:r:l:m:i:a:kv")) != -1) {
		switch (c) {
		case 'a': extra = optarg; break;
		case 'm': mode = optarg; break;
		case 'i': image = optarg; break;
		case 'k': keep_fds = 1; break;
		case 'c': ckpt = optarg; break;
		case 'p': subst(pidfile, sizeof(pidfile), optarg); break;
		case 'r': subst(results_buf, sizeof(results_buf), optarg); results = results_buf; break;
		case 'l': subst(log_buf, sizeof(log_buf), optarg); logfile = log_buf; break;
		case 'v': verbose = 1; break;
		default:
			fprintf(stderr, "usage: deputy -c MIGR_CKPT -p PIDFILE [-r RESULTS] [-l LOG] "
			                "[-v] -- PROG ARGS...\n");
			return 2;
		}
	}
	if (optind >= argc) {
		fprintf(stderr, "deputy: no program given\n");
		return 2;
	}
	sigemptyset(&set);
	sigaddset(&set, SIGCHLD);
	sigaddset(&set, SIGUSR1);
	sigaddset(&set, SIGTERM);
	sigprocmask(SIG_BLOCK, &set, NULL);

	child = fork();
	if (child < 0) {
		perror("deputy: fork");
		return 1;
	}
	if (child == 0) {
		sigset_t none;
		sigemptyset(&none);
		sigprocmask(SIG_SETMASK, &none, NULL);
		if (!keep_fds)
			closefrom(3);
		execvp(argv[optind], argv + optind);
		perror("deputy: exec");
		_exit(127);
	}
	if (pidfile[0]) {
		char tmp[4200];
		FILE *f;
		snprintf(tmp, sizeof(tmp), "%s.tmp", pidfile);
		f = fopen(tmp, "w");
		if (!f || fprintf(f, "%d\n", child) < 0 || fclose(f) != 0 || rename(tmp, pidfile) < 0)
			perror("deputy: write pid file");
	}
	for (;;) {
		siginfo_t si;
		int sig = sigwaitinfo(&set, &si);
		if (sig < 0)
			continue;
		if (sig == SIGTERM) {
			kill(child, SIGKILL);
			if (ckpt_pid)
				kill(ckpt_pid, SIGKILL);
		}
		if (sig == SIGUSR1)
			requests++;
		for (;;) {
			int st;
			pid_t w = waitpid(-1, &st, WNOHANG);
			if (w <= 0)
				break;
			if (w == ckpt_pid && !strcmp(mode, "image") && !restoring &&
			    WIFEXITED(st) && WEXITSTATUS(st) == 0) {
				/* dumped: now restore from the image, as our child */
				const char *ra[] = { "restore", "-i", image, "--sibling", "--wait-pid",
				                     "5000", NULL };
				restoring = 1;
				ckpt_pid = run_ckpt(-1, -1, ra);
				continue;
			}
			if (w == ckpt_pid) {
				char line[64];
				ckpt_pid = 0;
				restoring = 0;
				if (WIFEXITED(st) && WEXITSTATUS(st) == 0) {
					note_result("ok\n");
				} else {
					snprintf(line, sizeof(line), "fail %d\n",
					         WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st));
					note_result(line);
					if (expect_kill == 2)
						lost = 1;   /* killed, never restored */
				}
				expect_kill = 0;
				continue;
			}
			if (w == child) {
				if (expect_kill == 1 && WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL) {
					expect_kill = 2;    /* the old incarnation */
					continue;
				}
				status = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
				if (ckpt_pid)
					waitpid(ckpt_pid, &st, 0);
				return status;
			}
		}
		if (lost) {
			fprintf(stderr, "deputy: program %d lost in a failed reincarnation\n", child);
			return 99;
		}
		if (requests && !ckpt_pid) {
			requests--;
			expect_kill = 1;
			ckpt_pid = start_ckpt(child);
		}
	}
}
