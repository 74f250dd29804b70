/*
 * main.c -- migrd: start-up, options, signals, shutdown.
 */
#include <errno.h>
#include <event2/event.h>
#include <fcntl.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/utsname.h>
#include <unistd.h>

#include "common/ring.h"
#include "common/wire.h"
#include "dicom/dicom.h"
#include "migrd/cluster/auth.h"
#include "migrd/move/migrate.h"
#include "migrd/postal/exile.h"
#include "migrd/postal/jobs.h"
#include "migrd/postal/link.h"
#include "migrd/postal/location.h"
#include "migrd/postal/mbox.h"
#include "migrd/postal/relay.h"
#include "migrd/util/clock.h"
#include "migrd/util/log.h"
#include "ctl.h"
#include "migrd.h"

#ifndef MIGR_VERSION
#define MIGR_VERSION "dev"
#endif

struct options {
    const char *config, *node, *socket, *log, *pidfile;
    enum log_level level;
    int foreground, insecure, test_hooks;
    enum relay_sched sched;
    long port;
    unsigned long max_ring;
    const char *hide_cpu[16];  /* --hide-cpu-feature */
    int nhide_cpu;
    unsigned long poll_us;
};

static void usage(FILE *f)
{
    fprintf(f,
            "Usage: migrd [OPTION]...\n"
            "The migr node daemon: DiCOM postal office of this node (mailboxes of local\n"
            "processes, relaying of packets to and from the other nodes).\n"
            "\n"
            "  -c, --config FILE     cluster map (see README); without it the cluster is\n"
            "                        this node alone\n"
            "  -n, --node NAME       which node of the map this is (default: the hostname)\n"
            "  -s, --socket PATH     control socket (default %s)\n"
            "  -p, --port N          link port when there is no map (default %d)\n"
            "  -f, --foreground      do not detach; log to stderr unless --log is given\n"
            "  -l, --log FILE        log to FILE\n"
            "  -L, --log-level LVL   error, warn, info (default) or debug\n"
            "  -P, --pidfile FILE    write the daemon's pid to FILE\n"
            "      --insecure        run without authenticating the other daemons (no\n"
            "                        cluster key, or ignore the map's): anyone who can\n"
            "                        reach the ports can inject packets and processes.\n"
            "                        Only for an isolated test cluster or benchmark\n"
            "      --test-hooks      let root ask for test faults (migrctl migrate\n"
            "                        --inject); also MIGR_TEST_HOOKS=1 in the environment.\n"
            "                        Never for users: only for the test suites\n"
            "      --max-ring BYTES  largest ring a process may ask for (default 64M)\n"
            "      --sched MODE      policy while asleep: latency (default): normal\n"
            "                        policy with a 0.1 ms time slice, so that relaying\n"
            "                        preempts busy-polling ranks when a packet arrives;\n"
            "                        realtime: SCHED_FIFO 1; normal: no change.  While\n"
            "                        polling (--poll-us) migrd runs with the normal\n"
            "                        policy and time slice\n"
            "      --poll-us N       after relaying, poll the links and outboxes for up\n"
            "                        to N microseconds without traffic (yielding the CPU\n"
            "                        to busy-polling ranks between rounds) before going\n"
            "                        back to sleep; saves the wake-up of the daemon on\n"
            "                        every packet while traffic flows (default %u,\n"
            "                        at most 1000000; 0: always sleep)\n"
            "      --hide-cpu-feature NAME\n"
            "                        act as if this CPU lacked NAME (a /proc/cpuinfo flag\n"
            "                        such as avx2; repeatable): processes from nodes with\n"
            "                        it are refused.  Moves are only accepted from nodes\n"
            "                        whose CPU features this node has all of\n"
            "  -h, --help            this text\n"
            "  -V, --version         version\n"
            "\n"
            "Signals: SIGTERM or SIGINT shut down cleanly.\n",
            DICOM_DEFAULT_SOCKET, LINK_DEFAULT_PORT, RELAY_POLL_US_DEFAULT);
}

static int parse_options(int argc, char **argv, struct options *o)
{
    static const struct option longopts[] = {
        {"config", required_argument, 0, 'c'},   {"node", required_argument, 0, 'n'},
        {"socket", required_argument, 0, 's'},   {"port", required_argument, 0, 'p'},
        {"foreground", no_argument, 0, 'f'},     {"log", required_argument, 0, 'l'},
        {"log-level", required_argument, 0, 'L'}, {"pidfile", required_argument, 0, 'P'},
        {"max-ring", required_argument, 0, 'R'}, {"help", no_argument, 0, 'h'},
        {"version", no_argument, 0, 'V'},        {"sched", required_argument, 0, 'S'},
        {"hide-cpu-feature", required_argument, 0, 'H'},
        {"poll-us", required_argument, 0, 'U'},  {"insecure", no_argument, 0, 'I'},
        {"test-hooks", no_argument, 0, 'T'},
        {0, 0, 0, 0}};
    int ch;
    char *end;
    while ((ch = getopt_long(argc, argv, "c:n:s:p:fl:L:P:hV", longopts, NULL)) != -1) {
        switch (ch) {
        case 'c': o->config = optarg; break;
        case 'n': o->node = optarg; break;
        case 's': o->socket = optarg; break;
        case 'f': o->foreground = 1; break;
        case 'I': o->insecure = 1; break;
        case 'T': o->test_hooks = 1; break;
        case 'H': {
            struct cpu_features probe = {{0}};
            if (o->nhide_cpu >= (int)(sizeof o->hide_cpu / sizeof o->hide_cpu[0])) {
                fprintf(stderr, "migrd: --hide-cpu-feature: at most %zu\n",
                        sizeof o->hide_cpu / sizeof o->hide_cpu[0]);
                return 2;
            }
            if (cpuf_hide(&probe, optarg) < 0) {
                fprintf(stderr, "migrd: --hide-cpu-feature: '%s' is not a feature migrd compares "
                                "(see README, Moving processes)\n", optarg);
                return 2;
            }
            o->hide_cpu[o->nhide_cpu++] = optarg;
            break;
        }
        case 'S':
            if (relay_parse_sched(optarg, &o->sched) < 0) {
                fprintf(stderr, "migrd: --sched: '%s' is not latency, realtime or normal\n", optarg);
                return 2;
            }
            break;
        case 'l': o->log = optarg; break;
        case 'P': o->pidfile = optarg; break;
        case 'p':
            o->port = strtol(optarg, &end, 10);
            if (*end || o->port < 1 || o->port > 65535) {
                fprintf(stderr, "migrd: --port: '%s' is not a port number (1-65535)\n", optarg);
                return 2;
            }
            break;
        case 'U':
            o->poll_us = strtoul(optarg, &end, 10);
            if (!*optarg || *end || optarg[0] == '-' || o->poll_us > 1000000) {
                fprintf(stderr, "migrd: --poll-us: '%s' is not a number of microseconds (0-1000000)\n",
                        optarg);
                return 2;
            }
            break;
        case 'R':
            o->max_ring = strtoul(optarg, &end, 0);
            if (*end == 'M' || *end == 'm')
                o->max_ring <<= 20, end++;
            if (*end || !ring_size_valid(o->max_ring)) {
                fprintf(stderr, "migrd: --max-ring: '%s' is not a power of two from %u to %u\n",
                        optarg, RING_MIN_SIZE, RING_MAX_SIZE);
                return 2;
            }
            break;
        case 'L':
            if (log_parse_level(optarg, &o->level)) {
                fprintf(stderr, "migrd: --log-level: '%s' is not error, warn, info or debug\n", optarg);
                return 2;
            }
            break;
        case 'h': usage(stdout); exit(0);
        case 'V': printf("migrd %s (protocol %d)\n", MIGR_VERSION, MIGR_PROTO_VERSION); exit(0);
        default: usage(stderr); return 2;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "migrd: unexpected argument '%s' (see --help)\n", argv[optind]);
        return 2;
    }
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
        fprintf(stderr, "migrd: %s\n", err);
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

static int daemonize(void)
{
    pid_t pid = fork();
    if (pid < 0)
        return -errno;
    if (pid > 0)
        _exit(0);
    if (setsid() < 0)
        return -errno;
    int fd = open("/dev/null", O_RDWR | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    dup2(fd, 0);
    dup2(fd, 1);
    dup2(fd, 2);
    close(fd);
    return 0;
}

static int write_pidfile(const char *path)
{
    FILE *f = fopen(path, "we");
    if (!f)
        return -errno;
    fprintf(f, "%d\n", (int)getpid());
    return fclose(f) == 0 ? 0 : -errno;
}

static void on_signal(evutil_socket_t sig, short what, void *arg)
{
    struct migrd *d = arg;
    (void)what;
    log_info("signal %d: shutting down", (int)sig);
    d->stopping = true;
    event_base_loopbreak(d->base);
}

int main(int argc, char **argv)
{
    struct options o = {.level = LOG_INFO, .port = LINK_DEFAULT_PORT, .max_ring = 64u << 20,
                        .sched = RELAY_SCHED_LATENCY, .poll_us = RELAY_POLL_US_DEFAULT};
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
    if (!o.foreground && (rc = daemonize()) < 0) {
        fprintf(stderr, "migrd: cannot detach: %s\n", strerror(-rc));
        return 1;
    }
    signal(SIGPIPE, SIG_IGN);
    relay_init(&d.postal, o.sched, (uint32_t)o.poll_us);
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
    if (!d.postal.mboxes || !sigterm || !sigint || evsignal_add(sigterm, NULL) < 0 || evsignal_add(sigint, NULL) < 0 ||
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
    event_base_free(d.base);
    node_page_free(&d.postal);
    if (o.pidfile && rc == 0)
        unlink(o.pidfile);
    log_info("migrd stopped");
    return rc ? 1 : 0;
}
