/* SPDX-License-Identifier: Apache-2.0 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <json-c/json.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/pidfd.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include "driver/base/exec.h"
#include "driver/base/failpoint.h"
#include "driver/base/fileio.h"
#include "driver/base/log.h"
#include "driver/base/macro.h"
#include "driver/base/monotonic.h"
#include "driver/base/path.h"
#include "driver/host/blockdev.h"
#include "driver/host/bounded.h"
#include "driver/host/fs.h"
#include "driver/host/loop.h"
#include "driver/host/mapper.h"
#include "driver/host/stage_crypt.h"
#include "driver/host/mount.h"
#include "driver/host/options.h"
#include "driver/host/reason.h"
#include "driver/base/sha256.h"
#include "driver/host/stage.h"

#define STATE_VERSION  1
#define VOLUME_ID_MAX  1024
#define PHASE_MAPPING  "mapping"
#define PHASE_MAPPED   "mapped"
#define PHASE_FORMAT   "formatting"
#define PHASE_STAGED   "staged"
#define ABORT_GRACE_US (5ULL * USEC_PER_SEC)
#define EXPAND_POLL_MS 100

DEFINE_TRIVIAL_CLEANUP_FUNC(DIR *, closedir)
DEFINE_TRIVIAL_CLEANUP_FUNC(json_object *, json_object_put)
DEFINE_TRIVIAL_CLEANUP_FUNC(char **, exec_strv_free)

static uint64_t remaining(uint64_t deadline)
{
	uint64_t now = monotonic_usec();

	return deadline > now ? deadline - now : 1;
}

struct stage_info *stage_info_free(struct stage_info *info)
{
	if (!info)
		return NULL;
	free(info->volume_id);
	free(info->phase);
	free(info->grow_failure);
	free(info->device);
	free(info->staging_path);
	free(info->fstype);
	free(info->mount_options);
	free(info->cluster_id);
	free(info->monitors);
	free(info->user);
	free(info->pool);
	free(info->rados_namespace);
	free(info->image);
	free(info->unmap_options);
	free(info->sys_root);
	mapper_state_free(info->mapper, info->mapper_state);
	free(info->crypt_name);
	free(info->mapped_device);
	free(info);
	return NULL;
}

void stage_health_done(struct stage_health *h)
{
	if (!h)
		return;
	free(h->message);
	*h = (struct stage_health){ 0 };
}

static const char *access_name(enum stage_access a)
{
	return a == STAGE_ACCESS_BLOCK ? "block" : "mount";
}

/* Replaces *dst with a copy of src (NULL stays NULL). */
static int set_str(char **dst, const char *src)
{
	char *c = NULL;

	if (src) {
		c = strdup(src);
		if (!c)
			return -ENOMEM;
	}
	free(*dst);
	*dst = c;
	return 0;
}

/* ---- the state file ---- */

int stage_state_path(const char *state_dir, const char *volume_id, char **ret_path)
{
	char hex[SHA256_HEX_SIZE];
	char *s = NULL;

	if (isempty(state_dir) || state_dir[0] != '/' || isempty(volume_id))
		return -EINVAL;
	sha256_hex(volume_id, strlen(volume_id), hex);
	if (asprintf(&s, "%s/%s.json", state_dir, hex) < 0)
		return -ENOMEM;
	*ret_path = s;
	return 0;
}

static void json_add_str(json_object *o, const char *key, const char *value)
{
	if (value)
		json_object_object_add(o, key, json_object_new_string(value));
}

static int state_save(const char *path, const struct stage_info *info)
{
	_cleanup_(json_object_putp) json_object *o = json_object_new_object();
	const char *text;
	int r;

	if (!o)
		return -ENOMEM;
	json_object_object_add(o, "version", json_object_new_int(STATE_VERSION));
	json_add_str(o, "volume_id", info->volume_id);
	json_add_str(o, "phase", info->phase);
	json_add_str(o, "mapper", mapper_type_to_string(info->mapper));
	json_add_str(o, "access", access_name(info->access));
	json_add_str(o, "device", info->device);
	json_add_str(o, "staging_path", info->staging_path);
	json_add_str(o, "fstype", info->fstype);
	json_add_str(o, "mount_options", info->mount_options);
	json_object_object_add(o, "read_only", json_object_new_boolean(info->read_only));
	json_object_object_add(o, "formatted", json_object_new_boolean(info->formatted));
	if (info->mkfs_pending)
		json_object_object_add(o, "mkfs_pending", json_object_new_boolean(true));
	json_add_str(o, "cluster_id", info->cluster_id);
	json_add_str(o, "monitors", info->monitors);
	json_add_str(o, "user", info->user);
	json_add_str(o, "pool", info->pool);
	json_add_str(o, "rados_namespace", info->rados_namespace);
	json_add_str(o, "image", info->image);
	json_add_str(o, "unmap_options", info->unmap_options);
	json_add_str(o, "sys_root", info->sys_root);
	/* The mapper's own keys ("fuse": {pid, mount_dir}, "krbd_id"). */
	r = mapper_state_save(info->mapper, info->mapper_state, o);
	if (r < 0)
		return r;
	json_add_str(o, "crypt_name", info->crypt_name);
	json_add_str(o, "mapped_device", info->mapped_device);
	if (info->luks_pending)
		json_object_object_add(o, "luks_pending", json_object_new_boolean(true));
	text = json_object_to_json_string_ext(o, JSON_C_TO_STRING_PRETTY |
	                                                 JSON_C_TO_STRING_NOSLASHESCAPE);
	if (!text)
		return -ENOMEM;
	return fileio_write_atomic(path, text, strlen(text), 0600);
}

int stage_state_save(const char *state_path, const struct stage_info *info)
{
	return state_save(state_path, info);
}

static int json_get_str(json_object *o, const char *key, char **dst)
{
	json_object *v;

	if (!json_object_object_get_ex(o, key, &v) || json_object_is_type(v, json_type_null))
		return set_str(dst, NULL);
	if (!json_object_is_type(v, json_type_string))
		return -EINVAL;
	return set_str(dst, json_object_get_string(v));
}

static bool json_get_bool(json_object *o, const char *key)
{
	json_object *v;

	return json_object_object_get_ex(o, key, &v) && json_object_get_boolean(v);
}

/* An encrypted volume's dm name must be the one derived from its volume id. */
static bool str_valid_crypt_name(const char *volume_id, const char *name)
{
	_cleanup_free_ char *want = NULL;

	return volume_id && stage_crypt_name(volume_id, &want) == 0 && strcmp(want, name) == 0;
}

/* The mapped device (/dev/rbdN, /dev/nbdN, the loop device): under the dm-crypt device of an
 * encrypted volume, else device itself. */
static const char *raw_device(const struct stage_info *info)
{
	return info->mapped_device ?: info->device;
}

static int state_parse(const char *text, struct stage_info **ret)
{
	_cleanup_(json_object_putp) json_object *o = NULL;
	_cleanup_(stage_info_freep) struct stage_info *info = NULL;
	_cleanup_free_ char *mapper = NULL, *access = NULL;
	enum json_tokener_error jerr;
	json_object *v;
	int r = 0;

	o = json_tokener_parse_verbose(text, &jerr);
	if (!o || !json_object_is_type(o, json_type_object))
		return -EINVAL;
	if (!json_object_object_get_ex(o, "version", &v) || json_object_get_int(v) != STATE_VERSION)
		return -EINVAL;
	info = calloc(1, sizeof(*info));
	if (!info)
		return -ENOMEM;
	r = r ?: json_get_str(o, "volume_id", &info->volume_id);
	r = r ?: json_get_str(o, "phase", &info->phase);
	r = r ?: json_get_str(o, "mapper", &mapper);
	r = r ?: json_get_str(o, "access", &access);
	r = r ?: json_get_str(o, "device", &info->device);
	r = r ?: json_get_str(o, "staging_path", &info->staging_path);
	r = r ?: json_get_str(o, "fstype", &info->fstype);
	r = r ?: json_get_str(o, "mount_options", &info->mount_options);
	r = r ?: json_get_str(o, "cluster_id", &info->cluster_id);
	r = r ?: json_get_str(o, "monitors", &info->monitors);
	r = r ?: json_get_str(o, "user", &info->user);
	r = r ?: json_get_str(o, "pool", &info->pool);
	r = r ?: json_get_str(o, "rados_namespace", &info->rados_namespace);
	r = r ?: json_get_str(o, "image", &info->image);
	r = r ?: json_get_str(o, "unmap_options", &info->unmap_options);
	r = r ?: json_get_str(o, "sys_root", &info->sys_root);
	r = r ?: json_get_str(o, "crypt_name", &info->crypt_name);
	r = r ?: json_get_str(o, "mapped_device", &info->mapped_device);
	if (r < 0)
		return r;
	info->luks_pending = json_get_bool(o, "luks_pending");
	if (info->crypt_name && !str_valid_crypt_name(info->volume_id, info->crypt_name))
		return -EINVAL;
	info->read_only = json_get_bool(o, "read_only");
	info->formatted = json_get_bool(o, "formatted");
	info->mkfs_pending = json_get_bool(o, "mkfs_pending");
	if (!info->volume_id || !info->phase || !mapper || !access || !info->pool || !info->image)
		return -EINVAL;
	info->mapper = mapper_type_from_string(mapper);
	if (info->mapper <= MAPPER_AUTO)
		return -EINVAL;
	if (strcmp(access, "mount") == 0)
		info->access = STAGE_ACCESS_MOUNT;
	else if (strcmp(access, "block") == 0)
		info->access = STAGE_ACCESS_BLOCK;
	else
		return -EINVAL;
	r = mapper_state_load(info->mapper, o, &info->mapper_state);
	if (r < 0)
		return r;
	*ret = TAKE_PTR(info);
	return 0;
}

int stage_load(const char *state_dir, const char *volume_id, struct stage_info **ret_info)
{
	_cleanup_free_ char *path = NULL, *text = NULL;
	struct stage_info *info;
	int r;

	r = stage_state_path(state_dir, volume_id, &path);
	if (r < 0)
		return r;
	r = fileio_read_full(path, STAGE_STATE_MAX, &text, NULL);
	if (r < 0)
		return r;
	r = state_parse(text, &info);
	if (r < 0)
		return log_debug_errno(r, "State file %s is not valid: %m", path);
	if (strcmp(info->volume_id, volume_id) != 0) {
		stage_info_free(info);
		return -EINVAL;
	}
	*ret_info = info;
	return 0;
}

int stage_list(const char *state_dir, char ***ret_volume_ids)
{
	_cleanup_(closedirp) DIR *d = NULL;
	_cleanup_(exec_strv_freep) char **ids = NULL;
	size_t n = 0;
	struct dirent *de;

	if (isempty(state_dir))
		return -EINVAL;
	d = opendir(state_dir);
	if (!d)
		return negative_errno();
	ids = calloc(1, sizeof(char *));
	if (!ids)
		return -ENOMEM;
	while ((de = readdir(d))) {
		_cleanup_free_ char *path = NULL, *text = NULL;
		_cleanup_(stage_info_freep) struct stage_info *info = NULL;
		size_t len = strlen(de->d_name);
		char **grown;

		if (len != SHA256_HEX_SIZE - 1 + 5 || strcmp(de->d_name + len - 5, ".json") != 0)
			continue;
		if (asprintf(&path, "%s/%s", state_dir, de->d_name) < 0)
			return -ENOMEM;
		if (fileio_read_full(path, STAGE_STATE_MAX, &text, NULL) < 0 ||
		    state_parse(text, &info) < 0)
			continue;
		grown = realloc(ids, (n + 2) * sizeof(char *));
		if (!grown)
			return -ENOMEM;
		ids = grown;
		ids[n++] = TAKE_PTR(info->volume_id);
		ids[n] = NULL;
	}
	*ret_volume_ids = TAKE_PTR(ids);
	return 0;
}

/* ---- what exists ---- */

/* The mapping info records, as its mapper sees it. */
static struct mapper_mapping mapping_of(const struct stage_info *info)
{
	return (struct mapper_mapping){
		.sys_root = info->sys_root,
		.pool = info->pool,
		.rados_namespace = info->rados_namespace,
		.image = info->image,
		.device = raw_device(info),
		.unmap_options = info->unmap_options,
		.state = info->mapper_state,
	};
}

/* Whether the mapping the state describes still exists; *why (may be NULL) when not. */
static bool mapping_alive(const struct stage_info *info, char **why)
{
	struct mapper_mapping m = mapping_of(info);

	if (!stage_crypt_alive(info, why))
		return false;
	return mapper_alive(info->mapper, &m, why);
}

/* Whether info->device is what is mounted at the staging path. */
static bool device_mounted(const struct stage_info *info, char **why)
{
	_cleanup_(mount_info_freep) struct mount_info *mi = NULL;
	struct stat st;

	if (!info->staging_path || mount_find(info->staging_path, &mi) < 0) {
		reason_set(why, "nothing is mounted at %s", strempty(info->staging_path));
		return false;
	}
	if (!info->device || stat(info->device, &st) < 0 || !S_ISBLK(st.st_mode) ||
	    st.st_rdev != mi->devno) {
		reason_set(why, "%s holds %s, not %s", info->staging_path, mi->source,
		           strempty(info->device));
		return false;
	}
	return true;
}

/* ---- undo ---- */

/* The tools this module runs on a staged device (fs.c), as their argv[0] base names. */
static const char *const device_tools[] = {
	"mkfs.ext4", "mke2fs", "mkfs.xfs", "e2fsck", "fsck.ext4", "resize2fs", "xfs_growfs",
};

/* Whether argv is one of device_tools working on device (or, for xfs_growfs, mountpoint). */
static bool tool_on_device(char **argv, const char *device, const char *mountpoint)
{
	const char *base;
	bool known = false;

	if (!argv || !argv[0])
		return false;
	base = strrchr(argv[0], '/') ? strrchr(argv[0], '/') + 1 : argv[0];
	for (size_t i = 0; i < ELEMENTSOF(device_tools); i++)
		known = known || strcmp(base, device_tools[i]) == 0;
	if (!known)
		return false;
	for (size_t i = 1; argv[i]; i++)
		if (strcmp(argv[i], device) == 0 ||
		    (mountpoint && strcmp(argv[i], mountpoint) == 0))
			return true;
	return false;
}

/*
 * Kills (SIGKILL) and waits for every mkfs/fsck/resize process still working on info->device: a
 * child of an earlier plugin that was killed while it ran (it lives in its own process group,
 * so it outlived its parent). Checked and signalled through a pidfd, so a pid reused in between
 * is never hit. Errors: -ETIMEDOUT one did not die before deadline (*ret_reason).
 */
static int stop_leftover_tools(const struct stage_info *info, uint64_t deadline, char **ret_reason)
{
	_cleanup_(closedirp) DIR *d = NULL;
	struct dirent *de;

	if (!info->device)
		return 0; /* no device recorded: nothing was ever run on one */
	d = opendir("/proc");
	if (!d)
		return negative_errno();
	while ((de = readdir(d))) {
		_cleanup_(exec_strv_freep) char **argv = NULL;
		_cleanup_close_ int pidfd = -EBADF;
		struct pollfd pfd;
		char *end;
		long pid = strtol(de->d_name, &end, 10);
		int r;

		if (*end || pid <= 1 || pid == getpid())
			continue;
		pidfd = pidfd_open((pid_t)pid, 0);
		if (pidfd < 0)
			continue;
		/* Identified after the pidfd is held: the pidfd names this very process. */
		if (exec_pid_cmdline((pid_t)pid, &argv) < 0 ||
		    !tool_on_device(argv, info->device,
		                    info->access == STAGE_ACCESS_MOUNT ? info->staging_path : NULL))
			continue;
		log_debug("Killing %s (pid %ld), left running on %s by an earlier attempt", argv[0],
		          pid, info->device);
		if (pidfd_send_signal(pidfd, SIGKILL, NULL, 0) < 0 && errno != ESRCH)
			return negative_errno();
		pfd = (struct pollfd){ .fd = pidfd, .events = POLLIN };
		r = poll(&pfd, 1, (int)(remaining(deadline) / USEC_PER_MSEC) + 1);
		if (r == 0) {
			reason_set(ret_reason, "%s (pid %ld) on %s does not die", argv[0], pid,
			           info->device);
			return -ETIMEDOUT;
		}
	}
	return 0;
}

struct umount_arg {
	char path[PATH_MAX];
};

static int umount_call(void *p)
{
	struct umount_arg *a = p;

	return mount_umount(a->path, false);
}

struct abort_arg {
	const struct stage_info *info;
};

static void abort_mapping(void *p)
{
	struct abort_arg *a = p;
	struct mapper_mapping m = mapping_of(a->info);

	/* Only rbd-fuse can be aborted from here; krbd/nbd I/O waits for the cluster. */
	mapper_abort(a->info->mapper, &m);
}

static int unmap(const struct stage_info *info, uint64_t deadline, bool *forced, char **ret_reason)
{
	struct mapper_mapping m = mapping_of(info);

	return mapper_unmap(info->mapper, &m, remaining(deadline), forced, ret_reason);
}

/*
 * Undoes the mount and the mapping info describes, in reverse; keeps the state file. Tools an
 * earlier attempt left running on the device go first. wipe: the partial output of our own
 * interrupted mkfs (info->mkfs_pending) is erased before the unmap (skipped when the mapping is
 * gone: then nothing can be written). Bounded by deadline.
 */
static int undo_mapping(const struct stage_info *info, const char *staging_path, bool wipe,
                        uint64_t deadline, bool *forced, char **ret_reason)
{
	struct abort_arg aa = { .info = info };
	bool aborted = false, mapper_forced = false;
	int r;

	r = stop_leftover_tools(info, deadline, ret_reason);
	if (r < 0)
		return r;
	if (info->access == STAGE_ACCESS_MOUNT && staging_path &&
	    mount_is_mountpoint(staging_path) > 0) {
		struct umount_arg ua;

		snprintf(ua.path, sizeof(ua.path), "%s", staging_path);
		r = bounded_call(umount_call, &ua, sizeof(ua), remaining(deadline), abort_mapping,
		                 &aa, ABORT_GRACE_US, &aborted);
		*forced = *forced || aborted;
		if (r < 0) {
			reason_set(ret_reason, "cannot unmount %s: %s%s%s", staging_path,
			           r == -ETIMEDOUT ? "it hangs (cluster unreachable?)"
			                           : strerror(-r),
			           aborted && mapper_abort_target(info->mapper)
			                   ? " even after aborting "
			                   : "",
			           aborted ? strempty(mapper_abort_target(info->mapper)) : "");
			return r;
		}
		failpoint("node-undo:after-umount");
	}
	if (wipe && info->mkfs_pending && info->device && !info->read_only &&
	    mapping_alive(info, NULL)) {
		r = fs_wipe_own(info->device);
		if (r < 0) {
			reason_set(ret_reason,
			           "cannot erase what an interrupted mkfs left on %s: %s",
			           info->device, strerror(-r));
			return r;
		}
		failpoint("node-undo:after-wipe");
	}
	r = stage_crypt_close(info, wipe && !info->read_only && mapping_alive(info, NULL),
	                      ret_reason);
	if (r < 0)
		return r;
	r = unmap(info, deadline, &mapper_forced, ret_reason);
	*forced = *forced || mapper_forced;
	if (r < 0)
		return r;
	failpoint("node-undo:after-unmap");
	return 0;
}

/*
 * Undoes whatever info describes, in reverse: the filesystem mount, the mapping, the state
 * file. Bounded by deadline.
 */
static int undo_all(const struct stage_info *info, const char *state_path, const char *staging_path,
                    uint64_t deadline, bool *forced, char **ret_reason)
{
	int r = undo_mapping(info, staging_path, true, deadline, forced, ret_reason);

	if (r < 0)
		return r;
	if (unlink(state_path) < 0 && errno != ENOENT)
		return negative_errno();
	return 0;
}

/* ---- stage ---- */

/*
 * Crash consistency. The plugin may be SIGKILLed at any point of a stage (failpoints
 * node-stage:*, node-undo:*), and the children it started live on in their own process groups
 * or sessions: rbd-fuse (meant to), and a mkfs, e2fsck or resize2fs that was running.
 *
 * - The state file is written before the map and after every step, so a retry (the same
 *   request, or a restarted plugin) always finds what might exist. A state that is not
 *   "staged" with everything in place is a half stage: it is rolled back (leftover tools on its
 *   device killed, mount and mapping undone) and the stage is redone from the start. What it
 *   recorded is not compared with the request: a half stage has not recorded everything yet
 *   (no filesystem type before its mkfs). Only a complete stage with other parameters is
 *   -EEXIST.
 * - mkfs must never run twice at once on a device, nor over a signature someone else wrote; but
 *   a killed mkfs leaves a partial filesystem whose signature blkid may well report, which is
 *   indistinguishable from a real filesystem by probing. So the decision is recorded, not
 *   probed: mkfs_pending ("the device was probed blank, our mkfs was started on it") is saved
 *   BEFORE mkfs is spawned, and cleared by the save that follows its success, which comes before
 *   the mount — so while it is set, nothing but our own mkfs can have written to the image
 *   (the per-volume lock serialises stages, a volume is staged read-write on one node).
 * - A retry that meets mkfs_pending first kills any mkfs/fsck/resize process still working on
 *   the recorded device (found by its command line through /proc, held and killed through a
 *   pidfd so that a reused pid is never hit; no need to know its pid in advance), so there are
 *   never two mkfs on one device. It then keeps the flag across the rollback (the state file
 *   is rewritten, never removed, in between) and formats again with mkfs's force flag: the
 *   bytes there are our own partial output. A different image for the volume id, or an
 *   unstage, drops the flag after erasing the partial signatures (fs_wipe_own()), so the next
 *   stage finds the device blank again. Left: an unstage with the mapping already gone (node
 *   reboot) cannot erase them; the next stage then probes what the partial mkfs left (ext4
 *   writes its superblock last; an xfs one still flagged in-progress does not mount).
 */

static int request_check(const struct stage_request *req, char **ret_reason)
{
	if (!req || isempty(req->state_dir) || req->state_dir[0] != '/') {
		reason_set(ret_reason, "state directory must be an absolute path");
		return -EINVAL;
	}
	if (isempty(req->volume_id) || strlen(req->volume_id) > VOLUME_ID_MAX) {
		reason_set(ret_reason, "invalid volume id");
		return -EINVAL;
	}
	if (req->access != STAGE_ACCESS_MOUNT && req->access != STAGE_ACCESS_BLOCK)
		return -EINVAL;
	if (req->access == STAGE_ACCESS_MOUNT &&
	    (!path_is_absolute(req->staging_path, PATH_MAX - 1) ||
	     strstr(req->staging_path, "/../"))) {
		reason_set(ret_reason, "staging path must be an absolute path");
		return -EINVAL;
	}
	if (req->access == STAGE_ACCESS_MOUNT && !isempty(req->fstype) &&
	    !fs_type_supported(req->fstype)) {
		reason_set(ret_reason, "unsupported filesystem type '%s' (ext4 or xfs)",
		           req->fstype);
		return -EINVAL;
	}
	if (req->access == STAGE_ACCESS_MOUNT &&
	    options_mount_check(isempty(req->fstype) ? NULL : req->fstype, req->mount_options,
	                        ret_reason) < 0)
		return -EINVAL;
	if (req->mapper < MAPPER_AUTO || req->mapper >= _MAPPER_MAX)
		return -EINVAL;
	return mapper_params_validate(&req->map, ret_reason);
}

static bool str_eq(const char *a, const char *b)
{
	return strcmp(strempty(a), strempty(b)) == 0;
}

/* The first parameter that differs between an existing state and a request, or NULL. */
static const char *request_differs(const struct stage_info *info, const struct stage_request *req)
{
	if (!str_eq(info->pool, req->map.pool))
		return "pool";
	if (!str_eq(info->rados_namespace, req->map.rados_namespace))
		return "rados namespace";
	if (!str_eq(info->image, req->map.image))
		return "image";
	if (!str_eq(info->cluster_id, req->cluster_id))
		return "cluster id";
	if (info->access != req->access)
		return "access type";
	if (info->read_only != req->map.read_only)
		return "read-only flag";
	if (req->mapper != MAPPER_AUTO && req->mapper != info->mapper)
		return "mapper";
	if (!info->crypt_name != !req->crypt)
		return "encryption";
	if (req->access == STAGE_ACCESS_MOUNT) {
		if (!str_eq(info->staging_path, req->staging_path))
			return "staging path";
		if (!isempty(req->fstype) && !str_eq(info->fstype, req->fstype))
			return "filesystem type";
		if (!str_eq(info->mount_options, req->mount_options))
			return "mount options";
	}
	return NULL;
}

/* Whether a state and a request name the same image (the same bytes on the device). */
static bool same_image(const struct stage_info *info, const struct stage_request *req)
{
	return str_eq(info->pool, req->map.pool) &&
	       str_eq(info->rados_namespace, req->map.rados_namespace) &&
	       str_eq(info->image, req->map.image) && str_eq(info->cluster_id, req->cluster_id);
}

/* Picks the mapper: the requested one if available, else for auto krbd, nbd, fuse in turn. */
static int choose_mapper(const struct stage_request *req, enum mapper_type *ret, char **ret_reason)
{
	_cleanup_free_ char *why = NULL, *skipped = NULL;
	const struct mapper_ops *ops;
	int r;

	for (size_t i = 0; (ops = mapper_ops_by_preference(i)); i++) {
		enum mapper_type t = ops->type;

		if (req->mapper != MAPPER_AUTO && req->mapper != t)
			continue;
		r = mapper_available(t, req->sys_root, &why);
		if (r == 0)
			r = mapper_supports(t, req->sys_root, &req->map, &why);
		if (r == 0) {
			*ret = t;
			/* Which mapper, and why: the ones auto passed over, with their reasons. */
			if (req->mapper != MAPPER_AUTO)
				log_info("Mapper %s: named by the volume's mounter (no fallback)",
				         mapper_type_to_string(t));
			else
				log_info("Mapper %s chosen by mounter auto: %s",
				         mapper_type_to_string(t),
				         skipped ? skipped : "the first of krbd, nbd, fuse");
			return 0;
		}
		if (r != -ENODEV)
			break;
		log_debug("Mapper %s not usable: %s", mapper_type_to_string(t), strempty(why));
		if (req->mapper == MAPPER_AUTO) {
			char *n = NULL;

			if (asprintf(&n, "%s%s%s", strempty(skipped), skipped ? "; " : "",
			             strempty(why)) < 0)
				return -ENOMEM;
			free(skipped);
			skipped = n;
		}
	}
	if (req->mapper == MAPPER_AUTO)
		reason_set(ret_reason,
		           "no usable mapper on this host (krbd, nbd, rbd-fuse); last: %s",
		           strempty(why));
	else
		reason_take(ret_reason, TAKE_PTR(why));
	return -ENODEV;
}

static int do_map(struct stage_info *info, const struct stage_request *req, uint64_t deadline,
                  char **ret_reason)
{
	_cleanup_free_ char *opts = NULL;
	struct mapper_params p = req->map;
	char *device = NULL;
	int r;

	r = mapper_options_for(req->map.map_options, info->mapper, &opts);
	if (r < 0) {
		reason_set(ret_reason, "invalid map options: unknown mapper prefix");
		return r;
	}
	p.map_options = opts;
	p.timeout_usec = remaining(deadline);

	r = mapper_map(info->mapper, req->sys_root, &p, info->mapper_state, &device, ret_reason);
	if (r < 0)
		return r;
	free(info->device);
	info->device = device;
	return 0;
}

static int info_from_request(const struct stage_request *req, enum mapper_type mapper,
                             struct stage_info **ret)
{
	_cleanup_(stage_info_freep) struct stage_info *info = calloc(1, sizeof(*info));
	int r = 0;

	if (!info)
		return -ENOMEM;
	info->mapper = mapper;
	info->access = req->access;
	info->read_only = req->map.read_only;
	r = r ?: set_str(&info->volume_id, req->volume_id);
	r = r ?: set_str(&info->phase, PHASE_MAPPING);
	r = r ?: set_str(&info->staging_path, req->staging_path);
	r = r ?: set_str(&info->mount_options, req->mount_options);
	r = r ?: set_str(&info->cluster_id, req->cluster_id);
	r = r ?: set_str(&info->monitors, req->map.monitors);
	r = r ?: set_str(&info->user, req->map.user);
	r = r ?: set_str(&info->pool, req->map.pool);
	r = r ?: set_str(&info->rados_namespace, req->map.rados_namespace);
	r = r ?: set_str(&info->image, req->map.image);
	r = r ?: set_str(&info->unmap_options, req->unmap_options);
	r = r ?: set_str(&info->sys_root, req->sys_root);
	if (r < 0)
		return r;
	if (req->crypt) {
		r = stage_crypt_name(req->volume_id, &info->crypt_name);
		if (r < 0)
			return r;
	}
	r = mapper_state_new(mapper, req->state_dir, req->volume_id, &info->mapper_state);
	if (r < 0)
		return r;
	*ret = TAKE_PTR(info);
	return 0;
}

static int save_phase(struct stage_info *info, const char *phase, const char *state_path,
                      char **ret_reason);

/*
 * Formats the device, recording it first (see "Crash consistency" above): mkfs_pending is saved
 * before mkfs runs, and cleared by the caller's next save, which precedes any mount.
 */
static int format_device(struct stage_info *info, const struct stage_request *req, const char *want,
                         const char *state_path, uint64_t deadline, char **ret_reason)
{
	bool over_own = info->mkfs_pending;
	int r;

	info->mkfs_pending = true;
	r = save_phase(info, PHASE_FORMAT, state_path, ret_reason);
	if (r < 0)
		return r;
	failpoint("node-stage:after-state-formatting");
	r = fs_format_flags(info->device, want, req->mkfs_options,
	                    over_own ? FS_FORMAT_OVER_OWN : 0, remaining(deadline), ret_reason);
	if (r < 0) {
		/* Only -EIO and -ETIMEDOUT come after mkfs ran; the rest before (bad options, too
		 * small, a signature after all): nothing of ours is on the device then. */
		if (r != -EIO && r != -ETIMEDOUT)
			info->mkfs_pending = over_own;
		return r;
	}
	failpoint("node-stage:after-mkfs");
	info->mkfs_pending = false;
	info->formatted = true;
	return 0;
}

/*
 * Decides the filesystem: keeps a matching one, formats a blank device, refuses the rest. A
 * device that holds the output of our own interrupted mkfs (info->mkfs_pending, carried over
 * from the attempt that was rolled back) is formatted again, whatever blkid sees on it.
 */
static int prepare_filesystem(struct stage_info *info, const struct stage_request *req,
                              const char *state_path, uint64_t deadline, char **ret_reason)
{
	_cleanup_free_ char *types = NULL;
	const char *want = req->fstype;
	int r;

	if (info->mkfs_pending && info->read_only) {
		reason_set(
		        ret_reason,
		        "the format of %s was interrupted and the volume is now read-only: stage "
		        "it read-write once",
		        info->device);
		return -EROFS;
	}
	if (info->mkfs_pending) {
		if (isempty(want))
			want = "ext4";
		log_debug("Formatting %s again: an earlier mkfs on it was interrupted",
		          info->device);
		r = format_device(info, req, want, state_path, deadline, ret_reason);
		if (r < 0)
			return r;
		return set_str(&info->fstype, want);
	}
	r = blockdev_probe(info->device, &types);
	if (r < 0) {
		reason_set(ret_reason, "cannot probe %s: %s", info->device, strerror(-r));
		return r;
	}
	if (isempty(want))
		want = fs_type_supported(types) ? types : "ext4";
	if (blockdev_types_blank(types)) {
		if (info->read_only) {
			reason_set(ret_reason,
			           "device %s is blank and the volume is read-only: no "
			           "filesystem to mount",
			           info->device);
			return -EROFS;
		}
		r = format_device(info, req, want, state_path, deadline, ret_reason);
		if (r < 0)
			return r;
	} else if (strcmp(types, want) != 0) {
		reason_set(ret_reason, "device carries '%s', not '%s': refusing to format", types,
		           want);
		return -EMEDIUMTYPE;
	}
	return set_str(&info->fstype, want);
}

/*
 * Grows a filesystem that is smaller than its device: a volume restored or cloned into a bigger
 * one, or expanded while it was not staged. mountpoint NULL grows offline (ext4 only), else
 * online (fs_grow()). Returns 1 grown, 0 nothing to do, or fs_grow()'s error. A gap below
 * GROW_SLACK is left alone: xfs cannot always use the tail of a device, and trying on every
 * stage would cost a tool run each time. A failed grow is not a failed stage: the data is
 * there, only the room is not; the caller notes *ret_reason and goes on.
 */
#define GROW_SLACK (16ULL << 20)
static int grow_if_smaller(struct stage_info *info, const char *mountpoint, uint64_t deadline,
                           char **ret_reason)
{
	uint64_t fs_size, dev_size;
	int r;

	r = fs_get_size(info->device, info->fstype, &fs_size);
	if (r < 0) {
		reason_set(ret_reason, "cannot read the %s superblock of %s: %s", info->fstype,
		           info->device, strerror(-r));
		return r;
	}
	r = blockdev_get_size(info->device, &dev_size);
	if (r < 0) {
		reason_set(ret_reason, "cannot read the size of %s: %s", info->device,
		           strerror(-r));
		return r;
	}
	if (fs_size + GROW_SLACK > dev_size)
		return 0;
	r = fs_grow(info->device, info->fstype, mountpoint, remaining(deadline), ret_reason);
	if (r < 0)
		return r;
	log_debug("Grew the %s filesystem on %s from %llu to %llu bytes", info->fstype,
	          info->device, (unsigned long long)fs_size, (unsigned long long)dev_size);
	return 1;
}

/* grow_if_smaller() for a filesystem this stage did not just create; notes the outcome in info
 * and returns grow_if_smaller()'s result. */
static int grow_existing(struct stage_info *info, const char *mountpoint, uint64_t deadline)
{
	int r;

	if (info->formatted || info->read_only)
		return 0;
	free(info->grow_failure);
	info->grow_failure = NULL;
	r = grow_if_smaller(info, mountpoint, deadline, &info->grow_failure);
	if (r > 0)
		info->grown = true;
	else if (r < 0 && !info->grow_failure)
		info->grow_failure = strdup(strerror(-r));
	return r;
}

static int save_phase(struct stage_info *info, const char *phase, const char *state_path,
                      char **ret_reason)
{
	int r = set_str(&info->phase, phase);

	if (r == 0)
		r = state_save(state_path, info);
	if (r < 0)
		reason_set(ret_reason, "cannot update state file %s: %s", state_path, strerror(-r));
	return r;
}

/* The staging directory: the resolved one (req->staging_at) when given, else by text. */
static int staging_mkdir(const struct stage_request *req);
static int staging_mount(const struct stage_info *info, const struct stage_request *req);
static int staging_umount(const struct stage_request *req);
static void staging_unpin(const struct stage_request *req);

/* The steps after the map: record it, then filesystem and mount (mount access). The caller
 * undoes everything when this fails. */
static int finish_stage(struct stage_info *info, const struct stage_request *req,
                        const char *state_path, uint64_t deadline, char **ret_reason)
{
	int r;

	r = save_phase(info, PHASE_MAPPED, state_path, ret_reason);
	if (r < 0)
		return r;
	failpoint("node-stage:after-state-mapped");
	if (req->crypt) {
		r = stage_crypt_open(info, req->crypt, state_path, stage_state_save, ret_reason);
		if (r < 0)
			return r;
	}
	if (req->access == STAGE_ACCESS_MOUNT) {
		r = prepare_filesystem(info, req, state_path, deadline, ret_reason);
		if (r < 0)
			return r;
		r = save_phase(info, PHASE_MAPPED, state_path, ret_reason);
		if (r < 0)
			return r;
		failpoint("node-stage:after-state-formatted");
		r = staging_mkdir(req);
		if (r < 0) {
			reason_set(ret_reason, "cannot create %s: %s", req->staging_path,
			           strerror(-r));
			return r;
		}
		r = staging_mount(info, req);
		if (r < 0) {
			reason_set(ret_reason, "cannot mount %s (%s) on %s: %s", info->device,
			           info->fstype, req->staging_path, strerror(-r));
			return r;
		}
		failpoint("node-stage:after-mount");
		/* Online first: the kernel journals an online grow, so a crash in the middle
		 * costs nothing. Without CAP_SYS_RESOURCE the kernel refuses an online ext4 grow;
		 * then offline: unmount, e2fsck -f -p, resize2fs, mount again. */
		r = grow_existing(info, req->staging_path, deadline);
		if (r == -EPERM && strcmp(info->fstype, "ext4") == 0) {
			r = staging_umount(req);
			if (r < 0) {
				reason_set(ret_reason, "cannot unmount %s to grow it offline: %s",
				           req->staging_path, strerror(-r));
				return r;
			}
			(void)grow_existing(info, NULL, deadline);
			r = staging_mount(info, req);
			if (r < 0) {
				reason_set(ret_reason, "cannot mount %s (%s) on %s: %s",
				           info->device, info->fstype, req->staging_path,
				           strerror(-r));
				return r;
			}
		}
	}
	r = save_phase(info, PHASE_STAGED, state_path, ret_reason);
	if (r < 0)
		return r;
	failpoint("node-stage:after-state-staged");
	return 0;
}

int stage_volume(const struct stage_request *req, struct stage_info **ret_info, char **ret_reason)
{
	_cleanup_(stage_info_freep) struct stage_info *info = NULL, *old = NULL;
	_cleanup_free_ char *state_path = NULL, *why = NULL;
	enum mapper_type mapper;
	uint64_t deadline;
	bool forced = false, carry_mkfs = false, carry_luks = false;
	int r;

	r = request_check(req, ret_reason);
	if (r < 0)
		return r;
	deadline = monotonic_usec() + (req->timeout_usec ?: STAGE_TIMEOUT_DEFAULT_USEC);
	r = fileio_mkdir_p(req->state_dir, 0700);
	if (r < 0) {
		reason_set(ret_reason, "cannot create state directory %s: %s", req->state_dir,
		           strerror(-r));
		return r;
	}
	r = stage_state_path(req->state_dir, req->volume_id, &state_path);
	if (r < 0)
		return r;

	r = stage_load(req->state_dir, req->volume_id, &old);
	if (r == 0) {
		const char *diff = request_differs(old, req);
		bool complete = strcmp(old->phase, PHASE_STAGED) == 0 && mapping_alive(old, &why) &&
		                (old->access == STAGE_ACCESS_BLOCK || device_mounted(old, &why));

		if (complete && diff) {
			reason_set(ret_reason, "volume %s is already staged with a different %s",
			           req->volume_id, diff);
			return -EEXIST;
		}
		if (complete) {
			log_debug("Volume %s is already staged", req->volume_id);
			if (ret_info)
				*ret_info = TAKE_PTR(old);
			return 0;
		}
		/* A crash mid-stage, a reboot, a dead daemon: roll back, then stage afresh. A
		 * half stage records only what it got to (no filesystem type before the mkfs),
		 * so its differences from the request mean nothing: it is rolled back too. */
		log_debug("Rolling back the stale state of %s (%s: %s%s%s)", req->volume_id,
		          old->phase, strempty(why), diff ? "; it differs in " : "",
		          strempty(diff));
		carry_mkfs = old->mkfs_pending && same_image(old, req);
		carry_luks = old->luks_pending && same_image(old, req) && req->crypt;
		staging_unpin(req);
		if (carry_mkfs || carry_luks)
			r = undo_mapping(old, old->staging_path, false, deadline, &forced,
			                 ret_reason);
		else
			r = undo_all(old, state_path, old->staging_path, deadline, &forced,
			             ret_reason);
		if (r < 0)
			return r;
		old = stage_info_free(old);
		if (req->staging_at) {
			r = path_refresh(req->staging_at);
			if (r < 0) {
				reason_set(ret_reason, "cannot look at %s after the rollback: %s",
				           req->staging_path, strerror(-r));
				return r;
			}
		}
	} else if (r != -ENOENT) {
		reason_set(ret_reason, "state file %s cannot be read: %s", state_path,
		           strerror(-r));
		return r;
	}

	if (req->access == STAGE_ACCESS_MOUNT &&
	    (req->staging_at ? req->staging_at->mountpoint
	                     : mount_is_mountpoint(req->staging_path) > 0)) {
		reason_set(ret_reason, "%s already has something mounted that rbdcsi did not stage",
		           req->staging_path);
		return -EBUSY;
	}

	r = choose_mapper(req, &mapper, ret_reason);
	if (r < 0)
		return r;
	r = info_from_request(req, mapper, &info);
	if (r < 0)
		return r;
	info->mkfs_pending = carry_mkfs;
	info->luks_pending = carry_luks;

	/* Recorded before anything happens, so that a crash from here on can be undone. */
	r = state_save(state_path, info);
	if (r < 0) {
		reason_set(ret_reason, "cannot write state file %s: %s", state_path, strerror(-r));
		return r;
	}
	failpoint("node-stage:after-state");
	r = do_map(info, req, deadline, ret_reason);
	if (r < 0) {
		/* The mapper cleaned up after itself. A pending format stays recorded. */
		if (!info->mkfs_pending && !info->luks_pending)
			(void)unlink(state_path);
		return r;
	}
	failpoint("node-stage:after-map");
	r = finish_stage(info, req, state_path, deadline, ret_reason);
	if (r < 0) {
		_cleanup_free_ char *undo_why = NULL;
		int k;

		/* Undo with a bound of its own: the stage may have used up its time. */
		staging_unpin(req);
		k = undo_all(info, state_path, req->staging_path,
		             monotonic_usec() + (req->timeout_usec ?: STAGE_TIMEOUT_DEFAULT_USEC),
		             &forced, &undo_why);
		if (k < 0)
			log_debug("Undoing the failed stage of %s failed too: %s", req->volume_id,
			          strempty(undo_why));
		return r;
	}
	log_debug("Staged %s: %s via %s%s%s", req->volume_id, info->device,
	          mapper_type_to_string(info->mapper),
	          info->access == STAGE_ACCESS_MOUNT ? " on " : "",
	          info->access == STAGE_ACCESS_MOUNT ? req->staging_path : "");
	if (ret_info)
		*ret_info = TAKE_PTR(info);
	return 0;
}

/* ---- unstage ---- */

int stage_unstage(const char *state_dir, const char *volume_id, const char *staging_path,
                  uint64_t timeout_usec, bool *forced, char **ret_reason)
{
	_cleanup_(path_resolved_done) struct path_resolved p = PATH_RESOLVED_INIT;
	_cleanup_close_ int root_fd = -1;
	int r;

	if (forced)
		*forced = false;
	if (isempty(volume_id) || (staging_path && staging_path[0] != '/'))
		return -EINVAL;
	if (!staging_path)
		return stage_unstage_at(state_dir, volume_id, NULL, timeout_usec, forced,
		                        ret_reason);
	/* Resolved from "/" without following symlinks, like every path the node acts on. */
	r = path_root_open("/", &root_fd);
	if (r < 0)
		return r;
	r = path_resolve(root_fd, "/", staging_path, 0, &p);
	if (r == -ENOENT || r == -ENOTDIR)
		return stage_unstage_at(state_dir, volume_id, NULL, timeout_usec, forced,
		                        ret_reason);
	if (r < 0) {
		reason_set(ret_reason, "cannot resolve %s: %s", staging_path, strerror(-r));
		return r;
	}
	return stage_unstage_at(state_dir, volume_id, &p, timeout_usec, forced, ret_reason);
}

/* ---- recover ---- */

int stage_recover(const char *state_dir, const char *volume_id, struct stage_health *ret_health)
{
	_cleanup_(stage_info_freep) struct stage_info *info = NULL;
	_cleanup_free_ char *why = NULL, *state_path = NULL;
	struct stage_health h = { 0 };
	struct mapper_mapping m;
	int r;

	r = stage_load(state_dir, volume_id, &info);
	if (r < 0)
		return r;
	h.staged = strcmp(info->phase, PHASE_STAGED) == 0;
	/* A daemon found under another pid (recorded pid lost in a crash): record it. */
	m = mapping_of(info);
	if (mapper_refind(info->mapper, &m) > 0 &&
	    stage_state_path(state_dir, volume_id, &state_path) == 0)
		(void)state_save(state_path, info);
	h.mapping_alive = mapping_alive(info, &why);
	if (info->access == STAGE_ACCESS_MOUNT) {
		h.mounted = h.mapping_alive && device_mounted(info, &why);
		if (h.mounted) {
			bool bad = false;
			char *msg = NULL;

			if (mount_check_health(info->staging_path, &bad, &msg) == 0 && bad)
				reason_take(&why, msg);
			else
				free(msg);
			h.abnormal = bad;
		}
	}
	if (!h.staged)
		reason_set(&why, "volume %s is only half staged (%s)", volume_id, info->phase);
	h.abnormal = h.abnormal || !h.staged || !h.mapping_alive ||
	             (info->access == STAGE_ACCESS_MOUNT && !h.mounted);
	h.message = h.abnormal ? TAKE_PTR(why) : NULL;
	*ret_health = h;
	return 0;
}

/* ---- expand ---- */

int stage_expand(const char *state_dir, const char *volume_id, uint64_t new_size,
                 uint64_t timeout_usec, uint64_t *ret_size, char **ret_reason)
{
	_cleanup_(stage_info_freep) struct stage_info *info = NULL;
	uint64_t deadline = monotonic_usec() + (timeout_usec ?: STAGE_TIMEOUT_DEFAULT_USEC);
	struct mapper_mapping m;
	uint64_t size = 0;
	int r;

	r = stage_load(state_dir, volume_id, &info);
	if (r < 0)
		return r;
	if (strcmp(info->phase, PHASE_STAGED) != 0 || !info->device)
		return -ENOENT;

	/* rbd-fuse's loop device needs telling; krbd and rbd-nbd follow by themselves. */
	m = mapping_of(info);
	r = mapper_refresh_size(info->mapper, &m, new_size, remaining(deadline), ret_reason);
	if (r < 0)
		return r;
	/* Wait for the device to show the new size. */
	for (;;) {
		r = blockdev_get_size(raw_device(info), &size);
		if (r < 0) {
			reason_set(ret_reason, "cannot read the size of %s: %s", raw_device(info),
			           strerror(-r));
			return r;
		}
		if (new_size == 0 || size >= new_size)
			break;
		if (monotonic_usec() >= deadline) {
			reason_set(ret_reason, "%s still has %llu bytes, not %llu",
			           raw_device(info), (unsigned long long)size,
			           (unsigned long long)new_size);
			return -ETIMEDOUT;
		}
		(void)poll(NULL, 0, EXPAND_POLL_MS);
	}
	r = stage_crypt_resize(info, ret_reason);
	if (r < 0)
		return r;
	if (info->access == STAGE_ACCESS_MOUNT) {
		r = fs_grow(info->device, info->fstype, info->staging_path, remaining(deadline),
		            ret_reason);
		if (r < 0)
			return r;
	}
	log_debug("Expanded %s to %llu bytes", volume_id, (unsigned long long)size);
	if (ret_size)
		*ret_size = size;
	return 0;
}

/* ---- unstage of what this volume owns ---- */

struct umount_at_arg {
	int dir_fd; /* a dup the call closes (so an abandoned call never meets a reused number) */
	char name[NAME_MAX + 1];
	char text[PATH_MAX];
};

static int umount_at_call(void *p)
{
	struct umount_at_arg *a = p;
	int r = mount_umount_at(a->dir_fd, a->name, a->text, false);

	a->dir_fd = safe_close(a->dir_fd);
	return r;
}

/*
 * Whether the mount p's fd is on holds info's device: the filesystem's st_dev is the device's
 * st_rdev, or (the device node gone) libmount names the device as the mount's source.
 * *ret_what describes the mount found (owned) for an error message.
 */
static bool mount_is_ours(const struct stage_info *info, const struct path_resolved *p,
                          char **ret_what)
{
	_cleanup_(mount_info_freep) struct mount_info *mi = NULL;
	struct stat st;

	if (mount_find_fd(p->fd, &mi) >= 0)
		reason_set(ret_what, "%s (%s)", mi->source, mi->fstype);
	else
		reason_set(ret_what, "device %u:%u", major(p->st.st_dev), minor(p->st.st_dev));
	if (!info->device)
		return false;
	if (stat(info->device, &st) == 0)
		return S_ISBLK(st.st_mode) && st.st_rdev == p->st.st_dev;
	return mi && strcmp(mi->source, info->device) == 0;
}

/* Unmounts this volume's filesystem from the resolved staging path, and only it. */
static int unmount_staged(const struct stage_info *info, struct path_resolved *p, uint64_t deadline,
                          bool *forced, char **ret_reason)
{
	struct abort_arg aa = { .info = info };
	int r;

	/* A few rounds: a crashed retry may have stacked more than one mount of the device. */
	for (int i = 0; i < 4; i++) {
		_cleanup_free_ char *what = NULL;
		struct umount_at_arg ua = { .dir_fd = -1 };
		bool aborted = false;

		r = path_refresh(p);
		if (r < 0) {
			reason_set(ret_reason, "cannot look at %s: %s", p->text, strerror(-r));
			return r;
		}
		if (p->fd < 0 || !p->mountpoint)
			return 0;
		if (!mount_is_ours(info, p, &what)) {
			reason_set(ret_reason,
			           "%s holds a mount of %s that is not this volume's device %s: "
			           "left alone",
			           p->text, strempty(what), strempty(info->device));
			return -EBUSY;
		}
		if (strlen(p->name) > NAME_MAX || strlen(p->text) >= sizeof(ua.text))
			return -ENAMETOOLONG;
		snprintf(ua.name, sizeof(ua.name), "%s", p->name);
		snprintf(ua.text, sizeof(ua.text), "%s", p->text);
		/* The fd of the mount itself would keep it busy. */
		p->fd = safe_close(p->fd);
		ua.dir_fd = fcntl(p->dir_fd, F_DUPFD_CLOEXEC, 3);
		if (ua.dir_fd < 0)
			return negative_errno();
		r = bounded_call(umount_at_call, &ua, sizeof(ua), remaining(deadline),
		                 abort_mapping, &aa, ABORT_GRACE_US, &aborted);
		if (r != -ETIMEDOUT && ua.dir_fd >= 0)
			safe_close(ua.dir_fd); /* the call never ran */
		if (forced)
			*forced = *forced || aborted;
		if (r < 0) {
			reason_set(ret_reason, "cannot unmount %s: %s%s%s", p->text,
			           r == -ETIMEDOUT ? "it hangs (cluster unreachable?)"
			                           : strerror(-r),
			           aborted && mapper_abort_target(info->mapper)
			                   ? " even after aborting "
			                   : "",
			           aborted ? strempty(mapper_abort_target(info->mapper)) : "");
			return r;
		}
	}
	reason_set(ret_reason, "%s still has mounts of this volume after unmounting it", p->text);
	return -EBUSY;
}

int stage_unstage_at(const char *state_dir, const char *volume_id, struct path_resolved *staging,
                     uint64_t timeout_usec, bool *forced, char **ret_reason)
{
	_cleanup_(stage_info_freep) struct stage_info *info = NULL;
	_cleanup_(path_resolved_done) struct path_resolved own = PATH_RESOLVED_INIT;
	_cleanup_free_ char *state_path = NULL;
	uint64_t deadline = monotonic_usec() + (timeout_usec ?: STAGE_TIMEOUT_DEFAULT_USEC);
	bool was_forced = false;
	int r;

	if (forced)
		*forced = false;
	if (isempty(volume_id))
		return -EINVAL;
	r = stage_state_path(state_dir, volume_id, &state_path);
	if (r < 0)
		return r;
	r = stage_load(state_dir, volume_id, &info);
	if (r == -ENOENT)
		return 0; /* never staged here (or unstaged): nothing of this volume to touch */
	if (r < 0) {
		reason_set(ret_reason, "state file %s cannot be read: %s", state_path,
		           strerror(-r));
		return r;
	}
	if (info->access == STAGE_ACCESS_MOUNT && info->staging_path) {
		if (staging && !str_eq(staging->text, info->staging_path)) {
			reason_set(ret_reason, "volume %s is staged at %s, not at %s", volume_id,
			           info->staging_path, staging->text);
			return -EINVAL;
		}
		if (!staging) {
			_cleanup_close_ int root_fd = -1;

			r = path_root_open("/", &root_fd);
			if (r < 0)
				return r;
			r = path_resolve(root_fd, "/", info->staging_path, 0, &own);
			if (r >= 0)
				staging = &own;
			else if (mount_is_mountpoint(info->staging_path) > 0) {
				/* (A symlink above the kubelet dir, say: cannot be acted on
				 * safely.) */
				reason_set(ret_reason,
				           "%s is a mount point but cannot be resolved without "
				           "following links: %s",
				           info->staging_path, strerror(-r));
				return r;
			}
			/* else nothing is mounted there: nothing to unmount. */
		}
		if (staging) {
			r = unmount_staged(info, staging, deadline, &was_forced, ret_reason);
			if (r < 0) {
				if (forced)
					*forced = was_forced;
				return r;
			}
			failpoint("node-undo:after-umount");
		}
	}
	/* The filesystem is off the staging path: undo_all() has no mount left to look at. */
	r = undo_all(info, state_path, NULL, deadline, &was_forced, ret_reason);
	if (forced)
		*forced = was_forced;
	if (r < 0)
		return r;
	log_debug("Unstaged %s%s", volume_id, was_forced ? " (forced)" : "");
	return 0;
}

int stage_find_image(const char *state_dir, const char *cluster_id, const char *pool,
                     const char *rados_namespace, const char *image, const char *except_volume_id,
                     char **ret_volume_id)
{
	_cleanup_(exec_strv_freep) char **ids = NULL;
	int r;

	r = stage_list(state_dir, &ids);
	if (r == -ENOENT)
		return -ENOENT;
	if (r < 0)
		return r;
	for (char **id = ids; *id; id++) {
		_cleanup_(stage_info_freep) struct stage_info *info = NULL;
		char *s;

		if (except_volume_id && strcmp(*id, except_volume_id) == 0)
			continue;
		if (stage_load(state_dir, *id, &info) < 0)
			continue;
		if (!str_eq(info->cluster_id, cluster_id) || !str_eq(info->pool, pool) ||
		    !str_eq(strempty(info->rados_namespace), strempty(rados_namespace)) ||
		    !str_eq(info->image, image))
			continue;
		s = strdup(*id);
		if (!s)
			return -ENOMEM;
		*ret_volume_id = s;
		return 0;
	}
	return -ENOENT;
}

/* ---- the staging directory, resolved by the caller (req->staging_at) or by text ---- */

static int staging_mkdir(const struct stage_request *req)
{
	if (req->staging_at)
		return path_mkdir(req->staging_at, 0750);
	return fileio_mkdir_p(req->staging_path, 0750);
}

static int staging_mount(const struct stage_info *info, const struct stage_request *req)
{
	if (req->staging_at)
		return mount_device_at(info->device, req->staging_at, info->fstype,
		                       req->mount_options, info->read_only);
	return mount_device(info->device, req->staging_path, info->fstype, req->mount_options,
	                    info->read_only);
}

/* Closes the resolved staging fd: on a mount's root it would keep an unmount busy. */
static void staging_unpin(const struct stage_request *req)
{
	if (req->staging_at)
		req->staging_at->fd = safe_close(req->staging_at->fd);
}

static int staging_umount(const struct stage_request *req)
{
	struct path_resolved *p = req->staging_at;
	int r;

	if (!p)
		return mount_umount(req->staging_path, false);
	p->fd = safe_close(p->fd); /* it would keep the mount busy */
	r = mount_umount_at(p->dir_fd, p->name, p->text, false);
	if (r < 0)
		return r;
	return path_refresh(p);
}
