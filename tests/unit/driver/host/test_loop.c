/* SPDX-License-Identifier: Apache-2.0 */
/* Tests of driver/host/loop.c: real loop devices on sparse files (root only). */
#include <pthread.h>
#include <linux/fs.h>
#include <sys/ioctl.h>

#include "unit/driver/host/host_test.h"
#include "driver/host/blockdev.h"

#define MiB (1024ULL * 1024ULL)

static void test_loop__attach_find_detach(void **state)
{
	char file[PATH_MAX];
	_cleanup_free_ char *dev = NULL, *found = NULL, *backing = NULL;
	uint64_t size;

	REQUIRE_ROOT();
	ht_sparse_file(state, "disk.img", 64 * MiB, file, sizeof(file));
	assert_int_equal(loop_attach(file, false, &dev), 0);
	assert_non_null(strstr(dev, "/dev/loop"));
	assert_int_equal(loop_get_backing_file(dev, &backing), 0);
	assert_string_equal(backing, file);
	assert_int_equal(loop_find_by_backing_file(file, &found), 0);
	assert_string_equal(found, dev);
	assert_int_equal(blockdev_get_size(dev, &size), 0);
	assert_int_equal(size, 64 * MiB);

	assert_int_equal(loop_detach(dev), 0);
	free(found);
	found = NULL;
	assert_int_equal(loop_find_by_backing_file(file, &found), -ENOENT);
	assert_int_equal(loop_get_backing_file(dev, &found), -ENXIO);
	/* Detaching again is fine. */
	assert_int_equal(loop_detach(dev), 0);
}

static void test_loop__no_autoclear(void **state)
{
	char file[PATH_MAX];
	_cleanup_free_ char *dev = NULL, *backing = NULL;
	int fd;

	REQUIRE_ROOT();
	ht_sparse_file(state, "disk.img", 16 * MiB, file, sizeof(file));
	assert_int_equal(loop_attach(file, false, &dev), 0);
	/* Open and close it (as mkfs or a probe would): it must stay attached. */
	fd = open(dev, O_RDWR | O_CLOEXEC);
	assert_true(fd >= 0);
	close(fd);
	assert_int_equal(loop_get_backing_file(dev, &backing), 0);
	assert_int_equal(loop_detach(dev), 0);
}

static void test_loop__read_only(void **state)
{
	char file[PATH_MAX];
	_cleanup_free_ char *dev = NULL;
	int fd, ro = 0;

	REQUIRE_ROOT();
	ht_sparse_file(state, "disk.img", 16 * MiB, file, sizeof(file));
	assert_int_equal(loop_attach(file, true, &dev), 0);
	fd = open(dev, O_RDONLY | O_CLOEXEC);
	assert_true(fd >= 0);
	assert_int_equal(ioctl(fd, BLKROGET, &ro), 0);
	close(fd);
	assert_int_equal(ro, 1);
	assert_int_equal(loop_detach(dev), 0);
}

static void test_loop__refresh_capacity(void **state)
{
	char file[PATH_MAX];
	_cleanup_free_ char *dev = NULL;
	uint64_t size;

	REQUIRE_ROOT();
	ht_sparse_file(state, "disk.img", 32 * MiB, file, sizeof(file));
	assert_int_equal(loop_attach(file, false, &dev), 0);
	assert_int_equal(truncate(file, 96 * MiB), 0);
	assert_int_equal(blockdev_get_size(dev, &size), 0);
	assert_int_equal(size, 32 * MiB);
	assert_int_equal(loop_refresh_capacity(dev), 0);
	assert_int_equal(blockdev_get_size(dev, &size), 0);
	assert_int_equal(size, 96 * MiB);
	assert_int_equal(loop_detach(dev), 0);
}

static void test_loop__detach_refused_while_mounted(void **state)
{
	char file[PATH_MAX], mnt[PATH_MAX];
	_cleanup_free_ char *dev = NULL, *backing = NULL;

	REQUIRE_ROOT();
	ht_sparse_file(state, "disk.img", 32 * MiB, file, sizeof(file));
	assert_int_equal(loop_attach(file, false, &dev), 0);
	assert_int_equal(ht_run("mkfs.ext4", "-q", dev, NULL), 0);
	snprintf(mnt, sizeof(mnt), "%s/mnt", ht_dir(state));
	assert_int_equal(mkdir(mnt, 0700), 0);
	assert_int_equal(mount(dev, mnt, "ext4", 0, NULL), 0);
	assert_int_equal(loop_detach(dev), -EBUSY);
	/* And it really is still attached (no deferred autoclear was armed). */
	assert_int_equal(loop_get_backing_file(dev, &backing), 0);
	assert_int_equal(umount2(mnt, 0), 0);
	assert_int_equal(loop_detach(dev), 0);
}

static void test_loop__bad_arguments(void **state)
{
	_cleanup_free_ char *dev = NULL;

	REQUIRE_ROOT();
	assert_int_equal(loop_attach("relative/file", false, &dev), -EINVAL);
	assert_int_equal(loop_attach("/nonexistent/file", false, &dev), -ENOENT);
	assert_int_equal(loop_detach("/dev/sda"), -EINVAL);
	assert_int_equal(loop_detach("/dev/loopx"), -EINVAL);
	assert_int_equal(loop_refresh_capacity("/dev/null"), -EINVAL);
}

struct attach_arg {
	char file[PATH_MAX];
	char *dev;
	int r;
};

static void *attach_thread(void *p)
{
	struct attach_arg *a = p;

	a->r = loop_attach(a->file, false, &a->dev);
	return NULL;
}

static void test_loop__concurrent_attach_races(void **state)
{
	struct attach_arg a[6] = { 0 };
	pthread_t t[6];

	REQUIRE_ROOT();
	/* Six attaches at once fight over LOOP_CTL_GET_FREE: all must get distinct devices. */
	for (int i = 0; i < 6; i++) {
		char name[32];

		snprintf(name, sizeof(name), "disk%d.img", i);
		ht_sparse_file(state, name, 8 * MiB, a[i].file, sizeof(a[i].file));
	}
	for (int i = 0; i < 6; i++)
		assert_int_equal(pthread_create(&t[i], NULL, attach_thread, &a[i]), 0);
	for (int i = 0; i < 6; i++)
		pthread_join(t[i], NULL);
	for (int i = 0; i < 6; i++) {
		_cleanup_free_ char *backing = NULL;

		assert_int_equal(a[i].r, 0);
		assert_int_equal(loop_get_backing_file(a[i].dev, &backing), 0);
		assert_string_equal(backing, a[i].file);
		for (int j = 0; j < i; j++)
			assert_string_not_equal(a[i].dev, a[j].dev);
	}
	for (int i = 0; i < 6; i++) {
		assert_int_equal(loop_detach(a[i].dev), 0);
		free(a[i].dev);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		HOST_TEST(test_loop__attach_find_detach),
		HOST_TEST(test_loop__no_autoclear),
		HOST_TEST(test_loop__read_only),
		HOST_TEST(test_loop__refresh_capacity),
		HOST_TEST(test_loop__detach_refused_while_mounted),
		HOST_TEST(test_loop__bad_arguments),
		HOST_TEST(test_loop__concurrent_attach_races),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
