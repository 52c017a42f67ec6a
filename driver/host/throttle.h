/* SPDX-License-Identifier: Apache-2.0 */
/*
 * I/O throttling of one block device for one Kubernetes pod, through the pod's cgroup: the node's
 * QoS for krbd, which has no QoS of its own (librbd's rbd_qos_* options are ignored by the
 * kernel client). Applied at NodePublishVolume, when the pod's cgroup exists (the kubelet
 * creates it before it mounts the pod's volumes), to the pod-level cgroup, so every container
 * of the pod shares the limit.
 *
 * cgroup v2 only: <root>/<pod cgroup>/io.max, "MAJ:MIN rbps=.. wbps=.. riops=.. wiops=.."
 * ("max" for no limit); v2's io controller is hierarchical, so the containers created in the pod
 * cgroup later inherit it. cgroup v1 is refused: its blkio.throttle.* rules are not
 * hierarchical (measured on this project's 6.18 kernel: with a 20 write-IOPS rule on a pod
 * cgroup, 60 direct 4 KiB writes to a loop device took 2.9 s from a process in that cgroup and
 * 1.5 ms from one in a child cgroup), and the container cgroups do not exist yet at publish. The
 * pod cgroup is looked for where the kubelet puts it with either cgroup driver: cgroupfs
 * "kubepods[/burstable|/besteffort]/pod<uid>", systemd
 * "kubepods.slice[/kubepods-<class>.slice]/kubepods[-<class>]-pod<uid with _>.slice".
 *
 * Paths: the cgroup root is the administrator's and is
 * followed; every directory below it, which derives from the pod uid, is opened component by
 * component with O_NOFOLLOW, and the control files with O_NOFOLLOW | O_WRONLY, so a symlink
 * planted in the cgroup tree is never followed. The uid must be a canonical lowercase UUID.
 */
#pragma once

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#define THROTTLE_CGROUP_ROOT "/sys/fs/cgroup"

struct throttle_limits {
	uint64_t read_iops; /* 0 = no limit */
	uint64_t write_iops;
	uint64_t read_bps;
	uint64_t write_bps;
};

/* True for a canonical lowercase UUID (8-4-4-4-12 hex digits), as Kubernetes writes pod uids. */
bool throttle_pod_uid_valid(const char *uid);

/*
 * Sets limits for device dev on pod uid's cgroup below root (NULL: THROTTLE_CGROUP_ROOT);
 * limits of 0 remove a rule. Returns 0 and, when ret_cgroup is not NULL, the pod cgroup's path
 * relative to the hierarchy (malloc'ed);
 *   -EINVAL  bad uid, or dev 0
 *   -ENOENT  no cgroup of that pod, or no cgroup hierarchy at root
 *   -EOPNOTSUPP  root is a cgroup v1 hierarchy (see above): nothing written
 *   -ELOOP   a symlink where a cgroup directory or control file was expected
 *   -EPERM, -EACCES  the kernel refused the write (not root, or controller not enabled)
 */
int throttle_apply(const char *root, const char *pod_uid, dev_t dev,
                   const struct throttle_limits *limits, char **ret_cgroup);
