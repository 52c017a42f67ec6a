/* SPDX-License-Identifier: Apache-2.0 */
/*
 * ControllerPublishVolume's attach limit (plugin/attach_limit.c): with --max-volumes-per-node=N
 * given to the controller, a volume is not published to a node that already holds N attachment
 * records in the volume's pool and namespace.
 */
#pragma once

#include "driver/ceph/cluster.h"
#include "driver/ceph/volume_id.h"
#include "plugin/call.h"

/*
 * Returns 0 when node may get volume id (no limit set, the node holds fewer than the limit, or
 * it holds this volume already); fails the call with RESOURCE_EXHAUSTED (CSI: "the node
 * already has the max number of volumes published") when it may not, or with the listing's
 * error.
 */
int attach_limit_check(struct call *c, struct cluster *conn, const struct volume_id *id,
                       const char *node);
