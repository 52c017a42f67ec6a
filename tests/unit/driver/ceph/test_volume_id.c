/* SPDX-License-Identifier: Apache-2.0 */
/* Unit tests for driver/ceph/volume_id.c (pure: no Ceph needed). */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "driver/ceph/volume_id.h"

#define UUID1 "a010aab6-9632-11ea-a13c-fea68445fd19"

static void assert_round_trip(const struct volume_id *id, const char *expected)
{
	char buf[VOLUME_ID_MAX + 1];
	char again[VOLUME_ID_MAX + 1];
	struct volume_id back;
	int n;

	n = volume_id_encode(id, buf);
	assert_true(n > 0);
	assert_int_equal((size_t)n, strlen(buf));
	assert_true(n <= VOLUME_ID_MAX);
	if (expected)
		assert_string_equal(buf, expected);
	assert_int_equal(volume_id_decode(buf, &back), 0);
	assert_int_equal(back.kind, id->kind);
	assert_string_equal(back.cluster_id, id->cluster_id);
	assert_int_equal(back.pool_id, id->pool_id);
	assert_string_equal(back.rados_namespace, id->rados_namespace);
	assert_string_equal(back.uuid, id->uuid);
	assert_int_equal(volume_id_encode(&back, again), n);
	assert_string_equal(again, buf);
}

static void test_volume_id__round_trip_examples(void **state)
{
	struct volume_id id;

	assert_int_equal(volume_id_make(VOLUME_ID_VOLUME, "rook-ceph", 2, NULL, UUID1, &id), 0);
	assert_round_trip(&id, "0001-v-09-rook-ceph-0000000000000002-00--" UUID1);

	assert_int_equal(volume_id_make(VOLUME_ID_SNAPSHOT, "prod", 31, "team1", UUID1, &id), 0);
	assert_round_trip(&id, "0001-s-04-prod-000000000000001f-05-team1-" UUID1);

	/* A clusterID full of dashes and an empty namespace stay unambiguous. */
	assert_int_equal(volume_id_make(VOLUME_ID_VOLUME, "c1d912c9-562f-40a3-85fd-4c7f3a97251f",
	                                INT64_MAX, "", UUID1, &id),
	                 0);
	assert_round_trip(
	        &id, "0001-v-24-c1d912c9-562f-40a3-85fd-4c7f3a97251f-7fffffffffffffff-00--" UUID1);

	assert_int_equal(volume_id_make(VOLUME_ID_VOLUME, "x", 0, "-.-_", UUID1, &id), 0);
	assert_round_trip(&id, "0001-v-01-x-0000000000000000-04--.-_-" UUID1);
}

static void test_volume_id__kind_is_distinguishable(void **state)
{
	struct volume_id v, s;
	char bv[VOLUME_ID_MAX + 1], bs[VOLUME_ID_MAX + 1];
	struct volume_id back;

	assert_int_equal(volume_id_make(VOLUME_ID_VOLUME, "c", 1, "ns", UUID1, &v), 0);
	assert_int_equal(volume_id_make(VOLUME_ID_SNAPSHOT, "c", 1, "ns", UUID1, &s), 0);
	assert_true(volume_id_encode(&v, bv) > 0);
	assert_true(volume_id_encode(&s, bs) > 0);
	assert_string_not_equal(bv, bs);
	assert_int_equal(volume_id_decode(bv, &back), 0);
	assert_int_equal(back.kind, VOLUME_ID_VOLUME);
	assert_int_equal(volume_id_decode(bs, &back), 0);
	assert_int_equal(back.kind, VOLUME_ID_SNAPSHOT);
	assert_int_equal(volume_id_decode_kind(bv, VOLUME_ID_VOLUME, &back), 0);
	assert_int_equal(volume_id_decode_kind(bs, VOLUME_ID_SNAPSHOT, &back), 0);
	assert_int_equal(volume_id_decode_kind(bv, VOLUME_ID_SNAPSHOT, &back), -EINVAL);
	assert_int_equal(volume_id_decode_kind(bs, VOLUME_ID_VOLUME, &back), -EINVAL);
	assert_int_equal(volume_id_decode_kind("garbage", VOLUME_ID_VOLUME, &back), -EINVAL);
}

static void test_volume_id__length_limit(void **state)
{
	char cluster[VOLUME_ID_CLUSTER_ID_MAX + 1], ns[64];
	char buf[VOLUME_ID_MAX + 1];
	struct volume_id id;

	memset(cluster, 'c', VOLUME_ID_CLUSTER_ID_MAX);
	cluster[VOLUME_ID_CLUSTER_ID_MAX] = 0;
	/* 68 + 36 + 24 = 128: exactly the CSI limit. */
	memset(ns, 'n', 24);
	ns[24] = 0;
	assert_int_equal(volume_id_make(VOLUME_ID_VOLUME, cluster, 5, ns, UUID1, &id), 0);
	assert_int_equal(volume_id_encode(&id, buf), 128);
	assert_round_trip(&id, NULL);

	/* One more byte of namespace does not fit. */
	ns[24] = 'n';
	ns[25] = 0;
	assert_int_equal(volume_id_make(VOLUME_ID_VOLUME, cluster, 5, ns, UUID1, &id),
	                 -ENAMETOOLONG);

	/* With a 1-byte clusterID the namespace may have 59 bytes, not 60. */
	memset(ns, 'n', 59);
	ns[59] = 0;
	assert_int_equal(volume_id_make(VOLUME_ID_VOLUME, "c", 5, ns, UUID1, &id), 0);
	assert_int_equal(volume_id_encode(&id, buf), 128);
	assert_round_trip(&id, NULL);
	ns[59] = 'n';
	ns[60] = 0;
	assert_int_equal(volume_id_make(VOLUME_ID_VOLUME, "c", 5, ns, UUID1, &id), -ENAMETOOLONG);
}

static void test_volume_id__encode_rejects_bad_fields(void **state)
{
	struct volume_id id;
	char buf[VOLUME_ID_MAX + 1];

	assert_int_equal(volume_id_make(VOLUME_ID_VOLUME, "", 1, NULL, UUID1, &id), -EINVAL);
	assert_int_equal(volume_id_make(VOLUME_ID_VOLUME, NULL, 1, NULL, UUID1, &id), -EINVAL);
	assert_int_equal(volume_id_make(VOLUME_ID_VOLUME, "a/b", 1, NULL, UUID1, &id), -EINVAL);
	assert_int_equal(volume_id_make(VOLUME_ID_VOLUME, "0123456789012345678901234567890123456",
	                                1, NULL, UUID1, &id),
	                 -EINVAL); /* 37 chars */
	assert_int_equal(volume_id_make(VOLUME_ID_VOLUME, "c", -1, NULL, UUID1, &id), -EINVAL);
	assert_int_equal(volume_id_make(VOLUME_ID_VOLUME, "c", 1, "a b", UUID1, &id), -EINVAL);
	assert_int_equal(volume_id_make(VOLUME_ID_VOLUME, "c", 1, NULL,
	                                "A010AAB6-9632-11EA-A13C-FEA68445FD19", &id),
	                 -EINVAL);
	assert_int_equal(volume_id_make(VOLUME_ID_VOLUME, "c", 1, NULL,
	                                "a010aab6963211eaa13cfea68445fd19", &id),
	                 -EINVAL);
	assert_int_equal(volume_id_make(VOLUME_ID_VOLUME, "c", 1, NULL, NULL, &id), -EINVAL);
	assert_int_equal(volume_id_make((enum volume_id_kind)'x', "c", 1, NULL, UUID1, &id),
	                 -EINVAL);

	/* A hand-filled struct is validated too. */
	assert_int_equal(volume_id_make(VOLUME_ID_VOLUME, "c", 1, NULL, UUID1, &id), 0);
	id.uuid[0] = 'G';
	assert_int_equal(volume_id_encode(&id, buf), -EINVAL);
	assert_int_equal(volume_id_make(VOLUME_ID_VOLUME, "c", 1, NULL, UUID1, &id), 0);
	memset(id.cluster_id, 'c', sizeof(id.cluster_id)); /* not NUL-terminated */
	assert_int_equal(volume_id_encode(&id, buf), -EINVAL);
}

static void test_volume_id__decode_rejects_malformed(void **state)
{
	static const char *const bad[] = {
		"",
		"0001",
		/* ceph-csi's own format is not ours */
		"0001-0009-rook-ceph-0000000000000002-" UUID1,
		/* other version */
		"0002-v-09-rook-ceph-0000000000000002-00--" UUID1,
		/* unknown kind, uppercase kind */
		"0001-x-09-rook-ceph-0000000000000002-00--" UUID1,
		"0001-V-09-rook-ceph-0000000000000002-00--" UUID1,
		/* clusterID length does not match */
		"0001-v-08-rook-ceph-0000000000000002-00--" UUID1,
		"0001-v-0a-rook-ceph-0000000000000002-00--" UUID1,
		/* uppercase hex in lengths, pool, uuid */
		"0001-v-0A-rook-cephx-0000000000000002-00--" UUID1,
		"0001-v-09-rook-ceph-000000000000000A-00--" UUID1,
		"0001-v-09-rook-ceph-0000000000000002-00--A010aab6-9632-11ea-a13c-fea68445fd19",
		/* pool id >= 2^63 */
		"0001-v-09-rook-ceph-8000000000000000-00--" UUID1,
		/* pool too short / too long */
		"0001-v-09-rook-ceph-000000000000002-00--" UUID1,
		"0001-v-09-rook-ceph-00000000000000002-00--" UUID1,
		/* namespace length mismatch, bad namespace characters */
		"0001-v-09-rook-ceph-0000000000000002-01--" UUID1,
		"0001-v-09-rook-ceph-0000000000000002-02-a-" UUID1,
		"0001-v-09-rook-ceph-0000000000000002-01-/-" UUID1,
		/* empty clusterID, bad clusterID characters */
		"0001-v-00--0000000000000002-00--" UUID1,
		"0001-v-09-rook/ceph-0000000000000002-00--" UUID1,
		/* missing or extra separators, trailing bytes, short uuid */
		"0001v-09-rook-ceph-0000000000000002-00--" UUID1,
		"0001-v-09-rook-ceph-0000000000000002-00-" UUID1,
		"0001-v-09-rook-ceph-0000000000000002-00--" UUID1 "x",
		"0001-v-09-rook-ceph-0000000000000002-00--" UUID1 " ",
		"0001-v-09-rook-ceph-0000000000000002-00--a010aab6-9632-11ea-a13c-fea68445fd1",
		"0001-v-09-rook-ceph-0000000000000002-00--a010aab6_9632-11ea-a13c-fea68445fd19",
		" 0001-v-09-rook-ceph-0000000000000002-00--" UUID1,
		/* more than 128 bytes */
		"0001-v-24-cccccccccccccccccccccccccccccccccccc-0000000000000002-19-"
		"nnnnnnnnnnnnnnnnnnnnnnnnn-" UUID1,
	};
	struct volume_id id;

	assert_int_equal(volume_id_decode(NULL, &id), -EINVAL);
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		if (volume_id_decode(bad[i], &id) != -EINVAL)
			fail_msg("accepted malformed id #%zu: '%s'", i, bad[i]);
	}
}

/* Every single-byte change of a valid id is either rejected or is itself canonical. */
static void test_volume_id__decode_is_strict_under_mutation(void **state)
{
	static const char alphabet[] = "0123456789abcdefABCDEF-._/vsx \x01\xff";
	const char *valid = "0001-s-04-prod-000000000000001f-05-team1-" UUID1;
	char buf[VOLUME_ID_MAX + 2], again[VOLUME_ID_MAX + 1];
	size_t len = strlen(valid);
	unsigned accepted = 0;

	for (size_t pos = 0; pos < len; pos++)
		for (size_t a = 0; a < sizeof(alphabet) - 1; a++) {
			struct volume_id id;

			memcpy(buf, valid, len + 1);
			buf[pos] = alphabet[a];
			if (volume_id_decode(buf, &id) < 0)
				continue;
			accepted++;
			assert_true(volume_id_encode(&id, again) > 0);
			assert_string_equal(again, buf);
		}
	/* Hex digits of the pool id and uuid, and name characters, can change validly. */
	assert_true(accepted > 0);
}

static void test_volume_id__validators(void **state)
{
	assert_true(volume_id_uuid_valid(UUID1));
	assert_false(volume_id_uuid_valid("a010aab6-9632-11ea-a13c-fea68445fd1"));
	assert_false(volume_id_uuid_valid("a010aab6-9632-11ea-a13c-fea68445fd190"));
	assert_false(volume_id_uuid_valid(NULL));
	assert_true(volume_id_cluster_id_valid("rook-ceph"));
	assert_true(volume_id_cluster_id_valid("A.b_c-9"));
	assert_false(volume_id_cluster_id_valid(""));
	assert_false(volume_id_cluster_id_valid("a:b"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_volume_id__round_trip_examples),
		cmocka_unit_test(test_volume_id__kind_is_distinguishable),
		cmocka_unit_test(test_volume_id__length_limit),
		cmocka_unit_test(test_volume_id__encode_rejects_bad_fields),
		cmocka_unit_test(test_volume_id__decode_rejects_malformed),
		cmocka_unit_test(test_volume_id__decode_is_strict_under_mutation),
		cmocka_unit_test(test_volume_id__validators),
	};

	return cmocka_run_group_tests_name("volume_id", tests, NULL, NULL);
}
