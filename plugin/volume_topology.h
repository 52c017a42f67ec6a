/* SPDX-License-Identifier: Apache-2.0 */
#pragma once

/*
 * A volume's accessible topology, recorded with the volume (volume_request.topology, kept in
 * its journal entry) so that CreateVolume, ControllerGetVolume and ListVolumes all answer the
 * same topology, after restarts and on any controller replica.
 *
 * The recorded form is a JSON object of the segments, {"key":"value",...}: topology keys and
 * values come from Kubernetes labels and --topology, and a JSON encoding needs no separator
 * they could not contain.
 */
struct call;
struct volume;
struct Csi__V1__Topology;
struct Csi__V1__Volume;

/*
 * What CreateVolume records for a new volume: the topology-constrained pool's topology
 * (pool_topology, NULL when the StorageClass has no topologyConstrainedPools), else this
 * controller's own --topology (one release per zone), else none: *ret NULL (reachable from
 * anywhere). *ret is allocated on the call. Errors: -ENOMEM.
 */
int volume_topology_record(struct call *c, const struct Csi__V1__Topology *pool_topology,
                           const char **ret);

/*
 * Sets v->accessible_topology from what vol recorded. A volume that recorded none (made by a
 * version that did not record it) gets fallback (CreateVolume passes the topology-constrained
 * pool's; NULL: none), else this controller's own --topology, as CreateVolume gave it then,
 * else none (reachable from anywhere). A recorded value that is not a JSON object of strings
 * is ignored with a warning, as if none. Errors: -ENOMEM.
 */
int volume_topology_add(struct call *c, const struct volume *vol,
                        struct Csi__V1__Topology *fallback, struct Csi__V1__Volume *v);
