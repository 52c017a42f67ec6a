/* SPDX-License-Identifier: Apache-2.0 */
/* Tests of driver/host/sha256.c against FIPS 180-4 / NIST test vectors. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "driver/base/sha256.h"

static void expect(const void *data, size_t size, const char *hex)
{
	char out[SHA256_HEX_SIZE];

	sha256_hex(data, size, out);
	assert_string_equal(out, hex);
}

static void test_sha256__nist_vectors(void **state)
{
	static char million[1000000];

	expect("", 0, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
	expect("abc", 3, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
	expect("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq", 56,
	       "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
	memset(million, 'a', sizeof(million));
	expect(million, sizeof(million),
	       "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
}

static void test_sha256__block_boundaries(void **state)
{
	/* 55, 56 and 64 bytes: the padding fits, just does not, and a full block. */
	char a[64];

	memset(a, 'a', sizeof(a));
	expect(a, 55, "9f4390f8d30c2dd92ec9f095b65e2b9ae9b0a925a5258e241c9f1e910f734318");
	expect(a, 56, "b35439a4ac6f0948b6d6f9e3c6af0f5f590ce20f1bde7090ef7970686ec6738a");
	expect(a, 64, "ffe054fe7ae0cb6dc65c3af9b61d5209f439851db43d0ba5997337df154668eb");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_sha256__nist_vectors),
		cmocka_unit_test(test_sha256__block_boundaries),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
