/* SPDX-License-Identifier: Apache-2.0 */
/*
 * How a controller call reaches a Ceph cluster: the clusterID is looked up in --config, the
 * credentials come from the request's CSI secrets (userID, userKey), and the connection comes
 * from the shared cache (driver/ceph/cluster.h).
 *
 * Some CSI calls carry no secrets (ListVolumes, GetCapacity, ControllerGetVolume, and
 * ControllerPublish/Unpublish when no secret is configured for them, as in ceph-csi's
 * StorageClasses). For those, in order:
 *  1. --controller-secrets-dir: DIR/<clusterID>/{userID,userKey}, else DIR/{userID,userKey} (a
 *     mounted Kubernetes Secret, re-read on every call): the same in every replica and after a
 *     restart. Meant for a least-privilege Ceph user (deploy/README.md);
 *  2. the credentials last used successfully for that cluster; they live only in this
 *     process's memory (wiped when replaced or freed), never on disk, so without (1) after a
 *     restart such calls wait for any call with secrets (CreateVolume, DeleteVolume, ...).
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>

#include "driver/ceph/cluster.h"
#include "plugin/call.h"
#include "plugin/config.h"

struct credentials_store;

struct credentials_store *credentials_store_new(void);
struct credentials_store *credentials_store_free(struct credentials_store *s);

/* Cluster ids with remembered credentials (malloc'd array of malloc'd strings). */
int credentials_store_clusters(struct credentials_store *s, char ***ret, size_t *ret_n);

struct ceph_target {
	struct config_cluster cluster; /* from --config */
	const char *rados_namespace;   /* the call's namespace: parameter, else the config's */
	struct cluster *conn;          /* a reference, dropped by ceph_target_done() */
};

/*
 * Connects to cluster_id for the call. secrets/n_secrets is the request's secrets map (any
 * protobuf-c map entry type); when it is empty and secrets_required is false, remembered
 * credentials are used. field names the request field that carried the clusterID (for
 * messages). Fails the call itself (call_fail/log) with:
 *   INVALID_ARGUMENT  malformed secrets; missing secrets when required
 *   NOT_FOUND or INVALID_ARGUMENT (unknown_code)  clusterID not in --config
 *   FAILED_PRECONDITION  no secrets and none remembered
 *   UNAVAILABLE  the monitors did not answer in time
 *   PERMISSION_DENIED  the key was refused
 */
int ceph_target_open(struct call *c, const char *cluster_id, const char *field,
                     enum status_code unknown_code, void *const *secrets, size_t n_secrets,
                     bool secrets_required, const char *rados_namespace, struct ceph_target *ret);

void ceph_target_done(struct ceph_target *t);
