/*
 * deputy.h -- the home stub of a migratable process (`migrctl run`, and what
 * the odls component will launch for each MPI rank).
 *
 * Interface: migrctl [--socket PATH] run [--no-migrate] [--pidfile FILE]
 *            [--job JOB --rank R] -- CMD [ARG...]
 * or the environment MIGR_SOCKET (migrd's control socket), MIGR_NO_MIGRATE=1.
 * The stub forks CMD (which inherits stdio and the environment), registers
 * it with the home migrd -- as rank R of Open MPI job JOB when given (odls
 * migr passes them) -- and stays its parent and deputy: it ends with CMD's
 * exit status or re-raises its signal, wherever CMD ran; every signal the
 * stub can catch is delivered to CMD wherever it runs; if the stub is
 * killed (SIGKILL), its migrd kills CMD wherever it runs.
 */
#ifndef MIGRD_DEPUTY_H
#define MIGRD_DEPUTY_H

#include <stdint.h>

/* What `migrctl run` was asked (tools/migrctl.c parses the command line). */
struct deputy_opts {
    const char *pidfile; /* CMD's pid goes there once registered, or NULL */
    int no_migrate;      /* --no-migrate or MIGR_NO_MIGRATE=1              */
    int is_rank;         /* CMD is rank `rank` of Open MPI job `job`       */
    uint32_t job, rank;
};

/* Start cmd[0] with arguments cmd[1..] (NULL-terminated) and be its
 * deputy.  Returns an exit status (when CMD was not killed). */
int migrctl_run(const char *sock_path, const struct deputy_opts *o, char **cmd);

#endif
