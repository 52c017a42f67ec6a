/* SPDX-License-Identifier: Apache-2.0 */
/*
 * A snapshot's journal entry ("rbdcsi.snapshot.<uuid>", see snapshot.h): its fields and states.
 * Internal to snapshot.c and snapshot_lookup.c, the two files that read and write it.
 */
#pragma once

#include "driver/ceph/cluster_ioctx.h"
#include "driver/ceph/volume_id.h"

/* Entry fields. */
#define F_NAME         "name"
#define F_SOURCE       "source"
#define F_SOURCE_IMAGE "source_image"
#define F_IMAGE        "image"
#define F_STATE        "state"
#define F_PREV_STATE   "prev_state"
#define F_RESERVED_AT  "reserved_at"
#define F_CREATED_AT   "created_at"
#define F_SIZE         "size"
#define F_CHAIN        "chain"

#define STATE_RESERVED "reserved"
#define STATE_CLONED   "cloned"
#define STATE_CREATED  "created"
#define STATE_DELETING "deleting"

/* Opens the ioctx of a snapshot id. -ENOENT for a volume id or a gone pool, -EINVAL. */
int snapshot_pool_open(struct cluster *c, const struct volume_id *id, rados_ioctx_t *ret);
