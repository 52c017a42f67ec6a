/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Tests of driver/host/mapper_krbd.c. This machine has no rbd kernel module, so everything but
 * the "unavailable" case runs against the FAKE sysfs of tests/fakes/fake_krbd.h (hence the
 * test names). No root needed.
 */
#include "unit/driver/host/host_test.h"
#include "driver/base/monotonic.h"
#include "fakes/fake_krbd.h"
#include "driver/host/mapper_krbd.h"

#define KEY "AQAAAAAAAAAAABAAMDEyMzQ1Njc4OWFiY2RlZg=="

static struct mapper_params params(void)
{
	return (struct mapper_params){
		.monitors =
		        "[v2:10.0.0.1:3300,v1:10.0.0.1:6789],[v2:10.0.0.2:3300,v1:10.0.0.2:6789]",
		.user = "csi",
		.key = KEY,
		.pool = "rbd",
		.image = "csi-vol-1",
		.timeout_usec = 2 * USEC_PER_SEC,
	};
}

static void test_mapper_krbd__unavailable_on_this_host(void **state)
{
	struct mapper_params p = params();
	_cleanup_free_ char *reason = NULL, *dev = NULL;
	int id;

	/* The real root: no rbd module on the development machine. */
	if (access("/sys/bus/rbd", F_OK) == 0) {
		print_message("skipped: this host has the rbd module\n");
		skip();
	}
	assert_int_equal(mapper_krbd_available("/", &reason), -ENODEV);
	assert_string_equal(reason, "krbd: /sys/bus/rbd not present, rbd kernel module not loaded");
	free(reason);
	reason = NULL;
	assert_int_equal(mapper_krbd_map(NULL, &p, &dev, &id, &reason), -ENODEV);
	assert_string_equal(reason, "krbd: /sys/bus/rbd not present, rbd kernel module not loaded");
}

static void test_mapper_krbd__fake_sysfs_map_and_unmap(void **state)
{
	struct fake_krbd f;
	struct mapper_params p = params();
	_cleanup_free_ char *dev = NULL, *reason = NULL, *node = NULL, *devdir = NULL;
	int id = -1, found = -1;

	assert_int_equal(fake_krbd_start(&f, ht_dir(state), 0x3d), 0);
	assert_int_equal(mapper_krbd_available(ht_dir(state), &reason), 0);
	if (mapper_krbd_map(ht_dir(state), &p, &dev, &id, &reason) < 0)
		fail_msg("map failed: %s", reason);
	assert_int_equal(id, 0);
	assert_true(asprintf(&node, "%s/dev/rbd0", ht_dir(state)) > 0);
	assert_string_equal(dev, node);
	/* Exactly the kernel's format: v1 monitors, credentials, pool, image, head. */
	assert_string_equal(f.last_add,
	                    "10.0.0.1:6789,10.0.0.2:6789 name=csi,secret=" KEY " rbd csi-vol-1 -");
	assert_int_equal(mapper_krbd_find(ht_dir(state), "rbd", NULL, "csi-vol-1", &found), 0);
	assert_int_equal(found, 0);

	assert_int_equal(
	        mapper_krbd_unmap(ht_dir(state), id, "rbd", NULL, "csi-vol-1", NULL, &reason), 0);
	/* The fake acts asynchronously: wait for the device to go. */
	assert_true(asprintf(&devdir, "%s/sys/bus/rbd/devices/0", ht_dir(state)) > 0);
	for (int i = 0; i < 200 && access(devdir, F_OK) == 0; i++)
		usleep(10000);
	assert_string_equal(f.last_remove, "0");
	assert_int_equal(mapper_krbd_find(ht_dir(state), "rbd", NULL, "csi-vol-1", &found),
	                 -ENOENT);
	/* Unmapping again: the id no longer names the image, nothing is written. */
	assert_int_equal(
	        mapper_krbd_unmap(ht_dir(state), id, "rbd", NULL, "csi-vol-1", NULL, &reason), 0);
	assert_int_equal(f.removes, 1);
	fake_krbd_stop(&f);
}

static void test_mapper_krbd__fake_sysfs_namespace_options_read_only_force(void **state)
{
	struct fake_krbd f;
	struct mapper_params p = params();
	_cleanup_free_ char *dev = NULL, *reason = NULL;
	int id = -1, found = -1;

	assert_int_equal(fake_krbd_start(&f, ht_dir(state), 0), 0);
	/* Another image is mapped already, and the same image in another namespace. */
	fake_krbd_preload(&f, 0, "rbd", NULL, "other");
	fake_krbd_preload(&f, 1, "rbd", "tenant-b", "csi-vol-1");
	p.rados_namespace = "tenant-a";
	p.read_only = true;
	p.map_options = "lock_on_read,queue_depth=128";
	p.monitors = "192.168.1.5:6789";
	assert_int_equal(mapper_krbd_map(ht_dir(state), &p, &dev, &id, &reason), 0);
	assert_int_equal(id, 2);
	assert_string_equal(f.last_add, "192.168.1.5:6789 name=csi,secret=" KEY
	                                ",ro,lock_on_read,queue_depth=128,_pool_ns=tenant-a rbd "
	                                "csi-vol-1 -");
	assert_int_equal(mapper_krbd_find(ht_dir(state), "rbd", "tenant-a", "csi-vol-1", &found),
	                 0);
	assert_int_equal(found, 2);
	assert_int_equal(mapper_krbd_find(ht_dir(state), "rbd", "tenant-b", "csi-vol-1", &found),
	                 0);
	assert_int_equal(found, 1);

	/* unmapOptions "force" reaches the kernel. */
	assert_int_equal(mapper_krbd_unmap(ht_dir(state), id, "rbd", "tenant-a", "csi-vol-1",
	                                   "force", &reason),
	                 0);
	for (int i = 0; i < 200 && f.removes == 0; i++)
		usleep(10000);
	assert_string_equal(f.last_remove, "2 force");
	assert_int_equal(mapper_krbd_unmap(ht_dir(state), 1, NULL, NULL, NULL, "bogus", &reason),
	                 -EINVAL);
	assert_string_equal(reason, "krbd: unknown unmap option 'bogus' (only 'force')");
	fake_krbd_stop(&f);
}

static void test_mapper_krbd__fake_sysfs_unsupported_features(void **state)
{
	struct fake_krbd f;
	struct mapper_params p = params();
	_cleanup_free_ char *dev = NULL, *reason = NULL;
	int id;

	assert_int_equal(fake_krbd_start(&f, ht_dir(state), 0x3d), 0);
	/* journaling (0x40) is not in 0x3d. */
	p.image_features = 0x1 | 0x4 | 0x40;
	p.image_features_known = true;
	assert_int_equal(mapper_krbd_map(ht_dir(state), &p, &dev, &id, &reason), -ENODEV);
	assert_string_equal(reason, "krbd: the kernel does not support image features 0x40 (image "
	                            "has 0x45, kernel supports 0x3d)");
	assert_int_equal(f.adds, 0);
	p.image_features = 0x1 | 0x4 | 0x8 | 0x10;
	assert_int_equal(mapper_krbd_check_features(ht_dir(state), p.image_features, NULL), 0);
	fake_krbd_stop(&f);
}

static void test_mapper_krbd__fake_sysfs_no_device_times_out(void **state)
{
	struct fake_krbd f;
	struct mapper_params p = params();
	_cleanup_free_ char *dev = NULL, *reason = NULL;
	uint64_t t0;
	int id;

	assert_int_equal(fake_krbd_start(&f, ht_dir(state), 0), 0);
	f.no_devices = true;
	p.timeout_usec = 300 * USEC_PER_MSEC;
	t0 = monotonic_usec();
	assert_int_equal(mapper_krbd_map(ht_dir(state), &p, &dev, &id, &reason), -ETIMEDOUT);
	assert_true(monotonic_usec() - t0 < 2 * USEC_PER_SEC);
	assert_non_null(strstr(reason, "no new device"));
	fake_krbd_stop(&f);
}

static void test_mapper_krbd__fake_sysfs_no_node_unmaps_again(void **state)
{
	struct fake_krbd f;
	struct mapper_params p = params();
	_cleanup_free_ char *dev = NULL, *reason = NULL;
	int id;

	assert_int_equal(fake_krbd_start(&f, ht_dir(state), 0), 0);
	f.no_nodes = true;
	p.timeout_usec = 300 * USEC_PER_MSEC;
	assert_int_equal(mapper_krbd_map(ht_dir(state), &p, &dev, &id, &reason), -ETIMEDOUT);
	assert_non_null(strstr(reason, "did not appear in time"));
	/* The half-made mapping was removed. */
	for (int i = 0; i < 200 && f.removes == 0; i++)
		usleep(10000);
	assert_int_equal(f.removes, 1);
	assert_string_equal(f.last_remove, "0");
	fake_krbd_stop(&f);
}

static void test_mapper_krbd__fake_sysfs_rejects_bad_input(void **state)
{
	struct fake_krbd f;
	struct mapper_params p = params();
	_cleanup_free_ char *dev = NULL, *reason = NULL;
	int id;

	assert_int_equal(fake_krbd_start(&f, ht_dir(state), 0), 0);
	p.map_options = "secret=other";
	assert_int_equal(mapper_krbd_map(ht_dir(state), &p, &dev, &id, &reason), -EINVAL);
	assert_string_equal(reason, "krbd: map option 'secret' is not allowed");
	p = params();
	p.key = "not base64, name=admin";
	assert_int_equal(mapper_krbd_map(ht_dir(state), &p, &dev, &id, &reason), -EINVAL);
	assert_string_equal(reason, "the cephx key is malformed (not a base64 cephx AES key)");
	p = params();
	p.key = "AQBzZmFrZWtleWZha2VrZXlmYWtla2V5ZmFrZQ=="; /* base64, not a CryptoKey */
	assert_int_equal(mapper_krbd_map(ht_dir(state), &p, &dev, &id, &reason), -EINVAL);
	p = params();
	p.pool = "a b";
	assert_int_equal(mapper_krbd_map(ht_dir(state), &p, &dev, &id, &reason), -EINVAL);
	p = params();
	p.monitors = "[v2:10.0.0.1:3300]";
	assert_int_equal(mapper_krbd_map(ht_dir(state), &p, &dev, &id, &reason), -EINVAL);
	assert_int_equal(f.adds, 0);
	fake_krbd_stop(&f);
}

static void test_mapper_krbd__monitor_conversion(void **state)
{
	_cleanup_free_ char *a = NULL, *b = NULL, *c = NULL, *d = NULL;

	assert_int_equal(mapper_krbd_monitors("[v2:1.2.3.4:3300,v1:1.2.3.4:6789]", &a), 0);
	assert_string_equal(a, "1.2.3.4:6789");
	assert_int_equal(mapper_krbd_monitors("1.2.3.4:6789,5.6.7.8:6789", &b), 0);
	assert_string_equal(b, "1.2.3.4:6789,5.6.7.8:6789");
	assert_int_equal(
	        mapper_krbd_monitors("[v2:[::1]:3300/0,v1:[::1]:6789/0],[fe80::2]:6789", &c), 0);
	assert_string_equal(c, "[::1]:6789,[fe80::2]:6789");
	assert_int_equal(mapper_krbd_monitors("v2:1.2.3.4:3300", &d), -EINVAL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		HOST_TEST(test_mapper_krbd__unavailable_on_this_host),
		HOST_TEST(test_mapper_krbd__fake_sysfs_map_and_unmap),
		HOST_TEST(test_mapper_krbd__fake_sysfs_namespace_options_read_only_force),
		HOST_TEST(test_mapper_krbd__fake_sysfs_unsupported_features),
		HOST_TEST(test_mapper_krbd__fake_sysfs_no_device_times_out),
		HOST_TEST(test_mapper_krbd__fake_sysfs_no_node_unmaps_again),
		HOST_TEST(test_mapper_krbd__fake_sysfs_rejects_bad_input),
		HOST_TEST(test_mapper_krbd__monitor_conversion),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
