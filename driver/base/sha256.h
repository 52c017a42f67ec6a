/* SPDX-License-Identifier: Apache-2.0 */
/*
 * SHA-256 through OpenSSL's libcrypto (already in the process through gRPC), only to derive
 * fixed-length file names from volume ids. Not for anything secret.
 */
#pragma once

#include <stddef.h>
#include <stdint.h>

#define SHA256_DIGEST_SIZE 32
#define SHA256_HEX_SIZE    (2 * SHA256_DIGEST_SIZE + 1)

void sha256_digest(const void *data, size_t size, uint8_t ret_digest[SHA256_DIGEST_SIZE]);

/* Lower-case hex digest, NUL-terminated, into ret_hex[SHA256_HEX_SIZE]. */
void sha256_hex(const void *data, size_t size, char ret_hex[SHA256_HEX_SIZE]);
