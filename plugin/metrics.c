/* SPDX-License-Identifier: Apache-2.0 */
#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <pthread.h>
#include <stddef.h>

#include <microhttpd.h>

#include "driver/base/dlib.h"
#include "driver/base/fileio.h"
#include "driver/host/mapper.h"
#include "driver/host/node_doctor.h"
#include "driver/ceph/cluster.h"
#include "plugin/config.h"
#include "plugin/locks.h"
#include "plugin/metrics.h"
#include "plugin/plugin.h"

/*
 * libmicrohttpd is loaded (dlopen) when the metrics server starts, not linked: with its TLS
 * stack (gnutls, nettle, p11-kit, ...) it costs about 2.6 MiB of RSS, which a plugin started
 * without --metrics-address would pay for nothing (measured: 12.3 vs 9.7 MiB for a process
 * that only loads rbdcsi's libraries). The same scheme as driver/ceph/ceph_lib.h, through the
 * same driver/base/dlib.h: the functions used are listed once, a table of __typeof__ pointers is
 * filled once, and macros route the names through it, so the calls below read as plain
 * libmicrohttpd calls.
 */
#define MHD_SONAME "libmicrohttpd.so.12"
#define MHD_FUNCTIONS(X)                   \
	X(MHD_add_response_header)         \
	X(MHD_create_response_from_buffer) \
	X(MHD_destroy_response)            \
	X(MHD_queue_response)              \
	X(MHD_start_daemon)                \
	X(MHD_stop_daemon)

static struct mhd_table {
#define MHD_FIELD(f) __typeof__(f) *f;
	MHD_FUNCTIONS(MHD_FIELD)
#undef MHD_FIELD
} mhd;
static pthread_once_t mhd_once = PTHREAD_ONCE_INIT;
static int mhd_error;

static void mhd_load_once(void)
{
	static const struct dlib_symbol symbols[] = {
#define MHD_SYMBOL(f) { #f, offsetof(struct mhd_table, f) },
		MHD_FUNCTIONS(MHD_SYMBOL)
#undef MHD_SYMBOL
	};
	struct mhd_table t = {};

	mhd_error = dlib_resolve(MHD_SONAME, symbols, ELEMENTSOF(symbols), &t);
	if (mhd_error < 0)
		log_error_errno(mhd_error, "Cannot load %s for --metrics-address: %m", MHD_SONAME);
	else
		mhd = t;
}

/* Loads libmicrohttpd once; -ELIBACC (not there) or -ELIBBAD (a function missing). */
static int mhd_load(void)
{
	(void)pthread_once(&mhd_once, mhd_load_once);
	return mhd_error;
}

#define MHD_add_response_header         (mhd.MHD_add_response_header)
#define MHD_create_response_from_buffer (mhd.MHD_create_response_from_buffer)
#define MHD_destroy_response            (mhd.MHD_destroy_response)
#define MHD_queue_response              (mhd.MHD_queue_response)
#define MHD_start_daemon                (mhd.MHD_start_daemon)
#define MHD_stop_daemon                 (mhd.MHD_stop_daemon)

/* Latency buckets in seconds: CSI calls range from sub-millisecond (Probe) to minutes (mkfs). */
static const double buckets[] = { 0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25,
	                          0.5,   1,     2.5,  5,     10,   30,  60 };
#define N_BUCKETS (sizeof(buckets) / sizeof(buckets[0]))

static const char *const ceph_operations[] = { "connect", "create",   "delete", "resize", "lookup",
	                                       "list",    "snapshot", "clone",  "attach", "other" };
#define N_CEPH_OPS (sizeof(ceph_operations) / sizeof(ceph_operations[0]))

/* Mappers of rbdcsi_node_stages_total (mapper_type_to_string() names). */
static const char *const stage_mappers[] = { "krbd", "nbd", "fuse" };
#define N_STAGE_MAPPERS (sizeof(stage_mappers) / sizeof(stage_mappers[0]))

struct method_metrics {
	atomic_int_fast64_t in_flight;
	atomic_uint_fast64_t lock_conflicts;
	atomic_uint_fast64_t calls[_STATUS_MAX];
	atomic_uint_fast64_t bucket[N_BUCKETS + 1]; /* last: +Inf */
	atomic_uint_fast64_t sum_usec;
};

#define CONNECTIONS_MAX     64
#define DOCTOR_TEXTFILE     "doctor.prom" /* under <state-dir>/<drivername>/ */
#define DOCTOR_TEXTFILE_MAX (64U * 1024U)

/* The last connection result of a cluster. */
struct connection_state {
	char cluster_id[CONFIG_CLUSTER_ID_MAX + 1];
	bool up;
	time_t at;
};

struct metrics {
	pthread_mutex_t connections_lock;
	struct connection_state connections[CONNECTIONS_MAX];
	size_t n_connections;
	size_t n_methods;
	struct method_metrics *methods;
	atomic_uint_fast64_t ceph_errors[N_CEPH_OPS];
	atomic_uint_fast64_t node_stages[N_STAGE_MAPPERS];
	struct MHD_Daemon *daemon;
	struct plugin *plugin;
	time_t start_time;
};

struct metrics *metrics_new(size_t n_methods)
{
	struct metrics *m = calloc(1, sizeof(*m));

	if (!m)
		return NULL;
	m->methods = calloc(n_methods ? n_methods : 1, sizeof(*m->methods));
	if (!m->methods) {
		free(m);
		return NULL;
	}
	m->n_methods = n_methods;
	m->start_time = time(NULL);
	pthread_mutex_init(&m->connections_lock, NULL);
	return m;
}

struct metrics *metrics_free(struct metrics *m)
{
	if (!m)
		return NULL;
	metrics_stop(m);
	pthread_mutex_destroy(&m->connections_lock);
	free(m->methods);
	free(m);
	return NULL;
}

void metrics_observe_call(struct metrics *m, size_t method, enum status_code code,
                          uint64_t duration_usec)
{
	struct method_metrics *mm;
	size_t b = 0;

	if (!m || method >= m->n_methods)
		return;
	if ((int)code < 0 || code >= _STATUS_MAX) {
		atomic_fetch_sub(&m->methods[method].in_flight, 1);
		return;
	}
	mm = &m->methods[method];
	atomic_fetch_sub(&mm->in_flight, 1);
	atomic_fetch_add(&mm->calls[code], 1);
	while (b < N_BUCKETS && (double)duration_usec / 1e6 > buckets[b])
		b++;
	atomic_fetch_add(&mm->bucket[b], 1);
	atomic_fetch_add(&mm->sum_usec, duration_usec);
}

void metrics_call_begin(struct metrics *m, size_t method)
{
	if (m && method < m->n_methods)
		atomic_fetch_add(&m->methods[method].in_flight, 1);
}

void metrics_lock_conflict(struct metrics *m, size_t method)
{
	if (m && method < m->n_methods)
		atomic_fetch_add(&m->methods[method].lock_conflicts, 1);
}

void metrics_ceph_connection(struct metrics *m, const char *cluster_id, int result)
{
	size_t i;

	if (!m || !cluster_id || strlen(cluster_id) > CONFIG_CLUSTER_ID_MAX)
		return;
	pthread_mutex_lock(&m->connections_lock);
	for (i = 0; i < m->n_connections; i++)
		if (strcmp(m->connections[i].cluster_id, cluster_id) == 0)
			break;
	if (i == m->n_connections && i < CONNECTIONS_MAX) {
		snprintf(m->connections[i].cluster_id, sizeof(m->connections[i].cluster_id), "%s",
		         cluster_id);
		m->n_connections++;
	}
	if (i < m->n_connections) {
		m->connections[i].up = result >= 0;
		m->connections[i].at = time(NULL);
	}
	pthread_mutex_unlock(&m->connections_lock);
}

void metrics_ceph_error(struct metrics *m, const char *operation)
{
	size_t i;

	if (!m)
		return;
	for (i = 0; i < N_CEPH_OPS - 1; i++)
		if (strcmp(operation, ceph_operations[i]) == 0)
			break;
	atomic_fetch_add(&m->ceph_errors[i], 1);
}

void metrics_node_stage(struct metrics *m, const char *mapper)
{
	if (!m || !mapper)
		return;
	for (size_t i = 0; i < N_STAGE_MAPPERS; i++)
		if (strcmp(mapper, stage_mappers[i]) == 0)
			atomic_fetch_add(&m->node_stages[i], 1);
}

struct buf {
	char *data;
	size_t len, cap;
	bool failed;
};

_printf_(2, 3) static void put(struct buf *b, const char *format, ...)
{
	va_list ap;
	int n;

	if (b->failed)
		return;
	for (;;) {
		va_start(ap, format);
		n = vsnprintf(b->data + b->len, b->cap - b->len, format, ap);
		va_end(ap);
		if (n < 0) {
			b->failed = true;
			return;
		}
		if ((size_t)n < b->cap - b->len) {
			b->len += (size_t)n;
			return;
		}
		size_t cap = MAX(b->cap * 2, b->len + (size_t)n + 1);
		char *d = realloc(b->data, cap);
		if (!d) {
			b->failed = true;
			return;
		}
		b->data = d;
		b->cap = cap;
	}
}

/* Process metrics from /proc/self, as the Prometheus client libraries name them. */
static void put_process(struct buf *b, const struct metrics *m)
{
	unsigned long utime = 0, stime = 0, vsize = 0;
	long rss = 0, threads = 0;
	long tick = sysconf(_SC_CLK_TCK), page = sysconf(_SC_PAGESIZE);
	unsigned fds = 0;
	char line[1024];
	FILE *f;
	DIR *d;

	f = fopen("/proc/self/stat", "re");
	if (f) {
		if (fgets(line, sizeof(line), f)) {
			char *p = strrchr(line, ')');
			/* Fields after the command: state(3) ... utime(14) stime(15) ...
			 * num_threads(20) ... vsize(23) rss(24). */
			if (p &&
			    sscanf(p + 2,
			           "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu %*d %*d "
			           "%*d %*d %ld %*d %*u %lu %ld",
			           &utime, &stime, &threads, &vsize, &rss) != 5)
				utime = stime = vsize = 0, rss = threads = 0;
		}
		fclose(f);
	}
	d = opendir("/proc/self/fd");
	if (d) {
		struct dirent *de;
		while ((de = readdir(d)))
			if (de->d_name[0] != '.')
				fds++;
		closedir(d);
	}
	put(b,
	    "# HELP process_cpu_seconds_total User and system CPU time spent in seconds.\n"
	    "# TYPE process_cpu_seconds_total counter\nprocess_cpu_seconds_total %.2f\n",
	    tick > 0 ? (double)(utime + stime) / (double)tick : 0.0);
	put(b,
	    "# HELP process_resident_memory_bytes Resident memory size in bytes.\n"
	    "# TYPE process_resident_memory_bytes gauge\nprocess_resident_memory_bytes %ld\n",
	    rss * page);
	put(b,
	    "# HELP process_virtual_memory_bytes Virtual memory size in bytes.\n"
	    "# TYPE process_virtual_memory_bytes gauge\nprocess_virtual_memory_bytes %lu\n",
	    vsize);
	put(b,
	    "# HELP process_open_fds Number of open file descriptors.\n"
	    "# TYPE process_open_fds gauge\nprocess_open_fds %u\n",
	    fds);
	put(b,
	    "# HELP process_threads Number of OS threads.\n"
	    "# TYPE process_threads gauge\nprocess_threads %ld\n",
	    threads);
	put(b,
	    "# HELP process_start_time_seconds Start time of the process since the epoch.\n"
	    "# TYPE process_start_time_seconds gauge\nprocess_start_time_seconds %lld\n",
	    (long long)m->start_time);
}

/* Volumes staged on this node: the state files the node plugin keeps, one per volume. */
static long count_staged(const struct plugin *p)
{
	char path[4096];
	struct dirent *de;
	long n = 0;
	DIR *d;

	snprintf(path, sizeof(path), "%s/%s/stage", p->opt.state_dir, p->opt.driver_name);
	d = opendir(path);
	if (!d)
		return 0;
	while ((de = readdir(d))) {
		size_t l = strlen(de->d_name);
		if (l > 5 && strcmp(de->d_name + l - 5, ".json") == 0)
			n++;
	}
	closedir(d);
	return n;
}

#define LOCK_AGES_MAX 1024

/* Calls in flight, lock conflicts and the oldest operation holding a lock, by method. */
static void put_operations(struct buf *b, struct metrics *m, struct plugin *p,
                           const struct method *methods, size_t n)
{
	static const char *holders[LOCK_AGES_MAX];
	static uint64_t ages[LOCK_AGES_MAX];
	static pthread_mutex_t ages_lock = PTHREAD_MUTEX_INITIALIZER;
	unsigned n_ages;

	put(b, "# HELP rbdcsi_calls_in_flight CSI calls being served now, by method.\n"
	       "# TYPE rbdcsi_calls_in_flight gauge\n");
	for (size_t i = 0; i < n; i++)
		if (methods[i].handler && (methods[i].modes & p->opt.mode))
			put(b, "rbdcsi_calls_in_flight{method=\"%s\"} %lld\n", methods[i].name,
			    (long long)MAX(atomic_load(&m->methods[i].in_flight), 0));
	put(b, "# HELP rbdcsi_operation_lock_conflicts_total Calls answered ABORTED because "
	       "another operation held the volume, by method.\n"
	       "# TYPE rbdcsi_operation_lock_conflicts_total counter\n");
	for (size_t i = 0; i < n; i++)
		if (methods[i].handler && (methods[i].modes & p->opt.mode))
			put(b, "rbdcsi_operation_lock_conflicts_total{method=\"%s\"} %llu\n",
			    methods[i].name,
			    (unsigned long long)atomic_load(&m->methods[i].lock_conflicts));

	/* The scrape threads share one buffer: libmicrohttpd may serve two scrapes at once. */
	pthread_mutex_lock(&ages_lock);
	n_ages = p->locks ? locks_ages(p->locks, holders, ages, LOCK_AGES_MAX) : 0;
	put(b, "# HELP rbdcsi_operation_oldest_seconds Age of the oldest operation holding a "
	       "volume lock, by method (0: none).\n"
	       "# TYPE rbdcsi_operation_oldest_seconds gauge\n");
	for (size_t i = 0; i < n; i++) {
		uint64_t oldest = 0;

		if (!methods[i].handler || !(methods[i].modes & p->opt.mode))
			continue;
		for (unsigned k = 0; k < n_ages; k++)
			if (holders[k] && strcmp(holders[k], methods[i].name) == 0)
				oldest = MAX(oldest, ages[k]);
		put(b, "rbdcsi_operation_oldest_seconds{method=\"%s\"} %.3f\n", methods[i].name,
		    (double)oldest / 1e6);
	}
	pthread_mutex_unlock(&ages_lock);
}

/* The last connection result per cluster, and the connections open now. */
static void put_connections(struct buf *b, struct metrics *m, struct plugin *p)
{
	if (!(p->opt.mode & PLUGIN_MODE_CONTROLLER))
		return;
	put(b, "# HELP rbdcsi_ceph_connection_up Whether the last connection attempt to a Ceph "
	       "cluster succeeded (1) or failed (0), by clusterID.\n"
	       "# TYPE rbdcsi_ceph_connection_up gauge\n");
	pthread_mutex_lock(&m->connections_lock);
	for (size_t i = 0; i < m->n_connections; i++)
		put(b, "rbdcsi_ceph_connection_up{cluster=\"%s\"} %d\n",
		    m->connections[i].cluster_id, m->connections[i].up ? 1 : 0);
	put(b, "# HELP rbdcsi_ceph_connection_last_attempt_timestamp_seconds When a connection "
	       "to the cluster was last asked for.\n"
	       "# TYPE rbdcsi_ceph_connection_last_attempt_timestamp_seconds gauge\n");
	for (size_t i = 0; i < m->n_connections; i++)
		put(b,
		    "rbdcsi_ceph_connection_last_attempt_timestamp_seconds{cluster=\"%s\"} %lld\n",
		    m->connections[i].cluster_id, (long long)m->connections[i].at);
	pthread_mutex_unlock(&m->connections_lock);
	put(b,
	    "# HELP rbdcsi_ceph_connections Ceph connections open (cached) now.\n"
	    "# TYPE rbdcsi_ceph_connections gauge\nrbdcsi_ceph_connections %zu\n",
	    p->clusters ? cluster_cache_size(p->clusters) : 0);
}

/* Staged volumes by mapper and by condition, from the state files and the mount table. */
static void put_node(struct buf *b, struct plugin *p)
{
	_cleanup_(node_doctor_report_freep) struct node_doctor_report *rep = NULL;
	char state_dir[4096], staging_root[4096];

	snprintf(state_dir, sizeof(state_dir), "%s/%s/stage", p->opt.state_dir, p->opt.driver_name);
	snprintf(staging_root, sizeof(staging_root), "%s/plugins/kubernetes.io/csi/%s",
	         p->opt.kubelet_dir, p->opt.driver_name);
	if (node_doctor_run(state_dir, staging_root, &rep) < 0)
		return;
	put(b, "# HELP rbdcsi_node_staged_volumes_by_mapper Volumes staged on this node, by "
	       "mapper.\n"
	       "# TYPE rbdcsi_node_staged_volumes_by_mapper gauge\n");
	for (int t = MAPPER_AUTO + 1; t < _MAPPER_MAX; t++)
		put(b, "rbdcsi_node_staged_volumes_by_mapper{mapper=\"%s\"} %zu\n",
		    mapper_type_to_string(t), rep->n_by_mapper[t]);
	put(b,
	    "# HELP rbdcsi_node_volume_condition Volumes staged on this node, by condition "
	    "(abnormal: the mount or the device the state records is gone).\n"
	    "# TYPE rbdcsi_node_volume_condition gauge\n"
	    "rbdcsi_node_volume_condition{condition=\"normal\"} %zu\n"
	    "rbdcsi_node_volume_condition{condition=\"abnormal\"} %zu\n",
	    rep->n_states - rep->n_abnormal, rep->n_abnormal);
	put(b,
	    "# HELP rbdcsi_node_mounts_without_state Mounts in this driver's staging directory "
	    "that no stage state describes.\n"
	    "# TYPE rbdcsi_node_mounts_without_state gauge\nrbdcsi_node_mounts_without_state "
	    "%zu\n",
	    rep->n_findings - rep->n_abnormal);
}

/* The findings the last `rbdcsi doctor --textfile` wrote next to the state, when there are
 * any: only its rbdcsi_doctor_ lines are passed on. */
static void put_doctor(struct buf *b, struct plugin *p)
{
	_cleanup_free_ char *path = NULL, *text = NULL;
	char *line, *save = NULL;

	if (asprintf(&path, "%s/%s/%s", p->opt.state_dir, p->opt.driver_name, DOCTOR_TEXTFILE) <
	    0) {
		path = NULL;
		return;
	}
	if (fileio_read_full(path, DOCTOR_TEXTFILE_MAX, &text, NULL) < 0)
		return;
	for (line = strtok_r(text, "\n", &save); line; line = strtok_r(NULL, "\n", &save))
		if (strncmp(line, "rbdcsi_doctor_", 14) == 0 ||
		    strncmp(line, "# HELP rbdcsi_doctor_", 21) == 0 ||
		    strncmp(line, "# TYPE rbdcsi_doctor_", 21) == 0)
			put(b, "%s\n", line);
}

int metrics_render(struct metrics *m, struct plugin *p, char **ret_text, size_t *ret_len)
{
	struct buf b = { 0 };
	const struct method *methods;
	size_t n;

	methods = plugin_methods(&n);
	n = MIN(n, m->n_methods);
	put(&b, "# HELP rbdcsi_calls_total CSI calls finished, by method and gRPC status code.\n"
	        "# TYPE rbdcsi_calls_total counter\n");
	for (size_t i = 0; i < n; i++)
		for (int code = 0; code < _STATUS_MAX; code++) {
			uint64_t v = atomic_load(&m->methods[i].calls[code]);
			if (v)
				put(&b, "rbdcsi_calls_total{method=\"%s\",code=\"%s\"} %llu\n",
				    methods[i].name, status_to_string(code), (unsigned long long)v);
		}
	put(&b, "# HELP rbdcsi_call_duration_seconds Time to serve a CSI call, by method.\n"
	        "# TYPE rbdcsi_call_duration_seconds histogram\n");
	for (size_t i = 0; i < n; i++) {
		const struct method_metrics *mm = &m->methods[i];
		uint64_t cum = 0;

		for (size_t k = 0; k <= N_BUCKETS; k++)
			cum += atomic_load(&mm->bucket[k]);
		if (cum == 0)
			continue;
		cum = 0;
		for (size_t k = 0; k < N_BUCKETS; k++) {
			cum += atomic_load(&mm->bucket[k]);
			put(&b,
			    "rbdcsi_call_duration_seconds_bucket{method=\"%s\",le=\"%g\"} %llu\n",
			    methods[i].name, buckets[k], (unsigned long long)cum);
		}
		cum += atomic_load(&mm->bucket[N_BUCKETS]);
		put(&b, "rbdcsi_call_duration_seconds_bucket{method=\"%s\",le=\"+Inf\"} %llu\n",
		    methods[i].name, (unsigned long long)cum);
		put(&b, "rbdcsi_call_duration_seconds_sum{method=\"%s\"} %.6f\n", methods[i].name,
		    (double)atomic_load(&mm->sum_usec) / 1e6);
		put(&b, "rbdcsi_call_duration_seconds_count{method=\"%s\"} %llu\n", methods[i].name,
		    (unsigned long long)cum);
	}
	put(&b, "# HELP rbdcsi_ceph_errors_total Failed Ceph operations, by operation.\n"
	        "# TYPE rbdcsi_ceph_errors_total counter\n");
	for (size_t i = 0; i < N_CEPH_OPS; i++)
		put(&b, "rbdcsi_ceph_errors_total{operation=\"%s\"} %llu\n", ceph_operations[i],
		    (unsigned long long)atomic_load(&m->ceph_errors[i]));
	put(&b,
	    "# HELP rbdcsi_operations_in_flight Volume operations holding a lock now.\n"
	    "# TYPE rbdcsi_operations_in_flight gauge\nrbdcsi_operations_in_flight %u\n",
	    p->locks ? locks_count(p->locks) : 0);
	if (p->opt.mode & PLUGIN_MODE_NODE)
		put(&b,
		    "# HELP rbdcsi_node_staged_volumes Volumes staged (mapped) on this node.\n"
		    "# TYPE rbdcsi_node_staged_volumes gauge\nrbdcsi_node_staged_volumes %ld\n",
		    count_staged(p));
	put_operations(&b, m, p, methods, n);
	put_connections(&b, m, p);
	if (p->opt.mode & PLUGIN_MODE_NODE)
		put_node(&b, p);
	put_doctor(&b, p);
	if (p->opt.mode & PLUGIN_MODE_NODE) {
		put(&b, "# HELP rbdcsi_node_stages_total Successful NodeStageVolume calls since "
		        "start, by the mapper of the volume.\n"
		        "# TYPE rbdcsi_node_stages_total counter\n");
		for (size_t i = 0; i < N_STAGE_MAPPERS; i++)
			put(&b, "rbdcsi_node_stages_total{mapper=\"%s\"} %llu\n", stage_mappers[i],
			    (unsigned long long)atomic_load(&m->node_stages[i]));
	}
	put(&b,
	    "# HELP rbdcsi_ready Whether the plugin serves calls (1) or not (0).\n"
	    "# TYPE rbdcsi_ready gauge\nrbdcsi_ready %d\n",
	    atomic_load(&p->ready) ? 1 : 0);
	put(&b,
	    "# HELP rbdcsi_build_info The version of rbdcsi.\n"
	    "# TYPE rbdcsi_build_info gauge\nrbdcsi_build_info{version=\"%s\"} 1\n",
	    RBDCSI_VERSION);
	put_process(&b, m);
	if (b.failed) {
		free(b.data);
		return -ENOMEM;
	}
	*ret_text = b.data;
	*ret_len = b.len;
	return 0;
}

static enum MHD_Result answer(void *cls, struct MHD_Connection *conn, const char *url,
                              const char *method, const char *version, const char *upload_data,
                              size_t *upload_data_size, void **con_cls)
{
	struct metrics *m = cls;
	struct MHD_Response *resp;
	enum MHD_Result ret;
	unsigned status = MHD_HTTP_OK;
	char *text = NULL;
	size_t len = 0;
	const char *type = "text/plain; charset=utf-8";

	(void)version;
	(void)upload_data;
	(void)upload_data_size;
	(void)con_cls;
	if (strcmp(method, "GET") != 0 && strcmp(method, "HEAD") != 0) {
		text = strdup("method not allowed\n");
		status = MHD_HTTP_METHOD_NOT_ALLOWED;
	} else if (strcmp(url, "/metrics") == 0) {
		if (metrics_render(m, m->plugin, &text, &len) < 0) {
			text = strdup("out of memory\n");
			status = MHD_HTTP_INTERNAL_SERVER_ERROR;
		} else
			type = "text/plain; version=0.0.4; charset=utf-8";
	} else if (strcmp(url, "/healthz") == 0) {
		bool ready = atomic_load(&m->plugin->ready);

		text = strdup(ready ? "ok\n" : "not ready\n");
		status = ready ? MHD_HTTP_OK : MHD_HTTP_SERVICE_UNAVAILABLE;
	} else {
		text = strdup("not found: try /metrics or /healthz\n");
		status = MHD_HTTP_NOT_FOUND;
	}
	if (!text)
		return MHD_NO;
	if (len == 0)
		len = strlen(text);
	resp = MHD_create_response_from_buffer(len, text, MHD_RESPMEM_MUST_FREE);
	if (!resp) {
		free(text);
		return MHD_NO;
	}
	MHD_add_response_header(resp, "Content-Type", type);
	ret = MHD_queue_response(conn, status, resp);
	MHD_destroy_response(resp);
	return ret;
}

static int parse_address(const char *address, struct sockaddr_storage *ret, bool *ret_v6)
{
	const char *colon = strrchr(address, ':');
	char host[128];
	unsigned long port;
	char *end;

	if (!colon || colon - address >= (long)sizeof(host))
		return -EINVAL;
	errno = 0;
	port = strtoul(colon + 1, &end, 10);
	if (errno || *end || port == 0 || port > 65535)
		return -EINVAL;
	memcpy(host, address, (size_t)(colon - address));
	host[colon - address] = 0;
	memset(ret, 0, sizeof(*ret));
	if (host[0] == '[') {
		struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)ret;
		size_t l = strlen(host);

		if (l < 2 || host[l - 1] != ']')
			return -EINVAL;
		host[l - 1] = 0;
		s6->sin6_family = AF_INET6;
		s6->sin6_port = htons((uint16_t)port);
		if (inet_pton(AF_INET6, host + 1, &s6->sin6_addr) != 1)
			return -EINVAL;
		*ret_v6 = true;
	} else {
		struct sockaddr_in *s4 = (struct sockaddr_in *)ret;

		s4->sin_family = AF_INET;
		s4->sin_port = htons((uint16_t)port);
		if (host[0] == 0)
			s4->sin_addr.s_addr = htonl(INADDR_ANY);
		else if (inet_pton(AF_INET, host, &s4->sin_addr) != 1)
			return -EINVAL;
		*ret_v6 = false;
	}
	return 0;
}

int metrics_serve(struct metrics *m, struct plugin *p, const char *address)
{
	struct sockaddr_storage sa;
	bool v6 = false;
	int r;

	r = parse_address(address, &sa, &v6);
	if (r < 0)
		return r;
	r = mhd_load();
	if (r < 0)
		return r;
	m->plugin = p;
	m->daemon = MHD_start_daemon(
	        MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_ERROR_LOG | (v6 ? MHD_USE_IPv6 : 0), 0,
	        NULL, NULL, answer, m, MHD_OPTION_SOCK_ADDR, &sa, MHD_OPTION_CONNECTION_LIMIT, 16u,
	        MHD_OPTION_CONNECTION_TIMEOUT, 10u, MHD_OPTION_END);
	if (!m->daemon)
		return -EADDRINUSE;
	return 0;
}

void metrics_stop(struct metrics *m)
{
	if (m && m->daemon) {
		MHD_stop_daemon(m->daemon);
		m->daemon = NULL;
	}
}
