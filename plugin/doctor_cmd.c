/* SPDX-License-Identifier: Apache-2.0 */
/*
 * `rbdcsi doctor`: parses its flags, reads the key from a file (never from argv), connects,
 * runs driver/ceph/doctor.h or driver/host/node_doctor.h, and prints the findings as text or
 * JSON. See plugin/doctor_cmd.h for the exit codes.
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <json-c/json.h>

#include "driver/base/fileio.h"
#include "driver/base/log.h"
#include "driver/base/macro.h"
#include "driver/ceph/cluster.h"
#include "driver/ceph/doctor.h"
#include "driver/host/node_doctor.h"
#include "plugin/config.h"
#include "plugin/doctor_cmd.h"
#include "plugin/kube_api.h"

#define SECRET_MAX  4096
#define INPUT_MAX   (64U * 1024U * 1024U) /* kubectl JSON outputs */
#define LIST_MAX    4096                  /* --pool, --prefix */
#define DRIVER_NAME "rbdcsi.io"

DEFINE_TRIVIAL_CLEANUP_FUNC(json_object *, json_object_put)

static void help(void)
{
	printf("Usage: rbdcsi doctor [OPTIONS]\n"
	       "Finds drift between the driver's journal, the pool, the nodes and the\n"
	       "PersistentVolumes (or, with --node, between stage state and mounts).\n\n"
	       "Cluster mode:\n"
	       "  --config=FILE            the driver's cluster configuration\n"
	       "  --cluster=ID             the clusterID to look at\n"
	       "  --secret-dir=DIR         a mounted Secret with files userID and userKey\n"
	       "  --user=ID --keyfile=FILE instead of --secret-dir (the file holds the key)\n"
	       "  --pool=NAME              a pool to look at (repeatable; default: all)\n"
	       "  --rados-namespace=NS     default: the cluster's radosNamespace\n"
	       "  --prefix=PREFIX          volume image prefix (repeatable; default csi-vol-)\n"
	       "  --nodes=FILE             `kubectl get nodes -o json`, or one name per line:\n"
	       "                           attachments of other nodes are findings\n"
	       "  --pvs=FILE               `kubectl get pv -o json`: PVs of --drivername\n"
	       "  --kube-api[=https://HOST:PORT]  read nodes and PVs from the API server with\n"
	       "                           the pod's service account (instead of --nodes/--pvs)\n"
	       "  --kube-token-file=FILE --kube-ca-file=FILE  default: the service account's\n"
	       "  --drivername=NAME        default " DRIVER_NAME "\n"
	       "  --repair                 fix what is provably safe, print each action\n"
	       "Node mode:\n"
	       "  --node                   compare stage state files with the mount table\n"
	       "  --state-dir=DIR          default /var/lib/rbdcsi\n"
	       "  --kubelet-dir=DIR        default /var/lib/kubelet\n"
	       "Both:\n"
	       "  --output=text|json       default text\n"
	       "  --textfile=FILE          also write rbdcsi_doctor_findings{kind} (Prometheus\n"
	       "                           text format) to FILE, atomically\n"
	       "  --ceph-timeout=SECS      Ceph connect and operation timeout (default 30)\n"
	       "  --interval=SECS          run again every SECS seconds, for ever (a sidecar\n"
	       "                           keeping --textfile current); default: run once\n"
	       "Exit: 0 nothing found (or all repaired), 1 findings remain, 2 error.\n");
}

struct args {
	const char *config;
	const char *cluster;
	const char *secret_dir;
	const char *user;
	const char *keyfile;
	const char *rados_namespace;
	const char *nodes;
	const char *pvs;
	const char *driver_name;
	const char *state_dir;
	const char *kubelet_dir;
	const char *textfile;
	const char *kube_server;
	const char *kube_token_file;
	const char *kube_ca_file;
	bool kube;
	const char *pools[LIST_MAX];
	size_t n_pools;
	const char *prefixes[LIST_MAX];
	size_t n_prefixes;
	unsigned timeout;
	unsigned interval;
	bool repair;
	bool node;
	bool json;
};

_printf_(1, 2) static int fail(const char *fmt, ...)
{
	va_list ap;

	fputs("rbdcsi doctor: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	return DOCTOR_EXIT_ERROR;
}

enum {
	OPT_CONFIG = 0x100,
	OPT_CLUSTER,
	OPT_SECRET_DIR,
	OPT_USER,
	OPT_KEYFILE,
	OPT_POOL,
	OPT_NAMESPACE,
	OPT_PREFIX,
	OPT_NODES,
	OPT_PVS,
	OPT_DRIVERNAME,
	OPT_REPAIR,
	OPT_NODE,
	OPT_STATE_DIR,
	OPT_KUBELET_DIR,
	OPT_OUTPUT,
	OPT_TEXTFILE,
	OPT_TIMEOUT,
	OPT_INTERVAL,
	OPT_KUBE_API,
	OPT_KUBE_TOKEN,
	OPT_KUBE_CA,
	OPT_HELP,
};

static const struct option options[] = {
	{ "config", required_argument, NULL, OPT_CONFIG },
	{ "cluster", required_argument, NULL, OPT_CLUSTER },
	{ "secret-dir", required_argument, NULL, OPT_SECRET_DIR },
	{ "user", required_argument, NULL, OPT_USER },
	{ "keyfile", required_argument, NULL, OPT_KEYFILE },
	{ "pool", required_argument, NULL, OPT_POOL },
	{ "rados-namespace", required_argument, NULL, OPT_NAMESPACE },
	{ "prefix", required_argument, NULL, OPT_PREFIX },
	{ "nodes", required_argument, NULL, OPT_NODES },
	{ "pvs", required_argument, NULL, OPT_PVS },
	{ "drivername", required_argument, NULL, OPT_DRIVERNAME },
	{ "repair", no_argument, NULL, OPT_REPAIR },
	{ "node", no_argument, NULL, OPT_NODE },
	{ "state-dir", required_argument, NULL, OPT_STATE_DIR },
	{ "kubelet-dir", required_argument, NULL, OPT_KUBELET_DIR },
	{ "output", required_argument, NULL, OPT_OUTPUT },
	{ "textfile", required_argument, NULL, OPT_TEXTFILE },
	{ "ceph-timeout", required_argument, NULL, OPT_TIMEOUT },
	{ "interval", required_argument, NULL, OPT_INTERVAL },
	{ "kube-api", optional_argument, NULL, OPT_KUBE_API },
	{ "kube-token-file", required_argument, NULL, OPT_KUBE_TOKEN },
	{ "kube-ca-file", required_argument, NULL, OPT_KUBE_CA },
	{ "help", no_argument, NULL, OPT_HELP },
	{ NULL, 0, NULL, 0 },
};

/* Returns -1 to go on, or an exit code. */
static int parse_argv(int argc, char *argv[], struct args *a)
{
	int c;

	*a = (struct args){ .driver_name = DRIVER_NAME,
		            .state_dir = "/var/lib/rbdcsi",
		            .kubelet_dir = "/var/lib/kubelet",
		            .timeout = 30 };
	optind = 1;
	while ((c = getopt_long(argc, argv, "", options, NULL)) >= 0) {
		switch (c) {
		case OPT_CONFIG:
			a->config = optarg;
			break;
		case OPT_CLUSTER:
			a->cluster = optarg;
			break;
		case OPT_SECRET_DIR:
			a->secret_dir = optarg;
			break;
		case OPT_USER:
			a->user = optarg;
			break;
		case OPT_KEYFILE:
			a->keyfile = optarg;
			break;
		case OPT_POOL:
			if (a->n_pools == LIST_MAX || !*optarg)
				return fail("--pool: empty, or too many");
			a->pools[a->n_pools++] = optarg;
			break;
		case OPT_NAMESPACE:
			a->rados_namespace = optarg;
			break;
		case OPT_PREFIX:
			if (a->n_prefixes == LIST_MAX || !*optarg)
				return fail("--prefix: empty, or too many");
			a->prefixes[a->n_prefixes++] = optarg;
			break;
		case OPT_NODES:
			a->nodes = optarg;
			break;
		case OPT_PVS:
			a->pvs = optarg;
			break;
		case OPT_DRIVERNAME:
			a->driver_name = optarg;
			break;
		case OPT_REPAIR:
			a->repair = true;
			break;
		case OPT_NODE:
			a->node = true;
			break;
		case OPT_STATE_DIR:
			a->state_dir = optarg;
			break;
		case OPT_KUBELET_DIR:
			a->kubelet_dir = optarg;
			break;
		case OPT_OUTPUT:
			if (strcmp(optarg, "json") == 0)
				a->json = true;
			else if (strcmp(optarg, "text") != 0)
				return fail("--output: '%s' is not text or json", optarg);
			break;
		case OPT_TEXTFILE:
			a->textfile = optarg;
			break;
		case OPT_TIMEOUT: {
			char *end = NULL;
			unsigned long v;

			errno = 0;
			v = strtoul(optarg, &end, 10);
			if (errno || !end || *end || v == 0 || v > 3600)
				return fail("--ceph-timeout: '%s' is not 1..3600", optarg);
			a->timeout = (unsigned)v;
			break;
		}
		case OPT_INTERVAL: {
			char *end = NULL;
			unsigned long v;

			errno = 0;
			v = strtoul(optarg, &end, 10);
			if (errno || !end || *end || v < 60 || v > 7 * 86400)
				return fail("--interval: '%s' is not 60..604800 seconds", optarg);
			a->interval = (unsigned)v;
			break;
		}
		case OPT_KUBE_API:
			a->kube = true;
			a->kube_server = optarg;
			break;
		case OPT_KUBE_TOKEN:
			a->kube_token_file = optarg;
			break;
		case OPT_KUBE_CA:
			a->kube_ca_file = optarg;
			break;
		case OPT_HELP:
			help();
			return DOCTOR_EXIT_CLEAN;
		default:
			return DOCTOR_EXIT_ERROR; /* getopt printed why */
		}
	}
	if (optind < argc)
		return fail("unexpected argument '%s'", argv[optind]);
	if (a->node) {
		if (a->state_dir[0] != '/' || a->kubelet_dir[0] != '/')
			return fail("--state-dir and --kubelet-dir must be absolute");
		if (a->repair)
			return fail(
			        "--repair: the node mode only reports (NodeUnstageVolume is the "
			        "repair, and only the node plugin may run it)");
		return -1;
	}
	if (a->kube && (a->nodes || a->pvs))
		return fail(
		        "--kube-api reads the nodes and PVs itself: no --nodes or --pvs with it");
	if (!a->config)
		return fail("--config is required");
	if (!a->cluster)
		return fail("--cluster is required");
	if (!!a->secret_dir == !!(a->user || a->keyfile))
		return fail("give either --secret-dir or --user and --keyfile");
	if (!a->secret_dir && (!a->user || !a->keyfile))
		return fail("--user and --keyfile go together");
	return -1;
}

/* Reads a small secret file, without its trailing newline. */
static int read_secret(const char *dir, const char *name, char **ret)
{
	_cleanup_free_ char *path = NULL;
	char *data = NULL;
	size_t size = 0;
	int r;

	if (dir) {
		if (asprintf(&path, "%s/%s", dir, name) < 0) {
			path = NULL;
			return -ENOMEM;
		}
		name = path;
	}
	r = fileio_read_full(name, SECRET_MAX, &data, &size);
	if (r < 0)
		return r;
	while (size > 0 && (data[size - 1] == '\n' || data[size - 1] == '\r'))
		data[--size] = '\0';
	if (size == 0 || strlen(data) != size) {
		explicit_bzero(data, size);
		free(data);
		return -EINVAL;
	}
	*ret = data;
	return 0;
}

static void secret_freep(char **p)
{
	if (*p) {
		explicit_bzero(*p, strlen(*p));
		free(*p);
	}
}

/* ---- inputs from kubectl ---- */

struct lines {
	char *data;
	const char **v;
	size_t n;
};

static void lines_done(struct lines *l)
{
	free(l->data);
	free(l->v);
}

/* Node names: `kubectl get nodes -o json` (items[].metadata.name) or one name per line. Takes
 * data (malloc'ed, size bytes). */
static int parse_nodes(char *data, size_t size, struct lines *ret, json_object **ret_json)
{
	ret->data = data;
	if (data[strspn(data, " \t\r\n")] == '{') {
		json_object *items, *root = json_tokener_parse(data);
		size_t n;

		*ret_json = root;
		if (!root || !json_object_object_get_ex(root, "items", &items) ||
		    !json_object_is_type(items, json_type_array))
			return -EINVAL;
		n = json_object_array_length(items);
		ret->v = calloc(n + 1, sizeof(char *));
		if (!ret->v)
			return -ENOMEM;
		for (size_t i = 0; i < n; i++) {
			json_object *md, *name;

			if (json_object_object_get_ex(json_object_array_get_idx(items, i),
			                              "metadata", &md) &&
			    json_object_object_get_ex(md, "name", &name) &&
			    json_object_is_type(name, json_type_string))
				ret->v[ret->n++] = json_object_get_string(name);
		}
		return 0;
	}
	ret->v = calloc(size / 2 + 2, sizeof(char *));
	if (!ret->v)
		return -ENOMEM;
	for (char *save = NULL, *tok = strtok_r(data, " \t\r\n", &save); tok;
	     tok = strtok_r(NULL, " \t\r\n", &save))
		ret->v[ret->n++] = tok;
	return 0;
}

struct pvs {
	json_object *root;
	struct doctor_pv *v;
	size_t n;
};

static void pvs_done(struct pvs *p)
{
	json_object_put(p->root);
	free(p->v);
}

static const char *json_path_str(json_object *o, const char *a, const char *b, const char *c)
{
	const char *keys[] = { a, b, c };

	for (size_t i = 0; i < ELEMENTSOF(keys) && keys[i]; i++)
		if (!json_object_object_get_ex(o, keys[i], &o))
			return NULL;
	return json_object_is_type(o, json_type_string) ? json_object_get_string(o) : NULL;
}

/* The PVs of driver_name in `kubectl get pv -o json` output (data is NUL-terminated). */
static int parse_pvs(const char *data, const char *driver_name, struct pvs *ret)
{
	json_object *items;
	size_t n;

	ret->root = json_tokener_parse(data);
	if (!ret->root || !json_object_object_get_ex(ret->root, "items", &items) ||
	    !json_object_is_type(items, json_type_array))
		return -EINVAL;
	n = json_object_array_length(items);
	ret->v = calloc(n + 1, sizeof(*ret->v));
	if (!ret->v)
		return -ENOMEM;
	for (size_t i = 0; i < n; i++) {
		json_object *pv = json_object_array_get_idx(items, i);
		const char *driver = json_path_str(pv, "spec", "csi", "driver");
		const char *handle = json_path_str(pv, "spec", "csi", "volumeHandle");
		const char *name = json_path_str(pv, "metadata", "name", NULL);

		if (!driver || strcmp(driver, driver_name) != 0 || !handle || !name)
			continue;
		ret->v[ret->n++] = (struct doctor_pv){ .name = name, .volume_handle = handle };
	}
	return 0;
}

/* Reads the nodes and PVs from files (--nodes, --pvs) or the API server (--kube-api). */
static int read_inputs(const struct args *a, struct lines *nodes, json_object **nodes_json,
                       struct pvs *pvs)
{
	struct kube_api k = { a->kube_server, a->kube_token_file, a->kube_ca_file };
	char *data = NULL;
	size_t size = 0;
	int r;

	if (a->kube || a->nodes) {
		if (a->kube) {
			_cleanup_free_ char *error = NULL;

			r = kube_api_get(&k, "/api/v1/nodes", &data, &size, &error);
			if (r < 0)
				return fail("--kube-api: %s", error ? error : "out of memory");
		} else if ((r = fileio_read_full(a->nodes, INPUT_MAX, &data, &size)) < 0) {
			errno = -r;
			return fail("--nodes: cannot read '%s': %m", a->nodes);
		}
		if (parse_nodes(data, size, nodes, nodes_json) < 0)
			return fail("%s: not a node list", a->kube ? "--kube-api" : "--nodes");
	}
	if (a->kube || a->pvs) {
		_cleanup_free_ char *text = NULL;

		if (a->kube) {
			_cleanup_free_ char *error = NULL;

			r = kube_api_get(&k, "/api/v1/persistentvolumes", &text, &size, &error);
			if (r < 0)
				return fail("--kube-api: %s", error ? error : "out of memory");
		} else if ((r = fileio_read_full(a->pvs, INPUT_MAX, &text, &size)) < 0) {
			errno = -r;
			return fail("--pvs: cannot read '%s': %m", a->pvs);
		}
		if (parse_pvs(text, a->driver_name, pvs) < 0)
			return fail("%s: not a PersistentVolume list (kubectl get pv -o json)",
			            a->kube ? "--kube-api" : "--pvs");
	}
	return -1;
}

/* ---- output ---- */

static void json_add_str(json_object *o, const char *key, const char *value)
{
	json_object_object_add(o, key, value ? json_object_new_string(value) : NULL);
}

static int write_textfile(const char *path, const char *const *kinds, const size_t *counts,
                          size_t n_kinds, bool ok)
{
	_cleanup_free_ char *text = NULL;
	size_t size = 0;
	FILE *f = open_memstream(&text, &size);
	int r;

	if (!f)
		return -ENOMEM;
	fputs("# HELP rbdcsi_doctor_findings Findings of the last rbdcsi doctor run, by kind.\n"
	      "# TYPE rbdcsi_doctor_findings gauge\n",
	      f);
	for (size_t i = 0; i < n_kinds; i++)
		fprintf(f, "rbdcsi_doctor_findings{kind=\"%s\"} %zu\n", kinds[i], counts[i]);
	fprintf(f,
	        "# HELP rbdcsi_doctor_last_run_success 1 when the last doctor run finished.\n"
	        "# TYPE rbdcsi_doctor_last_run_success gauge\n"
	        "rbdcsi_doctor_last_run_success %d\n"
	        "# HELP rbdcsi_doctor_last_run_timestamp_seconds When the last doctor run ended.\n"
	        "# TYPE rbdcsi_doctor_last_run_timestamp_seconds gauge\n"
	        "rbdcsi_doctor_last_run_timestamp_seconds %lld\n",
	        ok ? 1 : 0, (long long)time(NULL));
	if (fclose(f) != 0)
		return -ENOMEM;
	r = fileio_write_atomic(path, text, size, 0644);
	if (r < 0) {
		errno = -r;
		fprintf(stderr, "rbdcsi doctor: --textfile: cannot write '%s': %m\n", path);
	}
	return r;
}

static int textfile_error(const struct args *a, bool node)
{
	size_t counts[_DOCTOR_KIND_MAX] = {};
	const char *kinds[_DOCTOR_KIND_MAX];
	size_t n = node ? _NODE_DOCTOR_KIND_MAX : _DOCTOR_KIND_MAX;

	if (!a->textfile)
		return 0;
	for (size_t i = 0; i < n; i++)
		kinds[i] = node ? node_doctor_kind_to_string(i) : doctor_kind_to_string(i);
	return write_textfile(a->textfile, kinds, counts, n, false);
}

static int print_cluster(const struct args *a, const struct doctor_report *rep)
{
	size_t unrepaired = 0, counts[_DOCTOR_KIND_MAX] = {};
	const char *kinds[_DOCTOR_KIND_MAX];

	for (size_t i = 0; i < rep->n_findings; i++)
		if (!rep->findings[i].repaired) {
			unrepaired++;
			counts[rep->findings[i].kind]++;
		}
	for (size_t i = 0; i < _DOCTOR_KIND_MAX; i++)
		kinds[i] = doctor_kind_to_string(i);

	if (a->json) {
		_cleanup_(json_object_putp) json_object *root = json_object_new_object();
		json_object *arr = json_object_new_array();

		if (!root || !arr)
			return -ENOMEM;
		json_add_str(root, "cluster", a->cluster);
		json_object_object_add(root, "pools", json_object_new_int64(rep->n_pools));
		json_object_object_add(root, "skipped_pools",
		                       json_object_new_int64(rep->n_skipped));
		json_object_object_add(root, "volumes", json_object_new_int64(rep->n_volumes));
		json_object_object_add(root, "snapshots", json_object_new_int64(rep->n_snapshots));
		json_object_object_add(root, "images", json_object_new_int64(rep->n_images));
		json_object_object_add(root, "foreign_images",
		                       json_object_new_int64(rep->n_foreign));
		json_object_object_add(root, "repair", json_object_new_boolean(a->repair));
		for (size_t i = 0; i < rep->n_findings; i++) {
			const struct doctor_finding *f = &rep->findings[i];
			json_object *o = json_object_new_object();

			if (!o)
				return -ENOMEM;
			json_add_str(o, "kind", doctor_kind_to_string(f->kind));
			json_add_str(o, "pool", f->pool);
			json_add_str(o, "namespace", f->rados_namespace);
			json_add_str(o, "object", f->object);
			json_add_str(o, "volume_id", f->volume_id);
			json_add_str(o, "detail", f->detail);
			json_add_str(o, "repair", f->repair);
			json_object_object_add(o, "repaired", json_object_new_boolean(f->repaired));
			json_object_array_add(arr, o);
		}
		json_object_object_add(root, "findings", arr);
		json_object_object_add(root, "unrepaired", json_object_new_int64(unrepaired));
		puts(json_object_to_json_string_ext(root, JSON_C_TO_STRING_PRETTY |
		                                                  JSON_C_TO_STRING_NOSLASHESCAPE));
	} else {
		for (size_t i = 0; i < rep->n_findings; i++) {
			const struct doctor_finding *f = &rep->findings[i];

			printf("%s pool=%s%s%s object=%s%s%s: %s\n", doctor_kind_to_string(f->kind),
			       f->pool, f->rados_namespace[0] ? "/" : "", f->rados_namespace,
			       f->object, f->volume_id ? " volume=" : "", strempty(f->volume_id),
			       f->detail);
			if (f->repair)
				printf("  repair: %s\n", f->repair);
		}
		printf("doctor: cluster %s: %zu pool(s) (%zu not readable, skipped), %zu "
		       "volume(s), "
		       "%zu snapshot(s), %zu image(s) (%zu foreign, ignored): %zu finding(s), %zu "
		       "left\n",
		       a->cluster, rep->n_pools, rep->n_skipped, rep->n_volumes, rep->n_snapshots,
		       rep->n_images, rep->n_foreign, rep->n_findings, unrepaired);
	}
	fflush(stdout);
	if (a->textfile)
		write_textfile(a->textfile, kinds, counts, _DOCTOR_KIND_MAX, true);
	return unrepaired ? DOCTOR_EXIT_FINDINGS : DOCTOR_EXIT_CLEAN;
}

static int print_node(const struct args *a, const struct node_doctor_report *rep)
{
	size_t counts[_NODE_DOCTOR_KIND_MAX] = {};
	const char *kinds[_NODE_DOCTOR_KIND_MAX];

	for (size_t i = 0; i < rep->n_findings; i++)
		counts[rep->findings[i].kind]++;
	for (size_t i = 0; i < _NODE_DOCTOR_KIND_MAX; i++)
		kinds[i] = node_doctor_kind_to_string(i);
	if (a->json) {
		_cleanup_(json_object_putp) json_object *root = json_object_new_object();
		json_object *arr = json_object_new_array();

		if (!root || !arr)
			return -ENOMEM;
		json_object_object_add(root, "states", json_object_new_int64(rep->n_states));
		for (size_t i = 0; i < rep->n_findings; i++) {
			const struct node_doctor_finding *f = &rep->findings[i];
			json_object *o = json_object_new_object();

			if (!o)
				return -ENOMEM;
			json_add_str(o, "kind", node_doctor_kind_to_string(f->kind));
			json_add_str(o, "path", f->path);
			json_add_str(o, "volume_id", f->volume_id);
			json_add_str(o, "detail", f->detail);
			json_object_array_add(arr, o);
		}
		json_object_object_add(root, "findings", arr);
		puts(json_object_to_json_string_ext(root, JSON_C_TO_STRING_PRETTY |
		                                                  JSON_C_TO_STRING_NOSLASHESCAPE));
	} else {
		for (size_t i = 0; i < rep->n_findings; i++) {
			const struct node_doctor_finding *f = &rep->findings[i];

			printf("%s path=%s%s%s: %s\n", node_doctor_kind_to_string(f->kind), f->path,
			       f->volume_id ? " volume=" : "", strempty(f->volume_id), f->detail);
		}
		printf("doctor: node: %zu state file(s): %zu finding(s)\n", rep->n_states,
		       rep->n_findings);
	}
	fflush(stdout);
	if (a->textfile)
		write_textfile(a->textfile, kinds, counts, _NODE_DOCTOR_KIND_MAX, true);
	return rep->n_findings ? DOCTOR_EXIT_FINDINGS : DOCTOR_EXIT_CLEAN;
}

static int run_node(const struct args *a)
{
	_cleanup_(node_doctor_report_freep) struct node_doctor_report *rep = NULL;
	_cleanup_free_ char *state_dir = NULL, *staging_root = NULL;
	int r;

	if (asprintf(&state_dir, "%s/%s/stage", a->state_dir, a->driver_name) < 0 ||
	    asprintf(&staging_root, "%s/plugins/kubernetes.io/csi/%s", a->kubelet_dir,
	             a->driver_name) < 0)
		return fail("out of memory");
	r = node_doctor_run(state_dir, staging_root, &rep);
	if (r < 0) {
		errno = -r;
		textfile_error(a, true);
		return fail("looking at %s failed: %m", state_dir);
	}
	r = print_node(a, rep);
	return r < 0 ? fail("out of memory") : r;
}

static int run_cluster(const struct args *a)
{
	_cleanup_(doctor_report_freep) struct doctor_report *rep = NULL;
	_cleanup_(secret_freep) char *key = NULL;
	_cleanup_free_ char *user = NULL, *error = NULL;
	_cleanup_(lines_done) struct lines nodes = {};
	_cleanup_(json_object_putp) json_object *nodes_json = NULL;
	_cleanup_(pvs_done) struct pvs pvs = {};
	_cleanup_cluster_unref_ struct cluster *c = NULL;
	struct config *config = NULL;
	struct config_cluster cl = {};
	struct doctor_options o;
	int r;

	r = config_load(a->config, &config, &error);
	if (r < 0) {
		errno = -r;
		return error ? fail("--config: %s", error) : fail("--config: '%s': %m", a->config);
	}
	r = config_get_cluster(config, a->cluster, &cl);
	config = config_free(config);
	if (r < 0)
		return fail("--cluster: '%s' is not in %s", a->cluster, a->config);

	if (a->secret_dir)
		r = read_secret(a->secret_dir, "userID", &user);
	else
		r = (user = strdup(a->user)) ? 0 : -ENOMEM;
	if (r >= 0)
		r = read_secret(a->secret_dir, a->secret_dir ? "userKey" : a->keyfile, &key);
	if (r < 0) {
		errno = -r;
		config_cluster_done(&cl);
		return fail("cannot read the user or key from %s: %m",
		            a->secret_dir ? a->secret_dir : a->keyfile);
	}
	r = read_inputs(a, &nodes, &nodes_json, &pvs);
	if (r >= 0) {
		config_cluster_done(&cl);
		textfile_error(a, false);
		return r;
	}

	{
		struct cluster_credentials cred = {
			.cluster_id = a->cluster,
			.monitors = cl.mon_host,
			.user = user,
			.key = key,
		};
		struct cluster_timeouts to = { a->timeout, a->timeout, a->timeout };

		r = cluster_connect(&cred, &to, &c);
	}
	if (r < 0) {
		errno = -r;
		config_cluster_done(&cl);
		textfile_error(a, false);
		return fail("cannot connect to cluster %s: %m", a->cluster);
	}
	o = (struct doctor_options){
		.cluster_id = a->cluster,
		.rados_namespace = a->rados_namespace ? a->rados_namespace : cl.rados_namespace,
		.pools = a->n_pools ? a->pools : NULL,
		.n_pools = a->n_pools,
		.prefixes = a->n_prefixes ? a->prefixes : NULL,
		.n_prefixes = a->n_prefixes,
		.nodes = nodes.v,
		.n_nodes = nodes.n,
		.have_nodes = a->nodes || a->kube,
		.pvs = pvs.v,
		.n_pvs = pvs.n,
		.have_pvs = a->pvs || a->kube,
		.repair = a->repair,
	};
	r = doctor_run(c, &o, &rep);
	config_cluster_done(&cl);
	if (r < 0) {
		errno = -r;
		textfile_error(a, false);
		return fail("looking at cluster %s failed: %m", a->cluster);
	}
	r = print_cluster(a, rep);
	return r < 0 ? fail("out of memory") : r;
}

int doctor_main(int argc, char *argv[])
{
	struct args a;
	int r;

	r = parse_argv(argc, argv, &a);
	if (r >= 0)
		return r;
	if (a.interval && a.repair)
		return fail("--interval and --repair: repairs are run by hand, not on a timer");
	for (;;) {
		struct timespec ts = { .tv_sec = a.interval };

		r = a.node ? run_node(&a) : run_cluster(&a);
		if (!a.interval)
			return r;
		/* A sidecar: the findings go to --textfile (and stdout); wait for the next run. */
		while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
			;
	}
}
