/* SPDX-License-Identifier: Apache-2.0 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "driver/ceph/cluster.h"
#include "plugin/ceph_access.h"
#include "plugin/config.h"
#include "plugin/plugin.h"
#include "plugin/shards.h"

void shards_free(struct shard *s, size_t n)
{
	for (size_t i = 0; s && i < n; i++) {
		free(s[i].cluster_id);
		free(s[i].pool);
		free(s[i].rados_namespace);
	}
	free(s);
}

static int shard_cmp(const void *a, const void *b)
{
	const struct shard *x = a, *y = b;
	int r = strcmp(x->cluster_id, y->cluster_id);

	if (r == 0)
		r = strcmp(x->pool, y->pool);
	if (r == 0)
		r = strcmp(x->rados_namespace, y->rados_namespace);
	return r;
}

static int shard_add(struct shard **s, size_t *n, size_t *cap, const char *cluster_id,
                     const char *pool, const char *ns)
{
	if (*n == *cap) {
		size_t new_cap = *cap ? *cap * 2 : 16;
		struct shard *g = reallocarray(*s, new_cap, sizeof(**s));

		if (!g)
			return -ENOMEM;
		*s = g;
		*cap = new_cap;
	}
	(*s)[*n] = (struct shard){ strdup(cluster_id), strdup(pool), strdup(strempty(ns)) };
	if (!(*s)[*n].cluster_id || !(*s)[*n].pool || !(*s)[*n].rados_namespace) {
		free((*s)[*n].cluster_id);
		free((*s)[*n].pool);
		free((*s)[*n].rados_namespace);
		return -ENOMEM;
	}
	(*n)++;
	return 0;
}

/*
 * The clusters to walk: those whose credentials a call brought since the start, and with
 * --controller-secrets-dir every configured one too (its credentials come from there, so a
 * restarted controller or another replica lists the same volumes). No duplicates.
 */
static int shard_clusters(struct call *c, char ***ret, size_t *ret_n)
{
	char **ids = NULL, **conf = NULL;
	size_t n = 0, n_conf = 0;
	int r;

	r = credentials_store_clusters(c->plugin->credentials, &ids, &n);
	if (r < 0)
		return r;
	if (c->plugin->opt.controller_secrets_dir && c->plugin->config)
		r = config_cluster_ids(c->plugin->config, &conf, &n_conf);
	if (r >= 0 && n_conf > 0) {
		char **g = reallocarray(ids, n + n_conf + 1, sizeof(char *));

		if (!g)
			r = -ENOMEM;
		else
			ids = g;
	}
	for (size_t i = 0; r >= 0 && i < n_conf; i++) {
		bool seen = false;

		for (size_t k = 0; k < n && !seen; k++)
			seen = strcmp(ids[k], conf[i]) == 0;
		if (seen) {
			free(conf[i]);
		} else {
			ids[n++] = conf[i];
			ids[n] = NULL;
		}
		conf[i] = NULL;
	}
	for (size_t i = 0; i < n_conf; i++)
		free(conf[i]);
	free(conf);
	if (r < 0) {
		for (size_t i = 0; i < n; i++)
			free(ids[i]);
		free(ids);
		return r;
	}
	*ret = ids;
	*ret_n = n;
	return 0;
}

int shards_all(struct call *c, struct shard **ret, size_t *ret_n)
{
	char **clusters = NULL;
	struct shard *s = NULL;
	size_t n_clusters = 0, n = 0, cap = 0;
	int r;

	r = shard_clusters(c, &clusters, &n_clusters);
	if (r < 0)
		return r;
	for (size_t i = 0; i < n_clusters; i++) {
		struct ceph_target t = { 0 };
		char **pools = NULL;
		size_t n_pools = 0;

		r = ceph_target_open(c, clusters[i], "cluster", STATUS_NOT_FOUND, NULL, 0, false,
		                     NULL, &t);
		if (r < 0) {
			log_warning_errno(r, "Skipping cluster '%s' in %s", clusters[i],
			                  c->method ? c->method->name : "a list");
			call_fail_clear(c);
			r = 0;
			continue;
		}
		r = cluster_pool_list(t.conn, &pools, &n_pools);
		for (size_t k = 0; r >= 0 && k < n_pools; k++) {
			r = shard_add(&s, &n, &cap, clusters[i], pools[k], "");
			if (r >= 0 && !isempty(t.cluster.rados_namespace))
				r = shard_add(&s, &n, &cap, clusters[i], pools[k],
				              t.cluster.rados_namespace);
		}
		for (size_t k = 0; k < n_pools; k++)
			free(pools[k]);
		free(pools);
		ceph_target_done(&t);
		if (r < 0)
			break;
	}
	for (size_t i = 0; i < n_clusters; i++)
		free(clusters[i]);
	free(clusters);
	if (r < 0) {
		shards_free(s, n);
		return r;
	}
	if (n > 1)
		qsort(s, n, sizeof(*s), shard_cmp);
	*ret = s;
	*ret_n = n;
	return 0;
}

/* Finds the shard a token names; its inner token goes to *ret_inner (call-owned). */
static int token_parse(struct call *c, const struct shard *shards, size_t n_shards,
                       const char *token, size_t *ret_index, const char **ret_inner)
{
	char *tok = call_strdup(c, token), *f[4];
	int nf = 0;

	if (!tok)
		return -ENOMEM;
	for (char *s = tok; s && nf < 4; nf++) {
		f[nf] = s;
		s = nf < 3 ? strchr(s, '|') : NULL;
		if (s)
			*s++ = 0;
	}
	if (nf != 4)
		return -EAGAIN;
	for (size_t i = 0; i < n_shards; i++)
		if (strcmp(shards[i].cluster_id, f[0]) == 0 && strcmp(shards[i].pool, f[1]) == 0 &&
		    strcmp(shards[i].rados_namespace, f[2]) == 0) {
			*ret_index = i;
			*ret_inner = f[3];
			return 0;
		}
	return -EAGAIN;
}

static char *token_format(struct call *c, const struct shard *s, const char *inner)
{
	return call_printf(c, "%s|%s|%s|%s", s->cluster_id, s->pool, s->rados_namespace,
	                   strempty(inner));
}

/*
 * Lists shard s from *token until the shard is done (*token NULL) or *listed reaches max (then
 * *token is the shard's next page, call-owned, or NULL when it happened to end there).
 */
static int walk_one(struct call *c, const struct shard *s, struct cluster *conn, const char **token,
                    size_t max, size_t *listed, const char *what, shard_page_fn page,
                    void *userdata)
{
	do {
		_cleanup_free_ char *next = NULL;
		size_t n = 0;
		int r;

		r = page(c, s, conn, *token, max - *listed, userdata, &n, &next);
		if (r == -ENOENT || r == -EPERM || r == -EACCES) {
			/* Pool gone, or not ours to read: nothing listed there. */
			*token = NULL;
			return 0;
		}
		if (r == -EAGAIN)
			return r;
		if (r < 0)
			return log_error_errno(r, "Failed to list %s in pool '%s': %m", what,
			                       s->pool);
		*listed += n;
		*token = NULL;
		if (next) {
			*token = call_strdup(c, next);
			if (!*token)
				return -ENOMEM;
		}
	} while (*token && *listed < max);
	return 0;
}

static int bad_token(struct call *c, const char *token)
{
	return call_fail(c, STATUS_ABORTED, "starting_token '%s' is not a token this driver issued",
	                 token);
}

int shards_walk(struct call *c, const struct shard *shards, size_t n_shards,
                const char *starting_token, size_t max, void *const *secrets, size_t n_secrets,
                const char *what, shard_page_fn page, void *userdata, char **ret_next_token)
{
	const char *inner = NULL;
	size_t start = 0, listed = 0;
	int r;

	*ret_next_token = NULL;
	if (!isempty(starting_token)) {
		r = token_parse(c, shards, n_shards, starting_token, &start, &inner);
		if (r == -EAGAIN)
			return bad_token(c, starting_token);
		if (r < 0)
			return r;
	}
	for (size_t i = start; i < n_shards && listed < max; i++) {
		struct ceph_target t = { 0 };
		const char *token = i == start ? inner : NULL;

		r = ceph_target_open(c, shards[i].cluster_id, "cluster", STATUS_NOT_FOUND, secrets,
		                     n_secrets, false, shards[i].rados_namespace, &t);
		if (r < 0)
			return r;
		r = walk_one(c, &shards[i], t.conn, &token, max, &listed, what, page, userdata);
		ceph_target_done(&t);
		if (r == -EAGAIN)
			return bad_token(c, starting_token);
		if (r < 0)
			return r;
		if (listed < max)
			continue;
		/* Full: the rest of this shard, or the next one from its start. */
		if (token)
			*ret_next_token = token_format(c, &shards[i], token);
		else if (i + 1 < n_shards)
			*ret_next_token = token_format(c, &shards[i + 1], NULL);
		if ((token || i + 1 < n_shards) && !*ret_next_token)
			return -ENOMEM;
	}
	return 0;
}
