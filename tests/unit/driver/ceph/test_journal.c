/* SPDX-License-Identifier: Apache-2.0 */
/* Unit tests for driver/ceph/journal.c, against a real Ceph (skipped without one). */
#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "driver/ceph/cluster.h"
#include "driver/ceph/cluster_ioctx.h"
#include "driver/ceph/journal.h"
#include "tests/unit/driver/ceph/ceph_test_env.h"

static struct test_env env;
static struct cluster *cl;
static rados_ioctx_t io;
static bool have_ceph;
static char ns[64];

static int group_setup(void **state)
{
	struct cluster_credentials cred;
	struct cluster_timeouts t = test_timeouts();

	/* A rados namespace of our own: journal objects need no RBD namespace. */
	snprintf(ns, sizeof(ns), "rbdcsi-test-journal-%d", (int)getpid());
	if (!test_env_get(&env))
		return 0;
	cred = test_credentials(&env);
	if (cluster_connect(&cred, &t, &cl) < 0 || cluster_ioctx_open(cl, env.pool, ns, &io) < 0)
		return -1;
	have_ceph = true;
	return 0;
}

static int group_teardown(void **state)
{
	if (io) {
		(void)rados_remove(io, journal_directory_oid(JOURNAL_VOLUME));
		(void)rados_remove(io, journal_directory_oid(JOURNAL_SNAPSHOT));
		if (test_count_objects(io, "") != 0)
			fprintf(stderr, "warning: objects left in namespace %s\n", ns);
	}
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

static void test_journal__uuid_and_names(void **state)
{
	char a[JOURNAL_UUID_LEN + 1], b[JOURNAL_UUID_LEN + 1], oid[JOURNAL_OID_MAX];
	char big[JOURNAL_NAME_MAX + 2];

	assert_int_equal(journal_uuid_new(a), 0);
	assert_int_equal(journal_uuid_new(b), 0);
	assert_true(volume_id_uuid_valid(a));
	assert_string_not_equal(a, b);
	assert_int_equal(a[14], '4');           /* version 4 */
	assert_non_null(strchr("89ab", a[19])); /* RFC 4122 variant */

	assert_string_equal(journal_directory_oid(JOURNAL_VOLUME), "rbdcsi.volumes");
	assert_string_equal(journal_directory_oid(JOURNAL_SNAPSHOT), "rbdcsi.snapshots");
	journal_entry_oid(JOURNAL_VOLUME, a, oid);
	assert_true(strncmp(oid, "rbdcsi.volume.", 14) == 0);
	assert_string_equal(oid + 14, a);
	journal_entry_oid(JOURNAL_SNAPSHOT, a, oid);
	assert_true(strncmp(oid, "rbdcsi.snapshot.", 16) == 0);

	assert_true(journal_name_valid("pvc-1"));
	assert_false(journal_name_valid(""));
	assert_false(journal_name_valid(NULL));
	memset(big, 'a', JOURNAL_NAME_MAX);
	big[JOURNAL_NAME_MAX] = 0;
	assert_true(journal_name_valid(big));
	big[JOURNAL_NAME_MAX] = 'a';
	big[JOURNAL_NAME_MAX + 1] = 0;
	assert_false(journal_name_valid(big));
}

static void test_journal__reserve_lookup_unreserve(void **state)
{
	char u1[JOURNAL_UUID_LEN + 1], u2[JOURNAL_UUID_LEN + 1], got[JOURNAL_UUID_LEN + 1];

	NEED_CEPH();
	assert_int_equal(journal_uuid_new(u1), 0);
	assert_int_equal(journal_uuid_new(u2), 0);

	assert_int_equal(journal_lookup(io, JOURNAL_VOLUME, "pvc-a", got), -ENOENT);
	/* First reservation creates the directory object and wins. */
	assert_int_equal(journal_reserve(io, JOURNAL_VOLUME, "pvc-a", u1, got), 1);
	assert_string_equal(got, u1);
	/* A second one with another uuid adopts the first. */
	assert_int_equal(journal_reserve(io, JOURNAL_VOLUME, "pvc-a", u2, got), 0);
	assert_string_equal(got, u1);
	assert_int_equal(journal_lookup(io, JOURNAL_VOLUME, "pvc-a", got), 0);
	assert_string_equal(got, u1);
	/* Kinds are separate directories. */
	assert_int_equal(journal_lookup(io, JOURNAL_SNAPSHOT, "pvc-a", got), -ENOENT);

	/* Unreserve with the wrong uuid leaves the key alone. */
	assert_int_equal(journal_unreserve(io, JOURNAL_VOLUME, "pvc-a", u2), 0);
	assert_int_equal(journal_lookup(io, JOURNAL_VOLUME, "pvc-a", got), 0);
	assert_int_equal(journal_unreserve(io, JOURNAL_VOLUME, "pvc-a", u1), 0);
	assert_int_equal(journal_lookup(io, JOURNAL_VOLUME, "pvc-a", got), -ENOENT);
	assert_int_equal(journal_unreserve(io, JOURNAL_VOLUME, "pvc-a", u1), 0);   /* idempotent */
	assert_int_equal(journal_unreserve(io, JOURNAL_SNAPSHOT, "pvc-a", u1), 0); /* no dir */

	assert_int_equal(journal_reserve(io, JOURNAL_VOLUME, "", u1, got), -EINVAL);
	assert_int_equal(journal_reserve(io, JOURNAL_VOLUME, "x", "not-a-uuid", got), -EINVAL);
	assert_int_equal(test_count_omap_keys(io, journal_directory_oid(JOURNAL_VOLUME)), 0);
}

/* What the guarded reservation relies on, measured: omap_cmp(key == "") passes for a missing
 * key and fails with -ECANCELED for a stored value, applying nothing. */
static void test_journal__omap_cmp_semantics(void **state)
{
	const char *oid = "rbdcsi.test.cmp";
	const char *keys[] = { "k" };
	const char *vals[] = { "v1" };
	const size_t lens[] = { 2 };
	rados_write_op_t op;
	int r, prval;

	NEED_CEPH();
	(void)rados_remove(io, oid);
	/* Missing object without create: -ENOENT. */
	op = rados_create_write_op();
	rados_write_op_omap_cmp(op, "k", LIBRADOS_CMPXATTR_OP_EQ, "", 0, &prval);
	rados_write_op_omap_set(op, keys, vals, lens, 1);
	r = rados_write_op_operate(op, io, oid, NULL, 0);
	rados_release_write_op(op);
	assert_int_equal(r, -ENOENT);
	/* With create in the same op, the missing key compares equal to "". */
	op = rados_create_write_op();
	rados_write_op_create(op, LIBRADOS_CREATE_IDEMPOTENT, NULL);
	rados_write_op_omap_cmp(op, "k", LIBRADOS_CMPXATTR_OP_EQ, "", 0, &prval);
	rados_write_op_omap_set(op, keys, vals, lens, 1);
	r = rados_write_op_operate(op, io, oid, NULL, 0);
	rados_release_write_op(op);
	assert_int_equal(r, 0);
	/* Now the key has a value: the cmp fails and the set is not applied. */
	vals[0] = "v2";
	op = rados_create_write_op();
	rados_write_op_create(op, LIBRADOS_CREATE_IDEMPOTENT, NULL);
	rados_write_op_omap_cmp(op, "k", LIBRADOS_CMPXATTR_OP_EQ, "", 0, &prval);
	rados_write_op_omap_set(op, keys, vals, lens, 1);
	r = rados_write_op_operate(op, io, oid, NULL, 0);
	rados_release_write_op(op);
	assert_int_equal(r, -ECANCELED);
	assert_int_equal(test_count_omap_keys(io, oid), 1);
	assert_int_equal(rados_remove(io, oid), 0);
}

struct race_arg {
	const char *name;
	char won[JOURNAL_UUID_LEN + 1];
	char mine[JOURNAL_UUID_LEN + 1];
	int r;
	pthread_barrier_t *barrier;
};

static void *race_reserve(void *p)
{
	struct race_arg *a = p;
	rados_ioctx_t tio = NULL;

	/* One ioctx per thread, as the journal requires. */
	a->r = cluster_ioctx_open(cl, env.pool, ns, &tio);
	if (a->r < 0)
		return NULL;
	journal_uuid_new(a->mine);
	pthread_barrier_wait(a->barrier);
	a->r = journal_reserve(tio, JOURNAL_VOLUME, a->name, a->mine, a->won);
	cluster_ioctx_close(tio);
	return NULL;
}

static void test_journal__reserve_race_has_one_winner(void **state)
{
	enum { N = 8 };
	struct race_arg args[N] = {};
	pthread_barrier_t barrier;
	pthread_t th[N];
	int winners = 0;

	NEED_CEPH();
	for (int round = 0; round < 5; round++) {
		char name[32];

		snprintf(name, sizeof(name), "race-%d", round);
		pthread_barrier_init(&barrier, NULL, N);
		winners = 0;
		for (int i = 0; i < N; i++) {
			args[i] = (struct race_arg){ .name = name, .barrier = &barrier };
			assert_int_equal(pthread_create(&th[i], NULL, race_reserve, &args[i]), 0);
		}
		for (int i = 0; i < N; i++) {
			assert_int_equal(pthread_join(th[i], NULL), 0);
			assert_true(args[i].r == 0 || args[i].r == 1);
			winners += args[i].r;
			assert_string_equal(args[i].won, args[0].won);
		}
		pthread_barrier_destroy(&barrier);
		assert_int_equal(winners, 1);
		assert_int_equal(journal_unreserve(io, JOURNAL_VOLUME, name, args[0].won), 0);
	}
	assert_int_equal(test_count_omap_keys(io, journal_directory_oid(JOURNAL_VOLUME)), 0);
}

static void test_journal__entries(void **state)
{
	struct journal_field fields[] = { { "name", "pvc-e" }, { "size", "100" } };
	struct journal_field set[] = { { "size", "200" }, { "attach.n1", "rw" } };
	const char *rm[] = { "attach.n1" };
	struct journal_entry *e = NULL, *e2 = NULL;
	char u[JOURNAL_UUID_LEN + 1], oid[JOURNAL_OID_MAX];
	uint64_t v1;

	NEED_CEPH();
	assert_int_equal(journal_uuid_new(u), 0);
	journal_entry_oid(JOURNAL_VOLUME, u, oid);
	assert_int_equal(journal_entry_read(io, JOURNAL_VOLUME, u, &e), -ENOENT);
	assert_int_equal(journal_entry_create(io, JOURNAL_VOLUME, u, fields, 2, NULL), 0);
	assert_int_equal(journal_entry_create(io, JOURNAL_VOLUME, u, fields, 2, NULL), -EEXIST);

	assert_int_equal(journal_entry_read(io, JOURNAL_VOLUME, u, &e), 0);
	assert_int_equal(e->n_fields, 2);
	assert_string_equal(journal_entry_get(e, "name"), "pvc-e");
	assert_string_equal(journal_entry_get(e, "size"), "100");
	assert_null(journal_entry_get(e, "nope"));
	assert_true(e->version > 0);
	v1 = e->version;

	/* Update at the read version works and bumps the version. */
	assert_int_equal(journal_entry_update(io, e, set, 2, NULL, 0), 0);
	assert_int_equal(journal_entry_read(io, JOURNAL_VOLUME, u, &e2), 0);
	assert_true(e2->version > v1);
	assert_string_equal(journal_entry_get(e2, "size"), "200");
	assert_string_equal(journal_entry_get(e2, "attach.n1"), "rw");

	/* A second update from the stale read is refused, and changes nothing. */
	assert_int_equal(journal_entry_update(io, e, NULL, 0, rm, 1), -ESTALE);
	assert_int_equal(journal_entry_remove(io, JOURNAL_VOLUME, u, e->version), -ESTALE);
	e = journal_entry_free(e);
	assert_int_equal(journal_entry_read(io, JOURNAL_VOLUME, u, &e), 0);
	assert_string_equal(journal_entry_get(e, "attach.n1"), "rw");

	/* From the fresh read it works. */
	assert_int_equal(journal_entry_update(io, e2, NULL, 0, rm, 1), 0);
	e = journal_entry_free(e);
	assert_int_equal(journal_entry_read(io, JOURNAL_VOLUME, u, &e), 0);
	assert_null(journal_entry_get(e, "attach.n1"));

	/* Empty values are refused (the directory relies on values never being empty). */
	struct journal_field empty[] = { { "x", "" } };
	assert_int_equal(journal_entry_update(io, e, empty, 1, NULL, 0), -EINVAL);

	/* Remove; afterwards updates fail with -ENOENT instead of recreating the object. */
	assert_int_equal(journal_entry_remove(io, JOURNAL_VOLUME, u, e->version), 0);
	assert_int_equal(journal_entry_remove(io, JOURNAL_VOLUME, u, 0), 0); /* idempotent */
	assert_int_equal(journal_entry_update(io, e2, set, 1, NULL, 0), -ENOENT);
	assert_int_equal(journal_entry_read(io, JOURNAL_VOLUME, u, &e2), -ENOENT);
	assert_int_equal(test_count_objects(io, oid), 0);
	e = journal_entry_free(e);
	e2 = journal_entry_free(e2);
	assert_null(journal_entry_free(NULL));
}

/* The entry a create hands back is the one a read returns: same fields, same version. */
static void test_journal__create_returns_entry(void **state)
{
	struct journal_field fields[] = { { "size", "100" }, { "name", "pvc-c" }, { "a", "x" } };
	struct journal_field set[] = { { "state", "created" } };
	struct journal_entry *made = NULL, *e = NULL;
	char u[JOURNAL_UUID_LEN + 1];

	NEED_CEPH();
	assert_int_equal(journal_uuid_new(u), 0);
	assert_int_equal(journal_entry_create(io, JOURNAL_VOLUME, u, fields, 3, &made), 0);
	assert_non_null(made);
	assert_int_equal(journal_entry_read(io, JOURNAL_VOLUME, u, &e), 0);
	assert_int_equal(made->kind, e->kind);
	assert_string_equal(made->uuid, e->uuid);
	assert_int_equal(made->version, e->version);
	assert_int_equal(made->n_fields, e->n_fields);
	for (size_t i = 0; i < e->n_fields; i++) { /* in omap order, as read */
		assert_string_equal(made->fields[i].key, e->fields[i].key);
		assert_string_equal(made->fields[i].value, e->fields[i].value);
	}
	/* So an update can follow the create without a read. */
	assert_int_equal(journal_entry_update(io, made, set, 1, NULL, 0), 0);
	e = journal_entry_free(e);
	assert_int_equal(journal_entry_read(io, JOURNAL_VOLUME, u, &e), 0);
	assert_string_equal(journal_entry_get(e, "state"), "created");
	/* A second create is refused and hands back nothing. */
	made = journal_entry_free(made);
	assert_int_equal(journal_entry_create(io, JOURNAL_VOLUME, u, fields, 3, &made), -EEXIST);
	assert_null(made);
	assert_int_equal(journal_entry_remove(io, JOURNAL_VOLUME, u, e->version), 0);
	e = journal_entry_free(e);
}

/* An entry bigger than one read page (1024 pairs) is read completely. */
static void test_journal__big_entry(void **state)
{
	enum { N = 2500 };
	struct journal_field *fields = calloc(N, sizeof(*fields));
	struct journal_entry *e = NULL;
	char u[JOURNAL_UUID_LEN + 1];

	NEED_CEPH();
	assert_non_null(fields);
	for (int i = 0; i < N; i++) {
		assert_true(asprintf(&fields[i].key, "attach.node-%05d", i) > 0);
		fields[i].value = "ro";
	}
	assert_int_equal(journal_uuid_new(u), 0);
	assert_int_equal(journal_entry_create(io, JOURNAL_VOLUME, u, fields, N, NULL), 0);
	assert_int_equal(journal_entry_read(io, JOURNAL_VOLUME, u, &e), 0);
	assert_int_equal(e->n_fields, N);
	assert_string_equal(e->fields[N - 1].key, "attach.node-02499");
	e = journal_entry_free(e);
	assert_int_equal(journal_entry_remove(io, JOURNAL_VOLUME, u, 0), 0);
	for (int i = 0; i < N; i++)
		free(fields[i].key);
	free(fields);
}

static void test_journal__list_pages(void **state)
{
	char uuids[10][JOURNAL_UUID_LEN + 1], got[JOURNAL_UUID_LEN + 1];
	char after[32] = "";
	unsigned seen = 0, pages = 0;
	bool more = true;

	NEED_CEPH();
	for (int i = 0; i < 10; i++) {
		char name[32];
		snprintf(name, sizeof(name), "list-%02d", i);
		assert_int_equal(journal_uuid_new(uuids[i]), 0);
		assert_int_equal(journal_reserve(io, JOURNAL_SNAPSHOT, name, uuids[i], got), 1);
	}
	while (more) {
		struct journal_name *names = NULL;
		size_t n = 0;

		assert_int_equal(journal_list(io, JOURNAL_SNAPSHOT, after, 4, &names, &n, &more),
		                 0);
		pages++;
		for (size_t i = 0; i < n; i++) {
			char name[32];
			snprintf(name, sizeof(name), "list-%02u", seen);
			assert_string_equal(names[i].name, name);
			assert_string_equal(names[i].uuid, uuids[seen]);
			seen++;
		}
		if (n > 0)
			snprintf(after, sizeof(after), "%s", names[n - 1].name);
		journal_names_free(names, n);
	}
	assert_int_equal(seen, 10);
	assert_int_equal(pages, 3);
	for (int i = 0; i < 10; i++) {
		char name[32];
		snprintf(name, sizeof(name), "list-%02d", i);
		assert_int_equal(journal_unreserve(io, JOURNAL_SNAPSHOT, name, uuids[i]), 0);
	}
	/* An absent directory lists as empty. */
	{
		struct journal_name *names = NULL;
		size_t n = 99;
		assert_int_equal(rados_remove(io, journal_directory_oid(JOURNAL_SNAPSHOT)), 0);
		assert_int_equal(journal_list(io, JOURNAL_SNAPSHOT, NULL, 4, &names, &n, &more), 0);
		assert_int_equal(n, 0);
		assert_false(more);
		journal_names_free(names, n);
	}
}

/* journal_list_page() reads a page's entries several at a time (issue 18): still every entry
 * in key order, with its version and all its fields (one bigger than a read page too), past
 * a window boundary, skipping an entry removed since its key was written. */
struct page_seen {
	unsigned n;
	char names[80][32];
	size_t fields[80];
	bool versioned;
};

static int page_collect(const struct journal_entry *e, const struct journal_name *jn,
                        void *userdata)
{
	struct page_seen *ps = userdata;

	if (ps->n >= 80)
		return -E2BIG;
	snprintf(ps->names[ps->n], sizeof(ps->names[0]), "%s", jn->name);
	ps->fields[ps->n] = e->n_fields;
	ps->versioned = ps->versioned && e->version > 0 && strcmp(e->uuid, jn->uuid) == 0;
	ps->n++;
	return 0;
}

static void test_journal__list_page_reads_many_in_order(void **state)
{
	enum { N = 75, GONE = 40, BIG = 33, BIG_FIELDS = 1500 };
	char uuids[N][JOURNAL_UUID_LEN + 1], got[JOURNAL_UUID_LEN + 1];
	struct journal_field *big = calloc(BIG_FIELDS, sizeof(*big));
	struct journal_field one = { "n", "1" };
	struct page_seen ps = { .versioned = true };
	char *next = NULL;

	NEED_CEPH();
	assert_non_null(big);
	for (int i = 0; i < BIG_FIELDS; i++) {
		assert_true(asprintf(&big[i].key, "f-%05d", i) > 0);
		big[i].value = "v";
	}
	for (int i = 0; i < N; i++) {
		char name[32];
		snprintf(name, sizeof(name), "page-%02d", i);
		assert_int_equal(journal_uuid_new(uuids[i]), 0);
		assert_int_equal(journal_reserve(io, JOURNAL_SNAPSHOT, name, uuids[i], got), 1);
		assert_int_equal(journal_entry_create(io, JOURNAL_SNAPSHOT, uuids[i],
		                                      i == BIG ? big : &one,
		                                      i == BIG ? BIG_FIELDS : 1, NULL),
		                 0);
	}
	assert_int_equal(journal_entry_remove(io, JOURNAL_SNAPSHOT, uuids[GONE], 0), 0);

	assert_int_equal(
	        journal_list_page(io, JOURNAL_SNAPSHOT, NULL, 100, page_collect, &ps, &next), 0);
	assert_null(next);
	assert_int_equal(ps.n, N - 1);
	assert_true(ps.versioned);
	for (unsigned k = 0, i = 0; i < N; i++) {
		char name[32];
		if (i == GONE)
			continue;
		snprintf(name, sizeof(name), "page-%02u", i);
		assert_string_equal(ps.names[k], name);
		assert_int_equal(ps.fields[k], i == BIG ? BIG_FIELDS : 1);
		k++;
	}

	for (int i = 0; i < N; i++) {
		char name[32];
		snprintf(name, sizeof(name), "page-%02d", i);
		assert_int_equal(journal_entry_remove(io, JOURNAL_SNAPSHOT, uuids[i], 0), 0);
		assert_int_equal(journal_unreserve(io, JOURNAL_SNAPSHOT, name, uuids[i]), 0);
	}
	for (int i = 0; i < BIG_FIELDS; i++)
		free(big[i].key);
	free(big);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_journal__uuid_and_names),
		cmocka_unit_test(test_journal__reserve_lookup_unreserve),
		cmocka_unit_test(test_journal__omap_cmp_semantics),
		cmocka_unit_test(test_journal__reserve_race_has_one_winner),
		cmocka_unit_test(test_journal__entries),
		cmocka_unit_test(test_journal__create_returns_entry),
		cmocka_unit_test(test_journal__big_entry),
		cmocka_unit_test(test_journal__list_page_reads_many_in_order),
		cmocka_unit_test(test_journal__list_pages),
	};

	return cmocka_run_group_tests_name("journal", tests, group_setup, group_teardown);
}
