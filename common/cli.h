/*
 * cli.h -- what the command lines of migrd, migrctl and migr-ckpt share.
 *
 * Owns: the shape of --help and --version, the usage of one subcommand
 * (`PROG SUB --help`), and the one-line errors of a bad command line:
 *
 *   PROG: unknown option '--x' (try 'PROG SUB --help')          exit 2
 *   PROG: option '--to' needs an argument (try 'PROG SUB --help')
 *   PROG SUB: 'x' is not a pid (try 'PROG SUB --help')
 *
 * A program describes its subcommands in a table of struct cli_cmd and
 * parses each one's options with cli_getopt() (getopt_long underneath);
 * nothing here prints the whole usage on an error.
 */
#ifndef MIGR_CLI_H
#define MIGR_CLI_H

#include <getopt.h>
#include <stddef.h>
#include <stdio.h>

/* Exit status of a bad command line. */
#define CLI_USAGE_STATUS 2

struct cli;

struct cli_cmd {
    const char *name;     /* "migrate"                                       */
    const char *synopsis; /* after "PROG [GLOBAL] NAME"; '\n' between forms   */
    const char *summary;  /* one line in the program's list of commands      */
    const char *about;    /* paragraphs of `PROG NAME --help`                */
    const char *options;  /* its option lines, or NULL; -h/--help is added   */
    /* argv[0] is NAME; returns the exit status */
    int (*run)(const struct cli *c, int argc, char **argv);
};

struct cli_prog {
    const char *name;     /* "migrctl"                                       */
    const char *global;   /* between PROG and the command in a usage line,
                             e.g. "[--socket PATH]"; "" if none               */
    const struct cli_cmd *cmds;
    size_t ncmds;
    void (*usage)(FILE *f); /* PROG --help (and `PROG help`)                */
};

/* Whom an error is about: the program, and the subcommand (NULL: the
 * program's own options). */
struct cli {
    const struct cli_prog *prog;
    const struct cli_cmd *cmd;
};

/* `PROG (migr) VERSION`, then a line `protocols: ...` (printf format), the
 * copyright and licence, and where to report bugs (AC_INIT's address). */
void cli_version(const char *prog, const char *protocols_fmt, ...) __attribute__((format(printf, 2, 3)));

/* The command of that name, or NULL. */
const struct cli_cmd *cli_find(const struct cli_prog *p, const char *name);

/* `PROG SUB --help`: Usage line(s), about, options with -h, --help. */
void cli_cmd_usage(FILE *f, const struct cli_prog *p, const struct cli_cmd *c);

/* The command list of PROG --help: "  NAME  SUMMARY", aligned. */
void cli_cmd_list(FILE *f, const struct cli_prog *p);

/* Run the command argv[0] (after the program's own options): its run(),
 * with getopt reset for its argument vector.  `help [COMMAND]` is built in
 * (a "help" entry in the table gets this behaviour).  An unknown command
 * is one line: "PROG: unknown command 'x' (try 'PROG --help')", exit 2. */
int cli_dispatch(const struct cli_prog *p, int argc, char **argv);

/* `PROG SUB --help` on stdout; returns 0 (the exit status). */
int cli_help(const struct cli *c);

/* Parse a subcommand that has no options but -h/--help and takes at most
 * max_operands operands (from argv[optind]).  Returns -1 to go on, or the
 * exit status (0 after --help, 2 after a one-line error). */
int cli_simple(const struct cli *c, int argc, char **argv, int max_operands);

/* getopt_long() that reports a bad option in one line on stderr (unknown,
 * ambiguous, missing or unwanted argument) and returns '?' for it.
 * shortopts as for getopt_long, a leading '+' allowed.  Set optind = 0
 * before parsing a new argument vector (argv[0] is then the subcommand). */
int cli_getopt(const struct cli *c, int argc, char **argv, const char *shortopts, const struct option *lo);

/* "PROG SUB: MESSAGE (try 'PROG SUB --help')" on stderr; returns
 * CLI_USAGE_STATUS. */
int cli_error(const struct cli *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#endif
