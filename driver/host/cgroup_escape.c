/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Mapper daemons out of the node plugin container's cgroup: see cgroup_escape.h.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include "driver/base/fileio.h"
#include "driver/base/log.h"
#include "driver/base/macro.h"
#include "driver/host/cgroup_escape.h"

#define CGROUP_ROOT      "/sys/fs/cgroup"
#define PROC_CGROUP_MAX  (64 * 1024)
#define CGROUP_PROCS_MAX (4 * 1024 * 1024)
#define ESCAPE_NAME_MAX  32
#define ESCAPE_RETRIES   3

DEFINE_TRIVIAL_CLEANUP_FUNC(DIR *, closedir)

static bool name_valid(const char *name)
{
	size_t n = 0;

	if (isempty(name))
		return false;
	for (const char *c = name; *c; c++, n++)
		if (!((*c >= 'a' && *c <= 'z') || (*c >= '0' && *c <= '9') || *c == '-'))
			return false;
	return n <= ESCAPE_NAME_MAX;
}

/* The directory of a /proc/self/cgroup line's hierarchy below root, or NULL when there is
 * none. controllers: "cpu,cpuacct", "name=systemd", or "" (cgroup v2). */
static char *hierarchy_dir(const char *root, const char *controllers)
{
	_cleanup_free_ char *path = NULL;
	struct stat st;
	const char *sub = controllers;

	if (isempty(controllers)) {
		/* v2: /sys/fs/cgroup itself (unified), or /sys/fs/cgroup/unified (hybrid). */
		if (asprintf(&path, "%s/cgroup.controllers", root) < 0)
			return NULL;
		if (access(path, F_OK) == 0) {
			free(path);
			return strdup(root);
		}
		sub = "unified";
	} else if (strncmp(controllers, "name=", strlen("name=")) == 0) {
		sub = controllers + strlen("name=");
	}
	if (strchr(sub, '/') || strcmp(sub, ".") == 0 || strcmp(sub, "..") == 0)
		return NULL;
	free(path);
	path = NULL;
	if (asprintf(&path, "%s/%s", root, sub) < 0)
		return NULL;
	if (lstat(path, &st) < 0 || !S_ISDIR(st.st_mode))
		return NULL;
	return TAKE_PTR(path);
}

/* true when the pid is listed in dir/cgroup.procs. */
static bool procs_has(const char *dir, pid_t pid)
{
	_cleanup_free_ char *path = NULL, *data = NULL;
	size_t size = 0;

	if (asprintf(&path, "%s/cgroup.procs", dir) < 0)
		return false;
	if (fileio_read_full(path, CGROUP_PROCS_MAX, &data, &size) < 0)
		return false;
	for (char *line = data, *next; line && *line; line = next) {
		next = strchr(line, '\n');
		if (next)
			*next++ = 0;
		if (strtol(line, NULL, 10) == (long)pid)
			return true;
	}
	return false;
}

/* cpuset cgroups start with empty cpus and mems, where no task may go: copy the parent's. */
static int cpuset_inherit(const char *dir, const char *parent)
{
	static const char *const files[] = { "cpuset.cpus", "cpuset.mems" };

	for (size_t i = 0; i < ELEMENTSOF(files); i++) {
		_cleanup_free_ char *src = NULL, *dst = NULL, *value = NULL, *cur = NULL;
		int r;

		if (asprintf(&src, "%s/%s", parent, files[i]) < 0 ||
		    asprintf(&dst, "%s/%s", dir, files[i]) < 0)
			return -ENOMEM;
		if (access(dst, F_OK) < 0)
			return 0; /* not a cpuset hierarchy */
		if (fileio_read_sysfs(dst, &cur) == 0 && !isempty(cur))
			continue;
		r = fileio_read_sysfs(src, &value);
		if (r < 0)
			return r;
		r = fileio_write_sysfs(dst, value, strlen(value));
		if (r < 0)
			return r;
	}
	return 0;
}

/* Creates hier/PARENT/leaf and writes pid into it. */
static int move_one(const char *hier, const char *leaf, pid_t pid)
{
	_cleanup_free_ char *parent = NULL, *dir = NULL, *procs = NULL;
	char buf[32];
	int r = 0;

	if (asprintf(&parent, "%s/%s", hier, CGROUP_ESCAPE_PARENT) < 0 ||
	    asprintf(&dir, "%s/%s", parent, leaf) < 0 ||
	    asprintf(&procs, "%s/cgroup.procs", dir) < 0)
		return -ENOMEM;
	snprintf(buf, sizeof(buf), "%d\n", (int)pid);
	/* Another plugin's sweep may remove the empty cgroup between our mkdir and our write:
	 * try again. */
	for (int i = 0; i < ESCAPE_RETRIES; i++) {
		if (mkdir(parent, 0755) < 0 && errno != EEXIST)
			return negative_errno();
		r = cpuset_inherit(parent, hier);
		if (r < 0)
			return r;
		if (mkdir(dir, 0755) < 0 && errno != EEXIST)
			r = negative_errno();
		if (r == -ENOENT)
			continue;
		if (r < 0)
			return r;
		r = cpuset_inherit(dir, parent);
		if (r == -ENOENT)
			continue;
		if (r < 0)
			return r;
		r = fileio_write_sysfs(procs, buf, strlen(buf));
		if (r != -ENOENT)
			return r;
	}
	return r;
}

int cgroup_escape_move_at(const char *root, const char *proc_cgroup, pid_t pid, const char *name)
{
	_cleanup_free_ char *data = NULL, *leaf = NULL;
	size_t size = 0;
	int moved = 0, r;

	if (isempty(root) || isempty(proc_cgroup) || pid <= 0 || !name_valid(name))
		return -EINVAL;
	if (kill(pid, 0) < 0)
		return negative_errno();
	if (asprintf(&leaf, "%s-%d", name, (int)pid) < 0)
		return -ENOMEM;
	r = fileio_read_full(proc_cgroup, PROC_CGROUP_MAX, &data, &size);
	if (r < 0)
		return r;
	/* Lines are "ID:CONTROLLERS:PATH". */
	for (char *line = data, *next; line && *line; line = next) {
		_cleanup_free_ char *hier = NULL, *ours = NULL;
		char *controllers, *path;

		next = strchr(line, '\n');
		if (next)
			*next++ = 0;
		controllers = strchr(line, ':');
		if (!controllers)
			continue;
		controllers++;
		path = strchr(controllers, ':');
		if (!path)
			continue;
		*path++ = 0;
		/* At the root (a host process, or a cgroup namespace's root): nothing to escape
		 * from, or no way to know where the real root is. */
		if (path[0] != '/' || strcmp(path, "/") == 0 || strstr(path, "/.."))
			continue;
		hier = hierarchy_dir(root, controllers);
		if (!hier)
			continue;
		if (asprintf(&ours, "%s%s", hier, path) < 0)
			return -ENOMEM;
		if (!procs_has(ours, getpid())) {
			log_debug("cgroup %s: our cgroup %s is not seen through %s; not used",
			          controllers, path, hier);
			continue;
		}
		r = move_one(hier, leaf, pid);
		if (r < 0)
			return log_debug_errno(r, "Cannot move pid %d into %s/%s/%s: %m", (int)pid,
			                       hier, CGROUP_ESCAPE_PARENT, leaf);
		moved++;
	}
	log_debug("Moved pid %d into %s/%s in %d cgroup hierarchies", (int)pid,
	          CGROUP_ESCAPE_PARENT, leaf, moved);
	return moved;
}

int cgroup_escape_move(pid_t pid, const char *name)
{
	const char *on = secure_getenv(CGROUP_ESCAPE_ENV);

	if (!on || strcmp(on, "1") != 0)
		return 0;
	return cgroup_escape_move_at(CGROUP_ROOT, "/proc/self/cgroup", pid, name);
}

static void sweep_hierarchy(const char *hier)
{
	_cleanup_free_ char *parent = NULL;
	_cleanup_(closedirp) DIR *d = NULL;
	struct dirent *de;

	if (asprintf(&parent, "%s/%s", hier, CGROUP_ESCAPE_PARENT) < 0)
		return;
	d = opendir(parent);
	if (!d)
		return;
	while ((de = readdir(d))) {
		if (de->d_type != DT_DIR || !name_valid(de->d_name))
			continue;
		/* A cgroup with a process (or a child) refuses: EBUSY. */
		if (unlinkat(dirfd(d), de->d_name, AT_REMOVEDIR) < 0 && errno != EBUSY &&
		    errno != ENOENT)
			log_debug_errno(negative_errno(), "Cannot remove cgroup %s/%s: %m", parent,
			                de->d_name);
	}
}

void cgroup_escape_sweep_at(const char *root)
{
	_cleanup_(closedirp) DIR *d = NULL;
	struct dirent *de;

	if (isempty(root))
		return;
	sweep_hierarchy(root); /* cgroup v2 mounted at root */
	d = opendir(root);
	if (!d)
		return;
	while ((de = readdir(d))) {
		_cleanup_free_ char *hier = NULL;

		if (de->d_type != DT_DIR || de->d_name[0] == '.' ||
		    strcmp(de->d_name, CGROUP_ESCAPE_PARENT) == 0)
			continue;
		if (asprintf(&hier, "%s/%s", root, de->d_name) < 0)
			return;
		sweep_hierarchy(hier);
	}
}

void cgroup_escape_sweep(void)
{
	const char *on = secure_getenv(CGROUP_ESCAPE_ENV);

	if (!on || strcmp(on, "1") != 0)
		return;
	cgroup_escape_sweep_at(CGROUP_ROOT);
}
