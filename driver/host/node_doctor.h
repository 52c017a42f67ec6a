/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The node half of `rbdcsi doctor --node`: compares the stage state files (driver/host/stage.h)
 * with the mount table.
 *   - state_without_mount: a state file says a volume is staged (or half-staged: a stage that
 *     died between map and mount), but its staging path holds no mount of its device (for block
 *     volumes: the device is gone).
 *   - mount_without_state: a mount below staging_root (the kubelet's staging directory of this
 *     driver), or an rbd-fuse mount below <state dir>/fuse, that no state file describes.
 * It only reports: the running node plugin may be staging the same volume right now (it holds
 * the per-volume lock, this command cannot), and NodeUnstageVolume is the repair that knows
 * what a state means. Reads the state directory and /proc/self/mountinfo; changes nothing.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>

#include "driver/base/macro.h"
#include "driver/host/mapper.h"

enum node_doctor_kind {
	NODE_DOCTOR_STATE_WITHOUT_MOUNT,
	NODE_DOCTOR_MOUNT_WITHOUT_STATE,
	_NODE_DOCTOR_KIND_MAX,
};

/* "state_without_mount", "mount_without_state"; NULL for a bad kind. */
const char *node_doctor_kind_to_string(enum node_doctor_kind kind);

struct node_doctor_finding {
	enum node_doctor_kind kind;
	char *path;      /* the state file or the mount point */
	char *volume_id; /* from the state file, else NULL */
	char *detail;
};

struct node_doctor_report {
	struct node_doctor_finding *findings;
	size_t n_findings;
	size_t n_states;                 /* state files looked at */
	size_t n_by_mapper[_MAPPER_MAX]; /* the same, by the mapper they record */
	size_t n_abnormal;               /* of them, those with a state_without_mount finding */
};

/* Frees r and what it owns. Accepts NULL, returns NULL. */
struct node_doctor_report *node_doctor_report_free(struct node_doctor_report *r);

DEFINE_TRIVIAL_CLEANUP_FUNC(struct node_doctor_report *, node_doctor_report_free)

/*
 * state_dir: the stage state directory (<state-dir>/<drivername>/stage); staging_root: the
 * directory below which the kubelet makes this driver's staging paths (absolute). A missing
 * state directory is no error (nothing staged). Returns 0 and *ret; -EINVAL for paths that are
 * not absolute; -EIO when the mount table cannot be read; -ENOMEM.
 */
int node_doctor_run(const char *state_dir, const char *staging_root,
                    struct node_doctor_report **ret);
