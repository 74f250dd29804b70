/* -*- Mode: C; c-basic-offset:4 ; indent-tabs-mode:nil -*- */
/*
 * btl_dicom.h -- the BTL `dicom`: Open MPI's byte transfer layer over the
 * DiCOM postal protocol of migr (see doc/ARCHITECTURE.md, "A packet").
 *
 * This header owns the shapes shared by all files of the component:
 *   - the component (MCA parameters, descriptor free lists, the list of
 *     endpoints with queued fragments, receive-side state);
 *   - the module (one per process: it owns the DiCOM mailbox, the endpoint
 *     table and the error callback of the PML);
 *   - the modex blob every process publishes and the wire constants;
 *   - the prototypes of the functions the files call across.
 *
 * Every peer is reached through the postal service, wherever it runs: the
 * BTL addresses (job, rank), never a node, so communication survives moves.
 */
#ifndef MCA_BTL_DICOM_H
#define MCA_BTL_DICOM_H

#include "opal_config.h"

#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>

#include "opal/class/opal_free_list.h"
#include "opal/class/opal_hash_table.h"
#include "opal/class/opal_list.h"
#include "opal/mca/btl/btl.h"
#include "opal/mca/btl/base/base.h"
#include "opal/threads/mutex.h"
#include "opal/util/output.h"

#include <migr/dicom.h>

BEGIN_C_DECLS

/* ------------------------------------------------------------ wire --- */

/* DiCOM packet tag of every packet this BTL sends.  The BTL's own
 * active-message tag travels in the fragment header (mca_btl_dicom_hdr_t),
 * because alloc/prepare_src reserve ring space before the tag is known. */
#define MCA_BTL_DICOM_PACKET_TAG 0xb710

/* Version of the wire format (fragment header + modex blob).  Peers that
 * publish another version are not reachable through this BTL. */
#define MCA_BTL_DICOM_WIRE_VERSION 1

/* Default exclusivity: above every other BTL that can reach a peer on
 * another process (vader and self use MCA_BTL_EXCLUSIVITY_HIGH, tcp uses
 * LOW + 100).  A rank that talks to a peer through vader's shared segments
 * could not be moved, so in a job that selected dicom (btl_dicom_select)
 * it takes every peer; self still carries a process's messages to itself
 * because dicom never claims its own process in add_procs. */
#define MCA_BTL_DICOM_EXCLUSIVITY (MCA_BTL_EXCLUSIVITY_HIGH + 1)

/* btl_dicom_select: which jobs the component makes a module for. */
typedef enum {
    MCA_BTL_DICOM_SELECT_AUTO,      /* named in the btl parameter, or odls migr */
    MCA_BTL_DICOM_SELECT_ALWAYS,    /* every job, whenever a migrd answers       */
    MCA_BTL_DICOM_SELECT_NEVER      /* none                                      */
} mca_btl_dicom_select_t;

/* What a process publishes in the modex (OPAL_PMIX_GLOBAL). */
typedef struct mca_btl_dicom_modex_t {
    uint16_t wire_version;    /* MCA_BTL_DICOM_WIRE_VERSION               */
    uint16_t api_version;     /* DICOM_API_VERSION of the publisher       */
    uint32_t max_payload;     /* largest packet its inbox accepts         */
    char node[64];            /* node of its migrd at MPI_Init (messages) */
} mca_btl_dicom_modex_t;

/* ------------------------------------------------------- component --- */

struct mca_btl_dicom_module_t;

typedef struct mca_btl_dicom_component_t {
    mca_btl_base_component_3_0_0_t super;

    /* MCA parameters (component level; the base registers the limits) */
    char *socket_path;              /* migrd control socket                */
    unsigned int inbox_size;        /* bytes, power of two, 0: library's   */
    unsigned int outbox_size;       /* bytes, power of two, 0: library's   */
    unsigned int connect_timeout_ms;/* dicom_open timeout, 0: library's    */
    int verbose;                    /* verbosity of `output`               */
    unsigned int event_interval_ms; /* how often progress asks for events  */
    bool zero_copy;                 /* reserve in the ring in alloc/prepare*/
    bool populate_rings;            /* dicom_open_opts_t.lazy_rings = !it  */
    bool single_thread_sends;       /* dicom_open_opts_t.single_thread, but
                                       never with MPI_THREAD_MULTIPLE      */
    bool yield_to_relay;            /* idle progress yields to a busy migrd */
    int free_list_num;
    int free_list_max;
    int free_list_inc;
    int select;                     /* mca_btl_dicom_select_t              */

    /* state */
    int output;                     /* opal_output stream, prefix btl:dicom*/
    bool requested;                 /* the job asked for dicom: named in the
                                       btl parameter or launched by odls migr */
    bool mpi_threads;               /* MPI_THREAD_MULTIPLE                 */
    struct mca_btl_dicom_module_t *module; /* NULL until init succeeded    */

    /* descriptors: ring reservations (no buffer), eager and max buffers */
    opal_free_list_t frags_ring;
    opal_free_list_t frags_eager;
    opal_free_list_t frags_max;
    size_t max_frag_size;           /* largest alloc/prepare size accepted */

    /* endpoints whose queue holds fragments that found no room yet; the
     * lock also protects every endpoint's queue (slow path only) */
    opal_mutex_t pending_lock;
    opal_list_t pending_endpoints;

    /* receive side (single consumer): trylock + re-entrancy guard */
    opal_mutex_t recv_lock;
    bool recv_busy;
    void *bounce;                   /* aligned copy of a misaligned packet */
    size_t bounce_size;

    /* counters, shown by btl_dump and at finalize (verbosity 10) */
    struct {
        volatile int64_t sendi;      /* packed straight into a ring      */
        volatile int64_t zero_copy;  /* alloc/prepare reservations sent  */
        volatile int64_t buffered;   /* buffer copied at send time       */
        volatile int64_t queued;     /* buffer that had to wait for room */
        volatile int64_t received;   /* packets handed to the PML        */
    } count;

    /* daemon events */
    unsigned int progress_ticks;
    uint64_t next_event_check_ms;
    volatile bool fatal_reported;
} mca_btl_dicom_component_t;

OPAL_MODULE_DECLSPEC extern mca_btl_dicom_component_t mca_btl_dicom_component;

/* ---------------------------------------------------------- module --- */

typedef struct mca_btl_dicom_module_t {
    mca_btl_base_module_t super;
    dicom_mbox_t *mbox;             /* our mailbox, NULL after finalize    */
    dicom_addr_t self;              /* our address (jobid, vpid)           */
    size_t max_payload;             /* dicom_max_payload(mbox)             */
    opal_mutex_t lock;              /* protects `endpoints`                */
    opal_hash_table_t endpoints;    /* (job << 32 | rank) -> endpoint      */
    bool endpoints_ready;
    mca_btl_base_module_error_cb_fn_t error_cb;
} mca_btl_dicom_module_t;

extern mca_btl_dicom_module_t mca_btl_dicom_module;

/* --------------------------------------------------------- helpers --- */

/* level < 0: always printed (stream 0); otherwise at that verbosity on the
 * component's stream.  Adds host and process name. */
void mca_btl_dicom_show(int level, const char *fmt, ...)
    __opal_attribute_format__(__printf__, 2, 3);

/* A notice that is printed by default only when the job asked for dicom
 * (why dicom is not used), else at verbosity 1. */
#define MCA_BTL_DICOM_NOTICE(...)                                          \
    mca_btl_dicom_show(mca_btl_dicom_component.requested ? -1 : 1, __VA_ARGS__)

static inline uint64_t mca_btl_dicom_addr_key(dicom_addr_t a)
{
    return ((uint64_t) a.job << 32) | a.rank;
}

/* Report a fatal condition through the PML's error callback (or, without
 * one, print and abort the job).  `proc` may be NULL.  Reported once. */
void mca_btl_dicom_fatal(struct opal_proc_t *proc, const char *fmt, ...)
    __opal_attribute_format__(__printf__, 2, 3);

/* --------------------------------------------------- module functions --- */

int mca_btl_dicom_add_procs(struct mca_btl_base_module_t *btl, size_t nprocs,
                            struct opal_proc_t **procs,
                            struct mca_btl_base_endpoint_t **peers,
                            struct opal_bitmap_t *reachable);
int mca_btl_dicom_del_procs(struct mca_btl_base_module_t *btl, size_t nprocs,
                            struct opal_proc_t **procs,
                            struct mca_btl_base_endpoint_t **peers);
int mca_btl_dicom_finalize(struct mca_btl_base_module_t *btl);
mca_btl_base_descriptor_t *mca_btl_dicom_alloc(struct mca_btl_base_module_t *btl,
                                               struct mca_btl_base_endpoint_t *endpoint,
                                               uint8_t order, size_t size, uint32_t flags);
int mca_btl_dicom_free(struct mca_btl_base_module_t *btl, mca_btl_base_descriptor_t *des);
mca_btl_base_descriptor_t *mca_btl_dicom_prepare_src(struct mca_btl_base_module_t *btl,
                                                     struct mca_btl_base_endpoint_t *endpoint,
                                                     struct opal_convertor_t *convertor,
                                                     uint8_t order, size_t reserve,
                                                     size_t *size, uint32_t flags);
int mca_btl_dicom_send(struct mca_btl_base_module_t *btl,
                       struct mca_btl_base_endpoint_t *endpoint,
                       struct mca_btl_base_descriptor_t *des, mca_btl_base_tag_t tag);
int mca_btl_dicom_sendi(struct mca_btl_base_module_t *btl,
                        struct mca_btl_base_endpoint_t *endpoint,
                        struct opal_convertor_t *convertor, void *header,
                        size_t header_size, size_t payload_size, uint8_t order,
                        uint32_t flags, mca_btl_base_tag_t tag,
                        mca_btl_base_descriptor_t **descriptor);
int mca_btl_dicom_register_error(struct mca_btl_base_module_t *btl,
                                 mca_btl_base_module_error_cb_fn_t cbfunc);
void mca_btl_dicom_dump(struct mca_btl_base_module_t *btl,
                        struct mca_btl_base_endpoint_t *endpoint, int verbose);

/* Send queued fragments that now find room (called from progress).
 * Returns the number of fragments completed. */
int mca_btl_dicom_progress_pending(void);

/* Ask migrd for events (daemon lost, peer unreachable) and report them as
 * fatal.  Without `force`, only when event_interval_ms has passed since the
 * last time.  Called from progress, and before a failed send is reported,
 * so that the report names the cause. */
void mca_btl_dicom_poll_events(bool force);

/* Print the counters (level as for mca_btl_dicom_show). */
void mca_btl_dicom_show_counts(int level);

/* Count an event in mca_btl_dicom_component.count. */
#define MCA_BTL_DICOM_COUNT(field) \
    ((void) OPAL_THREAD_ADD_FETCH64(&mca_btl_dicom_component.count.field, 1))

/* Look up the endpoint of a DiCOM address (NULL if unknown). */
struct mca_btl_base_endpoint_t *mca_btl_dicom_endpoint_lookup(dicom_addr_t addr);

END_C_DECLS

#endif /* MCA_BTL_DICOM_H */
