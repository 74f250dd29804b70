/*
 * auth.c -- see auth.h.
 */
#include "auth.h"

#include <openssl/core_names.h>
#include <stdio.h>
#include <string.h>

static const char PROOF_LABEL[] = "migr auth proof v1";
static const char SESSION_LABEL[] = "migr auth session v1";
static const char KDF_CONTEXT[crypto_kdf_CONTEXTBYTES] = {'m', 'i', 'g', 'r', 's', 'e', 's', 's'};

/* OpenSSL 3.0's Poly1305 (its AVX-512 IFMA code) returns from a short
 * frame's final with the upper halves of the vector registers dirty, and
 * the SSE code that runs next (ours, libc's) pays for it: an 8-byte frame
 * cost 200 ns instead of 90.  vzeroupper after the library's calls -- what
 * a compiler puts at the end of every AVX function -- is the remedy. */
#if defined(__x86_64__)
#include <immintrin.h>
static bool have_avx;
__attribute__((target("avx"))) static void upper_clean_avx(void)
{
    _mm256_zeroupper();
}
static inline void upper_clean(void)
{
    if (have_avx)
        upper_clean_avx();
}
#else
static inline void upper_clean(void)
{
}
#endif

/* OpenSSL's Poly1305 (fetched once, kept for the daemon's life). */
static EVP_MAC *poly1305;

static EVP_MAC *poly(void)
{
    if (!poly1305) {
#if defined(__x86_64__)
        __builtin_cpu_init();
        have_avx = __builtin_cpu_supports("avx");
#endif
        poly1305 = EVP_MAC_fetch(NULL, "POLY1305", NULL);
    }
    return poly1305;
}

int auth_init(void)
{
    return sodium_init() < 0 || !poly() || !EVP_chacha20() ? -1 : 0;
}

void auth_hs_begin(struct auth_hs *hs, const uint8_t *key, enum auth_purpose purpose, bool initiator,
                   uint32_t self, const char *self_name)
{
    memset(hs, 0, sizeof *hs);
    hs->key = key;
    hs->initiator = initiator;
    hs->mine.magic = AUTH_MAGIC;
    hs->mine.version = AUTH_VERSION;
    hs->mine.purpose = (uint8_t)purpose;
    hs->mine.initiator = initiator;
    hs->mine.node = self;
    snprintf(hs->mine.name, sizeof hs->mine.name, "%s", self_name);
    randombytes_buf(hs->mine.nonce, sizeof hs->mine.nonce);
}

int auth_hs_peer(struct auth_hs *hs, const void *hello, char *why, size_t wl)
{
    struct auth_hello h;
    memcpy(&h, hello, sizeof h);
    h.name[sizeof h.name - 1] = 0;
    if (h.magic != AUTH_MAGIC || h.version != AUTH_VERSION)
        snprintf(why, wl, "not a migr authentication hello (magic 0x%08x, version %u)", h.magic, h.version);
    else if (h.initiator != !hs->initiator)
        snprintf(why, wl, "authentication hello from the wrong side of the connection");
    else if (h.purpose > AUTH_FORWARD || (h.purpose == 0 && !hs->initiator) ||
             (hs->mine.purpose && h.purpose && h.purpose != hs->mine.purpose))
        snprintf(why, wl, "authentication hello for purpose %u, expected %u", h.purpose, hs->mine.purpose);
    else {
        hs->purpose = hs->initiator ? hs->mine.purpose : h.purpose;
        hs->peer = h;
        return 0;
    }
    return -1;
}

int auth_peer_node(const struct auth_hs *hs, const struct cluster_map *m, int self, char *why, size_t wl)
{
    int node = config_find(m, hs->peer.name);
    if (node < 0 || node == self || hs->peer.node != (uint32_t)node) {
        snprintf(why, wl, "authentication hello from '%.63s' (index %u), which is not %s node of the "
                 "cluster map", hs->peer.name, hs->peer.node, self >= 0 ? "another" : "a");
        return -1;
    }
    return node;
}

/* BLAKE2b-256 keyed with the cluster key over label, role and both hellos
 * (initiator's first). */
static void transcript_hash(const struct auth_hs *hs, const char *label, uint8_t role, uint8_t out[32])
{
    crypto_generichash_state st;
    const struct auth_hello *hi = hs->initiator ? &hs->mine : &hs->peer;
    const struct auth_hello *ha = hs->initiator ? &hs->peer : &hs->mine;
    crypto_generichash_init(&st, hs->key, CLUSTER_KEY_BYTES, 32);
    crypto_generichash_update(&st, (const uint8_t *)label, strlen(label) + 1);
    crypto_generichash_update(&st, &role, 1);
    crypto_generichash_update(&st, (const uint8_t *)hi, sizeof *hi);
    crypto_generichash_update(&st, (const uint8_t *)ha, sizeof *ha);
    crypto_generichash_final(&st, out, 32);
}

void auth_hs_proof(const struct auth_hs *hs, struct auth_proof *out)
{
    transcript_hash(hs, PROOF_LABEL, hs->initiator ? 'I' : 'A', out->mac);
}

int auth_hs_check(const struct auth_hs *hs, const struct auth_proof *peer, struct auth_session *s)
{
    uint8_t want[AUTH_PROOF], master[crypto_kdf_KEYBYTES], ia[32], ai[32];
    transcript_hash(hs, PROOF_LABEL, hs->initiator ? 'A' : 'I', want);
    int bad = crypto_verify_32(want, peer->mac);
    sodium_memzero(want, sizeof want);
    if (bad)
        return -1;
    transcript_hash(hs, SESSION_LABEL, 'S', master);
    int rc = crypto_kdf_derive_from_key(ia, sizeof ia, 1, KDF_CONTEXT, master) < 0 ||
             crypto_kdf_derive_from_key(ai, sizeof ai, 2, KDF_CONTEXT, master) < 0
                 ? -1
                 : auth_session_init(s, hs->initiator ? ia : ai, hs->initiator ? ai : ia);
    sodium_memzero(master, sizeof master);
    sodium_memzero(ia, sizeof ia);
    sodium_memzero(ai, sizeof ai);
    return rc;
}

/* ------------------------------------------------------------ frames --- */

static void dir_clear(struct auth_dir *d)
{
    EVP_CIPHER_CTX_free(d->ks); /* both wipe their keys */
    EVP_MAC_CTX_free(d->mac);
    sodium_memzero(d, sizeof *d);
}

static int dir_init(struct auth_dir *d, const uint8_t key[32])
{
    static const uint8_t iv0[16];
    memset(d, 0, sizeof *d);
    d->ks = EVP_CIPHER_CTX_new();
    d->mac = poly() ? EVP_MAC_CTX_new(poly()) : NULL;
    if (!d->ks || !d->mac || EVP_EncryptInit_ex(d->ks, EVP_chacha20(), NULL, key, iv0) != 1) {
        dir_clear(d);
        return -1;
    }
    return 0;
}

int auth_session_init(struct auth_session *s, const uint8_t tx[32], const uint8_t rx[32])
{
    memset(s, 0, sizeof *s);
    if (dir_init(&s->tx, tx) < 0 || dir_init(&s->rx, rx) < 0) {
        auth_session_clear(s);
        return -1;
    }
    return 0;
}

void auth_session_clear(struct auth_session *s)
{
    dir_clear(&s->tx);
    dir_clear(&s->rx);
}

/* The one-time keys of frames AUTH_BATCH * b ... AUTH_BATCH * b + AUTH_BATCH - 1:
 * key stream blocks k = b * AUTH_BATCH * AUTH_OTK / 64 ... onwards, block k
 * being counter k mod 2^32 under nonce (0, k >> 32).  A batch is 32 blocks
 * from a multiple of 32, so it never crosses a nonce. */
static int make_batch(struct auth_dir *d, uint64_t b)
{
    static const uint8_t zero[sizeof d->otk];
    uint64_t block = b * (sizeof d->otk / 64), hi = block >> 32;
    uint32_t lo = (uint32_t)block;
    uint8_t iv[16] = {0}; /* EVP_chacha20: 32-bit counter, then the 96-bit nonce, little-endian */
    int n = 0;
    for (int i = 0; i < 4; i++)
        iv[i] = (uint8_t)(lo >> 8 * i);
    for (int i = 0; i < 8; i++)
        iv[8 + i] = (uint8_t)(hi >> 8 * i);
    if (EVP_EncryptInit_ex(d->ks, NULL, NULL, NULL, iv) != 1 ||
        EVP_EncryptUpdate(d->ks, d->otk, &n, zero, (int)sizeof zero) != 1 || n != (int)sizeof zero) {
        d->have_batch = false;
        return -1;
    }
    d->batch = b;
    d->have_batch = true;
    return 0;
}

/* Poly1305 under one-time key otk from now on: 0 or -1. */
static int mac_key(struct auth_mac *m, const uint8_t otk[AUTH_OTK])
{
    int ok = m->ctx && EVP_MAC_init(m->ctx, otk, AUTH_OTK, NULL);
    upper_clean();
    return ok ? 0 : -1;
}

void auth_mac_begin(struct auth_session *s, bool tx, struct auth_mac *m)
{
    struct auth_dir *d = tx ? &s->tx : &s->rx;
    uint64_t n = d->count++;
    uint64_t b = n / AUTH_BATCH;
    uint8_t *otk = d->otk + (n % AUTH_BATCH) * AUTH_OTK;
    *m = (struct auth_mac){.ctx = d->mac, .d = d};
    if (d->busy) { /* another MAC of this direction is under way */
        m->ctx = poly() ? EVP_MAC_CTX_new(poly()) : NULL;
        m->own = true;
    } else {
        d->busy = true;
    }
    if (!d->ks || ((!d->have_batch || d->batch != b) && make_batch(d, b) < 0) || mac_key(m, otk) < 0)
        m->bad = true;
    sodium_memzero(otk, AUTH_OTK); /* used once */
}

void auth_mac_abort(struct auth_mac *m)
{
    if (m->own)
        EVP_MAC_CTX_free(m->ctx);
    else if (m->d)
        m->d->busy = false;
    *m = (struct auth_mac){.bad = true};
}

int auth_mac_final(struct auth_mac *m, uint8_t tag[AUTH_TAG])
{
    size_t n = 0;
    int rc = !m->bad && EVP_MAC_final(m->ctx, tag, &n, AUTH_TAG) && n == AUTH_TAG ? 0 : -1;
    upper_clean();
    auth_mac_abort(m);
    return rc;
}

bool auth_mac_verify(struct auth_mac *m, const uint8_t tag[AUTH_TAG])
{
    uint8_t want[AUTH_TAG];
    bool ok = auth_mac_final(m, want) == 0 && crypto_verify_16(want, tag) == 0;
    sodium_memzero(want, sizeof want);
    return ok;
}
