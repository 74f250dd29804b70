/* -*- Mode: C; c-basic-offset:4 ; indent-tabs-mode:nil -*- */
/*
 * btl_dicom_module.c -- the module functions of the BTL `dicom`: which
 * peers it reaches (add/del procs), the send path (sendi, alloc,
 * prepare_src, send, free), the queue of sends that found no room, error
 * reporting to the PML, and finalize.
 *
 * Send path.  sendi packs ob1's header and payload straight into a ring
 * reservation (dicom_send_reserve .. dicom_send_commit) after checking for
 * room.  alloc and prepare_src also hand out ring reservations when there
 * is room, so that ob1 packs in place and btl_send only commits: one copy
 * on the sender, one on the receiver.  When there is no room they hand out
 * a free-list buffer instead; btl_send copies it with dicom_send() or, if
 * still no room, queues it on the endpoint (returning 0, callback later from
 * progress).  While fragments are queued for a peer every new send to it
 * takes the buffer path, so the peer receives them in order.
 */
#include "opal_config.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "opal/class/opal_bitmap.h"
#include "opal/datatype/opal_convertor.h"
#include "opal/mca/pmix/pmix.h"
#include "opal/util/proc.h"

#include "btl_dicom.h"
#include "btl_dicom_endpoint.h"
#include "btl_dicom_frag.h"

/* How long del_procs/finalize keep trying to send queued fragments. */
#define MCA_BTL_DICOM_FINALIZE_FLUSH_MS 2000

mca_btl_dicom_module_t mca_btl_dicom_module = {
    .super = {
        .btl_component = &mca_btl_dicom_component.super,
        .btl_add_procs = mca_btl_dicom_add_procs,
        .btl_del_procs = mca_btl_dicom_del_procs,
        .btl_finalize = mca_btl_dicom_finalize,
        .btl_alloc = mca_btl_dicom_alloc,
        .btl_free = mca_btl_dicom_free,
        .btl_prepare_src = mca_btl_dicom_prepare_src,
        .btl_send = mca_btl_dicom_send,
        .btl_sendi = mca_btl_dicom_sendi,
        .btl_dump = mca_btl_dicom_dump,
        .btl_register_error = mca_btl_dicom_register_error,
    },
};

/* ----------------------------------------------------------- messages --- */

static const char *mca_btl_dicom_my_name(void)
{
    return OPAL_NAME_PRINT(OPAL_PROC_MY_NAME);
}

static const char *mca_btl_dicom_my_node(void)
{
    mca_btl_dicom_module_t *m = &mca_btl_dicom_module;

    if (NULL != m->mbox) {
        return dicom_node_name(m->mbox);
    }
    return opal_process_info.nodename ? opal_process_info.nodename : "?";
}

void mca_btl_dicom_show(int level, const char *fmt, ...)
{
    char *msg = NULL;
    va_list ap;
    int n;

    va_start(ap, fmt);
    n = vasprintf(&msg, fmt, ap);
    va_end(ap);
    if (n < 0 || NULL == msg) {
        return;
    }
    if (level < 0) {
        opal_output(0, "btl:dicom: %s on %s: %s", mca_btl_dicom_my_name(),
                    mca_btl_dicom_my_node(), msg);
    } else {
        opal_output_verbose(level, mca_btl_dicom_component.output,
                            "btl:dicom: %s on %s: %s", mca_btl_dicom_my_name(),
                            mca_btl_dicom_my_node(), msg);
    }
    free(msg);
}

void mca_btl_dicom_fatal(struct opal_proc_t *proc, const char *fmt, ...)
{
    mca_btl_dicom_component_t *c = &mca_btl_dicom_component;
    mca_btl_dicom_module_t *m = &mca_btl_dicom_module;
    char *msg = NULL, *full = NULL;
    va_list ap;
    int n;

    if (c->fatal_reported) {
        return;                 /* the job is already being torn down */
    }
    c->fatal_reported = true;

    va_start(ap, fmt);
    n = vasprintf(&msg, fmt, ap);
    va_end(ap);
    if (n < 0 || NULL == msg) {
        msg = NULL;
    }
    if (asprintf(&full, "btl:dicom: %s on %s: %s", mca_btl_dicom_my_name(),
                 mca_btl_dicom_my_node(), msg ? msg : fmt) < 0) {
        full = NULL;
    }

    if (NULL != m->error_cb) {
        /* ob1 prints the text and aborts the job */
        m->error_cb(&m->super, MCA_BTL_ERROR_FLAGS_FATAL, proc,
                    full ? full : (char *) "btl:dicom: fatal error");
    } else {
        opal_output(0, "%s", full ? full : fmt);
        if (NULL != opal_pmix.abort) {
            (void) opal_pmix.abort(1, full ? full : fmt, NULL);
        }
        abort();
    }
    free(msg);
    free(full);
}

/* ----------------------------------------------------------- endpoints --- */

struct mca_btl_base_endpoint_t *mca_btl_dicom_endpoint_lookup(dicom_addr_t addr)
{
    mca_btl_dicom_module_t *m = &mca_btl_dicom_module;
    void *value = NULL;

    if (!m->endpoints_ready) {
        return NULL;
    }
    OPAL_THREAD_LOCK(&m->lock);
    if (OPAL_SUCCESS != opal_hash_table_get_value_uint64(&m->endpoints,
                                                         mca_btl_dicom_addr_key(addr), &value)) {
        value = NULL;
    }
    OPAL_THREAD_UNLOCK(&m->lock);
    return (struct mca_btl_base_endpoint_t *) value;
}

/* Read and check a peer's modex blob.  Returns an endpoint, or NULL when
 * the peer is not reachable through dicom (reason reported). */
static mca_btl_dicom_endpoint_t *mca_btl_dicom_endpoint_for(struct opal_proc_t *proc)
{
    mca_btl_dicom_component_t *c = &mca_btl_dicom_component;
    mca_btl_dicom_modex_t modex;
    mca_btl_dicom_endpoint_t *ep;
    uint8_t *blob = NULL;
    size_t blob_len = 0;
    int rc;

    OPAL_MODEX_RECV(rc, &c->super.btl_version, &proc->proc_name, &blob, &blob_len);
    if (OPAL_SUCCESS != rc || NULL == blob) {
        /* the peer has no migrd (or excluded dicom): not ours to reach */
        mca_btl_dicom_show(10, "%s published no dicom address: not reachable through dicom",
                           OPAL_NAME_PRINT(proc->proc_name));
        free(blob);
        return NULL;
    }
    if (blob_len != sizeof(modex)) {
        MCA_BTL_DICOM_NOTICE("%s published a dicom address of %zu bytes, expected %zu "
                             "(another version of migr?): not reachable through dicom",
                             OPAL_NAME_PRINT(proc->proc_name), blob_len, sizeof(modex));
        free(blob);
        return NULL;
    }
    memcpy(&modex, blob, sizeof(modex));
    free(blob);
    modex.node[sizeof(modex.node) - 1] = '\0';

    if (MCA_BTL_DICOM_WIRE_VERSION != modex.wire_version) {
        MCA_BTL_DICOM_NOTICE("%s on %s speaks dicom wire version %u, this process %u: "
                             "not reachable through dicom", OPAL_NAME_PRINT(proc->proc_name),
                             modex.node, modex.wire_version, MCA_BTL_DICOM_WIRE_VERSION);
        return NULL;
    }
    if ((size_t) modex.max_payload < MCA_BTL_DICOM_HDR_SIZE + c->max_frag_size) {
        MCA_BTL_DICOM_NOTICE("the inbox of %s on %s takes packets of at most %u bytes, but this "
                             "process sends up to %zu: not reachable through dicom (use the same "
                             "btl_dicom_inbox_size everywhere)", OPAL_NAME_PRINT(proc->proc_name),
                             modex.node, modex.max_payload,
                             MCA_BTL_DICOM_HDR_SIZE + c->max_frag_size);
        return NULL;
    }

    ep = mca_btl_dicom_endpoint_create(proc, &modex);
    if (NULL != ep) {
        mca_btl_dicom_show(10, "%s (rank %u of job %u, on %s at start) is reachable",
                           OPAL_NAME_PRINT(proc->proc_name), ep->addr.rank, ep->addr.job,
                           ep->peer_node);
    }
    return ep;
}

int mca_btl_dicom_add_procs(struct mca_btl_base_module_t *btl, size_t nprocs,
                            struct opal_proc_t **procs,
                            struct mca_btl_base_endpoint_t **peers,
                            struct opal_bitmap_t *reachable)
{
    mca_btl_dicom_module_t *m = (mca_btl_dicom_module_t *) btl;
    const opal_process_name_t me = OPAL_PROC_MY_NAME;

    if (NULL == m->mbox) {
        return OPAL_ERR_UNREACH;
    }

    for (size_t i = 0; i < nprocs; ++i) {
        struct opal_proc_t *proc = procs[i];
        mca_btl_dicom_endpoint_t *ep;
        dicom_addr_t addr;

        /* our own process is self's business */
        if (0 == opal_compare_proc(proc->proc_name, me)) {
            continue;
        }

        addr.job = proc->proc_name.jobid;
        addr.rank = proc->proc_name.vpid;
        ep = mca_btl_dicom_endpoint_lookup(addr);
        if (NULL == ep) {
            ep = mca_btl_dicom_endpoint_for(proc);
            if (NULL == ep) {
                continue;
            }
            OPAL_THREAD_LOCK(&m->lock);
            if (OPAL_SUCCESS != opal_hash_table_set_value_uint64(&m->endpoints,
                                                                 mca_btl_dicom_addr_key(addr), ep)) {
                OPAL_THREAD_UNLOCK(&m->lock);
                mca_btl_dicom_show(-1, "cannot record the endpoint of %s: out of memory",
                                   OPAL_NAME_PRINT(proc->proc_name));
                OBJ_RELEASE(ep);
                return OPAL_ERR_OUT_OF_RESOURCE;
            }
            OPAL_THREAD_UNLOCK(&m->lock);
        }

        peers[i] = ep;
        if (NULL != reachable) {       /* NULL: lazy add of one proc by bml */
            int rc = opal_bitmap_set_bit(reachable, (int) i);
            if (OPAL_SUCCESS != rc) {
                mca_btl_dicom_show(-1, "cannot mark %s reachable: %s",
                                   OPAL_NAME_PRINT(proc->proc_name), opal_strerror(rc));
                return rc;
            }
        }
    }
    return OPAL_SUCCESS;
}

static uint64_t mca_btl_dicom_now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t) ts.tv_sec * 1000u + (uint64_t) ts.tv_nsec / 1000000u;
}

/* Give queued fragments (to `ep`, or to anyone when NULL) a last chance to
 * leave before their peer is deleted or the module finalized: peers may
 * still be reading. */
static void mca_btl_dicom_flush_queued(mca_btl_dicom_endpoint_t *ep)
{
    mca_btl_dicom_component_t *c = &mca_btl_dicom_component;
    uint64_t deadline = mca_btl_dicom_now_ms() + MCA_BTL_DICOM_FINALIZE_FLUSH_MS;

    if (NULL == mca_btl_dicom_module.mbox) {
        return;
    }
    while ((NULL != ep ? mca_btl_dicom_endpoint_has_pending(ep)
                       : 0 != opal_list_get_size(&c->pending_endpoints)) &&
           mca_btl_dicom_now_ms() < deadline) {
        if (0 == mca_btl_dicom_progress_pending()) {
            struct timespec pause = {.tv_sec = 0, .tv_nsec = 200000};
            nanosleep(&pause, NULL);
        }
    }
}

static void mca_btl_dicom_endpoint_forget(mca_btl_dicom_endpoint_t *ep)
{
    mca_btl_dicom_module_t *m = &mca_btl_dicom_module;
    int dropped;

    mca_btl_dicom_flush_queued(ep);
    dropped = mca_btl_dicom_endpoint_flush_drop(ep);
    if (dropped) {
        mca_btl_dicom_show(-1, "%d fragment(s) to rank %u of job %u found no room within "
                           "%d ms and were dropped when the peer was deleted", dropped,
                           ep->addr.rank, ep->addr.job, MCA_BTL_DICOM_FINALIZE_FLUSH_MS);
    }
    OPAL_THREAD_LOCK(&m->lock);
    (void) opal_hash_table_remove_value_uint64(&m->endpoints, mca_btl_dicom_addr_key(ep->addr));
    OPAL_THREAD_UNLOCK(&m->lock);
    OBJ_RELEASE(ep);
}

int mca_btl_dicom_del_procs(struct mca_btl_base_module_t *btl, size_t nprocs,
                            struct opal_proc_t **procs,
                            struct mca_btl_base_endpoint_t **peers)
{
    mca_btl_dicom_module_t *m = (mca_btl_dicom_module_t *) btl;

    if (!m->endpoints_ready) {
        return OPAL_SUCCESS;
    }
    for (size_t i = 0; i < nprocs; ++i) {
        mca_btl_dicom_endpoint_t *ep = NULL;
        dicom_addr_t addr;

        if (NULL != procs && NULL != procs[i]) {
            addr.job = procs[i]->proc_name.jobid;
            addr.rank = procs[i]->proc_name.vpid;
            ep = mca_btl_dicom_endpoint_lookup(addr);
        } else if (NULL != peers && NULL != peers[i]) {
            ep = mca_btl_dicom_endpoint_lookup(peers[i]->addr);
        }
        if (NULL != ep) {
            mca_btl_dicom_endpoint_forget(ep);
        }
        if (NULL != peers) {
            peers[i] = NULL;
        }
    }
    return OPAL_SUCCESS;
}

/* ------------------------------------------------------------ send path --- */

mca_btl_base_descriptor_t *mca_btl_dicom_alloc(struct mca_btl_base_module_t *btl,
                                               struct mca_btl_base_endpoint_t *endpoint,
                                               uint8_t order, size_t size, uint32_t flags)
{
    mca_btl_dicom_frag_t *frag;

    (void) btl;
    (void) order;               /* every peer is FIFO anyway */
    frag = mca_btl_dicom_frag_alloc(endpoint, size, flags);
    return frag ? &frag->base : NULL;
}

int mca_btl_dicom_free(struct mca_btl_base_module_t *btl, mca_btl_base_descriptor_t *des)
{
    (void) btl;
    mca_btl_dicom_frag_return((mca_btl_dicom_frag_t *) des);
    return OPAL_SUCCESS;
}

mca_btl_base_descriptor_t *mca_btl_dicom_prepare_src(struct mca_btl_base_module_t *btl,
                                                     struct mca_btl_base_endpoint_t *endpoint,
                                                     struct opal_convertor_t *convertor,
                                                     uint8_t order, size_t reserve,
                                                     size_t *size, uint32_t flags)
{
    mca_btl_dicom_component_t *c = &mca_btl_dicom_component;
    mca_btl_dicom_frag_t *frag;
    size_t len = *size;

    (void) btl;
    (void) order;
    if (OPAL_UNLIKELY(reserve > c->max_frag_size)) {
        return NULL;
    }
    if (reserve + len > c->max_frag_size) {
        len = c->max_frag_size - reserve;
    }

    frag = mca_btl_dicom_frag_alloc(endpoint, reserve + len, flags);
    if (OPAL_UNLIKELY(NULL == frag)) {
        return NULL;            /* no room and no buffer now: ob1 retries */
    }

    if (len > 0) {
        struct iovec iov = {
            .iov_base = (IOVBASE_TYPE *) ((char *) frag->segments[0].seg_addr.pval + reserve),
            .iov_len = len,
        };
        uint32_t iov_count = 1;
        size_t max_data = len;
        int rc = opal_convertor_pack(convertor, &iov, &iov_count, &max_data);

        if (OPAL_UNLIKELY(rc < 0)) {
            mca_btl_dicom_show(-1, "packing %zu bytes for rank %u of job %u failed: %s",
                               len, endpoint->addr.rank, endpoint->addr.job,
                               opal_strerror(rc));
            mca_btl_dicom_frag_return(frag);
            return NULL;
        }
        len = max_data;
    }
    *size = len;
    frag->segments[0].seg_len = reserve + len;
    return &frag->base;
}

/* A DiCOM send failed for another reason than lack of room. */
static void mca_btl_dicom_send_failed(struct mca_btl_base_endpoint_t *ep, size_t bytes,
                                      int rc, const char *why)
{
    char saved[256];

    /* a lost daemon or an unreachable peer is the better explanation */
    snprintf(saved, sizeof(saved), "%s", (why && *why) ? why : strerror(-rc));
    mca_btl_dicom_poll_events(true);
    mca_btl_dicom_fatal(ep->proc, "sending %zu bytes to rank %u of job %u failed: %s",
                        bytes, ep->addr.rank, ep->addr.job, saved);
}

int mca_btl_dicom_send(struct mca_btl_base_module_t *btl,
                       struct mca_btl_base_endpoint_t *endpoint,
                       struct mca_btl_base_descriptor_t *des, mca_btl_base_tag_t tag)
{
    mca_btl_dicom_module_t *m = (mca_btl_dicom_module_t *) btl;
    mca_btl_dicom_frag_t *frag = (mca_btl_dicom_frag_t *) des;
    size_t len = frag->segments[0].seg_len;
    int rc;

    if (MCA_BTL_DICOM_FRAG_RING == frag->kind) {
        /* the destination was fixed when the room was reserved */
        if (OPAL_UNLIKELY(!frag->reserved || endpoint != frag->endpoint ||
                          MCA_BTL_DICOM_HDR_SIZE + len > frag->txn.maxlen)) {
            mca_btl_dicom_show(-1, "send of a descriptor refused: %s (%zu bytes, %zu reserved)",
                               !frag->reserved ? "it is no longer reserved"
                               : endpoint != frag->endpoint ? "it was reserved for another peer"
                                                            : "larger than its reservation",
                               len, frag->txn.maxlen);
            return OPAL_ERROR;
        }
        frag->hdr->tag = tag;
        frag->hdr->type = MCA_BTL_DICOM_TYPE_AM;
        frag->hdr->len = (uint32_t) len;
        frag->reserved = false;
        dicom_send_commit(m->mbox, &frag->txn, MCA_BTL_DICOM_HDR_SIZE + len);
        MCA_BTL_DICOM_COUNT(zero_copy);
        mca_btl_dicom_frag_complete_inline(frag);
        return 1;
    }

    frag->endpoint = endpoint;
    frag->hdr->tag = tag;
    frag->hdr->type = MCA_BTL_DICOM_TYPE_AM;
    frag->hdr->len = (uint32_t) len;

    /* buffer: send it now unless fragments are queued before it */
    if (!mca_btl_dicom_endpoint_has_pending(endpoint)) {
        rc = dicom_send(m->mbox, endpoint->addr, MCA_BTL_DICOM_PACKET_TAG, frag->hdr,
                        MCA_BTL_DICOM_HDR_SIZE + len, DICOM_NONBLOCK);
        if (OPAL_LIKELY(rc >= 0)) {
            MCA_BTL_DICOM_COUNT(buffered);
            mca_btl_dicom_frag_complete_inline(frag);
            return 1;
        }
        if (-EAGAIN != rc) {
            mca_btl_dicom_send_failed(endpoint, MCA_BTL_DICOM_HDR_SIZE + len, rc,
                                      dicom_last_error());
            return OPAL_ERR_UNREACH;
        }
    }

    /* no room: progress sends it and makes the callback */
    MCA_BTL_DICOM_COUNT(queued);
    mca_btl_dicom_endpoint_enqueue(endpoint, &frag->base.super.super);
    return OPAL_SUCCESS;
}

int mca_btl_dicom_sendi(struct mca_btl_base_module_t *btl,
                        struct mca_btl_base_endpoint_t *endpoint,
                        struct opal_convertor_t *convertor, void *header,
                        size_t header_size, size_t payload_size, uint8_t order,
                        uint32_t flags, mca_btl_base_tag_t tag,
                        mca_btl_base_descriptor_t **descriptor)
{
    mca_btl_dicom_component_t *c = &mca_btl_dicom_component;
    mca_btl_dicom_module_t *m = (mca_btl_dicom_module_t *) btl;
    const size_t total = header_size + payload_size;
    mca_btl_dicom_hdr_t *hdr;
    dicom_txn_t txn;
    size_t max_data = payload_size;
    char *data;
    int rc;

    (void) order;
    if (OPAL_UNLIKELY(total > c->max_frag_size)) {
        if (NULL != descriptor) {
            *descriptor = NULL;
        }
        return OPAL_ERR_OUT_OF_RESOURCE;
    }
    if (mca_btl_dicom_endpoint_has_pending(endpoint)) {
        goto fallback;          /* queued fragments to this peer go first */
    }

    /* room first: nothing is packed (the convertor is untouched) unless the
     * packet can go now */
    rc = dicom_send_reserve(m->mbox, endpoint->addr, MCA_BTL_DICOM_PACKET_TAG,
                            MCA_BTL_DICOM_HDR_SIZE + total, &txn);
    if (-EAGAIN == rc) {
        goto fallback;
    }
    if (OPAL_UNLIKELY(rc < 0)) {
        mca_btl_dicom_send_failed(endpoint, MCA_BTL_DICOM_HDR_SIZE + total, rc,
                                  dicom_last_error());
        if (NULL != descriptor) {
            *descriptor = NULL;
        }
        return OPAL_ERR_UNREACH;
    }

    hdr = (mca_btl_dicom_hdr_t *) txn.data;
    data = (char *) (hdr + 1);
    memcpy(data, header, header_size);
    if (payload_size > 0 && !opal_convertor_need_buffers(convertor)) {
        /* contiguous data: copied as the header is, without the convertor's
         * pack machinery (ob1 does not look at the convertor of a send that
         * went inline) */
        void *src = NULL;

        opal_convertor_get_current_pointer(convertor, &src);
        memcpy(data + header_size, src, payload_size);
    } else if (payload_size > 0) {
        struct iovec iov = {.iov_base = (IOVBASE_TYPE *) (data + header_size),
                            .iov_len = payload_size};
        uint32_t iov_count = 1;

        rc = opal_convertor_pack(convertor, &iov, &iov_count, &max_data);
        if (OPAL_UNLIKELY(rc < 0)) {
            dicom_send_cancel(m->mbox, &txn);
            mca_btl_dicom_show(-1, "packing %zu bytes for rank %u of job %u failed: %s",
                               payload_size, endpoint->addr.rank, endpoint->addr.job,
                               opal_strerror(rc));
            if (NULL != descriptor) {
                *descriptor = NULL;
            }
            return OPAL_ERROR;
        }
    }
    hdr->tag = tag;
    hdr->type = MCA_BTL_DICOM_TYPE_AM;
    hdr->reserved = 0;
    hdr->len = (uint32_t) (header_size + max_data);
    dicom_send_commit(m->mbox, &txn, MCA_BTL_DICOM_HDR_SIZE + header_size + max_data);
    MCA_BTL_DICOM_COUNT(sendi);
    return OPAL_SUCCESS;

fallback:
    /* hand back a descriptor of header + payload bytes if one can be had:
     * ob1 packs into it and calls btl_send, which queues it if need be */
    if (NULL != descriptor) {
        mca_btl_dicom_frag_t *frag = mca_btl_dicom_frag_alloc(endpoint, total, flags);
        *descriptor = frag ? &frag->base : NULL;
    }
    return OPAL_ERR_OUT_OF_RESOURCE;
}

/* ----------------------------------------------------- queued fragments --- */

int mca_btl_dicom_progress_pending(void)
{
    mca_btl_dicom_component_t *c = &mca_btl_dicom_component;
    mca_btl_dicom_module_t *m = &mca_btl_dicom_module;
    mca_btl_dicom_endpoint_t *ep, *next;
    opal_list_t done, failed;
    opal_list_item_t *item;
    char why[256] = "";
    int err = 0, count = 0;

    if (0 == opal_list_get_size(&c->pending_endpoints) || NULL == m->mbox) {
        return 0;
    }

    OBJ_CONSTRUCT(&done, opal_list_t);
    OBJ_CONSTRUCT(&failed, opal_list_t);

    /* send what finds room now, under the lock (non-blocking calls only);
     * callbacks are made afterwards, without it, because they may send */
    OPAL_THREAD_LOCK(&c->pending_lock);
    OPAL_LIST_FOREACH_SAFE(ep, next, &c->pending_endpoints, mca_btl_dicom_endpoint_t) {
        while (!opal_list_is_empty(&ep->pending)) {
            mca_btl_dicom_frag_t *frag = (mca_btl_dicom_frag_t *) opal_list_get_first(&ep->pending);
            int rc = dicom_send(m->mbox, ep->addr, MCA_BTL_DICOM_PACKET_TAG, frag->hdr,
                                MCA_BTL_DICOM_HDR_SIZE + frag->segments[0].seg_len,
                                DICOM_NONBLOCK);
            if (-EAGAIN == rc) {
                break;
            }
            (void) opal_list_remove_first(&ep->pending);
            if (OPAL_UNLIKELY(rc < 0)) {
                if (0 == err) {
                    err = rc;
                    snprintf(why, sizeof(why), "%s", dicom_last_error());
                }
                opal_list_append(&failed, &frag->base.super.super);
            } else {
                MCA_BTL_DICOM_COUNT(buffered);
                opal_list_append(&done, &frag->base.super.super);
            }
        }
        if (opal_list_is_empty(&ep->pending)) {
            opal_list_remove_item(&c->pending_endpoints, &ep->super);
            ep->waiting = false;
        }
    }
    OPAL_THREAD_UNLOCK(&c->pending_lock);

    while (NULL != (item = opal_list_remove_first(&done))) {
        mca_btl_dicom_frag_complete_queued((mca_btl_dicom_frag_t *) item, OPAL_SUCCESS);
        ++count;
    }
    while (NULL != (item = opal_list_remove_first(&failed))) {
        mca_btl_dicom_frag_t *frag = (mca_btl_dicom_frag_t *) item;
        mca_btl_dicom_send_failed(frag->endpoint,
                                  MCA_BTL_DICOM_HDR_SIZE + frag->segments[0].seg_len, err, why);
        mca_btl_dicom_frag_complete_queued(frag, OPAL_ERR_UNREACH);
        ++count;
    }
    OBJ_DESTRUCT(&done);
    OBJ_DESTRUCT(&failed);
    return count;
}

/* --------------------------------------------------------------- misc --- */

int mca_btl_dicom_register_error(struct mca_btl_base_module_t *btl,
                                 mca_btl_base_module_error_cb_fn_t cbfunc)
{
    ((mca_btl_dicom_module_t *) btl)->error_cb = cbfunc;
    return OPAL_SUCCESS;
}

void mca_btl_dicom_dump(struct mca_btl_base_module_t *btl,
                        struct mca_btl_base_endpoint_t *endpoint, int verbose)
{
    mca_btl_dicom_module_t *m = (mca_btl_dicom_module_t *) btl;
    dicom_stats_t st;

    (void) verbose;
    if (NULL == m->mbox) {
        mca_btl_dicom_show(-1, "dump: mailbox closed");
        return;
    }
    dicom_get_stats(m->mbox, &st);
    mca_btl_dicom_show_counts(-1);
    mca_btl_dicom_show(-1, "dump: mailbox of rank %u of job %u: sent %llu local, %llu remote, "
                       "received %llu (duplicates %llu, held %llu), sends without room %llu; "
                       "%zu peer(s) with queued fragments",
                       m->self.rank, m->self.job, (unsigned long long) st.sent_local,
                       (unsigned long long) st.sent_remote, (unsigned long long) st.received,
                       (unsigned long long) st.duplicates, (unsigned long long) st.held,
                       (unsigned long long) st.send_full,
                       opal_list_get_size(&mca_btl_dicom_component.pending_endpoints));
    if (NULL != endpoint) {
        mca_btl_dicom_show(-1, "dump: peer rank %u of job %u (on %s at start): %zu queued "
                           "fragment(s)", endpoint->addr.rank, endpoint->addr.job,
                           endpoint->peer_node, opal_list_get_size(&endpoint->pending));
    }
}

void mca_btl_dicom_show_counts(int level)
{
    mca_btl_dicom_component_t *c = &mca_btl_dicom_component;

    mca_btl_dicom_show(level, "packets sent: %lld by sendi, %lld zero-copy, %lld from a buffer "
                       "(%lld of them queued for room first); packets received: %lld",
                       (long long) c->count.sendi, (long long) c->count.zero_copy,
                       (long long) c->count.buffered, (long long) c->count.queued,
                       (long long) c->count.received);
}

int mca_btl_dicom_finalize(struct mca_btl_base_module_t *btl)
{
    mca_btl_dicom_component_t *c = &mca_btl_dicom_component;
    mca_btl_dicom_module_t *m = (mca_btl_dicom_module_t *) btl;

    c->module = NULL;           /* progress stops receiving from here on */
    mca_btl_dicom_show_counts(10);

    mca_btl_dicom_flush_queued(NULL);

    if (m->endpoints_ready) {
        uint64_t key;
        void *value, *node = NULL;
        int dropped = 0;

        /* release every endpoint (del_procs may not have been called) */
        OPAL_THREAD_LOCK(&m->lock);
        if (OPAL_SUCCESS == opal_hash_table_get_first_key_uint64(&m->endpoints, &key,
                                                                 &value, &node)) {
            do {
                mca_btl_dicom_endpoint_t *ep = (mca_btl_dicom_endpoint_t *) value;
                dropped += mca_btl_dicom_endpoint_flush_drop(ep);
                OBJ_RELEASE(ep);
            } while (OPAL_SUCCESS == opal_hash_table_get_next_key_uint64(&m->endpoints, &key,
                                                                         &value, node, &node));
        }
        opal_hash_table_remove_all(&m->endpoints);
        OPAL_THREAD_UNLOCK(&m->lock);
        if (dropped) {
            mca_btl_dicom_show(-1, "finalize: %d fragment(s) found no room in %d ms "
                               "and were dropped", dropped, MCA_BTL_DICOM_FINALIZE_FLUSH_MS);
        }
        OBJ_DESTRUCT(&m->endpoints);
        OBJ_DESTRUCT(&m->lock);
        m->endpoints_ready = false;
    }

    if (NULL != m->mbox) {
        dicom_close(m->mbox);   /* packets in the outbox are still delivered */
        m->mbox = NULL;
    }
    m->error_cb = NULL;
    free(c->bounce);
    c->bounce = NULL;
    c->bounce_size = 0;
    return OPAL_SUCCESS;
}
