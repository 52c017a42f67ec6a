/* SPDX-License-Identifier: Apache-2.0 */
/* Tests of driver/host/kms.c: the metadata KMS's wrap/unwrap of a volume's data key. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "driver/host/kms.h"

static const char pass[] = "correct horse battery staple";

static struct kms *new_kms(const char *p)
{
	struct kms *k = NULL;

	assert_int_equal(kms_metadata_new(p, strlen(p), &k), 0);
	k->iterations = 1000; /* the minimum unwrap accepts: keeps the test quick */
	return k;
}

static void test_kms__wrap_unwrap_round_trip(void **state)
{
	_cleanup_(kms_freep) struct kms *k = new_kms(pass);
	_cleanup_(kms_secret_freep) struct kms_secret *dek = NULL, *back = NULL, *dek2 = NULL;
	_cleanup_free_ char *blob = NULL, *blob2 = NULL;

	assert_int_equal(kms_dek_generate(&dek), 0);
	assert_int_equal(dek->len, KMS_DEK_LEN);
	assert_int_equal(kms_dek_generate(&dek2), 0);
	assert_memory_not_equal(dek->data, dek2->data, KMS_DEK_LEN);
	assert_int_equal(kms_wrap(k, dek, &blob), 0);
	assert_true(strlen(blob) <= KMS_BLOB_MAX);
	/* The blob is printable (it goes into a LUKS2 token's JSON) and holds no key in clear. */
	for (const char *c = blob; *c; c++)
		assert_true((*c >= 'A' && *c <= 'Z') || (*c >= 'a' && *c <= 'z') ||
		            (*c >= '0' && *c <= '9') || *c == '+' || *c == '/' || *c == '=');
	assert_null(memmem(blob, strlen(blob), pass, strlen(pass)));
	assert_int_equal(kms_unwrap(k, blob, &back), 0);
	assert_int_equal(back->len, KMS_DEK_LEN);
	assert_memory_equal(back->data, dek->data, KMS_DEK_LEN);
	/* Same DEK wrapped twice: a fresh salt and nonce each time. */
	assert_int_equal(kms_wrap(k, dek, &blob2), 0);
	assert_string_not_equal(blob, blob2);
	(void)state;
}

static void test_kms__wrong_passphrase_is_rejected(void **state)
{
	_cleanup_(kms_freep) struct kms *k = new_kms(pass);
	_cleanup_(kms_freep) struct kms *other = new_kms("correct horse battery stapleX");
	_cleanup_(kms_secret_freep) struct kms_secret *dek = NULL, *back = NULL;
	_cleanup_free_ char *blob = NULL;

	assert_int_equal(kms_dek_generate(&dek), 0);
	assert_int_equal(kms_wrap(k, dek, &blob), 0);
	assert_int_equal(kms_unwrap(other, blob, &back), -EKEYREJECTED);
	assert_null(back);
	(void)state;
}

static void test_kms__tampered_blob_is_rejected(void **state)
{
	_cleanup_(kms_freep) struct kms *k = new_kms(pass);
	_cleanup_(kms_secret_freep) struct kms_secret *dek = NULL, *back = NULL;
	_cleanup_free_ char *blob = NULL;
	size_t n;

	assert_int_equal(kms_dek_generate(&dek), 0);
	assert_int_equal(kms_wrap(k, dek, &blob), 0);
	n = strlen(blob);
	/* Every position of the sealed part (after magic, rounds, salt and nonce) flipped. */
	for (size_t i = 60; i + 2 < n; i += 7) {
		char saved = blob[i];

		blob[i] = saved == 'A' ? 'B' : 'A';
		assert_int_equal(kms_unwrap(k, blob, &back), -EKEYREJECTED);
		assert_null(back);
		blob[i] = saved;
	}
	/* The salt changed: another KEK, rejected too. */
	blob[30] = blob[30] == 'A' ? 'B' : 'A';
	assert_int_equal(kms_unwrap(k, blob, &back), -EKEYREJECTED);
	/* Not a blob at all, truncated, or the magic changed: -EINVAL. */
	assert_int_equal(kms_unwrap(k, "", &back), -EINVAL);
	assert_int_equal(kms_unwrap(k, "bm90IGEgYmxvYg==", &back), -EINVAL);
	blob[n - 4] = '\0';
	assert_int_equal(kms_unwrap(k, blob, &back), -EINVAL);
	free(blob);
	blob = NULL;
	assert_int_equal(kms_wrap(k, dek, &blob), 0);
	blob[0] = blob[0] == 'c' ? 'd' : 'c'; /* "rbd..." base64 starts with 'c' */
	assert_int_equal(kms_unwrap(k, blob, &back), -EINVAL);
	assert_null(back);
	(void)state;
}

static void test_kms__bad_arguments_and_ids(void **state)
{
	struct kms *k = NULL;

	assert_int_equal(kms_metadata_new("", 0, &k), -EINVAL);
	assert_null(k);
	assert_int_equal(kms_metadata_new(pass, KMS_PASSPHRASE_MAX + 1, &k), -EINVAL);
	assert_true(kms_id_known(NULL));
	assert_true(kms_id_known(""));
	assert_true(kms_id_known("metadata"));
	assert_false(kms_id_known("vault"));
	assert_false(kms_id_known("Metadata"));
	assert_null(kms_free(NULL));
	assert_null(kms_secret_free(NULL));
	(void)state;
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_kms__wrap_unwrap_round_trip),
		cmocka_unit_test(test_kms__wrong_passphrase_is_rejected),
		cmocka_unit_test(test_kms__tampered_blob_is_rejected),
		cmocka_unit_test(test_kms__bad_arguments_and_ids),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
