/* SPDX-License-Identifier: Apache-2.0 */
/* Unit tests for driver/ceph/image.c: feature parsing (pure), and images against a real Ceph. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include <rbd/features.h>

#include "driver/ceph/cluster.h"
#include "driver/ceph/cluster_ioctx.h"
#include "driver/ceph/image.h"
#include "tests/unit/driver/ceph/ceph_test_env.h"

#define MiB (1024ULL * 1024ULL)

static struct test_env env;
static struct cluster *cl;
static rados_ioctx_t io;
static bool have_ceph;
static char prefix[64];

static int group_setup(void **state)
{
	struct cluster_credentials cred;
	struct cluster_timeouts t = test_timeouts();

	snprintf(prefix, sizeof(prefix), "rbdcsi-test-image-%d", (int)getpid());
	if (!test_env_get(&env))
		return 0;
	cred = test_credentials(&env);
	if (cluster_connect(&cred, &t, &cl) < 0 || cluster_ioctx_open(cl, env.pool, NULL, &io) < 0)
		return -1;
	have_ceph = true;
	return 0;
}

static int group_teardown(void **state)
{
	if (io && test_sweep_images(io, prefix) != 0)
		fprintf(stderr, "warning: images named %s* left behind\n", prefix);
	io = cluster_ioctx_close(io);
	cl = cluster_unref(cl);
	return 0;
}

#define NEED_CEPH()                                                                              \
	do {                                                                                     \
		if (!have_ceph)                                                                  \
			TEST_SKIP_NO_CEPH("no test Ceph cluster (RBDCSI_TEST_MONITORS unset or " \
			                  "unreachable)");                                       \
	} while (0)

static void name(char *buf, size_t size, const char *what)
{
	snprintf(buf, size, "%s-%s", prefix, what);
}

static void test_image__features_parse(void **state)
{
	uint64_t f;
	char *s = NULL;

	assert_int_equal(image_features_parse("layering", &f), 0);
	assert_int_equal(f, RBD_FEATURE_LAYERING);
	assert_int_equal(image_features_parse(
	                         "layering,exclusive-lock,object-map,fast-diff,deep-flatten", &f),
	                 0);
	assert_int_equal(f, RBD_FEATURES_DEFAULT);
	assert_int_equal(image_features_format(f, &s), 0);
	assert_string_equal(s, "layering,exclusive-lock,object-map,fast-diff,deep-flatten");
	free(s);
	assert_int_equal(image_features_parse("exclusive-lock,journaling", &f), 0);
	assert_int_equal(f, RBD_FEATURE_EXCLUSIVE_LOCK | RBD_FEATURE_JOURNALING);
	assert_int_equal(image_features_format(0, &s), 0);
	assert_string_equal(s, "");
	free(s);

	assert_int_equal(image_features_parse(NULL, &f), -EINVAL);
	assert_int_equal(image_features_parse("", &f), -EINVAL);
	assert_int_equal(image_features_parse("layering,", &f), -EINVAL);
	assert_int_equal(image_features_parse(",layering", &f), -EINVAL);
	assert_int_equal(image_features_parse("layering,,deep-flatten", &f), -EINVAL);
	assert_int_equal(image_features_parse("layering,layering", &f), -EINVAL);
	assert_int_equal(image_features_parse("Layering", &f), -EINVAL);
	assert_int_equal(image_features_parse("layering ", &f), -EINVAL);
	assert_int_equal(image_features_parse("foo", &f), -EINVAL);
	assert_int_equal(image_features_parse("object-map", &f), -EINVAL);
	assert_int_equal(image_features_parse("exclusive-lock,fast-diff", &f), -EINVAL);
	assert_int_equal(image_features_parse("journaling", &f), -EINVAL);
	assert_int_equal(image_features_parse("layering,data-pool", &f), -EINVAL);
	assert_int_equal(image_features_parse("striping", &f), -EINVAL);
	assert_int_equal(image_features_parse("operations", &f), -EINVAL);
}

static void test_image__create_stat_resize_remove(void **state)
{
	struct image_info *info = NULL;
	char img[128];
	uint64_t f;

	NEED_CEPH();
	name(img, sizeof(img), "crud");
	assert_int_equal(image_features_parse(
	                         "layering,exclusive-lock,object-map,fast-diff,deep-flatten", &f),
	                 0);
	assert_int_equal(image_create(io, img, 64 * MiB, f, NULL), 0);
	assert_int_equal(image_create(io, img, 64 * MiB, f, NULL), -EEXIST);

	assert_int_equal(image_stat(io, img, &info), 0);
	assert_int_equal(info->size, 64 * MiB);
	assert_int_equal(info->features & RBD_FEATURES_DEFAULT, RBD_FEATURES_DEFAULT);
	assert_int_equal(info->data_pool_id, rados_ioctx_get_id(io));
	assert_null(info->parent);
	assert_true(strlen(info->id) > 0);
	info = image_info_free(info);
	assert_null(info);

	assert_int_equal(image_resize(io, img, 128 * MiB), 0);
	assert_int_equal(image_resize(io, img, 128 * MiB), 0); /* equal: nothing to do */
	assert_int_equal(image_resize(io, img, 96 * MiB), -ERANGE);
	assert_int_equal(image_stat(io, img, &info), 0);
	assert_int_equal(info->size, 128 * MiB); /* untouched by the refused shrink */
	info = image_info_free(info);

	assert_int_equal(image_remove(io, img), 1);
	assert_int_equal(image_remove(io, img), 0); /* idempotent: nothing left */
	assert_int_equal(image_stat(io, img, &info), -ENOENT);
	assert_int_equal(image_resize(io, img, 256 * MiB), -ENOENT);
	size_t n;
	assert_int_equal(image_watchers(io, img, &n), -ENOENT);
}

static void test_image__no_features(void **state)
{
	struct image_info *info = NULL;
	char img[128];

	NEED_CEPH();
	name(img, sizeof(img), "nofeat");
	assert_int_equal(image_create(io, img, 4 * MiB, 0, NULL), 0);
	assert_int_equal(image_stat(io, img, &info), 0);
	assert_int_equal(info->features & RBD_FEATURES_DEFAULT, 0);
	info = image_info_free(info);
	assert_int_equal(image_remove(io, img), 1);
}

static void test_image__watchers_block_remove(void **state)
{
	struct image_info *info = NULL;
	rbd_image_t handle = NULL;
	char img[128];
	size_t n = 99;

	NEED_CEPH();
	name(img, sizeof(img), "watched");
	assert_int_equal(image_create(io, img, 8 * MiB, 1, NULL), 0);
	assert_int_equal(image_watchers(io, img, &n), 0);
	assert_int_equal(n, 0);

	/* An open (read-write) image watches its header, like a mapped one. */
	assert_int_equal(rbd_open(io, img, &handle, NULL), 0);
	assert_int_equal(image_watchers(io, img, &n), 0);
	assert_int_equal(n, 1);
	assert_int_equal(image_remove(io, img), -EBUSY);
	assert_int_equal(image_stat(io, img, &info), 0); /* untouched */
	assert_int_equal(info->size, 8 * MiB);
	info = image_info_free(info);
	assert_int_equal(rbd_close(handle), 0);

	assert_int_equal(image_watchers(io, img, &n), 0);
	assert_int_equal(n, 0);
	assert_int_equal(image_remove(io, img), 1);
}

static void test_image__data_pool(void **state)
{
	struct image_info *info = NULL;
	char img[128];
	int64_t dp;

	NEED_CEPH();
	if (!env.pool2)
		TEST_SKIP_NO_CEPH("RBDCSI_TEST_POOL2 is not set");
	name(img, sizeof(img), "datapool");
	assert_int_equal(cluster_pool_lookup(cl, env.pool2, &dp), 0);
	assert_int_equal(image_create(io, img, 8 * MiB, RBD_FEATURE_LAYERING, env.pool2), 0);
	assert_int_equal(image_stat(io, img, &info), 0);
	assert_int_equal(info->data_pool_id, dp);
	assert_true(info->features & RBD_FEATURE_DATA_POOL);
	info = image_info_free(info);
	assert_int_equal(image_remove(io, img), 1);

	assert_int_equal(image_create(io, img, 8 * MiB, RBD_FEATURE_LAYERING, "rbdcsi-no-pool"),
	                 -ENOENT);
	assert_int_equal(image_stat(io, img, &info), -ENOENT);
}

static void test_image__namespace(void **state)
{
	rados_t r = NULL;
	rados_ioctx_t nio = NULL;
	char ns[128], img[128];

	NEED_CEPH();
	name(ns, sizeof(ns), "ns");
	assert_int_equal(image_namespace_exists(io, ""), 1);
	assert_int_equal(image_namespace_exists(io, NULL), 1);
	assert_int_equal(image_namespace_exists(io, ns), 0);

	/* Creating an image in a namespace RBD does not know fails with -ENOENT. */
	assert_int_equal(cluster_ioctx_open(cl, env.pool, ns, &nio), 0);
	name(img, sizeof(img), "in-ns");
	assert_int_equal(image_create(nio, img, 4 * MiB, 1, NULL), -ENOENT);

	assert_int_equal(test_rados_connect(&env, &r), 0);
	assert_int_equal(test_namespace_create(r, env.pool, ns), 0);
	assert_int_equal(image_namespace_exists(io, ns), 1);
	/* The check works from an ioctx set to any namespace. */
	assert_int_equal(image_namespace_exists(nio, ns), 1);
	assert_int_equal(image_create(nio, img, 4 * MiB, 1, NULL), 0);
	assert_int_equal(test_count_images(nio), 1);
	assert_int_equal(image_remove(nio, img), 1);
	assert_int_equal(test_count_images(nio), 0);
	nio = cluster_ioctx_close(nio);
	assert_int_equal(test_namespace_remove(r, env.pool, ns), 0);
	rados_shutdown(r);
}

static void test_image__pool_usage(void **state)
{
	struct image_pool_usage u;

	NEED_CEPH();
	assert_int_equal(image_pool_usage(io, &u), 0);
	/* Without a ceph-mgr these are all 0 (see image.h); print what this cluster says. */
	print_message("pool: %llu bytes, %llu objects; cluster: %llu kB, %llu used, %llu avail\n",
	              (unsigned long long)u.pool_bytes, (unsigned long long)u.pool_objects,
	              (unsigned long long)u.cluster_kb, (unsigned long long)u.cluster_kb_used,
	              (unsigned long long)u.cluster_kb_avail);
}

/* One look answers what image_watchers(), image_snap_list()/image_snap_counts() and
 * image_chain() answer one open each. */
static void test_image__survey(void **state)
{
	struct image_survey *s = NULL;
	struct image_link *links = NULL;
	rbd_image_t handle = NULL;
	char img[128], clone[128];
	size_t n = 0;

	NEED_CEPH();
	name(img, sizeof(img), "survey-parent");
	name(clone, sizeof(clone), "survey-clone");
	assert_int_equal(image_survey(io, img, IMAGE_SURVEY_WATCHERS, &s), -ENOENT);
	assert_null(s);
	assert_int_equal(image_create(io, img, 8 * MiB, RBD_FEATURE_LAYERING, NULL), 0);
	assert_int_equal(image_snap_create(io, img, "s1"), 0);
	assert_int_equal(image_snap_create(io, img, "rbdcsi-x"), 0);
	assert_int_equal(image_clone(io, img, "s1", io, clone, RBD_FEATURE_LAYERING, NULL), 0);
	assert_int_equal(image_snap_remove(io, img, "s1"), 0); /* to the trash namespace */

	/* Only what is asked for. */
	assert_int_equal(image_survey(io, img, 0, &s), 0);
	assert_int_equal(s->watchers, 0);
	assert_null(s->snaps);
	assert_int_equal(s->n_snaps + s->n_other_snaps + s->n_chain, 0);
	assert_null(s->chain);
	s = image_survey_free(s);

	assert_int_equal(
	        image_survey(io, img,
	                     IMAGE_SURVEY_WATCHERS | IMAGE_SURVEY_SNAPS | IMAGE_SURVEY_CHAIN, &s),
	        0);
	assert_int_equal(s->watchers, 0);
	assert_int_equal(s->n_snaps, 1);
	assert_string_equal(s->snaps[0].name, "rbdcsi-x");
	assert_int_equal(s->n_other_snaps, 1);
	assert_int_equal(s->n_chain, 1);
	s = image_survey_free(s);

	assert_int_equal(image_survey(io, clone, IMAGE_SURVEY_CHAIN | IMAGE_SURVEY_SNAPS, &s), 0);
	assert_int_equal(s->n_snaps + s->n_other_snaps, 0);
	assert_int_equal(image_chain(io, clone, &links, &n), 0);
	assert_int_equal(s->n_chain, 2);
	assert_int_equal(n, 2);
	for (size_t i = 0; i < n; i++) {
		assert_int_equal(s->chain[i].pool_id, links[i].pool_id);
		assert_string_equal(s->chain[i].pool_namespace, links[i].pool_namespace);
		assert_string_equal(s->chain[i].image_id, links[i].image_id);
	}
	image_chain_free(links, n);
	s = image_survey_free(s);

	/* Watchers are read from the OSD: an open (read-write) image counts. */
	assert_int_equal(rbd_open(io, clone, &handle, NULL), 0);
	assert_int_equal(image_survey(io, clone, IMAGE_SURVEY_WATCHERS, &s), 0);
	assert_int_equal(s->watchers, 1);
	s = image_survey_free(s);
	assert_int_equal(rbd_close(handle), 0);
	assert_null(image_survey_free(NULL));

	assert_int_equal(image_remove(io, clone), 1);
	assert_int_equal(image_snap_remove(io, img, "rbdcsi-x"), 0);
	assert_int_equal(image_remove(io, img), 1); /* the trashed s1 went with its child */
}

static void test_image__snapshots_and_clones(void **state)
{
	struct image_snap *snaps = NULL, snap = {};
	struct image_info *info = NULL;
	char img[128], clone[128], clone2[128];
	size_t n = 0;
	unsigned depth = 99;
	time_t t0 = time(NULL);

	NEED_CEPH();
	name(img, sizeof(img), "parent");
	name(clone, sizeof(clone), "clone");
	name(clone2, sizeof(clone2), "clone2");
	assert_int_equal(image_create(io, img, 16 * MiB, RBD_FEATURE_LAYERING, NULL), 0);

	assert_int_equal(image_snap_exists(io, img, "s1"), 0);
	assert_int_equal(image_snap_create(io, img, "s1"), 0);
	assert_int_equal(image_snap_create(io, img, "s1"), -EEXIST);
	assert_int_equal(image_snap_exists(io, img, "s1"), 1);
	assert_int_equal(image_snap_exists(io, "rbdcsi-no-image", "s1"), 0);
	assert_int_equal(image_snap_create(io, "rbdcsi-no-image", "s1"), -ENOENT);

	assert_int_equal(image_snap_stat(io, img, "s1", &snap), 0);
	assert_string_equal(snap.name, "s1");
	assert_int_equal(snap.size, 16 * MiB);
	assert_true(snap.created.tv_sec >= t0 - 5 && snap.created.tv_sec <= time(NULL) + 5);
	image_snap_done(&snap);
	assert_int_equal(image_snap_stat(io, img, "nope", &snap), -ENOENT);

	assert_int_equal(image_resize(io, img, 32 * MiB), 0);
	assert_int_equal(image_snap_create(io, img, "s2"), 0);
	assert_int_equal(image_snap_list(io, img, &snaps, &n), 0);
	assert_int_equal(n, 2);
	assert_string_equal(snaps[0].name, "s1");
	assert_int_equal(snaps[0].size, 16 * MiB);
	assert_string_equal(snaps[1].name, "s2");
	assert_int_equal(snaps[1].size, 32 * MiB);
	image_snap_list_free(snaps, n);

	/* Clone v2 from an unprotected snapshot. */
	assert_int_equal(image_clone(io, img, "s1", io, clone, RBD_FEATURE_LAYERING, NULL), 0);
	assert_int_equal(image_clone(io, img, "s1", io, clone, RBD_FEATURE_LAYERING, NULL),
	                 -EEXIST);
	assert_int_equal(image_clone(io, img, "nope", io, clone2, RBD_FEATURE_LAYERING, NULL),
	                 -ENOENT);
	assert_int_equal(image_stat(io, clone, &info), 0);
	assert_int_equal(info->size, 16 * MiB);
	assert_non_null(info->parent);
	assert_string_equal(info->parent->image_name, img);
	assert_string_equal(info->parent->snap_name, "s1");
	assert_string_equal(info->parent->pool_name, env.pool);
	assert_string_equal(info->parent->pool_namespace, "");
	assert_false(info->parent->image_in_trash);
	info = image_info_free(info);

	assert_int_equal(image_clone_depth(io, img, &depth), 0);
	assert_int_equal(depth, 0);
	assert_int_equal(image_clone_depth(io, clone, &depth), 0);
	assert_int_equal(depth, 1);

	/* A clone of the clone. */
	assert_int_equal(image_snap_create(io, clone, "c1"), 0);
	assert_int_equal(image_clone(io, clone, "c1", io, clone2, RBD_FEATURE_LAYERING, NULL), 0);
	assert_int_equal(image_clone_depth(io, clone2, &depth), 0);
	assert_int_equal(depth, 2);

	/* Removing a parent snapshot with a v2 child moves it to the trash namespace; the list
	 * no longer shows it, and the parent image counts as busy while it is there. */
	assert_int_equal(image_snap_remove(io, img, "s1"), 0);
	assert_int_equal(image_snap_exists(io, img, "s1"), 0);
	assert_int_equal(image_snap_list(io, img, &snaps, &n), 0);
	assert_int_equal(n, 1);
	assert_string_equal(snaps[0].name, "s2");
	image_snap_list_free(snaps, n);
	assert_int_equal(image_snap_remove(io, img, "s1"), 0);      /* idempotent */
	assert_int_equal(image_clone_depth(io, clone2, &depth), 0); /* through a trashed snap */
	assert_int_equal(depth, 2);

	/* Flatten the middle one. Its snapshot c1, which clone2 hangs from, keeps its parent
	 * (no deep-flatten feature), so clone2 still has depth 2. */
	assert_int_equal(image_flatten(io, clone), 0);
	assert_int_equal(image_clone_depth(io, clone, &depth), 0);
	assert_int_equal(depth, 0);
	assert_int_equal(image_clone_depth(io, clone2, &depth), 0);
	assert_int_equal(depth, 2);
	assert_int_equal(image_flatten(io, clone2), 0);
	assert_int_equal(image_clone_depth(io, clone2, &depth), 0);
	assert_int_equal(depth, 0);
	assert_int_equal(image_flatten(io, img), 0); /* not a clone: nothing to do */
	assert_int_equal(image_flatten(io, "rbdcsi-no-image"), -ENOENT);

	/* Tear down: img stays busy while s2 exists or the trashed s1 is referenced (by c1). */
	assert_int_equal(image_remove(io, img), -EBUSY);
	assert_int_equal(image_snap_remove(io, img, "s2"), 0);
	assert_int_equal(image_remove(io, img), -EBUSY);
	assert_int_equal(image_remove(io, clone2), 1);
	assert_int_equal(image_remove(io, clone), -EBUSY); /* has snapshot c1 */
	assert_int_equal(image_snap_remove(io, clone, "c1"), 0);
	assert_int_equal(image_remove(io, clone), 1);
	assert_int_equal(image_snap_remove(io, clone, "c1"), 0); /* image gone: still success */
	assert_int_equal(image_remove(io, img), 1); /* the trashed s1 went with its last child */
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_image__features_parse),
		cmocka_unit_test(test_image__create_stat_resize_remove),
		cmocka_unit_test(test_image__no_features),
		cmocka_unit_test(test_image__watchers_block_remove),
		cmocka_unit_test(test_image__data_pool),
		cmocka_unit_test(test_image__namespace),
		cmocka_unit_test(test_image__pool_usage),
		cmocka_unit_test(test_image__snapshots_and_clones),
		cmocka_unit_test(test_image__survey),
	};

	return cmocka_run_group_tests_name("image", tests, group_setup, group_teardown);
}
