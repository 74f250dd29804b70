/*
 * main.c -- migrd: start-up, options, signals, shutdown.
 */
#include <errno.h>
#include <event2/event.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/utsname.h>
#include <unistd.h>

#include "common/cli.h"
#include "common/mbox.h"
#include "common/ring.h"
#include "common/units.h"
#include "common/wire.h"
#include <migr/dicom.h>
#include "migrd/cluster/auth.h"
#include "migrd/engine/engine.h"
#include "migrd/move/migrate.h"
#include "migrd/move/migrate_proto.h"
#include "migrd/postal/exile.h"
#include "migrd/postal/jobs.h"
#include "migrd/postal/link.h"
#include "migrd/postal/location.h"
#include "migrd/postal/mbox.h"
#include "migrd/postal/relay.h"
#include "migrd/util/clock.h"
#include "migrd/util/detach.h"
#include "migrd/util/log.h"
#include "ctl.h"
#include "migrd.h"

#ifndef MIGR_VERSION
#define MIGR_VERSION "dev"
#endif

#define POLL_US_MAX 1000000u

struct options {
    const char *config, *node, *socket, *log, *pidfile;
    enum log_level level;
    int foreground, insecure, test_hooks;
    enum relay_sched sched;
    long port;
    uint64_t max_ring;
    const char *hide_cpu[16];  /* --hide-cpu-feature */
    int nhide_cpu;
    uint64_t poll_us;
    unsigned long poll_cpu;
};

static void usage(FILE *f);
static const struct cli_prog prog = {"migrd", "", NULL, 0, usage};

static void usage(FILE *f)
{
    fprintf(f,
            "Usage: migrd [OPTION]...\n"
            "The migr node daemon: DiCOM postal office of this node (mailboxes of local\n"
            "processes, relaying of packets to and from the other nodes).\n"
            "\n"
            "  -c, --config FILE     cluster map (migr-cluster.conf(5)); without it the\n"
            "                        cluster is this node alone\n"
            "  -n, --node NAME       which node of the map this is (default: the hostname)\n"
            "  -s, --socket PATH     control socket (default %s)\n"
            "  -p, --port N          link port when there is no map (default %d)\n"
            "  -f, --foreground      do not detach; log to stderr unless --log is given\n"
            "                        (detached: to syslog, facility daemon, unless --log)\n"
            "  -l, --log FILE        log to FILE (SIGHUP reopens it)\n"
            "  -L, --log-level LVL   error, warn, info (default) or debug\n"
            "  -P, --pidfile FILE    write the daemon's pid to FILE\n"
            "      --insecure        run without authenticating the other daemons (no\n"
            "                        cluster key, or ignore the map's): anyone who can\n"
            "                        reach the ports can inject packets and processes.\n"
            "                        Only for an isolated test cluster or benchmark\n"
            "      --max-ring SIZE   largest ring a process may ask for: a power of two\n"
            "                        from 64K to 256M (default 64M)\n"
            "      --sched MODE      policy while asleep: latency (default): normal\n"
            "                        policy with a 0.1 ms time slice, so that relaying\n"
            "                        preempts busy-polling ranks when a packet arrives;\n"
            "                        realtime: SCHED_FIFO 1; normal: no change.  While\n"
            "                        polling (--poll-us) migrd runs with the normal\n"
            "                        policy and time slice\n"
            "      --poll-us TIME    after relaying, poll the links and outboxes for up\n"
            "                        to TIME without traffic (yielding the CPU\n"
            "                        to busy-polling ranks between rounds) before going\n"
            "                        back to sleep; saves the wake-up of the daemon on\n"
            "                        every packet while traffic flows (default %u us,\n"
            "                        at most 1s; 0: always sleep)\n"
            "      --poll-cpu PCT    polling may use at most PCT %% of one CPU in each\n"
            "                        10 ms (relay work included); beyond it migrd sleeps\n"
            "                        until the next period, woken by every packet, so\n"
            "                        that a busy node keeps its CPU (1-100, default %u:\n"
            "                        no limit)\n"
            "      --hide-cpu-feature NAME\n"
            "                        act as if this CPU lacked NAME (a /proc/cpuinfo flag\n"
            "                        such as avx2; repeatable): processes from nodes with\n"
            "                        it are refused.  Moves are only accepted from nodes\n"
            "                        whose CPU features this node has all of\n"
            "  -h, --help            this text\n"
            "  -V, --version         version and protocol versions\n"
            "\n"
            "SIZE: N, or N with K, M or G (powers of 1024): 64M.  TIME: N microseconds,\n"
            "or N with us, ms, s or min: 500us, 2ms.\n"
            "Detached, migrd returns once every socket is bound and the pidfile written:\n"
            "exit status 0, or 1 with the reason on stderr.\n"
            "Signals: SIGTERM or SIGINT shut down cleanly; SIGHUP reopens the log file.\n"
            "See migrd(8) and migr-cluster.conf(5).\n",
            DICOM_DEFAULT_SOCKET, LINK_DEFAULT_PORT, RELAY_POLL_US_DEFAULT, RELAY_POLL_CPU_DEFAULT);
}

static void version(void)
{
    cli_version("migrd", "control and link %d, migration %d, authentication %d, mailbox %u, engine image %d",
                MIGR_PROTO_VERSION, MIG_VERSION, AUTH_VERSION, MBOX_VERSION, ENGINE_IMAGE_VERSION);
}

static int parse_options(int argc, char **argv, struct options *o)
{
    enum { OPT_MAX_RING = 256, OPT_SCHED, OPT_HIDE_CPU, OPT_POLL_US, OPT_POLL_CPU, OPT_INSECURE, OPT_TEST_HOOKS };
    static const struct option longopts[] = {
        {"config", required_argument, 0, 'c'},   {"node", required_argument, 0, 'n'},
        {"socket", required_argument, 0, 's'},   {"port", required_argument, 0, 'p'},
        {"foreground", no_argument, 0, 'f'},     {"log", required_argument, 0, 'l'},
        {"log-level", required_argument, 0, 'L'}, {"pidfile", required_argument, 0, 'P'},
        {"max-ring", required_argument, 0, OPT_MAX_RING}, {"help", no_argument, 0, 'h'},
        {"version", no_argument, 0, 'V'},        {"sched", required_argument, 0, OPT_SCHED},
        {"hide-cpu-feature", required_argument, 0, OPT_HIDE_CPU},
        {"poll-us", required_argument, 0, OPT_POLL_US}, {"poll-cpu", required_argument, 0, OPT_POLL_CPU},  {"insecure", no_argument, 0, OPT_INSECURE},
        /* a test hook, not in the help: migrd(8) TEST HOOKS */
        {"test-hooks", no_argument, 0, OPT_TEST_HOOKS},
        {0, 0, 0, 0}};
    const struct cli c = {&prog, NULL};
    int ch, rc;
    char *end;
    while ((ch = cli_getopt(&c, argc, argv, "c:n:s:p:fl:L:P:hV", longopts)) != -1) {
        switch (ch) {
        case 'c': o->config = optarg; break;
        case 'n': o->node = optarg; break;
        case 's': o->socket = optarg; break;
        case 'f': o->foreground = 1; break;
        case OPT_INSECURE: o->insecure = 1; break;
        case OPT_TEST_HOOKS: o->test_hooks = 1; break;
        case OPT_HIDE_CPU: {
            struct cpu_features probe = {{0}};
            if (o->nhide_cpu >= (int)(sizeof o->hide_cpu / sizeof o->hide_cpu[0]))
                return cli_error(&c, "--hide-cpu-feature: at most %zu", sizeof o->hide_cpu / sizeof o->hide_cpu[0]);
            if (cpuf_hide(&probe, optarg) < 0)
                return cli_error(&c, "--hide-cpu-feature: '%s' is not a feature migrd compares (see migrd(8))",
                                 optarg);
            o->hide_cpu[o->nhide_cpu++] = optarg;
            break;
        }
        case OPT_SCHED:
            if (relay_parse_sched(optarg, &o->sched) < 0)
                return cli_error(&c, "--sched: '%s' is not latency, realtime or normal", optarg);
            break;
        case 'l': o->log = optarg; break;
        case 'P': o->pidfile = optarg; break;
        case 'p':
            o->port = strtol(optarg, &end, 10);
            if (*end || end == optarg || o->port < 1 || o->port > 65535)
                return cli_error(&c, "--port: '%s' is not a port number (1-65535)", optarg);
            break;
        case OPT_POLL_US:
            if ((rc = parse_duration(optarg, UNITS_US, POLL_US_MAX, &o->poll_us)) < 0)
                return cli_error(&c, rc == -ERANGE ? "--poll-us: '%s' is more than 1s"
                                                   : "--poll-us: '%s' is not a time (N microseconds, or 500us, 2ms)",
                                 optarg);
            break;
        case OPT_POLL_CPU:
            o->poll_cpu = strtoul(optarg, &end, 10);
            if (*end || end == optarg || o->poll_cpu < 1 || o->poll_cpu > 100)
                return cli_error(&c, "--poll-cpu: '%s' is not a percentage from 1 to 100", optarg);
            break;
        case OPT_MAX_RING:
            if (parse_size(optarg, RING_MAX_SIZE, &o->max_ring) < 0 || !ring_size_valid(o->max_ring))
                return cli_error(&c, "--max-ring: '%s' is not a power of two from 64K to 256M", optarg);
            break;
        case 'L':
            if (log_parse_level(optarg, &o->level))
                return cli_error(&c, "--log-level: '%s' is not error, warn, info or debug", optarg);
            break;
        case 'h': usage(stdout); exit(0);
        case 'V': version(); exit(0);
        default: return CLI_USAGE_STATUS;
        }
    }
    if (optind < argc)
        return cli_error(&c, "unexpected argument '%s'", argv[optind]);
    return 0;
}

/* The cluster key the map names; a map of several nodes needs one, unless
 * --insecure (then no peer is authenticated, loudly). */
static int load_key(struct migrd *d, const struct options *o)
{
    char why[512];
    if (o->insecure) {
        fprintf(stderr, "migrd: WARNING: --insecure: the other daemons are not authenticated; anyone who "
                        "can reach this node's ports can inject packets and processes\n");
        return 0;
    }
    if (!d->cl.map.key[0]) {
        if (d->cl.map.nnodes == 1)
            return 0;
        fprintf(stderr, "migrd: the cluster map %s names no cluster key: add `key FILE` (made with "
                        "`migrctl keygen FILE`), or run with --insecure on an isolated test cluster\n",
                o->config);
        return -1;
    }
    if (auth_init() < 0 || cluster_key_load(d->cl.map.key, d->cl.key, why, sizeof why) < 0) {
        fprintf(stderr, "migrd: %s\n",
                d->cl.map.key[0] ? why : "the crypto libraries (libsodium, OpenSSL libcrypto) cannot be initialised");
        return -1;
    }
    d->cl.secure = true;
    return 0;
}

static int load_map(struct migrd *d, const struct options *o)
{
    char host[64] = "localhost", err[512];
    if (gethostname(host, sizeof host) < 0)
        snprintf(host, sizeof host, "localhost");
    host[sizeof host - 1] = 0;
    const char *me = o->node ? o->node : host;
    if (!o->config) {
        config_single(&d->cl.map, me, (uint16_t)o->port);
        d->cl.self = 0;
        return 0;
    }
    if (config_load(o->config, &d->cl.map, err, sizeof err) < 0) {
        fprintf(stderr, "migrd: cluster map %s\n", err);
        return -1;
    }
    d->cl.self = config_find(&d->cl.map, me);
    if (d->cl.self < 0) {
        fprintf(stderr, "migrd: this node (%s) is not in the cluster map %s; name it with --node\n", me,
                o->config);
        return -1;
    }
    return load_key(d, o);
}

static int write_pidfile(const char *path)
{
    FILE *f = fopen(path, "we");
    if (!f)
        return -errno;
    fprintf(f, "%d\n", (int)getpid());
    return fclose(f) == 0 ? 0 : -errno;
}

/* SIGHUP: logrotate moved the log file away; the daemon goes on. */
static void on_sighup(evutil_socket_t sig, short what, void *arg)
{
    (void)sig;
    (void)what;
    (void)arg;
    int rc = log_reopen();
    if (rc > 0)
        log_info("SIGHUP: log file %s reopened", log_path());
    else if (rc == 0)
        log_info("SIGHUP: not logging to a file, nothing to reopen");
    else
        log_error("SIGHUP: reopening the log file %s: %s; logging on to the old one", log_path(), strerror(-rc));
}

static void stop_now(void *arg)
{
    struct migrd *d = arg;
    d->stopping = true;
    event_base_loopbreak(d->base);
}

/* The first SIGTERM/SIGINT moves the guests away first; a second one
 * stops at once. */
static void on_signal(evutil_socket_t sig, short what, void *arg)
{
    struct migrd *d = arg;
    (void)what;
    log_info("signal %d: shutting down", (int)sig);
    if (!d->evacuating && migrate_evacuate(&d->move, stop_now, d) > 0) {
        d->evacuating = true;
        return;
    }
    stop_now(d);
}

int main(int argc, char **argv)
{
    struct options o = {.level = LOG_INFO, .port = LINK_DEFAULT_PORT, .max_ring = 64u << 20,
                        .sched = RELAY_SCHED_LATENCY, .poll_us = RELAY_POLL_US_DEFAULT,
                        .poll_cpu = RELAY_POLL_CPU_DEFAULT};
    static struct migrd d;
    int rc = parse_options(argc, argv, &o);
    if (rc)
        return rc;
    const char *sock = o.socket ? o.socket : getenv("MIGR_SOCKET");
    if (!sock || !*sock)
        sock = DICOM_DEFAULT_SOCKET;
    if (load_map(&d, &o) < 0)
        return 1;
    d.postal.max_ring = (uint32_t)o.max_ring;
    struct utsname u;
    if (uname(&u) == 0)
        snprintf(d.cl.kernel, sizeof d.cl.kernel, "%.63s", u.release);
    cpuf_read(&d.cl.cpu);
    for (int i = 0; i < o.nhide_cpu; i++)
        cpuf_hide(&d.cl.cpu, o.hide_cpu[i]);
    rc = log_open(o.log, o.level, cluster_self_name(&d.cl));
    if (rc < 0) {
        fprintf(stderr, "migrd: --log %s: %s\n", o.log, strerror(-rc));
        return 1;
    }
    /* SIGPIPE: a peer or the starting process gone; SIGHUP until the event
     * loop takes it: not fatal */
    signal(SIGPIPE, SIG_IGN);
    signal(SIGHUP, SIG_IGN);
    if (!o.foreground) {
        if (!o.log && access("/dev/log", W_OK) < 0)
            fprintf(stderr, "migrd: warning: no syslog daemon takes messages on /dev/log (%s): the log "
                            "is lost; use --log FILE\n", strerror(errno));
        if ((rc = detach_start()) < 0) {
            fprintf(stderr, "migrd: cannot detach: %s\n", strerror(-rc));
            return 1;
        }
        if (!o.log)
            log_to_syslog();
    }
    relay_init(&d.postal, o.sched, (uint32_t)o.poll_us, (uint32_t)o.poll_cpu);
    d.start_ms = migrd_now_ms();
    d.base = event_base_new();
    if (!d.base) {
        log_error("cannot create the event loop");
        return 1;
    }
    d.postal.base = d.base;
    d.postal.cl = &d.cl;
    d.move.base = d.base;
    d.move.cl = &d.cl;
    d.move.test_hooks = o.test_hooks || (getenv("MIGR_TEST_HOOKS") && !strcmp(getenv("MIGR_TEST_HOOKS"), "1"));
    if (d.move.test_hooks)
        log_warn("test hooks on (--test-hooks or MIGR_TEST_HOOKS=1): root may inject faults into moves");
    d.move.postal = &d.postal;
    d.postal.mboxes = mbox_table_new(&d.postal);
    if (node_page_create(&d.postal) < 0)
        return 1;
    struct event *sigterm = evsignal_new(d.base, SIGTERM, on_signal, &d);
    struct event *sigint = evsignal_new(d.base, SIGINT, on_signal, &d);
    struct event *sighup = evsignal_new(d.base, SIGHUP, on_sighup, &d);
    if (!d.postal.mboxes || !sigterm || !sigint || !sighup || evsignal_add(sigterm, NULL) < 0 ||
        evsignal_add(sigint, NULL) < 0 || evsignal_add(sighup, NULL) < 0 ||
        location_init(&d.postal) < 0 || exile_init(&d.postal) < 0 || jobs_init(&d.postal) < 0) {
        log_error("out of memory at start-up");
        return 1;
    }
    if (ctl_init(&d, sock) < 0 || link_init(&d.postal) < 0 || migrate_init(&d.move) < 0)
        rc = 1;
    if (rc == 0 && o.pidfile && (rc = write_pidfile(o.pidfile)) < 0) {
        log_error("pidfile %s: %s", o.pidfile, strerror(-rc));
        rc = 1;
    }
    if (rc == 0) {
        const struct cfg_node *n = cluster_self(&d.cl);
        log_info("migrd %s up: node %s (%d of %d), link %s:%u, socket %s, kernel %s, %s", MIGR_VERSION,
                 n->name, d.cl.self + 1, d.cl.map.nnodes, n->addr, n->port, sock, d.cl.kernel,
                 d.cl.secure ? "peers authenticated with the cluster key" : "peers NOT authenticated");
        if (!d.cl.secure && d.cl.map.nnodes > 1)
            log_warn("INSECURE: --insecure: daemons of other nodes are not authenticated; anyone who can "
                     "reach ports %u and %u can inject packets and processes", n->port, n->port + 1u);
        detach_ready();
        relay_run(&d.postal, &d.stopping);
    }
    ctl_fini(&d);
    migrate_fini(&d.move);
    link_fini(&d.postal);
    exile_fini(&d.postal);
    mbox_close_all(&d.postal);
    location_fini(&d.postal);
    jobs_fini(&d.postal);
    event_free(sigterm);
    event_free(sigint);
    event_free(sighup);
    event_base_free(d.base);
    node_page_free(&d.postal);
    if (o.pidfile && rc == 0)
        unlink(o.pidfile);
    log_info("migrd stopped");
    return rc ? 1 : 0;
}
