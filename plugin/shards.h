/* SPDX-License-Identifier: Apache-2.0 */
/*
 * "Shards" for the list calls (ListVolumes, ListSnapshots), which carry no StorageClass: every
 * (cluster, pool, rados namespace) the controller can reach, that is every pool of every cluster
 * it holds credentials for (plugin/ceph_access.h), in the default namespace and in the cluster's
 * configured one, sorted so pagination tokens stay meaningful across calls.
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
