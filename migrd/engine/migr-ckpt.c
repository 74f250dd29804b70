/*
 * migr-ckpt — command-line front end of the migr migration engine.
 *
 * For tests and for people debugging a migration: dump a running process
 * to an image, restore an image with the same pid and tids, reincarnate a
 * process in place, and describe an image.  All the work is in
 * migrd/engine/ (engine.h); this file only parses arguments and prints.
 * The table `commands` holds each command's usage (`migr-ckpt CMD --help`);
 * common/cli.c prints it and the one-line errors.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/cli.h"
#include "common/units.h"
#include "engine.h"

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

/* --wait-pid: at most a minute (a bare number is in milliseconds) */
#define WAIT_PID_MAX_US (60 * UNITS_SEC)

enum { OPT_KILL = 256, OPT_RUNNING, OPT_SIBLING, OPT_EXTNULL, OPT_WAITPID, OPT_KEEPFILES,
       OPT_THP };

/* the entries every command's option table has */
#define OPT_COMMON { "verbose", no_argument, NULL, 'v' }, { "help", no_argument, NULL, 'h' }
#define OPT_END { NULL, 0, NULL, 0 }

/* What the options of restore and reincarnate share, and -v, -h: 1 if ch
 * was one of them, 0 if not, or -(exit status + 1) to stop. */
static int common_option(const struct cli *c, int ch, struct engine_restore_opts *ro)
{
	uint64_t us;
	int rc;

	switch (ch) {
	case 'v': verbose++; return 1;
	case 'h': return -(cli_help(c) + 1);
	case OPT_SIBLING: ro->sibling = 1; return 1;
	case OPT_THP: ro->thp_fill = 1; return 1;
	case OPT_WAITPID:
		rc = parse_duration(optarg, UNITS_MS, WAIT_PID_MAX_US, &us);
		if (rc < 0)
			return -(cli_error(c, rc == -ERANGE ? "--wait-pid: '%s' is more than a minute" :
			                   "--wait-pid: '%s' is not a time (N milliseconds, or 500ms, 3s)",
			                   optarg) + 1);
		ro->wait_pid_ms = (int)(us / UNITS_MS);
		return 1;
	case '?': return -(CLI_USAGE_STATUS + 1);
	default: return 0;
	}
}

/* The one operand left after the options: PID or IMG.  NULL after a
 * one-line error. */
static const char *operand(const struct cli *c, int argc, char **argv, const char *what)
{
	if (optind == argc) {
		cli_error(c, "need %s", what);
		return NULL;
	}
	if (optind + 1 < argc) {
		cli_error(c, "unexpected argument '%s'", argv[optind + 1]);
		return NULL;
	}
	return argv[optind];
}

/* 0 and *pid, or CLI_USAGE_STATUS after a one-line error */
static int parse_pid(const struct cli *c, const char *s, pid_t *pid)
{
	char *end;
	long v = strtol(s, &end, 10);

	if (!*s || *end || v <= 0 || v > (1 << 22))
		return cli_error(c, "'%s' is not a pid", s);
	*pid = (pid_t)v;
	return 0;
}

/* Once the command line is understood: the engine's log, and no signal
 * may abandon a frozen process half-way. */
static void start_engine(void)
{
	/* no Ctrl-C, hangup or SIGTERM while we work (each step is
	 * time-bounded); a closed output pipe is an EPIPE error, not a death */
	sigset_t hold;

	engine_set_log(verbose > 1 ? ENGINE_LOG_DEBUG : ENGINE_LOG_WARN, NULL);
	sigemptyset(&hold);
	sigaddset(&hold, SIGINT);
	sigaddset(&hold, SIGTERM);
	sigaddset(&hold, SIGHUP);
	sigaddset(&hold, SIGQUIT);
	sigaddset(&hold, SIGPIPE);
	if (sigprocmask(SIG_BLOCK, &hold, NULL) < 0)
		fprintf(stderr, "migr-ckpt: sigprocmask: %s\n", strerror(errno));
}

/* IMG for reading ('-': stdin), or -1 after the reason */
static int open_image(const char *in)
{
	int fd = strcmp(in, "-") ? open(in, O_RDONLY | O_CLOEXEC) : STDIN_FILENO;

	if (fd < 0)
		fprintf(stderr, "migr-ckpt: open %s: %s\n", in, strerror(errno));
	return fd;
}

static int cmd_dump(const struct cli *c, int argc, char **argv)
{
	static const struct option lo[] = {
		{ "output", required_argument, NULL, 'o' },
		{ "kill", no_argument, NULL, OPT_KILL },
		{ "leave-running", no_argument, NULL, OPT_RUNNING },
		OPT_COMMON, OPT_END,
	};
	struct engine_dump_opts dopt = { ENGINE_LEAVE_STOPPED, 0 };
	struct engine_restore_opts unused;
	struct engine_stats st;
	const char *out = NULL, *arg;
	pid_t pid;
	int ch, fd, rc;

	memset(&st, 0, sizeof(st));
	while ((ch = cli_getopt(c, argc, argv, "o:vh", lo)) != -1) {
		switch (ch) {
		case 'o': out = optarg; break;
		case OPT_KILL: dopt.after = ENGINE_KILL; break;
		case OPT_RUNNING: dopt.after = ENGINE_LEAVE_RUNNING; break;
		default:
			if ((rc = common_option(c, ch, &unused)) < 0)
				return -rc - 1;
		}
	}
	if (!(arg = operand(c, argc, argv, "PID")))
		return CLI_USAGE_STATUS;
	if (parse_pid(c, arg, &pid))
		return CLI_USAGE_STATUS;
	if (!out)
		return cli_error(c, "need -o IMG");
	start_engine();
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

static int cmd_restore(const struct cli *c, int argc, char **argv)
{
	static const struct option lo[] = {
		{ "input", required_argument, NULL, 'i' },
		{ "sibling", no_argument, NULL, OPT_SIBLING },
		{ "external-null", no_argument, NULL, OPT_EXTNULL },
		{ "wait-pid", required_argument, NULL, OPT_WAITPID },
		{ "thp-fill", no_argument, NULL, OPT_THP },
		OPT_COMMON, OPT_END,
	};
	struct engine_restore_opts ropt;
	struct engine_stats st;
	const char *in = NULL;
	pid_t pid = 0;
	int ch, fd, rc;

	memset(&ropt, 0, sizeof(ropt));
	memset(&st, 0, sizeof(st));
	while ((ch = cli_getopt(c, argc, argv, "i:vh", lo)) != -1) {
		switch (ch) {
		case 'i': in = optarg; break;
		case OPT_EXTNULL: ropt.external_null = 1; break;
		default:
			if ((rc = common_option(c, ch, &ropt)) < 0)
				return -rc - 1;
		}
	}
	/* the image: -i IMG, or the operand */
	if (!in && !(in = operand(c, argc, argv, "-i IMG")))
		return CLI_USAGE_STATUS;
	if (in != argv[optind] && optind < argc)
		return cli_error(c, "unexpected argument '%s'", argv[optind]);
	start_engine();
	if ((fd = open_image(in)) < 0)
		return 1;
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

static int cmd_reincarnate(const struct cli *c, int argc, char **argv)
{
	static const struct option lo[] = {
		{ "sibling", no_argument, NULL, OPT_SIBLING },
		{ "keep-files", no_argument, NULL, OPT_KEEPFILES },
		{ "wait-pid", required_argument, NULL, OPT_WAITPID },
		{ "thp-fill", no_argument, NULL, OPT_THP },
		OPT_COMMON, OPT_END,
	};
	struct engine_restore_opts ropt;
	struct engine_stats st;
	const char *arg;
	pid_t pid;
	int ch, rc;

	memset(&ropt, 0, sizeof(ropt));
	memset(&st, 0, sizeof(st));
	while ((ch = cli_getopt(c, argc, argv, "vh", lo)) != -1) {
		if (ch == OPT_KEEPFILES)
			ropt.keep_files = 1;
		else if ((rc = common_option(c, ch, &ropt)) < 0)
			return -rc - 1;
	}
	if (!(arg = operand(c, argc, argv, "PID")) || parse_pid(c, arg, &pid))
		return CLI_USAGE_STATUS;
	start_engine();
	if (engine_reincarnate(pid, &ropt, &st) < 0) {
		fprintf(stderr, "migr-ckpt: %s\n", engine_strerror());
		return 1;
	}
	print_stats("reincarnate", &st);
	return 0;
}

static int cmd_info(const struct cli *c, int argc, char **argv)
{
	static const struct option lo[] = {
		{ "input", required_argument, NULL, 'i' },
		OPT_COMMON, OPT_END,
	};
	struct engine_restore_opts unused;
	const char *in = NULL;
	int ch, fd, rc;

	while ((ch = cli_getopt(c, argc, argv, "i:vh", lo)) != -1) {
		if (ch == 'i')
			in = optarg;
		else if ((rc = common_option(c, ch, &unused)) < 0)
			return -rc - 1;
	}
	if (!in && !(in = operand(c, argc, argv, "IMG")))
		return CLI_USAGE_STATUS;
	if (in != argv[optind] && optind < argc)
		return cli_error(c, "unexpected argument '%s'", argv[optind]);
	engine_set_log(verbose > 1 ? ENGINE_LOG_DEBUG : ENGINE_LOG_WARN, NULL);
	if ((fd = open_image(in)) < 0)
		return 1;
	if (engine_info(fd, stdout) < 0) {
		fprintf(stderr, "migr-ckpt: %s\n", engine_strerror());
		return 1;
	}
	return 0;
}

#define OPT_VERBOSE_HELP \
	"  -v, --verbose         print the time of every phase on stderr; twice:\n" \
	"                        the engine's debug log\n"
#define OPT_RESTORE_HELP \
	"      --sibling         the process becomes a child of migr-ckpt's parent\n" \
	"                        (run from the process's parent, a deputy)\n" \
	"      --wait-pid TIME   wait up to TIME for the pid to become free (its\n" \
	"                        zombie reaped); N milliseconds, or 500ms, 3s\n" \
	"      --thp-fill        write dense anonymous memory as transparent huge\n" \
	"                        pages: much less frozen time for big processes;\n" \
	"                        those regions then keep MADV_HUGEPAGE\n"

static const struct cli_cmd commands[] = {
	{ "dump", "PID -o IMG [--kill | --leave-running]",
	  "freeze a process and write its image",
	  "Freeze PID (all its threads), write its image to IMG ('-': stdout; a file,\n"
	  "pipe or socket).  Afterwards the process is left stopped (SIGSTOP): resume\n"
	  "it with 'kill -CONT PID', or end it.",
	  "  -o, --output IMG      where the image goes ('-': stdout)\n"
	  "      --kill            end the process once the image is written\n"
	  "      --leave-running   thaw it once the image is written (a checkpoint)\n"
	  OPT_VERBOSE_HELP,
	  cmd_dump },
	{ "restore", "[OPTION]... -i IMG",
	  "restore an image with its pid and tids",
	  "Restore the process of IMG ('-': stdin) with its pid and tids.  The image\n"
	  "is checked completely before anything is created.  Needs root (clone3\n"
	  "set_tid) and the same kernel build as the dump.",
	  "  -i, --input IMG       the image ('-': stdin); also as the operand\n"
	  "      --external-null   descriptors that led outside the process (pipes,\n"
	  "                        sockets, ttys) become /dev/null instead of an error\n"
	  OPT_RESTORE_HELP OPT_VERBOSE_HELP,
	  cmd_restore },
	{ "reincarnate", "[OPTION]... PID",
	  "dump a process into memory, kill it, restore it in place",
	  "Dump PID into memory, kill it, restore it in place (same pid and tids).\n"
	  "Descriptors leading outside the process are handed over as the original\n"
	  "objects.  The pid is free only once the old process is reaped by its\n"
	  "parent; with --sibling, run from that parent (a deputy), the new process\n"
	  "is again that parent's child.",
	  "      --keep-files      hand regular files over too, instead of reopening\n"
	  OPT_RESTORE_HELP OPT_VERBOSE_HELP,
	  cmd_reincarnate },
	{ "info", "IMG",
	  "describe an image",
	  "Describe an image ('-': stdin): threads, regions with sizes, descriptors\n"
	  "with their kinds, what would be forwarded through the home node.",
	  "  -i, --input IMG       the image, instead of the operand\n"
	  OPT_VERBOSE_HELP,
	  cmd_info },
	{ "help", "[COMMAND]", "the usage of COMMAND, or this list",
	  "Print the usage of COMMAND, or of migr-ckpt.", NULL, NULL },
};

static void usage(FILE *f);

static const struct cli_prog prog = {
	"migr-ckpt", "[-v]", commands, sizeof(commands) / sizeof(commands[0]), usage
};

static void usage(FILE *f)
{
	fprintf(f,
	"Usage: migr-ckpt [-v] COMMAND [ARG...]\n"
	"Checkpoint and restore a running Linux process (all its threads) with the\n"
	"same pid and tids, without kernel support beyond ptrace and /proc.\n"
	"\n"
	"Commands:\n");
	cli_cmd_list(f, &prog);
	fprintf(f,
	"\n"
	"Options:\n"
	OPT_VERBOSE_HELP
	"  -h, --help            this text\n"
	"  -V, --version         version and image format version\n"
	"\n"
	"'migr-ckpt COMMAND --help' gives the usage of COMMAND; see also migr-ckpt(1).\n"
	"Unsupported things (io_uring, inotify, netlink, perf, POSIX timers, a\n"
	"process already being traced, ...) make dump and reincarnate refuse with\n"
	"the reason; the process then keeps running untouched.\n"
	"Exit status: 0 done, 1 failed (the reason on stderr), 2 bad command line.\n");
}

int main(int argc, char **argv)
{
	static const struct option lo[] = {
		{ "version", no_argument, NULL, 'V' },
		OPT_COMMON, OPT_END,
	};
	const struct cli top = { &prog, NULL };
	int c;

	while ((c = cli_getopt(&top, argc, argv, "+vhV", lo)) != -1) {
		switch (c) {
		case 'v': verbose++; break;
		case 'h': usage(stdout); return 0;
		case 'V': cli_version("migr-ckpt", "engine image %d", ENGINE_IMAGE_VERSION); return 0;
		default: return CLI_USAGE_STATUS;
		}
	}
	if (optind >= argc) {
		fprintf(stderr, "migr-ckpt: which command? (try 'migr-ckpt --help')\n");
		return CLI_USAGE_STATUS;
	}
	return cli_dispatch(&prog, argc - optind, argv + optind);
}
