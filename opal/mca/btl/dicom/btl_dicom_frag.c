/* -*- Mode: C; c-basic-offset:4 ; indent-tabs-mode:nil -*- */
/*
 * btl_dicom_frag.c -- the descriptor class and the three free lists of the
 * BTL `dicom`, and the choice between a ring reservation and a buffer when
 * a send descriptor is needed (see btl_dicom_frag.h for the two kinds).
 */
#include "opal_config.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "opal/runtime/opal.h"
#include "opal/util/error.h"

#include "btl_dicom.h"
#include "btl_dicom_endpoint.h"
#include "btl_dicom_frag.h"

/* Open MPI itself is built with -mcx16, so the lock-free path of
 * opal_free_list_get/return inlines a 16-byte compare-and-swap.  Compiled
 * without that flag the compiler emits a call to
 * __sync_val_compare_and_swap_16 instead, which no library provides: the
 * component would load and then die in its first multi-threaded job.  In
 * that case take the list's lock around the single-threaded variants. */
#if OPAL_HAVE_ATOMIC_COMPARE_EXCHANGE_128 && !defined(__GCC_HAVE_SYNC_COMPARE_AND_SWAP_16)
#define MCA_BTL_DICOM_LOCKED_FREE_LISTS 1
#else
#define MCA_BTL_DICOM_LOCKED_FREE_LISTS 0
#endif

static inline mca_btl_dicom_frag_t *mca_btl_dicom_list_get(opal_free_list_t *list)
{
#if MCA_BTL_DICOM_LOCKED_FREE_LISTS
    opal_free_list_item_t *item;

    OPAL_THREAD_LOCK(&list->fl_lock);
    item = opal_free_list_get_st(list);
    OPAL_THREAD_UNLOCK(&list->fl_lock);
    return (mca_btl_dicom_frag_t *) item;
#else
    return (mca_btl_dicom_frag_t *) opal_free_list_get(list);
#endif
}

static inline void mca_btl_dicom_list_return(opal_free_list_t *list, mca_btl_dicom_frag_t *frag)
{
#if MCA_BTL_DICOM_LOCKED_FREE_LISTS
    OPAL_THREAD_LOCK(&list->fl_lock);
    opal_free_list_return_st(list, &frag->base.super);
    OPAL_THREAD_UNLOCK(&list->fl_lock);
#else
    opal_free_list_return(list, &frag->base.super);
#endif
}

static void mca_btl_dicom_frag_construct(mca_btl_dicom_frag_t *frag)
{
    frag->base.des_segments = frag->segments;
    frag->base.des_segment_count = 1;
    frag->endpoint = NULL;
    frag->hdr = NULL;
    frag->buffer = NULL;
    frag->my_list = NULL;
    frag->kind = MCA_BTL_DICOM_FRAG_BUFFER;
    frag->reserved = false;
    memset(&frag->txn, 0, sizeof(frag->txn));
}

OBJ_CLASS_INSTANCE(mca_btl_dicom_frag_t, mca_btl_base_descriptor_t,
                   mca_btl_dicom_frag_construct, NULL);

/* Called by the free list for every new item, after its buffer is set. */
static int mca_btl_dicom_frag_item_init(opal_free_list_item_t *item, void *ctx)
{
    mca_btl_dicom_frag_t *frag = (mca_btl_dicom_frag_t *) item;
    opal_free_list_t *list = (opal_free_list_t *) ctx;

    frag->my_list = list;
    if (list == &mca_btl_dicom_component.frags_ring) {
        frag->kind = MCA_BTL_DICOM_FRAG_RING;
        frag->buffer = NULL;
    } else {
        frag->kind = MCA_BTL_DICOM_FRAG_BUFFER;
        frag->buffer = item->ptr;
    }
    return OPAL_SUCCESS;
}

static int mca_btl_dicom_frag_list_init(opal_free_list_t *list, size_t buffer_size,
                                        int num, int max, int inc, const char *what)
{
    int rc;

    rc = opal_free_list_init(list, sizeof(mca_btl_dicom_frag_t), opal_cache_line_size,
                             OBJ_CLASS(mca_btl_dicom_frag_t), buffer_size,
                             buffer_size ? opal_cache_line_size : 0, num, max, inc,
                             NULL, 0, NULL, mca_btl_dicom_frag_item_init, list);
    if (OPAL_SUCCESS != rc) {
        mca_btl_dicom_show(-1, "cannot create the free list of %s descriptors "
                           "(%d of %zu bytes): %s", what, num, buffer_size,
                           opal_strerror(rc));
    }
    return rc;
}

int mca_btl_dicom_frag_lists_init(void)
{
    mca_btl_dicom_component_t *c = &mca_btl_dicom_component;
    size_t eager = mca_btl_dicom_module.super.btl_eager_limit;
    int rc;

    rc = mca_btl_dicom_frag_list_init(&c->frags_ring, 0, c->free_list_num, -1,
                                      c->free_list_inc, "ring");
    if (OPAL_SUCCESS != rc) {
        return rc;
    }
    rc = mca_btl_dicom_frag_list_init(&c->frags_eager, MCA_BTL_DICOM_HDR_SIZE + eager,
                                      c->free_list_num, c->free_list_max,
                                      c->free_list_inc, "eager");
    if (OPAL_SUCCESS != rc) {
        return rc;
    }
    /* max-size buffers are big: start with none, grow a few at a time */
    rc = mca_btl_dicom_frag_list_init(&c->frags_max, MCA_BTL_DICOM_HDR_SIZE + c->max_frag_size,
                                      0, c->free_list_max, 4, "max-send");
    return rc;
}

/* A hard error of the DiCOM library while getting room for a send. */
static void mca_btl_dicom_frag_reserve_failed(struct mca_btl_base_endpoint_t *ep,
                                              size_t size, int rc)
{
    const char *why = dicom_last_error();
    char saved[256];

    /* a lost daemon or an unreachable peer is the better explanation */
    snprintf(saved, sizeof(saved), "%s", (why && *why) ? why : strerror(-rc));
    mca_btl_dicom_poll_events(true);
    mca_btl_dicom_fatal(ep->proc, "reserving %zu bytes in the mailbox of rank %u of "
                        "job %u failed: %s", size, ep->addr.rank, ep->addr.job, saved);
}

mca_btl_dicom_frag_t *mca_btl_dicom_frag_alloc(struct mca_btl_base_endpoint_t *ep,
                                               size_t size, uint32_t flags)
{
    mca_btl_dicom_component_t *c = &mca_btl_dicom_component;
    mca_btl_dicom_module_t *m = &mca_btl_dicom_module;
    mca_btl_dicom_frag_t *frag = NULL;
    opal_free_list_t *list;

    if (OPAL_UNLIKELY(size > c->max_frag_size || NULL == m->mbox)) {
        return NULL;
    }

    /* zero-copy: straight into the destination's ring, unless fragments are
     * already queued for the peer (they must leave first) */
    if (c->zero_copy && !mca_btl_dicom_endpoint_has_pending(ep)) {
        frag = mca_btl_dicom_list_get(&c->frags_ring);
        if (OPAL_LIKELY(NULL != frag)) {
            int rc = dicom_send_reserve(m->mbox, ep->addr, MCA_BTL_DICOM_PACKET_TAG,
                                        MCA_BTL_DICOM_HDR_SIZE + size, &frag->txn);
            if (OPAL_LIKELY(0 == rc)) {
                frag->hdr = (mca_btl_dicom_hdr_t *) frag->txn.data;
                frag->reserved = true;
                goto ready;
            }
            mca_btl_dicom_list_return(&c->frags_ring, frag);
            frag = NULL;
            if (-EAGAIN != rc) {
                mca_btl_dicom_frag_reserve_failed(ep, MCA_BTL_DICOM_HDR_SIZE + size, rc);
                return NULL;
            }
        }
    }

    /* no room now (or zero-copy off): a buffer, sent or queued by btl_send */
    list = (size <= m->super.btl_eager_limit) ? &c->frags_eager : &c->frags_max;
    frag = mca_btl_dicom_list_get(list);
    if (OPAL_UNLIKELY(NULL == frag)) {
        return NULL;
    }
    frag->hdr = (mca_btl_dicom_hdr_t *) frag->buffer;

ready:
    frag->endpoint = ep;
    frag->hdr->tag = 0;
    frag->hdr->type = MCA_BTL_DICOM_TYPE_AM;
    frag->hdr->reserved = 0;
    frag->hdr->len = (uint32_t) size;
    frag->segments[0].seg_addr.pval = (void *) (frag->hdr + 1);
    frag->segments[0].seg_len = size;
    frag->base.des_segment_count = 1;
    frag->base.des_flags = flags;
    frag->base.des_cbfunc = NULL;
    frag->base.des_cbdata = NULL;
    frag->base.order = MCA_BTL_NO_ORDER;
    return frag;
}

void mca_btl_dicom_frag_return(mca_btl_dicom_frag_t *frag)
{
    if (frag->reserved) {
        /* a sequence number was taken: the library sends a filler */
        dicom_send_cancel(mca_btl_dicom_module.mbox, &frag->txn);
        frag->reserved = false;
    }
    frag->endpoint = NULL;
    frag->hdr = NULL;
    mca_btl_dicom_list_return(frag->my_list, frag);
}
