/*
 * migrctl.c -- command-line control of the local migrd.
 *
 * Subcommands: status, ps, log (migrctl_show.c); check (check/); run (the
 * home stub, migrd/move/deputy.c); migrate; keygen (a cluster key file,
 * migrd/cluster/cluster_key.c); help.  The table `commands` below holds
 * each one's usage (`migrctl SUB --help`); common/cli.c prints it and the
 * one-line errors.
 */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "migrctl.h"

#include "../common/ctlmsg.h"
#include "../common/jobid.h"
#include "../common/wire.h"
#include <migr/dicom.h>
#include "../migrd/cluster/cluster_key.h"
#include "../migrd/move/deputy.h"

#define MOVE_TIMEOUT_MS 120000

/* The process a move names: PID, or JOB RANK (JOB as [family,local] or
 * its number).  0, or 2 after printing why not. */
static int migrate_what(const struct cli *c, char **args, int n, struct ctl_migrate *m)
{
    char *end;
    long v;
    if (n == 1) {
        v = strtol(args[0], &end, 10);
        if (*end || v <= 1 || v > 4194304)
            return cli_error(c, "'%s' is not a pid (or give JOB RANK)", args[0]);
        m->pid = (int32_t)v;
        return 0;
    }
    if (n != 2)
        return cli_error(c, n ? "too many arguments: give PID, or JOB RANK" : "which process? give PID, or JOB RANK");
    if (jobid_parse(args[0], &m->job) < 0)
        return cli_error(c, "'%s' is not a job id ([family,local] as mpirun prints it, or a number)", args[0]);
    v = strtol(args[1], &end, 10);
    if (*end || end == args[1] || v < 0 || v > 0x7fffffffL)
        return cli_error(c, "'%s' is not a rank", args[1]);
    m->rank = (uint32_t)v;
    return 0;
}

/* migrate PID --to NODE, migrate JOB RANK --to NODE [--inject corrupt|stall] */
static int cmd_migrate(const struct cli *c, int argc, char **argv)
{
    enum { OPT_INJECT = 256, OPT_EAGER, OPT_LAZY, OPT_LAZY_NO_PUSH, OPT_NO_PREFETCH };
    /* --inject is a test hook (root, migrd --test-hooks): accepted, not in
     * the help (test/suites/migrate.sh, handover.sh) */
    static const struct option lo[] = {{"to", required_argument, 0, 't'},
                                       {"inject", required_argument, 0, OPT_INJECT},
                                       {"eager", no_argument, 0, OPT_EAGER},
                                       {"lazy", no_argument, 0, OPT_LAZY},
                                       {"lazy-no-push", no_argument, 0, OPT_LAZY_NO_PUSH},
                                       {"no-prefetch", no_argument, 0, OPT_NO_PREFETCH},
                                       {"help", no_argument, 0, 'h'},
                                       {0, 0, 0, 0}};
    static char buf[CTL_MAX_MSG];
    struct ctl_migrate m = {0};
    const char *to = NULL;
    int ch;
    while ((ch = cli_getopt(c, argc, argv, "t:h", lo)) != -1) {
        switch (ch) {
        case 't': to = optarg; break;
        case OPT_INJECT:
            if (!strcmp(optarg, "corrupt"))
                m.inject = CTL_INJECT_CORRUPT;
            else if (!strcmp(optarg, "stall"))
                m.inject = CTL_INJECT_STALL;
            else
                return cli_error(c, "--inject: '%s' is not corrupt or stall", optarg);
            break;
        case OPT_EAGER: m.mode = (m.mode & ~(uint32_t)CTL_MOVE_MODE_MASK) | CTL_MOVE_EAGER; break;
        case OPT_LAZY: m.mode = (m.mode & ~(uint32_t)CTL_MOVE_MODE_MASK) | CTL_MOVE_LAZY; break;
        case OPT_LAZY_NO_PUSH: m.mode = (m.mode & ~(uint32_t)CTL_MOVE_MODE_MASK) | CTL_MOVE_LAZY_NO_PUSH; break;
        case OPT_NO_PREFETCH: m.mode |= CTL_MOVE_NO_PREFETCH; break;
        case 'h': return cli_help(c);
        default: return CLI_USAGE_STATUS;
        }
    }
    if (migrate_what(c, argv + optind, argc - optind, &m))
        return CLI_USAGE_STATUS;
    if (!to)
        return cli_error(c, "where to? give --to NODE");
    if (strlen(to) >= sizeof m.node)
        return cli_error(c, "node name too long: %s", to);
    strcpy(m.node, to);
    int fd = migrctl_connect();
    if (fd < 0)
        return 1;
    int rc = ctl_send(fd, CTL_MIGRATE, 1, &m, sizeof m, NULL, 0);
    if (rc < 0) {
        fprintf(stderr, "migrctl: sending the request: %s\n", strerror(-rc));
        close(fd);
        return 1;
    }
    const struct ctl_hdr *h = migrctl_receive(fd, buf, MOVE_TIMEOUT_MS);
    close(fd);
    if (!h)
        return 1;
    if (h->type != CTL_MIGRATE_DONE || h->len != sizeof(struct ctl_migrate_done)) {
        fprintf(stderr, "migrctl: unexpected %s answer\n", ctl_type_name(h->type));
        return 1;
    }
    const struct ctl_migrate_done *d = (const void *)(h + 1);
    double fs = (double)d->frozen_us / 1e6;
    char who[64], job[JOBID_STRLEN];
    if (m.pid)
        snprintf(who, sizeof who, "pid %d", m.pid);
    else
        snprintf(who, sizeof who, "job %s rank %u", jobid_format(m.job, job, sizeof job), m.rank);
    printf("%s moved to %s: %.1f MiB, frozen %.1f ms (%.0f MB/s), total %.1f ms\n", who, d->node,
           (double)d->bytes / 1048576.0, (double)d->frozen_us / 1000,
           fs > 0 ? (double)d->bytes / fs / 1e6 : 0.0, (double)d->total_us / 1000);
    return 0;
}

/* run [--no-migrate] [--pidfile FILE] [--job JOB --rank R] [--] CMD [ARG...] */
static int cmd_run(const struct cli *c, int argc, char **argv)
{
    enum { OPT_NO_MIGRATE = 256, OPT_PIDFILE, OPT_JOB, OPT_RANK };
    static const struct option lo[] = {{"no-migrate", no_argument, 0, OPT_NO_MIGRATE},
                                       {"pidfile", required_argument, 0, OPT_PIDFILE},
                                       {"job", required_argument, 0, OPT_JOB},
                                       {"rank", required_argument, 0, OPT_RANK},
                                       {"help", no_argument, 0, 'h'},
                                       {0, 0, 0, 0}};
    const char *nm = getenv("MIGR_NO_MIGRATE"), *job = NULL, *rank = NULL;
    struct deputy_opts o = {.no_migrate = nm && !strcmp(nm, "1")};
    int ch;
    /* '+': CMD's own options are CMD's, with or without "--" */
    while ((ch = cli_getopt(c, argc, argv, "+h", lo)) != -1) {
        switch (ch) {
        case OPT_NO_MIGRATE: o.no_migrate = 1; break;
        case OPT_PIDFILE: o.pidfile = optarg; break;
        case OPT_JOB: job = optarg; break;
        case OPT_RANK: rank = optarg; break;
        case 'h': return cli_help(c);
        default: return CLI_USAGE_STATUS;
        }
    }
    if (optind >= argc)
        return cli_error(c, "which command? give -- CMD [ARG...]");
    if (!job != !rank)
        return cli_error(c, "--job and --rank go together");
    if (job) {
        char *end;
        unsigned long r = strtoul(rank, &end, 10);
        if (jobid_parse(job, &o.job) < 0)
            return cli_error(c, "--job: '%s' is not a job id ([family,local] or a number)", job);
        if (*rank < '0' || *rank > '9' || *end || r > 0x7fffffffUL)
            return cli_error(c, "--rank: '%s' is not a rank", rank);
        o.rank = (uint32_t)r;
        o.is_rank = 1;
    }
    return migrctl_run(migrctl_socket, &o, argv + optind);
}

/* keygen [FILE] */
static int cmd_keygen(const struct cli *c, int argc, char **argv)
{
    char why[512];
    int rc = cli_simple(c, argc, argv, 1);
    if (rc >= 0)
        return rc;
    const char *file = optind < argc ? argv[optind] : MIGR_DEFAULT_KEY;
    if (cluster_key_generate(file, why, sizeof why) < 0) {
        fprintf(stderr, "migrctl keygen: %s\n", why);
        return 1;
    }
    printf("cluster key written to %s (mode 0600); name it in the cluster map: key %s\n", file, file);
    return 0;
}

#define JSON_OPTION "      --json            one JSON document (fields: migrctl(1), json-schema.md)\n"

static const struct cli_cmd commands[] = {
    {"status", "[--json]", "this node, the nodes it knows, the processes registered here",
     "Print this node (address, uptime, number of processes), every node of the\n"
     "cluster map with the state of its link and the frames and bytes exchanged,\n"
     "and every process registered here: job ([20065,1] as Open MPI prints it),\n"
     "rank, pid, user, use of its inbox and outbox, packets relayed out and\n"
     "delivered in.  Of another user's processes only pid and user are shown.",
     JSON_OPTION, migrctl_status},
    {"ps", "[--json]", "the migratable processes known here, where they run",
     "List the processes started under migr (migrctl run, odls migr) that this\n"
     "node knows: its own, wherever they run now, and its guests.  Columns: PID,\n"
     "USER, UID, JOB and RANK (MPI ranks, the job as Open MPI prints it; '-' else),\n"
     "HOME, NODE (where it runs), STATE (running, away, moving, exited), MOVES,\n"
     "AWAY (after a lazy move: pages still at another node, as N@NODE),\n"
     "LAST FROZEN, COMMAND.  Of another user's processes only pid, user, node,\n"
     "state and command.  Scripts should use --json, or find the columns by the\n"
     "header.",
     JSON_OPTION, migrctl_ps},
    {"log", "[--json]", "the last moves out of this node, and why any failed",
     "List the last moves out of this node (migrd keeps the last 256), oldest\n"
     "first: start time, pid, owner, job and rank, from, to, frozen and total\n"
     "time, image size, who asked, and the result (ok, or failed: why).  A move\n"
     "refused before it began is listed too.  A user sees the moves of their own\n"
     "processes, root sees all.  A process that moved on from another node is in\n"
     "that node's log.",
     JSON_OPTION, migrctl_log},
    {"check", "[OPTION]...", "can this host run migr? each check, why not, the fix",
     "Check what migr needs of this host, one line per check: ok, warn or FAIL,\n"
     "what was found and, when it is not ok, how to fix it.  Kernel: root,\n"
     "ptrace, clone3 with set_tid, pidfd_open and pidfd_getfd, process_vm_readv,\n"
     "userfaultfd, the kernel release; the CPU features that decide where an\n"
     "image may go; the cgroup version; the cluster map naming this node, the\n"
     "cluster key (root's, mode 0600), the ports free or held by migrd; the Open\n"
     "MPI components visible; migrd answering on its socket.  Run as a user, the\n"
     "checks that need root say what that user can still do.  Exit status 0 when\n"
     "no check FAILed, 1 otherwise.",
     "  -c, --config FILE     the cluster map (default " MIGR_DEFAULT_MAP ")\n"
     "  -n, --node NAME       this node in the map (default: the hostname)\n"
     JSON_OPTION,
     migrctl_check},
    {"run", "[OPTION]... [--] CMD [ARG...]",
     "start CMD here (its home) and stay as its deputy",
     "Start CMD on this node, its home, under migr, and stay as its deputy: exit\n"
     "with CMD's exit status (or die of its signal) wherever it ran; every signal\n"
     "the deputy can catch reaches CMD wherever it runs; if the deputy is killed,\n"
     "migrd kills CMD.  MIGR_NO_MIGRATE=1 in the environment is the same as\n"
     "--no-migrate (for launchers).",
     "      --no-migrate      register CMD, but never move it\n"
     "      --pidfile FILE    write CMD's pid to FILE once it is registered\n"
     "      --job JOB         with --rank: CMD is rank R of the Open MPI job JOB\n"
     "      --rank R          ([20065,1] as mpirun prints it, or its number);\n"
     "                        odls migr passes them\n",
     cmd_run},
    {"migrate", "PID --to NODE\nJOB RANK --to NODE", "move a process, or an MPI rank, to another node",
     "Move process PID (started by migrctl run), or rank RANK of the Open MPI job\n"
     "JOB ([20065,1] as mpirun prints it, or its number), to NODE, with the same\n"
     "pid.  Ask its home node or the node where it runs.  Root or the process's\n"
     "owner only.  Prints the image size, the frozen time and the total time; any\n"
     "failure leaves the process running where it was, and says why in one line.",
     "  -t, --to NODE         the destination, a node of the cluster map\n"
     "      --eager           all its memory travels while it is frozen (default)\n"
     "      --lazy            it resumes at NODE with the pages it is touching; the\n"
     "                        rest follows: fetched when it faults on them, and\n"
     "                        pushed meanwhile, so that it soon needs this node no more\n"
     "      --lazy-no-push    the same without the push: pages never touched never travel\n"
     "      --no-prefetch     lazily, one page a fault (no AMPoM prefetch; to compare)\n",
     cmd_migrate},
    {"keygen", "[FILE]", "make a new cluster key",
     "Make a new cluster key in FILE (default " MIGR_DEFAULT_KEY "): 32 random bytes,\n"
     "mode 0600; never overwrites.  Copy it to every node (same path, root-owned,\n"
     "mode 0600) and name it in the cluster map: key FILE.",
     NULL, cmd_keygen},
    {"help", "[COMMAND]", "the usage of COMMAND, or this list", "Print the usage of COMMAND, or of migrctl.", NULL,
     NULL},
};

static void usage(FILE *f);

static const struct cli_prog prog = {"migrctl", "[--socket PATH]", commands, sizeof commands / sizeof commands[0],
                                     usage};

static void usage(FILE *f)
{
    fprintf(f,
            "Usage: migrctl [--socket PATH] COMMAND [ARG...]\n"
            "Control and inspect the migr daemon of this node.\n"
            "\n"
            "Commands:\n");
    cli_cmd_list(f, &prog);
    fprintf(f,
            "\n"
            "Options:\n"
            "  -s, --socket PATH     migrd's control socket (default $MIGR_SOCKET or\n"
            "                        %s)\n"
            "  -h, --help            this text\n"
            "  -V, --version         version and protocol versions\n"
            "\n"
            "'migrctl COMMAND --help' gives the usage of COMMAND; see also migrctl(1).\n"
            "Exit status: 0 done, 1 failed (the reason on stderr), 2 bad command line.\n",
            DICOM_DEFAULT_SOCKET);
}

int main(int argc, char **argv)
{
    static const struct option lo[] = {{"socket", required_argument, 0, 's'},
                                       {"help", no_argument, 0, 'h'},
                                       {"version", no_argument, 0, 'V'},
                                       {0, 0, 0, 0}};
    const struct cli top = {&prog, NULL};
    int ch;
    migrctl_socket = getenv("MIGR_SOCKET");
    while ((ch = cli_getopt(&top, argc, argv, "+s:hV", lo)) != -1) {
        switch (ch) {
        case 's': migrctl_socket = optarg; break;
        case 'h': usage(stdout); return 0;
        case 'V': cli_version("migrctl", "control %d", MIGR_PROTO_VERSION); return 0;
        default: return CLI_USAGE_STATUS;
        }
    }
    if (!migrctl_socket || !*migrctl_socket)
        migrctl_socket = DICOM_DEFAULT_SOCKET;
    if (optind >= argc) {
        fprintf(stderr, "migrctl: which command? (try 'migrctl --help')\n");
        return CLI_USAGE_STATUS;
    }
    return cli_dispatch(&prog, argc - optind, argv + optind);
}
