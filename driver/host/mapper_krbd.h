/* SPDX-License-Identifier: Apache-2.0 */
/*
 * krbd: the rbd kernel module driven through sysfs, without the rbd CLI.
 *
 * Map writes "<mons> name=<user>,secret=<key>[,ro][,<options>][,_pool_ns=<ns>] <pool> <image> -"
 * to <root>/sys/bus/rbd/add_single_major (the key exists only in that one write buffer, wiped
 * after), finds the new device id under <root>/sys/bus/rbd/devices/<id>/{pool,pool_ns,name,
 * current_snap}, and waits for <root>/dev/rbd<id>: with a libudev monitor when udevd runs (root
 * "/" and /run/udev/control present), else by watching <root>/dev with inotify (devtmpfs creates
 * the node itself). Unmap writes "<id>" or "<id> force" to remove_single_major.
 *
 * root is "/" in production; tests point it at a simulated tree (tests/fakes/fake_krbd.h).
 */
#pragma once

#include <stdbool.h>
#include <stdint.h>

#include "driver/host/mapper_common.h"

/*
 * Errors: -ENODEV, *ret_reason "krbd: /sys/bus/rbd not present, rbd kernel module not loaded".
 */
int mapper_krbd_available(const char *root, char **ret_reason);

/*
 * Checks image features against <root>/sys/bus/rbd/supported_features (skipped when the file
 * does not exist, as on kernels before 4.11). Errors: -ENODEV with *ret_reason "krbd: the kernel
 * does not support image features 0x.. (supports 0x..)": this image needs another mapper.
 */
int mapper_krbd_check_features(const char *root, uint64_t features, char **ret_reason);

/*
 * Maps p->pool/p->rados_namespace/p->image. *ret_device is "<root>/dev/rbd<id>" (owned by the
 * caller), *ret_id the kernel's device id.
 * Errors: -ENODEV krbd unavailable or features unsupported, -EINVAL bad parameters/options,
 * -ETIMEDOUT no device showed up (the mapping is removed again), and the kernel's own errors
 * from the sysfs write: -ENOENT image or pool missing, -EACCES/-EPERM auth or blocklist,
 * -ENXIO feature mismatch, -EIO. *ret_reason says which.
 */
int mapper_krbd_map(const char *root, const struct mapper_params *p, char **ret_device, int *ret_id,
                    char **ret_reason);

/*
 * Finds an existing mapping of pool/namespace/image (head, not a snapshot).
 * Errors: -ENOENT none, -ENODEV krbd unavailable.
 */
int mapper_krbd_find(const char *root, const char *pool, const char *rados_namespace,
                     const char *image, int *ret_id);

/*
 * Unmaps device id. When pool and image are given, the id must still name that image (ids are
 * reused after a reboot); if it does not, nothing is done and 0 is returned. unmap_options may be
 * "force" (krbd's forced unmap) or NULL. Not mapped is success.
 * Errors: -EBUSY device open (mounted), -EINVAL bad options, -ENODEV krbd unavailable.
 */
int mapper_krbd_unmap(const char *root, int id, const char *pool, const char *rados_namespace,
                      const char *image, const char *unmap_options, char **ret_reason);

/*
 * Converts a mon_host string to what the kernel parses: the v1 addresses, comma-separated
 * ("[v2:1.2.3.4:3300,v1:1.2.3.4:6789]" -> "1.2.3.4:6789"). Errors: -EINVAL no v1 address.
 */
int mapper_krbd_monitors(const char *monitors, char **ret);

/* The krbd mapper's ops (mapper_common.h): its state is the kernel's device id. */
extern const struct mapper_ops mapper_krbd_ops;

/* The device id a krbd mapping's state records; -1 when unknown or for a NULL state. */
int mapper_krbd_state_id(const void *state);
