/* SPDX-License-Identifier: Apache-2.0 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "driver/base/exec.h"
#include "driver/base/log.h"
#include "driver/base/macro.h"
#include "driver/host/blockdev.h"
#include "driver/host/mapper_nbd.h"
#include "driver/host/options.h"
#include "driver/host/reason.h"

#define NBD_ARGS_MAX (OPTIONS_MAP_MAX + MAPPER_CEPH_ARGV_MAX + 8)

int mapper_nbd_available(const char *root, char **ret_reason)
{
	_cleanup_free_ char *mod = mapper_root_path(root, "/sys/module/nbd");
	_cleanup_free_ char *dev = mapper_root_path(root, "/dev/nbd0");
	_cleanup_free_ char *prog = NULL;

	if (!mod || !dev)
		return -ENOMEM;
	if (access(mod, F_OK) < 0 || access(dev, F_OK) < 0) {
		reason_set(ret_reason, "rbd-nbd: nbd kernel module not loaded (%s %s)",
		           access(mod, F_OK) < 0 ? mod : dev, "missing");
		return -ENODEV;
	}
	if (exec_find_program("rbd-nbd", NULL, &prog) < 0) {
		reason_set(ret_reason, "rbd-nbd: program not installed");
		return -ENODEV;
	}
	return 0;
}

DEFINE_TRIVIAL_CLEANUP_FUNC(char **, exec_strv_free)

static void exec_result_donep(struct exec_result *r)
{
	exec_result_done(r);
}

int mapper_nbd_map(const char *root, const struct mapper_params *p, char **ret_device,
                   char **ret_reason)
{
	_cleanup_free_ char *spec = NULL, *log_arg = NULL, *device = NULL;
	_cleanup_(exec_strv_freep) char **extra = NULL;
	_cleanup_(exec_result_donep) struct exec_result res = { 0 };
	_cleanup_close_ int key_fd = -EBADF;
	char *argv[NBD_ARGS_MAX];
	struct exec_fd key = { .child_fd = 3 };
	struct exec_options opts = { 0 };
	size_t n = 0;
	int r;

	r = mapper_params_validate(p, ret_reason);
	if (r < 0)
		return r;
	r = mapper_nbd_available(root, ret_reason);
	if (r < 0)
		return r;
	r = options_nbd_args(p->map_options, &extra, ret_reason);
	if (r < 0)
		return r;
	if (asprintf(&spec, "%s/%s%s%s", p->pool, strempty(p->rados_namespace),
	             isempty(p->rados_namespace) ? "" : "/", p->image) < 0)
		return -ENOMEM;
	if (asprintf(&log_arg, "--log-file=%s", p->log_path ? p->log_path : "") < 0)
		return -ENOMEM;

	n = mapper_ceph_argv(argv, "rbd-nbd", p, log_arg);
	argv[n++] = (char *)"map";
	if (p->read_only)
		argv[n++] = (char *)"--read-only";
	for (char **a = extra; *a; a++)
		argv[n++] = *a;
	argv[n++] = spec;
	argv[n] = NULL;

	r = mapper_key_fd_new(p->key, &key_fd);
	if (r < 0)
		return r;
	key.fd = key_fd;
	opts.fds = &key;
	opts.n_fds = 1;
	opts.timeout_usec = p->timeout_usec ? p->timeout_usec : MAPPER_TIMEOUT_DEFAULT_USEC;
	r = exec_run(argv, &opts, &res);
	/* "map" returns once the device is up; the daemon it leaves behind has read the key and
	 * keeps fd 3 open for its whole life: empty it. */
	if (mapper_key_fd_wipe(key_fd) < 0 && r == 0)
		r = -EIO;
	if (r < 0) {
		reason_set(ret_reason, "rbd-nbd: map of %s %s", spec,
		           r == -ETIMEDOUT ? "timed out" : strerror(-r));
		return r;
	}
	if (!exec_result_ok(&res)) {
		reason_take(ret_reason, exec_result_describe(&res, "rbd-nbd map"));
		return -EIO;
	}
	/* It prints the device, "/dev/nbdN\n". */
	res.out[strcspn(res.out, "\n")] = 0;
	if (strncmp(res.out, "/dev/nbd", 8) != 0) {
		reason_set(ret_reason, "rbd-nbd: unexpected output of map");
		return -EIO;
	}
	device = strdup(res.out);
	if (!device)
		return -ENOMEM;
	log_debug("rbd-nbd mapped %s as %s", spec, device);
	*ret_device = TAKE_PTR(device);
	return 0;
}

int mapper_nbd_unmap(const char *device, uint64_t timeout_usec, char **ret_reason)
{
	/* No cluster is needed to unmap; --no-mon-config keeps it from looking for monitors
	 * (which, without a mon_host, would be a DNS SRV lookup). */
	char *argv[MAPPER_CEPH_ARGV_OFFLINE_MAX + 3];
	struct exec_options opts = { .timeout_usec = timeout_usec ? timeout_usec
		                                                  : MAPPER_TIMEOUT_DEFAULT_USEC };
	struct exec_result res = { 0 };
	size_t n;
	int r, fd;

	if (isempty(device) || strncmp(device, "/dev/nbd", 8) != 0)
		return -EINVAL;
	n = mapper_ceph_argv_offline(argv, "rbd-nbd");
	argv[n++] = (char *)"unmap";
	argv[n++] = (char *)device;
	argv[n] = NULL;
	/* Unlike krbd's remove, "rbd-nbd unmap" disconnects a device that is still mounted or
	 * held (by device-mapper, a second mount): the holder would see I/O errors. An exclusive
	 * open fails with EBUSY exactly then (a plain open elsewhere is not seen). */
	fd = open(device, O_RDONLY | O_EXCL | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
	if (fd < 0 && errno == EBUSY) {
		reason_set(ret_reason,
		           "rbd-nbd: %s is still in use (mounted or held by another device); not "
		           "disconnecting it",
		           device);
		return -EBUSY;
	}
	fd = safe_close(fd);
	r = exec_run(argv, &opts, &res);
	if (r < 0) {
		reason_set(ret_reason, "rbd-nbd: unmap of %s %s", device,
		           r == -ETIMEDOUT ? "timed out" : strerror(-r));
		return r;
	}
	if (exec_result_ok(&res) ||
	    (res.err && (strstr(res.err, "not mapped") || strstr(res.err, "No such file")))) {
		exec_result_done(&res);
		return 0;
	}
	reason_take(ret_reason, exec_result_describe(&res, "rbd-nbd unmap"));
	r = res.err && strstr(res.err, "Device or resource busy") ? -EBUSY : -EIO;
	exec_result_done(&res);
	return r;
}

/* ---- the mapper's ops: rbd-nbd keeps no state of its own, the device says it all ---- */

static int nbd_map(const char *root, const struct mapper_params *p, void *state, char **ret_device,
                   char **ret_reason)
{
	return mapper_nbd_map(root, p, ret_device, ret_reason);
}

static bool nbd_alive(const struct mapper_mapping *m, char **why)
{
	uint64_t size = 0;

	if (!m->device || blockdev_get_size(m->device, &size) < 0 || size == 0) {
		reason_set(why, "nbd device %s is not connected", strempty(m->device));
		return false;
	}
	return true;
}

static int nbd_unmap(const struct mapper_mapping *m, uint64_t timeout_usec, bool *forced,
                     char **ret_reason)
{
	if (!m->device)
		return 0; /* nothing recorded: the map never returned a device */
	return mapper_nbd_unmap(m->device, timeout_usec, ret_reason);
}

const struct mapper_ops mapper_nbd_ops = {
	.type = MAPPER_NBD,
	.module = "nbd",
	.module_dir = "/sys/module/nbd",
	.available = mapper_nbd_available,
	.map = nbd_map,
	.alive = nbd_alive,
	.unmap = nbd_unmap,
};
