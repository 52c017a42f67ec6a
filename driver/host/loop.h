/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Loop devices through the kernel's ioctls (no losetup): attach a file, detach, find the loop
 * device backed by a file, refresh its capacity after the file grew.
 *
 * Attached devices do NOT have LO_FLAGS_AUTOCLEAR: a block volume is published by bind-mounting
 * the device node, which does not keep the device open, and autoclear would detach it as soon
 * as the last opener (mkfs, a probe) closes it. Whoever attaches must detach.
 */
#pragma once

#include <stdbool.h>
#include <stdint.h>

/*
 * Attaches a free loop device to backing_file (LOOP_CTL_GET_FREE + LOOP_CONFIGURE, falling back
 * to LOOP_SET_FD + LOOP_SET_STATUS64 on old kernels; the EBUSY race with other attachers is
 * retried). *ret_device is "/dev/loopN", owned by the caller.
 * Errors: -ENOENT backing file missing, -ENODEV no loop support (/dev/loop-control), -EBUSY
 * no free device after retries, -EROFS read-write attach of a read-only file.
 */
int loop_attach(const char *backing_file, bool read_only, char **ret_device);

/*
 * Detaches device ("/dev/loopN"). A device that is not attached is success. If the device is
 * still open elsewhere (mounted, bind-mounted and in use), the kernel only marks it autoclear:
 * this returns -EBUSY in that case, leaving it attached.
 * Errors: -EBUSY in use, -EINVAL not a loop device.
 */
int loop_detach(const char *device);

/*
 * Finds the loop device whose backing file is backing_file, comparing the string with
 * /sys/block/loop*\/loop/backing_file (the kernel's canonical path of the file; one whose file
 * was deleted does not match). backing_file must be canonical: it is not resolved, because
 * resolving a path inside a FUSE mount whose daemon hangs would block.
 * *ret_device is "/dev/loopN". Errors: -ENOENT none.
 */
int loop_find_by_backing_file(const char *backing_file, char **ret_device);

/*
 * Reads the backing file of device from sysfs into *ret_path.
 * Errors: -ENXIO not attached, -EINVAL not a loop device name.
 */
int loop_get_backing_file(const char *device, char **ret_path);

/* Makes the loop device pick up the current size of its backing file (LOOP_SET_CAPACITY).
 * Errors: -ENXIO not attached, -ENOENT no such device. */
int loop_refresh_capacity(const char *device);
