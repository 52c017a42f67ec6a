/* SPDX-License-Identifier: Apache-2.0 */
#include <errno.h>
#include <string.h>

#include "driver/host/kms.h"
#include "plugin/node_crypt.h"
#include "plugin/params.h"
#include "plugin/plugin.h"

int node_crypt_prepare(struct call *c, const Csi__V1__NodeStageVolumeRequest *req,
                       struct stage_crypt *ret)
{
	const char *encrypted, *kms_id, *pass;
	struct kms *k = NULL;
	int r;

	ret->kms = NULL;
	encrypted = params_map_get((void *const *)req->volume_context, req->n_volume_context,
	                           "encrypted");
	if (isempty(encrypted) || strcmp(encrypted, "false") == 0)
		return 0;
	if (strcmp(encrypted, "true") != 0)
		return call_fail(c, STATUS_INVALID_ARGUMENT,
		                 "volume_context.encrypted '%s' is not 'true' or 'false'",
		                 encrypted);
	kms_id = params_map_get((void *const *)req->volume_context, req->n_volume_context,
	                        "encryptionKMSID");
	if (!kms_id_known(kms_id))
		return call_fail(c, STATUS_INVALID_ARGUMENT,
		                 "volume_context.encryptionKMSID '%s' names no KMS this driver has "
		                 "(only '' or '%s')",
		                 kms_id, KMS_TYPE_METADATA);
	pass = params_map_get((void *const *)req->secrets, req->n_secrets, "encryptionPassphrase");
	if (isempty(pass))
		return call_fail(
		        c, STATUS_INVALID_ARGUMENT,
		        "secrets: encryptionPassphrase is required for an encrypted volume "
		        "(in the node-stage secret of the StorageClass)");
	r = kms_metadata_new(pass, strlen(pass), &k);
	if (r == -EINVAL)
		return call_fail(c, STATUS_INVALID_ARGUMENT,
		                 "secrets: encryptionPassphrase is longer than %u bytes",
		                 KMS_PASSPHRASE_MAX);
	if (r < 0)
		return r;
	ret->kms = k;
	return 1;
}
