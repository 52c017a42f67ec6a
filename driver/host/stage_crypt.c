/* SPDX-License-Identifier: Apache-2.0 */
#include <errno.h>
#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "driver/base/failpoint.h"
#include "driver/base/log.h"
#include "driver/base/macro.h"
#include "driver/base/sha256.h"
#include "driver/host/blockdev.h"
#include "driver/host/crypt.h"
#include "driver/host/fs.h"
#include "driver/host/kms.h"
#include "driver/host/reason.h"
#include "driver/host/stage_info.h"
#include "driver/host/stage_crypt.h"

#define TOKEN_TYPE "rbdcsi-dek"
#define NAME_HEX   32

int stage_crypt_name(const char *volume_id, char **ret)
{
	char hex[SHA256_HEX_SIZE];
	char *name;

	if (isempty(volume_id))
		return -EINVAL;
	sha256_hex(volume_id, strlen(volume_id), hex);
	if (asprintf(&name, "rbdcsi-%.*s", NAME_HEX, hex) < 0)
		return -ENOMEM;
	*ret = name;
	return 0;
}

static void json_putp(json_object **o)
{
	if (*o)
		json_object_put(*o);
}

/* The token of a new volume: the wrapped DEK and the KMS that wrapped it (not secret). */
static int token_build(const struct stage_crypt *c, const char *blob, char **ret)
{
	__attribute__((cleanup(json_putp))) json_object *o = json_object_new_object();
	const char *text;
	char *s;

	if (!o)
		return -ENOMEM;
	json_object_object_add(o, "type", json_object_new_string(TOKEN_TYPE));
	json_object_object_add(o, "keyslots", json_object_new_array());
	json_object_object_add(o, "kms", json_object_new_string(c->kms->ops->type));
	json_object_object_add(o, "dek", json_object_new_string(blob));
	text = json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN);
	s = text ? strdup(text) : NULL;
	if (!s)
		return -ENOMEM;
	*ret = s;
	return 0;
}

/* The DEK of device, unwrapped from its token. */
static int dek_from_header(const char *device, const struct stage_crypt *c, struct kms_secret **ret,
                           char **ret_reason)
{
	__attribute__((cleanup(json_putp))) json_object *o = NULL;
	_cleanup_free_ char *json = NULL;
	json_object *kms, *dek;
	int r;

	r = luks_token_get(device, TOKEN_TYPE, &json);
	if (r == -ENOENT || r == -EINVAL) {
		reason_set(
		        ret_reason,
		        "%s carries a LUKS header without rbdcsi's key token: not a volume rbdcsi "
		        "encrypted, refusing to touch it",
		        device);
		return -EMEDIUMTYPE;
	}
	if (r < 0) {
		reason_set(ret_reason, "cannot read the LUKS2 header of %s: %s", device,
		           strerror(-r));
		return r;
	}
	o = json_tokener_parse(json);
	if (!o || !json_object_object_get_ex(o, "kms", &kms) ||
	    !json_object_object_get_ex(o, "dek", &dek) ||
	    !json_object_is_type(kms, json_type_string) ||
	    !json_object_is_type(dek, json_type_string)) {
		reason_set(ret_reason, "the rbdcsi key token of %s is malformed", device);
		return -EKEYREJECTED;
	}
	if (strcmp(json_object_get_string(kms), c->kms->ops->type) != 0) {
		reason_set(ret_reason,
		           "the data key of %s is wrapped by the KMS '%s', not by '%s' "
		           "(encryptionKMSID)",
		           device, json_object_get_string(kms), c->kms->ops->type);
		return -EKEYREJECTED;
	}
	r = kms_unwrap(c->kms, json_object_get_string(dek), ret);
	if (r < 0) {
		reason_set(ret_reason,
		           "the encryptionPassphrase does not unwrap the data key of the encrypted "
		           "volume on %s (wrong passphrase, or a damaged header)",
		           device);
		return r == -EINVAL ? -EKEYREJECTED : r;
	}
	return 0;
}

/* A new DEK, wrapped into a token, and the LUKS2 format of device with both. */
static int format_new(struct stage_info *info, const struct stage_crypt *c, bool over_own,
                      struct kms_secret **ret_dek, char **ret_reason)
{
	_cleanup_(kms_secret_freep) struct kms_secret *dek = NULL;
	_cleanup_free_ char *blob = NULL, *token = NULL;
	struct luks_options opts = { .fast_pbkdf = true, .over_own = over_own };
	int r;

	r = kms_dek_generate(&dek);
	r = r ?: kms_wrap(c->kms, dek, &blob);
	r = r ?: token_build(c, blob, &token);
	if (r < 0) {
		reason_set(ret_reason, "cannot create the volume's data key: %s", strerror(-r));
		return r;
	}
	opts.token_json = token;
	r = luks_format(info->device, dek->data, dek->len, &opts);
	if (r < 0) {
		reason_set(ret_reason, "cannot format %s as LUKS2: %s", info->device, strerror(-r));
		return r;
	}
	failpoint("node-stage:after-luks-format");
	log_debug("Formatted %s as LUKS2 for %s", info->device, info->volume_id);
	*ret_dek = TAKE_PTR(dek);
	return 0;
}

static int save(stage_crypt_save_fn save_fn, const struct stage_info *info, const char *state_path,
                char **ret_reason)
{
	int r = save_fn(state_path, info);

	if (r < 0)
		reason_set(ret_reason, "cannot update state file %s: %s", state_path, strerror(-r));
	return r;
}

int stage_crypt_open(struct stage_info *info, const struct stage_crypt *c, const char *state_path,
                     stage_crypt_save_fn save_fn, char **ret_reason)
{
	_cleanup_(kms_secret_freep) struct kms_secret *dek = NULL;
	_cleanup_free_ char *types = NULL, *path = NULL;
	bool was_pending = info->luks_pending;
	int r;

	if (!c || !c->kms || !save_fn || !info->crypt_name || !info->device)
		return -EINVAL;
	if (!was_pending) {
		r = blockdev_probe(info->device, &types);
		if (r < 0) {
			reason_set(ret_reason, "cannot probe %s: %s", info->device, strerror(-r));
			return r;
		}
	}
	if (!was_pending && strcmp(strempty(types), "crypto_LUKS") == 0) {
		r = dek_from_header(info->device, c, &dek, ret_reason);
		if (r < 0)
			return r;
	} else if (was_pending || blockdev_types_blank(types)) {
		if (info->read_only) {
			reason_set(ret_reason,
			           "device %s is blank and the volume is read-only: no encrypted "
			           "volume to open",
			           info->device);
			return -EROFS;
		}
		/* Recorded before libcryptsetup writes a byte (see kms.h). */
		info->luks_pending = true;
		r = save(save_fn, info, state_path, ret_reason);
		if (r < 0)
			return r;
		failpoint("node-stage:after-state-luks-formatting");
		r = format_new(info, c, was_pending, &dek, ret_reason);
		if (r < 0)
			return r;
	} else {
		reason_set(ret_reason,
		           "device %s carries '%s', not a LUKS2 header: an encrypted volume is "
		           "never formatted over it",
		           info->device, types);
		return -EMEDIUMTYPE;
	}
	r = luks_open_mode(info->device, info->crypt_name, dek->data, dek->len, info->read_only,
	                   &path);
	if (r < 0) {
		reason_set(ret_reason, "cannot open %s as the dm-crypt device %s: %s", info->device,
		           info->crypt_name,
		           r == -EPERM ? "the data key does not open its LUKS2 keyslot"
		           : r == -ENODEV || r == -EOPNOTSUPP
		                   ? "no device-mapper/dm-crypt in this kernel"
		                   : strerror(-r));
		if (r == -EOPNOTSUPP)
			return -ENODEV;
		return r == -EPERM ? -EKEYREJECTED : r;
	}
	failpoint("node-stage:after-luks-open");
	free(info->mapped_device);
	info->mapped_device = TAKE_PTR(info->device);
	info->device = TAKE_PTR(path);
	info->luks_pending = false;
	return save(save_fn, info, state_path, ret_reason);
}

int stage_crypt_close(const struct stage_info *info, bool wipe, char **ret_reason)
{
	const char *raw = info->mapped_device ?: info->device;
	int r;

	if (!info->crypt_name)
		return 0;
	r = luks_close(info->crypt_name);
	if (r < 0) {
		reason_set(ret_reason, "cannot close the dm-crypt device %s: %s", info->crypt_name,
		           r == -EBUSY ? "still in use" : strerror(-r));
		return r;
	}
	if (wipe && info->luks_pending && raw) {
		r = fs_wipe_own(raw);
		if (r < 0) {
			reason_set(ret_reason,
			           "cannot erase what an interrupted LUKS2 format left on %s: %s",
			           raw, strerror(-r));
			return r;
		}
		log_debug("Erased the partial LUKS2 header on %s", raw);
	}
	return 0;
}

int stage_crypt_resize(const struct stage_info *info, char **ret_reason)
{
	int r;

	if (!info->crypt_name)
		return 0;
	r = luks_resize(info->crypt_name, NULL, 0);
	if (r < 0) {
		reason_set(ret_reason, "cannot grow the dm-crypt device %s: %s", info->crypt_name,
		           strerror(-r));
		return r;
	}
	return 0;
}

bool stage_crypt_alive(const struct stage_info *info, char **why)
{
	if (!info->crypt_name || !info->mapped_device)
		return true;
	if (luks_active(info->crypt_name) > 0)
		return true;
	reason_set(why, "dm-crypt device %s is not open", info->crypt_name);
	return false;
}
