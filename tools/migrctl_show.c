/*
 * migrctl_show.c -- status, ps and log: what migrd reports, as a table
 * for people or, with --json, as one JSON document (doc/json-schema.md).
 * Open MPI job ids are printed as Open MPI prints them, [family,local].
 */
#include "migrctl.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "../common/ctlmsg.h"
#include "../common/jobid.h"
#include "json.h"

/* The options of status, ps and log: --json, --help; no operands.
 * Returns -1 to go on, or the exit status. */
static int parse_show(const struct cli *c, int argc, char **argv, bool *json)
{
    static const struct option lo[] = {{"json", no_argument, 0, 'j'}, {"help", no_argument, 0, 'h'}, {0, 0, 0, 0}};
    int ch;
    *json = false;
    while ((ch = cli_getopt(c, argc, argv, "h", lo)) != -1) {
        switch (ch) {
        case 'j': *json = true; break;
        case 'h': return cli_help(c);
        default: return CLI_USAGE_STATUS;
        }
    }
    if (optind < argc)
        return cli_error(c, "takes no arguments, got '%s'", argv[optind]);
    return -1;
}

struct listing_kind;

/* What a listing collects: the table printed so far, or the JSON. */
struct show {
    bool json;
    struct json j;
    int rows;        /* rows (table) or records (JSON) so far */
    int in_array;    /* JSON: an array of the kind of the current message is open (CTL_* type) */
    const struct listing_kind *kind; /* ps, log */
    FILE *mem;       /* JSON: written here first (open_memstream) */
    char *buf;
    size_t len;
};

/* The end of a listing that succeeded: the JSON, kept until now so that
 * a failure prints none of it, goes out whole. */
static int show_finish(struct show *s)
{
    if (!s->json)
        return fflush(stdout) ? 1 : 0;
    if (s->in_array)
        json_end(&s->j);
    json_end(&s->j);
    int rc = json_finish(&s->j);
    if (rc == 0 && fclose(s->mem) == 0)
        rc = fwrite(s->buf, 1, s->len, stdout) == s->len && fflush(stdout) == 0 ? 0 : -1;
    else if (rc == 0)
        rc = -1;
    else
        fclose(s->mem);
    free(s->buf);
    if (rc < 0) {
        perror("migrctl: writing the JSON");
        return 1;
    }
    return 0;
}

/* A listing that failed: nothing of its JSON is printed. */
static int show_abort(struct show *s)
{
    if (s->json) {
        fclose(s->mem);
        free(s->buf);
    }
    return 1;
}

/* JSON: the array called name (of messages of `type`) is the open one. */
static void show_array(struct show *s, int type, const char *name)
{
    if (s->in_array == type)
        return;
    if (s->in_array)
        json_end(&s->j);
    json_arr(&s->j, name);
    s->in_array = type;
}

/* JSON: "job", "jobid" and "rank" of an MPI rank, or nulls. */
static void json_rank(struct json *j, bool is_rank, uint32_t job, uint32_t rank)
{
    char jb[JOBID_STRLEN];
    if (!is_rank) {
        json_null(j, "job"), json_null(j, "jobid"), json_null(j, "rank");
        return;
    }
    json_str(j, "job", jobid_format(job, jb, sizeof jb));
    json_uint(j, "jobid", job);
    json_uint(j, "rank", rank);
}

/* Table: JOB "[family,local]" and RANK of an MPI rank, "-" else. */
static void table_rank(bool is_rank, uint32_t job, uint32_t rank, char jb[JOBID_STRLEN], char rb[16])
{
    if (!is_rank) {
        snprintf(jb, JOBID_STRLEN, "-");
        snprintf(rb, 16, "-");
        return;
    }
    jobid_format(job, jb, JOBID_STRLEN);
    snprintf(rb, 16, "%u", rank);
}

static void json_owner(struct json *j, const char *key_uid, const char *key_user, uint32_t uid)
{
    char user[64];
    json_uint(j, key_uid, uid);
    json_str(j, key_user, migrctl_user(uid, user, sizeof user));
}

static void unexpected(const struct ctl_hdr *h)
{
    fprintf(stderr, "migrctl: ignoring an unexpected %s message of %u bytes\n", ctl_type_name(h->type), h->len);
}

typedef void show_fn(struct show *s, const void *rec);

/* A reply of `type` holds one or more records of len bytes (struct
 * ctl_batch): fn of each.  False if h is of another type. */
static bool records(struct show *s, const struct ctl_hdr *h, uint16_t type, uint32_t len, show_fn *fn)
{
    if (h->type != type)
        return false;
    if (!h->len || h->len % len)
        unexpected(h);
    else
        for (uint32_t off = 0; off < h->len; off += len)
            fn(s, (const char *)(h + 1) + off);
    return true;
}

/* ---- status ---- */

static void status_node_json(struct show *s, const void *rec)
{
    const struct ctl_status_node *n = rec;
    struct json *j = &s->j;
    if (n->self) {
        json_record(j, "node");
        json_strn(j, "name", n->name, sizeof n->name);
        json_strn(j, "address", n->addr, sizeof n->addr);
        json_uint(j, "port", n->port);
        json_uint(j, "uptime_ms", n->uptime_ms);
        json_uint(j, "processes", n->nprocs);
        json_end(j);
    }
    show_array(s, CTL_STATUS_NODE, "links");
    json_record(j, NULL);
    json_strn(j, "node", n->name, sizeof n->name);
    json_strn(j, "address", n->addr, sizeof n->addr);
    json_uint(j, "port", n->port);
    json_str(j, "state", n->self ? "self" : n->connected ? "up" : "down");
    json_uint(j, "frames_in", n->frames_in);
    json_uint(j, "frames_out", n->frames_out);
    json_uint(j, "bytes_in", n->bytes_in);
    json_uint(j, "bytes_out", n->bytes_out);
    json_end(j);
}

static void status_node_table(struct show *s, const void *rec)
{
    const struct ctl_status_node *n = rec;
    (void)s;
    char in[32], out[32];
    migrctl_bytes(in, sizeof in, n->bytes_in);
    migrctl_bytes(out, sizeof out, n->bytes_out);
    if (n->self)
        printf("node %.64s (%.64s:%u), up %.1f s, %u process%s registered\n\n"
               "NODE          ADDRESS               LINK    FRAMES IN/OUT       BYTES IN/OUT\n",
               n->name, n->addr, n->port, (double)n->uptime_ms / 1000.0, n->nprocs, n->nprocs == 1 ? "" : "es");
    printf("%-13.64s %-21.64s %-7s %9lu/%-9lu %10s/%-10s\n", n->name, n->addr,
           n->self ? "self" : n->connected ? "up" : "down", (unsigned long)n->frames_in,
           (unsigned long)n->frames_out, n->self ? "-" : in, n->self ? "-" : out);
}

static void status_proc_json(struct show *s, const void *rec)
{
    const struct ctl_status_proc *p = rec;
    struct json *j = &s->j;
    bool hidden = p->flags & CTL_STATUS_HIDDEN;
    show_array(s, CTL_STATUS_PROC, "mailboxes");
    json_record(j, NULL);
    json_int(j, "pid", p->pid);
    json_owner(j, "uid", "user", p->uid);
    json_bool(j, "hidden", hidden);
    json_rank(j, !hidden, p->job, p->rank);
    const char *keys[] = {"inbox_used", "inbox_size", "outbox_used", "outbox_size", "relayed_out", "delivered_in"};
    const uint64_t vals[] = {p->inbox_used, p->inbox_size, p->outbox_used, p->outbox_size, p->relayed_out,
                             p->delivered_in};
    for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++) {
        if (hidden)
            json_null(j, keys[i]);
        else
            json_uint(j, keys[i], vals[i]);
    }
    json_end(j);
}

/* "12.5% of 4 MiB": the use of a ring, in one column. */
static const char *ring_use(char *buf, size_t len, uint64_t used, uint64_t size)
{
    char sz[32];
    migrctl_bytes(sz, sizeof sz, size);
    snprintf(buf, len, "%.1f%% of %s", size ? 100.0 * (double)used / (double)size : 0.0, sz);
    return buf;
}

static void status_proc_table(struct show *s, const void *rec)
{
    const struct ctl_status_proc *p = rec;
    char user[64], job[JOBID_STRLEN], in[48], out[48];
    if (!s->rows++)
        printf("\n%-13s %5s %8s %-10s %-16s %-16s %11s %12s\n", "JOB", "RANK", "PID", "USER", "INBOX USED",
               "OUTBOX USED", "RELAYED OUT", "DELIVERED IN");
    migrctl_user(p->uid, user, sizeof user);
    if (p->flags & CTL_STATUS_HIDDEN) { /* another user's: migrd shows only what ps(1) would */
        printf("%-13s %5s %8d %-10s %-16s %-16s %11s %12s\n", "-", "-", p->pid, user, "-", "-", "-", "-");
        return;
    }
    printf("%-13s %5u %8d %-10s %-16s %-16s %11lu %12lu\n", jobid_format(p->job, job, sizeof job), p->rank, p->pid,
           user, ring_use(in, sizeof in, p->inbox_used, p->inbox_size),
           ring_use(out, sizeof out, p->outbox_used, p->outbox_size), (unsigned long)p->relayed_out,
           (unsigned long)p->delivered_in);
}

/* The nodes, then the mailboxes, several per message. */
static void status_one(const struct ctl_hdr *h, void *arg)
{
    struct show *s = arg;
    if (!records(s, h, CTL_STATUS_NODE, sizeof(struct ctl_status_node), s->json ? status_node_json : status_node_table) &&
        !records(s, h, CTL_STATUS_PROC, sizeof(struct ctl_status_proc), s->json ? status_proc_json : status_proc_table))
        unexpected(h);
}

/* Start the document: the top object with its schema.  0, or 1 after
 * printing why not. */
static int show_start(struct show *s)
{
    if (!s->json)
        return 0;
    s->mem = open_memstream(&s->buf, &s->len);
    if (!s->mem) {
        perror("migrctl: open_memstream");
        return 1;
    }
    json_start(&s->j, s->mem);
    json_record(&s->j, NULL);
    return 0;
}

int migrctl_status(const struct cli *c, int argc, char **argv)
{
    struct show s = {0};
    int rc = parse_show(c, argc, argv, &s.json);
    if (rc >= 0)
        return rc;
    if (show_start(&s))
        return 1;
    if (migrctl_request_all(CTL_STATUS, status_one, &s))
        return show_abort(&s);
    if (s.json)
        show_array(&s, CTL_STATUS_PROC, "mailboxes"); /* present, maybe empty */
    else if (!s.rows)
        printf("\n(no process registered)\n");
    return show_finish(&s);
}

/* ---- ps ---- */

static const char *ps_state(uint32_t st)
{
    switch (st) {
    case CTL_PS_RUNNING: return "running";
    case CTL_PS_AWAY: return "away";
    case CTL_PS_MOVING: return "moving";
    case CTL_PS_EXITED: return "exited";
    default: return "?";
    }
}

static void ps_json(struct show *s, const void *rec)
{
    const struct ctl_ps_proc *p = rec;
    struct json *j = &s->j;
    json_record(j, NULL);
    json_int(j, "pid", p->pid);
    json_owner(j, "uid", "user", p->uid);
    json_bool(j, "hidden", p->hidden);
    json_rank(j, !p->hidden && (p->flags & CTL_PROC_RANK), p->job, p->rank);
    json_strn(j, "home", p->home, sizeof p->home);
    json_strn(j, "node", p->node, sizeof p->node);
    json_str(j, "state", ps_state(p->state));
    if (p->hidden) {
        json_null(j, "moves");
        json_null(j, "last_frozen_ms");
    } else {
        json_uint(j, "moves", p->moves);
        if (p->last_frozen_us)
            json_num(j, "last_frozen_ms", (double)p->last_frozen_us / 1000);
        else
            json_null(j, "last_frozen_ms");
    }
    json_uint(j, "pages_away", p->pages_away);
    if (p->pages_away)
        json_strn(j, "pages_on", p->away_on, sizeof p->away_on);
    else
        json_null(j, "pages_on");
    json_bool(j, "no_migrate", p->flags & CTL_PROC_NO_MIGRATE);
    json_strn(j, "command", p->cmd, sizeof p->cmd);
    json_end(j);
}

static void ps_table(struct show *s, const void *rec)
{
    const struct ctl_ps_proc *p = rec;
    char frozen[32] = "-", job[JOBID_STRLEN], rank[16], moves[16] = "-", user[64], away[96] = "-";
    if (!s->rows++)
        printf("%8s %-10s %6s %-13s %-5s %-10s %-10s %-8s %5s %-16s %12s  %s\n", "PID", "USER", "UID", "JOB", "RANK",
               "HOME", "NODE", "STATE", "MOVES", "AWAY", "LAST FROZEN", "COMMAND");
    if (p->pages_away)
        snprintf(away, sizeof away, "%llu@%.*s", (unsigned long long)p->pages_away, (int)sizeof p->away_on,
                 p->away_on);
    if (p->last_frozen_us)
        snprintf(frozen, sizeof frozen, "%.1f ms", (double)p->last_frozen_us / 1000);
    if (!p->hidden)
        snprintf(moves, sizeof moves, "%u", p->moves);
    table_rank(p->flags & CTL_PROC_RANK, p->job, p->rank, job, rank);
    char cmd[sizeof p->cmd + 1];
    printf("%8d %-10s %6u %-13s %-5s %-10.64s %-10.64s %-8s %5s %-16s %12s  %s%s\n", p->pid,
           migrctl_user(p->uid, user, sizeof user), p->uid, job, rank, p->home, p->node, ps_state(p->state), moves, away,
           frozen,
           migrctl_printable(cmd, p->cmd, sizeof p->cmd), p->flags & CTL_PROC_NO_MIGRATE ? " (no-migrate)" : "");
}

/* A listing of records of one kind: a table, or {"schema":1, "NAME":[...]}. */
struct listing_kind {
    uint16_t request, reply;          /* CTL_PS, CTL_PS_PROC        */
    uint32_t len;                     /* of a record: a reply holds one
                                         or more (struct ctl_batch)  */
    const char *name;                 /* of the JSON array          */
    const char *none;                 /* the table when it is empty */
    show_fn *json, *table;
};

static void listing_one(const struct ctl_hdr *h, void *arg)
{
    struct show *s = arg;
    const struct listing_kind *k = s->kind;
    if (!records(s, h, k->reply, k->len, s->json ? k->json : k->table))
        unexpected(h);
}

static int listing(const struct cli *c, int argc, char **argv, const struct listing_kind *k)
{
    struct show s = {.kind = k};
    int rc = parse_show(c, argc, argv, &s.json);
    if (rc >= 0)
        return rc;
    if (show_start(&s))
        return 1;
    if (s.json)
        show_array(&s, k->reply, k->name);
    if (migrctl_request_all(k->request, listing_one, &s))
        return show_abort(&s);
    if (!s.json && !s.rows)
        printf("%s\n", k->none);
    return show_finish(&s);
}

int migrctl_ps(const struct cli *c, int argc, char **argv)
{
    static const struct listing_kind ps = {CTL_PS, CTL_PS_PROC, sizeof(struct ctl_ps_proc), "processes",
                                           "(no migratable process known here)", ps_json, ps_table};
    return listing(c, argc, argv, &ps);
}

/* ---- log ---- */

static void log_json(struct show *s, const void *rec)
{
    const struct ctl_log_move *m = rec;
    struct json *j = &s->j;
    char when[64];
    time_t t = (time_t)(m->start_unix_ms / 1000);
    struct tm tm;
    gmtime_r(&t, &tm);
    size_t n = strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(when + n, sizeof when - n, ".%03uZ", (unsigned)(m->start_unix_ms % 1000));
    json_record(j, NULL);
    json_uint(j, "seq", m->seq);
    json_str(j, "start", when);
    json_uint(j, "start_unix_ms", m->start_unix_ms);
    json_int(j, "pid", m->pid);
    json_owner(j, "uid", "user", m->uid);
    json_rank(j, m->flags & CTL_PROC_RANK, m->job, m->rank);
    json_strn(j, "command", m->cmd, sizeof m->cmd);
    json_strn(j, "from", m->from, sizeof m->from);
    json_strn(j, "to", m->to, sizeof m->to);
    json_str(j, "result", m->ok ? "ok" : "failed");
    if (m->ok)
        json_null(j, "reason");
    else
        json_strn(j, "reason", m->reason, sizeof m->reason);
    json_num(j, "frozen_ms", (double)m->frozen_us / 1000);
    json_num(j, "total_ms", (double)m->total_us / 1000);
    json_uint(j, "bytes", m->bytes);
    json_owner(j, "requester_uid", "requester", m->by_uid);
    json_end(j);
}

static void log_table(struct show *s, const void *rec)
{
    const struct ctl_log_move *m = rec;
    char when[32], user[64], by[64], job[JOBID_STRLEN], rank[16], size[32];
    time_t t = (time_t)(m->start_unix_ms / 1000);
    struct tm tm;
    localtime_r(&t, &tm);
    strftime(when, sizeof when, "%Y-%m-%d %H:%M:%S", &tm);
    if (!s->rows++)
        printf("%-19s %8s %-10s %-13s %-5s %-10s %-10s %10s %10s %10s %-10s %s\n", "START", "PID", "USER", "JOB",
               "RANK", "FROM", "TO", "FROZEN", "TOTAL", "SIZE", "BY", "RESULT");
    table_rank(m->flags & CTL_PROC_RANK, m->job, m->rank, job, rank);
    migrctl_bytes(size, sizeof size, m->bytes);
    char to[sizeof m->to + 1], reason[sizeof m->reason + 1];
    printf("%-19s %8d %-10s %-13s %-5s %-10.64s %-10s %7.1f ms %7.1f ms %10s %-10s %s%s%s\n", when, m->pid,
           migrctl_user(m->uid, user, sizeof user), job, rank, m->from, migrctl_printable(to, m->to, sizeof m->to),
           (double)m->frozen_us / 1000, (double)m->total_us / 1000, size, migrctl_user(m->by_uid, by, sizeof by),
           m->ok ? "ok" : "failed", m->ok ? "" : ": ", m->ok ? "" : migrctl_printable(reason, m->reason, sizeof m->reason));
}

int migrctl_log(const struct cli *c, int argc, char **argv)
{
    static const struct listing_kind log = {CTL_LOG, CTL_LOG_MOVE, sizeof(struct ctl_log_move), "moves",
                                            "(no move out of this node yet)", log_json, log_table};
    return listing(c, argc, argv, &log);
}
