/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The node-side stage/unstage transaction behind NodeStageVolume/NodeUnstageVolume.
 *
 * Stage: map (fuse | krbd | nbd | auto = the first available of krbd, nbd, fuse) -> probe ->
 * format only if blank -> mount at the staging path (filesystem volumes); block volumes are
 * only mapped, and the device is recorded for publish. Every failure undoes the earlier steps:
 * no mapped device, loop device, rbd-fuse process or mount is left behind.
 *
 * What was staged goes in a JSON state file (json-c), written atomically (0600) under the
 * caller's state directory as <state_dir>/<sha256(volume id)>.json, BEFORE mapping (so a crash
 * mid-stage can be undone) and after each step. It never holds the key. rbd-fuse mount
 * directories live in <state_dir>/fuse/<sha256(volume id)>.
 *
 * Unstage reads it and undoes everything in reverse, idempotently (no state and nothing mounted
 * is success), within a time bound even when the cluster is dead (for rbd-fuse by killing the
 * daemon, which aborts the FUSE connection), and reports what it had to force.
 *
 * Callers serialise calls per volume id (the plugin's per-volume lock); different volumes may
 * be staged concurrently.
 *
 * Failpoints (driver/base/failpoint.h; crash tests in tests/integration/test_node_crash.py):
 * node-stage:after-state, :fuse-spawned and :after-fuse-daemon (mapper_fuse.c), :after-map,
 * :after-state-mapped, :after-state-formatting, :during-mkfs (fs.c), :after-mkfs,
 * :after-state-formatted, :after-mount, :after-state-staged; node-undo:after-umount, :after-wipe,
 * :after-unmap (unstage and the rollback of a half stage). How a retry converges: "Crash
 * consistency" in stage.c.
 */
#pragma once

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "driver/base/macro.h"
#include "driver/host/mapper.h"
#include "driver/host/stage_info.h"

struct path_resolved;

#define STAGE_TIMEOUT_DEFAULT_USEC (60ULL * 1000000ULL)
#define STAGE_STATE_MAX            (64U * 1024U)

struct stage_request {
	const char *state_dir; /* absolute; created 0700 if missing */
	const char *volume_id;
	const char
	        *staging_path; /* absolute; the filesystem is mounted here (created if missing) */
	enum stage_access access;
	const char *fstype;        /* mount access: "ext4" or "xfs"; NULL/"": what the device has,
	                            * else ext4 */
	const char *mount_options; /* extra comma-separated mount options, may be NULL */
	const char *mkfs_options;  /* added to the mkfs defaults (space-separated), may be NULL */
	enum mapper_type mapper;
	const char *cluster_id; /* recorded and compared, may be NULL */
	/* map.read_only makes the whole volume read-only (device and mount). map.map_options is
	 * the ceph-csi style "krbd:...;nbd:..." string; each mapper gets its part. */
	struct mapper_params map;
	const char *unmap_options; /* "krbd:force" style, recorded for unstage */
	const char *sys_root;      /* NULL or "/"; tests: a simulated sysfs root for krbd */
	uint64_t timeout_usec;     /* 0: STAGE_TIMEOUT_DEFAULT_USEC */
	/* The staging path resolved beneath the kubelet dir (driver/base/path.h): mkdir and
	 * mount act on it, never on staging_path's text (which is what gets recorded). NULL:
	 * staging_path is used as text (tests). */
	struct path_resolved *staging_at;
	/* Encrypted volume (LUKS2 on the mapped device, driver/host/stage_crypt.h), or NULL. */
	const struct stage_crypt *crypt;
};

struct stage_info *stage_info_free(struct stage_info *info);
DEFINE_TRIVIAL_CLEANUP_FUNC(struct stage_info *, stage_info_free)

/*
 * Stages a volume. Idempotent: when the state says it is staged with the same parameters and
 * everything is still in place (mapping alive, same device mounted), returns 0 at once; a stale
 * or half-done earlier attempt (crash, reboot), whatever its parameters, is rolled back first
 * (tools it left running on the device are killed) and the stage redone; a format that such an
 * attempt had started is redone (see "Crash consistency" in stage.c). *ret_info (may be NULL)
 * gets the staged state (caller frees).
 * Errors: -EINVAL bad request, -EEXIST the volume is completely staged (all in place) with
 * different parameters,
 * -EBUSY the staging path holds a mount that is not ours, -ENODEV the requested mapper is not
 * available (or none is, for auto), -EMEDIUMTYPE the device carries another signature or
 * filesystem, or is too small for the filesystem (xfs: FS_XFS_MIN_SIZE), -EROFS blank device on
 * a read-only volume, -ENOENT image or pool missing,
 * -EACCES/-EPERM refused by the cluster, -ETIMEDOUT; *ret_reason says what and why.
 */
int stage_volume(const struct stage_request *req, struct stage_info **ret_info, char **ret_reason);

/*
 * Unstages a volume: unmounts staging_path (when the volume has a filesystem), unmaps, removes
 * the state file. No state is success and touches nothing. Bounded by timeout_usec (0:
 * STAGE_TIMEOUT_DEFAULT_USEC) even with a dead cluster: rbd-fuse volumes get their daemon killed
 * when an unmount hangs, and *forced (may be NULL; set on every return) says so. staging_path may
 * be NULL (taken from the state); it is resolved from "/" without following symlinks, and a
 * mount there that is not this volume's device is left alone (see stage_unstage_at()).
 * Errors: -EBUSY still in use (published bind mounts, open device) or a foreign mount,
 * -ETIMEDOUT, -EINVAL; the state file is kept on failure so that a retry continues.
 */
int stage_unstage(const char *state_dir, const char *volume_id, const char *staging_path,
                  uint64_t timeout_usec, bool *forced, char **ret_reason);

/*
 * stage_unstage() on a staging path resolved beneath the kubelet dir (driver/base/path.h; NULL:
 * the path the state records, resolved from "/"), acting only on what this volume owns: no
 * state touches nothing and is success; the mount at the staging path is unmounted only when it
 * holds this volume's device (its st_dev is the recorded device's st_rdev, or libmount names
 * the device as its source). The staging directory itself is left to the CO.
 * Errors: -EBUSY a foreign mount is there (left alone; *ret_reason names it), -EINVAL the
 * volume is staged at another path, and as stage_unstage().
 */
int stage_unstage_at(const char *state_dir, const char *volume_id, struct path_resolved *staging,
                     uint64_t timeout_usec, bool *forced, char **ret_reason);

/*
 * Finds a volume other than except_volume_id (may be NULL) whose state file stages the same
 * image (cluster id, pool, RADOS namespace, image name) on this node; *ret_volume_id gets its
 * id (caller frees). Errors: -ENOENT none.
 */
int stage_find_image(const char *state_dir, const char *cluster_id, const char *pool,
                     const char *rados_namespace, const char *image, const char *except_volume_id,
                     char **ret_volume_id);

/* Reads the state of volume_id. Errors: -ENOENT not staged (no state), -EINVAL bad file. */
int stage_load(const char *state_dir, const char *volume_id, struct stage_info **ret_info);

/* Writes info to state_path atomically (0600). Errors: -EIO, -ENOSPC, -ENOMEM. */
int stage_state_save(const char *state_path, const struct stage_info *info);

/* The state file path of volume_id ("<state_dir>/<sha256>.json"); caller frees. */
int stage_state_path(const char *state_dir, const char *volume_id, char **ret_path);

/*
 * Lists the volume ids with a state file in state_dir (NULL-terminated; free with
 * exec_strv_free()). Errors: -ENOENT no state directory.
 */
int stage_list(const char *state_dir, char ***ret_volume_ids);

struct stage_health {
	bool staged;        /* the state says "staged" */
	bool mapping_alive; /* device present (and for rbd-fuse: daemon alive, mount and loop) */
	bool mounted;       /* mount access: the device is mounted at the staging path */
	bool abnormal;      /* anything missing, or the filesystem went read-only / dead */
	char *message;      /* what is wrong, NULL when nothing; owned */
};
void stage_health_done(struct stage_health *h);

/*
 * Re-finds everything a state file describes after a restart and tells what still works
 * (for NodeGetVolumeStats' volume condition, and for start-up checks). A rbd-fuse daemon found
 * under a new pid is recorded. Errors: -ENOENT not staged.
 */
int stage_recover(const char *state_dir, const char *volume_id, struct stage_health *ret_health);

/*
 * Expands a staged volume after the image grew to new_size bytes (0: unknown): for rbd-fuse
 * waits (bounded) until the image file shows the new size and refreshes the loop device's
 * capacity; for krbd/nbd waits until the device shows it; then grows the filesystem (mount
 * access). *ret_size (may be NULL) gets the device size.
 * Errors: -ENOENT not staged, -ETIMEDOUT size did not change, -EPERM online ext4 grow refused
 * (no CAP_SYS_RESOURCE), -EIO grow failed; *ret_reason.
 */
int stage_expand(const char *state_dir, const char *volume_id, uint64_t new_size,
                 uint64_t timeout_usec, uint64_t *ret_size, char **ret_reason);
