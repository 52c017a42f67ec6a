/* SPDX-License-Identifier: Apache-2.0 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/loop.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include "driver/base/fileio.h"
#include "driver/base/log.h"
#include "driver/base/macro.h"
#include "driver/host/loop.h"

#define ATTACH_ATTEMPTS 64

DEFINE_TRIVIAL_CLEANUP_FUNC(DIR *, closedir)

/* "/dev/loopN" -> N; -EINVAL for anything else. */
static int loop_number(const char *device)
{
	const char *p;
	char *end;
	long n;

	if (!device || strncmp(device, "/dev/loop", 9) != 0)
		return -EINVAL;
	p = device + 9;
	if (*p < '0' || *p > '9')
		return -EINVAL;
	errno = 0;
	n = strtol(p, &end, 10);
	if (errno != 0 || *end != 0 || n < 0 || n > 1 << 20)
		return -EINVAL;
	return (int)n;
}

static int configure(int loop_fd, int file_fd, const char *backing_file, bool read_only)
{
	struct loop_config config = {
		.fd = (unsigned)file_fd,
		.info.lo_flags = read_only ? LO_FLAGS_READ_ONLY : 0,
	};

	snprintf((char *)config.info.lo_file_name, sizeof(config.info.lo_file_name), "%s",
	         backing_file);
	if (ioctl(loop_fd, LOOP_CONFIGURE, &config) == 0)
		return 0;
	if (errno != EINVAL && errno != ENOTTY)
		return negative_errno();

	/* Kernel before 5.8: two steps. */
	if (ioctl(loop_fd, LOOP_SET_FD, file_fd) < 0)
		return negative_errno();
	if (ioctl(loop_fd, LOOP_SET_STATUS64, &config.info) < 0) {
		int r = negative_errno();

		(void)ioctl(loop_fd, LOOP_CLR_FD, 0);
		return r;
	}
	return 0;
}

int loop_attach(const char *backing_file, bool read_only, char **ret_device)
{
	_cleanup_close_ int file_fd = -EBADF, ctl_fd = -EBADF;
	int r = -EBUSY;

	if (isempty(backing_file) || backing_file[0] != '/')
		return -EINVAL;
	file_fd = open(backing_file, (read_only ? O_RDONLY : O_RDWR) | O_CLOEXEC | O_NOCTTY);
	if (file_fd < 0)
		return log_debug_errno(negative_errno(), "Cannot open %s: %m", backing_file);
	ctl_fd = open("/dev/loop-control", O_RDWR | O_CLOEXEC);
	if (ctl_fd < 0)
		return errno == ENOENT ? -ENODEV : negative_errno();

	for (int attempt = 0; attempt < ATTACH_ATTEMPTS; attempt++) {
		_cleanup_close_ int loop_fd = -EBADF;
		char device[32];
		int n;

		n = ioctl(ctl_fd, LOOP_CTL_GET_FREE);
		if (n < 0)
			return log_debug_errno(negative_errno(), "LOOP_CTL_GET_FREE failed: %m");
		snprintf(device, sizeof(device), "/dev/loop%d", n);
		loop_fd = open(device, (read_only ? O_RDONLY : O_RDWR) | O_CLOEXEC);
		if (loop_fd < 0) {
			r = negative_errno();
			/* devtmpfs creates the node synchronously; give it one more try. */
			if (r == -ENOENT || r == -ENXIO)
				continue;
			return log_debug_errno(r, "Cannot open %s: %m", device);
		}
		r = configure(loop_fd, file_fd, backing_file, read_only);
		if (r == -EBUSY) {
			/* Someone else took it between GET_FREE and CONFIGURE. */
			log_debug("%s was taken by someone else, retrying", device);
			continue;
		}
		if (r < 0)
			return log_debug_errno(r, "Cannot attach %s to %s: %m", backing_file,
			                       device);

		*ret_device = strdup(device);
		if (!*ret_device) {
			(void)ioctl(loop_fd, LOOP_CLR_FD, 0);
			return -ENOMEM;
		}
		log_debug("Attached %s to %s%s", backing_file, device, read_only ? " (ro)" : "");
		return 0;
	}
	return log_debug_errno(r, "No free loop device for %s: %m", backing_file);
}

int loop_get_backing_file(const char *device, char **ret_path)
{
	char path[96];
	char *s;
	int n, r;

	n = loop_number(device);
	if (n < 0)
		return n;
	snprintf(path, sizeof(path), "/sys/block/loop%d/loop/backing_file", n);
	r = fileio_read_sysfs(path, &s);
	if (r == -ENOENT)
		return -ENXIO;
	if (r < 0)
		return r;
	*ret_path = s;
	return 0;
}

int loop_detach(const char *device)
{
	_cleanup_close_ int fd = -EBADF;
	_cleanup_free_ char *backing = NULL;
	int r;

	if (loop_number(device) < 0)
		return -EINVAL;
	r = loop_get_backing_file(device, &backing);
	if (r == -ENXIO)
		return 0; /* not attached */
	if (r < 0)
		return r;

	/* O_EXCL fails with EBUSY while a filesystem (or anyone exclusive) holds the device. */
	fd = open(device, O_RDONLY | O_CLOEXEC | O_EXCL);
	if (fd < 0) {
		r = negative_errno();
		if (r == -ENOENT || r == -ENXIO)
			return 0;
		return log_debug_errno(r, "Cannot open %s exclusively: %m", device);
	}
	if (ioctl(fd, LOOP_CLR_FD, 0) < 0) {
		r = negative_errno();
		if (r == -ENXIO)
			return 0;
		return log_debug_errno(r, "LOOP_CLR_FD on %s failed: %m", device);
	}
	fd = safe_close(fd);

	/* With other openers the kernel only sets autoclear and returns 0. The detach happens
	 * when we close (asynchronously, in the kernel's release path), so look again. */
	for (int i = 0; i < 100; i++) {
		_cleanup_free_ char *still = NULL;

		if (loop_get_backing_file(device, &still) == -ENXIO) {
			log_debug("Detached %s (was %s)", device, backing);
			return 0;
		}
		(void)poll(NULL, 0, 10);
	}
	return log_debug_errno(-EBUSY, "%s is still open elsewhere; it detaches on last close",
	                       device);
}

int loop_find_by_backing_file(const char *backing_file, char **ret_device)
{
	_cleanup_(closedirp) DIR *d = NULL;
	struct dirent *de;

	if (isempty(backing_file) || backing_file[0] != '/')
		return -EINVAL;
	d = opendir("/sys/block");
	if (!d)
		return negative_errno();
	while ((de = readdir(d))) {
		_cleanup_free_ char *have = NULL;
		char device[300];
		int n;

		if (strncmp(de->d_name, "loop", 4) != 0)
			continue;
		snprintf(device, sizeof(device), "/dev/%s", de->d_name);
		n = loop_number(device);
		if (n < 0)
			continue;
		if (loop_get_backing_file(device, &have) < 0)
			continue;
		if (strcmp(have, backing_file) == 0) {
			char *s = strdup(device);

			if (!s)
				return -ENOMEM;
			*ret_device = s;
			return 0;
		}
	}
	return -ENOENT;
}

int loop_refresh_capacity(const char *device)
{
	_cleanup_close_ int fd = -EBADF;

	if (loop_number(device) < 0)
		return -EINVAL;
	fd = open(device, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return negative_errno();
	if (ioctl(fd, LOOP_SET_CAPACITY, 0) < 0)
		return log_debug_errno(negative_errno(), "LOOP_SET_CAPACITY on %s failed: %m",
		                       device);
	return 0;
}
