/* SPDX-License-Identifier: Apache-2.0 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include "driver/base/log.h"
#include "driver/base/macro.h"
#include "driver/host/throttle.h"

#define UUID_LEN 36

bool throttle_pod_uid_valid(const char *uid)
{
	if (!uid || strnlen(uid, UUID_LEN + 1) != UUID_LEN)
		return false;
	for (size_t i = 0; i < UUID_LEN; i++) {
		char ch = uid[i];

		if (i == 8 || i == 13 || i == 18 || i == 23) {
			if (ch != '-')
				return false;
		} else if (!((ch >= '0' && ch <= '9') || (ch >= 'a' && ch <= 'f')))
			return false;
	}
	return true;
}

/* Opens the directory path (relative, '/'-separated, no "." or "..") beneath dir_fd, one
 * component at a time without following symlinks. -ENOENT, -ELOOP (a symlink), -ENOTDIR. */
static int open_beneath(int dir_fd, const char *path, int *ret_fd)
{
	_cleanup_free_ char *copy = strdup(path);
	_cleanup_close_ int fd = -1;
	char *save = NULL;
	int cur = dir_fd;

	if (!copy)
		return -ENOMEM;
	for (char *c = strtok_r(copy, "/", &save); c; c = strtok_r(NULL, "/", &save)) {
		int next = openat(cur, c, O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);

		if (next < 0) {
			int err = errno;
			struct stat st;

			/* O_PATH|O_NOFOLLOW|O_DIRECTORY on a symlink gives ENOTDIR: tell it. */
			if (err == ENOTDIR && fstatat(cur, c, &st, AT_SYMLINK_NOFOLLOW) == 0 &&
			    S_ISLNK(st.st_mode))
				return -ELOOP;
			return -err;
		}
		if (fd >= 0)
			close(fd);
		fd = next;
		cur = fd;
	}
	if (fd < 0)
		return -EINVAL;
	*ret_fd = TAKE_FD(fd);
	return 0;
}

/* Writes text to the control file name in the directory dir_fd (an O_PATH fd). */
static int write_control(int dir_fd, const char *name, const char *text)
{
	_cleanup_close_ int fd = -1;
	size_t len = strlen(text);
	ssize_t n;

	fd = openat(dir_fd, name, O_WRONLY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	n = write(fd, text, len);
	if (n < 0)
		return -errno;
	return (size_t)n == len ? 0 : -EIO;
}

/* The pod cgroup's candidates, relative to a hierarchy root, for uid u and u_ (with '_'). */
static int candidates(const char *u, const char *u_, char *ret[static 6])
{
	int n = 0;

#define ADD(...)                                        \
	do {                                            \
		if (asprintf(&ret[n], __VA_ARGS__) < 0) \
			goto fail;                      \
		n++;                                    \
	} while (0)
	ADD("kubepods/pod%s", u);
	ADD("kubepods/burstable/pod%s", u);
	ADD("kubepods/besteffort/pod%s", u);
	ADD("kubepods.slice/kubepods-pod%s.slice", u_);
	ADD("kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod%s.slice", u_);
	ADD("kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod%s.slice", u_);
#undef ADD
	return n;
fail:
	while (n > 0)
		free(ret[--n]);
	return -ENOMEM;
}

static void v2_value(char *buf, size_t size, const char *key, uint64_t v)
{
	if (v == 0)
		snprintf(buf, size, " %s=max", key);
	else
		snprintf(buf, size, " %s=%" PRIu64, key, v);
}

static int apply_v2(int dir_fd, dev_t dev, const struct throttle_limits *l)
{
	char rb[32], wb[32], ri[32], wi[32], text[192];

	v2_value(rb, sizeof(rb), "rbps", l->read_bps);
	v2_value(wb, sizeof(wb), "wbps", l->write_bps);
	v2_value(ri, sizeof(ri), "riops", l->read_iops);
	v2_value(wi, sizeof(wi), "wiops", l->write_iops);
	snprintf(text, sizeof(text), "%u:%u%s%s%s%s\n", major(dev), minor(dev), rb, wb, ri, wi);
	return write_control(dir_fd, "io.max", text);
}

int throttle_apply(const char *root, const char *pod_uid, dev_t dev,
                   const struct throttle_limits *limits, char **ret_cgroup)
{
	_cleanup_close_ int root_fd = -1, hier_fd = -1;
	char u_[UUID_LEN + 1];
	char *cand[6] = { NULL };
	int n, r = -ENOENT;

	if (!throttle_pod_uid_valid(pod_uid) || dev == 0 || !limits)
		return -EINVAL;
	root_fd = open(root ? root : THROTTLE_CGROUP_ROOT, O_PATH | O_DIRECTORY | O_CLOEXEC);
	if (root_fd < 0)
		return -errno;
	/* cgroup v1's blkio throttling is not hierarchical: a pod cgroup's rules do not reach
	 * the container cgroups below it, which the kubelet creates after NodePublish. */
	if (faccessat(root_fd, "cgroup.controllers", F_OK, AT_SYMLINK_NOFOLLOW) != 0)
		return faccessat(root_fd, "blkio", F_OK, 0) == 0 ? -EOPNOTSUPP : -ENOENT;
	hier_fd = dup(root_fd);
	if (hier_fd < 0)
		return -errno;
	memcpy(u_, pod_uid, sizeof(u_));
	for (char *p = u_; *p; p++)
		if (*p == '-')
			*p = '_';
	n = candidates(pod_uid, u_, cand);
	if (n < 0)
		return n;
	for (int i = 0; i < n; i++) {
		_cleanup_close_ int fd = -1;
		int k = open_beneath(hier_fd, cand[i], &fd);

		if (k == -ENOENT || k == -ENOTDIR)
			continue;
		r = k;
		if (k < 0)
			break;
		r = apply_v2(fd, dev, limits);
		if (r >= 0 && ret_cgroup) {
			*ret_cgroup = cand[i];
			cand[i] = NULL;
		}
		break;
	}
	for (int i = 0; i < n; i++)
		free(cand[i]);
	return r;
}
