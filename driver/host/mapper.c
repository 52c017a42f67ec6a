/* SPDX-License-Identifier: Apache-2.0 */
#include <errno.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "driver/base/exec.h"
#include "driver/base/log.h"
#include "driver/base/macro.h"
#include "driver/base/monotonic.h"
#include "driver/host/mapper.h"
#include "driver/host/mapper_fuse.h"
#include "driver/host/mapper_krbd.h"
#include "driver/host/mapper_nbd.h"
#include "driver/host/reason.h"

/* The mappers. MAPPER_AUTO is a choice among them, not one of them. */
static const struct mapper_ops *const mapper_table[_MAPPER_MAX] = {
	[MAPPER_FUSE] = &mapper_fuse_ops,
	[MAPPER_KRBD] = &mapper_krbd_ops,
	[MAPPER_NBD] = &mapper_nbd_ops,
};

/* The order in which mounter "auto" tries them: the kernel's own client first, rbd-fuse last. */
static const enum mapper_type preference[] = { MAPPER_KRBD, MAPPER_NBD, MAPPER_FUSE };

/* When modprobe last failed, per mapper (see MODPROBE_RETRY_USEC). */
static atomic_uint_fast64_t modprobe_failed_at[_MAPPER_MAX];

const struct mapper_ops *mapper_ops_get(enum mapper_type t)
{
	if (t < 0 || t >= _MAPPER_MAX)
		return NULL;
	return mapper_table[t];
}

const char *mapper_modprobe_program = NULL;

#define MODPROBE_TIMEOUT_USEC (15ULL * 1000000ULL)
/* After a failed modprobe, the next attempt for that module waits this long: a host without the
 * module does not pay a fork per stage. */
#define MODPROBE_RETRY_USEC (300ULL * 1000000ULL)

/*
 * Loads a kernel module with modprobe (the host's /lib/modules, mounted into the node plugin's
 * container, and the host's kernel: as ceph-csi does). Only on the real host (root "/" or NULL)
 * unless a test set mapper_modprobe_program. 0 when modprobe succeeded; -ENODEV with a reason
 * otherwise (also while an earlier failure is recent, see MODPROBE_RETRY_USEC).
 */
static int load_module(const char *module, const char *root, atomic_uint_fast64_t *failed_at,
                       char **ret_reason)
{
	const char *prog = mapper_modprobe_program ? mapper_modprobe_program : "modprobe";
	char *argv[] = { (char *)prog, (char *)"--", (char *)module, NULL };
	struct exec_options opts = { .timeout_usec = MODPROBE_TIMEOUT_USEC };
	struct exec_result res = { 0 };
	uint64_t last = atomic_load(failed_at), now = monotonic_usec();
	int r;

	if (!mapper_modprobe_program && !isempty(root) && strcmp(root, "/") != 0)
		return -ENODEV;
	if (last && now - last < MODPROBE_RETRY_USEC) {
		reason_set(ret_reason, "modprobe %s failed %llus ago", module,
		           (unsigned long long)((now - last) / 1000000ULL));
		return -ENODEV;
	}
	r = exec_run(argv, &opts, &res);
	if (r >= 0 && exec_result_ok(&res)) {
		exec_result_done(&res);
		atomic_store(failed_at, 0);
		log_info("Loaded the %s kernel module (modprobe)", module);
		return 0;
	}
	if (r < 0)
		reason_set(ret_reason, "cannot run %s: %s", prog, strerror(-r));
	else
		reason_take(ret_reason, exec_result_describe(&res, "modprobe"));
	exec_result_done(&res);
	atomic_store(failed_at, now ? now : 1);
	return -ENODEV;
}

/* Whether root + path (a directory the module creates) is missing. */
static bool module_missing(const char *root, const char *path)
{
	_cleanup_free_ char *p = mapper_root_path(root, path);

	return p && access(p, F_OK) < 0 && errno == ENOENT;
}

/* check(root): the mapper's own check; when the module is not loaded, modprobe and check again.
 * The reason says both what was missing and why loading it failed. */
static int available_loading(int (*check)(const char *, char **), const char *root,
                             const char *module, const char *module_dir,
                             atomic_uint_fast64_t *failed_at, char **ret_reason)
{
	_cleanup_free_ char *why = NULL, *load_why = NULL;
	int r;

	r = check(root, &why);
	if (r != -ENODEV || !module_missing(root, module_dir))
		goto out;
	if (load_module(module, root, failed_at, &load_why) < 0) {
		if (load_why) {
			reason_set(ret_reason, "%s; %s", strempty(why), load_why);
			return r;
		}
		goto out;
	}
	free(why);
	why = NULL;
	r = check(root, &why);
out:
	if (r < 0)
		reason_take(ret_reason, TAKE_PTR(why));
	return r;
}

const struct mapper_ops *mapper_ops_by_preference(size_t i)
{
	return i < ELEMENTSOF(preference) ? mapper_table[preference[i]] : NULL;
}

int mapper_available(enum mapper_type t, const char *root, char **ret_reason)
{
	const struct mapper_ops *ops;

	if (t == MAPPER_AUTO) {
		for (enum mapper_type k = 0; k < _MAPPER_MAX; k++)
			if (mapper_table[k] && mapper_available(k, root, NULL) == 0)
				return 0;
		reason_set(ret_reason, "no mapper available: no rbd or nbd kernel module, no "
		                       "rbd-fuse");
		return -ENODEV;
	}
	ops = mapper_ops_get(t);
	if (!ops)
		return -EINVAL;
	if (!ops->module)
		return ops->available(root, ret_reason);
	return available_loading(ops->available, root, ops->module, ops->module_dir,
	                         &modprobe_failed_at[t], ret_reason);
}

int mapper_supports(enum mapper_type t, const char *root, const struct mapper_params *p,
                    char **ret_reason)
{
	const struct mapper_ops *ops = mapper_ops_get(t);

	if (!ops)
		return -EINVAL;
	return ops->supports ? ops->supports(root, p, ret_reason) : 0;
}

int mapper_state_new(enum mapper_type t, const char *state_dir, const char *volume_id,
                     void **ret_state)
{
	const struct mapper_ops *ops = mapper_ops_get(t);

	if (!ops)
		return -EINVAL;
	if (!ops->state_new) {
		*ret_state = NULL;
		return 0;
	}
	return ops->state_new(state_dir, volume_id, ret_state);
}

void *mapper_state_free(enum mapper_type t, void *state)
{
	const struct mapper_ops *ops = mapper_ops_get(t);

	if (state && ops && ops->state_free)
		ops->state_free(state);
	return NULL;
}

int mapper_state_save(enum mapper_type t, const void *state, struct json_object *o)
{
	const struct mapper_ops *ops = mapper_ops_get(t);

	if (!ops)
		return -EINVAL;
	return ops->state_save ? ops->state_save(state, o) : 0;
}

int mapper_state_load(enum mapper_type t, struct json_object *o, void **ret_state)
{
	const struct mapper_ops *ops = mapper_ops_get(t);

	if (!ops)
		return -EINVAL;
	if (!ops->state_load) {
		*ret_state = NULL;
		return 0;
	}
	return ops->state_load(o, ret_state);
}

int mapper_map(enum mapper_type t, const char *root, const struct mapper_params *p, void *state,
               char **ret_device, char **ret_reason)
{
	const struct mapper_ops *ops = mapper_ops_get(t);

	if (!ops)
		return -EINVAL;
	return ops->map(root, p, state, ret_device, ret_reason);
}

bool mapper_alive(enum mapper_type t, const struct mapper_mapping *m, char **why)
{
	const struct mapper_ops *ops = mapper_ops_get(t);

	return ops && ops->alive(m, why);
}

int mapper_unmap(enum mapper_type t, const struct mapper_mapping *m, uint64_t timeout_usec,
                 bool *forced, char **ret_reason)
{
	const struct mapper_ops *ops = mapper_ops_get(t);

	if (!ops)
		return -EINVAL;
	return ops->unmap(m, timeout_usec, forced, ret_reason);
}

void mapper_abort(enum mapper_type t, const struct mapper_mapping *m)
{
	const struct mapper_ops *ops = mapper_ops_get(t);

	if (ops && ops->abort)
		ops->abort(m);
}

const char *mapper_abort_target(enum mapper_type t)
{
	const struct mapper_ops *ops = mapper_ops_get(t);

	return ops && ops->abort ? ops->daemon : NULL;
}

int mapper_refresh_size(enum mapper_type t, const struct mapper_mapping *m, uint64_t new_size,
                        uint64_t timeout_usec, char **ret_reason)
{
	const struct mapper_ops *ops = mapper_ops_get(t);

	if (!ops)
		return -EINVAL;
	return ops->refresh_size ? ops->refresh_size(m, new_size, timeout_usec, ret_reason) : 0;
}

int mapper_refind(enum mapper_type t, struct mapper_mapping *m)
{
	const struct mapper_ops *ops = mapper_ops_get(t);

	return ops && ops->refind ? ops->refind(m) : 0;
}

const char *mapper_own_mount(enum mapper_type t, const void *state)
{
	const struct mapper_ops *ops = mapper_ops_get(t);

	return ops && ops->own_mount && state ? ops->own_mount(state) : NULL;
}
