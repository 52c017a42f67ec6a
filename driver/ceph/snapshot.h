/* SPDX-License-Identifier: Apache-2.0 */
/*
 * CSI snapshots and clones: crash-safe, idempotent CreateSnapshot/DeleteSnapshot, lookup and
 * list, plus what volume.c needs to make a volume from a snapshot or a volume (flattening, and
 * garbage collection of trashed parents).
 *
 * A snapshot is its own RBD image, "csi-snap-<uuid>", in the pool and rados namespace of its
 * source volume: a clone v2 of the source taken at a temporary RBD snapshot
 * "rbdcsi-snap-<uuid>" on the source, which is removed again right after the clone (librbd
 * keeps it in the trash snapshot namespace while the clone hangs from it, and drops it with the
 * clone). The snapshot image carries one RBD snapshot, "restore-point", from which volumes are
 * restored (clone v2 again). So a snapshot costs nothing at creation (copy-on-write), is
 * point-in-time (the temporary snapshot is the cut), and does not pin a snapshot on the source
 * that the source's owner could trip over.
 *
 * Journal (driver/ceph/journal.h), in the same pool and namespace: the directory
 * "rbdcsi.snapshots" maps the request name to a uuid, and "rbdcsi.snapshot.<uuid>" holds
 *
 *   name          the CSI request name
 *   source        the source volume id (same name + another source is -EEXIST)
 *   source_image  the source's RBD image (for the temporary snapshot)
 *   image         "csi-snap-<uuid>"
 *   state         "reserved" -> "cloned" -> "created"; "deleting"; prev_state while deleting
 *   reserved_at   wall-clock seconds of the reservation
 *   created_at    "<seconds>.<nanoseconds>": when the temporary snapshot was taken (the cut)
 *   size          bytes: the source's size at the cut
 *   chain         set when deleting: the image and its ancestors (see "Garbage collection")
 *
 * The snapshot id is a volume_id.h id of kind 's' with the pool, namespace and uuid.
 *
 * Create: reserve the name -> create the entry (exclusive) -> temporary snapshot on the source
 * -> clone it to the snapshot image -> record the cut time and size ("cloned") -> remove the
 * temporary snapshot -> flatten the snapshot image if its clone chain is too deep -> take the
 * restore point -> "created". Every step is idempotent and a retry after a crash anywhere
 * rolls forward to the same snapshot; ready_to_use is true only in "created", so a snapshot
 * whose flatten did not finish within the call is reported with ready_to_use false and the
 * CO's next CreateSnapshot continues the same flatten. Failpoints: snapshot-create:after-reserve,
 * :after-object, :after-source-snap, :after-clone, :after-record, :after-source-unsnap,
 * :after-flatten, :after-restore-point.
 *
 * Delete: record the image's clone chain and mark "deleting" -> remove the temporary snapshot
 * (if a create died before doing so) -> remove the restore point (with restored volumes hanging
 * from it, librbd moves it to the trash namespace) -> remove the image, or, when clone children
 * still hang from it, move it to the RBD trash -> garbage-collect the chain -> remove the
 * directory key -> remove the entry. So a snapshot can be deleted while volumes restored from
 * it live on, and a snapshot outlives its source volume (volume_delete() trashes a source that
 * snapshots hang from). Failpoints: snapshot-delete:after-mark, :after-unsnap, :after-image,
 * :after-unreserve.
 *
 * Garbage collection: a trashed image goes when its last child goes. Whoever removes an image
 * walks up the chain it recorded in its journal entry before it changed anything (the image
 * itself, its parent, grandparent... by pool id, namespace and image id, which survive a move
 * to the trash) and removes from the RBD trash each image that has no snapshots left (so no
 * child); it stops at the first image that is live or still has children. Because the chain is
 * recorded before the first change, a retry after a crash anywhere in the walk finishes it, so
 * nothing stays in the trash once everything that hung from it is deleted. Failpoint:
 * snapshot-gc:after-remove (after each image removed from the trash).
 *
 * Clone depth: librbd reads a clone's unwritten blocks through every parent, so chains are kept
 * short. A new image (snapshot image, restored or cloned volume) whose chain would be deeper
 * than the limit (the plugin's --clone-depth-soft) is flattened before it is reported ready.
 * A flatten runs in a thread of its own and the call waits for it only until its deadline: then
 * a snapshot answers ready_to_use=false and a volume create -EINPROGRESS (ABORTED: "being
 * flattened"), and the retry waits for the same running flatten instead of starting over (after
 * a restart, librbd's flatten skips the blocks already copied). The table of running flattens
 * is process-global by nature, like failpoints: a flatten outlives the call that started it.
 *
 * Limits: snapshot names are unique per pool and namespace (the directory lives with the source
 * volume); the source needs the layering feature (the default).
 *
 * Error codes are chosen for the plugin's errno -> gRPC table; every function may also return
 * -ETIMEDOUT (the cluster did not answer within the connection's timeouts) and -ENOMEM.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "driver/base/macro.h"
#include "driver/ceph/clone_chain.h"     /* SNAPSHOT_TEMP_* */
#include "driver/ceph/flatten.h"         /* SNAPSHOT_CLONE_DEPTH_DEFAULT */
#include "driver/ceph/snapshot_lookup.h" /* struct snapshot, snapshot_lookup() */
#include "driver/ceph/cluster.h"
#include "driver/ceph/volume_id.h"

#define SNAPSHOT_IMAGE_PREFIX  "csi-snap-"
#define SNAPSHOT_LIST_PAGE_MAX 1000

struct snapshot_request {
	const char *name;               /* CSI request name, 1..1024 bytes */
	const struct volume_id *source; /* the source volume (kind 'v') */
	unsigned clone_depth_max; /* flatten the snapshot image when deeper; 0 = the default (4) */
	uint64_t deadline_usec;   /* CLOCK_MONOTONIC µs to answer by; 0 = none */
};

/*
 * Creates the snapshot req->name of req->source, or returns the one already made for that name
 * (same id), finishing it if a call or a process died half-way. Returns 0 and *ret (free with
 * snapshot_free()); (*ret)->ready is false while a flatten is still running (call again).
 *   -EINVAL   bad name, or source is no volume id
 *   -ENOENT   the source volume does not exist (nothing is left behind)
 *   -EEXIST   the name is taken by a snapshot of another source (ALREADY_EXISTS)
 *   -EAGAIN   the snapshot is being deleted (ABORTED)
 *   -EUCLEAN  the journal is inconsistent (INTERNAL)
 */
int snapshot_create(struct cluster *c, const struct snapshot_request *req, struct snapshot **ret);

/*
 * Deletes a snapshot. Idempotent: a snapshot that does not exist (pool, entry gone; a volume
 * id) is success, and a retry after a crash at any step finishes the job. Volumes restored from
 * the snapshot keep working (the image waits in the trash for them). deadline_usec as in
 * snapshot_request.
 *   -EAGAIN   the snapshot image is still being flattened by this process (ABORTED, retry)
 *   -EBUSY    the snapshot image is open elsewhere or carries RBD snapshots this driver did
 *             not take (FAILED_PRECONDITION)
 */
int snapshot_delete(struct cluster *c, const struct volume_id *id, uint64_t deadline_usec);

/*
 * Lists the snapshots of pool/rados_namespace (those cut: ready or being flattened), at most max
 * (0 = SNAPSHOT_LIST_PAGE_MAX, capped there), in request-name order, after the position in token
 * (NULL or "" = from the start); only those of source_id when it is not NULL. Returns 0, the
 * array (free with snapshot_list_free()), its length, and in *ret_next_token a malloc'ed token
 * for the next page or NULL after the last. A page may hold fewer than max while more follow.
 *   -EAGAIN   malformed token (ABORTED, as CSI wants for an invalid starting_token)
 *   -ENOENT   no such pool
 */
int snapshot_list(struct cluster *c, const char *cluster_id, const char *pool,
                  const char *rados_namespace, const char *source_id, const char *token, size_t max,
                  struct snapshot **ret, size_t *ret_n, char **ret_next_token);
