/* SPDX-License-Identifier: Apache-2.0 */
/*
 * ControllerModifyVolume and the mutable_parameters of CreateVolume (plugin/modify.c): per-volume
 * QoS (driver/ceph/qos.h), changed while the volume is in use.
 */
#pragma once

#include <stdbool.h>

#include "driver/ceph/cluster.h"
#include "driver/ceph/qos.h"
#include "driver/ceph/volume_id.h"
#include "plugin/call.h"

int controller_modify_volume(struct call *c, const void *request, void *response);

/*
 * Parses a mutable_parameters map (any protobuf-c map entry type) into *ret, or fails the call
 * with INVALID_ARGUMENT naming field and the key (unknown key, bad or out-of-range value).
 * Returns 0 (ret->set[] all false for an empty map) or the call's error.
 */
int modify_parse(struct call *c, const char *field, void *const *entries, size_t n,
                 struct qos *ret);

/*
 * Records and applies q on the volume vid (volume_qos_modify()), failing the call with a
 * message on error: INVALID_ARGUMENT naming the key when the resulting set is refused,
 * NOT_FOUND when the volume is gone. A set with no key set changes nothing and returns 0.
 */
int modify_apply(struct call *c, struct cluster *conn, const struct volume_id *vid,
                 const char *field, const struct qos *q);

/*
 * modify_apply() for a new volume. One made from a source (clone or restore) is converged even
 * when q sets nothing: librbd copies image metadata into a clone, so the new image would
 * otherwise carry its source's limits without its journal entry saying so.
 */
int modify_apply_create(struct call *c, struct cluster *conn, const struct volume_id *vid,
                        const struct qos *q, bool from_source);

/* The prefix of the QoS entries in ControllerPublishVolume's publish_context. */
#define MODIFY_PUBLISH_PREFIX "qos."

/*
 * Appends the volume's recorded QoS limits to a ControllerPublishVolume response's
 * publish_context as "qos.<key>" = value (only the keys set), so the node can apply them where
 * librbd does not (krbd: plugin/node_qos.c). Returns 0 or the lookup's error (logged).
 */
int modify_publish_context(struct call *c, struct cluster *conn, const struct volume_id *vid,
                           void *response);
