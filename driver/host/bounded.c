/* SPDX-License-Identifier: Apache-2.0 */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "driver/base/exec.h"
#include "driver/base/log.h"
#include "driver/base/macro.h"
#include "driver/base/monotonic.h"
#include "driver/host/bounded.h"

struct call {
	pthread_mutex_t lock;
	pthread_cond_t cond;
	int refs; /* the waiter and the thread */
	bool done;
	int result;
	int (*fn)(void *arg);
	size_t arg_size;
	unsigned char arg[]; /* copy of the caller's argument */
};

static void call_unref(struct call *c)
{
	bool last;

	pthread_mutex_lock(&c->lock);
	last = --c->refs == 0;
	pthread_mutex_unlock(&c->lock);
	if (!last)
		return;
	pthread_cond_destroy(&c->cond);
	pthread_mutex_destroy(&c->lock);
	free(c);
}

static void *call_thread(void *p)
{
	struct call *c = p;
	int r = c->fn(c->arg);

	pthread_mutex_lock(&c->lock);
	c->result = r;
	c->done = true;
	pthread_cond_broadcast(&c->cond);
	pthread_mutex_unlock(&c->lock);
	call_unref(c);
	return NULL;
}

/* Waits until done or the monotonic deadline (usec). Returns true when done. */
static bool call_wait(struct call *c, uint64_t deadline)
{
	struct timespec ts = {
		.tv_sec = (time_t)(deadline / USEC_PER_SEC),
		.tv_nsec = (long)(deadline % USEC_PER_SEC) * 1000,
	};
	bool done;

	pthread_mutex_lock(&c->lock);
	while (!c->done) {
		int k = pthread_cond_timedwait(&c->cond, &c->lock, &ts);

		if (k == ETIMEDOUT)
			break;
	}
	done = c->done;
	pthread_mutex_unlock(&c->lock);
	return done;
}

int bounded_call(int (*fn)(void *arg), void *arg, size_t arg_size, uint64_t timeout_usec,
                 void (*abort_fn)(void *abort_arg), void *abort_arg, uint64_t grace_usec,
                 bool *aborted_out)
{
	pthread_condattr_t cattr;
	pthread_attr_t tattr;
	pthread_t t;
	struct call *c;
	bool aborted = false;
	int r;

	if (!fn || arg_size > BOUNDED_ARG_MAX || (arg_size > 0 && !arg))
		return -EINVAL;
	c = calloc(1, sizeof(*c) + arg_size);
	if (!c)
		return -ENOMEM;
	c->fn = fn;
	c->arg_size = arg_size;
	if (arg_size)
		memcpy(c->arg, arg, arg_size);
	c->refs = 2;
	pthread_mutex_init(&c->lock, NULL);
	pthread_condattr_init(&cattr);
	pthread_condattr_setclock(&cattr, CLOCK_MONOTONIC);
	pthread_cond_init(&c->cond, &cattr);
	pthread_condattr_destroy(&cattr);

	pthread_attr_init(&tattr);
	pthread_attr_setdetachstate(&tattr, PTHREAD_CREATE_DETACHED);
	r = -pthread_create(&t, &tattr, call_thread, c);
	pthread_attr_destroy(&tattr);
	if (r < 0) {
		c->refs = 1;
		call_unref(c);
		return r;
	}

	if (!call_wait(c, monotonic_usec() + timeout_usec)) {
		if (abort_fn) {
			log_debug("Bounded call timed out after %llums, aborting",
			          (unsigned long long)(timeout_usec / USEC_PER_MSEC));
			abort_fn(abort_arg);
			aborted = true;
		}
		if (!call_wait(c, monotonic_usec() + grace_usec)) {
			call_unref(c); /* the thread frees it when the call returns */
			if (aborted_out)
				*aborted_out = aborted;
			return -ETIMEDOUT;
		}
	}
	r = c->result;
	if (arg_size)
		memcpy(arg, c->arg, arg_size); /* the thread is done with it */
	call_unref(c);
	if (aborted_out)
		*aborted_out = aborted;
	return r;
}
