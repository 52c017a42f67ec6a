/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Connections to Ceph clusters (librados handles), cached and shared between threads.
 *
 * A connection is made for one (clusterID, monitors, user, key). The cache hands out references
 * to a live connection for the same four values and makes a new one otherwise; a connection
 * made with another key for the same (clusterID, monitors, user) is never reused, and once the
 * new key has connected the old connections leave the cache (they close when their last user
 * lets go). Idle connections (no user for idle_usec) are closed by cluster_cache_expire(), which
 * the server calls periodically; cluster_cache_free() closes the rest at shutdown.
 *
 * How librados is configured (no file, no environment, no DNS):
 *   - no ceph.conf is read, CEPH_ARGS is not parsed; mon_host is set from the monitors given,
 *     so nothing looks in /etc/ceph and no DNS SRV lookup happens (a monitor given as a host
 *     name is still resolved, as configured);
 *   - the cephx key is handed over in memory (rados_conf_set "key"), never in argv, the
 *     environment or a file; keyring is set to "" so no keyring file is searched for;
 *   - client logging is off (log_to_stderr, err_to_stderr false, log_file "") and no admin
 *     socket is created;
 *   - client_mount_timeout, rados_mon_op_timeout and rados_osd_op_timeout are always set, so an
 *     unreachable cluster fails with -ETIMEDOUT after the configured time instead of hanging
 *     (librados' own default mount timeout is 300 s).
 * Our copies of the key are wiped (explicit_bzero) before they are freed. librados keeps its
 * own copies inside its configuration until the handle is shut down; those we cannot wipe.
 *
 * This header is safe to include outside driver/ceph (no librados types). Pool I/O contexts
 * are in driver/ceph/cluster_ioctx.h, for use inside driver/ceph only.
 */
#pragma once

#include <stddef.h>
#include <stdint.h>

#include "driver/base/macro.h"

struct cluster;
struct cluster_cache;

/* Seconds; 0 counts as 1 (librados reads 0 as "no timeout", which we never want). */
struct cluster_timeouts {
	unsigned connect_sec; /* client_mount_timeout: how long rados_connect() may take */
	unsigned mon_op_sec;  /* rados_mon_op_timeout: each monitor command */
	unsigned osd_op_sec;  /* rados_osd_op_timeout: each OSD operation (also librbd's) */
};

#define CLUSTER_CONNECT_TIMEOUT_DEFAULT_SEC 10
#define CLUSTER_OP_TIMEOUT_DEFAULT_SEC      30
#define CLUSTER_IDLE_DEFAULT_USEC           (300ULL * 1000000ULL)

#define CLUSTER_TIMEOUTS_DEFAULT                                                        \
	((struct cluster_timeouts){ .connect_sec = CLUSTER_CONNECT_TIMEOUT_DEFAULT_SEC, \
	                            .mon_op_sec = CLUSTER_OP_TIMEOUT_DEFAULT_SEC,       \
	                            .osd_op_sec = CLUSTER_OP_TIMEOUT_DEFAULT_SEC })

/* What identifies a connection. All borrowed; the cluster keeps its own copies. */
struct cluster_credentials {
	const char *cluster_id; /* 1..36 chars [A-Za-z0-9._-] (the clusterID of volume ids) */
	const char *monitors;   /* mon_host value, e.g. "127.0.0.1:6789" or "[v2:...,v1:...]" */
	const char *user;       /* cephx id without "client.", e.g. "csi" */
	const char *key;        /* cephx secret, base64 */
};

/*
 * Makes a new, uncached connection. timeouts may be NULL for CLUSTER_TIMEOUTS_DEFAULT.
 * Returns 0 and a reference the caller drops with cluster_unref(); -EINVAL for malformed
 * credentials (bad characters, empty fields) or a key librados cannot parse; -EACCES for a key
 * the cluster rejects (or an unknown user); -ETIMEDOUT when no monitor answered within
 * connect_sec; -ELIBACC/-ELIBBAD when librados/librbd cannot be loaded (the first connection
 * of a process loads them: driver/ceph/ceph_lib.h); -ENOMEM.
 */
int cluster_connect(const struct cluster_credentials *cred, const struct cluster_timeouts *timeouts,
                    struct cluster **ret);

/* Takes another reference. Returns c. */
struct cluster *cluster_ref(struct cluster *c);

/* Drops a reference; the last one shuts the connection down. Accepts NULL, returns NULL. */
struct cluster *cluster_unref(struct cluster *c);

DEFINE_TRIVIAL_CLEANUP_FUNC(struct cluster *, cluster_unref)
#define _cleanup_cluster_unref_ _cleanup_(cluster_unrefp)

/* The clusterID the connection was made for (owned by c). */
const char *cluster_get_id(const struct cluster *c);

/*
 * Creates a cache. timeouts may be NULL for the defaults; idle_usec is how long a connection
 * nobody uses stays open (0 means close on the next expire). Returns 0 or -ENOMEM.
 */
int cluster_cache_new(const struct cluster_timeouts *timeouts, uint64_t idle_usec,
                      struct cluster_cache **ret);

/*
 * Closes every connection in the cache (connections still referenced close when their last
 * user drops them) and frees the cache. Accepts NULL, returns NULL. No other call on the cache
 * may run concurrently or afterwards.
 */
struct cluster_cache *cluster_cache_free(struct cluster_cache *cache);

/*
 * Returns (in *ret, a new reference) the cached connection for cred, connecting if there is
 * none. Thread-safe; the cache lock is not held while connecting, so a slow cluster does not
 * block others. Errors as cluster_connect(). Failed connections are not cached.
 */
int cluster_cache_get(struct cluster_cache *cache, const struct cluster_credentials *cred,
                      struct cluster **ret);

/*
 * Closes the cached connections that nobody holds and that were last used at or before
 * now_usec - idle_usec (monotonic_usec() time base). Returns how many were closed.
 * Thread-safe.
 */
unsigned cluster_cache_expire(struct cluster_cache *cache, uint64_t now_usec);

/*
 * Takes c out of the cache (if it is there) so that the next cluster_cache_get() connects
 * anew; c itself stays valid for its holders. For a connection that turned unusable for good,
 * e.g. after an operation failed with -ESHUTDOWN (the client was blocklisted). Thread-safe.
 */
void cluster_cache_drop(struct cluster_cache *cache, struct cluster *c);

/* Number of connections in the cache. Thread-safe. */
size_t cluster_cache_size(struct cluster_cache *cache);

/*
 * Pool name -> id. A pool missing from the client's OSD map is confirmed with the monitors
 * (bounded by mon_op_sec) instead of librados' unbounded wait for a newer map. Returns 0;
 * -ENOENT when there is no such pool; -EINVAL for an empty name; -ETIMEDOUT when the pool is
 * not in the local map and the monitors do not answer.
 */
int cluster_pool_lookup(struct cluster *c, const char *pool, int64_t *ret_id);

/*
 * Lists the names of all pools, from the client's OSD map (no round trip, no wait). Returns 0,
 * a malloc'ed array of malloc'ed names (the caller frees each, then the array) and its length;
 * -ENOMEM.
 */
int cluster_pool_list(struct cluster *c, char ***ret_pools, size_t *ret_n);

/*
 * Pool id -> name (*ret_name is malloc'ed, the caller frees). Returns 0, -ENOENT, -ETIMEDOUT
 * (as cluster_pool_lookup()), -ENOMEM.
 */
int cluster_pool_name(struct cluster *c, int64_t pool_id, char **ret_name);
