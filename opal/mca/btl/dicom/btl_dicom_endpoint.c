/* -*- Mode: C; c-basic-offset:4 ; indent-tabs-mode:nil -*- */
/*
 * btl_dicom_endpoint.c -- the endpoint class of the BTL `dicom`: creation
 * from a peer's modex blob and the per-peer queue of fragments waiting for
 * room (see btl_dicom_endpoint.h).
 */
#include "opal_config.h"

#include <string.h>

#include "opal/util/proc.h"

#include "btl_dicom.h"
#include "btl_dicom_endpoint.h"
#include "btl_dicom_frag.h"

static void mca_btl_dicom_endpoint_construct(mca_btl_dicom_endpoint_t *ep)
{
    ep->proc = NULL;
    ep->addr.job = 0;
    ep->addr.rank = 0;
    ep->peer_max_payload = 0;
    ep->peer_node[0] = '\0';
    OBJ_CONSTRUCT(&ep->pending, opal_list_t);
    ep->waiting = false;
}

static void mca_btl_dicom_endpoint_destruct(mca_btl_dicom_endpoint_t *ep)
{
    OBJ_DESTRUCT(&ep->pending);
}

OBJ_CLASS_INSTANCE(mca_btl_dicom_endpoint_t, opal_list_item_t,
                   mca_btl_dicom_endpoint_construct, mca_btl_dicom_endpoint_destruct);

mca_btl_dicom_endpoint_t *mca_btl_dicom_endpoint_create(struct opal_proc_t *proc,
                                                        const mca_btl_dicom_modex_t *modex)
{
    mca_btl_dicom_endpoint_t *ep = OBJ_NEW(mca_btl_dicom_endpoint_t);

    if (OPAL_UNLIKELY(NULL == ep)) {
        mca_btl_dicom_show(-1, "out of memory creating the endpoint of %s",
                           OPAL_NAME_PRINT(proc->proc_name));
        return NULL;
    }
    ep->proc = proc;
    ep->addr.job = proc->proc_name.jobid;
    ep->addr.rank = proc->proc_name.vpid;
    ep->peer_max_payload = modex->max_payload;
    memcpy(ep->peer_node, modex->node, sizeof(ep->peer_node));
    ep->peer_node[sizeof(ep->peer_node) - 1] = '\0';
    return ep;
}

void mca_btl_dicom_endpoint_enqueue(mca_btl_dicom_endpoint_t *ep, opal_list_item_t *frag)
{
    mca_btl_dicom_component_t *c = &mca_btl_dicom_component;

    OPAL_THREAD_LOCK(&c->pending_lock);
    opal_list_append(&ep->pending, frag);
    if (!ep->waiting) {
        ep->waiting = true;
        opal_list_append(&c->pending_endpoints, &ep->super);
    }
    OPAL_THREAD_UNLOCK(&c->pending_lock);
}

int mca_btl_dicom_endpoint_flush_drop(mca_btl_dicom_endpoint_t *ep)
{
    mca_btl_dicom_component_t *c = &mca_btl_dicom_component;
    opal_list_t dropped;
    opal_list_item_t *item;
    int n = 0;

    OBJ_CONSTRUCT(&dropped, opal_list_t);
    OPAL_THREAD_LOCK(&c->pending_lock);
    if (ep->waiting) {
        opal_list_remove_item(&c->pending_endpoints, &ep->super);
        ep->waiting = false;
    }
    opal_list_join(&dropped, opal_list_get_end(&dropped), &ep->pending);
    OPAL_THREAD_UNLOCK(&c->pending_lock);

    while (NULL != (item = opal_list_remove_first(&dropped))) {
        mca_btl_dicom_frag_t *frag = (mca_btl_dicom_frag_t *) item;
        /* the peer is being deleted: no callback (it would run on a proc
         * the PML is tearing down), and since no callback comes the PML
         * never frees the descriptor either, whoever owns it */
        mca_btl_dicom_frag_return(frag);
        ++n;
    }
    OBJ_DESTRUCT(&dropped);
    return n;
}
