/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The volume lifecycle behind the CSI controller: crash-safe, idempotent create and delete,
 * lookup, list, expand, and attachment records for ControllerPublish/Unpublish.
 *
 * A volume is an RBD image "<prefix><uuid>" (default prefix "csi-vol-") plus its journal
 * (driver/ceph/journal.h) in the same pool and rados namespace: the directory key
 * <request name> -> <uuid> in "rbdcsi.volumes", and the entry object "rbdcsi.volume.<uuid>":
 *
 *   name        the CSI request name
 *   image       the RBD image name
 *   req_size    bytes asked for at create (compared on retries)
 *   size        bytes after the last create/expand
 *   params      the caller's fingerprint of the creation parameters (compared on retries)
 *   features    the image feature mask (decimal); data_pool when there is one
 *   state       "reserved" -> "created" -> "deleting"; prev_state while deleting
 *   reserved_at wall-clock seconds of the reservation
 *   attach.<node>  "rw" or "ro"; exclusive = the node holding it exclusively
 *   source      the snapshot or volume id it was made from (compared on retries)
 *   chain       set when deleting: the image and its ancestors, for garbage collection
 *
 * Create: reserve the name in the directory (guarded: exactly one uuid wins any race between
 * processes) -> create the entry object (exclusive create) -> create the image -> mark
 * "created". Every step is idempotent, and a retry after a crash anywhere adopts the existing
 * uuid and rolls forward, so there is exactly one image and one entry for a name, never an
 * orphan. From a source, the image step is: (for a volume source) a temporary RBD snapshot
 * "rbdcsi-clone-<uuid>" on the source -> clone v2 -> remove the temporary snapshot -> grow to the
 * requested size -> flatten when the chain is too deep (driver/ceph/snapshot.h).
 * The directory key is written first so that a crash can never leave an entry object
 * that nothing points to. (A create the CO abandons for good after a failure leaves its
 * reservation, and maybe its image, in state "reserved" under the request name; nothing here
 * collects those.)
 * Delete: refuse while the image has watchers or attachments (nothing changed) -> record the
 * image's clone chain and mark "deleting" (a concurrent create of the same name now backs off
 * with -EAGAIN instead of re-creating the image) -> remove the image, or move it to the RBD
 * trash while snapshots or clones hang from it -> garbage-collect trashed ancestors -> remove
 * the directory key -> remove the entry object. The entry object goes last because it is what
 * a retry finds by the volume id; the directory key before it, because the entry holds the
 * name that finds the key (removing the entry first would strand the key if we crashed in
 * between: ceph-csi issue #2059/#5175).
 * Failpoints (driver/base/failpoint.h): volume-create:after-reserve, volume-create:after-object,
 * volume-create:after-image, volume-delete:after-mark, volume-delete:after-image,
 * volume-delete:after-unreserve, volume-expand:after-image; for clones
 * volume-clone:after-source-snap, :after-clone, :after-source-unsnap, :after-resize and
 * :after-flatten.
 *
 * Concurrency: safe between threads and processes for the same name (create/create) and the
 * same volume (attach/attach, attach/delete: guarded by the entry's object version). A create
 * racing a delete of the same volume is not a sequence a CO issues (it only learns the id from
 * a finished create); it is meant to end with -EAGAIN or NOT_FOUND and no orphan (an image the
 * create made meanwhile is removed again), but the tests do not cover that interleaving.
 *
 * Error codes are chosen for the plugin's errno -> gRPC table; each function lists its own.
 * All functions return -ETIMEDOUT when the cluster does not answer within the connection's
 * timeouts, and -ENOMEM.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "driver/ceph/cluster.h"
#include "driver/ceph/volume_id.h"

#define VOLUME_IMAGE_PREFIX_DEFAULT "csi-vol-"
#define VOLUME_FEATURES_DEFAULT     "layering"
#define VOLUME_IMAGE_PREFIX_MAX     64
#define VOLUME_FINGERPRINT_MAX      4096
#define VOLUME_NODE_MAX             256  /* CSI node_id limit */
#define VOLUME_LIST_PAGE_MAX        1000 /* entries per volume_list() page */
/* A reservation whose image is still half-created after this long is taken to be the remains
 * of a crash inside librbd's create, and is repaired (see volume_create()). */
#define VOLUME_STALE_RESERVATION_SEC 600
/* Image metadata keys, as ceph-csi's --setmetadata writes them. */
#define VOLUME_META_PVC_NAME      "csi.storage.k8s.io/pvc/name"
#define VOLUME_META_PVC_NAMESPACE "csi.storage.k8s.io/pvc/namespace"
#define VOLUME_META_PV_NAME       "csi.storage.k8s.io/pv/name"

struct volume_request {
	const char *cluster_id;      /* clusterID, goes into the id */
	const char *pool;            /* pool of the image and its journal */
	const char *rados_namespace; /* NULL or "" for the default namespace */
	const char *name;            /* CSI request name, 1..1024 bytes */
	uint64_t size;               /* bytes, > 0 (0 with a source: the source's size) */
	const char *fingerprint;     /* opaque, compared on retries; NULL = "" */
	const char *image_prefix;    /* NULL = VOLUME_IMAGE_PREFIX_DEFAULT; [A-Za-z0-9._-] */
	const char *features;        /* comma list, NULL = VOLUME_FEATURES_DEFAULT */
	const char *data_pool;       /* NULL or "" for none */
	/* Layout of a new empty image (0 = librbd's default; clones keep their source's): object
	 * size (a power of two, 4 KiB..32 MiB) and striping. Part of the request: callers put it in
	 * the fingerprint so that a retry asking for another layout is -EEXIST. */
	uint64_t object_size;
	uint64_t stripe_unit;
	uint64_t stripe_count;
	/* Who asked (external-provisioner's --extra-create-metadata), NULL when unknown: kept in
	 * the journal entry (volume_list() shows them) and set as image metadata under ceph-csi's
	 * keys (VOLUME_META_PVC_NAME...), so "rbd image-meta list" names the PVC. */
	const char *pvc_name;
	const char *pvc_namespace;
	const char *pv_name;
	/* Where the volume is reachable (CSI accessible_topology), opaque to the driver (the plugin
	 * encodes it), NULL or "" for anywhere: kept in the journal entry, so volume_lookup() and
	 * volume_list() return it with the volume. Not compared on retries. */
	const char *topology;
	/* Content source (CSI volume_content_source): NULL for an empty volume, else a snapshot id
	 * (restore) or a volume id (clone) of the same cluster, copied as a clone v2. */
	const struct volume_id *source;
	uint64_t size_limit;      /* with a source: the size may not exceed it; 0 = no limit */
	unsigned clone_depth_max; /* flatten a new clone deeper than this; 0 = the default (4) */
	uint64_t deadline_usec;   /* CLOCK_MONOTONIC µs to answer by (flattening); 0 = none */
};

enum volume_access {
	VOLUME_ACCESS_RW,
	VOLUME_ACCESS_RO,
};

struct volume_attachment {
	char *node;
	enum volume_access access;
};

struct volume {
	char id[VOLUME_ID_MAX + 1]; /* the CSI volume_id */
	struct volume_id vid;       /* the same, decoded */
	char *name;                 /* request name */
	char *pool;                 /* pool name */
	char *image;                /* RBD image name */
	char *data_pool;            /* NULL when none */
	char *features;             /* comma list, "" for none */
	uint64_t requested_size;    /* bytes asked for at create */
	uint64_t size;              /* capacity: image size (recorded size in volume_list()) */
	char *fingerprint;          /* "" when none */
	char *source_id;            /* the snapshot or volume it was made from, or NULL */
	char *exclusive_node;       /* node holding an exclusive attachment, or NULL */
	char *pvc_name;             /* from the request (see volume_request), or NULL */
	char *pvc_namespace;
	char *pv_name;
	char *topology; /* volume_request.topology as recorded, or NULL */
	size_t n_attachments;
	struct volume_attachment *attachments;
};

/* Frees v and what it owns. Accepts NULL, returns NULL. */
struct volume *volume_free(struct volume *v);

/* Frees an array from volume_list(). Accepts NULL. */
void volume_list_free(struct volume *v, size_t n);

DEFINE_TRIVIAL_CLEANUP_FUNC(struct volume *, volume_free)

/*
 * Creates the volume for req->name, or returns the one already created for it (same id), so a
 * retry after any failure or crash completes the same volume. Returns 0 and *ret (free with
 * volume_free()).
 *   -EINVAL   bad request field; unknown image feature; the pool, rados namespace (RBD needs it
 *             created: "rbd namespace create") or data pool does not exist
 *   -EEXIST   the name exists with another size, fingerprint, features, data pool or prefix
 *   -EAGAIN   a delete of this volume is in progress, or another process is creating the same
 *             image right now; retry later (ABORTED)
 *   -ENAMETOOLONG  clusterID + namespace too long for a 128-byte id
 *   -ENOSPC   the pool is over its quota (-EDQUOT from the OSDs; not tested here). A full
 *             cluster makes writes wait, so that ends in -ETIMEDOUT instead
 *   -EUCLEAN  the journal is inconsistent (directory and entry disagree on the name): INTERNAL
 * With a source, also:
 *   -ENOENT   the source snapshot or volume does not exist (NOT_FOUND)
 *   -ERANGE   size (or size_limit) is smaller than the source (OUT_OF_RANGE)
 *   -EAGAIN   the source snapshot is not ready yet (still being flattened)
 *   -EINPROGRESS  the new clone is being flattened (its chain would be deeper than
 *             clone_depth_max) and that did not finish by the deadline: it goes on in the
 *             background, call again (ABORTED)
 * A create that fails after the reservation leaves it in place for the retry to complete.
 */
int volume_create(struct cluster *c, const struct volume_request *req, struct volume **ret);

/*
 * Returns 1 when name is reserved in pool/rados_namespace's journal (a volume of that name was
 * created there, or is being created), 0 when not or when the pool does not exist; < 0 on error.
 * Lets a caller that picks among pools (topology) find the one an earlier attempt used.
 */
int volume_name_reserved(struct cluster *c, const char *pool, const char *rados_namespace,
                         const char *name);

/*
 * Static volumes: pre-existing images named by pool, namespace (NULL/"" for the default) and
 * image name, never created or deleted by the driver and with no journal entry.
 * volume_static_stat() returns 0 and the image's size; -ENOENT when the pool, namespace or
 * image does not exist. volume_static_expand() grows the image to size bytes and returns 0 and
 * the new size; asking for the current size or less changes nothing (the current size is
 * returned); -ENOENT as volume_static_stat().
 */
int volume_static_stat(struct cluster *c, const char *pool, const char *rados_namespace,
                       const char *image, uint64_t *ret_size);
int volume_static_expand(struct cluster *c, const char *pool, const char *rados_namespace,
                         const char *image, uint64_t size, uint64_t *ret_size);

/*
 * Looks a volume up by id (a fully created one). Returns 0 and *ret; -ENOENT when the pool,
 * entry or image is gone, the volume is being created or deleted, or id is a snapshot id.
 */
int volume_lookup(struct cluster *c, const struct volume_id *id, struct volume **ret);

/*
 * Deletes a volume. Idempotent: returns 0 when it does not exist (pool, entry gone; a snapshot
 * id), and a retry after a crash at any step finishes the job. A volume that CSI snapshots or
 * clones hang from (clone-v2 children) goes to the RBD trash until the last of them is deleted
 * (driver/ceph/snapshot.h, "Garbage collection"); the volume itself is gone at once.
 *   -EBUSY    the image has watchers (mapped somewhere) or RBD snapshots this driver did not
 *             take, or the volume has attachment records: nothing was changed
 *             (FAILED_PRECONDITION)
 */
int volume_delete(struct cluster *c, const struct volume_id *id);

/*
 * Grows the volume to size bytes and records it. Asking for the current size or less changes
 * nothing and is success. Returns 0 and *ret (NULL allowed) with the new capacity;
 * -ENOENT (as volume_lookup()); -EINVAL for size 0; -ENOSPC.
 */
int volume_expand(struct cluster *c, const struct volume_id *id, uint64_t size,
                  struct volume **ret);

/*
 * Records that node uses the volume with access rw or ro. exclusive: no other node may hold
 * the volume at the same time (single-node access modes), and none may join later.
 * Idempotent for the same node, access and exclusivity. Returns 0;
 *   -ENOENT   no such (fully created) volume
 *   -EEXIST   node holds it already with the other access mode (ALREADY_EXISTS)
 *   -EBUSY    another node holds it and exclusivity is asked for or held (FAILED_PRECONDITION)
 *   -EINVAL   bad node id (1..256 printable ASCII, no spaces)
 *   -EAGAIN   lost too many races with other writers of the entry
 */
int volume_attach(struct cluster *c, const struct volume_id *id, const char *node,
                  enum volume_access access, bool exclusive);

/*
 * Removes node's attachment record. Idempotent: 0 also when the volume or the record does not
 * exist (CSI ControllerUnpublish of a gone volume is success). -EINVAL for a bad node id.
 */
int volume_detach(struct cluster *c, const struct volume_id *id, const char *node);

/*
 * Lists fully created volumes of pool/rados_namespace, at most max (0 = VOLUME_LIST_PAGE_MAX,
 * capped there), in request-name order, starting after the position in token (NULL or "" =
 * from the start). Returns 0, the array (free with volume_list_free()), its length, and in
 * *ret_next_token a malloc'ed token for the next page or NULL when this was the last. A page
 * may hold fewer than max volumes while more follow (volumes being created or deleted are
 * skipped). A token stays valid when its volume is deleted.
 *   -EAGAIN   malformed token (maps to ABORTED, as CSI wants for an invalid starting_token)
 *   -ENOENT   no such pool
 */
int volume_list(struct cluster *c, const char *cluster_id, const char *pool,
                const char *rados_namespace, const char *token, size_t max, struct volume **ret,
                size_t *ret_n, char **ret_next_token);

/*
 * Checks an imageFeatures list as volume_create() would (librbd's names and dependencies),
 * without a cluster. Returns 0 or -EINVAL.
 */
int volume_features_check(const char *features);

/* Pool usage for GetCapacity; see image.h: everything is 0 on a cluster without a ceph-mgr. */
struct volume_pool_usage {
	uint64_t pool_bytes;
	uint64_t pool_objects;
	uint64_t cluster_kb;
	uint64_t cluster_kb_used;
	uint64_t cluster_kb_avail;
};

/* Returns 0 and the usage; -ENOENT when there is no such pool. */
int volume_pool_usage(struct cluster *c, const char *pool, struct volume_pool_usage *ret);
