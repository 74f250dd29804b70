/*
 * auth.h -- how two daemons prove to each other that they hold the cluster
 * key, and the MAC on every frame they exchange afterwards.
 *
 * Owns: the handshake (libsodium only, nothing home-made) and the per-frame
 * MAC, for the link port (postal/link.c) and the migration port
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
 * Frames: a Poly1305 tag (crypto_onetimeauth) of AUTH_TAG bytes after each
 * frame, over the whole frame; the one-time key of frame N in a direction
 * is the first 32 bytes of the ChaCha20 (IETF) key stream of that
 * direction's key with nonce N, as in ChaCha20-Poly1305.  The counter makes
 * every frame's key unique: a replayed, dropped or reordered frame fails.
 */
#ifndef MIGRD_AUTH_H
#define MIGRD_AUTH_H

#include <sodium.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cluster_key.h"
#include "cluster_map.h"

#define AUTH_MAGIC   0x5455414du /* "MAUT" */
#define AUTH_VERSION 1
#define AUTH_NONCE   32
#define AUTH_PROOF   32
#define AUTH_TAG     crypto_onetimeauth_BYTES

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

struct auth_session {
    uint8_t tx[crypto_stream_chacha20_ietf_KEYBYTES], rx[crypto_stream_chacha20_ietf_KEYBYTES];
    uint64_t tx_count, rx_count;
};

struct auth_mac {
    crypto_onetimeauth_state st;
};

/* Once at start-up (libsodium's own initialisation); 0 or -1. */
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
/* 0 and the session, or -1: the peer does not hold the key. */
int auth_hs_check(const struct auth_hs *hs, const struct auth_proof *peer, struct auth_session *s);

/* One frame's tag: begin, update over every byte of the frame, then
 * final (sending) or verify (receiving: true if right).  Each begin takes
 * the next counter of that direction. */
void auth_mac_begin(struct auth_session *s, bool tx, struct auth_mac *m);
static inline void auth_mac_update(struct auth_mac *m, const void *p, size_t n)
{
    crypto_onetimeauth_update(&m->st, p, n);
}
void auth_mac_final(struct auth_mac *m, uint8_t tag[AUTH_TAG]);
bool auth_mac_verify(struct auth_mac *m, const uint8_t tag[AUTH_TAG]);

#endif
