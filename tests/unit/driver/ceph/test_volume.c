/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Unit tests for driver/ceph/volume.c (and the journal under it) against a real Ceph: idempotent
 * create, conflicts, races between threads and between processes, crashes at every failpoint
 * (a forked child killed by SIGKILL, then a retry in the parent), delete, expand, attachments,
 * pagination. Everything happens in an RBD namespace of this process, checked for leftovers
 * (images, entry objects, directory keys) after each test.
 *
 * Forking: the parent never holds a librados connection while it forks (rados_shutdown() joins
 * all librados threads, checked in test_cluster), and every child makes its own connection.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
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
#include "driver/ceph/volume.h"
#include "tests/unit/driver/ceph/ceph_test_env.h"

#define MiB (1024ULL * 1024ULL)

static struct test_env env;
static bool have_ceph;
static char ns[64];

static int group_setup(void **state)
{
	rados_t r = NULL;
	int k;

	snprintf(ns, sizeof(ns), "rbdcsi-test-volume-%d", (int)getpid());
	/* RBDCSI_TEST_DEBUG=1: driver debug logs on stderr (children inherit the level). */
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
		if (test_sweep_images(io, "") != 0)
			fprintf(stderr, "warning: images left in namespace %s\n", ns);
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

static struct volume_request request(const char *name, uint64_t size)
{
	return (struct volume_request){
		.cluster_id = TEST_CLUSTER_ID,
		.pool = env.pool,
		.rados_namespace = ns,
		.name = name,
		.size = size,
		.fingerprint = "caps=SINGLE_NODE_WRITER/mount;fs=ext4",
	};
}

/* What the journal and the pool hold in our namespace. */
struct state {
	int images;
	int entries;
	int dir_keys;
};

static struct state inspect(struct cluster *c)
{
	rados_ioctx_t io = NULL;
	struct state s;

	assert_int_equal(cluster_ioctx_open(c, env.pool, ns, &io), 0);
	s.images = test_count_images(io);
	s.entries = test_count_objects(io, "rbdcsi.volume.");
	s.dir_keys = test_count_omap_keys(io, journal_directory_oid(JOURNAL_VOLUME));
	cluster_ioctx_close(io);
	assert_true(s.images >= 0 && s.entries >= 0 && s.dir_keys >= 0);
	return s;
}

static void assert_state(struct cluster *c, int images, int entries, int dir_keys)
{
	struct state s = inspect(c);

	if (s.images != images || s.entries != entries || s.dir_keys != dir_keys)
		fail_msg("expected %d images, %d entries, %d directory keys; found %d, %d, %d",
		         images, entries, dir_keys, s.images, s.entries, s.dir_keys);
}

static void assert_clean(struct cluster *c)
{
	assert_state(c, 0, 0, 0);
}

static int volume_state(struct cluster *c, const char *uuid, char *buf, size_t size)
{
	struct journal_entry *e = NULL;
	rados_ioctx_t io = NULL;
	int r;

	assert_int_equal(cluster_ioctx_open(c, env.pool, ns, &io), 0);
	r = journal_entry_read(io, JOURNAL_VOLUME, uuid, &e);
	cluster_ioctx_close(io);
	if (r < 0)
		return r;
	snprintf(buf, size, "%s", strempty(journal_entry_get(e, "state")));
	journal_entry_free(e);
	return 0;
}

/* ---- basic lifecycle ---- */

static void test_volume__create_is_idempotent(void **state)
{
	_cleanup_cluster_unref_ struct cluster *c = NULL;
	struct volume *v = NULL, *v2 = NULL, *l = NULL;
	struct volume_request req;
	struct volume_id id;

	NEED_CEPH();
	c = connect_new();
	req = request("pvc-idem", 64 * MiB);
	assert_int_equal(volume_create(c, &req, &v), 0);
	assert_int_equal(volume_id_decode(v->id, &id), 0);
	assert_int_equal(id.kind, VOLUME_ID_VOLUME);
	assert_string_equal(id.cluster_id, TEST_CLUSTER_ID);
	assert_string_equal(id.rados_namespace, ns);
	assert_string_equal(v->name, "pvc-idem");
	assert_string_equal(v->pool, env.pool);
	assert_int_equal(v->size, 64 * MiB);
	assert_int_equal(v->requested_size, 64 * MiB);
	assert_string_equal(v->features, "layering");
	assert_string_equal(v->fingerprint, req.fingerprint);
	assert_true(strncmp(v->image, "csi-vol-", 8) == 0);
	assert_string_equal(v->image + 8, id.uuid);
	assert_int_equal(v->n_attachments, 0);
	assert_state(c, 1, 1, 1);

	/* Again: the same volume. */
	assert_int_equal(volume_create(c, &req, &v2), 0);
	assert_string_equal(v2->id, v->id);
	assert_state(c, 1, 1, 1);

	assert_int_equal(volume_lookup(c, &id, &l), 0);
	assert_string_equal(l->id, v->id);
	assert_string_equal(l->image, v->image);
	assert_int_equal(l->size, 64 * MiB);

	assert_int_equal(volume_delete(c, &id), 0);
	assert_clean(c);
	assert_int_equal(volume_delete(c, &id), 0); /* idempotent */
	volume_free(l);
	l = NULL;
	assert_int_equal(volume_lookup(c, &id, &l), -ENOENT);

	/* The same name after the delete is a new volume. */
	v2 = volume_free(v2);
	assert_int_equal(volume_create(c, &req, &v2), 0);
	assert_string_not_equal(v2->id, v->id);
	assert_int_equal(volume_id_decode(v2->id, &id), 0);
	assert_int_equal(volume_delete(c, &id), 0);
	assert_clean(c);
	volume_free(v);
	volume_free(v2);
}

static void test_volume__same_name_other_parameters(void **state)
{
	_cleanup_cluster_unref_ struct cluster *c = NULL;
	struct volume *v = NULL, *w = NULL;
	struct volume_request req, other;
	struct volume_id id;

	NEED_CEPH();
	c = connect_new();
	req = request("pvc-conflict", 32 * MiB);
	assert_int_equal(volume_create(c, &req, &v), 0);

	other = req;
	other.size = 64 * MiB;
	assert_int_equal(volume_create(c, &other, &w), -EEXIST);
	other = req;
	other.fingerprint = "caps=MULTI_NODE_MULTI_WRITER/block";
	assert_int_equal(volume_create(c, &other, &w), -EEXIST);
	other = req;
	other.fingerprint = NULL;
	assert_int_equal(volume_create(c, &other, &w), -EEXIST);
	other = req;
	other.features = "layering,exclusive-lock";
	assert_int_equal(volume_create(c, &other, &w), -EEXIST);
	other = req;
	other.image_prefix = "other-";
	assert_int_equal(volume_create(c, &other, &w), -EEXIST);
	assert_null(w);
	assert_state(c, 1, 1, 1);

	assert_int_equal(volume_id_decode(v->id, &id), 0);
	assert_int_equal(volume_delete(c, &id), 0);
	assert_clean(c);
	volume_free(v);
}

static void test_volume__bad_requests_leave_nothing(void **state)
{
	_cleanup_cluster_unref_ struct cluster *c = NULL;
	struct volume_request req;
	struct volume *v = NULL;
	char long_ns[64];

	NEED_CEPH();
	c = connect_new();

	req = request("pvc-bad", 0);
	assert_int_equal(volume_create(c, &req, &v), -EINVAL);
	req = request("", MiB);
	assert_int_equal(volume_create(c, &req, &v), -EINVAL);
	req = request("pvc-bad", MiB);
	req.features = "layering,bogus";
	assert_int_equal(volume_create(c, &req, &v), -EINVAL);
	req = request("pvc-bad", MiB);
	req.features = "object-map";
	assert_int_equal(volume_create(c, &req, &v), -EINVAL);
	req = request("pvc-bad", MiB);
	req.image_prefix = "bad/prefix";
	assert_int_equal(volume_create(c, &req, &v), -EINVAL);
	req = request("pvc-bad", MiB);
	req.pool = "rbdcsi-no-such-pool";
	assert_int_equal(volume_create(c, &req, &v), -EINVAL);
	req = request("pvc-bad", MiB);
	req.data_pool = "rbdcsi-no-such-pool";
	assert_int_equal(volume_create(c, &req, &v), -EINVAL);
	req = request("pvc-bad", MiB);
	req.rados_namespace = "rbdcsi-no-such-namespace";
	assert_int_equal(volume_create(c, &req, &v), -EINVAL);
	req = request("pvc-bad", MiB);
	req.cluster_id = "bad/cluster";
	assert_int_equal(volume_create(c, &req, &v), -EINVAL);
	memset(long_ns, 'n', 60);
	long_ns[60] = 0;
	req = request("pvc-bad", MiB);
	req.rados_namespace = long_ns;
	assert_int_equal(volume_create(c, &req, &v), -ENAMETOOLONG);
	assert_null(v);
	assert_clean(c);
}

static void test_volume__options(void **state)
{
	_cleanup_cluster_unref_ struct cluster *c = NULL;
	struct volume_request req;
	struct volume *v = NULL;
	struct volume_id id;

	NEED_CEPH();
	c = connect_new();
	req = request("pvc-opts", 16 * MiB);
	req.image_prefix = "my-prefix.";
	req.features = "layering,exclusive-lock,object-map,fast-diff,deep-flatten";
	req.data_pool = env.pool2;
	req.fingerprint = NULL;
	assert_int_equal(volume_create(c, &req, &v), 0);
	assert_true(strncmp(v->image, "my-prefix.", 10) == 0);
	assert_string_equal(v->features, req.features);
	assert_string_equal(v->fingerprint, "");
	if (env.pool2)
		assert_string_equal(v->data_pool, env.pool2);
	else
		assert_null(v->data_pool);
	assert_int_equal(volume_id_decode(v->id, &id), 0);
	v = volume_free(v);
	assert_int_equal(volume_create(c, &req, &v), 0); /* the same again */
	assert_int_equal(volume_delete(c, &id), 0);
	assert_clean(c);
	volume_free(v);
}

static void test_volume__wrong_ids(void **state)
{
	_cleanup_cluster_unref_ struct cluster *c = NULL;
	struct volume *v = NULL;
	struct volume_id id;

	NEED_CEPH();
	c = connect_new();
	/* No such uuid. */
	assert_int_equal(volume_id_make(VOLUME_ID_VOLUME, TEST_CLUSTER_ID, 1, ns,
	                                "00000000-0000-4000-8000-000000000000", &id),
	                 0);
	assert_int_equal(cluster_pool_lookup(c, env.pool, &id.pool_id), 0);
	assert_int_equal(volume_lookup(c, &id, &v), -ENOENT);
	assert_int_equal(volume_delete(c, &id), 0);
	assert_int_equal(volume_detach(c, &id, "node-a"), 0);
	assert_int_equal(volume_attach(c, &id, "node-a", VOLUME_ACCESS_RW, true), -ENOENT);
	assert_int_equal(volume_expand(c, &id, 2 * MiB, NULL), -ENOENT);
	/* No such pool. */
	id.pool_id = 987654;
	assert_int_equal(volume_lookup(c, &id, &v), -ENOENT);
	assert_int_equal(volume_delete(c, &id), 0);
	/* A snapshot id is no volume. */
	assert_int_equal(cluster_pool_lookup(c, env.pool, &id.pool_id), 0);
	id.kind = VOLUME_ID_SNAPSHOT;
	assert_int_equal(volume_lookup(c, &id, &v), -ENOENT);
	assert_int_equal(volume_delete(c, &id), 0);
	assert_null(v);
	assert_clean(c);
}

static void test_volume__delete_refused_while_watched(void **state)
{
	_cleanup_cluster_unref_ struct cluster *c = NULL;
	struct volume_request req;
	struct volume *v = NULL, *l = NULL;
	struct volume_id id;
	rados_ioctx_t io = NULL;
	rbd_image_t img = NULL;
	char st[32];

	NEED_CEPH();
	c = connect_new();
	req = request("pvc-watched", 8 * MiB);
	assert_int_equal(volume_create(c, &req, &v), 0);
	assert_int_equal(volume_id_decode(v->id, &id), 0);
	assert_int_equal(cluster_ioctx_open(c, env.pool, ns, &io), 0);
	assert_int_equal(rbd_open(io, v->image, &img, NULL), 0); /* like a mapped image */

	assert_int_equal(volume_delete(c, &id), -EBUSY);
	/* Nothing changed. */
	assert_int_equal(volume_state(c, id.uuid, st, sizeof(st)), 0);
	assert_string_equal(st, "created");
	assert_int_equal(volume_lookup(c, &id, &l), 0);
	l = volume_free(l);
	assert_state(c, 1, 1, 1);

	assert_int_equal(rbd_close(img), 0);
	cluster_ioctx_close(io);
	assert_int_equal(volume_delete(c, &id), 0);
	assert_clean(c);
	volume_free(v);
}

static void test_volume__expand(void **state)
{
	_cleanup_cluster_unref_ struct cluster *c = NULL;
	struct volume_request req;
	struct volume *v = NULL, *e = NULL;
	struct volume_id id;

	NEED_CEPH();
	c = connect_new();
	req = request("pvc-expand", 16 * MiB);
	assert_int_equal(volume_create(c, &req, &v), 0);
	assert_int_equal(volume_id_decode(v->id, &id), 0);

	assert_int_equal(volume_expand(c, &id, 48 * MiB, &e), 0);
	assert_int_equal(e->size, 48 * MiB);
	assert_int_equal(e->requested_size, 16 * MiB);
	e = volume_free(e);
	assert_int_equal(volume_expand(c, &id, 48 * MiB, NULL), 0); /* again */
	/* Smaller: nothing changes, success with the current size. */
	assert_int_equal(volume_expand(c, &id, 32 * MiB, &e), 0);
	assert_int_equal(e->size, 48 * MiB);
	e = volume_free(e);
	assert_int_equal(volume_expand(c, &id, 0, NULL), -EINVAL);
	assert_int_equal(volume_lookup(c, &id, &e), 0);
	assert_int_equal(e->size, 48 * MiB);
	e = volume_free(e);

	/* A create retry with the original size still matches the expanded volume. */
	assert_int_equal(volume_create(c, &req, &e), 0);
	assert_string_equal(e->id, v->id);
	assert_int_equal(e->size, 48 * MiB);
	e = volume_free(e);

	assert_int_equal(volume_delete(c, &id), 0);
	assert_clean(c);
	volume_free(v);
}

static void test_volume__attachments(void **state)
{
	_cleanup_cluster_unref_ struct cluster *c = NULL;
	struct volume_request req;
	struct volume *v = NULL, *l = NULL;
	struct volume_id id;

	NEED_CEPH();
	c = connect_new();
	req = request("pvc-attach", 8 * MiB);
	assert_int_equal(volume_create(c, &req, &v), 0);
	assert_int_equal(volume_id_decode(v->id, &id), 0);

	/* Single-node: exclusive. */
	assert_int_equal(volume_attach(c, &id, "node-a", VOLUME_ACCESS_RW, true), 0);
	assert_int_equal(volume_attach(c, &id, "node-a", VOLUME_ACCESS_RW, true), 0);
	assert_int_equal(volume_attach(c, &id, "node-b", VOLUME_ACCESS_RW, true), -EBUSY);
	assert_int_equal(volume_attach(c, &id, "node-b", VOLUME_ACCESS_RO, false), -EBUSY);
	assert_int_equal(volume_attach(c, &id, "node-a", VOLUME_ACCESS_RO, true), -EEXIST);
	assert_int_equal(volume_attach(c, &id, "bad node", VOLUME_ACCESS_RW, true), -EINVAL);
	assert_int_equal(volume_attach(c, &id, "", VOLUME_ACCESS_RW, true), -EINVAL);
	assert_int_equal(volume_lookup(c, &id, &l), 0);
	assert_int_equal(l->n_attachments, 1);
	assert_string_equal(l->attachments[0].node, "node-a");
	assert_int_equal(l->attachments[0].access, VOLUME_ACCESS_RW);
	assert_string_equal(l->exclusive_node, "node-a");
	l = volume_free(l);

	/* Published volumes are not deleted. */
	assert_int_equal(volume_delete(c, &id), -EBUSY);

	assert_int_equal(volume_detach(c, &id, "node-b"), 0); /* not attached: fine */
	assert_int_equal(volume_detach(c, &id, "node-a"), 0);
	assert_int_equal(volume_detach(c, &id, "node-a"), 0);
	assert_int_equal(volume_lookup(c, &id, &l), 0);
	assert_int_equal(l->n_attachments, 0);
	assert_null(l->exclusive_node);
	l = volume_free(l);

	/* Multi-node readers; then nobody may take it exclusively. */
	assert_int_equal(volume_attach(c, &id, "node-a", VOLUME_ACCESS_RO, false), 0);
	assert_int_equal(volume_attach(c, &id, "node-b", VOLUME_ACCESS_RO, false), 0);
	assert_int_equal(volume_attach(c, &id, "node-c", VOLUME_ACCESS_RW, true), -EBUSY);
	assert_int_equal(volume_attach(c, &id, "node-a", VOLUME_ACCESS_RO, true), -EBUSY);
	assert_int_equal(volume_lookup(c, &id, &l), 0);
	assert_int_equal(l->n_attachments, 2);
	l = volume_free(l);
	assert_int_equal(volume_detach(c, &id, "node-a"), 0);
	assert_int_equal(volume_detach(c, &id, "node-b"), 0);

	assert_int_equal(volume_delete(c, &id), 0);
	assert_int_equal(volume_detach(c, &id, "node-a"), 0); /* volume gone: fine */
	assert_clean(c);
	volume_free(v);
}

struct attach_arg {
	struct cluster *c;
	struct volume_id id;
	char node[16];
	int r;
	pthread_barrier_t *barrier;
};

static void *attach_thread(void *p)
{
	struct attach_arg *a = p;

	pthread_barrier_wait(a->barrier);
	a->r = volume_attach(a->c, &a->id, a->node, VOLUME_ACCESS_RW, true);
	return NULL;
}

/* Eight nodes publish a single-node volume at once: exactly one gets it. */
static void test_volume__exclusive_attach_race(void **state)
{
	enum { N = 8 };
	_cleanup_cluster_unref_ struct cluster *c = NULL;
	struct attach_arg args[N];
	pthread_barrier_t barrier;
	struct volume_request req;
	struct volume *v = NULL, *l = NULL;
	pthread_t th[N];
	int ok = 0;

	NEED_CEPH();
	c = connect_new();
	req = request("pvc-attach-race", 8 * MiB);
	assert_int_equal(volume_create(c, &req, &v), 0);
	pthread_barrier_init(&barrier, NULL, N);
	for (int i = 0; i < N; i++) {
		args[i] = (struct attach_arg){ .c = c, .barrier = &barrier };
		assert_int_equal(volume_id_decode(v->id, &args[i].id), 0);
		snprintf(args[i].node, sizeof(args[i].node), "node-%d", i);
		assert_int_equal(pthread_create(&th[i], NULL, attach_thread, &args[i]), 0);
	}
	for (int i = 0; i < N; i++) {
		assert_int_equal(pthread_join(th[i], NULL), 0);
		assert_true(args[i].r == 0 || args[i].r == -EBUSY);
		ok += args[i].r == 0;
	}
	pthread_barrier_destroy(&barrier);
	assert_int_equal(ok, 1);
	assert_int_equal(volume_lookup(c, &args[0].id, &l), 0);
	assert_int_equal(l->n_attachments, 1);
	assert_int_equal(volume_detach(c, &args[0].id, l->attachments[0].node), 0);
	l = volume_free(l);
	assert_int_equal(volume_delete(c, &args[0].id), 0);
	assert_clean(c);
	volume_free(v);
}

static void test_volume__list_pages(void **state)
{
	enum { N = 7 };
	_cleanup_cluster_unref_ struct cluster *c = NULL;
	struct volume *created[N] = {};
	char *token = NULL;
	unsigned seen = 0, pages = 0;
	struct volume_id id;

	NEED_CEPH();
	c = connect_new();
	for (int i = 0; i < N; i++) {
		char name[32];
		struct volume_request req;

		snprintf(name, sizeof(name), "pvc-list-%d", i);
		req = request(name, (uint64_t)(i + 1) * MiB);
		assert_int_equal(volume_create(c, &req, &created[i]), 0);
	}

	do {
		struct volume *vols = NULL;
		char *next = NULL;
		size_t n = 0;

		assert_int_equal(
		        volume_list(c, TEST_CLUSTER_ID, env.pool, ns, token, 3, &vols, &n, &next),
		        0);
		pages++;
		for (size_t i = 0; i < n; i++) {
			assert_true(seen < N);
			assert_string_equal(vols[i].id, created[seen]->id);
			assert_string_equal(vols[i].name, created[seen]->name);
			assert_int_equal(vols[i].size, (seen + 1) * MiB);
			seen++;
		}
		volume_list_free(vols, n);
		free(token);
		token = next;
	} while (token);
	assert_int_equal(seen, N);
	assert_int_equal(pages, 3);

	/* A token stays valid after its volume is deleted. */
	{
		struct volume *vols = NULL;
		char *next = NULL;
		size_t n = 0;

		assert_int_equal(
		        volume_list(c, TEST_CLUSTER_ID, env.pool, ns, NULL, 2, &vols, &n, &next),
		        0);
		assert_int_equal(n, 2);
		assert_non_null(next);
		volume_list_free(vols, n);
		assert_int_equal(volume_id_decode(created[1]->id, &id), 0);
		assert_int_equal(volume_delete(c, &id), 0);
		assert_int_equal(
		        volume_list(c, TEST_CLUSTER_ID, env.pool, ns, next, 100, &vols, &n, &token),
		        0);
		assert_int_equal(n, N - 2);
		assert_string_equal(vols[0].id, created[2]->id);
		assert_null(token);
		volume_list_free(vols, n);
		free(next);
	}

	/* Malformed tokens: -EAGAIN (ABORTED). */
	{
		struct volume *vols = NULL;
		char *next = NULL;
		size_t n = 0;

		assert_int_equal(volume_list(c, TEST_CLUSTER_ID, env.pool, ns, "invalid-token", 2,
		                             &vols, &n, &next),
		                 -EAGAIN);
		assert_int_equal(
		        volume_list(c, TEST_CLUSTER_ID, env.pool, ns, "abc", 2, &vols, &n, &next),
		        -EAGAIN);
		assert_int_equal(
		        volume_list(c, TEST_CLUSTER_ID, env.pool, ns, "00", 2, &vols, &n, &next),
		        -EAGAIN);
		assert_int_equal(volume_list(c, TEST_CLUSTER_ID, "rbdcsi-no-such-pool", ns, NULL, 2,
		                             &vols, &n, &next),
		                 -ENOENT);
	}

	for (int i = 0; i < N; i++) {
		assert_int_equal(volume_id_decode(created[i]->id, &id), 0);
		assert_int_equal(volume_delete(c, &id), 0);
		volume_free(created[i]);
	}
	/* An empty pool lists nothing. */
	{
		struct volume *vols = NULL;
		char *next = NULL;
		size_t n = 99;

		assert_int_equal(
		        volume_list(c, TEST_CLUSTER_ID, env.pool, ns, NULL, 0, &vols, &n, &next),
		        0);
		assert_int_equal(n, 0);
		assert_null(next);
		volume_list_free(vols, n);
	}
	assert_clean(c);
}

static void test_volume__pool_usage(void **state)
{
	_cleanup_cluster_unref_ struct cluster *c = NULL;
	struct volume_pool_usage u;

	NEED_CEPH();
	c = connect_new();
	assert_int_equal(volume_pool_usage(c, env.pool, &u), 0);
	assert_int_equal(volume_pool_usage(c, "rbdcsi-no-such-pool", &u), -ENOENT);
}

/* ---- races ---- */

struct create_arg {
	struct cluster *c;
	const char *name;
	struct volume *v;
	int r;
	pthread_barrier_t *barrier;
};

static int create_retrying(struct cluster *c, const struct volume_request *req, struct volume **ret)
{
	int r = -EAGAIN;

	/* -EAGAIN: a peer is half-way through creating the image; the CO would retry. */
	for (int i = 0; i < 100 && r == -EAGAIN; i++) {
		r = volume_create(c, req, ret);
		if (r == -EAGAIN)
			usleep(20 * 1000);
	}
	return r;
}

static void *create_thread(void *p)
{
	struct create_arg *a = p;
	struct volume_request req = request(a->name, 8 * MiB);

	pthread_barrier_wait(a->barrier);
	a->r = create_retrying(a->c, &req, &a->v);
	return NULL;
}

static void test_volume__threads_race_one_name(void **state)
{
	enum { N = 8 };
	struct cluster_credentials cred;
	struct cluster_timeouts t = test_timeouts();
	struct cluster_cache *cache = NULL;
	struct cluster *c = NULL;
	struct create_arg args[N];
	pthread_barrier_t barrier;
	pthread_t th[N];
	struct volume_id id;

	NEED_CEPH();
	cred = test_credentials(&env);
	assert_int_equal(cluster_cache_new(&t, 0, &cache), 0);
	assert_int_equal(cluster_cache_get(cache, &cred, &c), 0);
	pthread_barrier_init(&barrier, NULL, N);
	for (int i = 0; i < N; i++) {
		args[i] = (struct create_arg){ .c = c,
			                       .name = "pvc-thread-race",
			                       .barrier = &barrier };
		assert_int_equal(pthread_create(&th[i], NULL, create_thread, &args[i]), 0);
	}
	for (int i = 0; i < N; i++) {
		assert_int_equal(pthread_join(th[i], NULL), 0);
		assert_int_equal(args[i].r, 0);
	}
	pthread_barrier_destroy(&barrier);
	for (int i = 1; i < N; i++)
		assert_string_equal(args[i].v->id, args[0].v->id);
	assert_state(c, 1, 1, 1);
	assert_int_equal(volume_id_decode(args[0].v->id, &id), 0);
	assert_int_equal(volume_delete(c, &id), 0);
	assert_clean(c);
	for (int i = 0; i < N; i++)
		volume_free(args[i].v);
	c = cluster_unref(c);
	cache = cluster_cache_free(cache);
}

/*
 * A child process: connect (its own connection), arm failpoints, report readiness on ready_fd,
 * wait for a byte on go_fd, run op, write the resulting id to out_fd, _exit(0 or 1).
 */
enum child_op {
	CHILD_CREATE,
	CHILD_DELETE,
};

static pid_t spawn(enum child_op op, const char *name, const char *volume_id,
                   const char *failpoints, int ready_fd, int go_fd, int out_fd)
{
	pid_t pid = fork();

	assert_true(pid >= 0);
	if (pid > 0)
		return pid;

	/* Child. */
	{
		struct cluster_credentials cred = test_credentials(&env);
		struct cluster_timeouts t = test_timeouts();
		struct volume_request req = request(name, 8 * MiB);
		struct volume *v = NULL;
		struct cluster *c = NULL;
		struct volume_id id;
		char byte = 1;
		int r;

		if (failpoint_init(failpoints) < 0 || cluster_connect(&cred, &t, &c) < 0)
			_exit(2);
		if (ready_fd >= 0 && write(ready_fd, &byte, 1) != 1)
			_exit(2);
		if (go_fd >= 0 && read(go_fd, &byte, 1) != 1)
			_exit(2);
		if (op == CHILD_CREATE) {
			r = create_retrying(c, &req, &v);
			if (r == 0 && out_fd >= 0 &&
			    write(out_fd, v->id, strlen(v->id)) != (ssize_t)strlen(v->id))
				r = -EIO;
		} else {
			r = volume_id_decode(volume_id, &id);
			if (r == 0)
				r = volume_delete(c, &id);
		}
		volume_free(v);
		cluster_unref(c);
		_exit(r < 0 ? 1 : 0);
	}
}

static int wait_child(pid_t pid)
{
	int status = 0;

	assert_int_equal(waitpid(pid, &status, 0), pid);
	if (WIFSIGNALED(status))
		return -WTERMSIG(status);
	assert_true(WIFEXITED(status));
	return WEXITSTATUS(status);
}

/* Two processes create the same name at the same moment, 20 times: one image each time. */
static void test_volume__processes_race_one_name(void **state)
{
	enum { ROUNDS = 20 };
	char ids[ROUNDS][VOLUME_ID_MAX + 1];
	struct cluster *c = NULL;
	uint64_t start = test_now_usec();

	NEED_CEPH();
	/* No librados threads in this process while it forks. */
	assert_int_equal(test_thread_count(), 1);
	for (int round = 0; round < ROUNDS; round++) {
		int ready[2], go[2], out[2][2];
		char name[32], got[2][VOLUME_ID_MAX + 1] = {};
		pid_t pid[2];
		char byte;

		snprintf(name, sizeof(name), "pvc-proc-race-%02d", round);
		assert_int_equal(pipe2(ready, O_CLOEXEC), 0);
		assert_int_equal(pipe2(go, O_CLOEXEC), 0);
		for (int i = 0; i < 2; i++) {
			assert_int_equal(pipe2(out[i], O_CLOEXEC), 0);
			pid[i] = spawn(CHILD_CREATE, name, NULL, NULL, ready[1], go[0], out[i][1]);
			close(out[i][1]);
		}
		close(ready[1]);
		close(go[0]);
		/* Both connected: release them together (one byte each; the children hold
		 * copies of go[1], so closing it would not wake them). */
		assert_int_equal(read(ready[0], &byte, 1), 1);
		assert_int_equal(read(ready[0], &byte, 1), 1);
		assert_int_equal(write(go[1], "gg", 2), 2);
		close(go[1]);
		for (int i = 0; i < 2; i++) {
			assert_int_equal(wait_child(pid[i]), 0);
			assert_true(read(out[i][0], got[i], VOLUME_ID_MAX) > 0);
			close(out[i][0]);
		}
		close(ready[0]);
		assert_string_equal(got[0], got[1]);
		snprintf(ids[round], sizeof(ids[round]), "%s", got[0]);
	}
	print_message("%d rounds of 2 racing processes: %llu ms\n", ROUNDS,
	              (unsigned long long)((test_now_usec() - start) / 1000));

	c = connect_new();
	assert_state(c, ROUNDS, ROUNDS, ROUNDS);
	for (int round = 0; round < ROUNDS; round++) {
		struct volume_id id;
		assert_int_equal(volume_id_decode(ids[round], &id), 0);
		assert_int_equal(volume_delete(c, &id), 0);
	}
	assert_clean(c);
	c = cluster_unref(c);
}

/* ---- crashes ---- */

static const char *const create_failpoints[] = {
	"volume-create:after-reserve",
	"volume-create:after-object",
	"volume-create:after-image",
};

/* What a crash at each create failpoint leaves: images, entries, directory keys. */
static const struct state create_leftovers[] = {
	{ 0, 0, 1 },
	{ 0, 1, 1 },
	{ 1, 1, 1 },
};

static void test_volume__crash_during_create_converges(void **state)
{
	NEED_CEPH();
	for (size_t i = 0; i < ELEMENTSOF(create_failpoints); i++) {
		struct cluster *c = NULL;
		struct volume *v = NULL, *v2 = NULL;
		struct volume_request req = request("pvc-crash-create", 8 * MiB);
		struct volume_id id;
		struct state s;
		pid_t pid;
		char st[32];

		pid = spawn(CHILD_CREATE, req.name, NULL, create_failpoints[i], -1, -1, -1);
		assert_int_equal(wait_child(pid), -SIGKILL);

		c = connect_new();
		s = inspect(c);
		print_message("crash at %s left %d images, %d entries, %d directory keys\n",
		              create_failpoints[i], s.images, s.entries, s.dir_keys);
		assert_int_equal(s.images, create_leftovers[i].images);
		assert_int_equal(s.entries, create_leftovers[i].entries);
		assert_int_equal(s.dir_keys, create_leftovers[i].dir_keys);

		/* The retry completes the same reservation. */
		assert_int_equal(volume_create(c, &req, &v), 0);
		assert_state(c, 1, 1, 1);
		assert_int_equal(volume_id_decode(v->id, &id), 0);
		assert_int_equal(volume_state(c, id.uuid, st, sizeof(st)), 0);
		assert_string_equal(st, "created");
		assert_int_equal(volume_create(c, &req, &v2), 0);
		assert_string_equal(v2->id, v->id);
		v2 = volume_free(v2);
		assert_int_equal(volume_lookup(c, &id, &v2), 0);
		assert_string_equal(v2->image, v->image);

		assert_int_equal(volume_delete(c, &id), 0);
		assert_clean(c);
		volume_free(v);
		volume_free(v2);
		c = cluster_unref(c);
	}
}

static const char *const delete_failpoints[] = {
	"volume-delete:after-mark",
	"volume-delete:after-image",
	"volume-delete:after-unreserve",
};

static const struct state delete_leftovers[] = {
	{ 1, 1, 1 },
	{ 0, 1, 1 },
	{ 0, 1, 0 },
};

static void test_volume__crash_during_delete_converges(void **state)
{
	NEED_CEPH();
	for (size_t i = 0; i < ELEMENTSOF(delete_failpoints); i++) {
		struct cluster *c = NULL;
		struct volume *v = NULL;
		struct volume_request req = request("pvc-crash-delete", 8 * MiB);
		struct volume_id id;
		struct state s;
		char st[32];
		pid_t pid;

		c = connect_new();
		assert_int_equal(volume_create(c, &req, &v), 0);
		assert_int_equal(volume_id_decode(v->id, &id), 0);
		c = cluster_unref(c); /* no connection across fork() */

		pid = spawn(CHILD_DELETE, NULL, v->id, delete_failpoints[i], -1, -1, -1);
		assert_int_equal(wait_child(pid), -SIGKILL);

		c = connect_new();
		s = inspect(c);
		print_message("crash at %s left %d images, %d entries, %d directory keys\n",
		              delete_failpoints[i], s.images, s.entries, s.dir_keys);
		assert_int_equal(s.images, delete_leftovers[i].images);
		assert_int_equal(s.entries, delete_leftovers[i].entries);
		assert_int_equal(s.dir_keys, delete_leftovers[i].dir_keys);
		assert_int_equal(volume_state(c, id.uuid, st, sizeof(st)), 0);
		assert_string_equal(st, "deleting");

		/* Half-deleted volumes are not found, cannot be published, and a create of the
		 * same name either waits (key still there) or makes a new volume. */
		{
			struct volume *l = NULL;
			assert_int_equal(volume_lookup(c, &id, &l), -ENOENT);
			assert_int_equal(volume_attach(c, &id, "node-a", VOLUME_ACCESS_RW, true),
			                 -ENOENT);
			if (delete_leftovers[i].dir_keys)
				assert_int_equal(volume_create(c, &req, &l), -EAGAIN);
			assert_null(l);
		}

		/* The retry finishes. */
		assert_int_equal(volume_delete(c, &id), 0);
		assert_clean(c);
		assert_int_equal(volume_delete(c, &id), 0);
		volume_free(v);
		c = cluster_unref(c);
	}
}

/* A reservation whose image was left half-created by a crash inside librbd's create. */
static void test_volume__half_created_image(void **state)
{
	_cleanup_cluster_unref_ struct cluster *c = NULL;
	struct volume_request req;
	struct volume *v = NULL;
	struct image_info *info = NULL;
	rados_ioctx_t io = NULL;
	char uuid[JOURNAL_UUID_LEN + 1], got[JOURNAL_UUID_LEN + 1], image[128], at[32];
	char header[160];
	struct volume_id id;

	NEED_CEPH();
	c = connect_new();
	req = request("pvc-half", 8 * MiB);
	assert_int_equal(cluster_ioctx_open(c, env.pool, ns, &io), 0);

	for (int stale = 0; stale < 2; stale++) {
		/* What volume_create() would have written, then a partial image: the header
		 * object is missing, as when librbd dies between creating the id and the
		 * header. */
		assert_int_equal(journal_uuid_new(uuid), 0);
		snprintf(image, sizeof(image), "csi-vol-%s", uuid);
		snprintf(at, sizeof(at), "%lld", (long long)time(NULL) - (stale ? 3600 : 0));
		struct journal_field fields[] = {
			{ "name", "pvc-half" },    { "image", image },
			{ "req_size", "8388608" }, { "size", "8388608" },
			{ "features", "1" },       { "state", "reserved" },
			{ "reserved_at", at },     { "params", (char *)req.fingerprint },
		};
		assert_int_equal(journal_reserve(io, JOURNAL_VOLUME, req.name, uuid, got), 1);
		assert_int_equal(journal_entry_create(io, JOURNAL_VOLUME, uuid, fields,
		                                      ELEMENTSOF(fields), NULL),
		                 0);
		assert_int_equal(image_create(io, image, 8 * MiB, 1, NULL), 0);
		assert_int_equal(image_stat(io, image, &info), 0);
		snprintf(header, sizeof(header), "rbd_header.%s", info->id);
		info = image_info_free(info);
		assert_int_equal(rados_remove(io, header), 0);
		assert_int_equal(image_stat(io, image, &info), -ENOENT);

		if (!stale) {
			/* Recent: someone may be creating it right now. */
			assert_int_equal(volume_create(c, &req, &v), -EAGAIN);
			assert_int_equal(volume_id_make(VOLUME_ID_VOLUME, TEST_CLUSTER_ID,
			                                rados_ioctx_get_id(io), ns, uuid, &id),
			                 0);
			/* Delete cleans a half-created image up too. */
			assert_int_equal(volume_delete(c, &id), 0);
			assert_clean(c);
			continue;
		}
		/* Stale: the remains are removed and the image is created anew. */
		assert_int_equal(volume_create(c, &req, &v), 0);
		assert_int_equal(volume_id_decode(v->id, &id), 0);
		assert_string_equal(id.uuid, uuid);
		assert_int_equal(image_stat(io, image, &info), 0);
		assert_int_equal(info->size, 8 * MiB);
		info = image_info_free(info);
		assert_state(c, 1, 1, 1);
		assert_int_equal(volume_delete(c, &id), 0);
		assert_clean(c);
		v = volume_free(v);
	}
	cluster_ioctx_close(io);
}

/* A volume whose image was removed behind our back is re-created by a create retry. */
static void test_volume__image_removed_out_of_band(void **state)
{
	_cleanup_cluster_unref_ struct cluster *c = NULL;
	struct volume_request req;
	struct volume *v = NULL, *v2 = NULL;
	rados_ioctx_t io = NULL;
	struct volume_id id;

	NEED_CEPH();
	c = connect_new();
	req = request("pvc-oob", 8 * MiB);
	assert_int_equal(volume_create(c, &req, &v), 0);
	assert_int_equal(volume_id_decode(v->id, &id), 0);
	assert_int_equal(cluster_ioctx_open(c, env.pool, ns, &io), 0);
	assert_int_equal(image_remove(io, v->image), 1);
	cluster_ioctx_close(io);
	assert_int_equal(volume_lookup(c, &id, &v2), -ENOENT);
	assert_int_equal(volume_create(c, &req, &v2), 0);
	assert_string_equal(v2->id, v->id);
	assert_state(c, 1, 1, 1);
	assert_int_equal(volume_delete(c, &id), 0);
	assert_clean(c);
	volume_free(v);
	volume_free(v2);
}

static void test_volume__failpoint_spec(void **state)
{
	assert_int_equal(failpoint_init("a:b,c-d.e_f"), 0);
	assert_true(failpoint_armed("a:b"));
	assert_true(failpoint_armed("c-d.e_f"));
	assert_false(failpoint_armed("a"));
	assert_false(failpoint_armed("b"));
	assert_false(failpoint_armed(""));
	assert_int_equal(failpoint_init("a,,b"), -EINVAL);
	assert_int_equal(failpoint_init("a,"), -EINVAL);
	assert_int_equal(failpoint_init("A"), -EINVAL);
	assert_int_equal(failpoint_init("a b"), -EINVAL);
	assert_int_equal(failpoint_init(""), 0);
	assert_false(failpoint_armed("a:b"));
	failpoint("a:b"); /* disarmed: returns */
	assert_int_equal(failpoint_init(NULL), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_volume__failpoint_spec),
		cmocka_unit_test(test_volume__create_is_idempotent),
		cmocka_unit_test(test_volume__same_name_other_parameters),
		cmocka_unit_test(test_volume__bad_requests_leave_nothing),
		cmocka_unit_test(test_volume__options),
		cmocka_unit_test(test_volume__wrong_ids),
		cmocka_unit_test(test_volume__delete_refused_while_watched),
		cmocka_unit_test(test_volume__expand),
		cmocka_unit_test(test_volume__attachments),
		cmocka_unit_test(test_volume__exclusive_attach_race),
		cmocka_unit_test(test_volume__list_pages),
		cmocka_unit_test(test_volume__pool_usage),
		cmocka_unit_test(test_volume__threads_race_one_name),
		cmocka_unit_test(test_volume__processes_race_one_name),
		cmocka_unit_test(test_volume__crash_during_create_converges),
		cmocka_unit_test(test_volume__crash_during_delete_converges),
		cmocka_unit_test(test_volume__half_created_image),
		cmocka_unit_test(test_volume__image_removed_out_of_band),
	};

	return cmocka_run_group_tests_name("volume", tests, group_setup, group_teardown);
}
