/*
 * auth.h -- how two daemons prove to each other that they hold the cluster
 * key, and the MAC on every frame they exchange afterwards.
 *
 * Owns: the handshake and the per-frame MAC (library primitives only,
 * nothing home-made), for the link port (postal/link.c) and the migration port
 * (move/forward_conn.c, move/migrate.c).  The transports only move the
 * bytes; they call:
 *
 *   1. auth_hs_begin(): each side sends its auth_hello (in clear) at once:
 *      a fresh random nonce, its node index and name, the connection's
 *      purpose and whether it is the side that connected;
 *   2. auth_hs_peer() on the peer's hello: well-formed, the same purpose,
 *      the other direction (the caller then checks that the node is the
 *      one it expects, from the address the connection came from), and
 *      auth_hs_proof(): the proof to send;
 *   3. auth_hs_check() on the peer's proof: right, or the connection is
 *      closed; the session keys are derived.
 *
 * A proof is BLAKE2b-256 keyed with the cluster key (crypto_generichash)
 * over a label, who proves (initiator or acceptor) and both hellos -- so
 * both nonces, both node names and indexes, the direction and the purpose.
 * The session: a master key hashed the same way under another label, and
 * one key per direction from it with crypto_kdf.
 *
 * Frames: a Poly1305 tag of AUTH_TAG bytes after each frame, over the
 * whole frame, with a one-time key per frame: the key of frame N in a
 * direction is bytes [32N, 32N + 32) of the ChaCha20 (RFC 8439) key stream
 * of that direction's key, block 2^32 * M + C being block counter C under
 * the 96-bit nonce (0, M) (little-endian: 4 zero bytes, then M as a
 * 64-bit integer).  The counter makes every frame's key unique: a
 * replayed, dropped or reordered frame fails.
 *
 * Libraries: the handshake stays on libsodium (crypto_generichash,
 * crypto_kdf, randombytes: a few calls per connection, unchanged on the
 * wire); the frames' MAC is OpenSSL's libcrypto (EVP_MAC "POLY1305" for
 * the tag, EVP_chacha20 for the one-time keys), whose Poly1305 is about
 * three times libsodium 1.0.18's on this kind of machine (AVX-512 IFMA /
 * AVX2 code; 14 GB/s against 4.7 GB/s measured) and whose ChaCha20 makes
 * the keys of AUTH_BATCH frames in one call (a frame's fixed cost: about
 * 60 ns against 230 ns).  Both are only library primitives, combined the
 * way ChaCha20-Poly1305 does (a one-time Poly1305 key from ChaCha20).
 * Each direction keeps one EVP_MAC_CTX, re-keyed by every begin; a second
 * MAC begun in the same direction before the first ends gets a context of
 * its own (correct, only slower).
 */
#ifndef MIGRD_AUTH_H
#define MIGRD_AUTH_H

#include <openssl/evp.h>
#include <sodium.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cluster_key.h"
#include "cluster_map.h"

#define AUTH_MAGIC   0x5455414du /* "MAUT" */
#define AUTH_VERSION 2         /* 2: the frames' MAC of auth.h (1: libsodium's) */
#define AUTH_NONCE   32
#define AUTH_PROOF   32
#define AUTH_TAG     16
#define AUTH_OTK     32         /* a one-time Poly1305 key           */
#define AUTH_BATCH   64         /* one-time keys made at a time      */

enum auth_purpose {
    AUTH_LINK = 1,     /* the postal link (link port)                  */
    AUTH_MOVE = 2,     /* a move: OFFER ... (migration port)           */
    AUTH_FORWARD = 3,  /* a forwarding connection: HELLO ... (same)    */
};

struct auth_hello {
    uint32_t magic;
    uint16_t version;
    uint8_t purpose;       /* enum auth_purpose                         */
    uint8_t initiator;     /* 1: sent by the side that connected        */
    uint32_t node;         /* sender's index in the cluster map         */
    uint32_t pad;
    char name[64];         /* sender's node name                        */
    uint8_t nonce[AUTH_NONCE];
};

struct auth_proof {
    uint8_t mac[AUTH_PROOF];
};

struct auth_hs {
    const uint8_t *key;
    struct auth_hello mine, peer;
    bool initiator;
    uint8_t purpose;       /* agreed: the initiator's                   */
};

/* One direction of a session: the ChaCha20 of its key (the one-time keys),
 * the Poly1305 context and the next frame's number. */
struct auth_dir {
    EVP_CIPHER_CTX *ks;
    EVP_MAC_CTX *mac;
    uint64_t count;              /* the next frame's number              */
    uint64_t batch;              /* otk holds the keys of this batch     */
    bool have_batch, busy;       /* busy: mac is some auth_mac's now     */
    uint8_t otk[AUTH_BATCH * AUTH_OTK];
};

struct auth_session {
    struct auth_dir tx, rx;
};

struct auth_mac {
    EVP_MAC_CTX *ctx;            /* the direction's, or its own (own)    */
    struct auth_dir *d;
    bool own, bad;               /* bad: a library call failed: no tag   */
};

/* Once at start-up (libsodium's initialisation, OpenSSL's Poly1305 and
 * ChaCha20 looked up); 0 or -1. */
int auth_init(void);

void auth_hs_begin(struct auth_hs *hs, const uint8_t *key, enum auth_purpose purpose, bool initiator,
                   uint32_t self, const char *self_name);
/* The peer's hello (sizeof(struct auth_hello) bytes): 0 or -1 with why.
 * An acceptor that serves several purposes on one port begins with
 * purpose 0 and takes the initiator's (hs->purpose; the caller checks it
 * is one of its port's); an initiator takes an acceptor's 0.  Either way
 * the initiator's purpose is in both proofs.  On success hs->peer holds
 * the peer's hello (name NUL-terminated). */
int auth_hs_peer(struct auth_hs *hs, const void *hello, char *why, size_t wl);
void auth_hs_proof(const struct auth_hs *hs, struct auth_proof *out);
/* The node the peer's hello (after auth_hs_peer) claims to be: a node of
 * the map other than self (-1: any), whose index and name agree.  Index,
 * or -1 with why. */
int auth_peer_node(const struct auth_hs *hs, const struct cluster_map *m, int self, char *why, size_t wl);
/* 0 and the session, or -1: the peer does not hold the key, or (rarely:
 * out of memory) the frames' MAC could not be set up; no session either
 * way.  A session is ended with auth_session_clear. */
int auth_hs_check(const struct auth_hs *hs, const struct auth_proof *peer, struct auth_session *s);
/* A session from its two directions' keys (auth_hs_check's last step;
 * tests): 0, or -1 (out of memory / library failure, nothing kept). */
int auth_session_init(struct auth_session *s, const uint8_t tx[32], const uint8_t rx[32]);
/* Free a session's contexts and wipe it (safe on a zeroed or cleared one). */
void auth_session_clear(struct auth_session *s);

/* One frame's tag: begin, update over every byte of the frame, then
 * final (sending: 0, or -1 and no tag) or verify (receiving: true if
 * right); a MAC given up half-way is ended with auth_mac_abort.  Each
 * begin takes the next counter of that direction. */
void auth_mac_begin(struct auth_session *s, bool tx, struct auth_mac *m);
static inline void auth_mac_update(struct auth_mac *m, const void *p, size_t n)
{
    if (!m->bad && n && !EVP_MAC_update(m->ctx, p, n))
        m->bad = true;
}
int auth_mac_final(struct auth_mac *m, uint8_t tag[AUTH_TAG]) __attribute__((warn_unused_result));
bool auth_mac_verify(struct auth_mac *m, const uint8_t tag[AUTH_TAG]);
void auth_mac_abort(struct auth_mac *m);

#endif
