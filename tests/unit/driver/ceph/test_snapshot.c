/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Unit tests for driver/ceph/snapshot.c and the clone paths of volume.c against a real Ceph:
 * idempotent snapshots, restore and clone with the data checked, snapshots that outlive their
 * source, deleting a snapshot under its restored volumes, garbage collection of the RBD trash,
 * clone-depth limits (a chain of 20 clone-of-clone volumes), flattening past a deadline, crashes
 * at every failpoint of create, delete, clone and garbage collection (a forked child killed by
 * SIGKILL, then a retry in the parent), listing. Everything happens in an RBD namespace of this
 * process; after each test it must hold no image, no trashed image and no journal entry.
 *
 * Forking: as in test_volume.c, the parent holds no librados connection (and no flatten
 * thread) while it forks; every child makes its own connection.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "driver/base/failpoint.h"
#include "driver/base/log.h"
#include "driver/ceph/cluster.h"
#include "driver/ceph/cluster_ioctx.h"
#include "driver/ceph/image.h"
#include "driver/ceph/journal.h"
#include "driver/ceph/snapshot.h"
#include "driver/ceph/volume.h"
#include "tests/unit/driver/ceph/ceph_test_env.h"

#define MiB (1024ULL * 1024ULL)
#define KiB 1024ULL

static struct test_env env;
static bool have_ceph;
static char ns[64];

static void trash_purge_all(rados_ioctx_t io)
{
	for (int pass = 0; pass < 8; pass++) {
		rbd_trash_image_info_t e[64];
		size_t n = 64;

		if (rbd_trash_list(io, e, &n) < 0 || n == 0)
			return;
		for (size_t i = 0; i < n; i++)
			(void)rbd_trash_remove(io, e[i].id, true);
		rbd_trash_list_cleanup(e, n);
	}
}

static int group_setup(void **state)
{
	rados_t r = NULL;
	int k;

	snprintf(ns, sizeof(ns), "rbdcsi-test-snapshot-%d", (int)getpid());
	if (getenv("RBDCSI_TEST_DEBUG"))
		log_set_max_level(LOG_LEVEL_DEBUG);
	if (!test_env_get(&env))
		return 0;
	k = test_rados_connect(&env, &r);
	if (k < 0)
		return -1;
	k = test_namespace_create(r, env.pool, ns);
	rados_shutdown(r);
	if (k < 0)
		return -1;
	have_ceph = true;
	return 0;
}

static int group_teardown(void **state)
{
	rados_t r = NULL;
	rados_ioctx_t io = NULL;

	if (!have_ceph || test_rados_connect(&env, &r) < 0)
		return 0;
	if (rados_ioctx_create(r, env.pool, &io) == 0) {
		rados_ioctx_set_namespace(io, ns);
		for (int pass = 0; pass < 3; pass++) {
			(void)test_sweep_images(io, "");
			trash_purge_all(io);
		}
		rados_ioctx_destroy(io);
	}
	if (test_namespace_remove(r, env.pool, ns) < 0)
		fprintf(stderr, "warning: could not remove namespace %s\n", ns);
	rados_shutdown(r);
	return 0;
}

#define NEED_CEPH()                                                                              \
	do {                                                                                     \
		if (!have_ceph)                                                                  \
			TEST_SKIP_NO_CEPH("no test Ceph cluster (RBDCSI_TEST_MONITORS unset or " \
			                  "unreachable)");                                       \
	} while (0)

static struct cluster *connect_new(void)
{
	struct cluster_credentials cred = test_credentials(&env);
	struct cluster_timeouts t = test_timeouts();
	struct cluster *c = NULL;

	assert_int_equal(cluster_connect(&cred, &t, &c), 0);
	return c;
}

static rados_ioctx_t open_ns(struct cluster *c)
{
	rados_ioctx_t io = NULL;

	assert_int_equal(cluster_ioctx_open(c, env.pool, ns, &io), 0);
	return io;
}

static struct volume_request request(const char *name, uint64_t size)
{
	return (struct volume_request){
		.cluster_id = TEST_CLUSTER_ID,
		.pool = env.pool,
		.rados_namespace = ns,
		.name = name,
		.size = size,
		.fingerprint = "v1;fs=ext4;caps=mount:1",
	};
}

static struct volume *make_volume(struct cluster *c, const char *name, uint64_t size,
                                  struct volume_id *ret_id)
{
	struct volume_request req = request(name, size);
	struct volume *v = NULL;

	assert_int_equal(volume_create(c, &req, &v), 0);
	assert_int_equal(volume_id_decode(v->id, ret_id), 0);
	return v;
}

static struct volume *make_clone(struct cluster *c, const char *name, uint64_t size,
                                 const struct volume_id *source, unsigned depth_max,
                                 struct volume_id *ret_id)
{
	struct volume_request req = request(name, size);
	struct volume *v = NULL;

	req.source = source;
	req.clone_depth_max = depth_max;
	assert_int_equal(volume_create(c, &req, &v), 0);
	assert_int_equal(volume_id_decode(v->id, ret_id), 0);
	return v;
}

static struct snapshot *make_snapshot(struct cluster *c, const char *name,
                                      const struct volume_id *source, struct volume_id *ret_id)
{
	struct snapshot_request req = { .name = name, .source = source };
	struct snapshot *s = NULL;

	assert_int_equal(snapshot_create(c, &req, &s), 0);
	assert_true(s->ready);
	assert_int_equal(volume_id_decode(s->id, ret_id), 0);
	return s;
}

/* ---- data ---- */

static void write_byte(struct cluster *c, const char *image, uint64_t off, char byte, size_t len)
{
	rados_ioctx_t io = open_ns(c);
	rbd_image_t img = NULL;
	char buf[64 * 1024];

	assert_true(len <= sizeof(buf));
	memset(buf, byte, len);
	assert_int_equal(rbd_open(io, image, &img, NULL), 0);
	assert_int_equal(rbd_write(img, off, len, buf), (ssize_t)len);
	assert_int_equal(rbd_flush(img), 0);
	assert_int_equal(rbd_close(img), 0);
	cluster_ioctx_close(io);
}

static void assert_bytes(struct cluster *c, const char *image, uint64_t off, char byte, size_t len)
{
	rados_ioctx_t io = open_ns(c);
	rbd_image_t img = NULL;
	char buf[64 * 1024];

	assert_true(len <= sizeof(buf));
	assert_int_equal(rbd_open_read_only(io, image, &img, NULL), 0);
	assert_int_equal(rbd_read(img, off, len, buf), (ssize_t)len);
	for (size_t i = 0; i < len; i++)
		if (buf[i] != byte)
			fail_msg("%s: byte %" PRIu64 " is 0x%02x, not 0x%02x", image, off + i,
			         (unsigned char)buf[i], (unsigned char)byte);
	assert_int_equal(rbd_close(img), 0);
	cluster_ioctx_close(io);
}

/* Writes data big enough that a flatten takes a while (tens of ms). */
static void write_bulk(struct cluster *c, const char *image, uint64_t bytes)
{
	rados_ioctx_t io = open_ns(c);
	rbd_image_t img = NULL;
	static char buf[4 * MiB];

	memset(buf, 0x5a, sizeof(buf));
	assert_int_equal(rbd_open(io, image, &img, NULL), 0);
	for (uint64_t off = 0; off < bytes; off += sizeof(buf))
		assert_int_equal(rbd_write(img, off, sizeof(buf), buf), (ssize_t)sizeof(buf));
	assert_int_equal(rbd_flush(img), 0);
	assert_int_equal(rbd_close(img), 0);
	cluster_ioctx_close(io);
}

static unsigned depth_of(struct cluster *c, const char *image)
{
	rados_ioctx_t io = open_ns(c);
	unsigned depth = 99;

	assert_int_equal(image_clone_depth(io, image, &depth), 0);
	cluster_ioctx_close(io);
	return depth;
}

/* ---- what the namespace holds ---- */

struct state {
	int images;
	int trash;
	int vol_entries;
	int vol_keys;
	int snap_entries;
	int snap_keys;
};

static int count_trash(rados_ioctx_t io)
{
	rbd_trash_image_info_t e[256];
	size_t n = 256;
	int r = rbd_trash_list(io, e, &n);

	if (r < 0)
		return r;
	rbd_trash_list_cleanup(e, n);
	return (int)n;
}

static struct state inspect(struct cluster *c)
{
	rados_ioctx_t io = open_ns(c);
	struct state s;

	s.images = test_count_images(io);
	s.trash = count_trash(io);
	s.vol_entries = test_count_objects(io, "rbdcsi.volume.");
	s.vol_keys = test_count_omap_keys(io, journal_directory_oid(JOURNAL_VOLUME));
	s.snap_entries = test_count_objects(io, "rbdcsi.snapshot.");
	s.snap_keys = test_count_omap_keys(io, journal_directory_oid(JOURNAL_SNAPSHOT));
	cluster_ioctx_close(io);
	assert_true(s.images >= 0 && s.trash >= 0 && s.vol_entries >= 0 && s.vol_keys >= 0 &&
	            s.snap_entries >= 0 && s.snap_keys >= 0);
	return s;
}

static void assert_state(struct cluster *c, int images, int trash, int volumes, int snapshots)
{
	struct state s = inspect(c);

	if (s.images != images || s.trash != trash || s.vol_entries != volumes ||
	    s.vol_keys != volumes || s.snap_entries != snapshots || s.snap_keys != snapshots)
		fail_msg("expected %d images, %d trashed, %d volumes, %d snapshots; found %d "
		         "images, %d trashed, %d+%d volume entries+keys, %d+%d snapshot "
		         "entries+keys",
		         images, trash, volumes, snapshots, s.images, s.trash, s.vol_entries,
		         s.vol_keys, s.snap_entries, s.snap_keys);
}

static void assert_clean(struct cluster *c)
{
	assert_state(c, 0, 0, 0, 0);
}

/* User snapshots and other (trash namespace) snapshots of an image. */
static void assert_snaps(struct cluster *c, const char *image, size_t user, size_t other)
{
	rados_ioctx_t io = open_ns(c);
	size_t u = 99, o = 99;

	assert_int_equal(image_snap_counts(io, image, &u, &o), 0);
	cluster_ioctx_close(io);
	if (u != user || o != other)
		fail_msg("%s: expected %zu user and %zu other snapshots, found %zu and %zu", image,
		         user, other, u, o);
}

/* ---- children ---- */

typedef int (*child_fn)(struct cluster *c, void *arg);

/* Runs fn in a child with its own connection and the failpoints armed. Returns the child's
 * exit status, or -signal. The parent must hold no connection. */
static int in_child(const char *failpoints, child_fn fn, void *arg)
{
	int status = 0;
	pid_t pid;

	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		struct cluster_credentials cred = test_credentials(&env);
		struct cluster_timeouts t = test_timeouts();
		struct cluster *c = NULL;
		int r;

		if (failpoint_init(failpoints) < 0 || cluster_connect(&cred, &t, &c) < 0)
			_exit(2);
		r = fn(c, arg);
		cluster_unref(c);
		_exit(r < 0 ? 1 : 0);
	}
	assert_int_equal(waitpid(pid, &status, 0), pid);
	if (WIFSIGNALED(status))
		return -WTERMSIG(status);
	assert_true(WIFEXITED(status));
	return WEXITSTATUS(status);
}

/* ---- basic lifecycle ---- */

static void test_snapshot__create_is_idempotent(void **state)
{
	_cleanup_cluster_unref_ struct cluster *c = NULL;
	struct snapshot_request req;
	struct snapshot *s = NULL, *s2 = NULL, *l = NULL;
	struct volume *v = NULL, *w = NULL;
	struct volume_id vid, wid, sid;
	time_t t0 = time(NULL);

	NEED_CEPH();
	c = connect_new();
	v = make_volume(c, "pvc-src", 16 * MiB, &vid);
	w = make_volume(c, "pvc-other", 16 * MiB, &wid);

	req = (struct snapshot_request){ .name = "snap-idem", .source = &vid };
	assert_int_equal(snapshot_create(c, &req, &s), 0);
	assert_true(s->ready);
	assert_int_equal(volume_id_decode(s->id, &sid), 0);
	assert_int_equal(sid.kind, VOLUME_ID_SNAPSHOT);
	assert_int_equal(sid.pool_id, vid.pool_id);
	assert_string_equal(sid.rados_namespace, ns);
	assert_string_equal(s->name, "snap-idem");
	assert_string_equal(s->source_id, v->id);
	assert_string_equal(s->pool, env.pool);
	assert_true(strncmp(s->image, SNAPSHOT_IMAGE_PREFIX, strlen(SNAPSHOT_IMAGE_PREFIX)) == 0);
	assert_string_equal(s->image + strlen(SNAPSHOT_IMAGE_PREFIX), sid.uuid);
	assert_int_equal(s->size, 16 * MiB);
	assert_true(s->created.tv_sec >= t0 - 5 && s->created.tv_sec <= time(NULL) + 5);
	assert_true(s->created.tv_nsec > 0 && s->created.tv_nsec < 1000000000L);
	/* The temporary snapshot left the source (for the trash namespace, kept for the clone);
	 * the snapshot image carries the restore point. */
	assert_snaps(c, v->image, 0, 1);
	assert_snaps(c, s->image, 1, 0);
	assert_state(c, 3, 0, 2, 1);

	/* Again: the same snapshot, nothing new. */
	assert_int_equal(snapshot_create(c, &req, &s2), 0);
	assert_string_equal(s2->id, s->id);
	assert_int_equal(s2->created.tv_sec, s->created.tv_sec);
	assert_int_equal(s2->created.tv_nsec, s->created.tv_nsec);
	s2 = snapshot_free(s2);
	assert_state(c, 3, 0, 2, 1);

	/* Same name, other source: ALREADY_EXISTS, nothing changed. */
	req.source = &wid;
	assert_int_equal(snapshot_create(c, &req, &s2), -EEXIST);
	assert_null(s2);
	assert_snaps(c, w->image, 0, 0);
	assert_state(c, 3, 0, 2, 1);

	assert_int_equal(snapshot_lookup(c, &sid, &l), 0);
	assert_string_equal(l->id, s->id);
	assert_int_equal(l->size, 16 * MiB);
	assert_true(l->ready);
	l = snapshot_free(l);

	assert_int_equal(snapshot_delete(c, &sid, 0), 0);
	assert_int_equal(snapshot_delete(c, &sid, 0), 0); /* idempotent */
	assert_int_equal(snapshot_lookup(c, &sid, &l), -ENOENT);
	assert_snaps(c, v->image, 0, 0); /* the trashed temporary snapshot went with the clone */
	assert_state(c, 2, 0, 2, 0);

	/* The same name after the delete is a new snapshot. */
	req.source = &vid;
	assert_int_equal(snapshot_create(c, &req, &s2), 0);
	assert_string_not_equal(s2->id, s->id);
	assert_int_equal(volume_id_decode(s2->id, &sid), 0);
	assert_int_equal(snapshot_delete(c, &sid, 0), 0);
	assert_int_equal(volume_delete(c, &vid), 0);
	assert_int_equal(volume_delete(c, &wid), 0);
	assert_clean(c);
	snapshot_free(s);
	snapshot_free(s2);
	volume_free(v);
	volume_free(w);
}

static void test_snapshot__bad_requests_leave_nothing(void **state)
{
	_cleanup_cluster_unref_ struct cluster *c = NULL;
	struct snapshot_request req;
	struct snapshot *s = NULL;
	struct volume *v = NULL, *r = NULL;
	struct volume_request vr;
	struct volume_id vid, missing, sid;
	char long_name[JOURNAL_NAME_MAX + 2];

	NEED_CEPH();
	c = connect_new();
	v = make_volume(c, "pvc-bad-src", 8 * MiB, &vid);
	missing = vid;
	snprintf(missing.uuid, sizeof(missing.uuid), "00000000-0000-4000-8000-000000000000");

	req = (struct snapshot_request){ .name = "", .source = &vid };
	assert_int_equal(snapshot_create(c, &req, &s), -EINVAL);
	memset(long_name, 'n', sizeof(long_name) - 1);
	long_name[sizeof(long_name) - 1] = 0;
	req.name = long_name;
	assert_int_equal(snapshot_create(c, &req, &s), -EINVAL);
	req = (struct snapshot_request){ .name = "snap-bad", .source = NULL };
	assert_int_equal(snapshot_create(c, &req, &s), -EINVAL);
	req.source = &missing;
	assert_int_equal(snapshot_create(c, &req, &s), -ENOENT);
	missing.pool_id = 987654;
	assert_int_equal(snapshot_create(c, &req, &s), -ENOENT);
	assert_null(s);

	/* A snapshot id is no volume and the other way round. */
	sid = vid;
	sid.kind = VOLUME_ID_SNAPSHOT;
	req.source = &sid;
	assert_int_equal(snapshot_create(c, &req, &s), -EINVAL);
	assert_int_equal(snapshot_lookup(c, &vid, &s), -ENOENT);
	assert_int_equal(snapshot_lookup(c, &sid, &s), -ENOENT);
	assert_int_equal(snapshot_delete(c, &vid, 0), 0);
	assert_int_equal(snapshot_delete(c, &sid, 0), 0);

	/* Restoring or cloning from what does not exist. */
	vr = request("pvc-from-nothing", 8 * MiB);
	vr.source = &sid;
	assert_int_equal(volume_create(c, &vr, &r), -ENOENT);
	missing = vid;
	snprintf(missing.uuid, sizeof(missing.uuid), "00000000-0000-4000-8000-000000000000");
	vr.source = &missing;
	assert_int_equal(volume_create(c, &vr, &r), -ENOENT);
	assert_null(r);
	/* Nothing was reserved for requests that cannot succeed. */
	assert_snaps(c, v->image, 0, 0);
	assert_state(c, 1, 0, 1, 0);
	assert_int_equal(volume_delete(c, &vid), 0);
	assert_clean(c);
	volume_free(v);
}

/* ---- data through restore and clone ---- */

static void test_snapshot__restore_and_clone_data(void **state)
{
	_cleanup_cluster_unref_ struct cluster *c = NULL;
	struct volume *v = NULL, *r = NULL, *k = NULL, *x = NULL;
	struct snapshot *s = NULL;
	struct volume_request vr;
	struct volume_id vid, sid, rid, kid;

	NEED_CEPH();
	c = connect_new();
	v = make_volume(c, "pvc-data", 16 * MiB, &vid);
	write_byte(c, v->image, 0, 'A', 4096);
	write_byte(c, v->image, 15 * MiB, 'a', 4096);
	s = make_snapshot(c, "snap-data", &vid, &sid);
	write_byte(c, v->image, 0, 'B', 4096); /* after the cut */

	/* Restore: the data at the cut. Size 0 = the snapshot's. */
	vr = request("pvc-restored", 0);
	vr.source = &sid;
	assert_int_equal(volume_create(c, &vr, &r), 0);
	assert_int_equal(r->size, 16 * MiB);
	assert_string_equal(r->source_id, s->id);
	assert_int_equal(volume_id_decode(r->id, &rid), 0);
	assert_bytes(c, r->image, 0, 'A', 4096);
	assert_bytes(c, r->image, 15 * MiB, 'a', 4096);
	assert_int_equal(depth_of(c, r->image), 2);
	/* Idempotent, and same name with another source or size is ALREADY_EXISTS. */
	assert_int_equal(volume_create(c, &vr, &x), 0);
	assert_string_equal(x->id, r->id);
	x = volume_free(x);
	vr.source = &vid;
	assert_int_equal(volume_create(c, &vr, &x), -EEXIST);
	vr.source = NULL;
	vr.size = 16 * MiB;
	assert_int_equal(volume_create(c, &vr, &x), -EEXIST);
	assert_null(x);

	/* Bigger than the snapshot: grown. Smaller, or a limit below it: OUT_OF_RANGE. */
	vr = request("pvc-restored-big", 32 * MiB);
	vr.source = &sid;
	assert_int_equal(volume_create(c, &vr, &x), 0);
	assert_int_equal(x->size, 32 * MiB);
	assert_bytes(c, x->image, 0, 'A', 4096);
	assert_bytes(c, x->image, 20 * MiB, 0, 4096);
	{
		struct volume_id xid;
		assert_int_equal(volume_id_decode(x->id, &xid), 0);
		assert_int_equal(volume_delete(c, &xid), 0);
		x = volume_free(x);
	}
	vr = request("pvc-restored-small", 8 * MiB);
	vr.source = &sid;
	assert_int_equal(volume_create(c, &vr, &x), -ERANGE);
	vr = request("pvc-restored-limit", 0);
	vr.source = &sid;
	vr.size_limit = 8 * MiB;
	assert_int_equal(volume_create(c, &vr, &x), -ERANGE);
	assert_null(x);

	/* Clone of the live volume: its data now; the temporary snapshot is gone again. */
	k = make_clone(c, "pvc-clone", 0, &vid, 0, &kid);
	assert_int_equal(k->size, 16 * MiB);
	assert_bytes(c, k->image, 0, 'B', 4096);
	assert_bytes(c, k->image, 15 * MiB, 'a', 4096);
	assert_int_equal(depth_of(c, k->image), 1);
	/* The source's trash namespace holds the snapshots the snapshot image and the clone
	 * hang from; no user snapshot is left on it. */
	assert_snaps(c, v->image, 0, 2);
	/* Writes do not leak between them. */
	write_byte(c, k->image, 0, 'K', 4096);
	write_byte(c, r->image, 4096, 'R', 4096);
	assert_bytes(c, v->image, 0, 'B', 4096);
	assert_bytes(c, v->image, 4096, 0, 4096);
	assert_bytes(c, r->image, 0, 'A', 4096);

	/* The failed creates above reserved nothing. */
	assert_state(c, 4, 0, 3, 1);
	assert_int_equal(volume_delete(c, &kid), 0);
	assert_int_equal(volume_delete(c, &rid), 0);
	assert_int_equal(snapshot_delete(c, &sid, 0), 0);
	assert_int_equal(volume_delete(c, &vid), 0);
	assert_clean(c);
	volume_free(v);
	volume_free(r);
	volume_free(k);
	snapshot_free(s);
}

/* ---- independence: trash and garbage collection ---- */

static void test_snapshot__outlives_source_and_restored_outlive_snapshot(void **state)
{
	_cleanup_cluster_unref_ struct cluster *c = NULL;
	struct volume *v = NULL, *r = NULL, *r2 = NULL;
	struct snapshot *s = NULL, *l = NULL;
	struct volume_request vr;
	struct volume_id vid, sid, rid, r2id;

	NEED_CEPH();
	c = connect_new();
	v = make_volume(c, "pvc-mortal", 8 * MiB, &vid);
	write_byte(c, v->image, 0, 'M', 4096);
	s = make_snapshot(c, "snap-survivor", &vid, &sid);

	/* The source goes; its image waits in the trash for the snapshot. */
	assert_int_equal(volume_delete(c, &vid), 0);
	assert_state(c, 1, 1, 0, 1);
	assert_int_equal(snapshot_lookup(c, &sid, &l), 0);
	l = snapshot_free(l);

	/* Restore from the snapshot of the deleted volume. */
	vr = request("pvc-from-orphan", 0);
	vr.source = &sid;
	assert_int_equal(volume_create(c, &vr, &r), 0);
	assert_int_equal(volume_id_decode(r->id, &rid), 0);
	assert_bytes(c, r->image, 0, 'M', 4096);

	/* The snapshot goes while the restored volume lives: trashed too. */
	assert_int_equal(snapshot_delete(c, &sid, 0), 0);
	assert_int_equal(snapshot_lookup(c, &sid, &l), -ENOENT);
	assert_state(c, 1, 2, 1, 0);
	assert_bytes(c, r->image, 0, 'M', 4096);
	write_byte(c, r->image, 8192, 'W', 4096);
	assert_bytes(c, r->image, 8192, 'W', 4096);

	/* A clone of the restored volume keeps the whole chain alive a bit longer. */
	vr = request("pvc-grandchild", 0);
	vr.source = &rid;
	assert_int_equal(volume_create(c, &vr, &r2), 0);
	assert_int_equal(volume_id_decode(r2->id, &r2id), 0);
	assert_int_equal(depth_of(c, r2->image), 3);
	assert_int_equal(volume_delete(c, &rid), 0);
	assert_state(c, 1, 3, 1, 0);
	assert_bytes(c, r2->image, 0, 'M', 4096);
	assert_bytes(c, r2->image, 8192, 'W', 4096);

	/* The last one goes: the whole chain leaves the trash. */
	assert_int_equal(volume_delete(c, &r2id), 0);
	assert_clean(c);
	volume_free(v);
	volume_free(r);
	volume_free(r2);
	snapshot_free(s);
}

/* Deleting in every order leaves nothing: source, snapshot, restored. */
static void test_snapshot__delete_orders(void **state)
{
	static const char *const orders[] = { "vsr", "vrs", "svr", "srv", "rvs", "rsv" };

	NEED_CEPH();
	for (size_t i = 0; i < ELEMENTSOF(orders); i++) {
		_cleanup_cluster_unref_ struct cluster *c = NULL;
		struct volume *v = NULL, *r = NULL;
		struct snapshot *s = NULL;
		struct volume_id vid, sid, rid;
		struct volume_request vr;

		c = connect_new();
		v = make_volume(c, "pvc-order", 8 * MiB, &vid);
		s = make_snapshot(c, "snap-order", &vid, &sid);
		vr = request("pvc-order-restored", 0);
		vr.source = &sid;
		assert_int_equal(volume_create(c, &vr, &r), 0);
		assert_int_equal(volume_id_decode(r->id, &rid), 0);
		for (const char *o = orders[i]; *o; o++)
			switch (*o) {
			case 'v':
				assert_int_equal(volume_delete(c, &vid), 0);
				break;
			case 's':
				assert_int_equal(snapshot_delete(c, &sid, 0), 0);
				break;
			default:
				assert_int_equal(volume_delete(c, &rid), 0);
			}
		assert_clean(c);
		volume_free(v);
		volume_free(r);
		snapshot_free(s);
	}
}

/* Snapshots the driver did not take still block a delete, as before. */
static void test_snapshot__foreign_snapshot_blocks_delete(void **state)
{
	_cleanup_cluster_unref_ struct cluster *c = NULL;
	struct volume *v = NULL, *l = NULL;
	struct volume_id vid;
	rados_ioctx_t io;

	NEED_CEPH();
	c = connect_new();
	v = make_volume(c, "pvc-foreign", 8 * MiB, &vid);
	io = open_ns(c);
	assert_int_equal(image_snap_create(io, v->image, "admin-backup"), 0);
	/* A leftover of ours (a create that died) is cleaned up, though. */
	assert_int_equal(image_snap_create(io, v->image, SNAPSHOT_TEMP_CLONE_PREFIX "x"), 0);
	assert_int_equal(volume_delete(c, &vid), -EBUSY);
	assert_int_equal(volume_lookup(c, &vid, &l), 0); /* still there, still usable */
	l = volume_free(l);
	assert_int_equal(image_snap_remove(io, v->image, "admin-backup"), 0);
	cluster_ioctx_close(io);
	assert_int_equal(volume_delete(c, &vid), 0);
	assert_clean(c);
	volume_free(v);
}

/* ---- clone depth ---- */

static void test_snapshot__chain_of_20_clones_stays_shallow(void **state)
{
	enum { N = 21 }; /* the base and 20 clones, each a clone of the one before */
	_cleanup_cluster_unref_ struct cluster *c = NULL;
	struct volume *v[N] = {};
	struct volume_id id[N];
	unsigned max_depth = 0;
	uint64_t t0;

	NEED_CEPH();
	c = connect_new();
	t0 = test_now_usec();
	v[0] = make_volume(c, "pvc-chain-00", 8 * MiB, &id[0]);
	write_byte(c, v[0]->image, 0, 1, 4096);
	for (int i = 1; i < N; i++) {
		char name[32];
		unsigned d;

		snprintf(name, sizeof(name), "pvc-chain-%02d", i);
		v[i] = make_clone(c, name, 0, &id[i - 1], SNAPSHOT_CLONE_DEPTH_DEFAULT, &id[i]);
		d = depth_of(c, v[i]->image);
		assert_true(d <= SNAPSHOT_CLONE_DEPTH_DEFAULT);
		max_depth = MAX(max_depth, d);
		/* Each link marks its own 4 KiB block. */
		write_byte(c, v[i]->image, (uint64_t)i * 64 * KiB, (char)(i + 1), 4096);
	}
	print_message("20 clone-of-clone volumes in %llu ms, deepest chain %u\n",
	              (unsigned long long)((test_now_usec() - t0) / 1000), max_depth);
	assert_int_equal(max_depth, SNAPSHOT_CLONE_DEPTH_DEFAULT);
	/* Every link reads its ancestors' marks and its own, and nothing of its descendants. */
	for (int i = 0; i < N; i++) {
		for (int j = 0; j <= i; j++)
			assert_bytes(c, v[i]->image, (uint64_t)j * 64 * KiB, (char)(j + 1), 4096);
		if (i + 1 < N)
			assert_bytes(c, v[i]->image, (uint64_t)(i + 1) * 64 * KiB, 0, 4096);
	}
	/* A snapshot of a volume at the limit is flattened (its image would be one deeper). */
	{
		struct snapshot *s = NULL;
		struct volume_id sid;
		int deep = -1;

		for (int i = 0; i < N && deep < 0; i++)
			if (depth_of(c, v[i]->image) == SNAPSHOT_CLONE_DEPTH_DEFAULT)
				deep = i;
		assert_true(deep >= 0);
		s = make_snapshot(c, "snap-of-deep", &id[deep], &sid);
		assert_int_equal(depth_of(c, s->image), 0);
		assert_bytes(c, s->image, 0, 1, 4096);
		assert_bytes(c, s->image, (uint64_t)deep * 64 * KiB, (char)(deep + 1), 4096);
		assert_int_equal(snapshot_delete(c, &sid, 0), 0);
		snapshot_free(s);
	}
	/* Deleting from the root down trashes and then collects everything. */
	for (int i = 0; i < N; i++) {
		assert_int_equal(volume_delete(c, &id[i]), 0);
		volume_free(v[i]);
	}
	assert_clean(c);
}

static void test_snapshot__flatten_past_the_deadline_continues(void **state)
{
	_cleanup_cluster_unref_ struct cluster *c = NULL;
	struct volume *a = NULL, *b = NULL, *x = NULL;
	struct snapshot *s = NULL;
	struct snapshot_request sr;
	struct volume_request vr;
	struct volume_id aid, bid, xid, sid;
	uint64_t t0;

	NEED_CEPH();
	c = connect_new();
	a = make_volume(c, "pvc-flat-a", 128 * MiB, &aid);
	write_bulk(c, a->image, 128 * MiB);
	b = make_clone(c, "pvc-flat-b", 0, &aid, 1, &bid); /* depth 1: no flatten */
	assert_int_equal(depth_of(c, b->image), 1);

	/* depth 2 > 1 with a deadline already passed: still being flattened. */
	vr = request("pvc-flat-x", 0);
	vr.source = &bid;
	vr.clone_depth_max = 1;
	vr.deadline_usec = test_now_usec() - 1;
	assert_int_equal(volume_create(c, &vr, &x), -EINPROGRESS);
	assert_null(x);
	/* The retry waits for the same flatten and finishes the volume. */
	vr.deadline_usec = 0;
	t0 = test_now_usec();
	assert_int_equal(volume_create(c, &vr, &x), 0);
	print_message("retry after the deadline finished in %llu ms\n",
	              (unsigned long long)((test_now_usec() - t0) / 1000));
	assert_int_equal(depth_of(c, x->image), 0);
	assert_bytes(c, x->image, 0, 0x5a, 4096);
	assert_bytes(c, x->image, 127 * MiB, 0x5a, 4096);
	assert_int_equal(volume_id_decode(x->id, &xid), 0);

	/* A snapshot whose image must be flattened is not ready until it is. */
	sr = (struct snapshot_request){ .name = "snap-flat",
		                        .source = &bid,
		                        .clone_depth_max = 1,
		                        .deadline_usec = test_now_usec() - 1 };
	assert_int_equal(snapshot_create(c, &sr, &s), 0);
	assert_false(s->ready);
	assert_int_equal(volume_id_decode(s->id, &sid), 0);
	s = snapshot_free(s);
	/* Listed and looked up as not ready; not restorable yet; not deletable while the
	 * flatten runs in this process (ABORTED, the CO retries). */
	assert_int_equal(snapshot_lookup(c, &sid, &s), 0);
	assert_false(s->ready);
	s = snapshot_free(s);
	assert_int_equal(snapshot_delete(c, &sid, test_now_usec() - 1), -EAGAIN);
	sr.deadline_usec = 0;
	assert_int_equal(snapshot_create(c, &sr, &s), 0);
	assert_true(s->ready);
	assert_int_equal(depth_of(c, s->image), 0);
	s = snapshot_free(s);

	assert_int_equal(snapshot_delete(c, &sid, 0), 0);
	assert_int_equal(volume_delete(c, &xid), 0);
	assert_int_equal(volume_delete(c, &bid), 0);
	assert_int_equal(volume_delete(c, &aid), 0);
	assert_clean(c);
	volume_free(a);
	volume_free(b);
	volume_free(x);
}

/* ---- listing ---- */

static void test_snapshot__list_pages_and_filter(void **state)
{
	enum { N = 7 };
	_cleanup_cluster_unref_ struct cluster *c = NULL;
	struct volume *v = NULL, *w = NULL;
	struct volume_id vid, wid, sid[N];
	struct snapshot *s = NULL, *page = NULL;
	size_t n = 0, total = 0, of_v = 0;
	char *token = NULL;
	int pages = 0;

	NEED_CEPH();
	c = connect_new();
	v = make_volume(c, "pvc-list-v", 8 * MiB, &vid);
	w = make_volume(c, "pvc-list-w", 8 * MiB, &wid);
	for (int i = 0; i < N; i++) {
		char name[32];

		snprintf(name, sizeof(name), "snap-list-%d", i);
		s = make_snapshot(c, name, i % 2 ? &wid : &vid, &sid[i]);
		s = snapshot_free(s);
	}
	do {
		char *next = NULL;

		assert_int_equal(snapshot_list(c, TEST_CLUSTER_ID, env.pool, ns, NULL, token, 3,
		                               &page, &n, &next),
		                 0);
		assert_true(n <= 3);
		for (size_t i = 0; i < n; i++) {
			assert_true(page[i].ready);
			assert_true(page[i].created.tv_sec > 0);
			assert_int_equal(page[i].size, 8 * MiB);
		}
		total += n;
		pages++;
		snapshot_list_free(page, n);
		free(token);
		token = next;
	} while (token);
	assert_int_equal(total, N);
	assert_true(pages >= 3);

	assert_int_equal(
	        snapshot_list(c, TEST_CLUSTER_ID, env.pool, ns, v->id, NULL, 0, &page, &n, &token),
	        0);
	for (size_t i = 0; i < n; i++)
		assert_string_equal(page[i].source_id, v->id);
	of_v = n;
	snapshot_list_free(page, n);
	assert_null(token);
	assert_int_equal(of_v, (N + 1) / 2);

	assert_int_equal(
	        snapshot_list(c, TEST_CLUSTER_ID, env.pool, ns, NULL, "zz", 0, &page, &n, &token),
	        -EAGAIN);
	assert_int_equal(snapshot_list(c, TEST_CLUSTER_ID, "rbdcsi-no-such-pool", ns, NULL, NULL, 0,
	                               &page, &n, &token),
	                 -ENOENT);

	for (int i = 0; i < N; i++)
		assert_int_equal(snapshot_delete(c, &sid[i], 0), 0);
	assert_int_equal(volume_delete(c, &vid), 0);
	assert_int_equal(volume_delete(c, &wid), 0);
	assert_clean(c);
	volume_free(v);
	volume_free(w);
}

/* ---- crashes ---- */

struct op_arg {
	char name[64];
	struct volume_id source;
	struct volume_id target;
	uint64_t size;
	unsigned depth_max;
};

static int child_snapshot_create(struct cluster *c, void *p)
{
	struct op_arg *a = p;
	struct snapshot_request req = { .name = a->name,
		                        .source = &a->source,
		                        .clone_depth_max = a->depth_max };
	struct snapshot *s = NULL;
	int r = snapshot_create(c, &req, &s);

	snapshot_free(s);
	return r;
}

static int child_snapshot_delete(struct cluster *c, void *p)
{
	struct op_arg *a = p;

	return snapshot_delete(c, &a->target, 0);
}

static int child_volume_create(struct cluster *c, void *p)
{
	struct op_arg *a = p;
	struct volume_request req = request(a->name, a->size);
	struct volume *v = NULL;
	int r;

	req.source = &a->source;
	req.clone_depth_max = a->depth_max;
	r = volume_create(c, &req, &v);
	volume_free(v);
	return r;
}

static int child_volume_delete(struct cluster *c, void *p)
{
	struct op_arg *a = p;

	return volume_delete(c, &a->target);
}

static void print_state(const char *what, const char *fp, struct state s)
{
	print_message("crash at %-36s (%s): %d images, %d trashed, %d+%d volume entries+keys, "
	              "%d+%d snapshot entries+keys\n",
	              fp, what, s.images, s.trash, s.vol_entries, s.vol_keys, s.snap_entries,
	              s.snap_keys);
}

static const char *const snapshot_create_failpoints[] = {
	"snapshot-create:after-reserve",     "snapshot-create:after-object",
	"snapshot-create:after-source-snap", "snapshot-create:after-clone",
	"snapshot-create:after-record",      "snapshot-create:after-source-unsnap",
	"snapshot-create:after-flatten",     "snapshot-create:after-restore-point",
};

static void test_snapshot__crash_during_create_converges(void **state)
{
	NEED_CEPH();
	for (size_t i = 0; i < ELEMENTSOF(snapshot_create_failpoints); i++) {
		const char *fp = snapshot_create_failpoints[i];
		struct cluster *c = NULL;
		struct volume *v = NULL;
		struct snapshot *s = NULL, *s2 = NULL;
		struct op_arg a = { .name = "snap-crash", .depth_max = 1 };
		struct snapshot_request req = { .name = a.name, .source = &a.source };
		struct volume_id base_id, sid;

		/* The source is a clone (depth 1), so the snapshot image (depth 2) is flattened
		 * with depth_max 1 and every failpoint is on the way. */
		c = connect_new();
		{
			struct volume *base = make_volume(c, "pvc-crash-base", 8 * MiB, &base_id);
			volume_free(base);
		}
		v = make_clone(c, "pvc-crash-src", 0, &base_id, 0, &a.source);
		write_byte(c, v->image, 0, 'C', 4096);
		c = cluster_unref(c); /* no connection across fork() */

		assert_int_equal(in_child(fp, child_snapshot_create, &a), -SIGKILL);

		c = connect_new();
		print_state("snapshot create", fp, inspect(c));
		/* The retry finishes the same snapshot; the source is left with no user
		 * snapshot. */
		req.clone_depth_max = 1;
		assert_int_equal(snapshot_create(c, &req, &s), 0);
		assert_true(s->ready);
		assert_int_equal(depth_of(c, s->image), 0);
		assert_bytes(c, s->image, 0, 'C', 4096);
		assert_int_equal(snapshot_create(c, &req, &s2), 0);
		assert_string_equal(s2->id, s->id);
		assert_state(c, 3, 0, 2, 1);
		assert_snaps(c, v->image, 0, 0); /* flattened: nothing hangs from it */
		assert_int_equal(volume_id_decode(s->id, &sid), 0);
		assert_int_equal(snapshot_delete(c, &sid, 0), 0);
		assert_int_equal(volume_delete(c, &a.source), 0);
		assert_int_equal(volume_delete(c, &base_id), 0);
		assert_clean(c);
		snapshot_free(s);
		snapshot_free(s2);
		volume_free(v);
		c = cluster_unref(c);
	}
}

static const char *const snapshot_delete_failpoints[] = {
	"snapshot-delete:after-mark",      "snapshot-delete:after-unsnap",
	"snapshot-delete:after-image",     "snapshot-gc:after-remove",
	"snapshot-delete:after-unreserve",
};

/*
 * Crash while deleting a snapshot whose source is already deleted (trashed) and from which a
 * volume was restored; then the restored volume goes: the chain collects. And crash while
 * deleting a snapshot with nothing hanging from it, whose deletion collects the trashed
 * source.
 */
static void test_snapshot__crash_during_delete_converges(void **state)
{
	NEED_CEPH();
	for (int with_restored = 0; with_restored < 2; with_restored++)
		for (size_t i = 0; i < ELEMENTSOF(snapshot_delete_failpoints); i++) {
			const char *fp = snapshot_delete_failpoints[i];
			struct cluster *c = NULL;
			struct volume *v = NULL, *r = NULL;
			struct snapshot *s = NULL, *l = NULL;
			struct volume_request vr;
			struct op_arg a = {};
			struct volume_id vid, rid;
			int k;

			if (with_restored && strcmp(fp, "snapshot-gc:after-remove") == 0)
				continue; /* nothing to collect while the restored volume lives */
			c = connect_new();
			v = make_volume(c, "pvc-del-src", 8 * MiB, &vid);
			write_byte(c, v->image, 0, 'D', 4096);
			s = make_snapshot(c, "snap-del", &vid, &a.target);
			if (with_restored) {
				vr = request("pvc-del-restored", 0);
				vr.source = &a.target;
				assert_int_equal(volume_create(c, &vr, &r), 0);
				assert_int_equal(volume_id_decode(r->id, &rid), 0);
			}
			assert_int_equal(volume_delete(c, &vid), 0); /* trashed */
			c = cluster_unref(c);

			k = in_child(fp, child_snapshot_delete, &a);
			assert_int_equal(k, -SIGKILL);

			c = connect_new();
			print_state(with_restored ? "snapshot delete, restored volume lives"
			                          : "snapshot delete",
			            fp, inspect(c));
			assert_int_equal(snapshot_lookup(c, &a.target, &l), -ENOENT);
			assert_int_equal(snapshot_delete(c, &a.target, 0), 0);
			if (with_restored) {
				assert_state(c, 1, 2, 1, 0);
				assert_bytes(c, r->image, 0, 'D', 4096);
				assert_int_equal(volume_delete(c, &rid), 0);
			}
			assert_clean(c);
			volume_free(v);
			volume_free(r);
			snapshot_free(s);
			c = cluster_unref(c);
		}
}

static const char *const volume_delete_failpoints[] = { "volume-delete:after-mark",
	                                                "volume-delete:after-image",
	                                                "snapshot-gc:after-remove",
	                                                "volume-delete:after-unreserve" };

/* Crash while deleting the last volume of a trashed chain (source and snapshot deleted). */
static void test_snapshot__crash_during_collecting_delete_converges(void **state)
{
	NEED_CEPH();
	for (size_t i = 0; i < ELEMENTSOF(volume_delete_failpoints); i++) {
		const char *fp = volume_delete_failpoints[i];
		struct cluster *c = NULL;
		struct volume *v = NULL, *r = NULL;
		struct snapshot *s = NULL;
		struct volume_request vr;
		struct volume_id vid, sid;
		struct op_arg a = {};

		c = connect_new();
		v = make_volume(c, "pvc-gc-src", 8 * MiB, &vid);
		s = make_snapshot(c, "snap-gc", &vid, &sid);
		vr = request("pvc-gc-restored", 0);
		vr.source = &sid;
		assert_int_equal(volume_create(c, &vr, &r), 0);
		assert_int_equal(volume_id_decode(r->id, &a.target), 0);
		assert_int_equal(volume_delete(c, &vid), 0);
		assert_int_equal(snapshot_delete(c, &sid, 0), 0);
		assert_state(c, 1, 2, 1, 0);
		c = cluster_unref(c);

		assert_int_equal(in_child(fp, child_volume_delete, &a), -SIGKILL);

		c = connect_new();
		print_state("volume delete collecting the chain", fp, inspect(c));
		assert_int_equal(volume_delete(c, &a.target), 0);
		assert_clean(c);
		volume_free(v);
		volume_free(r);
		snapshot_free(s);
		c = cluster_unref(c);
	}
}

static const char *const clone_failpoints[] = {
	"volume-create:after-reserve",      "volume-create:after-object",
	"volume-clone:after-source-snap",   "volume-clone:after-clone",
	"volume-clone:after-source-unsnap", "volume-clone:after-resize",
	"volume-clone:after-flatten",
};

/* Crash at each step of a clone from a volume and of a restore from a snapshot (both deep
 * enough to be flattened and asked bigger, so every failpoint is on the way). */
static void test_snapshot__crash_during_clone_converges(void **state)
{
	NEED_CEPH();
	for (int from_snapshot = 0; from_snapshot < 2; from_snapshot++)
		for (size_t i = 0; i < ELEMENTSOF(clone_failpoints); i++) {
			const char *fp = clone_failpoints[i];
			struct cluster *c = NULL;
			struct volume *base = NULL, *src = NULL, *x = NULL;
			struct snapshot *s = NULL;
			struct volume_id base_id, src_id, sid, xid;
			struct op_arg a = { .name = "pvc-clone-crash",
				            .size = 16 * MiB,
				            .depth_max = 1 };
			struct volume_request vr;
			int k;

			if (from_snapshot && strcmp(fp, "volume-clone:after-source-snap") == 0)
				continue; /* a restore takes no temporary snapshot */
			if (from_snapshot && strcmp(fp, "volume-clone:after-source-unsnap") == 0)
				continue;
			c = connect_new();
			base = make_volume(c, "pvc-clone-base", 8 * MiB, &base_id);
			write_byte(c, base->image, 0, 'X', 4096);
			if (from_snapshot) {
				s = make_snapshot(c, "snap-clone-src", &base_id, &sid);
				a.source = sid; /* restored: depth 2 > 1 */
			} else {
				src = make_clone(c, "pvc-clone-src", 0, &base_id, 0, &src_id);
				a.source = src_id; /* clone of a clone: depth 2 > 1 */
			}
			c = cluster_unref(c);

			k = in_child(fp, child_volume_create, &a);
			assert_int_equal(k, -SIGKILL);

			c = connect_new();
			print_state(from_snapshot ? "restore" : "clone", fp, inspect(c));
			vr = request(a.name, a.size);
			vr.source = &a.source;
			vr.clone_depth_max = 1;
			assert_int_equal(volume_create(c, &vr, &x), 0);
			assert_int_equal(x->size, 16 * MiB);
			assert_int_equal(depth_of(c, x->image), 0);
			assert_bytes(c, x->image, 0, 'X', 4096);
			assert_int_equal(volume_id_decode(x->id, &xid), 0);
			if (!from_snapshot)
				assert_snaps(c, src->image, 0, 0);
			assert_state(c, 3, 0, from_snapshot ? 2 : 3, from_snapshot);

			assert_int_equal(volume_delete(c, &xid), 0);
			if (from_snapshot)
				assert_int_equal(snapshot_delete(c, &sid, 0), 0);
			else
				assert_int_equal(volume_delete(c, &src_id), 0);
			assert_int_equal(volume_delete(c, &base_id), 0);
			assert_clean(c);
			volume_free(base);
			volume_free(src);
			volume_free(x);
			snapshot_free(s);
			c = cluster_unref(c);
		}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_snapshot__create_is_idempotent),
		cmocka_unit_test(test_snapshot__bad_requests_leave_nothing),
		cmocka_unit_test(test_snapshot__restore_and_clone_data),
		cmocka_unit_test(test_snapshot__outlives_source_and_restored_outlive_snapshot),
		cmocka_unit_test(test_snapshot__delete_orders),
		cmocka_unit_test(test_snapshot__foreign_snapshot_blocks_delete),
		cmocka_unit_test(test_snapshot__chain_of_20_clones_stays_shallow),
		cmocka_unit_test(test_snapshot__flatten_past_the_deadline_continues),
		cmocka_unit_test(test_snapshot__list_pages_and_filter),
		cmocka_unit_test(test_snapshot__crash_during_create_converges),
		cmocka_unit_test(test_snapshot__crash_during_delete_converges),
		cmocka_unit_test(test_snapshot__crash_during_collecting_delete_converges),
		cmocka_unit_test(test_snapshot__crash_during_clone_converges),
	};

	return cmocka_run_group_tests_name("snapshot", tests, group_setup, group_teardown);
}
