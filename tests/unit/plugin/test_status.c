/* SPDX-License-Identifier: Apache-2.0 */
/* Unit tests of plugin/status.c (the errno -> gRPC table) and plugin/metrics.c rendering. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "plugin/config.h"
#include "plugin/locks.h"
#include "plugin/metrics.h"
#include "plugin/plugin.h"
#include "plugin/status.h"

static void test_status__table(void **state)
{
	static const struct {
		int error;
		enum status_code code;
	} cases[] = {
		{ 0, STATUS_OK },
		{ -EINVAL, STATUS_INVALID_ARGUMENT },
		{ -ENOENT, STATUS_NOT_FOUND },
		{ -EEXIST, STATUS_ALREADY_EXISTS },
		{ -ERANGE, STATUS_OUT_OF_RANGE },
		{ -ENOSPC, STATUS_RESOURCE_EXHAUSTED },
		{ -ETIMEDOUT, STATUS_DEADLINE_EXCEEDED },
		{ -ENOTCONN, STATUS_UNAVAILABLE },
		{ -ESHUTDOWN, STATUS_UNAVAILABLE },
		{ -EBUSY, STATUS_FAILED_PRECONDITION },
		{ -EMEDIUMTYPE, STATUS_FAILED_PRECONDITION },
		{ -ENODEV, STATUS_FAILED_PRECONDITION },
		{ -EACCES, STATUS_PERMISSION_DENIED },
		{ -EAGAIN, STATUS_ABORTED },
		{ -EOPNOTSUPP, STATUS_UNIMPLEMENTED },
		{ -EIO, STATUS_INTERNAL },
		{ -EUCLEAN, STATUS_INTERNAL },
		{ EINVAL, STATUS_INVALID_ARGUMENT }, /* either sign */
	};

	(void)state;
	for (size_t i = 0; i < ELEMENTSOF(cases); i++)
		assert_int_equal(status_from_errno(cases[i].error), cases[i].code);
	assert_string_equal(status_to_string(STATUS_ABORTED), "ABORTED");
	assert_string_equal(status_to_string((enum status_code)99), "UNKNOWN");
}

static void test_metrics__render_counts_and_histograms(void **state)
{
	struct plugin p = { 0 };
	const struct method *m;
	size_t n;
	char *text = NULL;
	size_t len = 0;

	(void)state;
	m = plugin_methods(&n);
	p.opt.driver_name = "rbdcsi.io";
	p.opt.state_dir = "/nonexistent";
	p.opt.mode = PLUGIN_MODE_ALL;
	p.locks = locks_new();
	p.metrics = metrics_new(n);
	for (int i = 0; i < 3; i++)
		metrics_observe_call(p.metrics, m[0].index, STATUS_OK, 1500);
	metrics_observe_call(p.metrics, m[0].index, STATUS_NOT_FOUND, 2000000);
	metrics_ceph_error(p.metrics, "create");
	metrics_ceph_error(p.metrics, "no-such-operation");
	assert_int_equal(metrics_render(p.metrics, &p, &text, &len), 0);
	assert_int_equal(strlen(text), len);
	{
		char want[256];

		snprintf(want, sizeof(want), "rbdcsi_calls_total{method=\"%s\",code=\"OK\"} 3\n",
		         m[0].name);
		assert_non_null(strstr(text, want));
		snprintf(want, sizeof(want),
		         "rbdcsi_call_duration_seconds_bucket{method=\"%s\",le=\"0.005\"} 3\n",
		         m[0].name);
		assert_non_null(strstr(text, want));
		snprintf(want, sizeof(want),
		         "rbdcsi_call_duration_seconds_bucket{method=\"%s\",le=\"+Inf\"} 4\n",
		         m[0].name);
		assert_non_null(strstr(text, want));
	}
	assert_non_null(strstr(text, "rbdcsi_ceph_errors_total{operation=\"create\"} 1\n"));
	assert_non_null(strstr(text, "rbdcsi_ceph_errors_total{operation=\"other\"} 1\n"));
	assert_non_null(strstr(text, "process_resident_memory_bytes "));
	assert_non_null(strstr(text, "rbdcsi_node_staged_volumes 0\n"));
	free(text);
	metrics_free(p.metrics);
	locks_free(p.locks);
}

/* The per-operation exceptions of CSI, and everything else as the plain table. */
static void test_status__operation_exceptions(void **state)
{
	static const struct {
		enum status_op op;
		int error;
		enum status_code code;
	} cases[] = {
		{ STATUS_OP_CONNECT, -ETIMEDOUT, STATUS_UNAVAILABLE },
		{ STATUS_OP_CONNECT, -ECONNREFUSED, STATUS_UNAVAILABLE },
		{ STATUS_OP_CONNECT, -EHOSTUNREACH, STATUS_UNAVAILABLE },
		{ STATUS_OP_CONNECT, -EACCES, STATUS_PERMISSION_DENIED },
		{ STATUS_OP_CONNECT, -EIO, STATUS_INTERNAL },
		{ STATUS_OP_NODE_NEEDS_STAGE, -ENOENT, STATUS_FAILED_PRECONDITION },
		{ STATUS_OP_NODE_NEEDS_STAGE, -EINVAL, STATUS_INVALID_ARGUMENT },
		{ STATUS_OP_NODE_PUBLISH, -ENOTDIR, STATUS_FAILED_PRECONDITION },
		{ STATUS_OP_NODE_PUBLISH, -EISDIR, STATUS_FAILED_PRECONDITION },
		{ STATUS_OP_NODE_PUBLISH, -EEXIST, STATUS_FAILED_PRECONDITION },
		{ STATUS_OP_NODE_PUBLISH, -ELOOP, STATUS_FAILED_PRECONDITION },
		{ STATUS_OP_NODE_PUBLISH, -E2BIG, STATUS_RESOURCE_EXHAUSTED },
		{ STATUS_OP_NODE_PUBLISH, -ENOENT, STATUS_NOT_FOUND },
		{ STATUS_OP_NODE_EXPAND, -EPERM, STATUS_FAILED_PRECONDITION },
		{ STATUS_OP_NODE_EXPAND, -ENOSPC, STATUS_RESOURCE_EXHAUSTED },
		{ STATUS_OP_ANY, -ETIMEDOUT, STATUS_DEADLINE_EXCEEDED },
		{ STATUS_OP_ANY, -EPERM, STATUS_PERMISSION_DENIED },
		{ STATUS_OP_ANY, 0, STATUS_OK },
	};

	(void)state;
	for (size_t i = 0; i < ELEMENTSOF(cases); i++)
		assert_int_equal(status_from_errno_at(cases[i].op, cases[i].error), cases[i].code);
}

/* call_fail_errno() takes the code from the table and keeps the message; call_fail_clear()
 * forgets both. */
static void test_status__call_fail_errno(void **state)
{
	struct call c = { 0 };

	(void)state;
	assert_int_equal(call_fail_errno(&c, STATUS_OP_ANY, -ENOENT, "volume %s is gone", "v1"),
	                 -ENOENT);
	assert_int_equal(c.code, STATUS_NOT_FOUND);
	assert_non_null(strstr(c.log.error_message, "volume v1 is gone"));
	assert_int_equal(call_fail_errno(&c, STATUS_OP_NODE_NEEDS_STAGE, -ENOENT, "not staged"),
	                 -ENOENT);
	assert_int_equal(c.code, STATUS_FAILED_PRECONDITION);
	assert_int_equal(call_status(&c, STATUS_OP_CONNECT, -ETIMEDOUT), -ETIMEDOUT);
	assert_int_equal(c.code, STATUS_UNAVAILABLE);
	call_fail_clear(&c);
	assert_int_equal(c.code, STATUS_OK);
	assert_null(c.log.error_message);
	call_done(&c);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_status__table),
		cmocka_unit_test(test_status__operation_exceptions),
		cmocka_unit_test(test_status__call_fail_errno),
		cmocka_unit_test(test_metrics__render_counts_and_histograms),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
