/* SPDX-License-Identifier: Apache-2.0 */
/* Tests of driver/host/node_doctor.c: stage state files against the mount table. The mount case
 * needs root (a tmpfs); the rest runs anywhere. */
#include <sys/mount.h>

#include "unit/driver/host/host_test.h"
#include "driver/base/sha256.h"
#include "driver/host/node_doctor.h"

static void write_state(const char *dir, const char *volume_id, const char *mapper,
                        const char *phase, const char *staging_path)
{
	char hex[SHA256_HEX_SIZE], path[PATH_MAX];
	FILE *f;

	sha256_hex(volume_id, strlen(volume_id), hex);
	snprintf(path, sizeof(path), "%s/%s.json", dir, hex);
	f = fopen(path, "we");
	assert_non_null(f);
	fprintf(f,
	        "{\"version\": 1, \"volume_id\": \"%s\", \"phase\": \"%s\", \"mapper\": \"%s\", "
	        "\"access\": \"mount\", \"device\": \"/dev/rbd-doctor-none\", \"staging_path\": "
	        "\"%s\", \"pool\": \"rbd\", \"image\": \"csi-vol-x\"%s}",
	        volume_id, phase, mapper, staging_path,
	        strcmp(mapper, "fuse") == 0 ? ", \"fuse\": {\"pid\": 1, \"mount_dir\": \"/nope\"}"
	                                    : "");
	assert_int_equal(fclose(f), 0);
}

static void paths(void **state, char *stage, char *root)
{
	snprintf(stage, PATH_MAX, "%s/stage", ht_dir(state));
	snprintf(root, PATH_MAX, "%s/kubelet/plugins/kubernetes.io/csi/rbdcsi.io", ht_dir(state));
	assert_int_equal(mkdir(stage, 0700), 0);
	assert_int_equal(ht_run("mkdir", "-p", root, NULL), 0);
}

static void test_node_doctor__no_state_dir_is_clean(void **state)
{
	_cleanup_(node_doctor_report_freep) struct node_doctor_report *rep = NULL;
	char dir[PATH_MAX];

	snprintf(dir, sizeof(dir), "%s/missing", ht_dir(state));
	assert_int_equal(node_doctor_run(dir, ht_dir(state), &rep), 0);
	assert_int_equal(rep->n_findings, 0);
	assert_int_equal(rep->n_states, 0);
}

static void test_node_doctor__states_without_mounts_by_mapper(void **state)
{
	_cleanup_(node_doctor_report_freep) struct node_doctor_report *rep = NULL;
	char stage[PATH_MAX], root[PATH_MAX], target[PATH_MAX + 16];

	paths(state, stage, root);
	snprintf(target, sizeof(target), "%s/a/globalmount", root);
	write_state(stage, "vol-a", "krbd", "staged", target);
	write_state(stage, "vol-b", "fuse", "mapping", target);
	write_state(stage, "vol-c", "nbd", "staged", target);
	/* Named like a state file but not one: skipped, not counted. */
	{
		char junk[PATH_MAX + 80];
		FILE *f;

		snprintf(junk, sizeof(junk), "%s/%064d.json", stage, 0);
		f = fopen(junk, "we");
		assert_non_null(f);
		fputs("not json", f);
		assert_int_equal(fclose(f), 0);
	}

	assert_int_equal(node_doctor_run(stage, root, &rep), 0);
	assert_int_equal(rep->n_states, 3);
	assert_int_equal(rep->n_by_mapper[MAPPER_KRBD], 1);
	assert_int_equal(rep->n_by_mapper[MAPPER_FUSE], 1);
	assert_int_equal(rep->n_by_mapper[MAPPER_NBD], 1);
	assert_int_equal(rep->n_abnormal, 3);
	assert_int_equal(rep->n_findings, 3);
	for (size_t i = 0; i < rep->n_findings; i++) {
		assert_int_equal(rep->findings[i].kind, NODE_DOCTOR_STATE_WITHOUT_MOUNT);
		assert_non_null(rep->findings[i].volume_id);
		assert_non_null(strstr(rep->findings[i].path, stage));
	}
	assert_string_equal(node_doctor_kind_to_string(NODE_DOCTOR_MOUNT_WITHOUT_STATE),
	                    "mount_without_state");
	assert_null(node_doctor_kind_to_string(_NODE_DOCTOR_KIND_MAX));
}

static void test_node_doctor__mount_without_state_and_mounted_state(void **state)
{
	_cleanup_(node_doctor_report_freep) struct node_doctor_report *rep = NULL;
	char stage[PATH_MAX], root[PATH_MAX], known[PATH_MAX + 16], stray[PATH_MAX + 16];

	REQUIRE_ROOT();
	paths(state, stage, root);
	snprintf(known, sizeof(known), "%s/known", root);
	snprintf(stray, sizeof(stray), "%s/stray", root);
	assert_int_equal(mkdir(known, 0700), 0);
	assert_int_equal(mkdir(stray, 0700), 0);
	assert_int_equal(mount("tmpfs", known, "tmpfs", 0, "size=1m"), 0);
	assert_int_equal(mount("tmpfs", stray, "tmpfs", 0, "size=1m"), 0);
	/* The state names a device that is not what is mounted: still abnormal. A state without
	 * a device to compare (NULL) would accept any mount; here the mount is the tmpfs. */
	write_state(stage, "vol-known", "krbd", "staged", known);

	assert_int_equal(node_doctor_run(stage, root, &rep), 0);
	assert_int_equal(umount(known), 0);
	assert_int_equal(umount(stray), 0);
	assert_int_equal(rep->n_findings, 2);
	assert_int_equal(rep->findings[0].kind, NODE_DOCTOR_STATE_WITHOUT_MOUNT);
	assert_int_equal(rep->findings[1].kind, NODE_DOCTOR_MOUNT_WITHOUT_STATE);
	assert_string_equal(rep->findings[1].path, stray);
}

static void test_node_doctor__bad_arguments(void **state)
{
	struct node_doctor_report *rep = NULL;

	assert_int_equal(node_doctor_run("relative", "/x", &rep), -EINVAL);
	assert_int_equal(node_doctor_run("/x", NULL, &rep), -EINVAL);
	assert_null(rep);
	assert_null(node_doctor_report_free(NULL));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		HOST_TEST(test_node_doctor__no_state_dir_is_clean),
		HOST_TEST(test_node_doctor__states_without_mounts_by_mapper),
		HOST_TEST(test_node_doctor__mount_without_state_and_mounted_state),
		HOST_TEST(test_node_doctor__bad_arguments),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
