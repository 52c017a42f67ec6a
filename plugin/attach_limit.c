/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The attach limit at ControllerPublishVolume. Kubernetes' scheduler already keeps a node at or
 * under the max_volumes_per_node its NodeGetInfo reports; this is the controller's own check
 * for COs (and csi-sanity) that do not, enabled by giving the controller --max-volumes-per-node.
 * It counts the node's attachment records (driver/ceph/volume.h) of the volume's pool and rados
 * namespace: one journal read per volume of that pool for each publish of a volume not yet
 * attached there, so it is meant for pools of a few thousand volumes. Publishes to one node
 * that run at the same time can each see the count below the limit (no lock across volumes).
 */
#include <errno.h>
#include <string.h>

#include "driver/ceph/volume.h"
#include "plugin/attach_limit.h"
#include "plugin/plugin.h"

int attach_limit_check(struct call *c, struct cluster *conn, const struct volume_id *id,
                       const char *node)
{
	int64_t max = c->plugin->opt.max_volumes_per_node;
	_cleanup_free_ char *pool = NULL;
	_cleanup_free_ char *token = NULL;
	int64_t held = 0;
	int r;

	if (max <= 0)
		return 0;
	r = cluster_pool_name(conn, id->pool_id, &pool);
	if (r < 0)
		return log_error_errno(r, "Cannot look the volume's pool up: %m");
	do {
		struct volume *vols = NULL;
		char *next = NULL;
		size_t n = 0;

		r = volume_list(conn, id->cluster_id, pool, id->rados_namespace, token, 0, &vols,
		                &n, &next);
		if (r < 0)
			return log_error_errno(r, "Cannot count the volumes published to '%s': %m",
			                       node);
		for (size_t i = 0; i < n; i++)
			for (size_t k = 0; k < vols[i].n_attachments; k++) {
				if (strcmp(vols[i].attachments[k].node, node) != 0)
					continue;
				if (strcmp(vols[i].vid.uuid, id->uuid) == 0) {
					/* Published there already: a retry, always answered. */
					volume_list_free(vols, n);
					free(next);
					return 0;
				}
				held++;
			}
		volume_list_free(vols, n);
		free(token);
		token = next;
	} while (token);
	if (held >= max)
		return call_fail(c, STATUS_RESOURCE_EXHAUSTED,
		                 "node '%s' already has %lld volumes published in this pool, the "
		                 "limit (--max-volumes-per-node) is %lld",
		                 node, (long long)held, (long long)max);
	return 0;
}
