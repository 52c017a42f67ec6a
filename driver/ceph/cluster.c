/* SPDX-License-Identifier: Apache-2.0 */
#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <json-c/json.h>
#include <rados/librados.h>

#include "driver/base/log.h"
#include "driver/base/macro.h"
#include "driver/base/monotonic.h"
#include "driver/ceph/cluster.h"
#include "driver/ceph/cluster_ioctx.h"
#include "driver/ceph/volume_id.h"
#include "driver/ceph/ceph_lib.h" /* last: redirects the librados/librbd names */

#define MONITORS_MAX 1024
#define USER_MAX     64
#define KEY_MAX      256

struct cluster {
	atomic_uint n_ref;
	_Atomic uint64_t last_used_usec;
	rados_t rados;
	char *cluster_id;
	char *monitors;
	char *user;
	char *key; /* wiped before free */
	size_t key_len;
	struct cluster *next; /* cache list; protected by the cache lock */
};

struct cluster_cache {
	pthread_mutex_t lock;
	struct cluster *head; /* each linked entry holds one reference */
	size_t n;
	struct cluster_timeouts timeouts;
	uint64_t idle_usec;
};

static bool chars_in(const char *s, size_t max, const char *extra)
{
	size_t n = strnlen(s, max + 1);

	if (n == 0 || n > max)
		return false;
	for (size_t i = 0; i < n; i++) {
		char ch = s[i];
		if ((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
		    (ch >= '0' && ch <= '9'))
			continue;
		if (!strchr(extra, ch))
			return false;
	}
	return true;
}

static int credentials_validate(const struct cluster_credentials *cred)
{
	if (!cred || !cred->cluster_id || !cred->monitors || !cred->user || !cred->key)
		return -EINVAL;
	if (!volume_id_cluster_id_valid(cred->cluster_id))
		return -EINVAL;
	/* Addresses, addrvecs and host names: "[v2:1.2.3.4:3300/0,v1:...]", "host:6789,...". */
	if (!chars_in(cred->monitors, MONITORS_MAX, ".:,;[]/_- "))
		return -EINVAL;
	if (!chars_in(cred->user, USER_MAX, "._-"))
		return -EINVAL;
	if (!chars_in(cred->key, KEY_MAX, "+/="))
		return -EINVAL;
	return 0;
}

static void free_key(struct cluster *c)
{
	if (!c->key)
		return;
	explicit_bzero(c->key, c->key_len);
	free(c->key);
	c->key = NULL;
	c->key_len = 0;
}

static void cluster_destroy(struct cluster *c)
{
	if (c->rados)
		rados_shutdown(c->rados);
	free_key(c);
	free(c->cluster_id);
	free(c->monitors);
	free(c->user);
	free(c);
}

/* Sets one option; the value is never logged (it may be the key). */
static int conf_set(rados_t r, const char *option, const char *value)
{
	int k = rados_conf_set(r, option, value);

	if (k < 0)
		return log_debug_errno(k, "rados_conf_set(%s) failed: %m", option);
	return 0;
}

static int conf_set_uint(rados_t r, const char *option, unsigned value)
{
	char buf[32];

	snprintf(buf, sizeof(buf), "%u", value);
	return conf_set(r, option, buf);
}

/* Configures and connects c->rados (created here). On failure the caller destroys c. */
static int cluster_open(struct cluster *c, const struct cluster_timeouts *t)
{
	_cleanup_free_ char *entity = NULL;
	uint64_t start;
	int r;

	if (asprintf(&entity, "client.%s", c->user) < 0) {
		entity = NULL;
		return -ENOMEM;
	}
	/* rados_create2() reads no file and no environment; only rados_conf_read_file() or
	 * rados_conf_parse_env() would, and we call neither. */
	r = rados_create2(&c->rados, "ceph", entity, 0);
	if (r < 0) {
		c->rados = NULL;
		return log_debug_errno(r, "rados_create2(%s) failed: %m", entity);
	}
	if ((r = conf_set(c->rados, "mon_host", c->monitors)) < 0 ||
	    (r = conf_set(c->rados, "key", c->key)) < 0 ||
	    (r = conf_set(c->rados, "keyring", "")) < 0 ||
	    (r = conf_set(c->rados, "admin_socket", "")) < 0 ||
	    (r = conf_set(c->rados, "log_to_stderr", "false")) < 0 ||
	    (r = conf_set(c->rados, "err_to_stderr", "false")) < 0 ||
	    (r = conf_set(c->rados, "log_file", "")) < 0 ||
	    (r = conf_set_uint(c->rados, "client_mount_timeout", MAX(t->connect_sec, 1u))) < 0 ||
	    (r = conf_set_uint(c->rados, "rados_mon_op_timeout", MAX(t->mon_op_sec, 1u))) < 0 ||
	    (r = conf_set_uint(c->rados, "rados_osd_op_timeout", MAX(t->osd_op_sec, 1u))) < 0)
		return r;

	start = monotonic_usec();
	r = rados_connect(c->rados);
	if (r < 0) {
		log_debug_errno(r, "Connecting to cluster %s (%s) as %s failed after %llu ms: %m",
		                c->cluster_id, c->monitors, entity,
		                (unsigned long long)((monotonic_usec() - start) / 1000));
		return r == -EPERM ? -EACCES : r;
	}
	log_debug("Connected to cluster %s (%s) as %s in %llu ms", c->cluster_id, c->monitors,
	          entity, (unsigned long long)((monotonic_usec() - start) / 1000));
	return 0;
}

int cluster_connect(const struct cluster_credentials *cred, const struct cluster_timeouts *timeouts,
                    struct cluster **ret)
{
	struct cluster_timeouts t = timeouts ? *timeouts : CLUSTER_TIMEOUTS_DEFAULT;
	struct cluster *c;
	int r;

	r = credentials_validate(cred);
	if (r < 0)
		return r;
	/* The first connection of the process loads librados/librbd (every other librados call
	 * needs a connection, so this is the one place to do it). */
	r = ceph_lib_load();
	if (r < 0)
		return log_debug_errno(r,
		                       "Cannot connect to cluster %s without librados/librbd: %m",
		                       cred->cluster_id);

	c = calloc(1, sizeof(*c));
	if (!c)
		return -ENOMEM;
	atomic_init(&c->n_ref, 1);
	c->cluster_id = strdup(cred->cluster_id);
	c->monitors = strdup(cred->monitors);
	c->user = strdup(cred->user);
	c->key_len = strlen(cred->key);
	c->key = strdup(cred->key);
	r = c->cluster_id && c->monitors && c->user && c->key ? cluster_open(c, &t) : -ENOMEM;
	if (r < 0) {
		cluster_destroy(c);
		return r;
	}
	atomic_init(&c->last_used_usec, monotonic_usec());
	*ret = c;
	return 0;
}

struct cluster *cluster_ref(struct cluster *c)
{
	if (c)
		atomic_fetch_add(&c->n_ref, 1);
	return c;
}

struct cluster *cluster_unref(struct cluster *c)
{
	if (!c)
		return NULL;
	atomic_store(&c->last_used_usec, monotonic_usec());
	if (atomic_fetch_sub(&c->n_ref, 1) == 1)
		cluster_destroy(c);
	return NULL;
}

const char *cluster_get_id(const struct cluster *c)
{
	return c->cluster_id;
}

int cluster_cache_new(const struct cluster_timeouts *timeouts, uint64_t idle_usec,
                      struct cluster_cache **ret)
{
	struct cluster_cache *cache = calloc(1, sizeof(*cache));

	if (!cache)
		return -ENOMEM;
	pthread_mutex_init(&cache->lock, NULL);
	cache->timeouts = timeouts ? *timeouts : CLUSTER_TIMEOUTS_DEFAULT;
	cache->idle_usec = idle_usec;
	*ret = cache;
	return 0;
}

struct cluster_cache *cluster_cache_free(struct cluster_cache *cache)
{
	struct cluster *c, *next;

	if (!cache)
		return NULL;
	for (c = cache->head; c; c = next) {
		next = c->next;
		c->next = NULL;
		cluster_unref(c);
	}
	pthread_mutex_destroy(&cache->lock);
	free(cache);
	return NULL;
}

/* Compares keys without an early exit on the first differing byte. */
static bool key_equal(const struct cluster *c, const char *key)
{
	size_t n = strlen(key);
	unsigned char diff = 0;

	if (n != c->key_len)
		return false;
	for (size_t i = 0; i < n; i++)
		diff |= (unsigned char)(c->key[i] ^ key[i]);
	return diff == 0;
}

static bool same_identity(const struct cluster *c, const struct cluster_credentials *cred)
{
	return strcmp(c->cluster_id, cred->cluster_id) == 0 &&
	       strcmp(c->monitors, cred->monitors) == 0 && strcmp(c->user, cred->user) == 0;
}

/* Finds a live entry for cred with the same key, takes a reference. Call with the lock held. */
static struct cluster *cache_find_locked(struct cluster_cache *cache,
                                         const struct cluster_credentials *cred)
{
	for (struct cluster *c = cache->head; c; c = c->next)
		if (same_identity(c, cred) && key_equal(c, cred->key)) {
			atomic_store(&c->last_used_usec, monotonic_usec());
			return cluster_ref(c);
		}
	return NULL;
}

int cluster_cache_get(struct cluster_cache *cache, const struct cluster_credentials *cred,
                      struct cluster **ret)
{
	struct cluster *c, *fresh = NULL, *stale = NULL, **p;
	int r;

	r = credentials_validate(cred);
	if (r < 0)
		return r;

	pthread_mutex_lock(&cache->lock);
	c = cache_find_locked(cache, cred);
	pthread_mutex_unlock(&cache->lock);
	if (c) {
		*ret = c;
		return 0;
	}

	/* Connect without the lock: this may take up to connect_sec. */
	r = cluster_connect(cred, &cache->timeouts, &fresh);
	if (r < 0)
		return r;

	pthread_mutex_lock(&cache->lock);
	c = cache_find_locked(cache, cred);
	if (!c) {
		/* Entries for the same identity with another key are stale: unlink them. */
		for (p = &cache->head; *p;) {
			struct cluster *e = *p;
			if (same_identity(e, cred)) {
				*p = e->next;
				e->next = stale;
				stale = e;
				cache->n--;
			} else
				p = &e->next;
		}
		c = cluster_ref(fresh); /* the cache's reference */
		c->next = cache->head;
		cache->head = c;
		cache->n++;
		fresh = NULL; /* the caller's reference is the one cluster_connect() gave */
	}
	pthread_mutex_unlock(&cache->lock);

	/* Lost a race with another thread connecting the same: use theirs, close ours. */
	if (fresh)
		cluster_unref(fresh);
	while (stale) {
		struct cluster *next = stale->next;
		stale->next = NULL;
		log_debug("Dropping cached connection to %s as %s: a new key was presented",
		          stale->cluster_id, stale->user);
		cluster_unref(stale);
		stale = next;
	}
	*ret = c;
	return 0;
}

unsigned cluster_cache_expire(struct cluster_cache *cache, uint64_t now_usec)
{
	struct cluster *expired = NULL, **p;
	unsigned n = 0;

	pthread_mutex_lock(&cache->lock);
	for (p = &cache->head; *p;) {
		struct cluster *e = *p;
		uint64_t last = atomic_load(&e->last_used_usec);
		/* n_ref == 1: only the cache holds it, and nobody can take a new reference
		 * without the lock we hold. */
		if (atomic_load(&e->n_ref) == 1 && last + cache->idle_usec <= now_usec) {
			*p = e->next;
			e->next = expired;
			expired = e;
			cache->n--;
		} else
			p = &e->next;
	}
	pthread_mutex_unlock(&cache->lock);

	/* rados_shutdown() joins threads: do it without the lock. */
	while (expired) {
		struct cluster *next = expired->next;
		expired->next = NULL;
		log_debug("Closing idle connection to %s as %s", expired->cluster_id,
		          expired->user);
		cluster_unref(expired);
		expired = next;
		n++;
	}
	return n;
}

void cluster_cache_drop(struct cluster_cache *cache, struct cluster *c)
{
	struct cluster *dropped = NULL, **p;

	if (!cache || !c)
		return;
	pthread_mutex_lock(&cache->lock);
	for (p = &cache->head; *p; p = &(*p)->next)
		if (*p == c) {
			*p = c->next;
			c->next = NULL;
			dropped = c;
			cache->n--;
			break;
		}
	pthread_mutex_unlock(&cache->lock);
	if (dropped) {
		log_debug("Dropping connection to %s as %s from the cache", c->cluster_id, c->user);
		cluster_unref(dropped); /* the cache's reference */
	}
}

size_t cluster_cache_size(struct cluster_cache *cache)
{
	size_t n;

	pthread_mutex_lock(&cache->lock);
	n = cache->n;
	pthread_mutex_unlock(&cache->lock);
	return n;
}

/*
 * Pool lookups without unbounded waits.
 *
 * librados resolves a pool it does not find in its OSD map by waiting for the latest map from
 * the monitors, with no timeout: measured on Ceph 16.2.15, rados_pool_lookup() of a missing
 * pool (and so rados_ioctx_create() of one, and rados_ioctx_create2()/
 * rados_pool_reverse_lookup() of a missing id) blocked for minutes once the monitors had
 * stopped answering, although rados_mon_op_timeout was set. So: look in the local map first
 * (rados_pool_list() and lookups of names it lists never wait); on a miss, ask the monitors
 * with a mon command, which honours rados_mon_op_timeout; only when they list the pool (our map
 * is behind) wait for the latest map, from monitors that just answered.
 */

/* The pool names of the local OSD map: "a\0b\0\0" (malloc'ed). */
static int local_pool_names(struct cluster *c, char **ret)
{
	for (unsigned attempt = 0; attempt < 5; attempt++) {
		int need = rados_pool_list(c->rados, NULL, 0);
		char *buf;
		int got;

		if (need < 0)
			return need;
		buf = calloc((size_t)need + 2, 1);
		if (!buf)
			return -ENOMEM;
		got = rados_pool_list(c->rados, buf, (size_t)need + 2);
		if (got < 0) {
			free(buf);
			return got;
		}
		if (got <= need + 2) {
			*ret = buf;
			return 0;
		}
		free(buf); /* pools were added meanwhile */
	}
	return -EAGAIN;
}

/* Looks name up in the local map only. Returns the id, -ENOENT when it is not there. */
static int64_t local_pool_id(struct cluster *c, const char *names, const char *name)
{
	for (const char *p = names; *p; p += strlen(p) + 1)
		if (strcmp(p, name) == 0)
			return rados_pool_lookup(c->rados, name); /* listed: answered locally */
	return -ENOENT;
}

/*
 * Asks the monitors whether a pool exists, by name or (name == NULL) by id. Returns 1 if it
 * does, 0 if not; -ETIMEDOUT (rados_mon_op_timeout) or another error when they do not answer.
 */
static int mon_pool_exists(struct cluster *c, const char *name, int64_t id)
{
	const char *cmd[] = { "{\"prefix\": \"osd pool ls\", \"detail\": \"detail\", "
		              "\"format\": \"json\"}" };
	char *out = NULL, *outs = NULL;
	size_t outlen = 0, outslen = 0;
	struct json_tokener *tok;
	struct json_object *root;
	int r, found = 0;

	r = rados_mon_command(c->rados, cmd, 1, "", 0, &out, &outlen, &outs, &outslen);
	if (r < 0) {
		rados_buffer_free(out);
		rados_buffer_free(outs);
		return log_debug_errno(r, "Listing pools on the monitors failed: %m");
	}
	/* The reply is not NUL-terminated: parse exactly outlen bytes. */
	tok = json_tokener_new();
	root = tok && out && outlen <= INT_MAX ? json_tokener_parse_ex(tok, out, (int)outlen)
	                                       : NULL;
	json_tokener_free(tok);
	rados_buffer_free(out);
	rados_buffer_free(outs);
	if (!root || !json_object_is_type(root, json_type_array)) {
		json_object_put(root);
		return -EBADMSG;
	}
	for (size_t i = 0; i < json_object_array_length(root) && !found; i++) {
		struct json_object *pool = json_object_array_get_idx(root, i), *v;

		if (name) {
			if (json_object_object_get_ex(pool, "pool_name", &v) &&
			    strcmp(strempty(json_object_get_string(v)), name) == 0)
				found = 1;
		} else if (json_object_object_get_ex(pool, "pool_id", &v) &&
		           json_object_get_int64(v) == id)
			found = 1;
	}
	json_object_put(root);
	return found;
}

int cluster_pool_lookup(struct cluster *c, const char *pool, int64_t *ret_id)
{
	_cleanup_free_ char *names = NULL;
	int64_t id;
	int r;

	if (isempty(pool))
		return -EINVAL;
	r = local_pool_names(c, &names);
	if (r < 0)
		return r;
	id = local_pool_id(c, names, pool);
	if (id == -ENOENT) {
		r = mon_pool_exists(c, pool, -1);
		if (r < 0)
			return r;
		if (r == 0)
			return log_debug_errno(-ENOENT, "Pool %s does not exist", pool);
		/* It exists and our map is behind: the monitors just answered, so this wait
		 * ends. */
		r = rados_wait_for_latest_osdmap(c->rados);
		if (r < 0)
			return r;
		id = rados_pool_lookup(c->rados, pool);
	}
	if (id < 0)
		return log_debug_errno((int)id, "Looking up pool %s failed: %m", pool);
	*ret_id = id;
	return 0;
}

int cluster_pool_list(struct cluster *c, char ***ret_pools, size_t *ret_n)
{
	_cleanup_free_ char *names = NULL;
	char **pools;
	size_t n = 0, i = 0;
	int r;

	r = local_pool_names(c, &names);
	if (r < 0)
		return r;
	for (const char *p = names; *p; p += strlen(p) + 1)
		n++;
	pools = calloc(n + 1, sizeof(*pools));
	if (!pools)
		return -ENOMEM;
	for (const char *p = names; *p; p += strlen(p) + 1, i++) {
		pools[i] = strdup(p);
		if (!pools[i]) {
			for (size_t k = 0; k < i; k++)
				free(pools[k]);
			free(pools);
			return -ENOMEM;
		}
	}
	*ret_pools = pools;
	*ret_n = n;
	return 0;
}

int cluster_pool_name(struct cluster *c, int64_t pool_id, char **ret_name)
{
	_cleanup_free_ char *names = NULL;
	char *name;
	int r;

	if (pool_id < 0)
		return -ENOENT;
	r = local_pool_names(c, &names);
	if (r < 0)
		return r;
	for (const char *p = names; *p; p += strlen(p) + 1)
		if (rados_pool_lookup(c->rados, p) == pool_id) {
			name = strdup(p);
			if (!name)
				return -ENOMEM;
			*ret_name = name;
			return 0;
		}

	r = mon_pool_exists(c, NULL, pool_id);
	if (r < 0)
		return r;
	if (r == 0)
		return log_debug_errno(-ENOENT, "Pool id %lld does not exist", (long long)pool_id);
	r = rados_wait_for_latest_osdmap(c->rados);
	if (r < 0)
		return r;
	free(names);
	names = NULL;
	r = local_pool_names(c, &names);
	if (r < 0)
		return r;
	for (const char *p = names; *p; p += strlen(p) + 1)
		if (rados_pool_lookup(c->rados, p) == pool_id) {
			name = strdup(p);
			if (!name)
				return -ENOMEM;
			*ret_name = name;
			return 0;
		}
	return -ENOENT;
}

int cluster_ioctx_open(struct cluster *c, const char *pool, const char *rados_namespace,
                       rados_ioctx_t *ret)
{
	int64_t id;
	int r;

	/* Resolve the name first, with bounded waits (see above), then open by id. */
	r = cluster_pool_lookup(c, pool, &id);
	if (r < 0)
		return r;
	return cluster_ioctx_open_by_id(c, id, rados_namespace, ret);
}

int cluster_ioctx_open_for_id(struct cluster *c, const struct volume_id *id,
                              enum volume_id_kind kind, rados_ioctx_t *ret)
{
	if (!id)
		return -EINVAL;
	if (id->kind != kind)
		return -ENOENT;
	return cluster_ioctx_open_by_id(c, id->pool_id, id->rados_namespace, ret);
}

int cluster_ioctx_open_by_id(struct cluster *c, int64_t pool_id, const char *rados_namespace,
                             rados_ioctx_t *ret)
{
	_cleanup_free_ char *name = NULL;
	rados_ioctx_t io;
	int r;

	/* Makes sure the id is in the local map, so rados_ioctx_create2() does not wait. */
	r = cluster_pool_name(c, pool_id, &name);
	if (r < 0)
		return r;
	r = rados_ioctx_create2(c->rados, pool_id, &io);
	if (r < 0)
		return log_debug_errno(r, "Opening pool %s failed: %m", name);
	rados_ioctx_set_namespace(io, strempty(rados_namespace));
	*ret = io;
	return 0;
}

int cluster_ioctx_pool_name(rados_ioctx_t io, char **ret)
{
	char buf[512];
	int r;

	r = rados_ioctx_get_pool_name(io, buf, sizeof(buf));
	if (r < 0)
		return r;
	*ret = strdup(buf);
	return *ret ? 0 : -ENOMEM;
}

rados_ioctx_t cluster_ioctx_close(rados_ioctx_t io)
{
	if (io)
		rados_ioctx_destroy(io);
	return NULL;
}
