/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Mounting with libmount (mount table lookups parse /proc/self/mountinfo through libmount, never
 * by hand). Mount helpers (/sbin/mount.<type>) are never run; fstab is never consulted.
 */
#pragma once

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "driver/base/macro.h"

struct path_resolved;

struct mount_info {
	char *source;     /* "/dev/loop3", "rbd-fuse", ... */
	char *fstype;     /* "ext4", "fuse.rbd-fuse", ... */
	char *options;    /* per-mount (VFS) options, "rw,relatime" */
	char *fs_options; /* superblock options, "rw,errors=remount-ro" */
	bool read_only;   /* the mount or its superblock is read-only */
	bool bind;        /* the mount shows a sub-tree of its filesystem (root != "/") */
	dev_t devno;      /* st_dev of the filesystem (for a block device: its st_rdev) */
};

/*
 * Mounts device at target (an existing directory) as fstype with options (comma list, may be
 * NULL). "_netdev" is always added (recorded by libmount in utab so a systemd shutdown unmounts
 * these before the network goes), and "nouuid" for xfs so clones of a volume can be mounted next
 * to it. read_only adds "ro".
 * Errors: -EBUSY target already a mount point (of anything), -ENOENT, -EINVAL bad options or
 * filesystem, -EROFS, and whatever mount(2) says.
 */
int mount_device(const char *device, const char *target, const char *fstype, const char *options,
                 bool read_only);

/*
 * Bind-mounts source (a directory, a file or a device node) onto target (a directory or an
 * existing file, matching source), then remounts it read-only if asked (bind + MS_RDONLY
 * remount). options (may be NULL) are extra flags applied with the remount ("nosuid,nodev").
 * Errors: -EBUSY target already a mount point, -ENOENT, -ENOTDIR.
 */
int mount_bind(const char *source, const char *target, bool read_only, const char *options);

/*
 * Like mount_device(), onto a resolved directory (driver/base/path.h): the mount goes through
 * /proc/self/fd/N of target->fd, so the path's text is never looked up again; utab records it
 * under target->text. target is refreshed (its fd then is the new mount's root).
 * Errors: -EBUSY target is a mount point, -ENOTDIR, -EINVAL, and whatever mount(2) says.
 */
int mount_device_at(const char *device, struct path_resolved *target, const char *fstype,
                    const char *options, bool read_only);

/*
 * Like mount_bind(), onto a resolved target (a directory or a file matching source): source
 * may be a device node or "/proc/self/fd/N" of a resolved directory. options may hold per-mount
 * flags only ("nosuid,nodev,noexec,noatime"...); others are ignored. target is refreshed.
 * Errors: -EBUSY target is a mount point, -ENOTDIR/-EISDIR type mismatch, -EROFS the read-only
 * remount did not take (nothing is left mounted then).
 */
int mount_bind_at(const char *source, struct path_resolved *target, bool read_only,
                  const char *options);

/*
 * Unmounts the topmost mount at name in the directory dir_fd (path_umount_at()), then drops
 * text's utab entry (text may be NULL). Errors: -EINVAL not a mount point, -EBUSY in use.
 */
int mount_umount_at(int dir_fd, const char *name, const char *text, bool lazy);

/*
 * Unmounts target with UMOUNT_NOFOLLOW (a symlink at target is never followed); lazy adds
 * MNT_DETACH. Not mounted, or target missing, is success. Removes the utab entry libmount kept.
 * Errors: -EBUSY in use, -ELOOP target is a symlink.
 */
int mount_umount(const char *target, bool lazy);

/*
 * Returns 1 when path is a mount point (the target of an entry in /proc/self/mountinfo), 0 when
 * not. Errors: -ENOMEM, -EINVAL relative path.
 */
int mount_is_mountpoint(const char *path);

/*
 * Describes the topmost mount at target. *ret_info is released with mount_info_free().
 * Errors: -ENOENT nothing mounted there.
 */
int mount_find(const char *target, struct mount_info **ret_info);

/*
 * Describes the mount fd (any fd, O_PATH included) is on, found by its mount id in
 * /proc/self/mountinfo (no path is looked up). Errors: -ENOENT, -EOPNOTSUPP no mount ids.
 */
int mount_find_fd(int fd, struct mount_info **ret_info);

/* Finds a mount point where source is mounted (the first one). Errors: -ENOENT. */
int mount_find_by_source(const char *source, char **ret_target);

struct mount_info *mount_info_free(struct mount_info *info);
DEFINE_TRIVIAL_CLEANUP_FUNC(struct mount_info *, mount_info_free)

/*
 * Checks the filesystem mounted at target for trouble: *ret_abnormal is true when the superblock
 * went read-only under a read-write mount (ext4 errors=remount-ro) or the filesystem does not
 * answer statfs (I/O error, dead FUSE: EIO/ENOTCONN), with *ret_reason (may be NULL) saying which.
 * Errors: -ENOENT nothing mounted at target.
 */
int mount_check_health(const char *target, bool *ret_abnormal, char **ret_reason);
