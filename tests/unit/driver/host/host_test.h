/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Shared helpers of the driver/host tests (header-only: every test_*.c is its own binary).
 *
 * Each test gets its own temporary directory; host_test_teardown() removes everything the test
 * may have left below it, whatever the test's outcome: mounts (deepest first; ext4 on loop is
 * unmounted before the rbd-fuse mount it lives on), loop devices backed by files below it,
 * rbd-fuse processes serving mounts below it (killed), then the files, never crossing into a
 * mount (rbd-fuse deletes the image on unlink).
 */
#pragma once

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <setjmp.h>
#include <signal.h>
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
#include <libmount/libmount.h>

#include "driver/base/exec.h"
#include "driver/base/fileio.h"
#include "driver/base/macro.h"
#include "driver/host/loop.h"
#include "driver/host/mount.h"
#include "tests/unit/require.h"

struct host_test {
	char dir[256];
};

#define REQUIRE_ROOT()                                                               \
	do {                                                                         \
		if (geteuid() != 0) {                                                \
			TEST_SKIP_NO_ROOT("needs root (loop devices, mkfs, mount)"); \
		}                                                                    \
	} while (0)

static inline const char *ht_dir(void **state)
{
	return ((struct host_test *)*state)->dir;
}

/* Runs a command from an argv list; returns its exit status (or -errno). Output is dropped. */
static inline int ht_run(const char *arg0, ...)
{
	char *argv[64];
	struct exec_result res;
	size_t n = 0;
	va_list ap;
	int r;

	argv[n++] = (char *)arg0;
	va_start(ap, arg0);
	while (n < 63 && (argv[n] = va_arg(ap, char *)))
		n++;
	va_end(ap);
	argv[n] = NULL;
	r = exec_run(argv, &(struct exec_options){ .timeout_usec = 120 * USEC_PER_SEC }, &res);
	if (r < 0)
		return r;
	r = res.exit_status;
	if (r != 0)
		print_message("'%s' exited %d: %s%s\n", arg0, r, res.err, res.out);
	exec_result_done(&res);
	return r;
}

/* Creates a sparse file of size bytes; returns its path in buf. */
static inline void ht_sparse_file(void **state, const char *name, uint64_t size, char *buf,
                                  size_t bufsize)
{
	int fd;

	snprintf(buf, bufsize, "%s/%s", ht_dir(state), name);
	fd = open(buf, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	assert_true(fd >= 0);
	assert_int_equal(ftruncate(fd, (off_t)size), 0);
	close(fd);
}

static inline bool ht_under(const char *path, const char *dir)
{
	size_t n = strlen(dir);

	return path && strncmp(path, dir, n) == 0 && (path[n] == '/' || path[n] == 0);
}

static inline void ht_kill_fuse_under(const char *dir)
{
	DIR *d = opendir("/proc");
	struct dirent *de;

	if (!d)
		return;
	while ((de = readdir(d))) {
		pid_t pid = (pid_t)strtol(de->d_name, NULL, 10);
		char **argv = NULL;
		bool match = false;

		if (pid <= 0 || exec_pid_cmdline(pid, &argv) < 0)
			continue;
		if (argv[0] && strstr(argv[0], "rbd-fuse"))
			for (char **a = argv; *a; a++)
				match = match || ht_under(*a, dir);
		exec_strv_free(argv);
		if (match) {
			print_message("cleanup: killing rbd-fuse pid %d\n", (int)pid);
			kill(pid, SIGKILL);
			(void)exec_pid_wait_exit(pid, 5 * USEC_PER_SEC, NULL);
		}
	}
	closedir(d);
}

/* Unmounts everything below dir, deepest first. fuse_too: also the rbd-fuse mounts. */
static inline int ht_umount_under(const char *dir, bool fuse_too)
{
	struct libmnt_table *tb = mnt_new_table();
	struct libmnt_iter *it = mnt_new_iter(MNT_ITER_BACKWARD);
	struct libmnt_fs *fs;
	int n = 0;

	if (!tb || !it || mnt_table_parse_file(tb, "/proc/self/mountinfo") < 0)
		goto out;
	while (mnt_table_next_fs(tb, it, &fs) == 0) {
		const char *target = mnt_fs_get_target(fs);
		const char *type = mnt_fs_get_fstype(fs);
		bool is_fuse = type && strncmp(type, "fuse", 4) == 0;

		if (!ht_under(target, dir) || (is_fuse && !fuse_too))
			continue;
		print_message("cleanup: unmounting %s (%s)\n", target, type);
		/* mount_umount() also drops the utab entry (_netdev) libmount kept. */
		if (mount_umount(target, false) < 0)
			(void)mount_umount(target, true);
		n++;
	}
out:
	mnt_free_iter(it);
	mnt_unref_table(tb);
	return n;
}

static inline void ht_detach_loops_under(const char *dir)
{
	for (int i = 0; i < 256; i++) {
		char dev[32];
		char *backing = NULL;

		snprintf(dev, sizeof(dev), "/dev/loop%d", i);
		if (loop_get_backing_file(dev, &backing) < 0)
			continue;
		if (ht_under(backing, dir)) {
			print_message("cleanup: detaching %s (%s)\n", dev, backing);
			if (loop_detach(dev) < 0)
				print_message("cleanup: %s stays attached\n", dev);
		}
		free(backing);
	}
}

static inline int ht_rm_cb(const char *path, const struct stat *st, int flag, struct FTW *f)
{
	(void)st;
	(void)f;
	if (flag == FTW_DP)
		return rmdir(path) < 0 && errno != ENOENT
		               ? (print_message("cannot rmdir %s\n", path), 0)
		               : 0;
	return unlink(path) < 0 && errno != ENOENT ? (print_message("cannot rm %s\n", path), 0) : 0;
}

/* Everything below dir goes; nothing left mounted or attached. */
static inline void ht_cleanup_dir(const char *dir)
{
	/* Filesystems first (a hung one waits on rbd-fuse: kill those if so). */
	if (ht_umount_under(dir, false) > 0)
		ht_detach_loops_under(dir);
	ht_detach_loops_under(dir);
	ht_umount_under(dir, true);
	ht_kill_fuse_under(dir);
	ht_umount_under(dir, true);
	ht_detach_loops_under(dir);
	/* FTW_MOUNT: never cross into a mount, FTW_PHYS: never follow a symlink. */
	nftw(dir, ht_rm_cb, 32, FTW_DEPTH | FTW_PHYS | FTW_MOUNT);
}

static inline int host_test_setup(void **state)
{
	struct host_test *t = calloc(1, sizeof(*t));

	if (!t)
		return -1;
	snprintf(t->dir, sizeof(t->dir), "/tmp/rbdcsi-host-test-XXXXXX");
	if (!mkdtemp(t->dir)) {
		free(t);
		return -1;
	}
	*state = t;
	return 0;
}

static inline int host_test_teardown(void **state)
{
	struct host_test *t = *state;

	if (!t)
		return 0;
	ht_cleanup_dir(t->dir);
	if (access(t->dir, F_OK) == 0)
		print_message("cleanup: %s could not be removed\n", t->dir);
	free(t);
	return 0;
}

#define HOST_TEST(f) cmocka_unit_test_setup_teardown(f, host_test_setup, host_test_teardown)

/* ---- a real Ceph, from the environment ---- */

struct ht_ceph {
	const char *monitors;
	const char *user;
	const char *key;
	const char *pool;
	const char *conf;
};

/* Fills c from RBDCSI_TEST_*; skips the test when RBDCSI_TEST_MONITORS is unset. */
static inline void ht_ceph_env(struct ht_ceph *c)
{
	c->monitors = getenv("RBDCSI_TEST_MONITORS");
	if (!c->monitors || !*c->monitors) {
		TEST_SKIP_NO_CEPH("RBDCSI_TEST_MONITORS is not set (no test Ceph cluster)");
	}
	c->user = getenv("RBDCSI_TEST_USER") ?: "admin";
	c->key = getenv("RBDCSI_TEST_KEY");
	c->pool = getenv("RBDCSI_TEST_POOL") ?: "rbd";
	c->conf = getenv("CEPH_CONF");
	if (!c->key || !c->conf) {
		TEST_SKIP_NO_CEPH("RBDCSI_TEST_KEY and CEPH_CONF must be set too");
	}
}

/* A unique image name for this process. */
static inline void ht_image_name(char *buf, size_t size, const char *tag)
{
	static int counter;

	snprintf(buf, size, "rbdcsi-host-%s-%d-%d", tag, (int)getpid(), ++counter);
}

/* rbd CLI as the cluster admin (CEPH_CONF's keyring), for setup and cleanup. */
static inline int ht_rbd(const struct ht_ceph *c, const char *cmd, const char *image,
                         const char *arg)
{
	char spec[512];

	snprintf(spec, sizeof(spec), "%s/%s", c->pool, image);
	if (arg)
		return ht_run("rbd", "-c", c->conf, cmd, spec, arg, NULL);
	return ht_run("rbd", "-c", c->conf, cmd, spec, NULL);
}
