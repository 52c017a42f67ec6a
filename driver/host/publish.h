/* SPDX-License-Identifier: Apache-2.0 */
/*
 * What NodePublishVolume made, per volume: the targets it bind-mounted, in a JSON file
 * <state_dir>/<sha256(volume id)>.targets (json-c, written atomically, 0600) next to the stage
 * state. Each target is recorded BEFORE its bind mount (mounted: false) and marked after, so a
 * crash in between leaves a record that unpublish and a retried publish recognise.
 *
 * Ownership: a target is this volume's only while the record lists it; unpublish acts only on
 * listed targets, and on a mount there only when it shows the recorded device number (the
 * filesystem's st_dev for a filesystem volume, the device node's st_rdev for a block volume).
 *
 * Callers serialise calls per volume id (the plugin's per-volume lock).
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include "driver/base/path.h"

#define PUBLISH_TARGETS_MAX 256
#define PUBLISH_FILE_MAX    (1024U * 1024U)

struct publish_target {
	char *target;   /* the target path, normalised (path_resolved.text) */
	bool read_only; /* bind mounted read-only */
	bool block;     /* a block volume: the target is a file with the device bound on it */
	dev_t devno;    /* the staged device's st_rdev; 0 in records of older versions */
	bool mounted;   /* false: recorded before the bind, which may or may not have happened */
};

struct publish_record {
	struct publish_target *targets;
	size_t n;
};

void publish_record_done(struct publish_record *rec);

/*
 * Reads volume_id's record. No file is an empty record; a malformed file is an empty record
 * too (it is logged at debug level: nothing can be owned through it).
 * Errors: -EACCES, -EFBIG, -ENOMEM.
 */
int publish_load(const char *state_dir, const char *volume_id, struct publish_record *ret);

/*
 * Writes the record atomically; an empty one removes the file.
 * Errors: -ENOENT no state directory, -ENOSPC, -EIO.
 */
int publish_save(const char *state_dir, const char *volume_id, const struct publish_record *rec);

/* Removes volume_id's record file (missing is success). Errors: -EACCES. */
int publish_forget(const char *state_dir, const char *volume_id);

/* Index of target in rec, or -ENOENT. */
int publish_find(const struct publish_record *rec, const char *target);

/*
 * Adds or replaces (by target) an entry; strings are copied.
 * Errors: -ENOMEM, -E2BIG more than PUBLISH_TARGETS_MAX targets.
 */
int publish_set(struct publish_record *rec, const struct publish_target *t);

/* Removes entry i (out of range is a no-op). */
void publish_remove(struct publish_record *rec, size_t i);

/* The step of publish_bind() that failed, for the caller's message. */
enum publish_step {
	PUBLISH_STEP_RECORD, /* recording the target before the bind */
	PUBLISH_STEP_TARGET, /* creating the target file or directory */
	PUBLISH_STEP_BIND,   /* the bind mount */
	PUBLISH_STEP_MARK,   /* marking the record mounted after the bind */
};

struct publish_bind_request {
	const char *state_dir;
	const char *volume_id;
	struct path_resolved *target; /* resolved (the last component may be missing); refreshed */
	const char *source; /* the device node (block) or "/proc/self/fd/N" of the staging mount */
	bool read_only;
	bool block;          /* the target is a file (created 0640), else a directory (0750) */
	dev_t devno;         /* recorded: the staged device's number */
	const char *options; /* per-mount flags for the bind (mount_bind_at()), may be NULL */
};

/*
 * NodePublishVolume's transaction on the host, in rec (volume_id's record, loaded by the
 * caller): records target (mounted: false) and saves the record, creates the target, binds
 * source on it, and marks the record mounted. A failure undoes what came before it: after the
 * target or the bind failed, the entry is removed again (a created target is left, empty);
 * when the mark cannot be saved, the bind is undone and the unmarked entry stays, which a retry
 * or an unpublish recognises. Returns 0; on failure *ret_step and:
 *   -E2BIG   rec already holds PUBLISH_TARGETS_MAX targets (PUBLISH_STEP_RECORD)
 *   -ENOTDIR, -EISDIR, -EEXIST, -ELOOP  something else is at the target (PUBLISH_STEP_TARGET)
 *   the errors of mount_bind_at() (PUBLISH_STEP_BIND) and of publish_save() (RECORD, MARK).
 */
int publish_bind(const struct publish_bind_request *req, struct publish_record *rec,
                 enum publish_step *ret_step);
