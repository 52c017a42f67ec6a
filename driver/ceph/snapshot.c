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
#include "driver/ceph/cluster_ioctx.h"
#include "driver/ceph/image.h"
#include "driver/ceph/journal.h"
#include "driver/ceph/snapshot.h"
#include "driver/ceph/volume.h"
#include "driver/ceph/ceph_lib.h" /* last: redirects the librados/librbd names */

/* Entry fields. */
#define F_NAME         "name"
#define F_SOURCE       "source"
#define F_SOURCE_IMAGE "source_image"
#define F_IMAGE        "image"
#define F_STATE        "state"
#define F_PREV_STATE   "prev_state"
#define F_RESERVED_AT  "reserved_at"
#define F_CREATED_AT   "created_at"
#define F_SIZE         "size"
#define F_CHAIN        "chain"

#define STATE_RESERVED "reserved"
#define STATE_CLONED   "cloned"
#define STATE_CREATED  "created"
#define STATE_DELETING "deleting"

/* Rounds of read-check-write before giving up with -EAGAIN (see volume.c). */
#define ATTEMPTS 16
/* A half-created snapshot image older than this is the remains of a crash (see volume.c). */
#define STALE_RESERVATION_SEC 600
#define IMAGE_NAME_MAX        (sizeof(SNAPSHOT_IMAGE_PREFIX) + JOURNAL_UUID_LEN)
#define TEMP_SNAP_MAX         (sizeof(SNAPSHOT_TEMP_CLONE_PREFIX) + JOURNAL_UUID_LEN)

/* ---- small helpers ---- */

static int parse_u64(const char *s, uint64_t *ret)
{
	uint64_t v = 0;

	if (isempty(s))
		return -EINVAL;
	for (const char *p = s; *p; p++) {
		if (*p < '0' || *p > '9')
			return -EINVAL;
		if (v > (UINT64_MAX - (uint64_t)(*p - '0')) / 10)
			return -EINVAL;
		v = v * 10 + (uint64_t)(*p - '0');
	}
	*ret = v;
	return 0;
}

static bool streq_ptr(const char *a, const char *b)
{
	return strcmp(strempty(a), strempty(b)) == 0;
}

static bool deadline_none(uint64_t deadline_usec)
{
	return deadline_usec == 0 || deadline_usec == UINT64_MAX;
}

/* "<seconds>.<nanoseconds>" <-> timespec. */
static void time_format(const struct timespec *ts, char ret[static 32])
{
	snprintf(ret, 32, "%lld.%09ld", (long long)ts->tv_sec, (long)ts->tv_nsec);
}

static int time_parse(const char *s, struct timespec *ret)
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

static void temp_snap_name(const char *uuid, char ret[static TEMP_SNAP_MAX])
{
	snprintf(ret, TEMP_SNAP_MAX, SNAPSHOT_TEMP_SNAP_PREFIX "%s", uuid);
}

/* ---- struct snapshot ---- */

static void snapshot_done(struct snapshot *s)
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

/* Fills s from a cut ("cloned" or "created") entry. -EUCLEAN for an entry that is not. */
static int snapshot_fill(struct snapshot *s, const struct journal_entry *e,
                         const struct volume_id *sid, const char *pool)
{
	const char *name = journal_entry_get(e, F_NAME);
	const char *source = journal_entry_get(e, F_SOURCE);
	const char *image = journal_entry_get(e, F_IMAGE);
	const char *state = strempty(journal_entry_get(e, F_STATE));
	int r;

	if (!name || !source || !image ||
	    (strcmp(state, STATE_CLONED) != 0 && strcmp(state, STATE_CREATED) != 0) ||
	    parse_u64(journal_entry_get(e, F_SIZE), &s->size) < 0 ||
	    time_parse(journal_entry_get(e, F_CREATED_AT), &s->created) < 0)
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

static int snapshot_new(const struct journal_entry *e, const struct volume_id *sid,
                        const char *pool, struct snapshot **ret)
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

/* Opens the ioctx of a snapshot id. -ENOENT for a volume id or a gone pool. */
static int open_snapshot_pool(struct cluster *c, const struct volume_id *id, rados_ioctx_t *ret)
{
	if (!id)
		return -EINVAL;
	if (id->kind != VOLUME_ID_SNAPSHOT)
		return -ENOENT;
	return cluster_ioctx_open_by_id(c, id->pool_id, id->rados_namespace, ret);
}

/* ---- background flattens ---- */

/*
 * A flatten that runs in a thread of its own, so that a call can stop waiting at its deadline
 * while the flatten goes on, and the retry can wait for the same flatten. In the table while it
 * runs. refs: the thread, and each caller waiting; the last one frees it.
 */
struct flatten_job {
	struct flatten_job *next;
	struct cluster *cluster; /* the thread's reference, dropped before done is set */
	int64_t pool_id;
	char *rados_namespace;
	char *image;
	bool done;
	int result;
	unsigned refs;
};

/* Process-global: see the header comment ("The table of running flattens"). */
static pthread_mutex_t jobs_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t jobs_cond;
static pthread_once_t jobs_once = PTHREAD_ONCE_INIT;
static struct flatten_job *jobs;

static void jobs_init(void)
{
	pthread_condattr_t attr;

	pthread_condattr_init(&attr);
	pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
	pthread_cond_init(&jobs_cond, &attr);
	pthread_condattr_destroy(&attr);
}

static struct flatten_job *job_find(int64_t pool_id, const char *ns, const char *image)
{
	for (struct flatten_job *j = jobs; j; j = j->next)
		if (j->pool_id == pool_id && strcmp(j->rados_namespace, ns) == 0 &&
		    strcmp(j->image, image) == 0)
			return j;
	return NULL;
}

static void job_unlink(struct flatten_job *j)
{
	for (struct flatten_job **p = &jobs; *p; p = &(*p)->next)
		if (*p == j) {
			*p = j->next;
			j->next = NULL;
			return;
		}
}

/* Drops a reference; jobs_lock held. */
static void job_unref(struct flatten_job *j)
{
	if (--j->refs > 0)
		return;
	cluster_unref(j->cluster);
	free(j->rados_namespace);
	free(j->image);
	free(j);
}

static void *flatten_thread(void *arg)
{
	struct flatten_job *j = arg;
	rados_ioctx_t io = NULL;
	uint64_t t0 = cluster_now_usec();
	int r;

	/* Test-only: a flatten that outlasts the call, whatever the machine's speed. */
	if (failpoint_armed("flatten:slow")) {
		struct timespec ts = { .tv_sec = 3 };

		nanosleep(&ts, NULL);
	}
	r = cluster_ioctx_open_by_id(j->cluster, j->pool_id, j->rados_namespace, &io);
	if (r >= 0) {
		r = image_flatten(io, j->image);
		cluster_ioctx_close(io);
	}
	if (r == -ENOENT)
		r = 0; /* gone: nothing hangs from a parent any more */
	log_debug("Flatten of %s finished after %.1fs: %d", j->image,
	          (double)(cluster_now_usec() - t0) / 1e6, r);
	/* No librados state may outlive "done": a caller may fork right after it (tests). */
	j->cluster = cluster_unref(j->cluster);

	pthread_mutex_lock(&jobs_lock);
	job_unlink(j);
	j->done = true;
	j->result = r;
	pthread_cond_broadcast(&jobs_cond);
	job_unref(j);
	pthread_mutex_unlock(&jobs_lock);
	return NULL;
}

/* Starts a job for the image; jobs_lock held. */
static int job_start(struct cluster *c, int64_t pool_id, const char *ns, const char *image,
                     struct flatten_job **ret)
{
	struct flatten_job *j = calloc(1, sizeof(*j));
	pthread_attr_t attr;
	pthread_t thread;
	int r;

	if (!j)
		return -ENOMEM;
	j->pool_id = pool_id;
	j->rados_namespace = strdup(ns);
	j->image = strdup(image);
	if (!j->rados_namespace || !j->image) {
		free(j->rados_namespace);
		free(j->image);
		free(j);
		return -ENOMEM;
	}
	j->cluster = cluster_ref(c);
	j->refs = 1; /* the thread's */
	j->next = jobs;
	jobs = j;

	pthread_attr_init(&attr);
	pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
	r = pthread_create(&thread, &attr, flatten_thread, j);
	pthread_attr_destroy(&attr);
	if (r != 0) {
		job_unlink(j);
		job_unref(j);
		return -r;
	}
	*ret = j;
	return 0;
}

int snapshot_flatten(struct cluster *c, int64_t pool_id, const char *rados_namespace,
                     const char *image, bool start, uint64_t deadline_usec)
{
	const char *ns = strempty(rados_namespace);
	struct flatten_job *j;
	bool done;
	int r = 0;

	if (!c || isempty(image))
		return -EINVAL;
	pthread_once(&jobs_once, jobs_init);
	pthread_mutex_lock(&jobs_lock);
	j = job_find(pool_id, ns, image);
	if (!j && !start) {
		pthread_mutex_unlock(&jobs_lock);
		return 0;
	}
	if (j)
		log_debug("Waiting for the running flatten of %s", image);
	else {
		r = job_start(c, pool_id, ns, image, &j);
		if (r < 0) {
			pthread_mutex_unlock(&jobs_lock);
			return log_debug_errno(r, "Cannot start a thread to flatten %s: %m", image);
		}
		log_debug("Flattening %s in the background", image);
	}
	j->refs++;
	while (!j->done) {
		struct timespec ts;

		if (deadline_none(deadline_usec)) {
			pthread_cond_wait(&jobs_cond, &jobs_lock);
			continue;
		}
		ts = (struct timespec){ .tv_sec = (time_t)(deadline_usec / 1000000),
			                .tv_nsec = (long)(deadline_usec % 1000000) * 1000 };
		if (pthread_cond_timedwait(&jobs_cond, &jobs_lock, &ts) == ETIMEDOUT)
			break;
	}
	done = j->done;
	r = j->result;
	job_unref(j);
	pthread_mutex_unlock(&jobs_lock);
	if (!done)
		return log_debug_errno(-EINPROGRESS, "Flatten of %s still running at the deadline",
		                       image);
	return r;
}

/* ---- clone chains and garbage collection ---- */

int snapshot_chain_format(const struct image_link *links, size_t n, char **ret)
{
	char *s = NULL;

	for (size_t i = 0; i < n; i++) {
		char *g;
		int k;

		k = asprintf(&g, "%s%s%" PRId64 "/%s/%s", s ? s : "", i ? "," : "",
		             links[i].pool_id, links[i].pool_namespace, links[i].image_id);
		free(s);
		s = NULL;
		if (k < 0)
			return -ENOMEM;
		s = g;
	}
	*ret = s;
	return 0;
}

int snapshot_chain_get(struct cluster *c, int64_t pool_id, const char *rados_namespace,
                       const char *image, char **ret)
{
	_cleanup_ioctx_ rados_ioctx_t io = NULL;
	struct image_link *links = NULL;
	size_t n = 0;
	int r;

	r = cluster_ioctx_open_by_id(c, pool_id, rados_namespace, &io);
	if (r == 0)
		r = image_chain(io, image, &links, &n);
	if (r == -ENOENT) {
		*ret = NULL;
		return 0;
	}
	if (r < 0)
		return r;
	r = snapshot_chain_format(links, n, ret);
	image_chain_free(links, n);
	return r;
}

static bool chain_chars_ok(const char *s, size_t n, const char *extra)
{
	for (size_t i = 0; i < n; i++) {
		char ch = s[i];
		if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
		      (ch >= '0' && ch <= '9') || strchr(extra, ch)))
			return false;
	}
	return true;
}

/* Parses one "<pool id>/<namespace>/<image id>" link in place. */
static int chain_link_parse(char *item, int64_t *ret_pool, const char **ret_ns, const char **ret_id)
{
	char *ns, *id;
	uint64_t pool;

	ns = strchr(item, '/');
	if (!ns)
		return -EUCLEAN;
	*ns++ = 0;
	id = strchr(ns, '/');
	if (!id)
		return -EUCLEAN;
	*id++ = 0;
	if (parse_u64(item, &pool) < 0 || pool > INT64_MAX ||
	    !chain_chars_ok(ns, strlen(ns), "._-") || isempty(id) ||
	    !chain_chars_ok(id, strlen(id), ""))
		return -EUCLEAN;
	*ret_pool = (int64_t)pool;
	*ret_ns = ns;
	*ret_id = id;
	return 0;
}

int snapshot_chain_collect(struct cluster *c, const char *chain, bool first_gone)
{
	_cleanup_free_ char *copy = NULL;
	char *item, *next;
	int r;

	if (isempty(chain))
		return 0;
	copy = strdup(chain);
	if (!copy)
		return -ENOMEM;
	for (item = copy; item; item = next) {
		_cleanup_ioctx_ rados_ioctx_t io = NULL;
		const char *ns, *id;
		int64_t pool_id;

		next = strchr(item, ',');
		if (next)
			*next++ = 0;
		r = chain_link_parse(item, &pool_id, &ns, &id);
		if (r < 0)
			return log_debug_errno(r, "Malformed clone chain '%s'", chain);
		if (item == copy && first_gone)
			continue; /* what image_trash_collect() would find out, at a price */
		r = cluster_ioctx_open_by_id(c, pool_id, ns, &io);
		if (r == -ENOENT)
			continue; /* the pool is gone, and its images with it */
		if (r < 0)
			return r;
		r = image_trash_collect(io, id);
		if (r < 0)
			return r;
		if (r == 0)
			return 0; /* live, or still has children: it protects the rest */
		if (r == 2)
			failpoint("snapshot-gc:after-remove");
	}
	return 0;
}

int snapshot_image_retire(struct cluster *c, int64_t pool_id, const char *rados_namespace,
                          const char *image, const struct image_survey *known)
{
	_cleanup_ioctx_ rados_ioctx_t io = NULL;
	_cleanup_(image_survey_freep) struct image_survey *own = NULL;
	const struct image_survey *s = known;
	size_t foreign = 0, removed = 0, user = 0, other, watchers = 0;
	int r = 0;

	r = cluster_ioctx_open_by_id(c, pool_id, rados_namespace, &io);
	if (r == -ENOENT)
		return 0;
	if (r < 0)
		return r;
	if (!s) {
		r = image_survey(io, image, IMAGE_SURVEY_SNAPS, &own);
		/* Not there: gone, trashed, or the remains of a crash (which this removes). */
		if (r == -ENOENT)
			return image_remove(io, image);
		if (r < 0)
			return r;
		s = own;
	}

	/* Leftover temporary snapshots of creates that died: ours to remove. With a child they
	 * move to the trash namespace, which makes this image a parent. */
	for (size_t i = 0; r >= 0 && i < s->n_snaps; i++) {
		const char *snap = s->snaps[i].name;

		if (strncmp(snap, SNAPSHOT_TEMP_PREFIX, strlen(SNAPSHOT_TEMP_PREFIX)) != 0) {
			foreign++;
			continue;
		}
		r = image_snap_remove(io, image, snap);
		removed++;
	}
	if (r < 0)
		return r;
	if (foreign > 0)
		return log_debug_errno(-EBUSY, "Image %s has %zu snapshots not taken by rbdcsi",
		                       image, foreign);

	other = s->n_other_snaps;
	if (removed > 0) {
		/* What those removals left in the trash namespace. */
		r = image_snap_counts(io, image, &user, &other);
		if (r == -ENOENT)
			return image_remove(io, image);
		if (r < 0)
			return r;
	}
	if (other > 0) {
		/* rbd_remove refuses an image with watchers by itself (-EBUSY, untouched); the
		 * move to the trash is checked here, so the common path saves an image open. */
		r = image_watchers(io, image, &watchers);
		if (r == -ENOENT)
			return image_remove(io, image);
		if (r < 0)
			return r;
		if (watchers > 0)
			return log_debug_errno(-EBUSY, "Image %s has %zu watchers", image,
			                       watchers);
		/* Clone children hang from it: to the trash, until the last one goes. */
		log_debug("Image %s has %zu snapshots kept for clone children: to the trash", image,
		          other);
		r = image_trash_move(io, image);
		return r < 0 ? r : 0;
	}
	return image_remove(io, image);
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

static bool reservation_stale(const struct journal_entry *e)
{
	uint64_t at;

	if (parse_u64(journal_entry_get(e, F_RESERVED_AT), &at) < 0)
		return true;
	return (uint64_t)time(NULL) > at + STALE_RESERVATION_SEC;
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
		if (!reservation_stale(e))
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
	time_format(&created, created_str);
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
			r = snapshot_flatten(c, sv->pool_id, sv->rados_namespace, image, false,
			                     req->deadline_usec);
			if (r == 0)
				r = image_clone_depth(io, image, &depth);
			if (r < 0 && r != -EINPROGRESS)
				return r;
			if (r == -EINPROGRESS || depth > depth_max) {
				r = snapshot_flatten(c, sv->pool_id, sv->rados_namespace, image,
				                     true, req->deadline_usec);
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

int snapshot_lookup(struct cluster *c, const struct volume_id *id, struct snapshot **ret)
{
	_cleanup_ioctx_ rados_ioctx_t io = NULL;
	_cleanup_journal_entry_ struct journal_entry *e = NULL;
	_cleanup_free_ char *pool_name = NULL;
	struct image_info *info = NULL;
	const char *state;
	int r;

	r = open_snapshot_pool(c, id, &io);
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

int snapshot_delete(struct cluster *c, const struct volume_id *id, uint64_t deadline_usec)
{
	_cleanup_ioctx_ rados_ioctx_t io = NULL;
	int r;

	r = open_snapshot_pool(c, id, &io);
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

			r = snapshot_flatten(c, id->pool_id, id->rados_namespace, image, false,
			                     deadline_usec);
			if (r == -EINPROGRESS)
				return log_debug_errno(-EAGAIN, "Snapshot %s is being flattened",
				                       id->uuid);
			r = snapshot_chain_get(c, id->pool_id, id->rados_namespace, image, &chain);
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
			const char *recorded = journal_entry_get(e, F_CHAIN);

			if (recorded) {
				chain = strdup(recorded);
				if (!chain)
					return -ENOMEM;
			}
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
		r = snapshot_image_retire(c, id->pool_id, id->rados_namespace, image, NULL);
		if (r < 0)
			return r;
		failpoint("snapshot-delete:after-image");

		/* 4. Garbage collection up the chain, then the journal. */
		r = snapshot_chain_collect(c, chain, r > 0);
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
