/* SPDX-License-Identifier: Apache-2.0 */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <rados/librados.h>

#include "driver/base/failpoint.h"
#include "driver/base/log.h"
#include "driver/base/macro.h"
#include "driver/base/parse.h"
#include "driver/ceph/clone_chain.h"
#include "driver/ceph/cluster_ioctx.h"
#include "driver/ceph/flatten.h"
#include "driver/ceph/image.h"
#include "driver/ceph/journal.h"
#include "driver/ceph/snapshot.h"
#include "driver/ceph/snapshot_entry.h"
#include "driver/ceph/volume.h"
#include "driver/ceph/ceph_lib.h" /* last: redirects the librados/librbd names */

/* Rounds of read-check-write before giving up with -EAGAIN (see volume.c). */
#define ATTEMPTS 16
/* A half-created snapshot image older than this is the remains of a crash (see volume.c). */
#define STALE_RESERVATION_SEC 600
#define IMAGE_NAME_MAX        (sizeof(SNAPSHOT_IMAGE_PREFIX) + JOURNAL_UUID_LEN)
#define TEMP_SNAP_MAX         (sizeof(SNAPSHOT_TEMP_CLONE_PREFIX) + JOURNAL_UUID_LEN)

/* ---- small helpers ---- */

static bool streq_ptr(const char *a, const char *b)
{
	return strcmp(strempty(a), strempty(b)) == 0;
}

static void temp_snap_name(const char *uuid, char ret[static TEMP_SNAP_MAX])
{
	snprintf(ret, TEMP_SNAP_MAX, SNAPSHOT_TEMP_SNAP_PREFIX "%s", uuid);
}

/* ---- create ---- */

static int entry_create(rados_ioctx_t io, const char *uuid, const char *name, const char *source,
                        const char *source_image)
{
	char image[IMAGE_NAME_MAX], now[24];
	struct journal_field fields[] = {
		{ F_NAME, (char *)name },
		{ F_SOURCE, (char *)source },
		{ F_SOURCE_IMAGE, (char *)source_image },
		{ F_IMAGE, image },
		{ F_STATE, STATE_RESERVED },
		{ F_RESERVED_AT, now },
	};

	snprintf(image, sizeof(image), SNAPSHOT_IMAGE_PREFIX "%s", uuid);
	snprintf(now, sizeof(now), "%lld", (long long)time(NULL));
	return journal_entry_create(io, JOURNAL_SNAPSHOT, uuid, fields, ELEMENTSOF(fields), NULL);
}

/* Undoes a reservation whose source vanished before anything was made from it. */
static void create_rollback(rados_ioctx_t io, const char *name, const char *uuid)
{
	(void)journal_unreserve(io, JOURNAL_SNAPSHOT, name, uuid);
	(void)journal_entry_remove(io, JOURNAL_SNAPSHOT, uuid, 0);
}

/*
 * Makes sure the snapshot image exists: temporary snapshot on the source, clone. Returns 1 when
 * this call cloned it, 0 when it existed; -ENOENT when the source is gone; -EAGAIN when another
 * process is half-way cloning it.
 */
static int ensure_clone(rados_ioctx_t io, const struct journal_entry *e, const char *image,
                        const char *source_image, const char *temp)
{
	struct image_info *info = NULL;
	int r;

	r = image_stat(io, image, &info);
	if (r == 0) {
		image_info_free(info);
		return 0;
	}
	if (r != -ENOENT)
		return r;

	r = image_snap_create(io, source_image, temp);
	if (r < 0 && r != -EEXIST)
		return r;
	if (r == 0)
		failpoint("snapshot-create:after-source-snap");

	r = image_clone(io, source_image, temp, io, image, 0, NULL);
	if (r == -EEXIST) {
		/* Taken but not openable: half cloned, by a peer now or by a dead process. */
		r = image_stat(io, image, &info);
		if (r == 0) {
			image_info_free(info);
			return 0;
		}
		if (r != -ENOENT)
			return r;
		if (!journal_entry_stale(e, F_RESERVED_AT, STALE_RESERVATION_SEC))
			return log_debug_errno(-EAGAIN, "Image %s is being cloned elsewhere",
			                       image);
		r = image_remove(io, image);
		if (r < 0)
			return r;
		r = image_clone(io, source_image, temp, io, image, 0, NULL);
		if (r == -EEXIST)
			return -EAGAIN;
	}
	if (r < 0)
		return r;
	failpoint("snapshot-create:after-clone");
	return 1;
}

/* Records the cut: its time (the temporary snapshot's, else the clone's) and size. */
static int record_cut(rados_ioctx_t io, const struct journal_entry *e, const char *image,
                      const char *source_image, const char *temp)
{
	char created_str[32], size_str[24];
	struct journal_field set[] = {
		{ F_STATE, STATE_CLONED },
		{ F_CREATED_AT, created_str },
		{ F_SIZE, size_str },
	};
	struct image_info *info = NULL;
	struct image_snap snap = {};
	struct timespec created;
	int r;

	r = image_stat(io, image, &info);
	if (r < 0)
		return r;
	created = info->created;
	snprintf(size_str, sizeof(size_str), "%" PRIu64, info->size);
	image_info_free(info);
	if (image_snap_stat(io, source_image, temp, &snap) == 0) {
		created = snap.created;
		image_snap_done(&snap);
	}
	snapshot_time_format(&created, created_str);
	return journal_entry_update(io, e, set, ELEMENTSOF(set), NULL, 0);
}

/* -EEXIST unless the entry was made for this name and source; -EUCLEAN for another name. */
static int entry_matches(const struct journal_entry *e, const char *name, const char *source)
{
	if (!streq_ptr(journal_entry_get(e, F_NAME), name))
		return log_debug_errno(-EUCLEAN, "Journal entry %s belongs to another name",
		                       e->uuid);
	if (!streq_ptr(journal_entry_get(e, F_SOURCE), source))
		return log_debug_errno(-EEXIST, "Snapshot %s exists with source %s", name,
		                       strempty(journal_entry_get(e, F_SOURCE)));
	return 0;
}

int snapshot_create(struct cluster *c, const struct snapshot_request *req, struct snapshot **ret)
{
	_cleanup_ioctx_ rados_ioctx_t io = NULL;
	_cleanup_free_ char *pool_name = NULL;
	_cleanup_(volume_freep) struct volume *src = NULL;
	char source[VOLUME_ID_MAX + 1];
	const struct volume_id *sv;
	unsigned depth_max;
	int r;

	if (!req || !journal_name_valid(req->name) || !req->source ||
	    req->source->kind != VOLUME_ID_VOLUME || volume_id_encode(req->source, source) < 0)
		return -EINVAL;
	sv = req->source;
	depth_max = req->clone_depth_max ? req->clone_depth_max : SNAPSHOT_CLONE_DEPTH_DEFAULT;

	r = cluster_ioctx_open_by_id(c, sv->pool_id, sv->rados_namespace, &io);
	if (r < 0)
		return r; /* -ENOENT: the source's pool is gone, so is the source */
	r = cluster_ioctx_pool_name(io, &pool_name);
	if (r < 0)
		return r;

	for (unsigned attempt = 0; attempt < ATTEMPTS; attempt++) {
		_cleanup_journal_entry_ struct journal_entry *e = NULL;
		char candidate[JOURNAL_UUID_LEN + 1], uuid[JOURNAL_UUID_LEN + 1];
		char temp[TEMP_SNAP_MAX];
		const char *state, *image, *source_image;
		struct volume_id sid;
		unsigned depth = 0;

		/* A new snapshot needs its source; one already cut does not. */
		r = journal_lookup(io, JOURNAL_SNAPSHOT, req->name, uuid);
		if (r < 0 && r != -ENOENT)
			return r;
		if (r == -ENOENT && !src) {
			r = volume_lookup(c, sv, &src);
			if (r < 0)
				return log_debug_errno(r, "Source volume %s: %m", source);
		}

		/* 1. The name -> uuid reservation. */
		r = journal_uuid_new(candidate);
		if (r < 0)
			return r;
		r = journal_reserve(io, JOURNAL_SNAPSHOT, req->name, candidate, uuid);
		if (r < 0)
			return r;
		if (r > 0)
			failpoint("snapshot-create:after-reserve");

		/* 2. The entry object. */
		r = journal_entry_read(io, JOURNAL_SNAPSHOT, uuid, &e);
		if (r == -ENOENT) {
			if (!src) {
				r = volume_lookup(c, sv, &src);
				if (r == -ENOENT)
					create_rollback(io, req->name, uuid);
				if (r < 0)
					return log_debug_errno(r, "Source volume %s: %m", source);
			}
			r = entry_create(io, uuid, req->name, source, src->image);
			if (r < 0 && r != -EEXIST)
				return r;
			if (r == 0)
				failpoint("snapshot-create:after-object");
			continue; /* read it back */
		}
		if (r < 0)
			return r;
		r = entry_matches(e, req->name, source);
		if (r < 0)
			return r;
		r = volume_id_make(VOLUME_ID_SNAPSHOT, sv->cluster_id, sv->pool_id,
		                   sv->rados_namespace, uuid, &sid);
		if (r < 0)
			return r;
		state = strempty(journal_entry_get(e, F_STATE));
		image = journal_entry_get(e, F_IMAGE);
		source_image = journal_entry_get(e, F_SOURCE_IMAGE);
		if (!image || !source_image)
			return -EUCLEAN;
		temp_snap_name(uuid, temp);

		if (strcmp(state, STATE_DELETING) == 0)
			return log_debug_errno(-EAGAIN, "Snapshot %s is being deleted", req->name);

		if (strcmp(state, STATE_RESERVED) == 0) {
			/* 3. Temporary snapshot on the source, clone, record the cut. */
			r = ensure_clone(io, e, image, source_image, temp);
			if (r == -ENOENT) {
				/* The source went away before anything was cut from it. */
				create_rollback(io, req->name, uuid);
				return log_debug_errno(r, "Source volume %s is gone", source);
			}
			if (r < 0)
				return r;
			r = record_cut(io, e, image, source_image, temp);
			if (r == -ESTALE || r == -ENOENT)
				continue;
			if (r < 0)
				return r;
			failpoint("snapshot-create:after-record");
			continue;
		}

		if (strcmp(state, STATE_CLONED) == 0) {
			_cleanup_(snapshot_freep) struct snapshot *s = NULL;
			struct journal_field mark[] = { { F_STATE, STATE_CREATED } };

			/* 4. The temporary snapshot goes (to the trash namespace: the clone hangs
			 * from it). */
			r = image_snap_exists(io, source_image, temp);
			if (r < 0)
				return r;
			if (r > 0) {
				r = image_snap_remove(io, source_image, temp);
				if (r < 0)
					return r;
				failpoint("snapshot-create:after-source-unsnap");
			}

			/* 5. Flatten when the chain is too deep; not ready until done. A
			 * flatten still running from an earlier call is waited for first. */
			r = flatten_join(c, sv->pool_id, sv->rados_namespace, image, false,
			                 req->deadline_usec);
			if (r == 0)
				r = image_clone_depth(io, image, &depth);
			if (r < 0 && r != -EINPROGRESS)
				return r;
			if (r == -EINPROGRESS || depth > depth_max) {
				r = flatten_join(c, sv->pool_id, sv->rados_namespace, image, true,
				                 req->deadline_usec);
				if (r == -EINPROGRESS) {
					r = snapshot_new(e, &sid, pool_name, &s);
					if (r < 0)
						return r;
					log_debug("Snapshot %s: flatten of %s (depth %u) pending",
					          req->name, image, depth);
					*ret = TAKE_PTR(s);
					return 0;
				}
				if (r < 0)
					return r;
				failpoint("snapshot-create:after-flatten");
			}

			/* 6. The restore point, then "created". */
			r = image_snap_create(io, image, SNAPSHOT_RESTORE_POINT);
			if (r < 0 && r != -EEXIST)
				return r;
			if (r == 0)
				failpoint("snapshot-create:after-restore-point");
			r = journal_entry_update(io, e, mark, ELEMENTSOF(mark), NULL, 0);
			if (r == -ESTALE || r == -ENOENT)
				continue;
			if (r < 0)
				return r;
			log_debug("Snapshot %s of %s created as %s", req->name, source, uuid);
			continue;
		}

		if (strcmp(state, STATE_CREATED) == 0)
			return snapshot_new(e, &sid, pool_name, ret);
		return log_debug_errno(-EUCLEAN, "Snapshot entry %s has unknown state '%s'", uuid,
		                       state);
	}
	return log_debug_errno(-EAGAIN, "Creating snapshot %s lost too many races", req->name);
}

/* ---- lookup, delete ---- */

int snapshot_delete(struct cluster *c, const struct volume_id *id, uint64_t deadline_usec)
{
	_cleanup_ioctx_ rados_ioctx_t io = NULL;
	int r;

	r = snapshot_pool_open(c, id, &io);
	if (r == -ENOENT)
		return 0;
	if (r < 0)
		return r;

	for (unsigned attempt = 0; attempt < ATTEMPTS; attempt++) {
		_cleanup_journal_entry_ struct journal_entry *e = NULL;
		_cleanup_free_ char *chain = NULL;
		const char *name, *image, *source_image, *state;
		char temp[TEMP_SNAP_MAX];

		r = journal_entry_read(io, JOURNAL_SNAPSHOT, id->uuid, &e);
		if (r == -ENOENT) {
			log_debug("Snapshot %s is already gone", id->uuid);
			return 0;
		}
		if (r < 0)
			return r;
		name = journal_entry_get(e, F_NAME);
		image = journal_entry_get(e, F_IMAGE);
		source_image = journal_entry_get(e, F_SOURCE_IMAGE);
		state = strempty(journal_entry_get(e, F_STATE));
		if (!image)
			return -EUCLEAN;
		temp_snap_name(id->uuid, temp);

		/* 1. Record the chain for garbage collection, and mark. */
		if (strcmp(state, STATE_DELETING) != 0) {
			struct journal_field mark[3] = { { F_STATE, STATE_DELETING },
				                         { F_PREV_STATE, (char *)state } };
			size_t n_mark = 2;

			r = flatten_join(c, id->pool_id, id->rados_namespace, image, false,
			                 deadline_usec);
			if (r == -EINPROGRESS)
				return log_debug_errno(-EAGAIN, "Snapshot %s is being flattened",
				                       id->uuid);
			r = clone_chain_get(c, id->pool_id, id->rados_namespace, image, &chain);
			if (r < 0)
				return r;
			if (isempty(state))
				mark[1].value = STATE_RESERVED;
			if (chain)
				mark[n_mark++] = (struct journal_field){ F_CHAIN, chain };
			r = journal_entry_update(io, e, mark, n_mark, NULL, 0);
			if (r == -ESTALE)
				continue;
			if (r == -ENOENT)
				return 0;
			if (r < 0)
				return r;
			failpoint("snapshot-delete:after-mark");
		} else {
			r = journal_entry_get_dup(e, F_CHAIN, &chain);
			if (r < 0)
				return r;
		}

		/* 2. The temporary snapshot of a create that died, and the restore point. */
		if (source_image) {
			r = image_snap_remove(io, source_image, temp);
			if (r < 0)
				return r;
		}
		r = image_snap_remove(io, image, SNAPSHOT_RESTORE_POINT);
		if (r < 0)
			return r;
		failpoint("snapshot-delete:after-unsnap");

		/* 3. The image: removed, or trashed while restored volumes hang from it. (Its
		 * snapshots changed just now: retire looks at it afresh.) */
		r = clone_chain_retire(c, id->pool_id, id->rados_namespace, image, NULL);
		if (r < 0)
			return r;
		failpoint("snapshot-delete:after-image");

		/* 4. Garbage collection up the chain, then the journal. */
		r = clone_chain_collect(c, chain, r > 0);
		if (r < 0)
			return r;
		if (name) {
			r = journal_unreserve(io, JOURNAL_SNAPSHOT, name, id->uuid);
			if (r < 0)
				return r;
		}
		failpoint("snapshot-delete:after-unreserve");
		r = journal_entry_remove(io, JOURNAL_SNAPSHOT, id->uuid, 0);
		if (r < 0)
			return r;
		log_debug("Snapshot %s (%s) deleted", id->uuid, strempty(name));
		return 0;
	}
	return -EAGAIN;
}

/* ---- list ---- */

struct list_page {
	const char *cluster_id;
	int64_t pool_id;
	const char *rados_namespace;
	const char *pool_name;
	const char *source_id;
	struct snapshot *snaps;
	size_t n;
};

/* Appends the snapshot of one journal entry to the page if it is cut (and of source_id). */
static int list_one(const struct journal_entry *e, const struct journal_name *jn, void *userdata)
{
	struct list_page *page = userdata;
	struct volume_id sid;
	int r;

	if (!streq_ptr(journal_entry_get(e, F_NAME), jn->name) ||
	    (page->source_id && !streq_ptr(journal_entry_get(e, F_SOURCE), page->source_id)))
		return 0;
	r = volume_id_make(VOLUME_ID_SNAPSHOT, page->cluster_id, page->pool_id,
	                   page->rados_namespace, jn->uuid, &sid);
	if (r < 0)
		return r;
	r = snapshot_fill(&page->snaps[page->n], e, &sid, page->pool_name);
	if (r < 0) {
		snapshot_done(&page->snaps[page->n]);
		return r == -EUCLEAN ? 0 : r; /* not cut yet, being deleted, or damaged */
	}
	page->n++;
	return 0;
}

int snapshot_list(struct cluster *c, const char *cluster_id, const char *pool,
                  const char *rados_namespace, const char *source_id, const char *token, size_t max,
                  struct snapshot **ret, size_t *ret_n, char **ret_next_token)
{
	_cleanup_ioctx_ rados_ioctx_t io = NULL;
	_cleanup_free_ char *pool_name = NULL;
	struct list_page page = { .cluster_id = cluster_id,
		                  .rados_namespace = rados_namespace,
		                  .source_id = source_id };
	char *next = NULL;
	int r;

	if (!volume_id_cluster_id_valid(cluster_id) || isempty(pool))
		return -EINVAL;
	if (max == 0 || max > SNAPSHOT_LIST_PAGE_MAX)
		max = SNAPSHOT_LIST_PAGE_MAX;

	r = cluster_ioctx_open(c, pool, rados_namespace, &io);
	if (r < 0)
		return r;
	page.pool_id = rados_ioctx_get_id(io);
	r = cluster_ioctx_pool_name(io, &pool_name);
	if (r < 0)
		return r;
	page.pool_name = pool_name;
	page.snaps = calloc(max + 1, sizeof(*page.snaps));
	if (!page.snaps)
		return -ENOMEM;
	r = journal_list_page(io, JOURNAL_SNAPSHOT, token, max, list_one, &page, &next);
	if (r < 0) {
		snapshot_list_free(page.snaps, page.n);
		return r;
	}
	*ret = page.snaps;
	*ret_n = page.n;
	*ret_next_token = next;
	return 0;
}
