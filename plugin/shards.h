/* SPDX-License-Identifier: Apache-2.0 */
/*
 * "Shards" for the list calls (ListVolumes, ListSnapshots), which carry no StorageClass: every
 * (cluster, pool, rados namespace) the controller can reach, that is every pool of every cluster
 * it holds credentials for (plugin/ceph_access.h), in the default namespace and in the cluster's
 * configured one, sorted so pagination tokens stay meaningful across calls.
 *
 * shards_walk() is the one page walker of both list calls, with one token format:
 * "<cluster>|<pool>|<namespace>|<token of that shard's next page>" (the last part empty: the
 * shard from its start).
 */
#pragma once

#include <stddef.h>

#include "plugin/call.h"

struct shard {
	char *cluster_id;
	char *pool;
	char *rados_namespace; /* "" for the default */
};

/* Collects every shard (sorted). Clusters that cannot be reached are skipped with a warning. */
int shards_all(struct call *c, struct shard **ret, size_t *ret_n);

/* Frees an array from shards_all(). Accepts NULL. */
void shards_free(struct shard *s, size_t n);

struct cluster;

/*
 * One page of one shard, for shards_walk(): lists at most max entries of shard s through conn
 * from token (NULL: the start), appends them to the response behind userdata, and returns 0,
 * *ret_n (entries appended) and *ret_next (malloc'ed token of the shard's next page; NULL when
 * the shard is done). Errors: -EAGAIN the token is malformed; -ENOENT, -EPERM, -EACCES nothing
 * to list there (the pool is gone or not ours to read: the walk goes on); others end the walk.
 */
typedef int (*shard_page_fn)(struct call *c, const struct shard *s, struct cluster *conn,
                             const char *token, size_t max, void *userdata, size_t *ret_n,
                             char **ret_next);

/*
 * Walks shards[] from the position starting_token names (NULL or "": the first shard), calling
 * page until max entries (SIZE_MAX: no limit) were appended. *ret_next_token (call-owned, NULL
 * when the walk is done) is where the next call starts. what ("volumes") names the entries in
 * messages. Connects to each shard's cluster with secrets (may be NULL). Returns 0;
 * call_fail(ABORTED) for a token this driver did not issue; the errors of page and of
 * ceph_target_open().
 */
int shards_walk(struct call *c, const struct shard *shards, size_t n_shards,
                const char *starting_token, size_t max, void *const *secrets, size_t n_secrets,
                const char *what, shard_page_fn page, void *userdata, char **ret_next_token);
