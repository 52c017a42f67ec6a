/* SPDX-License-Identifier: Apache-2.0 */
/*
 * RBD image mechanics on a pool I/O context: create, stat, resize, remove, watchers, snapshots,
 * clones, flatten, clone depth, pool usage. No journal and no CSI semantics here (that is
 * volume.c); each function does one librbd thing and reports librbd's answer as a negative
 * errno, translated only where noted so that the plugin's errno -> gRPC table gives the right
 * CSI code.
 *
 * Internal to driver/ceph (includes librados.h). Images are always format 2. Names are image
 * names in io's pool and namespace. A data_pool is opened by librbd by name: resolve it with
 * cluster_pool_lookup() first, because librados waits without a timeout for a pool missing
 * from its OSD map when the monitors do not answer (see cluster.c). Functions open the image
 * themselves (read-only where they only look: a read-only open registers no watch, so it does not
 * count as a watcher).
 *
 * Watches and SIGKILL (checked on Ceph 16.2.15 with `rbd status`: an image held open read-only
 * lists no watcher; open read-write it lists one, which outlives a SIGKILL of its process). The
 * read-write opens -- image_resize(), image_snap_create(), image_snap_remove(), image_flatten()
 * -- hold the header watch only while they run and close before the caller's next step, so a
 * process killed between steps (the failpoints) leaves none. Killed in the middle of one of
 * them, it leaves its watch until the OSD times it out (osd_client_watch_timeout, 30 s by
 * default); meanwhile the image counts as in use (DeleteVolume answers FAILED_PRECONDITION and
 * the provisioner retries). librbd offers no read-only way to resize, snapshot or flatten.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include <rados/librados.h>

#include "driver/base/macro.h"

/*
 * Parses a comma separated list of image feature names as librbd spells them (rbd/features.h):
 * layering, exclusive-lock, object-map, fast-diff, deep-flatten, journaling. Returns 0 and the
 * feature mask; -EINVAL for NULL, an empty list or item, an unknown or duplicate name, a
 * feature that cannot be asked for (striping, data-pool, operations, migrating, non-primary,
 * dirty-cache: librbd sets those itself), or a missing dependency (object-map and journaling
 * need exclusive-lock, fast-diff needs object-map).
 */
int image_features_parse(const char *list, uint64_t *ret);

/* Formats a feature mask as a comma list (malloc'ed). Unknown bits are ignored. 0, -ENOMEM. */
int image_features_format(uint64_t features, char **ret);

struct image_layout {
	uint64_t object_size;  /* bytes, a power of two (RBD "order"); 0 = librbd's (4 MiB) */
	uint64_t stripe_unit;  /* bytes; 0 = the object size (no fancy striping) */
	uint64_t stripe_count; /* objects striped over; 0 = 1 */
};

/*
 * Creates a format-2 image of size bytes with exactly the given features, its data objects in
 * data_pool when that is not NULL/"" (an erasure-coded or other pool; metadata stays in io).
 * Returns 0; -EEXIST when an image of that name exists (even a half-created one); -ENOENT when
 * the data pool or io's rados namespace does not exist; -EINVAL for bad features/size;
 * -ETIMEDOUT.
 */
int image_create(rados_ioctx_t io, const char *name, uint64_t size, uint64_t features,
                 const char *data_pool);

/*
 * image_create() with layout (NULL = librbd's defaults) setting the object size and striping
 * (librbd adds the striping-v2 feature itself when the striping is not the default). -EINVAL
 * also for a layout librbd refuses (stripe unit not dividing the object size).
 */
int image_create_layout(rados_ioctx_t io, const char *name, uint64_t size, uint64_t features,
                        const char *data_pool, const struct image_layout *layout);

/*
 * Sets image metadata ("rbd image-meta set") key[i] = value[i] for i < n on image name; NULL
 * values are skipped. Setting a key to the value it has is success (idempotent). Returns 0;
 * -ENOENT when the image does not exist; -ETIMEDOUT.
 */
int image_metadata_set(rados_ioctx_t io, const char *name, const char *const *keys,
                       const char *const *values, size_t n);

/*
 * Returns 1 when the RBD namespace ns exists in io's pool (images can only be created in a
 * rados namespace that RBD knows: "rbd namespace create"), 0 when not; "" or NULL (the default
 * namespace) always exists. < 0 on error.
 */
int image_namespace_exists(rados_ioctx_t io, const char *ns);

struct image_parent {
	int64_t pool_id;
	char *pool_name;
	char *pool_namespace;
	char *image_name;
	char *image_id;
	bool image_in_trash;
	char *snap_name;
	uint64_t snap_id;
};

struct image_info {
	char *id; /* librbd's image id */
	uint64_t size;
	uint64_t features;
	int64_t data_pool_id;        /* == the image's pool when there is no separate data pool */
	struct image_parent *parent; /* NULL when the image is not a clone */
	struct timespec created;     /* creation time */
};

/* Frees info and what it owns. Accepts NULL, returns NULL. */
struct image_info *image_info_free(struct image_info *info);

/* Looks at an image. Returns 0 and *ret (free with image_info_free()); -ENOENT; -ETIMEDOUT. */
int image_stat(rados_ioctx_t io, const char *name, struct image_info **ret);

/*
 * Grows an image to size bytes. Equal size is success (nothing done). Returns 0; -ERANGE when
 * size is smaller than the current size (shrinking is refused, the image is untouched);
 * -ENOENT.
 */
int image_resize(rados_ioctx_t io, const char *name, uint64_t size);

/*
 * Counts the clients watching the image header (a mapped or open image; our read-only probe
 * does not count). Returns 0 and the count; -ENOENT.
 */
int image_watchers(rados_ioctx_t io, const char *name, size_t *ret_count);

/*
 * Removes an image. Idempotent: an image that does not exist is success, and so is a
 * half-created one (librbd cleans up its remains). Returns 1 when this call removed it (or its
 * remains), 0 when there was no image of that name; -EBUSY, with the image untouched, when it
 * has watchers or snapshots (including snapshots kept in the trash namespace for clone
 * children); -ETIMEDOUT.
 */
int image_remove(rados_ioctx_t io, const char *name);

/*
 * Pool usage for GetCapacity. pool_* come from rados_ioctx_pool_stat(), cluster_* from
 * rados_cluster_stat(). Both come from the PG statistics that the ceph-mgr collects: on a
 * cluster without a running mgr they are all 0 (measured on Ceph 16.2.15 with 1 mon + 1 OSD and
 * no mgr: cluster kb=0 kb_used=0 kb_avail=0, pool num_bytes=0 num_objects=0 even with images in
 * the pool). Callers must treat cluster_kb == 0 as "unknown", not as "full".
 */
struct image_pool_usage {
	uint64_t pool_bytes;
	uint64_t pool_objects;
	uint64_t cluster_kb;
	uint64_t cluster_kb_used;
	uint64_t cluster_kb_avail;
};

/* Returns 0 and the usage of io's pool and of the cluster; -ETIMEDOUT. */
int image_pool_usage(rados_ioctx_t io, struct image_pool_usage *ret);

/* ---- snapshots and clones ---- */

struct image_snap {
	char *name;
	uint64_t id;
	uint64_t size;           /* image size when the snapshot was taken */
	struct timespec created; /* creation time */
};

/* Frees the members of snap (not snap itself). Accepts NULL. */
void image_snap_done(struct image_snap *snap);

/* Frees an array from image_snap_list(). Accepts NULL. */
void image_snap_list_free(struct image_snap *snaps, size_t n);

/*
 * Takes a snapshot (crash-consistent; the quiesce notification to watchers is skipped).
 * Returns 0; -EEXIST when a snapshot of that name exists; -ENOENT when the image does not.
 */
int image_snap_create(rados_ioctx_t io, const char *image, const char *snap);

/*
 * Removes a snapshot. Idempotent: a missing snapshot or image is success. A snapshot with
 * clone-v2 children moves to the trash namespace and disappears with its last child (librbd).
 * Returns 0; -EBUSY when the snapshot is protected (clone v1).
 */
int image_snap_remove(rados_ioctx_t io, const char *image, const char *snap);

/* Returns 1 when the snapshot exists, 0 when not (or the image does not); < 0 on error. */
int image_snap_exists(rados_ioctx_t io, const char *image, const char *snap);

/* Looks at one snapshot. Returns 0 and *ret (free with image_snap_done()); -ENOENT. */
int image_snap_stat(rados_ioctx_t io, const char *image, const char *snap, struct image_snap *ret);

/*
 * Lists the user snapshots of an image (not those in the trash namespace). Returns 0, the
 * array (free with image_snap_list_free()) and its length; -ENOENT.
 */
int image_snap_list(rados_ioctx_t io, const char *image, struct image_snap **ret, size_t *ret_n);

/*
 * Clones parent@snap (in parent_io) to child (in child_io) as a clone-format-2 child: the
 * snapshot needs no protection. features (layering is always added: a clone needs it) and
 * data_pool as image_create(). Returns 0; -EEXIST
 * when child exists; -ENOENT when parent or snap does not exist; -EINVAL when the parent lacks
 * the layering feature.
 */
int image_clone(rados_ioctx_t parent_io, const char *parent, const char *snap,
                rados_ioctx_t child_io, const char *child, uint64_t features,
                const char *data_pool);

/* Copies all parent data into a clone and detaches it. A non-clone is success. 0, -ENOENT. */
int image_flatten(rados_ioctx_t io, const char *name);

/*
 * How many parents the image has: 0 for a plain image, 1 for a clone of a plain image's
 * snapshot, and so on (walked through pools, namespaces and trashed parents). Returns 0 and the
 * depth; -ENOENT; -ELOOP beyond 64 levels; -EAGAIN as image_chain().
 */
int image_clone_depth(rados_ioctx_t io, const char *name, unsigned *ret_depth);

/* ---- clone chains and the trash ---- */

/* One image of a clone chain, named by pool id, namespace and image id: the image id stays the
 * same when the image moves to the trash, the name does not. */
struct image_link {
	int64_t pool_id;
	char *pool_namespace; /* "" for the default namespace */
	char *image_id;
};

/* Frees an array from image_chain(). Accepts NULL. */
void image_chain_free(struct image_link *links, size_t n);

/*
 * The image itself, then its parent, grandparent... up to the first image that is no clone
 * (each parent looked at through the snapshot its child hangs from, wherever it lives: another
 * pool or namespace, or the trash). Returns 0, the array (free with image_chain_free()) and its
 * length (>= 1); -ENOENT when the image does not exist; -ELOOP beyond 64 levels; -EAGAIN when
 * the chain kept changing under the walk (a parent vanished each time: flattens finishing).
 */
int image_chain(rados_ioctx_t io, const char *name, struct image_link **ret, size_t *ret_n);

/*
 * Counts the snapshots of an image: user snapshots, and the others (mostly those in the trash
 * namespace, which librbd keeps for clone-v2 children and drops with the last child). Returns
 * 0; -ENOENT when the image does not exist.
 */
int image_snap_counts(rados_ioctx_t io, const char *name, size_t *ret_user, size_t *ret_other);

/*
 * What deleting an image needs to know about it, read through one read-only open: each librbd
 * open costs several OSD round trips and builds a whole configuration (make bench), so a
 * delete looks once instead of once per question. The watcher count is read from the OSD (it
 * is current); the rest comes from the image header as of the open (a read-only open registers
 * no watch, so it does not see later changes).
 */
enum {
	IMAGE_SURVEY_WATCHERS = 1 << 0, /* watchers, as image_watchers() */
	IMAGE_SURVEY_SNAPS = 1 << 1,    /* snaps, n_snaps, n_other_snaps, as image_snap_counts() */
	IMAGE_SURVEY_CHAIN = 1 << 2,    /* chain, n_chain, as image_chain() */
};

struct image_survey {
	size_t watchers;
	struct image_snap *snaps; /* the user snapshots, as image_snap_list() */
	size_t n_snaps;
	size_t n_other_snaps;     /* the others (trash namespace: kept for clone children) */
	struct image_link *chain; /* the image, its parent, grandparent... */
	size_t n_chain;
};

/* Frees s and what it owns. Accepts NULL, returns NULL. */
struct image_survey *image_survey_free(struct image_survey *s);

DEFINE_TRIVIAL_CLEANUP_FUNC(struct image_survey *, image_survey_free)

/*
 * Looks at an image once for what the IMAGE_SURVEY_* bits in what ask. Returns 0 and *ret
 * (free with image_survey_free(); parts not asked for are 0/NULL); -ENOENT when the image does
 * not exist; for the chain also -ELOOP and -EAGAIN as image_chain().
 */
int image_survey(rados_ioctx_t io, const char *name, unsigned what, struct image_survey **ret);

/*
 * Moves an image to the RBD trash, removable at once (no deferment). For an image that cannot
 * be removed yet because clone-v2 children hang from it: it leaves the image namespace (its name
 * is free, "rbd ls" no longer shows it) and stays readable for the children. Idempotent: no
 * image of that name is success. Returns 0; -ETIMEDOUT.
 */
int image_trash_move(rados_ioctx_t io, const char *name);

/*
 * Garbage collection of one trashed image, by id, in io's pool and namespace: removes it from
 * the trash when it has no snapshots left (so no clone child hangs from it any more). Returns 2
 * when this call removed it, 1 when it was already gone; 0 when it stays: it is not in the
 * trash (a live image), still has snapshots, or its trash deferment has not expired (moved
 * there by someone else); < 0 on error.
 */
int image_trash_collect(rados_ioctx_t io, const char *image_id);
