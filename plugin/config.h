/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The cluster configuration file (--config): a JSON list with one object per Ceph cluster:
 *   [{"clusterID": "ceph1", "monitors": ["10.0.0.1:6789", "10.0.0.2:6789"],
 *     "radosNamespace": "optional"}]
 * ceph-csi's and Rook's config.json is accepted as is: "rbd": {"radosNamespace",
 * "mirrorDaemonCount"} are read; "rbd": {"netNamespaceFilePath", "nodePublishSecretRef",
 * "controllerPublishSecretRef"} and the other drivers' fields ("cephFS", "nfs", "readAffinity",
 * Rook's "namespace") are ignored with one info line per load. Any other field is an error (a
 * typo must not silently change behaviour).
 * The file is re-read when it changes on disk (a ConfigMap update), keeping the last good copy
 * when the new one is malformed.
 */
#pragma once

#include <stddef.h>

struct config_cluster {
	char *cluster_id;      /* <= 36 bytes of [A-Za-z0-9._-] */
	char **monitors;       /* NULL-terminated */
	char *mon_host;        /* monitors joined with ',' (librados mon_host) */
	char *rados_namespace; /* NULL when unset ("radosNamespace" or "rbd.radosNamespace") */
	unsigned mirror_daemon_count; /* "rbd.mirrorDaemonCount", 0 when unset */
};

struct config;

#define CONFIG_CLUSTER_ID_MAX 36

/*
 * Loads path. On a malformed file returns -EINVAL and *ret_error (malloc'd) names the file, the
 * line and the field. Other errors: -ENOENT, -EACCES, -EFBIG (over 1 MiB).
 */
int config_load(const char *path, struct config **ret, char **ret_error);

/* A config with no clusters (when --config is not given). */
struct config *config_new_empty(void);

/* Accepts NULL, returns NULL. */
struct config *config_free(struct config *c);

/*
 * Re-reads the file if its mtime, size or inode changed since the last load; keeps the old
 * content if the new one is malformed (logging why). Thread-safe.
 */
void config_refresh(struct config *c);

/*
 * Copies the entry for cluster_id into *ret (free with config_cluster_done()).
 * Errors: -ENOENT when the cluster is not configured.
 */
int config_get_cluster(struct config *c, const char *cluster_id, struct config_cluster *ret);

void config_cluster_done(struct config_cluster *cl);

size_t config_n_clusters(struct config *c);

/*
 * The clusterIDs of the loaded config, in file order, each strdup()ed into a NULL-terminated
 * array in *ret (free each and the array). Errors: -ENOMEM.
 */
int config_cluster_ids(struct config *c, char ***ret, size_t *ret_n);

/* True for a valid clusterID string. */
int config_cluster_id_valid(const char *id);

/* Copies the comma list of ignored fields seen at the last (re)load into buf ("" for none). */
void config_ignored_fields(struct config *c, char *buf, size_t size);
