/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The CSI Node service: request validation and CSI semantics on top of driver/host's stage
 * transaction (driver/host/stage.h). Stage maps, probes, formats only a blank device and mounts
 * at the staging path; publish bind-mounts the staging mount (or, for block volumes, the device)
 * onto the pod's target; unpublish and unstage undo that, idempotently.
 *
 * State lives under <state-dir>/<drivername>/stage: one JSON file per staged volume (written by
 * driver/host/stage.c) and one per published volume listing its targets (driver/host/publish.c),
 * so a restarted plugin knows what to undo and can enforce SINGLE_NODE_SINGLE_WRITER.
 *
 * Every path from a request is resolved beneath the --kubelet-dir fd without following symlinks
 * (driver/base/path.h) and acted on through what was resolved. Unpublish and unstage act only on
 * what the state says this volume made there (the recorded device number must be what is
 * mounted); anything else is left alone.
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

#include "csi.pb-c.h"
#include "driver/base/exec.h"
#include "driver/base/failpoint.h"
#include "driver/base/fileio.h"
#include "driver/base/path.h"
#include "driver/host/blockdev.h"
#include "driver/host/fs.h"
#include "driver/host/kms.h"
#include "driver/host/mount.h"
#include "driver/host/publish.h"
#include "driver/base/sha256.h"
#include "driver/host/stage.h"
#include "plugin/capabilities.h"
#include "plugin/config.h"
#include "plugin/locks.h"
#include "plugin/metrics.h"
#include "plugin/node.h"
#include "plugin/node_qos.h"
#include "plugin/node_crypt.h"
#include "plugin/params.h"
#include "plugin/plugin.h"

#define NODE_PATH_MAX 4000

/* <state-dir>/<drivername>/stage, where stage.c and this file keep their state. */
static char *stage_dir(struct call *c)
{
	return call_printf(c, "%s/%s/stage", c->plugin->opt.state_dir, c->plugin->opt.driver_name);
}

/* path_resolve() beneath the kubelet directory's fd; errors as path_resolve(). */
static int resolve_quiet(struct call *c, const char *path, struct path_resolved *ret)
{
	const char *root = c->plugin->opt.kubelet_dir;
	_cleanup_close_ int own = -1;
	int root_fd = c->plugin->kubelet_fd, r;

	if (root_fd <= 0) {
		/* Not opened at start-up (it did not exist then): open it for this call. */
		r = path_root_open(root, &own);
		if (r < 0)
			return r == -ENOENT ? -EIO : r;
		root_fd = own;
	}
	return path_resolve(root_fd, root, path, 0, ret);
}

/*
 * Resolves a path from a request beneath the kubelet directory (driver/base/path.h), or fails
 * the call naming field. A missing parent returns -ENOENT without failing the call: the caller
 * says what that means (NOT_FOUND for stage/publish; nothing there for unpublish/unstage).
 */
static int resolve_path(struct call *c, const char *field, const char *path,
                        struct path_resolved *ret)
{
	const char *root = c->plugin->opt.kubelet_dir;
	int r;

	if (isempty(path))
		return call_fail(c, STATUS_INVALID_ARGUMENT, "%s is required", field);
	if (strlen(path) > NODE_PATH_MAX)
		return call_fail(c, STATUS_INVALID_ARGUMENT, "%s is longer than %d bytes", field,
		                 NODE_PATH_MAX);
	r = resolve_quiet(c, path, ret);
	switch (r) {
	case 0:
		return 0;
	case -EINVAL:
	case -ENAMETOOLONG:
		return call_fail(
		        c, STATUS_INVALID_ARGUMENT,
		        "%s '%s' is not a path below the kubelet directory '%s' (absolute, "
		        "not the directory itself, no '.' or '..' component, no control "
		        "characters)",
		        field, path, root);
	case -ELOOP:
	case -EXDEV:
		return call_fail(
		        c, STATUS_INVALID_ARGUMENT,
		        "%s '%s' goes through a symbolic link below '%s': refused (request "
		        "paths are resolved without following links)",
		        field, path, root);
	case -ENOENT:
	case -ENOTDIR:
		return -ENOENT;
	default:
		return log_error_errno(r, "Cannot resolve %s '%s': %m", field, path);
	}
}

/* The device number a mount of the staged volume shows (the device's st_rdev), or 0. */
static dev_t staged_devno(const struct stage_info *info)
{
	struct stat st;

	if (!info->device || stat(info->device, &st) < 0 || !S_ISBLK(st.st_mode))
		return 0;
	return st.st_rdev;
}

/* Whether the mount at p is a bind of the volume with device number devno. */
static bool target_is_ours(const struct path_resolved *p, bool block, dev_t devno)
{
	if (p->fd < 0 || !p->mountpoint || devno == 0)
		return false;
	if (block)
		return S_ISBLK(p->st.st_mode) && p->st.st_rdev == devno;
	return S_ISDIR(p->st.st_mode) && p->st.st_dev == devno;
}

/* What is mounted at p, for messages (call-owned). */
static const char *describe_mount(struct call *c, const struct path_resolved *p)
{
	_cleanup_(mount_info_freep) struct mount_info *mi = NULL;

	if (p->fd >= 0 && mount_find_fd(p->fd, &mi) >= 0)
		return call_printf(c, "%s (%s)", mi->source, mi->fstype);
	return "something else";
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

/* Frees the KMS of an encrypted stage (cleanup attribute). */
static void stage_crypt_done(struct stage_crypt *s)
{
	s->kms = kms_free(s->kms);
}

int node_stage_volume(struct call *c, const void *request, void *response)
{
	const Csi__V1__NodeStageVolumeRequest *req = request;
	struct access_summary access;
	_cleanup_(config_cluster_done) struct config_cluster cl = { 0 };
	_cleanup_(stage_info_freep) struct stage_info *info = NULL;
	_cleanup_free_ char *reason = NULL;
	const char *user, *key, *cluster_id, *pool, *image, *fstype, *mounter, *dir;
	const char *rados_namespace = context_get(req, "radosNamespace");
	struct static_volume sv = { 0 };
	struct stage_request sr;
	enum mapper_type mapper;
	_cleanup_(op_lock_release) struct op_lock lock = { 0 };
	_cleanup_(op_lock_release) struct op_lock image_lock = { 0 };
	_cleanup_(path_resolved_done) struct path_resolved staging = PATH_RESOLVED_INIT;
	_cleanup_free_ char *other = NULL;
	_cleanup_(stage_crypt_done) struct stage_crypt crypt = { 0 };
	int r, resolved;

	(void)response;
	if (isempty(req->volume_id))
		return call_fail(c, STATUS_INVALID_ARGUMENT, "volume_id is required");
	resolved = resolve_path(c, "staging_target_path", req->staging_target_path, &staging);
	if (resolved < 0 && resolved != -ENOENT)
		return resolved;
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
	/* The volume context may not come from our CreateVolume: check it again. */
	r = params_check_stage_context(
	        c, pool, context_get(req, "radosNamespace"), image, access.block ? NULL : fstype,
	        context_get(req, "mkfsOptions"), context_get(req, "mapOptions"),
	        context_get(req, "unmapOptions"));
	if (r < 0)
		return r;
	if (resolved == -ENOENT)
		return call_fail_errno(
		        c, STATUS_OP_ANY, resolved,
		        "staging_target_path: the parent directory of '%s' does not exist",
		        req->staging_target_path);

	config_refresh(c->plugin->config);
	r = config_get_cluster(c->plugin->config, cluster_id, &cl);
	if (r == -ENOENT)
		return call_fail_errno(
		        c, STATUS_OP_NODE_NEEDS_STAGE, r,
		        "volume_context.clusterID '%s' is not in this node's cluster "
		        "configuration (--config)",
		        cluster_id);
	if (r < 0)
		return r;
	/* A static volume without radosNamespace is in the cluster's (as on the controller). */
	if (sv.image && !sv.rados_namespace)
		rados_namespace = cl.rados_namespace;
	dir = stage_dir(c);
	if (!dir)
		return -ENOMEM;

	r = op_lock_take(c, &lock, "volume", req->volume_id, "this volume");
	if (r < 0)
		return r;
	/* One image, one stage per node: two volume ids staging one image read-write would
	 * corrupt it. The image lock closes the race of two concurrent stages under two ids. */
	{
		const char *ns = strempty(context_get(req, "radosNamespace"));
		const char *image_key = call_printf(c, "%zu:%s/%zu:%s/%zu:%s/%zu:%s",
		                                    strlen(cluster_id), cluster_id, strlen(pool),
		                                    pool, strlen(ns), ns, strlen(image), image);

		r = image_key ? op_lock_take(c, &image_lock, "image", image_key, "this image")
		              : -ENOMEM;
	}
	if (r < 0)
		return r;
	r = stage_find_image(dir, cluster_id, pool, context_get(req, "radosNamespace"), image,
	                     req->volume_id, &other);
	if (r >= 0)
		return call_fail(
		        c, STATUS_FAILED_PRECONDITION,
		        "image '%s' of pool '%s' is already staged on this node as volume '%s': "
		        "unstage it first",
		        image, pool, other);
	if (r != -ENOENT)
		return log_error_errno(r, "Cannot read the stage state: %m");
	r = node_crypt_prepare(c, req, &crypt);
	if (r < 0)
		return r;
	sr = (struct stage_request){
		.state_dir = dir,
		.volume_id = req->volume_id,
		.staging_path = staging.text,
		.staging_at = &staging,
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
		.crypt = crypt.kms ? &crypt : NULL,
	};
	if (sr.timeout_usec == 0)
		return call_fail(c, STATUS_DEADLINE_EXCEEDED, "the call's deadline has passed");
	r = stage_volume(&sr, &info, &reason);
	if (r == -EEXIST)
		log_warning_errno(r, "Volume is already staged with other parameters: %s",
		                  strempty(reason));
	else if (r == -EMEDIUMTYPE || r == -ENODEV || r == -EROFS || r == -EBUSY ||
	         r == -EKEYREJECTED)
		log_warning_errno(r, "Cannot stage the volume: %s", reason ? reason : "%m");
	else if (r < 0)
		log_error_errno(r, "Failed to stage the volume: %s", reason ? reason : "%m");
	else
		log_info("Volume staged at '%s': %s via %s%s%s%s%s", req->staging_target_path,
		         info->device ? info->device : "?", mapper_type_to_string(info->mapper),
		         access.block ? "" : ", ", access.block ? "" : strempty(info->fstype),
		         info->formatted ? " (formatted: the device was blank)" : "",
		         info->grown ? " (grown to the size of the device)" : "");
	if (r >= 0)
		metrics_node_stage(c->plugin->metrics, mapper_type_to_string(info->mapper));
	if (r >= 0 && info->grow_failure)
		log_warning("Volume staged, but its filesystem could not be grown to the size of "
		            "the device (it keeps its old size until NodeExpandVolume): %s",
		            info->grow_failure);
	return r;
}

int node_unstage_volume(struct call *c, const void *request, void *response)
{
	const Csi__V1__NodeUnstageVolumeRequest *req = request;
	_cleanup_(path_resolved_done) struct path_resolved staging = PATH_RESOLVED_INIT;
	_cleanup_(stage_info_freep) struct stage_info *info = NULL;
	_cleanup_free_ char *reason = NULL;
	_cleanup_(publish_record_done) struct publish_record rec = { 0 };
	const char *dir;
	bool forced = false;
	_cleanup_(op_lock_release) struct op_lock lock = { 0 };
	dev_t devno;
	int r, resolved;

	(void)response;
	if (isempty(req->volume_id))
		return call_fail(c, STATUS_INVALID_ARGUMENT, "volume_id is required");
	resolved = resolve_path(c, "staging_target_path", req->staging_target_path, &staging);
	if (resolved < 0 && resolved != -ENOENT)
		return resolved;
	dir = stage_dir(c);
	if (!dir)
		return -ENOMEM;
	r = op_lock_take(c, &lock, "volume", req->volume_id, "this volume");
	if (r < 0)
		return r;
	r = stage_load(dir, req->volume_id, &info);
	if (r == -ENOENT) {
		/* Never staged here, or already unstaged: nothing of this volume to touch. */
		log_info("Volume is not staged on this node: nothing to unstage");
		r = 0;
		return r;
	}
	if (r < 0)
		return log_error_errno(r, "Cannot read the stage state: %m");
	/* Publishes that are still mounted keep the device busy; say which. */
	devno = staged_devno(info);
	r = publish_load(dir, req->volume_id, &rec);
	if (r < 0)
		return log_error_errno(r, "Cannot read the publish record: %m");
	for (size_t i = 0; i < rec.n; i++) {
		_cleanup_(path_resolved_done) struct path_resolved t = PATH_RESOLVED_INIT;
		const struct publish_target *pt = &rec.targets[i];

		if (resolve_quiet(c, pt->target, &t) < 0)
			continue; /* a recorded target that no longer resolves holds nothing of ours
			           */
		if (target_is_ours(&t, pt->block, pt->devno ?: devno))
			return call_fail(c, STATUS_FAILED_PRECONDITION,
			                 "volume is still published at '%s': unpublish first",
			                 pt->target);
	}
	r = stage_unstage_at(dir, req->volume_id, resolved == -ENOENT ? NULL : &staging,
	                     call_remaining_usec(c, STAGE_TIMEOUT_DEFAULT_USEC), &forced, &reason);
	if (r == -EBUSY || r == -EINVAL)
		return call_fail(c,
		                 r == -EBUSY ? STATUS_FAILED_PRECONDITION : STATUS_INVALID_ARGUMENT,
		                 "staging_target_path: %s", reason ? reason : "not this volume's");
	if (r < 0)
		return log_error_errno(r, "Failed to unstage the volume: %s",
		                       reason ? reason : "%m");
	(void)publish_forget(dir, req->volume_id);
	if (forced)
		log_warning("Volume unstaged, but it had to be forced: %s",
		            reason ? reason : "the mapping did not answer");
	else
		log_info("Volume unstaged from '%s'", req->staging_target_path);
	return r;
}

/* ---- NodePublishVolume / NodeUnpublishVolume ---- */

/* Says why publish_bind() failed with r at step, once; r keeps its errno (status.c maps it at
 * STATUS_OP_NODE_PUBLISH). */
static int publish_failed(struct call *c, const struct path_resolved *target, bool block,
                          enum publish_step step, int r)
{
	switch (step) {
	case PUBLISH_STEP_RECORD:
		if (r == -E2BIG)
			return call_fail_errno(c, STATUS_OP_NODE_PUBLISH, r,
			                       "volume is published at %d targets already",
			                       PUBLISH_TARGETS_MAX);
		return log_error_errno(r, "Cannot record the publish: %m");
	case PUBLISH_STEP_TARGET:
		if (r == -ENOTDIR || r == -EISDIR || r == -EEXIST || r == -ELOOP)
			return call_fail_errno(
			        c, STATUS_OP_NODE_PUBLISH, r,
			        "target_path '%s' holds %s, not %s: left alone", target->text,
			        r == -ENOTDIR  ? "something that is not a directory"
			        : r == -EISDIR ? "a directory"
			        : r == -ELOOP  ? "a symbolic link"
			                       : "something that is not a regular file",
			        block ? "a file to bind the device on" : "a directory");
		return log_error_errno(r, "Cannot create the target '%s': %m", target->text);
	case PUBLISH_STEP_BIND:
		return log_error_errno(r, "Failed to bind-mount the volume at '%s': %m",
		                       target->text);
	case PUBLISH_STEP_MARK:
		break;
	}
	return log_error_errno(r, "Cannot record the publish: %m");
}

int node_publish_volume(struct call *c, const void *request, void *response)
{
	const Csi__V1__NodePublishVolumeRequest *req = request;
	_cleanup_(stage_info_freep) struct stage_info *info = NULL;
	_cleanup_(path_resolved_done) struct path_resolved staging = PATH_RESOLVED_INIT;
	_cleanup_(path_resolved_done) struct path_resolved target = PATH_RESOLVED_INIT;
	struct access_summary access;
	_cleanup_(publish_record_done) struct publish_record rec = { 0 };
	enum publish_step step;
	char fdtext[PATH_FD_TEXT_MAX];
	const char *dir, *staging_text;
	_cleanup_(op_lock_release) struct op_lock lock = { 0 };
	dev_t devno;
	bool ro;
	int r, k, staging_r, target_r;

	(void)response;
	if (isempty(req->volume_id))
		return call_fail(c, STATUS_INVALID_ARGUMENT, "volume_id is required");
	staging_r = resolve_path(c, "staging_target_path", req->staging_target_path, &staging);
	if (staging_r < 0 && staging_r != -ENOENT)
		return staging_r;
	target_r = resolve_path(c, "target_path", req->target_path, &target);
	if (target_r < 0 && target_r != -ENOENT)
		return target_r;
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
	if (r == -ENOENT)
		return call_fail_errno(c, STATUS_OP_NODE_NEEDS_STAGE, r,
		                       "volume is not staged on this node: NodeStageVolume first");
	if (r < 0)
		return log_error_errno(r, "Cannot read the stage state: %m");
	/* (A block volume's staging path is only compared: it need not exist.) */
	staging_text = staging_r == 0 ? staging.text : req->staging_target_path;
	if (!info->staging_path || strcmp(info->staging_path, staging_text) != 0 || !info->phase ||
	    strcmp(info->phase, "staged") != 0)
		return call_fail(c, STATUS_FAILED_PRECONDITION,
		                 "volume is not staged at '%s' (staged at '%s', %s)",
		                 req->staging_target_path, strempty(info->staging_path),
		                 strempty(info->phase));
	if ((info->access == STAGE_ACCESS_BLOCK) != access.block)
		return call_fail(c, STATUS_INVALID_ARGUMENT,
		                 "volume_capability: the volume was staged as %s, not %s",
		                 info->access == STAGE_ACCESS_BLOCK ? "block" : "a filesystem",
		                 access.block ? "block" : "a filesystem");
	devno = staged_devno(info);
	if (devno == 0)
		return call_fail(c, STATUS_FAILED_PRECONDITION,
		                 "the staged device '%s' is gone: stage the volume again",
		                 strempty(info->device));
	r = node_qos_apply(c, req, info, devno); /* krbd: the pod's cgroup */
	if (r < 0)
		return r;
	/* The bind source: the staging mount as resolved, and only if it is this volume's. */
	if (!access.block && !(staging.fd >= 0 && staging.mountpoint &&
	                       S_ISDIR(staging.st.st_mode) && staging.st.st_dev == devno))
		return call_fail(
		        c, STATUS_FAILED_PRECONDITION,
		        "the volume's filesystem is not mounted at staging_target_path '%s': "
		        "stage it again",
		        staging.text);
	if (target_r == -ENOENT)
		return call_fail_errno(c, STATUS_OP_ANY, target_r,
		                       "target_path: the parent directory of '%s' does "
		                       "not exist",
		                       req->target_path);
	r = publish_load(dir, req->volume_id, &rec);
	if (r < 0)
		return log_error_errno(r, "Cannot read the publish record: %m");
	k = publish_find(&rec, target.text);

	/* Already published here: the same publish is a no-op, another is ALREADY_EXISTS. */
	if (target.fd >= 0 && target.mountpoint) {
		_cleanup_(mount_info_freep) struct mount_info *mi = NULL;
		bool ours = target_is_ours(&target, access.block, devno);
		bool was_ro = ours && mount_find_fd(target.fd, &mi) >= 0 && mi->read_only;

		if (k >= 0 && ours && was_ro == ro) {
			/* A crash after the bind left it unmarked: it is done. */
			if (!rec.targets[k].mounted) {
				rec.targets[k].mounted = true;
				rec.targets[k].read_only = ro;
				r = publish_save(dir, req->volume_id, &rec);
				if (r < 0)
					return log_error_errno(r, "Cannot record the publish: %m");
			}
			return 0;
		}
		return call_fail(c, STATUS_ALREADY_EXISTS,
		                 "target_path '%s' is already a mount point%s", target.text,
		                 ours ? " of this volume with another read-only setting"
		                      : call_printf(c, " of %s", describe_mount(c, &target)));
	}
	/* SINGLE_NODE_SINGLE_WRITER: one target at a time, on this node. */
	if (req->volume_capability->access_mode->mode ==
	            CSI__V1__VOLUME_CAPABILITY__ACCESS_MODE__MODE__SINGLE_NODE_SINGLE_WRITER &&
	    rec.n > (size_t)(k >= 0 ? 1 : 0))
		return call_fail(c, STATUS_FAILED_PRECONDITION,
		                 "volume has access mode SINGLE_NODE_SINGLE_WRITER and is already "
		                 "published at '%s'",
		                 rec.targets[k == 0 ? 1 : 0].target);

	r = publish_bind(
	        &(struct publish_bind_request){
	                .state_dir = dir,
	                .volume_id = req->volume_id,
	                .target = &target,
	                .source = access.block ? info->device : path_fd_text(staging.fd, fdtext),
	                .read_only = ro,
	                .block = access.block,
	                .devno = devno,
	                .options = mount_flags(c, req->volume_capability),
	        },
	        &rec, &step);
	if (r < 0)
		return publish_failed(c, &target, access.block, step, r);
	log_info("Volume published at '%s'%s", target.text, ro ? " (read-only)" : "");
	return 0;
}

/* Undoes one publish at target (resolved): our binds there, then the target publish made. */
static int unpublish_target(struct call *c, struct path_resolved *t,
                            const struct publish_target *pt, dev_t devno)
{
	int r;

	/* Unmount our binds (a crashed retry may have stacked two), and nothing else. */
	for (int i = 0; t->fd >= 0 && t->mountpoint; i++) {
		if (!target_is_ours(t, pt->block, devno) || i >= 4)
			return call_fail(
			        c, STATUS_FAILED_PRECONDITION,
			        "target_path '%s' holds a mount of %s, not this volume: left "
			        "alone",
			        t->text, describe_mount(c, t));
		t->fd = safe_close(t->fd); /* it would keep the mount busy */
		r = mount_umount_at(t->dir_fd, t->name, t->text, false);
		if (r < 0)
			return log_error_errno(r, "Failed to unmount '%s': %m", t->text);
		r = path_refresh(t);
		if (r < 0)
			return log_error_errno(r, "Cannot look at '%s' after unmounting it: %m",
			                       t->text);
	}
	failpoint("node-unpublish:after-umount");
	/* Then the empty directory, or the empty file of a block publish, that publish made. */
	if (t->fd >= 0) {
		bool removable = S_ISDIR(t->st.st_mode) ? !pt->block
		                                        : S_ISREG(t->st.st_mode) && pt->block &&
		                                                  t->st.st_size == 0;

		r = removable ? path_remove(t) : -EPERM;
		if (r < 0)
			return call_fail(
			        c, STATUS_FAILED_PRECONDITION,
			        "target_path '%s' holds %s, not this volume's target: left alone",
			        t->text,
			        r == -ENOTEMPTY          ? "a non-empty directory"
			        : S_ISDIR(t->st.st_mode) ? "a directory"
			        : S_ISREG(t->st.st_mode) ? "a file"
			                                 : "something else");
	}
	return 0;
}

int node_unpublish_volume(struct call *c, const void *request, void *response)
{
	const Csi__V1__NodeUnpublishVolumeRequest *req = request;
	_cleanup_(path_resolved_done) struct path_resolved target = PATH_RESOLVED_INIT;
	_cleanup_(stage_info_freep) struct stage_info *info = NULL;
	_cleanup_(publish_record_done) struct publish_record rec = { 0 };
	const struct publish_target *pt;
	_cleanup_(op_lock_release) struct op_lock lock = { 0 };
	const char *dir;
	dev_t devno = 0;
	int r, k, resolved;

	(void)response;
	if (isempty(req->volume_id))
		return call_fail(c, STATUS_INVALID_ARGUMENT, "volume_id is required");
	/* A path through a symlink is refused here and touches nothing. */
	resolved = resolve_path(c, "target_path", req->target_path, &target);
	if (resolved < 0 && resolved != -ENOENT)
		return resolved;
	dir = stage_dir(c);
	if (!dir)
		return -ENOMEM;
	r = op_lock_take(c, &lock, "volume", req->volume_id, "this volume");
	if (r < 0)
		return r;
	r = publish_load(dir, req->volume_id, &rec);
	if (r < 0)
		return log_error_errno(r, "Cannot read the publish record: %m");
	k = resolved < 0 ? publish_find(&rec, req->target_path) : publish_find(&rec, target.text);
	if (k < 0) {
		/* This volume published nothing there (or unpublished it already): whatever is
		 * there is not ours, and stays. */
		log_info("Volume is not published at '%s': nothing to unpublish", req->target_path);
		r = 0;
		return r;
	}
	pt = &rec.targets[k];
	if (resolved != -ENOENT) { /* else the parent is gone, and our mount with it */
		if (stage_load(dir, req->volume_id, &info) >= 0)
			devno = staged_devno(info);
		if (pt->devno)
			devno = pt->devno;
		r = unpublish_target(c, &target, pt, devno);
		if (r < 0)
			return r;
	}
	publish_remove(&rec, (size_t)k);
	r = publish_save(dir, req->volume_id, &rec);
	if (r < 0)
		log_error_errno(r, "Cannot update the publish record: %m");
	else
		log_info("Volume unpublished from '%s'", req->target_path);
	return r;
}

/* ---- NodeGetVolumeStats / NodeExpandVolume ---- */

/*
 * Resolves volume_path and checks that it is where this staged volume is mounted or published
 * (recorded, and a mount of its device now). Fails the call (NOT_FOUND) otherwise.
 */
static int volume_at_path(struct call *c, const struct stage_info *info, const char *volume_id,
                          const char *path, struct path_resolved *ret)
{
	_cleanup_(path_resolved_done) struct path_resolved p = PATH_RESOLVED_INIT;
	struct publish_record rec = { 0 };
	bool block = info->access == STAGE_ACCESS_BLOCK, found;
	int r;

	/* Any path that does not resolve (outside the kubelet dir, through a link) is not
	 * where the volume is. */
	r = resolve_quiet(c, path, &p);
	if (r < 0)
		return call_fail(c, STATUS_NOT_FOUND, "volume is not mounted at volume_path '%s'",
		                 path);
	found = !block && info->staging_path && strcmp(info->staging_path, p.text) == 0;
	if (!found && publish_load(stage_dir(c), volume_id, &rec) >= 0) {
		found = publish_find(&rec, p.text) >= 0;
		publish_record_done(&rec);
	}
	if (!found || !target_is_ours(&p, block, staged_devno(info)))
		return call_fail(c, STATUS_NOT_FOUND, "volume is not mounted at volume_path '%s'",
		                 path);
	*ret = p;
	p = (struct path_resolved)PATH_RESOLVED_INIT;
	return 0;
}

int node_get_volume_stats(struct call *c, const void *request, void *response)
{
	const Csi__V1__NodeGetVolumeStatsRequest *req = request;
	Csi__V1__NodeGetVolumeStatsResponse *resp = response;
	_cleanup_(stage_info_freep) struct stage_info *info = NULL;
	_cleanup_(path_resolved_done) struct path_resolved vp = PATH_RESOLVED_INIT;
	struct stage_health health = { 0 };
	Csi__V1__VolumeCondition *cond;
	char fdtext[PATH_FD_TEXT_MAX];
	const char *dir;
	int r;

	if (isempty(req->volume_id))
		return call_fail(c, STATUS_INVALID_ARGUMENT, "volume_id is required");
	if (isempty(req->volume_path))
		return call_fail(c, STATUS_INVALID_ARGUMENT, "volume_path is required");
	/* The path is resolved, compared with the recorded ones, and used through its fd. */
	dir = stage_dir(c);
	if (!dir)
		return -ENOMEM;
	r = stage_load(dir, req->volume_id, &info);
	if (r == -ENOENT)
		return call_fail_errno(c, STATUS_OP_ANY, r, "volume is not staged on this node");
	if (r < 0)
		return log_error_errno(r, "Cannot read the stage state: %m");
	r = volume_at_path(c, info, req->volume_id, req->volume_path, &vp);
	if (r < 0)
		return r;

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

		/* Through the resolved mount's fd, never the path's text again. */
		if (mount_check_health(path_fd_text(vp.fd, fdtext), &abnormal, &why) >= 0 &&
		    abnormal) {
			cond->abnormal = true;
			cond->message = call_strdup(c, why ? why : "filesystem is abnormal");
		}
		r = fs_get_stats(path_fd_text(vp.fd, fdtext), &fs);
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
	_cleanup_(op_lock_release) struct op_lock lock = { 0 };
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
	if (r == -ENOENT)
		return call_fail_errno(c, STATUS_OP_ANY, r, "volume is not staged on this node");
	if (r < 0)
		return log_error_errno(r, "Cannot read the stage state: %m");
	{
		_cleanup_(path_resolved_done) struct path_resolved vp = PATH_RESOLVED_INIT;

		r = volume_at_path(c, info, req->volume_id, req->volume_path, &vp);
		if (r < 0)
			return r;
	}
	r = stage_expand(dir, req->volume_id, want, call_remaining_usec(c, FS_TIMEOUT_USEC), &size,
	                 &reason);
	if (r == -EPERM) {
		call_status(c, STATUS_OP_NODE_EXPAND, r);
		return log_error_errno(
		        r,
		        "The kernel refused to grow the mounted filesystem online: %s. "
		        "Unstage and stage the volume again to grow it offline",
		        reason ? reason : "%m");
	}
	if (r < 0)
		return log_error_errno(r, "Failed to expand the volume: %s",
		                       reason ? reason : "%m");
	resp->capacity_bytes = (int64_t)size;
	log_info("Volume expanded to %" PRIu64 " bytes", size);
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
	return capabilities_topology(c, &resp->accessible_topology);
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
