/* SPDX-License-Identifier: Apache-2.0 */
/*
 * LUKS2 on a mapped device, through libcryptsetup (dm-crypt): the mechanics of encrypted
 * volumes. Where the key comes from (a KMS, a passphrase wrapping a per-volume data key) is the
 * caller's business: these functions take the key as bytes in memory, never from argv, the
 * environment or a file, and never log it. Functions are named luks_* (libcryptsetup owns
 * crypt_*).
 *
 * Not wired into staging yet: see the report of issue 20 for the hook points in stage.c.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>

#define LUKS_KEY_MAX 512

struct luks_options {
	/* PBKDF2 at the minimum cost instead of Argon2id with libcryptsetup's defaults (1 GiB,
	 * about 2 s): for tests only. The key is random and long (a data key), so the PBKDF's
	 * cost adds little there either; production keeps the default unless told. */
	bool fast_pbkdf;
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
 * Opens device as /dev/mapper/<name> (*ret_path, owned by the caller). Idempotent: a mapping
 * <name> that is already active on this device is success. Errors: -EPERM wrong key, -EINVAL
 * not LUKS or a bad name, -EEXIST <name> is active on another device, -ENODEV no dm-crypt.
 */
int luks_open(const char *device, const char *name, const void *key, size_t key_len,
              char **ret_path);

/* Closes /dev/mapper/<name>; not active is success. Errors: -EBUSY still open (mounted). */
int luks_close(const char *name);

/* Grows the active mapping <name> to the size of its underlying device (after an expand); the
 * key is needed to reload the table. Errors: -ENOENT not active, -EPERM wrong key. */
int luks_resize(const char *name, const void *key, size_t key_len);
