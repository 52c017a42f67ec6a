/* SPDX-License-Identifier: Apache-2.0 */
/* Unit tests for the QoS key table and value validation of driver/ceph/qos.c (no Ceph needed). */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "driver/ceph/qos.h"

static void test_qos__keys_map_to_librbd_options(void **state)
{
	(void)state;
	assert_int_equal(qos_key_index("maxIops"), 0);
	assert_string_equal(qos_keys[qos_key_index("maxIops")].option, "rbd_qos_iops_limit");
	assert_string_equal(qos_keys[qos_key_index("maxReadBps")].option, "rbd_qos_read_bps_limit");
	assert_string_equal(qos_keys[qos_key_index("maxWriteIopsBurst")].option,
	                    "rbd_qos_write_iops_burst");
	assert_string_equal(qos_keys[qos_key_index("maxBpsBurstSeconds")].option,
	                    "rbd_qos_bps_burst_seconds");
	/* Every key unique, every burst points at a limit. */
	for (int i = 0; i < QOS_N; i++) {
		assert_int_equal(qos_key_index(qos_keys[i].param), i);
		assert_int_equal(qos_keys[qos_keys[i].limit].kind, QOS_KIND_LIMIT);
		assert_non_null(strstr(qos_keys[i].param, qos_keys[qos_keys[i].limit].param));
	}
	assert_int_equal(qos_key_index("maxiops"), -ENOENT);
	assert_int_equal(qos_key_index("rbd_qos_iops_limit"), -ENOENT);
	assert_int_equal(qos_key_index(""), -ENOENT);
	assert_int_equal(qos_key_index(NULL), -ENOENT);
}

static void test_qos__values_parsed_strictly(void **state)
{
	struct qos q = { 0 };

	(void)state;
	assert_int_equal(qos_parse("maxIops", "0", &q), 0);
	assert_true(q.set[0]);
	assert_int_equal(q.value[0], 0);
	assert_int_equal(qos_parse("maxIops", "1000000000000000", &q), 0);
	assert_int_equal(q.value[0], QOS_VALUE_MAX);
	assert_int_equal(qos_parse("maxIops", "1000000000000001", &q), -ERANGE);
	assert_int_equal(qos_parse("maxIops", "18446744073709551616", &q), -ERANGE);
	assert_int_equal(qos_parse("maxIops", "123456789012345678901", &q), -EINVAL);
	const char *bad[] = { "", "-1", "+1", " 1", "1 ", "1e3", "0x10", "1.5", "abc", "१" };
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		assert_int_equal(qos_parse("maxBps", bad[i], &q), -EINVAL);
	assert_int_equal(qos_parse("maxBps", NULL, &q), -EINVAL);
	assert_int_equal(qos_parse("maxIopsBurstSeconds", "3600", &q), 0);
	assert_int_equal(qos_parse("maxIopsBurstSeconds", "3601", &q), -ERANGE);
	assert_int_equal(qos_parse("XXX_FakeKey", "1", &q), -ENOENT);
	/* A failed parse leaves the key as it was. */
	assert_int_equal(q.value[qos_key_index("maxBps")], 0);
	assert_false(q.set[qos_key_index("maxBps")]);
}

static void test_qos__burst_below_limit_refused(void **state)
{
	struct qos q = { 0 }, u = { 0 };
	int bad = -1;

	(void)state;
	assert_int_equal(qos_parse("maxIops", "100", &q), 0);
	assert_int_equal(qos_check(&q, &bad), 0);
	assert_int_equal(qos_parse("maxIopsBurst", "100", &q), 0);
	assert_int_equal(qos_check(&q, &bad), 0);
	assert_int_equal(qos_parse("maxIopsBurst", "99", &q), 0);
	assert_int_equal(qos_check(&q, &bad), -EINVAL);
	assert_int_equal(bad, qos_key_index("maxIopsBurst"));
	/* Burst 0 is librbd's default (= the limit); a burst without a limit is fine. */
	assert_int_equal(qos_parse("maxIopsBurst", "0", &q), 0);
	assert_int_equal(qos_check(&q, &bad), 0);
	assert_int_equal(qos_parse("maxReadBpsBurst", "5", &q), 0);
	assert_int_equal(qos_check(&q, &bad), 0);
	/* Merging: only the keys set in the update change. */
	assert_int_equal(qos_parse("maxIops", "7", &u), 0);
	qos_merge(&q, &u);
	assert_int_equal(q.value[qos_key_index("maxIops")], 7);
	assert_int_equal(q.value[qos_key_index("maxReadBpsBurst")], 5);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_qos__keys_map_to_librbd_options),
		cmocka_unit_test(test_qos__values_parsed_strictly),
		cmocka_unit_test(test_qos__burst_below_limit_refused),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
