/* -*- Mode: C; c-basic-offset:4 ; indent-tabs-mode:nil -*- */
/*
 * btl_dicom_frag.h -- send descriptors ("fragments") of the BTL `dicom` and
 * the header every packet carries.
 *
 * A fragment is one of two kinds:
 *   RING:   its segment points straight into a reservation in the
 *           destination's inbox (or our outbox) made with
 *           dicom_send_reserve(); ob1 packs into it and btl_send commits.
 *           This is the zero-extra-copy path (one copy on each side).
 *   BUFFER: its segment points into a buffer of a free list; btl_send copies
 *           it with dicom_send(), or queues it on the endpoint when there is
 *           no room and progress sends it later.  Used when the ring has no
 *           room at alloc time, when fragments are already queued for the
 *           peer (to keep order), or with btl_dicom_zero_copy = false.
 *
 * Packet layout: mca_btl_dicom_hdr_t (8 bytes) then the segment's bytes, so
 * the payload keeps the 8-byte alignment of the packet.
 */
#ifndef MCA_BTL_DICOM_FRAG_H
#define MCA_BTL_DICOM_FRAG_H

#include "btl_dicom.h"

BEGIN_C_DECLS

/* Header in front of every packet. */
typedef struct mca_btl_dicom_hdr_t {
    uint8_t tag;        /* BTL active-message tag (mca_btl_base_tag_t)   */
    uint8_t type;       /* MCA_BTL_DICOM_TYPE_*                          */
    uint16_t reserved;  /* 0                                             */
    uint32_t len;       /* bytes after the header (checked on receipt)   */
} mca_btl_dicom_hdr_t;

#define MCA_BTL_DICOM_HDR_SIZE   sizeof(mca_btl_dicom_hdr_t)
#define MCA_BTL_DICOM_TYPE_AM    1   /* active message for tag `tag`      */

enum mca_btl_dicom_frag_kind {
    MCA_BTL_DICOM_FRAG_RING = 1,
    MCA_BTL_DICOM_FRAG_BUFFER = 2,
};

typedef struct mca_btl_dicom_frag_t {
    mca_btl_base_descriptor_t base;
    mca_btl_base_segment_t segments[1];
    struct mca_btl_base_endpoint_t *endpoint;
    mca_btl_dicom_hdr_t *hdr;       /* in the ring or in `buffer`          */
    void *buffer;                   /* BUFFER: free-list payload, else NULL*/
    opal_free_list_t *my_list;
    enum mca_btl_dicom_frag_kind kind;
    bool reserved;                  /* RING: reservation not yet committed */
    dicom_txn_t txn;                /* RING: the reservation               */
} mca_btl_dicom_frag_t;

OBJ_CLASS_DECLARATION(mca_btl_dicom_frag_t);

/* Set up the three free lists (sizes from the module's limits); they are
 * constructed in component open and destructed in component close. */
int mca_btl_dicom_frag_lists_init(void);

/* Get a descriptor whose segment has room for `size` bytes to `ep`.  Tries
 * a ring reservation first (when allowed); else a buffer.  Returns NULL when
 * neither is available now (the caller reports OUT_OF_RESOURCE), or on a
 * hard DiCOM error (reported here). */
mca_btl_dicom_frag_t *mca_btl_dicom_frag_alloc(struct mca_btl_base_endpoint_t *ep,
                                               size_t size, uint32_t flags);

/* Give a descriptor back; cancels an uncommitted reservation. */
void mca_btl_dicom_frag_return(mca_btl_dicom_frag_t *frag);

/* The data of `frag` has left: do what send completion requires of a
 * send that returned 1 (callback only with ALWAYS_CALLBACK, then free if the
 * BTL owns it). */
static inline void mca_btl_dicom_frag_complete_inline(mca_btl_dicom_frag_t *frag)
{
    uint32_t flags = frag->base.des_flags;     /* the callback may free it */

    if ((flags & MCA_BTL_DES_SEND_ALWAYS_CALLBACK) && NULL != frag->base.des_cbfunc) {
        frag->base.des_cbfunc(&mca_btl_dicom_module.super, frag->endpoint,
                              &frag->base, OPAL_SUCCESS);
    }
    if (flags & MCA_BTL_DES_FLAGS_BTL_OWNERSHIP) {
        mca_btl_dicom_frag_return(frag);
    }
}

/* A queued fragment (send returned 0) has left or failed: the callback is
 * always due, then free if the BTL owns it. */
static inline void mca_btl_dicom_frag_complete_queued(mca_btl_dicom_frag_t *frag, int status)
{
    uint32_t flags = frag->base.des_flags;

    if (NULL != frag->base.des_cbfunc) {
        frag->base.des_cbfunc(&mca_btl_dicom_module.super, frag->endpoint,
                              &frag->base, status);
    }
    if (flags & MCA_BTL_DES_FLAGS_BTL_OWNERSHIP) {
        mca_btl_dicom_frag_return(frag);
    }
}

END_C_DECLS

#endif /* MCA_BTL_DICOM_FRAG_H */
