/* SPDX-License-Identifier: Apache-2.0 */
/*
 * LUKS2 on a mapped device, through libcryptsetup (dm-crypt): the mechanics of encrypted
 * volumes. Where the key comes from (a KMS, a passphrase wrapping a per-volume data key) is the
 * caller's business: these functions take the key as bytes in memory, never from argv, the
 * environment or a file, and never log it. Functions are named luks_* (libcryptsetup owns
 * crypt_*).
 *
 * Staging uses them through driver/host/stage_crypt.c (the design is in driver/host/kms.h).
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>

#define LUKS_KEY_MAX 512

struct luks_options {
	/* PBKDF2 at a low cost instead of Argon2id with libcryptsetup's defaults (1 GiB, about
	 * 2 s). Staging uses it for its keyslots: their key is a random 512-bit data key
	 * (driver/host/kms.h), which a slow KDF does not strengthen; a human passphrase would
	 * need the default. */
	bool fast_pbkdf;
	/* luks_format(): the device holds our own interrupted format (the stage's state says
	 * so): format it again instead of refusing a LUKS header. */
	bool over_own;
	/* luks_format(): a LUKS2 token (JSON object with "type" and an empty "keyslots" array)
	 * stored in the header and assigned to the new keyslot, or NULL. Not secret. */
	const char *token_json;
};

/* 1 when device carries a LUKS header (any version), 0 when not. Errors: -ENOENT, -EACCES. */
int luks_is_luks(const char *device);

/*
 * Formats device as LUKS2 (aes-xts-plain64, 512-bit volume key, one keyslot for key). Refuses
 * a device that is already LUKS: the caller must also have checked that it carries no other
 * signature (stage never formats a device that carries one). opts may be NULL.
 * Errors: -EEXIST already LUKS, -EINVAL bad key length, -ENOENT, and libcryptsetup's own.
 */
int luks_format(const char *device, const void *key, size_t key_len,
                const struct luks_options *opts);

/* Whether key opens a keyslot of device (no mapping is made). Errors: -EPERM wrong key,
 * -EINVAL not LUKS. */
int luks_check_key(const char *device, const void *key, size_t key_len);

/*
 * Opens device as /dev/mapper/<name> (without the kernel keyring: luks_resize() then needs no
 * key) (*ret_path, owned by the caller). Idempotent: a mapping
 * <name> that is already active on this device is success. Errors: -EPERM wrong key, -EINVAL
 * not LUKS or a bad name, -EEXIST <name> is active on another device, -ENODEV no dm-crypt.
 */
int luks_open(const char *device, const char *name, const void *key, size_t key_len,
              char **ret_path);

/*
 * The JSON of the first LUKS2 token of device whose "type" is type (*ret_json, caller frees).
 * Errors: -ENOENT no such token, -EINVAL not LUKS2.
 */
int luks_token_get(const char *device, const char *type, char **ret_json);

/* Whether mapping <name> is active: 1 yes, 0 no. */
int luks_active(const char *name);

/* luks_open(), read-only when read_only (the mapping of a read-only volume). */
int luks_open_mode(const char *device, const char *name, const void *key, size_t key_len,
                   bool read_only, char **ret_path);

/* Closes /dev/mapper/<name>; not active is success. Errors: -EBUSY still open (mounted). */
int luks_close(const char *name);

/* Grows the active mapping <name> to the size of its underlying device (after an expand). key
 * NULL: the mapping was made by luks_open() (its volume key is in the dm table, not the kernel
 * keyring) and no key is needed; else the key reloads it. Errors: -ENOENT not active, -EPERM
 * wrong key. */
int luks_resize(const char *name, const void *key, size_t key_len);
