/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The CSI GroupController service: volume group snapshots (CSI 1.10+), on top of
 * driver/ceph/group_snapshot.h, in the style of snapshot.c: every handler validates the whole
 * request before it touches anything, takes the operation lock of the name or id (a second
 * operation on it gets ABORTED at once), and reports failures through the status table.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "csi.pb-c.h"
#include "driver/ceph/group_snapshot.h"
#include "plugin/ceph_access.h"
#include "plugin/config.h"
#include "plugin/group_controller.h"
#include "plugin/locks.h"
#include "plugin/metrics.h"
#include "plugin/params.h"
#include "plugin/plugin.h"
#include "plugin/snapshot.h"

#define SECRETS(req) ((void *const *)(req)->secrets), (req)->n_secrets

static Google__Protobuf__Timestamp *timestamp_new(struct call *c, const struct timespec *ts)
{
	Google__Protobuf__Timestamp *t = call_alloc(c, sizeof(*t));

	if (!t)
		return NULL;
	google__protobuf__timestamp__init(t);
	t->seconds = (int64_t)ts->tv_sec;
	t->nanos = (int32_t)ts->tv_nsec;
	return t;
}

static int group_to_csi(struct call *c, const struct group_snapshot *g,
                        Csi__V1__VolumeGroupSnapshot **ret)
{
	Csi__V1__VolumeGroupSnapshot *out = call_alloc(c, sizeof(*out));

	if (!out)
		return -ENOMEM;
	csi__v1__volume_group_snapshot__init(out);
	out->group_snapshot_id = call_strdup(c, g->id);
	out->creation_time = timestamp_new(c, &g->created);
	out->ready_to_use = g->ready;
	out->snapshots = call_alloc(c, (g->n_members + 1) * sizeof(*out->snapshots));
	if (!out->group_snapshot_id || !out->creation_time || !out->snapshots)
		return -ENOMEM;
	for (size_t i = 0; i < g->n_members; i++) {
		const struct snapshot *s = g->members[i];
		Csi__V1__Snapshot *m = call_alloc(c, sizeof(*m));

		if (!m)
			return -ENOMEM;
		csi__v1__snapshot__init(m);
		m->snapshot_id = call_strdup(c, s->id);
		m->source_volume_id = call_strdup(c, s->source_id);
		m->size_bytes = (int64_t)s->size;
		m->creation_time = timestamp_new(c, &s->created);
		m->ready_to_use = s->ready;
		m->group_snapshot_id = out->group_snapshot_id;
		if (!m->snapshot_id || !m->source_volume_id || !m->creation_time)
			return -ENOMEM;
		out->snapshots[out->n_snapshots++] = m;
	}
	*ret = out;
	return 0;
}

/* ---- GroupControllerGetCapabilities ---- */

int group_controller_get_capabilities(struct call *c, const void *request, void *response)
{
	Csi__V1__GroupControllerGetCapabilitiesResponse *resp = response;
	Csi__V1__GroupControllerServiceCapability *cap;
	Csi__V1__GroupControllerServiceCapability__RPC *rpc;

	(void)request;
	cap = call_alloc(c, sizeof(*cap));
	rpc = call_alloc(c, sizeof(*rpc));
	resp->capabilities = call_alloc(c, sizeof(*resp->capabilities));
	if (!cap || !rpc || !resp->capabilities)
		return -ENOMEM;
	csi__v1__group_controller_service_capability__init(cap);
	csi__v1__group_controller_service_capability__rpc__init(rpc);
	rpc->type =
	        CSI__V1__GROUP_CONTROLLER_SERVICE_CAPABILITY__RPC__TYPE__CREATE_DELETE_GET_VOLUME_GROUP_SNAPSHOT;
	cap->type_case = CSI__V1__GROUP_CONTROLLER_SERVICE_CAPABILITY__TYPE_RPC;
	cap->rpc = rpc;
	resp->capabilities[0] = cap;
	resp->n_capabilities = 1;
	return 0;
}

/* ---- CreateVolumeGroupSnapshot ---- */

/* VolumeGroupSnapshotClass parameters: only clusterID, which must match the sources. */
static int check_parameters(struct call *c, const Csi__V1__CreateVolumeGroupSnapshotRequest *req,
                            const char *cluster_id)
{
	for (size_t i = 0; i < req->n_parameters; i++) {
		const char *k = req->parameters[i]->key, *v = req->parameters[i]->value;

		if (strcmp(k, "clusterID") == 0) {
			if (strcmp(strempty(v), cluster_id) != 0)
				return call_fail(c, STATUS_INVALID_ARGUMENT,
				                 "parameters: clusterID '%s' is not the source "
				                 "volumes' cluster '%s'",
				                 strempty(v), cluster_id);
			continue;
		}
		if (strncmp(k, "csi.storage.k8s.io/", 19) == 0)
			continue; /* the sidecars' own keys */
		return call_fail(c, STATUS_INVALID_ARGUMENT,
		                 "parameters: unknown group snapshot class parameter '%s' (known: "
		                 "clusterID)",
		                 k);
	}
	return 0;
}

int group_controller_create_volume_group_snapshot(struct call *c, const void *request,
                                                  void *response)
{
	const Csi__V1__CreateVolumeGroupSnapshotRequest *req = request;
	Csi__V1__CreateVolumeGroupSnapshotResponse *resp = response;
	_cleanup_(group_snapshot_freep) struct group_snapshot *g = NULL;
	_cleanup_free_ struct volume_id *sources = NULL;
	struct ceph_target t = { 0 };
	struct op_lock lock = { 0 };
	struct group_snapshot_request gr;
	size_t n = req->n_source_volume_ids;
	int r;

	if (isempty(req->name))
		return call_fail(c, STATUS_INVALID_ARGUMENT, "name is required");
	if (strlen(req->name) > 1024)
		return call_fail(c, STATUS_INVALID_ARGUMENT, "name is longer than 1024 bytes");
	if (n == 0)
		return call_fail(c, STATUS_INVALID_ARGUMENT, "source_volume_ids is required");
	if (n > GROUP_SNAPSHOT_MEMBERS_MAX)
		return call_fail(c, STATUS_INVALID_ARGUMENT,
		                 "source_volume_ids has %zu volumes, at most %d are supported", n,
		                 GROUP_SNAPSHOT_MEMBERS_MAX);
	sources = calloc(n, sizeof(*sources));
	if (!sources)
		return -ENOMEM;
	for (size_t i = 0; i < n; i++) {
		const char *id = req->source_volume_ids[i];

		if (isempty(id))
			return call_fail(c, STATUS_INVALID_ARGUMENT,
			                 "source_volume_ids[%zu] is empty", i);
		if (volume_id_decode_kind(id, VOLUME_ID_VOLUME, &sources[i]) < 0)
			return call_fail(
			        c, STATUS_NOT_FOUND,
			        "source_volume_ids[%zu] '%s' is not a volume of this driver", i,
			        id);
		if (strcmp(sources[i].cluster_id, sources[0].cluster_id) != 0)
			return call_fail(
			        c, STATUS_INVALID_ARGUMENT,
			        "source_volume_ids[%zu] '%s' is in cluster '%s', not in '%s': "
			        "a group snapshot stays in one cluster",
			        i, id, sources[i].cluster_id, sources[0].cluster_id);
		for (size_t j = 0; j < i; j++)
			if (strcmp(req->source_volume_ids[j], id) == 0)
				return call_fail(c, STATUS_INVALID_ARGUMENT,
				                 "source_volume_ids[%zu] repeats '%s'", i, id);
	}
	r = check_parameters(c, req, sources[0].cluster_id);
	if (r < 0)
		return r;

	r = op_lock_take(c, &lock, "group-snapshot-name", req->name, "this group snapshot name");
	if (r < 0)
		return r;
	r = ceph_target_open(c, sources[0].cluster_id, "source_volume_ids", STATUS_NOT_FOUND,
	                     SECRETS(req), false, sources[0].rados_namespace, &t);
	if (r < 0)
		goto out;
	gr = (struct group_snapshot_request){
		.name = req->name,
		.sources = sources,
		.n_sources = n,
		.clone_depth_max = c->plugin->opt.clone_depth_soft,
		.deadline_usec = controller_flatten_deadline(c),
	};
	r = group_snapshot_create(t.conn, &gr, &g);
	if (r == -ENOENT) {
		r = call_fail(c, STATUS_NOT_FOUND,
		              "source_volume_ids: a source volume does not exist (nothing was "
		              "made)");
		goto out;
	}
	if (r == -EEXIST) {
		r = call_fail(c, STATUS_ALREADY_EXISTS,
		              "name: a group snapshot named '%s' exists with other source volumes",
		              req->name);
		goto out;
	}
	if (r == -EAGAIN) {
		r = call_fail(c, STATUS_ABORTED,
		              "group snapshot '%s' is being deleted or raced; retry later",
		              req->name);
		goto out;
	}
	if (r == -EINPROGRESS) {
		r = call_fail(c, STATUS_ABORTED,
		              "group snapshot '%s': the members are still being copied from the "
		              "cut (progress is kept); retry",
		              req->name);
		goto out;
	}
	if (r == -EBUSY) {
		r = call_fail(c, STATUS_FAILED_PRECONDITION,
		              "source_volume_ids: a source image is in an RBD group that is not "
		              "this driver's; an image can be in one RBD group only");
		goto out;
	}
	if (r == -EINVAL) {
		r = call_fail(c, STATUS_INVALID_ARGUMENT,
		              "name: names starting with '%s' are reserved for member snapshots",
		              GROUP_SNAPSHOT_MEMBER_PREFIX);
		goto out;
	}
	if (r < 0) {
		metrics_ceph_error(c->plugin->metrics, "snapshot");
		log_error_errno(r, "Failed to make group snapshot '%s' of %zu volumes: %m",
		                req->name, n);
		goto out;
	}
	r = group_to_csi(c, g, &resp->group_snapshot);
	if (r >= 0)
		log_info("Group snapshot '%s' of %zu volumes is %s (%s)", req->name, n, g->id,
		         g->ready ? "ready" : "not ready yet");
out:
	ceph_target_done(&t);
	op_lock_release(&lock);
	return r;
}

/* ---- DeleteVolumeGroupSnapshot ---- */

int group_controller_delete_volume_group_snapshot(struct call *c, const void *request,
                                                  void *response)
{
	const Csi__V1__DeleteVolumeGroupSnapshotRequest *req = request;
	struct ceph_target t = { 0 };
	struct op_lock lock = { 0 };
	struct volume_id id;
	int r;

	(void)response;
	if (isempty(req->group_snapshot_id))
		return call_fail(c, STATUS_INVALID_ARGUMENT, "group_snapshot_id is required");
	if (req->n_snapshot_ids > GROUP_SNAPSHOT_MEMBERS_MAX)
		return call_fail(c, STATUS_INVALID_ARGUMENT,
		                 "snapshot_ids has %zu ids, a group has at most %d",
		                 req->n_snapshot_ids, GROUP_SNAPSHOT_MEMBERS_MAX);
	if (volume_id_decode_kind(req->group_snapshot_id, VOLUME_ID_GROUP_SNAPSHOT, &id) < 0) {
		log_info("group_snapshot_id '%s' is not a group snapshot of this driver: nothing "
		         "to delete",
		         req->group_snapshot_id);
		return 0;
	}
	r = op_lock_take(c, &lock, "group-snapshot", req->group_snapshot_id, "this group snapshot");
	if (r < 0)
		return r;
	r = ceph_target_open(c, id.cluster_id, "group_snapshot_id", STATUS_FAILED_PRECONDITION,
	                     SECRETS(req), false, id.rados_namespace, &t);
	if (r < 0)
		goto out;
	r = group_snapshot_delete(t.conn, &id, (const char *const *)req->snapshot_ids,
	                          req->n_snapshot_ids, controller_flatten_deadline(c));
	if (r == -EINVAL)
		r = call_fail(c, STATUS_INVALID_ARGUMENT,
		              "snapshot_ids do not match the snapshots of group snapshot '%s'",
		              req->group_snapshot_id);
	else if (r == -EAGAIN)
		r = call_fail(c, STATUS_ABORTED,
		              "a member snapshot is still being flattened; retry later");
	else if (r < 0) {
		metrics_ceph_error(c->plugin->metrics, "delete");
		log_error_errno(r, "Failed to delete the group snapshot: %m");
	} else
		log_info("Group snapshot deleted");
out:
	ceph_target_done(&t);
	op_lock_release(&lock);
	return r;
}

/* ---- GetVolumeGroupSnapshot ---- */

int group_controller_get_volume_group_snapshot(struct call *c, const void *request, void *response)
{
	const Csi__V1__GetVolumeGroupSnapshotRequest *req = request;
	Csi__V1__GetVolumeGroupSnapshotResponse *resp = response;
	_cleanup_(group_snapshot_freep) struct group_snapshot *g = NULL;
	struct ceph_target t = { 0 };
	struct volume_id id;
	int r;

	if (isempty(req->group_snapshot_id))
		return call_fail(c, STATUS_INVALID_ARGUMENT, "group_snapshot_id is required");
	if (volume_id_decode_kind(req->group_snapshot_id, VOLUME_ID_GROUP_SNAPSHOT, &id) < 0)
		return call_fail(c, STATUS_NOT_FOUND,
		                 "group_snapshot_id '%s' is not a group snapshot of this driver",
		                 req->group_snapshot_id);
	r = ceph_target_open(c, id.cluster_id, "group_snapshot_id", STATUS_NOT_FOUND, SECRETS(req),
	                     false, id.rados_namespace, &t);
	if (r < 0)
		return r;
	r = group_snapshot_lookup(t.conn, &id, &g);
	ceph_target_done(&t);
	if (r == -ENOENT)
		return call_fail(c, STATUS_NOT_FOUND, "group snapshot '%s' does not exist",
		                 req->group_snapshot_id);
	if (r < 0)
		return log_error_errno(r, "Failed to look the group snapshot up: %m");
	for (size_t i = 0; i < req->n_snapshot_ids; i++) {
		bool found = false;

		for (size_t k = 0; k < g->n_members; k++)
			found = found || strcmp(req->snapshot_ids[i], g->members[k]->id) == 0;
		if (!found)
			return call_fail(c, STATUS_INVALID_ARGUMENT,
			                 "snapshot_ids[%zu] '%s' is no snapshot of group snapshot "
			                 "'%s'",
			                 i, req->snapshot_ids[i], req->group_snapshot_id);
	}
	return group_to_csi(c, g, &resp->group_snapshot);
}

/* ---- for DeleteSnapshot, GetSnapshot and ListSnapshots (snapshot.c) ---- */

int group_controller_member_guard(struct call *c, struct cluster *conn,
                                  const struct volume_id *snapshot_id)
{
	char gid[VOLUME_ID_MAX + 1];
	int r;

	r = group_snapshot_member_check(conn, snapshot_id, gid);
	if (r == -EBUSY)
		return call_fail(c, STATUS_FAILED_PRECONDITION,
		                 "snapshot_id: the snapshot is a member of group snapshot '%s'; "
		                 "delete it with DeleteVolumeGroupSnapshot",
		                 gid);
	if (r < 0)
		return log_error_errno(r, "Failed to check the snapshot's group: %m");
	return 0;
}

const char *group_controller_member_group(struct call *c, const char *snapshot_name)
{
	char gid[VOLUME_ID_MAX + 1];

	if (group_snapshot_member_of(snapshot_name, gid) <= 0)
		return NULL;
	return call_strdup(c, gid);
}
