/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Tests of driver/host/mapper_fuse.c against a REAL Ceph cluster (RBDCSI_TEST_MONITORS, _USER,
 * _KEY, _POOL, CEPH_CONF; skipped without them) and real rbd-fuse, loop devices (root).
 */
#include "unit/driver/host/host_test.h"
#include "driver/base/monotonic.h"
#include "driver/host/mapper_fuse.h"
#include "driver/host/mount.h"

#define MiB (1024ULL * 1024ULL)

struct ctx {
	struct ht_ceph ceph;
	char image[128];
	char mount_dir[PATH_MAX];
	struct mapper_params p;
};

static void ctx_init(void **state, struct ctx *c, const char *tag, bool create)
{
	REQUIRE_ROOT();
	memset(c, 0, sizeof(*c));
	ht_ceph_env(&c->ceph);
	ht_image_name(c->image, sizeof(c->image), tag);
	if (create)
		assert_int_equal(ht_rbd(&c->ceph, "create", c->image, "--size=64M"), 0);
	snprintf(c->mount_dir, sizeof(c->mount_dir), "%s/state/fuse/vol", ht_dir(state));
	c->p = (struct mapper_params){
		.monitors = c->ceph.monitors,
		.user = c->ceph.user,
		.key = c->ceph.key,
		.pool = c->ceph.pool,
		.image = c->image,
		.image_size = 64 * MiB,
		.timeout_usec = 20 * USEC_PER_SEC,
	};
}

static void ctx_done(struct ctx *c)
{
	(void)ht_rbd(&c->ceph, "rm", c->image, "--no-progress");
}

/* Nothing of a mapping on mount_dir is left: mount, directory, log, process, loop device. */
static void assert_nothing_left(const struct ctx *c)
{
	char log[PATH_MAX + 8], img[PATH_MAX + 200];
	_cleanup_free_ char *loop = NULL;
	pid_t pid;

	assert_int_equal(mount_is_mountpoint(c->mount_dir), 0);
	assert_int_equal(access(c->mount_dir, F_OK), -1);
	snprintf(log, sizeof(log), "%s.log", c->mount_dir);
	assert_int_equal(access(log, F_OK), -1);
	assert_int_equal(mapper_fuse_find_pid(c->mount_dir, &pid), -ENOENT);
	snprintf(img, sizeof(img), "%s/%s", c->mount_dir, c->image);
	assert_int_equal(loop_find_by_backing_file(img, &loop), -ENOENT);
}

static void fill(char *buf, size_t size, unsigned seed)
{
	for (size_t i = 0; i < size; i++)
		buf[i] = (char)((i * 31 + seed) & 0xff);
}

static void test_mapper_fuse__map_write_unmap_remap(void **state)
{
	struct ctx c;
	struct mapper_fuse_mapping m = { 0 };
	_cleanup_free_ char *reason = NULL;
	static char buf[1 << 20], back[1 << 20];
	struct mapper_fuse_status st;
	bool forced = true;
	uint64_t t0, t_map, t_unmap;
	int fd;

	ctx_init(state, &c, "map", true);
	t0 = monotonic_usec();
	if (mapper_fuse_map(&c.p, c.mount_dir, &m, &reason) < 0)
		fail_msg("map: %s", reason);
	t_map = monotonic_usec() - t0;
	assert_true(m.pid > 0);
	assert_string_equal(m.mount_dir, c.mount_dir);
	assert_non_null(strstr(m.loop_device, "/dev/loop"));
	assert_int_equal(mapper_fuse_pid_matches(m.pid, c.mount_dir), 1);
	assert_int_equal(mapper_fuse_check(c.mount_dir, c.image, m.pid, &st), 0);
	assert_int_equal(st.pid, m.pid);
	assert_true(st.mounted);
	assert_true(st.loop_attached);
	assert_string_equal(st.loop_device, m.loop_device);
	/* It runs in its own session, so it outlives us. */
	assert_int_equal(getsid(m.pid), m.pid);

	fill(buf, sizeof(buf), 7);
	fd = open(m.loop_device, O_WRONLY | O_CLOEXEC);
	assert_true(fd >= 0);
	assert_int_equal(pwrite(fd, buf, sizeof(buf), 3 * MiB), (ssize_t)sizeof(buf));
	assert_int_equal(fsync(fd), 0);
	close(fd);

	t0 = monotonic_usec();
	assert_int_equal(mapper_fuse_unmap(c.mount_dir, c.image, m.pid, m.loop_device,
	                                   10 * USEC_PER_SEC, &forced, &reason),
	                 0);
	t_unmap = monotonic_usec() - t0;
	assert_false(forced);
	assert_nothing_left(&c);
	print_message("rbd-fuse map %llu ms, unmap %llu ms\n", (unsigned long long)(t_map / 1000),
	              (unsigned long long)(t_unmap / 1000));
	mapper_fuse_mapping_done(&m);

	/* Again: the data is in the cluster. */
	if (mapper_fuse_map(&c.p, c.mount_dir, &m, &reason) < 0)
		fail_msg("map: %s", reason);
	fd = open(m.loop_device, O_RDONLY | O_CLOEXEC);
	assert_true(fd >= 0);
	assert_int_equal(pread(fd, back, sizeof(back), 3 * MiB), (ssize_t)sizeof(back));
	close(fd);
	assert_memory_equal(buf, back, sizeof(buf));
	assert_int_equal(mapper_fuse_unmap(c.mount_dir, c.image, m.pid, m.loop_device,
	                                   10 * USEC_PER_SEC, &forced, &reason),
	                 0);
	assert_nothing_left(&c);
	mapper_fuse_mapping_done(&m);
	ctx_done(&c);
}

static bool file_contains(const char *path, const char *needle)
{
	_cleanup_free_ char *data = NULL;
	size_t size = 0;

	if (fileio_read_full(path, 64U * 1024U * 1024U, &data, &size) < 0)
		return false;
	return memmem(data, size, needle, strlen(needle)) != NULL;
}

static void test_mapper_fuse__key_not_in_argv_environment_or_files(void **state)
{
	struct ctx c;
	struct mapper_fuse_mapping m = { 0 };
	_cleanup_free_ char *reason = NULL;
	char path[PATH_MAX + 64], link[PATH_MAX];
	ssize_t n;

	ctx_init(state, &c, "key", true);
	if (mapper_fuse_map(&c.p, c.mount_dir, &m, &reason) < 0)
		fail_msg("map: %s", reason);
	snprintf(path, sizeof(path), "/proc/%d/cmdline", (int)m.pid);
	assert_false(file_contains(path, c.ceph.key));
	assert_true(file_contains(path, "--keyfile=/dev/fd/3"));
	snprintf(path, sizeof(path), "/proc/%d/environ", (int)m.pid);
	assert_false(file_contains(path, c.ceph.key));
	/* Its environment is ours to choose: PATH only. */
	assert_false(file_contains(path, "CEPH_ARGS"));
	snprintf(path, sizeof(path), "%s.log", c.mount_dir);
	assert_false(file_contains(path, c.ceph.key));
	/* fd 3 is an anonymous sealed memfd, no file anywhere. */
	snprintf(path, sizeof(path), "/proc/%d/fd/3", (int)m.pid);
	n = readlink(path, link, sizeof(link) - 1);
	assert_true(n > 0);
	link[n] = 0;
	assert_non_null(strstr(link, "memfd:"));
	assert_int_equal(mapper_fuse_unmap(c.mount_dir, c.image, m.pid, m.loop_device,
	                                   10 * USEC_PER_SEC, NULL, &reason),
	                 0);
	mapper_fuse_mapping_done(&m);
	ctx_done(&c);
}

static void test_mapper_fuse__missing_image(void **state)
{
	struct ctx c;
	struct mapper_fuse_mapping m = { 0 };
	_cleanup_free_ char *reason = NULL;
	char expect[256];

	ctx_init(state, &c, "missing", false);
	/* rbd-fuse mounts an empty directory for a missing image, and exits 0 later. */
	assert_int_equal(mapper_fuse_map(&c.p, c.mount_dir, &m, &reason), -ENOENT);
	snprintf(expect, sizeof(expect), "rbd-fuse: image %s/%s not found", c.ceph.pool, c.image);
	assert_string_equal(reason, expect);
	assert_nothing_left(&c);
}

static void test_mapper_fuse__missing_pool(void **state)
{
	struct ctx c;
	struct mapper_fuse_mapping m = { 0 };
	_cleanup_free_ char *reason = NULL;

	ctx_init(state, &c, "nopool", false);
	/* rbd-fuse mounts, then dies: a dead mount would be left without the check. */
	c.p.pool = "rbdcsi-no-such-pool";
	assert_int_equal(mapper_fuse_map(&c.p, c.mount_dir, &m, &reason), -ENOENT);
	print_message("reason: %s\n", reason);
	assert_non_null(strstr(reason, "pool not found"));
	assert_nothing_left(&c);
}

static void test_mapper_fuse__wrong_key(void **state)
{
	struct ctx c;
	struct mapper_fuse_mapping m = { 0 };
	_cleanup_free_ char *reason = NULL;

	ctx_init(state, &c, "badkey", true);
	/* A well-formed cephx key, not the user's. */
	c.p.key = "AQAAAAAAAAAAABAAMDEyMzQ1Njc4OWFiY2RlZg==";
	assert_int_equal(mapper_fuse_map(&c.p, c.mount_dir, &m, &reason), -EACCES);
	print_message("reason: %s\n", reason);
	assert_null(strstr(reason, c.p.key));
	assert_nothing_left(&c);
	/* A malformed key never reaches rbd-fuse (Ceph would log it verbatim). */
	c.p.key = "AQBzZmFrZWtleWZha2VrZXlmYWtla2V5ZmFrZQ==";
	free(reason);
	reason = NULL;
	assert_int_equal(mapper_fuse_map(&c.p, c.mount_dir, &m, &reason), -EINVAL);
	assert_null(strstr(reason, c.p.key));
	ctx_done(&c);
}

static void test_mapper_fuse__unreachable_monitor_times_out(void **state)
{
	struct ctx c;
	struct mapper_fuse_mapping m = { 0 };
	_cleanup_free_ char *reason = NULL;
	uint64_t t0, elapsed;
	int r;

	ctx_init(state, &c, "nomon", false);
	c.p.monitors = "v1:127.0.0.1:9"; /* nothing listens there */
	c.p.timeout_usec = 3 * USEC_PER_SEC;
	t0 = monotonic_usec();
	r = mapper_fuse_map(&c.p, c.mount_dir, &m, &reason);
	elapsed = monotonic_usec() - t0;
	print_message("after %llu ms: %s\n", (unsigned long long)(elapsed / 1000), reason);
	assert_int_equal(r, -ETIMEDOUT);
	assert_true(elapsed < 10 * USEC_PER_SEC);
	assert_nothing_left(&c);
}

static void test_mapper_fuse__wrong_size(void **state)
{
	struct ctx c;
	struct mapper_fuse_mapping m = { 0 };
	_cleanup_free_ char *reason = NULL;

	ctx_init(state, &c, "size", true);
	c.p.image_size = 128 * MiB;
	assert_int_equal(mapper_fuse_map(&c.p, c.mount_dir, &m, &reason), -EMEDIUMTYPE);
	assert_non_null(strstr(reason, "has 67108864 bytes, expected 134217728"));
	assert_nothing_left(&c);
	ctx_done(&c);
}

static void test_mapper_fuse__killed_daemon_unmap_completes(void **state)
{
	struct ctx c;
	struct mapper_fuse_mapping m = { 0 };
	_cleanup_free_ char *reason = NULL;
	struct mapper_fuse_status st;
	bool forced = true;
	uint64_t t0;

	ctx_init(state, &c, "killed", true);
	if (mapper_fuse_map(&c.p, c.mount_dir, &m, &reason) < 0)
		fail_msg("map: %s", reason);
	assert_int_equal(kill(m.pid, SIGKILL), 0);
	assert_int_equal(exec_pid_wait_exit(m.pid, 5 * USEC_PER_SEC, NULL), 0);
	assert_int_equal(mapper_fuse_check(c.mount_dir, c.image, m.pid, &st), 0);
	assert_int_equal(st.pid, 0);
	assert_true(st.mounted); /* a dead mount: "Transport endpoint is not connected" */
	assert_true(st.loop_attached);
	t0 = monotonic_usec();
	assert_int_equal(mapper_fuse_unmap(c.mount_dir, c.image, m.pid, m.loop_device,
	                                   10 * USEC_PER_SEC, &forced, &reason),
	                 0);
	print_message("unmap after kill: %llu ms\n",
	              (unsigned long long)((monotonic_usec() - t0) / 1000));
	assert_false(forced);
	assert_nothing_left(&c);
	mapper_fuse_mapping_done(&m);
	ctx_done(&c);
}

static void test_mapper_fuse__hung_daemon_unmap_is_forced_within_bound(void **state)
{
	struct ctx c;
	struct mapper_fuse_mapping m = { 0 };
	_cleanup_free_ char *reason = NULL;
	bool forced = false;
	uint64_t t0, elapsed;

	ctx_init(state, &c, "hung", true);
	if (mapper_fuse_map(&c.p, c.mount_dir, &m, &reason) < 0)
		fail_msg("map: %s", reason);
	/* A daemon that answers nothing (what a dead cluster looks like from here). */
	assert_int_equal(kill(m.pid, SIGSTOP), 0);
	t0 = monotonic_usec();
	assert_int_equal(mapper_fuse_unmap(c.mount_dir, c.image, m.pid, m.loop_device,
	                                   3 * USEC_PER_SEC, &forced, &reason),
	                 0);
	elapsed = monotonic_usec() - t0;
	print_message("unmap of a stopped daemon: %llu ms, forced=%d\n",
	              (unsigned long long)(elapsed / 1000), forced);
	assert_true(forced);
	assert_true(elapsed < 10 * USEC_PER_SEC);
	assert_nothing_left(&c);
	/* Killed and reaped: not even a zombie. */
	assert_int_equal(kill(m.pid, 0), -1);
	assert_int_equal(errno, ESRCH);
	mapper_fuse_mapping_done(&m);
	ctx_done(&c);
}

static void test_mapper_fuse__unmap_without_pid_or_loop_finds_them(void **state)
{
	struct ctx c;
	struct mapper_fuse_mapping m = { 0 };
	_cleanup_free_ char *reason = NULL;
	pid_t found = 0;

	ctx_init(state, &c, "nopid", true);
	if (mapper_fuse_map(&c.p, c.mount_dir, &m, &reason) < 0)
		fail_msg("map: %s", reason);
	assert_int_equal(mapper_fuse_find_pid(c.mount_dir, &found), 0);
	assert_int_equal(found, m.pid);
	/* As after a crash before the pid and loop device were recorded. */
	assert_int_equal(
	        mapper_fuse_unmap(c.mount_dir, c.image, 0, NULL, 10 * USEC_PER_SEC, NULL, &reason),
	        0);
	assert_nothing_left(&c);
	/* Nothing to do is success. */
	assert_int_equal(
	        mapper_fuse_unmap(c.mount_dir, c.image, 0, NULL, USEC_PER_SEC, NULL, &reason), 0);
	mapper_fuse_mapping_done(&m);
	ctx_done(&c);
}

static void test_mapper_fuse__rados_namespace(void **state)
{
	struct ctx c;
	struct mapper_fuse_mapping m = { 0 };
	_cleanup_free_ char *reason = NULL;
	char spec[256], ns[64];

	ctx_init(state, &c, "ns", false);
	snprintf(ns, sizeof(ns), "rbdcsi-ns-%d", (int)getpid());
	snprintf(spec, sizeof(spec), "%s/%s", c.ceph.pool, ns);
	assert_int_equal(ht_run("rbd", "-c", c.ceph.conf, "namespace", "create", spec, NULL), 0);
	snprintf(spec, sizeof(spec), "%s/%s/%s", c.ceph.pool, ns, c.image);
	assert_int_equal(ht_run("rbd", "-c", c.ceph.conf, "create", spec, "--size=64M", NULL), 0);
	c.p.rados_namespace = ns;
	if (mapper_fuse_map(&c.p, c.mount_dir, &m, &reason) < 0)
		fail_msg("map: %s", reason);
	assert_int_equal(mapper_fuse_unmap(c.mount_dir, c.image, m.pid, m.loop_device,
	                                   10 * USEC_PER_SEC, NULL, &reason),
	                 0);
	assert_nothing_left(&c);
	mapper_fuse_mapping_done(&m);
	/* In the default namespace it does not exist. */
	c.p.rados_namespace = NULL;
	assert_int_equal(mapper_fuse_map(&c.p, c.mount_dir, &m, &reason), -ENOENT);
	assert_int_equal(ht_run("rbd", "-c", c.ceph.conf, "rm", "--no-progress", spec, NULL), 0);
	snprintf(spec, sizeof(spec), "%s/%s", c.ceph.pool, ns);
	assert_int_equal(ht_run("rbd", "-c", c.ceph.conf, "namespace", "remove", spec, NULL), 0);
}

static void test_mapper_fuse__busy_mount_dir_refused(void **state)
{
	struct ctx c;
	struct mapper_fuse_mapping m = { 0 };
	_cleanup_free_ char *reason = NULL;

	ctx_init(state, &c, "busy", false);
	assert_int_equal(fileio_mkdir_p(c.mount_dir, 0700), 0);
	assert_int_equal(mount("tmpfs", c.mount_dir, "tmpfs", 0, NULL), 0);
	assert_int_equal(mapper_fuse_map(&c.p, c.mount_dir, &m, &reason), -EBUSY);
	assert_int_equal(mount_umount(c.mount_dir, false), 0);
	c.p.map_options = "x";
	assert_int_equal(mapper_fuse_map(&c.p, c.mount_dir, &m, &reason), -EINVAL);
	c.p.map_options = NULL;
	assert_int_equal(mapper_fuse_map(&c.p, "relative/dir", &m, &reason), -EINVAL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		HOST_TEST(test_mapper_fuse__map_write_unmap_remap),
		HOST_TEST(test_mapper_fuse__key_not_in_argv_environment_or_files),
		HOST_TEST(test_mapper_fuse__missing_image),
		HOST_TEST(test_mapper_fuse__missing_pool),
		HOST_TEST(test_mapper_fuse__wrong_key),
		HOST_TEST(test_mapper_fuse__unreachable_monitor_times_out),
		HOST_TEST(test_mapper_fuse__wrong_size),
		HOST_TEST(test_mapper_fuse__killed_daemon_unmap_completes),
		HOST_TEST(test_mapper_fuse__hung_daemon_unmap_is_forced_within_bound),
		HOST_TEST(test_mapper_fuse__unmap_without_pid_or_loop_finds_them),
		HOST_TEST(test_mapper_fuse__rados_namespace),
		HOST_TEST(test_mapper_fuse__busy_mount_dir_refused),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
