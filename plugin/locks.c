/* SPDX-License-Identifier: Apache-2.0 */
#include <errno.h>
#include <stdio.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "driver/base/macro.h"
#include "plugin/call.h"
#include "plugin/locks.h"
#include "plugin/metrics.h"
#include "plugin/plugin.h"

struct lock_entry {
	char *key;
	const char *holder;
	uint64_t since;
};

struct locks {
	pthread_mutex_t mutex;
	struct lock_entry *entries;
	size_t n, cap;
};

struct locks *locks_new(void)
{
	struct locks *l = calloc(1, sizeof(*l));

	if (l)
		pthread_mutex_init(&l->mutex, NULL);
	return l;
}

struct locks *locks_free(struct locks *l)
{
	if (!l)
		return NULL;
	for (size_t i = 0; i < l->n; i++)
		free(l->entries[i].key);
	free(l->entries);
	pthread_mutex_destroy(&l->mutex);
	free(l);
	return NULL;
}

int locks_try(struct locks *l, const char *key, const char *holder, const char **ret_holder,
              uint64_t *ret_age_usec)
{
	char *copy;
	int r = 0;

	pthread_mutex_lock(&l->mutex);
	for (size_t i = 0; i < l->n; i++)
		if (strcmp(l->entries[i].key, key) == 0) {
			if (ret_holder)
				*ret_holder = l->entries[i].holder;
			if (ret_age_usec)
				*ret_age_usec = now_usec() - l->entries[i].since;
			r = -EAGAIN;
			goto out;
		}
	if (l->n == l->cap) {
		size_t cap = l->cap ? l->cap * 2 : 16;
		struct lock_entry *e = realloc(l->entries, cap * sizeof(*e));

		if (!e) {
			r = -ENOMEM;
			goto out;
		}
		l->entries = e;
		l->cap = cap;
	}
	copy = strdup(key);
	if (!copy) {
		r = -ENOMEM;
		goto out;
	}
	l->entries[l->n++] =
	        (struct lock_entry){ .key = copy, .holder = holder, .since = now_usec() };
out:
	pthread_mutex_unlock(&l->mutex);
	return r;
}

void locks_release(struct locks *l, const char *key)
{
	pthread_mutex_lock(&l->mutex);
	for (size_t i = 0; i < l->n; i++)
		if (strcmp(l->entries[i].key, key) == 0) {
			free(l->entries[i].key);
			l->entries[i] = l->entries[--l->n];
			break;
		}
	pthread_mutex_unlock(&l->mutex);
}

unsigned locks_count(struct locks *l)
{
	unsigned n;

	pthread_mutex_lock(&l->mutex);
	n = (unsigned)l->n;
	pthread_mutex_unlock(&l->mutex);
	return n;
}

unsigned locks_ages(struct locks *l, const char **ret_holders, uint64_t *ret_ages_usec,
                    unsigned max)
{
	uint64_t now = now_usec();
	unsigned n = 0;

	pthread_mutex_lock(&l->mutex);
	for (size_t i = 0; i < l->n && n < max; i++, n++) {
		ret_holders[n] = l->entries[i].holder;
		ret_ages_usec[n] = now - l->entries[i].since;
	}
	pthread_mutex_unlock(&l->mutex);
	return n;
}

int op_lock_take(struct call *c, struct op_lock *l, const char *prefix, const char *id,
                 const char *what)
{
	const char *holder = NULL;
	uint64_t age = 0;
	char *key = NULL;
	int r;

	if (asprintf(&key, "%s:%s", prefix, id) < 0)
		return -ENOMEM;
	r = locks_try(c->plugin->locks, key, c->method->name, &holder, &age);
	if (r == -EAGAIN) {
		free(key);
		metrics_lock_conflict(c->plugin->metrics, c->method->index);
		return call_fail(
		        c, STATUS_ABORTED,
		        "an operation on %s is already in progress (%s, running for %.1fs)", what,
		        holder ? holder : "?", (double)age / 1e6);
	}
	if (r < 0) {
		free(key);
		return r;
	}
	l->locks = c->plugin->locks;
	l->key = key;
	return 0;
}

void op_lock_release(struct op_lock *l)
{
	if (l->key) {
		locks_release(l->locks, l->key);
		free(l->key);
		l->key = NULL;
	}
}
