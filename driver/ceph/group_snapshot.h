/* SPDX-License-Identifier: Apache-2.0 */
/*
 * CSI volume group snapshots: crash-consistent snapshots of several volumes cut at one instant,
 * each member an ordinary CSI snapshot of this driver (driver/ceph/snapshot.h) that restores,
 * lists and deletes on its own.
 *
 * The cut: librbd's RBD group snapshot. The volumes' images are put into a temporary RBD group
 * "rbdcsi-group-<uuid>" (in the anchor pool, below) and rbd_group_snap_create2() takes the group
 * snapshot "cut": librbd asks every client of every image to quiesce, takes every image's
 * exclusive lock while refusing to hand it back with -EBUSY (so the clients' writes wait, they
 * do not fail), snapshots each image and lets go. Every member is cut while no member can be
 * written, which is a crash-consistent point for the whole group.
 *   Why not our own freeze (rbd_lock_acquire() on every image, then our usual snapshots): a
 * lock taken with rbd_lock_acquire() answers a client's lock request with -EROFS, and librbd
 * then fails the client's write with EROFS: measured on Ceph 16.2.15, a writer looping on two
 * images got "RBD read-only image" from its next write. A group snapshot makes writers wait.
 *
 * The members: each member snapshot is the CSI snapshot named "rbdcsi-group:<group id>:<k>"
 * (k = the source's index in the sorted source list) in its source's pool, and its image
 * "csi-snap-<uuid>" is made from the image's snapshot in the group snapshot before
 * snapshot_create() adopts it (snapshot_create() takes an existing snapshot image as its
 * clone). librbd before Squid (19.2) cannot clone from a snapshot in the group namespace
 * (rbd_clone3() finds snapshots by name in the user namespace only, measured: -ENOENT on
 * 16.2.15; rbd_clone4(), clone by snapshot id, is new in 19.2), and rbd_deep_copy() of an image
 * opened at a group snapshot aborts the process in 16.2.15 (ceph_assert in
 * object_map::SnapshotRollbackRequest). So the member image is a copy: the allocated extents of
 * the image at the group snapshot (rbd_diff_iterate2(), parents included) are read and written
 * into "csi-snap-<uuid>.part", which is renamed to "csi-snap-<uuid>" once complete. The copy
 * records its progress on the ".part" image (metadata "rbdcsi.copied", every 64 MiB and when it
 * stops) and stops at the call's deadline: the call answers -EINPROGRESS (ABORTED) and the
 * retry, or the retry after a crash, resumes where it stopped, so a large volume converges over
 * several calls instead of starting over each time. A member costs a copy of the data the
 * volume holds, not a copy-on-write clone: see README.md "Volume group snapshots".
 *
 * Journal: the directory "rbdcsi.group-snapshots" and entries "rbdcsi.group-snapshot.<uuid>" in
 * the anchor pool and namespace, that of the first source volume id in sorted order:
 *
 *   name        the CSI request name
 *   sources     the source volume ids, sorted, comma separated
 *   state       "reserved" -> "cut" -> "created"; "deleting"
 *   created_at  "<seconds>.<nanoseconds>": the group snapshot's time (from "cut" on)
 *
 * The group snapshot id is a volume_id.h id of kind 'g' with the anchor pool, namespace and
 * uuid. Names are unique per anchor pool and namespace.
 *
 * Create: reserve the name -> entry -> RBD group, images added, group snapshot (a group
 * snapshot left incomplete by a crash is removed and taken again) -> "cut" -> for each member:
 * reserve its snapshot name, copy, rename, snapshot_create() -> remove the group snapshot, the
 * images from the group, the group -> "created". Failpoints: group-snapshot-create:after-reserve,
 * :after-object, :after-group, :after-cut, :after-record-cut, :after-member-copy, :after-member,
 * :after-ungroup; group-snapshot-copy:one-chunk (test-only: every copy stops after one 4 MiB chunk
 * as if at the deadline).
 *
 * Delete: mark "deleting" -> each member: snapshot_delete(), and the image, ".part" image and
 * name reservation of a member that snapshot_create() never adopted -> the group snapshot,
 * group membership and group -> the directory key -> the entry. Failpoints:
 * group-snapshot-delete:after-mark, :after-members, :after-ungroup, :after-unreserve.
 *
 * Members carry the group: the snapshot name says which group it belongs to
 * (group_snapshot_member_of()), CreateSnapshot refuses names with the reserved prefix, and
 * DeleteSnapshot of a member refuses while its group exists (group_snapshot_member_check()):
 * CSI has the CO delete members through DeleteVolumeGroupSnapshot.
 *
 * Limits: at most GROUP_SNAPSHOT_MEMBERS_MAX sources, of one cluster; a source image that is in
 * an RBD group of its own (not this driver's) cannot be in a second one (-EBUSY); the images
 * need the exclusive-lock feature for the quiesce to hold writers (librbd snapshots images
 * without it as they are).
 *
 * Error codes are chosen for the plugin's errno -> gRPC table; every function may also return
 * -ETIMEDOUT and -ENOMEM.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "driver/base/macro.h"
#include "driver/ceph/cluster.h"
#include "driver/ceph/snapshot.h"
#include "driver/ceph/volume_id.h"

#define GROUP_SNAPSHOT_MEMBERS_MAX   64
#define GROUP_SNAPSHOT_MEMBER_PREFIX "rbdcsi-group:"
#define GROUP_SNAPSHOT_RBD_PREFIX    "rbdcsi-group-"
#define GROUP_SNAPSHOT_RBD_SNAP      "cut"

struct group_snapshot_request {
	const char *name;                /* CSI request name, 1..1024 bytes */
	const struct volume_id *sources; /* kind 'v', one cluster, any order, no duplicates */
	size_t n_sources;                /* 1..GROUP_SNAPSHOT_MEMBERS_MAX */
	unsigned clone_depth_max;        /* as snapshot_request */
	uint64_t deadline_usec;          /* as snapshot_request */
};

struct group_snapshot {
	char id[VOLUME_ID_MAX + 1]; /* the CSI group_snapshot_id */
	struct volume_id gid;       /* the same, decoded */
	char *name;                 /* request name */
	struct timespec created;    /* the cut */
	bool ready;                 /* every member ready */
	size_t n_members;
	struct snapshot **members; /* in source order (sorted by source id) */
};

/* Frees g and what it owns. Accepts NULL, returns NULL. */
struct group_snapshot *group_snapshot_free(struct group_snapshot *g);

DEFINE_TRIVIAL_CLEANUP_FUNC(struct group_snapshot *, group_snapshot_free)

/*
 * Creates the group snapshot req->name of req->sources, or returns the one already made for
 * that name, finishing it after a crash. Returns 0 and *ret (free with group_snapshot_free()).
 *   -EINVAL   bad name, no/too many sources, a duplicate, sources of several clusters
 *   -ENOENT   a source volume does not exist (nothing is left behind)
 *   -EEXIST   the name is taken by a group snapshot of other sources (ALREADY_EXISTS)
 *   -EAGAIN   the group snapshot is being deleted (ABORTED)
 *   -EBUSY    a source image is in an RBD group that is not this driver's (FAILED_PRECONDITION)
 *   -EINPROGRESS  the members' copies did not finish by req->deadline_usec (progress is kept;
 *             call again: ABORTED)
 *   -EUCLEAN  the journal is inconsistent
 */
int group_snapshot_create(struct cluster *c, const struct group_snapshot_request *req,
                          struct group_snapshot **ret);

/*
 * Looks a created group snapshot up by id. Returns 0 and *ret; -ENOENT when it does not exist
 * (or is not created yet, or is being deleted), or id is no group snapshot id.
 */
int group_snapshot_lookup(struct cluster *c, const struct volume_id *id,
                          struct group_snapshot **ret);

/*
 * Deletes a group snapshot and its members. Idempotent: a group snapshot that does not exist is
 * success. snapshot_ids (n may be 0: not checked) must name exactly the members that still
 * exist; otherwise -EINVAL with nothing changed.
 *   -EAGAIN   a member is being flattened (ABORTED, retry)
 *   -EBUSY    a member snapshot image is open elsewhere (FAILED_PRECONDITION)
 */
int group_snapshot_delete(struct cluster *c, const struct volume_id *id,
                          const char *const *snapshot_ids, size_t n, uint64_t deadline_usec);

/*
 * The group snapshot id a member snapshot's request name names (GROUP_SNAPSHOT_MEMBER_PREFIX),
 * into ret. Returns 1 for a member name, 0 for any other name. Pure.
 */
int group_snapshot_member_of(const char *snapshot_name, char ret[static VOLUME_ID_MAX + 1]);

/*
 * For DeleteSnapshot: -EBUSY when the snapshot id is a member of a group snapshot that exists
 * and is not being deleted; 0 otherwise (also for unknown ids). ret_group_id gets the group id
 * on -EBUSY.
 */
int group_snapshot_member_check(struct cluster *c, const struct volume_id *snapshot_id,
                                char ret_group_id[static VOLUME_ID_MAX + 1]);
