/* SPDX-License-Identifier: Apache-2.0 */
/* The I/O half of driver/ceph/qos.h: a volume's QoS in its journal entry and on its image. */
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
#define OPTION_NAME_MAX 64

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
		if (v && qos_value_parse(v, UINT64_MAX, &n) == 0 && n > 0) {
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
	if (qos_value_parse(value, UINT64_MAX, ret) < 0)
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
