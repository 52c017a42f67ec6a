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
#include "driver/base/parse.h"
#include "driver/ceph/clone_chain.h"
#include "driver/ceph/cluster_ioctx.h"
#include "driver/ceph/image.h"
#include "driver/ceph/ceph_lib.h" /* last: redirects the librados/librbd names */

int clone_chain_format(const struct image_link *links, size_t n, char **ret)
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

int clone_chain_get(struct cluster *c, int64_t pool_id, const char *rados_namespace,
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
	r = clone_chain_format(links, n, ret);
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

int clone_chain_collect(struct cluster *c, const char *chain, bool first_gone)
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

int clone_chain_retire(struct cluster *c, int64_t pool_id, const char *rados_namespace,
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
