/* SPDX-License-Identifier: Apache-2.0 */
/* Unit tests of plugin/config.c: the cluster configuration file. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "driver/base/log.h"
#include "plugin/config.h"

static char path[] = "/tmp/rbdcsi-test-config.XXXXXX";

static void write_text(const char *text)
{
	FILE *f = fopen(path, "we");

	assert_non_null(f);
	fputs(text, f);
	fclose(f);
}

static int setup(void **state)
{
	int fd = mkstemp(path);

	(void)state;
	if (fd < 0)
		return -1;
	close(fd);
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	unlink(path);
	return 0;
}

static void test_config__valid_file(void **state)
{
	struct config *c = NULL;
	struct config_cluster cl;
	char *err = NULL;

	(void)state;
	write_text(
	        "[{\"clusterID\": \"a\", \"monitors\": [\"1.2.3.4:6789\", \"1.2.3.5:6789\"]},\n"
	        " {\"clusterID\": \"b\", \"monitors\": [\"[v2:127.0.0.1:3300,v1:127.0.0.1:6789]\"],"
	        " \"radosNamespace\": \"ns\"}]");
	assert_int_equal(config_load(path, &c, &err), 0);
	assert_int_equal(config_n_clusters(c), 2);
	assert_int_equal(config_get_cluster(c, "a", &cl), 0);
	assert_string_equal(cl.mon_host, "1.2.3.4:6789,1.2.3.5:6789");
	assert_null(cl.rados_namespace);
	config_cluster_done(&cl);
	assert_int_equal(config_get_cluster(c, "b", &cl), 0);
	assert_string_equal(cl.rados_namespace, "ns");
	config_cluster_done(&cl);
	assert_int_equal(config_get_cluster(c, "zzz", &cl), -ENOENT);
	config_free(c);
}

static void test_config__errors_name_line_and_field(void **state)
{
	static const struct {
		const char *text;
		const char *want;
	} cases[] = {
		{ "{}", ":1: the top level must be a list" },
		{ "[\n{\"clusterID\": \"a\",\n\"monitors\": []}]",
		  ":3: entry 0, field 'monitors'" },
		{ "[{\"clusterID\": \"a\", \"monitors\": [\"x:1\"]},\n{\"clusterID\": \"a\", "
		  "\"monitors\": [\"y:1\"]}]",
		  ":2: entry 1, field 'clusterID': duplicate" },
		{ "[{\"clusterID\": \"has space\", \"monitors\": [\"x:1\"]}]",
		  "field 'clusterID'" },
		{ "[{\"monitors\": [\"x:1\"]}]", "field 'clusterID'" },
		{ "[{\"clusterID\": \"a\", \"monitors\": [\"x:1\"], \"extra\": 1}]",
		  "field 'extra': unknown field" },
		{ "[{\"clusterID\": \"a\",\n\n \"monitors\": [\"x:1\" \"y\"]}]",
		  ":3: invalid JSON" },
		{ "[] trailing", "unexpected text" },
		{ "[{\"clusterID\": \"a\", \"monitors\": [\"a,b\"]}]", "field 'monitors'" },
	};

	(void)state;
	for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
		struct config *c = NULL;
		char *err = NULL;

		write_text(cases[i].text);
		assert_int_equal(config_load(path, &c, &err), -EINVAL);
		assert_non_null(err);
		if (!strstr(err, cases[i].want))
			fail_msg("case %zu: '%s' does not contain '%s'", i, err, cases[i].want);
		assert_non_null(strstr(err, path));
		free(err);
	}
}

static void test_config__refresh_keeps_last_good(void **state)
{
	struct config *c = NULL;
	struct config_cluster cl;
	char *err = NULL;

	(void)state;
	write_text("[{\"clusterID\": \"a\", \"monitors\": [\"x:1\"]}]");
	assert_int_equal(config_load(path, &c, &err), 0);
	usleep(20000);
	write_text("[{\"clusterID\": \"b\", \"monitors\": [\"x:2\"]}, ");
	config_refresh(c);
	assert_int_equal(config_get_cluster(c, "a", &cl), 0);
	config_cluster_done(&cl);
	usleep(20000);
	write_text("[{\"clusterID\": \"b\", \"monitors\": [\"x:2\"]}]");
	config_refresh(c);
	assert_int_equal(config_get_cluster(c, "a", &cl), -ENOENT);
	assert_int_equal(config_get_cluster(c, "b", &cl), 0);
	config_cluster_done(&cl);
	config_free(c);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_config__valid_file),
		cmocka_unit_test(test_config__errors_name_line_and_field),
		cmocka_unit_test(test_config__refresh_keeps_last_good),
	};

	log_set_max_level(_LOG_LEVEL_MAX);
	return cmocka_run_group_tests(tests, setup, teardown);
}
