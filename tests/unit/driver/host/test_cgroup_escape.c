/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Tests of driver/host/cgroup_escape.c on a FAKE cgroup tree in a temp dir (plain directories
 * and files laid out like /sys/fs/cgroup): which hierarchies are used, where the pid is
 * written, cpuset inheritance, the sweep. The real move is checked by the Kubernetes e2e
 * (tests/e2e-k8s/run.sh --deployed), where the daemon must survive its container.
 */
#include <sys/stat.h>

#include "unit/driver/host/host_test.h"
#include "driver/base/fileio.h"
#include "driver/host/cgroup_escape.h"

static void put(const char *path, const char *data)
{
	FILE *f = fopen(path, "we");

	assert_non_null(f);
	fputs(data, f);
	fclose(f);
}

static char *get(const char *path)
{
	char *data = NULL;
	size_t size = 0;

	if (fileio_read_full(path, 4096, &data, &size) < 0)
		return NULL;
	return data;
}

static void test_cgroup_escape__moves_where_own_cgroup_is_seen(void **state)
{
	const char *root = ht_dir(state);
	const char *own = "/kubepods/pod1/ctr1";
	char self[PATH_MAX], path[PATH_MAX * 2], cmd[PATH_MAX * 3], buf[32];
	_cleanup_free_ char *procs = NULL, *cpus = NULL;

	/* What /proc/self/cgroup says in the node plugin's container (cgroup v1). */
	snprintf(self, sizeof(self), "%s/self-cgroup", root);
	put(self, "12:memory:/kubepods/pod1/ctr1\n3:cpuset:/kubepods/pod1/ctr1\n"
	          "1:name=systemd:/\n0::/\n");
	/* cpuset: our cgroup is there (we are listed), so the tree shows the real root. */
	snprintf(cmd, sizeof(cmd), "mkdir -p '%s/cpuset%s' '%s/cpuset/%s/rbd-fuse-%d' '%s/systemd'",
	         root, own, root, CGROUP_ESCAPE_PARENT, (int)getpid(), root);
	assert_int_equal(ht_run("sh", "-c", cmd, NULL), 0);
	snprintf(path, sizeof(path), "%s/cpuset%s/cgroup.procs", root, own);
	snprintf(buf, sizeof(buf), "1\n%d\n", (int)getpid());
	put(path, buf);
	snprintf(path, sizeof(path), "%s/cpuset/cpuset.cpus", root);
	put(path, "0-1\n");
	snprintf(path, sizeof(path), "%s/cpuset/cpuset.mems", root);
	put(path, "0\n");
	/* The files the kernel would create in the new cgroups. */
	snprintf(path, sizeof(path), "%s/cpuset/%s/cpuset.cpus", root, CGROUP_ESCAPE_PARENT);
	put(path, "");
	snprintf(path, sizeof(path), "%s/cpuset/%s/cpuset.mems", root, CGROUP_ESCAPE_PARENT);
	put(path, "");
	snprintf(path, sizeof(path), "%s/cpuset/%s/rbd-fuse-%d/cpuset.cpus", root,
	         CGROUP_ESCAPE_PARENT, (int)getpid());
	put(path, "");
	snprintf(path, sizeof(path), "%s/cpuset/%s/rbd-fuse-%d/cpuset.mems", root,
	         CGROUP_ESCAPE_PARENT, (int)getpid());
	put(path, "");
	snprintf(path, sizeof(path), "%s/cpuset/%s/rbd-fuse-%d/cgroup.procs", root,
	         CGROUP_ESCAPE_PARENT, (int)getpid());
	put(path, "");
	/* memory: the directory exists, but our cgroup is not found through it (a container's
	 * own view): not used, nothing created there. name=systemd: we are at its root (nothing
	 * to escape from). */
	snprintf(cmd, sizeof(cmd), "mkdir -p '%s/memory'", root);
	assert_int_equal(ht_run("sh", "-c", cmd, NULL), 0);

	assert_int_equal(cgroup_escape_move_at(root, self, getpid(), "rbd-fuse"), 1);
	procs = get(path);
	snprintf(buf, sizeof(buf), "%d\n", (int)getpid());
	assert_string_equal(procs, buf);
	snprintf(path, sizeof(path), "%s/cpuset/%s/rbd-fuse-%d/cpuset.cpus", root,
	         CGROUP_ESCAPE_PARENT, (int)getpid());
	cpus = get(path);
	assert_string_equal(cpus, "0-1");
	snprintf(path, sizeof(path), "%s/memory/%s", root, CGROUP_ESCAPE_PARENT);
	assert_int_equal(access(path, F_OK), -1);
	snprintf(path, sizeof(path), "%s/systemd/%s", root, CGROUP_ESCAPE_PARENT);
	assert_int_equal(access(path, F_OK), -1);
}

static void test_cgroup_escape__sweep_removes_only_empty(void **state)
{
	const char *root = ht_dir(state);
	char cmd[PATH_MAX * 2], path[PATH_MAX];

	snprintf(cmd, sizeof(cmd),
	         "mkdir -p '%s/pids/%s/rbd-fuse-1' '%s/pids/%s/rbd-fuse-2' '%s/pids/other' && "
	         "touch '%s/pids/%s/rbd-fuse-2/cgroup.procs'",
	         root, CGROUP_ESCAPE_PARENT, root, CGROUP_ESCAPE_PARENT, root, root,
	         CGROUP_ESCAPE_PARENT);
	assert_int_equal(ht_run("sh", "-c", cmd, NULL), 0);
	cgroup_escape_sweep_at(root);
	snprintf(path, sizeof(path), "%s/pids/%s/rbd-fuse-1", root, CGROUP_ESCAPE_PARENT);
	assert_int_equal(access(path, F_OK), -1);
	snprintf(path, sizeof(path), "%s/pids/%s/rbd-fuse-2", root, CGROUP_ESCAPE_PARENT);
	assert_int_equal(access(path, F_OK), 0);
	snprintf(path, sizeof(path), "%s/pids/other", root);
	assert_int_equal(access(path, F_OK), 0);
}

static void test_cgroup_escape__bad_arguments(void **state)
{
	const char *root = ht_dir(state);

	const char *self = "/proc/self/cgroup";

	assert_int_equal(cgroup_escape_move_at(root, self, 0, "rbd-fuse"), -EINVAL);
	assert_int_equal(cgroup_escape_move_at(root, self, getpid(), "../x"), -EINVAL);
	assert_int_equal(cgroup_escape_move_at(root, self, getpid(), ""), -EINVAL);
	assert_int_equal(cgroup_escape_move_at(root, self, getpid(), "A"), -EINVAL);
	assert_int_equal(cgroup_escape_move_at(NULL, self, getpid(), "rbd-fuse"), -EINVAL);
	/* An empty tree: nothing usable, nothing done. */
	assert_int_equal(cgroup_escape_move_at(root, self, getpid(), "rbd-fuse"), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		HOST_TEST(test_cgroup_escape__moves_where_own_cgroup_is_seen),
		HOST_TEST(test_cgroup_escape__sweep_removes_only_empty),
		HOST_TEST(test_cgroup_escape__bad_arguments),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
