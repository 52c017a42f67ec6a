/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Tests of driver/host/stage.c, end to end: rbd-fuse against a REAL Ceph cluster
 * (RBDCSI_TEST_*, CEPH_CONF; skipped without), real loop devices, mkfs and mounts (root). The
 * krbd path runs against the FAKE sysfs (tests/fakes/fake_krbd.h).
 */
#include <json-c/json.h>
#include <poll.h>
#include <sys/wait.h>

#include "unit/driver/host/host_test.h"
#include "driver/base/monotonic.h"
#include "fakes/fake_krbd.h"
#include "driver/host/blockdev.h"
#include "driver/host/fs.h"
#include "driver/host/mapper_fuse.h"
#include "driver/host/mapper_krbd.h"
#include "driver/host/mount.h"
#include "driver/host/stage.h"

#define MiB (1024ULL * 1024ULL)

struct ctx {
	struct ht_ceph ceph;
	char image[128];
	char volume_id[160];
	char state_dir[PATH_MAX];
	char staging[PATH_MAX];
	struct stage_request req;
};

static void ctx_init(void **state, struct ctx *c, const char *tag, const char *size)
{
	REQUIRE_ROOT();
	memset(c, 0, sizeof(*c));
	ht_ceph_env(&c->ceph);
	ht_image_name(c->image, sizeof(c->image), tag);
	if (size)
		assert_int_equal(ht_rbd(&c->ceph, "create", c->image, size), 0);
	snprintf(c->volume_id, sizeof(c->volume_id), "0001-0024-test-cluster-%s", c->image);
	snprintf(c->state_dir, sizeof(c->state_dir), "%s/state", ht_dir(state));
	snprintf(c->staging, sizeof(c->staging), "%s/staging/globalmount", ht_dir(state));
	c->req = (struct stage_request){
		.state_dir = c->state_dir,
		.volume_id = c->volume_id,
		.staging_path = c->staging,
		.access = STAGE_ACCESS_MOUNT,
		.fstype = "ext4",
		.mapper = MAPPER_FUSE,
		.cluster_id = "test-cluster",
		.map = {
			.monitors = c->ceph.monitors,
			.user = c->ceph.user,
			.key = c->ceph.key,
			.pool = c->ceph.pool,
			.image = c->image,
		},
		.timeout_usec = 30 * USEC_PER_SEC,
	};
}

static void ctx_done(struct ctx *c)
{
	(void)ht_rbd(&c->ceph, "rm", c->image, "--no-progress");
}

static void stage_ok(struct ctx *c, struct stage_info **info)
{
	_cleanup_free_ char *reason = NULL;
	int r = stage_volume(&c->req, info, &reason);

	if (r < 0)
		fail_msg("stage_volume: %d %s", r, reason);
}

static void unstage_ok(struct ctx *c, bool expect_forced)
{
	_cleanup_free_ char *reason = NULL;
	bool forced = !expect_forced;
	int r = stage_unstage(c->state_dir, c->volume_id, c->req.staging_path, 15 * USEC_PER_SEC,
	                      &forced, &reason);

	if (r < 0)
		fail_msg("stage_unstage: %d %s", r, reason);
	assert_int_equal(forced, expect_forced);
}

/* After unstage or a failed stage: no state, mount, process, loop device. */
static void assert_nothing_left(struct ctx *c)
{
	_cleanup_(stage_info_freep) struct stage_info *info = NULL;
	_cleanup_free_ char *state_path = NULL;
	char fuse_root[PATH_MAX + 8];
	pid_t pid;
	DIR *d;

	assert_int_equal(stage_load(c->state_dir, c->volume_id, &info), -ENOENT);
	assert_int_equal(stage_state_path(c->state_dir, c->volume_id, &state_path), 0);
	assert_int_equal(access(state_path, F_OK), -1);
	assert_int_equal(mount_is_mountpoint(c->staging), 0);
	/* No rbd-fuse below the state dir, and its fuse/ directory is empty. */
	snprintf(fuse_root, sizeof(fuse_root), "%s/fuse", c->state_dir);
	d = opendir(fuse_root);
	if (d) {
		struct dirent *de;

		while ((de = readdir(d))) {
			char mp[PATH_MAX + 300];

			if (de->d_name[0] == '.')
				continue;
			snprintf(mp, sizeof(mp), "%s/%s", fuse_root, de->d_name);
			assert_int_equal(mapper_fuse_find_pid(mp, &pid), -ENOENT);
			fail_msg("%s left behind", mp);
		}
		closedir(d);
	}
	for (int i = 0; i < 64; i++) {
		char dev[32];
		_cleanup_free_ char *backing = NULL;

		snprintf(dev, sizeof(dev), "/dev/loop%d", i);
		if (loop_get_backing_file(dev, &backing) == 0)
			assert_false(ht_under(backing, c->state_dir));
	}
}

static void write_file(const char *dir, const char *name, const char *content, bool sync)
{
	char path[PATH_MAX + 64];
	int fd;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	fd = open(path, O_CREAT | O_TRUNC | O_WRONLY | O_CLOEXEC, 0644);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, content, strlen(content)), (ssize_t)strlen(content));
	if (sync)
		assert_int_equal(fsync(fd), 0);
	close(fd);
}

static void read_file_expect(const char *dir, const char *name, const char *content)
{
	char path[PATH_MAX + 64];
	_cleanup_free_ char *data = NULL;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	assert_int_equal(fileio_read_full(path, 1 << 20, &data, NULL), 0);
	assert_string_equal(data, content);
}

static void cycle(void **state, const char *fstype, const char *size)
{
	_cleanup_(stage_info_freep) struct stage_info *info = NULL, *again = NULL;
	_cleanup_(mount_info_freep) struct mount_info *mi = NULL;
	struct ctx c;
	uint64_t t0, t_stage1, t_unstage1, t_stage2, t_unstage2;

	ctx_init(state, &c, fstype, size);
	c.req.fstype = fstype;

	t0 = monotonic_usec();
	stage_ok(&c, &info);
	t_stage1 = monotonic_usec() - t0;
	assert_string_equal(info->phase, "staged");
	assert_int_equal(info->mapper, MAPPER_FUSE);
	assert_true(info->formatted);
	assert_string_equal(info->fstype, fstype);
	assert_int_equal(mount_find(c.staging, &mi), 0);
	assert_string_equal(mi->source, info->device);
	assert_string_equal(mi->fstype, fstype);
	write_file(c.staging, "hello.txt", "hello rbdcsi\n", true);

	/* Staging again with the same parameters is a no-op. */
	stage_ok(&c, &again);
	assert_string_equal(again->device, info->device);
	assert_int_equal(mapper_fuse_state_pid(again->mapper_state),
	                 mapper_fuse_state_pid(info->mapper_state));

	t0 = monotonic_usec();
	unstage_ok(&c, false);
	t_unstage1 = monotonic_usec() - t0;
	assert_nothing_left(&c);
	/* Unstaging again is a no-op. */
	unstage_ok(&c, false);

	again = stage_info_free(again);
	t0 = monotonic_usec();
	stage_ok(&c, &again);
	t_stage2 = monotonic_usec() - t0;
	assert_false(again->formatted);
	read_file_expect(c.staging, "hello.txt", "hello rbdcsi\n");
	t0 = monotonic_usec();
	unstage_ok(&c, false);
	t_unstage2 = monotonic_usec() - t0;
	assert_nothing_left(&c);
	print_message("%s %s: stage (with mkfs) %llu ms, unstage %llu ms, stage %llu ms, unstage "
	              "%llu ms\n",
	              fstype, size + 7, (unsigned long long)(t_stage1 / 1000),
	              (unsigned long long)(t_unstage1 / 1000),
	              (unsigned long long)(t_stage2 / 1000),
	              (unsigned long long)(t_unstage2 / 1000));
	ctx_done(&c);
}

static void test_stage__ext4_write_unstage_restage_read(void **state)
{
	cycle(state, "ext4", "--size=512M");
}

static void test_stage__xfs_write_unstage_restage_read(void **state)
{
	cycle(state, "xfs", "--size=512M");
}

static void test_stage__block(void **state)
{
	_cleanup_(stage_info_freep) struct stage_info *info = NULL;
	_cleanup_free_ char *types = NULL;
	static char buf[65536], back[65536];
	struct ctx c;
	int fd;

	ctx_init(state, &c, "block", "--size=64M");
	c.req.access = STAGE_ACCESS_BLOCK;
	c.req.fstype = NULL;
	stage_ok(&c, &info);
	assert_int_equal(info->access, STAGE_ACCESS_BLOCK);
	assert_non_null(strstr(info->device, "/dev/loop"));
	/* Nothing is mounted, nothing formatted. */
	assert_int_equal(mount_is_mountpoint(c.staging), 0);
	assert_int_equal(blockdev_probe(info->device, &types), 0);
	assert_string_equal(types, "none");
	for (size_t i = 0; i < sizeof(buf); i++)
		buf[i] = (char)(i ^ 0x5a);
	fd = open(info->device, O_WRONLY | O_CLOEXEC);
	assert_true(fd >= 0);
	assert_int_equal(pwrite(fd, buf, sizeof(buf), 1 * MiB), (ssize_t)sizeof(buf));
	assert_int_equal(fsync(fd), 0);
	close(fd);
	unstage_ok(&c, false);
	assert_nothing_left(&c);

	info = stage_info_free(info);
	stage_ok(&c, &info);
	fd = open(info->device, O_RDONLY | O_CLOEXEC);
	assert_true(fd >= 0);
	assert_int_equal(pread(fd, back, sizeof(back), 1 * MiB), (ssize_t)sizeof(back));
	close(fd);
	assert_memory_equal(buf, back, sizeof(buf));
	unstage_ok(&c, false);
	assert_nothing_left(&c);
	ctx_done(&c);
}

static void test_stage__conflicting_parameters(void **state)
{
	_cleanup_(stage_info_freep) struct stage_info *info = NULL;
	_cleanup_free_ char *reason = NULL;
	struct ctx c;
	char expect[512];

	ctx_init(state, &c, "conflict", "--size=64M");
	stage_ok(&c, &info);
	c.req.fstype = "xfs";
	assert_int_equal(stage_volume(&c.req, NULL, &reason), -EEXIST);
	snprintf(expect, sizeof(expect),
	         "volume %s is already staged with a different filesystem type", c.volume_id);
	assert_string_equal(reason, expect);
	c.req.fstype = "ext4";
	c.req.map.read_only = true;
	assert_int_equal(stage_volume(&c.req, NULL, &reason), -EEXIST);
	c.req.map.read_only = false;
	c.req.access = STAGE_ACCESS_BLOCK;
	assert_int_equal(stage_volume(&c.req, NULL, &reason), -EEXIST);
	c.req.access = STAGE_ACCESS_MOUNT;
	/* Still staged and intact. */
	assert_int_equal(mount_is_mountpoint(c.staging), 1);
	unstage_ok(&c, false);
	assert_nothing_left(&c);
	ctx_done(&c);
}

static void test_stage__refuses_foreign_signature(void **state)
{
	_cleanup_(stage_info_freep) struct stage_info *info = NULL;
	_cleanup_free_ char *reason = NULL;
	struct ctx c;

	ctx_init(state, &c, "swap", "--size=64M");
	/* Someone's swap on the image (written through a block stage). */
	c.req.access = STAGE_ACCESS_BLOCK;
	stage_ok(&c, &info);
	assert_int_equal(ht_run("mkswap", info->device, NULL), 0);
	unstage_ok(&c, false);

	c.req.access = STAGE_ACCESS_MOUNT;
	assert_int_equal(stage_volume(&c.req, NULL, &reason), -EMEDIUMTYPE);
	assert_string_equal(reason, "device carries 'swap', not 'ext4': refusing to format");
	assert_nothing_left(&c);
	/* Left intact. */
	info = stage_info_free(info);
	c.req.access = STAGE_ACCESS_BLOCK;
	stage_ok(&c, &info);
	{
		_cleanup_free_ char *types = NULL;

		assert_int_equal(blockdev_probe(info->device, &types), 0);
		assert_string_equal(types, "swap");
	}
	unstage_ok(&c, false);
	assert_nothing_left(&c);
	ctx_done(&c);
}

static void test_stage__read_only_blank_refused(void **state)
{
	_cleanup_free_ char *reason = NULL;
	struct ctx c;

	ctx_init(state, &c, "roblank", "--size=64M");
	c.req.map.read_only = true;
	assert_int_equal(stage_volume(&c.req, NULL, &reason), -EROFS);
	assert_non_null(strstr(reason, "is blank and the volume is read-only"));
	assert_nothing_left(&c);
	ctx_done(&c);
}

static void test_stage__read_only_mount(void **state)
{
	_cleanup_(stage_info_freep) struct stage_info *info = NULL;
	_cleanup_(mount_info_freep) struct mount_info *mi = NULL;
	struct ctx c;

	ctx_init(state, &c, "ro", "--size=64M");
	stage_ok(&c, &info);
	write_file(c.staging, "f", "data", true);
	unstage_ok(&c, false);
	info = stage_info_free(info);
	c.req.map.read_only = true;
	stage_ok(&c, &info);
	assert_int_equal(mount_find(c.staging, &mi), 0);
	assert_true(mi->read_only);
	read_file_expect(c.staging, "f", "data");
	unstage_ok(&c, false);
	assert_nothing_left(&c);
	ctx_done(&c);
}

static void test_stage__missing_image_leaves_nothing(void **state)
{
	_cleanup_free_ char *reason = NULL;
	struct ctx c;

	ctx_init(state, &c, "absent", NULL);
	assert_int_equal(stage_volume(&c.req, NULL, &reason), -ENOENT);
	assert_non_null(strstr(reason, "not found"));
	assert_nothing_left(&c);
}

static void test_stage__killed_daemon_unstage_completes(void **state)
{
	_cleanup_(stage_info_freep) struct stage_info *info = NULL;
	_cleanup_free_ char *reason = NULL;
	struct stage_health h = { 0 };
	struct ctx c;
	uint64_t t0;

	ctx_init(state, &c, "kill", "--size=64M");
	stage_ok(&c, &info);
	write_file(c.staging, "pending", "not synced", false);
	/* The dead-cluster simulation of the notes: rbd-fuse is gone under a mounted ext4. */
	assert_int_equal(kill(mapper_fuse_state_pid(info->mapper_state), SIGKILL), 0);
	assert_int_equal(exec_pid_wait_exit(mapper_fuse_state_pid(info->mapper_state),
	                                    5 * USEC_PER_SEC, NULL),
	                 0);
	assert_int_equal(stage_recover(c.state_dir, c.volume_id, &h), 0);
	assert_true(h.abnormal);
	assert_false(h.mapping_alive);
	assert_non_null(strstr(h.message, "rbd-fuse"));
	stage_health_done(&h);

	t0 = monotonic_usec();
	unstage_ok(&c, false);
	print_message("unstage after rbd-fuse was killed: %llu ms\n",
	              (unsigned long long)((monotonic_usec() - t0) / 1000));
	assert_true(monotonic_usec() - t0 < 15 * USEC_PER_SEC);
	assert_nothing_left(&c);
	ctx_done(&c);
}

static void test_stage__hung_daemon_unstage_forced_within_bound(void **state)
{
	_cleanup_(stage_info_freep) struct stage_info *info = NULL;
	_cleanup_free_ char *reason = NULL;
	struct ctx c;
	char big[1 << 16];
	uint64_t t0, elapsed;
	bool forced = false;
	int r;

	ctx_init(state, &c, "hang", "--size=64M");
	stage_ok(&c, &info);
	/* Dirty data that the unmount must write through a daemon that answers nothing. */
	memset(big, 'x', sizeof(big) - 1);
	big[sizeof(big) - 1] = 0;
	for (int i = 0; i < 32; i++) {
		char name[32];

		snprintf(name, sizeof(name), "dirty%d", i);
		write_file(c.staging, name, big, false);
	}
	assert_int_equal(kill(mapper_fuse_state_pid(info->mapper_state), SIGSTOP), 0);
	t0 = monotonic_usec();
	r = stage_unstage(c.state_dir, c.volume_id, c.staging, 4 * USEC_PER_SEC, &forced, &reason);
	elapsed = monotonic_usec() - t0;
	print_message("unstage with a hung rbd-fuse (bound 4 s): %llu ms, forced=%d%s%s\n",
	              (unsigned long long)(elapsed / 1000), forced, reason ? ": " : "",
	              strempty(reason));
	assert_int_equal(r, 0);
	assert_true(forced);
	assert_true(elapsed < 4 * USEC_PER_SEC + 6 * USEC_PER_SEC);
	assert_nothing_left(&c);
	/* Killed and reaped: not even a zombie. */
	assert_int_equal(kill(mapper_fuse_state_pid(info->mapper_state), 0), -1);
	assert_int_equal(errno, ESRCH);
	ctx_done(&c);
}

static void test_stage__crash_mid_stage_is_undone(void **state)
{
	_cleanup_(stage_info_freep) struct stage_info *info = NULL, *again = NULL;
	_cleanup_free_ char *state_path = NULL, *text = NULL;
	struct ctx c;
	json_object *o, *f;

	ctx_init(state, &c, "crash", "--size=64M");
	stage_ok(&c, &info);
	/* As if the plugin died after the map, before recording pid and device: phase
	 * "mapping", no pid, no device, and the staging mount missing. */
	assert_int_equal(mount_umount(c.staging, false), 0);
	assert_int_equal(stage_state_path(c.state_dir, c.volume_id, &state_path), 0);
	assert_int_equal(fileio_read_full(state_path, 1 << 16, &text, NULL), 0);
	o = json_tokener_parse(text);
	assert_non_null(o);
	json_object_object_add(o, "phase", json_object_new_string("mapping"));
	json_object_object_del(o, "device");
	assert_true(json_object_object_get_ex(o, "fuse", &f));
	json_object_object_add(f, "pid", json_object_new_int(0));
	{
		const char *s = json_object_to_json_string(o);

		assert_int_equal(fileio_write_atomic(state_path, s, strlen(s), 0600), 0);
	}
	json_object_put(o);

	/* Stage again: the leftovers are found and undone, then it stages afresh. */
	stage_ok(&c, &again);
	assert_int_equal(mount_is_mountpoint(c.staging), 1);
	assert_true(mapper_fuse_state_pid(again->mapper_state) !=
	            mapper_fuse_state_pid(info->mapper_state));
	assert_int_equal(mapper_fuse_pid_matches(mapper_fuse_state_pid(info->mapper_state),
	                                         mapper_fuse_state_mount_dir(info->mapper_state)),
	                 0);
	unstage_ok(&c, false);
	assert_nothing_left(&c);
	ctx_done(&c);
}

/* Rewrites the state file of c: sets phase, drops the keys in drop (NULL-terminated), sets
 * mkfs_pending when asked. */
static void state_edit(struct ctx *c, const char *phase, const char *const *drop, bool pending)
{
	_cleanup_free_ char *state_path = NULL, *text = NULL;
	json_object *o;
	const char *out;

	assert_int_equal(stage_state_path(c->state_dir, c->volume_id, &state_path), 0);
	assert_int_equal(fileio_read_full(state_path, 1 << 16, &text, NULL), 0);
	o = json_tokener_parse(text);
	assert_non_null(o);
	json_object_object_add(o, "phase", json_object_new_string(phase));
	for (; drop && *drop; drop++)
		json_object_object_del(o, *drop);
	json_object_object_add(o, "formatted", json_object_new_boolean(false));
	if (pending)
		json_object_object_add(o, "mkfs_pending", json_object_new_boolean(true));
	out = json_object_to_json_string(o);
	assert_int_equal(fileio_write_atomic(state_path, out, strlen(out), 0600), 0);
	json_object_put(o);
}

/*
 * Regression (issue 12): killed after the map of an xfs volume, before its mkfs recorded the
 * filesystem type: every retry answered -EEXIST "already staged with a different filesystem
 * type" and the mapping stayed. The half stage is rolled back and redone; the data is kept.
 */
static void test_stage__half_staged_xfs_converges(void **state)
{
	_cleanup_(stage_info_freep) struct stage_info *info = NULL, *again = NULL;
	struct ctx c;

	ctx_init(state, &c, "halfxfs", "--size=320M");
	c.req.fstype = "xfs";
	stage_ok(&c, &info);
	write_file(c.staging, "kept.txt", "kept\n", true);
	assert_int_equal(mount_umount(c.staging, false), 0);
	state_edit(&c, "mapped", (const char *const[]){ "fstype", NULL }, false);

	stage_ok(&c, &again);
	assert_string_equal(again->phase, "staged");
	assert_string_equal(again->fstype, "xfs");
	assert_false(again->formatted);
	read_file_expect(c.staging, "kept.txt", "kept\n");
	/* The old mapping went (rolled back), a new one serves. */
	assert_int_equal(mapper_fuse_pid_matches(mapper_fuse_state_pid(info->mapper_state),
	                                         mapper_fuse_state_mount_dir(info->mapper_state)),
	                 0);
	unstage_ok(&c, false);
	assert_nothing_left(&c);
	ctx_done(&c);
}

/* Starts a process that looks like a mkfs.xfs left running on device by a killed plugin. */
static pid_t fake_leftover_mkfs(const char *device)
{
	pid_t pid = fork();

	assert_true(pid >= 0);
	if (pid == 0) {
		char *argv[] = { (char *)"mkfs.xfs", (char *)"-c",   (char *)"sleep 60; :",
			         (char *)"-q",       (char *)device, NULL };

		execv("/bin/sh", argv);
		_exit(127);
	}
	/* Wait until it is the shell (its cmdline shows the device). */
	for (int i = 0; i < 2000; i++) {
		char **argv = NULL;
		bool seen = false;

		if (exec_pid_cmdline(pid, &argv) == 0 && argv[0] && argv[1])
			seen = strcmp(argv[0], "mkfs.xfs") == 0;
		exec_strv_free(argv);
		if (seen)
			break;
		(void)poll(NULL, 0, 1);
	}
	return pid;
}

/*
 * Regression (issue 12): killed while mkfs ran. Whatever the partial mkfs left (here: a complete
 * xfs, which blkid reports like any other), the retry must not trust it: it kills the mkfs still
 * running on the device (never two at once) and formats again; nothing of the old content is
 * mounted.
 */
static void test_stage__interrupted_mkfs_is_redone(void **state)
{
	_cleanup_(stage_info_freep) struct stage_info *info = NULL, *again = NULL;
	char path[PATH_MAX + 16];
	struct ctx c;
	int status = 0;
	pid_t leftover;

	ctx_init(state, &c, "mkfsagain", "--size=320M");
	c.req.fstype = "xfs";
	stage_ok(&c, &info);
	write_file(c.staging, "partial.txt", "from the interrupted mkfs\n", true);
	assert_int_equal(mount_umount(c.staging, false), 0);
	state_edit(&c, "formatting", (const char *const[]){ "fstype", NULL }, true);
	leftover = fake_leftover_mkfs(info->device);

	stage_ok(&c, &again);
	assert_int_equal(waitpid(leftover, &status, 0), leftover);
	assert_true(WIFSIGNALED(status));
	assert_int_equal(WTERMSIG(status), SIGKILL);
	assert_string_equal(again->phase, "staged");
	assert_true(again->formatted);
	assert_false(again->mkfs_pending);
	snprintf(path, sizeof(path), "%s/partial.txt", c.staging);
	assert_int_equal(access(path, F_OK), -1);
	unstage_ok(&c, false);
	assert_nothing_left(&c);
	ctx_done(&c);
}

/*
 * An unstage of a volume whose mkfs was interrupted (kubelet gave up the stage) erases the
 * partial signatures, so the next stage finds the device blank and formats it.
 */
static void test_stage__unstage_after_interrupted_mkfs_wipes(void **state)
{
	_cleanup_(stage_info_freep) struct stage_info *info = NULL, *again = NULL;
	struct ctx c;

	ctx_init(state, &c, "mkfswipe", "--size=320M");
	c.req.fstype = "xfs";
	stage_ok(&c, &info);
	assert_int_equal(mount_umount(c.staging, false), 0);
	state_edit(&c, "formatting", (const char *const[]){ "fstype", NULL }, true);
	unstage_ok(&c, false);
	assert_nothing_left(&c);
	stage_ok(&c, &again);
	assert_true(again->formatted);
	unstage_ok(&c, false);
	assert_nothing_left(&c);
	ctx_done(&c);
}

/* Regression (issue 12): a 256 MiB xfs volume got INTERNAL with mkfs.xfs's usage text. */
static void test_stage__xfs_below_minimum_refused(void **state)
{
	_cleanup_free_ char *reason = NULL;
	struct ctx c;

	ctx_init(state, &c, "xfssmall", "--size=256M");
	c.req.fstype = "xfs";
	assert_int_equal(stage_volume(&c.req, NULL, &reason), -EMEDIUMTYPE);
	assert_non_null(strstr(reason, "below the 314572800 bytes (300 MiB) mkfs.xfs needs"));
	assert_nothing_left(&c);
	ctx_done(&c);
}

static void test_stage__state_file_content_and_no_key(void **state)
{
	_cleanup_(stage_info_freep) struct stage_info *info = NULL, *loaded = NULL;
	_cleanup_free_ char *state_path = NULL, *text = NULL;
	char **ids = NULL;
	struct stat st;
	struct ctx c;

	ctx_init(state, &c, "json", "--size=64M");
	c.req.mount_options = "noatime";
	stage_ok(&c, &info);
	assert_int_equal(stage_state_path(c.state_dir, c.volume_id, &state_path), 0);
	assert_int_equal(stat(state_path, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0600);
	assert_int_equal(fileio_read_full(state_path, 1 << 16, &text, NULL), 0);
	assert_null(strstr(text, c.ceph.key));
	{
		json_object *o = json_tokener_parse(text), *v;

		assert_non_null(o);
		assert_true(json_object_object_get_ex(o, "phase", &v));
		assert_string_equal(json_object_get_string(v), "staged");
		assert_true(json_object_object_get_ex(o, "mapper", &v));
		assert_string_equal(json_object_get_string(v), "fuse");
		assert_false(json_object_object_get_ex(o, "key", &v));
		json_object_put(o);
	}
	assert_int_equal(stage_load(c.state_dir, c.volume_id, &loaded), 0);
	assert_string_equal(loaded->device, info->device);
	assert_string_equal(loaded->pool, c.ceph.pool);
	assert_string_equal(loaded->image, c.image);
	assert_string_equal(loaded->cluster_id, "test-cluster");
	assert_string_equal(loaded->mount_options, "noatime");
	assert_int_equal(mapper_fuse_state_pid(loaded->mapper_state),
	                 mapper_fuse_state_pid(info->mapper_state));
	assert_int_equal(stage_list(c.state_dir, &ids), 0);
	assert_non_null(ids[0]);
	assert_string_equal(ids[0], c.volume_id);
	assert_null(ids[1]);
	exec_strv_free(ids);
	unstage_ok(&c, false);
	assert_nothing_left(&c);
	ctx_done(&c);
}

static void test_stage__recover_healthy_after_restart(void **state)
{
	_cleanup_(stage_info_freep) struct stage_info *info = NULL;
	struct stage_health h = { 0 };
	struct ctx c;

	ctx_init(state, &c, "recover", "--size=64M");
	stage_ok(&c, &info);
	/* A restarted plugin only has the state file. */
	assert_int_equal(stage_recover(c.state_dir, c.volume_id, &h), 0);
	assert_true(h.staged);
	assert_true(h.mapping_alive);
	assert_true(h.mounted);
	assert_false(h.abnormal);
	assert_null(h.message);
	stage_health_done(&h);
	assert_int_equal(stage_recover(c.state_dir, "no-such-volume", &h), -ENOENT);
	unstage_ok(&c, false);
	assert_nothing_left(&c);
	ctx_done(&c);
}

static void test_stage__expand_xfs(void **state)
{
	_cleanup_(stage_info_freep) struct stage_info *info = NULL;
	_cleanup_free_ char *reason = NULL;
	struct fs_stats before, after;
	uint64_t size = 0;
	struct ctx c;

	ctx_init(state, &c, "expand", "--size=512M");
	c.req.fstype = "xfs";
	stage_ok(&c, &info);
	assert_int_equal(fs_get_stats(c.staging, &before), 0);
	assert_int_equal(ht_rbd(&c.ceph, "resize", c.image, "--size=768M"), 0);
	if (stage_expand(c.state_dir, c.volume_id, 768 * MiB, 20 * USEC_PER_SEC, &size, &reason) <
	    0)
		fail_msg("expand: %s", reason);
	assert_int_equal(size, 768 * MiB);
	assert_int_equal(fs_get_stats(c.staging, &after), 0);
	assert_true(after.total_bytes > before.total_bytes + 200 * MiB);
	unstage_ok(&c, false);
	assert_nothing_left(&c);
	ctx_done(&c);
}

static void test_stage__unstage_without_state(void **state)
{
	struct ctx c;
	char src[PATH_MAX];

	ctx_init(state, &c, "nostate", NULL);
	/* Nothing at all: success. */
	unstage_ok(&c, false);
	/* A mount at the staging path without state is not this volume's: left alone. */
	snprintf(src, sizeof(src), "%s/src", ht_dir(state));
	assert_int_equal(fileio_mkdir_p(src, 0700), 0);
	assert_int_equal(fileio_mkdir_p(c.staging, 0700), 0);
	assert_int_equal(mount_bind(src, c.staging, false, NULL), 0);
	unstage_ok(&c, false);
	assert_int_equal(mount_is_mountpoint(c.staging), 1);
	assert_int_equal(mount_umount(c.staging, false), 0);
}

static void test_stage__mapper_selection(void **state)
{
	_cleanup_(stage_info_freep) struct stage_info *info = NULL;
	_cleanup_free_ char *reason = NULL;
	struct ctx c;

	ctx_init(state, &c, "auto", "--size=64M");
	if (access("/sys/bus/rbd", F_OK) == 0 || access("/sys/module/nbd", F_OK) == 0) {
		print_message("skipped: this host has krbd or nbd\n");
		ctx_done(&c);
		skip();
	}
	c.req.mapper = MAPPER_KRBD;
	assert_int_equal(stage_volume(&c.req, NULL, &reason), -ENODEV);
	/* ... and `modprobe rbd` (the real host's) failed, which the reason says too. */
	assert_true(strncmp(reason,
	                    "krbd: /sys/bus/rbd not present, rbd kernel module not loaded; ",
	                    62) == 0);
	assert_non_null(strstr(reason, "modprobe"));
	c.req.mapper = MAPPER_NBD;
	assert_int_equal(stage_volume(&c.req, NULL, &reason), -ENODEV);
	assert_non_null(strstr(reason, "rbd-nbd: nbd kernel module not loaded"));
	assert_nothing_left(&c);
	/* auto: the first available, rbd-fuse here. */
	c.req.mapper = MAPPER_AUTO;
	stage_ok(&c, &info);
	assert_int_equal(info->mapper, MAPPER_FUSE);
	unstage_ok(&c, false);
	assert_nothing_left(&c);
	ctx_done(&c);
}

static void test_stage__fake_sysfs_krbd_block(void **state)
{
	_cleanup_(stage_info_freep) struct stage_info *info = NULL, *again = NULL;
	_cleanup_free_ char *reason = NULL;
	char root[PATH_MAX], state_dir[PATH_MAX];
	struct fake_krbd f;
	struct stage_request req;

	/* No Ceph needed: the fake stands in for the kernel. Block access, so nothing is
	 * formatted or mounted on the fake device (a regular file). */
	snprintf(root, sizeof(root), "%s/root", ht_dir(state));
	snprintf(state_dir, sizeof(state_dir), "%s/state", ht_dir(state));
	assert_int_equal(mkdir(root, 0755), 0);
	assert_int_equal(fake_krbd_start(&f, root, 0x3d), 0);
	req = (struct stage_request){
		.state_dir = state_dir,
		.volume_id = "vol-krbd",
		.access = STAGE_ACCESS_BLOCK,
		.mapper = MAPPER_AUTO,
		.map = { .monitors = "[v2:10.1.1.1:3300,v1:10.1.1.1:6789]",
		         .user = "csi",
		         .key = "AQAAAAAAAAAAABAAMDEyMzQ1Njc4OWFiY2RlZg==",
		         .pool = "rbd",
		         .image = "img",
		         .map_options = "krbd:queue_depth=64;nbd:try-netlink" },
		.unmap_options = "krbd:force",
		.sys_root = root,
		.timeout_usec = 5 * USEC_PER_SEC,
	};
	if (stage_volume(&req, &info, &reason) < 0)
		fail_msg("stage: %s", reason);
	assert_int_equal(info->mapper, MAPPER_KRBD);
	assert_int_equal(mapper_krbd_state_id(info->mapper_state), 0);
	assert_non_null(strstr(f.last_add, ",queue_depth=64 rbd img -"));
	assert_null(strstr(f.last_add, "try-netlink"));
	/* Idempotent. */
	assert_int_equal(stage_volume(&req, &again, &reason), 0);
	assert_int_equal(f.adds, 1);
	assert_int_equal(stage_unstage(state_dir, "vol-krbd", NULL, 0, NULL, &reason), 0);
	for (int i = 0; i < 200 && f.removes == 0; i++)
		usleep(10000);
	assert_string_equal(f.last_remove, "0 force");
	assert_int_equal(stage_load(state_dir, "vol-krbd", &again), -ENOENT);

	/* Features the (fake) kernel lacks: auto moves on to the next mapper (none here but
	 * rbd-fuse, which cannot reach the made-up monitors: only its choice is checked). */
	req.mapper = MAPPER_KRBD;
	req.map.image_features = 0x40;
	req.map.image_features_known = true;
	assert_int_equal(stage_volume(&req, NULL, &reason), -ENODEV);
	assert_non_null(strstr(reason, "does not support image features 0x40"));
	fake_krbd_stop(&f);
}

/*
 * A node upgraded under staged volumes must still unstage them: state files written before the
 * mapper table (the mapper's keys "fuse": {pid, mount_dir} and "krbd_id" beside the others)
 * load with the same per-mapper state. Needs neither Ceph nor root.
 */
static void test_stage__state_file_from_before_the_mapper_table(void **state)
{
	static const char fuse_json[] =
	        "{ \"version\": 1, \"volume_id\": \"vol-fuse\", \"phase\": \"staged\", "
	        "\"mapper\": \"fuse\", \"access\": \"mount\", \"device\": \"/dev/loop7\", "
	        "\"staging_path\": \"/staging/a\", \"fstype\": \"ext4\", \"read_only\": false, "
	        "\"formatted\": true, \"cluster_id\": \"c\", \"monitors\": \"127.0.0.1:6789\", "
	        "\"user\": \"admin\", \"pool\": \"rbd\", \"image\": \"img\", "
	        "\"fuse\": { \"pid\": 4242, \"mount_dir\": \"/var/lib/x/fuse/abc\" } }";
	static const char krbd_json[] =
	        "{ \"version\": 1, \"volume_id\": \"vol-krbd\", \"phase\": \"staged\", "
	        "\"mapper\": \"krbd\", \"access\": \"block\", \"device\": \"/dev/rbd3\", "
	        "\"read_only\": false, \"formatted\": false, \"pool\": \"rbd\", "
	        "\"image\": \"img2\", \"krbd_id\": 3 }";
	static const char fuse_no_dir_json[] =
	        "{ \"version\": 1, \"volume_id\": \"vol-bad\", \"phase\": \"staged\", "
	        "\"mapper\": \"fuse\", \"access\": \"mount\", \"pool\": \"rbd\", "
	        "\"image\": \"img\", \"fuse\": { \"pid\": 1 } }";
	_cleanup_(stage_info_freep) struct stage_info *fuse = NULL, *krbd = NULL, *bad = NULL;
	char dir[] = "/tmp/rbdcsi-stage-compat-XXXXXX";
	const struct {
		const char *id;
		const char *text;
	} files[] = {
		{ "vol-fuse", fuse_json },
		{ "vol-krbd", krbd_json },
		{ "vol-bad", fuse_no_dir_json },
	};

	(void)state;
	assert_non_null(mkdtemp(dir));
	for (size_t i = 0; i < ELEMENTSOF(files); i++) {
		_cleanup_free_ char *path = NULL;

		assert_int_equal(stage_state_path(dir, files[i].id, &path), 0);
		assert_int_equal(
		        fileio_write_atomic(path, files[i].text, strlen(files[i].text), 0600), 0);
	}
	assert_int_equal(stage_load(dir, "vol-fuse", &fuse), 0);
	assert_int_equal(fuse->mapper, MAPPER_FUSE);
	assert_int_equal(mapper_fuse_state_pid(fuse->mapper_state), 4242);
	assert_string_equal(mapper_fuse_state_mount_dir(fuse->mapper_state), "/var/lib/x/fuse/abc");
	assert_string_equal(mapper_own_mount(fuse->mapper, fuse->mapper_state),
	                    "/var/lib/x/fuse/abc");
	assert_string_equal(fuse->device, "/dev/loop7");
	assert_int_equal(stage_load(dir, "vol-krbd", &krbd), 0);
	assert_int_equal(krbd->mapper, MAPPER_KRBD);
	assert_int_equal(mapper_krbd_state_id(krbd->mapper_state), 3);
	assert_null(mapper_own_mount(krbd->mapper, krbd->mapper_state));
	/* As before: a rbd-fuse state without its mount directory cannot be undone. */
	assert_int_equal(stage_load(dir, "vol-bad", &bad), -EINVAL);
	for (size_t i = 0; i < ELEMENTSOF(files); i++) {
		_cleanup_free_ char *path = NULL;

		assert_int_equal(stage_state_path(dir, files[i].id, &path), 0);
		assert_int_equal(unlink(path), 0);
	}
	assert_int_equal(rmdir(dir), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		HOST_TEST(test_stage__ext4_write_unstage_restage_read),
		HOST_TEST(test_stage__xfs_write_unstage_restage_read),
		HOST_TEST(test_stage__block),
		HOST_TEST(test_stage__conflicting_parameters),
		HOST_TEST(test_stage__refuses_foreign_signature),
		HOST_TEST(test_stage__read_only_blank_refused),
		HOST_TEST(test_stage__read_only_mount),
		HOST_TEST(test_stage__missing_image_leaves_nothing),
		HOST_TEST(test_stage__killed_daemon_unstage_completes),
		HOST_TEST(test_stage__hung_daemon_unstage_forced_within_bound),
		HOST_TEST(test_stage__crash_mid_stage_is_undone),
		HOST_TEST(test_stage__half_staged_xfs_converges),
		HOST_TEST(test_stage__interrupted_mkfs_is_redone),
		HOST_TEST(test_stage__unstage_after_interrupted_mkfs_wipes),
		HOST_TEST(test_stage__xfs_below_minimum_refused),
		HOST_TEST(test_stage__state_file_content_and_no_key),
		HOST_TEST(test_stage__recover_healthy_after_restart),
		HOST_TEST(test_stage__expand_xfs),
		HOST_TEST(test_stage__unstage_without_state),
		HOST_TEST(test_stage__mapper_selection),
		HOST_TEST(test_stage__fake_sysfs_krbd_block),
		cmocka_unit_test(test_stage__state_file_from_before_the_mapper_table),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
