/* SPDX-License-Identifier: Apache-2.0 */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <rados/librados.h>

#include "driver/base/failpoint.h"
#include "driver/base/log.h"
#include "driver/base/macro.h"
#include "driver/base/monotonic.h"
#include "driver/ceph/cluster_ioctx.h"
#include "driver/ceph/flatten.h"
#include "driver/ceph/image.h"
#include "driver/ceph/ceph_lib.h" /* last: redirects the librados/librbd names */

static bool deadline_none(uint64_t deadline_usec)
{
	return deadline_usec == 0 || deadline_usec == UINT64_MAX;
}

/*
 * A flatten that runs in a thread of its own, so that a call can stop waiting at its deadline
 * while the flatten goes on, and the retry can wait for the same flatten. In the table while it
 * runs. refs: the thread, and each caller waiting; the last one frees it.
 */
struct flatten_job {
	struct flatten_job *next;
	struct cluster *cluster; /* the thread's reference, dropped before done is set */
	int64_t pool_id;
	char *rados_namespace;
	char *image;
	bool done;
	int result;
	unsigned refs;
};

/* Process-global: see flatten.h. */
static pthread_mutex_t jobs_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t jobs_cond;
static pthread_once_t jobs_once = PTHREAD_ONCE_INIT;
static struct flatten_job *jobs;

static void jobs_init(void)
{
	pthread_condattr_t attr;

	pthread_condattr_init(&attr);
	pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
	pthread_cond_init(&jobs_cond, &attr);
	pthread_condattr_destroy(&attr);
}

static struct flatten_job *job_find(int64_t pool_id, const char *ns, const char *image)
{
	for (struct flatten_job *j = jobs; j; j = j->next)
		if (j->pool_id == pool_id && strcmp(j->rados_namespace, ns) == 0 &&
		    strcmp(j->image, image) == 0)
			return j;
	return NULL;
}

static void job_unlink(struct flatten_job *j)
{
	for (struct flatten_job **p = &jobs; *p; p = &(*p)->next)
		if (*p == j) {
			*p = j->next;
			j->next = NULL;
			return;
		}
}

/* Drops a reference; jobs_lock held. */
static void job_unref(struct flatten_job *j)
{
	if (--j->refs > 0)
		return;
	cluster_unref(j->cluster);
	free(j->rados_namespace);
	free(j->image);
	free(j);
}

static void *flatten_thread(void *arg)
{
	struct flatten_job *j = arg;
	rados_ioctx_t io = NULL;
	uint64_t t0 = monotonic_usec();
	int r;

	/* Test-only: a flatten that outlasts the call, whatever the machine's speed. */
	if (failpoint_armed("flatten:slow")) {
		struct timespec ts = { .tv_sec = 3 };

		nanosleep(&ts, NULL);
	}
	r = cluster_ioctx_open_by_id(j->cluster, j->pool_id, j->rados_namespace, &io);
	if (r >= 0) {
		r = image_flatten(io, j->image);
		cluster_ioctx_close(io);
	}
	if (r == -ENOENT)
		r = 0; /* gone: nothing hangs from a parent any more */
	log_debug("Flatten of %s finished after %.1fs: %d", j->image,
	          (double)(monotonic_usec() - t0) / 1e6, r);
	/* No librados state may outlive "done": a caller may fork right after it (tests). */
	j->cluster = cluster_unref(j->cluster);

	pthread_mutex_lock(&jobs_lock);
	job_unlink(j);
	j->done = true;
	j->result = r;
	pthread_cond_broadcast(&jobs_cond);
	job_unref(j);
	pthread_mutex_unlock(&jobs_lock);
	return NULL;
}

/* Starts a job for the image; jobs_lock held. */
static int job_start(struct cluster *c, int64_t pool_id, const char *ns, const char *image,
                     struct flatten_job **ret)
{
	struct flatten_job *j = calloc(1, sizeof(*j));
	pthread_attr_t attr;
	pthread_t thread;
	int r;

	if (!j)
		return -ENOMEM;
	j->pool_id = pool_id;
	j->rados_namespace = strdup(ns);
	j->image = strdup(image);
	if (!j->rados_namespace || !j->image) {
		free(j->rados_namespace);
		free(j->image);
		free(j);
		return -ENOMEM;
	}
	j->cluster = cluster_ref(c);
	j->refs = 1; /* the thread's */
	j->next = jobs;
	jobs = j;

	pthread_attr_init(&attr);
	pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
	r = pthread_create(&thread, &attr, flatten_thread, j);
	pthread_attr_destroy(&attr);
	if (r != 0) {
		job_unlink(j);
		job_unref(j);
		return -r;
	}
	*ret = j;
	return 0;
}

int flatten_join(struct cluster *c, int64_t pool_id, const char *rados_namespace, const char *image,
                 bool start, uint64_t deadline_usec)
{
	const char *ns = strempty(rados_namespace);
	struct flatten_job *j;
	bool done;
	int r = 0;

	if (!c || isempty(image))
		return -EINVAL;
	pthread_once(&jobs_once, jobs_init);
	pthread_mutex_lock(&jobs_lock);
	j = job_find(pool_id, ns, image);
	if (!j && !start) {
		pthread_mutex_unlock(&jobs_lock);
		return 0;
	}
	if (j)
		log_debug("Waiting for the running flatten of %s", image);
	else {
		r = job_start(c, pool_id, ns, image, &j);
		if (r < 0) {
			pthread_mutex_unlock(&jobs_lock);
			return log_debug_errno(r, "Cannot start a thread to flatten %s: %m", image);
		}
		log_debug("Flattening %s in the background", image);
	}
	j->refs++;
	while (!j->done) {
		struct timespec ts;

		if (deadline_none(deadline_usec)) {
			pthread_cond_wait(&jobs_cond, &jobs_lock);
			continue;
		}
		ts = (struct timespec){ .tv_sec = (time_t)(deadline_usec / 1000000),
			                .tv_nsec = (long)(deadline_usec % 1000000) * 1000 };
		if (pthread_cond_timedwait(&jobs_cond, &jobs_lock, &ts) == ETIMEDOUT)
			break;
	}
	done = j->done;
	r = j->result;
	job_unref(j);
	pthread_mutex_unlock(&jobs_lock);
	if (!done)
		return log_debug_errno(-EINPROGRESS, "Flatten of %s still running at the deadline",
		                       image);
	return r;
}
