/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Per-volume QoS (CSI mutable parameters, ControllerModifyVolume): librbd's rbd_qos_* limits,
 * stored on the image as image-level config overrides, the image metadata "conf_<option>" that
 * "rbd config image set" writes. Every librbd client that opens the image (rbd-fuse, rbd-nbd,
 * QEMU) applies them; a client that already has the image open applies a change at its next
 * I/O after the header update notification librbd sends on every metadata change. krbd has no
 * QoS of its own: the node applies the same limits through the pod's cgroup (not here).
 *
 * The user-facing keys (the CSI mutable_parameters / VolumeAttributesClass parameters) are
 * listed in qos_keys[]: maxIops, maxReadIops, maxWriteIops, maxBps, maxReadBps, maxWriteBps
 * (ceph-csi's krbd VAC names for the read/write ones), each with a ...Burst and a
 * ...BurstSeconds key. Values are decimal integers without sign or spaces; "0" removes the
 * override (librbd's default: no limit, burst = the limit, 1 second).
 *
 * Crash safety (volume_qos_modify()): the wanted values are first recorded in the volume's
 * journal entry ("qos.<option>" fields, guarded by the entry's version), then the image's
 * metadata is made equal to what the entry records (set what differs, remove what is 0). Both
 * steps are idempotent, and the second always converges the image on the entry, so a process
 * killed anywhere is finished by the retry. Failpoints: volume-modify:after-journal,
 * volume-modify:after-image.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "driver/ceph/cluster.h"
#include "driver/ceph/volume_id.h"

enum qos_kind {
	QOS_KIND_LIMIT,         /* per second; 0 = no limit */
	QOS_KIND_BURST,         /* bucket size, >= its limit when both are set */
	QOS_KIND_BURST_SECONDS, /* 1..QOS_BURST_SECONDS_MAX */
};

struct qos_key {
	const char *param;  /* user-facing key, e.g. "maxIops" */
	const char *option; /* librbd option, e.g. "rbd_qos_iops_limit" */
	enum qos_kind kind;
	int limit; /* for a burst or burst-seconds key: the index of its limit key */
};

#define QOS_N                 18
#define QOS_VALUE_MAX         1000000000000000ULL /* 10^15 per second (or bytes of burst) */
#define QOS_BURST_SECONDS_MAX 3600
#define QOS_META_PREFIX       "conf_"
#define QOS_JOURNAL_PREFIX    "qos."

extern const struct qos_key qos_keys[QOS_N];

/* A set of QoS values: set[i] says whether qos_keys[i] is given; value[i] its value. */
struct qos {
	bool set[QOS_N];
	uint64_t value[QOS_N];
};

/* The index of the user-facing key param in qos_keys, or -ENOENT. */
int qos_key_index(const char *param);

/* A decimal value of at most 20 digits, no sign or blanks, <= max. Errors: -EINVAL, -ERANGE. */
int qos_value_parse(const char *s, uint64_t max, uint64_t *ret);

/*
 * Parses one mutable parameter into q. Returns 0;
 *   -ENOENT   key is not a QoS key
 *   -EINVAL   value is not a decimal integer (no sign, no spaces, at most 20 digits)
 *   -ERANGE   value is above QOS_VALUE_MAX (or QOS_BURST_SECONDS_MAX for burst seconds)
 */
int qos_parse(const char *key, const char *value, struct qos *q);

/*
 * Checks a complete set (what the volume will have) for what librbd would refuse: a burst below
 * its limit. Returns 0, or -EINVAL and the index of the offending key in *ret_index.
 */
int qos_check(const struct qos *q, int *ret_index);

/* Overlays: every key set in update replaces the one in base. */
void qos_merge(struct qos *base, const struct qos *update);

/*
 * Records the QoS values in update (only the keys it sets; others keep their value) with the
 * volume and applies the resulting set to its image. Idempotent; converges after a crash at any
 * point when called again. ret (NULL allowed): the volume's whole set afterwards. Returns 0;
 *   -ENOENT   no such (fully created) volume
 *   -EINVAL   the resulting set fails qos_check() (nothing changed); *ret_bad (NULL allowed)
 *             gets the offending index
 *   -EAGAIN   lost too many races with other writers of the entry
 */
int volume_qos_modify(struct cluster *c, const struct volume_id *id, const struct qos *update,
                      struct qos *ret, int *ret_bad);

/*
 * Reads the QoS recorded with a volume (its journal entry: what the last modify asked for).
 * Returns 0 and *ret; -ENOENT as volume_qos_modify().
 */
int volume_qos_get(struct cluster *c, const struct volume_id *id, struct qos *ret);

/*
 * Reads the QoS overrides on a volume's image (the conf_rbd_qos_* metadata), as librbd sees
 * them. Returns 0 and *ret; -ENOENT as volume_qos_modify().
 */
int volume_qos_image_get(struct cluster *c, const struct volume_id *id, struct qos *ret);
