/* SPDX-License-Identifier: Apache-2.0 */
/* Tests of driver/host/mount.c with real loop devices and mounts (root only). */
#include <sys/sysmacros.h>

#include "unit/driver/host/host_test.h"
#include "driver/base/path.h"
#include "driver/host/fs.h"
#include "driver/host/mount.h"

#define MiB (1024ULL * 1024ULL)

struct fixture {
	char file[PATH_MAX];
	char mnt[PATH_MAX];
	char *dev;
};

static void fixture_init(void **state, struct fixture *f, const char *fstype, uint64_t size)
{
	ht_sparse_file(state, "disk.img", size, f->file, sizeof(f->file));
	assert_int_equal(loop_attach(f->file, false, &f->dev), 0);
	assert_int_equal(fs_format(f->dev, fstype, NULL, 0, NULL), 0);
	snprintf(f->mnt, sizeof(f->mnt), "%s/mnt", ht_dir(state));
	assert_int_equal(mkdir(f->mnt, 0700), 0);
}

static void fixture_done(struct fixture *f)
{
	assert_int_equal(loop_detach(f->dev), 0);
	free(f->dev);
}

static void test_mount__device_find_umount(void **state)
{
	_cleanup_(mount_info_freep) struct mount_info *info = NULL;
	struct fixture f;
	struct stat st;

	REQUIRE_ROOT();
	fixture_init(state, &f, "ext4", 64 * MiB);
	assert_int_equal(mount_is_mountpoint(f.mnt), 0);
	assert_int_equal(mount_find(f.mnt, &info), -ENOENT);
	assert_int_equal(mount_device(f.dev, f.mnt, "ext4", "noatime", false), 0);
	assert_int_equal(mount_is_mountpoint(f.mnt), 1);
	/* Trailing slash: same mount point. */
	{
		char slash[PATH_MAX + 1];

		snprintf(slash, sizeof(slash), "%s/", f.mnt);
		assert_int_equal(mount_is_mountpoint(slash), 1);
	}
	assert_int_equal(mount_find(f.mnt, &info), 0);
	assert_string_equal(info->source, f.dev);
	assert_string_equal(info->fstype, "ext4");
	assert_false(info->read_only);
	assert_false(info->bind);
	assert_non_null(strstr(info->options, "noatime"));
	assert_int_equal(stat(f.dev, &st), 0);
	assert_true(info->devno == st.st_rdev);
	{
		_cleanup_free_ char *where = NULL;

		assert_int_equal(mount_find_by_source(f.dev, &where), 0);
		assert_string_equal(where, f.mnt);
	}
	/* A second mount on the same target is refused. */
	assert_int_equal(mount_device(f.dev, f.mnt, "ext4", NULL, false), -EBUSY);

	assert_int_equal(mount_umount(f.mnt, false), 0);
	assert_int_equal(mount_is_mountpoint(f.mnt), 0);
	/* Not mounted, or missing: success. */
	assert_int_equal(mount_umount(f.mnt, false), 0);
	assert_int_equal(mount_umount("/nonexistent/rbdcsi", false), 0);
	fixture_done(&f);
}

static void test_mount__xfs_gets_nouuid_and_netdev(void **state)
{
	_cleanup_(mount_info_freep) struct mount_info *info = NULL;
	char mnt2[PATH_MAX], file2[PATH_MAX];
	_cleanup_free_ char *dev2 = NULL;
	struct fixture f;

	REQUIRE_ROOT();
	fixture_init(state, &f, "xfs", 320 * MiB);
	/* A byte-for-byte clone has the same UUID: both mount thanks to nouuid. */
	snprintf(file2, sizeof(file2), "%s/clone.img", ht_dir(state));
	assert_int_equal(ht_run("cp", "--sparse=always", f.file, file2, NULL), 0);
	assert_int_equal(loop_attach(file2, false, &dev2), 0);
	snprintf(mnt2, sizeof(mnt2), "%s/mnt2", ht_dir(state));
	assert_int_equal(mkdir(mnt2, 0700), 0);
	assert_int_equal(mount_device(f.dev, f.mnt, "xfs", NULL, false), 0);
	assert_int_equal(mount_device(dev2, mnt2, "xfs", NULL, false), 0);
	assert_int_equal(mount_find(mnt2, &info), 0);
	assert_non_null(strstr(info->fs_options, "nouuid"));
	assert_int_equal(mount_umount(mnt2, false), 0);
	assert_int_equal(mount_umount(f.mnt, false), 0);
	assert_int_equal(loop_detach(dev2), 0);
	fixture_done(&f);
}

static void test_mount__read_only_device_mount(void **state)
{
	_cleanup_(mount_info_freep) struct mount_info *info = NULL;
	struct fixture f;
	char path[PATH_MAX + 8];

	REQUIRE_ROOT();
	fixture_init(state, &f, "ext4", 64 * MiB);
	assert_int_equal(mount_device(f.dev, f.mnt, "ext4", NULL, true), 0);
	assert_int_equal(mount_find(f.mnt, &info), 0);
	assert_true(info->read_only);
	snprintf(path, sizeof(path), "%s/x", f.mnt);
	assert_true(open(path, O_CREAT | O_WRONLY | O_CLOEXEC, 0600) < 0);
	assert_int_equal(errno, EROFS);
	assert_int_equal(mount_umount(f.mnt, false), 0);
	fixture_done(&f);
}

static void test_mount__bind_and_read_only_bind(void **state)
{
	_cleanup_(mount_info_freep) struct mount_info *info = NULL;
	char sub[PATH_MAX + 8], pub[PATH_MAX], ro[PATH_MAX], path[PATH_MAX + 16];
	struct fixture f;
	int fd;

	REQUIRE_ROOT();
	fixture_init(state, &f, "ext4", 64 * MiB);
	assert_int_equal(mount_device(f.dev, f.mnt, "ext4", NULL, false), 0);
	snprintf(sub, sizeof(sub), "%s/data", f.mnt);
	assert_int_equal(mkdir(sub, 0700), 0);
	snprintf(pub, sizeof(pub), "%s/pub", ht_dir(state));
	snprintf(ro, sizeof(ro), "%s/ro", ht_dir(state));
	assert_int_equal(mkdir(pub, 0700), 0);
	assert_int_equal(mkdir(ro, 0700), 0);

	assert_int_equal(mount_bind(sub, pub, false, NULL), 0);
	assert_int_equal(mount_find(pub, &info), 0);
	assert_true(info->bind);
	assert_false(info->read_only);
	info = mount_info_free(info);
	snprintf(path, sizeof(path), "%s/hello", pub);
	fd = open(path, O_CREAT | O_WRONLY | O_CLOEXEC, 0600);
	assert_true(fd >= 0);
	close(fd);

	assert_int_equal(mount_bind(sub, ro, true, "nosuid,nodev"), 0);
	assert_int_equal(mount_find(ro, &info), 0);
	assert_true(info->read_only);
	assert_non_null(strstr(info->options, "nosuid"));
	snprintf(path, sizeof(path), "%s/hello", ro);
	assert_int_equal(access(path, F_OK), 0);
	assert_true(open(path, O_WRONLY | O_CLOEXEC) < 0);
	assert_int_equal(errno, EROFS);
	/* The read-only bind did not make the original read-only. */
	snprintf(path, sizeof(path), "%s/hello2", pub);
	fd = open(path, O_CREAT | O_WRONLY | O_CLOEXEC, 0600);
	assert_true(fd >= 0);
	close(fd);

	/* A bind onto a target of the other kind is refused. */
	snprintf(path, sizeof(path), "%s/hello", pub);
	assert_int_equal(mount_bind(sub, path, false, NULL), -ENOTDIR);

	assert_int_equal(mount_umount(ro, false), 0);
	assert_int_equal(mount_umount(pub, false), 0);
	assert_int_equal(mount_umount(f.mnt, false), 0);
	fixture_done(&f);
}

static void test_mount__bind_device_node_onto_file(void **state)
{
	_cleanup_(mount_info_freep) struct mount_info *info = NULL;
	char target[PATH_MAX];
	struct fixture f;
	struct stat a, b;
	int fd;

	REQUIRE_ROOT();
	fixture_init(state, &f, "ext4", 64 * MiB);
	/* Block volumes are published by bind-mounting the device node onto a file. */
	snprintf(target, sizeof(target), "%s/blockdev", ht_dir(state));
	fd = open(target, O_CREAT | O_WRONLY | O_CLOEXEC, 0600);
	assert_true(fd >= 0);
	close(fd);
	assert_int_equal(mount_bind(f.dev, target, false, NULL), 0);
	assert_int_equal(mount_is_mountpoint(target), 1);
	assert_int_equal(stat(target, &a), 0);
	assert_int_equal(stat(f.dev, &b), 0);
	assert_true(S_ISBLK(a.st_mode));
	assert_true(a.st_rdev == b.st_rdev);
	assert_int_equal(mount_umount(target, false), 0);
	fixture_done(&f);
}

static void test_mount__umount_does_not_follow_symlinks(void **state)
{
	char link[PATH_MAX];
	struct fixture f;

	REQUIRE_ROOT();
	fixture_init(state, &f, "ext4", 64 * MiB);
	assert_int_equal(mount_device(f.dev, f.mnt, "ext4", NULL, false), 0);
	snprintf(link, sizeof(link), "%s/link", ht_dir(state));
	assert_int_equal(symlink(f.mnt, link), 0);
	/* Refused: a symlink at the target is never followed (UMOUNT_NOFOLLOW). */
	assert_int_equal(mount_umount(link, false), -ELOOP);
	assert_int_equal(mount_is_mountpoint(f.mnt), 1);
	assert_int_equal(mount_umount(f.mnt, false), 0);
	fixture_done(&f);
}

static void test_mount__health_detects_read_only_after_error(void **state)
{
	char attr[PATH_MAX];
	_cleanup_free_ char *reason = NULL;
	struct fixture f;
	bool abnormal = true;

	REQUIRE_ROOT();
	fixture_init(state, &f, "ext4", 64 * MiB);
	assert_int_equal(mount_device(f.dev, f.mnt, "ext4", "errors=remount-ro", false), 0);
	assert_int_equal(mount_check_health(f.mnt, &abnormal, &reason), 0);
	assert_false(abnormal);
	assert_null(reason);

	/* ext4's own error trigger: with errors=remount-ro the superblock goes read-only while
	 * the mount stays "rw". */
	snprintf(attr, sizeof(attr), "/sys/fs/ext4/%s/trigger_fs_error", strrchr(f.dev, '/') + 1);
	if (access(attr, W_OK) < 0) {
		assert_int_equal(mount_umount(f.mnt, false), 0);
		fixture_done(&f);
		print_message("skipped: %s missing\n", attr);
		skip();
	}
	assert_int_equal(fileio_write_sysfs(attr, "rbdcsi test", 11), 0);
	/* The kernel remounts from a work queue: give it a moment. */
	for (int i = 0; i < 200; i++) {
		assert_int_equal(mount_check_health(f.mnt, &abnormal, &reason), 0);
		if (abnormal)
			break;
		usleep(10000);
	}
	assert_true(abnormal);
	assert_non_null(strstr(reason, "went read-only"));
	assert_int_equal(mount_check_health("/nonexistent", &abnormal, NULL), -ENOENT);
	assert_int_equal(mount_umount(f.mnt, false), 0);
	fixture_done(&f);
}

/* utab's text mentions target (libmount records _netdev there). */
static bool utab_mentions(const char *target)
{
	_cleanup_free_ char *data = NULL;

	if (fileio_read_full("/run/mount/utab", 1024 * 1024, &data, NULL) < 0)
		return false;
	return strstr(data, target) != NULL;
}

/* The *_at variants act on resolved paths: the fd's object, whatever the text says later. */
static void test_mount__at_resolved_paths(void **state)
{
	_cleanup_(path_resolved_done) struct path_resolved mnt = PATH_RESOLVED_INIT;
	_cleanup_(path_resolved_done) struct path_resolved pub = PATH_RESOLVED_INIT;
	_cleanup_(path_resolved_done) struct path_resolved blk = PATH_RESOLVED_INIT;
	_cleanup_close_ int root_fd = -1;
	char pub_path[PATH_MAX], blk_path[PATH_MAX], fdtext[PATH_FD_TEXT_MAX];
	bool have_utab = access("/run/mount/utab", F_OK) == 0;
	struct fixture f;
	struct stat st;

	REQUIRE_ROOT();
	fixture_init(state, &f, "ext4", 64 * MiB);
	assert_int_equal(path_root_open("/", &root_fd), 0);
	assert_int_equal(path_resolve(root_fd, "/", f.mnt, 0, &mnt), 0);
	assert_false(mnt.mountpoint);
	assert_int_equal(mount_device_at(f.dev, &mnt, "ext4", "noatime", false), 0);
	assert_true(mnt.mountpoint);
	assert_int_equal(mount_is_mountpoint(f.mnt), 1);
	assert_int_equal(mount_device_at(f.dev, &mnt, "ext4", NULL, false), -EBUSY);
	if (have_utab)
		assert_true(utab_mentions(f.mnt)); /* under the text, not /proc/self/fd/N */
	assert_false(utab_mentions("/proc/self/fd/"));
	{
		_cleanup_(mount_info_freep) struct mount_info *info = NULL;

		assert_int_equal(mount_find_fd(mnt.fd, &info), 0);
		assert_string_equal(info->source, f.dev);
		assert_int_equal(stat(f.dev, &st), 0);
		assert_true(info->devno == st.st_rdev);
	}

	/* A read-only bind of the resolved mount onto a resolved directory. */
	snprintf(pub_path, sizeof(pub_path), "%s/pub", ht_dir(state));
	assert_int_equal(path_resolve(root_fd, "/", pub_path, 0, &pub), 0);
	assert_int_equal(path_mkdir(&pub, 0700), 0);
	assert_int_equal(mount_bind_at(path_fd_text(mnt.fd, fdtext), &pub, true, "nosuid,bogus"),
	                 0);
	assert_true(pub.mountpoint);
	assert_true(pub.st.st_dev == st.st_rdev);
	{
		_cleanup_(mount_info_freep) struct mount_info *info = NULL;

		assert_int_equal(mount_find_fd(pub.fd, &info), 0);
		assert_true(info->read_only);
		assert_non_null(strstr(info->options, "nosuid"));
	}
	assert_int_equal(mount_bind_at(path_fd_text(mnt.fd, fdtext), &pub, false, NULL), -EBUSY);

	/* The device node onto a resolved file. */
	snprintf(blk_path, sizeof(blk_path), "%s/blk", ht_dir(state));
	assert_int_equal(path_resolve(root_fd, "/", blk_path, PATH_WALK, &blk), 0);
	assert_int_equal(path_create_file(&blk, 0600), 0);
	assert_int_equal(mount_bind_at(path_fd_text(mnt.fd, fdtext), &blk, false, NULL), -ENOTDIR);
	assert_int_equal(mount_bind_at(f.dev, &blk, false, NULL), 0);
	assert_true(S_ISBLK(blk.st.st_mode) && blk.st.st_rdev == st.st_rdev);

	/* Unmount through the parents' fds (the objects' own fds would keep them busy). */
	blk.fd = safe_close(blk.fd);
	assert_int_equal(mount_umount_at(blk.dir_fd, blk.name, blk.text, false), 0);
	pub.fd = safe_close(pub.fd);
	assert_int_equal(mount_umount_at(pub.dir_fd, pub.name, pub.text, false), 0);
	assert_int_equal(mount_umount_at(pub.dir_fd, pub.name, pub.text, false), -EINVAL);
	mnt.fd = safe_close(mnt.fd);
	assert_int_equal(mount_umount_at(mnt.dir_fd, mnt.name, mnt.text, false), 0);
	assert_int_equal(mount_is_mountpoint(f.mnt), 0);
	assert_false(utab_mentions(f.mnt));
	fixture_done(&f);
}

static void test_mount__bad_arguments(void **state)
{
	REQUIRE_ROOT();
	assert_int_equal(mount_device("relative", "/tmp", "ext4", NULL, false), -EINVAL);
	assert_int_equal(mount_device("/dev/loop0", "/tmp", "ext4", "a b", false), -EINVAL);
	assert_int_equal(mount_umount("relative", false), -EINVAL);
	assert_int_equal(mount_is_mountpoint("relative"), -EINVAL);
	assert_int_equal(mount_is_mountpoint("/proc"), 1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		HOST_TEST(test_mount__device_find_umount),
		HOST_TEST(test_mount__xfs_gets_nouuid_and_netdev),
		HOST_TEST(test_mount__read_only_device_mount),
		HOST_TEST(test_mount__bind_and_read_only_bind),
		HOST_TEST(test_mount__bind_device_node_onto_file),
		HOST_TEST(test_mount__umount_does_not_follow_symlinks),
		HOST_TEST(test_mount__health_detects_read_only_after_error),
		HOST_TEST(test_mount__at_resolved_paths),
		HOST_TEST(test_mount__bad_arguments),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
