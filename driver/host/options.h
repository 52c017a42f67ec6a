/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Allowlists for the options a StorageClass (or a static PV's volume context) hands to the
 * tools the node runs as root: mkfsOptions (mkfs.ext4, mkfs.xfs), mapOptions and unmapOptions
 * (krbd, rbd-nbd, rbd-fuse). Options are parsed the way the tool parses them (getopt clusters,
 * attached or separate values, comma-separated sub-options), and only options known to touch
 * nothing but the new filesystem or the mapping are accepted: nothing that names a path or
 * reads or writes a file (mke2fs -d -l -z -J device=, mkfs.xfs -p -c -d file/name -l logdev -r),
 * nothing that overrides the credentials, config, logs or admin socket of a Ceph tool, nothing
 * that forces over an existing signature or only pretends to format (-F, -f, -S, -n, -N).
 * Reasons name the option refused; they never quote more than the option itself.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>

#include "driver/host/mapper_common.h"

/* Longest argv that options_mkfs_split() may produce. */
#define OPTIONS_MKFS_ARGS_MAX 48
/* Most options in one mapper's map or unmap options. */
#define OPTIONS_MAP_MAX 16

/*
 * Splits s in place on blanks into argv (at most max words appended at argv + *n, *n advanced)
 * after checking every word against fstype's mkfs allowlist, the way getopt(3) will read them:
 * "-qL name", "-Lname", "-L name", "-E stride=4,nodiscard", "-d su=64k,sw=4". Errors: -EINVAL
 * with *ret_reason ("mkfs option '-p' not allowed for xfs: ..."; also too many words).
 */
int options_mkfs_split(const char *fstype, char *s, char **argv, size_t max, size_t *n,
                       char **ret_reason);

/* Checks options (may be NULL) as options_mkfs_split() would, without keeping the words.
 * Errors: -EINVAL (also: fstype unsupported), -ENOMEM. */
int options_mkfs_check(const char *fstype, const char *options, char **ret_reason);

/*
 * Checks one mapper's comma-separated map options ("queue_depth=128,lock_on_read" for krbd,
 * "try-netlink,io-timeout=30" for rbd-nbd; rbd-fuse takes none). Errors: -EINVAL with
 * *ret_reason naming the option.
 */
int options_map_check(enum mapper_type t, const char *options, char **ret_reason);

/* Same for unmap options: krbd "force"; rbd-nbd and rbd-fuse take none. */
int options_unmap_check(enum mapper_type t, const char *options, char **ret_reason);

/*
 * Checks a whole ceph-csi style mapOptions/unmapOptions value ("krbd:a,b;nbd:c"): every part,
 * for the mapper it names, whichever mapper the volume will use. Errors: -EINVAL.
 */
int options_map_all_check(const char *all, bool unmap, char **ret_reason);

/*
 * Checks filesystem mount options (a StorageClass's mountOptions, a capability's mount_flags;
 * comma-separated, libmount syntax) against fstype's allowlist plus the generic VFS flags
 * (ro, noatime, nodev, ...) and an SELinux context="...": fstype NULL accepts what ext4 or xfs
 * would. Refused, among others: anything naming a device or file (ext4 journal_path=,
 * journal_dev=, usrjquota=; xfs logdev=, rtdev=), errors=panic (a corrupt volume would take the
 * node down), norecovery/noload (skip the journal replay: data loss), and every mount(8) flag
 * that changes what is mounted or where (bind, move, remount, propagation, loop, X-*). Errors:
 * -EINVAL with *ret_reason naming the option ("mount option 'logdev' is not allowed for xfs").
 */
int options_mount_check(const char *fstype, const char *options, char **ret_reason);

/*
 * The "--name=value" arguments for rbd-nbd's map options, in a NULL-terminated vector (free with
 * exec_strv_free()); each name is spelled the way the allowlist spells it, so the tool reads
 * what was checked. Errors: -EINVAL as options_map_check(), -ENOMEM.
 */
int options_nbd_args(const char *options, char ***ret_args, char **ret_reason);
