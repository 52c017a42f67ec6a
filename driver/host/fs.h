/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Filesystems on volumes: create (only on a blank device), grow, and usage statistics.
 * Supported types: ext4 and xfs.
 */
#pragma once

#include <stdbool.h>
#include <stdint.h>

#define FS_MKFS_OPTIONS_MAX 1024
#define FS_TIMEOUT_USEC     (120ULL * 1000000ULL)

/*
 * The smallest device mkfs.xfs formats: xfsprogs >= 5.19 refuses data sections under 300 MiB
 * ("Filesystem must be larger than 300MB."); measured with Debian 12's xfsprogs 6.1.0: 314572800
 * bytes work, one byte less does not. Later xfsprogs (Debian 13's 6.13) keep the figure.
 */
#define FS_XFS_MIN_SIZE (300ULL * 1024ULL * 1024ULL)

/* Flags of fs_format_flags(). */
enum {
	/* The device holds only the partial output of our own interrupted mkfs (the caller
	 * recorded it blank before that mkfs began): format over it without the blank check. */
	FS_FORMAT_OVER_OWN = 1 << 0,
};

struct fs_stats {
	uint64_t total_bytes;
	uint64_t available_bytes; /* to unprivileged users (f_bavail) */
	uint64_t used_bytes;
	uint64_t total_inodes;
	uint64_t free_inodes;
	uint64_t used_inodes;
	bool read_only; /* ST_RDONLY */
};

/* true for the filesystem types this driver formats and mounts ("ext4", "xfs"). */
bool fs_type_supported(const char *fstype);

/* The smallest device size in bytes the mkfs of fstype accepts (xfs: FS_XFS_MIN_SIZE); 0 when
 * it has no minimum worth checking (ext4) or the type is unknown. */
uint64_t fs_min_size(const char *fstype);

/*
 * Formats device with fstype. Right before running mkfs it probes the device again
 * (blockdev_probe()) and refuses unless it carries no signature at all.
 * Defaults: ext4 "-m0 -E nodiscard,lazy_itable_init=1,lazy_journal_init=1", xfs "-K"; the
 * space-separated extra_options (may be NULL) are ADDED after the defaults, once each has passed
 * the mkfs allowlist of options_mkfs_split() (driver/host/options.h).
 * Errors: -EINVAL unsupported fstype or bad options, -EMEDIUMTYPE the device carries a signature
 * (*ret_reason: "device carries 'swap', not 'ext4': refusing to format") or is smaller than
 * fs_min_size(fstype), -ETIMEDOUT, -EIO mkfs failed (*ret_reason has the lines of its stderr
 * that say why, without a usage text). ret_reason may be NULL; on failure it gets a malloc'ed
 * message (or stays untouched on -ENOMEM).
 * Failpoint (driver/base/failpoint.h): node-stage:during-mkfs kills this process while the
 * mkfs child runs (the child, in its own process group, goes on).
 */
int fs_format(const char *device, const char *fstype, const char *extra_options,
              uint64_t timeout_usec, char **ret_reason);

/* fs_format() with flags (FS_FORMAT_OVER_OWN: no blank check; mkfs gets -f/-F). */
int fs_format_flags(const char *device, const char *fstype, const char *extra_options,
                    unsigned flags, uint64_t timeout_usec, char **ret_reason);

/*
 * Erases every signature libblkid finds on device (as `wipefs -a`): for the partial output of our
 * own interrupted mkfs only, when the stage that started it is given up. Opens the device
 * O_EXCL, so a mounted or claimed device is refused. Errors: -EBUSY, -ENOENT, -EIO.
 */
int fs_wipe_own(const char *device);

/*
 * Grows the filesystem on device to the device's size. ext4: resize2fs on the device (online
 * when mounted, which needs CAP_SYS_RESOURCE; offline when mountpoint is NULL: e2fsck -f -p
 * first, as resize2fs demands; a filesystem that needs more than preening is left alone). xfs:
 * xfs_growfs on mountpoint (xfs only grows mounted). Errors: -EINVAL unsupported type or xfs
 * without a mountpoint, -ETIMEDOUT, -EPERM the kernel refused the online resize (missing
 * CAP_SYS_RESOURCE), -EIO other failures; *ret_reason as for fs_format().
 */
int fs_grow(const char *device, const char *fstype, const char *mountpoint, uint64_t timeout_usec,
            char **ret_reason);

/*
 * The size the filesystem on device spans, in bytes, read from its superblock (ext4: block count
 * x block size; xfs: data blocks x block size): what a grow would change, unlike statvfs(),
 * which leaves out the filesystem's own metadata. Errors: -EMEDIUMTYPE fstype unsupported or
 * its superblock magic is not there, -ENOENT, -EIO.
 */
int fs_get_size(const char *device, const char *fstype, uint64_t *ret_size);

/* statvfs() of path. Errors: -ENOENT, -ENOTCONN/-EIO (dead filesystem). */
int fs_get_stats(const char *path, struct fs_stats *ret_stats);
