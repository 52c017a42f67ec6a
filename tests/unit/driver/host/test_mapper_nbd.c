/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Tests of driver/host/mapper_nbd.c. Only the unavailability paths can be tested here: the
 * development machine has no nbd module (and rbd-nbd is not installed), so map/unmap with a
 * real rbd-nbd are NOT tested.
 */
#include "unit/driver/host/host_test.h"
#include "driver/host/mapper_nbd.h"

static struct mapper_params params(void)
{
	return (struct mapper_params){
		.monitors = "127.0.0.1:6789",
		.user = "csi",
		.key = "AQAAAAAAAAAAABAAMDEyMzQ1Njc4OWFiY2RlZg==",
		.pool = "rbd",
		.image = "img",
	};
}

static void test_mapper_nbd__unavailable_without_module(void **state)
{
	struct mapper_params p = params();
	_cleanup_free_ char *reason = NULL, *dev = NULL;

	if (access("/sys/module/nbd", F_OK) == 0) {
		print_message("skipped: this host has the nbd module\n");
		skip();
	}
	assert_int_equal(mapper_nbd_available("/", &reason), -ENODEV);
	assert_non_null(strstr(reason, "rbd-nbd: nbd kernel module not loaded"));
	free(reason);
	reason = NULL;
	assert_int_equal(mapper_nbd_map(NULL, &p, &dev, &reason), -ENODEV);
	assert_non_null(strstr(reason, "rbd-nbd: nbd kernel module not loaded"));
	/* A simulated root with the module but no device node: still unavailable. */
	{
		char path[PATH_MAX];

		snprintf(path, sizeof(path), "%s/sys/module/nbd", ht_dir(state));
		assert_int_equal(fileio_mkdir_p(path, 0755), 0);
		free(reason);
		reason = NULL;
		assert_int_equal(mapper_nbd_available(ht_dir(state), &reason), -ENODEV);
		assert_non_null(strstr(reason, "/dev/nbd0 missing"));
	}
}

static void test_mapper_nbd__unavailable_without_program(void **state)
{
	char path[PATH_MAX];
	_cleanup_free_ char *reason = NULL, *prog = NULL;

	if (exec_find_program("rbd-nbd", NULL, &prog) == 0) {
		print_message("skipped: rbd-nbd is installed here\n");
		skip();
	}
	/* Module and node present (simulated), program missing. */
	snprintf(path, sizeof(path), "%s/sys/module/nbd", ht_dir(state));
	assert_int_equal(fileio_mkdir_p(path, 0755), 0);
	snprintf(path, sizeof(path), "%s/dev", ht_dir(state));
	assert_int_equal(fileio_mkdir_p(path, 0755), 0);
	snprintf(path, sizeof(path), "%s/dev/nbd0", ht_dir(state));
	assert_int_equal(fileio_write_atomic(path, "", 0, 0600), 0);
	assert_int_equal(mapper_nbd_available(ht_dir(state), &reason), -ENODEV);
	assert_string_equal(reason, "rbd-nbd: program not installed");
}

static void test_mapper_nbd__unmap_rejects_other_devices(void **state)
{
	assert_int_equal(mapper_nbd_unmap("/dev/loop0", 0, NULL), -EINVAL);
	assert_int_equal(mapper_nbd_unmap(NULL, 0, NULL), -EINVAL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		HOST_TEST(test_mapper_nbd__unavailable_without_module),
		HOST_TEST(test_mapper_nbd__unavailable_without_program),
		HOST_TEST(test_mapper_nbd__unmap_rejects_other_devices),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
