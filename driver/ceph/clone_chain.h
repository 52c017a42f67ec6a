/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Clone chains and their garbage collection, for any image this driver deletes (volumes and
 * snapshot images alike; used by volume.c and snapshot.c).
 *
 * A trashed image goes when its last child goes. Whoever removes an image first records its
 * chain (the image itself, its parent, grandparent... by pool id, namespace and image id, which
 * survive a move to the trash) in its journal entry, then retires the image (removed, or moved
 * to the RBD trash while clone children hang from it), then walks up the recorded chain and
 * removes from the RBD trash each image that has no snapshots left, stopping at the first image
 * that is live or still has children. Because the chain is recorded before the first change, a
 * retry after a crash anywhere in the walk finishes it. Failpoint: snapshot-gc:after-remove
 * (after each image removed from the trash).
 *
 * Every function may also return -ETIMEDOUT (the cluster did not answer) and -ENOMEM.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "driver/ceph/cluster.h"

/* Prefix of the temporary RBD snapshots this driver takes on source volumes: "rbdcsi-snap-<uuid>"
 * for CSI snapshots, "rbdcsi-clone-<uuid>" for volume clones. clone_chain_retire() removes
 * leftovers of crashed creates with this prefix. */
#define SNAPSHOT_TEMP_PREFIX       "rbdcsi-"
#define SNAPSHOT_TEMP_SNAP_PREFIX  "rbdcsi-snap-"
#define SNAPSHOT_TEMP_CLONE_PREFIX "rbdcsi-clone-"

struct image_survey;
struct image_link;

/*
 * Retires an image that is being deleted: removes this driver's leftover temporary snapshots on
 * it (SNAPSHOT_TEMP_PREFIX, from creates that died), then removes the image, or moves it to the
 * RBD trash when clone children still hang from it (snapshots in the trash namespace). Call
 * clone_chain_collect() afterwards. Idempotent: an image that is gone (or already trashed)
 * is success, and the remains of an image whose creation died inside librbd are removed.
 * known: NULL, or the image's snapshots as an image_survey() with IMAGE_SURVEY_SNAPS made by the
 * caller before the delete changed anything (it is not looked at again; librbd's remove still
 * refuses an image that gained snapshots or watchers since). Returns 1 when this call removed
 * the image (nothing of it is left for clone_chain_collect()), 0 when it moved it to the
 * trash or there was no image; -EBUSY, with nothing but the leftovers changed, when the image
 * has watchers or RBD snapshots this driver did not take.
 */
int clone_chain_retire(struct cluster *c, int64_t pool_id, const char *rados_namespace,
                       const char *image, const struct image_survey *known);

/*
 * The chain of an image for garbage collection, as a journal value: "<pool id>/<namespace>/<image
 * id>" for the image and then each ancestor, comma separated. Returns 0 and a malloc'ed string,
 * or NULL in *ret when the image does not exist; -ELOOP for a chain deeper than 64.
 */
int clone_chain_get(struct cluster *c, int64_t pool_id, const char *rados_namespace,
                    const char *image, char **ret);

/*
 * The same journal value from a chain already read (image_chain(), image_survey()). Returns 0
 * and a malloc'ed string (NULL for n == 0); -ENOMEM.
 */
int clone_chain_format(const struct image_link *links, size_t n, char **ret);

/*
 * Walks a chain from clone_chain_get() (NULL or "" is empty) and removes from the RBD trash
 * each image that has no snapshots left, stopping at the first live image or image still in
 * use; images (or pools) already gone are stepped over. first_gone: the chain's first image is
 * known to be gone (clone_chain_retire() returned 1), so the walk starts at its parent.
 * Idempotent. Returns 0; -EUCLEAN for a malformed chain.
 */
int clone_chain_collect(struct cluster *c, const char *chain, bool first_gone);
