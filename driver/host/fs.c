/* SPDX-License-Identifier: Apache-2.0 */
#include <blkid/blkid.h>
#include <endian.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include "driver/base/exec.h"
#include "driver/base/failpoint.h"
#include "driver/base/fileio.h"
#include "driver/base/log.h"
#include "driver/base/macro.h"
#include "driver/host/blockdev.h"
#include "driver/host/fs.h"
#include "driver/host/options.h"
#include "driver/host/reason.h"

#define ARGS_MAX 64

/* Lines of a tool's stderr kept in a failure reason. */
#define REASON_LINES_MAX 3

bool fs_type_supported(const char *fstype)
{
	return fstype && (strcmp(fstype, "ext4") == 0 || strcmp(fstype, "xfs") == 0);
}

uint64_t fs_min_size(const char *fstype)
{
	return fstype && strcmp(fstype, "xfs") == 0 ? FS_XFS_MIN_SIZE : 0;
}

/*
 * Why a tool failed, from its own words: the first REASON_LINES_MAX non-empty lines of stderr
 * (else stdout) before any usage text ("Usage: mkfs.xfs ..." follows mkfs.xfs's real reason and
 * would bury it), joined with "; ". NULL when the tool said nothing useful.
 */
static char *tool_reason(const struct exec_result *res, const char *what)
{
	const char *text = !isempty(res->err) ? res->err : res->out;
	size_t wlen = strlen(what);
	char lines[1024] = "";
	size_t used = 0;
	unsigned n = 0;
	char *s = NULL;

	for (const char *p = text; p && *p && n < REASON_LINES_MAX;) {
		const char *end = strchrnul(p, '\n');
		size_t len = (size_t)(end - p);

		while (len > 0 && (p[len - 1] == ' ' || p[len - 1] == '\t' || p[len - 1] == '\r'))
			len--;
		while (len > 0 && (*p == ' ' || *p == '\t')) {
			p++;
			len--;
		}
		if (len >= 6 && strncasecmp(p, "usage:", 6) == 0)
			break;
		/* e2fsprogs' version banner ("resize2fs 1.47.0 (5-Feb-2023)") says nothing. */
		if (len > wlen + 1 && strncmp(p, what, wlen) == 0 && p[wlen] == ' ' &&
		    p[wlen + 1] >= '0' && p[wlen + 1] <= '9')
			len = 0;
		if (len > 0) {
			int k = snprintf(lines + used, sizeof(lines) - used, "%s%.*s",
			                 n ? "; " : "", (int)len, p);

			if (k < 0 || (size_t)k >= sizeof(lines) - used)
				break;
			used += (size_t)k;
			n++;
		}
		p = *end ? end + 1 : end;
	}
	if (n == 0 || res->signal)
		return NULL;
	if (asprintf(&s, "%s exited with status %d: %s", what, res->exit_status, lines) < 0)
		return NULL;
	return s;
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
		char *why = tool_reason(&res, argv[0]);

		reason_take(ret_reason, why ? why : exec_result_describe(&res, argv[0]));
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

/*
 * The node-stage:during-mkfs failpoint: a thread that kills the process (failpoint()) as soon
 * as the thread that runs mkfs has a child that became mkfs (its comm), i.e. while mkfs runs.
 * Test-only; started only when that failpoint is armed.
 */
struct mkfs_watch {
	pid_t tid;
};

static void *mkfs_watch_thread(void *p)
{
	struct mkfs_watch w = *(struct mkfs_watch *)p;
	char path[64];

	free(p);
	snprintf(path, sizeof(path), "/proc/self/task/%d/children", (int)w.tid);
	for (int i = 0; i < 60000; i++) {
		_cleanup_free_ char *kids = NULL;

		if (fileio_read_full(path, 4096, &kids, NULL) == 0) {
			for (char *k = kids; *k;) {
				_cleanup_free_ char *comm = NULL;
				char cpath[64];
				long pid = strtol(k, &k, 10);

				if (pid <= 0)
					break;
				snprintf(cpath, sizeof(cpath), "/proc/%ld/comm", pid);
				if (fileio_read_full(cpath, 64, &comm, NULL) == 0 &&
				    strncmp(comm, "mkfs", 4) == 0)
					failpoint("node-stage:during-mkfs");
				while (*k == ' ')
					k++;
			}
		}
		(void)poll(NULL, 0, 1);
	}
	return NULL;
}

static void mkfs_watch_start(void)
{
	struct mkfs_watch *w;
	pthread_t t;

	if (!failpoint_armed("node-stage:during-mkfs"))
		return;
	w = malloc(sizeof(*w));
	if (!w)
		return;
	w->tid = gettid();
	if (pthread_create(&t, NULL, mkfs_watch_thread, w) != 0) {
		free(w);
		return;
	}
	(void)pthread_detach(t);
}

int fs_format(const char *device, const char *fstype, const char *extra_options,
              uint64_t timeout_usec, char **ret_reason)
{
	return fs_format_flags(device, fstype, extra_options, 0, timeout_usec, ret_reason);
}

int fs_format_flags(const char *device, const char *fstype, const char *extra_options,
                    unsigned flags, uint64_t timeout_usec, char **ret_reason)
{
	_cleanup_free_ char *types = NULL, *extra = NULL;
	bool over_own = flags & FS_FORMAT_OVER_OWN;
	char *argv[ARGS_MAX];
	uint64_t size = 0;
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
		if (over_own)
			argv[n++] = (char *)"-F";
	} else {
		argv[n++] = (char *)"mkfs.xfs";
		argv[n++] = (char *)"-q";
		argv[n++] = (char *)"-K";
		if (over_own)
			argv[n++] = (char *)"-f";
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

	/* Last look before writing: any signature at all means "not ours to format" (unless
	 * it is the output of our own interrupted mkfs, which only the caller can know). */
	if (!over_own) {
		r = blockdev_probe(device, &types);
		if (r < 0) {
			reason_set(ret_reason, "cannot probe %s: %s", device, strerror(-r));
			return r;
		}
		if (!blockdev_types_blank(types)) {
			reason_set(ret_reason, "device carries '%s', not '%s': refusing to format",
			           types, fstype);
			return -EMEDIUMTYPE;
		}
	}
	r = blockdev_get_size(device, &size);
	if (r < 0) {
		reason_set(ret_reason, "cannot read the size of %s: %s", device, strerror(-r));
		return r;
	}
	if (size < fs_min_size(fstype)) {
		reason_set(ret_reason,
		           "the volume has %llu bytes, below the %llu bytes (%llu MiB) mkfs.%s "
		           "needs: expand it, or use ext4",
		           (unsigned long long)size, (unsigned long long)fs_min_size(fstype),
		           (unsigned long long)(fs_min_size(fstype) >> 20), fstype);
		return -EMEDIUMTYPE;
	}
	mkfs_watch_start();
	r = run_tool(argv, timeout_usec, NULL, ret_reason);
	if (r < 0)
		return log_debug_errno(r, "Formatting %s as %s failed: %m", device, fstype);
	log_debug("Formatted %s as %s", device, fstype);
	return 0;
}

DEFINE_TRIVIAL_CLEANUP_FUNC(blkid_probe, blkid_free_probe)

int fs_wipe_own(const char *device)
{
	_cleanup_(blkid_free_probep) blkid_probe pr = NULL;
	_cleanup_close_ int fd = -EBADF;
	int r;

	if (isempty(device) || device[0] != '/')
		return -EINVAL;
	/* O_EXCL: the kernel refuses while the device is mounted or claimed. */
	fd = open(device, O_RDWR | O_EXCL | O_CLOEXEC | O_NOCTTY);
	if (fd < 0)
		return negative_errno();
	pr = blkid_new_probe();
	if (!pr)
		return -ENOMEM;
	if (blkid_probe_set_device(pr, fd, 0, 0) < 0)
		return -EIO;
	blkid_probe_enable_superblocks(pr, 1);
	blkid_probe_set_superblocks_flags(pr, BLKID_SUBLKS_MAGIC | BLKID_SUBLKS_BADCSUM);
	blkid_probe_enable_partitions(pr, 1);
	blkid_probe_set_partitions_flags(pr, BLKID_PARTS_MAGIC | BLKID_PARTS_FORCE_GPT);
	/* As wipefs -a: erase each signature found, probing again from there. */
	while ((r = blkid_do_probe(pr)) == 0)
		if (blkid_do_wipe(pr, 0) < 0)
			return -EIO;
	if (r < 0)
		return -EIO;
	if (fsync(fd) < 0)
		return negative_errno();
	log_debug("Wiped the signatures of an interrupted mkfs from %s", device);
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
