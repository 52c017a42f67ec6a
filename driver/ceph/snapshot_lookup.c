/* SPDX-License-Identifier: Apache-2.0 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <rados/librados.h>

#include "driver/base/macro.h"
#include "driver/base/parse.h"
#include "driver/ceph/cluster_ioctx.h"
#include "driver/ceph/image.h"
#include "driver/ceph/journal.h"
#include "driver/ceph/snapshot_entry.h"
#include "driver/ceph/snapshot_lookup.h"
#include "driver/ceph/ceph_lib.h" /* last: redirects the librados/librbd names */

void snapshot_time_format(const struct timespec *ts, char ret[static 32])
{
	snprintf(ret, 32, "%lld.%09ld", (long long)ts->tv_sec, (long)ts->tv_nsec);
}

int snapshot_time_parse(const char *s, struct timespec *ret)
{
	char buf[32];
	uint64_t sec, nsec;
	char *dot;

	if (isempty(s) || strlen(s) >= sizeof(buf))
		return -EINVAL;
	memcpy(buf, s, strlen(s) + 1);
	dot = strchr(buf, '.');
	if (!dot)
		return -EINVAL;
	*dot = 0;
	if (parse_u64(buf, &sec) < 0 || parse_u64(dot + 1, &nsec) < 0 || nsec >= 1000000000ULL ||
	    sec > INT64_MAX)
		return -EINVAL;
	*ret = (struct timespec){ .tv_sec = (time_t)sec, .tv_nsec = (long)nsec };
	return 0;
}

void snapshot_done(struct snapshot *s)
{
	free(s->name);
	free(s->source_id);
	free(s->pool);
	free(s->image);
	*s = (struct snapshot){};
}

struct snapshot *snapshot_free(struct snapshot *s)
{
	if (!s)
		return NULL;
	snapshot_done(s);
	free(s);
	return NULL;
}

void snapshot_list_free(struct snapshot *s, size_t n)
{
	if (!s)
		return;
	for (size_t i = 0; i < n; i++)
		snapshot_done(&s[i]);
	free(s);
}

int snapshot_fill(struct snapshot *s, const struct journal_entry *e, const struct volume_id *sid,
                  const char *pool)
{
	const char *name = journal_entry_get(e, F_NAME);
	const char *source = journal_entry_get(e, F_SOURCE);
	const char *image = journal_entry_get(e, F_IMAGE);
	const char *state = strempty(journal_entry_get(e, F_STATE));
	int r;

	if (!name || !source || !image ||
	    (strcmp(state, STATE_CLONED) != 0 && strcmp(state, STATE_CREATED) != 0) ||
	    parse_u64(journal_entry_get(e, F_SIZE), &s->size) < 0 ||
	    snapshot_time_parse(journal_entry_get(e, F_CREATED_AT), &s->created) < 0)
		return -EUCLEAN;
	r = volume_id_encode(sid, s->id);
	if (r < 0)
		return r;
	s->sid = *sid;
	s->ready = strcmp(state, STATE_CREATED) == 0;
	s->name = strdup(name);
	s->source_id = strdup(source);
	s->pool = strdup(pool);
	s->image = strdup(image);
	if (!s->name || !s->source_id || !s->pool || !s->image)
		return -ENOMEM;
	return 0;
}

int snapshot_new(const struct journal_entry *e, const struct volume_id *sid, const char *pool,
                 struct snapshot **ret)
{
	struct snapshot *s = calloc(1, sizeof(*s));
	int r;

	if (!s)
		return -ENOMEM;
	r = snapshot_fill(s, e, sid, pool);
	if (r < 0) {
		snapshot_free(s);
		return r;
	}
	*ret = s;
	return 0;
}

int snapshot_pool_open(struct cluster *c, const struct volume_id *id, rados_ioctx_t *ret)
{
	return cluster_ioctx_open_for_id(c, id, VOLUME_ID_SNAPSHOT, ret);
}

int snapshot_lookup(struct cluster *c, const struct volume_id *id, struct snapshot **ret)
{
	_cleanup_ioctx_ rados_ioctx_t io = NULL;
	_cleanup_journal_entry_ struct journal_entry *e = NULL;
	_cleanup_free_ char *pool_name = NULL;
	struct image_info *info = NULL;
	const char *state;
	int r;

	r = snapshot_pool_open(c, id, &io);
	if (r < 0)
		return r;
	r = journal_entry_read(io, JOURNAL_SNAPSHOT, id->uuid, &e);
	if (r < 0)
		return r;
	state = strempty(journal_entry_get(e, F_STATE));
	if (strcmp(state, STATE_CLONED) != 0 && strcmp(state, STATE_CREATED) != 0)
		return -ENOENT;
	r = image_stat(io, journal_entry_get(e, F_IMAGE), &info);
	if (r < 0)
		return r;
	image_info_free(info);
	r = cluster_ioctx_pool_name(io, &pool_name);
	if (r < 0)
		return r;
	return snapshot_new(e, id, pool_name, ret);
}
