/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Keys of encrypted volumes: a small KMS interface, and the "metadata" KMS behind it.
 *
 * Design (StorageClass `encrypted: "true"`, ceph-csi's key; deploy/README.md "Encrypted volumes")
 *
 * - The volume is LUKS2 (libcryptsetup, aes-xts-plain64, 512-bit volume key) on the mapped
 *   device (/dev/rbdN, /dev/nbdN, or rbd-fuse's loop device: every mapper); the filesystem, or
 *   the raw block volume, is the dm-crypt device /dev/mapper/<name> above it.
 * - Per volume, a random data key (DEK, KMS_DEK_LEN bytes from the kernel's CSPRNG) opens the
 *   LUKS2 keyslot. The DEK is never stored in the clear: a KMS wraps it, and the wrapped blob
 *   is stored with the image, in a LUKS2 token of the image's own header ({"type": "rbdcsi-dek",
 *   "keyslots": [...], "kms": <type>, "dek": <blob>}). Being in the image's first 16 MiB, it
 *   travels with every copy of the data: clones and restores (librbd copies or shares the data,
 *   not necessarily the image metadata), flatten, mirroring, `rbd export`; a clone or restore
 *   opens with its source's DEK, under its source's passphrase. The node reads it with
 *   libcryptsetup, without a librados connection of its own.
 * - The "metadata" KMS (ceph-csi's name for keys kept with the image): the wrapping key (KEK)
 *   is derived from a passphrase per StorageClass, the `encryptionPassphrase` entry of the
 *   node-stage secret (csi.storage.k8s.io/node-stage-secret-name, as in ceph-csi), with
 *   PBKDF2-HMAC-SHA256 (random 16-byte salt, KMS_METADATA_ITERATIONS, both in the blob); the
 *   DEK is sealed with AES-256-GCM (random 12-byte nonce, the blob's version as additional
 *   data). Blob: base64("rbdcsi-dek-v1" magic | iterations | salt | nonce | sealed DEK | tag).
 *   The volume id is deliberately not bound in: a clone has another id and the same header.
 *   A wrong passphrase or a tampered blob fails the GCM tag: -EKEYREJECTED, nothing opened.
 * - Another KMS (Vault transit, KMIP) is another struct kms_ops: it wraps and unwraps the same
 *   DEK remotely; the storage of the blob (the token) and the rest of the node's work stay.
 *   `encryptionKMSID` selects it; today only "" and "metadata" exist, anything else is refused
 *   with INVALID_ARGUMENT naming encryptionKMSID (plugin/params.c, plugin/node_crypt.c).
 * - Where the DEK is created: on the node, at the first stage of a blank image
 *   (driver/host/stage_crypt.c), not by the controller: the node is where the passphrase
 *   arrives (node-stage secret), the device is where "blank" can be probed, and a DEK created
 *   elsewhere would have to be stored apart from the header it opens. SIGKILL at any point
 *   converges: the state file records luks_pending ("the device was probed blank, our format
 *   was started") BEFORE libcryptsetup writes anything, and it is cleared only after the
 *   keyslot and the token are written. A retry that finds luks_pending formats again over its
 *   own partial header (new DEK: nothing was ever written through the old one); one that does
 *   not finds either a blank device (format), a complete LUKS2 header with our token (open), or
 *   anything else, which is refused (never formatted over).
 * - Keys never reach logs, argv, the environment of a child or a file: libcryptsetup gets them
 *   through its API, in memory; every buffer holding the passphrase, KEK or DEK is a kms_secret
 *   (mlock'ed, explicit_bzero'ed before free). The LUKS2 mapping is made without the kernel
 *   keyring, so that NodeExpandVolume (which carries no secret) can crypt_resize() it.
 * - The keyslot uses PBKDF2 at a low iteration count, not Argon2id: the DEK is 512 random bits,
 *   so a slow KDF adds no strength, and Argon2id's default 1 GiB per open is what makes
 *   ceph-csi's node plugin OOM under parallel stages (ceph-csi issue 3472).
 */
#pragma once

#include <stddef.h>

#include "driver/base/macro.h"

#define KMS_DEK_LEN             64U     /* bytes of a data key (the LUKS2 keyslot passphrase) */
#define KMS_PASSPHRASE_MAX      4096U   /* longest encryptionPassphrase accepted */
#define KMS_BLOB_MAX            1024U   /* longest wrapped blob (base64 text) */
#define KMS_METADATA_ITERATIONS 100000U /* PBKDF2 rounds of a new wrap (unwrap reads the blob) */
#define KMS_TYPE_METADATA       "metadata"

/* Secret bytes: mlock'ed (best effort: a failing mlock is not fatal), wiped on free. */
struct kms_secret {
	unsigned char *data;
	size_t len;
};

/* A new secret of len bytes (zeroed), or a copy of data when data is not NULL. Errors: -ENOMEM,
 * -EINVAL len 0. */
int kms_secret_new(const void *data, size_t len, struct kms_secret **ret);
struct kms_secret *kms_secret_free(struct kms_secret *s);
DEFINE_TRIVIAL_CLEANUP_FUNC(struct kms_secret *, kms_secret_free)

/* A new random DEK of KMS_DEK_LEN bytes. Errors: -EIO no randomness, -ENOMEM. */
int kms_dek_generate(struct kms_secret **ret);

struct kms;

struct kms_ops {
	const char *type; /* recorded in the token: "metadata" */
	/* Wraps dek into a printable blob (*ret_blob, caller frees; not secret). */
	int (*wrap)(struct kms *k, const struct kms_secret *dek, char **ret_blob);
	/* Unwraps blob into a new secret. Errors: -EKEYREJECTED wrong key or tampered blob,
	 * -EINVAL not a blob of this KMS. */
	int (*unwrap)(struct kms *k, const char *blob, struct kms_secret **ret_dek);
	void (*done)(struct kms *k);
};

struct kms {
	const struct kms_ops *ops;
	struct kms_secret *passphrase; /* metadata KMS: the encryptionPassphrase */
	unsigned iterations;           /* metadata KMS: PBKDF2 rounds of new wraps */
};

/*
 * The metadata KMS for a passphrase (copied into a kms_secret; the caller wipes its own copy).
 * Errors: -EINVAL empty or longer than KMS_PASSPHRASE_MAX, -ENOMEM.
 */
int kms_metadata_new(const void *passphrase, size_t len, struct kms **ret);

/* Frees k and wipes its secrets; NULL is fine; returns NULL. */
struct kms *kms_free(struct kms *k);
DEFINE_TRIVIAL_CLEANUP_FUNC(struct kms *, kms_free)

/* k->ops->wrap / unwrap, with the argument checks. Errors as in struct kms_ops. */
int kms_wrap(struct kms *k, const struct kms_secret *dek, char **ret_blob);
int kms_unwrap(struct kms *k, const char *blob, struct kms_secret **ret_dek);

/* Whether id names a KMS this build has: "" (the default) and "metadata". */
int kms_id_known(const char *id);
