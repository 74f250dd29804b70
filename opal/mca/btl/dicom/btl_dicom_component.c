/* -*- Mode: C; c-basic-offset:4 ; indent-tabs-mode:nil -*- */
/*
 * btl_dicom_component.c -- the component of the BTL `dicom`: MCA parameters
 * (register), setup and teardown of component state (open/close), opening
 * the mailbox with the local migrd and publishing our address (init), and
 * progress: handing arrived packets to the PML, sending queued fragments,
 * and watching the daemon's events so that a lost daemon or an unreachable
 * peer ends the job with a clear error instead of a hang.
 */
#include "opal_config.h"

#include <errno.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "opal/mca/pmix/pmix.h"
#include "opal/runtime/opal.h"
#include "opal/util/argv.h"
#include "opal/util/error.h"
#include "opal/util/proc.h"

#include "btl_dicom.h"
#include "btl_dicom_endpoint.h"
#include "btl_dicom_frag.h"

#ifndef MIGR_RELEASE_VERSION
#error "MIGR_{MAJOR,MINOR,RELEASE}_VERSION come from configure (Makefile.am's MCA_COMPONENT_CPPFLAGS)"
#endif

/* progress looks at the clock every (mask + 1) calls */
#define MCA_BTL_DICOM_TICK_MASK 15u
/* at most this many packets per progress call (bounded latency elsewhere) */
#define MCA_BTL_DICOM_MAX_RECV_PER_CALL 64
/* smallest ring we accept (the library may refuse small ones too) */
#define MCA_BTL_DICOM_MIN_RING (64u * 1024u)

static int mca_btl_dicom_component_register(void);
static int mca_btl_dicom_component_open(void);
static int mca_btl_dicom_component_close(void);
static mca_btl_base_module_t **mca_btl_dicom_component_init(int *num_btls,
                                                            bool enable_progress_threads,
                                                            bool enable_mpi_threads);
static int mca_btl_dicom_component_progress(void);

mca_btl_dicom_component_t mca_btl_dicom_component = {
    .super = {
        .btl_version = {
            /* MCA_BTL_DEFAULT_VERSION would give Open MPI's version as
             * the component's: ompi_info shows migr's */
            MCA_BTL_BASE_VERSION_3_1_0,
            .mca_component_name = "dicom",
            MCA_BASE_MAKE_VERSION(component, MIGR_MAJOR_VERSION, MIGR_MINOR_VERSION,
                                  MIGR_RELEASE_VERSION),
            .mca_open_component = mca_btl_dicom_component_open,
            .mca_close_component = mca_btl_dicom_component_close,
            .mca_register_component_params = mca_btl_dicom_component_register,
        },
        .btl_data = {
            .param_field = MCA_BASE_METADATA_PARAM_NONE,
        },
        .btl_init = mca_btl_dicom_component_init,
        .btl_progress = mca_btl_dicom_component_progress,
    },
};

/* ------------------------------------------------------------ register --- */

static const mca_base_var_enum_value_t mca_btl_dicom_select_values[] = {
    {MCA_BTL_DICOM_SELECT_AUTO, "auto"},
    {MCA_BTL_DICOM_SELECT_ALWAYS, "always"},
    {MCA_BTL_DICOM_SELECT_NEVER, "never"},
    {0, NULL},
};

static int mca_btl_dicom_component_register(void)
{
    mca_btl_dicom_component_t *c = &mca_btl_dicom_component;
    mca_btl_base_module_t *btl = &mca_btl_dicom_module.super;
    const mca_base_component_t *v = &c->super.btl_version;
    const char *env = getenv("MIGR_SOCKET");
    mca_base_var_enum_t *select_enum = NULL;
    int rc;

    (void) mca_base_var_group_component_register(v, "migr's DiCOM postal transport: every "
                                                 "peer is reached through the local migrd, "
                                                 "so ranks may move between nodes");

    c->socket_path = (char *) ((NULL != env && '\0' != env[0]) ? env : DICOM_DEFAULT_SOCKET);
    (void) mca_base_component_var_register(v, "socket",
                                           "Control socket of the local migrd (default: "
                                           "$MIGR_SOCKET if set, else " DICOM_DEFAULT_SOCKET
                                           "). When no migrd answers there, the dicom BTL "
                                           "is not used",
                                           MCA_BASE_VAR_TYPE_STRING, NULL, 0, 0, OPAL_INFO_LVL_3,
                                           MCA_BASE_VAR_SCOPE_READONLY, &c->socket_path);

    c->inbox_size = 0;
    (void) mca_base_component_var_register(v, "inbox_size",
                                           "Size in bytes of this process's inbox ring in "
                                           "shared memory: a power of two of at least 64 KiB, "
                                           "or 0 for the DiCOM library's default (4 MiB). The "
                                           "largest packet is a quarter of the smallest ring; "
                                           "use the same value for every process of a job",
                                           MCA_BASE_VAR_TYPE_UNSIGNED_INT, NULL, 0, 0,
                                           OPAL_INFO_LVL_4, MCA_BASE_VAR_SCOPE_READONLY,
                                           &c->inbox_size);

    c->outbox_size = 0;
    (void) mca_base_component_var_register(v, "outbox_size",
                                           "Size in bytes of this process's outbox ring "
                                           "(packets to other nodes, relayed by migrd): a "
                                           "power of two of at least 64 KiB, or 0 for the "
                                           "DiCOM library's default (4 MiB)",
                                           MCA_BASE_VAR_TYPE_UNSIGNED_INT, NULL, 0, 0,
                                           OPAL_INFO_LVL_4, MCA_BASE_VAR_SCOPE_READONLY,
                                           &c->outbox_size);

    c->connect_timeout_ms = 0;
    (void) mca_base_component_var_register(v, "connect_timeout_ms",
                                           "How long MPI_Init waits for migrd to register "
                                           "the mailbox, in ms (0: the DiCOM library's "
                                           "default, 5000)",
                                           MCA_BASE_VAR_TYPE_UNSIGNED_INT, NULL, 0, 0,
                                           OPAL_INFO_LVL_5, MCA_BASE_VAR_SCOPE_READONLY,
                                           &c->connect_timeout_ms);

    c->verbose = 0;
    (void) mca_base_component_var_register(v, "verbose",
                                           "Verbosity of the dicom BTL: 0 errors only, 1 why "
                                           "dicom is not used and limits it changed, 10 "
                                           "per-peer decisions, 50 every dropped packet",
                                           MCA_BASE_VAR_TYPE_INT, NULL, 0, MCA_BASE_VAR_FLAG_SETTABLE,
                                           OPAL_INFO_LVL_5, MCA_BASE_VAR_SCOPE_LOCAL,
                                           &c->verbose);

    c->event_interval_ms = 50;
    (void) mca_base_component_var_register(v, "event_interval_ms",
                                           "How often (ms) progress asks migrd for events "
                                           "(daemon lost, peer unreachable); 0 asks at every "
                                           "clock check",
                                           MCA_BASE_VAR_TYPE_UNSIGNED_INT, NULL, 0,
                                           MCA_BASE_VAR_FLAG_SETTABLE, OPAL_INFO_LVL_5,
                                           MCA_BASE_VAR_SCOPE_LOCAL, &c->event_interval_ms);

    c->populate_rings = true;
    (void) mca_base_component_var_register(v, "populate_rings",
                                           "Fault the rings' pages in when they are mapped (the "
                                           "inbox at open, the outbox at the first peer on "
                                           "another node, a same-node peer's inbox at its first "
                                           "send), so that the first lap of a ring pays no page "
                                           "fault per 4 KiB (false: fault them in on first use; "
                                           "saves resident memory for ranks that send little)",
                                           MCA_BASE_VAR_TYPE_BOOL, NULL, 0, 0,
                                           OPAL_INFO_LVL_5, MCA_BASE_VAR_SCOPE_READONLY,
                                           &c->populate_rings);

    c->single_thread_sends = true;
    (void) mca_base_component_var_register(v, "single_thread_sends",
                                           "Unless the job runs MPI_THREAD_MULTIPLE, open the "
                                           "mailbox for one sending thread at a time: a send "
                                           "takes no per-peer lock and marks the safe point of "
                                           "a move with plain stores (2 locked instructions per "
                                           "same-node send instead of 5; false: always the "
                                           "locked sends of several threads)",
                                           MCA_BASE_VAR_TYPE_BOOL, NULL, 0, 0,
                                           OPAL_INFO_LVL_5, MCA_BASE_VAR_SCOPE_READONLY,
                                           &c->single_thread_sends);

    c->zero_copy = true;
    (void) mca_base_component_var_register(v, "zero_copy",
                                           "Let alloc/prepare_src hand out room reserved in the "
                                           "destination's ring, so that data is packed there "
                                           "directly (false: always pack into a buffer and copy "
                                           "it at send time)",
                                           MCA_BASE_VAR_TYPE_BOOL, NULL, 0, MCA_BASE_VAR_FLAG_SETTABLE,
                                           OPAL_INFO_LVL_5, MCA_BASE_VAR_SCOPE_LOCAL,
                                           &c->zero_copy);

    c->yield_to_relay = true;
    (void) mca_base_component_var_register(v, "yield_to_relay",
                                           "When progress finds nothing to do while migrd is "
                                           "relaying or polling for traffic (or still holds "
                                           "packets of ours), yield the CPU so that the daemon, "
                                           "which may share this core with busy-polling ranks, "
                                           "gets it (false: always spin)",
                                           MCA_BASE_VAR_TYPE_BOOL, NULL, 0, MCA_BASE_VAR_FLAG_SETTABLE,
                                           OPAL_INFO_LVL_5, MCA_BASE_VAR_SCOPE_LOCAL,
                                           &c->yield_to_relay);

    rc = mca_base_var_enum_create("btl_dicom_select", mca_btl_dicom_select_values, &select_enum);
    if (OPAL_SUCCESS != rc) {
        return rc;
    }
    c->select = MCA_BTL_DICOM_SELECT_AUTO;
    (void) mca_base_component_var_register(v, "select",
                                           "Which jobs use the dicom BTL: \"auto\" (default) "
                                           "only a job that asked for it, by naming dicom in "
                                           "the btl parameter (--mca btl dicom,self) or by "
                                           "being launched with --mca odls migr (which sets "
                                           DICOM_ODLS_ENV "=1 for its ranks); other jobs "
                                           "use vader/tcp and survive a restart of migrd. "
                                           "\"always\": every job whenever a migrd answers "
                                           "(its exclusivity then beats vader and tcp). "
                                           "\"never\": no job",
                                           MCA_BASE_VAR_TYPE_INT, select_enum, 0, 0,
                                           OPAL_INFO_LVL_3, MCA_BASE_VAR_SCOPE_READONLY,
                                           &c->select);
    OBJ_RELEASE(select_enum);

    c->free_list_num = 8;
    (void) mca_base_component_var_register(v, "free_list_num",
                                           "Initial number of send descriptors of each kind",
                                           MCA_BASE_VAR_TYPE_INT, NULL, 0, 0, OPAL_INFO_LVL_9,
                                           MCA_BASE_VAR_SCOPE_LOCAL, &c->free_list_num);
    c->free_list_max = 256;
    (void) mca_base_component_var_register(v, "free_list_max",
                                           "Maximum number of buffered send descriptors of each "
                                           "size (they hold sends that found no room in a ring)",
                                           MCA_BASE_VAR_TYPE_INT, NULL, 0, 0, OPAL_INFO_LVL_9,
                                           MCA_BASE_VAR_SCOPE_LOCAL, &c->free_list_max);
    c->free_list_inc = 32;
    (void) mca_base_component_var_register(v, "free_list_inc",
                                           "Number of send descriptors added when a list grows",
                                           MCA_BASE_VAR_TYPE_INT, NULL, 0, 0, OPAL_INFO_LVL_9,
                                           MCA_BASE_VAR_SCOPE_LOCAL, &c->free_list_inc);

    /* module defaults; the base registers btl_dicom_<limit> for each */
    btl->btl_exclusivity = MCA_BTL_DICOM_EXCLUSIVITY;
    /* tcp's curve: eager to 64 KiB.  Across nodes a rendezvous costs a
     * round trip through both daemons (4-32 KiB paid 70-90 us for it with
     * a 4 KiB limit); on one node eager is one copy in and one out, as the
     * rendezvous' fragments are, without the handshake. */
    btl->btl_eager_limit = 64 * 1024;
    btl->btl_rndv_eager_limit = 64 * 1024;
    btl->btl_max_send_size = 128 * 1024;
    btl->btl_rdma_pipeline_send_length = btl->btl_eager_limit;
    btl->btl_rdma_pipeline_frag_size = btl->btl_max_send_size;
    btl->btl_min_rdma_pipeline_size = 0;
    btl->btl_flags = MCA_BTL_FLAGS_SEND;
    btl->btl_latency = 2;            /* us */
    btl->btl_bandwidth = 8000;       /* Mb/s */

    return mca_btl_base_param_register(&c->super.btl_version, btl);
}

/* ------------------------------------------------------- open / close --- */

static int mca_btl_dicom_component_open(void)
{
    mca_btl_dicom_component_t *c = &mca_btl_dicom_component;

    OBJ_CONSTRUCT(&c->frags_ring, opal_free_list_t);
    OBJ_CONSTRUCT(&c->frags_eager, opal_free_list_t);
    OBJ_CONSTRUCT(&c->frags_max, opal_free_list_t);
    OBJ_CONSTRUCT(&c->pending_lock, opal_mutex_t);
    OBJ_CONSTRUCT(&c->pending_endpoints, opal_list_t);
    OBJ_CONSTRUCT(&c->recv_lock, opal_mutex_t);
    c->recv_busy = false;
    c->module = NULL;
    c->bounce = NULL;
    c->bounce_size = 0;
    c->progress_ticks = 0;
    c->next_event_check_ms = 0;
    c->fatal_reported = false;
    c->requested = false;
    memset((void *) &c->count, 0, sizeof(c->count));

    c->output = opal_output_open(NULL);
    opal_output_set_verbosity(c->output, c->verbose);
    return OPAL_SUCCESS;
}

static int mca_btl_dicom_component_close(void)
{
    mca_btl_dicom_component_t *c = &mca_btl_dicom_component;

    if (NULL != mca_btl_dicom_module.mbox || mca_btl_dicom_module.endpoints_ready) {
        (void) mca_btl_dicom_finalize(&mca_btl_dicom_module.super);
    }
    OBJ_DESTRUCT(&c->frags_ring);
    OBJ_DESTRUCT(&c->frags_eager);
    OBJ_DESTRUCT(&c->frags_max);
    OBJ_DESTRUCT(&c->pending_endpoints);
    OBJ_DESTRUCT(&c->pending_lock);
    OBJ_DESTRUCT(&c->recv_lock);
    if (c->output >= 0) {
        opal_output_close(c->output);
        c->output = -1;
    }
    return OPAL_SUCCESS;
}

/* ---------------------------------------------------------------- init --- */

/* Is `dicom` named in a comma-separated include list (not a ^exclusion)? */
static bool mca_btl_dicom_named_in(const char *list)
{
    char **argv;
    bool found = false;

    if (NULL == list || '^' == list[0]) {
        return false;
    }
    argv = opal_argv_split(list, ',');
    for (int i = 0; NULL != argv && NULL != argv[i]; ++i) {
        if (0 == strcmp(argv[i], "dicom")) {
            found = true;
            break;
        }
    }
    opal_argv_free(argv);
    return found;
}

/* The value of the btl framework parameter (--mca btl LIST), or NULL. */
static const char *mca_btl_dicom_btl_param(void)
{
    char **value = NULL;
    int idx = mca_base_var_find("opal", "btl", NULL, NULL);

    if (idx < 0 || OPAL_SUCCESS != mca_base_var_get_value(idx, &value, NULL, NULL) ||
        NULL == value) {
        return NULL;
    }
    return *value;
}

/* Does this job ask for dicom (btl_dicom_select)?  Sets c->requested;
 * false: the notice says why it is not used. */
static bool mca_btl_dicom_job_selects(mca_btl_dicom_component_t *c)
{
    const char *odls = getenv(DICOM_ODLS_ENV);

    c->requested = mca_btl_dicom_named_in(mca_btl_dicom_btl_param()) ||
                   mca_btl_dicom_named_in(mca_btl_base_include) ||
                   (NULL != odls && 0 == strcmp(odls, "1"));
    switch (c->select) {
    case MCA_BTL_DICOM_SELECT_ALWAYS:
        return true;
    case MCA_BTL_DICOM_SELECT_NEVER:
        MCA_BTL_DICOM_NOTICE("btl_dicom_select is \"never\": the dicom BTL is not used");
        return false;
    default:
        if (!c->requested) {
            MCA_BTL_DICOM_NOTICE("this job did not select dicom (not named in the btl parameter, "
                                 "not launched by odls migr, btl_dicom_select \"auto\"): the "
                                 "dicom BTL is not used");
        }
        return c->requested;
    }
}

static bool mca_btl_dicom_ring_size_ok(unsigned int size, const char *name)
{
    if (0 == size) {
        return true;
    }
    if (0 != (size & (size - 1)) || size < MCA_BTL_DICOM_MIN_RING) {
        mca_btl_dicom_show(-1, "btl_dicom_%s = %u is not valid: it must be a power of two "
                           "of at least %u bytes, or 0 for the default; the dicom BTL is not "
                           "used", name, size, MCA_BTL_DICOM_MIN_RING);
        return false;
    }
    return true;
}

/* Keep one limit within what a packet can carry; say so if it changes. */
static void mca_btl_dicom_clamp(size_t *limit, size_t max, const char *name)
{
    if (*limit > max) {
        mca_btl_dicom_show(1, "btl_dicom_%s lowered from %zu to %zu bytes: the largest "
                           "packet the mailbox carries is %zu bytes including the %zu-byte "
                           "header", name, *limit, max, max + MCA_BTL_DICOM_HDR_SIZE,
                           MCA_BTL_DICOM_HDR_SIZE);
        *limit = max;
    }
}

static uint64_t mca_btl_dicom_clock_ms(void)
{
    struct timespec ts;

    /* the coarse clock is read from the vDSO: no system call */
    clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
    return (uint64_t) ts.tv_sec * 1000u + (uint64_t) ts.tv_nsec / 1000000u;
}

static void mca_btl_dicom_init_undo(mca_btl_dicom_module_t *m)
{
    if (m->endpoints_ready) {
        OBJ_DESTRUCT(&m->endpoints);
        OBJ_DESTRUCT(&m->lock);
        m->endpoints_ready = false;
    }
    if (NULL != m->mbox) {
        dicom_close(m->mbox);
        m->mbox = NULL;
    }
}

static mca_btl_base_module_t **mca_btl_dicom_component_init(int *num_btls,
                                                            bool enable_progress_threads,
                                                            bool enable_mpi_threads)
{
    mca_btl_dicom_component_t *c = &mca_btl_dicom_component;
    mca_btl_dicom_module_t *m = &mca_btl_dicom_module;
    mca_btl_base_module_t **modules;
    mca_btl_dicom_modex_t modex;
    dicom_open_opts_t opts;
    dicom_mbox_t *mb = NULL;
    size_t max;
    int rc;

    (void) enable_progress_threads;     /* progress is polled; no thread */
    *num_btls = 0;
    c->mpi_threads = enable_mpi_threads;
    if (!mca_btl_dicom_job_selects(c)) {
        return NULL;
    }
    if (!mca_btl_dicom_ring_size_ok(c->inbox_size, "inbox_size") ||
        !mca_btl_dicom_ring_size_ok(c->outbox_size, "outbox_size")) {
        return NULL;
    }

    m->self.job = OPAL_PROC_MY_NAME.jobid;
    m->self.rank = OPAL_PROC_MY_NAME.vpid;

    memset(&opts, 0, sizeof(opts));
    opts.socket_path = (NULL != c->socket_path && '\0' != c->socket_path[0]) ? c->socket_path : NULL;
    opts.inbox_size = c->inbox_size;
    opts.outbox_size = c->outbox_size;
    opts.timeout_ms = (int) c->connect_timeout_ms;
    opts.lazy_rings = !c->populate_rings;
    opts.single_thread = c->single_thread_sends && !enable_mpi_threads;

    rc = dicom_open(m->self, &opts, &mb);
    if (rc >= 0 && NULL == mb) {
        rc = -EIO;              /* success without a mailbox: treat as I/O error */
    }
    if (rc < 0) {
        const char *why = dicom_last_error();
        const char *sock = opts.socket_path ? opts.socket_path : DICOM_DEFAULT_SOCKET;

        if (-ENOENT == rc || -ECONNREFUSED == rc) {
            /* the library's text already names the socket and the cause */
            if (why && *why) {
                MCA_BTL_DICOM_NOTICE("%s: the dicom BTL is not used", why);
            } else {
                MCA_BTL_DICOM_NOTICE("no migrd answers on %s (%s): the dicom BTL is not used",
                                     sock, strerror(-rc));
            }
        } else if (-EADDRINUSE == rc) {
            MCA_BTL_DICOM_NOTICE("rank %u of job %u already has a mailbox on this node (%s): "
                                 "the dicom BTL is not used", m->self.rank, m->self.job,
                                 (why && *why) ? why : strerror(-rc));
        } else {
            MCA_BTL_DICOM_NOTICE("opening the mailbox of rank %u of job %u through %s failed "
                                 "(%s): the dicom BTL is not used", m->self.rank, m->self.job,
                                 sock, (why && *why) ? why : strerror(-rc));
        }
        return NULL;
    }
    m->mbox = mb;
    m->max_payload = dicom_max_payload(mb);

    /* every fragment plus our header must fit in one packet */
    if (m->max_payload < MCA_BTL_DICOM_HDR_SIZE + 1024) {
        mca_btl_dicom_show(-1, "the mailbox carries packets of at most %zu bytes, too small "
                           "for MPI traffic: the dicom BTL is not used", m->max_payload);
        mca_btl_dicom_init_undo(m);
        return NULL;
    }
    max = m->max_payload - MCA_BTL_DICOM_HDR_SIZE;
    mca_btl_dicom_clamp(&m->super.btl_eager_limit, max, "eager_limit");
    mca_btl_dicom_clamp(&m->super.btl_rndv_eager_limit, max, "rndv_eager_limit");
    mca_btl_dicom_clamp(&m->super.btl_max_send_size, max, "max_send_size");
    m->super.btl_flags &= ~(uint32_t) (MCA_BTL_FLAGS_RDMA | MCA_BTL_FLAGS_SEND_INPLACE);
    m->super.btl_flags |= MCA_BTL_FLAGS_SEND;
    (void) mca_btl_base_param_verify(&m->super);

    c->max_frag_size = m->super.btl_eager_limit;
    if (m->super.btl_rndv_eager_limit > c->max_frag_size) {
        c->max_frag_size = m->super.btl_rndv_eager_limit;
    }
    if (m->super.btl_max_send_size > c->max_frag_size) {
        c->max_frag_size = m->super.btl_max_send_size;
    }

    OBJ_CONSTRUCT(&m->lock, opal_mutex_t);
    OBJ_CONSTRUCT(&m->endpoints, opal_hash_table_t);
    m->endpoints_ready = true;
    rc = opal_hash_table_init(&m->endpoints, 256);
    if (OPAL_SUCCESS != rc) {
        mca_btl_dicom_show(-1, "cannot create the endpoint table: %s", opal_strerror(rc));
        mca_btl_dicom_init_undo(m);
        return NULL;
    }

    if (OPAL_SUCCESS != mca_btl_dicom_frag_lists_init()) {
        mca_btl_dicom_init_undo(m);
        return NULL;
    }

    /* publish our address: peers without it are not reachable */
    memset(&modex, 0, sizeof(modex));
    modex.wire_version = MCA_BTL_DICOM_WIRE_VERSION;
    modex.api_version = DICOM_API_VERSION;
    modex.max_payload = (uint32_t) (m->max_payload > UINT32_MAX ? UINT32_MAX : m->max_payload);
    snprintf(modex.node, sizeof(modex.node), "%s", dicom_node_name(mb));
    OPAL_MODEX_SEND(rc, OPAL_PMIX_GLOBAL, &c->super.btl_version, &modex, sizeof(modex));
    if (OPAL_SUCCESS != rc) {
        mca_btl_dicom_show(-1, "publishing the dicom address in the modex failed: %s",
                           opal_strerror(rc));
        mca_btl_dicom_init_undo(m);
        return NULL;
    }

    modules = (mca_btl_base_module_t **) malloc(sizeof(*modules));
    if (NULL == modules) {
        mca_btl_dicom_show(-1, "out of memory in init");
        mca_btl_dicom_init_undo(m);
        return NULL;
    }
    modules[0] = &m->super;
    *num_btls = 1;

    c->next_event_check_ms = mca_btl_dicom_clock_ms() + c->event_interval_ms;
    c->module = m;

    mca_btl_dicom_show(1, "mailbox of rank %u of job %u open through migrd on %s: packets up "
                       "to %zu bytes, eager %zu, rendezvous eager %zu, max send %zu, "
                       "exclusivity %u, zero-copy %s, sends from %s", m->self.rank, m->self.job,
                       dicom_node_name(mb), m->max_payload, m->super.btl_eager_limit,
                       m->super.btl_rndv_eager_limit, m->super.btl_max_send_size,
                       m->super.btl_exclusivity, c->zero_copy ? "on" : "off",
                       opts.single_thread ? "one thread" : "several threads");
    return modules;
}

/* ------------------------------------------------------------ progress --- */

/* Single consumer of the inbox: one thread at a time, never re-entered
 * from a callback (at most one packet may be peeked and not released). */
static inline bool mca_btl_dicom_recv_enter(mca_btl_dicom_component_t *c)
{
    if (opal_using_threads() && 0 != opal_mutex_trylock(&c->recv_lock)) {
        return false;
    }
    if (c->recv_busy) {
        if (opal_using_threads()) {
            opal_mutex_unlock(&c->recv_lock);
        }
        return false;
    }
    c->recv_busy = true;
    return true;
}

static inline void mca_btl_dicom_recv_leave(mca_btl_dicom_component_t *c)
{
    c->recv_busy = false;
    if (opal_using_threads()) {
        opal_mutex_unlock(&c->recv_lock);
    }
}

/* Hand one packet to the callback registered for its tag. */
static void mca_btl_dicom_handle(mca_btl_dicom_module_t *m, const dicom_msg_t *msg)
{
    mca_btl_dicom_component_t *c = &mca_btl_dicom_component;
    const mca_btl_dicom_hdr_t *hdr = (const mca_btl_dicom_hdr_t *) msg->data;
    mca_btl_active_message_callback_t *reg;
    mca_btl_base_segment_t seg;
    mca_btl_base_descriptor_t des;
    mca_btl_base_tag_t tag;
    void *payload;

    if (OPAL_UNLIKELY(MCA_BTL_DICOM_PACKET_TAG != msg->tag)) {
        mca_btl_dicom_show(50, "dropped a packet of %zu bytes with DiCOM tag %#x from rank %u "
                           "of job %u: not a BTL packet", msg->len, (unsigned) msg->tag,
                           msg->src.rank, msg->src.job);
        return;
    }
    if (OPAL_UNLIKELY(msg->len < MCA_BTL_DICOM_HDR_SIZE ||
                      MCA_BTL_DICOM_TYPE_AM != hdr->type ||
                      (size_t) hdr->len != msg->len - MCA_BTL_DICOM_HDR_SIZE)) {
        struct mca_btl_base_endpoint_t *ep = mca_btl_dicom_endpoint_lookup(msg->src);
        mca_btl_dicom_fatal(ep ? ep->proc : NULL, "corrupt packet from rank %u of job %u: "
                            "%zu bytes, header type %u, length %u",
                            msg->src.rank, msg->src.job, msg->len,
                            msg->len >= MCA_BTL_DICOM_HDR_SIZE ? hdr->type : 0u,
                            msg->len >= MCA_BTL_DICOM_HDR_SIZE ? hdr->len : 0u);
        return;
    }

    tag = hdr->tag;
    reg = mca_btl_base_active_message_trigger + tag;
    if (OPAL_UNLIKELY(NULL == reg->cbfunc)) {
        mca_btl_dicom_show(-1, "dropped a packet for BTL tag %u from rank %u of job %u: "
                           "nobody registered that tag", (unsigned) tag, msg->src.rank,
                           msg->src.job);
        return;
    }

    payload = (void *) (hdr + 1);
    if (OPAL_UNLIKELY(0 != ((uintptr_t) payload & 7u) && hdr->len > 0)) {
        /* the PML reads its headers in place: give it an aligned copy */
        if (c->bounce_size < hdr->len) {
            void *p = NULL;
            if (0 != posix_memalign(&p, 64, m->max_payload)) {
                mca_btl_dicom_fatal(NULL, "out of memory for a %zu-byte receive buffer",
                                    m->max_payload);
                return;
            }
            free(c->bounce);
            c->bounce = p;
            c->bounce_size = m->max_payload;
        }
        memcpy(c->bounce, payload, hdr->len);
        payload = c->bounce;
    }

    memset(&des, 0, sizeof(des));
    seg.seg_addr.pval = payload;
    seg.seg_len = hdr->len;
    des.des_segments = &seg;
    des.des_segment_count = 1;
    des.order = MCA_BTL_NO_ORDER;
    reg->cbfunc(&m->super, tag, &des, reg->cbdata);
    MCA_BTL_DICOM_COUNT(received);
}

static int mca_btl_dicom_poll_inbox(mca_btl_dicom_module_t *m)
{
    int count = 0;

    while (count < MCA_BTL_DICOM_MAX_RECV_PER_CALL) {
        dicom_msg_t msg;
        int rc = dicom_peek(m->mbox, &msg);

        if (OPAL_LIKELY(0 == rc)) {
            break;
        }
        if (OPAL_UNLIKELY(rc < 0)) {
            const char *why = dicom_last_error();
            mca_btl_dicom_fatal(NULL, "reading the inbox failed: %s",
                                (why && *why) ? why : strerror(-rc));
            break;
        }
        mca_btl_dicom_handle(m, &msg);
        dicom_release_defer(m->mbox, &msg);
        ++count;
    }
    if (count > 0) {
        /* the burst's room goes back to the senders with one barrier */
        dicom_release_flush(m->mbox);
    }
    return count;
}

void mca_btl_dicom_poll_events(bool force)
{
    mca_btl_dicom_component_t *c = &mca_btl_dicom_component;
    mca_btl_dicom_module_t *m = &mca_btl_dicom_module;
    dicom_event_t ev;
    int rc = 0;

    if (!force) {
        uint64_t now = mca_btl_dicom_clock_ms();
        if (now < c->next_event_check_ms) {
            return;
        }
        c->next_event_check_ms = now + c->event_interval_ms;
    }

    while (NULL != m->mbox && 0 < (rc = dicom_poll_event(m->mbox, &ev))) {
        ev.reason[sizeof(ev.reason) - 1] = '\0';
        switch (ev.type) {
        case DICOM_EV_DAEMON_LOST:
            /* the library's reason already reads "migrd on node X is gone (why)" */
            if (0 == strncmp(ev.reason, "migrd", 5)) {
                mca_btl_dicom_fatal(NULL, "%s: this rank can no longer send or receive",
                                    ev.reason);
            } else {
                mca_btl_dicom_fatal(NULL, "migrd on node %s is gone%s%s%s: this rank can no "
                                    "longer send or receive", dicom_node_name(m->mbox),
                                    ev.reason[0] ? " (" : "", ev.reason,
                                    ev.reason[0] ? ")" : "");
            }
            return;
        case DICOM_EV_UNREACHABLE: {
            struct mca_btl_base_endpoint_t *ep = mca_btl_dicom_endpoint_lookup(ev.addr);
            mca_btl_dicom_fatal(ep ? ep->proc : NULL, "rank %u of job %u unreachable: %s",
                                ev.addr.rank, ev.addr.job,
                                ev.reason[0] ? ev.reason : "no reason given by migrd");
            return;
        }
        default:
            mca_btl_dicom_show(10, "ignored migrd event %d", (int) ev.type);
            break;
        }
    }
    if (OPAL_UNLIKELY(rc < 0 && -EAGAIN != rc && -EINTR != rc)) {
        const char *why = dicom_last_error();
        mca_btl_dicom_fatal(NULL, "asking migrd on node %s for events failed: %s",
                            dicom_node_name(m->mbox), (why && *why) ? why : strerror(-rc));
    }
}

static int mca_btl_dicom_component_progress(void)
{
    mca_btl_dicom_component_t *c = &mca_btl_dicom_component;
    mca_btl_dicom_module_t *m = c->module;
    int count = 0;

    if (OPAL_UNLIKELY(NULL == m)) {
        return 0;
    }
    if (OPAL_UNLIKELY(0 != opal_list_get_size(&c->pending_endpoints))) {
        count += mca_btl_dicom_progress_pending();
    }
    if (!mca_btl_dicom_recv_enter(c)) {
        return count;
    }
    count += mca_btl_dicom_poll_inbox(m);
    if (OPAL_UNLIKELY(0 == (++c->progress_ticks & MCA_BTL_DICOM_TICK_MASK))) {
        mca_btl_dicom_poll_events(false);
    }
    mca_btl_dicom_recv_leave(c);
    /* Spinning while the relay works for us only slows it down when it
     * shares our core: give it the CPU (no system call otherwise). */
    if (0 == count && c->yield_to_relay && dicom_relay_pending(m->mbox)) {
        sched_yield();
    }
    return count;
}
