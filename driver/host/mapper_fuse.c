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
#include <sys/wait.h>
#include <unistd.h>

#include "driver/base/exec.h"
#include "driver/base/failpoint.h"
#include "driver/base/fileio.h"
#include "driver/base/log.h"
#include "driver/base/macro.h"
#include "driver/base/monotonic.h"
#include "driver/base/path.h"
#include "driver/base/sha256.h"
#include "driver/host/bounded.h"
#include "driver/host/cgroup_escape.h"
#include "driver/host/loop.h"
#include "driver/host/mapper_fuse.h"
#include "driver/host/mount.h"
#include "driver/host/options.h"
#include "driver/host/reason.h"

#define FUSE_ARGS_MAX  32
#define FUSE_FSTYPE    "fuse.rbd-fuse"
#define EXIT_WAIT_USEC (10ULL * USEC_PER_SEC)
#define KILL_WAIT_USEC (3ULL * USEC_PER_SEC)
#define LOG_TAIL_MAX   (64U * 1024U)

DEFINE_TRIVIAL_CLEANUP_FUNC(DIR *, closedir)

void mapper_fuse_mapping_done(struct mapper_fuse_mapping *m)
{
	if (!m)
		return;
	free(m->mount_dir);
	free(m->image_path);
	free(m->loop_device);
	*m = (struct mapper_fuse_mapping){ 0 };
}

int mapper_fuse_available(char **ret_reason)
{
	_cleanup_free_ char *prog = NULL;

	if (exec_find_program("rbd-fuse", NULL, &prog) < 0) {
		reason_set(ret_reason, "rbd-fuse: program not installed");
		return -ENODEV;
	}
	if (access("/dev/fuse", R_OK | W_OK) < 0) {
		reason_set(ret_reason,
		           "rbd-fuse: /dev/fuse missing, fuse kernel module not loaded");
		return -ENODEV;
	}
	return 0;
}

/* mount_dir: canonical, with room for "/<image>" and ".log" below PATH_MAX. */
static bool path_canonical_form(const char *p)
{
	return path_is_canonical(p) && strlen(p) < PATH_MAX - 300;
}

static const char *base_name(const char *p)
{
	const char *s = strrchr(p, '/');

	return s ? s + 1 : p;
}

int mapper_fuse_pid_matches(pid_t pid, const char *mount_dir)
{
	char **argv = NULL;
	bool found = false;

	if (pid <= 0 || isempty(mount_dir))
		return 0;
	if (exec_pid_cmdline(pid, &argv) < 0)
		return 0;
	if (argv[0] && strcmp(base_name(argv[0]), "rbd-fuse") == 0)
		for (char **a = argv + 1; *a && !found; a++)
			found = strcmp(*a, mount_dir) == 0;
	exec_strv_free(argv);
	return found ? 1 : 0;
}

int mapper_fuse_find_pid(const char *mount_dir, pid_t *ret_pid)
{
	_cleanup_(closedirp) DIR *d = opendir("/proc");
	struct dirent *de;

	if (!d)
		return negative_errno();
	while ((de = readdir(d))) {
		char *end;
		long pid;

		if (de->d_name[0] < '1' || de->d_name[0] > '9')
			continue;
		pid = strtol(de->d_name, &end, 10);
		if (*end || pid <= 0 || pid > INT_MAX)
			continue;
		if (mapper_fuse_pid_matches((pid_t)pid, mount_dir) == 1) {
			*ret_pid = (pid_t)pid;
			return 0;
		}
	}
	return -ENOENT;
}

/* The live daemon for mount_dir: pid if it still is one, else a /proc scan; 0 if none. */
static pid_t resolve_pid(const char *mount_dir, pid_t pid)
{
	pid_t found = 0;

	if (pid > 0 && mapper_fuse_pid_matches(pid, mount_dir) == 1)
		return pid;
	if (mapper_fuse_find_pid(mount_dir, &found) < 0)
		return 0;
	return found;
}

int mapper_fuse_kill(const char *mount_dir, pid_t pid)
{
	_cleanup_close_ int pidfd = -EBADF;

	pid = resolve_pid(mount_dir, pid);
	if (pid <= 0)
		return 0;
	/* Pin the process, then check it is still the one we mean (pid reuse). */
	pidfd = pidfd_open(pid, 0);
	if (pidfd < 0)
		return errno == ESRCH ? 0 : negative_errno();
	if (mapper_fuse_pid_matches(pid, mount_dir) != 1)
		return 0;
	if (pidfd_send_signal(pidfd, SIGKILL, NULL, 0) < 0)
		return errno == ESRCH ? 0 : negative_errno();
	log_debug("Killed rbd-fuse pid %d serving %s", (int)pid, mount_dir);
	/* Wait (briefly) for it to die, which also reaps it if it is our child. */
	(void)exec_pid_wait_exit(pid, KILL_WAIT_USEC, NULL);
	return 0;
}

struct kill_arg {
	char mount_dir[PATH_MAX];
	pid_t pid;
};

static void kill_cb(void *p)
{
	struct kill_arg *a = p;

	(void)mapper_fuse_kill(a->mount_dir, a->pid);
}

/* ---- bounded calls: their argument is copied, so everything is inline ---- */

struct path_arg {
	char path[PATH_MAX];
	bool lazy;
	uint64_t size; /* stat_call: result */
	mode_t mode;
};

static int stat_call(void *p)
{
	struct path_arg *a = p;
	struct stat st;

	if (stat(a->path, &st) < 0)
		return negative_errno();
	if (!S_ISREG(st.st_mode))
		return -EMEDIUMTYPE;
	a->size = (uint64_t)st.st_size;
	return 0;
}

static int umount_call(void *p)
{
	struct path_arg *a = p;

	return mount_umount(a->path, a->lazy);
}

static int detach_call(void *p)
{
	struct path_arg *a = p;

	return loop_detach(a->path);
}

/*
 * The interesting end of the log for a reason: the last 3 lines that are errors. Ceph log lines
 * look like "<date> <thread> <level> <message>"; lines at level 0 and above (banner, info) are
 * skipped and the prefix is dropped; plain stderr lines are kept as they are.
 */
static char *log_tail(const char *log_path)
{
	_cleanup_free_ char *data = NULL;
	const char *lines[3] = { NULL };
	size_t size = 0, len = 0;
	int n = 0;
	char *out;

	if (fileio_read_full(log_path, 16U * 1024U * 1024U, &data, &size) < 0 || size == 0)
		return NULL;
	for (char *line = data; line && *line;) {
		char *nl = strchr(line, '\n'), *msg = line;
		char date[64], thread[32];
		int level, off = 0;

		if (nl)
			*nl = 0;
		if (sscanf(line, "%63s %31s %d %n", date, thread, &level, &off) == 3 && off > 0 &&
		    strchr(date, 'T')) {
			msg = level < 0 ? line + off : NULL;
		}
		if (msg && *msg) {
			lines[n % 3] = msg;
			n++;
		}
		line = nl ? nl + 1 : NULL;
	}
	if (n == 0)
		return NULL;
	out = calloc(1, size + 1);
	if (!out)
		return NULL;
	for (int i = n > 3 ? n - 3 : 0; i < n; i++) {
		const char *l = lines[i % 3];
		size_t k = strlen(l);

		if (len)
			out[len++] = ';', out[len++] = ' ';
		memcpy(out + len, l, k);
		len += k;
	}
	out[len] = 0;
	return out;
}

/* Maps what rbd-fuse logged to an error code. */
static int log_error_code(const char *tail)
{
	if (!tail)
		return -EIO;
	if (strstr(tail, "timed out"))
		return -ETIMEDOUT;
	if (strstr(tail, "failed to decode key") || strstr(tail, "handle_auth_bad_method") ||
	    strstr(tail, "Permission denied") || strstr(tail, "keyring not found"))
		return -EACCES;
	return -EIO;
}

/* Waits until mount_dir is an rbd-fuse mount, the process exits, or the deadline passes.
 * Returns 0 mounted, -ECHILD the process exited, -ETIMEDOUT. */
static int wait_mounted(const char *mount_dir, pid_t pid, uint64_t deadline)
{
	_cleanup_close_ int mi = -EBADF, pidfd = -EBADF;

	mi = open("/proc/self/mountinfo", O_RDONLY | O_CLOEXEC);
	pidfd = pidfd_open(pid, 0);
	for (;;) {
		_cleanup_(mount_info_freep) struct mount_info *info = NULL;
		struct pollfd p[2];
		char buf[4096];
		uint64_t now;
		int n = 0, k, timeout_ms;

		/* Consume the mount table so that poll() reports the next change. */
		if (mi >= 0) {
			(void)lseek(mi, 0, SEEK_SET);
			while (read(mi, buf, sizeof(buf)) > 0)
				;
		}
		if (mount_find(mount_dir, &info) == 0 && strcmp(info->fstype, FUSE_FSTYPE) == 0)
			return 0;
		/* Exited? Asked of the pidfd, not /proc/PID/cmdline, which is empty for a moment
		 * right after exec. */
		if (pidfd < 0 ||
		    poll(&(struct pollfd){ .fd = pidfd, .events = POLLIN }, 1, 0) > 0) {
			/* It may have mounted just before exiting (missing pool). */
			info = mount_info_free(info);
			if (mount_find(mount_dir, &info) == 0 &&
			    strcmp(info->fstype, FUSE_FSTYPE) == 0)
				return 0;
			return -ECHILD;
		}
		now = monotonic_usec();
		if (now >= deadline)
			return -ETIMEDOUT;
		timeout_ms = (int)MIN((deadline - now) / 1000 + 1, (uint64_t)INT_MAX);
		if (mi >= 0)
			p[n++] = (struct pollfd){ .fd = mi, .events = POLLPRI };
		else
			timeout_ms = MIN(timeout_ms, 20); /* no mountinfo events: look again soon */
		p[n++] = (struct pollfd){ .fd = pidfd, .events = POLLIN };
		k = poll(p, (nfds_t)n, timeout_ms);
		if (k < 0 && errno != EINTR)
			return negative_errno();
		if (k > 0 && p[n - 1].revents) {
			info = mount_info_free(info);
			if (mount_find(mount_dir, &info) == 0 &&
			    strcmp(info->fstype, FUSE_FSTYPE) == 0)
				return 0;
			return -ECHILD;
		}
	}
}

static char *log_path_for(const char *mount_dir)
{
	char *s = NULL;

	if (asprintf(&s, "%s.log", mount_dir) < 0)
		return NULL;
	return s;
}

/* Undo of a failed map: everything that may exist, in reverse order, bounded. */
static void map_cleanup(const char *mount_dir, pid_t pid, const char *loop_device)
{
	struct kill_arg ka = { .pid = pid };
	struct path_arg a = { 0 };
	int r;

	snprintf(ka.mount_dir, sizeof(ka.mount_dir), "%s", mount_dir);
	if (loop_device) {
		snprintf(a.path, sizeof(a.path), "%s", loop_device);
		(void)bounded_call(detach_call, &a, sizeof(a), KILL_WAIT_USEC, kill_cb, &ka,
		                   KILL_WAIT_USEC, NULL);
	}
	snprintf(a.path, sizeof(a.path), "%s", mount_dir);
	a.lazy = true;
	(void)bounded_call(umount_call, &a, sizeof(a), KILL_WAIT_USEC, kill_cb, &ka, KILL_WAIT_USEC,
	                   NULL);
	if (pid > 0) {
		r = exec_pid_wait_exit(pid, KILL_WAIT_USEC, NULL);
		if (r == -ETIMEDOUT) {
			(void)mapper_fuse_kill(mount_dir, pid);
			(void)exec_pid_wait_exit(pid, KILL_WAIT_USEC, NULL);
		}
	}
	if (mount_is_mountpoint(mount_dir) == 0)
		(void)rmdir(mount_dir);
}

static int unmap_steps(const char *mount_dir, const char *image_path, const char *log_path,
                       pid_t pid, const char *loop_device, uint64_t deadline, bool *was_forced,
                       char **ret_reason);

/*
 * mount_dir is ours by construction (derived from the volume id under the plugin's state
 * directory, and the caller holds the volume's lock): an rbd-fuse mount found there is what a
 * plugin killed mid-map left behind (its daemon mounted after the state was written, or after the
 * rollback looked). It is undone like a mapping, so that a retry converges. Any other mount there
 * is refused.
 */
static int prepare_mount_dir(const char *mount_dir, const char *image_path, const char *log_path,
                             uint64_t deadline, char **ret_reason)
{
	_cleanup_(mount_info_freep) struct mount_info *info = NULL;
	_cleanup_free_ char *parent = strdup(mount_dir);
	bool forced = false;
	char *slash;
	int r;

	if (!parent)
		return -ENOMEM;
	slash = strrchr(parent, '/');
	if (slash && slash != parent) {
		*slash = 0;
		r = fileio_mkdir_p(parent, 0700);
		if (r < 0) {
			reason_set(ret_reason, "rbd-fuse: cannot create %s: %s", parent,
			           strerror(-r));
			return r;
		}
	}
	r = mount_is_mountpoint(mount_dir);
	if (r < 0)
		return r;
	if (r > 0 && mount_find(mount_dir, &info) == 0 && strcmp(info->fstype, FUSE_FSTYPE) == 0) {
		log_info("Undoing the rbd-fuse mount a killed stage left on %s", mount_dir);
		r = unmap_steps(mount_dir, image_path, log_path, 0, NULL, deadline, &forced,
		                ret_reason);
		if (r < 0)
			return r;
		r = mount_is_mountpoint(mount_dir);
		if (r < 0)
			return r;
	}
	if (r > 0) {
		reason_set(ret_reason, "rbd-fuse: %s is already mounted", mount_dir);
		return -EBUSY;
	}
	if (mkdir(mount_dir, 0700) < 0 && errno != EEXIST) {
		r = negative_errno();
		reason_set(ret_reason, "rbd-fuse: cannot create %s: %s", mount_dir, strerror(-r));
		return r;
	}
	return 0;
}

/*
 * Starts rbd-fuse for p on mount_dir, logging to log_path. *ret_key_fd is the key's memfd, which
 * the child holds as fd 3 for its whole life: the caller wipes it once the child has read it.
 * Names go in the "--name=value" form, which neither Ceph's argument parser nor FUSE's reads as
 * anything but the value.
 */
static int spawn_daemon(const struct mapper_params *p, const char *mount_dir, const char *log_path,
                        uint64_t timeout, pid_t *ret_pid, int *ret_key_fd, char **ret_reason)
{
	_cleanup_free_ char *log_arg = NULL, *timeout_arg = NULL, *pool_arg = NULL, *ns_arg = NULL,
	                    *image_arg = NULL;
	_cleanup_close_ int key_fd = -EBADF;
	struct exec_fd key = { .child_fd = 3 };
	struct exec_options opts = { 0 };
	char *argv[FUSE_ARGS_MAX];
	size_t n;
	int r;

	if (asprintf(&log_arg, "--log-file=%s", log_path) < 0 ||
	    asprintf(&timeout_arg, "--client-mount-timeout=%llu",
	             (unsigned long long)MAX(timeout / USEC_PER_SEC, 1ULL)) < 0 ||
	    asprintf(&pool_arg, "--poolname=%s", p->pool) < 0 ||
	    asprintf(&image_arg, "--image=%s", p->image) < 0)
		return -ENOMEM;
	n = mapper_ceph_argv(argv, "rbd-fuse", p, log_arg);
	argv[n++] = timeout_arg;
	/* "rbd" is rbd-fuse's default pool, given without --poolname: Debian 13's rbd-fuse (Ceph
	 * 18.2 on libfuse 3.17) dies in fuse_opt_parse() on --poolname= and --namespace= (libfuse
	 * frees the string literal rbd-fuse keeps as their default), so there only the default
	 * pool and namespace can be used (README, "Ceph releases tested"). */
	if (strcmp(p->pool, "rbd") != 0)
		argv[n++] = pool_arg;
	if (!isempty(p->rados_namespace)) {
		if (asprintf(&ns_arg, "--namespace=%s", p->rados_namespace) < 0)
			return -ENOMEM;
		argv[n++] = ns_arg;
	}
	argv[n++] = image_arg;
	argv[n++] = (char *)mount_dir;
	argv[n++] = (char *)"-f";
	argv[n] = NULL;

	r = mapper_key_fd_new(p->key, &key_fd);
	if (r < 0)
		return r;
	key.fd = key_fd;
	opts.fds = &key;
	opts.n_fds = 1;
	opts.log_path = log_path;
	r = exec_spawn_detached(argv, &opts, ret_pid);
	if (r < 0) {
		reason_set(ret_reason, "rbd-fuse: cannot start: %s", strerror(-r));
		return r;
	}
	/* Out of the plugin container's cgroup, so that it outlives the container. */
	(void)cgroup_escape_move(*ret_pid, "rbd-fuse");
	*ret_key_fd = TAKE_FD(key_fd);
	return 0;
}

/* Waits for the mount, then checks <mount_dir>/<image>: exists, regular, expected size. */
static int check_image(const struct mapper_params *p, const char *mount_dir, const char *image_path,
                       const char *log_path, pid_t pid, uint64_t timeout, uint64_t deadline,
                       char **ret_reason)
{
	_cleanup_free_ char *tail = NULL;
	struct kill_arg ka = { .pid = pid };
	struct path_arg sa = { 0 };
	bool aborted = false;
	uint64_t now;
	int r, status = -1;

	snprintf(ka.mount_dir, sizeof(ka.mount_dir), "%s", mount_dir);
	r = wait_mounted(mount_dir, pid, deadline);
	if (r == -ECHILD) {
		(void)exec_pid_wait_exit(pid, KILL_WAIT_USEC, &status);
		tail = log_tail(log_path);
		reason_set(ret_reason, "rbd-fuse exited (status %d) before mounting %s/%s: %s",
		           status, p->pool, p->image, tail ? tail : "no message");
		return log_error_code(tail);
	}
	if (r < 0) {
		tail = log_tail(log_path);
		reason_set(ret_reason, "rbd-fuse did not mount %s within %llus%s%s", mount_dir,
		           (unsigned long long)(timeout / USEC_PER_SEC), tail ? ": " : "",
		           strempty(tail));
		return r;
	}

	/* FUSE holds the stat until rbd-fuse has connected (or given up); a hung daemon is
	 * killed at the deadline, which makes the stat fail. */
	snprintf(sa.path, sizeof(sa.path), "%s", image_path);
	now = monotonic_usec();
	r = bounded_call(stat_call, &sa, sizeof(sa), deadline > now ? deadline - now : 1, kill_cb,
	                 &ka, KILL_WAIT_USEC, &aborted);
	if (r == -ENOENT) {
		reason_set(ret_reason, "rbd-fuse: image %s/%s%s%s not found", p->pool,
		           strempty(p->rados_namespace), isempty(p->rados_namespace) ? "" : "/",
		           p->image);
		return r;
	}
	if (aborted) {
		tail = log_tail(log_path);
		reason_set(ret_reason,
		           "rbd-fuse for %s/%s did not answer within %llus (cluster unreachable?), "
		           "killed%s%s",
		           p->pool, p->image, (unsigned long long)(timeout / USEC_PER_SEC),
		           tail ? ": " : "", strempty(tail));
		return -ETIMEDOUT;
	}
	if (r == -ENOTCONN || r == -ECONNABORTED) {
		/* Exit 91: the pool could not be opened; 90: no cluster connection. */
		(void)exec_pid_wait_exit(pid, KILL_WAIT_USEC, &status);
		tail = log_tail(log_path);
		reason_set(ret_reason, "rbd-fuse for %s/%s died after mounting (status %d%s): %s",
		           p->pool, p->image, status, status == 91 ? ", pool not found" : "",
		           tail ? tail : "no message");
		return status == 91 ? -ENOENT : log_error_code(tail);
	}
	if (r < 0) {
		reason_set(ret_reason, "rbd-fuse: %s is not usable: %s", image_path, strerror(-r));
		return r;
	}
	if (p->image_size > 0 ? sa.size != p->image_size : sa.size == 0) {
		reason_set(ret_reason, "rbd-fuse: %s has %llu bytes, expected %llu", image_path,
		           (unsigned long long)sa.size, (unsigned long long)p->image_size);
		return -EMEDIUMTYPE;
	}
	return 0;
}

int mapper_fuse_map(const struct mapper_params *p, const char *mount_dir,
                    struct mapper_fuse_mapping *ret, char **ret_reason)
{
	_cleanup_free_ char *log_path = NULL, *image_path = NULL, *loop_device = NULL;
	_cleanup_free_ char *dir_copy = NULL;
	_cleanup_close_ int key_fd = -EBADF;
	uint64_t timeout, deadline;
	pid_t pid = 0;
	int r;

	r = mapper_params_validate(p, ret_reason);
	if (r < 0)
		return r;
	if (!path_canonical_form(mount_dir)) {
		reason_set(ret_reason,
		           "rbd-fuse: mount directory must be a canonical absolute path");
		return -EINVAL;
	}
	r = options_map_check(MAPPER_FUSE, p->map_options, ret_reason);
	if (r < 0)
		return r;
	r = mapper_fuse_available(ret_reason);
	if (r < 0)
		return r;
	timeout = p->timeout_usec ? p->timeout_usec : MAPPER_TIMEOUT_DEFAULT_USEC;
	deadline = monotonic_usec() + timeout;
	log_path = log_path_for(mount_dir);
	dir_copy = strdup(mount_dir);
	if (!log_path || !dir_copy || asprintf(&image_path, "%s/%s", mount_dir, p->image) < 0)
		return -ENOMEM;
	r = prepare_mount_dir(mount_dir, image_path, log_path, deadline, ret_reason);
	if (r < 0)
		return r;
	(void)unlink(log_path);

	r = spawn_daemon(p, mount_dir, log_path, timeout, &pid, &key_fd, ret_reason);
	if (r == 0)
		failpoint("node-stage:fuse-spawned"); /* the daemon mounts after our death */
	if (r == 0)
		r = check_image(p, mount_dir, image_path, log_path, pid, timeout, deadline,
		                ret_reason);
	/* Mounted: it has read the key (at start-up, before mounting). Its fd 3 stays open as
	 * long as it runs; from now on it yields nothing. */
	if (r == 0) {
		r = mapper_key_fd_wipe(key_fd);
		if (r < 0)
			reason_set(ret_reason, "rbd-fuse: cannot wipe the key memfd: %s",
			           strerror(-r));
	}
	if (r == 0) {
		failpoint("node-stage:after-fuse-daemon");
		r = loop_attach(image_path, p->read_only, &loop_device);
		if (r < 0)
			reason_set(ret_reason, "cannot attach a loop device to %s: %s", image_path,
			           strerror(-r));
	}
	if (r < 0) {
		/* Whatever got started goes again: loop device, mount, daemon, dir, log. */
		map_cleanup(mount_dir, pid, loop_device);
		(void)unlink(log_path);
		return r;
	}

	log_debug("rbd-fuse pid %d serves %s/%s on %s, loop %s", (int)pid, p->pool, p->image,
	          mount_dir, loop_device);
	*ret = (struct mapper_fuse_mapping){
		.pid = pid,
		.mount_dir = TAKE_PTR(dir_copy),
		.image_path = TAKE_PTR(image_path),
		.loop_device = TAKE_PTR(loop_device),
	};
	return 0;
}

/* The steps of mapper_fuse_unmap(); *was_forced collects whether anything was killed. */
/*
 * A recorded daemon that already died is our zombie if we started it: reap it. Only a zombie
 * whose name is rbd-fuse is touched, so that a reused pid that belongs to an exec_run() child of
 * another thread is never reaped behind its back.
 */
static void reap_dead_daemon(pid_t pid)
{
	char path[64], buf[256], *paren;
	_cleanup_close_ int fd = -EBADF;
	ssize_t n;

	if (pid <= 0)
		return;
	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return;
	n = read(fd, buf, sizeof(buf) - 1);
	if (n <= 0)
		return;
	buf[n] = 0;
	/* "<pid> (<comm>) <state> ..." */
	paren = strrchr(buf, ')');
	if (!paren || paren[1] != ' ' || paren[2] != 'Z' || !strstr(buf, " (rbd-fuse) "))
		return;
	(void)waitpid(pid, NULL, WNOHANG);
}

static int unmap_steps(const char *mount_dir, const char *image_path, const char *log_path,
                       pid_t pid, const char *loop_device, uint64_t deadline, bool *was_forced,
                       char **ret_reason)
{
	_cleanup_free_ char *found = NULL;
	struct kill_arg ka = { 0 };
	struct path_arg a = { 0 };
	const char *loops[2] = { NULL, NULL };
	bool aborted = false;
	uint64_t now;
	int r;

	reap_dead_daemon(pid);
	pid = resolve_pid(mount_dir, pid);
	ka.pid = pid;
	snprintf(ka.mount_dir, sizeof(ka.mount_dir), "%s", mount_dir);

	/* 1. Loop devices on the image file: the recorded one if it is still ours, and any other
	 * (a crash between attach and recording it). Literal paths only: no stat into the mount. */
	if (loop_device) {
		_cleanup_free_ char *backing = NULL;

		if (loop_get_backing_file(loop_device, &backing) == 0 &&
		    strcmp(backing, image_path) == 0)
			loops[0] = loop_device;
	}
	if (loop_find_by_backing_file(image_path, &found) == 0 &&
	    (!loops[0] || strcmp(found, loops[0]) != 0))
		loops[1] = found;
	for (size_t i = 0; i < ELEMENTSOF(loops); i++) {
		if (!loops[i])
			continue;
		snprintf(a.path, sizeof(a.path), "%s", loops[i]);
		now = monotonic_usec();
		r = bounded_call(detach_call, &a, sizeof(a), deadline > now ? deadline - now : 1,
		                 kill_cb, &ka, KILL_WAIT_USEC, &aborted);
		*was_forced = *was_forced || aborted;
		if (r == -EBUSY) {
			reason_set(ret_reason,
			           "loop device %s on %s is still in use (mounted or open)",
			           loops[i], image_path);
			return r;
		}
		if (r < 0) {
			reason_set(ret_reason, "cannot detach loop device %s: %s", loops[i],
			           strerror(-r));
			return r;
		}
	}

	/* 2. The FUSE mount. rbd-fuse exits by itself once unmounted. */
	snprintf(a.path, sizeof(a.path), "%s", mount_dir);
	a.lazy = false;
	now = monotonic_usec();
	r = bounded_call(umount_call, &a, sizeof(a), deadline > now ? deadline - now : 1, kill_cb,
	                 &ka, KILL_WAIT_USEC, &aborted);
	*was_forced = *was_forced || aborted;
	if (r == -EBUSY) {
		/* Someone holds a file in it. Killing the daemon ends their I/O; then detach. */
		(void)mapper_fuse_kill(mount_dir, pid);
		*was_forced = true;
		a.lazy = true;
		r = bounded_call(umount_call, &a, sizeof(a), KILL_WAIT_USEC, NULL, NULL, 0, NULL);
	}
	if (r < 0) {
		reason_set(ret_reason, "cannot unmount rbd-fuse at %s: %s", mount_dir,
		           strerror(-r));
		return r;
	}

	/* 3. The daemon. With a dead cluster its rbd_close() may hang: kill it at the bound. */
	if (pid > 0) {
		now = monotonic_usec();
		r = exec_pid_wait_exit(
		        pid, deadline > now ? MIN(deadline - now, EXIT_WAIT_USEC) : 1, NULL);
		if (r == -ETIMEDOUT) {
			(void)mapper_fuse_kill(mount_dir, pid);
			*was_forced = true;
			r = exec_pid_wait_exit(pid, KILL_WAIT_USEC, NULL);
		}
		if (r < 0) {
			reason_set(ret_reason, "rbd-fuse pid %d does not exit, even after SIGKILL",
			           (int)pid);
			return r;
		}
	}
	/* A daemon that was still starting when step 2 looked may have mounted since (and been
	 * killed above): its mount goes too, lazily, as nothing answers behind it any more. */
	if (mount_is_mountpoint(mount_dir) > 0) {
		snprintf(a.path, sizeof(a.path), "%s", mount_dir);
		a.lazy = true;
		r = bounded_call(umount_call, &a, sizeof(a), KILL_WAIT_USEC, NULL, NULL, 0, NULL);
		if (r < 0) {
			reason_set(ret_reason, "cannot unmount rbd-fuse at %s: %s", mount_dir,
			           strerror(-r));
			return r;
		}
	}

	/* 4. The empty directory and the log. rmdir() never removes files. */
	if (mount_is_mountpoint(mount_dir) == 0 && rmdir(mount_dir) < 0 && errno != ENOENT)
		log_debug_errno(negative_errno(), "Cannot remove %s: %m", mount_dir);
	(void)unlink(log_path);
	log_debug("rbd-fuse mapping on %s undone%s", mount_dir, *was_forced ? " (forced)" : "");
	return 0;
}

int mapper_fuse_unmap(const char *mount_dir, const char *image, pid_t pid, const char *loop_device,
                      uint64_t timeout_usec, bool *forced, char **ret_reason)
{
	_cleanup_free_ char *image_path = NULL, *log_path = NULL;
	bool was_forced = false;
	int r;

	if (forced)
		*forced = false;
	if (!path_canonical_form(mount_dir) || isempty(image) || strchr(image, '/'))
		return -EINVAL;
	if (timeout_usec == 0)
		timeout_usec = MAPPER_TIMEOUT_DEFAULT_USEC;
	if (asprintf(&image_path, "%s/%s", mount_dir, image) < 0)
		return -ENOMEM;
	log_path = log_path_for(mount_dir);
	if (!log_path)
		return -ENOMEM;
	r = unmap_steps(mount_dir, image_path, log_path, pid, loop_device,
	                monotonic_usec() + timeout_usec, &was_forced, ret_reason);
	cgroup_escape_sweep();
	if (forced)
		*forced = was_forced;
	return r;
}

int mapper_fuse_check(const char *mount_dir, const char *image, pid_t pid,
                      struct mapper_fuse_status *ret_status)
{
	_cleanup_(mount_info_freep) struct mount_info *info = NULL;
	_cleanup_free_ char *image_path = NULL, *loop = NULL;
	struct mapper_fuse_status st = { 0 };

	if (!path_canonical_form(mount_dir) || isempty(image))
		return -EINVAL;
	if (asprintf(&image_path, "%s/%s", mount_dir, image) < 0)
		return -ENOMEM;
	st.pid = resolve_pid(mount_dir, pid);
	st.mounted = mount_find(mount_dir, &info) == 0 && strcmp(info->fstype, FUSE_FSTYPE) == 0;
	/* A plugin killed during the start-up may have left the key readable in the daemon's
	 * fd 3; once it has mounted, it has read the key. */
	if (st.pid > 0 && st.mounted)
		(void)mapper_key_wipe_pid(st.pid, 3);
	if (loop_find_by_backing_file(image_path, &loop) == 0) {
		st.loop_attached = true;
		snprintf(st.loop_device, sizeof(st.loop_device), "%s", loop);
	}
	*ret_status = st;
	return 0;
}

/* ---- the mapper's ops and state ---- */

#define REFRESH_POLL_MS 100

/* What the state file keeps of a rbd-fuse mapping, as {"fuse": {"pid": N, "mount_dir": "..."}}. */
struct fuse_state {
	pid_t pid;       /* 0 until the daemon runs (or when unknown) */
	char *mount_dir; /* <realpath(state_dir)>/fuse/<sha256(volume id)> */
};

static void *fuse_state_free(void *p)
{
	struct fuse_state *s = p;

	if (s) {
		free(s->mount_dir);
		free(s);
	}
	return NULL;
}

static int fuse_state_new(const char *state_dir, const char *volume_id, void **ret_state)
{
	_cleanup_free_ char *real = realpath(state_dir, NULL);
	char hex[SHA256_HEX_SIZE];
	struct fuse_state *s;

	if (!real)
		return negative_errno();
	s = calloc(1, sizeof(*s));
	if (!s)
		return -ENOMEM;
	sha256_hex(volume_id, strlen(volume_id), hex);
	if (asprintf(&s->mount_dir, "%s/fuse/%s", real, hex) < 0) {
		free(s);
		return -ENOMEM;
	}
	*ret_state = s;
	return 0;
}

static int fuse_state_save(const void *p, struct json_object *o)
{
	const struct fuse_state *s = p;
	json_object *f;

	if (!s)
		return 0;
	f = json_object_new_object();
	if (!f)
		return -ENOMEM;
	json_object_object_add(f, "pid", json_object_new_int(s->pid));
	if (s->mount_dir)
		json_object_object_add(f, "mount_dir", json_object_new_string(s->mount_dir));
	json_object_object_add(o, "fuse", f);
	return 0;
}

static int fuse_state_load(struct json_object *o, void **ret_state)
{
	json_object *f, *v;
	struct fuse_state *s;

	/* A rbd-fuse mapping without its mount directory cannot be undone: not a valid state. */
	if (!json_object_object_get_ex(o, "fuse", &f) ||
	    !json_object_object_get_ex(f, "mount_dir", &v) ||
	    !json_object_is_type(v, json_type_string))
		return -EINVAL;
	s = calloc(1, sizeof(*s));
	if (!s)
		return -ENOMEM;
	s->mount_dir = strdup(json_object_get_string(v));
	if (!s->mount_dir) {
		free(s);
		return -ENOMEM;
	}
	if (json_object_object_get_ex(f, "pid", &v))
		s->pid = (pid_t)json_object_get_int(v);
	*ret_state = s;
	return 0;
}

static int fuse_available(const char *root, char **ret_reason)
{
	return mapper_fuse_available(ret_reason);
}

static int fuse_map(const char *root, const struct mapper_params *p, void *state, char **ret_device,
                    char **ret_reason)
{
	struct fuse_state *s = state;
	struct mapper_fuse_mapping m = { 0 };
	int r;

	if (!s)
		return -EINVAL;
	r = mapper_fuse_map(p, s->mount_dir, &m, ret_reason);
	if (r < 0)
		return r;
	s->pid = m.pid;
	*ret_device = TAKE_PTR(m.loop_device);
	mapper_fuse_mapping_done(&m);
	return 0;
}

static bool fuse_alive(const struct mapper_mapping *m, char **why)
{
	const struct fuse_state *s = m->state;
	struct mapper_fuse_status fs;

	if (!s || mapper_fuse_check(s->mount_dir, m->image, s->pid, &fs) < 0) {
		reason_set(why, "cannot inspect the rbd-fuse mapping");
		return false;
	}
	if (fs.pid <= 0) {
		reason_set(why, "rbd-fuse for %s/%s is not running", m->pool, m->image);
		return false;
	}
	if (!fs.mounted) {
		reason_set(why, "rbd-fuse mount %s is gone", s->mount_dir);
		return false;
	}
	if (!fs.loop_attached || !m->device || strcmp(fs.loop_device, m->device) != 0) {
		reason_set(why, "loop device %s is no longer attached to the image",
		           strempty(m->device));
		return false;
	}
	return true;
}

static int fuse_unmap(const struct mapper_mapping *m, uint64_t timeout_usec, bool *forced,
                      char **ret_reason)
{
	const struct fuse_state *s = m->state;

	if (!s)
		return -EINVAL;
	return mapper_fuse_unmap(s->mount_dir, m->image, s->pid, m->device, timeout_usec, forced,
	                         ret_reason);
}

static void fuse_abort(const struct mapper_mapping *m)
{
	const struct fuse_state *s = m->state;

	if (s)
		(void)mapper_fuse_kill(s->mount_dir, s->pid);
}

static int fuse_refresh_size(const struct mapper_mapping *m, uint64_t new_size,
                             uint64_t timeout_usec, char **ret_reason)
{
	const struct fuse_state *s = m->state;
	uint64_t deadline = monotonic_usec() + timeout_usec;
	struct path_arg a = { 0 };
	int r;

	if (!s || !m->device)
		return -EINVAL;
	/* rbd-fuse reports the new size once its attribute cache (1 s) expires; the loop
	 * device reads the size of the file's inode, so stat it until it shows. */
	snprintf(a.path, sizeof(a.path), "%s/%s", s->mount_dir, m->image);
	for (;;) {
		uint64_t now = monotonic_usec();

		r = bounded_call(stat_call, &a, sizeof(a), now < deadline ? deadline - now : 1,
		                 NULL, NULL, 0, NULL);
		if (r < 0) {
			reason_set(ret_reason, "cannot stat %s: %s", a.path, strerror(-r));
			return r;
		}
		if (new_size == 0 || a.size >= new_size)
			break;
		if (monotonic_usec() >= deadline) {
			reason_set(ret_reason, "rbd-fuse still shows %llu bytes, not %llu",
			           (unsigned long long)a.size, (unsigned long long)new_size);
			return -ETIMEDOUT;
		}
		(void)poll(NULL, 0, REFRESH_POLL_MS);
	}
	r = loop_refresh_capacity(m->device);
	if (r < 0) {
		reason_set(ret_reason, "cannot refresh the capacity of %s: %s", m->device,
		           strerror(-r));
		return r;
	}
	return 0;
}

static int fuse_refind(struct mapper_mapping *m)
{
	struct fuse_state *s = m->state;
	pid_t pid = 0;

	/* A daemon found under another pid (the recorded pid was lost in a crash). */
	if (!s || mapper_fuse_find_pid(s->mount_dir, &pid) < 0 || pid == s->pid)
		return 0;
	s->pid = pid;
	return 1;
}

static const char *fuse_own_mount(const void *state)
{
	const struct fuse_state *s = state;

	return s->mount_dir;
}

pid_t mapper_fuse_state_pid(const void *state)
{
	const struct fuse_state *s = state;

	return s ? s->pid : 0;
}

const char *mapper_fuse_state_mount_dir(const void *state)
{
	const struct fuse_state *s = state;

	return s ? s->mount_dir : NULL;
}

const struct mapper_ops mapper_fuse_ops = {
	.type = MAPPER_FUSE,
	.daemon = "rbd-fuse",
	.available = fuse_available,
	.state_new = fuse_state_new,
	.state_free = fuse_state_free,
	.state_save = fuse_state_save,
	.state_load = fuse_state_load,
	.map = fuse_map,
	.alive = fuse_alive,
	.unmap = fuse_unmap,
	.abort = fuse_abort,
	.refresh_size = fuse_refresh_size,
	.refind = fuse_refind,
	.own_mount = fuse_own_mount,
};
