/* SPDX-License-Identifier: Apache-2.0 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <libgen.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "driver/base/fileio.h"
#include "driver/base/log.h"
#include "driver/base/macro.h"

#define SYSFS_MAX 4096

static int read_fd_full(int fd, size_t max_size, char **ret_data, size_t *ret_size)
{
	_cleanup_free_ char *buf = NULL;
	size_t size = 0, alloc = 0;

	for (;;) {
		ssize_t n;

		if (size == alloc) {
			size_t want = alloc ? alloc * 2 : 512;
			char *p;

			if (alloc > max_size) /* read one byte past the limit to detect it */
				return -EFBIG;
			want = MIN(want, max_size + 1);
			p = realloc(buf, want + 1);
			if (!p)
				return -ENOMEM;
			buf = p;
			alloc = want;
		}
		n = read(fd, buf + size, alloc - size);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return negative_errno();
		}
		if (n == 0)
			break;
		size += (size_t)n;
		if (size > max_size)
			return -EFBIG;
	}
	if (!buf) {
		buf = malloc(1);
		if (!buf)
			return -ENOMEM;
	}
	buf[size] = 0;
	*ret_data = TAKE_PTR(buf);
	if (ret_size)
		*ret_size = size;
	return 0;
}

int fileio_read_full(const char *path, size_t max_size, char **ret_data, size_t *ret_size)
{
	_cleanup_close_ int fd = -EBADF;
	struct stat st;

	if (isempty(path))
		return -EINVAL;
	fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
	if (fd < 0)
		return negative_errno();
	if (fstat(fd, &st) < 0)
		return negative_errno();
	if (S_ISDIR(st.st_mode))
		return -EISDIR;
	if (S_ISREG(st.st_mode) && (uint64_t)st.st_size > max_size)
		return -EFBIG;
	return read_fd_full(fd, max_size, ret_data, ret_size);
}

static int write_all(int fd, const void *data, size_t size)
{
	size_t done = 0;

	while (done < size) {
		ssize_t n = write(fd, (const char *)data + done, size - done);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			return negative_errno();
		}
		done += (size_t)n;
	}
	return 0;
}

/* Gives the temp file its mode and content, makes it durable, and moves it over path. */
static int fill_and_rename(int fd, const char *tmp, const char *path, const void *data, size_t size,
                           mode_t mode)
{
	int r;

	if (fchmod(fd, mode) < 0)
		return negative_errno();
	r = write_all(fd, data, size);
	if (r < 0)
		return r;
	if (fsync(fd) < 0)
		return negative_errno();
	if (rename(tmp, path) < 0)
		return negative_errno();
	return 0;
}

int fileio_write_atomic(const char *path, const void *data, size_t size, mode_t mode)
{
	_cleanup_free_ char *dir_copy = NULL, *base_copy = NULL, *tmp = NULL;
	_cleanup_close_ int fd = -EBADF, dfd = -EBADF;
	const char *dir, *base;
	int r;

	if (isempty(path) || (!data && size > 0))
		return -EINVAL;
	dir_copy = strdup(path);
	base_copy = strdup(path);
	if (!dir_copy || !base_copy)
		return -ENOMEM;
	dir = dirname(dir_copy);
	base = basename(base_copy);
	if (isempty(base) || strcmp(base, "/") == 0 || strcmp(base, ".") == 0 ||
	    strcmp(base, "..") == 0)
		return -EINVAL;
	if (asprintf(&tmp, "%s/.#%s.XXXXXX", dir, base) < 0)
		return -ENOMEM;

	dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd < 0)
		return negative_errno();
	fd = mkostemp(tmp, O_CLOEXEC);
	if (fd < 0)
		return negative_errno();
	r = fill_and_rename(fd, tmp, path, data, size, mode);
	if (r < 0) {
		(void)unlink(tmp);
		return log_debug_errno(r, "Failed to write %s: %m", path);
	}
	if (fsync(dfd) < 0)
		return negative_errno();
	return 0;
}

int fileio_read_sysfs(const char *path, char **ret_value)
{
	_cleanup_close_ int fd = -EBADF;
	char *data;
	size_t size;
	int r;

	if (isempty(path))
		return -EINVAL;
	fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
	if (fd < 0)
		return negative_errno();
	r = read_fd_full(fd, SYSFS_MAX, &data, &size);
	if (r < 0)
		return r;
	while (size > 0 && (data[size - 1] == '\n' || data[size - 1] == '\r'))
		data[--size] = 0;
	*ret_value = data;
	return 0;
}

int fileio_read_sysfs_u64(const char *path, uint64_t *ret_value)
{
	_cleanup_free_ char *s = NULL;
	unsigned long long v;
	char *end;
	int r;

	r = fileio_read_sysfs(path, &s);
	if (r < 0)
		return r;
	if (isempty(s) || s[0] == '-')
		return -EINVAL;
	errno = 0;
	v = strtoull(s, &end, 0);
	if (errno != 0 || *end != 0)
		return -EINVAL;
	*ret_value = (uint64_t)v;
	return 0;
}

int fileio_write_sysfs(const char *path, const char *value, size_t size)
{
	_cleanup_close_ int fd = -EBADF;
	ssize_t n;

	if (isempty(path) || !value)
		return -EINVAL;
	fd = open(path, O_WRONLY | O_TRUNC | O_CLOEXEC | O_NOCTTY | O_NOFOLLOW);
	if (fd < 0)
		return negative_errno();
	do
		n = write(fd, value, size);
	while (n < 0 && errno == EINTR);
	if (n < 0)
		return negative_errno();
	if ((size_t)n != size)
		return -EIO;
	return 0;
}

int fileio_mkdir_p(const char *path, mode_t mode)
{
	_cleanup_free_ char *p = NULL;
	struct stat st;

	if (isempty(path))
		return -EINVAL;
	p = strdup(path);
	if (!p)
		return -ENOMEM;
	for (char *s = p + 1;; s++) {
		bool end = *s == 0;

		if (*s != '/' && !end)
			continue;
		*s = 0;
		if (mkdir(p, mode) < 0) {
			if (errno != EEXIST)
				return negative_errno();
			if (stat(p, &st) < 0)
				return negative_errno();
			if (!S_ISDIR(st.st_mode))
				return -ENOTDIR;
		}
		if (end)
			break;
		*s = '/';
	}
	return 0;
}
