/* SPDX-License-Identifier: Apache-2.0 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <json-c/json.h>

#include "driver/base/log.h"
#include "plugin/config.h"

#define CONFIG_MAX_BYTES (1024 * 1024)

struct config {
	pthread_mutex_t lock;
	char *path;
	struct stat st;
	struct config_cluster *clusters;
	size_t n_clusters;
	char ignored[256]; /* fields for other drivers seen at the last load, "" when none */
};

static void strv_free(char **v)
{
	if (!v)
		return;
	for (char **p = v; *p; p++)
		free(*p);
	free(v);
}

void config_cluster_done(struct config_cluster *cl)
{
	if (!cl)
		return;
	free(cl->cluster_id);
	strv_free(cl->monitors);
	free(cl->mon_host);
	free(cl->rados_namespace);
	memset(cl, 0, sizeof(*cl));
}

static void clusters_free(struct config_cluster *cl, size_t n)
{
	for (size_t i = 0; i < n; i++)
		config_cluster_done(&cl[i]);
	free(cl);
}

int config_cluster_id_valid(const char *id)
{
	size_t n;

	if (isempty(id))
		return false;
	n = strlen(id);
	if (n > CONFIG_CLUSTER_ID_MAX)
		return false;
	return strspn(id, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-") == n;
}

static unsigned line_of_offset(const char *text, size_t offset)
{
	unsigned line = 1;

	for (size_t i = 0; i < offset && text[i]; i++)
		if (text[i] == '\n')
			line++;
	return line;
}

/*
 * The line where entry `entry` of the top-level array starts, or where its key `field` is when
 * field is non-NULL and present ("rbd.radosNamespace": the key radosNamespace inside the entry's
 * object "rbd"). A small scanner that tracks strings and nesting depth, because json-c keeps no
 * positions after parsing.
 */
static unsigned line_of_field(const char *text, size_t entry, const char *field)
{
	size_t depth = 0, seen = 0, entry_start = 0, parent_len = 0, last_len = 0;
	const char *dot = field ? strchr(field, '.') : NULL, *child = field, *last = NULL;
	bool in_entry = false, in_parent = false;

	if (dot) {
		parent_len = (size_t)(dot - field);
		child = dot + 1;
	}
	for (size_t i = 0; text[i]; i++) {
		char ch = text[i];

		if (ch == '"') {
			size_t start = i + 1;

			for (i++; text[i] && text[i] != '"'; i++)
				if (text[i] == '\\' && text[i + 1])
					i++;
			if (!text[i])
				break;
			if (in_entry && depth == 2) {
				last = text + start;
				last_len = i - start;
			}
			if (in_entry && depth == (dot ? 3U : 2U) && (!dot || in_parent) && field &&
			    i - start == strlen(child) &&
			    strncmp(text + start, child, i - start) == 0)
				return line_of_offset(text, start);
			continue;
		}
		if (ch == '{' || ch == '[') {
			depth++;
			if (depth == 2 && ch == '{') {
				if (seen == entry) {
					in_entry = true;
					entry_start = i;
				}
				seen++;
			}
			if (depth == 3 && in_entry && dot && last && last_len == parent_len &&
			    strncmp(last, field, parent_len) == 0)
				in_parent = true;
		} else if (ch == '}' || ch == ']') {
			if (depth == 2 && in_entry)
				return line_of_offset(text, entry_start);
			if (depth == 3)
				in_parent = false;
			if (depth > 0)
				depth--;
		}
	}
	return in_entry ? line_of_offset(text, entry_start) : 1;
}

static int fail(char **ret_error, const char *path, const char *text, size_t entry,
                const char *field, const char *what)
{
	unsigned line = line_of_field(text, entry, field);

	if (asprintf(ret_error, "%s:%u: entry %zu%s%s%s: %s", path, line, entry,
	             field ? ", field '" : "", field ? field : "", field ? "'" : "", what) < 0)
		*ret_error = NULL;
	return -EINVAL;
}

/*
 * Fields that ceph-csi and Rook write into config.json for other drivers or for features
 * rbdcsi does not have: accepted and ignored (logged once per load, see note_ignored()).
 */
static const char *const foreign_fields[] = {
	"cephFS",       /* ceph-csi's CephFS driver */
	"nfs",          /* ceph-csi's NFS driver */
	"readAffinity", /* krbd read_from_replica: not implemented */
	"namespace",    /* Rook: the namespace of the CephCluster */
};

/* Fields of the "rbd" object that rbdcsi accepts but does not act on. */
static const char *const foreign_rbd_fields[] = {
	"netNamespaceFilePath", /* Multus: rbdcsi maps in the plugin's own netns */
	"nodePublishSecretRef", /* Kubernetes Secret refs: rbdcsi reads no Kubernetes API */
	"controllerPublishSecretRef",
};

static bool in_set(const char *s, const char *const *set, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (strcmp(s, set[i]) == 0)
			return true;
	return false;
}

/* Adds "field" to the comma list ignored (bounded), once. */
static void note_ignored(char *ignored, size_t size, const char *field)
{
	size_t len = strlen(ignored), n = strlen(field);
	const char *p = ignored;

	while ((p = strstr(p, field))) {
		if ((p == ignored || p[-1] == ' ') && (p[n] == ',' || p[n] == 0))
			return;
		p += n;
	}
	if (len + n + 3 >= size)
		return;
	snprintf(ignored + len, size - len, "%s%s", len ? ", " : "", field);
}

/* A string field that may be absent (NULL) or "" (NULL too); -EINVAL for another type. */
static int optional_string(json_object *obj, const char *key, const char **ret)
{
	json_object *v;

	*ret = NULL;
	if (!json_object_object_get_ex(obj, key, &v) || json_object_is_type(v, json_type_null))
		return 0;
	if (!json_object_is_type(v, json_type_string))
		return -EINVAL;
	if (*json_object_get_string(v))
		*ret = json_object_get_string(v);
	return 0;
}

static bool namespace_name_valid(const char *s)
{
	return strlen(s) <= 64 && !strchr(s, '/');
}

/*
 * The "rbd" object of a ceph-csi entry: radosNamespace and mirrorDaemonCount are read, the
 * fields in foreign_rbd_fields are accepted and ignored, anything else is a typo.
 */
static int parse_rbd(json_object *rbd, size_t index, const char *path, const char *text,
                     struct config_cluster *cl, char *ignored, size_t ignored_size,
                     char **ret_error)
{
	const char *ns = NULL;
	json_object *v;

	if (!json_object_is_type(rbd, json_type_object))
		return fail(ret_error, path, text, index, "rbd", "must be an object");
	json_object_object_foreach(rbd, key, val)
	{
		char name[64];

		(void)val;
		if (strcmp(key, "radosNamespace") == 0 || strcmp(key, "mirrorDaemonCount") == 0)
			continue;
		if (in_set(key, foreign_rbd_fields, ELEMENTSOF(foreign_rbd_fields))) {
			snprintf(name, sizeof(name), "rbd.%s", key);
			note_ignored(ignored, ignored_size, name);
			continue;
		}
		snprintf(name, sizeof(name), "rbd.%.40s", key);
		return fail(ret_error, path, text, index, name,
		            "unknown field (known: radosNamespace, mirrorDaemonCount, "
		            "netNamespaceFilePath, nodePublishSecretRef, "
		            "controllerPublishSecretRef)");
	}
	if (optional_string(rbd, "radosNamespace", &ns) < 0 || (ns && !namespace_name_valid(ns)))
		return fail(ret_error, path, text, index, "rbd.radosNamespace",
		            "must be a string of at most 64 characters without '/'");
	if (ns && cl->rados_namespace && strcmp(ns, cl->rados_namespace) != 0)
		return fail(ret_error, path, text, index, "rbd.radosNamespace",
		            "contradicts the entry's radosNamespace");
	if (ns && !cl->rados_namespace) {
		cl->rados_namespace = strdup(ns);
		if (!cl->rados_namespace)
			return -ENOMEM;
	}
	if (json_object_object_get_ex(rbd, "mirrorDaemonCount", &v)) {
		int64_t n = json_object_get_int64(v);

		if (!json_object_is_type(v, json_type_int) || n < 0 || n > 1000)
			return fail(ret_error, path, text, index, "rbd.mirrorDaemonCount",
			            "must be an integer from 0 to 1000");
		cl->mirror_daemon_count = (unsigned)n;
	}
	return 0;
}

static int parse_entry(json_object *obj, size_t index, const char *path, const char *text,
                       struct config_cluster *ret, char *ignored, size_t ignored_size,
                       char **ret_error)
{
	struct config_cluster cl = { 0 };
	json_object *v;
	size_t n, len = 0;
	int r;

	if (!json_object_is_type(obj, json_type_object))
		return fail(ret_error, path, text, index, NULL, "must be an object");

	json_object_object_foreach(obj, key, val)
	{
		(void)val;
		if (strcmp(key, "clusterID") == 0 || strcmp(key, "monitors") == 0 ||
		    strcmp(key, "radosNamespace") == 0 || strcmp(key, "rbd") == 0)
			continue;
		if (in_set(key, foreign_fields, ELEMENTSOF(foreign_fields))) {
			note_ignored(ignored, ignored_size, key);
			continue;
		}
		return fail(ret_error, path, text, index, key,
		            "unknown field (known: clusterID, monitors, radosNamespace, rbd; "
		            "ignored: cephFS, nfs, readAffinity, namespace)");
	}

	if (!json_object_object_get_ex(obj, "clusterID", &v) ||
	    !json_object_is_type(v, json_type_string))
		return fail(ret_error, path, text, index, "clusterID", "a string is required");
	if (!config_cluster_id_valid(json_object_get_string(v)))
		return fail(ret_error, path, text, index, "clusterID",
		            "must be 1-36 characters of [A-Za-z0-9._-]");
	cl.cluster_id = strdup(json_object_get_string(v));

	if (!json_object_object_get_ex(obj, "monitors", &v) ||
	    !json_object_is_type(v, json_type_array) || json_object_array_length(v) == 0) {
		config_cluster_done(&cl);
		return fail(ret_error, path, text, index, "monitors",
		            "a non-empty list of \"host:port\" strings is required");
	}
	n = json_object_array_length(v);
	cl.monitors = calloc(n + 1, sizeof(char *));
	for (size_t i = 0; cl.monitors && i < n; i++) {
		json_object *m = json_object_array_get_idx(v, i);
		const char *s = json_object_get_string(m);

		/* "host:port", or an address vector "[v2:host:port,v1:host:port]". */
		bool addrvec = s && s[0] == '[' && s[strlen(s) - 1] == ']';

		if (!json_object_is_type(m, json_type_string) || isempty(s) ||
		    strpbrk(s, addrvec ? " \t\n;" : " \t\n,;") || strlen(s) > 256) {
			config_cluster_done(&cl);
			return fail(ret_error, path, text, index, "monitors",
			            "each monitor must be a non-empty \"host:port\" string without "
			            "spaces or commas");
		}
		cl.monitors[i] = strdup(s);
		len += strlen(s) + 1;
	}
	cl.mon_host = calloc(1, len + 1);
	for (size_t i = 0; cl.mon_host && cl.monitors && i < n; i++) {
		if (i > 0)
			strncat(cl.mon_host, ",", len - strlen(cl.mon_host));
		strncat(cl.mon_host, cl.monitors[i] ? cl.monitors[i] : "",
		        len - strlen(cl.mon_host));
	}

	if (json_object_object_get_ex(obj, "radosNamespace", &v)) {
		const char *s = json_object_get_string(v);

		if (!json_object_is_type(v, json_type_string) || !namespace_name_valid(s)) {
			config_cluster_done(&cl);
			return fail(ret_error, path, text, index, "radosNamespace",
			            "must be a string of at most 64 characters without '/'");
		}
		if (*s)
			cl.rados_namespace = strdup(s);
	}
	/* ceph-csi and Rook write the namespace as "rbd": {"radosNamespace": ...}. */
	if (json_object_object_get_ex(obj, "rbd", &v)) {
		r = parse_rbd(v, index, path, text, &cl, ignored, ignored_size, ret_error);
		if (r < 0) {
			config_cluster_done(&cl);
			return r;
		}
	}
	if (!cl.cluster_id || !cl.monitors || !cl.mon_host) {
		config_cluster_done(&cl);
		return -ENOMEM;
	}
	*ret = cl;
	return 0;
}

static int read_text(const char *path, struct stat *ret_st, char **ret_text)
{
	_cleanup_close_ int fd = -EBADF;
	_cleanup_free_ char *buf = NULL;
	struct stat st;
	size_t got = 0;

	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	if (fstat(fd, &st) < 0)
		return -errno;
	if (st.st_size > CONFIG_MAX_BYTES)
		return -EFBIG;
	buf = malloc((size_t)st.st_size + 1);
	if (!buf)
		return -ENOMEM;
	while (got < (size_t)st.st_size) {
		ssize_t k = read(fd, buf + got, (size_t)st.st_size - got);
		if (k < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		if (k == 0)
			break;
		got += (size_t)k;
	}
	buf[got] = 0;
	*ret_st = st;
	*ret_text = TAKE_PTR(buf);
	return 0;
}

static int parse_text(const char *path, const char *text, struct config_cluster **ret,
                      size_t *ret_n, char *ignored, size_t ignored_size, char **ret_error)
{
	json_tokener *tok = json_tokener_new();
	struct config_cluster *cl = NULL;
	json_object *root;
	size_t n;
	int r = 0;

	if (!tok)
		return -ENOMEM;
	root = json_tokener_parse_ex(tok, text, (int)strlen(text));
	if (!root || json_tokener_get_error(tok) != json_tokener_success ||
	    tok->char_offset < (int)strlen(text)) {
		enum json_tokener_error e = json_tokener_get_error(tok);
		size_t off = tok->char_offset;

		/* Trailing garbage after a complete value is an error too. */
		if (root && e == json_tokener_success) {
			while (text[off] == ' ' || text[off] == '\n' || text[off] == '\t' ||
			       text[off] == '\r')
				off++;
			if (!text[off])
				goto parsed;
		}
		if (asprintf(ret_error, "%s:%u: invalid JSON: %s", path, line_of_offset(text, off),
		             root && e == json_tokener_success ? "unexpected text after the list"
		                                               : json_tokener_error_desc(e)) < 0)
			*ret_error = NULL;
		json_object_put(root);
		json_tokener_free(tok);
		return -EINVAL;
	}
parsed:
	json_tokener_free(tok);
	if (!json_object_is_type(root, json_type_array)) {
		json_object_put(root);
		if (asprintf(ret_error, "%s:1: the top level must be a list of cluster objects",
		             path) < 0)
			*ret_error = NULL;
		return -EINVAL;
	}
	n = json_object_array_length(root);
	cl = calloc(n ? n : 1, sizeof(*cl));
	if (!cl) {
		json_object_put(root);
		return -ENOMEM;
	}
	for (size_t i = 0; i < n && r == 0; i++) {
		r = parse_entry(json_object_array_get_idx(root, i), i, path, text, &cl[i], ignored,
		                ignored_size, ret_error);
		for (size_t j = 0; r == 0 && j < i; j++)
			if (strcmp(cl[j].cluster_id, cl[i].cluster_id) == 0) {
				r = fail(ret_error, path, text, i, "clusterID",
				         "duplicate clusterID");
				clusters_free(cl, i + 1);
				cl = NULL;
			}
		if (r < 0 && cl) {
			clusters_free(cl, i);
			cl = NULL;
		}
	}
	json_object_put(root);
	if (r < 0)
		return r;
	*ret = cl;
	*ret_n = n;
	return 0;
}

/* One info line per load for the fields of other drivers (ceph-csi's, Rook's). */
static void log_ignored(const char *path, const char *ignored)
{
	if (*ignored)
		log_info("%s: ignoring fields that rbdcsi does not use: %s", path, ignored);
}

struct config *config_new_empty(void)
{
	struct config *c = calloc(1, sizeof(*c));

	if (c)
		pthread_mutex_init(&c->lock, NULL);
	return c;
}

int config_load(const char *path, struct config **ret, char **ret_error)
{
	_cleanup_free_ char *text = NULL;
	struct config *c;
	int r;

	*ret_error = NULL;
	c = config_new_empty();
	if (!c)
		return -ENOMEM;
	c->path = strdup(path);
	if (!c->path) {
		config_free(c);
		return -ENOMEM;
	}
	r = read_text(path, &c->st, &text);
	if (r < 0) {
		config_free(c);
		return r;
	}
	r = parse_text(path, text, &c->clusters, &c->n_clusters, c->ignored, sizeof(c->ignored),
	               ret_error);
	if (r < 0) {
		config_free(c);
		return r;
	}
	log_ignored(path, c->ignored);
	*ret = c;
	return 0;
}

struct config *config_free(struct config *c)
{
	if (!c)
		return NULL;
	clusters_free(c->clusters, c->n_clusters);
	free(c->path);
	pthread_mutex_destroy(&c->lock);
	free(c);
	return NULL;
}

void config_refresh(struct config *c)
{
	_cleanup_free_ char *text = NULL, *error = NULL;
	struct config_cluster *cl = NULL;
	char ignored[sizeof(c->ignored)] = "";
	struct stat st;
	size_t n = 0;
	int r;

	if (!c || !c->path)
		return;
	if (stat(c->path, &st) < 0)
		return;
	pthread_mutex_lock(&c->lock);
	if (st.st_mtim.tv_sec == c->st.st_mtim.tv_sec &&
	    st.st_mtim.tv_nsec == c->st.st_mtim.tv_nsec && st.st_size == c->st.st_size &&
	    st.st_ino == c->st.st_ino)
		goto out;
	r = read_text(c->path, &st, &text);
	if (r >= 0)
		r = parse_text(c->path, text, &cl, &n, ignored, sizeof(ignored), &error);
	if (r < 0) {
		log_warning_errno(r, "Keeping the previous cluster configuration: %s",
		                  error ? error : "cannot read the file");
		c->st = st; /* do not retry until it changes again */
		goto out;
	}
	clusters_free(c->clusters, c->n_clusters);
	c->clusters = cl;
	c->n_clusters = n;
	c->st = st;
	memcpy(c->ignored, ignored, sizeof(ignored));
	log_info("Reloaded the cluster configuration from '%s': %zu cluster(s)", c->path, n);
	log_ignored(c->path, c->ignored);
out:
	pthread_mutex_unlock(&c->lock);
}

static char **strv_copy(char **v)
{
	size_t n = 0;
	char **copy;

	while (v && v[n])
		n++;
	copy = calloc(n + 1, sizeof(char *));
	if (!copy)
		return NULL;
	for (size_t i = 0; i < n; i++) {
		copy[i] = strdup(v[i]);
		if (!copy[i]) {
			strv_free(copy);
			return NULL;
		}
	}
	return copy;
}

int config_get_cluster(struct config *c, const char *cluster_id, struct config_cluster *ret)
{
	int r = -ENOENT;

	pthread_mutex_lock(&c->lock);
	for (size_t i = 0; i < c->n_clusters; i++) {
		struct config_cluster *cl = &c->clusters[i];
		struct config_cluster copy = { 0 };

		if (strcmp(cl->cluster_id, cluster_id) != 0)
			continue;
		copy.cluster_id = strdup(cl->cluster_id);
		copy.monitors = strv_copy(cl->monitors);
		copy.mon_host = strdup(cl->mon_host);
		copy.rados_namespace = cl->rados_namespace ? strdup(cl->rados_namespace) : NULL;
		copy.mirror_daemon_count = cl->mirror_daemon_count;
		if (!copy.cluster_id || !copy.monitors || !copy.mon_host ||
		    (cl->rados_namespace && !copy.rados_namespace)) {
			config_cluster_done(&copy);
			r = -ENOMEM;
			break;
		}
		*ret = copy;
		r = 0;
		break;
	}
	pthread_mutex_unlock(&c->lock);
	return r;
}

size_t config_n_clusters(struct config *c)
{
	size_t n;

	pthread_mutex_lock(&c->lock);
	n = c->n_clusters;
	pthread_mutex_unlock(&c->lock);
	return n;
}

int config_cluster_ids(struct config *c, char ***ret, size_t *ret_n)
{
	char **ids;
	size_t n = 0;

	pthread_mutex_lock(&c->lock);
	ids = calloc(c->n_clusters + 1, sizeof(char *));
	for (size_t i = 0; ids && i < c->n_clusters; i++) {
		ids[n] = strdup(c->clusters[i].cluster_id);
		if (!ids[n]) {
			strv_free(ids);
			ids = NULL;
			break;
		}
		n++;
	}
	pthread_mutex_unlock(&c->lock);
	if (!ids)
		return -ENOMEM;
	*ret = ids;
	*ret_n = n;
	return 0;
}

void config_ignored_fields(struct config *c, char *buf, size_t size)
{
	pthread_mutex_lock(&c->lock);
	snprintf(buf, size, "%s", c->ignored);
	pthread_mutex_unlock(&c->lock);
}
