/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The CSI GroupController service (volume group snapshots), and the hooks snapshot.c calls so
 * that member snapshots carry their group and are not deleted on their own.
 */
#pragma once

#include "driver/ceph/cluster.h"
#include "driver/ceph/volume_id.h"
#include "plugin/call.h"

int group_controller_get_capabilities(struct call *c, const void *request, void *response);
int group_controller_create_volume_group_snapshot(struct call *c, const void *request,
                                                  void *response);
int group_controller_delete_volume_group_snapshot(struct call *c, const void *request,
                                                  void *response);
int group_controller_get_volume_group_snapshot(struct call *c, const void *request, void *response);

/*
 * DeleteSnapshot of a member of a group snapshot that exists: fails the call with
 * FAILED_PRECONDITION naming the group (CSI: the CO deletes members through
 * DeleteVolumeGroupSnapshot). Returns 0 for any other snapshot.
 */
int group_controller_member_guard(struct call *c, struct cluster *conn,
                                  const struct volume_id *snapshot_id);

/* The group_snapshot_id of a member snapshot (by its request name), call-allocated, or NULL. */
const char *group_controller_member_group(struct call *c, const char *snapshot_name);
