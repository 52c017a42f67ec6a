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

/* config.json as ceph-csi's deploy/csi-config-map-sample.yaml and Rook write it. */
static void test_config__ceph_csi_and_rook_files(void **state)
{
	struct config *c = NULL;
	struct config_cluster cl;
	char *err = NULL, ignored[256];

	(void)state;
	write_text("[\n"
	           "  {\n"
	           "    \"clusterID\": \"rook-ceph\",\n"
	           "    \"namespace\": \"rook-ceph\",\n"
	           "    \"rbd\": {\n"
	           "      \"netNamespaceFilePath\": "
	           "\"/var/lib/kubelet/plugins/rbd.csi.ceph.com/net\",\n"
	           "      \"radosNamespace\": \"tenant-a\",\n"
	           "      \"mirrorDaemonCount\": 2,\n"
	           "      \"nodePublishSecretRef\": {\"name\": \"s\", \"namespace\": \"n\"}\n"
	           "    },\n"
	           "    \"monitors\": [\"10.0.0.1:6789\", \"10.0.0.2:6789\"],\n"
	           "    \"cephFS\": {\"subvolumeGroup\": \"csi\", \"kernelMountOptions\": \"\",\n"
	           "               \"fuseMountOptions\": \"\", \"radosNamespace\": \"x\"},\n"
	           "    \"nfs\": {\"netNamespaceFilePath\": \"\"},\n"
	           "    \"readAffinity\": {\"enabled\": \"false\", \"crushLocationLabels\": []}\n"
	           "  },\n"
	           "  {\"clusterID\": \"plain\", \"monitors\": [\"10.0.0.9:6789\"], \"rbd\": {}},\n"
	           "  {\"clusterID\": \"empty-ns\", \"monitors\": [\"10.0.0.9:6789\"],\n"
	           "   \"rbd\": {\"radosNamespace\": \"\"}, \"cephFS\": {}}\n"
	           "]\n");
	assert_int_equal(config_load(path, &c, &err), 0);
	assert_null(err);
	assert_int_equal(config_n_clusters(c), 3);
	assert_int_equal(config_get_cluster(c, "rook-ceph", &cl), 0);
	assert_string_equal(cl.mon_host, "10.0.0.1:6789,10.0.0.2:6789");
	assert_string_equal(cl.rados_namespace, "tenant-a");
	assert_int_equal(cl.mirror_daemon_count, 2);
	config_cluster_done(&cl);
	assert_int_equal(config_get_cluster(c, "plain", &cl), 0);
	assert_null(cl.rados_namespace);
	assert_int_equal(cl.mirror_daemon_count, 0);
	config_cluster_done(&cl);
	assert_int_equal(config_get_cluster(c, "empty-ns", &cl), 0);
	assert_null(cl.rados_namespace);
	config_cluster_done(&cl);
	/* One list for the one info line, each field once. */
	config_ignored_fields(c, ignored, sizeof(ignored));
	assert_string_equal(ignored, "namespace, cephFS, nfs, readAffinity, "
	                             "rbd.netNamespaceFilePath, rbd.nodePublishSecretRef");
	config_free(c);

	/* A file with nothing foreign has nothing to report. */
	write_text("[{\"clusterID\": \"a\", \"monitors\": [\"x:1\"], \"radosNamespace\": \"ns\",\n"
	           "  \"rbd\": {\"radosNamespace\": \"ns\"}}]");
	assert_int_equal(config_load(path, &c, &err), 0);
	config_ignored_fields(c, ignored, sizeof(ignored));
	assert_string_equal(ignored, "");
	assert_int_equal(config_get_cluster(c, "a", &cl), 0);
	assert_string_equal(cl.rados_namespace, "ns");
	config_cluster_done(&cl);
	config_free(c);
}

/* Typos inside the fields rbdcsi reads still fail, naming the file, line and field. */
static void test_config__ceph_csi_typos_fail(void **state)
{
	static const struct {
		const char *text;
		const char *want;
	} cases[] = {
		{ "[{\"clusterID\": \"a\", \"monitors\": [\"x:1\"],\n"
		  " \"rbd\": {\n  \"mirrorDaemonCount\": 1,\n  \"radosNamspace\": \"ns\"}}]",
		  ":4: entry 0, field 'rbd.radosNamspace': unknown field" },
		{ "[{\"clusterID\": \"a\", \"monitors\": [\"x:1\"],\n\n"
		  " \"rbd\": {\"radosNamespace\": 5}}]",
		  ":3: entry 0, field 'rbd.radosNamespace'" },
		{ "[{\"clusterID\": \"a\", \"monitors\": [\"x:1\"], \"radosNamespace\": \"p\",\n"
		  " \"rbd\": {\"radosNamespace\": \"q\"}}]",
		  ":2: entry 0, field 'rbd.radosNamespace': contradicts" },
		{ "[{\"clusterID\": \"a\", \"monitors\": [\"x:1\"],\n"
		  " \"rbd\": {\"mirrorDaemonCount\": \"1\"}}]",
		  ":2: entry 0, field 'rbd.mirrorDaemonCount'" },
		{ "[{\"clusterID\": \"a\", \"monitors\": [\"x:1\"], \"rbd\": [1]}]",
		  "field 'rbd': must be an object" },
		{ "[{\"clusterID\": \"a\", \"monitors\": [\"x:1\"],\n \"cephfs\": {}}]",
		  ":2: entry 0, field 'cephfs': unknown field" },
		{ "[{\"clusterID\": \"a\", \"monitors\": [\"x:1\"]},\n"
		  " {\"clusterID\": \"b\", \"monitors\": [\"x:1\"],\n"
		  "  \"rbd\": {\"radosNamespace\": \"a/b\"}}]",
		  ":3: entry 1, field 'rbd.radosNamespace'" },
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
		cmocka_unit_test(test_config__ceph_csi_and_rook_files),
		cmocka_unit_test(test_config__ceph_csi_typos_fail),
	};

	log_set_max_level(_LOG_LEVEL_MAX);
	return cmocka_run_group_tests(tests, setup, teardown);
}
