/*
 * auth.c -- see auth.h.
 */
#include "auth.h"

#include <stdio.h>
#include <string.h>

static const char PROOF_LABEL[] = "migr auth proof v1";
static const char SESSION_LABEL[] = "migr auth session v1";
static const char KDF_CONTEXT[crypto_kdf_CONTEXTBYTES] = {'m', 'i', 'g', 'r', 's', 'e', 's', 's'};

int auth_init(void)
{
    return sodium_init() < 0 ? -1 : 0;
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
    uint8_t want[AUTH_PROOF], master[crypto_kdf_KEYBYTES], ia[sizeof s->tx], ai[sizeof s->tx];
    transcript_hash(hs, PROOF_LABEL, hs->initiator ? 'A' : 'I', want);
    int bad = crypto_verify_32(want, peer->mac);
    sodium_memzero(want, sizeof want);
    if (bad)
        return -1;
    transcript_hash(hs, SESSION_LABEL, 'S', master);
    crypto_kdf_derive_from_key(ia, sizeof ia, 1, KDF_CONTEXT, master);
    crypto_kdf_derive_from_key(ai, sizeof ai, 2, KDF_CONTEXT, master);
    memcpy(s->tx, hs->initiator ? ia : ai, sizeof s->tx);
    memcpy(s->rx, hs->initiator ? ai : ia, sizeof s->rx);
    s->tx_count = s->rx_count = 0;
    sodium_memzero(master, sizeof master);
    sodium_memzero(ia, sizeof ia);
    sodium_memzero(ai, sizeof ai);
    return 0;
}

void auth_mac_begin(struct auth_session *s, bool tx, struct auth_mac *m)
{
    uint8_t nonce[crypto_stream_chacha20_ietf_NONCEBYTES] = {0};
    uint8_t otk[crypto_onetimeauth_KEYBYTES];
    uint64_t n = tx ? s->tx_count++ : s->rx_count++;
    memcpy(nonce + sizeof nonce - sizeof n, &n, sizeof n);
    crypto_stream_chacha20_ietf(otk, sizeof otk, nonce, tx ? s->tx : s->rx);
    crypto_onetimeauth_init(&m->st, otk);
    sodium_memzero(otk, sizeof otk);
}

void auth_mac_final(struct auth_mac *m, uint8_t tag[AUTH_TAG])
{
    crypto_onetimeauth_final(&m->st, tag);
}

bool auth_mac_verify(struct auth_mac *m, const uint8_t tag[AUTH_TAG])
{
    uint8_t want[AUTH_TAG];
    crypto_onetimeauth_final(&m->st, want);
    return crypto_verify_16(want, tag) == 0;
}
