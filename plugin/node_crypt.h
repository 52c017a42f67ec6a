/* SPDX-License-Identifier: Apache-2.0 */
/*
 * NodeStageVolume's part of encrypted volumes (design: driver/host/kms.h): reads the volume
 * context's `encrypted` and `encryptionKMSID` and the node-stage secret's
 * `encryptionPassphrase`, and makes the KMS the stage uses. The passphrase is copied only into
 * the KMS's locked memory and never logged.
 */
#pragma once

#include "csi.pb-c.h"
#include "driver/host/stage_crypt.h"
#include "plugin/call.h"

/*
 * 0: not encrypted (ret->kms NULL); 1: encrypted, ret->kms set (free it with kms_free()). Else
 * call_fail(INVALID_ARGUMENT) naming volume_context.encrypted, volume_context.encryptionKMSID
 * or secrets.encryptionPassphrase.
 */
int node_crypt_prepare(struct call *c, const Csi__V1__NodeStageVolumeRequest *req,
                       struct stage_crypt *ret);
