/*
 * cli.c -- see cli.h.
 */
#include "cli.h"

#include <stdarg.h>
#include <string.h>

#ifndef MIGR_VERSION
#define MIGR_VERSION "dev"
#endif
/* AC_INIT's bug-report address (Makefile.am passes it) */
#ifndef MIGR_BUGREPORT
#define MIGR_BUGREPORT "the address in configure.ac's AC_INIT"
#endif

void cli_version(const char *prog, const char *protocols_fmt, ...)
{
    va_list ap;
    printf("%s (migr) %s\nprotocols: ", prog, MIGR_VERSION);
    va_start(ap, protocols_fmt);
    vprintf(protocols_fmt, ap);
    va_end(ap);
    printf("\nCopyright (c) 2026 the migr developers; the 3-clause BSD licence (LICENSE)\n"
           "Report bugs to <%s>\n", MIGR_BUGREPORT);
}

const struct cli_cmd *cli_find(const struct cli_prog *p, const char *name)
{
    for (size_t i = 0; i < p->ncmds; i++)
        if (!strcmp(p->cmds[i].name, name))
            return &p->cmds[i];
    return NULL;
}

/* "PROG" or "PROG SUB" into buf. */
static const char *who(const struct cli *c, char *buf, size_t len)
{
    snprintf(buf, len, "%s%s%s", c->prog->name, c->cmd ? " " : "", c->cmd ? c->cmd->name : "");
    return buf;
}

void cli_cmd_usage(FILE *f, const struct cli_prog *p, const struct cli_cmd *c)
{
    const char *s = c->synopsis;
    int first = 1;
    /* one usage line per form of the synopsis */
    do {
        const char *nl = strchr(s, '\n');
        int n = nl ? (int)(nl - s) : (int)strlen(s);
        fprintf(f, "%s %s%s%s %s%s%.*s\n", first ? "Usage:" : "      ", p->name, *p->global ? " " : "", p->global,
                c->name, n ? " " : "", n, s);
        first = 0;
        s = nl ? nl + 1 : NULL;
    } while (s);
    fprintf(f, "\n%s\n\nOptions:\n%s  -h, --help            this text\n", c->about, c->options ? c->options : "");
}

void cli_cmd_list(FILE *f, const struct cli_prog *p)
{
    int w = 0;
    for (size_t i = 0; i < p->ncmds; i++)
        if ((int)strlen(p->cmds[i].name) > w)
            w = (int)strlen(p->cmds[i].name);
    for (size_t i = 0; i < p->ncmds; i++)
        fprintf(f, "  %-*s  %s\n", w, p->cmds[i].name, p->cmds[i].summary);
}

int cli_error(const struct cli *c, const char *fmt, ...)
{
    char w[128];
    va_list ap;
    fprintf(stderr, "%s: ", who(c, w, sizeof w));
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fprintf(stderr, " (try '%s --help')\n", w);
    return CLI_USAGE_STATUS;
}

/* A bad option in one line: "PROG: PRE'OPTION'POST (try 'PROG SUB --help')". */
static void bad_option(const struct cli *c, const char *pre, const char *opt, int optlen, const char *post)
{
    char w[128];
    fprintf(stderr, "%s: %s'%.*s'%s (try '%s --help')\n", c->prog->name, pre, optlen, opt, post,
            who(c, w, sizeof w));
}

/* Why getopt_long refused the long option `tok` ("--name[=value]"): an
 * option (or its unique abbreviation) with or without a wanted argument,
 * an ambiguous abbreviation, or no such option. */
static void bad_long_option(const struct cli *c, const char *tok, const struct option *lo)
{
    const char *name = tok + 2, *eq = strchr(name, '=');
    size_t len = eq ? (size_t)(eq - name) : strlen(name);
    const struct option *match = NULL;
    int prefixes = 0;
    for (const struct option *o = lo; o && o->name; o++) {
        if (strncmp(o->name, name, len))
            continue;
        if (strlen(o->name) == len) {
            match = o;
            prefixes = 1;
            break;
        }
        match = o;
        prefixes++;
    }
    if (prefixes == 1)
        bad_option(c, "option ", tok, (int)(len + 2),
                   match->has_arg == no_argument ? " takes no argument" : " needs an argument");
    else
        bad_option(c, prefixes ? "ambiguous option " : "unknown option ", tok, (int)(len + 2), "");
}

int cli_getopt(const struct cli *c, int argc, char **argv, const char *shortopts, const struct option *lo)
{
    char opts[128];
    int plus = shortopts[0] == '+';
    /* a leading ':' makes getopt quiet and tell a missing argument apart */
    snprintf(opts, sizeof opts, "%s:%s", plus ? "+" : "", shortopts + plus);
    opterr = 0;
    int ch = getopt_long(argc, argv, opts, lo, NULL);
    if (ch != '?' && ch != ':')
        return ch;
    const char *tok = optind > 0 && optind <= argc ? argv[optind - 1] : "";
    if (!strncmp(tok, "--", 2) && tok[2]) {
        bad_long_option(c, tok, lo);
    } else {
        char s[3] = {'-', (char)optopt, 0};
        if (ch == ':')
            bad_option(c, "option ", s, 2, " needs an argument");
        else
            bad_option(c, "unknown option ", s, 2, "");
    }
    return '?';
}

int cli_help(const struct cli *c)
{
    cli_cmd_usage(stdout, c->prog, c->cmd);
    return 0;
}

int cli_simple(const struct cli *c, int argc, char **argv, int max_operands)
{
    static const struct option lo[] = {{"help", no_argument, 0, 'h'}, {0, 0, 0, 0}};
    int ch;
    while ((ch = cli_getopt(c, argc, argv, "h", lo)) != -1) {
        if (ch == 'h')
            return cli_help(c);
        return CLI_USAGE_STATUS;
    }
    if (argc - optind > max_operands)
        return max_operands ? cli_error(c, "unexpected argument '%s'", argv[optind + max_operands])
                            : cli_error(c, "takes no arguments, got '%s'", argv[optind]);
    return -1;
}

/* help [COMMAND] */
static int run_help(const struct cli *c, int argc, char **argv)
{
    int rc = cli_simple(c, argc, argv, 1);
    if (rc >= 0)
        return rc;
    if (optind == argc) {
        c->prog->usage(stdout);
        return 0;
    }
    const struct cli_cmd *cmd = cli_find(c->prog, argv[optind]);
    if (!cmd)
        return cli_error(c, "no command '%s'", argv[optind]);
    cli_cmd_usage(stdout, c->prog, cmd);
    return 0;
}

int cli_dispatch(const struct cli_prog *p, int argc, char **argv)
{
    struct cli c = {.prog = p, .cmd = cli_find(p, argv[0])};
    if (!c.cmd) {
        fprintf(stderr, "%s: unknown command '%s' (try '%s --help')\n", p->name, argv[0], p->name);
        return CLI_USAGE_STATUS;
    }
    optind = 0; /* a new argument vector: getopt starts afresh at argv[1] */
    return strcmp(c.cmd->name, "help") ? c.cmd->run(&c, argc, argv) : run_help(&c, argc, argv);
}
