/* SPDX-License-Identifier: Apache-2.0 */
#include <errno.h>
#include <openssl/evp.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/random.h>

#include "driver/base/log.h"
#include "driver/base/macro.h"
#include "driver/host/kms.h"

#define MAGIC     "rbdcsi-dek-v1"
#define MAGIC_LEN (sizeof(MAGIC) - 1)
#define SALT_LEN  16U
#define NONCE_LEN 12U
#define TAG_LEN   16U
#define KEK_LEN   32U
#define ITER_MIN  1000U
#define ITER_MAX  10000000U
#define RAW_LEN   (MAGIC_LEN + 4U + SALT_LEN + NONCE_LEN + KMS_DEK_LEN + TAG_LEN)
#define BLOB_LEN  (4U * ((RAW_LEN + 2U) / 3U))

int kms_secret_new(const void *data, size_t len, struct kms_secret **ret)
{
	struct kms_secret *s;

	if (len == 0)
		return -EINVAL;
	s = calloc(1, sizeof(*s));
	if (!s)
		return -ENOMEM;
	s->data = calloc(1, len);
	if (!s->data) {
		free(s);
		return -ENOMEM;
	}
	s->len = len;
	/* Best effort: without CAP_IPC_LOCK the RLIMIT_MEMLOCK may be tiny. */
	(void)mlock(s->data, len);
	if (data)
		memcpy(s->data, data, len);
	*ret = s;
	return 0;
}

struct kms_secret *kms_secret_free(struct kms_secret *s)
{
	if (!s)
		return NULL;
	if (s->data) {
		explicit_bzero(s->data, s->len);
		(void)munlock(s->data, s->len);
		free(s->data);
	}
	free(s);
	return NULL;
}

static int random_bytes(void *buf, size_t n)
{
	unsigned char *p = buf;

	while (n > 0) {
		ssize_t k = getrandom(p, n, 0);

		if (k < 0 && errno == EINTR)
			continue;
		if (k <= 0)
			return -EIO;
		p += k;
		n -= (size_t)k;
	}
	return 0;
}

int kms_dek_generate(struct kms_secret **ret)
{
	_cleanup_(kms_secret_freep) struct kms_secret *s = NULL;
	int r;

	r = kms_secret_new(NULL, KMS_DEK_LEN, &s);
	if (r < 0)
		return r;
	r = random_bytes(s->data, s->len);
	if (r < 0)
		return r;
	*ret = TAKE_PTR(s);
	return 0;
}

/* KEK = PBKDF2-HMAC-SHA256(passphrase, salt, iterations). */
static int derive_kek(const struct kms *k, const unsigned char *salt, unsigned iterations,
                      struct kms_secret **ret)
{
	_cleanup_(kms_secret_freep) struct kms_secret *kek = NULL;
	int r;

	r = kms_secret_new(NULL, KEK_LEN, &kek);
	if (r < 0)
		return r;
	if (PKCS5_PBKDF2_HMAC((const char *)k->passphrase->data, (int)k->passphrase->len, salt,
	                      SALT_LEN, (int)iterations, EVP_sha256(), KEK_LEN, kek->data) != 1)
		return -EIO;
	*ret = TAKE_PTR(kek);
	return 0;
}

static void ctx_freep(EVP_CIPHER_CTX **c)
{
	EVP_CIPHER_CTX_free(*c);
}

/* AES-256-GCM of in (len bytes) into out; encrypt: tag written, else checked. */
static int gcm(bool encrypt, const struct kms_secret *kek, const unsigned char *nonce,
               const unsigned char *in, size_t len, unsigned char *out, unsigned char *tag)
{
	__attribute__((cleanup(ctx_freep))) EVP_CIPHER_CTX *c = EVP_CIPHER_CTX_new();
	int n = 0, fin = 0;

	if (!c)
		return -ENOMEM;
	if (EVP_CipherInit_ex(c, EVP_aes_256_gcm(), NULL, NULL, NULL, encrypt) != 1 ||
	    EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_GCM_SET_IVLEN, NONCE_LEN, NULL) != 1 ||
	    EVP_CipherInit_ex(c, NULL, NULL, kek->data, nonce, encrypt) != 1)
		return -EIO;
	/* The magic (the blob's version) is authenticated too. */
	if (EVP_CipherUpdate(c, NULL, &n, (const unsigned char *)MAGIC, MAGIC_LEN) != 1)
		return -EIO;
	if (EVP_CipherUpdate(c, out, &n, in, (int)len) != 1 || (size_t)n != len)
		return -EIO;
	if (!encrypt && EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_GCM_SET_TAG, TAG_LEN, tag) != 1)
		return -EIO;
	if (EVP_CipherFinal_ex(c, out + n, &fin) != 1)
		return encrypt ? -EIO : -EKEYREJECTED;
	if (encrypt && EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_GCM_GET_TAG, TAG_LEN, tag) != 1)
		return -EIO;
	return 0;
}

static int metadata_wrap(struct kms *k, const struct kms_secret *dek, char **ret_blob)
{
	_cleanup_(kms_secret_freep) struct kms_secret *kek = NULL;
	unsigned char raw[RAW_LEN], *p = raw;
	char *blob;
	uint32_t it = k->iterations;
	int r;

	if (dek->len != KMS_DEK_LEN)
		return -EINVAL;
	memcpy(p, MAGIC, MAGIC_LEN);
	p += MAGIC_LEN;
	for (int i = 3; i >= 0; i--)
		*p++ = (unsigned char)(it >> (8 * i));
	r = random_bytes(p, SALT_LEN + NONCE_LEN);
	if (r < 0)
		return r;
	r = derive_kek(k, p, it, &kek);
	if (r < 0)
		return r;
	r = gcm(true, kek, p + SALT_LEN, dek->data, dek->len, p + SALT_LEN + NONCE_LEN,
	        p + SALT_LEN + NONCE_LEN + KMS_DEK_LEN);
	if (r < 0)
		return r;
	blob = malloc(BLOB_LEN + 1);
	if (!blob)
		return -ENOMEM;
	if (EVP_EncodeBlock((unsigned char *)blob, raw, RAW_LEN) != (int)BLOB_LEN) {
		free(blob);
		return -EIO;
	}
	*ret_blob = blob;
	return 0;
}

static int metadata_unwrap(struct kms *k, const char *blob, struct kms_secret **ret_dek)
{
	_cleanup_(kms_secret_freep) struct kms_secret *kek = NULL, *dek = NULL;
	unsigned char raw[BLOB_LEN], *p;
	uint32_t it = 0;
	int r, n;

	if (strlen(blob) != BLOB_LEN)
		return -EINVAL;
	n = EVP_DecodeBlock(raw, (const unsigned char *)blob, BLOB_LEN);
	/* EVP_DecodeBlock counts the padding as bytes: RAW_LEN rounded up to a multiple of 3. */
	if (n < (int)RAW_LEN || memcmp(raw, MAGIC, MAGIC_LEN) != 0)
		return -EINVAL;
	p = raw + MAGIC_LEN;
	for (int i = 0; i < 4; i++)
		it = (it << 8) | *p++;
	if (it < ITER_MIN || it > ITER_MAX)
		return -EINVAL;
	r = derive_kek(k, p, it, &kek);
	if (r < 0)
		return r;
	r = kms_secret_new(NULL, KMS_DEK_LEN, &dek);
	if (r < 0)
		return r;
	r = gcm(false, kek, p + SALT_LEN, p + SALT_LEN + NONCE_LEN, KMS_DEK_LEN, dek->data,
	        p + SALT_LEN + NONCE_LEN + KMS_DEK_LEN);
	if (r < 0)
		return r;
	*ret_dek = TAKE_PTR(dek);
	return 0;
}

static const struct kms_ops metadata_ops = {
	.type = KMS_TYPE_METADATA,
	.wrap = metadata_wrap,
	.unwrap = metadata_unwrap,
	.done = NULL,
};

int kms_metadata_new(const void *passphrase, size_t len, struct kms **ret)
{
	_cleanup_(kms_freep) struct kms *k = NULL;
	int r;

	if (!passphrase || len == 0 || len > KMS_PASSPHRASE_MAX)
		return -EINVAL;
	k = calloc(1, sizeof(*k));
	if (!k)
		return -ENOMEM;
	k->ops = &metadata_ops;
	k->iterations = KMS_METADATA_ITERATIONS;
	r = kms_secret_new(passphrase, len, &k->passphrase);
	if (r < 0)
		return r;
	*ret = TAKE_PTR(k);
	return 0;
}

struct kms *kms_free(struct kms *k)
{
	if (!k)
		return NULL;
	if (k->ops && k->ops->done)
		k->ops->done(k);
	k->passphrase = kms_secret_free(k->passphrase);
	free(k);
	return NULL;
}

int kms_wrap(struct kms *k, const struct kms_secret *dek, char **ret_blob)
{
	if (!k || !k->ops || !dek || !ret_blob)
		return -EINVAL;
	return k->ops->wrap(k, dek, ret_blob);
}

int kms_unwrap(struct kms *k, const char *blob, struct kms_secret **ret_dek)
{
	if (!k || !k->ops || !blob || !ret_dek || strlen(blob) > KMS_BLOB_MAX)
		return -EINVAL;
	return k->ops->unwrap(k, blob, ret_dek);
}

int kms_id_known(const char *id)
{
	return isempty(id) || strcmp(id, KMS_TYPE_METADATA) == 0;
}
