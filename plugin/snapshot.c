/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The CSI snapshot calls: request validation and CSI semantics on top of driver/ceph's
 * crash-safe snapshot lifecycle (driver/ceph/snapshot.h), in the style of controller.c: every
 * handler validates the whole request before it touches anything, takes the operation lock of
 * the name or id (a second operation on it gets ABORTED at once), and reports failures through
 * the status table.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "csi.pb-c.h"
#include "driver/ceph/snapshot.h"
#include "plugin/ceph_access.h"
#include "plugin/config.h"
#include "plugin/group_controller.h"
#include "plugin/locks.h"
#include "plugin/metrics.h"
#include "plugin/params.h"
#include "plugin/plugin.h"
#include "plugin/shards.h"
#include "plugin/snapshot.h"

#define SECRETS(req)          ((void *const *)(req)->secrets), (req)->n_secrets
#define FLATTEN_MARGIN_MAX_US (2ULL * 1000000ULL)

/* ---- small helpers ---- */

uint64_t controller_flatten_deadline(const struct call *c)
{
	uint64_t now = now_usec(), left, margin;

	if (c->deadline_usec == UINT64_MAX)
		return 0;
	if (c->deadline_usec <= now)
		return now; /* already late: do not wait at all */
	left = c->deadline_usec - now;
	margin = MIN(left / 10, FLATTEN_MARGIN_MAX_US);
	return c->deadline_usec - margin;
}

static int snapshot_to_csi(struct call *c, const struct snapshot *s, Csi__V1__Snapshot **ret)
{
	Csi__V1__Snapshot *out = call_alloc(c, sizeof(*out));
	Google__Protobuf__Timestamp *ts = call_alloc(c, sizeof(*ts));

	if (!out || !ts)
		return -ENOMEM;
	csi__v1__snapshot__init(out);
	google__protobuf__timestamp__init(ts);
	ts->seconds = (int64_t)s->created.tv_sec;
	ts->nanos = (int32_t)s->created.tv_nsec;
	out->snapshot_id = call_strdup(c, s->id);
	out->source_volume_id = call_strdup(c, s->source_id);
	out->size_bytes = (int64_t)s->size;
	out->creation_time = ts;
	out->ready_to_use = s->ready;
	out->group_snapshot_id = (char *)group_controller_member_group(c, s->name);
	if (!out->snapshot_id || !out->source_volume_id)
		return -ENOMEM;
	*ret = out;
	return 0;
}

/* VolumeSnapshotClass parameters: clusterID and pool may repeat what the source implies. */
static int check_parameters(struct call *c, const Csi__V1__CreateSnapshotRequest *req,
                            const struct volume_id *source)
{
	for (size_t i = 0; i < req->n_parameters; i++) {
		const char *k = req->parameters[i]->key, *v = req->parameters[i]->value;

		if (strncmp(k, "csi.storage.k8s.io/", 19) == 0)
			continue; /* added by external-snapshotter (--extra-create-metadata) */
		if (strlen(v) > PARAMS_MAX_VALUE_BYTES)
			return call_fail(c, STATUS_INVALID_ARGUMENT,
			                 "parameters: '%s' is longer than %d bytes", k,
			                 PARAMS_MAX_VALUE_BYTES);
		if (strcmp(k, "clusterID") == 0) {
			if (strcmp(v, source->cluster_id) != 0)
				return call_fail(
				        c, STATUS_INVALID_ARGUMENT,
				        "parameters: clusterID '%s' differs from the source "
				        "volume's cluster '%s': a snapshot stays in the "
				        "cluster of its volume",
				        v, source->cluster_id);
			continue;
		}
		if (strcmp(k, "pool") == 0) {
			if (!params_name_valid(v, PARAMS_MAX_NAME_BYTES))
				return call_fail(c, STATUS_INVALID_ARGUMENT,
				                 "parameters: pool '%s' is not a valid pool name",
				                 v);
			continue; /* compared with the source's pool once connected */
		}
		return call_fail(c, STATUS_INVALID_ARGUMENT,
		                 "parameters: unknown snapshot class parameter '%s' (known: "
		                 "clusterID, pool)",
		                 k);
	}
	return 0;
}

/* ---- CreateVolume's content source ---- */

int controller_content_source(struct call *c, const Csi__V1__VolumeContentSource *source,
                              const char *cluster_id, struct volume_id *ret)
{
	enum volume_id_kind kind;
	const char *field, *id = NULL, *what;
	struct volume_id sid;

	switch (source->type_case) {
	case CSI__V1__VOLUME_CONTENT_SOURCE__TYPE_SNAPSHOT:
		kind = VOLUME_ID_SNAPSHOT;
		field = "volume_content_source.snapshot.snapshot_id";
		what = "snapshot";
		id = source->snapshot ? source->snapshot->snapshot_id : NULL;
		break;
	case CSI__V1__VOLUME_CONTENT_SOURCE__TYPE_VOLUME:
		kind = VOLUME_ID_VOLUME;
		field = "volume_content_source.volume.volume_id";
		what = "volume";
		id = source->volume ? source->volume->volume_id : NULL;
		break;
	default:
		return call_fail(c, STATUS_INVALID_ARGUMENT,
		                 "volume_content_source: neither a snapshot nor a volume is set");
	}
	if (isempty(id))
		return call_fail(c, STATUS_INVALID_ARGUMENT, "%s is required", field);
	if (volume_id_decode_kind(id, kind, &sid) < 0)
		return call_fail(c, STATUS_NOT_FOUND, "%s: '%s' is not a %s of this driver", field,
		                 id, what);
	if (strcmp(sid.cluster_id, cluster_id) != 0)
		return call_fail(c, STATUS_INVALID_ARGUMENT,
		                 "%s: %s '%s' is in cluster '%s', not in cluster '%s' where the "
		                 "volume is to be created: restores and clones stay in one cluster",
		                 field, what, id, sid.cluster_id, cluster_id);
	*ret = sid;
	return 0;
}

/* ---- CreateSnapshot ---- */

/* Says why snapshot_create() failed with r, once; returns r (or call_fail_errno()'s). */
static int create_snapshot_failed(struct call *c, const Csi__V1__CreateSnapshotRequest *req, int r)
{
	if (r == -ENOENT)
		return call_fail_errno(c, STATUS_OP_ANY, r, "source volume '%s' does not exist",
		                       req->source_volume_id);
	if (r == -EEXIST)
		return log_warning_errno(
		        r, "A snapshot named '%s' already exists with another source volume",
		        req->name);
	if (r == -EAGAIN)
		return log_warning_errno(r, "Snapshot '%s' is being deleted; retry later",
		                         req->name);
	metrics_ceph_error(c->plugin->metrics, "snapshot");
	return log_error_errno(r, "Failed to snapshot volume '%s' as '%s': %m",
	                       req->source_volume_id, req->name);
}

int controller_create_snapshot(struct call *c, const void *request, void *response)
{
	const Csi__V1__CreateSnapshotRequest *req = request;
	Csi__V1__CreateSnapshotResponse *resp = response;
	_cleanup_(ceph_target_done) struct ceph_target t = { 0 };
	_cleanup_(op_lock_release) struct op_lock lock = { 0 };
	_cleanup_(snapshot_freep) struct snapshot *snap = NULL;
	struct snapshot_request sr;
	struct volume_id source;
	const char *pool;
	int r;

	if (isempty(req->name))
		return call_fail(c, STATUS_INVALID_ARGUMENT, "name is required");
	if (strlen(req->name) > 1024)
		return call_fail(c, STATUS_INVALID_ARGUMENT, "name is longer than 1024 bytes");
	if (strncmp(req->name, "rbdcsi-group:", 13) == 0)
		return call_fail(c, STATUS_INVALID_ARGUMENT,
		                 "name: names starting with 'rbdcsi-group:' are reserved for the "
		                 "members of group snapshots");
	if (isempty(req->source_volume_id))
		return call_fail(c, STATUS_INVALID_ARGUMENT, "source_volume_id is required");
	if (volume_id_decode_kind(req->source_volume_id, VOLUME_ID_VOLUME, &source) < 0)
		return call_fail(c, STATUS_NOT_FOUND,
		                 "source_volume_id '%s' is not a volume of this driver",
		                 req->source_volume_id);
	r = check_parameters(c, req, &source);
	if (r < 0)
		return r;

	r = op_lock_take(c, &lock, "snapshot-name", req->name, "this snapshot name");
	if (r < 0)
		return r;
	r = ceph_target_open(c, source.cluster_id, "source_volume_id", STATUS_NOT_FOUND,
	                     SECRETS(req), false, source.rados_namespace, &t);
	if (r < 0)
		return r;
	pool = params_map_get((void *const *)req->parameters, req->n_parameters, "pool");
	if (pool) {
		int64_t pool_id = -1;

		r = cluster_pool_lookup(t.conn, pool, &pool_id);
		if (r < 0 && r != -ENOENT)
			return log_error_errno(r, "Cannot look pool '%s' up: %m", pool);
		if (pool_id != source.pool_id)
			return call_fail(c, STATUS_INVALID_ARGUMENT,
			                 "parameters: pool '%s' is not the source volume's pool: a "
			                 "snapshot is stored with its volume",
			                 pool);
	}

	sr = (struct snapshot_request){
		.name = req->name,
		.source = &source,
		.clone_depth_max = c->plugin->opt.clone_depth_soft,
		.deadline_usec = controller_flatten_deadline(c),
	};
	r = snapshot_create(t.conn, &sr, &snap);
	if (r < 0)
		return create_snapshot_failed(c, req, r);
	r = snapshot_to_csi(c, snap, &resp->snapshot);
	if (r < 0)
		return r;
	log_info("Snapshot '%s' is image '%s/%s' (%" PRIu64 " bytes, %s)", req->name, snap->pool,
	         snap->image, snap->size, snap->ready ? "ready" : "being flattened, not ready yet");
	return 0;
}

/* ---- DeleteSnapshot ---- */

int controller_delete_snapshot(struct call *c, const void *request, void *response)
{
	const Csi__V1__DeleteSnapshotRequest *req = request;
	_cleanup_(ceph_target_done) struct ceph_target t = { 0 };
	_cleanup_(op_lock_release) struct op_lock lock = { 0 };
	struct volume_id id;
	int r;

	(void)response;
	if (isempty(req->snapshot_id))
		return call_fail(c, STATUS_INVALID_ARGUMENT, "snapshot_id is required");
	if (volume_id_decode_kind(req->snapshot_id, VOLUME_ID_SNAPSHOT, &id) < 0) {
		/* CSI: a snapshot that does not exist is deleted. This id names none of ours. */
		log_info("snapshot_id '%s' is not a snapshot of this driver: nothing to delete",
		         req->snapshot_id);
		return 0;
	}
	r = op_lock_take(c, &lock, "snapshot", req->snapshot_id, "this snapshot");
	if (r < 0)
		return r;
	/* As DeleteVolume: a cluster we do not know is an admin error, not "already gone". */
	r = ceph_target_open(c, id.cluster_id, "snapshot_id", STATUS_FAILED_PRECONDITION,
	                     SECRETS(req), false, id.rados_namespace, &t);
	if (r < 0)
		return r;
	r = group_controller_member_guard(c, t.conn, &id);
	if (r < 0)
		return r;
	r = snapshot_delete(t.conn, &id, controller_flatten_deadline(c));
	if (r == -EAGAIN)
		return log_warning_errno(r, "Snapshot is still being flattened; retry later");
	if (r == -EBUSY)
		return log_warning_errno(r, "Snapshot image is open elsewhere or carries RBD "
		                            "snapshots this driver did not take: not deleted");
	if (r < 0) {
		metrics_ceph_error(c->plugin->metrics, "delete");
		return log_error_errno(r, "Failed to delete the snapshot: %m");
	}
	log_info("Snapshot deleted");
	return 0;
}

/* ---- GetSnapshot ---- */

int controller_get_snapshot(struct call *c, const void *request, void *response)
{
	const Csi__V1__GetSnapshotRequest *req = request;
	Csi__V1__GetSnapshotResponse *resp = response;
	_cleanup_(snapshot_freep) struct snapshot *snap = NULL;
	struct ceph_target t = { 0 };
	struct volume_id id;
	int r;

	if (isempty(req->snapshot_id))
		return call_fail(c, STATUS_INVALID_ARGUMENT, "snapshot_id is required");
	if (volume_id_decode_kind(req->snapshot_id, VOLUME_ID_SNAPSHOT, &id) < 0)
		return call_fail(c, STATUS_NOT_FOUND,
		                 "snapshot_id '%s' is not a snapshot of this driver",
		                 req->snapshot_id);
	r = ceph_target_open(c, id.cluster_id, "snapshot_id", STATUS_NOT_FOUND, SECRETS(req), false,
	                     id.rados_namespace, &t);
	if (r < 0)
		return r;
	r = snapshot_lookup(t.conn, &id, &snap);
	ceph_target_done(&t);
	if (r == -ENOENT)
		return call_fail_errno(c, STATUS_OP_ANY, r, "snapshot does not exist");
	if (r < 0) {
		metrics_ceph_error(c->plugin->metrics, "lookup");
		return log_error_errno(r, "Failed to look the snapshot up: %m");
	}
	return snapshot_to_csi(c, snap, &resp->snapshot);
}

/* ---- ListSnapshots ---- */

/*
 * Like ListVolumes, ListSnapshots walks "shards": (cluster, pool, rados namespace). Without a
 * filter: every cluster the controller holds credentials for, every pool, the default
 * namespace and the cluster's configured one. With source_volume_id: the source's shard (where
 * its snapshots live). One page walker and token format for both: shards_walk().
 */

static int append_entry(struct call *c, Csi__V1__ListSnapshotsResponse *resp, size_t *cap,
                        const struct snapshot *s)
{
	Csi__V1__ListSnapshotsResponse__Entry *e;

	if (resp->n_entries + 1 >= *cap) {
		size_t new_cap = *cap ? *cap * 2 : 16;
		void *g = call_alloc(c, new_cap * sizeof(*resp->entries));

		if (!g)
			return -ENOMEM;
		if (resp->n_entries)
			memcpy(g, resp->entries, resp->n_entries * sizeof(*resp->entries));
		resp->entries = g;
		*cap = new_cap;
	}
	e = call_alloc(c, sizeof(*e));
	if (!e)
		return -ENOMEM;
	csi__v1__list_snapshots_response__entry__init(e);
	resp->entries[resp->n_entries++] = e;
	return snapshot_to_csi(c, s, &e->snapshot);
}

struct list_snapshots_page {
	Csi__V1__ListSnapshotsResponse *resp;
	size_t cap;
	const char *source_id; /* NULL: every snapshot */
};

/* shards_walk()'s page of ListSnapshots: snapshot_list() of one shard. */
static int list_snapshots_page(struct call *c, const struct shard *s, struct cluster *conn,
                               const char *token, size_t max, void *userdata, size_t *ret_n,
                               char **ret_next)
{
	struct list_snapshots_page *lp = userdata;
	struct snapshot *snaps = NULL;
	size_t n = 0;
	int r;

	r = snapshot_list(conn, s->cluster_id, s->pool, s->rados_namespace, lp->source_id, token,
	                  MIN(max, (size_t)SNAPSHOT_LIST_PAGE_MAX), &snaps, &n, ret_next);
	if (r < 0) {
		if (r != -EAGAIN && r != -ENOENT && r != -EPERM && r != -EACCES)
			metrics_ceph_error(c->plugin->metrics, "list");
		return r;
	}
	for (size_t k = 0; r >= 0 && k < n; k++)
		r = append_entry(c, lp->resp, &lp->cap, &snaps[k]);
	snapshot_list_free(snaps, n);
	if (r < 0) {
		free(*ret_next);
		*ret_next = NULL;
		return r;
	}
	*ret_n = n;
	return 0;
}

/* Lists the shards from the token's position on, up to max entries. */
static int list_shards(struct call *c, const Csi__V1__ListSnapshotsRequest *req,
                       Csi__V1__ListSnapshotsResponse *resp, const struct shard *shards,
                       size_t n_shards, const char *source_id, void *const *secrets,
                       size_t n_secrets)
{
	struct list_snapshots_page lp = { .resp = resp, .source_id = source_id };

	if (req->max_entries < 0)
		return call_fail(c, STATUS_INVALID_ARGUMENT, "max_entries must not be negative");
	return shards_walk(c, shards, n_shards, req->starting_token,
	                   req->max_entries == 0 ? SIZE_MAX : (size_t)req->max_entries, secrets,
	                   n_secrets, "snapshots", list_snapshots_page, &lp, &resp->next_token);
}

/* ListSnapshots by snapshot_id: that snapshot (if its source matches any source filter). */
static int list_one(struct call *c, const Csi__V1__ListSnapshotsRequest *req,
                    Csi__V1__ListSnapshotsResponse *resp)
{
	_cleanup_(snapshot_freep) struct snapshot *snap = NULL;
	struct config_cluster cc;
	struct ceph_target t = { 0 };
	struct volume_id id;
	size_t cap = 0;
	int r;

	if (volume_id_decode_kind(req->snapshot_id, VOLUME_ID_SNAPSHOT, &id) < 0)
		return 0; /* not ours: no such snapshot */
	config_refresh(c->plugin->config);
	if (config_get_cluster(c->plugin->config, id.cluster_id, &cc) < 0)
		return 0;
	config_cluster_done(&cc);
	r = ceph_target_open(c, id.cluster_id, "snapshot_id", STATUS_NOT_FOUND, SECRETS(req), false,
	                     id.rados_namespace, &t);
	if (r < 0)
		return r;
	r = snapshot_lookup(t.conn, &id, &snap);
	ceph_target_done(&t);
	if (r == -ENOENT)
		return 0;
	if (r < 0)
		return log_error_errno(r, "Failed to look the snapshot up: %m");
	if (!isempty(req->source_volume_id) && strcmp(req->source_volume_id, snap->source_id) != 0)
		return 0;
	return append_entry(c, resp, &cap, snap);
}

/* ListSnapshots by source_volume_id: the source's shard, filtered. */
static int list_of_source(struct call *c, const Csi__V1__ListSnapshotsRequest *req,
                          Csi__V1__ListSnapshotsResponse *resp)
{
	_cleanup_free_ char *pool = NULL;
	struct config_cluster cc;
	struct ceph_target t = { 0 };
	struct shard shard;
	struct volume_id id;
	int r;

	if (volume_id_decode_kind(req->source_volume_id, VOLUME_ID_VOLUME, &id) < 0)
		return 0; /* not ours: it has no snapshots */
	config_refresh(c->plugin->config);
	if (config_get_cluster(c->plugin->config, id.cluster_id, &cc) < 0)
		return 0;
	config_cluster_done(&cc);
	r = ceph_target_open(c, id.cluster_id, "source_volume_id", STATUS_NOT_FOUND, SECRETS(req),
	                     false, id.rados_namespace, &t);
	if (r < 0)
		return r;
	r = cluster_pool_name(t.conn, id.pool_id, &pool);
	ceph_target_done(&t);
	if (r == -ENOENT)
		return 0;
	if (r < 0)
		return log_error_errno(r, "Cannot look pool %" PRId64 " up: %m", id.pool_id);
	shard = (struct shard){ id.cluster_id, pool, id.rados_namespace };
	return list_shards(c, req, resp, &shard, 1, req->source_volume_id, SECRETS(req));
}

int controller_list_snapshots(struct call *c, const void *request, void *response)
{
	const Csi__V1__ListSnapshotsRequest *req = request;
	Csi__V1__ListSnapshotsResponse *resp = response;
	struct shard *shards = NULL;
	size_t n_shards = 0;
	int r;

	if (req->max_entries < 0)
		return call_fail(c, STATUS_INVALID_ARGUMENT, "max_entries must not be negative");
	if (!isempty(req->snapshot_id))
		return list_one(c, req, resp);
	if (!isempty(req->source_volume_id))
		return list_of_source(c, req, resp);

	r = shards_all(c, &shards, &n_shards);
	if (r < 0)
		return log_error_errno(r, "Failed to list the pools to scan: %m");
	r = list_shards(c, req, resp, shards, n_shards, NULL, NULL, 0);
	shards_free(shards, n_shards);
	return r;
}
