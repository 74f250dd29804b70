/*
 * check.c -- see check.h: `migrctl check [--config FILE] [--node NAME] [--json]`.
 */
#include "check.h"

#include <errno.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include "../json.h"
#include "../migrctl.h"

static const char *const level_name[] = {"ok", "warn", "FAIL"};
static const char *const level_json[] = {"ok", "warn", "fail"};

/* Where the reports go. */
static struct {
    bool json;
    struct json j;
    int fails, warns;
} out;

void check_report(const char *name, enum check_level level, const char *fix, const char *fmt, ...)
{
    char what[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(what, sizeof what, fmt, ap);
    va_end(ap);
    out.fails += level == CHECK_FAIL;
    out.warns += level == CHECK_WARN;
    if (out.json) {
        json_record(&out.j, NULL);
        json_str(&out.j, "name", name);
        json_str(&out.j, "status", level_json[level]);
        json_str(&out.j, "detail", what);
        if (fix)
            json_str(&out.j, "fix", fix);
        else
            json_null(&out.j, "fix");
        json_end(&out.j);
        return;
    }
    printf("%-4s  %-17s %s%s%s\n", level_name[level], name, what, fix ? "; fix: " : "", fix ? fix : "");
}

pid_t check_spawn_idle(void)
{
    pid_t pid = fork();
    if (pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL); /* never outlives migrctl */
        for (;;)
            pause();
    }
    return pid;
}

void check_reap(pid_t pid)
{
    if (pid <= 0)
        return;
    kill(pid, SIGKILL);
    while (waitpid(pid, NULL, 0) < 0 && errno == EINTR)
        ;
}

static void (*const checks[])(struct check_ctx *) = {
    check_root, check_kernel_release, check_ptrace, check_clone3, check_pidfd, check_vm_readv,
    check_userfaultfd, check_cpu, check_cgroup, check_map, check_key, check_ports, check_ompi, check_migrd,
};

int migrctl_check(const struct cli *cl, int argc, char **argv)
{
    static const struct option lo[] = {{"config", required_argument, 0, 'c'},
                                       {"node", required_argument, 0, 'n'},
                                       {"json", no_argument, 0, 'j'},
                                       {"help", no_argument, 0, 'h'},
                                       {0, 0, 0, 0}};
    struct check_ctx c = {.euid = geteuid(), .config = MIGR_DEFAULT_MAP, .self = -1};
    const char *node = NULL;
    int ch;
    while ((ch = cli_getopt(cl, argc, argv, "c:n:h", lo)) != -1) {
        switch (ch) {
        case 'c': c.config = optarg, c.config_given = true; break;
        case 'n': node = optarg; break;
        case 'j': out.json = true; break;
        case 'h': return cli_help(cl);
        default: return CLI_USAGE_STATUS;
        }
    }
    if (optind < argc)
        return cli_error(cl, "takes no arguments, got '%s'", argv[optind]);
    if (node && strlen(node) >= sizeof c.node)
        return cli_error(cl, "--node: '%s' is longer than %zu bytes", node, sizeof c.node - 1);
    c.root = c.euid == 0;
    if (node)
        snprintf(c.node, sizeof c.node, "%s", node);
    else if (gethostname(c.node, sizeof c.node) < 0)
        snprintf(c.node, sizeof c.node, "localhost");
    c.node[sizeof c.node - 1] = 0;
    fflush(stdout); /* the probes fork */
    if (out.json) {
        json_start(&out.j, stdout);
        json_record(&out.j, NULL);
        json_str(&out.j, "node", c.node);
        json_arr(&out.j, "checks");
    }
    for (size_t i = 0; i < sizeof checks / sizeof checks[0]; i++) {
        checks[i](&c);
        fflush(stdout);
    }
    free(c.map);
    if (out.json) {
        json_end(&out.j);
        json_bool(&out.j, "ok", out.fails == 0);
        json_int(&out.j, "failed", out.fails);
        json_int(&out.j, "warnings", out.warns);
        json_end(&out.j);
        if (json_finish(&out.j) < 0) {
            perror("migrctl check: writing the JSON");
            return 1;
        }
    } else {
        printf("%s: %d failed, %d warning%s\n", out.fails ? "migr cannot run here" : "migr can run here", out.fails,
               out.warns, out.warns == 1 ? "" : "s");
    }
    return out.fails ? 1 : 0;
}
