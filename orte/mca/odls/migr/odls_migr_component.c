/*
 * odls_migr_component.c -- the component of odls migr (see odls_migr.h):
 * its MCA parameters and its selection.  It is chosen only when the odls
 * framework was asked for it by name (`--mca odls migr`); it never takes
 * over a job that did not ask for migr.
 */
#include "orte_config.h"

#include <string.h>

#include "opal/mca/base/base.h"
#include "opal/mca/base/mca_base_var.h"
#include "opal/util/argv.h"
#include "opal/util/output.h"
#include "orte/constants.h"
#include "orte/mca/odls/base/odls_private.h"

#include "odls_migr.h"

#ifndef MIGR_RELEASE_VERSION
#error "MIGR_{MAJOR,MINOR,RELEASE}_VERSION come from configure (Makefile.am's MCA_COMPONENT_CPPFLAGS)"
#endif

#ifndef MIGR_BINDIR
#define MIGR_BINDIR "/usr/local/bin"
#endif

static int odls_migr_register(void);
static int odls_migr_open(void);
static int odls_migr_close(void);
static int odls_migr_query(mca_base_module_t **module, int *priority);

orte_odls_migr_component_t mca_odls_migr_component = {
    .super = {
        .version = {
            ORTE_ODLS_BASE_VERSION_2_0_0,
            .mca_component_name = "migr",
            /* migr's version, not Open MPI's (ompi_info shows it) */
            MCA_BASE_MAKE_VERSION(component, MIGR_MAJOR_VERSION, MIGR_MINOR_VERSION,
                                  MIGR_RELEASE_VERSION),
            .mca_open_component = odls_migr_open,
            .mca_close_component = odls_migr_close,
            .mca_register_component_params = odls_migr_register,
            .mca_query_component = odls_migr_query,
        },
        .base_data = {
            MCA_BASE_METADATA_PARAM_NONE
        },
    },
    .migratable = true,
    .output = -1,
};

static void param(const char *name, const char *help, mca_base_var_type_t type, mca_base_var_info_lvl_t level,
                  mca_base_var_scope_t scope, void *storage)
{
    (void)mca_base_component_var_register(&mca_odls_migr_component.super.version, name, help, type, NULL, 0, 0,
                                          level, scope, storage);
}

static int odls_migr_register(void)
{
    mca_odls_migr_component.migratable = true;
    param("migratable",
          "Whether the ranks may be moved to other nodes by migr (migrctl migrate); "
          "false launches them with --no-migrate: still through their deputy, so "
          "migrctl ps lists them, but migrd refuses to move them",
          MCA_BASE_VAR_TYPE_BOOL, OPAL_INFO_LVL_4, MCA_BASE_VAR_SCOPE_READONLY,
          &mca_odls_migr_component.migratable);
    mca_odls_migr_component.deputy = MIGR_BINDIR "/migrctl";
    param("deputy",
          "Path of migrctl, whose 'run' command is the deputy every rank is "
          "launched through (it registers the rank with the node's migrd and "
          "stays its parent wherever the rank runs); must exist on every node",
          MCA_BASE_VAR_TYPE_STRING, OPAL_INFO_LVL_4, MCA_BASE_VAR_SCOPE_READONLY,
          &mca_odls_migr_component.deputy);
    mca_odls_migr_component.verbose = 0;
    param("verbose",
          "Verbosity of odls migr: 0 quiet, 10 every launch and signal",
          MCA_BASE_VAR_TYPE_INT, OPAL_INFO_LVL_9, MCA_BASE_VAR_SCOPE_LOCAL,
          &mca_odls_migr_component.verbose);
    return ORTE_SUCCESS;
}

static int odls_migr_open(void)
{
    mca_odls_migr_component.output = opal_output_open(NULL);
    opal_output_set_verbosity(mca_odls_migr_component.output, mca_odls_migr_component.verbose);
    return ORTE_SUCCESS;
}

static int odls_migr_close(void)
{
    if (mca_odls_migr_component.output >= 0)
        opal_output_close(mca_odls_migr_component.output);
    mca_odls_migr_component.output = -1;
    return ORTE_SUCCESS;
}

/* Did the user name us in the odls framework's include list? */
static bool requested(void)
{
    int idx = mca_base_var_find("orte", "odls", NULL, NULL);
    char **value = NULL;
    bool yes = false;

    if (idx < 0 || OPAL_SUCCESS != mca_base_var_get_value(idx, &value, NULL, NULL) ||
        NULL == value || NULL == *value || '^' == (*value)[0]) {
        return false;
    }
    char **names = opal_argv_split(*value, ',');
    for (int i = 0; NULL != names && NULL != names[i]; i++) {
        if (0 == strcmp(names[i], "migr")) {
            yes = true;
        }
    }
    opal_argv_free(names);
    return yes;
}

static int odls_migr_query(mca_base_module_t **module, int *priority)
{
    *module = NULL;
    *priority = 0;
    if (!requested()) {
        opal_output_verbose(10, mca_odls_migr_component.output,
                            "odls:migr: not selected: ask for it with --mca odls migr");
        return ORTE_ERROR;
    }
    *priority = 100;
    *module = (mca_base_module_t *)&orte_odls_migr_module;
    opal_output_verbose(10, mca_odls_migr_component.output,
                        "odls:migr: selected (deputy %s, %smigratable)",
                        mca_odls_migr_component.deputy,
                        mca_odls_migr_component.migratable ? "" : "not ");
    return ORTE_SUCCESS;
}
