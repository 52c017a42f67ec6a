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
#include "driver/base/parse.h"
#include "driver/ceph/clone_chain.h"
#include "driver/ceph/cluster_ioctx.h"
#include "driver/ceph/flatten.h"
#include "driver/ceph/image.h"
#include "driver/ceph/journal.h"
#include "driver/ceph/snapshot_lookup.h"
#include "driver/ceph/volume.h"
#include "driver/ceph/ceph_lib.h" /* last: redirects the librados/librbd names */

/* Entry fields. */
#define F_NAME        "name"
#define F_IMAGE       "image"
#define F_REQ_SIZE    "req_size"
#define F_SIZE        "size"
#define F_PARAMS      "params"
#define F_FEATURES    "features"
#define F_DATA_POOL   "data_pool"
#define F_STATE       "state"
#define F_PREV_STATE  "prev_state"
#define F_RESERVED_AT "reserved_at"
#define F_EXCLUSIVE   "exclusive"
#define F_SOURCE      "source"
#define F_CHAIN       "chain"
#define F_PVC_NAME    "pvc_name"
#define F_PVC_NS      "pvc_namespace"
#define F_PV_NAME     "pv_name"
#define F_TOPOLOGY    "topology"
#define ATTACH_PREFIX "attach."

#define STATE_RESERVED "reserved"
#define STATE_CREATED  "created"
#define STATE_DELETING "deleting"

/* Rounds of read-check-write before giving up with -EAGAIN. Each lost round means another
 * writer made progress, so this only runs out under heavy contention on one volume. */
#define ATTEMPTS 16

/* ---- small helpers ---- */

static bool name_chars_ok(const char *s, size_t max)
{
	size_t n = strnlen(s, max + 1);

	if (n == 0 || n > max)
		return false;
	for (size_t i = 0; i < n; i++) {
		char ch = s[i];
		if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
		      (ch >= '0' && ch <= '9') || ch == '.' || ch == '_' || ch == '-'))
			return false;
	}
	return true;
}

static bool node_valid(const char *node)
{
	size_t n;

	if (!node)
		return false;
	n = strnlen(node, VOLUME_NODE_MAX + 1);
	if (n == 0 || n > VOLUME_NODE_MAX)
		return false;
	for (size_t i = 0; i < n; i++)
		if (node[i] <= ' ' || node[i] > '~')
			return false;
	return true;
}

static const char *access_string(enum volume_access a)
{
	return a == VOLUME_ACCESS_RO ? "ro" : "rw";
}

static bool streq_ptr(const char *a, const char *b)
{
	return strcmp(strempty(a), strempty(b)) == 0;
}

/* ---- struct volume ---- */

static void volume_done(struct volume *v)
{
	free(v->name);
	free(v->pool);
	free(v->image);
	free(v->data_pool);
	free(v->features);
	free(v->fingerprint);
	free(v->source_id);
	free(v->exclusive_node);
	free(v->pvc_name);
	free(v->pvc_namespace);
	free(v->pv_name);
	free(v->topology);
	for (size_t i = 0; i < v->n_attachments; i++)
		free(v->attachments[i].node);
	free(v->attachments);
	*v = (struct volume){};
}

struct volume *volume_free(struct volume *v)
{
	if (!v)
		return NULL;
	volume_done(v);
	free(v);
	return NULL;
}

void volume_list_free(struct volume *v, size_t n)
{
	if (!v)
		return;
	for (size_t i = 0; i < n; i++)
		volume_done(&v[i]);
	free(v);
}

static int strdup_optional(const char *s, char **ret)
{
	*ret = NULL;
	if (!s)
		return 0;
	*ret = strdup(s);
	return *ret ? 0 : -ENOMEM;
}

/* Fills v from a journal entry. size is the capacity to report. */
static int volume_fill(struct volume *v, const struct journal_entry *e, const struct volume_id *vid,
                       const char *pool, uint64_t size)
{
	const char *name = journal_entry_get(e, F_NAME);
	const char *image = journal_entry_get(e, F_IMAGE);
	const char *excl = journal_entry_get(e, F_EXCLUSIVE);
	const char *data_pool = journal_entry_get(e, F_DATA_POOL);
	const char *source = journal_entry_get(e, F_SOURCE);
	uint64_t features = 0;
	size_t n_att = 0;
	int r;

	if (!name || !image ||
	    parse_u64(journal_entry_get(e, F_REQ_SIZE), &v->requested_size) < 0 ||
	    parse_u64(journal_entry_get(e, F_FEATURES), &features) < 0)
		return -EUCLEAN;
	r = volume_id_encode(vid, v->id);
	if (r < 0)
		return r;
	v->vid = *vid;
	v->size = size;
	r = image_features_format(features, &v->features);
	if (r < 0)
		return r;
	v->name = strdup(name);
	v->pool = strdup(pool);
	v->image = strdup(image);
	v->fingerprint = strdup(strempty(journal_entry_get(e, F_PARAMS)));
	v->data_pool = data_pool ? strdup(data_pool) : NULL;
	v->exclusive_node = excl ? strdup(excl) : NULL;
	v->source_id = source ? strdup(source) : NULL;
	if (!v->name || !v->pool || !v->image || !v->fingerprint || (data_pool && !v->data_pool) ||
	    (excl && !v->exclusive_node) || (source && !v->source_id))
		return -ENOMEM;
	r = strdup_optional(journal_entry_get(e, F_PVC_NAME), &v->pvc_name);
	r = r ?: strdup_optional(journal_entry_get(e, F_PVC_NS), &v->pvc_namespace);
	r = r ?: strdup_optional(journal_entry_get(e, F_PV_NAME), &v->pv_name);
	r = r ?: strdup_optional(journal_entry_get(e, F_TOPOLOGY), &v->topology);
	if (r < 0)
		return r;

	for (size_t i = 0; i < e->n_fields; i++)
		if (strncmp(e->fields[i].key, ATTACH_PREFIX, strlen(ATTACH_PREFIX)) == 0)
			n_att++;
	if (n_att > 0) {
		v->attachments = calloc(n_att, sizeof(*v->attachments));
		if (!v->attachments)
			return -ENOMEM;
	}
	for (size_t i = 0; i < e->n_fields; i++) {
		const struct journal_field *f = &e->fields[i];
		struct volume_attachment *a;

		if (strncmp(f->key, ATTACH_PREFIX, strlen(ATTACH_PREFIX)) != 0)
			continue;
		a = &v->attachments[v->n_attachments];
		a->node = strdup(f->key + strlen(ATTACH_PREFIX));
		if (!a->node)
			return -ENOMEM;
		a->access = strcmp(f->value, "ro") == 0 ? VOLUME_ACCESS_RO : VOLUME_ACCESS_RW;
		v->n_attachments++;
	}
	return 0;
}

static int volume_new(const struct journal_entry *e, const struct volume_id *vid, const char *pool,
                      uint64_t size, struct volume **ret)
{
	struct volume *v = calloc(1, sizeof(*v));
	int r;

	if (!v)
		return -ENOMEM;
	r = volume_fill(v, e, vid, pool, size);
	if (r < 0) {
		volume_free(v);
		return r;
	}
	*ret = v;
	return 0;
}

static bool has_attachments(const struct journal_entry *e)
{
	for (size_t i = 0; i < e->n_fields; i++)
		if (strncmp(e->fields[i].key, ATTACH_PREFIX, strlen(ATTACH_PREFIX)) == 0)
			return true;
	return false;
}

/* ---- create ---- */

struct create_params {
	const char *name;
	uint64_t size;
	const char *fingerprint; /* never NULL */
	const char *prefix;
	uint64_t features;
	const char *data_pool; /* NULL when none */
	struct image_layout layout;
	char size_str[24];
	char features_str[24];
	const struct volume_id *source; /* NULL when none */
	char source_str[VOLUME_ID_MAX + 1];
	uint64_t size_limit;
	unsigned depth_max;
	uint64_t deadline_usec;
	const char *pvc_name; /* NULL when unknown */
	const char *pvc_namespace;
	const char *pv_name;
	const char *topology; /* NULL when none */
};

static int create_params_init(const struct volume_request *req, struct create_params *p)
{
	struct volume_id probe;
	int r;

	if (!req || !journal_name_valid(req->name) || (req->size == 0 && !req->source) ||
	    isempty(req->pool))
		return -EINVAL;
	if (req->source) {
		if (req->source->kind != VOLUME_ID_VOLUME &&
		    req->source->kind != VOLUME_ID_SNAPSHOT)
			return -EINVAL;
		r = volume_id_encode(req->source, p->source_str);
		if (r < 0)
			return -EINVAL;
		p->source = req->source;
		p->size_limit = req->size_limit;
		p->depth_max =
		        req->clone_depth_max ? req->clone_depth_max : SNAPSHOT_CLONE_DEPTH_DEFAULT;
		p->deadline_usec = req->deadline_usec;
	}
	if (req->fingerprint &&
	    strnlen(req->fingerprint, VOLUME_FINGERPRINT_MAX + 1) > VOLUME_FINGERPRINT_MAX)
		return -EINVAL;
	p->name = req->name;
	p->size = req->size;
	p->fingerprint = strempty(req->fingerprint);
	p->prefix = req->image_prefix ? req->image_prefix : VOLUME_IMAGE_PREFIX_DEFAULT;
	if (!name_chars_ok(p->prefix, VOLUME_IMAGE_PREFIX_MAX))
		return -EINVAL;
	r = image_features_parse(req->features ? req->features : VOLUME_FEATURES_DEFAULT,
	                         &p->features);
	if (r < 0)
		return r;
	p->data_pool = isempty(req->data_pool) ? NULL : req->data_pool;
	p->pvc_name = isempty(req->pvc_name) ? NULL : req->pvc_name;
	p->pvc_namespace = isempty(req->pvc_namespace) ? NULL : req->pvc_namespace;
	p->pv_name = isempty(req->pv_name) ? NULL : req->pv_name;
	p->topology = isempty(req->topology) ? NULL : req->topology;
	p->layout = (struct image_layout){
		.object_size = req->object_size,
		.stripe_unit = req->stripe_unit,
		.stripe_count = req->stripe_count,
	};
	snprintf(p->size_str, sizeof(p->size_str), "%" PRIu64, p->size);
	snprintf(p->features_str, sizeof(p->features_str), "%" PRIu64, p->features);

	/* Would the id fit? Checked before anything is written. */
	return volume_id_make(VOLUME_ID_VOLUME, req->cluster_id, 0, req->rados_namespace,
	                      "00000000-0000-0000-0000-000000000000", &probe);
}

/* -EEXIST unless the entry was made for the same request. -EUCLEAN for another name. */
static int entry_matches(const struct journal_entry *e, const struct create_params *p)
{
	char image[VOLUME_IMAGE_PREFIX_MAX + JOURNAL_UUID_LEN + 1];

	if (!streq_ptr(journal_entry_get(e, F_NAME), p->name))
		return log_debug_errno(-EUCLEAN, "Journal entry %s belongs to another name",
		                       e->uuid);
	snprintf(image, sizeof(image), "%s%s", p->prefix, e->uuid);
	if (!streq_ptr(journal_entry_get(e, F_REQ_SIZE), p->size_str) ||
	    !streq_ptr(journal_entry_get(e, F_PARAMS), p->fingerprint) ||
	    !streq_ptr(journal_entry_get(e, F_FEATURES), p->features_str) ||
	    !streq_ptr(journal_entry_get(e, F_DATA_POOL), p->data_pool) ||
	    !streq_ptr(journal_entry_get(e, F_SOURCE), p->source ? p->source_str : NULL) ||
	    !streq_ptr(journal_entry_get(e, F_IMAGE), image))
		return log_debug_errno(-EEXIST, "Volume %s exists with other parameters", p->name);
	return 0;
}

/* Creates the entry object of a new reservation; *ret (NULL allowed) gets it as written. */
static int entry_create(rados_ioctx_t io, const char *uuid, const struct create_params *p,
                        struct journal_entry **ret)
{
	char image[VOLUME_IMAGE_PREFIX_MAX + JOURNAL_UUID_LEN + 1], now[24];
	struct journal_field fields[16];
	size_t n = 0;

	snprintf(image, sizeof(image), "%s%s", p->prefix, uuid);
	snprintf(now, sizeof(now), "%lld", (long long)time(NULL));
	fields[n++] = (struct journal_field){ F_NAME, (char *)p->name };
	fields[n++] = (struct journal_field){ F_IMAGE, image };
	fields[n++] = (struct journal_field){ F_REQ_SIZE, (char *)p->size_str };
	fields[n++] = (struct journal_field){ F_SIZE, (char *)p->size_str };
	fields[n++] = (struct journal_field){ F_FEATURES, (char *)p->features_str };
	fields[n++] = (struct journal_field){ F_STATE, STATE_RESERVED };
	fields[n++] = (struct journal_field){ F_RESERVED_AT, now };
	if (!isempty(p->fingerprint))
		fields[n++] = (struct journal_field){ F_PARAMS, (char *)p->fingerprint };
	if (p->data_pool)
		fields[n++] = (struct journal_field){ F_DATA_POOL, (char *)p->data_pool };
	if (p->source)
		fields[n++] = (struct journal_field){ F_SOURCE, (char *)p->source_str };
	if (p->pvc_name)
		fields[n++] = (struct journal_field){ F_PVC_NAME, (char *)p->pvc_name };
	if (p->pvc_namespace)
		fields[n++] = (struct journal_field){ F_PVC_NS, (char *)p->pvc_namespace };
	if (p->pv_name)
		fields[n++] = (struct journal_field){ F_PV_NAME, (char *)p->pv_name };
	if (p->topology)
		fields[n++] = (struct journal_field){ F_TOPOLOGY, (char *)p->topology };
	return journal_entry_create(io, JOURNAL_VOLUME, uuid, fields, n, ret);
}

/*
 * Makes sure the image of a reserved (or created but image-less) entry exists. Returns 1 when
 * this call created it, 0 when it was there, -EAGAIN when someone else is half-way creating it.
 */
static int ensure_image(rados_ioctx_t io, const struct journal_entry *e,
                        const struct create_params *p, uint64_t *ret_size)
{
	const char *image = journal_entry_get(e, F_IMAGE);
	struct image_info *info = NULL;
	int r;

	/* Create first and look only when the name is taken: on the common path (a fresh
	 * reservation) a look would open the image just to learn it is not there (make bench:
	 * every librbd open builds a whole configuration). */
	r = image_create_layout(io, image, p->size, p->features, p->data_pool, &p->layout);
	if (r == 0) {
		*ret_size = p->size;
		return 1;
	}
	if (r != -EEXIST)
		return r == -ENOENT ? -EINVAL : r; /* data pool or namespace vanished */

	/* The name is taken but the image cannot be opened: it is half created, either by a
	 * peer right now, or by a process that died inside librbd's create. */
	r = image_stat(io, image, &info);
	if (r == 0) {
		*ret_size = info->size;
		image_info_free(info);
		return 0;
	}
	if (r != -ENOENT)
		return r;
	if (!journal_entry_stale(e, F_RESERVED_AT, VOLUME_STALE_RESERVATION_SEC))
		return log_debug_errno(-EAGAIN, "Image %s is being created elsewhere", image);
	log_debug("Image %s is half created since long: removing its remains", image);
	r = image_remove(io, image);
	if (r < 0)
		return r;
	r = image_create_layout(io, image, p->size, p->features, p->data_pool, &p->layout);
	if (r < 0)
		return r == -EEXIST ? -EAGAIN : r;
	*ret_size = p->size;
	return 1;
}

/* Where a clone comes from: the parent image and the RBD snapshot it is cloned at. */
struct clone_parent {
	rados_ioctx_t io; /* the parent's pool and namespace */
	char *image;
	char snap[sizeof(SNAPSHOT_TEMP_CLONE_PREFIX) + JOURNAL_UUID_LEN];
	uint64_t size;  /* what the clone starts with */
	bool temporary; /* snap is a temporary snapshot of ours (volume source) */
};

static void clone_parent_done(struct clone_parent *cp)
{
	cluster_ioctx_close(cp->io);
	free(cp->image);
	*cp = (struct clone_parent){};
}

/*
 * Looks the source up. -ENOENT when it does not exist; -EAGAIN for a snapshot that is not
 * ready (still being flattened).
 */
static int clone_parent_resolve(struct cluster *c, const struct create_params *p, const char *uuid,
                                struct clone_parent *ret)
{
	struct clone_parent cp = {};
	int r;

	if (p->source->kind == VOLUME_ID_SNAPSHOT) {
		_cleanup_(snapshot_freep) struct snapshot *snap = NULL;

		r = snapshot_lookup(c, p->source, &snap);
		if (r < 0)
			return log_debug_errno(r, "Source snapshot %s: %m", p->source_str);
		if (!snap->ready)
			return log_debug_errno(-EAGAIN, "Source snapshot %s is not ready yet",
			                       p->source_str);
		cp.image = TAKE_PTR(snap->image);
		cp.size = snap->size;
		snprintf(cp.snap, sizeof(cp.snap), "%s", SNAPSHOT_RESTORE_POINT);
	} else {
		_cleanup_(volume_freep) struct volume *vol = NULL;

		r = volume_lookup(c, p->source, &vol);
		if (r < 0)
			return log_debug_errno(r, "Source volume %s: %m", p->source_str);
		cp.image = TAKE_PTR(vol->image);
		cp.size = vol->size;
		snprintf(cp.snap, sizeof(cp.snap), SNAPSHOT_TEMP_CLONE_PREFIX "%s", uuid);
		cp.temporary = true;
	}
	r = cluster_ioctx_open_by_id(c, p->source->pool_id, p->source->rados_namespace, &cp.io);
	if (r < 0) {
		clone_parent_done(&cp);
		return r;
	}
	*ret = cp;
	return 0;
}

/* The size a clone gets; -ERANGE when the request does not fit the source. */
static int clone_size(const struct create_params *p, uint64_t source_size, uint64_t *ret)
{
	uint64_t want = p->size ? p->size : source_size;

	if (want < source_size || (p->size_limit && want > p->size_limit))
		return log_debug_errno(-ERANGE,
		                       "Volume %s: %" PRIu64 " bytes (limit %" PRIu64
		                       ") does not fit the source's %" PRIu64 " bytes",
		                       p->name, want, p->size_limit, source_size);
	*ret = want;
	return 0;
}

/*
 * Checks a new request's source before anything is written, so that a missing source or a
 * size that does not fit leaves nothing behind.
 */
static int clone_check(struct cluster *c, const struct create_params *p)
{
	_cleanup_(clone_parent_done) struct clone_parent parent = {};
	uint64_t want;
	int r;

	r = clone_parent_resolve(c, p, "00000000-0000-0000-0000-000000000000", &parent);
	if (r < 0)
		return r;
	return clone_size(p, parent.size, &want);
}

/*
 * The image step of a create from a source: clone (through a temporary snapshot for a volume
 * source), remove the temporary snapshot, grow, flatten a chain that is too deep. Each part is
 * idempotent, so a retry after a crash anywhere finishes the same image. Returns 1 when this
 * call cloned the image, 0 when it existed; the errors of volume_create() for sources.
 */
static int ensure_clone(struct cluster *c, rados_ioctx_t io, const char *rados_namespace,
                        const struct journal_entry *e, const struct create_params *p,
                        uint64_t *ret_size)
{
	_cleanup_(clone_parent_done) struct clone_parent parent = {};
	const char *image = journal_entry_get(e, F_IMAGE);
	struct image_info *info = NULL;
	bool exists, have_parent = true;
	uint64_t size = 0, want;
	unsigned depth = 0;
	int made = 0, r;

	r = image_stat(io, image, &info);
	if (r < 0 && r != -ENOENT)
		return r;
	exists = r == 0;
	if (exists) {
		size = info->size;
		info = image_info_free(info);
	}

	/* The parent: to clone from, and to take the temporary snapshot off again. A source
	 * that went away after the clone was made leaves nothing of ours behind on it. */
	r = clone_parent_resolve(c, p, e->uuid, &parent);
	if (r == -ENOENT && exists)
		have_parent = false;
	else if (r < 0)
		return r;

	if (!exists) {
		r = clone_size(p, parent.size, &want);
		if (r < 0)
			return r;
		if (parent.temporary) {
			r = image_snap_create(parent.io, parent.image, parent.snap);
			if (r == -ENOENT)
				return log_debug_errno(r, "Source image %s is gone", parent.image);
			if (r < 0 && r != -EEXIST)
				return r;
			if (r == 0)
				failpoint("volume-clone:after-source-snap");
		}
		r = image_clone(parent.io, parent.image, parent.snap, io, image, p->features,
		                p->data_pool);
		made = 1;
		if (r == -EEXIST) {
			/* Taken: a peer cloned it meanwhile, or it is half cloned (see
			 * ensure_image()). */
			made = 0;
			r = image_stat(io, image, &info);
			info = image_info_free(info);
			if (r == -ENOENT &&
			    !journal_entry_stale(e, F_RESERVED_AT, VOLUME_STALE_RESERVATION_SEC))
				return log_debug_errno(-EAGAIN,
				                       "Image %s is being cloned elsewhere", image);
			if (r == -ENOENT) {
				r = image_remove(io, image);
				if (r < 0)
					return r;
				r = image_clone(parent.io, parent.image, parent.snap, io, image,
				                p->features, p->data_pool);
				if (r == -EEXIST)
					return -EAGAIN;
				made = 1;
			}
		}
		if (r == -ENOENT)
			return log_debug_errno(r, "Source %s@%s is gone", parent.image,
			                       parent.snap);
		if (r < 0)
			return r;
		if (made)
			failpoint("volume-clone:after-clone");
		r = image_stat(io, image, &info);
		if (r < 0)
			return r;
		size = info->size;
		info = image_info_free(info);
	}

	if (have_parent && parent.temporary) {
		r = image_snap_exists(parent.io, parent.image, parent.snap);
		if (r > 0) {
			r = image_snap_remove(parent.io, parent.image, parent.snap);
			if (r == 0)
				failpoint("volume-clone:after-source-unsnap");
		}
		if (r < 0)
			return r;
	}

	want = p->size ? p->size : size;
	if (want > size) {
		r = image_resize(io, image, want);
		if (r < 0)
			return r;
		failpoint("volume-clone:after-resize");
		size = want;
	}

	/* A flatten this process started for it earlier (the call before ran out of time):
	 * wait for it, rather than look at a chain that is changing. */
	r = flatten_join(c, rados_ioctx_get_id(io), rados_namespace, image, false,
	                 p->deadline_usec);
	if (r < 0)
		return r;
	r = image_clone_depth(io, image, &depth);
	if (r < 0)
		return r;
	if (depth > p->depth_max) {
		log_debug("Clone %s has depth %u > %u: flattening", image, depth, p->depth_max);
		r = flatten_join(c, rados_ioctx_get_id(io), rados_namespace, image, true,
		                 p->deadline_usec);
		if (r < 0)
			return r;
		failpoint("volume-clone:after-flatten");
	}
	*ret_size = size;
	return made;
}

static int create_once(struct cluster *c, const struct volume_request *req, struct volume **ret)
{
	_cleanup_ioctx_ rados_ioctx_t io = NULL;
	_cleanup_free_ char *pool_name = NULL;
	struct create_params p = {};
	int64_t pool_id;
	int r;

	r = create_params_init(req, &p);
	if (r < 0)
		return log_debug_errno(r, "Invalid create request for %s: %m",
		                       req ? strempty(req->name) : "");

	r = cluster_ioctx_open(c, req->pool, req->rados_namespace, &io);
	if (r == -ENOENT)
		return log_debug_errno(-EINVAL, "Pool %s does not exist", req->pool);
	if (r < 0)
		return r;
	r = image_namespace_exists(io, req->rados_namespace);
	if (r < 0)
		return r;
	if (r == 0)
		return log_debug_errno(-EINVAL, "RBD namespace %s/%s does not exist", req->pool,
		                       req->rados_namespace);
	if (p.data_pool) {
		int64_t dp;
		r = cluster_pool_lookup(c, p.data_pool, &dp);
		if (r == -ENOENT)
			return log_debug_errno(-EINVAL, "Data pool %s does not exist", p.data_pool);
		if (r < 0)
			return r;
	}
	pool_id = rados_ioctx_get_id(io);
	r = cluster_ioctx_pool_name(io, &pool_name);
	if (r < 0)
		return r;
	if (p.source) {
		char uuid[JOURNAL_UUID_LEN + 1];

		/* A new name: check the source first, so that a request that cannot succeed
		 * reserves nothing. (A reserved name is finished from its source below, or
		 * answered from what it made even when the source is gone since.) */
		r = journal_lookup(io, JOURNAL_VOLUME, p.name, uuid);
		if (r == -ENOENT)
			r = clone_check(c, &p);
		if (r < 0)
			return r;
	}

	for (unsigned attempt = 0; attempt < ATTEMPTS; attempt++) {
		_cleanup_journal_entry_ struct journal_entry *e = NULL;
		char candidate[JOURNAL_UUID_LEN + 1], uuid[JOURNAL_UUID_LEN + 1], size_str[24];
		struct journal_field mark[] = { { F_STATE, STATE_CREATED }, { F_SIZE, size_str } };
		struct volume_id vid;
		const char *state;
		uint64_t size = 0;
		int created;

		/* 1. The name -> uuid reservation; a race between processes has one winner. */
		r = journal_uuid_new(candidate);
		if (r < 0)
			return r;
		r = journal_reserve(io, JOURNAL_VOLUME, p.name, candidate, uuid);
		if (r < 0)
			return r;
		if (r > 0)
			failpoint("volume-create:after-reserve");

		/* 2. The entry object. Whoever gets here first writes it, with its request;
		 * everyone else compares against it. A name this call just reserved has a new
		 * uuid that nobody else knows yet: no entry to look for, and the one written is
		 * what a read would return (version included), so it is used as it is. */
		if (r > 0) {
			r = entry_create(io, uuid, &p, &e);
			if (r < 0 && r != -EEXIST)
				return r;
			if (r == 0)
				failpoint("volume-create:after-object");
			else
				continue; /* a uuid taken after all: look at it as below */
		} else {
			r = journal_entry_read(io, JOURNAL_VOLUME, uuid, &e);
			if (r == -ENOENT) {
				r = entry_create(io, uuid, &p, NULL);
				if (r < 0 && r != -EEXIST)
					return r;
				if (r == 0)
					failpoint("volume-create:after-object");
				continue; /* read it back */
			}
			if (r < 0)
				return r;
		}
		r = entry_matches(e, &p);
		if (r < 0)
			return r;
		r = volume_id_make(VOLUME_ID_VOLUME, req->cluster_id, pool_id, req->rados_namespace,
		                   uuid, &vid);
		if (r < 0)
			return r;

		state = strempty(journal_entry_get(e, F_STATE));
		if (strcmp(state, STATE_DELETING) == 0)
			return log_debug_errno(-EAGAIN, "Volume %s is being deleted", p.name);

		/* 3. The image (also re-created when a created volume's image vanished). */
		if (p.source && strcmp(state, STATE_CREATED) != 0)
			created = ensure_clone(c, io, req->rados_namespace, e, &p, &size);
		else {
			struct create_params q = p;

			/* A created clone asked for "the source's size": its recorded size. */
			if (q.size == 0 && parse_u64(journal_entry_get(e, F_SIZE), &q.size) < 0)
				return -EUCLEAN;
			created = ensure_image(io, e, &q, &size);
		}
		if (created < 0)
			return created;
		if (created > 0 && !p.source)
			failpoint("volume-create:after-image");

		/* 3b. Whose volume it is, on the image, before it counts as created (a crash
		 * here is repaired by the retry). */
		if (strcmp(state, STATE_CREATED) != 0 &&
		    (p.pvc_name || p.pvc_namespace || p.pv_name)) {
			const char *keys[] = { VOLUME_META_PVC_NAME, VOLUME_META_PVC_NAMESPACE,
				               VOLUME_META_PV_NAME };
			const char *values[] = { p.pvc_name, p.pvc_namespace, p.pv_name };

			r = image_metadata_set(io, journal_entry_get(e, F_IMAGE), keys, values,
			                       ELEMENTSOF(keys));
			if (r < 0)
				return r;
		}

		/* 4. Mark it created, with the size it has. */
		if (strcmp(state, STATE_CREATED) != 0) {
			snprintf(size_str, sizeof(size_str), "%" PRIu64, size);
			r = journal_entry_update(io, e, mark, ELEMENTSOF(mark), NULL, 0);
			if (r == -ESTALE || r == -ENOENT) {
				/* Changed under us. If it is gone or going, an image we made
				 * now would be an orphan: take it back. */
				if (created > 0) {
					_cleanup_journal_entry_ struct journal_entry *now = NULL;
					int k = journal_entry_read(io, JOURNAL_VOLUME, uuid, &now);
					if (k == -ENOENT ||
					    (k == 0 && streq_ptr(journal_entry_get(now, F_STATE),
					                         STATE_DELETING)))
						(void)image_remove(io,
						                   journal_entry_get(e, F_IMAGE));
				}
				continue;
			}
			if (r < 0)
				return r;
			log_debug("Volume %s created as %s", p.name, uuid);
		}
		return volume_new(e, &vid, pool_name, size, ret);
	}
	return log_debug_errno(-EAGAIN, "Creating %s lost too many races", p.name);
}

int volume_create(struct cluster *c, const struct volume_request *req, struct volume **ret)
{
	int r = create_once(c, req, ret);

	/* A pool over its quota answers writes with -EDQUOT: "out of capacity" for CSI. */
	return r == -EDQUOT ? -ENOSPC : r;
}

int volume_name_reserved(struct cluster *c, const char *pool, const char *rados_namespace,
                         const char *name)
{
	_cleanup_ioctx_ rados_ioctx_t io = NULL;
	char uuid[JOURNAL_UUID_LEN + 1];
	int r;

	if (isempty(pool) || !journal_name_valid(name))
		return -EINVAL;
	r = cluster_ioctx_open(c, pool, isempty(rados_namespace) ? NULL : rados_namespace, &io);
	if (r == -ENOENT)
		return 0;
	if (r < 0)
		return r;
	r = journal_lookup(io, JOURNAL_VOLUME, name, uuid);
	if (r == -ENOENT)
		return 0;
	return r < 0 ? r : 1;
}

/* ---- static volumes ---- */

int volume_static_stat(struct cluster *c, const char *pool, const char *rados_namespace,
                       const char *image, uint64_t *ret_size)
{
	_cleanup_ioctx_ rados_ioctx_t io = NULL;
	struct image_info *info = NULL;
	int r;

	if (isempty(pool) || isempty(image))
		return -EINVAL;
	r = cluster_ioctx_open(c, pool, isempty(rados_namespace) ? NULL : rados_namespace, &io);
	if (r < 0)
		return r;
	r = image_stat(io, image, &info);
	if (r < 0)
		return r;
	*ret_size = info->size;
	image_info_free(info);
	return 0;
}

int volume_static_expand(struct cluster *c, const char *pool, const char *rados_namespace,
                         const char *image, uint64_t size, uint64_t *ret_size)
{
	_cleanup_ioctx_ rados_ioctx_t io = NULL;
	struct image_info *info = NULL;
	uint64_t cur;
	int r;

	if (isempty(pool) || isempty(image) || size == 0)
		return -EINVAL;
	r = cluster_ioctx_open(c, pool, isempty(rados_namespace) ? NULL : rados_namespace, &io);
	if (r < 0)
		return r;
	r = image_stat(io, image, &info);
	if (r < 0)
		return r;
	cur = info->size;
	image_info_free(info);
	if (size > cur) {
		r = image_resize(io, image, size);
		if (r < 0)
			return r;
		cur = size;
	}
	*ret_size = cur;
	return 0;
}

/* ---- lookup, delete, expand ---- */

int volume_lookup(struct cluster *c, const struct volume_id *id, struct volume **ret)
{
	_cleanup_ioctx_ rados_ioctx_t io = NULL;
	_cleanup_journal_entry_ struct journal_entry *e = NULL;
	_cleanup_free_ char *pool_name = NULL;
	struct image_info *info = NULL;
	uint64_t size;
	int r;

	r = cluster_ioctx_open_for_id(c, id, VOLUME_ID_VOLUME, &io);
	if (r < 0)
		return r;
	r = journal_entry_read(io, JOURNAL_VOLUME, id->uuid, &e);
	if (r < 0)
		return r;
	if (!streq_ptr(journal_entry_get(e, F_STATE), STATE_CREATED))
		return -ENOENT;
	r = image_stat(io, journal_entry_get(e, F_IMAGE), &info);
	if (r < 0)
		return r;
	size = info->size;
	image_info_free(info);
	r = cluster_ioctx_pool_name(io, &pool_name);
	if (r < 0)
		return r;
	return volume_new(e, id, pool_name, size, ret);
}

/* Puts a "deleting" entry back in its previous state (best effort). */
static void delete_unmark(rados_ioctx_t io, const char *uuid)
{
	_cleanup_journal_entry_ struct journal_entry *e = NULL;
	const char *rm[] = { F_PREV_STATE, F_CHAIN };
	struct journal_field back[] = { { F_STATE, STATE_CREATED } };
	const char *prev;

	if (journal_entry_read(io, JOURNAL_VOLUME, uuid, &e) < 0 ||
	    !streq_ptr(journal_entry_get(e, F_STATE), STATE_DELETING))
		return;
	prev = journal_entry_get(e, F_PREV_STATE);
	if (prev)
		back[0].value = (char *)prev;
	(void)journal_entry_update(io, e, back, ELEMENTSOF(back), rm, ELEMENTSOF(rm));
}

int volume_delete(struct cluster *c, const struct volume_id *id)
{
	_cleanup_ioctx_ rados_ioctx_t io = NULL;
	int r;

	r = cluster_ioctx_open_for_id(c, id, VOLUME_ID_VOLUME, &io);
	if (r == -ENOENT)
		return 0;
	if (r < 0)
		return r;

	for (unsigned attempt = 0; attempt < ATTEMPTS; attempt++) {
		_cleanup_journal_entry_ struct journal_entry *e = NULL;
		_cleanup_(image_survey_freep) struct image_survey *survey = NULL;
		_cleanup_free_ char *chain = NULL;
		const char *name, *image, *state;

		r = journal_entry_read(io, JOURNAL_VOLUME, id->uuid, &e);
		if (r == -ENOENT) {
			log_debug("Volume %s is already gone", id->uuid);
			return 0;
		}
		if (r < 0)
			return r;
		name = journal_entry_get(e, F_NAME);
		image = journal_entry_get(e, F_IMAGE);
		state = strempty(journal_entry_get(e, F_STATE));
		if (!image)
			return -EUCLEAN;

		/* 1. Check it is unused, record its clone chain (for garbage collection), and mark
		 * it, atomically against attach and create. */
		if (strcmp(state, STATE_DELETING) != 0) {
			struct journal_field mark[3] = { { F_STATE, STATE_DELETING },
				                         { F_PREV_STATE, (char *)state } };
			size_t n_mark = 2;

			if (has_attachments(e))
				return log_debug_errno(-EBUSY, "Volume %s is still published",
				                       id->uuid);
			/* One look at the image for all the delete needs to know: watchers,
			 * clone chain, snapshots (NULL when there is no image). */
			r = image_survey(io, image,
			                 IMAGE_SURVEY_WATCHERS | IMAGE_SURVEY_SNAPS |
			                         IMAGE_SURVEY_CHAIN,
			                 &survey);
			if (r < 0 && r != -ENOENT)
				return r;
			if (survey && survey->watchers > 0)
				return log_debug_errno(-EBUSY, "Image %s has %zu watchers", image,
				                       survey->watchers);
			if (isempty(state))
				mark[1].value = STATE_RESERVED;
			if (survey) {
				r = clone_chain_format(survey->chain, survey->n_chain, &chain);
				if (r < 0)
					return r;
			}
			if (chain)
				mark[n_mark++] = (struct journal_field){ F_CHAIN, chain };
			r = journal_entry_update(io, e, mark, n_mark, NULL, 0);
			if (r == -ESTALE)
				continue;
			if (r == -ENOENT)
				return 0;
			if (r < 0)
				return r;
			failpoint("volume-delete:after-mark");
		} else {
			r = journal_entry_get_dup(e, F_CHAIN, &chain);
			if (r < 0)
				return r;
		}

		/* 2. The image: removed, or moved to the trash while snapshots or clones hang
		 * from it (judged from the survey when this call made one). */
		r = clone_chain_retire(c, id->pool_id, id->rados_namespace, image, survey);
		if (r == -EBUSY) {
			/* Mapped between our check and the removal, or snapshots that are not
			 * ours: undo the mark. */
			delete_unmark(io, id->uuid);
			return -EBUSY;
		}
		if (r < 0)
			return r;
		failpoint("volume-delete:after-image");

		/* 3. Trashed ancestors whose last child this was (the image itself too, when it
		 * went to the trash earlier). */
		r = clone_chain_collect(c, chain, r > 0);
		if (r < 0)
			return r;

		/* 3. The directory key (only if it still names this uuid). */
		if (name) {
			r = journal_unreserve(io, JOURNAL_VOLUME, name, id->uuid);
			if (r < 0)
				return r;
		}
		failpoint("volume-delete:after-unreserve");

		/* 4. The entry object: what a retry finds by id, so it goes last. */
		r = journal_entry_remove(io, JOURNAL_VOLUME, id->uuid, 0);
		if (r < 0)
			return r;
		log_debug("Volume %s (%s) deleted", id->uuid, strempty(name));
		return 0;
	}
	return -EAGAIN;
}

int volume_expand(struct cluster *c, const struct volume_id *id, uint64_t size, struct volume **ret)
{
	_cleanup_ioctx_ rados_ioctx_t io = NULL;
	_cleanup_free_ char *pool_name = NULL;
	int r;

	if (size == 0)
		return -EINVAL;
	r = cluster_ioctx_open_for_id(c, id, VOLUME_ID_VOLUME, &io);
	if (r < 0)
		return r;
	r = cluster_ioctx_pool_name(io, &pool_name);
	if (r < 0)
		return r;

	for (unsigned attempt = 0; attempt < ATTEMPTS; attempt++) {
		_cleanup_journal_entry_ struct journal_entry *e = NULL;
		struct image_info *info = NULL;
		const char *image;
		char size_str[24];
		uint64_t now;

		r = journal_entry_read(io, JOURNAL_VOLUME, id->uuid, &e);
		if (r < 0)
			return r;
		if (!streq_ptr(journal_entry_get(e, F_STATE), STATE_CREATED))
			return -ENOENT;
		image = journal_entry_get(e, F_IMAGE);

		/* 1. Grow the image (a smaller size leaves it as it is). */
		r = image_resize(io, image, size);
		if (r < 0 && r != -ERANGE)
			return r;
		if (r == 0)
			failpoint("volume-expand:after-image");

		/* 2. Record what the image now has. */
		r = image_stat(io, image, &info);
		if (r < 0)
			return r;
		now = info->size;
		image_info_free(info);
		snprintf(size_str, sizeof(size_str), "%" PRIu64, now);
		if (!streq_ptr(journal_entry_get(e, F_SIZE), size_str)) {
			struct journal_field set[] = { { F_SIZE, size_str } };
			r = journal_entry_update(io, e, set, 1, NULL, 0);
			if (r == -ESTALE)
				continue;
			if (r < 0)
				return r;
		}
		if (!ret)
			return 0;
		return volume_new(e, id, pool_name, now, ret);
	}
	return -EAGAIN;
}

/* ---- attachments ---- */

int volume_attach(struct cluster *c, const struct volume_id *id, const char *node,
                  enum volume_access access, bool exclusive)
{
	_cleanup_ioctx_ rados_ioctx_t io = NULL;
	_cleanup_free_ char *key = NULL;
	int r;

	if (!node_valid(node) || (access != VOLUME_ACCESS_RW && access != VOLUME_ACCESS_RO))
		return -EINVAL;
	if (asprintf(&key, ATTACH_PREFIX "%s", node) < 0) {
		key = NULL;
		return -ENOMEM;
	}
	r = cluster_ioctx_open_for_id(c, id, VOLUME_ID_VOLUME, &io);
	if (r < 0)
		return r;

	for (unsigned attempt = 0; attempt < ATTEMPTS; attempt++) {
		_cleanup_journal_entry_ struct journal_entry *e = NULL;
		struct journal_field set[2];
		const char *cur, *excl;
		bool others = false;
		size_t n_set = 0;

		r = journal_entry_read(io, JOURNAL_VOLUME, id->uuid, &e);
		if (r < 0)
			return r;
		if (!streq_ptr(journal_entry_get(e, F_STATE), STATE_CREATED))
			return -ENOENT;
		cur = journal_entry_get(e, key);
		excl = journal_entry_get(e, F_EXCLUSIVE);
		for (size_t i = 0; i < e->n_fields; i++)
			if (strncmp(e->fields[i].key, ATTACH_PREFIX, strlen(ATTACH_PREFIX)) == 0 &&
			    strcmp(e->fields[i].key, key) != 0)
				others = true;

		if (cur && strcmp(cur, access_string(access)) != 0)
			return log_debug_errno(-EEXIST, "Volume %s is attached to %s as %s",
			                       id->uuid, node, cur);
		if ((excl && strcmp(excl, node) != 0) || (exclusive && others))
			return log_debug_errno(-EBUSY, "Volume %s is attached to another node",
			                       id->uuid);
		if (cur && (!exclusive || (excl && strcmp(excl, node) == 0)))
			return 0; /* already recorded */

		if (!cur)
			set[n_set++] = (struct journal_field){ key, (char *)access_string(access) };
		if (exclusive && !excl)
			set[n_set++] = (struct journal_field){ F_EXCLUSIVE, (char *)node };
		r = journal_entry_update(io, e, set, n_set, NULL, 0);
		if (r == -ESTALE)
			continue;
		if (r < 0)
			return r;
		log_debug("Volume %s attached to %s (%s%s)", id->uuid, node, access_string(access),
		          exclusive ? ", exclusive" : "");
		return 0;
	}
	return -EAGAIN;
}

int volume_detach(struct cluster *c, const struct volume_id *id, const char *node)
{
	_cleanup_ioctx_ rados_ioctx_t io = NULL;
	_cleanup_free_ char *key = NULL;
	int r;

	if (!node_valid(node))
		return -EINVAL;
	if (asprintf(&key, ATTACH_PREFIX "%s", node) < 0) {
		key = NULL;
		return -ENOMEM;
	}
	r = cluster_ioctx_open_for_id(c, id, VOLUME_ID_VOLUME, &io);
	if (r == -ENOENT)
		return 0;
	if (r < 0)
		return r;

	for (unsigned attempt = 0; attempt < ATTEMPTS; attempt++) {
		_cleanup_journal_entry_ struct journal_entry *e = NULL;
		const char *rm[2];
		size_t n_rm = 0;

		r = journal_entry_read(io, JOURNAL_VOLUME, id->uuid, &e);
		if (r == -ENOENT)
			return 0;
		if (r < 0)
			return r;
		if (journal_entry_get(e, key))
			rm[n_rm++] = key;
		if (streq_ptr(journal_entry_get(e, F_EXCLUSIVE), node))
			rm[n_rm++] = F_EXCLUSIVE;
		if (n_rm == 0)
			return 0;
		r = journal_entry_update(io, e, NULL, 0, rm, n_rm);
		if (r == -ESTALE)
			continue;
		if (r == -ENOENT)
			return 0;
		if (r < 0)
			return r;
		log_debug("Volume %s detached from %s", id->uuid, node);
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
	struct volume *vols;
	size_t n;
};

/* Appends the volume of one journal entry to the page if it is fully created. */
static int list_one(const struct journal_entry *e, const struct journal_name *jn, void *userdata)
{
	struct list_page *page = userdata;
	struct volume_id vid;
	uint64_t size;
	int r;

	if (!streq_ptr(journal_entry_get(e, F_STATE), STATE_CREATED) ||
	    !streq_ptr(journal_entry_get(e, F_NAME), jn->name) ||
	    parse_u64(journal_entry_get(e, F_SIZE), &size) < 0)
		return 0;
	r = volume_id_make(VOLUME_ID_VOLUME, page->cluster_id, page->pool_id, page->rados_namespace,
	                   jn->uuid, &vid);
	if (r < 0)
		return r;
	r = volume_fill(&page->vols[page->n], e, &vid, page->pool_name, size);
	if (r < 0) {
		volume_done(&page->vols[page->n]);
		return r == -EUCLEAN ? 0 : r;
	}
	page->n++;
	return 0;
}

int volume_list(struct cluster *c, const char *cluster_id, const char *pool,
                const char *rados_namespace, const char *token, size_t max, struct volume **ret,
                size_t *ret_n, char **ret_next_token)
{
	_cleanup_ioctx_ rados_ioctx_t io = NULL;
	_cleanup_free_ char *pool_name = NULL;
	struct list_page page = { .cluster_id = cluster_id, .rados_namespace = rados_namespace };
	char *next = NULL;
	int r;

	if (!volume_id_cluster_id_valid(cluster_id) || isempty(pool))
		return -EINVAL;
	if (max == 0 || max > VOLUME_LIST_PAGE_MAX)
		max = VOLUME_LIST_PAGE_MAX;

	r = cluster_ioctx_open(c, pool, rados_namespace, &io);
	if (r < 0)
		return r;
	page.pool_id = rados_ioctx_get_id(io);
	r = cluster_ioctx_pool_name(io, &pool_name);
	if (r < 0)
		return r;
	page.pool_name = pool_name;
	page.vols = calloc(max + 1, sizeof(*page.vols));
	if (!page.vols)
		return -ENOMEM;
	r = journal_list_page(io, JOURNAL_VOLUME, token, max, list_one, &page, &next);
	if (r < 0) {
		volume_list_free(page.vols, page.n);
		return r;
	}
	*ret = page.vols;
	*ret_n = page.n;
	*ret_next_token = next;
	return 0;
}

int volume_pool_usage(struct cluster *c, const char *pool, struct volume_pool_usage *ret)
{
	_cleanup_ioctx_ rados_ioctx_t io = NULL;
	struct image_pool_usage u;
	int r;

	r = cluster_ioctx_open(c, pool, NULL, &io);
	if (r < 0)
		return r;
	r = image_pool_usage(io, &u);
	if (r < 0)
		return r;
	*ret = (struct volume_pool_usage){
		.pool_bytes = u.pool_bytes,
		.pool_objects = u.pool_objects,
		.cluster_kb = u.cluster_kb,
		.cluster_kb_used = u.cluster_kb_used,
		.cluster_kb_avail = u.cluster_kb_avail,
	};
	return 0;
}

int volume_features_check(const char *features)
{
	uint64_t mask;

	return image_features_parse(features, &mask);
}
