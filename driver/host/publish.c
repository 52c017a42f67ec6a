/* SPDX-License-Identifier: Apache-2.0 */
#include <errno.h>
#include <inttypes.h>
#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "driver/base/failpoint.h"
#include "driver/base/fileio.h"
#include "driver/base/log.h"
#include "driver/base/macro.h"
#include "driver/base/sha256.h"
#include "driver/host/mount.h"
#include "driver/host/publish.h"

DEFINE_TRIVIAL_CLEANUP_FUNC(json_object *, json_object_put)

static int record_path(const char *state_dir, const char *volume_id, char **ret)
{
	char hex[SHA256_HEX_SIZE];

	if (isempty(state_dir) || isempty(volume_id))
		return -EINVAL;
	sha256_hex(volume_id, strlen(volume_id), hex);
	if (asprintf(ret, "%s/%s.targets", state_dir, hex) < 0)
		return -ENOMEM;
	return 0;
}

void publish_record_done(struct publish_record *rec)
{
	if (!rec)
		return;
	for (size_t i = 0; i < rec->n; i++)
		free(rec->targets[i].target);
	free(rec->targets);
	*rec = (struct publish_record){ 0 };
}

static bool get_bool(json_object *o, const char *key)
{
	json_object *v;

	return json_object_object_get_ex(o, key, &v) && json_object_get_boolean(v);
}

int publish_load(const char *state_dir, const char *volume_id, struct publish_record *ret)
{
	_cleanup_(json_object_putp) json_object *a = NULL;
	_cleanup_free_ char *path = NULL, *data = NULL;
	struct publish_record rec = { 0 };
	int r;

	r = record_path(state_dir, volume_id, &path);
	if (r < 0)
		return r;
	r = fileio_read_full(path, PUBLISH_FILE_MAX, &data, NULL);
	if (r == -ENOENT) {
		*ret = rec;
		return 0;
	}
	if (r < 0)
		return r;
	a = json_tokener_parse(data);
	if (!a || !json_object_is_type(a, json_type_array)) {
		log_debug("Ignoring the malformed publish record %s", path);
		*ret = rec;
		return 0;
	}
	for (size_t i = 0; i < json_object_array_length(a); i++) {
		json_object *t = json_object_array_get_idx(a, i), *v;
		struct publish_target e = { 0 };

		if (!json_object_object_get_ex(t, "target", &v) ||
		    !json_object_is_type(v, json_type_string))
			continue;
		e.target = (char *)json_object_get_string(v);
		e.read_only = get_bool(t, "readonly");
		e.block = get_bool(t, "block");
		/* Records of older versions have no "mounted": they were written after the bind. */
		e.mounted =
		        !json_object_object_get_ex(t, "mounted", &v) || json_object_get_boolean(v);
		if (json_object_object_get_ex(t, "devno", &v))
			e.devno = (dev_t)json_object_get_uint64(v);
		r = publish_set(&rec, &e);
		if (r < 0) {
			publish_record_done(&rec);
			return r;
		}
	}
	*ret = rec;
	return 0;
}

int publish_save(const char *state_dir, const char *volume_id, const struct publish_record *rec)
{
	_cleanup_(json_object_putp) json_object *a = NULL;
	_cleanup_free_ char *path = NULL;
	const char *text;
	int r;

	r = record_path(state_dir, volume_id, &path);
	if (r < 0)
		return r;
	if (rec->n == 0) {
		if (unlink(path) < 0 && errno != ENOENT)
			return negative_errno();
		return 0;
	}
	a = json_object_new_array();
	if (!a)
		return -ENOMEM;
	for (size_t i = 0; i < rec->n; i++) {
		const struct publish_target *t = &rec->targets[i];
		json_object *o = json_object_new_object();

		if (!o || json_object_array_add(a, o) < 0) {
			json_object_put(o);
			return -ENOMEM;
		}
		json_object_object_add(o, "target", json_object_new_string(t->target));
		json_object_object_add(o, "readonly", json_object_new_boolean(t->read_only));
		json_object_object_add(o, "block", json_object_new_boolean(t->block));
		json_object_object_add(o, "devno", json_object_new_uint64((uint64_t)t->devno));
		json_object_object_add(o, "mounted", json_object_new_boolean(t->mounted));
	}
	text = json_object_to_json_string_ext(a, JSON_C_TO_STRING_PLAIN |
	                                                 JSON_C_TO_STRING_NOSLASHESCAPE);
	if (!text)
		return -ENOMEM;
	return fileio_write_atomic(path, text, strlen(text), 0600);
}

int publish_forget(const char *state_dir, const char *volume_id)
{
	_cleanup_free_ char *path = NULL;
	int r;

	r = record_path(state_dir, volume_id, &path);
	if (r < 0)
		return r;
	if (unlink(path) < 0 && errno != ENOENT)
		return negative_errno();
	return 0;
}

int publish_find(const struct publish_record *rec, const char *target)
{
	for (size_t i = 0; i < rec->n; i++)
		if (target && strcmp(rec->targets[i].target, target) == 0)
			return (int)i;
	return -ENOENT;
}

int publish_set(struct publish_record *rec, const struct publish_target *t)
{
	int k = publish_find(rec, t->target);
	struct publish_target *n;
	char *s;

	if (isempty(t->target))
		return -EINVAL;
	s = strdup(t->target);
	if (!s)
		return -ENOMEM;
	if (k >= 0) {
		free(rec->targets[k].target);
		rec->targets[k] = *t;
		rec->targets[k].target = s;
		return 0;
	}
	if (rec->n >= PUBLISH_TARGETS_MAX) {
		free(s);
		return -E2BIG;
	}
	n = realloc(rec->targets, (rec->n + 1) * sizeof(*n));
	if (!n) {
		free(s);
		return -ENOMEM;
	}
	rec->targets = n;
	rec->targets[rec->n] = *t;
	rec->targets[rec->n].target = s;
	rec->n++;
	return 0;
}

void publish_remove(struct publish_record *rec, size_t i)
{
	if (i >= rec->n)
		return;
	free(rec->targets[i].target);
	memmove(&rec->targets[i], &rec->targets[i + 1], (rec->n - i - 1) * sizeof(rec->targets[0]));
	rec->n--;
}

/* Undoes the record of a target whose bind did not happen: removes entry k and saves. */
static int forget_target(const struct publish_bind_request *req, struct publish_record *rec, int k,
                         enum publish_step step, int error, enum publish_step *ret_step)
{
	publish_remove(rec, (size_t)k);
	(void)publish_save(req->state_dir, req->volume_id, rec);
	*ret_step = step;
	return error;
}

int publish_bind(const struct publish_bind_request *req, struct publish_record *rec,
                 enum publish_step *ret_step)
{
	struct path_resolved *target = req->target;
	const struct publish_target entry = {
		.target = target->text,
		.read_only = req->read_only,
		.block = req->block,
		.devno = req->devno,
		.mounted = false,
	};
	int r, k;

	/* Recorded before the bind, so that a crash after it leaves a target unpublish owns. */
	r = publish_set(rec, &entry);
	if (r >= 0)
		r = publish_save(req->state_dir, req->volume_id, rec);
	if (r < 0) {
		*ret_step = PUBLISH_STEP_RECORD;
		return r;
	}
	k = publish_find(rec, target->text);
	if (k < 0) {
		*ret_step = PUBLISH_STEP_RECORD;
		return -EIO;
	}
	failpoint("node-publish:after-state");

	r = req->block ? path_create_file(target, 0640) : path_mkdir(target, 0750);
	if (r < 0)
		return forget_target(req, rec, k, PUBLISH_STEP_TARGET, r, ret_step);
	r = mount_bind_at(req->source, target, req->read_only, req->options);
	if (r < 0)
		return forget_target(req, rec, k, PUBLISH_STEP_BIND, r, ret_step);
	failpoint("node-publish:after-bind");

	rec->targets[k].mounted = true;
	r = publish_save(req->state_dir, req->volume_id, rec);
	if (r < 0) {
		/* Without the mark a retry still recognises the bind (same device); undo anyway. */
		target->fd = safe_close(target->fd);
		(void)mount_umount_at(target->dir_fd, target->name, target->text, false);
		*ret_step = PUBLISH_STEP_MARK;
		return r;
	}
	return 0;
}
