/* SPDX-License-Identifier: Apache-2.0 */
/*
 * krbd has no QoS of its own, so the limits of a volume (ControllerModifyVolume, plugin/modify.c)
 * reach a krbd node through ControllerPublishVolume's publish_context and are applied to the
 * pod's cgroup at NodePublishVolume. cgroup io.max limits each direction, so the read and write
 * limits are min(maxReadX, maxX) and min(maxWriteX, maxX): the total keys bound each direction
 * (a pod may reach twice a total limit, reading and writing at once). Bursts have no cgroup
 * equivalent and are ignored here. A limit changed later reaches this node at its next
 * ControllerPublish (the next attach to a node), not while the volume stays attached.
 */
#include <errno.h>
#include <string.h>

#include "csi.pb-c.h"
#include "driver/ceph/qos.h"
#include "driver/host/throttle.h"
#include "plugin/modify.h"
#include "plugin/node_qos.h"
#include "plugin/params.h"
#include "plugin/plugin.h"

static uint64_t lower(uint64_t a, uint64_t b)
{
	if (a == 0)
		return b;
	if (b == 0)
		return a;
	return a < b ? a : b;
}

int node_qos_apply(struct call *c, const void *request, const struct stage_info *info, dev_t devno)
{
	const Csi__V1__NodePublishVolumeRequest *req = request;
	struct throttle_limits l = { 0 };
	_cleanup_free_ char *cgroup = NULL;
	const char *uid;
	struct qos q = { 0 };
	size_t plen = strlen(MODIFY_PUBLISH_PREFIX);
	bool any = false;
	int r;

	if (info->mapper != MAPPER_KRBD)
		return 0; /* librbd applies the image's own QoS */
	for (size_t i = 0; i < req->n_publish_context; i++) {
		const char *k = req->publish_context[i]->key;

		if (strncmp(k, MODIFY_PUBLISH_PREFIX, plen) != 0)
			continue;
		r = qos_parse(k + plen, req->publish_context[i]->value, &q);
		if (r < 0)
			return call_fail(c, STATUS_INVALID_ARGUMENT,
			                 "publish_context: '%s' is not a valid QoS limit", k);
		any = true;
	}
	if (!any)
		return 0;
#define V(name) q.value[qos_key_index(name)]
	l.read_iops = lower(V("maxReadIops"), V("maxIops"));
	l.write_iops = lower(V("maxWriteIops"), V("maxIops"));
	l.read_bps = lower(V("maxReadBps"), V("maxBps"));
	l.write_bps = lower(V("maxWriteBps"), V("maxBps"));
#undef V
	uid = params_map_get((void *const *)req->volume_context, req->n_volume_context,
	                     NODE_QOS_POD_UID);
	if (!uid) {
		log_warning("Volume has QoS limits but the request carries no %s (the CSIDriver's "
		            "podInfoOnMount is off): not limited on this krbd node",
		            NODE_QOS_POD_UID);
		return 0;
	}
	if (!throttle_pod_uid_valid(uid))
		return call_fail(c, STATUS_INVALID_ARGUMENT,
		                 "volume_context: %s '%s' is not a pod uid (a lowercase UUID)",
		                 NODE_QOS_POD_UID, uid);
	r = throttle_apply(NULL, uid, devno, &l, &cgroup);
	if (r == -EOPNOTSUPP)
		log_warning("Volume has QoS limits but this node runs cgroup v1, whose blkio "
		            "throttling does not reach the pod's containers: not limited (krbd)");
	else if (r < 0)
		log_warning_errno(r,
		                  "Volume has QoS limits but the cgroup of pod %s could not be "
		                  "limited: %m",
		                  uid);
	else
		log_info("Pod %s limited on the volume's device (cgroup %s)", uid, cgroup);
	return 0;
}
