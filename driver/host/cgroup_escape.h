/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Mapper daemons (rbd-fuse) out of the node plugin container's cgroup.
 *
 * When the main process of a host-PID container exits (plugin upgrade, OOM kill, crash, pod
 * deletion), containerd's runc shim kills every process left in the container's cgroup. An
 * rbd-fuse daemon serves a mounted volume: it must outlive the plugin, which adopts it again
 * after its restart (the state dir holds its pid; the pod has hostPID). So right after the
 * spawn, the daemon is moved into a cgroup of its own, CGROUP_ESCAPE_PARENT/<name>-<pid>, at the
 * root of every hierarchy the process sees through /sys/fs/cgroup (the node DaemonSet mounts
 * the host's /sys, so those are the host's hierarchies): each cgroup v1 controller, the named
 * v1 hierarchies (name=systemd) and cgroup v2 (unified or hybrid). Its memory is then no
 * longer charged to the plugin's limit either. deploy/README.md ("Node plugin restarts") says
 * why this design.
 *
 * A hierarchy is used only when the caller's own cgroup in it, as /proc/self/cgroup names it,
 * is below the root and is found through the mount: that proves the mount shows the real root
 * (and not the container's own subtree, or a cgroup namespace's), so the new cgroup lies
 * outside the container's. Others are skipped (a host process at the root cgroup has nothing
 * to escape from). The move happens just after posix_spawn returns: a plugin killed within
 * those microseconds takes the new daemon with it, which a retried NodeStage undoes as for
 * any killed stage.
 */
#pragma once

#include <sys/types.h>

#define CGROUP_ESCAPE_PARENT "rbdcsi-mappers"
/* Opt-in: only with this set to "1" in the plugin's environment (the shipped node DaemonSet
 * and Helm chart set it). A plugin run as a host process, in tests or by hand, leaves its
 * children in its own cgroup, where whoever started it accounts for them. */
#define CGROUP_ESCAPE_ENV "RBDCSI_MAPPER_CGROUP_ESCAPE"

/*
 * With CGROUP_ESCAPE_ENV=1 (else returns 0 and does nothing, as does cgroup_escape_sweep()):
 * moves process pid into CGROUP_ESCAPE_PARENT/<name>-<pid> in every usable hierarchy below
 * /sys/fs/cgroup (cpuset cgroups get their parent's cpus and mems). name: [a-z0-9-]{1,32}.
 * Returns the number of hierarchies it was moved in (0: none usable, nothing done).
 * Errors: -EINVAL bad name or pid, -ESRCH no such process, or the errno of a failed mkdir or
 * cgroup.procs write (-EACCES without privilege); a failure leaves it where it was in that
 * hierarchy.
 */
int cgroup_escape_move(pid_t pid, const char *name);

/* As cgroup_escape_move(), below root instead of /sys/fs/cgroup, with proc_cgroup read instead
 * of /proc/self/cgroup (tests). */
int cgroup_escape_move_at(const char *root, const char *proc_cgroup, pid_t pid, const char *name);

/*
 * Removes the empty cgroups below CGROUP_ESCAPE_PARENT in every hierarchy (those of daemons
 * that have exited); the ones that still hold a process stay (rmdir fails with EBUSY).
 * Never fails.
 */
void cgroup_escape_sweep(void);

/* As cgroup_escape_sweep(), below root (tests). */
void cgroup_escape_sweep_at(const char *root);
