/*
 * odls_migr.h -- the migr ODLS component: every rank of a job is launched
 * through its home deputy (`migrctl run --job J --rank R -- APP ARGS`),
 * which registers (job, rank, pid, uid) with the node's migrd and starts
 * the application as its child.  The orted (or mpirun, for its own node)
 * sees only the deputy: its pid, its stdio pipes, its exit status or
 * signal; signals it sends reach the rank wherever it runs.
 *
 * Owns: the component (odls_migr_component.c: parameters, selection only
 * when `--mca odls migr` asks for it) and the module (odls_migr_module.c:
 * the fork of the deputy, signals).  Selected by `--mca odls migr`.
 */
#ifndef ORTE_ODLS_MIGR_H
#define ORTE_ODLS_MIGR_H

#include "orte_config.h"

#include <stdbool.h>

#include "opal/mca/mca.h"
#include "orte/mca/odls/odls.h"

BEGIN_C_DECLS

typedef struct {
    orte_odls_base_component_t super;
    bool migratable;   /* odls_migr_migratable: false = --no-migrate        */
    char *deputy;      /* odls_migr_deputy: path of migrctl                 */
    int verbose;       /* odls_migr_verbose                                 */
    int output;        /* opal_output stream at that verbosity              */
} orte_odls_migr_component_t;

ORTE_MODULE_DECLSPEC extern orte_odls_migr_component_t mca_odls_migr_component;
extern orte_odls_base_module_t orte_odls_migr_module;

END_C_DECLS

#endif
