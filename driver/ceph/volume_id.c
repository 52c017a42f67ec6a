/* SPDX-License-Identifier: Apache-2.0 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "driver/base/macro.h"
#include "driver/ceph/volume_id.h"

/* "0001-v-" + "LL-" + "-" after clusterID + 16 + "-" + "NN-" + "-" after namespace + uuid */
#define FIXED_LEN (7 + 3 + 1 + 16 + 1 + 3 + 1 + VOLUME_ID_UUID_LEN)

static bool name_char_ok(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
	       c == '.' || c == '_' || c == '-';
}

/* True when the n bytes at s are all in [A-Za-z0-9._-]. */
static bool name_chars_ok(const char *s, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (!name_char_ok(s[i]))
			return false;
	return true;
}

static bool lower_hex(char c)
{
	return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f');
}

static int hex_value(char c)
{
	return c <= '9' ? c - '0' : c - 'a' + 10;
}

/* Parses exactly n lowercase hex digits at s. Returns 0 or -EINVAL. */
static int parse_hex(const char *s, size_t n, uint64_t *ret)
{
	uint64_t v = 0;

	for (size_t i = 0; i < n; i++) {
		if (!lower_hex(s[i]))
			return -EINVAL;
		v = (v << 4) | (uint64_t)hex_value(s[i]);
	}
	*ret = v;
	return 0;
}

bool volume_id_uuid_valid(const char *s)
{
	if (!s || strnlen(s, VOLUME_ID_UUID_LEN + 1) != VOLUME_ID_UUID_LEN)
		return false;
	for (size_t i = 0; i < VOLUME_ID_UUID_LEN; i++) {
		if (i == 8 || i == 13 || i == 18 || i == 23) {
			if (s[i] != '-')
				return false;
		} else if (!lower_hex(s[i]))
			return false;
	}
	return true;
}

bool volume_id_cluster_id_valid(const char *s)
{
	size_t n;

	if (!s)
		return false;
	n = strnlen(s, VOLUME_ID_CLUSTER_ID_MAX + 1);
	return n >= 1 && n <= VOLUME_ID_CLUSTER_ID_MAX && name_chars_ok(s, n);
}

static bool kind_valid(enum volume_id_kind kind)
{
	return kind == VOLUME_ID_VOLUME || kind == VOLUME_ID_SNAPSHOT ||
	       kind == VOLUME_ID_GROUP_SNAPSHOT;
}

/* Checks every field of an id whose strings are bounded by their arrays or by the caller. */
static int validate(enum volume_id_kind kind, const char *cluster_id, int64_t pool_id,
                    const char *ns, const char *uuid)
{
	size_t cn, nn;

	if (!kind_valid(kind) || !volume_id_cluster_id_valid(cluster_id) || pool_id < 0 ||
	    !volume_id_uuid_valid(uuid))
		return -EINVAL;
	cn = strlen(cluster_id);
	nn = strnlen(ns, VOLUME_ID_MAX + 1);
	if (!name_chars_ok(ns, nn))
		return -EINVAL;
	if (nn > VOLUME_ID_NAMESPACE_MAX || FIXED_LEN + cn + nn > VOLUME_ID_MAX)
		return -ENAMETOOLONG;
	return 0;
}

int volume_id_make(enum volume_id_kind kind, const char *cluster_id, int64_t pool_id,
                   const char *rados_namespace, const char *uuid, struct volume_id *ret)
{
	const char *ns = strempty(rados_namespace);
	struct volume_id id = { .kind = kind, .pool_id = pool_id };
	int r;

	r = validate(kind, cluster_id, pool_id, ns, uuid);
	if (r < 0)
		return r;
	/* Lengths are checked above, so these copies fit. */
	memcpy(id.cluster_id, cluster_id, strlen(cluster_id) + 1);
	memcpy(id.rados_namespace, ns, strlen(ns) + 1);
	memcpy(id.uuid, uuid, VOLUME_ID_UUID_LEN + 1);
	*ret = id;
	return 0;
}

int volume_id_encode(const struct volume_id *id, char ret[static VOLUME_ID_MAX + 1])
{
	char buf[VOLUME_ID_MAX + 1];
	int r, n;

	if (!id)
		return -EINVAL;
	/* The arrays might not be NUL-terminated if the caller filled them by hand. */
	if (strnlen(id->cluster_id, sizeof(id->cluster_id)) == sizeof(id->cluster_id) ||
	    strnlen(id->rados_namespace, sizeof(id->rados_namespace)) ==
	            sizeof(id->rados_namespace) ||
	    strnlen(id->uuid, sizeof(id->uuid)) == sizeof(id->uuid))
		return -EINVAL;
	r = validate(id->kind, id->cluster_id, id->pool_id, id->rados_namespace, id->uuid);
	if (r < 0)
		return r;

	n = snprintf(buf, sizeof(buf), "%04x-%c-%02zx-%s-%016llx-%02zx-%s-%s", VOLUME_ID_VERSION,
	             (char)id->kind, strlen(id->cluster_id), id->cluster_id,
	             (unsigned long long)id->pool_id, strlen(id->rados_namespace),
	             id->rados_namespace, id->uuid);
	if (n < 0 || (size_t)n > VOLUME_ID_MAX)
		return -ENAMETOOLONG;
	memcpy(ret, buf, (size_t)n + 1);
	return n;
}

/* Expects the character c at s[*pos] and advances. */
static int expect(const char *s, size_t len, size_t *pos, char c)
{
	if (*pos >= len || s[*pos] != c)
		return -EINVAL;
	(*pos)++;
	return 0;
}

/* Reads n hex digits at s[*pos] and advances. */
static int take_hex(const char *s, size_t len, size_t *pos, size_t n, uint64_t *ret)
{
	if (len - *pos < n)
		return -EINVAL;
	if (parse_hex(s + *pos, n, ret) < 0)
		return -EINVAL;
	*pos += n;
	return 0;
}

int volume_id_decode(const char *s, struct volume_id *ret)
{
	struct volume_id id = {};
	uint64_t version, cn, pool, nn;
	size_t len, pos = 0;

	if (!s)
		return -EINVAL;
	len = strnlen(s, VOLUME_ID_MAX + 1);
	if (len > VOLUME_ID_MAX || len < FIXED_LEN + 1)
		return -EINVAL;

	if (take_hex(s, len, &pos, 4, &version) < 0 || version != VOLUME_ID_VERSION ||
	    expect(s, len, &pos, '-') < 0)
		return -EINVAL;

	if (pos >= len || !kind_valid((enum volume_id_kind)s[pos]))
		return -EINVAL;
	id.kind = (enum volume_id_kind)s[pos++];
	if (expect(s, len, &pos, '-') < 0)
		return -EINVAL;

	if (take_hex(s, len, &pos, 2, &cn) < 0 || expect(s, len, &pos, '-') < 0)
		return -EINVAL;
	if (cn < 1 || cn > VOLUME_ID_CLUSTER_ID_MAX || len - pos < cn)
		return -EINVAL;
	memcpy(id.cluster_id, s + pos, cn);
	id.cluster_id[cn] = 0;
	pos += cn;
	if (expect(s, len, &pos, '-') < 0)
		return -EINVAL;

	if (take_hex(s, len, &pos, 16, &pool) < 0 || pool > (uint64_t)INT64_MAX ||
	    expect(s, len, &pos, '-') < 0)
		return -EINVAL;
	id.pool_id = (int64_t)pool;

	if (take_hex(s, len, &pos, 2, &nn) < 0 || expect(s, len, &pos, '-') < 0)
		return -EINVAL;
	if (nn > VOLUME_ID_NAMESPACE_MAX || len - pos < nn)
		return -EINVAL;
	memcpy(id.rados_namespace, s + pos, nn);
	id.rados_namespace[nn] = 0;
	pos += nn;
	if (expect(s, len, &pos, '-') < 0)
		return -EINVAL;

	if (len - pos != VOLUME_ID_UUID_LEN)
		return -EINVAL;
	memcpy(id.uuid, s + pos, VOLUME_ID_UUID_LEN);
	id.uuid[VOLUME_ID_UUID_LEN] = 0;

	/* Same checks as the encoder: character sets, uuid form, total length. */
	if (validate(id.kind, id.cluster_id, id.pool_id, id.rados_namespace, id.uuid) < 0)
		return -EINVAL;

	*ret = id;
	return 0;
}

int volume_id_decode_kind(const char *s, enum volume_id_kind kind, struct volume_id *ret)
{
	struct volume_id id;
	int r = volume_id_decode(s, &id);

	if (r < 0)
		return r;
	if (id.kind != kind)
		return -EINVAL;
	*ret = id;
	return 0;
}
