/*
 * cluster_key.h -- the cluster key file: the secret every migrd of a
 * cluster holds and proves to the others (auth.h).
 *
 * Owns: making a key file (`migrctl keygen FILE`: 32 random bytes from
 * libsodium, created with O_EXCL and mode 0600) and loading one with its
 * checks: a regular file owned by root (or by the user running migrd),
 * readable by nobody else (no group or other permission bits) and exactly
 * CLUSTER_KEY_BYTES long.  The map names the file (`key FILE`,
 * cluster_map.h).
 */
#ifndef MIGRD_CLUSTER_KEY_H
#define MIGRD_CLUSTER_KEY_H

#include <stddef.h>
#include <stdint.h>

#define CLUSTER_KEY_BYTES 32

/* 0, or -1 with a one-line reason in why ("FILE: ..."). */
int cluster_key_load(const char *path, uint8_t key[CLUSTER_KEY_BYTES], char *why, size_t wl);
int cluster_key_generate(const char *path, char *why, size_t wl);

#endif
