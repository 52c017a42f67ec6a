/* SPDX-License-Identifier: Apache-2.0 */
/* Unit tests for the pure parts of driver/ceph/group_snapshot.c (no Ceph needed). */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "driver/ceph/group_snapshot.h"
#include "driver/ceph/volume_id.h"

#define UUID1 "a010aab6-9632-11ea-a13c-fea68445fd19"

static void test_group_snapshot__member_names_name_their_group(void **state)
{
	char gid[VOLUME_ID_MAX + 1], member[2 * VOLUME_ID_MAX], back[VOLUME_ID_MAX + 1];
	struct volume_id id, decoded;

	(void)state;
	assert_int_equal(
	        volume_id_make(VOLUME_ID_GROUP_SNAPSHOT, "rook-ceph", 2, "ns-1", UUID1, &id), 0);
	assert_true(volume_id_encode(&id, gid) > 0);
	snprintf(member, sizeof(member), GROUP_SNAPSHOT_MEMBER_PREFIX "%s:%d", gid, 7);
	assert_int_equal(group_snapshot_member_of(member, back), 1);
	assert_string_equal(back, gid);
	assert_int_equal(volume_id_decode_kind(back, VOLUME_ID_GROUP_SNAPSHOT, &decoded), 0);
	assert_int_equal(decoded.pool_id, 2);

	/* Ordinary snapshot names are no members. */
	assert_int_equal(group_snapshot_member_of("snapshot-1234", back), 0);
	assert_int_equal(group_snapshot_member_of(NULL, back), 0);
	assert_int_equal(group_snapshot_member_of(GROUP_SNAPSHOT_MEMBER_PREFIX, back), 0);
	assert_int_equal(group_snapshot_member_of(GROUP_SNAPSHOT_MEMBER_PREFIX ":3", back), 0);
}

static void test_group_snapshot__id_kind_is_its_own(void **state)
{
	char gid[VOLUME_ID_MAX + 1];
	struct volume_id id, back;

	(void)state;
	assert_int_equal(volume_id_make(VOLUME_ID_GROUP_SNAPSHOT, "c", 1, NULL, UUID1, &id), 0);
	assert_true(volume_id_encode(&id, gid) > 0);
	assert_non_null(strstr(gid, "-g-"));
	assert_int_equal(volume_id_decode_kind(gid, VOLUME_ID_GROUP_SNAPSHOT, &back), 0);
	/* A group snapshot id is neither a volume nor a snapshot id, and vice versa. */
	assert_int_equal(volume_id_decode_kind(gid, VOLUME_ID_VOLUME, &back), -EINVAL);
	assert_int_equal(volume_id_decode_kind(gid, VOLUME_ID_SNAPSHOT, &back), -EINVAL);
	id.kind = VOLUME_ID_SNAPSHOT;
	assert_true(volume_id_encode(&id, gid) > 0);
	assert_int_equal(volume_id_decode_kind(gid, VOLUME_ID_GROUP_SNAPSHOT, &back), -EINVAL);
}

static void test_group_snapshot__create_rejects_bad_requests(void **state)
{
	struct group_snapshot_request req = { .name = "g" };
	struct group_snapshot *g = NULL;
	struct volume_id v;

	(void)state;
	/* Refused before any cluster call: the cluster may be NULL. */
	assert_int_equal(group_snapshot_create(NULL, NULL, &g), -EINVAL);
	assert_int_equal(group_snapshot_create(NULL, &req, &g), -EINVAL); /* no sources */
	assert_int_equal(volume_id_make(VOLUME_ID_VOLUME, "c", 1, NULL, UUID1, &v), 0);
	req.sources = &v;
	req.n_sources = 1;
	req.name = "";
	assert_int_equal(group_snapshot_create(NULL, &req, &g), -EINVAL);
	req.name = GROUP_SNAPSHOT_MEMBER_PREFIX "x";
	assert_int_equal(group_snapshot_create(NULL, &req, &g), -EINVAL);
	req.name = "g";
	req.n_sources = GROUP_SNAPSHOT_MEMBERS_MAX + 1;
	assert_int_equal(group_snapshot_create(NULL, &req, &g), -EINVAL);
	v.kind = VOLUME_ID_SNAPSHOT;
	req.n_sources = 1;
	assert_int_equal(group_snapshot_create(NULL, &req, &g), -EINVAL);
	assert_null(g);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_group_snapshot__member_names_name_their_group),
		cmocka_unit_test(test_group_snapshot__id_kind_is_its_own),
		cmocka_unit_test(test_group_snapshot__create_rejects_bad_requests),
	};

	return cmocka_run_group_tests_name("group_snapshot", tests, NULL, NULL);
}
