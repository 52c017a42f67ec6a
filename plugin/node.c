/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The CSI Node service: request validation and CSI semantics on top of driver/host's stage
 * transaction (driver/host/stage.h). Stage maps, probes, formats only a blank device and mounts
 * at the staging path; publish bind-mounts the staging mount (or, for block volumes, the device)
 * onto the pod's target; unpublish and unstage undo that, idempotently.
 *
 * State lives under <state-dir>/<drivername>/stage: one JSON file per staged volume (written by
 * driver/host/stage.c) and one per published volume listing its targets (written here), so a
 * restarted plugin knows what to undo and can enforce SINGLE_NODE_SINGLE_WRITER.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <json-c/json.h>

#include "csi.pb-c.h"
#include "driver/base/exec.h"
#include "driver/base/fileio.h"
#include "driver/host/blockdev.h"
#include "driver/host/fs.h"
#include "driver/host/mount.h"
#include "driver/base/sha256.h"
#include "driver/host/stage.h"
#include "plugin/capabilities.h"
#include "plugin/config.h"
#include "plugin/locks.h"
#include "plugin/node.h"
#include "plugin/params.h"
#include "plugin/plugin.h"

#define NODE_PATH_MAX 4000

/* <state-dir>/<drivername>/stage, where stage.c and this file keep their state. */
static char *stage_dir(struct call *c)
{
	return call_printf(c, "%s/%s/stage", c->plugin->opt.state_dir, c->plugin->opt.driver_name);
}

/*
 * A path from a request: absolute, no "." or ".." component, no control characters, below the
 * kubelet directory (--kubelet-dir), at most NODE_PATH_MAX bytes.
 */
static int check_path(struct call *c, const char *field, const char *path)
{
	const char *root = c->plugin->opt.kubelet_dir;
	size_t n = strlen(root);

	if (isempty(path))
		return call_fail(c, STATUS_INVALID_ARGUMENT, "%s is required", field);
	if (strlen(path) > NODE_PATH_MAX)
		return call_fail(c, STATUS_INVALID_ARGUMENT, "%s is longer than %d bytes", field,
		                 NODE_PATH_MAX);
	if (path[0] != '/')
		return call_fail(c, STATUS_INVALID_ARGUMENT, "%s '%s' is not an absolute path",
		                 field, path);
	for (const char *s = path; *s; s++)
		if ((unsigned char)*s < 0x20 || *s == 0x7f)
			return call_fail(c, STATUS_INVALID_ARGUMENT,
			                 "%s contains control characters", field);
	for (const char *s = path; (s = strchr(s, '/')); s++)
		if ((s[1] == '.' && (s[2] == '/' || s[2] == 0)) ||
		    (s[1] == '.' && s[2] == '.' && (s[3] == '/' || s[3] == 0)))
			return call_fail(c, STATUS_INVALID_ARGUMENT,
			                 "%s '%s' has a '.' or '..' component", field, path);
	while (n > 1 && root[n - 1] == '/')
		n--;
	if (strcmp(root, "/") != 0 && (strncmp(path, root, n) != 0 || path[n] != '/'))
		return call_fail(c, STATUS_INVALID_ARGUMENT,
		                 "%s '%s' is not below the kubelet "
		                 "directory '%s'",
		                 field, path, root);
	return 0;
}

/* The parent of path must exist and be a directory (the CO creates it). */
static int check_parent(struct call *c, const char *field, const char *path)
{
	_cleanup_free_ char *parent = strdup(path);
	char *slash;
	struct stat st;

	if (!parent)
		return -ENOMEM;
	slash = strrchr(parent, '/');
	if (slash && slash != parent)
		*slash = 0;
	if (stat(parent, &st) < 0 || !S_ISDIR(st.st_mode))
		return call_fail(c, STATUS_NOT_FOUND, "%s: parent directory '%s' does not exist",
		                 field, parent);
	return 0;
}

/* ---- published targets of a volume: <stage dir>/<sha256(volume id)>.targets ---- */

static char *targets_path(struct call *c, const char *volume_id)
{
	char hex[SHA256_HEX_SIZE];

	sha256_hex(volume_id, strlen(volume_id), hex);
	return call_printf(c, "%s/%s.targets", stage_dir(c), hex);
}

/* Reads the targets list; a missing file is an empty list. *ret is a json array (put it). */
static int targets_load(struct call *c, const char *volume_id, json_object **ret)
{
	_cleanup_free_ char *data = NULL;
	const char *path = targets_path(c, volume_id);
	size_t size;
	json_object *a;
	int r;

	if (!path)
		return -ENOMEM;
	r = fileio_read_full(path, 1024 * 1024, &data, &size);
	if (r == -ENOENT) {
		*ret = json_object_new_array();
		return *ret ? 0 : -ENOMEM;
	}
	if (r < 0)
		return r;
	a = json_tokener_parse(data);
	if (!a || !json_object_is_type(a, json_type_array)) {
		json_object_put(a);
		log_warning("Ignoring the malformed publish record '%s'", path);
		*ret = json_object_new_array();
		return *ret ? 0 : -ENOMEM;
	}
	*ret = a;
	return 0;
}

static int targets_save(struct call *c, const char *volume_id, json_object *a)
{
	const char *path = targets_path(c, volume_id);
	const char *text;

	if (!path)
		return -ENOMEM;
	if (json_object_array_length(a) == 0) {
		if (unlink(path) < 0 && errno != ENOENT)
			return -errno;
		return 0;
	}
	text = json_object_to_json_string_ext(a, JSON_C_TO_STRING_PLAIN |
	                                                 JSON_C_TO_STRING_NOSLASHESCAPE);
	return fileio_write_atomic(path, text, strlen(text), 0600);
}

static int targets_find(json_object *a, const char *target)
{
	for (size_t i = 0; i < json_object_array_length(a); i++) {
		json_object *t = json_object_array_get_idx(a, i), *p;

		if (json_object_object_get_ex(t, "target", &p) &&
		    strcmp(json_object_get_string(p), target) == 0)
			return (int)i;
	}
	return -1;
}

/* ---- NodeStageVolume / NodeUnstageVolume ---- */

static const char *context_get(const Csi__V1__NodeStageVolumeRequest *req, const char *key)
{
	return params_map_get((void *const *)req->volume_context, req->n_volume_context, key);
}

/* Mount flags of a capability, joined with commas (call-owned), or NULL. */
static char *mount_flags(struct call *c, const Csi__V1__VolumeCapability *cap)
{
	char *out = NULL;

	/* mount and block share a union: look at the case, not the pointer. */
	if (cap->access_type_case != CSI__V1__VOLUME_CAPABILITY__ACCESS_TYPE_MOUNT || !cap->mount)
		return NULL;
	for (size_t i = 0; i < cap->mount->n_mount_flags; i++)
		out = call_printf(c, "%s%s%s", out ? out : "", out ? "," : "",
		                  cap->mount->mount_flags[i]);
	return out;
}

int node_stage_volume(struct call *c, const void *request, void *response)
{
	const Csi__V1__NodeStageVolumeRequest *req = request;
	struct access_summary access;
	struct config_cluster cl = { 0 };
	_cleanup_(stage_info_freep) struct stage_info *info = NULL;
	_cleanup_free_ char *reason = NULL;
	const char *user, *key, *cluster_id, *pool, *image, *fstype, *mounter, *dir;
	const char *rados_namespace = context_get(req, "radosNamespace");
	struct static_volume sv = { 0 };
	struct stage_request sr;
	enum mapper_type mapper;
	struct op_lock lock = { 0 };
	int r;

	(void)response;
	if (isempty(req->volume_id))
		return call_fail(c, STATUS_INVALID_ARGUMENT, "volume_id is required");
	r = check_path(c, "staging_target_path", req->staging_target_path);
	if (r < 0)
		return r;
	if (!req->volume_capability)
		return call_fail(c, STATUS_INVALID_ARGUMENT, "volume_capability is required");
	r = params_check_capabilities(c, "volume_capability", &req->volume_capability, 1, &access);
	if (r < 0)
		return r;
	cluster_id = context_get(req, "clusterID");
	pool = context_get(req, "pool");
	image = context_get(req, "imageName");
	/* A static PV (ceph-csi's staticVolume "true", or an rbdcsi static handle). */
	r = params_static_volume(c, req->volume_id, (void *const *)req->volume_context,
	                         req->n_volume_context, &sv);
	if (r < 0)
		return r;
	if (r > 0) {
		cluster_id = sv.cluster_id;
		pool = sv.pool;
		image = sv.image;
		rados_namespace = sv.rados_namespace;
	}
	if (isempty(cluster_id) || isempty(pool) || isempty(image))
		return call_fail(c, STATUS_INVALID_ARGUMENT,
		                 "volume_context: clusterID, pool and imageName are required (the "
		                 "controller's CreateVolume sets them)");
	mounter = context_get(req, "mounter");
	mapper = mapper_type_from_string(mounter);
	if ((int)mapper < 0)
		return call_fail(c, STATUS_INVALID_ARGUMENT,
		                 "volume_context.mounter '%s' is not krbd, rbd-nbd, fuse or auto",
		                 mounter);
	user = params_map_get((void *const *)req->secrets, req->n_secrets, "userID");
	key = params_map_get((void *const *)req->secrets, req->n_secrets, "userKey");
	if (isempty(user) || isempty(key))
		return call_fail(c, STATUS_INVALID_ARGUMENT,
		                 "secrets: userID and userKey are required");
	fstype = access.fs_type;
	if (isempty(fstype))
		fstype = context_get(req, "fsType");
	if (isempty(fstype))
		fstype = "ext4";
	if (!access.block && !fs_type_supported(fstype))
		return call_fail(c, STATUS_INVALID_ARGUMENT,
		                 "fsType '%s' is not supported (ext4, "
		                 "xfs)",
		                 fstype);
	r = check_parent(c, "staging_target_path", req->staging_target_path);
	if (r < 0)
		return r;

	config_refresh(c->plugin->config);
	r = config_get_cluster(c->plugin->config, cluster_id, &cl);
	if (r == -ENOENT)
		return call_fail(c, STATUS_FAILED_PRECONDITION,
		                 "volume_context.clusterID '%s' is not in this node's cluster "
		                 "configuration (--config)",
		                 cluster_id);
	if (r < 0)
		return r;
	/* A static volume without radosNamespace is in the cluster's (as on the controller). */
	if (sv.image && !sv.rados_namespace)
		rados_namespace = cl.rados_namespace;
	dir = stage_dir(c);
	if (!dir) {
		config_cluster_done(&cl);
		return -ENOMEM;
	}

	r = op_lock_take(c, &lock, "volume", req->volume_id, "this volume");
	if (r < 0) {
		config_cluster_done(&cl);
		return r;
	}
	sr = (struct stage_request){
		.state_dir = dir,
		.volume_id = req->volume_id,
		.staging_path = req->staging_target_path,
		.access = access.block ? STAGE_ACCESS_BLOCK : STAGE_ACCESS_MOUNT,
		.fstype = access.block ? NULL : fstype,
		.mount_options = mount_flags(c, req->volume_capability),
		.mkfs_options = context_get(req, "mkfsOptions"),
		.mapper = mapper,
		.cluster_id = cluster_id,
		.map =
			{
				.monitors = cl.mon_host,
				.user = user,
				.key = key,
				.pool = pool,
				.rados_namespace = rados_namespace,
				.image = image,
				.read_only = access.read_only,
				.map_options = context_get(req, "mapOptions"),
			},
		.unmap_options = context_get(req, "unmapOptions"),
		.timeout_usec = call_remaining_usec(c, STAGE_TIMEOUT_DEFAULT_USEC),
	};
	if (sr.timeout_usec == 0) {
		r = call_fail(c, STATUS_DEADLINE_EXCEEDED, "the call's deadline has passed");
		goto out;
	}
	r = stage_volume(&sr, &info, &reason);
	if (r == -EEXIST)
		log_warning_errno(r, "Volume is already staged with other parameters: %s",
		                  strempty(reason));
	else if (r == -EMEDIUMTYPE || r == -ENODEV || r == -EROFS || r == -EBUSY)
		log_warning_errno(r, "Cannot stage the volume: %s", reason ? reason : "%m");
	else if (r < 0)
		log_error_errno(r, "Failed to stage the volume: %s", reason ? reason : "%m");
	else
		log_info("Volume staged at '%s': %s via %s%s%s%s%s", req->staging_target_path,
		         info->device ? info->device : "?", mapper_type_to_string(info->mapper),
		         access.block ? "" : ", ", access.block ? "" : strempty(info->fstype),
		         info->formatted ? " (formatted: the device was blank)" : "",
		         info->grown ? " (grown to the size of the device)" : "");
	if (r >= 0 && info->grow_failure)
		log_warning("Volume staged, but its filesystem could not be grown to the size of "
		            "the device (it keeps its old size until NodeExpandVolume): %s",
		            info->grow_failure);
out:
	op_lock_release(&lock);
	config_cluster_done(&cl);
	return r;
}

int node_unstage_volume(struct call *c, const void *request, void *response)
{
	const Csi__V1__NodeUnstageVolumeRequest *req = request;
	_cleanup_free_ char *reason = NULL;
	json_object *targets = NULL;
	const char *dir;
	bool forced = false;
	struct op_lock lock = { 0 };
	int r;

	(void)response;
	if (isempty(req->volume_id))
		return call_fail(c, STATUS_INVALID_ARGUMENT, "volume_id is required");
	r = check_path(c, "staging_target_path", req->staging_target_path);
	if (r < 0)
		return r;
	dir = stage_dir(c);
	if (!dir)
		return -ENOMEM;
	r = op_lock_take(c, &lock, "volume", req->volume_id, "this volume");
	if (r < 0)
		return r;
	/* Publishes that are still mounted keep the device busy; say which. */
	r = targets_load(c, req->volume_id, &targets);
	if (r >= 0) {
		for (size_t i = 0; i < json_object_array_length(targets); i++) {
			json_object *p;

			if (json_object_object_get_ex(json_object_array_get_idx(targets, i),
			                              "target", &p) &&
			    mount_is_mountpoint(json_object_get_string(p)) > 0) {
				r = call_fail(c, STATUS_FAILED_PRECONDITION,
				              "volume is still published at '%s': unpublish first",
				              json_object_get_string(p));
				goto out;
			}
		}
	}
	r = stage_unstage(dir, req->volume_id, req->staging_target_path,
	                  call_remaining_usec(c, STAGE_TIMEOUT_DEFAULT_USEC), &forced, &reason);
	if (r < 0) {
		log_error_errno(r, "Failed to unstage the volume: %s", reason ? reason : "%m");
		goto out;
	}
	{
		const char *tp = targets_path(c, req->volume_id);

		if (tp)
			(void)unlink(tp);
	}
	if (forced)
		log_warning("Volume unstaged, but it had to be forced: %s",
		            reason ? reason : "the mapping did not answer");
	else
		log_info("Volume unstaged from '%s'", req->staging_target_path);
out:
	json_object_put(targets);
	op_lock_release(&lock);
	return r;
}

/* ---- NodePublishVolume / NodeUnpublishVolume ---- */

int node_publish_volume(struct call *c, const void *request, void *response)
{
	const Csi__V1__NodePublishVolumeRequest *req = request;
	_cleanup_(stage_info_freep) struct stage_info *info = NULL;
	_cleanup_(mount_info_freep) struct mount_info *mi = NULL;
	struct access_summary access;
	json_object *targets = NULL, *entry;
	const char *dir;
	struct op_lock lock = { 0 };
	bool ro;
	int r, k;

	(void)response;
	if (isempty(req->volume_id))
		return call_fail(c, STATUS_INVALID_ARGUMENT, "volume_id is required");
	r = check_path(c, "staging_target_path", req->staging_target_path);
	if (r < 0)
		return r;
	r = check_path(c, "target_path", req->target_path);
	if (r < 0)
		return r;
	if (!req->volume_capability)
		return call_fail(c, STATUS_INVALID_ARGUMENT, "volume_capability is required");
	r = params_check_capabilities(c, "volume_capability", &req->volume_capability, 1, &access);
	if (r < 0)
		return r;
	ro = req->readonly || access.read_only;
	dir = stage_dir(c);
	if (!dir)
		return -ENOMEM;

	r = op_lock_take(c, &lock, "volume", req->volume_id, "this volume");
	if (r < 0)
		return r;
	r = stage_load(dir, req->volume_id, &info);
	if (r == -ENOENT) {
		r = call_fail(c, STATUS_FAILED_PRECONDITION,
		              "volume is not staged on this node: NodeStageVolume first");
		goto out;
	}
	if (r < 0) {
		log_error_errno(r, "Cannot read the stage state: %m");
		goto out;
	}
	if (!info->staging_path || strcmp(info->staging_path, req->staging_target_path) != 0 ||
	    !info->phase || strcmp(info->phase, "staged") != 0) {
		r = call_fail(c, STATUS_FAILED_PRECONDITION,
		              "volume is not staged at '%s' (staged at '%s', %s)",
		              req->staging_target_path, strempty(info->staging_path),
		              strempty(info->phase));
		goto out;
	}
	if ((info->access == STAGE_ACCESS_BLOCK) != access.block) {
		r = call_fail(c, STATUS_INVALID_ARGUMENT,
		              "volume_capability: the volume was staged as %s, not %s",
		              info->access == STAGE_ACCESS_BLOCK ? "block" : "a filesystem",
		              access.block ? "block" : "a filesystem");
		goto out;
	}
	r = targets_load(c, req->volume_id, &targets);
	if (r < 0)
		goto out;
	k = targets_find(targets, req->target_path);

	/* Already published here: the same publish is a no-op, another is ALREADY_EXISTS. */
	if (mount_find(req->target_path, &mi) >= 0) {
		json_object *p;
		bool was_ro =
		        k >= 0 &&
		        json_object_object_get_ex(json_object_array_get_idx(targets, (size_t)k),
		                                  "readonly", &p) &&
		        json_object_get_boolean(p);

		if (k >= 0 && was_ro == ro) {
			r = 0;
			goto out;
		}
		r = call_fail(c, STATUS_ALREADY_EXISTS,
		              "target_path '%s' is already a mount point%s", req->target_path,
		              k >= 0 ? " of this volume with another read-only setting" : "");
		goto out;
	}
	/* SINGLE_NODE_SINGLE_WRITER: one target at a time, on this node. */
	if (req->volume_capability->access_mode->mode ==
	            CSI__V1__VOLUME_CAPABILITY__ACCESS_MODE__MODE__SINGLE_NODE_SINGLE_WRITER &&
	    json_object_array_length(targets) > (size_t)(k >= 0 ? 1 : 0)) {
		json_object *p = NULL;

		json_object_object_get_ex(json_object_array_get_idx(targets, 0), "target", &p);
		r = call_fail(c, STATUS_FAILED_PRECONDITION,
		              "volume has access mode SINGLE_NODE_SINGLE_WRITER and is already "
		              "published at '%s'",
		              p ? json_object_get_string(p) : "?");
		goto out;
	}

	if (access.block) {
		int fd;

		r = check_parent(c, "target_path", req->target_path);
		if (r < 0)
			goto out;
		fd = open(req->target_path, O_WRONLY | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0640);
		if (fd < 0) {
			r = log_error_errno(errno, "Cannot create the target file '%s': %m",
			                    req->target_path);
			goto out;
		}
		safe_close(fd);
		r = mount_bind(info->device, req->target_path, ro, NULL);
	} else {
		r = check_parent(c, "target_path", req->target_path);
		if (r < 0)
			goto out;
		if (mkdir(req->target_path, 0750) < 0 && errno != EEXIST) {
			r = log_error_errno(errno, "Cannot create the target directory '%s': %m",
			                    req->target_path);
			goto out;
		}
		r = mount_bind(req->staging_target_path, req->target_path, ro,
		               mount_flags(c, req->volume_capability));
	}
	if (r < 0) {
		log_error_errno(r, "Failed to bind-mount the volume at '%s': %m", req->target_path);
		goto out;
	}
	entry = json_object_new_object();
	if (!entry) {
		r = -ENOMEM;
		goto out;
	}
	json_object_object_add(entry, "target", json_object_new_string(req->target_path));
	json_object_object_add(entry, "readonly", json_object_new_boolean(ro));
	if (k >= 0)
		json_object_array_put_idx(targets, (size_t)k, entry);
	else
		json_object_array_add(targets, entry);
	r = targets_save(c, req->volume_id, targets);
	if (r < 0) {
		/* Without the record unstage could not tell; undo the publish. */
		log_error_errno(r, "Cannot record the publish: %m");
		mount_umount(req->target_path, false);
		goto out;
	}
	log_info("Volume published at '%s'%s", req->target_path, ro ? " (read-only)" : "");
out:
	json_object_put(targets);
	op_lock_release(&lock);
	return r;
}

int node_unpublish_volume(struct call *c, const void *request, void *response)
{
	const Csi__V1__NodeUnpublishVolumeRequest *req = request;
	json_object *targets = NULL;
	struct stat st;
	struct op_lock lock = { 0 };
	int r, k;

	(void)response;
	if (isempty(req->volume_id))
		return call_fail(c, STATUS_INVALID_ARGUMENT, "volume_id is required");
	r = check_path(c, "target_path", req->target_path);
	if (r < 0)
		return r;
	r = op_lock_take(c, &lock, "volume", req->volume_id, "this volume");
	if (r < 0)
		return r;
	r = mount_umount(req->target_path, false);
	if (r < 0) {
		log_error_errno(r, "Failed to unmount '%s': %m", req->target_path);
		goto out;
	}
	/* Only ever remove an empty directory or a plain file, and only once nothing is mounted. */
	if (lstat(req->target_path, &st) == 0 && mount_is_mountpoint(req->target_path) == 0) {
		if (S_ISDIR(st.st_mode)) {
			if (rmdir(req->target_path) < 0 && errno != ENOENT)
				log_warning_errno(errno, "Cannot remove '%s', ignoring: %m",
				                  req->target_path);
		} else if (S_ISREG(st.st_mode)) {
			if (unlink(req->target_path) < 0 && errno != ENOENT)
				log_warning_errno(errno, "Cannot remove '%s', ignoring: %m",
				                  req->target_path);
		}
	}
	r = targets_load(c, req->volume_id, &targets);
	if (r >= 0 && (k = targets_find(targets, req->target_path)) >= 0) {
		json_object_array_del_idx(targets, (size_t)k, 1);
		r = targets_save(c, req->volume_id, targets);
	}
	if (r < 0)
		log_error_errno(r, "Cannot update the publish record: %m");
	else
		log_info("Volume unpublished from '%s'", req->target_path);
out:
	json_object_put(targets);
	op_lock_release(&lock);
	return r;
}

/* ---- NodeGetVolumeStats / NodeExpandVolume ---- */

/* True when path is where this staged volume is mounted or published. */
static bool volume_at_path(struct call *c, const struct stage_info *info, const char *volume_id,
                           const char *path)
{
	json_object *targets = NULL;
	bool found;

	if (info->staging_path && strcmp(info->staging_path, path) == 0)
		return true;
	if (targets_load(c, volume_id, &targets) < 0)
		return false;
	found = targets_find(targets, path) >= 0;
	json_object_put(targets);
	return found;
}

int node_get_volume_stats(struct call *c, const void *request, void *response)
{
	const Csi__V1__NodeGetVolumeStatsRequest *req = request;
	Csi__V1__NodeGetVolumeStatsResponse *resp = response;
	_cleanup_(stage_info_freep) struct stage_info *info = NULL;
	struct stage_health health = { 0 };
	Csi__V1__VolumeCondition *cond;
	struct stat st;
	const char *dir;
	int r;

	if (isempty(req->volume_id))
		return call_fail(c, STATUS_INVALID_ARGUMENT, "volume_id is required");
	if (isempty(req->volume_path))
		return call_fail(c, STATUS_INVALID_ARGUMENT, "volume_path is required");
	/* The path is only compared with the recorded ones (and used once it matched one). */
	dir = stage_dir(c);
	if (!dir)
		return -ENOMEM;
	r = stage_load(dir, req->volume_id, &info);
	if (r == -ENOENT)
		return call_fail(c, STATUS_NOT_FOUND, "volume is not staged on this node");
	if (r < 0)
		return log_error_errno(r, "Cannot read the stage state: %m");
	if (!volume_at_path(c, info, req->volume_id, req->volume_path) ||
	    stat(req->volume_path, &st) < 0)
		return call_fail(c, STATUS_NOT_FOUND, "volume is not mounted at volume_path '%s'",
		                 req->volume_path);

	cond = call_alloc(c, sizeof(*cond));
	resp->usage = call_alloc(c, 2 * sizeof(*resp->usage));
	if (!cond || !resp->usage)
		return -ENOMEM;
	csi__v1__volume_condition__init(cond);
	if (stage_recover(dir, req->volume_id, &health) >= 0) {
		cond->abnormal = health.abnormal;
		cond->message =
		        call_strdup(c, health.message ? health.message : "volume is healthy");
		stage_health_done(&health);
	}
	if (info->access == STAGE_ACCESS_MOUNT) {
		bool abnormal = false;
		_cleanup_free_ char *why = NULL;
		struct fs_stats fs;

		if (mount_check_health(req->volume_path, &abnormal, &why) >= 0 && abnormal) {
			cond->abnormal = true;
			cond->message = call_strdup(c, why ? why : "filesystem is abnormal");
		}
		r = fs_get_stats(req->volume_path, &fs);
		if (r < 0) {
			cond->abnormal = true;
			cond->message = call_printf(c, "statfs failed: errno %d", -r);
		} else {
			Csi__V1__VolumeUsage *bytes = call_alloc(c, sizeof(*bytes));
			Csi__V1__VolumeUsage *inodes = call_alloc(c, sizeof(*inodes));

			if (!bytes || !inodes)
				return -ENOMEM;
			csi__v1__volume_usage__init(bytes);
			csi__v1__volume_usage__init(inodes);
			bytes->unit = CSI__V1__VOLUME_USAGE__UNIT__BYTES;
			bytes->total = (int64_t)fs.total_bytes;
			bytes->available = (int64_t)fs.available_bytes;
			bytes->used = (int64_t)fs.used_bytes;
			inodes->unit = CSI__V1__VOLUME_USAGE__UNIT__INODES;
			inodes->total = (int64_t)fs.total_inodes;
			inodes->available = (int64_t)fs.free_inodes;
			inodes->used = (int64_t)fs.used_inodes;
			resp->usage[resp->n_usage++] = bytes;
			resp->usage[resp->n_usage++] = inodes;
		}
	} else {
		uint64_t size = 0;

		if (info->device && blockdev_get_size(info->device, &size) >= 0) {
			Csi__V1__VolumeUsage *bytes = call_alloc(c, sizeof(*bytes));

			if (!bytes)
				return -ENOMEM;
			csi__v1__volume_usage__init(bytes);
			bytes->unit = CSI__V1__VOLUME_USAGE__UNIT__BYTES;
			bytes->total = (int64_t)size;
			resp->usage[resp->n_usage++] = bytes;
		}
	}
	resp->volume_condition = cond;
	return 0;
}

int node_expand_volume(struct call *c, const void *request, void *response)
{
	const Csi__V1__NodeExpandVolumeRequest *req = request;
	Csi__V1__NodeExpandVolumeResponse *resp = response;
	_cleanup_(stage_info_freep) struct stage_info *info = NULL;
	_cleanup_free_ char *reason = NULL;
	uint64_t size = 0, want = 0;
	const char *dir;
	struct op_lock lock = { 0 };
	int r;

	if (isempty(req->volume_id))
		return call_fail(c, STATUS_INVALID_ARGUMENT, "volume_id is required");
	if (isempty(req->volume_path))
		return call_fail(c, STATUS_INVALID_ARGUMENT, "volume_path is required");
	if (req->capacity_range) {
		if (req->capacity_range->required_bytes < 0 || req->capacity_range->limit_bytes < 0)
			return call_fail(c, STATUS_INVALID_ARGUMENT,
			                 "capacity_range: values must not be negative");
		want = (uint64_t)req->capacity_range->required_bytes;
	}
	if (req->volume_capability) {
		struct access_summary access;

		r = params_check_capabilities(c, "volume_capability", &req->volume_capability, 1,
		                              &access);
		if (r < 0)
			return r;
	}
	dir = stage_dir(c);
	if (!dir)
		return -ENOMEM;
	r = op_lock_take(c, &lock, "volume", req->volume_id, "this volume");
	if (r < 0)
		return r;
	r = stage_load(dir, req->volume_id, &info);
	if (r == -ENOENT) {
		r = call_fail(c, STATUS_NOT_FOUND, "volume is not staged on this node");
		goto out;
	}
	if (r < 0) {
		log_error_errno(r, "Cannot read the stage state: %m");
		goto out;
	}
	if (!volume_at_path(c, info, req->volume_id, req->volume_path)) {
		r = call_fail(c, STATUS_NOT_FOUND, "volume is not mounted at volume_path '%s'",
		              req->volume_path);
		goto out;
	}
	r = stage_expand(dir, req->volume_id, want, call_remaining_usec(c, FS_TIMEOUT_USEC), &size,
	                 &reason);
	if (r == -EPERM) {
		c->code = STATUS_FAILED_PRECONDITION;
		log_error_errno(r,
		                "The kernel refused to grow the mounted filesystem online: %s. "
		                "Unstage and stage the volume again to grow it offline",
		                reason ? reason : "%m");
		goto out;
	}
	if (r < 0) {
		log_error_errno(r, "Failed to expand the volume: %s", reason ? reason : "%m");
		goto out;
	}
	resp->capacity_bytes = (int64_t)size;
	log_info("Volume expanded to %" PRIu64 " bytes", size);
out:
	op_lock_release(&lock);
	return r;
}

/* ---- NodeGetCapabilities / NodeGetInfo ---- */

int node_get_capabilities(struct call *c, const void *request, void *response)
{
	Csi__V1__NodeGetCapabilitiesResponse *resp = response;
	const struct capability *caps;
	size_t n = capabilities_node(&c->plugin->opt, &caps);

	(void)request;
	resp->capabilities = call_alloc(c, (n + 1) * sizeof(*resp->capabilities));
	if (!resp->capabilities)
		return -ENOMEM;
	for (size_t i = 0; i < n; i++) {
		Csi__V1__NodeServiceCapability *sc = call_alloc(c, sizeof(*sc));
		Csi__V1__NodeServiceCapability__RPC *rpc = call_alloc(c, sizeof(*rpc));

		if (!sc || !rpc)
			return -ENOMEM;
		csi__v1__node_service_capability__init(sc);
		csi__v1__node_service_capability__rpc__init(rpc);
		rpc->type = caps[i].value;
		sc->type_case = CSI__V1__NODE_SERVICE_CAPABILITY__TYPE_RPC;
		sc->rpc = rpc;
		resp->capabilities[resp->n_capabilities++] = sc;
	}
	return 0;
}

int node_get_info(struct call *c, const void *request, void *response)
{
	Csi__V1__NodeGetInfoResponse *resp = response;
	const struct plugin_options *o = &c->plugin->opt;

	(void)request;
	resp->node_id = (char *)o->node_id;
	resp->max_volumes_per_node = o->max_volumes_per_node;
	if (o->n_topology > 0) {
		Csi__V1__Topology *t = call_alloc(c, sizeof(*t));

		if (!t)
			return -ENOMEM;
		csi__v1__topology__init(t);
		t->segments = call_alloc(c, o->n_topology * sizeof(*t->segments));
		if (!t->segments)
			return -ENOMEM;
		for (size_t i = 0; i < o->n_topology; i++) {
			Csi__V1__Topology__SegmentsEntry *e = call_alloc(c, sizeof(*e));
			const char *eq = strchr(o->topology[i], '=');

			if (!e || !eq)
				return -ENOMEM;
			csi__v1__topology__segments_entry__init(e);
			e->key = call_printf(c, "%.*s", (int)(eq - o->topology[i]), o->topology[i]);
			e->value = (char *)eq + 1;
			if (!e->key)
				return -ENOMEM;
			t->segments[t->n_segments++] = e;
		}
		resp->accessible_topology = t;
	}
	return 0;
}

void node_report_staged(struct plugin *p)
{
	_cleanup_free_ char *dir = NULL;
	char **ids = NULL;

	if (asprintf(&dir, "%s/%s/stage", p->opt.state_dir, p->opt.driver_name) < 0)
		return;
	if (stage_list(dir, &ids) < 0)
		return;
	for (char **id = ids; id && *id; id++) {
		struct stage_health h = { 0 };

		if (stage_recover(dir, *id, &h) < 0)
			continue;
		if (h.abnormal)
			log_warning("Staged volume '%s' needs attention: %s", *id,
			            strempty(h.message));
		else
			log_info("Staged volume '%s' found and healthy", *id);
		stage_health_done(&h);
	}
	exec_strv_free(ids);
}
