/*
 * migrctl.c -- command-line control of the local migrd.
 *
 * Subcommands: status (this node, the nodes it knows, its processes);
 * run (the home stub, migrd/move/deputy.c); migrate; ps; keygen (a cluster
 * key file, migrd/cluster/cluster_key.c); help.  The table `commands` below
 * holds each one's usage (`migrctl SUB --help`); common/cli.c prints it and
 * the one-line errors.
 */
#include <errno.h>
#include <getopt.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "../common/cli.h"
#include "../common/ctlmsg.h"
#include "../common/jobid.h"
#include "../common/wire.h"
#include "../dicom/dicom.h"
#include "../migrd/cluster/cluster_key.h"
#include "../migrd/move/deputy.h"

#define REPLY_TIMEOUT_MS 5000
#define MOVE_TIMEOUT_MS 120000
#define MIGR_DEFAULT_KEY "/etc/migr/cluster.key"

static const char *sock_path;
static int reply_timeout_ms = REPLY_TIMEOUT_MS;

static int connect_daemon(void)
{
    int fd = ctl_connect(sock_path);
    if (fd < 0) {
        fprintf(stderr, "migrctl: no migrd answers on %s: %s\n", sock_path, strerror(-fd));
        return -1;
    }
    return fd;
}

/* Receive one reply message; returns its header or NULL (message printed). */
static const struct ctl_hdr *receive(int fd, char *buf)
{
    struct pollfd p = {.fd = fd, .events = POLLIN};
    int fds[CTL_MAX_FDS], nfds, eof;
    if (poll(&p, 1, reply_timeout_ms) <= 0) {
        fprintf(stderr, "migrctl: migrd did not answer within %d s\n", reply_timeout_ms / 1000);
        return NULL;
    }
    ssize_t n = ctl_recv(fd, buf, CTL_MAX_MSG, fds, &nfds, &eof, 0);
    for (int i = 0; i < nfds; i++)
        close(fds[i]);
    if (eof || n < 0) {
        fprintf(stderr, "migrctl: reading migrd's answer: %s\n", eof ? "connection closed" : strerror((int)-n));
        return NULL;
    }
    const struct ctl_hdr *h = (const void *)buf;
    if (h->type == CTL_ERROR && h->len == sizeof(struct ctl_error)) {
        const struct ctl_error *e = (const void *)(h + 1);
        fprintf(stderr, "migrctl: migrd refused: %.200s\n", e->message);
        return NULL;
    }
    return h;
}

static void human_bytes(char *out, size_t len, uint64_t b)
{
    const char *u[] = {"B", "KiB", "MiB", "GiB", "TiB"};
    double v = (double)b;
    int i = 0;
    while (v >= 1024 && i < 4)
        v /= 1024, i++;
    snprintf(out, len, i ? "%.1f %s" : "%.0f %s", v, u[i]);
}

static void print_node(const struct ctl_status_node *n)
{
    char in[32], out[32];
    human_bytes(in, sizeof in, n->bytes_in);
    human_bytes(out, sizeof out, n->bytes_out);
    if (n->self)
        printf("node %s (%s:%u), up %.1f s, %u process%s registered\n\nNODE          ADDRESS               LINK    FRAMES IN/OUT       BYTES IN/OUT\n",
               n->name, n->addr, n->port, n->uptime_ms / 1000.0, n->nprocs, n->nprocs == 1 ? "" : "es");
    printf("%-13s %-21s %-7s %9lu/%-9lu %10s/%-10s\n", n->name, n->addr,
           n->self ? "self" : n->connected ? "up" : "down", (unsigned long)n->frames_in,
           (unsigned long)n->frames_out, n->self ? "-" : in, n->self ? "-" : out);
}

static void print_proc(const struct ctl_status_proc *p, int *first)
{
    if (*first) {
        printf("\nJOB         RANK      PID    UID   INBOX USED   OUTBOX USED  RELAYED OUT  DELIVERED IN\n");
        *first = 0;
    }
    if (p->flags & CTL_STATUS_HIDDEN) { /* another user's: migrd shows only what ps(1) would */
        printf("%-11s %-6s %8d %6u %16s %13s %12s %13s\n", "-", "-", p->pid, p->uid, "-", "-", "-", "-");
        return;
    }
    printf("%-11u %-6u %8d %6u %5.1f%% of %-4luM %5.1f%%  %12lu %13lu\n", p->job, p->rank, p->pid, p->uid,
           100.0 * (double)p->inbox_used / (double)p->inbox_size, (unsigned long)(p->inbox_size >> 20),
           100.0 * (double)p->outbox_used / (double)p->outbox_size, (unsigned long)p->relayed_out,
           (unsigned long)p->delivered_in);
}

/* Send a request without body and hand every reply message to `each`
 * until CTL_END.  Returns 0, or 1 after printing why it failed. */
static int request_all(uint16_t type, void (*each)(const struct ctl_hdr *h, void *arg), void *arg)
{
    static char buf[CTL_MAX_MSG];
    int fd = connect_daemon();
    if (fd < 0)
        return 1;
    int rc = ctl_send(fd, type, 1, NULL, 0, NULL, 0);
    if (rc < 0) {
        fprintf(stderr, "migrctl: sending the request: %s\n", strerror(-rc));
        close(fd);
        return 1;
    }
    for (;;) {
        const struct ctl_hdr *h = receive(fd, buf);
        if (!h) {
            close(fd);
            return 1;
        }
        if (h->type == CTL_END)
            break;
        each(h, arg);
    }
    close(fd);
    return 0;
}

static void status_one(const struct ctl_hdr *h, void *arg)
{
    if (h->type == CTL_STATUS_NODE && h->len == sizeof(struct ctl_status_node))
        print_node((const void *)(h + 1));
    else if (h->type == CTL_STATUS_PROC && h->len == sizeof(struct ctl_status_proc))
        print_proc((const void *)(h + 1), arg);
    else
        fprintf(stderr, "migrctl: ignoring unexpected %s message\n", ctl_type_name(h->type));
}

static int cmd_status(const struct cli *c, int argc, char **argv)
{
    int first = 1, rc = cli_simple(c, argc, argv, 0);
    if (rc >= 0)
        return rc;
    if (request_all(CTL_STATUS, status_one, &first))
        return 1;
    if (first)
        printf("\n(no process registered)\n");
    return 0;
}

static const char *ps_state(uint32_t s)
{
    switch (s) {
    case CTL_PS_RUNNING: return "running";
    case CTL_PS_AWAY: return "away";
    case CTL_PS_MOVING: return "moving";
    case CTL_PS_EXITED: return "exited";
    default: return "?";
    }
}

/* JOB and RANK: "[family,local]" and the rank for an MPI rank, "-" else. */
static void ps_rank(const struct ctl_ps_proc *p, char *job, size_t jl, char *rank, size_t rl)
{
    if (!(p->flags & CTL_PROC_RANK)) {
        snprintf(job, jl, "-");
        snprintf(rank, rl, "-");
        return;
    }
    jobid_format(p->job, job, jl);
    snprintf(rank, rl, "%u", p->rank);
}

static void ps_one(const struct ctl_hdr *h, void *arg)
{
    int *n = arg;
    if (h->type != CTL_PS_PROC || h->len != sizeof(struct ctl_ps_proc))
        return;
    const struct ctl_ps_proc *p = (const void *)(h + 1);
    if (!(*n)++)
        printf("%8s %6s %-13s %-5s %-10s %-10s %-8s %5s %-16s %12s  %s\n", "PID", "UID", "JOB", "RANK", "HOME",
               "NODE", "STATE", "MOVES", "AWAY", "LAST FROZEN", "COMMAND");
    char frozen[32] = "-", job[JOBID_STRLEN], rank[16], moves[16] = "-", away[96] = "-";
    if (p->pages_away)
        snprintf(away, sizeof away, "%llu@%.64s", (unsigned long long)p->pages_away, p->away_on);
    if (p->last_frozen_us)
        snprintf(frozen, sizeof frozen, "%.1f ms", (double)p->last_frozen_us / 1000);
    if (!p->hidden)
        snprintf(moves, sizeof moves, "%u", p->moves);
    ps_rank(p, job, sizeof job, rank, sizeof rank);
    printf("%8d %6u %-13s %-5s %-10s %-10s %-8s %5s %-16s %12s  %s%s\n", p->pid, p->uid, job, rank, p->home,
           p->node, ps_state(p->state), moves, away, frozen, p->cmd, p->flags & CTL_PROC_NO_MIGRATE ? " (no-migrate)" : "");
}

static int cmd_ps(const struct cli *c, int argc, char **argv)
{
    int n = 0, rc = cli_simple(c, argc, argv, 0);
    if (rc >= 0)
        return rc;
    if (request_all(CTL_PS, ps_one, &n))
        return 1;
    if (!n)
        printf("(no migratable process known here)\n");
    return 0;
}

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
    int fd = connect_daemon();
    if (fd < 0)
        return 1;
    int rc = ctl_send(fd, CTL_MIGRATE, 1, &m, sizeof m, NULL, 0);
    if (rc < 0) {
        fprintf(stderr, "migrctl: sending the request: %s\n", strerror(-rc));
        close(fd);
        return 1;
    }
    reply_timeout_ms = MOVE_TIMEOUT_MS;
    const struct ctl_hdr *h = receive(fd, buf);
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
    return migrctl_run(sock_path, &o, argv + optind);
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

static const struct cli_cmd commands[] = {
    {"status", "", "this node, the nodes it knows, the processes registered here",
     "Print this node (address, uptime, number of processes), every node of the\n"
     "cluster map with the state of its link and the frames and bytes exchanged,\n"
     "and every process registered here: job, rank, pid, uid, use of its inbox\n"
     "and outbox, packets relayed out and delivered in.  Of another user's\n"
     "processes only pid and uid are shown.",
     NULL, cmd_status},
    {"ps", "", "the migratable processes known here, where they run",
     "List the processes started under migr (migrctl run, odls migr) that this\n"
     "node knows: its own, wherever they run now, and its guests.  Columns: PID,\n"
     "UID, JOB and RANK (MPI ranks; '-' else), HOME, NODE (where it runs), STATE\n"
     "(running, away, moving, exited), MOVES, LAST FROZEN, COMMAND.  Of another\n"
     "user's processes only pid, uid, node, state and command.  Scripts should\n"
     "find the columns by the header.",
     NULL, cmd_ps},
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
    sock_path = getenv("MIGR_SOCKET");
    while ((ch = cli_getopt(&top, argc, argv, "+s:hV", lo)) != -1) {
        switch (ch) {
        case 's': sock_path = optarg; break;
        case 'h': usage(stdout); return 0;
        case 'V': cli_version("migrctl", "control %d", MIGR_PROTO_VERSION); return 0;
        default: return CLI_USAGE_STATUS;
        }
    }
    if (!sock_path || !*sock_path)
        sock_path = DICOM_DEFAULT_SOCKET;
    if (optind >= argc) {
        fprintf(stderr, "migrctl: which command? (try 'migrctl --help')\n");
        return CLI_USAGE_STATUS;
    }
    return cli_dispatch(&prog, argc - optind, argv + optind);
}
