/* SPDX-License-Identifier: Apache-2.0 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/openat2.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "driver/base/macro.h"
#include "driver/base/path.h"

void path_resolved_done(struct path_resolved *p)
{
	if (!p)
		return;
	if (p->dir_fd >= 0)
		close(p->dir_fd);
	if (p->fd >= 0)
		close(p->fd);
	free(p->name);
	free(p->text);
	*p = (struct path_resolved)PATH_RESOLVED_INIT;
}

int path_root_open(const char *dir, int *ret_fd)
{
	int fd;

	if (isempty(dir) || dir[0] != '/')
		return -EINVAL;
	fd = open(dir, O_PATH | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return negative_errno();
	*ret_fd = fd;
	return 0;
}

const char *path_fd_text(int fd, char buf[static PATH_FD_TEXT_MAX])
{
	snprintf(buf, PATH_FD_TEXT_MAX, "/proc/self/fd/%d", fd);
	return buf;
}

int path_mount_id(int fd, uint64_t *ret_mnt_id)
{
	struct statx stx;

	if (statx(fd, "", AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW | AT_STATX_DONT_SYNC, STATX_MNT_ID,
	          &stx) < 0)
		return negative_errno();
	if (!(stx.stx_mask & STATX_MNT_ID))
		return -EOPNOTSUPP;
	*ret_mnt_id = stx.stx_mnt_id;
	return 0;
}

/* The parent directory by openat2(2); -ENOSYS when the kernel lacks it. */
static int open_parent_openat2(int root_fd, const char *rel)
{
	struct open_how how = {
		.flags = O_PATH | O_DIRECTORY | O_CLOEXEC,
		.resolve = RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS,
	};
	long fd = syscall(SYS_openat2, root_fd, rel, &how, sizeof(how));

	if (fd < 0)
		return negative_errno();
	return (int)fd;
}

/* The parent directory by walking rel's components with O_PATH|O_NOFOLLOW. rel has no empty,
 * "." or ".." component (path_resolve() made it). */
static int open_parent_walk(int root_fd, const char *rel)
{
	_cleanup_free_ char *copy = strdup(rel);
	_cleanup_close_ int cur = -1;
	char *s, *slash;

	if (!copy)
		return -ENOMEM;
	cur = fcntl(root_fd, F_DUPFD_CLOEXEC, 3);
	if (cur < 0)
		return negative_errno();
	for (s = copy; s; s = slash ? slash + 1 : NULL) {
		struct stat st;
		int next;

		slash = strchr(s, '/');
		if (slash)
			*slash = 0;
		next = openat(cur, s, O_PATH | O_NOFOLLOW | O_CLOEXEC);
		if (next < 0)
			return negative_errno();
		safe_close(cur);
		cur = next;
		if (fstat(cur, &st) < 0)
			return negative_errno();
		if (S_ISLNK(st.st_mode))
			return -ELOOP;
		if (!S_ISDIR(st.st_mode))
			return -ENOTDIR;
	}
	return TAKE_FD(cur);
}

int path_refresh(struct path_resolved *p)
{
	_cleanup_close_ int fd = -1;
	uint64_t dir_mnt, mnt;
	struct stat st;
	int r;

	fd = openat(p->dir_fd, p->name, O_PATH | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0 && errno != ENOENT)
		return negative_errno();
	if (fd >= 0) {
		if (fstat(fd, &st) < 0)
			return negative_errno();
		if (S_ISLNK(st.st_mode))
			return -ELOOP;
		r = path_mount_id(fd, &mnt);
		if (r < 0)
			return r;
		r = path_mount_id(p->dir_fd, &dir_mnt);
		if (r < 0)
			return r;
		p->st = st;
		p->mnt_id = mnt;
		p->mountpoint = mnt != dir_mnt;
	} else {
		p->st = (struct stat){ 0 };
		p->mnt_id = 0;
		p->mountpoint = false;
	}
	safe_close(p->fd);
	p->fd = TAKE_FD(fd);
	return 0;
}

/* The root's text without trailing slashes; "/" becomes "". */
static size_t root_len(const char *root)
{
	size_t n = strlen(root);

	while (n > 0 && root[n - 1] == '/')
		n--;
	return n;
}

int path_resolve(int root_fd, const char *root, const char *path, unsigned flags,
                 struct path_resolved *ret)
{
	_cleanup_(path_resolved_done) struct path_resolved p = PATH_RESOLVED_INIT;
	_cleanup_free_ char *rel = NULL;
	size_t n, len = 0, ncomp = 0;
	const char *s, *last = NULL;
	char *parent;
	int r;

	if (root_fd < 0 || isempty(root) || root[0] != '/' || isempty(path) || path[0] != '/')
		return -EINVAL;
	if (strlen(path) >= PATH_MAX)
		return -EINVAL;
	for (s = path; *s; s++)
		if ((unsigned char)*s < 0x20 || *s == 0x7f)
			return -EINVAL;
	n = root_len(root);
	if (strncmp(path, root, n) != 0 || path[n] != '/')
		return -EINVAL;

	/* Components after the root, joined by single slashes. */
	rel = malloc(strlen(path) + 1);
	if (!rel)
		return -ENOMEM;
	for (s = path + n; *s;) {
		size_t k;

		while (*s == '/')
			s++;
		k = strcspn(s, "/");
		if (k == 0)
			break;
		if ((k == 1 && s[0] == '.') || (k == 2 && s[0] == '.' && s[1] == '.'))
			return -EINVAL;
		if (k > NAME_MAX)
			return -ENAMETOOLONG;
		if (len > 0)
			rel[len++] = '/';
		memcpy(rel + len, s, k);
		len += k;
		rel[len] = 0;
		ncomp++;
		s += k;
	}
	if (ncomp == 0)
		return -EINVAL; /* the root itself */
	rel[len] = 0;

	if (asprintf(&p.text, "%.*s/%s", (int)n, root, rel) < 0) {
		p.text = NULL;
		return -ENOMEM;
	}
	parent = strrchr(rel, '/');
	if (parent) {
		*parent = 0;
		last = parent + 1;
	} else
		last = rel;
	p.name = strdup(last);
	if (!p.name)
		return -ENOMEM;

	if (!parent) {
		r = fcntl(root_fd, F_DUPFD_CLOEXEC, 3);
		if (r < 0)
			r = negative_errno();
	} else if (flags & PATH_WALK)
		r = open_parent_walk(root_fd, rel);
	else {
		r = open_parent_openat2(root_fd, rel);
		if (r == -ENOSYS || r == -EPERM) /* old kernel, or a seccomp filter */
			r = open_parent_walk(root_fd, rel);
	}
	if (r < 0)
		return r;
	p.dir_fd = r;

	r = path_refresh(&p);
	if (r < 0)
		return r;
	*ret = p;
	p = (struct path_resolved)PATH_RESOLVED_INIT;
	return 0;
}

int path_mkdir(struct path_resolved *p, mode_t mode)
{
	int r;

	if (mkdirat(p->dir_fd, p->name, mode) < 0 && errno != EEXIST)
		return negative_errno();
	r = path_refresh(p);
	if (r < 0)
		return r;
	if (p->fd < 0)
		return -ENOENT;
	return S_ISDIR(p->st.st_mode) ? 0 : -ENOTDIR;
}

int path_create_file(struct path_resolved *p, mode_t mode)
{
	int fd, r;

	/* O_EXCL|O_NOFOLLOW: an existing name (a symlink included) is never opened for writing. */
	fd = openat(p->dir_fd, p->name, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, mode);
	if (fd < 0 && errno != EEXIST)
		return negative_errno();
	if (fd >= 0)
		close(fd);
	r = path_refresh(p);
	if (r < 0)
		return r;
	if (p->fd < 0)
		return -ENOENT;
	if (S_ISREG(p->st.st_mode) || (p->mountpoint && S_ISBLK(p->st.st_mode)))
		return 0;
	return S_ISDIR(p->st.st_mode) ? -EISDIR : -EEXIST;
}

int path_remove(struct path_resolved *p)
{
	_cleanup_close_ int fd = -1;
	uint64_t mnt, dir_mnt;
	struct stat st;
	int r;

	if (p->fd < 0)
		return 0;
	fd = openat(p->dir_fd, p->name, O_PATH | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return errno == ENOENT ? 0 : negative_errno();
	if (fstat(fd, &st) < 0)
		return negative_errno();
	if (st.st_dev != p->st.st_dev || st.st_ino != p->st.st_ino)
		return -ESTALE;
	r = path_mount_id(fd, &mnt);
	if (r < 0)
		return r;
	r = path_mount_id(p->dir_fd, &dir_mnt);
	if (r < 0)
		return r;
	if (mnt != dir_mnt)
		return -EBUSY;
	if (S_ISDIR(st.st_mode))
		r = unlinkat(p->dir_fd, p->name, AT_REMOVEDIR);
	else if (S_ISREG(st.st_mode))
		r = unlinkat(p->dir_fd, p->name, 0);
	else
		return -EPERM;
	if (r < 0)
		return errno == ENOENT ? 0 : negative_errno();
	safe_close(p->fd);
	p->fd = -1;
	p->st = (struct stat){ 0 };
	p->mountpoint = false;
	return 0;
}

int path_umount_at(int dir_fd, const char *name, int flags)
{
	char text[PATH_FD_TEXT_MAX + NAME_MAX + 2];

	if (dir_fd < 0 || isempty(name) || strchr(name, '/') || strlen(name) > NAME_MAX)
		return -EINVAL;
	snprintf(text, sizeof(text), "/proc/self/fd/%d/%s", dir_fd, name);
	if (umount2(text, UMOUNT_NOFOLLOW | flags) < 0)
		return negative_errno();
	return 0;
}

int path_umount(struct path_resolved *p, int flags)
{
	int r;

	if (p->fd < 0)
		return -ENOENT;
	safe_close(p->fd);
	p->fd = -1;
	r = path_umount_at(p->dir_fd, p->name, flags);
	if (r < 0) {
		(void)path_refresh(p);
		return r;
	}
	return path_refresh(p);
}

bool path_is_absolute(const char *p, size_t max)
{
	return !isempty(p) && p[0] == '/' && strlen(p) < max;
}

bool path_is_canonical(const char *p)
{
	return !isempty(p) && p[0] == '/' && !strstr(p, "//") && !strstr(p, "/./") &&
	       !strstr(p, "/../") && p[strlen(p) - 1] != '/';
}

bool path_is_below(const char *path, const char *dir)
{
	size_t n = strlen(dir);

	while (n > 1 && dir[n - 1] == '/')
		n--;
	return strncmp(path, dir, n) == 0 && (path[n] == '/' || path[n] == '\0');
}

bool path_equal(const char *a, const char *b)
{
	return a && b && path_is_below(a, b) && path_is_below(b, a);
}
