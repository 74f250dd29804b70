/* -*- Mode: C; c-basic-offset:4 ; indent-tabs-mode:nil -*- */
/*
 * btl_dicom_endpoint.h -- what the BTL `dicom` knows about one peer.
 *
 * An endpoint owns the peer's DiCOM address (job, rank) -- the only thing
 * needed to reach it, wherever it runs -- and the FIFO of fragments that
 * found no room in the peer's inbox (or in our outbox) when they were sent.
 * While that FIFO is not empty the endpoint sits on the component's
 * `pending_endpoints` list and progress retries it; new sends to the peer
 * then queue behind it so that the peer sees them in send order.
 */
#ifndef MCA_BTL_DICOM_ENDPOINT_H
#define MCA_BTL_DICOM_ENDPOINT_H

#include "btl_dicom.h"

BEGIN_C_DECLS

typedef struct mca_btl_base_endpoint_t {
    opal_list_item_t super;        /* link in pending_endpoints            */
    struct opal_proc_t *proc;      /* the peer (not retained: owned by PML)*/
    dicom_addr_t addr;             /* where packets go                     */
    size_t peer_max_payload;       /* from the peer's modex                */
    char peer_node[64];            /* node of the peer at MPI_Init         */

    /* both protected by mca_btl_dicom_component.pending_lock */
    opal_list_t pending;           /* fragments waiting for room, in order */
    bool waiting;                  /* on the component's pending list      */
} mca_btl_base_endpoint_t;

typedef mca_btl_base_endpoint_t mca_btl_dicom_endpoint_t;
OBJ_CLASS_DECLARATION(mca_btl_dicom_endpoint_t);

/* Build an endpoint from a peer's modex blob. */
mca_btl_dicom_endpoint_t *mca_btl_dicom_endpoint_create(struct opal_proc_t *proc,
                                                        const mca_btl_dicom_modex_t *modex);

/* True when fragments are queued for this peer (unlocked read: a hint). */
static inline bool mca_btl_dicom_endpoint_has_pending(mca_btl_dicom_endpoint_t *ep)
{
    return 0 != opal_list_get_size(&ep->pending);
}

/* Queue a fragment at the tail (takes the component's pending lock; puts
 * the endpoint on the component's pending list when it was not there). */
void mca_btl_dicom_endpoint_enqueue(mca_btl_dicom_endpoint_t *ep, opal_list_item_t *frag);

/* Remove the endpoint from the component's pending list and give back
 * every queued fragment without sending it.  Returns how many it dropped. */
int mca_btl_dicom_endpoint_flush_drop(mca_btl_dicom_endpoint_t *ep);

END_C_DECLS

#endif /* MCA_BTL_DICOM_ENDPOINT_H */
