/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Request paths, resolved and never parsed: the one place that turns a path from a CSI request
 * (staging_target_path, target_path, volume_path) into something the node may act on.
 *
 * A root directory (the kubelet dir) is opened once as an O_PATH fd. A request path must be
 * absolute, below the root's text, and is then resolved beneath the root fd component by
 * component, never following a symlink and never leaving the root: openat2(2) with
 * RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS where the kernel has it, an
 * O_PATH | O_NOFOLLOW walk otherwise (same semantics). Mount points are crossed on purpose
 * (no RESOLVE_NO_XDEV): the kubelet's pods/ and plugins/ dirs may be other filesystems, and the
 * staging mount is where a publish binds from. Whether the LAST component is a mount point is
 * told by mount ids (statx STATX_MNT_ID), never from the text.
 *
 * What was resolved is a parent directory fd plus the last name, and an O_PATH fd of the object
 * when it exists. mkdir, create, unlink and rmdir then act on (parent fd, name) after checking
 * that the name still is the object resolved; mount and umount act on "/proc/self/fd/N" of the
 * object's fd (the kernel follows that magic link to exactly the object held), so a path
 * swapped between check and use is never followed.
 *
 * The root itself is never a valid target ("K", "K/", "K/.", "K//" are all refused).
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/stat.h>
#include <sys/types.h>

#include "driver/base/macro.h"

/* "/proc/self/fd/" + an int + NUL */
#define PATH_FD_TEXT_MAX 32

enum path_flags {
	PATH_WALK = 1 << 0, /* tests: use the O_PATH|O_NOFOLLOW walk even where openat2 works */
};

struct path_resolved {
	int dir_fd;      /* O_PATH|O_DIRECTORY fd of the parent directory (owned) */
	char *name;      /* the last component (owned) */
	char *text;      /* the path, normalised: root + "/" + components (owned) */
	int fd;          /* O_PATH|O_NOFOLLOW fd of the object, -1 when it does not exist (owned) */
	struct stat st;  /* of fd, when fd >= 0 */
	uint64_t mnt_id; /* mount id of fd, when fd >= 0 */
	bool mountpoint; /* fd is the root of a mount on top of the parent's */
};

#define PATH_RESOLVED_INIT             \
	{                              \
		.dir_fd = -1, .fd = -1 \
	}

/* Closes the fds and frees the strings; accepts a zeroed or already-done one. */
void path_resolved_done(struct path_resolved *p);

/*
 * Opens dir (followed: the administrator chose it) as an O_PATH|O_DIRECTORY|O_CLOEXEC fd.
 * Errors: -ENOENT, -ENOTDIR, -EACCES.
 */
int path_root_open(const char *dir, int *ret_fd);

/*
 * Resolves path beneath root_fd, the fd of the directory whose text is root (both from
 * path_root_open()'s caller). path must be absolute, at most PATH_MAX bytes, free of control
 * bytes, begin with root followed by '/', and have at least one component after it; empty
 * components (double or trailing slashes) are skipped, "." and ".." are refused. The parent
 * must exist; the last component may not (then ret->fd is -1).
 * *ret is filled only on success (release it with path_resolved_done()).
 * Errors: -EINVAL malformed, "." / ".." component, not below root, or root itself; -ELOOP a
 * symlink in any component (the last included); -ENOENT / -ENOTDIR a parent missing or not a
 * directory; -EXDEV a magic link or escape attempt the kernel refused.
 */
int path_resolve(int root_fd, const char *root, const char *path, unsigned flags,
                 struct path_resolved *ret);

/*
 * Re-opens the object at (dir_fd, name) and refreshes fd, st, mnt_id and mountpoint (after a
 * mount or an unmount there). A symlink found there is -ELOOP; nothing there sets fd to -1.
 */
int path_refresh(struct path_resolved *p);

/*
 * Creates the last component as a directory (mode) if it does not exist, then refreshes p.
 * An existing directory is fine. Errors: -ENOTDIR something else is there, -ELOOP a symlink.
 */
int path_mkdir(struct path_resolved *p, mode_t mode);

/*
 * Creates the last component as an empty regular file (mode) if it does not exist, then
 * refreshes p. An existing regular file, or a mount point of a device node (an earlier bind),
 * is fine. Errors: -EISDIR a directory is there, -ELOOP a symlink, -EEXIST something else.
 */
int path_create_file(struct path_resolved *p, mode_t mode);

/*
 * Removes the object resolved (an empty directory with rmdir, a regular file with unlink), by
 * (parent fd, name), after checking that the name is still that object (same st_dev/st_ino,
 * not a mount point). Missing is success.
 * Errors: -ENOTEMPTY, -EBUSY a mount point, -ESTALE the name now is another object, -EPERM not a
 * directory or regular file.
 */
int path_remove(struct path_resolved *p);

/*
 * Unmounts the topmost mount at name in dir_fd: umount2("/proc/self/fd/<dir_fd>/<name>",
 * UMOUNT_NOFOLLOW | flags), so the parent is exactly the directory resolved and a symlink at
 * name is never followed. (An fd of the mount itself would keep it busy, which is why the
 * parent's is used; a mount point cannot be renamed or unlinked, so name still is what was
 * checked.) Errors: -EINVAL not a mount point, -EBUSY in use.
 */
int path_umount_at(int dir_fd, const char *name, int flags);

/*
 * Unmounts the topmost mount at p (closing p->fd first, which would pin it), then refreshes p.
 * Errors: as path_umount_at(), -ENOENT nothing there.
 */
int path_umount(struct path_resolved *p, int flags);

/* "/proc/self/fd/<fd>" in buf; returns buf. */
const char *path_fd_text(int fd, char buf[static PATH_FD_TEXT_MAX]);

/* The mount id of fd (statx STATX_MNT_ID). Errors: -EOPNOTSUPP old kernel, -EBADF. */
int path_mount_id(int fd, uint64_t *ret_mnt_id);

/*
 * ---- text predicates ----
 * For paths this driver builds itself (state and rbd-fuse directories) and for the first check
 * of a request path before it is resolved as above; they never touch the filesystem.
 */

/* Whether p is absolute ("/...") and shorter than max bytes. */
bool path_is_absolute(const char *p, size_t max);

/* Whether p is absolute and canonical as text: no "//", "/./" or "/../", no trailing '/'. */
bool path_is_canonical(const char *p);

/* Whether path is dir or below it, component-wise ("/a/bc" is not below "/a/b"); trailing
 * slashes of dir are ignored. */
bool path_is_below(const char *path, const char *dir);

/* Whether a and b are the same path by path_is_below() (false when either is NULL). */
bool path_equal(const char *a, const char *b);
