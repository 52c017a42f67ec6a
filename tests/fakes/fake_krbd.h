/* SPDX-License-Identifier: Apache-2.0 */
/*
 * FAKE of the rbd kernel module's sysfs interface, for hosts without the module (the
 * development machine has none). Header-only: test binaries are built from one .c file.
 *
 * It builds under a test directory ("root"):
 *   root/sys/bus/rbd/add_single_major     regular file; a watcher thread consumes each write
 *   root/sys/bus/rbd/remove_single_major  likewise
 *   root/sys/bus/rbd/supported_features   "0x..." when asked for
 *   root/sys/bus/rbd/devices/<id>/{pool,pool_ns,name,current_snap}
 *   root/dev/rbd<id>                      a regular file standing in for the device node
 * An add line "<mons> <options> <pool> <image> <snap>" creates the next id; a remove line
 * "<id>[ force]" deletes it. Unlike the kernel the fake acts after the write returns (a thread
 * notices it), and it cannot fail a write: errors of the real add (ENOENT, EACCES...) are not
 * simulated. The last add line (which holds the key) is kept in memory for the test to check,
 * and the file is truncated right away.
 */
#pragma once

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <sys/stat.h>
#include <unistd.h>

struct fake_krbd {
	char root[PATH_MAX];
	pthread_t thread;
	bool running;
	int inotify_fd;
	int stop_fd[2];
	pthread_mutex_t lock;
	/* behaviour, set before writing */
	bool no_devices; /* accept adds, never create a device: the map must time out */
	bool no_nodes;   /* create the sysfs device but never the /dev node */
	/* observations */
	char last_add[8192];
	char last_remove[64];
	int adds;
	int removes;
	int next_id;
};

static inline int fake_krbd_write_file(const char *path, const char *content)
{
	FILE *f = fopen(path, "we");

	if (!f)
		return -errno;
	fputs(content, f);
	return fclose(f) == 0 ? 0 : -errno;
}

static inline void fake_krbd_path(const struct fake_krbd *f, char *buf, size_t size,
                                  const char *rel)
{
	snprintf(buf, size, "%s%s", f->root, rel);
}

static inline void fake_krbd_add(struct fake_krbd *f, const char *line)
{
	char mons[1024], opts[4096], pool[256], image[256], snap[256], path[PATH_MAX + 400],
	        dir[PATH_MAX + 64];
	const char *ns = "";
	char *p;
	int id;

	if (sscanf(line, "%1023s %4095s %255s %255s %255s", mons, opts, pool, image, snap) != 5)
		return;
	p = strstr(opts, "_pool_ns=");
	if (p) {
		ns = p + 9;
		p = strchr(p, ',');
		if (p)
			*p = 0;
	}
	pthread_mutex_lock(&f->lock);
	f->adds++;
	id = f->next_id++;
	pthread_mutex_unlock(&f->lock);
	if (f->no_devices)
		return;
	/* Built aside and renamed into place: the kernel's device directory appears whole. */
	snprintf(dir, sizeof(dir), "%s/sys/bus/rbd/devices/.new-%d", f->root, id);
	mkdir(dir, 0755);
	snprintf(path, sizeof(path), "%s/pool", dir);
	fake_krbd_write_file(path, pool);
	snprintf(path, sizeof(path), "%s/pool_ns", dir);
	fake_krbd_write_file(path, ns);
	snprintf(path, sizeof(path), "%s/current_snap", dir);
	fake_krbd_write_file(path, snap);
	snprintf(path, sizeof(path), "%s/name", dir);
	fake_krbd_write_file(path, image);
	snprintf(path, sizeof(path), "%s/sys/bus/rbd/devices/%d", f->root, id);
	if (rename(dir, path) < 0)
		return;
	if (!f->no_nodes) {
		snprintf(path, sizeof(path), "%s/dev/rbd%d", f->root, id);
		fake_krbd_write_file(path, "");
	}
}

static inline int fake_krbd_rm_cb(const char *path, const struct stat *st, int flag, struct FTW *w)
{
	(void)st;
	(void)w;
	return flag == FTW_DP ? rmdir(path) : unlink(path);
}

static inline void fake_krbd_remove(struct fake_krbd *f, const char *line)
{
	char path[PATH_MAX + 64];
	int id;

	if (sscanf(line, "%d", &id) != 1)
		return;
	pthread_mutex_lock(&f->lock);
	f->removes++;
	pthread_mutex_unlock(&f->lock);
	snprintf(path, sizeof(path), "%s/dev/rbd%d", f->root, id);
	unlink(path);
	snprintf(path, sizeof(path), "%s/sys/bus/rbd/devices/%d", f->root, id);
	nftw(path, fake_krbd_rm_cb, 8, FTW_DEPTH | FTW_PHYS);
}

static inline void fake_krbd_consume(struct fake_krbd *f, const char *name)
{
	char path[PATH_MAX + 64], buf[8192] = "";
	ssize_t n;
	int fd;

	snprintf(path, sizeof(path), "%s/sys/bus/rbd/%s", f->root, name);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return;
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return;
	buf[n] = 0;
	if (truncate(path, 0) < 0)
		return;
	if (strcmp(name, "add_single_major") == 0) {
		pthread_mutex_lock(&f->lock);
		snprintf(f->last_add, sizeof(f->last_add), "%s", buf);
		pthread_mutex_unlock(&f->lock);
		fake_krbd_add(f, buf);
	} else {
		pthread_mutex_lock(&f->lock);
		snprintf(f->last_remove, sizeof(f->last_remove), "%s", buf);
		pthread_mutex_unlock(&f->lock);
		fake_krbd_remove(f, buf);
	}
	/* Whatever it held (a key) is gone from memory we do not keep. */
	memset(buf, 0, sizeof(buf));
}

static inline void *fake_krbd_thread(void *p)
{
	struct fake_krbd *f = p;
	char ev[4096] __attribute__((aligned(__alignof__(struct inotify_event))));

	for (;;) {
		struct pollfd pf[2] = { { .fd = f->inotify_fd, .events = POLLIN },
			                { .fd = f->stop_fd[0], .events = POLLIN } };
		ssize_t n;

		if (poll(pf, 2, -1) < 0 && errno != EINTR)
			break;
		if (pf[1].revents)
			break;
		n = read(f->inotify_fd, ev, sizeof(ev));
		for (char *q = ev; n > 0 && q < ev + n;) {
			struct inotify_event *e = (struct inotify_event *)q;

			if (e->len && (strcmp(e->name, "add_single_major") == 0 ||
			               strcmp(e->name, "remove_single_major") == 0))
				fake_krbd_consume(f, e->name);
			q += sizeof(*e) + e->len;
		}
	}
	return NULL;
}

/* Builds the tree under root and starts the watcher. supported_features 0: no such file. */
static inline int fake_krbd_start(struct fake_krbd *f, const char *root,
                                  uint64_t supported_features)
{
	char path[PATH_MAX + 64];
	const char *dirs[] = { "/sys", "/sys/bus", "/sys/bus/rbd", "/sys/bus/rbd/devices", "/dev" };

	memset(f, 0, sizeof(*f));
	snprintf(f->root, sizeof(f->root), "%s", root);
	pthread_mutex_init(&f->lock, NULL);
	for (size_t i = 0; i < sizeof(dirs) / sizeof(dirs[0]); i++) {
		fake_krbd_path(f, path, sizeof(path), dirs[i]);
		if (mkdir(path, 0755) < 0 && errno != EEXIST)
			return -errno;
	}
	fake_krbd_path(f, path, sizeof(path), "/sys/bus/rbd/add_single_major");
	fake_krbd_write_file(path, "");
	fake_krbd_path(f, path, sizeof(path), "/sys/bus/rbd/remove_single_major");
	fake_krbd_write_file(path, "");
	if (supported_features) {
		char v[32];

		snprintf(v, sizeof(v), "0x%llx\n", (unsigned long long)supported_features);
		fake_krbd_path(f, path, sizeof(path), "/sys/bus/rbd/supported_features");
		fake_krbd_write_file(path, v);
	}
	f->inotify_fd = inotify_init1(IN_CLOEXEC);
	if (f->inotify_fd < 0 || pipe2(f->stop_fd, O_CLOEXEC) < 0)
		return -errno;
	fake_krbd_path(f, path, sizeof(path), "/sys/bus/rbd");
	if (inotify_add_watch(f->inotify_fd, path, IN_CLOSE_WRITE) < 0)
		return -errno;
	if (pthread_create(&f->thread, NULL, fake_krbd_thread, f) != 0)
		return -EAGAIN;
	f->running = true;
	return 0;
}

static inline void fake_krbd_stop(struct fake_krbd *f)
{
	if (f->running) {
		(void)!write(f->stop_fd[1], "x", 1);
		pthread_join(f->thread, NULL);
		f->running = false;
	}
	close(f->inotify_fd);
	close(f->stop_fd[0]);
	close(f->stop_fd[1]);
	memset(f->last_add, 0, sizeof(f->last_add));
	pthread_mutex_destroy(&f->lock);
}

/* Pre-populates a mapping as if it existed before the test (id must be unused). */
static inline void fake_krbd_preload(struct fake_krbd *f, int id, const char *pool, const char *ns,
                                     const char *image)
{
	char line[1024];

	pthread_mutex_lock(&f->lock);
	if (f->next_id <= id)
		f->next_id = id;
	pthread_mutex_unlock(&f->lock);
	snprintf(line, sizeof(line), "1.2.3.4:6789 name=x,secret=y%s%s %s %s -",
	         ns && *ns ? ",_pool_ns=" : "", ns ? ns : "", pool, image);
	fake_krbd_add(f, line);
	pthread_mutex_lock(&f->lock);
	f->adds--; /* not a write by the code under test */
	pthread_mutex_unlock(&f->lock);
}
