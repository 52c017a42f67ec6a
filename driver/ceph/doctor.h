/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The cluster half of `rbdcsi doctor`: finds drift between the driver's journal
 * (driver/ceph/journal.h), the RBD images and trash of a pool, the nodes that exist and the
 * PersistentVolumes that exist, and repairs what is provably safe.
 *
 * What it looks at, per pool and rados namespace (the ioctx's):
 *   - the directories "rbdcsi.volumes"/"rbdcsi.snapshots" (every key),
 *   - every entry object "rbdcsi.volume.<uuid>"/"rbdcsi.snapshot.<uuid>" (a RADOS object
 *     listing of the namespace, so entries no key points to are found too),
 *   - the images (rbd_list2) and the trash (rbd_trash_list).
 * Images are the driver's when an entry names them, or when they carry one of the driver's
 * image prefixes (the volume prefixes given, default "csi-vol-", and "csi-snap-"). Any other
 * image is foreign: it is counted, never reported or touched.
 *
 * What --repair changes (each action is a finding's `repair` text), and why it is safe:
 *   - entry_without_image: a volume or snapshot entry in state "created" (snapshots also
 *     "cloned") whose image is neither in the pool nor in its trash, and that has no
 *     attachment record: the data is already gone, so the directory key (only if it still maps
 *     to this uuid) and the entry (only if still at the version read) are removed. The CSI id
 *     then answers NOT_FOUND, which DeleteVolume/DeleteSnapshot take as success.
 *   - attachment_to_gone_node: an attachment record of a node that is not in the node list,
 *     removed only when the image has no watchers (nothing has it mapped) - as
 *     ControllerUnpublish would.
 *   - temp_snapshot_leftover: a temporary RBD snapshot ("rbdcsi-snap-<uuid>" of a CSI snapshot
 *     whose entry is gone or "created", "rbdcsi-clone-<uuid>" of a clone whose volume entry in
 *     the same pool is "created") on a volume's image: removed (clone-v2 children keep reading
 *     it from the trash namespace, as when the create removes it), unless the image has
 *     watchers.
 *   - trash_leftover: a trashed image with a driver prefix and no snapshots (so no clone child
 *     hangs from it, which is the only reason the driver trashes an image), removed through
 *     image_trash_collect(), which checks the snapshots again and respects a trash deferment.
 * Everything else is only reported, because it might be an operation in progress or hold
 * data: image_without_entry (an image may hold data), key_without_entry and entry_without_key
 * (a create or delete between two steps; its retry finishes it), stale_reservation,
 * pv_without_volume and volume_without_pv (Kubernetes' side, and data).
 * A volume in use (watchers on its image, or attachment records) is never changed.
 *
 * Read-only unless options->repair. All functions may return -ETIMEDOUT and -ENOMEM.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "driver/base/macro.h"
#include "driver/ceph/cluster.h"

enum doctor_kind {
	DOCTOR_ENTRY_WITHOUT_IMAGE,     /* journal entry whose image is gone */
	DOCTOR_KEY_WITHOUT_ENTRY,       /* directory key whose entry object is gone */
	DOCTOR_ENTRY_WITHOUT_KEY,       /* entry object no directory key points to */
	DOCTOR_STALE_RESERVATION,       /* entry still "reserved"/"deleting" for long */
	DOCTOR_IMAGE_WITHOUT_ENTRY,     /* driver-prefixed image no entry names */
	DOCTOR_TRASH_LEFTOVER,          /* driver-prefixed trashed image nothing hangs from */
	DOCTOR_ATTACHMENT_TO_GONE_NODE, /* attachment record of a node that does not exist */
	DOCTOR_PV_WITHOUT_VOLUME,       /* a PersistentVolume whose volume is gone */
	DOCTOR_VOLUME_WITHOUT_PV,       /* a volume no PersistentVolume references */
	DOCTOR_TEMP_SNAPSHOT_LEFTOVER,  /* a temporary RBD snapshot a finished create left */
	_DOCTOR_KIND_MAX,
};

/* "entry_without_image", ... (snake case of the enum). NULL for a bad kind. */
const char *doctor_kind_to_string(enum doctor_kind kind);

/* A PersistentVolume of this driver: its name and CSI volumeHandle. Borrowed. */
struct doctor_pv {
	const char *name;
	const char *volume_handle;
};

struct doctor_options {
	const char *cluster_id;      /* the clusterID of volume ids */
	const char *rados_namespace; /* NULL or "" for the default namespace */
	const char *const *pools;    /* pools to look at; NULL: every pool of the cluster */
	size_t n_pools;
	const char *const *prefixes; /* volume image prefixes; NULL: "csi-vol-" only */
	size_t n_prefixes;
	const char *const *nodes; /* the nodes that exist; only looked at when have_nodes */
	size_t n_nodes;
	bool have_nodes;
	const struct doctor_pv *pvs; /* only looked at when have_pvs */
	size_t n_pvs;
	bool have_pvs;
	bool repair;
	uint64_t now_sec; /* wall clock for stale_reservation; 0: time(NULL) */
};

struct doctor_finding {
	enum doctor_kind kind;
	char *pool;
	char *rados_namespace; /* "" for the default namespace */
	char *object;          /* image name, journal object, trash image id, or PV name */
	char *volume_id;       /* the CSI id when known, else NULL */
	char *detail;          /* what is wrong, in words */
	char *repair;          /* with repair: what was done, or why not; else NULL */
	bool repaired;         /* the repair succeeded: the finding is gone */
};

struct doctor_report {
	struct doctor_finding *findings;
	size_t n_findings;
	size_t n_pools;     /* pools looked at */
	size_t n_skipped;   /* pools (of "every pool") the user may not read */
	size_t n_volumes;   /* volume entries */
	size_t n_snapshots; /* snapshot entries */
	size_t n_images;    /* driver images */
	size_t n_foreign;   /* images that are not the driver's (ignored) */
};

/* Frees r and what it owns. Accepts NULL, returns NULL. */
struct doctor_report *doctor_report_free(struct doctor_report *r);

DEFINE_TRIVIAL_CLEANUP_FUNC(struct doctor_report *, doctor_report_free)

/*
 * Looks at the cluster c as o says, repairing when o->repair. Returns 0 and *ret (free with
 * doctor_report_free()); -EINVAL for bad options (no cluster id, a bad prefix); -ENOENT when a
 * pool given does not exist; -EPERM/-EACCES when the user may not read a pool given (of every
 * pool, those are skipped and counted in n_skipped); librados errors.
 * A failed repair is no error: its finding says why and stays unrepaired.
 */
int doctor_run(struct cluster *c, const struct doctor_options *o, struct doctor_report **ret);
