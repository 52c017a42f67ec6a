/* SPDX-License-Identifier: Apache-2.0 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <libmount/libmount.h>

#include "driver/base/exec.h"
#include "driver/base/log.h"
#include "driver/base/macro.h"
#include "driver/base/path.h"
#include "driver/host/node_doctor.h"
#include "driver/host/stage.h"

#define FUSE_FSTYPE "fuse.rbd-fuse"

static const char *const kind_names[_NODE_DOCTOR_KIND_MAX] = {
	[NODE_DOCTOR_STATE_WITHOUT_MOUNT] = "state_without_mount",
	[NODE_DOCTOR_MOUNT_WITHOUT_STATE] = "mount_without_state",
};

const char *node_doctor_kind_to_string(enum node_doctor_kind kind)
{
	if ((unsigned)kind >= _NODE_DOCTOR_KIND_MAX)
		return NULL;
	return kind_names[kind];
}

struct node_doctor_report *node_doctor_report_free(struct node_doctor_report *r)
{
	if (!r)
		return NULL;
	for (size_t i = 0; i < r->n_findings; i++) {
		free(r->findings[i].path);
		free(r->findings[i].volume_id);
		free(r->findings[i].detail);
	}
	free(r->findings);
	free(r);
	return NULL;
}

_printf_(5, 6) static int report_add(struct node_doctor_report *rep, enum node_doctor_kind kind,
                                     const char *path, const char *volume_id, const char *fmt, ...)
{
	struct node_doctor_finding *v, *f;
	va_list ap;
	int r;

	v = reallocarray(rep->findings, rep->n_findings + 1, sizeof(*v));
	if (!v)
		return -ENOMEM;
	rep->findings = v;
	f = &v[rep->n_findings];
	*f = (struct node_doctor_finding){ .kind = kind };
	f->path = strdup(path);
	f->volume_id = volume_id ? strdup(volume_id) : NULL;
	va_start(ap, fmt);
	r = vasprintf(&f->detail, fmt, ap);
	va_end(ap);
	if (r < 0)
		f->detail = NULL;
	if (!f->path || (volume_id && !f->volume_id) || !f->detail) {
		free(f->path);
		free(f->volume_id);
		free(f->detail);
		return -ENOMEM;
	}
	rep->n_findings++;
	return 0;
}

/* Is the device (when given) mounted at target in tab? */
static bool mounted_at(struct libmnt_table *tab, const char *target, const char *device)
{
	struct libmnt_fs *fs = mnt_table_find_target(tab, target, MNT_ITER_BACKWARD);
	struct stat a, b;

	if (!fs)
		return false;
	if (!device)
		return true;
	if (mnt_fs_streq_srcpath(fs, device))
		return true;
	/* the same device under another name (/dev/rbd0 vs /dev/rbd/pool/image) */
	return stat(device, &a) == 0 && S_ISBLK(a.st_mode) && mnt_fs_get_source(fs) &&
	       stat(mnt_fs_get_source(fs), &b) == 0 && a.st_rdev == b.st_rdev;
}

DEFINE_TRIVIAL_CLEANUP_FUNC(char **, exec_strv_free)
DEFINE_TRIVIAL_CLEANUP_FUNC(struct libmnt_table *, mnt_unref_table)
DEFINE_TRIVIAL_CLEANUP_FUNC(struct libmnt_iter *, mnt_free_iter)

/* The state of each volume id, in the order of the ids; NULL where a state did not load. */
struct states {
	struct stage_info **v;
	size_t n;
};

static void states_done(struct states *s)
{
	if (s->v)
		for (size_t i = 0; i < s->n; i++)
			stage_info_free(s->v[i]);
	free(s->v);
}

int node_doctor_run(const char *state_dir, const char *staging_root,
                    struct node_doctor_report **ret)
{
	_cleanup_(node_doctor_report_freep) struct node_doctor_report *rep = NULL;
	_cleanup_(exec_strv_freep) char **ids = NULL;
	_cleanup_free_ char *fuse_root = NULL;
	_cleanup_(states_done) struct states st = {};
	_cleanup_(mnt_unref_tablep) struct libmnt_table *tab = NULL;
	_cleanup_(mnt_free_iterp) struct libmnt_iter *it = NULL;
	struct stage_info **infos;
	struct libmnt_fs *fs;
	size_t n_ids = 0;
	int r;

	if (!state_dir || state_dir[0] != '/' || !staging_root || staging_root[0] != '/')
		return -EINVAL;
	rep = calloc(1, sizeof(*rep));
	if (!rep)
		return -ENOMEM;
	if (asprintf(&fuse_root, "%s/fuse", state_dir) < 0) {
		fuse_root = NULL;
		return -ENOMEM;
	}
	r = stage_list(state_dir, &ids);
	if (r == -ENOENT)
		ids = NULL;
	else if (r < 0)
		return r;
	for (char **p = ids; p && *p; p++)
		n_ids++;
	st.v = infos = calloc(n_ids + 1, sizeof(*infos));
	st.n = n_ids;
	tab = mnt_new_table();
	it = mnt_new_iter(MNT_ITER_FORWARD);
	if (!infos || !tab || !it)
		return -ENOMEM;
	if (mnt_table_parse_mtab(tab, NULL) < 0)
		return -EIO;

	for (size_t i = 0; i < n_ids; i++) {
		_cleanup_free_ char *path = NULL;
		struct stage_info *info;
		bool ok;

		r = stage_load(state_dir, ids[i], &infos[i]);
		if (r < 0) {
			infos[i] = NULL;
			continue; /* removed since the listing, or not ours to judge */
		}
		info = infos[i];
		rep->n_states++;
		if ((unsigned)info->mapper < _MAPPER_MAX)
			rep->n_by_mapper[info->mapper]++;
		if (stage_state_path(state_dir, ids[i], &path) < 0)
			return -ENOMEM;
		if (info->access == STAGE_ACCESS_MOUNT)
			ok = info->staging_path &&
			     mounted_at(tab, info->staging_path, info->device);
		else {
			struct stat sb;

			ok = info->device && stat(info->device, &sb) == 0 && S_ISBLK(sb.st_mode);
		}
		if (ok && strcmp(strempty(info->phase), "staged") == 0)
			continue;
		rep->n_abnormal++;
		r = report_add(rep, NODE_DOCTOR_STATE_WITHOUT_MOUNT, path, info->volume_id,
		               "state says %s (%s) at %s, but %s", strempty(info->phase),
		               info->access == STAGE_ACCESS_MOUNT ? "filesystem" : "block",
		               strempty(info->staging_path),
		               ok ? "the stage did not finish"
		               : info->access == STAGE_ACCESS_MOUNT
		                       ? "nothing of it is mounted there"
		                       : "its device is gone");
		if (r < 0)
			return r;
	}

	while (mnt_table_next_fs(tab, it, &fs) == 0) {
		const char *target = mnt_fs_get_target(fs);
		const char *fstype = mnt_fs_get_fstype(fs);
		bool known = false, fuse;

		if (!target)
			continue;
		fuse = path_is_below(target, fuse_root) && fstype &&
		       strcmp(fstype, FUSE_FSTYPE) == 0;
		if (!fuse &&
		    (!path_is_below(target, staging_root) || path_equal(target, staging_root)))
			continue;
		for (size_t i = 0; i < n_ids && !known; i++) {
			if (!infos[i])
				continue;
			known = fuse ? path_equal(target, mapper_own_mount(infos[i]->mapper,
			                                                   infos[i]->mapper_state))
			             : path_equal(target, infos[i]->staging_path);
		}
		if (known)
			continue;
		r = report_add(rep, NODE_DOCTOR_MOUNT_WITHOUT_STATE, target, NULL,
		               "%s (%s) is mounted at %s, but no state file describes it",
		               strempty(mnt_fs_get_source(fs)), strempty(fstype), target);
		if (r < 0)
			return r;
	}
	*ret = TAKE_PTR(rep);
	return 0;
}
