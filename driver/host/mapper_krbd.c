/* SPDX-License-Identifier: Apache-2.0 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <json-c/json.h>
#include <libudev.h>
#include <limits.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <sys/stat.h>
#include <unistd.h>

#include "driver/base/exec.h"
#include "driver/base/fileio.h"
#include "driver/base/log.h"
#include "driver/base/macro.h"
#include "driver/base/monotonic.h"
#include "driver/host/mapper_krbd.h"
#include "driver/host/options.h"
#include "driver/host/reason.h"

#define KRBD_IDS_MAX 1024
#define ADD_LINE_MAX 8192
#define RBD_BUS      "/sys/bus/rbd"

DEFINE_TRIVIAL_CLEANUP_FUNC(DIR *, closedir)
DEFINE_TRIVIAL_CLEANUP_FUNC(struct udev *, udev_unref)
DEFINE_TRIVIAL_CLEANUP_FUNC(struct udev_monitor *, udev_monitor_unref)
DEFINE_TRIVIAL_CLEANUP_FUNC(struct udev_device *, udev_device_unref)

static int poll_ms(uint64_t deadline)
{
	uint64_t now = monotonic_usec();

	if (now >= deadline)
		return 0;
	return (int)MIN((deadline - now + 999) / 1000, (uint64_t)INT_MAX);
}

int mapper_krbd_available(const char *root, char **ret_reason)
{
	_cleanup_free_ char *bus = mapper_root_path(root, RBD_BUS);
	_cleanup_free_ char *add = mapper_root_path(root, RBD_BUS "/add_single_major");

	if (!bus || !add)
		return -ENOMEM;
	if (access(bus, F_OK) < 0) {
		reason_set(ret_reason, "krbd: %s not present, rbd kernel module not loaded", bus);
		return -ENODEV;
	}
	if (access(add, W_OK) < 0) {
		reason_set(ret_reason, "krbd: %s not usable (%s), kernel without single-major rbd",
		           add, strerror(errno));
		return -ENODEV;
	}
	return 0;
}

int mapper_krbd_check_features(const char *root, uint64_t features, char **ret_reason)
{
	_cleanup_free_ char *path = mapper_root_path(root, RBD_BUS "/supported_features");
	uint64_t supported;
	int r;

	if (!path)
		return -ENOMEM;
	r = fileio_read_sysfs_u64(path, &supported);
	if (r == -ENOENT)
		return 0; /* old kernel: the map itself will tell */
	if (r < 0) {
		reason_set(ret_reason, "krbd: cannot read %s: %s", path, strerror(-r));
		return r;
	}
	if (features & ~supported) {
		reason_set(ret_reason,
		           "krbd: the kernel does not support image features 0x%llx (image has "
		           "0x%llx, kernel supports 0x%llx)",
		           (unsigned long long)(features & ~supported),
		           (unsigned long long)features, (unsigned long long)supported);
		return -ENODEV;
	}
	return 0;
}

/* Appends one address (without its "/nonce") to out if it is a v1 or untyped one. */
static void add_v1_address(char *out, size_t *len, const char *tok, size_t n)
{
	const char *slash;

	if ((n >= 3 && strncmp(tok, "v2:", 3) == 0) || (n >= 4 && strncmp(tok, "any:", 4) == 0))
		return;
	if (n >= 3 && strncmp(tok, "v1:", 3) == 0) {
		tok += 3;
		n -= 3;
	}
	slash = memchr(tok, '/', n);
	if (slash)
		n = (size_t)(slash - tok);
	if (n == 0)
		return;
	if (*len)
		out[(*len)++] = ',';
	memcpy(out + *len, tok, n);
	*len += n;
	out[*len] = 0;
}

int mapper_krbd_monitors(const char *monitors, char **ret)
{
	_cleanup_free_ char *out = NULL;
	size_t len = 0;
	const char *p;

	if (isempty(monitors))
		return -EINVAL;
	out = calloc(1, strlen(monitors) + 1);
	if (!out)
		return -ENOMEM;
	/* Entries are separated by ',' (or blanks); "[v2:..,v1:..]" groups an addrvec, while a
	 * '[' inside an address is an IPv6 literal ("v1:[::1]:6789", "[::1]:6789"). */
	p = monitors;
	while (*p) {
		const char *tok;
		bool v6 = false;

		while (*p == ',' || *p == ' ' || *p == ']' ||
		       (*p == '[' &&
		        (strncmp(p + 1, "v1:", 3) == 0 || strncmp(p + 1, "v2:", 3) == 0 ||
		         strncmp(p + 1, "any:", 4) == 0)))
			p++;
		tok = p;
		for (; *p; p++) {
			if (*p == '[')
				v6 = true;
			else if (*p == ']' && v6)
				v6 = false;
			else if (!v6 && (*p == ',' || *p == ' ' || *p == ']'))
				break;
		}
		add_v1_address(out, &len, tok, (size_t)(p - tok));
	}
	if (len == 0)
		return -EINVAL;
	*ret = TAKE_PTR(out);
	return 0;
}

static int read_attr(const char *root, int id, const char *attr, char **ret)
{
	char path[128];
	_cleanup_free_ char *full = NULL;

	snprintf(path, sizeof(path), RBD_BUS "/devices/%d/%s", id, attr);
	full = mapper_root_path(root, path);
	if (!full)
		return -ENOMEM;
	return fileio_read_sysfs(full, ret);
}

/* 1 when device id maps pool/ns/image at the head, 0 when it maps something else. */
static int id_matches(const char *root, int id, const char *pool, const char *ns, const char *image)
{
	_cleanup_free_ char *a_pool = NULL, *a_ns = NULL, *a_name = NULL, *a_snap = NULL;
	int r;

	r = read_attr(root, id, "pool", &a_pool);
	if (r < 0)
		return r;
	r = read_attr(root, id, "name", &a_name);
	if (r < 0)
		return r;
	r = read_attr(root, id, "pool_ns", &a_ns);
	if (r == -ENOENT)
		a_ns = NULL; /* kernel before 5.3: no namespaces */
	else if (r < 0)
		return r;
	r = read_attr(root, id, "current_snap", &a_snap);
	if (r < 0 && r != -ENOENT)
		return r;
	return strcmp(a_pool, pool) == 0 && strcmp(a_name, image) == 0 &&
	       strcmp(strempty(a_ns), strempty(ns)) == 0 && (!a_snap || strcmp(a_snap, "-") == 0);
}

/* Lists the ids of mappings of pool/ns/image into ids (at most KRBD_IDS_MAX). */
static int list_matching(const char *root, const char *pool, const char *ns, const char *image,
                         int *ids, size_t *n_ids)
{
	_cleanup_free_ char *dir = mapper_root_path(root, RBD_BUS "/devices");
	_cleanup_(closedirp) DIR *d = NULL;
	struct dirent *de;

	*n_ids = 0;
	if (!dir)
		return -ENOMEM;
	d = opendir(dir);
	if (!d)
		return errno == ENOENT ? -ENODEV : negative_errno();
	while ((de = readdir(d)) && *n_ids < KRBD_IDS_MAX) {
		char *end;
		long id;

		if (de->d_name[0] < '0' || de->d_name[0] > '9')
			continue;
		errno = 0;
		id = strtol(de->d_name, &end, 10);
		if (errno || *end || id < 0 || id > INT_MAX)
			continue;
		if (id_matches(root, (int)id, pool, ns, image) == 1)
			ids[(*n_ids)++] = (int)id;
	}
	return 0;
}

int mapper_krbd_find(const char *root, const char *pool, const char *rados_namespace,
                     const char *image, int *ret_id)
{
	int ids[KRBD_IDS_MAX];
	size_t n;
	int r;

	if (isempty(pool) || isempty(image))
		return -EINVAL;
	r = list_matching(root, pool, rados_namespace, image, ids, &n);
	if (r < 0)
		return r;
	if (n == 0)
		return -ENOENT;
	*ret_id = ids[0];
	return 0;
}

/* Waits for something to be created in dir, at most until deadline. 0 on an event, -ETIMEDOUT. */
static int wait_dir_event(int inotify_fd, uint64_t deadline)
{
	struct pollfd p = { .fd = inotify_fd, .events = POLLIN };
	char buf[4096] __attribute__((aligned(__alignof__(struct inotify_event))));
	int k;

	k = poll(&p, 1, poll_ms(deadline));
	if (k < 0)
		return errno == EINTR ? 0 : negative_errno();
	if (k == 0)
		return -ETIMEDOUT;
	while (read(inotify_fd, buf, sizeof(buf)) > 0)
		;
	return 0;
}

static int inotify_watch(const char *dir, int *ret_fd)
{
	_cleanup_close_ int fd = inotify_init1(IN_CLOEXEC | IN_NONBLOCK);

	if (fd < 0)
		return negative_errno();
	if (inotify_add_watch(fd, dir, IN_CREATE | IN_MOVED_TO | IN_ATTRIB | IN_ONLYDIR) < 0)
		return negative_errno();
	*ret_fd = TAKE_FD(fd);
	return 0;
}

/* Finds the id that maps our image and was not in before[]; waits for it until deadline. */
static int find_new_id(const char *root, const struct mapper_params *p, const int *before,
                       size_t n_before, uint64_t deadline, int *ret_id)
{
	_cleanup_free_ char *dir = mapper_root_path(root, RBD_BUS "/devices");
	_cleanup_close_ int ifd = -EBADF;
	int ids[KRBD_IDS_MAX];

	if (!dir)
		return -ENOMEM;
	/* The kernel adds the device before the write returns; a simulated sysfs may lag. */
	(void)inotify_watch(dir, &ifd);
	for (;;) {
		size_t n;
		int r = list_matching(root, p->pool, p->rados_namespace, p->image, ids, &n);

		if (r < 0)
			return r;
		for (size_t i = 0; i < n; i++) {
			bool old = false;

			for (size_t j = 0; j < n_before; j++)
				old = old || before[j] == ids[i];
			if (!old) {
				*ret_id = ids[i];
				return 0;
			}
		}
		if (ifd < 0) {
			if (monotonic_usec() >= deadline)
				return -ETIMEDOUT;
			(void)poll(NULL, 0, 20);
			continue;
		}
		r = wait_dir_event(ifd, deadline);
		if (r < 0)
			return r;
	}
}

/* Waits for the device node with inotify on its directory (no udevd, or a simulated root). */
static int wait_node_inotify(const char *node, uint64_t deadline)
{
	_cleanup_free_ char *dir = strdup(node);
	_cleanup_close_ int ifd = -EBADF;
	char *slash;
	int r;

	if (!dir)
		return -ENOMEM;
	slash = strrchr(dir, '/');
	if (!slash)
		return -EINVAL;
	*slash = 0;
	r = inotify_watch(dir, &ifd);
	if (r < 0)
		return r;
	for (;;) {
		if (access(node, F_OK) == 0)
			return 0;
		r = wait_dir_event(ifd, deadline);
		if (r < 0)
			return r;
	}
}

/* Waits for udev's "add" of rbd<id> on a monitor set up before the map. */
static int wait_node_udev(struct udev_monitor *mon, int id, const char *node, uint64_t deadline)
{
	char sysname[32];
	int fd = udev_monitor_get_fd(mon);

	snprintf(sysname, sizeof(sysname), "rbd%d", id);
	for (;;) {
		struct pollfd p = { .fd = fd, .events = POLLIN };
		int k = poll(&p, 1, poll_ms(deadline));

		if (k < 0 && errno != EINTR)
			return negative_errno();
		if (k == 0)
			/* No event in time; the node may still be there (devtmpfs). */
			return access(node, F_OK) == 0 ? 0 : -ETIMEDOUT;
		for (;;) {
			_cleanup_(udev_device_unrefp) struct udev_device *dev =
			        udev_monitor_receive_device(mon);
			const char *action, *name;

			if (!dev)
				break;
			action = udev_device_get_action(dev);
			name = udev_device_get_sysname(dev);
			if (name && strcmp(name, sysname) == 0 && action &&
			    strcmp(action, "add") == 0)
				return access(node, F_OK) == 0 ? 0 : -ENOENT;
		}
	}
}

static bool udevd_running(const char *root)
{
	return (isempty(root) || strcmp(root, "/") == 0) && access("/run/udev/control", F_OK) == 0;
}

static const char *map_error_hint(int r)
{
	switch (r) {
	case -ENOENT:
		return "image or pool not found";
	case -EACCES:
	case -EPERM:
		return "permission denied (wrong key or caps, or this client is blocklisted)";
	case -ENXIO:
		return "the image uses features this kernel does not support";
	case -ETIMEDOUT:
		return "the cluster did not answer";
	case -EINVAL:
		return "the kernel rejected the map options";
	default:
		return strerror(-r);
	}
}

int mapper_krbd_map(const char *root, const struct mapper_params *p, char **ret_device, int *ret_id,
                    char **ret_reason)
{
	_cleanup_free_ char *mons = NULL, *add = NULL, *node = NULL, *line = NULL;
	_cleanup_(udev_unrefp) struct udev *udev = NULL;
	_cleanup_(udev_monitor_unrefp) struct udev_monitor *mon = NULL;
	uint64_t deadline;
	int before[KRBD_IDS_MAX];
	size_t n_before;
	char dev_rel[32];
	int r, k, id;

	r = mapper_params_validate(p, ret_reason);
	if (r < 0)
		return r;
	r = mapper_krbd_available(root, ret_reason);
	if (r < 0)
		return r;
	if (p->image_features_known) {
		r = mapper_krbd_check_features(root, p->image_features, ret_reason);
		if (r < 0)
			return r;
	}
	r = options_map_check(MAPPER_KRBD, p->map_options, ret_reason);
	if (r < 0)
		return r;
	r = mapper_krbd_monitors(p->monitors, &mons);
	if (r == -EINVAL) {
		reason_set(ret_reason, "krbd: no msgr v1 monitor address in '%s'", p->monitors);
		return r;
	}
	if (r < 0)
		return r;
	deadline = monotonic_usec() +
	           (p->timeout_usec ? p->timeout_usec : MAPPER_TIMEOUT_DEFAULT_USEC);
	add = mapper_root_path(root, RBD_BUS "/add_single_major");
	if (!add)
		return -ENOMEM;

	r = list_matching(root, p->pool, p->rados_namespace, p->image, before, &n_before);
	if (r < 0)
		return r;
	if (udevd_running(root)) {
		udev = udev_new();
		mon = udev ? udev_monitor_new_from_netlink(udev, "udev") : NULL;
		if (!mon ||
		    udev_monitor_filter_add_match_subsystem_devtype(mon, "block", "disk") < 0 ||
		    udev_monitor_enable_receiving(mon) < 0)
			mon = udev_monitor_unref(mon);
	}

	line = malloc(ADD_LINE_MAX);
	if (!line)
		return -ENOMEM;
	k = snprintf(line, ADD_LINE_MAX, "%s name=%s,secret=%s%s%s%s%s%s %s %s -", mons, p->user,
	             p->key, p->read_only ? ",ro" : "", isempty(p->map_options) ? "" : ",",
	             strempty(p->map_options),
	             isempty(p->rados_namespace) ? "" : ",_pool_ns=", strempty(p->rados_namespace),
	             p->pool, p->image);
	if (k < 0 || k >= ADD_LINE_MAX) {
		explicit_bzero(line, ADD_LINE_MAX);
		reason_set(ret_reason, "krbd: map request too long");
		return -EINVAL;
	}
	r = fileio_write_sysfs(add, line, (size_t)k);
	explicit_bzero(line, ADD_LINE_MAX); /* the key lived only here */
	if (r == -ENXIO) {
		/* The kernel names the features it lacks only in its log: say at least what it
		 * supports, so the StorageClass's imageFeatures can be fixed (or another mapper
		 * picked) without a look at dmesg. */
		_cleanup_free_ char *sf = mapper_root_path(root, RBD_BUS "/supported_features");
		uint64_t supported = 0;

		if (sf && fileio_read_sysfs_u64(sf, &supported) == 0) {
			reason_set(ret_reason,
			           "krbd: mapping %s/%s%s%s failed: the image uses features this "
			           "kernel does not support (the kernel supports 0x%llx; see "
			           "imageFeatures, or use mounter rbd-nbd)",
			           p->pool, strempty(p->rados_namespace),
			           isempty(p->rados_namespace) ? "" : "/", p->image,
			           (unsigned long long)supported);
			return log_debug_errno(r, "Writing %s failed: %m", add);
		}
	}
	if (r < 0) {
		reason_set(ret_reason, "krbd: mapping %s/%s%s%s failed: %s", p->pool,
		           strempty(p->rados_namespace), isempty(p->rados_namespace) ? "" : "/",
		           p->image, map_error_hint(r));
		return log_debug_errno(r, "Writing %s failed: %m", add);
	}

	r = find_new_id(root, p, before, n_before, deadline, &id);
	if (r < 0) {
		reason_set(ret_reason,
		           "krbd: the kernel accepted the map of %s/%s but no new "
		           "device for it appeared in %s/devices",
		           p->pool, p->image, RBD_BUS);
		return r;
	}
	snprintf(dev_rel, sizeof(dev_rel), "/dev/rbd%d", id);
	node = mapper_root_path(root, dev_rel);
	r = !node ? -ENOMEM
	    : mon ? wait_node_udev(mon, id, node, deadline)
	          : wait_node_inotify(node, deadline);
	if (r < 0) {
		/* Mapped but unusable: take the mapping back. */
		reason_set(ret_reason, "krbd: device %s did not appear in time", strempty(node));
		(void)mapper_krbd_unmap(root, id, NULL, NULL, NULL, NULL, NULL);
		return r;
	}
	log_debug("krbd mapped %s/%s as %s", p->pool, p->image, node);
	*ret_device = TAKE_PTR(node);
	*ret_id = id;
	return 0;
}

int mapper_krbd_unmap(const char *root, int id, const char *pool, const char *rados_namespace,
                      const char *image, const char *unmap_options, char **ret_reason)
{
	_cleanup_free_ char *remove = NULL;
	char line[64];
	bool force = false;
	int r, k;

	if (id < 0)
		return -EINVAL;
	if (!isempty(unmap_options)) {
		if (strcmp(unmap_options, "force") != 0) {
			reason_set(ret_reason, "krbd: unknown unmap option '%s' (only 'force')",
			           unmap_options);
			return -EINVAL;
		}
		force = true;
	}
	r = mapper_krbd_available(root, ret_reason);
	if (r < 0)
		return r;
	if (pool && image) {
		r = id_matches(root, id, pool, rados_namespace, image);
		if (r == -ENOENT || r == 0) {
			log_debug("krbd device %d does not map %s/%s (any more)", id, pool, image);
			return 0;
		}
		if (r < 0)
			return r;
	}
	remove = mapper_root_path(root, RBD_BUS "/remove_single_major");
	if (!remove)
		return -ENOMEM;
	k = snprintf(line, sizeof(line), "%d%s", id, force ? " force" : "");
	r = fileio_write_sysfs(remove, line, (size_t)k);
	if (r == -ENOENT)
		return 0; /* not mapped */
	if (r < 0) {
		reason_set(ret_reason, "krbd: unmapping /dev/rbd%d failed: %s", id,
		           r == -EBUSY ? "device is still open (mounted or in use)" : strerror(-r));
		return r;
	}
	log_debug("krbd unmapped device %d%s", id, force ? " (force)" : "");
	return 0;
}

/* ---- the mapper's ops and state ---- */

/* What the state file keeps of a krbd mapping: the kernel's device id, as "krbd_id". */
struct krbd_state {
	int id; /* -1 until the map returned one */
};

static void *krbd_state_free(void *p)
{
	free(p);
	return NULL;
}

static int krbd_state_new(const char *state_dir, const char *volume_id, void **ret_state)
{
	struct krbd_state *s = malloc(sizeof(*s));

	if (!s)
		return -ENOMEM;
	s->id = -1;
	*ret_state = s;
	return 0;
}

static int krbd_state_save(const void *p, struct json_object *o)
{
	const struct krbd_state *s = p;

	json_object_object_add(o, "krbd_id", json_object_new_int(s ? s->id : -1));
	return 0;
}

static int krbd_state_load(struct json_object *o, void **ret_state)
{
	struct krbd_state *s = malloc(sizeof(*s));
	json_object *v;

	if (!s)
		return -ENOMEM;
	s->id = json_object_object_get_ex(o, "krbd_id", &v) ? json_object_get_int(v) : -1;
	*ret_state = s;
	return 0;
}

static int krbd_supports(const char *root, const struct mapper_params *p, char **ret_reason)
{
	if (!p->image_features_known)
		return 0;
	return mapper_krbd_check_features(root, p->image_features, ret_reason);
}

static int krbd_map(const char *root, const struct mapper_params *p, void *state, char **ret_device,
                    char **ret_reason)
{
	struct krbd_state *s = state;
	char *device = NULL;
	int r, id;

	if (!s)
		return -EINVAL;
	r = mapper_krbd_map(root, p, &device, &id, ret_reason);
	if (r < 0)
		return r;
	s->id = id;
	*ret_device = device;
	return 0;
}

static bool krbd_alive(const struct mapper_mapping *m, char **why)
{
	const struct krbd_state *s = m->state;
	struct stat st;
	int id;

	if (!s || mapper_krbd_find(m->sys_root, m->pool, m->rados_namespace, m->image, &id) < 0 ||
	    id != s->id || !m->device || stat(m->device, &st) < 0) {
		reason_set(why, "krbd device %s no longer maps %s/%s", strempty(m->device), m->pool,
		           m->image);
		return false;
	}
	return true;
}

static int krbd_unmap(const struct mapper_mapping *m, uint64_t timeout_usec, bool *forced,
                      char **ret_reason)
{
	const struct krbd_state *s = m->state;
	_cleanup_free_ char *opts = NULL;
	int r, id;

	r = mapper_options_for(m->unmap_options, MAPPER_KRBD, &opts);
	if (r < 0)
		return r;
	id = s ? s->id : -1;
	/* Crash between the map and recording the id: find it by image. */
	if (id < 0 && mapper_krbd_find(m->sys_root, m->pool, m->rados_namespace, m->image, &id) < 0)
		return 0;
	return mapper_krbd_unmap(m->sys_root, id, m->pool, m->rados_namespace, m->image, opts,
	                         ret_reason);
}

int mapper_krbd_state_id(const void *state)
{
	const struct krbd_state *s = state;

	return s ? s->id : -1;
}

const struct mapper_ops mapper_krbd_ops = {
	.type = MAPPER_KRBD,
	.module = "rbd",
	.module_dir = RBD_BUS,
	.available = mapper_krbd_available,
	.supports = krbd_supports,
	.state_new = krbd_state_new,
	.state_free = krbd_state_free,
	.state_save = krbd_state_save,
	.state_load = krbd_state_load,
	.map = krbd_map,
	.alive = krbd_alive,
	.unmap = krbd_unmap,
};
