/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The CSI Controller service: request validation and CSI semantics on top of driver/ceph's
 * crash-safe volume lifecycle (driver/ceph/volume.h). Every handler validates the whole request
 * before it touches anything, takes the per-volume (or per-name) operation lock so a second
 * operation on the same volume gets ABORTED at once, and reports failures through the status
 * table.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "csi.pb-c.h"
#include "driver/ceph/volume.h"
#include "driver/host/fs.h"
#include "plugin/attach_limit.h"
#include "plugin/capabilities.h"
#include "plugin/ceph_access.h"
#include "plugin/controller.h"
#include "plugin/locks.h"
#include "plugin/metrics.h"
#include "plugin/modify.h"
#include "plugin/params.h"
#include "plugin/plugin.h"
#include "plugin/shards.h"
#include "plugin/snapshot.h"
#include "plugin/volume_topology.h"

#define SECRETS(req) ((void *const *)(req)->secrets), (req)->n_secrets

/*
 * The fingerprint stored with a volume: what a retry of CreateVolume must ask for again to get
 * the same volume ("same name, other capabilities" is ALREADY_EXISTS). Canonical: capabilities
 * sorted.
 */
static char *fingerprint(struct call *c, Csi__V1__VolumeCapability *const *caps, size_t n,
                         const char *fs_type)
{
	char items[16][32];
	size_t k = 0;
	char *out;

	for (size_t i = 0; i < n && k < ELEMENTSOF(items); i++) {
		bool block =
		        caps[i]->access_type_case == CSI__V1__VOLUME_CAPABILITY__ACCESS_TYPE_BLOCK;
		char item[32];
		bool dup = false;

		snprintf(item, sizeof(item), "%s:%d", block ? "block" : "mount",
		         caps[i]->access_mode ? (int)caps[i]->access_mode->mode : 0);
		for (size_t j = 0; j < k; j++)
			dup |= strcmp(items[j], item) == 0;
		if (!dup)
			snprintf(items[k++], sizeof(items[0]), "%s", item);
	}
	qsort(items, k, sizeof(items[0]), (int (*)(const void *, const void *))strcmp);
	out = call_printf(c, "v1;fs=%s;caps=", fs_type);
	for (size_t i = 0; out && i < k; i++)
		out = call_printf(c, "%s%s%s", out, i ? "," : "", items[i]);
	return out;
}

/* The fsType recorded in a fingerprint, or NULL. */
static const char *fingerprint_fs(struct call *c, const char *fp)
{
	const char *s = fp ? strstr(fp, ";fs=") : NULL;
	const char *e;

	if (!s)
		return NULL;
	s += 4;
	e = strchr(s, ';');
	return call_printf(c, "%.*s", (int)(e ? e - s : (long)strlen(s)), s);
}

typedef Csi__V1__Volume__VolumeContextEntry ContextEntry;

static int context_add(struct call *c, Csi__V1__Volume *v, const char *key, const char *value)
{
	ContextEntry *e;

	if (isempty(value))
		return 0;
	e = call_alloc(c, sizeof(*e));
	if (!e)
		return -ENOMEM;
	csi__v1__volume__volume_context_entry__init(e);
	e->key = (char *)key;
	e->value = call_strdup(c, value);
	if (!e->value)
		return -ENOMEM;
	v->volume_context[v->n_volume_context++] = e;
	return 0;
}

/* Fills a CSI Volume from a driver volume (and, at creation, the parameters). */
static int volume_to_csi(struct call *c, const struct volume *vol, const struct volume_params *p,
                         const char *rados_namespace, Csi__V1__Volume **ret)
{
	Csi__V1__Volume *v = call_alloc(c, sizeof(*v));
	int r = 0;

	if (!v)
		return -ENOMEM;
	csi__v1__volume__init(v);
	v->volume_id = call_strdup(c, vol->id);
	v->capacity_bytes = (int64_t)vol->size;
	v->volume_context = call_alloc(c, 18 * sizeof(*v->volume_context));
	if (!v->volume_id || !v->volume_context)
		return -ENOMEM;
	/* What the node needs to stage without asking the controller. */
	r = r ?: context_add(c, v, "clusterID", vol->vid.cluster_id);
	r = r ?: context_add(c, v, "pool", vol->pool);
	r = r ?: context_add(c, v, "radosNamespace", rados_namespace);
	r = r ?: context_add(c, v, "imageName", vol->image);
	r = r ?: context_add(c, v, "imageFeatures", vol->features);
	r = r ?: context_add(c, v, "dataPool", vol->data_pool);
	r = r ?: context_add(c, v, "fsType", fingerprint_fs(c, vol->fingerprint));
	/* Whose volume it is (--extra-create-metadata; on the image as VOLUME_META_*). Plain
	 * keys: a PV's volumeAttributes then reads like the other fields. */
	r = r ?: context_add(c, v, "pvcName", vol->pvc_name);
	r = r ?: context_add(c, v, "pvcNamespace", vol->pvc_namespace);
	r = r ?: context_add(c, v, "pvName", vol->pv_name);
	if (p) {
		r = r ?: context_add(c, v, "mounter", p->mounter);
		r = r ?: context_add(c, v, "mkfsOptions", p->mkfs_options);
		r = r ?: context_add(c, v, "mapOptions", p->map_options);
		r = r ?: context_add(c, v, "unmapOptions", p->unmap_options);
		/* Encrypted (LUKS2 made by the node at first stage; driver/host/kms.h). */
		r = r ?: context_add(c, v, "encrypted", p->encrypted ? "true" : NULL);
		r = r ?: context_add(c, v, "encryptionKMSID", p->encrypted ? p->kms_id : NULL);
	}
	if (r < 0)
		return r;
	*ret = v;
	return 0;
}

/*
 * topologyConstrainedPools: the pool for the request's accessibility requirements. A name an
 * earlier attempt reserved in one of the pools stays there (a retry whose requirements changed,
 * e.g. after the scheduler picked another node, must not create a second volume elsewhere).
 * Without requirements (volumeBindingMode Immediate) the StorageClass's pool is used.
 */
static int topology_choose_pool(struct call *c, const Csi__V1__CreateVolumeRequest *req,
                                struct ceph_target *t, struct volume_params *p,
                                Csi__V1__Topology **ret_topology)
{
	const Csi__V1__TopologyRequirement *ar = req->accessibility_requirements;
	struct topology_pool *pools;
	size_t n, pick = SIZE_MAX;
	int r;

	r = params_topology_pools(c, p->topology_pools, &pools, &n);
	if (r < 0)
		return r;
	for (size_t i = 0; i < n && pick == SIZE_MAX; i++) {
		r = volume_name_reserved(t->conn, pools[i].pool, t->rados_namespace, req->name);
		if (r < 0)
			return log_error_errno(r, "Cannot look '%s' up in pool '%s': %m", req->name,
			                       pools[i].pool);
		if (r > 0) {
			pick = i;
			*ret_topology = params_topology_of(c, &pools[i], ar);
			if (!*ret_topology)
				return -ENOMEM;
		}
	}
	if (pick == SIZE_MAX && ar && (ar->n_requisite > 0 || ar->n_preferred > 0)) {
		r = params_topology_select(c, pools, n, ar, &pick, ret_topology);
		if (r < 0)
			return r;
	}
	if (pick == SIZE_MAX) {
		if (isempty(p->pool))
			return call_fail(c, STATUS_INVALID_ARGUMENT,
			                 "parameters: topologyConstrainedPools without pool needs "
			                 "accessibility requirements (volumeBindingMode "
			                 "WaitForFirstConsumer and a topology on the nodes)");
		return 0;
	}
	p->pool = pools[pick].pool;
	if (pools[pick].data_pool)
		p->data_pool = pools[pick].data_pool;
	log_info("Volume '%s' goes to pool '%s' (topologyConstrainedPools[%zu])", req->name,
	         p->pool, pick);
	return 0;
}

/* What CreateVolume asks for, checked before anything is locked or connected. */
struct create_volume_args {
	struct volume_params p;
	struct access_summary access;
	struct volume_id source; /* with a volume_content_source */
	uint64_t size;           /* 0 with a source and no size asked: the source's */
	uint64_t size_limit;     /* with a source: limit_bytes (0: none) */
	struct qos qos;          /* mutable_parameters */
};

/* The size of a new volume: mkfs.xfs refuses small filesystems, so a new filesystem volume is
 * rounded up to the minimum when limit_bytes allows (the response says the real size). */
static int create_volume_size(struct call *c, const Csi__V1__CreateVolumeRequest *req,
                              struct create_volume_args *a)
{
	const Csi__V1__CapacityRange *range = req->capacity_range;
	uint64_t min = fs_min_size(a->p.fs_type);
	int r;

	r = params_capacity(c, range, &a->size);
	if (r < 0)
		return r;
	if (!a->access.block && !req->volume_content_source && a->size < min) {
		if (range && range->limit_bytes > 0 && (uint64_t)range->limit_bytes < min)
			return call_fail(c, STATUS_OUT_OF_RANGE,
			                 "capacity_range: limit_bytes %lld is below %llu bytes "
			                 "(%llu MiB), the smallest %s filesystem mkfs.%s creates",
			                 (long long)range->limit_bytes, (unsigned long long)min,
			                 (unsigned long long)(min >> 20), a->p.fs_type,
			                 a->p.fs_type);
		a->size = min;
	}
	if (req->volume_content_source) {
		/* No size asked for: the source's (0); a limit below the source is OUT_OF_RANGE. */
		if (!range || range->required_bytes == 0)
			a->size = 0;
		if (range)
			a->size_limit = (uint64_t)range->limit_bytes;
	}
	return 0;
}

/* Validates the request (name, capabilities, parameters, source, size) into *a. */
static int create_volume_check(struct call *c, const Csi__V1__CreateVolumeRequest *req,
                               struct create_volume_args *a)
{
	struct volume_params *p = &a->p;
	int r;

	if (isempty(req->name))
		return call_fail(c, STATUS_INVALID_ARGUMENT, "name is required");
	if (strlen(req->name) > 1024)
		return call_fail(c, STATUS_INVALID_ARGUMENT, "name is longer than 1024 bytes");
	r = params_check_capabilities(c, "volume_capabilities", req->volume_capabilities,
	                              req->n_volume_capabilities, &a->access);
	if (r < 0)
		return r;
	r = params_parse(c, req->parameters, req->n_parameters, p);
	if (r < 0)
		return r;
	r = modify_parse(c, "mutable_parameters", (void *const *)req->mutable_parameters,
	                 req->n_mutable_parameters, &a->qos);
	if (r < 0)
		return r;
	if (a->access.fs_type) {
		bool explicit_fs = params_map_get((void *const *)req->parameters, req->n_parameters,
		                                  "fsType") ||
		                   params_map_get((void *const *)req->parameters, req->n_parameters,
		                                  "csi.storage.k8s.io/fstype");
		if (explicit_fs && strcmp(a->access.fs_type, p->fs_type) != 0)
			return call_fail(c, STATUS_INVALID_ARGUMENT,
			                 "volume_capabilities: fs_type '%s' contradicts the fsType "
			                 "parameter '%s'",
			                 a->access.fs_type, p->fs_type);
		p->fs_type = a->access.fs_type;
	}
	if (p->journal_pool && !isempty(p->pool) && strcmp(p->journal_pool, p->pool) != 0)
		return call_fail(c, STATUS_INVALID_ARGUMENT,
		                 "parameters: journalPool '%s' differs from pool '%s': the journal "
		                 "lives with the images in this version; omit journalPool",
		                 p->journal_pool, p->pool);
	if (req->volume_content_source) {
		/* Restore a snapshot, or clone a volume, of the same cluster. */
		r = controller_content_source(c, req->volume_content_source, p->cluster_id,
		                              &a->source);
		if (r < 0)
			return r;
	}
	if (volume_features_check(p->image_features) < 0)
		return call_fail(
		        c, STATUS_INVALID_ARGUMENT,
		        "parameters: imageFeatures '%s' is not a valid feature list (known: "
		        "layering, exclusive-lock, object-map, fast-diff, deep-flatten, "
		        "journaling; object-map and journaling need exclusive-lock, fast-diff "
		        "needs object-map)",
		        p->image_features);
	return create_volume_size(c, req, a);
}

/* The pool and data pool must exist: INVALID_ARGUMENT naming the parameter when not. */
static int create_volume_pools_check(struct call *c, const struct ceph_target *t,
                                     const struct volume_params *p)
{
	for (int i = 0; i < 2; i++) {
		const char *pool = i == 0 ? p->pool : p->data_pool;
		int64_t pool_id;
		int r;

		if (!pool)
			continue;
		r = cluster_pool_lookup(t->conn, pool, &pool_id);
		if (r == -ENOENT)
			return call_fail(c, STATUS_INVALID_ARGUMENT,
			                 "parameters: %s '%s' does not exist in cluster '%s'",
			                 i == 0 ? "pool" : "dataPool", pool, p->cluster_id);
		if (r < 0)
			return log_error_errno(r, "Cannot look pool '%s' up: %m", pool);
	}
	return 0;
}

/* The driver's request for *a (strings borrowed from req, a and t, or call-owned). */
static int create_volume_request(struct call *c, const Csi__V1__CreateVolumeRequest *req,
                                 const struct create_volume_args *a, const struct ceph_target *t,
                                 const char *recorded_topology, struct volume_request *ret)
{
	const struct volume_params *p = &a->p;
	const char *fp;

	fp = fingerprint(c, req->volume_capabilities, req->n_volume_capabilities, p->fs_type);
	/* A retry asking for another layout is another volume (ALREADY_EXISTS). Only when set, so
	 * the fingerprints of volumes made without striping keys stay as they were. */
	if (fp && (p->object_size || p->stripe_unit))
		fp = call_printf(
		        c, "%s;layout=%llu/%llu/%llu", fp, (unsigned long long)p->object_size,
		        (unsigned long long)p->stripe_unit, (unsigned long long)p->stripe_count);
	if (!fp)
		return -ENOMEM;
	*ret = (struct volume_request){
		.cluster_id = p->cluster_id,
		.pool = p->pool,
		.rados_namespace = t->rados_namespace,
		.name = req->name,
		.size = a->size,
		.fingerprint = fp,
		.image_prefix = p->name_prefix,
		.features = p->image_features,
		.data_pool = p->data_pool,
		.object_size = p->object_size,
		.stripe_unit = p->stripe_unit,
		.stripe_count = p->stripe_count,
		.pvc_name = p->pvc_name,
		.pvc_namespace = p->pvc_namespace,
		.pv_name = p->pv_name,
		.topology = recorded_topology,
		.source = req->volume_content_source ? &a->source : NULL,
		.size_limit = a->size_limit,
		.clone_depth_max = c->plugin->opt.clone_depth_soft,
		.deadline_usec = controller_flatten_deadline(c),
	};
	return 0;
}

/* Says why volume_create() failed with r, once; returns r (or call_fail()'s code). */
static int create_volume_failed(struct call *c, const struct volume_request *vr, int r)
{
	const char *ns = vr->rados_namespace;

	if (r == -EEXIST)
		return log_warning_errno(r,
		                         "A volume named '%s' already exists with another size, "
		                         "capabilities or parameters",
		                         vr->name);
	if (r == -EAGAIN)
		return log_warning_errno(
		        r, "Volume '%s' is being deleted or created elsewhere%s; retry later",
		        vr->name, vr->source ? ", or its source snapshot is not ready yet" : "");
	if (vr->source && r == -EINPROGRESS)
		return call_fail(c, STATUS_ABORTED,
		                 "volume '%s' is being flattened (its clone chain would be deeper "
		                 "than %u): retry later",
		                 vr->name, vr->clone_depth_max);
	if (vr->source && r == -ENOENT)
		return call_fail_errno(
		        c, STATUS_OP_ANY, r, "volume_content_source: %s does not exist",
		        vr->source->kind == VOLUME_ID_SNAPSHOT ? "the snapshot" : "the volume");
	if (vr->source && r == -ERANGE)
		return call_fail_errno(
		        c, STATUS_OP_ANY, r,
		        "capacity_range: the volume would be smaller than its source "
		        "(or limit_bytes is)");
	metrics_ceph_error(c->plugin->metrics, vr->source ? "clone" : "create");
	return log_error_errno(r, "Failed to create volume '%s' in pool '%s'%s%s: %m%s", vr->name,
	                       vr->pool, ns ? " namespace " : "", strempty(ns),
	                       r == -EINVAL ? " (does the radosNamespace exist? 'rbd namespace "
	                                      "create')"
	                                    : "");
}

int controller_create_volume(struct call *c, const void *request, void *response)
{
	const Csi__V1__CreateVolumeRequest *req = request;
	Csi__V1__CreateVolumeResponse *resp = response;
	_cleanup_(ceph_target_done) struct ceph_target t = { 0 };
	_cleanup_(op_lock_release) struct op_lock lock = { 0 };
	_cleanup_(volume_freep) struct volume *vol = NULL;
	struct create_volume_args a = { 0 };
	struct volume_request vr;
	Csi__V1__Topology *topology = NULL;
	const char *recorded_topology = NULL;
	int r;

	r = create_volume_check(c, req, &a);
	if (r < 0)
		return r;
	r = op_lock_take(c, &lock, "name", req->name, "this volume name");
	if (r < 0)
		return r;
	r = ceph_target_open(c, a.p.cluster_id, "parameters.clusterID", STATUS_INVALID_ARGUMENT,
	                     SECRETS(req), true, a.p.rados_namespace, &t);
	if (r < 0)
		return r;
	if (a.p.topology_pools) {
		r = topology_choose_pool(c, req, &t, &a.p, &topology);
		if (r < 0)
			return r;
	}
	r = volume_topology_record(c, topology, &recorded_topology);
	if (r < 0)
		return r;
	r = create_volume_pools_check(c, &t, &a.p);
	if (r < 0)
		return r;
	r = create_volume_request(c, req, &a, &t, recorded_topology, &vr);
	if (r < 0)
		return r;
	r = volume_create(t.conn, &vr, &vol);
	if (r < 0)
		return create_volume_failed(c, &vr, r);

	log_context_set_volume(vol->id);
	r = modify_apply_create(c, t.conn, &vol->vid, &a.qos, req->volume_content_source != NULL);
	if (r < 0)
		return r;
	r = volume_to_csi(c, vol, &a.p, t.rados_namespace, &resp->volume);
	if (r < 0)
		return r;
	r = volume_topology_add(c, vol, topology, resp->volume);
	if (r < 0)
		return r;
	if (req->volume_content_source)
		resp->volume->content_source = req->volume_content_source; /* packed before freed */
	log_info("Volume '%s' is image '%s/%s' (%" PRIu64 " bytes)", req->name, a.p.pool,
	         vol->image, vol->size);
	return 0;
}

int controller_delete_volume(struct call *c, const void *request, void *response)
{
	const Csi__V1__DeleteVolumeRequest *req = request;
	_cleanup_(ceph_target_done) struct ceph_target t = { 0 };
	_cleanup_(op_lock_release) struct op_lock lock = { 0 };
	struct volume_id id;
	int r;

	(void)response;
	if (isempty(req->volume_id))
		return call_fail(c, STATUS_INVALID_ARGUMENT, "volume_id is required");
	if (volume_id_decode_kind(req->volume_id, VOLUME_ID_VOLUME, &id) < 0) {
		/* CSI: a volume that does not exist is deleted. This id names none of ours. */
		log_info("volume_id '%s' is not a volume of this driver: nothing to delete",
		         req->volume_id);
		return 0;
	}
	r = op_lock_take(c, &lock, "volume", req->volume_id, "this volume");
	if (r < 0)
		return r;
	/* A well-formed id of a cluster we do not know is an admin error, not "already gone":
	 * answering OK would leak the image, so the PV stays until the config is fixed. */
	r = ceph_target_open(c, id.cluster_id, "volume_id", STATUS_FAILED_PRECONDITION,
	                     SECRETS(req), false, id.rados_namespace, &t);
	if (r < 0)
		return r;
	r = volume_delete(t.conn, &id);
	if (r == -EBUSY)
		return log_warning_errno(r, "Volume is in use (mapped on a node, attached, or "
		                            "carries RBD snapshots this driver did not take): not "
		                            "deleted");
	if (r < 0) {
		metrics_ceph_error(c->plugin->metrics, "delete");
		return log_error_errno(r, "Failed to delete the volume: %m");
	}
	log_info("Volume deleted");
	return 0;
}

static int open_volume(struct call *c, const char *volume_id, void *const *secrets,
                       size_t n_secrets, struct volume_id *ret_id, struct ceph_target *ret_t)
{
	int r;

	if (volume_id_decode_kind(volume_id, VOLUME_ID_VOLUME, ret_id) < 0)
		return call_fail(c, STATUS_NOT_FOUND,
		                 "volume_id '%s' is not a volume of this driver", volume_id);
	r = ceph_target_open(c, ret_id->cluster_id, "volume_id", STATUS_NOT_FOUND, secrets,
	                     n_secrets, false, ret_id->rados_namespace, ret_t);
	return r;
}

/*
 * Connects for a static volume and checks that its image exists: NOT_FOUND when it does not.
 * Returns 0 and the image's size.
 */
static int static_volume_open(struct call *c, const struct static_volume *sv, void *const *secrets,
                              size_t n_secrets, struct ceph_target *ret_t, uint64_t *ret_size)
{
	int r;

	r = ceph_target_open(c, sv->cluster_id, "volume_context.clusterID", STATUS_NOT_FOUND,
	                     secrets, n_secrets, false, sv->rados_namespace, ret_t);
	if (r < 0)
		return r;
	r = volume_static_stat(ret_t->conn, sv->pool, ret_t->rados_namespace, sv->image, ret_size);
	if (r == -ENOENT)
		return call_fail_errno(
		        c, STATUS_OP_ANY, r,
		        "static volume: image '%s/%s%s%s' does not exist in cluster '%s'", sv->pool,
		        strempty(ret_t->rados_namespace), ret_t->rados_namespace ? "/" : "",
		        sv->image, sv->cluster_id);
	if (r < 0)
		return log_error_errno(r, "Cannot look the static volume's image '%s/%s' up: %m",
		                       sv->pool, sv->image);
	return 0;
}

/* Says why volume_attach() failed with r, once; returns r. */
static int publish_volume_failed(struct call *c, const Csi__V1__ControllerPublishVolumeRequest *req,
                                 bool ro, int r)
{
	if (r == -ENOENT)
		return log_warning_errno(r, "Volume does not exist");
	if (r == -EBUSY)
		return log_warning_errno(r,
		                         "Volume is published to another node and its access mode "
		                         "allows a single node: not published to '%s'",
		                         req->node_id);
	if (r == -EEXIST)
		return log_warning_errno(r, "Volume is already published to '%s' with %s access",
		                         req->node_id, ro ? "read-write" : "read-only");
	if (r == -EINVAL)
		return log_warning_errno(r, "node_id '%s' is not a valid node id", req->node_id);
	metrics_ceph_error(c->plugin->metrics, "attach");
	return log_error_errno(r, "Failed to record the attachment to '%s': %m", req->node_id);
}

/* The publish context: readOnly. */
static int publish_volume_answer(struct call *c, const Csi__V1__ControllerPublishVolumeRequest *req,
                                 Csi__V1__ControllerPublishVolumeResponse *resp, bool ro)
{
	Csi__V1__ControllerPublishVolumeResponse__PublishContextEntry *e;

	resp->publish_context = call_alloc(c, sizeof(*resp->publish_context));
	e = call_alloc(c, sizeof(*e));
	if (!resp->publish_context || !e)
		return -ENOMEM;
	csi__v1__controller_publish_volume_response__publish_context_entry__init(e);
	e->key = (char *)"readOnly";
	e->value = (char *)(ro ? "true" : "false");
	resp->publish_context[resp->n_publish_context++] = e;
	log_info("Volume published to node '%s' (%s)", req->node_id, ro ? "ro" : "rw");
	return 0;
}

int controller_publish_volume(struct call *c, const void *request, void *response)
{
	const Csi__V1__ControllerPublishVolumeRequest *req = request;
	Csi__V1__ControllerPublishVolumeResponse *resp = response;
	_cleanup_(ceph_target_done) struct ceph_target t = { 0 };
	_cleanup_(op_lock_release) struct op_lock lock = { 0 };
	struct access_summary access;
	struct static_volume sv;
	struct volume_id id;
	bool ro;
	int r;

	if (isempty(req->volume_id))
		return call_fail(c, STATUS_INVALID_ARGUMENT, "volume_id is required");
	if (isempty(req->node_id))
		return call_fail(c, STATUS_INVALID_ARGUMENT, "node_id is required");
	if (!req->volume_capability)
		return call_fail(c, STATUS_INVALID_ARGUMENT, "volume_capability is required");
	r = params_check_capabilities(c, "volume_capability", &req->volume_capability, 1, &access);
	if (r < 0)
		return r;
	ro = req->readonly || access.read_only;

	r = op_lock_take(c, &lock, "volume", req->volume_id, "this volume");
	if (r < 0)
		return r;
	r = params_static_volume(c, req->volume_id, (void *const *)req->volume_context,
	                         req->n_volume_context, &sv);
	if (r < 0)
		return r;
	if (r > 0) {
		/* A static volume has no journal entry to record attachments in: like ceph-csi,
		 * publishing only checks that the image is there (Kubernetes' attach/detach
		 * controller still enforces single-node access modes). */
		uint64_t size;

		r = static_volume_open(c, &sv, SECRETS(req), &t, &size);
		if (r < 0)
			return r;
		return publish_volume_answer(c, req, resp, ro);
	}
	r = open_volume(c, req->volume_id, SECRETS(req), &id, &t);
	if (r < 0)
		return r;
	r = attach_limit_check(c, t.conn, &id, req->node_id);
	if (r < 0)
		return r;
	r = volume_attach(t.conn, &id, req->node_id, ro ? VOLUME_ACCESS_RO : VOLUME_ACCESS_RW,
	                  !access.multi_node);
	if (r < 0)
		return publish_volume_failed(c, req, ro, r);
	r = publish_volume_answer(c, req, resp, ro);
	if (r < 0)
		return r;
	return modify_publish_context(c, t.conn, &id, resp); /* QoS for krbd nodes */
}

int controller_unpublish_volume(struct call *c, const void *request, void *response)
{
	const Csi__V1__ControllerUnpublishVolumeRequest *req = request;
	_cleanup_(ceph_target_done) struct ceph_target t = { 0 };
	_cleanup_(op_lock_release) struct op_lock lock = { 0 };
	_cleanup_(volume_freep) struct volume *vol = NULL;
	struct volume_id id;
	int r;

	(void)response;
	if (isempty(req->volume_id))
		return call_fail(c, STATUS_INVALID_ARGUMENT, "volume_id is required");
	if (volume_id_decode_kind(req->volume_id, VOLUME_ID_VOLUME, &id) < 0) {
		log_info("volume_id '%s' is not a volume of this driver: nothing to unpublish",
		         req->volume_id);
		return 0;
	}
	r = op_lock_take(c, &lock, "volume", req->volume_id, "this volume");
	if (r < 0)
		return r;
	r = ceph_target_open(c, id.cluster_id, "volume_id", STATUS_NOT_FOUND, SECRETS(req), false,
	                     id.rados_namespace, &t);
	if (r < 0)
		return r;
	if (!isempty(req->node_id))
		r = volume_detach(t.conn, &id, req->node_id);
	else {
		/* CSI: no node_id means unpublish from every node. */
		r = volume_lookup(t.conn, &id, &vol);
		if (r == -ENOENT)
			r = 0;
		for (size_t i = 0; r >= 0 && vol && i < vol->n_attachments; i++)
			r = volume_detach(t.conn, &id, vol->attachments[i].node);
	}
	if (r == -EINVAL)
		return log_warning_errno(r, "node_id '%s' is not a valid node id", req->node_id);
	if (r < 0) {
		metrics_ceph_error(c->plugin->metrics, "attach");
		return log_error_errno(r, "Failed to remove the attachment record: %m");
	}
	log_info("Volume unpublished from %s%s%s", isempty(req->node_id) ? "every node" : "'",
	         strempty(req->node_id), isempty(req->node_id) ? "" : "'");
	return 0;
}

int controller_validate_volume_capabilities(struct call *c, const void *request, void *response)
{
	const Csi__V1__ValidateVolumeCapabilitiesRequest *req = request;
	Csi__V1__ValidateVolumeCapabilitiesResponse *resp = response;
	Csi__V1__ValidateVolumeCapabilitiesResponse__Confirmed *confirmed;
	_cleanup_(volume_freep) struct volume *vol = NULL;
	struct ceph_target t = { 0 };
	struct access_summary access;
	struct volume_id id;
	const char *fs;
	int r;

	if (isempty(req->volume_id))
		return call_fail(c, STATUS_INVALID_ARGUMENT, "volume_id is required");
	if (req->n_volume_capabilities == 0)
		return call_fail(c, STATUS_INVALID_ARGUMENT, "volume_capabilities are required");
	r = open_volume(c, req->volume_id, SECRETS(req), &id, &t);
	if (r < 0)
		return r;
	r = volume_lookup(t.conn, &id, &vol);
	ceph_target_done(&t);
	if (r == -ENOENT)
		return call_fail_errno(c, STATUS_OP_ANY, r, "volume does not exist");
	if (r < 0)
		return log_error_errno(r, "Failed to look the volume up: %m");

	/* Unsupported capabilities are an answer ("not confirmed, because..."), not an error. */
	r = params_check_capabilities(c, "volume_capabilities", req->volume_capabilities,
	                              req->n_volume_capabilities, &access);
	if (r < 0) {
		resp->message = call_strdup(c, c->log.error_message);
		call_fail_clear(c);
		return 0;
	}
	fs = fingerprint_fs(c, vol->fingerprint);
	if (access.fs_type && fs && strcmp(access.fs_type, fs) != 0) {
		resp->message =
		        call_printf(c, "the volume was created for %s, not %s", fs, access.fs_type);
		return 0;
	}
	confirmed = call_alloc(c, sizeof(*confirmed));
	if (!confirmed)
		return -ENOMEM;
	csi__v1__validate_volume_capabilities_response__confirmed__init(confirmed);
	confirmed->n_volume_capabilities = req->n_volume_capabilities;
	confirmed->volume_capabilities = req->volume_capabilities;
	confirmed->n_volume_context = req->n_volume_context;
	confirmed->volume_context = (void *)req->volume_context;
	confirmed->n_parameters = req->n_parameters;
	confirmed->parameters = (void *)req->parameters;
	confirmed->n_mutable_parameters = req->n_mutable_parameters;
	confirmed->mutable_parameters = (void *)req->mutable_parameters;
	resp->confirmed = confirmed;
	return 0;
}

/* A filesystem has to grow on the node; a raw block volume is done. */
static bool expand_needs_node(const Csi__V1__ControllerExpandVolumeRequest *req)
{
	return !(req->volume_capability && req->volume_capability->access_type_case ==
	                                           CSI__V1__VOLUME_CAPABILITY__ACCESS_TYPE_BLOCK);
}

/* ControllerExpandVolume of a static volume (t is opened here, closed by the caller). */
static int expand_static_volume(struct call *c, const Csi__V1__ControllerExpandVolumeRequest *req,
                                const struct static_volume *sv, uint64_t size,
                                struct ceph_target *t,
                                Csi__V1__ControllerExpandVolumeResponse *resp)
{
	uint64_t cur;
	int r;

	r = static_volume_open(c, sv, SECRETS(req), t, &cur);
	if (r < 0)
		return r;
	r = volume_static_expand(t->conn, sv->pool, t->rados_namespace, sv->image, size, &cur);
	if (r < 0) {
		metrics_ceph_error(c->plugin->metrics, "resize");
		return log_error_errno(
		        r, "Failed to grow the static volume to %" PRIu64 " bytes: %m", size);
	}
	resp->capacity_bytes = (int64_t)cur;
	resp->node_expansion_required = expand_needs_node(req);
	log_info("Static volume is now %" PRIu64 " bytes", cur);
	return 0;
}

int controller_expand_volume(struct call *c, const void *request, void *response)
{
	const Csi__V1__ControllerExpandVolumeRequest *req = request;
	Csi__V1__ControllerExpandVolumeResponse *resp = response;
	_cleanup_(ceph_target_done) struct ceph_target t = { 0 };
	_cleanup_(op_lock_release) struct op_lock lock = { 0 };
	_cleanup_(volume_freep) struct volume *vol = NULL;
	struct static_volume sv;
	struct volume_id id;
	uint64_t size;
	int r;

	if (isempty(req->volume_id))
		return call_fail(c, STATUS_INVALID_ARGUMENT, "volume_id is required");
	if (!req->capacity_range)
		return call_fail(c, STATUS_INVALID_ARGUMENT, "capacity_range is required");
	r = params_capacity(c, req->capacity_range, &size);
	if (r < 0)
		return r;
	if (req->volume_capability) {
		struct access_summary access;

		r = params_check_capabilities(c, "volume_capability", &req->volume_capability, 1,
		                              &access);
		if (r < 0)
			return r;
	}
	r = op_lock_take(c, &lock, "volume", req->volume_id, "this volume");
	if (r < 0)
		return r;
	/* A static volume can grow when its handle names it: "<clusterID>/<pool>/<image>" (the
	 * request carries no volume context). */
	r = params_static_volume(c, req->volume_id, NULL, 0, &sv);
	if (r < 0)
		return r;
	if (r > 0)
		return expand_static_volume(c, req, &sv, size, &t, resp);
	r = open_volume(c, req->volume_id, SECRETS(req), &id, &t);
	if (r < 0)
		return r;
	r = volume_expand(t.conn, &id, size, &vol);
	if (r == -ENOENT)
		return log_warning_errno(r, "Volume does not exist");
	if (r < 0) {
		metrics_ceph_error(c->plugin->metrics, "resize");
		return log_error_errno(r, "Failed to grow the volume to %" PRIu64 " bytes: %m",
		                       size);
	}
	resp->capacity_bytes = (int64_t)vol->size;
	resp->node_expansion_required = expand_needs_node(req);
	log_info("Volume is now %" PRIu64 " bytes", vol->size);
	return 0;
}

/* Fills a ControllerGetVolume/ListVolumes status from the attachment records. */
static int volume_status(struct call *c, const struct volume *vol, bool with_condition,
                         Csi__V1__ListVolumesResponse__VolumeStatus *ret)
{
	csi__v1__list_volumes_response__volume_status__init(ret);
	ret->published_node_ids = call_alloc(c, (vol->n_attachments + 1) * sizeof(char *));
	if (!ret->published_node_ids)
		return -ENOMEM;
	for (size_t i = 0; i < vol->n_attachments; i++) {
		ret->published_node_ids[i] = call_strdup(c, vol->attachments[i].node);
		if (!ret->published_node_ids[i])
			return -ENOMEM;
	}
	ret->n_published_node_ids = vol->n_attachments;
	if (with_condition) {
		Csi__V1__VolumeCondition *cond = call_alloc(c, sizeof(*cond));

		if (!cond)
			return -ENOMEM;
		csi__v1__volume_condition__init(cond);
		cond->abnormal = false;
		cond->message = call_printf(c, "image %s/%s exists, %" PRIu64 " bytes", vol->pool,
		                            vol->image, vol->size);
		ret->volume_condition = cond;
	}
	return 0;
}

int controller_get_volume(struct call *c, const void *request, void *response)
{
	const Csi__V1__ControllerGetVolumeRequest *req = request;
	Csi__V1__ControllerGetVolumeResponse *resp = response;
	_cleanup_(volume_freep) struct volume *vol = NULL;
	Csi__V1__ListVolumesResponse__VolumeStatus st;
	Csi__V1__ControllerGetVolumeResponse__VolumeStatus *status;
	struct ceph_target t = { 0 };
	struct volume_id id;
	int r;

	if (isempty(req->volume_id))
		return call_fail(c, STATUS_INVALID_ARGUMENT, "volume_id is required");
	r = open_volume(c, req->volume_id, NULL, 0, &id, &t);
	if (r < 0)
		return r;
	r = volume_lookup(t.conn, &id, &vol);
	if (r == -ENOENT) {
		ceph_target_done(&t);
		return call_fail_errno(c, STATUS_OP_ANY, r, "volume does not exist");
	}
	if (r < 0) {
		ceph_target_done(&t);
		return log_error_errno(r, "Failed to look the volume up: %m");
	}
	r = volume_to_csi(c, vol, NULL, t.rados_namespace, &resp->volume);
	ceph_target_done(&t);
	if (r >= 0)
		r = volume_topology_add(c, vol, NULL, resp->volume);
	if (r < 0)
		return r;
	r = volume_status(c, vol, true, &st);
	if (r < 0)
		return r;
	status = call_alloc(c, sizeof(*status));
	if (!status)
		return -ENOMEM;
	csi__v1__controller_get_volume_response__volume_status__init(status);
	status->n_published_node_ids = st.n_published_node_ids;
	status->published_node_ids = st.published_node_ids;
	status->volume_condition = st.volume_condition;
	resp->status = status;
	return 0;
}

int controller_get_capacity(struct call *c, const void *request, void *response)
{
	const Csi__V1__GetCapacityRequest *req = request;
	Csi__V1__GetCapacityResponse *resp = response;
	const char *cluster_id =
	        params_map_get((void *const *)req->parameters, req->n_parameters, "clusterID");
	const char *pool =
	        params_map_get((void *const *)req->parameters, req->n_parameters, "pool");
	struct volume_pool_usage usage;
	struct ceph_target t = { 0 };
	int r;

	if (req->n_volume_capabilities > 0) {
		struct access_summary access;

		r = params_check_capabilities(c, "volume_capabilities", req->volume_capabilities,
		                              req->n_volume_capabilities, &access);
		if (r < 0)
			return r;
	}
	resp->minimum_volume_size = call_alloc(c, sizeof(*resp->minimum_volume_size));
	if (!resp->minimum_volume_size)
		return -ENOMEM;
	google__protobuf__int64_value__init(resp->minimum_volume_size);
	resp->minimum_volume_size->value = 1024 * 1024;
	if (isempty(cluster_id) || isempty(pool)) {
		/* Without a StorageClass there is no pool to measure: report nothing available
		 * rather than guess. */
		resp->available_capacity = 0;
		return 0;
	}
	if (!params_name_valid(pool, PARAMS_MAX_NAME_BYTES))
		return call_fail(c, STATUS_INVALID_ARGUMENT,
		                 "parameters: pool '%s' is not a valid pool name", pool);
	r = ceph_target_open(c, cluster_id, "parameters.clusterID", STATUS_INVALID_ARGUMENT, NULL,
	                     0, false, NULL, &t);
	if (r < 0)
		return r;
	r = volume_pool_usage(t.conn, pool, &usage);
	ceph_target_done(&t);
	if (r == -ENOENT)
		return call_fail(c, STATUS_INVALID_ARGUMENT, "parameters: pool '%s' does not exist",
		                 pool);
	if (r < 0)
		return log_error_errno(r, "Failed to read the usage of pool '%s': %m", pool);
	/* Pool statistics come from the ceph-mgr; without one they are all 0 (see README). */
	resp->available_capacity = (int64_t)(usage.cluster_kb_avail * 1024);
	return 0;
}

/* Grows the response's entry array (call-owned) to hold one more entry and its NULL end. */
static int list_volumes_reserve(struct call *c, Csi__V1__ListVolumesResponse *resp, size_t *cap)
{
	size_t new_cap;
	void *g;

	if (resp->n_entries + 1 < *cap)
		return 0;
	new_cap = *cap ? *cap * 2 : 64;
	g = call_alloc(c, new_cap * sizeof(*resp->entries));
	if (!g)
		return -ENOMEM;
	if (resp->n_entries)
		memcpy(g, resp->entries, resp->n_entries * sizeof(*resp->entries));
	resp->entries = g;
	*cap = new_cap;
	return 0;
}

static int list_volumes_append(struct call *c, Csi__V1__ListVolumesResponse *resp, size_t *cap,
                               const struct volume *vol, const char *rados_namespace)
{
	Csi__V1__ListVolumesResponse__Entry *e;
	Csi__V1__ListVolumesResponse__VolumeStatus *st;
	int r;

	r = list_volumes_reserve(c, resp, cap);
	if (r < 0)
		return r;
	e = call_alloc(c, sizeof(*e));
	st = call_alloc(c, sizeof(*st));
	if (!e || !st)
		return -ENOMEM;
	csi__v1__list_volumes_response__entry__init(e);
	e->status = st;
	resp->entries[resp->n_entries++] = e;
	r = volume_to_csi(c, vol, NULL, rados_namespace, &e->volume);
	if (r >= 0)
		r = volume_topology_add(c, vol, NULL, e->volume);
	if (r < 0)
		return r;
	return volume_status(c, vol, false, st);
}

struct list_volumes_page {
	Csi__V1__ListVolumesResponse *resp;
	size_t cap;
};

/* shards_walk()'s page of ListVolumes: volume_list() of one shard. */
static int list_volumes_page(struct call *c, const struct shard *s, struct cluster *conn,
                             const char *token, size_t max, void *userdata, size_t *ret_n,
                             char **ret_next)
{
	struct list_volumes_page *lp = userdata;
	struct volume *vols = NULL;
	size_t n = 0;
	int r;

	r = volume_list(conn, s->cluster_id, s->pool, s->rados_namespace, token,
	                MIN(max, (size_t)VOLUME_LIST_PAGE_MAX), &vols, &n, ret_next);
	if (r < 0)
		return r;
	for (size_t k = 0; k < n && r >= 0; k++)
		r = list_volumes_append(c, lp->resp, &lp->cap, &vols[k], s->rados_namespace);
	volume_list_free(vols, n);
	if (r < 0) {
		free(*ret_next);
		*ret_next = NULL;
		return r;
	}
	*ret_n = n;
	return 0;
}

/* ListVolumes walks the shards (plugin/shards.h) with shards_walk(), as ListSnapshots does. */
int controller_list_volumes(struct call *c, const void *request, void *response)
{
	const Csi__V1__ListVolumesRequest *req = request;
	Csi__V1__ListVolumesResponse *resp = response;
	struct list_volumes_page lp = { .resp = resp };
	struct shard *shards = NULL;
	size_t n_shards = 0;
	int r;

	if (req->max_entries < 0)
		return call_fail(c, STATUS_INVALID_ARGUMENT, "max_entries must not be negative");
	r = shards_all(c, &shards, &n_shards);
	if (r < 0)
		return log_error_errno(r, "Failed to list the pools to scan: %m");
	r = shards_walk(c, shards, n_shards, req->starting_token,
	                req->max_entries == 0 ? SIZE_MAX : (size_t)req->max_entries, NULL, 0,
	                "volumes", list_volumes_page, &lp, &resp->next_token);
	shards_free(shards, n_shards);
	return r;
}

int controller_get_capabilities(struct call *c, const void *request, void *response)
{
	Csi__V1__ControllerGetCapabilitiesResponse *resp = response;
	const struct capability *caps;
	size_t n = capabilities_controller(&c->plugin->opt, &caps);

	(void)request;
	resp->capabilities = call_alloc(c, (n + 1) * sizeof(*resp->capabilities));
	if (!resp->capabilities)
		return -ENOMEM;
	for (size_t i = 0; i < n; i++) {
		Csi__V1__ControllerServiceCapability *sc = call_alloc(c, sizeof(*sc));
		Csi__V1__ControllerServiceCapability__RPC *rpc = call_alloc(c, sizeof(*rpc));

		if (!sc || !rpc)
			return -ENOMEM;
		csi__v1__controller_service_capability__init(sc);
		csi__v1__controller_service_capability__rpc__init(rpc);
		rpc->type = caps[i].value;
		sc->type_case = CSI__V1__CONTROLLER_SERVICE_CAPABILITY__TYPE_RPC;
		sc->rpc = rpc;
		resp->capabilities[resp->n_capabilities++] = sc;
	}
	return 0;
}
