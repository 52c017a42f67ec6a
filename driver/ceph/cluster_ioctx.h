/* SPDX-License-Identifier: Apache-2.0 */
/*
 * RADOS I/O contexts on a cluster connection. Internal to driver/ceph: it includes librados.h,
 * which nothing outside driver/ceph may see. Implemented in cluster.c.
 *
 * An ioctx is bound to one pool and one rados namespace. librados ioctxs are cheap (no network
 * round trip) but carry per-ioctx state (namespace, last object version), so each operation
 * opens its own and none is shared between threads.
 */
#pragma once

#include <rados/librados.h>

#include "driver/ceph/cluster.h"
#include "driver/ceph/volume_id.h"

/*
 * Opens an ioctx on pool (by name) and sets the rados namespace (NULL or "" = default). The
 * pool is resolved with cluster_pool_lookup(), so a missing pool is answered within mon_op_sec
 * even when the monitors are down, and a pool just created elsewhere is still found. Returns 0
 * and the ioctx (close it with cluster_ioctx_close()); -ENOENT when there is no such pool;
 * -EINVAL for an empty pool name; -ETIMEDOUT.
 */
int cluster_ioctx_open(struct cluster *c, const char *pool, const char *rados_namespace,
                       rados_ioctx_t *ret);

/* As cluster_ioctx_open(), with the pool given by id. -ENOENT when there is no such pool. */
int cluster_ioctx_open_by_id(struct cluster *c, int64_t pool_id, const char *rados_namespace,
                             rados_ioctx_t *ret);

/* The ioctx of the pool and namespace an id names, when the id is of kind (a volume, snapshot
 * or group snapshot id). -EINVAL for a NULL id; -ENOENT for another kind or a gone pool. */
int cluster_ioctx_open_for_id(struct cluster *c, const struct volume_id *id,
                              enum volume_id_kind kind, rados_ioctx_t *ret);

/* The name of io's pool, malloc'ed. Errors: -ERANGE (a name over 511 bytes), -ENOMEM. */
int cluster_ioctx_pool_name(rados_ioctx_t io, char **ret);

/* Destroys io. Accepts NULL, returns NULL. */
rados_ioctx_t cluster_ioctx_close(rados_ioctx_t io);

static inline void cluster_ioctx_closep(rados_ioctx_t *io)
{
	cluster_ioctx_close(*io);
}
#define _cleanup_ioctx_ _cleanup_(cluster_ioctx_closep)
