/* SPDX-License-Identifier: Apache-2.0 */
#include <errno.h>
#include <limits.h>
#include <libmount/libmount.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <unistd.h>

#include "driver/base/log.h"
#include "driver/base/macro.h"
#include "driver/base/path.h"
#include "driver/host/mount.h"
#include "driver/host/options.h"

#define OPTIONS_MAX 4096

DEFINE_TRIVIAL_CLEANUP_FUNC(struct libmnt_context *, mnt_free_context)
DEFINE_TRIVIAL_CLEANUP_FUNC(struct libmnt_table *, mnt_unref_table)
DEFINE_TRIVIAL_CLEANUP_FUNC(struct libmnt_update *, mnt_free_update)
DEFINE_TRIVIAL_CLEANUP_FUNC(struct libmnt_fs *, mnt_unref_fs)

static bool path_ok(const char *path)
{
	return path_is_absolute(path, PATH_MAX);
}

/* Copies path without trailing slashes ("/" stays "/"). */
static char *path_normalize(const char *path)
{
	char *s = strdup(path);
	size_t n;

	if (!s)
		return NULL;
	n = strlen(s);
	while (n > 1 && s[n - 1] == '/')
		s[--n] = 0;
	return s;
}

static int table_load(struct libmnt_table **ret)
{
	struct libmnt_table *tb = mnt_new_table();
	int r;

	if (!tb)
		return -ENOMEM;
	r = mnt_table_parse_file(tb, "/proc/self/mountinfo");
	if (r < 0) {
		mnt_unref_table(tb);
		return r;
	}
	*ret = tb;
	return 0;
}

/* The topmost entry mounted at target: literal path first, then its canonical form. */
static struct libmnt_fs *table_find_target(struct libmnt_table *tb, const char *target)
{
	_cleanup_free_ char *norm = path_normalize(target), *real = NULL;
	struct libmnt_fs *fs;

	if (!norm)
		return NULL;
	fs = mnt_table_find_target(tb, norm, MNT_ITER_BACKWARD);
	if (fs)
		return fs;
	/* realpath() may block on a dead FUSE mount below; a literal match is tried first. */
	real = realpath(norm, NULL);
	if (real && strcmp(real, norm) != 0)
		return mnt_table_find_target(tb, real, MNT_ITER_BACKWARD);
	return NULL;
}

int mount_is_mountpoint(const char *path)
{
	_cleanup_(mnt_unref_tablep) struct libmnt_table *tb = NULL;
	int r;

	if (!path_ok(path))
		return -EINVAL;
	r = table_load(&tb);
	if (r < 0)
		return r;
	return table_find_target(tb, path) ? 1 : 0;
}

struct mount_info *mount_info_free(struct mount_info *info)
{
	if (!info)
		return NULL;
	free(info->source);
	free(info->fstype);
	free(info->options);
	free(info->fs_options);
	free(info);
	return NULL;
}

static bool has_option(const char *optstr, const char *name)
{
	return optstr && mnt_optstr_get_option(optstr, name, NULL, NULL) == 0;
}

static int info_from_fs(struct libmnt_fs *fs, struct mount_info **ret_info)
{
	struct mount_info *info;
	const char *root;

	info = calloc(1, sizeof(*info));
	if (!info)
		return -ENOMEM;
	info->source = strdup(strempty(mnt_fs_get_source(fs)));
	info->fstype = strdup(strempty(mnt_fs_get_fstype(fs)));
	info->options = strdup(strempty(mnt_fs_get_vfs_options(fs)));
	info->fs_options = strdup(strempty(mnt_fs_get_fs_options(fs)));
	if (!info->source || !info->fstype || !info->options || !info->fs_options) {
		mount_info_free(info);
		return -ENOMEM;
	}
	info->read_only = has_option(info->options, "ro") || has_option(info->fs_options, "ro") ||
	                  has_option(info->fs_options, "emergency_ro");
	info->devno = mnt_fs_get_devno(fs);
	root = mnt_fs_get_root(fs);
	info->bind = root && strcmp(root, "/") != 0;
	*ret_info = info;
	return 0;
}

int mount_find(const char *target, struct mount_info **ret_info)
{
	_cleanup_(mnt_unref_tablep) struct libmnt_table *tb = NULL;
	struct libmnt_fs *fs;
	int r;

	if (!path_ok(target))
		return -EINVAL;
	r = table_load(&tb);
	if (r < 0)
		return r;
	fs = table_find_target(tb, target);
	if (!fs)
		return -ENOENT;
	return info_from_fs(fs, ret_info);
}

int mount_find_fd(int fd, struct mount_info **ret_info)
{
	_cleanup_(mnt_unref_tablep) struct libmnt_table *tb = NULL;
	struct libmnt_iter *itr;
	struct libmnt_fs *fs, *found = NULL;
	uint64_t id;
	int r;

	r = path_mount_id(fd, &id);
	if (r < 0)
		return r;
	r = table_load(&tb);
	if (r < 0)
		return r;
	itr = mnt_new_iter(MNT_ITER_FORWARD);
	if (!itr)
		return -ENOMEM;
	while (!found && mnt_table_next_fs(tb, itr, &fs) == 0)
		if (mnt_fs_get_id(fs) >= 0 && (uint64_t)mnt_fs_get_id(fs) == id)
			found = fs;
	mnt_free_iter(itr);
	if (!found)
		return -ENOENT;
	return info_from_fs(found, ret_info);
}

int mount_find_by_source(const char *source, char **ret_target)
{
	_cleanup_(mnt_unref_tablep) struct libmnt_table *tb = NULL;
	struct libmnt_fs *fs;
	char *s;
	int r;

	if (isempty(source))
		return -EINVAL;
	r = table_load(&tb);
	if (r < 0)
		return r;
	fs = mnt_table_find_source(tb, source, MNT_ITER_FORWARD);
	if (!fs)
		return -ENOENT;
	s = strdup(strempty(mnt_fs_get_target(fs)));
	if (!s)
		return -ENOMEM;
	*ret_target = s;
	return 0;
}

/*
 * libmount 2.39 and later mount through the new mount API (fsmount(), then move_mount()). The
 * target of mount_device_at() and mount_bind_at() is the /proc/self/fd/N link of the resolved
 * directory, which move_mount() follows only with MOVE_MOUNT_T_SYMLINKS, a flag libmount does not
 * pass: every mount by fd then fails with EINVAL (Debian 13's libmount 2.41, the container
 * image's; tests/ceph-matrix.sh). mount(2) follows the link. libmount reads
 * LIBMOUNT_FORCE_MOUNT2 at each mount; it is set here before main(), while the process has one
 * thread (setenv() is not safe beside getenv() in other threads). Older libmount ignores it.
 */
__attribute__((constructor)) static void mount_force_classic_syscall(void)
{
	(void)setenv("LIBMOUNT_FORCE_MOUNT2", "always", 1);
}

/* Runs a prepared context; maps libmount's outcome to -errno. */
static int context_mount(struct libmnt_context *cxt, const char *what)
{
	int r;

	mnt_context_disable_helpers(cxt, 1);   /* never exec /sbin/mount.<type> */
	mnt_context_disable_swapmatch(cxt, 1); /* never look into fstab */
	mnt_context_disable_canonicalize(cxt, 1);
	r = mnt_context_mount(cxt);
	if (mnt_context_syscall_called(cxt) && mnt_context_get_syscall_errno(cxt) != 0)
		return log_debug_errno(-mnt_context_get_syscall_errno(cxt), "mount(%s) failed: %m",
		                       what);
	if (r > 0)
		r = -EINVAL;
	if (r < 0)
		return log_debug_errno(r, "libmount failed to mount %s: %m", what);
	return 0;
}

static int join_options(char *buf, size_t size, const char *const *parts, size_t n)
{
	size_t pos = 0;

	buf[0] = 0;
	for (size_t i = 0; i < n; i++) {
		int k;

		if (isempty(parts[i]))
			continue;
		k = snprintf(buf + pos, size - pos, "%s%s", pos ? "," : "", parts[i]);
		if (k < 0 || (size_t)k >= size - pos)
			return -E2BIG;
		pos += (size_t)k;
	}
	return 0;
}

/*
 * The options of a device mount: _netdev, ro when asked, nouuid for xfs (so clones mount next to
 * their source) unless given, then the caller's, which must pass fstype's allowlist
 * (options_mount_check()). Errors: -EINVAL refused or too long.
 */
static int device_options(char *opts, size_t size, const char *fstype, const char *options,
                          bool read_only)
{
	bool xfs = strcmp(fstype, "xfs") == 0;
	const char *parts[4] = {
		"_netdev",
		read_only ? "ro" : NULL,
		xfs && !has_option(options, "nouuid") ? "nouuid" : NULL,
		options,
	};

	if (options_mount_check(fstype, options, NULL) < 0)
		return -EINVAL;
	return join_options(opts, size, parts, ELEMENTSOF(parts)) < 0 ? -EINVAL : 0;
}

int mount_device(const char *device, const char *target, const char *fstype, const char *options,
                 bool read_only)
{
	_cleanup_(mnt_free_contextp) struct libmnt_context *cxt = NULL;
	char opts[OPTIONS_MAX];
	int r;

	if (!path_ok(device) || !path_ok(target) || isempty(fstype))
		return -EINVAL;
	if (options && (strchr(options, ' ') || strchr(options, '\n')))
		return -EINVAL;
	r = mount_is_mountpoint(target);
	if (r < 0)
		return r;
	if (r > 0)
		return -EBUSY;

	r = device_options(opts, sizeof(opts), fstype, options, read_only);
	if (r < 0)
		return r;

	cxt = mnt_new_context();
	if (!cxt)
		return -ENOMEM;
	if (mnt_context_set_source(cxt, device) < 0 || mnt_context_set_target(cxt, target) < 0 ||
	    mnt_context_set_fstype(cxt, fstype) < 0 || mnt_context_set_options(cxt, opts) < 0)
		return -ENOMEM;
	r = context_mount(cxt, target);
	if (r < 0)
		return r;
	log_debug("Mounted %s on %s (%s, %s)", device, target, fstype, opts);
	return 0;
}

int mount_bind(const char *source, const char *target, bool read_only, const char *options)
{
	_cleanup_(mnt_free_contextp) struct libmnt_context *cxt = NULL;
	char opts[OPTIONS_MAX];
	const char *parts[3];
	struct stat s_st, t_st;
	int r;

	if (!path_ok(source) || !path_ok(target))
		return -EINVAL;
	if (options && (strchr(options, ' ') || strchr(options, '\n')))
		return -EINVAL;
	if (stat(source, &s_st) < 0 || lstat(target, &t_st) < 0)
		return negative_errno();
	if (S_ISLNK(t_st.st_mode))
		return -ELOOP;
	if (S_ISDIR(s_st.st_mode) != S_ISDIR(t_st.st_mode))
		return S_ISDIR(s_st.st_mode) ? -ENOTDIR : -EISDIR;
	r = mount_is_mountpoint(target);
	if (r < 0)
		return r;
	if (r > 0)
		return -EBUSY;

	/* libmount turns "bind,ro" into MS_BIND followed by an MS_REMOUNT|MS_BIND|MS_RDONLY. */
	parts[0] = "bind";
	parts[1] = read_only ? "ro" : NULL;
	parts[2] = options;
	r = join_options(opts, sizeof(opts), parts, ELEMENTSOF(parts));
	if (r < 0)
		return -EINVAL;
	cxt = mnt_new_context();
	if (!cxt)
		return -ENOMEM;
	if (mnt_context_set_source(cxt, source) < 0 || mnt_context_set_target(cxt, target) < 0 ||
	    mnt_context_set_options(cxt, opts) < 0)
		return -ENOMEM;
	r = context_mount(cxt, target);
	if (r < 0)
		return r;

	if (read_only) {
		_cleanup_(mount_info_freep) struct mount_info *info = NULL;

		/* Check that the remount happened: a writable bind would be a silent failure. */
		r = mount_find(target, &info);
		if (r < 0 || !info->read_only) {
			(void)mount_umount(target, false);
			return log_debug_errno(r < 0 ? r : -EROFS,
			                       "Read-only bind mount on %s is not read-only",
			                       target);
		}
	}
	log_debug("Bind-mounted %s on %s (%s)", source, target, opts);
	return 0;
}

/* Records target's userspace options (_netdev) in libmount's utab, as a mount by text would. */
static void utab_remember(const char *source, const char *target, const char *fstype,
                          const char *options)
{
	_cleanup_(mnt_free_updatep) struct libmnt_update *upd = NULL;
	_cleanup_(mnt_unref_fsp) struct libmnt_fs *fs = NULL;
	int r;

	fs = mnt_new_fs();
	upd = mnt_new_update();
	if (!fs || !upd)
		return;
	if (mnt_fs_set_source(fs, source) < 0 || mnt_fs_set_target(fs, target) < 0 ||
	    mnt_fs_set_fstype(fs, fstype) < 0 || mnt_fs_set_options(fs, options) < 0)
		return;
	r = mnt_update_set_fs(upd, 0, NULL, fs);
	if (r == 0 && !mnt_update_is_ready(upd))
		return; /* no userspace options, or no utab */
	if (r == 0)
		r = mnt_update_table(upd, NULL);
	if (r < 0)
		log_debug_errno(r, "Cannot record %s in utab: %m", target);
}

int mount_device_at(const char *device, struct path_resolved *target, const char *fstype,
                    const char *options, bool read_only)
{
	_cleanup_(mnt_free_contextp) struct libmnt_context *cxt = NULL;
	char opts[OPTIONS_MAX], fdtext[PATH_FD_TEXT_MAX];
	int r;

	if (!path_ok(device) || !target || target->fd < 0 || isempty(fstype))
		return -EINVAL;
	if (options && (strchr(options, ' ') || strchr(options, '\n')))
		return -EINVAL;
	if (!S_ISDIR(target->st.st_mode))
		return -ENOTDIR;
	if (target->mountpoint)
		return -EBUSY;

	r = device_options(opts, sizeof(opts), fstype, options, read_only);
	if (r < 0)
		return r;

	cxt = mnt_new_context();
	if (!cxt)
		return -ENOMEM;
	/* The kernel follows /proc/self/fd/N to exactly the directory resolved. utab is written
	 * below under the path's text, not the fd's. */
	mnt_context_disable_mtab(cxt, 1);
	if (mnt_context_set_source(cxt, device) < 0 ||
	    mnt_context_set_target(cxt, path_fd_text(target->fd, fdtext)) < 0 ||
	    mnt_context_set_fstype(cxt, fstype) < 0 || mnt_context_set_options(cxt, opts) < 0)
		return -ENOMEM;
	r = context_mount(cxt, target->text);
	if (r < 0)
		return r;
	utab_remember(device, target->text, fstype, opts);
	r = path_refresh(target);
	if (r < 0)
		return r;
	log_debug("Mounted %s on %s (%s, %s)", device, target->text, fstype, opts);
	return 0;
}

int mount_bind_at(const char *source, struct path_resolved *target, bool read_only,
                  const char *options)
{
	char fdtext[PATH_FD_TEXT_MAX];
	unsigned long flags = 0;
	struct stat s_st;
	int r;

	if (!path_ok(source) || !target || target->fd < 0)
		return -EINVAL;
	if (options && (strchr(options, ' ') || strchr(options, '\n')))
		return -EINVAL;
	if (options &&
	    mnt_optstr_get_flags(options, &flags, mnt_get_builtin_optmap(MNT_LINUX_MAP)) < 0)
		return -EINVAL;
	/* Only per-mount flags make sense on a bind. */
	flags &= MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC | MS_NOATIME | MS_NODIRATIME |
	         MS_RELATIME | MS_STRICTATIME;
	if (read_only)
		flags |= MS_RDONLY;
	if (stat(source, &s_st) < 0)
		return negative_errno();
	if (S_ISDIR(s_st.st_mode) != S_ISDIR(target->st.st_mode))
		return S_ISDIR(s_st.st_mode) ? -ENOTDIR : -EISDIR;
	if (target->mountpoint)
		return -EBUSY;
	if (mount(source, path_fd_text(target->fd, fdtext), NULL, MS_BIND, NULL) < 0)
		return log_debug_errno(negative_errno(), "bind mount of %s on %s failed: %m",
		                       source, target->text);
	r = path_refresh(target);
	if (r >= 0 && !target->mountpoint)
		r = -EIO;
	if (r >= 0 && flags &&
	    mount(NULL, path_fd_text(target->fd, fdtext), NULL, MS_REMOUNT | MS_BIND | flags,
	          NULL) < 0)
		r = negative_errno();
	if (r >= 0 && read_only) {
		_cleanup_(mount_info_freep) struct mount_info *info = NULL;

		/* Check that the remount happened: a writable bind would be a silent failure. */
		r = mount_find_fd(target->fd, &info);
		if (r >= 0 && !info->read_only)
			r = -EROFS;
	}
	if (r < 0) {
		if (target->mountpoint)
			(void)path_umount(target, 0);
		return log_debug_errno(r, "Bind mount of %s on %s failed: %m", source,
		                       target->text);
	}
	log_debug("Bind-mounted %s on %s (flags %#lx)", source, target->text, flags);
	return 0;
}

/* Drops target's entry from libmount's utab (userspace options such as _netdev). */
static void utab_forget(const char *target)
{
	_cleanup_(mnt_free_updatep) struct libmnt_update *upd = NULL;
	int r;

	upd = mnt_new_update();
	if (!upd)
		return;
	r = mnt_update_set_fs(upd, 0, target, NULL);
	if (r == 0 && !mnt_update_is_ready(upd))
		return; /* nothing to update (no utab) */
	if (r == 0)
		r = mnt_update_table(upd, NULL);
	if (r < 0)
		log_debug_errno(r, "Cannot drop %s from utab: %m", target);
}

int mount_umount(const char *target, bool lazy)
{
	_cleanup_free_ char *norm = NULL;
	int flags = UMOUNT_NOFOLLOW | (lazy ? MNT_DETACH : 0);
	int r;

	if (!path_ok(target))
		return -EINVAL;
	norm = path_normalize(target);
	if (!norm)
		return -ENOMEM;
	if (umount2(norm, flags) < 0) {
		r = negative_errno();
		if (r == -ENOENT)
			return 0;
		if (r == -EINVAL) {
			/* EINVAL: not a mount point (or bad flags, which ours are not). */
			int k = mount_is_mountpoint(norm);

			if (k == 0)
				return 0;
			if (k > 0) {
				struct stat st;

				if (lstat(norm, &st) == 0 && S_ISLNK(st.st_mode))
					return -ELOOP;
			}
		}
		return log_debug_errno(r, "umount(%s) failed: %m", norm);
	}
	utab_forget(norm);
	log_debug("Unmounted %s%s", norm, lazy ? " (lazy)" : "");
	return 0;
}

int mount_umount_at(int dir_fd, const char *name, const char *text, bool lazy)
{
	int r = path_umount_at(dir_fd, name, lazy ? MNT_DETACH : 0);

	if (r < 0)
		return log_debug_errno(r, "umount(%s) failed: %m", strempty(text));
	if (text)
		utab_forget(text);
	log_debug("Unmounted %s%s", strempty(text), lazy ? " (lazy)" : "");
	return 0;
}

int mount_check_health(const char *target, bool *ret_abnormal, char **ret_reason)
{
	_cleanup_(mount_info_freep) struct mount_info *info = NULL;
	struct statfs sfs;
	char *reason = NULL;
	bool abnormal = false;
	int r;

	r = mount_find(target, &info);
	if (r < 0)
		return r;
	/* Superblock read-only under a read-write mount: ext4 errors=remount-ro, which newer
	 * kernels (6.x) show as "emergency_ro" rather than "ro". */
	if (!has_option(info->options, "ro") &&
	    (has_option(info->fs_options, "ro") || has_option(info->fs_options, "emergency_ro"))) {
		abnormal = true;
		(void)!asprintf(
		        &reason,
		        "%s on %s went read-only (filesystem errors; it was mounted read-write)",
		        info->fstype, target);
	} else if (statfs(target, &sfs) < 0) {
		int e = errno;

		if (e == EIO || e == ENOTCONN || e == ESHUTDOWN || e == EUCLEAN) {
			abnormal = true;
			(void)!asprintf(&reason, "%s on %s does not answer statfs: %s",
			                info->fstype, target, strerror(e));
		}
	}
	*ret_abnormal = abnormal;
	if (ret_reason)
		*ret_reason = reason;
	else
		free(reason);
	return 0;
}
