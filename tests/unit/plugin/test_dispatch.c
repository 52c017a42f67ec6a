/* SPDX-License-Identifier: Apache-2.0 */
/* Unit tests of plugin/dispatch.c: requests bounded before protobuf-c unpacks them (issue 13). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "plugin/plugin.h"

static const struct method *method(const char *path)
{
	size_t n;
	const struct method *m = plugin_methods(&n);

	for (size_t i = 0; i < n; i++)
		if (strcmp(m[i].path, path) == 0)
			return &m[i];
	fail_msg("no method %s", path);
	return NULL;
}

static enum status_code dispatch(const struct method *m, const uint8_t *data, size_t len,
                                 char **ret_message)
{
	struct plugin p = { .opt.mode = PLUGIN_MODE_ALL, .opt.driver_name = "test.rbdcsi.io" };
	uint8_t *resp = NULL;
	size_t resp_len = 0;
	enum status_code code;

	code = plugin_dispatch(&p, m, data, len, UINT64_MAX, NULL, &resp, &resp_len, ret_message);
	free(resp);
	return code;
}

static void test_dispatch__huge_map_is_refused_before_unpacking(void **state)
{
	/* CreateVolumeRequest.parameters (field 4): 500,000 empty entries, 1 MB on the wire. */
	size_t n = 500000;
	uint8_t *data = malloc(2 * n);
	char *message = NULL;

	(void)state;
	assert_non_null(data);
	for (size_t i = 0; i < n; i++)
		data[2 * i] = 0x22, data[2 * i + 1] = 0;
	assert_int_equal(dispatch(method("/csi.v1.Controller/CreateVolume"), data, 2 * n, &message),
	                 STATUS_RESOURCE_EXHAUSTED);
	assert_non_null(strstr(message, "more than 4096"));
	free(message);
	free(data);
}

static void test_dispatch__malformed_bytes_are_invalid_argument(void **state)
{
	static const uint8_t truncated[] = { 0x22, 0x05, 0x0a };
	char *message = NULL;

	(void)state;
	assert_int_equal(dispatch(method("/csi.v1.Controller/CreateVolume"), truncated,
	                          sizeof(truncated), &message),
	                 STATUS_INVALID_ARGUMENT);
	free(message);
}

static void test_dispatch__identity_still_answers(void **state)
{
	char *message = NULL;

	(void)state;
	assert_int_equal(dispatch(method("/csi.v1.Identity/Probe"), NULL, 0, &message), STATUS_OK);
	free(message);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_dispatch__huge_map_is_refused_before_unpacking),
		cmocka_unit_test(test_dispatch__malformed_bytes_are_invalid_argument),
		cmocka_unit_test(test_dispatch__identity_still_answers),
	};

	log_set_max_level(LOG_LEVEL_ERROR + 1);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
