/* SPDX-License-Identifier: Apache-2.0 */
#include <blkid/blkid.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/fs.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "driver/base/log.h"
#include "driver/base/macro.h"
#include "driver/host/blockdev.h"

#define TYPES_MAX 512

DEFINE_TRIVIAL_CLEANUP_FUNC(blkid_probe, blkid_free_probe)

static int append_type(char *buf, size_t size, const char *type)
{
	size_t len = strlen(buf);

	/* A signature seen twice (primary and backup superblock) is listed once. */
	for (const char *p = buf; *p;) {
		const char *comma = strchrnul(p, ',');

		if ((size_t)(comma - p) == strlen(type) && strncmp(p, type, strlen(type)) == 0)
			return 0;
		p = *comma ? comma + 1 : comma;
	}
	if (len + strlen(type) + 2 > size)
		return -E2BIG;
	snprintf(buf + len, size - len, "%s%s", len ? "," : "", type);
	return 0;
}

int blockdev_probe(const char *path, char **ret_types)
{
	_cleanup_(blkid_free_probep) blkid_probe pr = NULL;
	_cleanup_close_ int fd = -EBADF;
	char types[TYPES_MAX] = "";
	char *s;
	int r;

	if (isempty(path))
		return -EINVAL;
	/* Open ourselves, O_CLOEXEC, and read-only: probing must never write. */
	fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
	if (fd < 0)
		return negative_errno();
	pr = blkid_new_probe();
	if (!pr)
		return -ENOMEM;
	r = blkid_probe_set_device(pr, fd, 0, 0);
	if (r < 0)
		return log_debug_errno(-EIO, "libblkid cannot use %s", path);

	blkid_probe_enable_superblocks(pr, 1);
	blkid_probe_set_superblocks_flags(pr, BLKID_SUBLKS_TYPE | BLKID_SUBLKS_USAGE |
	                                              BLKID_SUBLKS_MAGIC | BLKID_SUBLKS_BADCSUM);
	blkid_probe_enable_partitions(pr, 1);
	blkid_probe_set_partitions_flags(pr, BLKID_PARTS_MAGIC | BLKID_PARTS_FORCE_GPT);
	/* Low-level probing: every signature, like wipefs, not just the "best" one. */
	for (;;) {
		const char *value = NULL;

		r = blkid_do_probe(pr);
		if (r == 1)
			break; /* nothing more */
		if (r < 0)
			return log_debug_errno(-EIO, "libblkid failed to probe %s", path);
		if (blkid_probe_lookup_value(pr, "TYPE", &value, NULL) == 0 && !isempty(value))
			r = append_type(types, sizeof(types), value);
		else if (blkid_probe_lookup_value(pr, "PTTYPE", &value, NULL) == 0 &&
		         !isempty(value))
			r = append_type(types, sizeof(types), value);
		else
			r = append_type(types, sizeof(types), "unknown");
		if (r < 0)
			break; /* enough to know it is not blank */
	}
	s = strdup(types[0] ? types : BLOCKDEV_TYPE_NONE);
	if (!s)
		return -ENOMEM;
	log_debug("Probed %s: %s", path, s);
	*ret_types = s;
	return 0;
}

bool blockdev_types_blank(const char *types)
{
	return types && strcmp(types, BLOCKDEV_TYPE_NONE) == 0;
}

int blockdev_get_size(const char *path, uint64_t *ret_size)
{
	_cleanup_close_ int fd = -EBADF;
	struct stat st;
	uint64_t size;

	if (isempty(path))
		return -EINVAL;
	fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
	if (fd < 0)
		return negative_errno();
	if (fstat(fd, &st) < 0)
		return negative_errno();
	if (S_ISREG(st.st_mode)) {
		*ret_size = (uint64_t)st.st_size;
		return 0;
	}
	if (!S_ISBLK(st.st_mode))
		return -ENOTBLK;
	if (ioctl(fd, BLKGETSIZE64, &size) < 0)
		return negative_errno();
	*ret_size = size;
	return 0;
}
