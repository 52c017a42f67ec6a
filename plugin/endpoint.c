/* SPDX-License-Identifier: Apache-2.0 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <stdlib.h>
#include <sys/file.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "driver/base/macro.h"
#include "plugin/endpoint.h"

int endpoint_parse(const char *endpoint, char **ret_path)
{
	const char *p = endpoint;
	struct sockaddr_un sa;
	char *copy;

	if (isempty(endpoint))
		return -EINVAL;
	if (strncmp(p, "unix://", 7) == 0)
		p += 7;
	else if (strncmp(p, "unix:", 5) == 0)
		p += 5;
	else if (strstr(p, "://"))
		return -EINVAL;
	if (p[0] != '/')
		return -EINVAL;
	if (strstr(p, "/../") || (strlen(p) >= 3 && strcmp(p + strlen(p) - 3, "/..") == 0))
		return -EINVAL;
	if (strlen(p) >= sizeof(sa.sun_path))
		return -ENAMETOOLONG;
	copy = strdup(p);
	if (!copy)
		return -ENOMEM;
	*ret_path = copy;
	return 0;
}

int endpoint_lock(const char *path, int *ret_fd)
{
	_cleanup_free_ char *lock_path = NULL;
	_cleanup_close_ int fd = -EBADF;
	struct stat st;

	if (asprintf(&lock_path, "%s.lock", path) < 0)
		return -ENOMEM;
	fd = open(lock_path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (fd < 0)
		return -errno;
	if (flock(fd, LOCK_EX | LOCK_NB) < 0)
		return errno == EWOULDBLOCK ? -EADDRINUSE : -errno;

	/* We hold the lock, so whatever socket is at path is stale: nobody serves it. */
	if (lstat(path, &st) == 0) {
		if (!S_ISSOCK(st.st_mode))
			return -EEXIST;
		if (unlink(path) < 0)
			return -errno;
	}
	*ret_fd = TAKE_FD(fd);
	return 0;
}

int endpoint_chmod(const char *path, mode_t mode)
{
	if (chmod(path, mode) < 0)
		return -errno;
	return 0;
}

static int bind_unix(int fd, const char *path)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };

	if (strlen(path) >= sizeof(sa.sun_path))
		return -ENAMETOOLONG;
	memcpy(sa.sun_path, path, strlen(path) + 1);
	if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0)
		return -errno;
	return 0;
}

int endpoint_listen(const char *path, mode_t mode, int *ret_fd)
{
	struct sockaddr_un sa;
	_cleanup_close_ int fd = -EBADF;
	_cleanup_free_ char *dir = NULL;
	_cleanup_free_ char *tmp = NULL;
	const char *slash = strrchr(path, '/');
	int r;

	if (!slash || strlen(path) >= sizeof(sa.sun_path))
		return -ENAMETOOLONG;
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	if (asprintf(&dir, "%.*s/.rbdcsi-sock.XXXXXX", (int)(slash - path), path) < 0)
		return -ENOMEM;
	if (strlen(dir) + 3 < sizeof(sa.sun_path)) {
		if (!mkdtemp(dir))
			return -errno;
		if (asprintf(&tmp, "%s/s", dir) < 0) {
			(void)rmdir(dir);
			return -ENOMEM;
		}
		r = bind_unix(fd, tmp);
		/* Listening before it gets its name: nobody who sees the path is refused. */
		if (r >= 0 && listen(fd, SOMAXCONN) < 0)
			r = -errno;
		if (r >= 0 && chmod(tmp, mode) < 0)
			r = -errno;
		if (r >= 0 && rename(tmp, path) < 0)
			r = -errno;
		if (r < 0)
			(void)unlink(tmp);
		(void)rmdir(dir);
	} else {
		/* No room for the private directory: the umask gives the mode at bind. */
		mode_t old = umask(~mode & 0777);

		r = bind_unix(fd, path);
		umask(old);
		if (r >= 0 && listen(fd, SOMAXCONN) < 0) {
			r = -errno;
			(void)unlink(path);
		}
	}
	if (r < 0)
		return r;
	*ret_fd = TAKE_FD(fd);
	return 0;
}

int endpoint_release(const char *path, int lock_fd)
{
	char lock_path[sizeof(((struct sockaddr_un *)0)->sun_path) + 8];

	if (lock_fd < 0)
		return -EBADF;
	(void)unlink(path);
	snprintf(lock_path, sizeof(lock_path), "%s.lock", path);
	(void)unlink(lock_path);
	return safe_close(lock_fd);
}
