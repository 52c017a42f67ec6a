/* SPDX-License-Identifier: Apache-2.0 */
/*
 * FAKE driver/ceph for fuzz_controller (see fake_ceph_driver.h): the same contracts as
 * driver/ceph/volume.h, snapshot.h, cluster.h and qos.h's I/O half, kept in two small arrays. Pages
 * of lists are one entry long past the first so that tokens are exercised.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "driver/ceph/cluster.h"
#include "driver/ceph/qos.h"
#include "driver/ceph/snapshot.h"
#include "driver/ceph/volume.h"
#include "tests/fuzz/fake_ceph_driver.h"

struct fake_volume {
	bool used;
	struct volume_id vid;
	char id[VOLUME_ID_MAX + 1];
	char name[1025];
	char pool[16];
	uint64_t size;
	char source[VOLUME_ID_MAX + 1];
	char node[VOLUME_NODE_MAX + 1];
	enum volume_access access;
	struct qos qos;
};

static struct fake_volume volumes[FAKE_CEPH_MAX];
static struct fake_volume snapshots[FAKE_CEPH_MAX];
static unsigned serial;
static char fake_cluster; /* what a struct cluster * points to */

void fake_ceph_reset(void)
{
	memset(volumes, 0, sizeof(volumes));
	memset(snapshots, 0, sizeof(snapshots));
	serial = 0;
}

/* ---- cluster.h ---- */

int cluster_cache_get(struct cluster_cache *cache, const struct cluster_credentials *cred,
                      struct cluster **ret)
{
	*ret = (struct cluster *)&fake_cluster;
	return 0;
}

struct cluster *cluster_ref(struct cluster *c)
{
	return c;
}

struct cluster *cluster_unref(struct cluster *c)
{
	return NULL;
}

int cluster_pool_lookup(struct cluster *c, const char *pool, int64_t *ret_id)
{
	if (strcmp(pool, "rbd") != 0 && strcmp(pool, "rbd2") != 0)
		return -ENOENT;
	*ret_id = strcmp(pool, "rbd") == 0 ? 1 : 2;
	return 0;
}

int cluster_pool_list(struct cluster *c, char ***ret_pools, size_t *ret_n)
{
	char **v = calloc(3, sizeof(char *));

	if (!v)
		return -ENOMEM;
	v[0] = strdup("rbd");
	v[1] = strdup("rbd2");
	if (!v[0] || !v[1]) {
		free(v[0]);
		free(v[1]);
		free(v);
		return -ENOMEM;
	}
	*ret_pools = v;
	*ret_n = 2;
	return 0;
}

int cluster_pool_name(struct cluster *c, int64_t pool_id, char **ret_name)
{
	char *s;

	if (pool_id != 1 && pool_id != 2)
		return -ENOENT;
	s = strdup(pool_id == 1 ? "rbd" : "rbd2");
	if (!s)
		return -ENOMEM;
	*ret_name = s;
	return 0;
}

/* ---- the tables ---- */

static struct fake_volume *find_id(struct fake_volume *t, const struct volume_id *id)
{
	char s[VOLUME_ID_MAX + 1];

	if (volume_id_encode(id, s) < 0)
		return NULL;
	for (size_t i = 0; i < FAKE_CEPH_MAX; i++)
		if (t[i].used && strcmp(t[i].id, s) == 0)
			return &t[i];
	return NULL;
}

static struct fake_volume *find_name(struct fake_volume *t, const char *name)
{
	for (size_t i = 0; i < FAKE_CEPH_MAX; i++)
		if (t[i].used && strcmp(t[i].name, name) == 0)
			return &t[i];
	return NULL;
}

static int add(struct fake_volume *t, enum volume_id_kind kind, const char *cluster_id,
               const char *pool, const char *ns, const char *name, struct fake_volume **ret)
{
	char uuid[VOLUME_ID_UUID_LEN + 1];
	int64_t pool_id;
	int r;

	if (strlen(name) >= sizeof(t->name))
		return -EINVAL;
	r = cluster_pool_lookup(NULL, pool, &pool_id);
	if (r < 0)
		return -EINVAL;
	for (size_t i = 0; i < FAKE_CEPH_MAX; i++) {
		if (t[i].used)
			continue;
		memset(&t[i], 0, sizeof(t[i]));
		snprintf(uuid, sizeof(uuid), "00000000-0000-4000-8000-%012x", ++serial);
		r = volume_id_make(kind, cluster_id, pool_id, ns, uuid, &t[i].vid);
		if (r < 0)
			return r;
		r = volume_id_encode(&t[i].vid, t[i].id);
		if (r < 0)
			return r;
		snprintf(t[i].name, sizeof(t[i].name), "%s", name);
		snprintf(t[i].pool, sizeof(t[i].pool), "%s", pool);
		t[i].used = true;
		*ret = &t[i];
		return 0;
	}
	return -ENOSPC;
}

static int volume_out(const struct fake_volume *f, struct volume *v)
{
	memset(v, 0, sizeof(*v));
	memcpy(v->id, f->id, sizeof(v->id));
	v->vid = f->vid;
	v->name = strdup(f->name);
	v->pool = strdup(f->pool);
	v->image = strdup(f->vid.uuid);
	v->features = strdup("layering");
	v->fingerprint = strdup("");
	v->source_id = f->source[0] ? strdup(f->source) : NULL;
	v->exclusive_node = f->node[0] && f->access == VOLUME_ACCESS_RW ? strdup(f->node) : NULL;
	v->size = v->requested_size = f->size;
	if (f->node[0]) {
		v->attachments = calloc(1, sizeof(*v->attachments));
		if (v->attachments) {
			v->n_attachments = 1;
			v->attachments[0].node = strdup(f->node);
			v->attachments[0].access = f->access;
		}
	}
	return 0;
}

static int volume_dup(const struct fake_volume *f, struct volume **ret)
{
	struct volume *v;

	if (!ret)
		return 0;
	v = calloc(1, sizeof(*v));
	if (!v)
		return -ENOMEM;
	volume_out(f, v);
	*ret = v;
	return 0;
}

static int snapshot_out(const struct fake_volume *f, struct snapshot *s)
{
	memset(s, 0, sizeof(*s));
	memcpy(s->id, f->id, sizeof(s->id));
	s->sid = f->vid;
	s->name = strdup(f->name);
	s->source_id = strdup(f->source);
	s->pool = strdup(f->pool);
	s->image = strdup(f->vid.uuid);
	s->size = f->size;
	s->created.tv_sec = 1700000000;
	s->ready = true;
	return 0;
}

/* ---- volume.h ---- */

int volume_create(struct cluster *c, const struct volume_request *req, struct volume **ret)
{
	struct fake_volume *f = find_name(volumes, req->name), *src = NULL;
	uint64_t size = req->size;
	int r;

	if (req->features && volume_features_check(req->features) < 0)
		return -EINVAL;
	if (req->source) {
		src = find_id(req->source->kind == VOLUME_ID_SNAPSHOT ? snapshots : volumes,
		              req->source);
		if (!src)
			return -ENOENT;
		if (size == 0)
			size = src->size;
		if (size < src->size || (req->size_limit && src->size > req->size_limit))
			return -ERANGE;
	}
	if (f) {
		if (f->size != size)
			return -EEXIST;
		return volume_dup(f, ret);
	}
	r = add(volumes, VOLUME_ID_VOLUME, req->cluster_id, req->pool, req->rados_namespace,
	        req->name, &f);
	if (r < 0)
		return r;
	f->size = size;
	if (src)
		memcpy(f->source, src->id, sizeof(f->source));
	return volume_dup(f, ret);
}

int volume_name_reserved(struct cluster *c, const char *pool, const char *rados_namespace,
                         const char *name)
{
	struct fake_volume *f = find_name(volumes, name);

	return f && strcmp(f->pool, pool) == 0;
}

int volume_static_stat(struct cluster *c, const char *pool, const char *rados_namespace,
                       const char *image, uint64_t *ret_size)
{
	int64_t id;

	if (cluster_pool_lookup(c, pool, &id) < 0 || strcmp(image, "static") != 0)
		return -ENOENT;
	*ret_size = 1 << 30;
	return 0;
}

int volume_static_expand(struct cluster *c, const char *pool, const char *rados_namespace,
                         const char *image, uint64_t size, uint64_t *ret_size)
{
	int r = volume_static_stat(c, pool, rados_namespace, image, ret_size);

	if (r == 0 && size > *ret_size)
		*ret_size = size;
	return r;
}

int volume_lookup(struct cluster *c, const struct volume_id *id, struct volume **ret)
{
	struct fake_volume *f = find_id(volumes, id);

	if (!f)
		return -ENOENT;
	return volume_dup(f, ret);
}

int volume_delete(struct cluster *c, const struct volume_id *id)
{
	struct fake_volume *f = find_id(volumes, id);

	if (!f)
		return 0;
	if (f->node[0])
		return -EBUSY;
	f->used = false;
	return 0;
}

int volume_expand(struct cluster *c, const struct volume_id *id, uint64_t size, struct volume **ret)
{
	struct fake_volume *f = find_id(volumes, id);

	if (!f)
		return -ENOENT;
	if (size == 0)
		return -EINVAL;
	if (size > f->size)
		f->size = size;
	return volume_dup(f, ret);
}

int volume_attach(struct cluster *c, const struct volume_id *id, const char *node,
                  enum volume_access access, bool exclusive)
{
	struct fake_volume *f = find_id(volumes, id);

	if (!f)
		return -ENOENT;
	if (!node[0] || strlen(node) > VOLUME_NODE_MAX || strchr(node, ' '))
		return -EINVAL;
	if (f->node[0] && strcmp(f->node, node) != 0)
		return -EBUSY;
	if (f->node[0] && f->access != access)
		return -EEXIST;
	snprintf(f->node, sizeof(f->node), "%s", node);
	f->access = access;
	return 0;
}

int volume_detach(struct cluster *c, const struct volume_id *id, const char *node)
{
	struct fake_volume *f = find_id(volumes, id);

	if (!node[0] || strlen(node) > VOLUME_NODE_MAX)
		return -EINVAL;
	if (f && strcmp(f->node, node) == 0)
		f->node[0] = 0;
	return 0;
}

/* ---- qos.h (the journal-and-image half) ---- */

int volume_qos_modify(struct cluster *c, const struct volume_id *id, const struct qos *update,
                      struct qos *ret, int *ret_bad)
{
	struct fake_volume *f = find_id(volumes, id);
	struct qos want;
	int bad = -1, r;

	if (!f)
		return -ENOENT;
	want = f->qos;
	qos_merge(&want, update);
	r = qos_check(&want, &bad);
	if (r < 0) {
		if (ret_bad)
			*ret_bad = bad;
		return r;
	}
	f->qos = want;
	if (ret)
		*ret = want;
	return 0;
}

int volume_qos_get(struct cluster *c, const struct volume_id *id, struct qos *ret)
{
	struct fake_volume *f = find_id(volumes, id);

	if (!f)
		return -ENOENT;
	*ret = f->qos;
	return 0;
}

/* Pages: the token is the decimal index to start from; "x" is a malformed token. */
static int page(struct fake_volume *t, const char *pool, const char *source, const char *token,
                size_t max, size_t **ret_idx, size_t *ret_n, char **ret_next)
{
	size_t start = 0, n = 0, *idx;
	char *end = NULL;

	if (token && *token) {
		errno = 0;
		start = strtoull(token, &end, 10);
		if (errno || *end || start > FAKE_CEPH_MAX)
			return -EAGAIN;
	}
	if (max == 0 || max > 2)
		max = 2;
	idx = calloc(FAKE_CEPH_MAX, sizeof(*idx));
	if (!idx)
		return -ENOMEM;
	*ret_next = NULL;
	for (size_t i = start; i < FAKE_CEPH_MAX; i++) {
		if (!t[i].used || strcmp(t[i].pool, pool) != 0 ||
		    (source && strcmp(t[i].source, source) != 0))
			continue;
		if (n == max) {
			if (asprintf(ret_next, "%zu", i) < 0) {
				free(idx);
				return -ENOMEM;
			}
			break;
		}
		idx[n++] = i;
	}
	*ret_idx = idx;
	*ret_n = n;
	return 0;
}

int volume_list(struct cluster *c, const char *cluster_id, const char *pool,
                const char *rados_namespace, const char *token, size_t max, struct volume **ret,
                size_t *ret_n, char **ret_next_token)
{
	size_t *idx = NULL, n = 0;
	struct volume *v;
	int64_t id;
	int r;

	if (cluster_pool_lookup(c, pool, &id) < 0)
		return -ENOENT;
	r = page(volumes, pool, NULL, token, max, &idx, &n, ret_next_token);
	if (r < 0)
		return r;
	v = calloc(n + 1, sizeof(*v));
	if (!v) {
		free(idx);
		free(*ret_next_token);
		return -ENOMEM;
	}
	for (size_t i = 0; i < n; i++)
		volume_out(&volumes[idx[i]], &v[i]);
	free(idx);
	*ret = v;
	*ret_n = n;
	return 0;
}

int volume_pool_usage(struct cluster *c, const char *pool, struct volume_pool_usage *ret)
{
	int64_t id;

	if (cluster_pool_lookup(c, pool, &id) < 0)
		return -ENOENT;
	*ret = (struct volume_pool_usage){ .pool_bytes = 1 << 20,
		                           .cluster_kb = 1 << 20,
		                           .cluster_kb_avail = 1 << 19 };
	return 0;
}

/* ---- snapshot.h ---- */

int snapshot_create(struct cluster *c, const struct snapshot_request *req, struct snapshot **ret)
{
	struct fake_volume *f = find_name(snapshots, req->name);
	struct fake_volume *src = find_id(volumes, req->source);
	struct snapshot *s;
	int r;

	if (!src)
		return -ENOENT;
	if (f && strcmp(f->source, src->id) != 0)
		return -EEXIST;
	if (!f) {
		r = add(snapshots, VOLUME_ID_SNAPSHOT, req->source->cluster_id, src->pool,
		        req->source->rados_namespace, req->name, &f);
		if (r < 0)
			return r;
		f->size = src->size;
		memcpy(f->source, src->id, sizeof(f->source));
	}
	s = calloc(1, sizeof(*s));
	if (!s)
		return -ENOMEM;
	snapshot_out(f, s);
	*ret = s;
	return 0;
}

int snapshot_lookup(struct cluster *c, const struct volume_id *id, struct snapshot **ret)
{
	struct fake_volume *f = find_id(snapshots, id);
	struct snapshot *s;

	if (!f)
		return -ENOENT;
	s = calloc(1, sizeof(*s));
	if (!s)
		return -ENOMEM;
	snapshot_out(f, s);
	*ret = s;
	return 0;
}

int snapshot_delete(struct cluster *c, const struct volume_id *id, uint64_t deadline_usec)
{
	struct fake_volume *f = find_id(snapshots, id);

	if (f)
		f->used = false;
	return 0;
}

int snapshot_list(struct cluster *c, const char *cluster_id, const char *pool,
                  const char *rados_namespace, const char *source_id, const char *token, size_t max,
                  struct snapshot **ret, size_t *ret_n, char **ret_next_token)
{
	size_t *idx = NULL, n = 0;
	struct snapshot *s;
	int64_t id;
	int r;

	if (cluster_pool_lookup(c, pool, &id) < 0)
		return -ENOENT;
	r = page(snapshots, pool, source_id, token, max, &idx, &n, ret_next_token);
	if (r < 0)
		return r;
	s = calloc(n + 1, sizeof(*s));
	if (!s) {
		free(idx);
		free(*ret_next_token);
		return -ENOMEM;
	}
	for (size_t i = 0; i < n; i++)
		snapshot_out(&snapshots[idx[i]], &s[i]);
	free(idx);
	*ret = s;
	*ret_n = n;
	return 0;
}
