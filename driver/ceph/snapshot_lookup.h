/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The read side of snapshots (snapshot.h): struct snapshot as read from a snapshot's journal
 * entry, and snapshot_lookup(). Below both snapshot.c (which writes the entries) and volume.c
 * (which restores volumes from snapshots), so that volume.c does not depend on snapshot.c, which
 * depends on volume.c for the source of a new snapshot. snapshot.h includes this header: users of
 * snapshots include snapshot.h.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "driver/base/macro.h"
#include "driver/ceph/cluster.h"
#include "driver/ceph/volume_id.h"

/* The RBD snapshot on a snapshot image that volumes are restored from (clone v2). */
#define SNAPSHOT_RESTORE_POINT "restore-point"

struct snapshot {
	char id[VOLUME_ID_MAX + 1]; /* the CSI snapshot_id */
	struct volume_id sid;       /* the same, decoded */
	char *name;                 /* request name */
	char *source_id;            /* the source volume id */
	char *pool;                 /* pool name */
	char *image;                /* the snapshot's RBD image */
	uint64_t size;              /* bytes */
	struct timespec created;    /* when it was cut */
	bool ready;                 /* ready_to_use: the restore point exists */
};

/* Frees s and what it owns. Accepts NULL, returns NULL. */
struct snapshot *snapshot_free(struct snapshot *s);

/* Frees an array from snapshot_list(). Accepts NULL. */
void snapshot_list_free(struct snapshot *s, size_t n);

DEFINE_TRIVIAL_CLEANUP_FUNC(struct snapshot *, snapshot_free)

/*
 * Looks a snapshot up by id (one that has been cut: ready or still being flattened). Returns 0
 * and *ret; -ENOENT when the pool, the entry or the image is gone, or id is no snapshot id.
 */
int snapshot_lookup(struct cluster *c, const struct volume_id *id, struct snapshot **ret);

/* ---- for snapshot.c (driver/ceph internal) ---- */

struct journal_entry;

/*
 * Fills s from a cut ("cloned" or "created") snapshot entry e with id sid in pool (the pool's
 * name). -EUCLEAN for an entry that is not cut or is damaged, -ENOMEM; on failure free what s
 * got with snapshot_done().
 */
int snapshot_fill(struct snapshot *s, const struct journal_entry *e, const struct volume_id *sid,
                  const char *pool);
/* As snapshot_fill(), into a new struct snapshot (free with snapshot_free()). */
int snapshot_new(const struct journal_entry *e, const struct volume_id *sid, const char *pool,
                 struct snapshot **ret);
/* Frees what s owns (not s) and zeroes it. */
void snapshot_done(struct snapshot *s);

/* "<seconds>.<nanoseconds>" <-> timespec (the entry's created_at). Parse errors: -EINVAL. */
void snapshot_time_format(const struct timespec *ts, char ret[static 32]);
int snapshot_time_parse(const char *s, struct timespec *ret);
