/*
 * migrctl.c -- command-line control of the local migrd.
 *
 * Subcommands: status (this node, the nodes it knows, its processes);
 * run (the home stub, migrctl_run.c); migrate; ps; keygen (a cluster key
 * file, migrd/cluster/cluster_key.c).
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

static void usage(FILE *f)
{
    fprintf(f,
            "Usage: migrctl [--socket PATH] COMMAND\n"
            "Control and inspect the migr daemon of this node.\n"
            "\n"
            "Commands:\n"
            "  status          this node, the nodes it knows (link state, traffic) and the\n"
            "                  processes registered here (job, rank, pid, mailbox use; of\n"
            "                  another user's mailboxes only pid and uid)\n"
            "  run [--no-migrate] [--pidfile FILE] [--job JOB --rank R] -- CMD [ARG...]\n"
            "                  start CMD here (its home) under migr and stay as its deputy:\n"
            "                  exits with CMD's status wherever it ran; every signal it can\n"
            "                  catch reaches CMD wherever it runs; if the deputy is killed,\n"
            "                  migrd kills CMD.  --job/--rank name the MPI rank it is (odls\n"
            "                  migr passes them).  MIGR_NO_MIGRATE=1 is the same as\n"
            "                  --no-migrate (for launchers)\n"
            "  migrate PID --to NODE [--inject corrupt|stall]\n"
            "  migrate JOB RANK --to NODE\n"
            "                  move process PID (started by run), or rank RANK of MPI job JOB\n"
            "                  ([20065,1] as mpirun prints it, or its number; ask its home)\n"
            "                  to NODE; ask its home or the node where it runs.  Root or\n"
            "                  the process's owner only.  --inject is for tests: root, on\n"
            "                  a migrd started with --test-hooks\n"
            "  ps              migratable processes known here: uid, job and rank (MPI\n"
            "                  ranks), home, node, state, moves, last frozen time; of\n"
            "                  another user's only pid, uid, node, state and command\n"
            "  keygen [FILE]   make a new cluster key in FILE (default %s): 32 random\n"
            "                  bytes, mode 0600; never overwrites.  Copy it to every node\n"
            "                  (same path, root-owned, 0600) and name it in the map: key FILE\n"
            "\n"
            "Options:\n"
            "  -s, --socket PATH  migrd's control socket (default $MIGR_SOCKET or %s)\n"
            "  -h, --help         this text\n",
            MIGR_DEFAULT_KEY, DICOM_DEFAULT_SOCKET);
}

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

static int cmd_status(void)
{
    int first = 1;
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
        printf("%8s %6s %-13s %-5s %-10s %-10s %-8s %5s %12s  %s\n", "PID", "UID", "JOB", "RANK", "HOME", "NODE",
               "STATE", "MOVES", "LAST FROZEN", "COMMAND");
    char frozen[32] = "-", job[JOBID_STRLEN], rank[16], moves[16] = "-";
    if (p->last_frozen_us)
        snprintf(frozen, sizeof frozen, "%.1f ms", (double)p->last_frozen_us / 1000);
    if (!p->hidden)
        snprintf(moves, sizeof moves, "%u", p->moves);
    ps_rank(p, job, sizeof job, rank, sizeof rank);
    printf("%8d %6u %-13s %-5s %-10s %-10s %-8s %5s %12s  %s%s\n", p->pid, p->uid, job, rank, p->home, p->node,
           ps_state(p->state), moves, frozen, p->cmd, p->flags & CTL_PROC_NO_MIGRATE ? " (no-migrate)" : "");
}

static int cmd_ps(void)
{
    int n = 0;
    if (request_all(CTL_PS, ps_one, &n))
        return 1;
    if (!n)
        printf("(no migratable process known here)\n");
    return 0;
}

/* The process a move names: PID, or JOB RANK (JOB as [family,local] or
 * its number).  0, or 2 after printing why not. */
static int migrate_what(char **args, int n, struct ctl_migrate *m)
{
    char *end;
    long v;
    if (n == 1) {
        v = strtol(args[0], &end, 10);
        if (*end || v <= 1 || v > 4194304) {
            fprintf(stderr, "migrctl migrate: '%s' is not a pid (or give JOB RANK)\n", args[0]);
            return 2;
        }
        m->pid = (int32_t)v;
        return 0;
    }
    if (n != 2) {
        fprintf(stderr, "usage: migrctl migrate PID --to NODE, or migrctl migrate JOB RANK --to NODE\n");
        return 2;
    }
    if (jobid_parse(args[0], &m->job) < 0) {
        fprintf(stderr, "migrctl migrate: '%s' is not a job id ([family,local] as mpirun prints it, or a number)\n",
                args[0]);
        return 2;
    }
    v = strtol(args[1], &end, 10);
    if (*end || end == args[1] || v < 0 || v > 0x7fffffffL) {
        fprintf(stderr, "migrctl migrate: '%s' is not a rank\n", args[1]);
        return 2;
    }
    m->rank = (uint32_t)v;
    return 0;
}

static int cmd_migrate(int argc, char **argv)
{
    static char buf[CTL_MAX_MSG];
    struct ctl_migrate m = {0};
    const char *to = NULL;
    char *what[3];
    int i, nwhat = 0;
    for (i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--to") && i + 1 < argc)
            to = argv[++i];
        else if (!strcmp(argv[i], "--inject") && i + 1 < argc) {
            i++;
            if (!strcmp(argv[i], "corrupt"))
                m.inject = CTL_INJECT_CORRUPT;
            else if (!strcmp(argv[i], "stall"))
                m.inject = CTL_INJECT_STALL;
            else {
                fprintf(stderr, "migrctl migrate: --inject: '%s' is not corrupt or stall\n", argv[i]);
                return 2;
            }
        } else if (nwhat < 3) {
            what[nwhat++] = argv[i];
        } else {
            fprintf(stderr, "migrctl migrate: unexpected argument '%s'\n", argv[i]);
            return 2;
        }
    }
    if (!to) {
        fprintf(stderr, "usage: migrctl migrate PID --to NODE, or migrctl migrate JOB RANK --to NODE\n");
        return 2;
    }
    if (migrate_what(what, nwhat, &m))
        return 2;
    if (strlen(to) >= sizeof m.node) {
        fprintf(stderr, "migrctl migrate: node name too long: %s\n", to);
        return 2;
    }
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

int main(int argc, char **argv)
{
    static const struct option longopts[] = {
        {"socket", required_argument, 0, 's'}, {"help", no_argument, 0, 'h'}, {0, 0, 0, 0}};
    int ch;
    sock_path = getenv("MIGR_SOCKET");
    while ((ch = getopt_long(argc, argv, "+s:h", longopts, NULL)) != -1) {
        switch (ch) {
        case 's': sock_path = optarg; break;
        case 'h': usage(stdout); return 0;
        default: usage(stderr); return 2;
        }
    }
    if (!sock_path || !*sock_path)
        sock_path = DICOM_DEFAULT_SOCKET;
    if (optind >= argc) {
        usage(stderr);
        return 2;
    }
    const char *cmd = argv[optind];
    if (!strcmp(cmd, "status")) {
        if (optind + 1 < argc) {
            fprintf(stderr, "migrctl status: takes no arguments\n");
            return 2;
        }
        return cmd_status();
    }
    if (!strcmp(cmd, "run"))
        return migrctl_run(sock_path, argc - optind, argv + optind);
    if (!strcmp(cmd, "migrate"))
        return cmd_migrate(argc - optind, argv + optind);
    if (!strcmp(cmd, "ps")) {
        if (optind + 1 < argc) {
            fprintf(stderr, "migrctl ps: takes no arguments\n");
            return 2;
        }
        return cmd_ps();
    }
    if (!strcmp(cmd, "keygen")) {
        char why[512];
        const char *file = optind + 1 < argc ? argv[optind + 1] : MIGR_DEFAULT_KEY;
        if (optind + 2 < argc) {
            fprintf(stderr, "migrctl keygen: at most one argument, the key file\n");
            return 2;
        }
        if (cluster_key_generate(file, why, sizeof why) < 0) {
            fprintf(stderr, "migrctl keygen: %s\n", why);
            return 1;
        }
        printf("cluster key written to %s (mode 0600); name it in the cluster map: key %s\n", file, file);
        return 0;
    }
    if (!strcmp(cmd, "help")) {
        usage(stdout);
        return 0;
    }
    fprintf(stderr, "migrctl: unknown command '%s' (see migrctl --help)\n", cmd);
    return 2;
}
