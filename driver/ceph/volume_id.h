/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Self-describing ids for CSI volumes and snapshots: pure encode/decode, no Ceph calls.
 *
 * An id names everything needed to find the object again with only the id and a secret: the
 * clusterID (the key into the plugin's cluster config), the pool by id (so renaming a pool is
 * harmless), the rados namespace and the uuid of the journal entry. The kind (volume or snapshot)
 * is part of the id, so a snapshot id handed to DeleteVolume is recognised as "no such volume".
 *
 * Format version 1, modelled on ceph-csi's "0001-<len>-<clusterID>-<poolid16>-<uuid>":
 *
 *   0001-v-09-rook-ceph-0000000000000002-00--a010aab6-9632-11ea-a13c-fea68445fd19
 *   0001-s-04-prod-000000000000001f-05-team1-0b7f5d4e-3c55-4c3a-9a43-7f1d0f2f3e10
 *
 *   "0001"      format version, 4 lowercase hex digits
 *   "v" / "s"   kind: volume / snapshot
 *   "09"        length of the clusterID, 2 lowercase hex digits (1..36)
 *   clusterID   [A-Za-z0-9._-]
 *   16 hex      pool id, lowercase, 0 <= id < 2^63
 *   "00"        length of the rados namespace, 2 lowercase hex digits (0 = default namespace)
 *   namespace   [A-Za-z0-9._-], may be empty (then the id shows "--")
 *   uuid        36 chars, lowercase canonical 8-4-4-4-12 hex
 *
 * Fields are separated by '-'; lengths make the '-' inside clusterID and namespace unambiguous.
 * The id is 68 + len(clusterID) + len(namespace) bytes and must not exceed 128 (the CSI limit),
 * so clusterID + namespace may use at most 60 bytes together.
 *
 * Decoding is strict: it accepts exactly the strings volume_id_encode() produces, so
 * decode(encode(x)) == x and encode(decode(s)) == s.
 */
#pragma once

#include <stdbool.h>
#include <stdint.h>

#define VOLUME_ID_MAX            128 /* bytes, without the NUL */
#define VOLUME_ID_VERSION        1
#define VOLUME_ID_CLUSTER_ID_MAX 36
#define VOLUME_ID_NAMESPACE_MAX  59 /* 128 - 68 - 1 (a clusterID has at least 1 byte) */
#define VOLUME_ID_UUID_LEN       36

enum volume_id_kind {
	VOLUME_ID_VOLUME = 'v',
	VOLUME_ID_SNAPSHOT = 's',
	VOLUME_ID_GROUP_SNAPSHOT = 'g', /* driver/ceph/group_snapshot.h */
};

struct volume_id {
	enum volume_id_kind kind;
	char cluster_id[VOLUME_ID_CLUSTER_ID_MAX + 1];
	int64_t pool_id;
	char rados_namespace[VOLUME_ID_NAMESPACE_MAX + 1]; /* "" for the default namespace */
	char uuid[VOLUME_ID_UUID_LEN + 1];
};

/*
 * Fills *ret from the parts, validating each as the encoder would (rados_namespace may be NULL).
 * Returns 0; -EINVAL for a bad kind, an empty, over-long or ill-charactered clusterID, a negative
 * pool id, a namespace with characters outside [A-Za-z0-9._-], or a uuid that is not lowercase
 * canonical; -ENAMETOOLONG when the encoded id would exceed VOLUME_ID_MAX bytes.
 */
int volume_id_make(enum volume_id_kind kind, const char *cluster_id, int64_t pool_id,
                   const char *rados_namespace, const char *uuid, struct volume_id *ret);

/*
 * Writes the canonical encoding of id and a NUL into ret. Returns the length (> 0), or the
 * errors of volume_id_make(): -EINVAL for an invalid field, -ENAMETOOLONG when too long.
 */
int volume_id_encode(const struct volume_id *id, char ret[static VOLUME_ID_MAX + 1]);

/*
 * Parses s. Returns 0 and fills *ret; -EINVAL for anything that is not exactly a canonical
 * version-1 encoding (including NULL, over-long input, unknown versions and kinds, uppercase hex).
 */
int volume_id_decode(const char *s, struct volume_id *ret);

/* volume_id_decode() that also requires the kind: -EINVAL for an id of the other kind. */
int volume_id_decode_kind(const char *s, enum volume_id_kind kind, struct volume_id *ret);

/* True for a lowercase canonical uuid (36 chars, 8-4-4-4-12 lowercase hex). */
bool volume_id_uuid_valid(const char *s);

/* True for a valid clusterID: 1..36 chars of [A-Za-z0-9._-]. */
bool volume_id_cluster_id_valid(const char *s);
