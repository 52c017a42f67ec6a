/* SPDX-License-Identifier: Apache-2.0 */
/* The node side of per-volume QoS for krbd (plugin/node_qos.c). */
#pragma once

#include <sys/types.h>

#include "driver/host/stage.h"
#include "plugin/call.h"

/* The volume_context key the kubelet fills with the pod's uid when the CSIDriver has
 * podInfoOnMount: true. */
#define NODE_QOS_POD_UID "csi.storage.k8s.io/pod.uid"

/*
 * At NodePublishVolume, for a volume staged through krbd (librbd's QoS does not apply there):
 * reads the limits the controller put in publish_context ("qos.<key>", plugin/modify.h) and
 * writes them as the pod's cgroup v2 io.max rule for the device devno (driver/host/throttle.h).
 * request is the NodePublishVolumeRequest. Returns 0, also when there is nothing to apply or it
 * cannot be applied on this node (no pod uid, cgroup v1, no pod cgroup: logged as a warning,
 * the publish goes on); fails the call with INVALID_ARGUMENT for a malformed pod uid or limit.
 */
int node_qos_apply(struct call *c, const void *request, const struct stage_info *info, dev_t devno);
