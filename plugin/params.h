/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Validation of what a CreateVolume request carries besides its name: StorageClass parameters,
 * volume capabilities, capacity range. Every rejection names the field, and nothing is changed
 * before validation passes. Strings in the results are borrowed from the request.
 */
#pragma once

#include <stdbool.h>
#include <stdint.h>

#include "csi.pb-c.h"
#include "plugin/call.h"

struct volume_params {
	const char *cluster_id;
	const char *pool;
	const char *data_pool;       /* NULL: none */
	const char *rados_namespace; /* NULL: the cluster's from --config */
	const char *image_features;  /* comma list; default "layering" */
	const char *name_prefix;     /* default "csi-vol-" */
	const char *journal_pool;    /* NULL: the image pool */
	const char *fs_type;         /* "ext4" (default) or "xfs" */
	const char *mkfs_options;    /* NULL: none beyond the defaults */
	const char *mounter;         /* krbd, rbd-nbd, fuse, auto (default auto) */
	const char *map_options;
	const char *unmap_options;
	const char *pvc_name;      /* csi.storage.k8s.io/pvc/name, for image metadata */
	const char *pvc_namespace; /* csi.storage.k8s.io/pvc/namespace */
	const char *pv_name;       /* csi.storage.k8s.io/pv/name */
	/* ceph-csi's striping keys (0 = librbd's default): objectSize, stripeUnit, stripeCount. */
	uint64_t object_size;
	uint64_t stripe_unit;
	uint64_t stripe_count;
	const char *topology_pools; /* topologyConstrainedPools (JSON), NULL when unset */
	bool encrypted;             /* encrypted: "true" (LUKS2, driver/host/kms.h) */
	const char *kms_id;         /* encryptionKMSID: NULL/"" or "metadata" */
};

/* One entry of topologyConstrainedPools. Strings live in the call's arena. */
#define PARAMS_TOPOLOGY_SEGMENTS_MAX 8
struct topology_pool {
	const char *pool;
	const char *data_pool; /* NULL: none */
	size_t n_segments;
	const char *labels[PARAMS_TOPOLOGY_SEGMENTS_MAX]; /* domainLabel, e.g. "zone" */
	const char *values[PARAMS_TOPOLOGY_SEGMENTS_MAX];
};

/* Access summary of a list of volume capabilities. */
struct access_summary {
	bool block;          /* at least one block capability */
	bool mount;          /* at least one mount capability */
	bool multi_node;     /* some MULTI_NODE_* mode */
	bool read_only;      /* every mode is *_READER_ONLY */
	const char *fs_type; /* fs_type asked by a mount capability, NULL if none */
};

/* Parses the StorageClass parameters of CreateVolume. Returns 0 or call_fail(INVALID_ARGUMENT). */
int params_parse(struct call *c, Csi__V1__CreateVolumeRequest__ParametersEntry *const *entries,
                 size_t n, struct volume_params *ret);

/*
 * Checks volume capabilities (field names the request field, e.g. "volume_capabilities"):
 * access type set, supported access mode, mount only with single-node modes (or
 * MULTI_NODE_READER_ONLY), fs_type ext4/xfs/empty, mount flags sane.
 */
int params_check_capabilities(struct call *c, const char *field,
                              Csi__V1__VolumeCapability *const *caps, size_t n,
                              struct access_summary *ret);

/*
 * The size to create from a capacity range: required_bytes rounded up to whole MiB (default
 * 1 GiB when unset), never above limit_bytes. Errors: INVALID_ARGUMENT (negative values),
 * OUT_OF_RANGE (limit below required after rounding).
 */
int params_capacity(struct call *c, const Csi__V1__CapacityRange *range, uint64_t *ret_bytes);

/*
 * NodeStageVolume's re-check of what CreateVolume checked, since a volume context can come from
 * an edited StorageClass or a static PV: pool, radosNamespace (may be empty) and imageName are
 * Ceph names (mapper_name_valid()); mkfsOptions (for fstype; NULL fstype: a block volume, not
 * checked), mapOptions and unmapOptions pass their allowlists (driver/host/options.h). Returns 0
 * or call_fail(INVALID_ARGUMENT) naming the volume_context field and the option.
 */
int params_check_stage_context(struct call *c, const char *pool, const char *rados_namespace,
                               const char *image, const char *fstype, const char *mkfs,
                               const char *map, const char *unmap);

/* True when s is a usable Ceph pool or namespace name (1-max bytes of [A-Za-z0-9._-], not
 * starting with '-'). */
bool params_name_valid(const char *s, size_t max);

/*
 * A pre-existing RBD image used through a static PV (never created or deleted by the driver).
 * Strings are borrowed from the request or from the call's arena.
 */
struct static_volume {
	const char *cluster_id;
	const char *pool;
	const char *rados_namespace; /* NULL: the cluster's from --config */
	const char *image;
};

/*
 * Recognises a static volume by its handle and volume context:
 *  - ceph-csi's static PV: volume_context staticVolume "true" with clusterID and pool (and
 *    optionally radosNamespace, imageName; without imageName the handle is the image name);
 *  - rbdcsi's static handle "<clusterID>/<pool>/<image>" or "<clusterID>/<pool>/<namespace>/
 *    <image>" (the only form usable without a volume context, e.g. by ControllerExpandVolume).
 * Returns 1 and *ret for a static volume, 0 for anything else (an rbdcsi volume id), or
 * call_fail(INVALID_ARGUMENT) naming the field when a name is not a valid Ceph name: every name
 * is checked here, before it can reach an argv.
 */
int params_static_volume(struct call *c, const char *volume_id, void *const *context,
                         size_t n_context, struct static_volume *ret);

/*
 * Parses ceph-csi's topologyConstrainedPools: a JSON list of {"poolName", "dataPool"
 * (optional), "domainSegments": [{"domainLabel", "value"}, ...]}. Returns 0 and the entries (in
 * the call's arena), or call_fail(INVALID_ARGUMENT) naming the key and the entry.
 */
int params_topology_pools(struct call *c, const char *json, struct topology_pool **ret,
                          size_t *ret_n);

/*
 * Picks the pool for accessibility requirements req: the first topology of req->preferred,
 * then of req->requisite, that some entry's domain segments all match (a segment key matches a
 * domainLabel when it equals it or ends in "/<label>", e.g. topology.rbdcsi.io/zone), and the
 * first such entry. Returns 0, the entry's index and *ret_topology (the entry's segments under
 * the keys of the matched topology: the volume's accessible topology); RESOURCE_EXHAUSTED
 * when none matches.
 */
int params_topology_select(struct call *c, const struct topology_pool *pools, size_t n,
                           const Csi__V1__TopologyRequirement *req, size_t *ret_index,
                           Csi__V1__Topology **ret_topology);

/*
 * The accessible topology of pools[i] (for a volume found there by an earlier attempt): its
 * segments under the keys req uses for its labels (the label itself when req has none).
 */
Csi__V1__Topology *params_topology_of(struct call *c, const struct topology_pool *pool,
                                      const Csi__V1__TopologyRequirement *req);

/* Looks a key up in a protobuf-c string map; NULL when absent. */
const char *params_map_get(void *const *entries, size_t n, const char *key);

#define PARAMS_DEFAULT_SIZE    (1024ULL * 1024 * 1024)
#define PARAMS_MAX_SIZE        (1ULL << 50) /* 1 PiB */
#define PARAMS_MAX_VALUE_BYTES 256
#define PARAMS_MAX_NAME_BYTES  128
