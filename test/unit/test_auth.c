/*
 * test_auth.c -- the frames' MAC of migrd/cluster/auth.c: known answers
 * (RFC 8439: the Poly1305 of section 2.5.2, the ChaCha20 key stream of
 * A.1), the one-time key of every frame against libsodium's independent
 * ChaCha20 and Poly1305 (across a batch and the 2^32-block nonce step), a
 * changed byte changes the tag, verify refuses a wrong tag or a frame out
 * of order, the counters advance, two MACs of one direction at once.
 * Includes auth.c to reach its one-time-key step (mac_key).
 */
#include "migrd/cluster/auth.c"

#include "unit.h"

static void hex(const char *h, uint8_t *out, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        unsigned v;
        CHECK(sscanf(h + 2 * i, "%2x", &v) == 1);
        out[i] = (uint8_t)v;
    }
}

/* RFC 8439 2.5.2: Poly1305 of "Cryptographic Forum Research Group". */
static void t_poly1305_kat(void)
{
    static const char msg[] = "Cryptographic Forum Research Group";
    uint8_t key[32], want[16], tag[16];
    struct auth_mac m = {.ctx = EVP_MAC_CTX_new(poly())};
    hex("85d6be7857556d337f4452fe42d506a80103808afb0db2fd4abff6af4149f51b", key, 32);
    hex("a8061dc1305136c6c22b8baf0c0127a9", want, 16);
    m.own = true;
    CHECK(m.ctx && mac_key(&m, key) == 0);
    auth_mac_update(&m, msg, 10); /* in two pieces, as the transports do */
    auth_mac_update(&m, msg + 10, sizeof msg - 1 - 10);
    CHECK(auth_mac_final(&m, tag) == 0);
    CHECK(memcmp(tag, want, 16) == 0);
}

static struct auth_session s_a, s_b; /* a's tx is b's rx and back */

static void pair(const uint8_t ka[32], const uint8_t kb[32])
{
    auth_session_clear(&s_a);
    auth_session_clear(&s_b);
    CHECK(auth_session_init(&s_a, ka, kb) == 0);
    CHECK(auth_session_init(&s_b, kb, ka) == 0);
}

static int tag_of(struct auth_session *s, const void *p, size_t n, uint8_t tag[16])
{
    struct auth_mac m;
    auth_mac_begin(s, true, &m);
    auth_mac_update(&m, p, n);
    return auth_mac_final(&m, tag);
}

static bool verify(struct auth_session *s, const void *p, size_t n, const uint8_t tag[16])
{
    struct auth_mac m;
    auth_mac_begin(s, false, &m);
    auth_mac_update(&m, p, n);
    return auth_mac_verify(&m, tag);
}

/* RFC 8439 A.1 #1 and #2: with an all-zero key, key stream blocks 0 and 1
 * are these; frames 0..3 are keyed with their four halves.  The tags
 * are checked against libsodium's Poly1305 under those keys. */
static void t_keystream_kat(void)
{
    static const char *blocks =
        "76b8e0ada0f13d90405d6ae55386bd28bdd219b8a08ded1aa836efcc8b770dc7"
        "da41597c5157488d7724e03fb8d84a376a43b8f41518a11cc387b669b2ee6586"
        "9f07e7be5551387a98ba977c732d080dcb0f29a048e3656912c6533e32ee7aed"
        "29b721769ce64e43d57133b074d839d531ed1f28510afb45ace10a1f4b794d6f";
    uint8_t zero[32] = {0}, other[32], ks[128], tag[16], want[16];
    static const char msg[] = "a frame";
    memset(other, 7, sizeof other);
    hex(blocks, ks, sizeof ks);
    pair(zero, other);
    for (int f = 0; f < 4; f++) {
        CHECK(tag_of(&s_a, msg, sizeof msg, tag) == 0);
        crypto_onetimeauth(want, (const uint8_t *)msg, sizeof msg, ks + 32 * f);
        CHECK(memcmp(tag, want, 16) == 0);
    }
}

/* Frame n of a direction against libsodium: key stream bytes [32n, 32n+32)
 * with block k = counter k mod 2^32 under nonce (0, k >> 32). */
static void sodium_tag(const uint8_t key[32], uint64_t n, const void *p, size_t len, uint8_t tag[16])
{
    uint64_t block = n / 2, hi = block >> 32;
    uint8_t nonce[12] = {0}, zero[64] = {0}, ks[64];
    memcpy(nonce + 4, &hi, 8); /* little-endian machine */
    crypto_stream_chacha20_ietf_xor_ic(ks, zero, sizeof ks, nonce, (uint32_t)block, key);
    crypto_onetimeauth(tag, p, len, ks + 32 * (n % 2));
    sodium_memzero(ks, sizeof ks);
}

static void t_every_frame(void)
{
    uint8_t ka[32], kb[32], tag[16], want[16], buf[3000];
    randombytes_buf(ka, sizeof ka);
    randombytes_buf(kb, sizeof kb);
    randombytes_buf(buf, sizeof buf);
    pair(ka, kb);
    for (uint64_t n = 0; n < 3 * AUTH_BATCH + 5; n++) { /* across batches, lengths 0 .. 2999 */
        size_t len = (size_t)(n * 37 % sizeof buf);
        CHECK(tag_of(&s_a, buf, len, tag) == 0);
        sodium_tag(ka, n, buf, len, want);
        CHECK(memcmp(tag, want, 16) == 0);
        CHECK(verify(&s_b, buf, len, tag));
    }
    CHECK(s_a.tx.count == 3 * AUTH_BATCH + 5 && s_b.rx.count == 3 * AUTH_BATCH + 5);
    CHECK(s_a.rx.count == 0 && s_b.tx.count == 0);
    /* the nonce step: block 2^32 is counter 0 under nonce (0, 1) */
    s_a.tx.count = s_b.rx.count = ((uint64_t)1 << 33) - 3;
    for (uint64_t n = s_a.tx.count; n < ((uint64_t)1 << 33) + 3; n++) {
        CHECK(tag_of(&s_a, buf, 100, tag) == 0);
        sodium_tag(ka, n, buf, 100, want);
        CHECK(memcmp(tag, want, 16) == 0);
        CHECK(verify(&s_b, buf, 100, tag));
    }
}

static void t_refusals(void)
{
    uint8_t ka[32], kb[32], tag[16], tag2[16], buf[200];
    randombytes_buf(ka, sizeof ka);
    randombytes_buf(kb, sizeof kb);
    randombytes_buf(buf, sizeof buf);
    pair(ka, kb);
    /* one changed byte: another tag, refused */
    CHECK(tag_of(&s_a, buf, sizeof buf, tag) == 0);
    buf[117] ^= 1;
    CHECK(!verify(&s_b, buf, sizeof buf, tag));
    buf[117] ^= 1;
    /* the same bytes again: the counter moved on, another tag */
    CHECK(tag_of(&s_a, buf, sizeof buf, tag2) == 0);
    CHECK(memcmp(tag, tag2, 16) != 0);
    CHECK(verify(&s_b, buf, sizeof buf, tag2)); /* frame 1 at b's frame 1 */
    /* a replayed frame (an earlier tag at a later counter) is refused */
    CHECK(!verify(&s_b, buf, sizeof buf, tag2));
    /* a wrong tag, and the other direction's key */
    CHECK(tag_of(&s_a, buf, sizeof buf, tag) == 0);
    tag[0] ^= 0x80;
    CHECK(!verify(&s_b, buf, sizeof buf, tag));
    tag[0] ^= 0x80;
    CHECK(s_a.tx.count == 3 && s_b.rx.count == 4); /* every begin takes a number */
    CHECK(tag_of(&s_b, buf, sizeof buf, tag) == 0); /* b's frame 0 the other way */
    s_b.rx.count = 0; /* the same number, the other direction's key */
    CHECK(!verify(&s_b, buf, sizeof buf, tag));
    /* a MAC that is not finished leaves nothing behind */
    struct auth_mac m;
    auth_mac_begin(&s_a, true, &m);
    auth_mac_update(&m, buf, 10);
    auth_mac_abort(&m);
    CHECK(!s_a.tx.busy);
    CHECK(auth_mac_final(&m, tag) < 0); /* an aborted MAC gives no tag */
}

/* Two MACs of one direction under way at once: each its own frame. */
static void t_interleaved(void)
{
    uint8_t ka[32], kb[32], t0[16], t1[16], w0[16], w1[16], buf[64];
    struct auth_mac m0, m1;
    randombytes_buf(ka, sizeof ka);
    randombytes_buf(kb, sizeof kb);
    randombytes_buf(buf, sizeof buf);
    pair(ka, kb);
    auth_mac_begin(&s_a, true, &m0);
    auth_mac_begin(&s_a, true, &m1);
    CHECK(!m0.own && m1.own);
    auth_mac_update(&m1, buf, 32);
    auth_mac_update(&m0, buf, 64);
    auth_mac_update(&m1, buf + 32, 32);
    CHECK(auth_mac_final(&m0, t0) == 0 && auth_mac_final(&m1, t1) == 0);
    sodium_tag(ka, 0, buf, 64, w0);
    sodium_tag(ka, 1, buf, 64, w1);
    CHECK(memcmp(t0, w0, 16) == 0 && memcmp(t1, w1, 16) == 0);
    CHECK(!s_a.tx.busy);
}

int main(void)
{
    if (auth_init() < 0) {
        printf("FAIL: auth: auth_init\n");
        return 1;
    }
    unit_run("auth: Poly1305 known answer (RFC 8439 2.5.2)", t_poly1305_kat);
    unit_run("auth: one-time keys from the ChaCha20 key stream (RFC 8439 A.1)", t_keystream_kat);
    unit_run("auth: every frame's tag as libsodium computes it, across batches and the nonce step",
             t_every_frame);
    unit_run("auth: a changed byte, a wrong tag, a replay, the wrong direction are refused", t_refusals);
    unit_run("auth: two MACs of one direction at once", t_interleaved);
    auth_session_clear(&s_a);
    auth_session_clear(&s_b);
    return unit_total_failed ? 1 : 0;
}
