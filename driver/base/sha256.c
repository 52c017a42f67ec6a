/* SPDX-License-Identifier: Apache-2.0 */
#include <openssl/sha.h>

#include "driver/base/sha256.h"

void sha256_digest(const void *data, size_t size, uint8_t ret_digest[SHA256_DIGEST_SIZE])
{
	SHA256(data, size, ret_digest);
}

void sha256_hex(const void *data, size_t size, char ret_hex[SHA256_HEX_SIZE])
{
	static const char hex[] = "0123456789abcdef";
	uint8_t d[SHA256_DIGEST_SIZE];

	sha256_digest(data, size, d);
	for (size_t i = 0; i < SHA256_DIGEST_SIZE; i++) {
		ret_hex[2 * i] = hex[d[i] >> 4];
		ret_hex[2 * i + 1] = hex[d[i] & 0xf];
	}
	ret_hex[2 * SHA256_DIGEST_SIZE] = 0;
}
