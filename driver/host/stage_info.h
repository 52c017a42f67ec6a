/* SPDX-License-Identifier: Apache-2.0 */
/*
 * What a stage records (driver/host/stage.h): the access type and the state of one staged
 * volume, shared by stage.c and the parts it calls back into (stage_crypt.c) without those
 * parts depending on stage.c. Data only; stage.h has the functions.
 */
#pragma once

#include <stdbool.h>

#include "driver/host/mapper.h"

enum stage_access {
	STAGE_ACCESS_MOUNT, /* a filesystem mounted at the staging path */
	STAGE_ACCESS_BLOCK, /* a raw block device, bind-mounted by publish */
};

/* What a state file says (and, from stage_volume(), what was just staged). */
struct stage_info {
	char *volume_id;
	char *phase; /* "mapping", "mapped", "formatting", "staged" */
	enum mapper_type mapper;
	enum stage_access access;
	char *device; /* the block device: /dev/loopN (fuse), /dev/rbdN, /dev/nbdN */
	char *staging_path;
	char *fstype; /* mount access: the filesystem mounted */
	char *mount_options;
	bool read_only;
	bool formatted; /* this stage created the filesystem */
	/* Saved: our mkfs was started (or is about to be) on a device found blank and has not
	 * been seen to finish; whatever signature the image carries is its partial output. */
	bool mkfs_pending;
	/* Set by stage_volume() only (not saved): the filesystem was smaller than the device and
	 * was grown; or why growing it failed (the volume is staged all the same). */
	bool grown;
	char *grow_failure;
	char *cluster_id;
	char *monitors;
	char *user;
	char *pool;
	char *rados_namespace;
	char *image;
	char *unmap_options;
	char *sys_root;
	/* The mapper's own state (struct mapper_ops: rbd-fuse's pid and mount directory, krbd's
	 * device id), saved under its own keys; owned, freed with mapper_state_free(). */
	void *mapper_state;
	/* Encrypted volumes (driver/host/stage_crypt.h): the dm-crypt name (recorded before the
	 * map), the mapped device under it (device is then /dev/mapper/<crypt_name>), and
	 * "our LUKS2 format was started on a device probed blank" (saved before it). */
	char *crypt_name;
	char *mapped_device;
	bool luks_pending;
};
