/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Shared helpers for the driver/ceph unit tests that talk to a real Ceph cluster. Tests read
 * RBDCSI_TEST_MONITORS, RBDCSI_TEST_USER, RBDCSI_TEST_KEY, RBDCSI_TEST_POOL (and optionally
 * RBDCSI_TEST_POOL2) and skip when RBDCSI_TEST_MONITORS is unset. Each test binary works in
 * its own RBD namespace ("rbdcsi-test-<binary>-<pid>") where isolation matters, and removes it.
 *
 * Include after <cmocka.h>. Test code may use librados/librbd directly to inspect results.
 */
#pragma once

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <rados/librados.h>
#include <rbd/librbd.h>

#include "driver/base/monotonic.h"
#include "driver/ceph/cluster.h"
#include "tests/unit/require.h"

#define TEST_CLUSTER_ID "test-cluster"

struct test_env {
	const char *monitors;
	const char *user;
	const char *key;
	const char *pool;
	const char *pool2; /* NULL when not given */
};

/* Fills env from the environment; false when the tests must skip. */
static inline bool test_env_get(struct test_env *env)
{
	env->monitors = getenv("RBDCSI_TEST_MONITORS");
	env->user = getenv("RBDCSI_TEST_USER");
	env->key = getenv("RBDCSI_TEST_KEY");
	env->pool = getenv("RBDCSI_TEST_POOL");
	env->pool2 = getenv("RBDCSI_TEST_POOL2");
	if (!env->monitors || !*env->monitors)
		return false;
	if (!env->user || !*env->user)
		env->user = "admin";
	if (!env->pool || !*env->pool)
		env->pool = "rbd";
	if (env->pool2 && !*env->pool2)
		env->pool2 = NULL;
	return env->key && *env->key;
}

static inline struct cluster_credentials test_credentials(const struct test_env *env)
{
	return (struct cluster_credentials){
		.cluster_id = TEST_CLUSTER_ID,
		.monitors = env->monitors,
		.user = env->user,
		.key = env->key,
	};
}

/* Short timeouts for tests: a broken cluster fails the test quickly instead of hanging it. */
static inline struct cluster_timeouts test_timeouts(void)
{
	return (struct cluster_timeouts){ .connect_sec = 10, .mon_op_sec = 20, .osd_op_sec = 20 };
}

/* Raw librados handle to inspect the pool independently of the code under test. */
static inline int test_rados_connect(const struct test_env *env, rados_t *ret)
{
	char entity[128];
	rados_t r;
	int k;

	snprintf(entity, sizeof(entity), "client.%s", env->user);
	k = rados_create2(&r, "ceph", entity, 0);
	if (k < 0)
		return k;
	if ((k = rados_conf_set(r, "mon_host", env->monitors)) < 0 ||
	    (k = rados_conf_set(r, "key", env->key)) < 0 ||
	    (k = rados_conf_set(r, "keyring", "")) < 0 ||
	    (k = rados_conf_set(r, "admin_socket", "")) < 0 ||
	    (k = rados_conf_set(r, "log_to_stderr", "false")) < 0 ||
	    (k = rados_conf_set(r, "err_to_stderr", "false")) < 0 ||
	    (k = rados_conf_set(r, "client_mount_timeout", "10")) < 0 ||
	    (k = rados_conf_set(r, "rados_osd_op_timeout", "20")) < 0 ||
	    (k = rados_conf_set(r, "rados_mon_op_timeout", "20")) < 0 ||
	    (k = rados_connect(r)) < 0) {
		rados_shutdown(r);
		return k;
	}
	*ret = r;
	return 0;
}

static inline uint64_t test_now_usec(void)
{
	return monotonic_usec();
}

/* Number of images in io's pool/namespace (-errno on failure). */
static inline int test_count_images(rados_ioctx_t io)
{
	rbd_image_spec_t specs[256];
	size_t n = 256;
	int r = rbd_list2(io, specs, &n);

	if (r < 0)
		return r;
	rbd_image_spec_list_cleanup(specs, n);
	return (int)n;
}

/* Number of objects in io's namespace whose name starts with prefix. */
static inline int test_count_objects(rados_ioctx_t io, const char *prefix)
{
	rados_list_ctx_t ctx;
	const char *oid, *key, *ns;
	int n = 0, r;

	r = rados_nobjects_list_open(io, &ctx);
	if (r < 0)
		return r;
	while (rados_nobjects_list_next(ctx, &oid, &key, &ns) == 0)
		if (strncmp(oid, prefix, strlen(prefix)) == 0)
			n++;
	rados_nobjects_list_close(ctx);
	return n;
}

/* Number of omap keys of an object (0 when it does not exist). */
static inline int test_count_omap_keys(rados_ioctx_t io, const char *oid)
{
	rados_read_op_t op = rados_create_read_op();
	rados_omap_iter_t it = NULL;
	unsigned char more = 0;
	int prval = 0, r, n = 0;
	char *k, *v;
	size_t len;

	rados_read_op_omap_get_vals2(op, "", "", 100000, &it, &more, &prval);
	r = rados_read_op_operate(op, io, oid, 0);
	rados_release_read_op(op);
	if (r == -ENOENT)
		return 0;
	if (r < 0)
		return r;
	while (rados_omap_get_next(it, &k, &v, &len) == 0 && k)
		n++;
	rados_omap_get_end(it);
	return n;
}

/* Creates (or reuses) the RBD namespace ns in pool. */
static inline int test_namespace_create(rados_t r, const char *pool, const char *ns)
{
	rados_ioctx_t io;
	bool exists = false;
	int k;

	k = rados_ioctx_create(r, pool, &io);
	if (k < 0)
		return k;
	k = rbd_namespace_exists(io, ns, &exists);
	if (k >= 0 && !exists)
		k = rbd_namespace_create(io, ns);
	rados_ioctx_destroy(io);
	return k;
}

/* Removes every object left in ns (there should be none of ours), then the RBD namespace. */
static inline int test_namespace_remove(rados_t r, const char *pool, const char *ns)
{
	rados_ioctx_t io;
	int k;

	k = rados_ioctx_create(r, pool, &io);
	if (k < 0)
		return k;
	rados_ioctx_set_namespace(io, ns);
	(void)rados_remove(io, "rbdcsi.volumes");
	(void)rados_remove(io, "rbdcsi.snapshots");
	rados_ioctx_set_namespace(io, "");
	k = rbd_namespace_remove(io, ns);
	rados_ioctx_destroy(io);
	return k == -ENOENT ? 0 : k;
}

/* Number of threads of this process (to check that connections shut down fully). */
static inline int test_thread_count(void)
{
	FILE *f = fopen("/proc/self/status", "re");
	char line[256];
	int n = -1;

	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f))
		if (sscanf(line, "Threads: %d", &n) == 1)
			break;
	fclose(f);
	return n;
}

static inline int test_progress_ignore(uint64_t offset, uint64_t total, void *arg)
{
	(void)offset;
	(void)total;
	(void)arg;
	return 0;
}

/*
 * Best effort: removes every image in io whose name starts with prefix, with its snapshots
 * (children before parents, over a few passes). For group teardowns, so that a failed test
 * leaves nothing behind. Returns how many matching images remain.
 */
static inline int test_sweep_images(rados_ioctx_t io, const char *prefix)
{
	int left = 0;

	for (int pass = 0; pass < 5; pass++) {
		rbd_image_spec_t specs[256];
		size_t n = 256;

		left = 0;
		if (rbd_list2(io, specs, &n) < 0)
			return -1;
		for (size_t i = 0; i < n; i++) {
			rbd_image_t img;
			rbd_snap_info_t snaps[64];
			int max = 64, k;

			if (strncmp(specs[i].name, prefix, strlen(prefix)) != 0)
				continue;
			if (rbd_open(io, specs[i].name, &img, NULL) == 0) {
				k = rbd_snap_list(img, snaps, &max);
				for (int j = 0; j < k; j++)
					(void)rbd_snap_remove2(img, snaps[j].name,
					                       RBD_SNAP_REMOVE_FORCE,
					                       test_progress_ignore, NULL);
				if (k >= 0)
					rbd_snap_list_end(snaps);
				rbd_close(img);
			}
			if (rbd_remove(io, specs[i].name) < 0)
				left++;
		}
		rbd_image_spec_list_cleanup(specs, n);
		if (left == 0)
			break;
	}
	return left;
}
