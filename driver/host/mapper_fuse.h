/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The rbd-fuse mapper, for hosts without the rbd or nbd kernel modules: one
 * `rbd-fuse -f --image=IMAGE` per volume, mounted on a per-volume directory, then a loop device on
 * the file <mount_dir>/<image>.
 *
 * - rbd-fuse runs in its own session and outlives this process, so a plugin restart does not
 *   stop I/O; the pid is kept in the mapper's state (mapper_fuse_ops) and recognised again
 *   through /proc/PID/cmdline (program rbd-fuse, mount_dir among its arguments).
 * - It gets "-c /dev/null --mon-host <monitors> --id <user>" (no /etc/ceph, no DNS) and the key
 *   as --keyfile=/dev/fd/3, fd 3 being a sealed memfd (Ceph reads the keyfile by size, so a pipe
 *   does not work; a memfd is a file without a filesystem). rbd-fuse reads it once, at
 *   start-up, before it mounts, and keeps fd 3 open for its lifetime: once the mount is there,
 *   the memfd is emptied (mapper_key_fd_wipe()), so /proc/PID/fd/3 yields nothing; a daemon
 *   whose start-up a killed plugin did not finish is emptied by mapper_fuse_check().
 * - Pool, namespace and image go as --poolname=, --namespace=, --image= (one word each), so
 *   neither Ceph's argument parser nor FUSE's can read a name as an option.
 * - rbd-fuse exits 0 on errors (a missing image mounts an empty directory, a missing pool
 *   leaves a dead mount), so map waits for the mount to appear and then checks that
 *   <mount_dir>/<image> is a regular file of the expected size; on any failure it unmounts and
 *   stops the daemon.
 * - rbd-fuse logs (stderr before it daemonizes, then its Ceph log) to "<mount_dir>.log", which
 *   map reads for failure reasons and unmap removes.
 * - NEVER delete files inside the mount: rbd-fuse implements unlink as "remove the RBD image".
 *   This module only ever rmdir()s mount_dir once it is unmounted.
 * - mount_dir must be a canonical absolute path (no symlinks): nothing at or below it is ever
 *   stat()ed or resolved while rbd-fuse serves it, since with a dead cluster that blocks.
 */
#pragma once

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "driver/host/mapper_common.h"

struct mapper_fuse_mapping {
	pid_t pid;
	char *mount_dir;
	char *image_path;  /* <mount_dir>/<image> */
	char *loop_device; /* "/dev/loopN" */
};

/* Frees the strings of m (not m itself); accepts NULL. */
void mapper_fuse_mapping_done(struct mapper_fuse_mapping *m);

/* Errors: -ENODEV with *ret_reason: "rbd-fuse: program not installed" or "/dev/fuse missing". */
int mapper_fuse_available(char **ret_reason);

/*
 * Starts rbd-fuse for p->pool/p->rados_namespace/p->image on mount_dir (created 0700 with its
 * parents; it must not be a mount point), waits for the image file (bounded by p->timeout_usec)
 * and attaches a loop device to it (read-only if p->read_only). *ret is filled on success
 * (release with mapper_fuse_mapping_done()). On failure nothing is left: no mount, no process,
 * no loop device, no mount_dir, no log.
 * Errors: -EINVAL bad parameters, -ENODEV rbd-fuse unavailable, -EBUSY mount_dir already
 * mounted, -ENOENT image or pool not found, -EACCES authentication refused, -ETIMEDOUT cluster
 * did not answer in time, -EIO other rbd-fuse failures, -EMEDIUMTYPE the image file has an
 * unexpected size; *ret_reason says which.
 */
int mapper_fuse_map(const struct mapper_params *p, const char *mount_dir,
                    struct mapper_fuse_mapping *ret, char **ret_reason);

/*
 * Undoes a mapping: detaches the loop device(s) backed by <mount_dir>/<image> (loop_device if
 * given and still backed by it, plus any other found by scanning sysfs), unmounts mount_dir,
 * waits for rbd-fuse to exit, removes mount_dir and its log. pid may be 0 (unknown: found by
 * scanning /proc). Within timeout_usec even when the cluster is dead: a step that hangs gets the
 * rbd-fuse process SIGKILLed (that aborts the FUSE connection; in-flight I/O fails), and
 * *forced (may be NULL; set on every return) says so. Nothing to undo is success.
 * Errors: -EBUSY the loop device is still in use (mounted, or open by someone), -ETIMEDOUT,
 * -EINVAL; *ret_reason says what is left behind.
 */
int mapper_fuse_unmap(const char *mount_dir, const char *image, pid_t pid, const char *loop_device,
                      uint64_t timeout_usec, bool *forced, char **ret_reason);

/*
 * SIGKILLs the rbd-fuse serving mount_dir (pid if it is that process, else found through
 * /proc). This aborts the FUSE connection: blocked I/O fails, the mount goes dead. Not running
 * is success. Errors: -EPERM.
 */
int mapper_fuse_kill(const char *mount_dir, pid_t pid);

/* Finds the rbd-fuse serving mount_dir by its command line. Errors: -ENOENT none. */
int mapper_fuse_find_pid(const char *mount_dir, pid_t *ret_pid);

/* 1 when pid is a live rbd-fuse with mount_dir on its command line, else 0. */
int mapper_fuse_pid_matches(pid_t pid, const char *mount_dir);

struct mapper_fuse_status {
	pid_t pid;          /* the live rbd-fuse for mount_dir, 0 if none */
	bool mounted;       /* mount_dir is a fuse.rbd-fuse mount */
	bool loop_attached; /* a loop device is backed by <mount_dir>/<image> */
	char loop_device[32];
};

/*
 * Looks at what exists of a mapping after a restart, without touching the FUSE mount itself
 * (no stat into it). Never fails for missing pieces: they show as false/0.
 * Errors: -EINVAL, -ENOMEM.
 */
int mapper_fuse_check(const char *mount_dir, const char *image, pid_t pid,
                      struct mapper_fuse_status *ret_status);

/* The rbd-fuse mapper's ops (mapper_common.h): its state is the daemon's pid and mount_dir. */
extern const struct mapper_ops mapper_fuse_ops;

/* The pid and mount directory a rbd-fuse mapping's state (struct mapper_mapping.state) records;
 * 0 / NULL for a NULL state. */
pid_t mapper_fuse_state_pid(const void *state);
const char *mapper_fuse_state_mount_dir(const void *state);
