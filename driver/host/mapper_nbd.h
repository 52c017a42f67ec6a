/* SPDX-License-Identifier: Apache-2.0 */
/*
 * rbd-nbd: "rbd-nbd map" starts a daemon per image that serves /dev/nbdN. The key reaches it on
 * a sealed memfd read as --keyfile=/dev/fd/3 (the same mechanism verified with rbd-fuse of the
 * same Ceph release; rbd-nbd itself could not be run on the development machine, which has no
 * nbd module). Only the unavailability path is tested there.
 */
#pragma once

#include "driver/host/mapper_common.h"

/*
 * Errors: -ENODEV, *ret_reason "rbd-nbd: nbd kernel module not loaded" (no <root>/sys/module/nbd
 * or no <root>/dev/nbd0) or "rbd-nbd: program not installed".
 */
int mapper_nbd_available(const char *root, char **ret_reason);

/*
 * Maps the image with rbd-nbd; *ret_device is the "/dev/nbdN" it printed. p->map_options are
 * rbd-nbd long options without the dashes ("try-netlink,reattach-timeout=300").
 * Errors: -ENODEV unavailable, -EINVAL bad options, -ETIMEDOUT, -EIO rbd-nbd failed
 * (*ret_reason has its message).
 */
int mapper_nbd_map(const char *root, const struct mapper_params *p, char **ret_device,
                   char **ret_reason);

/*
 * Unmaps device ("/dev/nbdN"). Not mapped is success. A device that is mounted or held
 * exclusively (an exclusive open fails) is left connected: rbd-nbd itself would disconnect it.
 * Errors: -EBUSY in use, -ETIMEDOUT, -EIO.
 */
int mapper_nbd_unmap(const char *device, uint64_t timeout_usec, char **ret_reason);

/* The rbd-nbd mapper's ops (mapper_common.h); it keeps no state of its own. */
extern const struct mapper_ops mapper_nbd_ops;
