/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Skipping a unit test for want of Ceph or root, unless the run promised them.
 *
 * A test that needs the throwaway Ceph cluster or root skips on a developer's machine. A run
 * that provides them (make check sets RBDCSI_REQUIRE_CEPH=1 and RBDCSI_REQUIRE_ROOT=1) must not
 * pass with those tests skipped: there the same call fails the test and names what was missing.
 * Skips for what a host may lack without harm (the rbd or nbd kernel module, device-mapper)
 * use cmocka's skip() directly.
 *
 * Include after <cmocka.h>.
 */
#pragma once

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

/* True when the environment variable var is "1": the run promised what it names. */
static inline bool test_required(const char *var)
{
	const char *v = getenv(var);

	return v && strcmp(v, "1") == 0;
}

/* Skips the running test (printing why), or fails it when var says the run requires it. */
#define TEST_SKIP_UNLESS_REQUIRED(var, why)                             \
	do {                                                            \
		if (test_required(var))                                 \
			fail_msg("%s=1 but skipped: %s", (var), (why)); \
		print_message("skipped: %s\n", (why));                  \
		skip();                                                 \
	} while (0)

#define TEST_SKIP_NO_CEPH(why) TEST_SKIP_UNLESS_REQUIRED("RBDCSI_REQUIRE_CEPH", why)
#define TEST_SKIP_NO_ROOT(why) TEST_SKIP_UNLESS_REQUIRED("RBDCSI_REQUIRE_ROOT", why)
