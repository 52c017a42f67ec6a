/* SPDX-License-Identifier: Apache-2.0 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <rados/librados.h>

#include "driver/base/failpoint.h"
#include "driver/base/log.h"
#include "driver/base/macro.h"
#include "driver/base/monotonic.h"
#include "driver/ceph/cluster_ioctx.h"
#include "driver/ceph/group_snapshot.h"
#include "driver/ceph/image.h"
#include "driver/ceph/journal.h"
#include "driver/ceph/snapshot.h"
#include "driver/ceph/volume.h"
#include "driver/ceph/ceph_lib.h" /* last: redirects the librados/librbd names */

#define F_NAME       "name"
#define F_SOURCES    "sources"
#define F_STATE      "state"
#define F_CREATED_AT "created_at"

#define STATE_RESERVED "reserved"
#define STATE_CUT      "cut"
#define STATE_CREATED  "created"
#define STATE_DELETING "deleting"

#define ATTEMPTS        16
#define GROUP_NAME_MAX  (sizeof(GROUP_SNAPSHOT_RBD_PREFIX) + JOURNAL_UUID_LEN)
#define MEMBER_NAME_MAX (sizeof(GROUP_SNAPSHOT_MEMBER_PREFIX) + VOLUME_ID_MAX + 24)
#define SNAP_IMAGE_MAX  (sizeof(SNAPSHOT_IMAGE_PREFIX) + JOURNAL_UUID_LEN + 8)
#define COPY_CHUNK      (4U << 20)

/* ---- small helpers ---- */

static bool streq(const char *a, const char *b)
{
	return strcmp(a, b) == 0;
}

static int cmp_ids(const void *a, const void *b)
{
	return strcmp((const char *)a, (const char *)b);
}

static void group_rbd_name(const char *uuid, char ret[static GROUP_NAME_MAX])
{
	snprintf(ret, GROUP_NAME_MAX, GROUP_SNAPSHOT_RBD_PREFIX "%s", uuid);
}

static void member_name(const char *gid, size_t k, char ret[static MEMBER_NAME_MAX])
{
	snprintf(ret, MEMBER_NAME_MAX, GROUP_SNAPSHOT_MEMBER_PREFIX "%s:%zu", gid, k);
}

static void member_image(const char *uuid, bool part, char ret[static SNAP_IMAGE_MAX])
{
	snprintf(ret, SNAP_IMAGE_MAX, SNAPSHOT_IMAGE_PREFIX "%s%s", uuid, part ? ".part" : "");
}

static void time_format(const struct timespec *ts, char ret[static 32])
{
	snprintf(ret, 32, "%lld.%09ld", (long long)ts->tv_sec, (long)ts->tv_nsec);
}

static int time_parse(const char *s, struct timespec *ret)
{
	long long sec;
	long nsec;
	int n = 0;

	if (!s || sscanf(s, "%lld.%9ld%n", &sec, &nsec, &n) != 2 || s[n] != 0 || sec < 0 ||
	    nsec < 0 || nsec >= 1000000000L)
		return -EINVAL;
	*ret = (struct timespec){ .tv_sec = (time_t)sec, .tv_nsec = nsec };
	return 0;
}

/* The sorted, comma-joined source list of an entry, split into ids. */
struct sources {
	size_t n;
	char ids[GROUP_SNAPSHOT_MEMBERS_MAX][VOLUME_ID_MAX + 1];
	struct volume_id vids[GROUP_SNAPSHOT_MEMBERS_MAX];
};

static int sources_parse(const char *list, struct sources *ret)
{
	const char *p = list;

	if (isempty(list))
		return -EUCLEAN;
	ret->n = 0;
	while (*p) {
		const char *end = strchrnul(p, ',');
		size_t len = (size_t)(end - p);

		if (ret->n >= GROUP_SNAPSHOT_MEMBERS_MAX || len == 0 || len > VOLUME_ID_MAX)
			return -EUCLEAN;
		memcpy(ret->ids[ret->n], p, len);
		ret->ids[ret->n][len] = 0;
		if (volume_id_decode_kind(ret->ids[ret->n], VOLUME_ID_VOLUME, &ret->vids[ret->n]) <
		    0)
			return -EUCLEAN;
		ret->n++;
		p = *end ? end + 1 : end;
	}
	return 0;
}

static char *sources_join(const struct sources *s)
{
	size_t len = 1;
	char *out, *q;

	for (size_t i = 0; i < s->n; i++)
		len += strlen(s->ids[i]) + 1;
	out = malloc(len);
	if (!out)
		return NULL;
	q = out;
	for (size_t i = 0; i < s->n; i++) {
		size_t l = strlen(s->ids[i]);

		if (i)
			*q++ = ',';
		memcpy(q, s->ids[i], l);
		q += l;
	}
	*q = 0;
	return out;
}

struct group_snapshot *group_snapshot_free(struct group_snapshot *g)
{
	if (!g)
		return NULL;
	for (size_t i = 0; i < g->n_members; i++)
		snapshot_free(g->members[i]);
	free(g->members);
	free(g->name);
	free(g);
	return NULL;
}

int group_snapshot_member_of(const char *snapshot_name, char ret[static VOLUME_ID_MAX + 1])
{
	const char *p, *colon;
	size_t len;

	if (!snapshot_name || strncmp(snapshot_name, GROUP_SNAPSHOT_MEMBER_PREFIX,
	                              strlen(GROUP_SNAPSHOT_MEMBER_PREFIX)) != 0)
		return 0;
	p = snapshot_name + strlen(GROUP_SNAPSHOT_MEMBER_PREFIX);
	colon = strrchr(p, ':');
	if (!colon)
		return 0;
	len = (size_t)(colon - p);
	if (len == 0 || len > VOLUME_ID_MAX)
		return 0;
	memcpy(ret, p, len);
	ret[len] = 0;
	return 1;
}

/* ---- the RBD group and its snapshot ---- */

/* Adds image (in image_io) to the group; idempotent. -EBUSY when it is in another group. */
static int group_add(rados_ioctx_t gio, const char *group, rados_ioctx_t image_io,
                     const char *image)
{
	rbd_image_t img = NULL;
	rbd_group_info_t info = { 0 };
	int r;

	r = rbd_group_image_add(gio, group, image_io, image);
	if (r != -EEXIST)
		return r;
	/* Already in a group: ours (a retry), or somebody else's. */
	r = rbd_open_read_only(image_io, image, &img, NULL);
	if (r < 0)
		return r;
	r = rbd_get_group(img, &info, sizeof(info));
	rbd_close(img);
	if (r < 0)
		return r;
	if (info.pool == rados_ioctx_get_id(gio) && info.name && strcmp(info.name, group) == 0)
		r = 0;
	else
		r = log_debug_errno(-EBUSY, "Image %s is in RBD group '%s' already", image,
		                    strempty(info.name));
	rbd_group_info_cleanup(&info, sizeof(info));
	return r;
}

/* State of the group's "cut" snapshot: 1 complete, 0 absent, 2 incomplete. */
static int group_cut_state(rados_ioctx_t gio, const char *group)
{
	rbd_group_snap_info_t *snaps = NULL;
	size_t n = 0;
	int r, state = 0;

	for (;;) {
		r = rbd_group_snap_list(gio, group, snaps, sizeof(*snaps), &n);
		if (r != -ERANGE)
			break;
		free(snaps);
		snaps = calloc(n ? n : 1, sizeof(*snaps));
		if (!snaps)
			return -ENOMEM;
	}
	if (r == -ENOENT) {
		free(snaps);
		return 0;
	}
	if (r < 0) {
		free(snaps);
		return r;
	}
	for (size_t i = 0; snaps && i < n; i++)
		if (snaps[i].name && strcmp(snaps[i].name, GROUP_SNAPSHOT_RBD_SNAP) == 0)
			state = snaps[i].state == RBD_GROUP_SNAP_STATE_COMPLETE ? 1 : 2;
	if (snaps)
		rbd_group_snap_list_cleanup(snaps, sizeof(*snaps), n);
	free(snaps);
	return state;
}

/* Removes the group snapshot, the images from the group and the group. Idempotent. */
static int group_teardown(struct cluster *c, rados_ioctx_t gio, const char *group,
                          const struct sources *s)
{
	int r;

	r = rbd_group_snap_remove(gio, group, GROUP_SNAPSHOT_RBD_SNAP);
	if (r < 0 && r != -ENOENT)
		return log_debug_errno(r, "Cannot remove the snapshot of group %s: %m", group);
	for (size_t i = 0; i < s->n; i++) {
		_cleanup_(volume_freep) struct volume *v = NULL;
		_cleanup_ioctx_ rados_ioctx_t io = NULL;

		r = volume_lookup(c, &s->vids[i], &v);
		if (r == -ENOENT)
			continue; /* the source is gone: librbd took it out of the group */
		if (r < 0)
			return r;
		r = cluster_ioctx_open_by_id(c, s->vids[i].pool_id, s->vids[i].rados_namespace,
		                             &io);
		if (r < 0)
			return r == -ENOENT ? 0 : r;
		r = rbd_group_image_remove(gio, group, io, v->image);
		if (r < 0 && r != -ENOENT)
			return log_debug_errno(r, "Cannot take %s out of group %s: %m", v->image,
			                       group);
	}
	r = rbd_group_remove(gio, group);
	if (r < 0 && r != -ENOENT)
		return r;
	return 0;
}

/* The id of image's snapshot in the group snapshot. -ENOENT when it has none. */
static int find_group_snap(rbd_image_t img, int64_t group_pool, const char *group, uint64_t *ret)
{
	rbd_snap_info_t *snaps = NULL;
	int max = 16, r;

	for (;;) {
		snaps = calloc((size_t)max, sizeof(*snaps));
		if (!snaps)
			return -ENOMEM;
		r = rbd_snap_list(img, snaps, &max);
		if (r != -ERANGE)
			break;
		free(snaps);
	}
	if (r < 0) {
		free(snaps);
		return r;
	}
	r = -ENOENT;
	for (int i = 0; snaps[i].name; i++) {
		rbd_snap_namespace_type_t type;
		rbd_snap_group_namespace_t ns = { 0 };

		if (rbd_snap_get_namespace_type(img, snaps[i].id, &type) < 0 ||
		    type != RBD_SNAP_NAMESPACE_TYPE_GROUP)
			continue;
		if (rbd_snap_get_group_namespace(img, snaps[i].id, &ns, sizeof(ns)) < 0)
			continue;
		if (ns.group_pool == group_pool && ns.group_name &&
		    strcmp(ns.group_name, group) == 0 && ns.group_snap_name &&
		    strcmp(ns.group_snap_name, GROUP_SNAPSHOT_RBD_SNAP) == 0) {
			*ret = snaps[i].id;
			r = 0;
		}
		rbd_snap_group_namespace_cleanup(&ns, sizeof(ns));
		if (r == 0)
			break;
	}
	rbd_snap_list_end(snaps);
	free(snaps);
	return r;
}

struct extent {
	uint64_t off, len;
};

struct extents {
	struct extent *v;
	size_t n, cap;
};

static int extent_cb(uint64_t off, size_t len, int exists, void *arg)
{
	struct extents *e = arg;

	if (!exists || len == 0)
		return 0;
	if (e->n > 0 && e->v[e->n - 1].off + e->v[e->n - 1].len == off) {
		e->v[e->n - 1].len += len;
		return 0;
	}
	if (e->n == e->cap) {
		size_t cap = e->cap ? e->cap * 2 : 64;
		struct extent *v = realloc(e->v, cap * sizeof(*v));

		if (!v)
			return -ENOMEM;
		e->v = v;
		e->cap = cap;
	}
	e->v[e->n++] = (struct extent){ off, len };
	return 0;
}

/* Progress of a copy, on the ".part" image: bytes of the extent list copied so far. */
#define COPY_PROGRESS_KEY   "rbdcsi.copied"
#define COPY_PROGRESS_EVERY (64ULL << 20)

static uint64_t copy_progress_get(rbd_image_t img)
{
	char value[24];
	size_t len = sizeof(value);
	uint64_t v = 0;

	if (rbd_metadata_get(img, COPY_PROGRESS_KEY, value, &len) < 0 || len == 0 ||
	    len > sizeof(value) || value[len - 1] != 0)
		return 0;
	for (const char *p = value; *p; p++) {
		if (*p < '0' || *p > '9' || v > UINT64_MAX / 10 - 9)
			return 0;
		v = v * 10 + (uint64_t)(*p - '0');
	}
	return v;
}

static int copy_progress_set(rbd_image_t img, uint64_t done)
{
	char value[24];

	snprintf(value, sizeof(value), "%" PRIu64, done);
	return rbd_metadata_set(img, COPY_PROGRESS_KEY, value);
}

/*
 * Copies source_image at the group snapshot into the flat image dst (in the same ioctx): the
 * allocated extents only. Resumes a copy into an existing dst where its recorded progress says
 * (the group snapshot does not change, so the extent list is the same). Stops at deadline_usec
 * (CLOCK_MONOTONIC, 0 = none) with the progress recorded: -EINPROGRESS, call again. -ENOENT
 * when the image or its group snapshot is gone.
 */
static int copy_member(rados_ioctx_t io, const char *source_image, int64_t group_pool,
                       const char *group, const char *dst, uint64_t deadline_usec)
{
	rbd_image_t src = NULL, out = NULL;
	struct extents ext = { 0 };
	uint64_t snap_id, size, done, pos = 0, saved;
	uint64_t features = 0;
	/* Test-only: stop after every chunk, as if each chunk took the call's whole deadline. */
	bool one_chunk = failpoint_armed("group-snapshot-copy:one-chunk");
	char *buf = NULL;
	int r;

	r = rbd_open_read_only(io, source_image, &src, NULL);
	if (r < 0)
		return r;
	r = find_group_snap(src, group_pool, group, &snap_id);
	if (r < 0)
		goto out;
	r = rbd_snap_set_by_id(src, snap_id);
	if (r < 0)
		goto out;
	r = rbd_get_size(src, &size);
	if (r < 0)
		goto out;
	r = rbd_get_features(src, &features);
	if (r < 0)
		goto out;
	/* The copy is flat: only the features that need nothing from the source. */
	features &= RBD_FEATURE_LAYERING | RBD_FEATURE_EXCLUSIVE_LOCK | RBD_FEATURE_OBJECT_MAP |
	            RBD_FEATURE_FAST_DIFF | RBD_FEATURE_DEEP_FLATTEN;
	features |= RBD_FEATURE_LAYERING;
	r = rbd_open(io, dst, &out, NULL);
	if (r == -ENOENT) {
		/* Not there, or the remains of a create a crash interrupted. */
		r = image_remove(io, dst);
		if (r >= 0)
			r = image_create(io, dst, size, features, NULL);
		if (r >= 0)
			r = rbd_open(io, dst, &out, NULL);
	}
	if (r < 0)
		goto out;
	done = saved = copy_progress_get(out);
	r = rbd_diff_iterate2(src, NULL, 0, size, 1, 0, extent_cb, &ext);
	if (r < 0)
		goto out;
	buf = malloc(COPY_CHUNK);
	if (!buf) {
		r = -ENOMEM;
		goto out;
	}
	for (size_t i = 0; i < ext.n && r >= 0; i++)
		for (uint64_t off = ext.v[i].off; off < ext.v[i].off + ext.v[i].len;) {
			size_t len = (size_t)MIN((uint64_t)COPY_CHUNK,
			                         ext.v[i].off + ext.v[i].len - off);
			ssize_t k;

			if (pos + len <= done) { /* copied by an earlier call */
				pos += len;
				off += len;
				continue;
			}
			if (one_chunk && pos > saved) {
				r = -EINPROGRESS;
				break;
			}
			if (deadline_usec != 0 && deadline_usec != UINT64_MAX &&
			    monotonic_usec() >= deadline_usec) {
				r = -EINPROGRESS;
				break;
			}
			k = rbd_read2(src, off, len, buf, 0);
			if (k >= 0)
				k = rbd_write2(out, off, (size_t)k, buf, 0);
			if (k < 0) {
				r = (int)k;
				break;
			}
			pos += len;
			off += len;
			if (pos - saved >= COPY_PROGRESS_EVERY) {
				r = rbd_flush(out);
				if (r >= 0)
					r = copy_progress_set(out, pos);
				if (r < 0)
					break;
				saved = pos;
			}
		}
	if (r == -EINPROGRESS) {
		int k = rbd_flush(out);

		if (k >= 0)
			k = copy_progress_set(out, pos);
		if (k < 0)
			r = k;
		log_debug("Copy of %s stopped at the deadline after %" PRIu64 " bytes",
		          source_image, pos);
	} else if (r >= 0)
		r = rbd_flush(out);
out:
	free(buf);
	free(ext.v);
	if (out)
		rbd_close(out);
	rbd_close(src);
	return r;
}

/* ---- members ---- */

/* Opens the ioctx of source k. */
static int source_io(struct cluster *c, const struct sources *s, size_t k, rados_ioctx_t *ret)
{
	return cluster_ioctx_open_by_id(c, s->vids[k].pool_id, s->vids[k].rados_namespace, ret);
}

/*
 * Makes member k: its snapshot name reserved, its image copied from the group snapshot, then
 * snapshot_create(). Returns 0 and *ret.
 */
static int member_create(struct cluster *c, const struct group_snapshot_request *req,
                         const char *gid, rados_ioctx_t gio, const char *group,
                         const struct sources *s, size_t k, struct snapshot **ret)
{
	_cleanup_ioctx_ rados_ioctx_t io = NULL;
	_cleanup_(volume_freep) struct volume *v = NULL;
	char name[MEMBER_NAME_MAX], candidate[JOURNAL_UUID_LEN + 1], uuid[JOURNAL_UUID_LEN + 1];
	char image[SNAP_IMAGE_MAX], part[SNAP_IMAGE_MAX];
	struct image_info *info = NULL;
	struct snapshot_request sr;
	int r;

	member_name(gid, k, name);
	r = source_io(c, s, k, &io);
	if (r < 0)
		return r;
	r = journal_uuid_new(candidate);
	if (r < 0)
		return r;
	r = journal_reserve(io, JOURNAL_SNAPSHOT, name, candidate, uuid);
	if (r < 0)
		return r;
	member_image(uuid, false, image);
	member_image(uuid, true, part);

	r = image_stat(io, image, &info);
	if (r == 0)
		image_info_free(info);
	else if (r == -ENOENT) {
		_cleanup_journal_entry_ struct journal_entry *e = NULL;

		/* Not adopted by snapshot_create() yet (else the image would exist, or the
		 * entry say it was cut). */
		r = journal_entry_read(io, JOURNAL_SNAPSHOT, uuid, &e);
		if (r < 0 && r != -ENOENT)
			return r;
		if (r == 0 && !streq(strempty(journal_entry_get(e, "state")), "reserved"))
			return log_debug_errno(-EUCLEAN, "Member %s lost its image", name);
		r = volume_lookup(c, &s->vids[k], &v);
		if (r < 0)
			return r;
		/* A ".part" left by a crash or a deadline is resumed. */
		r = copy_member(io, v->image, rados_ioctx_get_id(gio), group, part,
		                req->deadline_usec);
		if (r == -EINPROGRESS)
			return r;
		if (r < 0)
			return log_debug_errno(r, "Cannot copy %s at the group snapshot: %m",
			                       v->image);
		r = rbd_rename(io, part, image);
		if (r < 0)
			return r;
		failpoint("group-snapshot-create:after-member-copy");
	} else
		return r;

	sr = (struct snapshot_request){
		.name = name,
		.source = &s->vids[k],
		.clone_depth_max = req->clone_depth_max,
		.deadline_usec = req->deadline_usec,
	};
	r = snapshot_create(c, &sr, ret);
	if (r < 0)
		return r;
	failpoint("group-snapshot-create:after-member");
	return 0;
}

/*
 * Deletes member k in whatever state: snapshot_delete(), then what a member that was never
 * adopted leaves (image, ".part", name reservation).
 */
static int member_delete(struct cluster *c, const char *gid, const struct sources *s, size_t k,
                         uint64_t deadline_usec)
{
	_cleanup_ioctx_ rados_ioctx_t io = NULL;
	char name[MEMBER_NAME_MAX], uuid[JOURNAL_UUID_LEN + 1];
	char image[SNAP_IMAGE_MAX], part[SNAP_IMAGE_MAX];
	struct volume_id sid;
	int r;

	member_name(gid, k, name);
	r = source_io(c, s, k, &io);
	if (r == -ENOENT)
		return 0; /* the pool is gone, with the member */
	if (r < 0)
		return r;
	r = journal_lookup(io, JOURNAL_SNAPSHOT, name, uuid);
	if (r == -ENOENT)
		return 0;
	if (r < 0)
		return r;
	r = volume_id_make(VOLUME_ID_SNAPSHOT, s->vids[k].cluster_id, s->vids[k].pool_id,
	                   s->vids[k].rados_namespace, uuid, &sid);
	if (r < 0)
		return r;
	r = snapshot_delete(c, &sid, deadline_usec);
	if (r < 0)
		return r;
	member_image(uuid, false, image);
	member_image(uuid, true, part);
	r = image_remove(io, part);
	if (r >= 0)
		r = image_remove(io, image);
	if (r < 0)
		return r;
	return journal_unreserve(io, JOURNAL_SNAPSHOT, name, uuid);
}

/* The member snapshots of a group, looked up. -ENOENT when one is gone. */
static int members_lookup(struct cluster *c, const char *gid, const struct sources *s,
                          struct group_snapshot *g)
{
	g->members = calloc(s->n, sizeof(*g->members));
	if (!g->members)
		return -ENOMEM;
	g->ready = true;
	for (size_t k = 0; k < s->n; k++) {
		_cleanup_ioctx_ rados_ioctx_t io = NULL;
		char name[MEMBER_NAME_MAX], uuid[JOURNAL_UUID_LEN + 1];
		struct volume_id sid;
		int r;

		member_name(gid, k, name);
		r = source_io(c, s, k, &io);
		if (r >= 0)
			r = journal_lookup(io, JOURNAL_SNAPSHOT, name, uuid);
		if (r >= 0)
			r = volume_id_make(VOLUME_ID_SNAPSHOT, s->vids[k].cluster_id,
			                   s->vids[k].pool_id, s->vids[k].rados_namespace, uuid,
			                   &sid);
		if (r >= 0)
			r = snapshot_lookup(c, &sid, &g->members[k]);
		if (r < 0)
			return r;
		g->n_members++;
		if (!g->members[k]->ready)
			g->ready = false;
	}
	return 0;
}

static int group_new(struct cluster *c, const struct journal_entry *e, const struct volume_id *gid,
                     const struct sources *s, struct group_snapshot **ret)
{
	_cleanup_(group_snapshot_freep) struct group_snapshot *g = calloc(1, sizeof(*g));
	int r;

	if (!g)
		return -ENOMEM;
	r = volume_id_encode(gid, g->id);
	if (r < 0)
		return r;
	g->gid = *gid;
	g->name = strdup(strempty(journal_entry_get(e, F_NAME)));
	if (!g->name)
		return -ENOMEM;
	if (time_parse(journal_entry_get(e, F_CREATED_AT), &g->created) < 0)
		return -EUCLEAN;
	r = members_lookup(c, g->id, s, g);
	if (r < 0)
		return r;
	*ret = TAKE_PTR(g);
	return 0;
}

/* ---- create ---- */

/* Sorts and checks the sources; fills s. */
static int sources_from_request(const struct group_snapshot_request *req, struct sources *s)
{
	if (!req->sources || req->n_sources == 0 || req->n_sources > GROUP_SNAPSHOT_MEMBERS_MAX)
		return -EINVAL;
	s->n = req->n_sources;
	for (size_t i = 0; i < s->n; i++) {
		if (req->sources[i].kind != VOLUME_ID_VOLUME ||
		    volume_id_encode(&req->sources[i], s->ids[i]) < 0 ||
		    strcmp(req->sources[i].cluster_id, req->sources[0].cluster_id) != 0)
			return -EINVAL;
	}
	qsort(s->ids, s->n, sizeof(s->ids[0]), cmp_ids);
	for (size_t i = 0; i < s->n; i++) {
		if (i > 0 && strcmp(s->ids[i], s->ids[i - 1]) == 0)
			return -EINVAL;
		if (volume_id_decode_kind(s->ids[i], VOLUME_ID_VOLUME, &s->vids[i]) < 0)
			return -EINVAL;
	}
	return 0;
}

/* Undoes a reservation whose sources were not all there before anything was cut. */
static void create_rollback(struct cluster *c, rados_ioctx_t gio, const char *name,
                            const char *uuid, const struct sources *s)
{
	char group[GROUP_NAME_MAX];

	group_rbd_name(uuid, group);
	if (group_teardown(c, gio, group, s) < 0)
		return;
	(void)journal_unreserve(gio, JOURNAL_GROUP_SNAPSHOT, name, uuid);
	(void)journal_entry_remove(gio, JOURNAL_GROUP_SNAPSHOT, uuid, 0);
}

/* In state "reserved": the group, its images, its complete snapshot. */
static int cut(struct cluster *c, rados_ioctx_t gio, const char *group, const struct sources *s,
               struct timespec *ret_created)
{
	int r;

	r = rbd_group_create(gio, group);
	if (r < 0 && r != -EEXIST)
		return r;
	if (r == 0)
		failpoint("group-snapshot-create:after-group");
	for (size_t i = 0; i < s->n; i++) {
		_cleanup_(volume_freep) struct volume *v = NULL;
		_cleanup_ioctx_ rados_ioctx_t io = NULL;

		r = volume_lookup(c, &s->vids[i], &v);
		if (r < 0)
			return log_debug_errno(r, "Source volume %s: %m", s->ids[i]);
		r = source_io(c, s, i, &io);
		if (r < 0)
			return r;
		r = group_add(gio, group, io, v->image);
		if (r < 0)
			return r;
	}
	r = group_cut_state(gio, group);
	if (r < 0)
		return r;
	if (r == 2) {
		/* Left half-taken by a crash: not a cut. */
		r = rbd_group_snap_remove(gio, group, GROUP_SNAPSHOT_RBD_SNAP);
		if (r < 0 && r != -ENOENT)
			return r;
		r = 0;
	}
	if (r == 0) {
		r = rbd_group_snap_create2(gio, group, GROUP_SNAPSHOT_RBD_SNAP, 0);
		if (r < 0)
			return log_debug_errno(r, "Group snapshot of %s failed: %m", group);
		failpoint("group-snapshot-create:after-cut");
	}
	/* The cut's time: that of the first member's snapshot. */
	{
		_cleanup_(volume_freep) struct volume *v = NULL;
		_cleanup_ioctx_ rados_ioctx_t io = NULL;
		rbd_image_t img = NULL;
		uint64_t snap_id;

		r = volume_lookup(c, &s->vids[0], &v);
		if (r >= 0)
			r = source_io(c, s, 0, &io);
		if (r >= 0)
			r = rbd_open_read_only(io, v->image, &img, NULL);
		if (r < 0)
			return r;
		r = find_group_snap(img, rados_ioctx_get_id(gio), group, &snap_id);
		if (r >= 0)
			r = rbd_snap_get_timestamp(img, snap_id, ret_created);
		rbd_close(img);
	}
	return r;
}

int group_snapshot_create(struct cluster *c, const struct group_snapshot_request *req,
                          struct group_snapshot **ret)
{
	_cleanup_ioctx_ rados_ioctx_t gio = NULL;
	_cleanup_free_ char *joined = NULL;
	struct sources *s = NULL;
	int r;

	if (!req || !journal_name_valid(req->name) ||
	    strncmp(req->name, GROUP_SNAPSHOT_MEMBER_PREFIX,
	            strlen(GROUP_SNAPSHOT_MEMBER_PREFIX)) == 0)
		return -EINVAL;
	s = calloc(1, sizeof(*s));
	if (!s)
		return -ENOMEM;
	r = sources_from_request(req, s);
	if (r < 0)
		goto out;
	joined = sources_join(s);
	if (!joined) {
		r = -ENOMEM;
		goto out;
	}
	/* The anchor: the first source's pool and namespace. */
	r = source_io(c, s, 0, &gio);
	if (r < 0)
		goto out;

	r = -EAGAIN;
	for (unsigned attempt = 0; attempt < ATTEMPTS; attempt++) {
		_cleanup_journal_entry_ struct journal_entry *e = NULL;
		char candidate[JOURNAL_UUID_LEN + 1], uuid[JOURNAL_UUID_LEN + 1];
		char group[GROUP_NAME_MAX], gid_str[VOLUME_ID_MAX + 1];
		struct volume_id gid;
		const char *state;

		r = journal_uuid_new(candidate);
		if (r < 0)
			break;
		r = journal_reserve(gio, JOURNAL_GROUP_SNAPSHOT, req->name, candidate, uuid);
		if (r < 0)
			break;
		if (r > 0)
			failpoint("group-snapshot-create:after-reserve");
		group_rbd_name(uuid, group);
		r = volume_id_make(VOLUME_ID_GROUP_SNAPSHOT, s->vids[0].cluster_id,
		                   s->vids[0].pool_id, s->vids[0].rados_namespace, uuid, &gid);
		if (r >= 0)
			r = volume_id_encode(&gid, gid_str);
		if (r < 0)
			break;

		r = journal_entry_read(gio, JOURNAL_GROUP_SNAPSHOT, uuid, &e);
		if (r == -ENOENT) {
			char now[32];
			struct journal_field fields[] = {
				{ F_NAME, (char *)req->name },
				{ F_SOURCES, joined },
				{ F_STATE, STATE_RESERVED },
				{ F_CREATED_AT, now },
			};
			struct timespec ts;

			/* Every source must exist before anything is made. */
			for (size_t i = 0; i < s->n; i++) {
				_cleanup_(volume_freep) struct volume *v = NULL;

				r = volume_lookup(c, &s->vids[i], &v);
				if (r < 0) {
					if (r == -ENOENT)
						(void)journal_unreserve(gio, JOURNAL_GROUP_SNAPSHOT,
						                        req->name, uuid);
					log_debug_errno(r, "Source volume %s: %m", s->ids[i]);
					goto out;
				}
			}
			clock_gettime(CLOCK_REALTIME, &ts);
			time_format(&ts, now);
			r = journal_entry_create(gio, JOURNAL_GROUP_SNAPSHOT, uuid, fields,
			                         ELEMENTSOF(fields), NULL);
			if (r < 0 && r != -EEXIST)
				break;
			if (r == 0)
				failpoint("group-snapshot-create:after-object");
			continue;
		}
		if (r < 0)
			break;
		if (!streq(strempty(journal_entry_get(e, F_NAME)), req->name)) {
			r = -EUCLEAN;
			break;
		}
		if (!streq(strempty(journal_entry_get(e, F_SOURCES)), joined)) {
			r = log_debug_errno(-EEXIST, "Group snapshot %s exists with other sources",
			                    req->name);
			break;
		}
		state = strempty(journal_entry_get(e, F_STATE));

		if (streq(state, STATE_DELETING)) {
			r = -EAGAIN;
			break;
		}
		if (streq(state, STATE_RESERVED)) {
			char created_str[32];
			struct timespec created;
			struct journal_field mark[] = { { F_STATE, STATE_CUT },
				                        { F_CREATED_AT, created_str } };

			r = cut(c, gio, group, s, &created);
			if (r == -ENOENT) {
				create_rollback(c, gio, req->name, uuid, s);
				log_debug_errno(r, "A source of %s is gone", req->name);
				break;
			}
			if (r < 0)
				break;
			time_format(&created, created_str);
			r = journal_entry_update(gio, e, mark, ELEMENTSOF(mark), NULL, 0);
			if (r == -ESTALE || r == -ENOENT)
				continue;
			if (r < 0)
				break;
			failpoint("group-snapshot-create:after-record-cut");
			continue;
		}
		if (streq(state, STATE_CUT)) {
			struct journal_field mark[] = { { F_STATE, STATE_CREATED } };

			for (size_t k = 0; k < s->n; k++) {
				_cleanup_(snapshot_freep) struct snapshot *m = NULL;
				_cleanup_journal_entry_ struct journal_entry *now = NULL;

				/* A delete that started meanwhile wins: make no member after it. */
				r = journal_entry_read(gio, JOURNAL_GROUP_SNAPSHOT, uuid, &now);
				if (r == 0 && (now->version != e->version))
					r = -EAGAIN;
				if (r == -ENOENT)
					r = -EAGAIN;
				if (r < 0)
					goto out;
				r = member_create(c, req, gid_str, gio, group, s, k, &m);
				if (r == -ENOENT) {
					/* A source went away after the cut: undo it all. */
					log_debug("A source of %s is gone: undoing it", req->name);
					r = group_snapshot_delete(c, &gid, NULL, 0,
					                          req->deadline_usec);
					if (r >= 0)
						r = -ENOENT;
					goto out;
				}
				if (r < 0) {
					log_debug_errno(r, "Member %zu of %s: %m", k, req->name);
					goto out;
				}
			}
			r = group_teardown(c, gio, group, s);
			if (r < 0)
				break;
			failpoint("group-snapshot-create:after-ungroup");
			r = journal_entry_update(gio, e, mark, ELEMENTSOF(mark), NULL, 0);
			if (r == -ESTALE || r == -ENOENT)
				continue;
			if (r < 0)
				break;
			continue;
		}
		if (streq(state, STATE_CREATED)) {
			r = group_new(c, e, &gid, s, ret);
			if (r == -ENOENT)
				r = log_debug_errno(-EUCLEAN,
				                    "A member of group snapshot %s is gone",
				                    req->name);
			break;
		}
		r = log_debug_errno(-EUCLEAN, "Group snapshot entry %s has unknown state '%s'",
		                    uuid, state);
		break;
	}
out:
	free(s);
	return r;
}

/* ---- lookup, delete ---- */

int group_snapshot_lookup(struct cluster *c, const struct volume_id *id,
                          struct group_snapshot **ret)
{
	_cleanup_ioctx_ rados_ioctx_t gio = NULL;
	_cleanup_journal_entry_ struct journal_entry *e = NULL;
	_cleanup_free_ struct sources *s = NULL;
	int r;

	r = cluster_ioctx_open_for_id(c, id, VOLUME_ID_GROUP_SNAPSHOT, &gio);
	if (r < 0)
		return r;
	r = journal_entry_read(gio, JOURNAL_GROUP_SNAPSHOT, id->uuid, &e);
	if (r < 0)
		return r;
	if (!streq(strempty(journal_entry_get(e, F_STATE)), STATE_CREATED))
		return -ENOENT;
	s = calloc(1, sizeof(*s));
	if (!s)
		return -ENOMEM;
	r = sources_parse(journal_entry_get(e, F_SOURCES), s);
	if (r < 0)
		return r;
	return group_new(c, e, id, s, ret);
}

/* Checks snapshot_ids against the members that exist. -EINVAL on a mismatch. */
static int check_ids(struct cluster *c, const char *gid, const struct sources *s,
                     const char *const *ids, size_t n)
{
	bool used[GROUP_SNAPSHOT_MEMBERS_MAX + 1] = { false };

	if (n == 0)
		return 0;
	if (n > GROUP_SNAPSHOT_MEMBERS_MAX)
		return -EINVAL;
	for (size_t k = 0; k < s->n; k++) {
		_cleanup_ioctx_ rados_ioctx_t io = NULL;
		char name[MEMBER_NAME_MAX], uuid[JOURNAL_UUID_LEN + 1], sid_str[VOLUME_ID_MAX + 1];
		struct volume_id sid;
		bool found = false;
		int r;

		member_name(gid, k, name);
		r = source_io(c, s, k, &io);
		if (r == -ENOENT)
			continue;
		if (r >= 0)
			r = journal_lookup(io, JOURNAL_SNAPSHOT, name, uuid);
		if (r == -ENOENT)
			continue;
		if (r >= 0)
			r = volume_id_make(VOLUME_ID_SNAPSHOT, s->vids[k].cluster_id,
			                   s->vids[k].pool_id, s->vids[k].rados_namespace, uuid,
			                   &sid);
		if (r >= 0)
			r = volume_id_encode(&sid, sid_str);
		if (r < 0)
			return r;
		for (size_t i = 0; i < n; i++)
			if (ids[i] && streq(ids[i], sid_str)) {
				used[i] = found = true;
			}
		if (!found)
			return log_debug_errno(-EINVAL, "snapshot_ids lacks member %s", sid_str);
	}
	/* An id that is no member must at least not name an existing snapshot. */
	for (size_t i = 0; i < n; i++) {
		_cleanup_(snapshot_freep) struct snapshot *other = NULL;
		struct volume_id sid;

		if (used[i])
			continue;
		if (!ids[i] || volume_id_decode_kind(ids[i], VOLUME_ID_SNAPSHOT, &sid) < 0)
			return -EINVAL;
		if (snapshot_lookup(c, &sid, &other) == 0)
			return log_debug_errno(-EINVAL, "snapshot_ids names %s, no member", ids[i]);
	}
	return 0;
}

int group_snapshot_delete(struct cluster *c, const struct volume_id *id,
                          const char *const *snapshot_ids, size_t n, uint64_t deadline_usec)
{
	_cleanup_ioctx_ rados_ioctx_t gio = NULL;
	_cleanup_free_ struct sources *s = NULL;
	char gid_str[VOLUME_ID_MAX + 1], group[GROUP_NAME_MAX];
	int r;

	r = cluster_ioctx_open_for_id(c, id, VOLUME_ID_GROUP_SNAPSHOT, &gio);
	if (r == -ENOENT)
		return 0;
	if (r < 0)
		return r;
	r = volume_id_encode(id, gid_str);
	if (r < 0)
		return r;
	s = calloc(1, sizeof(*s));
	if (!s)
		return -ENOMEM;
	group_rbd_name(id->uuid, group);

	for (unsigned attempt = 0; attempt < ATTEMPTS; attempt++) {
		_cleanup_journal_entry_ struct journal_entry *e = NULL;
		const char *name;

		r = journal_entry_read(gio, JOURNAL_GROUP_SNAPSHOT, id->uuid, &e);
		if (r == -ENOENT)
			return 0;
		if (r < 0)
			return r;
		name = journal_entry_get(e, F_NAME);
		r = sources_parse(journal_entry_get(e, F_SOURCES), s);
		if (r < 0)
			return r;

		if (!streq(strempty(journal_entry_get(e, F_STATE)), STATE_DELETING)) {
			struct journal_field mark[] = { { F_STATE, STATE_DELETING } };

			r = check_ids(c, gid_str, s, snapshot_ids, n);
			if (r < 0)
				return r;
			r = journal_entry_update(gio, e, mark, ELEMENTSOF(mark), NULL, 0);
			if (r == -ESTALE)
				continue;
			if (r == -ENOENT)
				return 0;
			if (r < 0)
				return r;
			failpoint("group-snapshot-delete:after-mark");
		}

		for (size_t k = 0; k < s->n; k++) {
			r = member_delete(c, gid_str, s, k, deadline_usec);
			if (r < 0)
				return r;
		}
		failpoint("group-snapshot-delete:after-members");
		r = group_teardown(c, gio, group, s);
		if (r < 0)
			return r;
		failpoint("group-snapshot-delete:after-ungroup");
		if (name) {
			r = journal_unreserve(gio, JOURNAL_GROUP_SNAPSHOT, name, id->uuid);
			if (r < 0)
				return r;
		}
		failpoint("group-snapshot-delete:after-unreserve");
		return journal_entry_remove(gio, JOURNAL_GROUP_SNAPSHOT, id->uuid, 0);
	}
	return -EAGAIN;
}

int group_snapshot_member_check(struct cluster *c, const struct volume_id *snapshot_id,
                                char ret_group_id[static VOLUME_ID_MAX + 1])
{
	_cleanup_(snapshot_freep) struct snapshot *snap = NULL;
	_cleanup_ioctx_ rados_ioctx_t gio = NULL;
	_cleanup_journal_entry_ struct journal_entry *e = NULL;
	char gid_str[VOLUME_ID_MAX + 1];
	struct volume_id gid;
	int r;

	r = snapshot_lookup(c, snapshot_id, &snap);
	if (r == -ENOENT)
		return 0;
	if (r < 0)
		return r;
	if (group_snapshot_member_of(snap->name, gid_str) <= 0 ||
	    volume_id_decode_kind(gid_str, VOLUME_ID_GROUP_SNAPSHOT, &gid) < 0)
		return 0;
	r = cluster_ioctx_open_for_id(c, &gid, VOLUME_ID_GROUP_SNAPSHOT, &gio);
	if (r >= 0)
		r = journal_entry_read(gio, JOURNAL_GROUP_SNAPSHOT, gid.uuid, &e);
	if (r == -ENOENT)
		return 0;
	if (r < 0)
		return r;
	if (streq(strempty(journal_entry_get(e, F_STATE)), STATE_DELETING))
		return 0;
	memcpy(ret_group_id, gid_str, sizeof(gid_str));
	return -EBUSY;
}
