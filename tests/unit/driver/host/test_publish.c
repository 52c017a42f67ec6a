/* SPDX-License-Identifier: Apache-2.0 */
/* Tests of driver/host/publish.c: the per-volume record of published targets. */
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
#include <sys/types.h>
#include <unistd.h>

#include <cmocka.h>

#include "driver/base/exec.h"
#include "driver/base/fileio.h"
#include "driver/base/macro.h"
#include "driver/base/sha256.h"
#include "driver/host/mount.h"
#include "driver/host/publish.h"
#include "tests/unit/require.h"

static char tmpdir[256];

static int setup(void **state)
{
	(void)state;
	snprintf(tmpdir, sizeof(tmpdir), "/tmp/rbdcsi-test-publish-XXXXXX");
	return mkdtemp(tmpdir) ? 0 : -1;
}

static int teardown(void **state)
{
	char *argv[] = { (char *)"rm", (char *)"-rf", tmpdir, NULL };
	struct exec_result res;

	(void)state;
	if (exec_run(argv, NULL, &res) == 0)
		exec_result_done(&res);
	return 0;
}

static void record_file(const char *volume_id, char *buf, size_t size)
{
	char hex[SHA256_HEX_SIZE];

	sha256_hex(volume_id, strlen(volume_id), hex);
	snprintf(buf, size, "%s/%s.targets", tmpdir, hex);
}

static void test_publish__missing_record_is_empty(void **state)
{
	struct publish_record rec = { 0 };

	(void)state;
	assert_int_equal(publish_load(tmpdir, "never", &rec), 0);
	assert_int_equal(rec.n, 0);
	assert_int_equal(publish_find(&rec, "/k/x"), -ENOENT);
	publish_record_done(&rec);
}

static void test_publish__save_load_round_trip(void **state)
{
	struct publish_record rec = { 0 }, back = { 0 };
	struct publish_target a = { .target = (char *)"/k/pods/a/mount",
		                    .read_only = true,
		                    .devno = 0x700003,
		                    .mounted = true };
	struct publish_target b = { .target = (char *)"/k/pods/b/dev", .block = true, .devno = 7 };
	char file[600];
	struct stat st;

	(void)state;
	assert_int_equal(publish_set(&rec, &a), 0);
	assert_int_equal(publish_set(&rec, &b), 0);
	assert_int_equal(publish_save(tmpdir, "vol-1", &rec), 0);
	record_file("vol-1", file, sizeof(file));
	assert_int_equal(stat(file, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0600);
	assert_int_equal(publish_load(tmpdir, "vol-1", &back), 0);
	assert_int_equal(back.n, 2);
	assert_int_equal(publish_find(&back, "/k/pods/b/dev"), 1);
	assert_string_equal(back.targets[0].target, "/k/pods/a/mount");
	assert_true(back.targets[0].read_only);
	assert_false(back.targets[0].block);
	assert_true(back.targets[0].mounted);
	assert_true(back.targets[0].devno == 0x700003);
	assert_true(back.targets[1].block);
	assert_false(back.targets[1].mounted);
	assert_true(back.targets[1].devno == 7);
	/* another volume's record is its own */
	publish_record_done(&rec);
	assert_int_equal(publish_load(tmpdir, "vol-2", &rec), 0);
	assert_int_equal(rec.n, 0);
	/* removing every target removes the file */
	publish_remove(&back, 0);
	assert_int_equal(back.n, 1);
	assert_string_equal(back.targets[0].target, "/k/pods/b/dev");
	publish_remove(&back, 5); /* out of range: no-op */
	publish_remove(&back, 0);
	assert_int_equal(publish_save(tmpdir, "vol-1", &back), 0);
	assert_int_equal(stat(file, &st), -1);
	publish_record_done(&back);
	publish_record_done(&rec);
}

static void test_publish__set_replaces_by_target(void **state)
{
	struct publish_record rec = { 0 };
	struct publish_target a = { .target = (char *)"/k/t", .mounted = false };

	(void)state;
	assert_int_equal(publish_set(&rec, &a), 0);
	a.mounted = true;
	a.read_only = true;
	assert_int_equal(publish_set(&rec, &a), 0);
	assert_int_equal(rec.n, 1);
	assert_true(rec.targets[0].mounted);
	assert_true(rec.targets[0].read_only);
	a.target = (char *)"";
	assert_int_equal(publish_set(&rec, &a), -EINVAL);
	publish_record_done(&rec);
}

static void test_publish__bounded_number_of_targets(void **state)
{
	struct publish_record rec = { 0 };
	char name[64];

	(void)state;
	for (int i = 0; i < PUBLISH_TARGETS_MAX; i++) {
		struct publish_target t = { .target = name };

		snprintf(name, sizeof(name), "/k/t%d", i);
		assert_int_equal(publish_set(&rec, &t), 0);
	}
	{
		struct publish_target t = { .target = (char *)"/k/one-more" };

		assert_int_equal(publish_set(&rec, &t), -E2BIG);
	}
	publish_record_done(&rec);
}

/* Records of the previous version (written after the bind) have no "mounted" and no "devno". */
static void test_publish__reads_old_records_and_ignores_junk(void **state)
{
	static const char old[] = "[{\"target\":\"/k/old\",\"readonly\":true},{\"nope\":1},"
	                          "{\"target\":42}]";
	struct publish_record rec = { 0 };
	char file[600];

	(void)state;
	record_file("vol-old", file, sizeof(file));
	assert_int_equal(fileio_write_atomic(file, old, strlen(old), 0600), 0);
	assert_int_equal(publish_load(tmpdir, "vol-old", &rec), 0);
	assert_int_equal(rec.n, 1);
	assert_string_equal(rec.targets[0].target, "/k/old");
	assert_true(rec.targets[0].mounted);
	assert_true(rec.targets[0].read_only);
	assert_true(rec.targets[0].devno == 0);
	publish_record_done(&rec);
	assert_int_equal(fileio_write_atomic(file, "{not json", 9, 0600), 0);
	assert_int_equal(publish_load(tmpdir, "vol-old", &rec), 0);
	assert_int_equal(rec.n, 0);
	assert_int_equal(publish_forget(tmpdir, "vol-old"), 0);
	assert_int_equal(publish_forget(tmpdir, "vol-old"), 0);
	assert_int_equal(access(file, F_OK), -1);
}

/* publish_bind() on tmpdir/<name>: fills the request (target resolved beneath tmpdir). */
struct bind_fixture {
	int root_fd;
	struct path_resolved target;
	char path[600];
};

static void fixture_resolve(struct bind_fixture *f, const char *name)
{
	f->target = (struct path_resolved)PATH_RESOLVED_INIT;
	snprintf(f->path, sizeof(f->path), "%s/%s", tmpdir, name);
	assert_int_equal(path_root_open(tmpdir, &f->root_fd), 0);
	assert_int_equal(path_resolve(f->root_fd, tmpdir, f->path, 0, &f->target), 0);
}

static void fixture_done(struct bind_fixture *f)
{
	path_resolved_done(&f->target);
	f->root_fd = safe_close(f->root_fd);
}

/* Needs root: the target is recorded, created, bound and marked mounted, in that order. */
static void test_publish__bind_records_creates_binds_marks(void **state)
{
	struct publish_bind_request req = { .state_dir = tmpdir, .volume_id = "vol-bind" };
	struct publish_record rec = { 0 }, back = { 0 };
	struct bind_fixture f;
	enum publish_step step;
	char src[600], fdtext[PATH_FD_TEXT_MAX];
	_cleanup_close_ int src_fd = -EBADF;
	struct stat st;

	(void)state;
	if (geteuid() != 0)
		TEST_SKIP_NO_ROOT("needs root (bind mount)");
	snprintf(src, sizeof(src), "%s/staging", tmpdir);
	assert_int_equal(mkdir(src, 0755), 0);
	src_fd = open(src, O_PATH | O_DIRECTORY | O_CLOEXEC);
	assert_true(src_fd >= 0);
	assert_int_equal(fstat(src_fd, &st), 0);
	fixture_resolve(&f, "target");
	req.target = &f.target;
	req.source = path_fd_text(src_fd, fdtext);
	req.read_only = true;
	req.devno = st.st_dev;
	assert_int_equal(publish_bind(&req, &rec, &step), 0);
	assert_true(f.target.fd >= 0 && f.target.mountpoint);
	assert_int_equal(publish_load(tmpdir, "vol-bind", &back), 0);
	assert_int_equal(back.n, 1);
	assert_string_equal(back.targets[0].target, f.path);
	assert_true(back.targets[0].mounted);
	assert_true(back.targets[0].read_only);
	assert_false(back.targets[0].block);
	assert_true(back.targets[0].devno == st.st_dev);
	publish_record_done(&back);
	f.target.fd = safe_close(f.target.fd); /* an O_PATH fd keeps the mount busy */
	assert_int_equal(mount_umount(f.path, false), 0);
	publish_record_done(&rec);
	fixture_done(&f);
}

/* Something else at the target: left alone, and the record holds no entry for it. */
static void test_publish__target_in_the_way_is_not_recorded(void **state)
{
	struct publish_bind_request req = { .state_dir = tmpdir, .volume_id = "vol-way" };
	struct publish_record rec = { 0 }, back = { 0 };
	struct bind_fixture f;
	enum publish_step step = PUBLISH_STEP_MARK;
	char file[600];
	struct stat st;

	(void)state;
	snprintf(file, sizeof(file), "%s/a-file", tmpdir);
	assert_int_equal(fileio_write_atomic(file, "x", 1, 0600), 0);
	fixture_resolve(&f, "a-file");
	req.target = &f.target;
	req.source = "/nonexistent";
	assert_int_equal(publish_bind(&req, &rec, &step), -ENOTDIR);
	assert_int_equal(step, PUBLISH_STEP_TARGET);
	assert_int_equal(rec.n, 0);
	assert_int_equal(publish_load(tmpdir, "vol-way", &back), 0);
	assert_int_equal(back.n, 0);
	assert_int_equal(stat(file, &st), 0);
	assert_true(S_ISREG(st.st_mode) && st.st_size == 1);
	publish_record_done(&rec);
	fixture_done(&f);
}

/* A bind that fails takes its entry out of the record again. */
static void test_publish__failed_bind_is_not_recorded(void **state)
{
	struct publish_bind_request req = { .state_dir = tmpdir, .volume_id = "vol-nobind" };
	struct publish_record rec = { 0 }, back = { 0 };
	struct publish_target other = { .target = (char *)"/k/other", .mounted = true };
	struct bind_fixture f;
	enum publish_step step = PUBLISH_STEP_MARK;

	(void)state;
	assert_int_equal(publish_set(&rec, &other), 0);
	fixture_resolve(&f, "nobind");
	req.target = &f.target;
	req.source = "/nonexistent-source";
	assert_true(publish_bind(&req, &rec, &step) < 0);
	assert_int_equal(step, PUBLISH_STEP_BIND);
	assert_int_equal(rec.n, 1);
	assert_int_equal(publish_load(tmpdir, "vol-nobind", &back), 0);
	assert_int_equal(back.n, 1);
	assert_string_equal(back.targets[0].target, "/k/other");
	publish_record_done(&back);
	publish_record_done(&rec);
	fixture_done(&f);
}

/* A full record refuses the target before anything is created. */
static void test_publish__bind_bounded_before_creating(void **state)
{
	struct publish_bind_request req = { .state_dir = tmpdir, .volume_id = "vol-full" };
	struct publish_record rec = { 0 };
	struct bind_fixture f;
	enum publish_step step = PUBLISH_STEP_MARK;
	char name[64];

	(void)state;
	for (int i = 0; i < PUBLISH_TARGETS_MAX; i++) {
		struct publish_target t = { .target = name };

		snprintf(name, sizeof(name), "/k/t%d", i);
		assert_int_equal(publish_set(&rec, &t), 0);
	}
	fixture_resolve(&f, "full");
	req.target = &f.target;
	req.source = "/nonexistent";
	assert_int_equal(publish_bind(&req, &rec, &step), -E2BIG);
	assert_int_equal(step, PUBLISH_STEP_RECORD);
	assert_int_equal(access(f.path, F_OK), -1);
	publish_record_done(&rec);
	fixture_done(&f);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_publish__missing_record_is_empty),
		cmocka_unit_test(test_publish__save_load_round_trip),
		cmocka_unit_test(test_publish__set_replaces_by_target),
		cmocka_unit_test(test_publish__bounded_number_of_targets),
		cmocka_unit_test(test_publish__reads_old_records_and_ignores_junk),
		cmocka_unit_test(test_publish__bind_records_creates_binds_marks),
		cmocka_unit_test(test_publish__target_in_the_way_is_not_recorded),
		cmocka_unit_test(test_publish__failed_bind_is_not_recorded),
		cmocka_unit_test(test_publish__bind_bounded_before_creating),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
