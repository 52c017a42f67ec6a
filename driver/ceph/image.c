/* SPDX-License-Identifier: Apache-2.0 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <rados/librados.h>
#include <rbd/features.h>
#include <rbd/librbd.h>

#include "driver/base/log.h"
#include "driver/base/macro.h"
#include "driver/ceph/image.h"
#include "driver/ceph/ceph_lib.h" /* last: redirects the librados/librbd names */

#define CLONE_DEPTH_MAX 64

/* ---- cleanup helpers for librbd handles ---- */

static inline void image_closep(rbd_image_t *img)
{
	if (*img)
		rbd_close(*img);
}
#define _cleanup_image_close_ _cleanup_(image_closep)

static inline void image_options_destroyp(rbd_image_options_t *opts)
{
	if (*opts)
		rbd_image_options_destroy(*opts);
}
#define _cleanup_image_options_ _cleanup_(image_options_destroyp)

static inline void ioctx_destroyp(rados_ioctx_t *io)
{
	if (*io)
		rados_ioctx_destroy(*io);
}

static int progress_ignore(_unused_ uint64_t offset, _unused_ uint64_t total,
                           _unused_ void *userdata)
{
	return 0;
}

static int open_ro(rados_ioctx_t io, const char *name, rbd_image_t *ret)
{
	int r;

	if (isempty(name))
		return -EINVAL;
	r = rbd_open_read_only(io, name, ret, NULL);
	if (r < 0) {
		*ret = NULL;
		return log_debug_errno(r, "Opening image %s read-only failed: %m", name);
	}
	return 0;
}

static int open_rw(rados_ioctx_t io, const char *name, rbd_image_t *ret)
{
	int r;

	if (isempty(name))
		return -EINVAL;
	r = rbd_open(io, name, ret, NULL);
	if (r < 0) {
		*ret = NULL;
		return log_debug_errno(r, "Opening image %s failed: %m", name);
	}
	return 0;
}

/* ---- features ---- */

struct feature {
	const char *name;
	uint64_t bit;
	bool settable; /* may be asked for at create time */
};

static const struct feature feature_table[] = {
	{ RBD_FEATURE_NAME_LAYERING, RBD_FEATURE_LAYERING, true },
	{ RBD_FEATURE_NAME_EXCLUSIVE_LOCK, RBD_FEATURE_EXCLUSIVE_LOCK, true },
	{ RBD_FEATURE_NAME_OBJECT_MAP, RBD_FEATURE_OBJECT_MAP, true },
	{ RBD_FEATURE_NAME_FAST_DIFF, RBD_FEATURE_FAST_DIFF, true },
	{ RBD_FEATURE_NAME_DEEP_FLATTEN, RBD_FEATURE_DEEP_FLATTEN, true },
	{ RBD_FEATURE_NAME_JOURNALING, RBD_FEATURE_JOURNALING, true },
	/* Known to librbd but implied by other options or internal to it. */
	{ RBD_FEATURE_NAME_STRIPINGV2, RBD_FEATURE_STRIPINGV2, false },
	{ RBD_FEATURE_NAME_DATA_POOL, RBD_FEATURE_DATA_POOL, false },
	{ RBD_FEATURE_NAME_OPERATIONS, RBD_FEATURE_OPERATIONS, false },
	{ RBD_FEATURE_NAME_MIGRATING, RBD_FEATURE_MIGRATING, false },
	{ RBD_FEATURE_NAME_NON_PRIMARY, RBD_FEATURE_NON_PRIMARY, false },
	{ RBD_FEATURE_NAME_DIRTY_CACHE, RBD_FEATURE_DIRTY_CACHE, false },
};

int image_features_parse(const char *list, uint64_t *ret)
{
	uint64_t mask = 0;
	const char *p;

	if (isempty(list))
		return -EINVAL;
	for (p = list;;) {
		const char *end = strchrnul(p, ',');
		size_t n = (size_t)(end - p);
		const struct feature *f = NULL;

		for (size_t i = 0; i < ELEMENTSOF(feature_table); i++)
			if (strlen(feature_table[i].name) == n &&
			    strncmp(feature_table[i].name, p, n) == 0)
				f = &feature_table[i];
		if (!f || !f->settable || (mask & f->bit))
			return log_debug_errno(-EINVAL, "Invalid image feature '%.*s' in '%s'",
			                       (int)MIN(n, (size_t)64), p, list);
		mask |= f->bit;
		if (!*end)
			break;
		p = end + 1;
	}

	if (((mask & RBD_FEATURE_OBJECT_MAP) && !(mask & RBD_FEATURE_EXCLUSIVE_LOCK)) ||
	    ((mask & RBD_FEATURE_JOURNALING) && !(mask & RBD_FEATURE_EXCLUSIVE_LOCK)) ||
	    ((mask & RBD_FEATURE_FAST_DIFF) && !(mask & RBD_FEATURE_OBJECT_MAP)))
		return log_debug_errno(-EINVAL, "Image features '%s' lack a dependency", list);
	*ret = mask;
	return 0;
}

int image_features_format(uint64_t mask, char **ret)
{
	char buf[256] = "";
	size_t pos = 0;
	char *s;

	for (size_t i = 0; i < ELEMENTSOF(feature_table); i++) {
		if (!(mask & feature_table[i].bit))
			continue;
		pos += (size_t)snprintf(buf + pos, sizeof(buf) - pos, "%s%s", pos ? "," : "",
		                        feature_table[i].name);
	}
	s = strdup(buf);
	if (!s)
		return -ENOMEM;
	*ret = s;
	return 0;
}

/* ---- images ---- */

static int image_options_new(uint64_t features, const char *data_pool, bool clone,
                             rbd_image_options_t *ret)
{
	rbd_image_options_t opts = NULL;
	int r;

	rbd_image_options_create(&opts);
	if ((r = rbd_image_options_set_uint64(opts, RBD_IMAGE_OPTION_FORMAT, 2)) < 0 ||
	    (r = rbd_image_options_set_uint64(opts, RBD_IMAGE_OPTION_FEATURES, features)) < 0 ||
	    (clone &&
	     (r = rbd_image_options_set_uint64(opts, RBD_IMAGE_OPTION_CLONE_FORMAT, 2)) < 0) ||
	    (!isempty(data_pool) &&
	     (r = rbd_image_options_set_string(opts, RBD_IMAGE_OPTION_DATA_POOL, data_pool)) < 0)) {
		rbd_image_options_destroy(opts);
		return r;
	}
	*ret = opts;
	return 0;
}

/* The RBD "order" of a power-of-two object size; -EINVAL otherwise (4 KiB..32 MiB). */
static int object_order(uint64_t object_size, uint64_t *ret)
{
	for (uint64_t order = 12; order <= 25; order++)
		if (object_size == 1ULL << order) {
			*ret = order;
			return 0;
		}
	return -EINVAL;
}

static int image_options_set_layout(rbd_image_options_t opts, const struct image_layout *l)
{
	uint64_t order;
	int r;

	if (!l)
		return 0;
	if (l->object_size) {
		r = object_order(l->object_size, &order);
		if (r < 0)
			return r;
		r = rbd_image_options_set_uint64(opts, RBD_IMAGE_OPTION_ORDER, order);
		if (r < 0)
			return r;
	}
	if (l->stripe_unit) {
		r = rbd_image_options_set_uint64(opts, RBD_IMAGE_OPTION_STRIPE_UNIT,
		                                 l->stripe_unit);
		if (r < 0)
			return r;
	}
	if (l->stripe_count) {
		r = rbd_image_options_set_uint64(opts, RBD_IMAGE_OPTION_STRIPE_COUNT,
		                                 l->stripe_count);
		if (r < 0)
			return r;
	}
	return 0;
}

int image_create(rados_ioctx_t io, const char *name, uint64_t size, uint64_t features,
                 const char *data_pool)
{
	return image_create_layout(io, name, size, features, data_pool, NULL);
}

int image_create_layout(rados_ioctx_t io, const char *name, uint64_t size, uint64_t features,
                        const char *data_pool, const struct image_layout *layout)
{
	_cleanup_image_options_ rbd_image_options_t opts = NULL;
	int r;

	if (isempty(name))
		return -EINVAL;
	r = image_options_new(features, data_pool, false, &opts);
	if (r < 0)
		return r;
	r = image_options_set_layout(opts, layout);
	if (r < 0)
		return r;
	r = rbd_create4(io, name, size, opts);
	if (r < 0)
		return log_debug_errno(r, "Creating image %s (%llu bytes) failed: %m", name,
		                       (unsigned long long)size);
	log_debug("Created image %s (%llu bytes)", name, (unsigned long long)size);
	return 0;
}

int image_namespace_exists(rados_ioctx_t io, const char *ns)
{
	bool exists = false;
	int r;

	if (isempty(ns))
		return 1;
	r = rbd_namespace_exists(io, ns, &exists);
	if (r < 0)
		return log_debug_errno(r, "Checking RBD namespace %s failed: %m", ns);
	return exists ? 1 : 0;
}

static struct image_parent *image_parent_free(struct image_parent *p)
{
	if (!p)
		return NULL;
	free(p->pool_name);
	free(p->pool_namespace);
	free(p->image_name);
	free(p->image_id);
	free(p->snap_name);
	free(p);
	return NULL;
}

struct image_info *image_info_free(struct image_info *info)
{
	if (!info)
		return NULL;
	free(info->id);
	image_parent_free(info->parent);
	free(info);
	return NULL;
}

/* Reads the parent of an open image. Returns 1 and *ret, 0 when there is none. */
static int read_parent(rbd_image_t img, struct image_parent **ret)
{
	rbd_linked_image_spec_t spec = {};
	rbd_snap_spec_t snap = {};
	struct image_parent *p;
	int r;

	r = rbd_get_parent(img, &spec, &snap);
	if (r == -ENOENT)
		return 0;
	if (r < 0)
		return r;
	p = calloc(1, sizeof(*p));
	if (p) {
		p->pool_id = spec.pool_id;
		p->pool_name = strdup(strempty(spec.pool_name));
		p->pool_namespace = strdup(strempty(spec.pool_namespace));
		p->image_name = strdup(strempty(spec.image_name));
		p->image_id = strdup(strempty(spec.image_id));
		p->image_in_trash = spec.trash;
		p->snap_name = strdup(strempty(snap.name));
		p->snap_id = snap.id;
	}
	rbd_linked_image_spec_cleanup(&spec);
	rbd_snap_spec_cleanup(&snap);
	if (!p || !p->pool_name || !p->pool_namespace || !p->image_name || !p->image_id ||
	    !p->snap_name) {
		image_parent_free(p);
		return -ENOMEM;
	}
	*ret = p;
	return 1;
}

int image_stat(rados_ioctx_t io, const char *name, struct image_info **ret)
{
	_cleanup_image_close_ rbd_image_t img = NULL;
	struct image_info *info;
	char id[128];
	int r;

	r = open_ro(io, name, &img);
	if (r < 0)
		return r;
	info = calloc(1, sizeof(*info));
	if (!info)
		return -ENOMEM;
	if ((r = rbd_get_size(img, &info->size)) < 0 ||
	    (r = rbd_get_features(img, &info->features)) < 0 ||
	    (r = rbd_get_id(img, id, sizeof(id))) < 0 ||
	    (r = read_parent(img, &info->parent)) < 0 ||
	    (r = rbd_get_create_timestamp(img, &info->created)) < 0) {
		image_info_free(info);
		return log_debug_errno(r, "Reading image %s failed: %m", name);
	}
	info->data_pool_id = rbd_get_data_pool_id(img);
	info->id = strdup(id);
	if (!info->id) {
		image_info_free(info);
		return -ENOMEM;
	}
	*ret = info;
	return 0;
}

int image_resize(rados_ioctx_t io, const char *name, uint64_t size)
{
	_cleanup_image_close_ rbd_image_t img = NULL;
	uint64_t cur;
	int r;

	r = open_rw(io, name, &img);
	if (r < 0)
		return r;
	r = rbd_get_size(img, &cur);
	if (r < 0)
		return r;
	if (size == cur)
		return 0;
	if (size < cur)
		return log_debug_errno(-ERANGE,
		                       "Refusing to shrink image %s from %llu to %llu bytes", name,
		                       (unsigned long long)cur, (unsigned long long)size);
	r = rbd_resize2(img, size, false, progress_ignore, NULL);
	if (r < 0)
		return log_debug_errno(r, "Resizing image %s to %llu bytes failed: %m", name,
		                       (unsigned long long)size);
	log_debug("Resized image %s from %llu to %llu bytes", name, (unsigned long long)cur,
	          (unsigned long long)size);
	return 0;
}

int image_metadata_set(rados_ioctx_t io, const char *name, const char *const *keys,
                       const char *const *values, size_t n)
{
	_cleanup_image_close_ rbd_image_t img = NULL;
	int r;

	r = open_rw(io, name, &img);
	if (r < 0)
		return r;
	for (size_t i = 0; i < n; i++) {
		if (!values[i])
			continue;
		r = rbd_metadata_set(img, keys[i], values[i]);
		if (r < 0)
			return log_debug_errno(r, "Setting metadata %s on image %s failed: %m",
			                       keys[i], name);
	}
	return 0;
}

/* Counts the watchers of an open image (one OSD round trip: always current). */
static int watchers_open(rbd_image_t img, const char *name, size_t *ret_count)
{
	rbd_image_watcher_t *w = NULL;
	size_t max = 8;
	int r;

	for (;;) {
		size_t n = max;
		w = calloc(max, sizeof(*w));
		if (!w)
			return -ENOMEM;
		r = rbd_watchers_list(img, w, &n);
		if (r == -ERANGE && max < 65536) {
			free(w);
			max = MAX(n, 2 * max);
			continue;
		}
		if (r < 0) {
			free(w);
			return log_debug_errno(r, "Listing watchers of %s failed: %m", name);
		}
		rbd_watchers_list_cleanup(w, n);
		free(w);
		*ret_count = n;
		return 0;
	}
}

int image_watchers(rados_ioctx_t io, const char *name, size_t *ret_count)
{
	_cleanup_image_close_ rbd_image_t img = NULL;
	int r;

	r = open_ro(io, name, &img);
	if (r < 0)
		return r;
	return watchers_open(img, name, ret_count);
}

int image_remove(rados_ioctx_t io, const char *name)
{
	int r;

	if (isempty(name))
		return -EINVAL;
	/* librbd checks watchers, snapshots and group membership before it changes anything. */
	r = rbd_remove_with_progress(io, name, progress_ignore, NULL);
	if (r == -ENOENT) {
		log_debug("Image %s already gone", name);
		return 0;
	}
	if (r == -ENOTEMPTY || r == -EMLINK) {
		/* "image has snapshots" / "image has children": in use, as CSI sees it. */
		return log_debug_errno(-EBUSY, "Image %s has snapshots or children, not removed",
		                       name);
	}
	if (r < 0)
		return log_debug_errno(r, "Removing image %s failed: %m", name);
	log_debug("Removed image %s", name);
	return 1;
}

int image_pool_usage(rados_ioctx_t io, struct image_pool_usage *ret)
{
	struct rados_pool_stat_t ps = {};
	struct rados_cluster_stat_t cs = {};
	int r;

	r = rados_ioctx_pool_stat(io, &ps);
	if (r < 0)
		return log_debug_errno(r, "Reading pool statistics failed: %m");
	r = rados_cluster_stat(rados_ioctx_get_cluster(io), &cs);
	if (r < 0)
		return log_debug_errno(r, "Reading cluster statistics failed: %m");
	*ret = (struct image_pool_usage){
		.pool_bytes = ps.num_bytes,
		.pool_objects = ps.num_objects,
		.cluster_kb = cs.kb,
		.cluster_kb_used = cs.kb_used,
		.cluster_kb_avail = cs.kb_avail,
	};
	return 0;
}

/* ---- snapshots ---- */

void image_snap_done(struct image_snap *snap)
{
	if (!snap)
		return;
	free(snap->name);
	snap->name = NULL;
}

void image_snap_list_free(struct image_snap *snaps, size_t n)
{
	if (!snaps)
		return;
	for (size_t i = 0; i < n; i++)
		image_snap_done(&snaps[i]);
	free(snaps);
}

int image_snap_create(rados_ioctx_t io, const char *image, const char *snap)
{
	_cleanup_image_close_ rbd_image_t img = NULL;
	int r;

	if (isempty(snap))
		return -EINVAL;
	r = open_rw(io, image, &img);
	if (r < 0)
		return r;
	r = rbd_snap_create2(img, snap, RBD_SNAP_CREATE_SKIP_QUIESCE, progress_ignore, NULL);
	if (r < 0)
		return log_debug_errno(r, "Creating snapshot %s@%s failed: %m", image, snap);
	log_debug("Created snapshot %s@%s", image, snap);
	return 0;
}

int image_snap_remove(rados_ioctx_t io, const char *image, const char *snap)
{
	_cleanup_image_close_ rbd_image_t img = NULL;
	int r;

	if (isempty(snap))
		return -EINVAL;
	r = open_rw(io, image, &img);
	if (r == -ENOENT)
		return 0;
	if (r < 0)
		return r;
	r = rbd_snap_remove2(img, snap, 0, progress_ignore, NULL);
	if (r == -ENOENT)
		return 0;
	if (r < 0)
		return log_debug_errno(r, "Removing snapshot %s@%s failed: %m", image, snap);
	log_debug("Removed snapshot %s@%s", image, snap);
	return 0;
}

int image_snap_exists(rados_ioctx_t io, const char *image, const char *snap)
{
	_cleanup_image_close_ rbd_image_t img = NULL;
	bool exists = false;
	int r;

	if (isempty(snap))
		return -EINVAL;
	r = open_ro(io, image, &img);
	if (r == -ENOENT)
		return 0;
	if (r < 0)
		return r;
	r = rbd_snap_exists(img, snap, &exists);
	if (r < 0)
		return r;
	return exists ? 1 : 0;
}

/*
 * rbd_snap_list() into a buffer grown until it fits. Returns the count and *ret (release with
 * rbd_snap_list_end() then free()); a negative errno.
 */
static int snap_info_list(rbd_image_t img, rbd_snap_info_t **ret)
{
	rbd_snap_info_t *info;
	int max = 16, n, r;

	for (;;) {
		info = calloc((size_t)max, sizeof(*info));
		if (!info)
			return -ENOMEM;
		n = max;
		r = rbd_snap_list(img, info, &n);
		if (r == -ERANGE && max < 65536) {
			free(info);
			max = MAX(n, 2 * max);
			continue;
		}
		if (r < 0) {
			free(info);
			return r;
		}
		*ret = info;
		return r;
	}
}

/* Lists the user snapshots of an open image; *ret_other (NULL allowed) counts the others. */
static int snap_list_open(rbd_image_t img, struct image_snap **ret, size_t *ret_n,
                          size_t *ret_other)
{
	rbd_snap_info_t *info = NULL;
	struct image_snap *snaps;
	size_t k = 0, other = 0;
	int n, r = 0;

	n = snap_info_list(img, &info);
	if (n < 0)
		return n;

	snaps = calloc((size_t)n + 1, sizeof(*snaps));
	if (!snaps) {
		rbd_snap_list_end(info);
		free(info);
		return -ENOMEM;
	}
	for (int i = 0; i < n; i++) {
		rbd_snap_namespace_type_t type;
		struct timespec ts = {};
		struct image_snap *s = &snaps[k];

		/* rbd_snap_list() also returns snapshots in the trash namespace (removed, kept
		 * for clone-v2 children, named by a uuid): only user snapshots count. */
		r = rbd_snap_get_namespace_type(img, info[i].id, &type);
		if (r >= 0 && type != RBD_SNAP_NAMESPACE_TYPE_USER) {
			other++;
			continue;
		}
		if (r >= 0)
			r = rbd_snap_get_timestamp(img, info[i].id, &ts);
		if (r >= 0) {
			s->name = strdup(info[i].name);
			r = s->name ? 0 : -ENOMEM;
		}
		if (r < 0) {
			rbd_snap_list_end(info);
			free(info);
			image_snap_list_free(snaps, k);
			return r;
		}
		s->id = info[i].id;
		s->size = info[i].size;
		s->created = ts;
		k++;
	}
	rbd_snap_list_end(info);
	free(info);
	*ret = snaps;
	*ret_n = k;
	if (ret_other)
		*ret_other = other;
	return 0;
}

int image_snap_list(rados_ioctx_t io, const char *image, struct image_snap **ret, size_t *ret_n)
{
	_cleanup_image_close_ rbd_image_t img = NULL;
	int r;

	r = open_ro(io, image, &img);
	if (r < 0)
		return r;
	r = snap_list_open(img, ret, ret_n, NULL);
	if (r < 0)
		return log_debug_errno(r, "Listing snapshots of %s failed: %m", image);
	return 0;
}

int image_snap_stat(rados_ioctx_t io, const char *image, const char *snap, struct image_snap *ret)
{
	struct image_snap *snaps = NULL;
	size_t n = 0;
	int r;

	if (isempty(snap))
		return -EINVAL;
	r = image_snap_list(io, image, &snaps, &n);
	if (r < 0)
		return r;
	for (size_t i = 0; i < n; i++)
		if (strcmp(snaps[i].name, snap) == 0) {
			*ret = snaps[i];
			snaps[i].name = NULL; /* moved to *ret */
			image_snap_list_free(snaps, n);
			return 0;
		}
	image_snap_list_free(snaps, n);
	return -ENOENT;
}

int image_clone(rados_ioctx_t parent_io, const char *parent, const char *snap,
                rados_ioctx_t child_io, const char *child, uint64_t features, const char *data_pool)
{
	_cleanup_image_options_ rbd_image_options_t opts = NULL;
	int r;

	if (isempty(parent) || isempty(snap) || isempty(child))
		return -EINVAL;
	r = image_options_new(features | RBD_FEATURE_LAYERING, data_pool, true, &opts);
	if (r < 0)
		return r;
	r = rbd_clone3(parent_io, parent, snap, child_io, child, opts);
	if (r < 0)
		return log_debug_errno(r, "Cloning %s@%s to %s failed: %m", parent, snap, child);
	log_debug("Cloned %s@%s to %s", parent, snap, child);
	return 0;
}

int image_flatten(rados_ioctx_t io, const char *name)
{
	_cleanup_image_close_ rbd_image_t img = NULL;
	struct image_parent *parent = NULL;
	int r;

	r = open_rw(io, name, &img);
	if (r < 0)
		return r;
	r = read_parent(img, &parent);
	if (r < 0)
		return r;
	image_parent_free(parent);
	if (r == 0)
		return 0;
	r = rbd_flatten_with_progress(img, progress_ignore, NULL);
	if (r < 0)
		return log_debug_errno(r, "Flattening %s failed: %m", name);
	log_debug("Flattened %s", name);
	return 0;
}

/*
 * True when pool_id is in the client's OSD map. Checked before rados_ioctx_create2(), which
 * waits without a timeout for the latest map on a miss (see cluster.c). A pool missing here is
 * reported as -ENOENT without asking the monitors.
 */
static bool pool_id_known(rados_t rados, int64_t pool_id)
{
	char buf[4096];
	int n = rados_pool_list(rados, buf, sizeof(buf) - 1);

	if (n < 0 || (size_t)n > sizeof(buf) - 1)
		return true; /* cannot tell cheaply: let librados decide */
	buf[n] = 0;
	for (const char *p = buf; *p && p < buf + n; p += strlen(p) + 1)
		if (rados_pool_lookup(rados, p) == pool_id)
			return true;
	return false;
}

void image_chain_free(struct image_link *links, size_t n)
{
	if (!links)
		return;
	for (size_t i = 0; i < n; i++) {
		free(links[i].pool_namespace);
		free(links[i].image_id);
	}
	free(links);
}

static int chain_append(struct image_link **links, size_t *n, int64_t pool_id, const char *ns,
                        const char *id)
{
	struct image_link *l = reallocarray(*links, *n + 1, sizeof(**links));

	if (!l)
		return -ENOMEM;
	*links = l;
	l[*n] = (struct image_link){
		.pool_id = pool_id,
		.pool_namespace = strdup(strempty(ns)),
		.image_id = strdup(strempty(id)),
	};
	if (!l[*n].pool_namespace || !l[*n].image_id) {
		free(l[*n].pool_namespace);
		free(l[*n].image_id);
		return -ENOMEM;
	}
	(*n)++;
	return 0;
}

/* Appends the open image itself (in io) to the chain. */
static int chain_append_self(rados_ioctx_t io, rbd_image_t img, struct image_link **links,
                             size_t *n)
{
	char id[128], ns[128];
	int r;

	r = rbd_get_id(img, id, sizeof(id));
	if (r < 0)
		return r;
	r = rados_ioctx_get_namespace(io, ns, sizeof(ns));
	if (r < 0)
		return r;
	ns[MIN((size_t)r, sizeof(ns) - 1)] = 0;
	return chain_append(links, n, rados_ioctx_get_id(io), ns, id);
}

/* Walks the chain of name, starting from start when that is the image already open (borrowed,
 * left open), else opening it. */
static int chain_walk(rados_ioctx_t io, const char *name, rbd_image_t start,
                      struct image_link **ret, size_t *ret_n)
{
	struct image_link *links = NULL;
	rbd_image_t img = start;
	rados_ioctx_t img_io = NULL; /* the parent's ioctx, kept while the parent is open */
	size_t n = 0;
	int r;

	if (!img) {
		r = open_ro(io, name, &img);
		if (r < 0)
			return r;
	}
	r = chain_append_self(io, img, &links, &n);
	while (r >= 0) {
		struct image_parent *p = NULL;

		r = read_parent(img, &p);
		if (img != start)
			rbd_close(img);
		img = NULL;
		ioctx_destroyp(&img_io);
		img_io = NULL;
		if (r <= 0)
			break;
		/* n links so far: the image and n - 1 parents; this parent makes depth n. */
		if (n > CLONE_DEPTH_MAX) {
			image_parent_free(p);
			r = -ELOOP;
			break;
		}
		r = chain_append(&links, &n, p->pool_id, p->pool_namespace, p->image_id);
		/* Open the parent at the snapshot the child hangs from, wherever it lives (another
		 * pool or namespace, or the trash). */
		if (r >= 0 && !pool_id_known(rados_ioctx_get_cluster(io), p->pool_id))
			r = -ENOENT;
		else if (r >= 0)
			r = rados_ioctx_create2(rados_ioctx_get_cluster(io), p->pool_id, &img_io);
		if (r < 0)
			img_io = NULL;
		else {
			rados_ioctx_set_namespace(img_io, p->pool_namespace);
			r = rbd_open_by_id_read_only(img_io, p->image_id, &img, NULL);
			if (r < 0)
				img = NULL;
			else
				r = rbd_snap_set_by_id(img, p->snap_id);
		}
		if (r < 0) {
			log_debug_errno(r, "Opening parent %s/%s@%llu of %s failed: %m",
			                p->pool_name, p->image_name, (unsigned long long)p->snap_id,
			                name);
			if (r == -ENOENT)
				r = -ESTALE; /* the chain changed while we walked it */
		}
		image_parent_free(p);
	}
	if (img && img != start)
		rbd_close(img);
	ioctx_destroyp(&img_io);
	if (r < 0) {
		image_chain_free(links, n);
		return r;
	}
	*ret = links;
	*ret_n = n;
	return 0;
}

int image_chain(rados_ioctx_t io, const char *name, struct image_link **ret, size_t *ret_n)
{
	int r = -ESTALE;

	/* A parent (or the snapshot its child hangs from) that vanishes under the walk means
	 * the chain just got shorter: a flatten finished, or a parent left the trash. Walk
	 * again. */
	for (int attempt = 0; attempt < 5 && r == -ESTALE; attempt++)
		r = chain_walk(io, name, NULL, ret, ret_n);
	return r == -ESTALE ? -EAGAIN : r;
}

int image_clone_depth(rados_ioctx_t io, const char *name, unsigned *ret_depth)
{
	struct image_link *links = NULL;
	size_t n = 0;
	int r;

	r = image_chain(io, name, &links, &n);
	if (r < 0)
		return r;
	image_chain_free(links, n);
	*ret_depth = (unsigned)(n - 1);
	return 0;
}

/* Counts the snapshots of an open image by namespace type. */
static int snap_counts_open(rbd_image_t img, size_t *ret_user, size_t *ret_other)
{
	rbd_snap_info_t *info = NULL;
	size_t user = 0, other = 0;
	int n, r = 0;

	n = snap_info_list(img, &info);
	if (n < 0)
		return n;
	for (int i = 0; i < n; i++) {
		rbd_snap_namespace_type_t type = RBD_SNAP_NAMESPACE_TYPE_USER;

		r = rbd_snap_get_namespace_type(img, info[i].id, &type);
		if (r < 0)
			break;
		if (type == RBD_SNAP_NAMESPACE_TYPE_USER)
			user++;
		else
			other++;
	}
	rbd_snap_list_end(info);
	free(info);
	if (r < 0)
		return r;
	*ret_user = user;
	*ret_other = other;
	return 0;
}

int image_snap_counts(rados_ioctx_t io, const char *name, size_t *ret_user, size_t *ret_other)
{
	_cleanup_image_close_ rbd_image_t img = NULL;
	int r;

	r = open_ro(io, name, &img);
	if (r < 0)
		return r;
	r = snap_counts_open(img, ret_user, ret_other);
	if (r < 0)
		return log_debug_errno(r, "Counting snapshots of %s failed: %m", name);
	return 0;
}

struct image_survey *image_survey_free(struct image_survey *s)
{
	if (!s)
		return NULL;
	image_chain_free(s->chain, s->n_chain);
	image_snap_list_free(s->snaps, s->n_snaps);
	free(s);
	return NULL;
}

int image_survey(rados_ioctx_t io, const char *name, unsigned what, struct image_survey **ret)
{
	_cleanup_image_close_ rbd_image_t img = NULL;
	_cleanup_(image_survey_freep) struct image_survey *s = NULL;
	int r;

	r = open_ro(io, name, &img);
	if (r < 0)
		return r;
	s = calloc(1, sizeof(*s));
	if (!s)
		return -ENOMEM;
	if (what & IMAGE_SURVEY_WATCHERS) {
		r = watchers_open(img, name, &s->watchers);
		if (r < 0)
			return r;
	}
	if (what & IMAGE_SURVEY_SNAPS) {
		r = snap_list_open(img, &s->snaps, &s->n_snaps, &s->n_other_snaps);
		if (r < 0)
			return log_debug_errno(r, "Listing snapshots of %s failed: %m", name);
	}
	if (what & IMAGE_SURVEY_CHAIN) {
		/* From the open image; a parent that vanished under the walk may mean that our
		 * view of the image itself is stale (it was flattened since it was opened): then
		 * walk again from fresh opens, as image_chain() does. */
		r = chain_walk(io, name, img, &s->chain, &s->n_chain);
		if (r == -ESTALE)
			r = image_chain(io, name, &s->chain, &s->n_chain);
		if (r < 0)
			return r;
	}
	*ret = TAKE_PTR(s);
	return 0;
}

int image_trash_move(rados_ioctx_t io, const char *name)
{
	int r;

	if (isempty(name))
		return -EINVAL;
	r = rbd_trash_move(io, name, 0);
	if (r == -ENOENT) {
		log_debug("Image %s is not there to move to the trash", name);
		return 0;
	}
	if (r < 0)
		return log_debug_errno(r, "Moving image %s to the trash failed: %m", name);
	log_debug("Moved image %s to the trash", name);
	return 0;
}

int image_trash_collect(rados_ioctx_t io, const char *image_id)
{
	_cleanup_image_close_ rbd_image_t img = NULL;
	rbd_trash_image_info_t info = {};
	size_t user = 0, other = 0;
	int r;

	if (isempty(image_id))
		return -EINVAL;
	r = rbd_trash_get(io, image_id, &info);
	if (r == -ENOENT) {
		/* Not in the trash: a live image (which protects its parents), or gone. */
		r = rbd_open_by_id_read_only(io, image_id, &img, NULL);
		if (r == -ENOENT)
			return 1;
		if (r < 0) {
			img = NULL;
			return log_debug_errno(r, "Opening image id %s failed: %m", image_id);
		}
		return 0;
	}
	if (r < 0)
		return log_debug_errno(r, "Looking up image id %s in the trash failed: %m",
		                       image_id);
	rbd_trash_get_cleanup(&info);

	r = rbd_open_by_id_read_only(io, image_id, &img, NULL);
	if (r == -ENOENT) {
		img = NULL;
		return 1;
	}
	if (r < 0) {
		img = NULL;
		return log_debug_errno(r, "Opening trashed image id %s failed: %m", image_id);
	}
	r = snap_counts_open(img, &user, &other);
	rbd_close(img);
	img = NULL;
	if (r < 0)
		return r;
	if (user + other > 0) {
		log_debug("Trashed image id %s still has %zu snapshots, kept", image_id,
		          user + other);
		return 0;
	}
	r = rbd_trash_remove_with_progress(io, image_id, false, progress_ignore, NULL);
	if (r == -ENOENT)
		return 1;
	if (r == -ENOTEMPTY || r == -EBUSY || r == -EMLINK || r == -EPERM) {
		log_debug_errno(r, "Trashed image id %s is not removable yet: %m", image_id);
		return 0;
	}
	if (r < 0)
		return log_debug_errno(r, "Removing image id %s from the trash failed: %m",
		                       image_id);
	log_debug("Removed image id %s from the trash", image_id);
	return 2;
}
