/* SPDX-License-Identifier: Apache-2.0 */
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "driver/base/log.h"
#include "driver/base/macro.h"
#include "driver/base/parse.h"
#include "driver/ceph/ceph_lib.h"
#include "driver/ceph/cluster_ioctx.h"
#include "driver/ceph/doctor.h"
#include "driver/ceph/image.h"
#include "driver/ceph/journal.h"
#include "driver/ceph/snapshot.h"
#include "driver/ceph/volume.h"
#include "driver/ceph/volume_id.h"

/* Journal entry fields (volume.h, snapshot.h). */
#define F_NAME        "name"
#define F_IMAGE       "image"
#define F_STATE       "state"
#define F_RESERVED_AT "reserved_at"
#define ATTACH_PREFIX "attach."

#define LIST_PAGE 1000

static const char *const kind_names[_DOCTOR_KIND_MAX] = {
	[DOCTOR_ENTRY_WITHOUT_IMAGE] = "entry_without_image",
	[DOCTOR_KEY_WITHOUT_ENTRY] = "key_without_entry",
	[DOCTOR_ENTRY_WITHOUT_KEY] = "entry_without_key",
	[DOCTOR_STALE_RESERVATION] = "stale_reservation",
	[DOCTOR_IMAGE_WITHOUT_ENTRY] = "image_without_entry",
	[DOCTOR_TRASH_LEFTOVER] = "trash_leftover",
	[DOCTOR_ATTACHMENT_TO_GONE_NODE] = "attachment_to_gone_node",
	[DOCTOR_PV_WITHOUT_VOLUME] = "pv_without_volume",
	[DOCTOR_VOLUME_WITHOUT_PV] = "volume_without_pv",
	[DOCTOR_TEMP_SNAPSHOT_LEFTOVER] = "temp_snapshot_leftover",
};

const char *doctor_kind_to_string(enum doctor_kind kind)
{
	if ((unsigned)kind >= _DOCTOR_KIND_MAX)
		return NULL;
	return kind_names[kind];
}

static bool str_eq(const char *a, const char *b)
{
	return a && b && strcmp(a, b) == 0;
}

static bool has_prefix(const char *s, const char *prefix)
{
	return strncmp(s, prefix, strlen(prefix)) == 0;
}

/* ---- a growable list of strings, searched after sorting ---- */

struct strlist {
	char **v;
	size_t n;
	size_t cap;
	bool sorted;
};

static void strlist_done(struct strlist *l)
{
	for (size_t i = 0; i < l->n; i++)
		free(l->v[i]);
	free(l->v);
	*l = (struct strlist){};
}

static int strlist_add(struct strlist *l, const char *s)
{
	if (l->n == l->cap) {
		size_t cap = l->cap ? 2 * l->cap : 16;
		char **v = reallocarray(l->v, cap, sizeof(*v));

		if (!v)
			return -ENOMEM;
		l->v = v;
		l->cap = cap;
	}
	l->v[l->n] = strdup(s);
	if (!l->v[l->n])
		return -ENOMEM;
	l->n++;
	l->sorted = false;
	return 0;
}

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

static bool strlist_contains(struct strlist *l, const char *s)
{
	if (l->n == 0)
		return false;
	if (!l->sorted) {
		qsort(l->v, l->n, sizeof(*l->v), cmp_str);
		l->sorted = true;
	}
	return bsearch(&s, l->v, l->n, sizeof(*l->v), cmp_str) != NULL;
}

/* ---- the report ---- */

static void finding_done(struct doctor_finding *f)
{
	free(f->pool);
	free(f->rados_namespace);
	free(f->object);
	free(f->volume_id);
	free(f->detail);
	free(f->repair);
}

struct doctor_report *doctor_report_free(struct doctor_report *r)
{
	if (!r)
		return NULL;
	for (size_t i = 0; i < r->n_findings; i++)
		finding_done(&r->findings[i]);
	free(r->findings);
	free(r);
	return NULL;
}

/* Adds a finding; returns it (valid until the next add) or NULL when out of memory. */
_printf_(7, 8) static struct doctor_finding *report_add(struct doctor_report *rep,
                                                        enum doctor_kind kind, const char *pool,
                                                        const char *ns, const char *object,
                                                        const char *volume_id, const char *fmt, ...)
{
	struct doctor_finding *v, *f;
	va_list ap;
	int r;

	v = reallocarray(rep->findings, rep->n_findings + 1, sizeof(*v));
	if (!v)
		return NULL;
	rep->findings = v;
	f = &v[rep->n_findings];
	*f = (struct doctor_finding){ .kind = kind };
	f->pool = strdup(strempty(pool));
	f->rados_namespace = strdup(strempty(ns));
	f->object = strdup(strempty(object));
	f->volume_id = volume_id ? strdup(volume_id) : NULL;
	va_start(ap, fmt);
	r = vasprintf(&f->detail, fmt, ap);
	va_end(ap);
	if (r < 0)
		f->detail = NULL;
	if (!f->pool || !f->rados_namespace || !f->object || (volume_id && !f->volume_id) ||
	    !f->detail) {
		finding_done(f);
		return NULL;
	}
	rep->n_findings++;
	return f;
}

_printf_(3, 4) static int finding_repair(struct doctor_finding *f, bool repaired, const char *fmt,
                                         ...)
{
	va_list ap;
	int r;

	free(f->repair);
	va_start(ap, fmt);
	r = vasprintf(&f->repair, fmt, ap);
	va_end(ap);
	if (r < 0) {
		f->repair = NULL;
		return -ENOMEM;
	}
	f->repaired = repaired;
	return 0;
}

/* ---- what a pool holds ---- */

struct pool_scan {
	const char *pool;
	const char *ns;
	int64_t pool_id;
	struct strlist images;      /* image names */
	struct strlist trash_ids;   /* trashed image ids ... */
	struct strlist trash_names; /* ... and their names, same order (unsorted) */
	struct strlist trash_named; /* trashed image names, for lookups */
	struct strlist entries[_JOURNAL_KIND_MAX];
	struct journal_name *keys[_JOURNAL_KIND_MAX];
	size_t n_keys[_JOURNAL_KIND_MAX];
	struct strlist referenced; /* images named by an entry */
	struct strlist live;       /* images of created volumes and snapshots that exist */
};

static void pool_scan_done(struct pool_scan *s)
{
	strlist_done(&s->images);
	strlist_done(&s->trash_ids);
	strlist_done(&s->trash_names);
	strlist_done(&s->trash_named);
	for (int k = 0; k < _JOURNAL_KIND_MAX; k++) {
		strlist_done(&s->entries[k]);
		journal_names_free(s->keys[k], s->n_keys[k]);
	}
	strlist_done(&s->referenced);
	strlist_done(&s->live);
}

static int scan_images(rados_ioctx_t io, struct pool_scan *s)
{
	size_t max = 64;

	for (;;) {
		_cleanup_free_ rbd_image_spec_t *v = calloc(max, sizeof(*v));
		size_t n = max;
		int r;

		if (!v)
			return -ENOMEM;
		r = rbd_list2(io, v, &n);
		if (r == -ERANGE && n > max) {
			max = n + 16;
			continue;
		}
		if (r == -ENOENT) /* no rbd_directory: no images */
			return 0;
		if (r < 0)
			return log_debug_errno(r, "Listing the images of %s failed: %m", s->pool);
		r = 0;
		for (size_t i = 0; i < n && r >= 0; i++)
			r = strlist_add(&s->images, v[i].name);
		rbd_image_spec_list_cleanup(v, n);
		return r;
	}
}

static int scan_trash(rados_ioctx_t io, struct pool_scan *s)
{
	size_t max = 64;

	for (;;) {
		_cleanup_free_ rbd_trash_image_info_t *v = calloc(max, sizeof(*v));
		size_t n = max;
		int r;

		if (!v)
			return -ENOMEM;
		r = rbd_trash_list(io, v, &n);
		if (r == -ERANGE && n > max) {
			max = n + 16;
			continue;
		}
		if (r == -ENOENT)
			return 0;
		if (r < 0)
			return log_debug_errno(r, "Listing the trash of %s failed: %m", s->pool);
		r = 0;
		for (size_t i = 0; i < n && r >= 0; i++) {
			r = strlist_add(&s->trash_ids, v[i].id);
			if (r >= 0)
				r = strlist_add(&s->trash_names, v[i].name);
			if (r >= 0)
				r = strlist_add(&s->trash_named, v[i].name);
		}
		rbd_trash_list_cleanup(v, n);
		return r;
	}
}

/* The entry objects of the namespace, by kind (their uuids). */
static int scan_objects(rados_ioctx_t io, struct pool_scan *s)
{
	rados_list_ctx_t ctx;
	int r;

	r = rados_nobjects_list_open(io, &ctx);
	if (r < 0)
		return log_debug_errno(r, "Listing the objects of %s failed: %m", s->pool);
	for (;;) {
		const char *oid = NULL;
		char prefix[JOURNAL_OID_MAX];

		r = rados_nobjects_list_next(ctx, &oid, NULL, NULL);
		if (r == -ENOENT) {
			r = 0;
			break;
		}
		if (r < 0)
			break;
		for (int k = 0; k < _JOURNAL_KIND_MAX && r >= 0; k++) {
			journal_entry_oid(k, "", prefix);
			if (has_prefix(oid, prefix) && volume_id_uuid_valid(oid + strlen(prefix)))
				r = strlist_add(&s->entries[k], oid + strlen(prefix));
		}
		if (r < 0)
			break;
	}
	rados_nobjects_list_close(ctx);
	return r;
}

static int scan_keys(rados_ioctx_t io, struct pool_scan *s)
{
	for (int k = 0; k < _JOURNAL_KIND_MAX; k++) {
		bool more = true;

		while (more) {
			struct journal_name *page = NULL, *v;
			size_t n = 0;
			const char *after = s->n_keys[k] ? s->keys[k][s->n_keys[k] - 1].name : NULL;
			int r;

			r = journal_list(io, k, after, LIST_PAGE, &page, &n, &more);
			if (r < 0)
				return r;
			v = reallocarray(s->keys[k], s->n_keys[k] + n, sizeof(*v));
			if (!v) {
				journal_names_free(page, n);
				return -ENOMEM;
			}
			memcpy(v + s->n_keys[k], page, n * sizeof(*v));
			free(page); /* the names moved into v */
			s->keys[k] = v;
			s->n_keys[k] += n;
			if (n == 0)
				break;
		}
	}
	return 0;
}

static const struct journal_name *key_of(const struct pool_scan *s, enum journal_kind k,
                                         const char *name)
{
	if (!name)
		return NULL;
	for (size_t i = 0; i < s->n_keys[k]; i++)
		if (strcmp(s->keys[k][i].name, name) == 0)
			return &s->keys[k][i];
	return NULL;
}

/* ---- checks ---- */

struct run {
	struct cluster *c;
	const struct doctor_options *o;
	struct doctor_report *rep;
	struct strlist nodes;
	struct strlist live_volumes; /* ids of volumes that exist, for the PV checks */
	struct strlist pv_handles;
	struct strlist scanned; /* "<pool id>/<namespace>" looked at */
	uint64_t now;
};

static bool node_exists(struct run *run, const char *node)
{
	return strlist_contains(&run->nodes, node);
}

static int repair_entry(rados_ioctx_t io, enum journal_kind k, const struct journal_entry *e,
                        const struct journal_name *key, struct doctor_finding *f)
{
	int r;

	for (size_t i = 0; i < e->n_fields; i++)
		if (has_prefix(e->fields[i].key, ATTACH_PREFIX))
			return finding_repair(f, false, "kept: attached to node %s",
			                      e->fields[i].key + strlen(ATTACH_PREFIX));
	if (key) {
		r = journal_unreserve(io, k, key->name, e->uuid);
		if (r < 0) {
			errno = -r;
			return finding_repair(f, false, "failed to remove the directory key: %m");
		}
	}
	r = journal_entry_remove(io, k, e->uuid, e->version);
	if (r == -ESTALE)
		return finding_repair(f, false, "kept: the entry changed while looking at it");
	if (r < 0) {
		errno = -r;
		return finding_repair(f, false, "failed to remove the entry: %m");
	}
	return finding_repair(f, true, "removed %sthe journal entry",
	                      key ? "the directory key and " : "");
}

static int check_attachments(struct run *run, rados_ioctx_t io, struct pool_scan *s,
                             const struct journal_entry *e, const struct volume_id *vid,
                             const char *id, const char *image, bool image_present)
{
	for (size_t i = 0; i < e->n_fields; i++) {
		const char *node;
		struct doctor_finding *f;
		size_t watchers = 0;
		int r;

		if (!has_prefix(e->fields[i].key, ATTACH_PREFIX))
			continue;
		node = e->fields[i].key + strlen(ATTACH_PREFIX);
		if (node_exists(run, node))
			continue;
		f = report_add(run->rep, DOCTOR_ATTACHMENT_TO_GONE_NODE, s->pool, s->ns, image, id,
		               "attached (%s) to node %s, which does not exist", e->fields[i].value,
		               node);
		if (!f)
			return -ENOMEM;
		if (!run->o->repair)
			continue;
		if (image_present) {
			r = image_watchers(io, image, &watchers);
			if (r < 0 && r != -ENOENT) {
				errno = -r;
				r = finding_repair(f, false, "kept: cannot count watchers: %m");
				if (r < 0)
					return r;
				continue;
			}
		}
		if (watchers > 0) {
			r = finding_repair(f, false, "kept: the image has %zu watcher(s), in use",
			                   watchers);
		} else {
			r = volume_detach(run->c, vid, node);
			if (r < 0) {
				errno = -r;
				r = finding_repair(f, false, "failed to remove the record: %m");
			} else
				r = finding_repair(
				        f, true, "removed the attachment record of node %s", node);
		}
		if (r < 0)
			return r;
	}
	return 0;
}

static int check_entry(struct run *run, rados_ioctx_t io, struct pool_scan *s, enum journal_kind k,
                       const char *uuid)
{
	_cleanup_journal_entry_ struct journal_entry *e = NULL;
	const struct journal_name *key;
	const char *name, *image, *state, *reserved_at;
	char oid[JOURNAL_OID_MAX];
	char id[VOLUME_ID_MAX + 1] = "";
	struct volume_id vid;
	bool image_present, image_live, alive;
	int r;

	r = journal_entry_read(io, k, uuid, &e);
	if (r == -ENOENT) /* removed since the listing */
		return 0;
	if (r < 0)
		return r;
	if (k == JOURNAL_VOLUME)
		run->rep->n_volumes++;
	else
		run->rep->n_snapshots++;
	journal_entry_oid(k, uuid, oid);
	name = journal_entry_get(e, F_NAME);
	image = journal_entry_get(e, F_IMAGE);
	state = journal_entry_get(e, F_STATE);
	reserved_at = journal_entry_get(e, F_RESERVED_AT);
	if (image) {
		r = strlist_add(&s->referenced, image);
		if (r < 0)
			return r;
	}
	if (volume_id_make(k == JOURNAL_VOLUME ? VOLUME_ID_VOLUME : VOLUME_ID_SNAPSHOT,
	                   run->o->cluster_id, s->pool_id, s->ns, uuid, &vid) >= 0 &&
	    volume_id_encode(&vid, id) < 0)
		id[0] = '\0';

	key = key_of(s, k, name);
	if (!key || strcmp(key->uuid, uuid) != 0) {
		if (!report_add(run->rep, DOCTOR_ENTRY_WITHOUT_KEY, s->pool, s->ns, oid,
		                id[0] ? id : NULL,
		                "no directory key points to this entry (name '%s', state %s): a "
		                "create or delete stopped between two steps; its retry finishes it",
		                strempty(name), strempty(state)))
			return -ENOMEM;
		key = NULL;
	}

	image_live = image && strlist_contains(&s->images, image);
	image_present = image_live || (image && strlist_contains(&s->trash_named, image));
	alive = str_eq(state, "created") || (k == JOURNAL_SNAPSHOT && str_eq(state, "cloned"));
	if (alive && !image_present) {
		struct doctor_finding *f;

		f = report_add(run->rep, DOCTOR_ENTRY_WITHOUT_IMAGE, s->pool, s->ns, oid,
		               id[0] ? id : NULL, "%s '%s' is %s, but its image %s is gone",
		               k == JOURNAL_VOLUME ? "volume" : "snapshot", strempty(name), state,
		               strempty(image));
		if (!f)
			return -ENOMEM;
		if (run->o->repair) {
			r = repair_entry(io, k, e, key, f);
			if (r < 0)
				return r;
		}
	} else if (!alive && reserved_at) {
		uint64_t at = 0;

		/* Damaged (not our decimal seconds): as old as can be, so it is reported. */
		(void)parse_u64(reserved_at, &at);

		if (at + VOLUME_STALE_RESERVATION_SEC < run->now &&
		    !report_add(run->rep, DOCTOR_STALE_RESERVATION, s->pool, s->ns, oid,
		                id[0] ? id : NULL,
		                "'%s' has been in state %s since %" PRIu64 " s ago: a create or "
		                "delete the CO gave up on",
		                strempty(name), strempty(state), run->now - at))
			return -ENOMEM;
	}

	if (alive && image_live) {
		r = strlist_add(&s->live, image);
		if (r < 0)
			return r;
	}
	if (k != JOURNAL_VOLUME || !id[0])
		return 0;
	if (alive && image_live) {
		r = strlist_add(&run->live_volumes, id);
		if (r < 0)
			return r;
	}
	if (run->o->have_nodes)
		return check_attachments(run, io, s, e, &vid, id, image, image_live);
	return 0;
}

static bool driver_image(const struct doctor_options *o, const char *name)
{
	if (has_prefix(name, SNAPSHOT_IMAGE_PREFIX))
		return true;
	if (!o->prefixes)
		return has_prefix(name, VOLUME_IMAGE_PREFIX_DEFAULT);
	for (size_t i = 0; i < o->n_prefixes; i++)
		if (has_prefix(name, o->prefixes[i]))
			return true;
	return false;
}

/* The number of snapshots (all namespaces) of a trashed image, by id. */
static int trash_snap_count(rados_ioctx_t io, const char *image_id, size_t *ret)
{
	rbd_image_t img = NULL;
	rbd_snap_info_t info[8];
	int n = ELEMENTSOF(info);
	int r;

	r = rbd_open_by_id_read_only(io, image_id, &img, NULL);
	if (r < 0)
		return r;
	r = rbd_snap_list(img, info, &n);
	if (r >= 0)
		rbd_snap_list_end(info);
	rbd_close(img);
	if (r == -ERANGE) /* more than fit: certainly some */
		r = n;
	if (r < 0)
		return r;
	*ret = (size_t)r;
	return 0;
}

static int check_images(struct run *run, rados_ioctx_t io, struct pool_scan *s)
{
	for (size_t i = 0; i < s->images.n; i++) {
		const char *name = s->images.v[i];

		if (strlist_contains(&s->referenced, name)) {
			run->rep->n_images++;
			continue;
		}
		if (!driver_image(run->o, name)) {
			run->rep->n_foreign++;
			continue;
		}
		run->rep->n_images++;
		if (!report_add(
		            run->rep, DOCTOR_IMAGE_WITHOUT_ENTRY, s->pool, s->ns, name, NULL,
		            "image %s has the driver's prefix but no journal entry names it; it "
		            "may hold data: look at it, then remove it with rbd rm",
		            name))
			return -ENOMEM;
	}

	for (size_t i = 0; i < s->trash_ids.n; i++) {
		const char *id = s->trash_ids.v[i], *name = s->trash_names.v[i];
		struct doctor_finding *f;
		size_t snaps = 0;
		int r;

		if (!driver_image(run->o, name) || strlist_contains(&s->referenced, name))
			continue;
		r = trash_snap_count(io, id, &snaps);
		if (r == -ENOENT)
			continue;
		if (r < 0)
			return r;
		if (snaps > 0) /* clone children hang from it: the driver's chains keep it */
			continue;
		f = report_add(
		        run->rep, DOCTOR_TRASH_LEFTOVER, s->pool, s->ns, id, NULL,
		        "trashed image %s (id %s) has no snapshots, so nothing hangs from it "
		        "any more, but it was not collected",
		        name, id);
		if (!f)
			return -ENOMEM;
		if (!run->o->repair)
			continue;
		r = image_trash_collect(io, id);
		if (r == 2 || r == 1)
			r = finding_repair(f, true, "removed image id %s from the trash", id);
		else if (r == 0)
			r = finding_repair(f, false,
			                   "kept: not removable yet (snapshots or deferment)");
		else {
			errno = -r;
			r = finding_repair(f, false, "failed to remove it from the trash: %m");
		}
		if (r < 0)
			return r;
	}
	return 0;
}

/* The state of entry uuid of kind k in this pool, or NULL (in *ret, malloc'ed) when absent. */
static int entry_state(rados_ioctx_t io, enum journal_kind k, const char *uuid, char **ret)
{
	_cleanup_journal_entry_ struct journal_entry *e = NULL;
	const char *state;
	int r;

	*ret = NULL;
	r = journal_entry_read(io, k, uuid, &e);
	if (r == -ENOENT)
		return 0;
	if (r < 0)
		return r;
	state = journal_entry_get(e, F_STATE);
	*ret = strdup(state ? state : "");
	return *ret ? 0 : -ENOMEM;
}

/* Whether the temporary snapshot snap is what a finished (or abandoned) create left. */
static int temp_snapshot_left(rados_ioctx_t io, const char *snap, const char **ret_why)
{
	_cleanup_free_ char *state = NULL;
	bool clone = has_prefix(snap, SNAPSHOT_TEMP_CLONE_PREFIX);
	const char *uuid =
	        snap + strlen(clone ? SNAPSHOT_TEMP_CLONE_PREFIX : SNAPSHOT_TEMP_SNAP_PREFIX);
	int r;

	*ret_why = NULL;
	if (!volume_id_uuid_valid(uuid))
		return 0;
	r = entry_state(io, clone ? JOURNAL_VOLUME : JOURNAL_SNAPSHOT, uuid, &state);
	if (r < 0)
		return r;
	if (clone) {
		/* The clone's volume may live in another pool: only a created one here is proof. */
		if (str_eq(state, "created"))
			*ret_why = "the clone it was taken for is created";
	} else if (!state)
		*ret_why = "its CSI snapshot's entry is gone";
	else if (str_eq(state, "created"))
		*ret_why = "its CSI snapshot is created";
	return 0;
}

static int check_temp_snapshots(struct run *run, rados_ioctx_t io, struct pool_scan *s)
{
	for (size_t i = 0; i < s->live.n; i++) {
		const char *image = s->live.v[i];
		struct image_snap *snaps = NULL;
		size_t n = 0;
		int r;

		r = image_snap_list(io, image, &snaps, &n);
		if (r == -ENOENT)
			continue;
		if (r < 0)
			return r;
		for (size_t k = 0; k < n && r >= 0; k++) {
			struct doctor_finding *f;
			const char *why = NULL;
			size_t watchers = 0;

			if (!has_prefix(snaps[k].name, SNAPSHOT_TEMP_SNAP_PREFIX) &&
			    !has_prefix(snaps[k].name, SNAPSHOT_TEMP_CLONE_PREFIX))
				continue;
			r = temp_snapshot_left(io, snaps[k].name, &why);
			if (r < 0 || !why)
				continue;
			f = report_add(run->rep, DOCTOR_TEMP_SNAPSHOT_LEFTOVER, s->pool, s->ns,
			               image, NULL, "temporary snapshot %s@%s is left over: %s",
			               image, snaps[k].name, why);
			if (!f) {
				r = -ENOMEM;
				break;
			}
			if (!run->o->repair)
				continue;
			r = image_watchers(io, image, &watchers);
			if (r < 0) {
				errno = -r;
				r = finding_repair(f, false, "kept: cannot count watchers: %m");
			} else if (watchers > 0)
				r = finding_repair(f, false,
				                   "kept: the image has %zu watcher(s), in use",
				                   watchers);
			else if ((r = image_snap_remove(io, image, snaps[k].name)) < 0) {
				errno = -r;
				r = finding_repair(f, false, "failed to remove the snapshot: %m");
			} else
				r = finding_repair(f, true, "removed snapshot %s@%s", image,
				                   snaps[k].name);
		}
		image_snap_list_free(snaps, n);
		if (r < 0)
			return r;
	}
	return 0;
}

static int doctor_pool(struct run *run, const char *pool)
{
	_cleanup_ioctx_ rados_ioctx_t io = NULL;
	struct pool_scan s = { .pool = pool, .ns = strempty(run->o->rados_namespace) };
	_cleanup_free_ char *scanned = NULL;
	int r;

	r = cluster_ioctx_open(run->c, pool, s.ns, &io);
	if (r < 0)
		return log_debug_errno(r, "Opening pool %s failed: %m", pool);
	s.pool_id = rados_ioctx_get_id(io);
	if (asprintf(&scanned, "%" PRId64 "/%s", s.pool_id, s.ns) < 0) {
		scanned = NULL;
		return -ENOMEM;
	}
	r = scan_images(io, &s);
	if (r >= 0)
		r = scan_trash(io, &s);
	if (r >= 0)
		r = scan_keys(io, &s);
	/* Listing the objects costs a pass over every object name of the pool (namespace): skip
	 * pools that are no RBD pool of ours, with no image, trash entry or directory key. */
	if (r >= 0 &&
	    (s.images.n || s.trash_ids.n || s.n_keys[JOURNAL_VOLUME] || s.n_keys[JOURNAL_SNAPSHOT]))
		r = scan_objects(io, &s);
	/* Looked at: the PV checks may judge volumes of this pool. */
	if (r >= 0)
		r = strlist_add(&run->scanned, scanned);
	if (r >= 0)
		run->rep->n_pools++;

	for (int k = 0; k < _JOURNAL_KIND_MAX && r >= 0; k++) {
		for (size_t i = 0; i < s.entries[k].n && r >= 0; i++)
			r = check_entry(run, io, &s, k, s.entries[k].v[i]);
		for (size_t i = 0; i < s.n_keys[k] && r >= 0; i++) {
			const struct journal_name *jn = &s.keys[k][i];
			char oid[JOURNAL_OID_MAX];

			if (jn->uuid[0] && strlist_contains(&s.entries[k], jn->uuid))
				continue;
			journal_entry_oid(k, jn->uuid, oid);
			if (!report_add(
			            run->rep, DOCTOR_KEY_WITHOUT_ENTRY, s.pool, s.ns,
			            journal_directory_oid(k), NULL,
			            "directory key '%s' points to %s, which does not exist: a "
			            "create stopped after reserving the name; its retry finishes "
			            "it",
			            jn->name, jn->uuid[0] ? oid : "no uuid"))
				r = -ENOMEM;
		}
	}
	if (r >= 0)
		r = check_images(run, io, &s);
	if (r >= 0)
		r = check_temp_snapshots(run, io, &s);
	pool_scan_done(&s);
	return r;
}

static int check_pvs(struct run *run)
{
	const struct doctor_options *o = run->o;

	for (size_t i = 0; i < o->n_pvs; i++) {
		struct volume_id vid;
		char scanned[32 + VOLUME_ID_NAMESPACE_MAX];
		int r;

		if (!o->pvs[i].volume_handle)
			continue;
		r = strlist_add(&run->pv_handles, o->pvs[i].volume_handle);
		if (r < 0)
			return r;
		if (volume_id_decode_kind(o->pvs[i].volume_handle, VOLUME_ID_VOLUME, &vid) < 0 ||
		    strcmp(vid.cluster_id, o->cluster_id) != 0)
			continue; /* not this cluster's (or not ours) */
		snprintf(scanned, sizeof(scanned), "%" PRId64 "/%s", vid.pool_id,
		         vid.rados_namespace);
		if (!strlist_contains(&run->scanned, scanned))
			continue; /* a pool not looked at */
		if (strlist_contains(&run->live_volumes, o->pvs[i].volume_handle))
			continue;
		if (!report_add(run->rep, DOCTOR_PV_WITHOUT_VOLUME, NULL, vid.rados_namespace,
		                o->pvs[i].name, o->pvs[i].volume_handle,
		                "PersistentVolume %s refers to a volume that does not exist",
		                o->pvs[i].name))
			return -ENOMEM;
	}
	for (size_t i = 0; i < run->live_volumes.n; i++) {
		const char *id = run->live_volumes.v[i];

		if (strlist_contains(&run->pv_handles, id))
			continue;
		if (!report_add(
		            run->rep, DOCTOR_VOLUME_WITHOUT_PV, NULL, NULL, id, id,
		            "no PersistentVolume refers to volume %s; it may hold data: delete "
		            "it with DeleteVolume (or a PV with reclaimPolicy Delete) if nobody "
		            "needs it",
		            id))
			return -ENOMEM;
	}
	return 0;
}

int doctor_run(struct cluster *c, const struct doctor_options *o, struct doctor_report **ret)
{
	_cleanup_(doctor_report_freep) struct doctor_report *rep = NULL;
	struct run run = { .c = c, .o = o };
	char **pools = NULL;
	size_t n_pools = 0;
	int r = 0;

	if (!c || !o || !volume_id_cluster_id_valid(o->cluster_id))
		return -EINVAL;
	for (size_t i = 0; i < o->n_prefixes; i++)
		if (isempty(o->prefixes[i]))
			return -EINVAL;
	rep = calloc(1, sizeof(*rep));
	if (!rep)
		return -ENOMEM;
	run.rep = rep;
	run.now = o->now_sec ? o->now_sec : (uint64_t)time(NULL);
	for (size_t i = 0; i < o->n_nodes && r >= 0; i++)
		r = strlist_add(&run.nodes, o->nodes[i]);

	if (r >= 0 && !o->pools)
		r = cluster_pool_list(c, &pools, &n_pools);
	if (o->pools)
		for (size_t i = 0; i < o->n_pools && r >= 0; i++)
			r = doctor_pool(&run, o->pools[i]);
	else
		for (size_t i = 0; i < n_pools && r >= 0; i++) {
			r = doctor_pool(&run, pools[i]);
			/* Every pool: a user limited to some pools (profile rbd pool=...) skips
			 * the others. Nothing of a pool is reported before its listings worked. */
			if (r == -EPERM || r == -EACCES) {
				log_debug_errno(r, "Skipping pool %s: %m", pools[i]);
				rep->n_skipped++;
				r = 0;
			}
		}
	if (r >= 0 && o->have_pvs)
		r = check_pvs(&run);

	for (size_t i = 0; i < n_pools; i++)
		free(pools[i]);
	free(pools);
	strlist_done(&run.nodes);
	strlist_done(&run.live_volumes);
	strlist_done(&run.pv_handles);
	strlist_done(&run.scanned);
	if (r < 0)
		return r;
	*ret = TAKE_PTR(rep);
	return 0;
}
