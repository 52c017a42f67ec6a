/* SPDX-License-Identifier: Apache-2.0 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "driver/base/fileio.h"
#include "plugin/ceph_access.h"
#include "plugin/metrics.h"
#include "plugin/params.h"
#include "plugin/plugin.h"

struct remembered {
	char *cluster_id;
	char *user;
	char *key;
};

struct credentials_store {
	pthread_mutex_t lock;
	struct remembered *entries;
	size_t n;
};

static void wipe_free(char *s)
{
	if (s) {
		explicit_bzero(s, strlen(s));
		free(s);
	}
}

struct credentials_store *credentials_store_new(void)
{
	struct credentials_store *s = calloc(1, sizeof(*s));

	if (s)
		pthread_mutex_init(&s->lock, NULL);
	return s;
}

struct credentials_store *credentials_store_free(struct credentials_store *s)
{
	if (!s)
		return NULL;
	for (size_t i = 0; i < s->n; i++) {
		free(s->entries[i].cluster_id);
		free(s->entries[i].user);
		wipe_free(s->entries[i].key);
	}
	free(s->entries);
	pthread_mutex_destroy(&s->lock);
	free(s);
	return NULL;
}

static void remember(struct credentials_store *s, const char *cluster_id, const char *user,
                     const char *key)
{
	struct remembered r = { strdup(cluster_id), strdup(user), strdup(key) };

	if (!r.cluster_id || !r.user || !r.key)
		goto fail;
	pthread_mutex_lock(&s->lock);
	for (size_t i = 0; i < s->n; i++)
		if (strcmp(s->entries[i].cluster_id, cluster_id) == 0) {
			free(s->entries[i].cluster_id);
			free(s->entries[i].user);
			wipe_free(s->entries[i].key);
			s->entries[i] = r;
			pthread_mutex_unlock(&s->lock);
			return;
		}
	{
		struct remembered *e = realloc(s->entries, (s->n + 1) * sizeof(*e));
		if (!e) {
			pthread_mutex_unlock(&s->lock);
			goto fail;
		}
		s->entries = e;
		s->entries[s->n++] = r;
	}
	pthread_mutex_unlock(&s->lock);
	return;
fail:
	free(r.cluster_id);
	free(r.user);
	wipe_free(r.key);
}

/* Copies the remembered credentials of cluster_id; -ENOENT when there are none. */
static int recall(struct credentials_store *s, const char *cluster_id, char **ret_user,
                  char **ret_key)
{
	int r = -ENOENT;

	pthread_mutex_lock(&s->lock);
	for (size_t i = 0; i < s->n; i++)
		if (strcmp(s->entries[i].cluster_id, cluster_id) == 0) {
			*ret_user = strdup(s->entries[i].user);
			*ret_key = strdup(s->entries[i].key);
			if (!*ret_user || !*ret_key) {
				free(*ret_user);
				wipe_free(*ret_key);
				r = -ENOMEM;
			} else
				r = 0;
			break;
		}
	pthread_mutex_unlock(&s->lock);
	return r;
}

int credentials_store_clusters(struct credentials_store *s, char ***ret, size_t *ret_n)
{
	char **ids;
	size_t n = 0;

	pthread_mutex_lock(&s->lock);
	ids = calloc(s->n + 1, sizeof(char *));
	for (size_t i = 0; ids && i < s->n; i++)
		if ((ids[n] = strdup(s->entries[i].cluster_id)))
			n++;
	pthread_mutex_unlock(&s->lock);
	if (!ids)
		return -ENOMEM;
	*ret = ids;
	*ret_n = n;
	return 0;
}

static bool user_valid(const char *s)
{
	return params_name_valid(s, 64);
}

static bool key_valid(const char *s)
{
	size_t n = s ? strlen(s) : 0;

	return n > 0 && n <= 128 &&
	       strspn(s, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/=") == n;
}

/* Reads one secret file (a mounted Secret's key), without trailing whitespace. */
static int secret_file_read(const char *dir, const char *sub, const char *name, char **ret)
{
	_cleanup_free_ char *path = NULL;
	char *data = NULL;
	size_t size = 0;
	int r;

	if (asprintf(&path, "%s%s%s/%s", dir, sub ? "/" : "", strempty(sub), name) < 0)
		return -ENOMEM;
	r = fileio_read_full(path, 256, &data, &size);
	if (r < 0)
		return r;
	while (size > 0 && strchr(" \t\r\n", data[size - 1]))
		data[--size] = 0;
	*ret = data;
	return 0;
}

/*
 * Credentials from --controller-secrets-dir: DIR/<clusterID>/{userID,userKey}, else
 * DIR/{userID,userKey} (a Kubernetes Secret mounted as a volume; re-read on every call, so a
 * rotated Secret applies without a restart). -ENOENT when neither is there.
 */
static int secrets_dir_read(const char *dir, const char *cluster_id, char **ret_user,
                            char **ret_key)
{
	const char *subs[] = { cluster_id, NULL };
	int r = -ENOENT;

	/* The clusterID comes from --config, but never let it climb out of the directory. */
	if (strcmp(cluster_id, ".") == 0 || strcmp(cluster_id, "..") == 0)
		subs[0] = NULL;
	for (size_t i = subs[0] ? 0 : 1; i < ELEMENTSOF(subs); i++) {
		char *user = NULL, *key = NULL;

		r = secret_file_read(dir, subs[i], "userID", &user);
		if (r == -ENOENT || r == -ENOTDIR)
			continue;
		if (r >= 0)
			r = secret_file_read(dir, subs[i], "userKey", &key);
		if (r < 0) {
			free(user);
			return r;
		}
		*ret_user = user;
		*ret_key = key;
		return 0;
	}
	return r == -ENOTDIR ? -ENOENT : r;
}

int ceph_target_open(struct call *c, const char *cluster_id, const char *field,
                     enum status_code unknown_code, void *const *secrets, size_t n_secrets,
                     bool secrets_required, const char *rados_namespace, struct ceph_target *ret)
{
	struct plugin *p = c->plugin;
	struct ceph_target t = { 0 };
	const char *user = params_map_get(secrets, n_secrets, "userID");
	const char *key = params_map_get(secrets, n_secrets, "userKey");
	char *saved_user = NULL, *saved_key = NULL;
	struct cluster_credentials cred;
	int r;

	/* Nothing reaches Ceph once the caller has given up on the answer. */
	if (call_is_cancelled(c))
		return call_fail(c, STATUS_DEADLINE_EXCEEDED,
		                 "the call's deadline passed before Ceph was contacted");
	if (n_secrets > 0 || secrets_required) {
		if (isempty(user) || isempty(key))
			return call_fail(c, STATUS_INVALID_ARGUMENT,
			                 "secrets: userID and userKey are required");
		if (!user_valid(user))
			return call_fail(c, STATUS_INVALID_ARGUMENT,
			                 "secrets: userID is not a valid Ceph user name");
		/* Never echo the key, not even a malformed one. */
		if (!key_valid(key))
			return call_fail(c, STATUS_INVALID_ARGUMENT,
			                 "secrets: userKey is not a base64 cephx key");
	}

	config_refresh(p->config);
	r = config_get_cluster(p->config, cluster_id, &t.cluster);
	if (r == -ENOENT)
		return call_fail(
		        c, unknown_code,
		        "%s: clusterID '%s' is not in the cluster configuration (--config)", field,
		        cluster_id);
	if (r < 0)
		return r;
	t.rados_namespace = !isempty(rados_namespace) ? rados_namespace : t.cluster.rados_namespace;

	if (isempty(user) && p->opt.controller_secrets_dir) {
		/* The configured Secret: the same in every replica and after a restart. */
		r = secrets_dir_read(p->opt.controller_secrets_dir, cluster_id, &saved_user,
		                     &saved_key);
		if (r >= 0 && (!user_valid(saved_user) || !key_valid(saved_key))) {
			free(saved_user);
			wipe_free(saved_key);
			config_cluster_done(&t.cluster);
			return call_fail(
			        c, STATUS_FAILED_PRECONDITION,
			        "--controller-secrets-dir: the userID or userKey for cluster "
			        "'%s' is malformed",
			        cluster_id);
		}
		if (r < 0 && r != -ENOENT)
			log_warning_errno(
			        r, "Cannot read the credentials for cluster '%s' from '%s': %m",
			        cluster_id, p->opt.controller_secrets_dir);
		if (r >= 0) {
			user = saved_user;
			key = saved_key;
		}
	}
	if (isempty(user)) {
		r = recall(p->credentials, cluster_id, &saved_user, &saved_key);
		if (r == -ENOENT) {
			config_cluster_done(&t.cluster);
			return call_fail(
			        c, STATUS_FAILED_PRECONDITION,
			        "no credentials for cluster '%s' yet: this call carries no "
			        "secrets, no call with secrets for that cluster has "
			        "succeeded since the controller started, and "
			        "--controller-secrets-dir has none for it",
			        cluster_id);
		}
		if (r < 0) {
			config_cluster_done(&t.cluster);
			return r;
		}
		user = saved_user;
		key = saved_key;
	}

	cred = (struct cluster_credentials){
		.cluster_id = cluster_id,
		.monitors = t.cluster.mon_host,
		.user = user,
		.key = key,
	};
	r = cluster_cache_get(p->clusters, &cred, &t.conn);
	metrics_ceph_connection(p->metrics, cluster_id, r);
	if (r >= 0 && !saved_user)
		remember(p->credentials, cluster_id, user, key);
	if (r < 0) {
		metrics_ceph_error(p->metrics, "connect");
		call_status(c, STATUS_OP_CONNECT, r);
		if (status_from_errno_at(STATUS_OP_CONNECT, r) == STATUS_UNAVAILABLE) {
			log_error_errno(
			        r, "Cannot reach Ceph cluster '%s' (monitors %s) within %us: %m",
			        cluster_id, t.cluster.mon_host, p->opt.ceph_connect_timeout);
		} else if (r == -EACCES || r == -EPERM) {
			log_error_errno(r, "Ceph cluster '%s' refused the key of user '%s': %m",
			                cluster_id, user);
		} else
			log_error_errno(r, "Cannot connect to Ceph cluster '%s' (monitors %s): %m",
			                cluster_id, t.cluster.mon_host);
		config_cluster_done(&t.cluster);
	}
	free(saved_user);
	wipe_free(saved_key);
	if (r < 0)
		return r;
	*ret = t;
	return 0;
}

void ceph_target_done(struct ceph_target *t)
{
	if (!t)
		return;
	t->conn = cluster_unref(t->conn);
	config_cluster_done(&t->cluster);
}
