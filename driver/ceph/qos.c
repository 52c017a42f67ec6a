/* SPDX-License-Identifier: Apache-2.0 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "driver/base/log.h"
#include "driver/base/macro.h"
#include "driver/ceph/qos.h"

#define VALUE_DIGITS 20

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

int qos_value_parse(const char *s, uint64_t max, uint64_t *ret)
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
	r = qos_value_parse(value, key_max(i), &v);
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
