/* SPDX-License-Identifier: Apache-2.0 */
/*
 * ControllerModifyVolume: validates every mutable parameter before anything is touched (an
 * unknown key or a bad value is INVALID_ARGUMENT naming it, and nothing changes: never a silent
 * reset), then records the new QoS with the volume and converges its image on it
 * (driver/ceph/qos.h). Only the keys given change (CSI: "SPs MUST NOT modify volumes based on
 * the absence of keys"); "0" removes a limit. Idempotent, and a crash anywhere is finished by
 * the retry.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "csi.pb-c.h"
#include "driver/ceph/volume.h"
#include "plugin/ceph_access.h"
#include "plugin/locks.h"
#include "plugin/metrics.h"
#include "plugin/modify.h"
#include "plugin/plugin.h"

/* Any protobuf-c map<string,string> entry. */
struct map_entry {
	ProtobufCMessage base;
	char *key;
	char *value;
};

static const char *known_keys(struct call *c)
{
	char *s = NULL;

	for (int i = 0; i < QOS_N; i++) {
		s = call_printf(c, "%s%s%s", s ? s : "", s ? ", " : "", qos_keys[i].param);
		if (!s)
			return "";
	}
	return s;
}

int modify_parse(struct call *c, const char *field, void *const *entries, size_t n, struct qos *ret)
{
	struct qos q = { 0 };

	for (size_t i = 0; i < n; i++) {
		const struct map_entry *e = entries[i];
		int r = qos_parse(e->key, e->value, &q);

		if (r == -ENOENT)
			return call_fail(c, STATUS_INVALID_ARGUMENT,
			                 "%s: unknown key '%s' (known: %s); nothing was changed",
			                 field, e->key, known_keys(c));
		if (r == -ERANGE)
			return call_fail(
			        c, STATUS_INVALID_ARGUMENT,
			        "%s: %s: '%s' is above the maximum %llu; nothing was changed",
			        field, e->key, e->value,
			        qos_keys[qos_key_index(e->key)].kind == QOS_KIND_BURST_SECONDS
			                ? (unsigned long long)QOS_BURST_SECONDS_MAX
			                : (unsigned long long)QOS_VALUE_MAX);
		if (r < 0)
			return call_fail(c, STATUS_INVALID_ARGUMENT,
			                 "%s: %s: '%s' is not a decimal integer (0 removes the "
			                 "limit); nothing was changed",
			                 field, e->key, e->value);
	}
	*ret = q;
	return 0;
}

static bool qos_any(const struct qos *q)
{
	for (int i = 0; i < QOS_N; i++)
		if (q->set[i])
			return true;
	return false;
}

static int apply(struct call *c, struct cluster *conn, const struct volume_id *vid,
                 const char *field, const struct qos *q, bool converge)
{
	int bad = -1, r;

	if (!converge && !qos_any(q))
		return 0;
	r = volume_qos_modify(conn, vid, q, NULL, &bad);
	if (r == -EINVAL && bad >= 0)
		return call_fail(c, STATUS_INVALID_ARGUMENT,
		                 "%s: %s would be below %s (a burst must be 0 or at least its "
		                 "limit); nothing was changed",
		                 field, qos_keys[bad].param, qos_keys[qos_keys[bad].limit].param);
	if (r == -ENOENT) /* NOT_FOUND, ABORTED: status.c */
		return log_warning_errno(r, "Volume does not exist");
	if (r == -EAGAIN)
		return log_warning_errno(r, "Volume's journal entry kept changing; retry");
	if (r < 0) {
		metrics_ceph_error(c->plugin->metrics, "modify");
		return log_error_errno(r, "Failed to set the volume's QoS: %m");
	}
	return 0;
}

int modify_apply(struct call *c, struct cluster *conn, const struct volume_id *vid,
                 const char *field, const struct qos *q)
{
	return apply(c, conn, vid, field, q, false);
}

int modify_apply_create(struct call *c, struct cluster *conn, const struct volume_id *vid,
                        const struct qos *q, bool from_source)
{
	return apply(c, conn, vid, "mutable_parameters", q, from_source);
}

int controller_modify_volume(struct call *c, const void *request, void *response)
{
	const Csi__V1__ControllerModifyVolumeRequest *req = request;
	struct ceph_target t = { 0 };
	struct op_lock lock = { 0 };
	struct volume_id id;
	struct qos q;
	int r;

	(void)response;
	if (isempty(req->volume_id))
		return call_fail(c, STATUS_INVALID_ARGUMENT, "volume_id is required");
	r = modify_parse(c, "mutable_parameters", (void *const *)req->mutable_parameters,
	                 req->n_mutable_parameters, &q);
	if (r < 0)
		return r;
	if (volume_id_decode_kind(req->volume_id, VOLUME_ID_VOLUME, &id) < 0)
		return call_fail(c, STATUS_NOT_FOUND,
		                 "volume_id '%s' is not a volume of this driver (static volumes "
		                 "have no mutable parameters)",
		                 req->volume_id);
	r = op_lock_take(c, &lock, "volume", req->volume_id, "this volume");
	if (r < 0)
		return r;
	r = ceph_target_open(c, id.cluster_id, "volume_id", STATUS_NOT_FOUND,
	                     (void *const *)req->secrets, req->n_secrets, false, id.rados_namespace,
	                     &t);
	if (r < 0)
		goto out;
	if (!req->n_mutable_parameters) {
		/* Nothing to change; still say whether the volume exists. */
		_cleanup_(volume_freep) struct volume *vol = NULL;

		r = volume_lookup(t.conn, &id, &vol);
		if (r == -ENOENT)
			log_warning_errno(r, "Volume does not exist");
		else if (r < 0)
			log_error_errno(r, "Cannot look the volume up: %m");
		goto out;
	}
	r = modify_apply(c, t.conn, &id, "mutable_parameters", &q);
	if (r >= 0)
		log_info("Volume modified (%zu mutable parameters)", req->n_mutable_parameters);
out:
	ceph_target_done(&t);
	op_lock_release(&lock);
	return r;
}

int modify_publish_context(struct call *c, struct cluster *conn, const struct volume_id *vid,
                           void *response)
{
	Csi__V1__ControllerPublishVolumeResponse *resp = response;
	Csi__V1__ControllerPublishVolumeResponse__PublishContextEntry **ctx;
	struct qos q;
	size_t n = 0;
	int r;

	r = volume_qos_get(conn, vid, &q);
	if (r < 0)
		return log_error_errno(r, "Cannot read the volume's QoS: %m");
	for (int i = 0; i < QOS_N; i++)
		n += q.set[i];
	if (n == 0)
		return 0;
	ctx = call_alloc(c, (resp->n_publish_context + n) * sizeof(*ctx));
	if (!ctx)
		return -ENOMEM;
	for (size_t i = 0; i < resp->n_publish_context; i++)
		ctx[i] = resp->publish_context[i];
	for (int i = 0; i < QOS_N; i++) {
		Csi__V1__ControllerPublishVolumeResponse__PublishContextEntry *e;

		if (!q.set[i])
			continue;
		e = call_alloc(c, sizeof(*e));
		if (!e)
			return -ENOMEM;
		csi__v1__controller_publish_volume_response__publish_context_entry__init(e);
		e->key = call_printf(c, MODIFY_PUBLISH_PREFIX "%s", qos_keys[i].param);
		e->value = call_printf(c, "%llu", (unsigned long long)q.value[i]);
		if (!e->key || !e->value)
			return -ENOMEM;
		ctx[resp->n_publish_context++] = e;
	}
	resp->publish_context = ctx;
	return 0;
}
