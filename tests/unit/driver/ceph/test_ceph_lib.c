/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Unit tests for driver/ceph/ceph_lib.c: librados/librbd are loaded on demand, once, and a
 * process that never asked for them does not map them. No cluster needed.
 *
 * This binary is not linked with -lrbd/-lrados (see the Makefile), and the tests run in order
 * in one process: the first one looks at the process before anything loaded the libraries.
 */
#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "driver/base/macro.h"
#include "driver/ceph/ceph_lib.h"

#define MISSING_SONAME "librbdcsi-test-no-such-library.so.0"

/* True when a file whose name contains what is mapped into this process. */
static bool mapped(const char *what)
{
	FILE *f = fopen("/proc/self/maps", "re");
	char line[4096];
	bool found = false;

	assert_non_null(f);
	while (!found && fgets(line, sizeof(line), f))
		found = strstr(line, what) != NULL;
	fclose(f);
	return found;
}

static void test_ceph_lib__not_mapped_before_load(void **state)
{
	assert_false(mapped("librbd.so"));
	assert_false(mapped("librados.so"));
	assert_false(mapped("libceph-common"));
}

static void test_ceph_lib__missing_library(void **state)
{
	struct ceph_lib_table t;

	memset(&t, 0xa5, sizeof(t));
	assert_int_equal(ceph_lib_resolve(MISSING_SONAME, CEPH_LIB_RBD_SONAME, &t), -ELIBACC);
	/* librados there (its functions resolve), librbd missing. */
	assert_int_equal(ceph_lib_resolve(CEPH_LIB_RADOS_SONAME, MISSING_SONAME, &t), -ELIBACC);
	for (size_t i = 0; i < sizeof(t); i++)
		assert_int_equal(((unsigned char *)&t)[i], 0xa5); /* untouched on failure */
	assert_false(mapped("librbd.so"));
}

static void test_ceph_lib__missing_function(void **state)
{
	struct ceph_lib_table t;

	memset(&t, 0xa5, sizeof(t));
	/* Libraries that load but lack the functions. */
	assert_int_equal(ceph_lib_resolve("libc.so.6", "libc.so.6", &t), -ELIBBAD);
	for (size_t i = 0; i < sizeof(t); i++)
		assert_int_equal(((unsigned char *)&t)[i], 0xa5);
	assert_false(mapped("librbd.so"));
}

static void test_ceph_lib__load(void **state)
{
	rbd_image_options_t opts = NULL;
	struct ceph_lib_table again;

	assert_int_equal(ceph_lib_load(), 0);
	assert_true(mapped("librbd.so.1"));
	assert_true(mapped("librados.so.2"));

	/* The names at call sites reach the library. */
	assert_non_null(rbd_image_options_create);
	rbd_image_options_create(&opts);
	assert_non_null(opts);
	assert_int_equal(rbd_image_options_set_uint64(opts, RBD_IMAGE_OPTION_FORMAT, 2), 0);
	rbd_image_options_destroy(opts);

	/* Resolving again finds the same, already loaded copies. */
	assert_int_equal(ceph_lib_resolve(CEPH_LIB_RADOS_SONAME, CEPH_LIB_RBD_SONAME, &again), 0);
	assert_memory_equal(&again, ceph_lib, sizeof(again));
}

static void *load_thread(void *arg)
{
	int *r = arg;

	*r = ceph_lib_load();
	return NULL;
}

static void test_ceph_lib__load_is_idempotent(void **state)
{
	struct ceph_lib_table before = *ceph_lib;
	pthread_t threads[8];
	int results[ELEMENTSOF(threads)];

	for (size_t i = 0; i < ELEMENTSOF(threads); i++)
		assert_int_equal(pthread_create(&threads[i], NULL, load_thread, &results[i]), 0);
	for (size_t i = 0; i < ELEMENTSOF(threads); i++) {
		assert_int_equal(pthread_join(threads[i], NULL), 0);
		assert_int_equal(results[i], 0);
	}
	assert_int_equal(ceph_lib_load(), 0);
	assert_memory_equal(&before, ceph_lib, sizeof(before));
	for (size_t i = 0; i < sizeof(before) / sizeof(void *); i++)
		assert_non_null(((void *const *)ceph_lib)[i]);
}

int main(void)
{
	/* In this order: the first test needs a process that has not loaded anything yet. */
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_ceph_lib__not_mapped_before_load),
		cmocka_unit_test(test_ceph_lib__missing_library),
		cmocka_unit_test(test_ceph_lib__missing_function),
		cmocka_unit_test(test_ceph_lib__load),
		cmocka_unit_test(test_ceph_lib__load_is_idempotent),
	};

	return cmocka_run_group_tests_name("ceph_lib", tests, NULL, NULL);
}
