/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Unit tests for driver/host/throttle.c against FAKE cgroup trees: directories and plain files
 * in a temporary directory shaped like cgroup v1 (blkio) and v2 (io.max) hierarchies as the
 * kubelet lays them out. No real cgroup is touched.
 */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "driver/host/throttle.h"

#define UID  "0c6b4a3e-51a1-4c3b-9d5e-7f0a2b3c4d5e"
#define UID_ "0c6b4a3e_51a1_4c3b_9d5e_7f0a2b3c4d5e"

static char root[64];

static void mkdirs(const char *rel)
{
	char path[512], *p;

	snprintf(path, sizeof(path), "%s/%s", root, rel);
	for (p = path + strlen(root) + 1; (p = strchr(p, '/')); p++) {
		*p = 0;
		assert_true(mkdir(path, 0755) == 0 || errno == EEXIST);
		*p = '/';
	}
	assert_true(mkdir(path, 0755) == 0 || errno == EEXIST);
}

static void touch(const char *rel)
{
	char path[512];
	int fd;

	snprintf(path, sizeof(path), "%s/%s", root, rel);
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	assert_true(fd >= 0);
	close(fd);
}

static char *slurp(const char *rel)
{
	static char buf[256];
	char path[512];
	ssize_t n;
	int fd;

	snprintf(path, sizeof(path), "%s/%s", root, rel);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	assert_true(fd >= 0);
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	assert_true(n >= 0);
	buf[n] = 0;
	return buf;
}

static int setup(void **state)
{
	(void)state;
	snprintf(root, sizeof(root), "/tmp/rbdcsi-throttle.XXXXXX");
	assert_non_null(mkdtemp(root));
	return 0;
}

static int teardown(void **state)
{
	char *argv[] = { (char *)"rm", (char *)"-rf", root, NULL };
	pid_t pid;
	int st;

	(void)state;
	pid = fork();
	if (pid == 0) {
		execv("/bin/rm", argv);
		_exit(127);
	}
	waitpid(pid, &st, 0);
	return 0;
}

static void v1_pod(const char *dir)
{
	char rel[256];
	const char *files[] = { "blkio.throttle.read_iops_device",
		                "blkio.throttle.write_iops_device",
		                "blkio.throttle.read_bps_device",
		                "blkio.throttle.write_bps_device" };

	mkdirs(dir);
	for (size_t i = 0; i < 4; i++) {
		snprintf(rel, sizeof(rel), "%s/%s", dir, files[i]);
		touch(rel);
	}
}

static void test_throttle__pod_uid_validated(void **state)
{
	(void)state;
	assert_true(throttle_pod_uid_valid(UID));
	assert_false(throttle_pod_uid_valid(NULL));
	assert_false(throttle_pod_uid_valid(""));
	assert_false(throttle_pod_uid_valid("0C6B4A3E-51A1-4C3B-9D5E-7F0A2B3C4D5E"));
	assert_false(throttle_pod_uid_valid("0c6b4a3e-51a1-4c3b-9d5e-7f0a2b3c4d5"));
	assert_false(throttle_pod_uid_valid("0c6b4a3e-51a1-4c3b-9d5e-7f0a2b3c4d5e0"));
	assert_false(throttle_pod_uid_valid("../../../../etc/passwd-aaaaaaaaaaaaa"));
	assert_false(throttle_pod_uid_valid("0c6b4a3e/51a1-4c3b-9d5e-7f0a2b3c4d5e"));
	assert_false(throttle_pod_uid_valid("0c6b4a3e-51a1-4c3b-9d5e_7f0a2b3c4d5e"));
	assert_int_equal(throttle_apply(root, "../x", makedev(252, 0),
	                                &(struct throttle_limits){ 1, 1, 1, 1 }, NULL),
	                 -EINVAL);
}

static void test_throttle__v1_refused_nothing_written(void **state)
{
	struct throttle_limits l = { .read_iops = 100, .write_iops = 50, .write_bps = 1048576 };
	char *cg = NULL;

	(void)state;
	v1_pod("blkio/kubepods/burstable/pod" UID);
	assert_int_equal(throttle_apply(root, UID, makedev(252, 16), &l, &cg), -EOPNOTSUPP);
	assert_null(cg);
	assert_string_equal(
	        slurp("blkio/kubepods/burstable/pod" UID "/blkio.throttle.write_iops_device"), "");
}

static void v2_pod(const char *dir)
{
	char rel[256];

	touch("cgroup.controllers");
	mkdirs(dir);
	snprintf(rel, sizeof(rel), "%s/io.max", dir);
	touch(rel);
}

static void test_throttle__v2_cgroupfs_burstable(void **state)
{
	struct throttle_limits l = { .write_iops = 50 };
	char *cg = NULL;

	(void)state;
	v2_pod("kubepods/burstable/pod" UID);
	assert_int_equal(throttle_apply(root, UID, makedev(252, 16), &l, &cg), 0);
	assert_string_equal(cg, "kubepods/burstable/pod" UID);
	free(cg);
	assert_string_equal(slurp("kubepods/burstable/pod" UID "/io.max"),
	                    "252:16 rbps=max wbps=max riops=max wiops=50\n");
}

static void test_throttle__v2_systemd_besteffort(void **state)
{
	struct throttle_limits l = { .read_bps = 7 };

	(void)state;
	v2_pod("kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod" UID_ ".slice");
	assert_int_equal(throttle_apply(root, UID, makedev(8, 0), &l, NULL), 0);
	assert_string_equal(slurp("kubepods.slice/kubepods-besteffort.slice/"
	                          "kubepods-besteffort-pod" UID_ ".slice/io.max"),
	                    "8:0 rbps=7 wbps=max riops=max wiops=max\n");
}

static void test_throttle__v2_io_max(void **state)
{
	struct throttle_limits l = { .read_iops = 10, .write_bps = 2048 };

	(void)state;
	touch("cgroup.controllers");
	mkdirs("kubepods.slice/kubepods-pod" UID_ ".slice");
	touch("kubepods.slice/kubepods-pod" UID_ ".slice/io.max");
	assert_int_equal(throttle_apply(root, UID, makedev(252, 0), &l, NULL), 0);
	assert_string_equal(slurp("kubepods.slice/kubepods-pod" UID_ ".slice/io.max"),
	                    "252:0 rbps=max wbps=2048 riops=10 wiops=max\n");
}

static void test_throttle__missing_pod_and_symlinks_refused(void **state)
{
	struct throttle_limits l = { .read_iops = 1 };
	char target[512], link[512];

	(void)state;
	touch("cgroup.controllers");
	mkdirs("kubepods/burstable");
	assert_int_equal(throttle_apply(root, UID, makedev(252, 0), &l, NULL), -ENOENT);
	/* A symlink planted where a pod cgroup directory is expected is not followed. */
	mkdirs("elsewhere/pod");
	touch("elsewhere/pod/io.max");
	snprintf(target, sizeof(target), "%s/elsewhere/pod", root);
	snprintf(link, sizeof(link), "%s/kubepods/burstable/pod" UID, root);
	assert_int_equal(symlink(target, link), 0);
	assert_int_equal(throttle_apply(root, UID, makedev(252, 0), &l, NULL), -ELOOP);
	assert_string_equal(slurp("elsewhere/pod/io.max"), "");
	/* A symlinked control file is not written through either. */
	assert_int_equal(unlink(link), 0);
	mkdirs("kubepods/burstable/pod" UID);
	snprintf(target, sizeof(target), "%s/elsewhere/pod/io.max", root);
	snprintf(link, sizeof(link), "%s/kubepods/burstable/pod" UID "/io.max", root);
	assert_int_equal(symlink(target, link), 0);
	assert_int_equal(throttle_apply(root, UID, makedev(252, 0), &l, NULL), -ELOOP);
	assert_string_equal(slurp("elsewhere/pod/io.max"), "");
	assert_int_equal(throttle_apply(root, UID, 0, &l, NULL), -EINVAL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_throttle__pod_uid_validated),
		cmocka_unit_test_setup_teardown(test_throttle__v1_refused_nothing_written, setup,
		                                teardown),
		cmocka_unit_test_setup_teardown(test_throttle__v2_cgroupfs_burstable, setup,
		                                teardown),
		cmocka_unit_test_setup_teardown(test_throttle__v2_systemd_besteffort, setup,
		                                teardown),
		cmocka_unit_test_setup_teardown(test_throttle__v2_io_max, setup, teardown),
		cmocka_unit_test_setup_teardown(test_throttle__missing_pod_and_symlinks_refused,
		                                setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
