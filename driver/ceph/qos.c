/* SPDX-License-Identifier: Apache-2.0 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <rados/librados.h>

#include "driver/base/failpoint.h"
#include "driver/base/log.h"
#include "driver/base/macro.h"
#include "driver/ceph/cluster_ioctx.h"
#include "driver/ceph/journal.h"
#include "driver/ceph/qos.h"
#include "driver/ceph/ceph_lib.h" /* last: redirects the librados/librbd names */

/* Volume entry fields (driver/ceph/volume.c writes them). */
#define F_IMAGE         "image"
#define F_STATE         "state"
#define STATE_CREATED   "created"
#define ATTEMPTS        16
#define VALUE_DIGITS    20
#define OPTION_NAME_MAX 64

#define L(i, p, o)                                          \
	{                                                   \
		p, "rbd_qos_" o "_limit", QOS_KIND_LIMIT, i \
	}
#define B(i, p, o)                                                  \
	{                                                           \
		p "Burst", "rbd_qos_" o "_burst", QOS_KIND_BURST, i \
	}
#define BS(i, p, o)                                                                        \
	{                                                                                  \
		p "BurstSeconds", "rbd_qos_" o "_burst_seconds", QOS_KIND_BURST_SECONDS, i \
	}

/* Limits first (indexes 0..5), then their bursts (6..11), then burst seconds (12..17). */
const struct qos_key qos_keys[QOS_N] = {
	L(0, "maxIops", "iops"),
	L(1, "maxReadIops", "read_iops"),
	L(2, "maxWriteIops", "write_iops"),
	L(3, "maxBps", "bps"),
	L(4, "maxReadBps", "read_bps"),
	L(5, "maxWriteBps", "write_bps"),
	B(0, "maxIops", "iops"),
	B(1, "maxReadIops", "read_iops"),
	B(2, "maxWriteIops", "write_iops"),
	B(3, "maxBps", "bps"),
	B(4, "maxReadBps", "read_bps"),
	B(5, "maxWriteBps", "write_bps"),
	BS(0, "maxIops", "iops"),
	BS(1, "maxReadIops", "read_iops"),
	BS(2, "maxWriteIops", "write_iops"),
	BS(3, "maxBps", "bps"),
	BS(4, "maxReadBps", "read_bps"),
	BS(5, "maxWriteBps", "write_bps"),
};

int qos_key_index(const char *param)
{
	if (!param)
		return -ENOENT;
	for (int i = 0; i < QOS_N; i++)
		if (strcmp(qos_keys[i].param, param) == 0)
			return i;
	return -ENOENT;
}

static int parse_value(const char *s, uint64_t max, uint64_t *ret)
{
	uint64_t v = 0;
	size_t n = 0;

	if (isempty(s))
		return -EINVAL;
	for (const char *p = s; *p; p++, n++) {
		if (*p < '0' || *p > '9' || n >= VALUE_DIGITS)
			return -EINVAL;
		if (v > (UINT64_MAX - (uint64_t)(*p - '0')) / 10)
			return -ERANGE;
		v = v * 10 + (uint64_t)(*p - '0');
	}
	if (v > max)
		return -ERANGE;
	*ret = v;
	return 0;
}

static uint64_t key_max(int i)
{
	return qos_keys[i].kind == QOS_KIND_BURST_SECONDS ? QOS_BURST_SECONDS_MAX : QOS_VALUE_MAX;
}

int qos_parse(const char *key, const char *value, struct qos *q)
{
	uint64_t v;
	int i, r;

	i = qos_key_index(key);
	if (i < 0)
		return i;
	r = parse_value(value, key_max(i), &v);
	if (r < 0)
		return r;
	q->set[i] = true;
	q->value[i] = v;
	return 0;
}

int qos_check(const struct qos *q, int *ret_index)
{
	for (int i = 0; i < QOS_N; i++) {
		uint64_t limit;

		if (qos_keys[i].kind != QOS_KIND_BURST || !q->set[i] || q->value[i] == 0)
			continue;
		limit = q->set[qos_keys[i].limit] ? q->value[qos_keys[i].limit] : 0;
		/* librbd refuses a burst below its average (TokenBucketThrottle::set_limit). */
		if (q->value[i] < limit) {
			if (ret_index)
				*ret_index = i;
			return -EINVAL;
		}
	}
	return 0;
}

void qos_merge(struct qos *base, const struct qos *update)
{
	for (int i = 0; i < QOS_N; i++)
		if (update->set[i]) {
			base->set[i] = true;
			base->value[i] = update->value[i];
		}
}

/* The set recorded in a journal entry ("qos.<option>" fields; absent = 0). */
static void qos_from_entry(const struct journal_entry *e, struct qos *ret)
{
	*ret = (struct qos){ 0 };
	for (int i = 0; i < QOS_N; i++) {
		char key[OPTION_NAME_MAX];
		const char *v;
		uint64_t n;

		snprintf(key, sizeof(key), QOS_JOURNAL_PREFIX "%s", qos_keys[i].option);
		v = journal_entry_get(e, key);
		if (v && parse_value(v, UINT64_MAX, &n) == 0 && n > 0) {
			ret->set[i] = true;
			ret->value[i] = n;
		}
	}
}

static void image_closep(rbd_image_t *img)
{
	if (*img)
		rbd_close(*img);
}

/* Reads the conf_ override of option on img into *ret (0 when absent). */
static int meta_get(rbd_image_t img, const char *option, uint64_t *ret)
{
	char key[OPTION_NAME_MAX], value[64];
	size_t len = sizeof(value);
	int r;

	snprintf(key, sizeof(key), QOS_META_PREFIX "%s", option);
	r = rbd_metadata_get(img, key, value, &len);
	if (r == -ENOENT) {
		*ret = 0;
		return 0;
	}
	if (r < 0)
		return r;
	value[sizeof(value) - 1] = 0;
	/* Someone else's unparsable value differs from anything we want: it gets replaced. */
	if (parse_value(value, UINT64_MAX, ret) < 0)
		*ret = UINT64_MAX;
	return 0;
}

/* Makes img's conf_rbd_qos_* overrides equal to want: sets what differs, removes zeros. */
static int image_apply(rbd_image_t img, const struct qos *want)
{
	for (int i = 0; i < QOS_N; i++) {
		uint64_t v = want->set[i] ? want->value[i] : 0, cur;
		char key[OPTION_NAME_MAX], value[24];
		int r;

		r = meta_get(img, qos_keys[i].option, &cur);
		if (r < 0)
			return r;
		if (cur == v)
			continue;
		snprintf(key, sizeof(key), QOS_META_PREFIX "%s", qos_keys[i].option);
		if (v == 0) {
			r = rbd_metadata_remove(img, key);
			if (r == -ENOENT)
				r = 0;
		} else {
			snprintf(value, sizeof(value), "%" PRIu64, v);
			r = rbd_metadata_set(img, key, value);
		}
		if (r < 0)
			return log_debug_errno(r, "Setting %s failed: %m", key);
	}
	return 0;
}

/* Opens the pool of a created volume and reads its entry. -ENOENT when not (fully) created. */
static int open_entry(struct cluster *c, const struct volume_id *id, rados_ioctx_t *ret_io,
                      struct journal_entry **ret_e)
{
	rados_ioctx_t io = NULL;
	struct journal_entry *e = NULL;
	int r;

	if (!id || id->kind != VOLUME_ID_VOLUME)
		return -ENOENT;
	r = cluster_ioctx_open_by_id(c, id->pool_id, id->rados_namespace, &io);
	if (r < 0)
		return r;
	r = journal_entry_read(io, JOURNAL_VOLUME, id->uuid, &e);
	if (r == 0 && (!journal_entry_get(e, F_STATE) ||
	               strcmp(journal_entry_get(e, F_STATE), STATE_CREATED) != 0 ||
	               isempty(journal_entry_get(e, F_IMAGE))))
		r = -ENOENT;
	if (r < 0) {
		journal_entry_free(e);
		cluster_ioctx_close(io);
		return r;
	}
	*ret_io = io;
	*ret_e = e;
	return 0;
}

/* Records want in the entry where it differs. Returns 1 when written, 0 when equal. */
static int journal_record(rados_ioctx_t io, const struct journal_entry *e, const struct qos *want)
{
	struct qos have;
	struct journal_field set[QOS_N];
	const char *rm[QOS_N];
	char keys[QOS_N][OPTION_NAME_MAX], values[QOS_N][24];
	size_t n_set = 0, n_rm = 0;
	int r;

	qos_from_entry(e, &have);
	for (int i = 0; i < QOS_N; i++) {
		uint64_t h = have.set[i] ? have.value[i] : 0;
		uint64_t w = want->set[i] ? want->value[i] : 0;

		if (h == w)
			continue;
		snprintf(keys[i], sizeof(keys[i]), QOS_JOURNAL_PREFIX "%s", qos_keys[i].option);
		if (w == 0)
			rm[n_rm++] = keys[i];
		else {
			snprintf(values[i], sizeof(values[i]), "%" PRIu64, w);
			set[n_set++] = (struct journal_field){ keys[i], values[i] };
		}
	}
	if (n_set + n_rm == 0)
		return 0;
	r = journal_entry_update(io, e, set, n_set, rm, n_rm);
	return r < 0 ? r : 1;
}

int volume_qos_modify(struct cluster *c, const struct volume_id *id, const struct qos *update,
                      struct qos *ret, int *ret_bad)
{
	for (unsigned attempt = 0; attempt < ATTEMPTS; attempt++) {
		_cleanup_ioctx_ rados_ioctx_t io = NULL;
		_cleanup_journal_entry_ struct journal_entry *e = NULL;
		_cleanup_(image_closep) rbd_image_t img = NULL;
		struct qos want;
		int bad = -1, r;

		r = open_entry(c, id, &io, &e);
		if (r < 0)
			return r;
		qos_from_entry(e, &want);
		qos_merge(&want, update);
		r = qos_check(&want, &bad);
		if (r < 0) {
			if (ret_bad)
				*ret_bad = bad;
			return r;
		}

		/* 1. Record the wanted set with the volume. */
		r = journal_record(io, e, &want);
		if (r == -ESTALE)
			continue;
		if (r < 0)
			return r;
		if (r > 0)
			failpoint("volume-modify:after-journal");

		/* 2. Converge the image on it. */
		r = rbd_open(io, journal_entry_get(e, F_IMAGE), &img, NULL);
		if (r < 0) {
			img = NULL;
			return log_debug_errno(r, "Opening image %s failed: %m",
			                       journal_entry_get(e, F_IMAGE));
		}
		r = image_apply(img, &want);
		if (r < 0)
			return r;
		failpoint("volume-modify:after-image");
		if (ret)
			*ret = want;
		return 0;
	}
	return -EAGAIN;
}

int volume_qos_get(struct cluster *c, const struct volume_id *id, struct qos *ret)
{
	_cleanup_ioctx_ rados_ioctx_t io = NULL;
	_cleanup_journal_entry_ struct journal_entry *e = NULL;
	int r;

	r = open_entry(c, id, &io, &e);
	if (r < 0)
		return r;
	qos_from_entry(e, ret);
	return 0;
}

int volume_qos_image_get(struct cluster *c, const struct volume_id *id, struct qos *ret)
{
	_cleanup_ioctx_ rados_ioctx_t io = NULL;
	_cleanup_journal_entry_ struct journal_entry *e = NULL;
	_cleanup_(image_closep) rbd_image_t img = NULL;
	struct qos q = { 0 };
	int r;

	r = open_entry(c, id, &io, &e);
	if (r < 0)
		return r;
	r = rbd_open_read_only(io, journal_entry_get(e, F_IMAGE), &img, NULL);
	if (r < 0) {
		img = NULL;
		return r;
	}
	for (int i = 0; i < QOS_N; i++) {
		r = meta_get(img, qos_keys[i].option, &q.value[i]);
		if (r < 0)
			return r;
		q.set[i] = q.value[i] > 0;
	}
	*ret = q;
	return 0;
}
