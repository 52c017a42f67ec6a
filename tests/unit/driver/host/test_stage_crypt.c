/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Tests of driver/host/stage_crypt.c (the LUKS2 steps of a stage) on a loop device (root). The
 * format, the token and the key checks need no device-mapper and run everywhere; where dm-crypt
 * is missing (this host) the open fails after them and the tests check the rollback; in the
 * check-kernel guest (tests/kernel/guest-run.sh runs this binary) the open succeeds too.
 */
#include "unit/driver/host/host_test.h"
#include "driver/host/blockdev.h"
#include "driver/host/crypt.h"
#include "driver/host/kms.h"
#include "driver/host/loop.h"
#include "driver/host/stage.h"
#include "driver/host/stage_crypt.h"

#define MiB (1024ULL * 1024ULL)

static bool have_dm(void)
{
	_cleanup_free_ char *misc = NULL;

	return fileio_read_full("/proc/misc", 1 << 16, &misc, NULL) == 0 &&
	       strstr(misc, "device-mapper") != NULL;
}

static struct kms *kms_for(const char *pass)
{
	struct kms *k = NULL;

	assert_int_equal(kms_metadata_new(pass, strlen(pass), &k), 0);
	k->iterations = 1000;
	return k;
}

struct fixture {
	char file[PATH_MAX];
	char state[PATH_MAX];
	char *loop;
	struct stage_info *info;
};

static void fixture_init(void **state, struct fixture *f, const char *tag)
{
	REQUIRE_ROOT();
	memset(f, 0, sizeof(*f));
	ht_sparse_file(state, tag, 32 * MiB, f->file, sizeof(f->file));
	snprintf(f->state, sizeof(f->state), "%s/%s.json", ht_dir(state), tag);
	assert_int_equal(loop_attach(f->file, false, &f->loop), 0);
}

/* A stage_info as stage.c has it right after the map. */
static struct stage_info *fresh_info(const struct fixture *f)
{
	struct stage_info *info = calloc(1, sizeof(*info));

	assert_non_null(info);
	info->volume_id = strdup("0001-0004-test-0000000000000001-crypt");
	info->phase = strdup("mapped");
	info->device = strdup(f->loop);
	info->pool = strdup("pool");
	info->image = strdup("image");
	info->mapper = MAPPER_KRBD;
	assert_int_equal(
	        mapper_state_new(MAPPER_KRBD, "/tmp", info->volume_id, &info->mapper_state), 0);
	assert_int_equal(stage_crypt_name(info->volume_id, &info->crypt_name), 0);
	return info;
}

static void fixture_done(struct fixture *f)
{
	if (f->info)
		(void)stage_crypt_close(f->info, false, NULL);
	f->info = stage_info_free(f->info);
	(void)loop_detach(f->loop);
	free(f->loop);
}

static void test_stage_crypt__name_is_derived_and_valid(void **state)
{
	_cleanup_free_ char *a = NULL, *b = NULL, *c = NULL;

	assert_int_equal(stage_crypt_name("vol-1", &a), 0);
	assert_int_equal(stage_crypt_name("vol-1", &b), 0);
	assert_int_equal(stage_crypt_name("vol-2", &c), 0);
	assert_string_equal(a, b);
	assert_string_not_equal(a, c);
	assert_int_equal(strlen(a), strlen("rbdcsi-") + 32);
	assert_int_equal(strncmp(a, "rbdcsi-", 7), 0);
	assert_int_equal(stage_crypt_name("", &c), -EINVAL);
	(void)state;
}

/* Blank: formatted with a token, opened (dm) or, without dm, the open fails after the format
 * and the rollback's close erases the partial format: the device is blank again. */
static void test_stage_crypt__blank_is_formatted_then_opened_or_rolled_back(void **state)
{
	_cleanup_(kms_freep) struct kms *k = kms_for("pass-one");
	_cleanup_free_ char *reason = NULL, *types = NULL, *token = NULL, *text = NULL;
	struct stage_crypt c = { .kms = k };
	struct fixture f;
	int r;

	fixture_init(state, &f, "blank");
	f.info = fresh_info(&f);
	r = stage_crypt_open(f.info, &c, f.state, stage_state_save, &reason);
	/* The header was written, with the wrapped key in our token and no key in clear. */
	assert_int_equal(luks_is_luks(f.loop), 1);
	assert_int_equal(luks_token_get(f.loop, "rbdcsi-dek", &token), 0);
	assert_non_null(strstr(token, "\"kms\":\"metadata\""));
	assert_null(strstr(token, "pass-one"));
	if (have_dm()) {
		assert_int_equal(r, 0);
		assert_false(f.info->luks_pending);
		assert_string_equal(f.info->mapped_device, f.loop);
		assert_non_null(strstr(f.info->device, "/dev/mapper/rbdcsi-"));
		/* The state records the mapping, never a key. */
		assert_int_equal(fileio_read_full(f.state, 1 << 16, &text, NULL), 0);
		assert_non_null(strstr(text, f.info->crypt_name));
		assert_null(strstr(text, "pass-one"));
		assert_int_equal(stage_crypt_resize(f.info, &reason), 0);
		assert_int_equal(stage_crypt_close(f.info, true, &reason), 0);
		assert_int_equal(luks_active(f.info->crypt_name), 0);
		/* Not pending: the close erased nothing. */
		assert_int_equal(luks_is_luks(f.loop), 1);
	} else {
		print_message("no device-mapper here: the open fails (%d: %s), the rollback is "
		              "checked\n",
		              r, strempty(reason));
		assert_true(r < 0);
		assert_true(f.info->luks_pending);
		assert_int_equal(fileio_read_full(f.state, 1 << 16, &text, NULL), 0);
		assert_non_null(strstr(text, "\"luks_pending\":true"));
		assert_int_equal(stage_crypt_close(f.info, true, &reason), 0);
		assert_int_equal(blockdev_probe(f.loop, &types), 0);
		assert_true(blockdev_types_blank(types));
	}
	fixture_done(&f);
}

/* A header whose token another passphrase wrapped: -EKEYREJECTED, nothing opened or changed;
 * the right one gets past the key (and opens where dm-crypt exists). */
static void test_stage_crypt__wrong_passphrase_is_refused_cleanly(void **state)
{
	_cleanup_(kms_freep) struct kms *right = kms_for("pass-one");
	_cleanup_(kms_freep) struct kms *wrong = kms_for("pass-two");
	_cleanup_free_ char *reason = NULL;
	struct stage_crypt c = { .kms = right }, w = { .kms = wrong };
	struct fixture f;
	int r;

	fixture_init(state, &f, "wrongkey");
	f.info = fresh_info(&f);
	(void)stage_crypt_open(f.info, &c, f.state, stage_state_save, &reason);
	assert_int_equal(luks_is_luks(f.loop), 1);
	(void)stage_crypt_close(f.info, false, NULL);
	f.info = stage_info_free(f.info);

	f.info = fresh_info(&f);
	free(reason);
	reason = NULL;
	assert_int_equal(stage_crypt_open(f.info, &w, f.state, stage_state_save, &reason),
	                 -EKEYREJECTED);
	assert_non_null(strstr(reason, "encryptionPassphrase does not unwrap"));
	assert_null(strstr(reason, "pass-"));
	assert_int_equal(luks_active(f.info->crypt_name), 0);
	assert_string_equal(f.info->device, f.loop); /* nothing swapped */
	assert_null(f.info->mapped_device);
	assert_false(f.info->luks_pending);
	assert_int_equal(luks_is_luks(f.loop), 1); /* the header is intact */

	free(reason);
	reason = NULL;
	r = stage_crypt_open(f.info, &c, f.state, stage_state_save, &reason);
	if (have_dm())
		assert_int_equal(r, 0);
	else
		assert_true(r < 0 && r != -EKEYREJECTED && r != -EMEDIUMTYPE);
	fixture_done(&f);
}

/* Any other signature, or LUKS that rbdcsi did not make: refused, never formatted over. */
static void test_stage_crypt__foreign_signatures_are_refused(void **state)
{
	_cleanup_(kms_freep) struct kms *k = kms_for("pass-one");
	_cleanup_free_ char *reason = NULL, *types = NULL;
	static const struct luks_options fast = { .fast_pbkdf = true };
	struct stage_crypt c = { .kms = k };
	struct fixture f;

	fixture_init(state, &f, "foreign");
	assert_int_equal(ht_run("mkfs.ext4", "-q", "-F", f.loop, NULL), 0);
	f.info = fresh_info(&f);
	assert_int_equal(stage_crypt_open(f.info, &c, f.state, stage_state_save, &reason),
	                 -EMEDIUMTYPE);
	assert_non_null(strstr(reason, "carries 'ext4'"));
	assert_int_equal(blockdev_probe(f.loop, &types), 0);
	assert_string_equal(types, "ext4");

	/* LUKS2 made by someone else (no rbdcsi token). */
	assert_int_equal(ht_run("wipefs", "-q", "-a", f.loop, NULL), 0);
	assert_int_equal(luks_format(f.loop, "other-key", 9, &fast), 0);
	free(reason);
	reason = NULL;
	assert_int_equal(stage_crypt_open(f.info, &c, f.state, stage_state_save, &reason),
	                 -EMEDIUMTYPE);
	assert_non_null(strstr(reason, "without rbdcsi's key token"));
	assert_int_equal(luks_check_key(f.loop, "other-key", 9), 0); /* untouched */

	/* Read-only and blank: nothing to open, nothing written. */
	assert_int_equal(ht_run("wipefs", "-q", "-a", f.loop, NULL), 0);
	f.info->read_only = true;
	free(reason);
	reason = NULL;
	assert_int_equal(stage_crypt_open(f.info, &c, f.state, stage_state_save, &reason), -EROFS);
	assert_int_equal(luks_is_luks(f.loop), 0);
	fixture_done(&f);
}

/* Our own interrupted format (luks_pending recorded): formatted again, not refused. */
static void test_stage_crypt__interrupted_format_is_redone(void **state)
{
	_cleanup_(kms_freep) struct kms *k = kms_for("pass-one");
	_cleanup_free_ char *reason = NULL, *token = NULL;
	static const struct luks_options fast = { .fast_pbkdf = true };
	struct stage_crypt c = { .kms = k };
	struct fixture f;
	int r;

	fixture_init(state, &f, "pending");
	/* What a kill between crypt_format() and the token leaves: a header, no token. */
	assert_int_equal(luks_format(f.loop, "half-done", 9, &fast), 0);
	f.info = fresh_info(&f);
	f.info->luks_pending = true;
	r = stage_crypt_open(f.info, &c, f.state, stage_state_save, &reason);
	assert_true(r == 0 || !have_dm());
	assert_int_equal(luks_token_get(f.loop, "rbdcsi-dek", &token), 0);
	assert_int_equal(luks_check_key(f.loop, "half-done", 9), -EPERM);
	fixture_done(&f);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_stage_crypt__name_is_derived_and_valid),
		HOST_TEST(test_stage_crypt__blank_is_formatted_then_opened_or_rolled_back),
		HOST_TEST(test_stage_crypt__wrong_passphrase_is_refused_cleanly),
		HOST_TEST(test_stage_crypt__foreign_signatures_are_refused),
		HOST_TEST(test_stage_crypt__interrupted_format_is_redone),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
