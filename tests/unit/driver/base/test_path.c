/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Tests of driver/base/path.c: request paths resolved beneath a root fd without following
 * symlinks, by openat2(2) and by the O_PATH|O_NOFOLLOW walk (PATH_WALK), which must agree.
 * The mount cases need root (CAP_SYS_ADMIN) and skip without it.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "driver/base/exec.h"
#include "driver/base/macro.h"
#include "driver/base/path.h"
#include "tests/unit/require.h"

static char tmpdir[256];  /* holds root/ and outside/ */
static char root[300];    /* the "kubelet dir" */
static char outside[300]; /* a directory outside it */
static int root_fd = -1;

static void mkpath(char *buf, size_t size, const char *rel)
{
	snprintf(buf, size, "%s/%s", root, rel);
}

static int setup(void **state)
{
	(void)state;
	snprintf(tmpdir, sizeof(tmpdir), "/tmp/rbdcsi-test-path-XXXXXX");
	if (!mkdtemp(tmpdir))
		return -1;
	snprintf(root, sizeof(root), "%s/kubelet", tmpdir);
	snprintf(outside, sizeof(outside), "%s/outside", tmpdir);
	if (mkdir(root, 0755) < 0 || mkdir(outside, 0755) < 0)
		return -1;
	return path_root_open(root, &root_fd);
}

static int teardown(void **state)
{
	char *argv[] = { (char *)"rm", (char *)"-rf", (char *)"--one-file-system", tmpdir, NULL };
	struct exec_result res;

	(void)state;
	safe_close(root_fd);
	root_fd = -1;
	if (exec_run(argv, NULL, &res) == 0)
		exec_result_done(&res);
	return 0;
}

/* Resolves by both methods; both must give r (and the same object when r == 0). */
static int resolve_both(const char *path, struct path_resolved *ret)
{
	struct path_resolved a = PATH_RESOLVED_INIT, b = PATH_RESOLVED_INIT;
	int ra = path_resolve(root_fd, root, path, 0, &a);
	int rb = path_resolve(root_fd, root, path, PATH_WALK, &b);

	assert_int_equal(ra, rb);
	if (ra == 0) {
		assert_string_equal(a.text, b.text);
		assert_string_equal(a.name, b.name);
		assert_int_equal(a.fd < 0, b.fd < 0);
		if (a.fd >= 0) {
			assert_true(a.st.st_ino == b.st.st_ino);
			assert_true(a.st.st_dev == b.st.st_dev);
		}
		path_resolved_done(&b);
		*ret = a;
	}
	return ra;
}

static void test_path__resolves_plain_path_and_missing_last(void **state)
{
	struct path_resolved p = PATH_RESOLVED_INIT;
	char dir[1100], path[1100];

	(void)state;
	mkpath(dir, sizeof(dir), "pods");
	assert_int_equal(mkdir(dir, 0755), 0);
	mkpath(path, sizeof(path), "pods/target");
	assert_int_equal(resolve_both(path, &p), 0);
	assert_int_equal(p.fd, -1);
	assert_string_equal(p.name, "target");
	assert_string_equal(p.text, path);
	assert_int_equal(path_mkdir(&p, 0750), 0);
	assert_true(p.fd >= 0);
	assert_true(S_ISDIR(p.st.st_mode));
	assert_false(p.mountpoint);
	/* mkdir again is fine (existing directory) */
	assert_int_equal(path_mkdir(&p, 0750), 0);
	assert_int_equal(path_remove(&p), 0);
	assert_int_equal(p.fd, -1);
	assert_int_equal(access(path, F_OK), -1);
	path_resolved_done(&p);
}

static void test_path__normalises_double_and_trailing_slashes(void **state)
{
	struct path_resolved p = PATH_RESOLVED_INIT;
	char path[1100], want[1100];

	(void)state;
	snprintf(path, sizeof(path), "%s//a/", root);
	mkpath(want, sizeof(want), "a");
	assert_int_equal(resolve_both(path, &p), 0);
	assert_string_equal(p.text, want);
	assert_string_equal(p.name, "a");
	path_resolved_done(&p);
}

static void test_path__refuses_the_root_itself(void **state)
{
	static const char *const forms[] = { "", "/", "//", "/.", "/./", "/.//" };
	struct path_resolved p = PATH_RESOLVED_INIT;
	char path[1100];

	(void)state;
	for (size_t i = 0; i < ELEMENTSOF(forms); i++) {
		snprintf(path, sizeof(path), "%s%s", root, forms[i]);
		assert_int_equal(resolve_both(path, &p), -EINVAL);
	}
}

static void test_path__refuses_dot_dot_and_outside_and_relative(void **state)
{
	struct path_resolved p = PATH_RESOLVED_INIT;
	char path[1100];

	(void)state;
	mkpath(path, sizeof(path), "../outside/x");
	assert_int_equal(resolve_both(path, &p), -EINVAL);
	mkpath(path, sizeof(path), "a/../../outside");
	assert_int_equal(resolve_both(path, &p), -EINVAL);
	mkpath(path, sizeof(path), "a/./b");
	assert_int_equal(resolve_both(path, &p), -EINVAL);
	snprintf(path, sizeof(path), "%s/x", outside);
	assert_int_equal(resolve_both(path, &p), -EINVAL);
	/* a sibling sharing the root's text as a prefix */
	snprintf(path, sizeof(path), "%sfoo/x", root);
	assert_int_equal(resolve_both(path, &p), -EINVAL);
	assert_int_equal(resolve_both("relative/x", &p), -EINVAL);
	assert_int_equal(resolve_both("", &p), -EINVAL);
	mkpath(path, sizeof(path), "a\nb");
	assert_int_equal(resolve_both(path, &p), -EINVAL);
}

/* K/s/d1/x with each component in turn a symlink to outside/ (which has d1/ and x): refused
 * by both methods, and nothing is created outside. */
static void test_path__refuses_a_symlink_in_every_component(void **state)
{
	static const char *const comps[] = { "s", "s/d1", "s/d1/x" };
	struct path_resolved p = PATH_RESOLVED_INIT;
	char path[1100], odir[1100], probe[1100];

	(void)state;
	snprintf(odir, sizeof(odir), "%s/d1", outside);
	assert_int_equal(mkdir(odir, 0755), 0);
	for (size_t pos = 0; pos < ELEMENTSOF(comps); pos++) {
		for (size_t i = 0; i < pos; i++) {
			mkpath(path, sizeof(path), comps[i]);
			assert_int_equal(mkdir(path, 0755), 0);
		}
		mkpath(path, sizeof(path), comps[pos]);
		assert_int_equal(symlink(pos == 2 ? odir : outside, path), 0);
		mkpath(path, sizeof(path), "s/d1/x");
		assert_int_equal(resolve_both(path, &p), -ELOOP);
		mkpath(path, sizeof(path), "s/d1/x/y");
		assert_int_equal(resolve_both(path, &p), -ELOOP);
		snprintf(probe, sizeof(probe), "%s/d1/x", outside);
		assert_int_equal(access(probe, F_OK), -1);
		/* clean up: the link, then the directories */
		mkpath(path, sizeof(path), comps[pos]);
		assert_int_equal(unlink(path), 0);
		for (size_t i = pos; i-- > 0;) {
			mkpath(path, sizeof(path), comps[i]);
			assert_int_equal(rmdir(path), 0);
		}
	}
	assert_int_equal(rmdir(odir), 0);
}

/* ln -s /etc K/evil; K/evil/x must not resolve (a dangling absolute link too). */
static void test_path__refuses_absolute_symlink_to_etc(void **state)
{
	struct path_resolved p = PATH_RESOLVED_INIT;
	char link[1100], path[1100];

	(void)state;
	mkpath(link, sizeof(link), "evil");
	assert_int_equal(symlink("/etc", link), 0);
	mkpath(path, sizeof(path), "evil/x");
	assert_int_equal(resolve_both(path, &p), -ELOOP);
	assert_int_equal(resolve_both(link, &p), -ELOOP);
	assert_int_equal(unlink(link), 0);
}

static void test_path__missing_parent_is_enoent(void **state)
{
	struct path_resolved p = PATH_RESOLVED_INIT;
	char path[1100];

	(void)state;
	mkpath(path, sizeof(path), "nope/x");
	assert_int_equal(resolve_both(path, &p), -ENOENT);
}

/* Resolved, then the parent is swapped for a symlink: acting on what was resolved stays in
 * the old directory, and nothing happens through the link. */
static void test_path__swapped_in_symlink_is_not_followed(void **state)
{
	struct path_resolved p = PATH_RESOLVED_INIT;
	char dir[1100], moved[1100], path[1100], out[1200];

	(void)state;
	mkpath(dir, sizeof(dir), "swap");
	mkpath(moved, sizeof(moved), "swap-old");
	assert_int_equal(mkdir(dir, 0755), 0);
	mkpath(path, sizeof(path), "swap/t");
	assert_int_equal(path_resolve(root_fd, root, path, 0, &p), 0);
	assert_int_equal(rename(dir, moved), 0);
	assert_int_equal(symlink(outside, dir), 0);
	assert_int_equal(path_mkdir(&p, 0750), 0);
	snprintf(out, sizeof(out), "%s/t", outside);
	assert_int_equal(access(out, F_OK), -1);
	snprintf(out, sizeof(out), "%s/t", moved);
	assert_int_equal(access(out, F_OK), 0);
	/* and the same path resolved now is refused */
	{
		struct path_resolved q = PATH_RESOLVED_INIT;

		assert_int_equal(path_resolve(root_fd, root, path, 0, &q), -ELOOP);
		assert_int_equal(path_resolve(root_fd, root, path, PATH_WALK, &q), -ELOOP);
	}
	assert_int_equal(path_remove(&p), 0);
	assert_int_equal(access(out, F_OK), -1);
	path_resolved_done(&p);
	assert_int_equal(unlink(dir), 0);
	assert_int_equal(rmdir(moved), 0);
}

/* The last component replaced by another object after resolution: remove refuses it. */
static void test_path__remove_refuses_a_replaced_object(void **state)
{
	struct path_resolved p = PATH_RESOLVED_INIT;
	char path[1100];
	int fd;

	(void)state;
	mkpath(path, sizeof(path), "repl");
	assert_int_equal(mkdir(path, 0755), 0);
	assert_int_equal(path_resolve(root_fd, root, path, 0, &p), 0);
	assert_int_equal(rmdir(path), 0);
	fd = open(path, O_CREAT | O_WRONLY | O_CLOEXEC, 0600);
	assert_true(fd >= 0);
	close(fd);
	assert_int_equal(path_remove(&p), -ESTALE);
	assert_int_equal(access(path, F_OK), 0);
	path_resolved_done(&p);
	/* a symlink as last component is ELOOP, and never removed */
	assert_int_equal(unlink(path), 0);
	assert_int_equal(symlink(outside, path), 0);
	assert_int_equal(path_resolve(root_fd, root, path, 0, &p), -ELOOP);
	assert_int_equal(unlink(path), 0);
}

static void test_path__create_file_and_refusals(void **state)
{
	struct path_resolved p = PATH_RESOLVED_INIT;
	char path[1100];

	(void)state;
	mkpath(path, sizeof(path), "blk");
	assert_int_equal(path_resolve(root_fd, root, path, PATH_WALK, &p), 0);
	assert_int_equal(path_create_file(&p, 0640), 0);
	assert_true(S_ISREG(p.st.st_mode));
	assert_int_equal(path_create_file(&p, 0640), 0);
	assert_int_equal(path_mkdir(&p, 0750), -ENOTDIR);
	assert_int_equal(path_remove(&p), 0);
	assert_int_equal(path_mkdir(&p, 0750), 0);
	assert_int_equal(path_create_file(&p, 0640), -EISDIR);
	assert_int_equal(path_remove(&p), 0);
	path_resolved_done(&p);
}

/* A non-empty directory is never removed. */
static void test_path__remove_keeps_non_empty_directory(void **state)
{
	struct path_resolved p = PATH_RESOLVED_INIT;
	char path[1100], file[1100];
	int fd;

	(void)state;
	mkpath(path, sizeof(path), "full");
	mkpath(file, sizeof(file), "full/data");
	assert_int_equal(mkdir(path, 0755), 0);
	fd = open(file, O_CREAT | O_WRONLY | O_CLOEXEC, 0600);
	assert_true(fd >= 0);
	close(fd);
	assert_int_equal(path_resolve(root_fd, root, path, 0, &p), 0);
	assert_int_equal(path_remove(&p), -ENOTEMPTY);
	assert_int_equal(access(file, F_OK), 0);
	path_resolved_done(&p);
}

/* Needs root: a mount point is told by mount id, never removed, and mounting through the fd
 * text lands on the object resolved even after the path was swapped. */
static void test_path__mountpoint_by_mount_id(void **state)
{
	struct path_resolved p = PATH_RESOLVED_INIT;
	char path[1100], fdtext[PATH_FD_TEXT_MAX], moved[1100];

	(void)state;
	if (geteuid() != 0) {
		TEST_SKIP_NO_ROOT("needs root (mount)");
		return;
	}
	mkpath(path, sizeof(path), "mnt");
	mkpath(moved, sizeof(moved), "mnt-old");
	assert_int_equal(mkdir(path, 0755), 0);
	assert_int_equal(path_resolve(root_fd, root, path, 0, &p), 0);
	assert_false(p.mountpoint);
	/* swap the path for a symlink to outside/, then mount through the fd */
	assert_int_equal(rename(path, moved), 0);
	assert_int_equal(symlink(outside, path), 0);
	assert_int_equal(mount("tmpfs", path_fd_text(p.fd, fdtext), "tmpfs", 0, "size=1m"), 0);
	{
		struct stat a, b;

		assert_int_equal(stat(outside, &a), 0);
		assert_int_equal(stat(moved, &b), 0);
		assert_true(a.st_dev != b.st_dev); /* outside/ untouched, mnt-old/ is the mount */
	}
	/* the name now is the symlink: refresh refuses it */
	assert_int_equal(path_refresh(&p), -ELOOP);
	path_resolved_done(&p);
	assert_int_equal(unlink(path), 0);
	assert_int_equal(path_resolve(root_fd, root, moved, PATH_WALK, &p), 0);
	assert_true(p.mountpoint);
	assert_int_equal(path_remove(&p), -EBUSY);
	/* unmount through the parent's fd */
	assert_int_equal(path_umount(&p, 0), 0);
	assert_false(p.mountpoint);
	assert_true(p.fd >= 0);
	assert_int_equal(path_umount(&p, 0), -EINVAL);
	assert_int_equal(path_remove(&p), 0);
	path_resolved_done(&p);
}

/* The text predicates that mount.c, mapper_fuse.c, node_doctor.c and stage.c share. */
static void test_path__text_predicates(void **state)
{
	char longp[PATH_MAX + 2];

	(void)state;
	assert_true(path_is_absolute("/a", PATH_MAX));
	assert_false(path_is_absolute("a/b", PATH_MAX));
	assert_false(path_is_absolute("", PATH_MAX));
	assert_false(path_is_absolute(NULL, PATH_MAX));
	memset(longp, 'a', sizeof(longp) - 1);
	longp[0] = '/';
	longp[sizeof(longp) - 1] = 0;
	assert_false(path_is_absolute(longp, PATH_MAX));
	assert_false(path_is_absolute("/abc", 4));
	assert_true(path_is_absolute("/abc", 5));

	assert_true(path_is_canonical("/var/lib/x"));
	assert_true(path_is_canonical("/a"));
	assert_false(path_is_canonical("/var//lib"));
	assert_false(path_is_canonical("/var/./lib"));
	assert_false(path_is_canonical("/var/../lib"));
	assert_false(path_is_canonical("/var/lib/"));
	assert_false(path_is_canonical("var/lib"));
	assert_false(path_is_canonical(NULL));

	assert_true(path_is_below("/a/b", "/a"));
	assert_true(path_is_below("/a/b", "/a/"));
	assert_true(path_is_below("/a", "/a"));
	assert_false(path_is_below("/a/bc", "/a/b"));
	assert_false(path_is_below("/ab", "/a"));
	assert_true(path_equal("/a/b", "/a/b/"));
	assert_false(path_equal("/a/b", "/a"));
	assert_false(path_equal(NULL, "/a"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_path__resolves_plain_path_and_missing_last),
		cmocka_unit_test(test_path__normalises_double_and_trailing_slashes),
		cmocka_unit_test(test_path__refuses_the_root_itself),
		cmocka_unit_test(test_path__refuses_dot_dot_and_outside_and_relative),
		cmocka_unit_test(test_path__refuses_a_symlink_in_every_component),
		cmocka_unit_test(test_path__refuses_absolute_symlink_to_etc),
		cmocka_unit_test(test_path__missing_parent_is_enoent),
		cmocka_unit_test(test_path__swapped_in_symlink_is_not_followed),
		cmocka_unit_test(test_path__remove_refuses_a_replaced_object),
		cmocka_unit_test(test_path__create_file_and_refusals),
		cmocka_unit_test(test_path__remove_keeps_non_empty_directory),
		cmocka_unit_test(test_path__mountpoint_by_mount_id),
		cmocka_unit_test(test_path__text_predicates),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
