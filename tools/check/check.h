/*
 * check.h -- `migrctl check`: can this host run migr, and if not, why not.
 *
 * Owns: the list of checks and how each reports.  A check looks at one
 * thing (a system call, a sysctl, a file, a port, a service) and reports
 * one line: ok, warn (works, but something is missing or could not be
 * verified as this user) or FAIL (migr cannot work here until fixed),
 * what it found, and the fix.  `migrctl check` exits 1 when a check FAILed.
 *   check.c          the command: options, the list, the output
 *   check_kernel.c   root, ptrace, clone3 set_tid, pidfd, process_vm_readv,
 *                    userfaultfd, the kernel release
 *   check_host.c     CPU features, cgroup version
 *   check_cluster.c  cluster map, cluster key, ports
 *   check_services.c Open MPI components, migrd answering
 */
#ifndef MIGR_TOOLS_CHECK_H
#define MIGR_TOOLS_CHECK_H

#include <stdbool.h>
#include <sys/types.h>

#include "../../migrd/cluster/cluster_map.h"

enum check_level { CHECK_OK, CHECK_WARN, CHECK_FAIL };

struct check_ctx {
    uid_t euid;
    bool root;
    const char *config;        /* the map file checked                  */
    bool config_given;         /* --config (else the default)           */
    char node[CFG_NAME_MAX];   /* this node's name (--node or hostname) */
    struct cluster_map *map;   /* loaded, or NULL (no map, or a bad one) */
    int self;                  /* this node in map, or -1               */
};

/* Report one check: its level, the fix (NULL when there is nothing to
 * do) and what was found (printf format). */
void check_report(const char *name, enum check_level level, const char *fix, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* The checks, in the order they run (each reports once or more). */
void check_root(struct check_ctx *c);
void check_kernel_release(struct check_ctx *c);
void check_ptrace(struct check_ctx *c);
void check_clone3(struct check_ctx *c);
void check_pidfd(struct check_ctx *c);
void check_vm_readv(struct check_ctx *c);
void check_userfaultfd(struct check_ctx *c);
void check_cpu(struct check_ctx *c);
void check_cgroup(struct check_ctx *c);
void check_map(struct check_ctx *c);
void check_key(struct check_ctx *c);
void check_ports(struct check_ctx *c);
void check_ompi(struct check_ctx *c);
void check_migrd(struct check_ctx *c);

/* fork() a child that waits to be killed; its pid, or -1 (errno). */
pid_t check_spawn_idle(void);
/* Kill and reap it. */
void check_reap(pid_t pid);

#endif
