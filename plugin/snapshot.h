/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The CSI snapshot calls of the Controller service (plugin/snapshot.c): CreateSnapshot,
 * DeleteSnapshot, ListSnapshots, GetSnapshot, on driver/ceph/snapshot.h; and what CreateVolume
 * needs for a volume_content_source (restore from a snapshot, clone of a volume).
 */
#pragma once

#include <stdint.h>

#include "csi.pb-c.h"
#include "driver/ceph/volume_id.h"
#include "plugin/call.h"

int controller_create_snapshot(struct call *c, const void *request, void *response);
int controller_delete_snapshot(struct call *c, const void *request, void *response);
int controller_list_snapshots(struct call *c, const void *request, void *response);
int controller_get_snapshot(struct call *c, const void *request, void *response);

/*
 * Checks a CreateVolume volume_content_source for a volume to be made in cluster_id and decodes
 * the source's id into *ret. Fails the call (call_fail) with INVALID_ARGUMENT when neither a
 * snapshot nor a volume is set or its id is empty, or when the source lives in another cluster
 * (named in the message); NOT_FOUND when the id is not a snapshot (volume) id of this driver.
 */
int controller_content_source(struct call *c, const Csi__V1__VolumeContentSource *source,
                              const char *cluster_id, struct volume_id *ret);

/*
 * The deadline to give driver calls that may wait for a flatten: the call's deadline less a
 * margin to answer in (a tenth of the time left, at most 2 s), so that "still being flattened"
 * reaches the client before it gives up. 0 when the call has no deadline.
 */
uint64_t controller_flatten_deadline(const struct call *c);
