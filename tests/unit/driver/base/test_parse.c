/* SPDX-License-Identifier: Apache-2.0 */
/* Tests of driver/base/parse.c and driver/base/monotonic.c. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include "driver/base/monotonic.h"
#include "driver/base/parse.h"

static void test_parse__u64(void **state)
{
	uint64_t v = 7;

	(void)state;
	assert_int_equal(parse_u64("0", &v), 0);
	assert_int_equal(v, 0);
	assert_int_equal(parse_u64("18446744073709551615", &v), 0);
	assert_true(v == UINT64_MAX);
	v = 7;
	/* Refused, and *ret untouched. */
	assert_int_equal(parse_u64("18446744073709551616", &v), -EINVAL);
	assert_int_equal(parse_u64("", &v), -EINVAL);
	assert_int_equal(parse_u64(NULL, &v), -EINVAL);
	assert_int_equal(parse_u64("-1", &v), -EINVAL);
	assert_int_equal(parse_u64("+1", &v), -EINVAL);
	assert_int_equal(parse_u64(" 1", &v), -EINVAL);
	assert_int_equal(parse_u64("1 ", &v), -EINVAL);
	assert_int_equal(parse_u64("0x10", &v), -EINVAL);
	assert_int_equal(parse_u64("12a", &v), -EINVAL);
	assert_int_equal(v, 7);
}

static void test_parse__monotonic_never_goes_back(void **state)
{
	uint64_t a, b;

	(void)state;
	a = monotonic_usec();
	b = monotonic_usec();
	assert_true(a > 0);
	assert_true(b >= a);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_parse__u64),
		cmocka_unit_test(test_parse__monotonic_never_goes_back),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
