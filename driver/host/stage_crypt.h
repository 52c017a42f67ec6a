/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The encryption steps of a stage (LUKS2 on the mapped device; design in driver/host/kms.h),
 * called from driver/host/stage.c at three points: after the map (format a blank device, open),
 * before the unmap (close) and at expand (resize).
 *
 * After stage_crypt_open() the state records crypt_name (the dm name, derived from the volume
 * id: "rbdcsi-" and 32 hex digits of its sha256), mapped_device (/dev/rbdN, /dev/nbdN, the loop
 * device) and device = /dev/mapper/<crypt_name>, which everything after (probe, mkfs, mount,
 * publish of a block volume) uses.
 *
 * Failpoints: node-stage:after-state-luks-formatting, node-stage:after-luks-format,
 * node-stage:after-luks-open.
 */
#pragma once

#include <stdbool.h>

struct kms;
struct stage_info;

/* Writes info to the state file state_path (stage_state_save()). */
typedef int (*stage_crypt_save_fn)(const char *state_path, const struct stage_info *info);

struct stage_crypt {
	struct kms *kms; /* wraps a new DEK, unwraps the one in the header; owned by the caller */
};

/* The dm name of volume_id's LUKS2 mapping (*ret, caller frees). Errors: -ENOMEM. */
int stage_crypt_name(const char *volume_id, char **ret);

/*
 * On a freshly mapped info->device: opens its LUKS2 header with the DEK that the KMS unwraps
 * from the header's rbdcsi token; on a blank device (or one holding our interrupted format:
 * info->luks_pending) first creates the DEK, wraps it and formats (recording luks_pending in
 * state_path before, clearing it after). Then device becomes the dm-crypt device and the state
 * is saved (save(state_path, info): stage.c's state writer). Errors: -EMEDIUMTYPE another
 * signature, or LUKS without rbdcsi's token; -EKEYREJECTED the passphrase does not unwrap the DEK
 * (wrong key, tampered header); -EROFS a blank device on a read-only stage; -ENODEV no dm-crypt;
 * *ret_reason says which.
 */
int stage_crypt_open(struct stage_info *info, const struct stage_crypt *c, const char *state_path,
                     stage_crypt_save_fn save, char **ret_reason);

/*
 * Closes info's dm-crypt mapping (none recorded, or not active: success). wipe: the partial
 * output of our own interrupted LUKS format (info->luks_pending) is erased from the mapped
 * device after, when the stage that started it is given up (the caller checks the mapping is
 * alive and writable). Errors: -EBUSY still in use, -EIO.
 */
int stage_crypt_close(const struct stage_info *info, bool wipe, char **ret_reason);

/* Grows info's dm-crypt mapping to its (grown) mapped device; no key needed. No mapping
 * recorded: success. Errors: -ENOENT not active. */
int stage_crypt_resize(const struct stage_info *info, char **ret_reason);

/* Whether info's dm-crypt mapping (if it records one over a mapped device) is active; *why
 * (may be NULL) says what is missing. */
bool stage_crypt_alive(const struct stage_info *info, char **why);
