/* SPDX-License-Identifier: Apache-2.0 */
#include <errno.h>
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
#include "driver/host/mount.h"

#define OPTIONS_MAX 4096

DEFINE_TRIVIAL_CLEANUP_FUNC(struct libmnt_context *, mnt_free_context)
DEFINE_TRIVIAL_CLEANUP_FUNC(struct libmnt_table *, mnt_unref_table)
DEFINE_TRIVIAL_CLEANUP_FUNC(struct libmnt_update *, mnt_free_update)

static bool path_ok(const char *path)
{
	return !isempty(path) && path[0] == '/' && strlen(path) < 4096;
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

int mount_find(const char *target, struct mount_info **ret_info)
{
	_cleanup_(mnt_unref_tablep) struct libmnt_table *tb = NULL;
	struct mount_info *info;
	struct libmnt_fs *fs;
	const char *root;
	int r;

	if (!path_ok(target))
		return -EINVAL;
	r = table_load(&tb);
	if (r < 0)
		return r;
	fs = table_find_target(tb, target);
	if (!fs)
		return -ENOENT;
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

int mount_device(const char *device, const char *target, const char *fstype, const char *options,
                 bool read_only)
{
	_cleanup_(mnt_free_contextp) struct libmnt_context *cxt = NULL;
	char opts[OPTIONS_MAX];
	const char *parts[4];
	bool xfs;
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

	xfs = strcmp(fstype, "xfs") == 0;
	parts[0] = "_netdev";
	parts[1] = read_only ? "ro" : NULL;
	parts[2] = xfs && !has_option(options, "nouuid") ? "nouuid" : NULL;
	parts[3] = options;
	r = join_options(opts, sizeof(opts), parts, ELEMENTSOF(parts));
	if (r < 0)
		return -EINVAL;

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
