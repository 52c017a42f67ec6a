/* SPDX-License-Identifier: Apache-2.0 */
/* Unit tests for driver/ceph/cluster.c, against a real Ceph (skipped without one). */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>

#include "driver/base/monotonic.h"
#include "driver/ceph/cluster.h"
#include "driver/ceph/cluster_ioctx.h"
#include "tests/unit/driver/ceph/ceph_test_env.h"

static struct test_env env;

#define NEED_CEPH()                                                                              \
	do {                                                                                     \
		if (!test_env_get(&env))                                                         \
			TEST_SKIP_NO_CEPH("no test Ceph cluster (RBDCSI_TEST_MONITORS unset or " \
			                  "unreachable)");                                       \
	} while (0)

static void test_cluster__connect_and_pools(void **state)
{
	struct cluster_credentials cred;
	struct cluster_timeouts t = test_timeouts();
	_cleanup_cluster_unref_ struct cluster *c = NULL;
	_cleanup_free_ char *name = NULL;
	rados_ioctx_t io = NULL;
	int64_t id, id2;

	NEED_CEPH();
	cred = test_credentials(&env);
	assert_int_equal(cluster_connect(&cred, &t, &c), 0);
	assert_string_equal(cluster_get_id(c), TEST_CLUSTER_ID);

	assert_int_equal(cluster_pool_lookup(c, env.pool, &id), 0);
	assert_true(id >= 0);
	assert_int_equal(cluster_pool_name(c, id, &name), 0);
	assert_string_equal(name, env.pool);
	assert_int_equal(cluster_pool_lookup(c, "rbdcsi-no-such-pool", &id2), -ENOENT);
	assert_int_equal(cluster_pool_name(c, 987654, &name), -ENOENT);
	assert_int_equal(cluster_pool_lookup(c, "", &id2), -EINVAL);
	{
		char **pools = NULL;
		size_t n = 0;
		bool found = false;

		assert_int_equal(cluster_pool_list(c, &pools, &n), 0);
		assert_true(n >= 1);
		for (size_t i = 0; i < n; i++) {
			found |= strcmp(pools[i], env.pool) == 0;
			free(pools[i]);
		}
		free(pools);
		assert_true(found);
	}

	assert_int_equal(cluster_ioctx_open(c, env.pool, "some-ns", &io), 0);
	assert_int_equal(rados_ioctx_get_id(io), id);
	io = cluster_ioctx_close(io);
	assert_null(io);
	assert_int_equal(cluster_ioctx_open_by_id(c, id, NULL, &io), 0);
	io = cluster_ioctx_close(io);
	assert_int_equal(cluster_ioctx_open(c, "rbdcsi-no-such-pool", NULL, &io), -ENOENT);
	assert_int_equal(cluster_ioctx_open_by_id(c, 987654, NULL, &io), -ENOENT);
	assert_null(cluster_ioctx_close(NULL));
}

static void test_cluster__bad_credentials(void **state)
{
	struct cluster_credentials cred;
	struct cluster_timeouts t = test_timeouts();
	struct cluster *c = NULL;
	char wrong[256];

	NEED_CEPH();
	cred = test_credentials(&env);

	/* Malformed: refused before any network traffic. */
	cred.cluster_id = "bad/id";
	assert_int_equal(cluster_connect(&cred, &t, &c), -EINVAL);
	cred = test_credentials(&env);
	cred.user = "csi\nkey = x";
	assert_int_equal(cluster_connect(&cred, &t, &c), -EINVAL);
	cred = test_credentials(&env);
	cred.key = "not base64!";
	assert_int_equal(cluster_connect(&cred, &t, &c), -EINVAL);
	cred = test_credentials(&env);
	cred.monitors = "";
	assert_int_equal(cluster_connect(&cred, &t, &c), -EINVAL);
	cred = test_credentials(&env);
	cred.key = "AAAA"; /* well-formed base64, not a cephx key */
	assert_int_equal(cluster_connect(&cred, &t, &c), -EINVAL);

	/* A well-formed key with another secret: the cluster says no. */
	snprintf(wrong, sizeof(wrong), "%s", env.key);
	assert_true(strlen(wrong) > 20);
	wrong[20] = wrong[20] == 'A' ? 'B' : 'A';
	cred = test_credentials(&env);
	cred.key = wrong;
	assert_int_equal(cluster_connect(&cred, &t, &c), -EACCES);
	cred = test_credentials(&env);
	cred.user = "rbdcsi-nobody";
	assert_int_equal(cluster_connect(&cred, &t, &c), -EACCES);
	assert_null(c);
}

static void test_cluster__cache_reuse_and_expire(void **state)
{
	struct cluster_credentials cred;
	struct cluster_timeouts t = test_timeouts();
	struct cluster_cache *cache = NULL;
	struct cluster *a = NULL, *b = NULL, *d = NULL;
	int threads_before, threads_after;
	uint64_t now;
	int64_t id;

	NEED_CEPH();
	threads_before = test_thread_count();
	cred = test_credentials(&env);
	assert_int_equal(cluster_cache_new(&t, 60ULL * 1000000ULL, &cache), 0);

	assert_int_equal(cluster_cache_get(cache, &cred, &a), 0);
	assert_int_equal(cluster_cache_get(cache, &cred, &b), 0);
	assert_ptr_equal(a, b); /* reused */
	assert_int_equal(cluster_cache_size(cache), 1);

	/* Another clusterID is another connection, even to the same monitors. */
	cred.cluster_id = "other-cluster";
	assert_int_equal(cluster_cache_get(cache, &cred, &d), 0);
	assert_ptr_not_equal(a, d);
	assert_int_equal(cluster_cache_size(cache), 2);
	cred = test_credentials(&env);

	/* Nothing is idle yet; held connections never expire. */
	now = monotonic_usec();
	assert_int_equal(cluster_cache_expire(cache, now), 0);
	assert_int_equal(cluster_cache_expire(cache, now + 3600ULL * 1000000ULL), 0);
	a = cluster_unref(a);
	assert_null(a);
	assert_int_equal(cluster_cache_expire(cache, now + 3600ULL * 1000000ULL), 0); /* b holds */
	b = cluster_unref(b);
	d = cluster_unref(d);

	/* Unused, but not for long enough. */
	assert_int_equal(cluster_cache_expire(cache, monotonic_usec()), 0);
	assert_int_equal(cluster_cache_size(cache), 2);
	/* Idle past the limit: both closed. */
	assert_int_equal(cluster_cache_expire(cache, monotonic_usec() + 61ULL * 1000000ULL), 2);
	assert_int_equal(cluster_cache_size(cache), 0);

	/* A new get connects again. */
	assert_int_equal(cluster_cache_get(cache, &cred, &a), 0);
	assert_int_equal(cluster_cache_size(cache), 1);

	/* Dropped from the cache: still usable by its holder, and the next get reconnects. */
	cluster_cache_drop(cache, a);
	assert_int_equal(cluster_cache_size(cache), 0);
	cluster_cache_drop(cache, a); /* not there any more: nothing happens */
	assert_int_equal(cluster_pool_lookup(a, env.pool, &id), 0);
	assert_int_equal(cluster_cache_get(cache, &cred, &b), 0);
	assert_ptr_not_equal(a, b);
	assert_int_equal(cluster_cache_size(cache), 1);
	a = cluster_unref(a);
	b = cluster_unref(b);
	cache = cluster_cache_free(cache);
	assert_null(cache);

	/* All librados threads are gone once the connections are closed. */
	threads_after = test_thread_count();
	print_message("threads before %d, after close %d\n", threads_before, threads_after);
	assert_int_equal(threads_after, threads_before);
}

static void test_cluster__other_key_is_not_reused(void **state)
{
	struct cluster_credentials cred;
	struct cluster_timeouts t = test_timeouts();
	struct cluster_cache *cache = NULL;
	struct cluster *a = NULL, *b = NULL;
	char wrong[256];

	NEED_CEPH();
	cred = test_credentials(&env);
	assert_int_equal(cluster_cache_new(&t, 60ULL * 1000000ULL, &cache), 0);
	assert_int_equal(cluster_cache_get(cache, &cred, &a), 0);

	/* Same clusterID, monitors and user, another key: must not get the cached connection. */
	snprintf(wrong, sizeof(wrong), "%s", env.key);
	wrong[20] = wrong[20] == 'A' ? 'B' : 'A';
	cred.key = wrong;
	assert_int_equal(cluster_cache_get(cache, &cred, &b), -EACCES);
	assert_null(b);
	assert_int_equal(cluster_cache_size(cache), 1);

	/* The right key still gets it. */
	cred = test_credentials(&env);
	assert_int_equal(cluster_cache_get(cache, &cred, &b), 0);
	assert_ptr_equal(a, b);
	a = cluster_unref(a);
	b = cluster_unref(b);
	cache = cluster_cache_free(cache);
}

/* A connection still held when the cache is freed stays usable until released. */
static void test_cluster__free_with_holders(void **state)
{
	struct cluster_credentials cred;
	struct cluster_timeouts t = test_timeouts();
	struct cluster_cache *cache = NULL;
	struct cluster *a = NULL;
	int64_t id;

	NEED_CEPH();
	cred = test_credentials(&env);
	assert_int_equal(cluster_cache_new(&t, 0, &cache), 0);
	assert_int_equal(cluster_cache_get(cache, &cred, &a), 0);
	cache = cluster_cache_free(cache);
	assert_int_equal(cluster_pool_lookup(a, env.pool, &id), 0);
	a = cluster_unref(a);
}

struct thread_arg {
	struct cluster_cache *cache;
	struct cluster *seen;
	int r;
};

static void *get_many(void *p)
{
	struct thread_arg *arg = p;
	struct cluster_credentials cred = test_credentials(&env);

	for (int i = 0; i < 50 && arg->r == 0; i++) {
		struct cluster *c = NULL;
		int64_t id;

		arg->r = cluster_cache_get(arg->cache, &cred, &c);
		if (arg->r < 0)
			break;
		if (arg->seen && arg->seen != c)
			arg->r = -EBADSLT;
		arg->seen = c;
		if (arg->r == 0)
			arg->r = cluster_pool_lookup(c, env.pool, &id);
		cluster_unref(c);
	}
	return NULL;
}

static void test_cluster__threads_share_one_connection(void **state)
{
	struct cluster_timeouts t = test_timeouts();
	struct cluster_cache *cache = NULL;
	struct thread_arg args[8] = {};
	pthread_t th[8];

	NEED_CEPH();
	assert_int_equal(cluster_cache_new(&t, 60ULL * 1000000ULL, &cache), 0);
	for (size_t i = 0; i < 8; i++) {
		args[i].cache = cache;
		assert_int_equal(pthread_create(&th[i], NULL, get_many, &args[i]), 0);
	}
	for (size_t i = 0; i < 8; i++) {
		assert_int_equal(pthread_join(th[i], NULL), 0);
		assert_int_equal(args[i].r, 0);
		assert_ptr_equal(args[i].seen, args[0].seen);
	}
	/* Threads that connected at the same moment converge on one cached connection. */
	assert_int_equal(cluster_cache_size(cache), 1);
	cache = cluster_cache_free(cache);
}

/* 127.0.0.1 on a port that is bound but not listening: connections are refused. */
static void test_cluster__dead_monitor_times_out(void **state)
{
	struct cluster_timeouts t = { .connect_sec = 3, .mon_op_sec = 3, .osd_op_sec = 3 };
	struct cluster_credentials cred;
	struct sockaddr_in sa = { .sin_family = AF_INET };
	socklen_t len = sizeof(sa);
	struct cluster *c = NULL;
	char mon[64];
	uint64_t start, ms;
	int fd, r;

	NEED_CEPH();
	fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	assert_true(fd >= 0);
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	assert_int_equal(getsockname(fd, (struct sockaddr *)&sa, &len), 0);
	snprintf(mon, sizeof(mon), "127.0.0.1:%u", ntohs(sa.sin_port));

	cred = test_credentials(&env);
	cred.monitors = mon;
	start = monotonic_usec();
	r = cluster_connect(&cred, &t, &c);
	ms = (monotonic_usec() - start) / 1000;
	close(fd);
	print_message("connect to dead monitor %s: %d (%s) after %llu ms\n", mon, r, strerror(-r),
	              (unsigned long long)ms);
	assert_int_equal(r, -ETIMEDOUT);
	assert_null(c);
	assert_true(ms >= 2500);
	assert_true(ms < 6000);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_cluster__connect_and_pools),
		cmocka_unit_test(test_cluster__bad_credentials),
		cmocka_unit_test(test_cluster__cache_reuse_and_expire),
		cmocka_unit_test(test_cluster__other_key_is_not_reused),
		cmocka_unit_test(test_cluster__free_with_holders),
		cmocka_unit_test(test_cluster__threads_share_one_connection),
		cmocka_unit_test(test_cluster__dead_monitor_times_out),
	};

	return cmocka_run_group_tests_name("cluster", tests, NULL, NULL);
}
