/* SPDX-License-Identifier: Apache-2.0 */
/* Tests of driver/host/fs.c: format only blank devices, grow, statistics (root: loop, mount). */
#include "unit/driver/host/host_test.h"
#include "driver/host/blockdev.h"
#include "driver/host/fs.h"
#include "driver/host/mount.h"

#define MiB (1024ULL * 1024ULL)

/* A loop device on a sparse file of size bytes, prepared by the shell-free command cmd. */
static char *loop_on(void **state, const char *name, uint64_t size)
{
	char file[PATH_MAX];
	char *dev = NULL;

	ht_sparse_file(state, name, size, file, sizeof(file));
	assert_int_equal(loop_attach(file, false, &dev), 0);
	return dev;
}

/* Prepares a loop device with cmd ("@" stands for the device), then checks the refusal. */
static void refuses(void **state, const char *name, const char *fstype, const char *want_types,
                    const char *const *cmd)
{
	_cleanup_free_ char *dev = loop_on(state, name, 64 * MiB), *reason = NULL, *types = NULL;
	char *argv[16];
	char expect[256];
	struct exec_result res;
	size_t n = 0;

	for (; n < 15 && cmd[n]; n++)
		argv[n] = strcmp(cmd[n], "@") == 0 ? dev : (char *)cmd[n];
	argv[n] = NULL;
	assert_int_equal(exec_run(argv, NULL, &res), 0);
	assert_int_equal(res.exit_status, 0);
	exec_result_done(&res);
	assert_int_equal(fs_format(dev, fstype, NULL, 0, &reason), -EMEDIUMTYPE);
	snprintf(expect, sizeof(expect), "device carries '%s', not '%s': refusing to format",
	         want_types, fstype);
	assert_string_equal(reason, expect);
	/* Untouched. */
	assert_int_equal(blockdev_probe(dev, &types), 0);
	assert_string_equal(types, want_types);
	assert_int_equal(loop_detach(dev), 0);
}

static void test_fs__format_refuses_swap(void **state)
{
	REQUIRE_ROOT();
	refuses(state, "swap.img", "ext4", "swap", (const char *const[]){ "mkswap", "@", NULL });
}

static void test_fs__format_refuses_existing_ext4(void **state)
{
	REQUIRE_ROOT();
	/* Even the same type: re-formatting would destroy the data. */
	refuses(state, "ext4.img", "ext4", "ext4",
	        (const char *const[]){ "mkfs.ext4", "-q", "@", NULL });
	refuses(state, "ext4b.img", "xfs", "ext4",
	        (const char *const[]){ "mkfs.ext4", "-q", "@", NULL });
}

static void test_fs__format_refuses_luks_and_partition_table(void **state)
{
	_cleanup_free_ char *dev = NULL, *reason = NULL;
	static const unsigned char magic[] = { 'L', 'U', 'K', 'S', 0xba, 0xbe, 0x00, 0x01 };
	int fd;

	REQUIRE_ROOT();
	dev = loop_on(state, "luks.img", 64 * MiB);
	fd = open(dev, O_WRONLY | O_CLOEXEC);
	assert_true(fd >= 0);
	assert_int_equal(pwrite(fd, magic, sizeof(magic), 0), (ssize_t)sizeof(magic));
	fsync(fd);
	close(fd);
	assert_int_equal(fs_format(dev, "ext4", NULL, 0, &reason), -EMEDIUMTYPE);
	assert_string_equal(reason, "device carries 'crypto_LUKS', not 'ext4': refusing to format");
	assert_int_equal(loop_detach(dev), 0);

	refuses(state, "gpt.img", "xfs", "gpt",
	        (const char *const[]){ "parted", "-s", "@", "mklabel", "gpt", NULL });
}

static void test_fs__format_blank_ext4_and_xfs(void **state)
{
	_cleanup_free_ char *dev = NULL, *dev2 = NULL, *types = NULL, *reason = NULL;

	REQUIRE_ROOT();
	dev = loop_on(state, "a.img", 64 * MiB);
	assert_int_equal(fs_format(dev, "ext4", NULL, 0, &reason), 0);
	assert_null(reason);
	assert_int_equal(blockdev_probe(dev, &types), 0);
	assert_string_equal(types, "ext4");
	free(types);
	types = NULL;
	/* Second time: it is not blank any more. */
	assert_int_equal(fs_format(dev, "ext4", NULL, 0, &reason), -EMEDIUMTYPE);
	assert_int_equal(loop_detach(dev), 0);

	dev2 = loop_on(state, "b.img", 320 * MiB);
	assert_int_equal(fs_format(dev2, "xfs", NULL, 0, NULL), 0);
	assert_int_equal(blockdev_probe(dev2, &types), 0);
	assert_string_equal(types, "xfs");
	assert_int_equal(loop_detach(dev2), 0);
}

static void test_fs__format_extra_options_are_added(void **state)
{
	_cleanup_free_ char *dev = NULL, *reason = NULL;
	struct exec_result res;
	char *argv[] = { (char *)"tune2fs", (char *)"-l", NULL, NULL };

	REQUIRE_ROOT();
	dev = loop_on(state, "a.img", 64 * MiB);
	assert_int_equal(fs_format(dev, "ext4", " -L   mylabel -b 4096 ", 0, &reason), 0);
	argv[2] = dev;
	assert_int_equal(exec_run(argv, NULL, &res), 0);
	assert_non_null(strstr(res.out, "Filesystem volume name:   mylabel"));
	/* The defaults are still there: -m0. */
	assert_non_null(strstr(res.out, "Reserved block count:     0\n"));
	exec_result_done(&res);
	assert_int_equal(loop_detach(dev), 0);
}

static void test_fs__format_rejects_bad_options(void **state)
{
	char *reason = NULL;

	/* A bare word would be taken by mkfs as the device. */
	assert_int_equal(fs_format("/dev/loop99", "ext4", "/dev/vda", 0, &reason), -EINVAL);
	assert_string_equal(reason, "mkfs option '/dev/vda' not allowed");
	assert_int_equal(fs_format("/dev/loop99", "ext4", "-F dev/vda", 0, &reason), -EINVAL);
	assert_int_equal(fs_format("/dev/loop99", "ext4", "-- x", 0, &reason), -EINVAL);
	assert_int_equal(fs_format("/dev/loop99", "btrfs", NULL, 0, &reason), -EINVAL);
	assert_string_equal(reason, "unsupported filesystem type 'btrfs'");
	free(reason);
}

static void test_fs__grow_xfs_online(void **state)
{
	char file[PATH_MAX], mnt[PATH_MAX];
	_cleanup_free_ char *dev = NULL, *reason = NULL;
	struct fs_stats before, after;

	REQUIRE_ROOT();
	ht_sparse_file(state, "xfs.img", 320 * MiB, file, sizeof(file));
	assert_int_equal(loop_attach(file, false, &dev), 0);
	assert_int_equal(fs_format(dev, "xfs", NULL, 0, NULL), 0);
	snprintf(mnt, sizeof(mnt), "%s/mnt", ht_dir(state));
	assert_int_equal(mkdir(mnt, 0700), 0);
	assert_int_equal(mount_device(dev, mnt, "xfs", NULL, false), 0);
	assert_int_equal(fs_get_stats(mnt, &before), 0);
	assert_int_equal(truncate(file, 640 * MiB), 0);
	assert_int_equal(loop_refresh_capacity(dev), 0);
	assert_int_equal(fs_grow(dev, "xfs", mnt, 0, &reason), 0);
	assert_int_equal(fs_get_stats(mnt, &after), 0);
	assert_true(after.total_bytes > before.total_bytes + 250 * MiB);
	/* xfs does not grow unmounted. */
	assert_int_equal(fs_grow(dev, "xfs", NULL, 0, &reason), -EINVAL);
	assert_int_equal(mount_umount(mnt, false), 0);
	assert_int_equal(loop_detach(dev), 0);
}

static void test_fs__grow_ext4_offline_and_online(void **state)
{
	char file[PATH_MAX], mnt[PATH_MAX];
	_cleanup_free_ char *dev = NULL, *reason = NULL;
	struct fs_stats st;
	int r;

	REQUIRE_ROOT();
	ht_sparse_file(state, "ext4.img", 64 * MiB, file, sizeof(file));
	assert_int_equal(loop_attach(file, false, &dev), 0);
	assert_int_equal(fs_format(dev, "ext4", NULL, 0, NULL), 0);
	assert_int_equal(truncate(file, 128 * MiB), 0);
	assert_int_equal(loop_refresh_capacity(dev), 0);
	/* Offline: e2fsck -f then resize2fs. */
	assert_int_equal(fs_grow(dev, "ext4", NULL, 0, &reason), 0);
	snprintf(mnt, sizeof(mnt), "%s/mnt", ht_dir(state));
	assert_int_equal(mkdir(mnt, 0700), 0);
	assert_int_equal(mount_device(dev, mnt, "ext4", NULL, false), 0);
	assert_int_equal(fs_get_stats(mnt, &st), 0);
	assert_true(st.total_bytes > 100 * MiB);
	assert_true(st.available_bytes > 0 && st.available_bytes <= st.total_bytes);
	assert_true(st.total_inodes > 0 && st.used_inodes > 0);
	assert_false(st.read_only);

	/* Online needs CAP_SYS_RESOURCE, which some sandboxes lack: either works or says so. */
	assert_int_equal(truncate(file, 192 * MiB), 0);
	assert_int_equal(loop_refresh_capacity(dev), 0);
	r = fs_grow(dev, "ext4", mnt, 0, &reason);
	if (r == -EPERM)
		print_message("online ext4 grow refused here (no CAP_SYS_RESOURCE): %s\n", reason);
	else
		assert_int_equal(r, 0);
	assert_int_equal(mount_umount(mnt, false), 0);
	assert_int_equal(loop_detach(dev), 0);
}

/* Runs a tool that must succeed. */
static void must_run(char *const argv[])
{
	struct exec_result res;

	assert_int_equal(exec_run(argv, NULL, &res), 0);
	assert_int_equal(res.exit_status, 0);
	exec_result_done(&res);
}

static void test_fs__get_size_from_superblock(void **state)
{
	char ext4[PATH_MAX], xfs[PATH_MAX], blank[PATH_MAX];
	_cleanup_free_ char *reason = NULL;
	uint64_t size = 0;

	/* Regular files: no root needed. */
	ht_sparse_file(state, "ext4.img", 64 * MiB, ext4, sizeof(ext4));
	must_run((char *[]){ "mkfs.ext4", "-q", "-F", "-b", "4096", "-O", "64bit", ext4, NULL });
	assert_int_equal(fs_get_size(ext4, "ext4", &size), 0);
	assert_int_equal(size, 64 * MiB);
	/* The file grows, the filesystem does not until resize2fs. */
	assert_int_equal(truncate(ext4, 96 * MiB), 0);
	assert_int_equal(fs_get_size(ext4, "ext4", &size), 0);
	assert_int_equal(size, 64 * MiB);
	assert_int_equal(fs_grow(ext4, "ext4", NULL, 0, &reason), 0);
	assert_int_equal(fs_get_size(ext4, "ext4", &size), 0);
	assert_int_equal(size, 96 * MiB);

	ht_sparse_file(state, "xfs.img", 320 * MiB, xfs, sizeof(xfs));
	must_run((char *[]){ "mkfs.xfs", "-q", "-f", xfs, NULL });
	assert_int_equal(fs_get_size(xfs, "xfs", &size), 0);
	assert_int_equal(size, 320 * MiB);

	/* The wrong type, a blank device, an unsupported type: refused, size untouched. */
	size = 7;
	assert_int_equal(fs_get_size(ext4, "xfs", &size), -EMEDIUMTYPE);
	assert_int_equal(fs_get_size(xfs, "ext4", &size), -EMEDIUMTYPE);
	ht_sparse_file(state, "blank.img", 4 * MiB, blank, sizeof(blank));
	assert_int_equal(fs_get_size(blank, "ext4", &size), -EMEDIUMTYPE);
	assert_int_equal(fs_get_size(blank, "btrfs", &size), -EMEDIUMTYPE);
	assert_int_equal(size, 7);
	assert_int_equal(fs_get_size("/nonexistent/dev", "ext4", &size), -ENOENT);
}

/* Regression (issue 12): a 256 MiB xfs answered mkfs.xfs's usage text. */
static void test_fs__format_xfs_too_small_names_the_minimum(void **state)
{
	_cleanup_free_ char *dev = NULL, *reason = NULL, *types = NULL;

	REQUIRE_ROOT();
	dev = loop_on(state, "small.img", 256 * MiB);
	assert_int_equal(fs_format(dev, "xfs", NULL, 0, &reason), -EMEDIUMTYPE);
	assert_string_equal(reason, "the volume has 268435456 bytes, below the 314572800 bytes "
	                            "(300 MiB) mkfs.xfs needs: expand it, or use ext4");
	assert_int_equal(blockdev_probe(dev, &types), 0);
	assert_true(blockdev_types_blank(types));
	assert_int_equal(loop_detach(dev), 0);
	/* Exactly the minimum works. */
	free(dev);
	dev = NULL;
	dev = loop_on(state, "min.img", FS_XFS_MIN_SIZE);
	assert_int_equal(fs_format(dev, "xfs", NULL, 0, NULL), 0);
	assert_int_equal(loop_detach(dev), 0);
}

/* Regression (issue 12): a failing mkfs is reported by its reason, not its usage text. */
static void test_fs__mkfs_failure_names_the_tool_reason(void **state)
{
	_cleanup_free_ char *dev = NULL, *reason = NULL;

	REQUIRE_ROOT();
	dev = loop_on(state, "bad.img", 320 * MiB);
	assert_int_equal(fs_format(dev, "xfs", "-b size=1000", 0, &reason), -EIO);
	assert_string_equal(reason, "mkfs.xfs exited with status 1: Invalid value 1000 for -b size "
	                            "option. Value must be a power of 2.");
	assert_int_equal(loop_detach(dev), 0);
}

/* An interrupted mkfs of ours is formatted over (FS_FORMAT_OVER_OWN), and fs_wipe_own() makes a
 * device blank again. */
static void test_fs__format_over_own_and_wipe(void **state)
{
	_cleanup_free_ char *dev = NULL, *types = NULL;

	REQUIRE_ROOT();
	dev = loop_on(state, "own.img", 320 * MiB);
	assert_int_equal(fs_format(dev, "xfs", NULL, 0, NULL), 0);
	assert_int_equal(fs_format(dev, "xfs", NULL, 0, NULL), -EMEDIUMTYPE);
	assert_int_equal(fs_format_flags(dev, "xfs", NULL, FS_FORMAT_OVER_OWN, 0, NULL), 0);
	assert_int_equal(fs_format_flags(dev, "ext4", NULL, FS_FORMAT_OVER_OWN, 0, NULL), 0);
	assert_int_equal(blockdev_probe(dev, &types), 0);
	assert_string_equal(types, "ext4");
	assert_int_equal(fs_wipe_own(dev), 0);
	free(types);
	types = NULL;
	assert_int_equal(blockdev_probe(dev, &types), 0);
	assert_true(blockdev_types_blank(types));
	assert_int_equal(loop_detach(dev), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		HOST_TEST(test_fs__format_refuses_swap),
		HOST_TEST(test_fs__format_refuses_existing_ext4),
		HOST_TEST(test_fs__format_refuses_luks_and_partition_table),
		HOST_TEST(test_fs__format_blank_ext4_and_xfs),
		HOST_TEST(test_fs__format_extra_options_are_added),
		HOST_TEST(test_fs__format_rejects_bad_options),
		HOST_TEST(test_fs__format_xfs_too_small_names_the_minimum),
		HOST_TEST(test_fs__mkfs_failure_names_the_tool_reason),
		HOST_TEST(test_fs__format_over_own_and_wipe),
		HOST_TEST(test_fs__grow_xfs_online),
		HOST_TEST(test_fs__grow_ext4_offline_and_online),
		HOST_TEST(test_fs__get_size_from_superblock),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
