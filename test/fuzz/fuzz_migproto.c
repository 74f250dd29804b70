/*
 * fuzz_migproto.c -- libFuzzer harness: the destination's side of the
 * migration protocol (migrd/move/migrate_proto.c: mig_recv and the header
 * checks; migrd/move/migrate_postal.c: the POSTAL frame and the
 * POSTAL_RING frames that fill the rings of the mailbox a moving process
 * brings along; migrd/postal/adopt.c: the check of that mailbox before
 * anyone maps it).  Frames are read from a socket, as from a source daemon,
 * by the destination's worker (migrd/move/migrate_recv.c:
 * mrecv_read_frames: the frames before the image, their types and their
 * bound), then applied as the loop applies them.
 *
 * Input: byte 0, bit 0: the rest is a list of frames (type, 24-bit length,
 * body) to which the harness adds magic and version; else raw bytes; bit
 * 1: the frames before the image are bounded to 2 KiB (else 64 KiB).
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "migrd/move/migrate_postal.h"
#include "migrd/move/migrate_proto.h"
#include "migrd/move/migrate_recv.h"
#include "migrd/move/move.h"
#include "migrd/postal/adopt.h"
#include "office.h"

static struct fuzz_office office;
static struct move mv;
static uint8_t out[1 << 20];

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc, (void)argv;
    office_init(&office, 2, 1, 23000);
    mv.base = office.base;
    mv.cl = &office.cl;
    mv.postal = &office.p;
    return 0;
}

static size_t put_frame(size_t at, uint16_t type, const void *b, uint32_t len)
{
    struct mig_hdr h = {.magic = MIG_MAGIC, .version = MIG_VERSION, .type = type, .len = len};
    return fuzz_put_frame(out, sizeof out, at, &h, sizeof h, b, len);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1 || size > sizeof out / 2)
        return 0;
    uint8_t how = data[0];
    data++, size--;
    size_t len = 0;
    if (how & 1) {
        for (size_t i = 0; i + 4 <= size;) {
            uint32_t l = data[i + 1] | (uint32_t)data[i + 2] << 8 | (uint32_t)data[i + 3] << 16;
            uint8_t type = data[i] % MIG_TYPE_MAX;
            i += 4;
            if (l > size - i)
                l = (uint32_t)(size - i);
            len = put_frame(len, type, data + i, l);
            i += l;
        }
    } else {
        memcpy(out, data, size);
        len = size;
    }
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0)
        abort();
    int big = 4 << 20;
    setsockopt(sv[0], SOL_SOCKET, SO_SNDBUF, &big, sizeof big);
    setsockopt(sv[1], SOL_SOCKET, SO_RCVBUF, &big, sizeof big);
    if (len && write(sv[0], out, len) != (ssize_t)len)
        abort();
    close(sv[0]);
    struct mpostal_in pin;
    struct mig_postal mp;
    char why[256];
    int have_mp = 0;
    /* bounds inputs reach (bit 1 of byte 0: 2 KiB, else 64 KiB) */
    struct mrecv r = {.fd = sv[1], .max_frames = how & 2 ? 2u << 10 : 64u << 10, .node = "fuzz",
                      .job = {.wake = {-1, -1}}};
    int whole = mrecv_read_frames(&r) == 0;
    uint64_t kept = 0;
    mpostal_in_init(&pin);
    for (const struct mrecv_frame *f = r.frames; f; f = f->next) {
        const struct mig_hdr *h = &f->h;
        const char *w;
        kept += sizeof *f + h->len;
        if (mig_hdr_check(h, &w) < 0 || h->len > MIG_MAX_BODY || h->type == MIG_IMAGE || kept > r.max_frames)
            abort(); /* mrecv_read_frames kept what it must not */
        (void)mig_type_name(h->type);
        if (h->type == MIG_POSTAL) {
            if (have_mp || h->len != sizeof mp)
                break; /* as migrate.c: out of place, or the wrong size */
            memcpy(&mp, f->body, sizeof mp);
            have_mp = 1;
            if (mpostal_begin(&mv, &mp, 4300, &pin, why, sizeof why) < 0)
                break;
        } else if (h->type == MIG_POSTAL_RING) {
            if (mpostal_ring(&pin, f->body, h->len, why, sizeof why) < 0)
                break;
        }
    }
    (void)whole;
    if (pin.m && pin.inbox_seen && pin.outbox_seen)
        mbox_adopt_check(pin.m, why, sizeof why);
    mpostal_in_free(&pin);
    mrecv_free(&r);
    close(sv[1]);
    office_reset(&office);
    return 0;
}
