/*
 * migr-ckpt — command-line front end of the migr migration engine.
 *
 * For tests and for people debugging a migration: dump a running process
 * to an image, restore an image with the same pid and tids, reincarnate a
 * process in place, and describe an image.  All the work is in
 * migrd/engine/ (engine.h); this file only parses arguments and prints.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "engine.h"

static void usage(FILE *f)
{
	fprintf(f,
	"usage: migr-ckpt [-v] COMMAND ...\n"
	"\n"
	"Checkpoint and restore a running Linux process (all its threads) with the\n"
	"same pid and tids, without kernel support beyond ptrace and /proc.\n"
	"\n"
	"commands:\n"
	"  dump PID -o IMG [--kill | --leave-running]\n"
	"        Freeze PID, write its image to IMG ('-' = stdout; a file, pipe or\n"
	"        socket). Afterwards the process is left STOPPED (SIGSTOP): resume\n"
	"        it with `kill -CONT PID`, or end it. --kill ends it once the image\n"
	"        is written; --leave-running thaws it (a checkpoint).\n"
	"  restore -i IMG [--sibling] [--external-null] [--wait-pid MS]\n"
	"        Restore the process of IMG ('-' = stdin) with its pid and tids.\n"
	"        The image is checked completely before anything is created.\n"
	"        Needs root (clone3 set_tid) and the same kernel build.\n"
	"        --sibling        the process becomes a child of migr-ckpt's parent\n"
	"        --external-null  descriptors that led outside the process (pipes,\n"
	"                         sockets, ttys) become /dev/null instead of an error\n"
	"        --wait-pid MS    wait up to MS ms for the pid to become free\n"
	"  reincarnate PID [--sibling] [--keep-files]\n"
	"        Dump PID into memory, kill it, restore it in place (same pid and\n"
	"        tids). Descriptors leading outside the process are handed over as\n"
	"        the original objects. The pid is free only once the old process\n"
	"        is reaped by its parent; with --sibling, run from that parent (a\n"
	"        deputy), the new process is again that parent's child.\n"
	"        --keep-files     hand regular files over too, instead of reopening\n"
	"  (restore and reincarnate)\n"
	"        --thp-fill       write dense anonymous memory as transparent huge\n"
	"                         pages: much less frozen time for big processes;\n"
	"                         those regions then keep MADV_HUGEPAGE\n"
	"  info IMG\n"
	"        Describe an image: threads, regions with sizes, descriptors with\n"
	"        their kinds, what would be forwarded through the home node.\n"
	"\n"
	"options:\n"
	"  -v, --verbose   print the time of every phase (freeze, capture, memory,\n"
	"                  restore, total frozen time) on stderr; twice: debug log\n"
	"  -h, --help      this text\n"
	"\n"
	"Unsupported things (io_uring, inotify, netlink, perf, POSIX timers, a\n"
	"process already being traced, ...) make dump and reincarnate refuse with\n"
	"the reason; the process then keeps running untouched.\n");
}

static int verbose;

static void print_stats(const char *what, const struct engine_stats *s)
{
	if (!verbose)
		return;
	fprintf(stderr, "%s: threads %u, regions %u, fds %u\n", what, s->threads, s->vmas, s->fds);
	if (s->freeze_ns)
		fprintf(stderr, "  freeze      %9.3f ms\n", s->freeze_ns / 1e6);
	if (s->capture_ns)
		fprintf(stderr, "  capture     %9.3f ms\n", s->capture_ns / 1e6);
	if (s->memory_ns)
		fprintf(stderr, "  memory      %9.3f ms  (%.1f MiB)\n", s->memory_ns / 1e6,
		        s->memory_bytes / 1048576.0);
	else if (s->memory_bytes)
		fprintf(stderr, "  memory      %.1f MiB\n", s->memory_bytes / 1048576.0);
	if (s->write_ns)
		fprintf(stderr, "  write image %9.3f ms  (%.1f MiB)\n", s->write_ns / 1e6,
		        s->image_bytes / 1048576.0);
	else if (s->image_bytes)
		fprintf(stderr, "  image       %.1f MiB\n", s->image_bytes / 1048576.0);
	if (s->kill_ns)
		fprintf(stderr, "  kill+reap   %9.3f ms\n", s->kill_ns / 1e6);
	if (s->restore_ns)
		fprintf(stderr, "  restore     %9.3f ms\n", s->restore_ns / 1e6);
	if (s->frozen_ns)
		fprintf(stderr, "  frozen      %9.3f ms  (freeze to resume)\n", s->frozen_ns / 1e6);
	if (s->total_ns)
		fprintf(stderr, "  total       %9.3f ms\n", s->total_ns / 1e6);
}

static pid_t parse_pid(const char *s)
{
	char *end;
	long v = strtol(s, &end, 10);

	if (!*s || *end || v <= 0 || v > (1 << 22)) {
		fprintf(stderr, "migr-ckpt: '%s' is not a pid\n", s);
		exit(2);
	}
	return (pid_t)v;
}

enum { OPT_KILL = 256, OPT_RUNNING, OPT_SIBLING, OPT_EXTNULL, OPT_WAITPID, OPT_KEEPFILES,
       OPT_THP };

int main(int argc, char **argv)
{
	static const struct option lo[] = {
		{ "verbose", no_argument, NULL, 'v' },
		{ "help", no_argument, NULL, 'h' },
		{ "output", required_argument, NULL, 'o' },
		{ "input", required_argument, NULL, 'i' },
		{ "kill", no_argument, NULL, OPT_KILL },
		{ "leave-running", no_argument, NULL, OPT_RUNNING },
		{ "sibling", no_argument, NULL, OPT_SIBLING },
		{ "external-null", no_argument, NULL, OPT_EXTNULL },
		{ "wait-pid", required_argument, NULL, OPT_WAITPID },
		{ "keep-files", no_argument, NULL, OPT_KEEPFILES },
		{ "thp-fill", no_argument, NULL, OPT_THP },
		{ NULL, 0, NULL, 0 },
	};
	struct engine_dump_opts dopt = { ENGINE_LEAVE_STOPPED, 0 };
	struct engine_restore_opts ropt;
	struct engine_stats st;
	const char *out = NULL, *in = NULL, *cmd;
	int c, fd, rc;

	memset(&ropt, 0, sizeof(ropt));
	memset(&st, 0, sizeof(st));
	while ((c = getopt_long(argc, argv, "+vho:i:", lo, NULL)) != -1) {
		switch (c) {
		case 'v': verbose++; break;
		case 'h': usage(stdout); return 0;
		default: usage(stderr); return 2;
		}
	}
	if (optind >= argc) {
		usage(stderr);
		return 2;
	}
	cmd = argv[optind];
	/* the command's own options, before or after its operand */
	argc -= optind;
	argv += optind;
	optind = 0;
	while ((c = getopt_long(argc, argv, "vho:i:", lo, NULL)) != -1) {
		switch (c) {
		case 'v': verbose++; break;
		case 'h': usage(stdout); return 0;
		case 'o': out = optarg; break;
		case 'i': in = optarg; break;
		case OPT_KILL: dopt.after = ENGINE_KILL; break;
		case OPT_RUNNING: dopt.after = ENGINE_LEAVE_RUNNING; break;
		case OPT_SIBLING: ropt.sibling = 1; break;
		case OPT_EXTNULL: ropt.external_null = 1; break;
		case OPT_WAITPID: ropt.wait_pid_ms = atoi(optarg); break;
		case OPT_KEEPFILES: ropt.keep_files = 1; break;
		case OPT_THP: ropt.thp_fill = 1; break;
		default: usage(stderr); return 2;
		}
	}
	engine_set_log(verbose > 1 ? ENGINE_LOG_DEBUG : ENGINE_LOG_WARN, NULL);
	{
		/* a frozen process must not be abandoned half-way: no Ctrl-C,
		 * hangup or SIGTERM while we work (each step is time-bounded);
		 * a closed output pipe is an EPIPE error, not a death */
		sigset_t hold;
		sigemptyset(&hold);
		sigaddset(&hold, SIGINT);
		sigaddset(&hold, SIGTERM);
		sigaddset(&hold, SIGHUP);
		sigaddset(&hold, SIGQUIT);
		sigaddset(&hold, SIGPIPE);
		sigprocmask(SIG_BLOCK, &hold, NULL);
	}

	if (!strcmp(cmd, "dump")) {
		pid_t pid;
		if (optind != argc - 1 || !out) {
			fprintf(stderr, "migr-ckpt dump: need PID and -o IMG\n");
			return 2;
		}
		pid = parse_pid(argv[optind]);
		fd = strcmp(out, "-") ? open(out, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600)
		                      : STDOUT_FILENO;
		if (fd < 0) {
			fprintf(stderr, "migr-ckpt: open %s: %s\n", out, strerror(errno));
			return 1;
		}
		rc = engine_dump(pid, fd, &dopt, &st);
		if (fd != STDOUT_FILENO && close(fd) < 0 && rc == 0) {
			fprintf(stderr, "migr-ckpt: close %s: %s\n", out, strerror(errno));
			rc = -1;
		}
		if (rc < 0) {
			fprintf(stderr, "migr-ckpt: %s\n", engine_strerror());
			if (fd != STDOUT_FILENO)
				unlink(out);
			return 1;
		}
		print_stats("dump", &st);
		return 0;
	}
	if (!strcmp(cmd, "restore")) {
		pid_t pid = 0;
		if (!in && optind == argc - 1)
			in = argv[optind++];
		if (!in || optind != argc) {
			fprintf(stderr, "migr-ckpt restore: need -i IMG\n");
			return 2;
		}
		fd = strcmp(in, "-") ? open(in, O_RDONLY | O_CLOEXEC) : STDIN_FILENO;
		if (fd < 0) {
			fprintf(stderr, "migr-ckpt: open %s: %s\n", in, strerror(errno));
			return 1;
		}
		rc = engine_restore(fd, &ropt, &pid, &st);
		if (rc < 0) {
			fprintf(stderr, "migr-ckpt: %s\n", engine_strerror());
			return 1;
		}
		print_stats("restore", &st);
		if (verbose)
			fprintf(stderr, "restored pid %d\n", pid);
		return 0;
	}
	if (!strcmp(cmd, "reincarnate")) {
		if (optind != argc - 1) {
			fprintf(stderr, "migr-ckpt reincarnate: need PID\n");
			return 2;
		}
		rc = engine_reincarnate(parse_pid(argv[optind]), &ropt, &st);
		if (rc < 0) {
			fprintf(stderr, "migr-ckpt: %s\n", engine_strerror());
			return 1;
		}
		print_stats("reincarnate", &st);
		return 0;
	}
	if (!strcmp(cmd, "info")) {
		if (!in && optind == argc - 1)
			in = argv[optind++];
		if (!in || optind != argc) {
			fprintf(stderr, "migr-ckpt info: need IMG\n");
			return 2;
		}
		fd = strcmp(in, "-") ? open(in, O_RDONLY | O_CLOEXEC) : STDIN_FILENO;
		if (fd < 0) {
			fprintf(stderr, "migr-ckpt: open %s: %s\n", in, strerror(errno));
			return 1;
		}
		if (engine_info(fd, stdout) < 0) {
			fprintf(stderr, "migr-ckpt: %s\n", engine_strerror());
			return 1;
		}
		return 0;
	}
	fprintf(stderr, "migr-ckpt: unknown command '%s'\n", cmd);
	usage(stderr);
	return 2;
}
