/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Block device inspection: signatures (libblkid low-level probing of superblocks AND partition
 * tables, every signature counts, including ones with bad checksums) and size.
 */
#pragma once

#include <stdbool.h>
#include <stdint.h>

#define BLOCKDEV_TYPE_NONE "none"

/*
 * Lists every signature libblkid finds on path (a block device or an image file): filesystem
 * and other superblock types ("ext4", "xfs", "swap", "crypto_LUKS", "LVM2_member", ...) and
 * partition tables ("gpt", "dos", ...). *ret_types is "none" when nothing was found, else the
 * types joined with ',' in the order found ("ext4", "gpt,ext4"); owned by the caller.
 * Errors: -ENOENT, -EACCES, -EIO (unreadable device).
 */
int blockdev_probe(const char *path, char **ret_types);

/* true when types (from blockdev_probe()) is "none". */
bool blockdev_types_blank(const char *types);

/*
 * Size of a block device (BLKGETSIZE64) or of a regular file, in bytes.
 * Errors: -ENOENT, -ENOTBLK (neither a block device nor a regular file).
 */
int blockdev_get_size(const char *path, uint64_t *ret_size);
