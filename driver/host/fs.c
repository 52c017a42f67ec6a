/* SPDX-License-Identifier: Apache-2.0 */
#include <endian.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include "driver/base/exec.h"
#include "driver/base/log.h"
#include "driver/base/macro.h"
#include "driver/host/blockdev.h"
#include "driver/host/fs.h"
#include "driver/host/options.h"
#include "driver/host/reason.h"

#define ARGS_MAX 64

bool fs_type_supported(const char *fstype)
{
	return fstype && (strcmp(fstype, "ext4") == 0 || strcmp(fstype, "xfs") == 0);
}

/* Runs argv; 0 on exit status 0, else -EIO with a reason (or -ETIMEDOUT/-ENOENT). */
static int run_tool(char *const argv[], uint64_t timeout_usec, struct exec_result *ret_result,
                    char **ret_reason)
{
	struct exec_options opts = { .timeout_usec =
		                             timeout_usec ? timeout_usec : FS_TIMEOUT_USEC };
	struct exec_result res;
	int r;

	r = exec_run(argv, &opts, &res);
	if (r == -ETIMEDOUT) {
		reason_set(ret_reason, "%s timed out after %llus", argv[0],
		           (unsigned long long)(opts.timeout_usec / USEC_PER_SEC));
		return r;
	}
	if (r < 0) {
		reason_set(ret_reason, "cannot run %s: %s", argv[0], strerror(-r));
		return r;
	}
	if (!exec_result_ok(&res)) {
		reason_take(ret_reason, exec_result_describe(&res, argv[0]));
		if (ret_result)
			*ret_result = res;
		else
			exec_result_done(&res);
		return -EIO;
	}
	exec_result_done(&res);
	return 0;
}

/*
 * Splits s in place on blanks and appends the words to argv, each checked against the
 * allowlist of fstype's mkfs (driver/host/options.h): only options that shape the new
 * filesystem, none that reads or writes a file of the node (mke2fs -d, mkfs.xfs -p, ...).
 */
static int split_options(const char *fstype, char *s, char **argv, size_t *n, char **ret_reason)
{
	return options_mkfs_split(fstype, s, argv, ARGS_MAX - 2, n, ret_reason);
}

int fs_format(const char *device, const char *fstype, const char *extra_options,
              uint64_t timeout_usec, char **ret_reason)
{
	_cleanup_free_ char *types = NULL, *extra = NULL;
	char *argv[ARGS_MAX];
	size_t n = 0;
	int r;

	if (isempty(device) || device[0] != '/')
		return -EINVAL;
	if (!fs_type_supported(fstype)) {
		reason_set(ret_reason, "unsupported filesystem type '%s'", strempty(fstype));
		return -EINVAL;
	}
	if (extra_options && strlen(extra_options) > FS_MKFS_OPTIONS_MAX) {
		reason_set(ret_reason, "mkfs options longer than %d bytes", FS_MKFS_OPTIONS_MAX);
		return -EINVAL;
	}

	if (strcmp(fstype, "ext4") == 0) {
		argv[n++] = (char *)"mkfs.ext4";
		argv[n++] = (char *)"-q";
		argv[n++] = (char *)"-m0";
		argv[n++] = (char *)"-E";
		argv[n++] = (char *)"nodiscard,lazy_itable_init=1,lazy_journal_init=1";
	} else {
		argv[n++] = (char *)"mkfs.xfs";
		argv[n++] = (char *)"-q";
		argv[n++] = (char *)"-K";
	}
	if (extra_options) {
		extra = strdup(extra_options);
		if (!extra)
			return -ENOMEM;
		r = split_options(fstype, extra, argv, &n, ret_reason);
		if (r < 0)
			return r;
	}
	argv[n++] = (char *)device;
	argv[n] = NULL;

	/* Last look before writing: any signature at all means "not ours to format". */
	r = blockdev_probe(device, &types);
	if (r < 0) {
		reason_set(ret_reason, "cannot probe %s: %s", device, strerror(-r));
		return r;
	}
	if (!blockdev_types_blank(types)) {
		reason_set(ret_reason, "device carries '%s', not '%s': refusing to format", types,
		           fstype);
		return -EMEDIUMTYPE;
	}
	r = run_tool(argv, timeout_usec, NULL, ret_reason);
	if (r < 0)
		return log_debug_errno(r, "Formatting %s as %s failed: %m", device, fstype);
	log_debug("Formatted %s as %s", device, fstype);
	return 0;
}

int fs_grow(const char *device, const char *fstype, const char *mountpoint, uint64_t timeout_usec,
            char **ret_reason)
{
	struct exec_result res = { 0 };
	int r;

	if (isempty(device))
		return -EINVAL;
	if (!fs_type_supported(fstype)) {
		reason_set(ret_reason, "unsupported filesystem type '%s'", strempty(fstype));
		return -EINVAL;
	}
	if (strcmp(fstype, "xfs") == 0) {
		char *argv[] = { (char *)"xfs_growfs", (char *)"-d", (char *)mountpoint, NULL };

		if (isempty(mountpoint)) {
			reason_set(ret_reason, "xfs can only grow while mounted");
			return -EINVAL;
		}
		return run_tool(argv, timeout_usec, NULL, ret_reason);
	}

	if (isempty(mountpoint)) {
		/* resize2fs insists on a freshly checked filesystem when it is not mounted.
		 * -p (preen) repairs only what is safe without a human, as at boot, and exits 4
		 * otherwise; it exits 1 when it corrected something, which is fine here. */
		char *fsck[] = { (char *)"e2fsck", (char *)"-f", (char *)"-p", (char *)device,
			         NULL };

		_cleanup_free_ char *why = NULL;

		r = run_tool(fsck, timeout_usec, &res, &why);
		if (r == -EIO && res.exit_status == 1 && res.signal == 0)
			r = 0;
		exec_result_done(&res);
		if (r < 0) {
			reason_take(ret_reason, TAKE_PTR(why));
			return r;
		}
	}

	char *argv[] = { (char *)"resize2fs", (char *)device, NULL };
	r = run_tool(argv, timeout_usec, &res, ret_reason);
	if (r == -EIO && res.err && strstr(res.err, "Permission denied"))
		r = -EPERM; /* online resize needs CAP_SYS_RESOURCE */
	exec_result_done(&res);
	return r;
}

/* Superblock fields (little-endian ext4, big-endian xfs), from the on-disk formats. */
#define EXT4_SB_OFFSET      1024
#define EXT4_SB_MAGIC       0xEF53
#define EXT4_BLOCKS_LO      0x04
#define EXT4_LOG_BLOCK_SIZE 0x18
#define EXT4_MAGIC          0x38
#define EXT4_INCOMPAT       0x60
#define EXT4_BLOCKS_HI      0x150
#define EXT4_INCOMPAT_64BIT 0x80
#define XFS_SB_MAGIC        0x58465342 /* "XFSB" */
#define XFS_BLOCKSIZE       0x04
#define XFS_DBLOCKS         0x08
#define SB_READ             512

static uint32_t le32_at(const uint8_t *p)
{
	uint32_t v;

	memcpy(&v, p, sizeof(v));
	return le32toh(v);
}

int fs_get_size(const char *device, const char *fstype, uint64_t *ret_size)
{
	_cleanup_close_ int fd = -EBADF;
	uint8_t sb[SB_READ];
	bool ext4;
	ssize_t n;
	uint64_t size;

	if (!fs_type_supported(fstype))
		return -EMEDIUMTYPE;
	ext4 = strcmp(fstype, "ext4") == 0;
	fd = open(device, O_RDONLY | O_CLOEXEC | O_NOCTTY);
	if (fd < 0)
		return -errno;
	n = pread(fd, sb, sizeof(sb), ext4 ? EXT4_SB_OFFSET : 0);
	if (n < 0)
		return -errno;
	if (n != (ssize_t)sizeof(sb))
		return -EIO;
	if (ext4) {
		uint32_t log = le32_at(sb + EXT4_LOG_BLOCK_SIZE);
		uint64_t blocks = le32_at(sb + EXT4_BLOCKS_LO);

		if ((uint16_t)(sb[EXT4_MAGIC] | sb[EXT4_MAGIC + 1] << 8) != EXT4_SB_MAGIC ||
		    log > 6)
			return -EMEDIUMTYPE;
		if (le32_at(sb + EXT4_INCOMPAT) & EXT4_INCOMPAT_64BIT)
			blocks |= (uint64_t)le32_at(sb + EXT4_BLOCKS_HI) << 32;
		size = blocks << (10 + log);
	} else {
		uint32_t magic, bsize;
		uint64_t dblocks;

		memcpy(&magic, sb, sizeof(magic));
		memcpy(&bsize, sb + XFS_BLOCKSIZE, sizeof(bsize));
		memcpy(&dblocks, sb + XFS_DBLOCKS, sizeof(dblocks));
		bsize = be32toh(bsize);
		if (be32toh(magic) != XFS_SB_MAGIC || bsize < 512 || bsize > 65536)
			return -EMEDIUMTYPE;
		size = be64toh(dblocks) * bsize;
	}
	*ret_size = size;
	return 0;
}

int fs_get_stats(const char *path, struct fs_stats *ret_stats)
{
	struct statvfs sv;
	uint64_t frsize;

	if (isempty(path))
		return -EINVAL;
	if (statvfs(path, &sv) < 0)
		return negative_errno();
	frsize = sv.f_frsize ? sv.f_frsize : sv.f_bsize;
	*ret_stats = (struct fs_stats){
		.total_bytes = (uint64_t)sv.f_blocks * frsize,
		.available_bytes = (uint64_t)sv.f_bavail * frsize,
		.used_bytes = (uint64_t)(sv.f_blocks - sv.f_bfree) * frsize,
		.total_inodes = sv.f_files,
		.free_inodes = sv.f_ffree,
		.used_inodes = sv.f_files - sv.f_ffree,
		.read_only = (sv.f_flag & ST_RDONLY) != 0,
	};
	return 0;
}
