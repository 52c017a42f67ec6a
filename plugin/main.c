/* SPDX-License-Identifier: Apache-2.0 */
/*
 * rbdcsi: the CSI driver for Ceph RBD. One binary; --mode selects the controller plugin, the node
 * plugin or both. Parses flags, loads the cluster configuration, takes the endpoint lock, serves
 * gRPC until SIGTERM/SIGINT, then stops within the grace period and exits 0.
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <limits.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <malloc.h>

#include <json-c/json.h>

#include "driver/base/failpoint.h"
#include "driver/base/log.h"
#include "driver/base/monotonic.h"
#include "driver/base/path.h"
#include "driver/ceph/cluster.h"
#include "plugin/ceph_access.h"
#include "plugin/capabilities.h"
#include "plugin/config.h"
#include "plugin/doctor_cmd.h"
#include "plugin/endpoint.h"
#include "plugin/locks.h"
#include "plugin/metrics.h"
#include "plugin/node.h"
#include "plugin/plugin.h"
#include "plugin/transport.h"

#define EXIT_USAGE 2

/* How often the main loop does housekeeping (config reload, idle connections). */
#define HOUSEKEEPING_SECONDS 15

/* The gRPC edge's limits (plugin/transport.h); 0 means the transport's default. */
static struct transport_options arg_transport;

static void help(void)
{
	printf("Usage: rbdcsi [OPTIONS]\n"
	       "A Container Storage Interface (CSI v1) driver for Ceph RBD.\n\n"
	       "  --mode=controller|node|all    which CSI services to serve (default all)\n"
	       "  --endpoint=unix:///PATH       socket to serve on (default "
	       "unix:///csi/csi.sock)\n"
	       "  --drivername=NAME             CSI driver name (default rbdcsi.io)\n"
	       "  --nodeid=ID                   this node's id (required for node mode)\n"
	       "  --config=FILE                 cluster configuration (JSON list of clusterID,\n"
	       "                                monitors, radosNamespace)\n"
	       "  --controller-secrets-dir=DIR  Ceph credentials (userID, userKey files; per\n"
	       "                                cluster in DIR/<clusterID>/) for controller calls\n"
	       "                                that carry no secrets (ControllerPublish, ...)\n"
	       "  --log-level=LEVEL             debug, info, warn or error (default info)\n"
	       "  --log-format=FORMAT           text (logfmt) or json (default text)\n"
	       "  --workers=N                   gRPC worker threads (default 32 when serving\n"
	       "                                the controller, 8 for node alone)\n"
	       "  --socket-mode=MODE            octal mode of the socket (default 0660)\n"
	       "  --grace-period=SECONDS        time in-flight calls get at shutdown (default "
	       "10)\n"
	       "  --state-dir=DIR               node state directory (default /var/lib/rbdcsi)\n"
	       "  --kubelet-dir=DIR             kubelet root; target paths must be below it\n"
	       "                                (default /var/lib/kubelet)\n"
	       "  --max-volumes-per-node=N      reported by NodeGetInfo (default 0: no limit)\n"
	       "  --topology=KEY=VALUE          a topology segment of this node (repeatable)\n"
	       "  --metrics-address=HOST:PORT   serve Prometheus metrics (default off)\n"
	       "  --ceph-connect-timeout=SECS   Ceph connect timeout (default 10)\n"
	       "  --ceph-op-timeout=SECS        Ceph monitor/OSD operation timeout (default 30)\n"
	       "  --clone-depth-soft=N          flatten new clones and snapshots whose chain is\n"
	       "                                deeper than N (default 4); a call waits for the\n"
	       "                                flatten until near its deadline, then answers\n"
	       "                                ABORTED (ready_to_use=false) and the retry goes "
	       "on\n"
	       "  --clone-depth-hard=N          upper bound for --clone-depth-soft (default 8):\n"
	       "                                chains never get deeper than the soft limit\n"
	       "  --max-queued-calls=N          slow calls waiting for a worker; more get\n"
	       "                                RESOURCE_EXHAUSTED (default 32)\n"
	       "  --max-connections=N           open connections on the socket; more are\n"
	       "                                closed at once (default 256)\n"
	       "  --max-streams=N               concurrent calls per connection (default 16)\n"
	       "  --grpc-memory-mib=N           gRPC core's memory quota (default 64)\n"
	       "  --connection-idle-timeout=SECS  close connections idle this long (default 0:\n"
	       "                                never; CSI sidecars exit when their connection\n"
	       "                                drops)\n"
	       "  --dry-run                     check flags and configuration, print the\n"
	       "                                effective settings as JSON, exit\n"
	       "  --help, --version\n"
	       "\nrbdcsi doctor --help: find orphans and drift (journal, pool, PVs, stages)\n");
}

_printf_(1, 2) static int usage_error(const char *format, ...)
{
	va_list ap;

	fprintf(stderr, "rbdcsi: ");
	va_start(ap, format);
	vfprintf(stderr, format, ap);
	va_end(ap);
	fprintf(stderr, "\nTry 'rbdcsi --help'.\n");
	return EXIT_USAGE;
}

static int parse_uint(const char *s, unsigned base, unsigned long max, unsigned long *ret)
{
	char *end = NULL;
	unsigned long v;

	if (isempty(s) || s[0] == '-' || s[0] == '+')
		return -EINVAL;
	errno = 0;
	v = strtoul(s, &end, (int)base);
	if (errno != 0 || !end || *end != 0 || v > max)
		return -EINVAL;
	*ret = v;
	return 0;
}

enum {
	OPT_MODE = 0x100,
	OPT_ENDPOINT,
	OPT_DRIVERNAME,
	OPT_NODEID,
	OPT_CONFIG,
	OPT_LOG_LEVEL,
	OPT_LOG_FORMAT,
	OPT_WORKERS,
	OPT_SOCKET_MODE,
	OPT_GRACE,
	OPT_STATE_DIR,
	OPT_KUBELET_DIR,
	OPT_MAX_VOLUMES,
	OPT_TOPOLOGY,
	OPT_METRICS,
	OPT_CONNECT_TIMEOUT,
	OPT_OP_TIMEOUT,
	OPT_CLONE_SOFT,
	OPT_CLONE_HARD,
	OPT_DRY_RUN,
	OPT_MAX_QUEUED,
	OPT_MAX_CONNECTIONS,
	OPT_MAX_STREAMS,
	OPT_GRPC_MEMORY,
	OPT_IDLE_TIMEOUT,
	OPT_SECRETS_DIR,
	OPT_HELP,
	OPT_VERSION,
};

static const struct option options[] = {
	{ "mode", required_argument, NULL, OPT_MODE },
	{ "endpoint", required_argument, NULL, OPT_ENDPOINT },
	{ "drivername", required_argument, NULL, OPT_DRIVERNAME },
	{ "nodeid", required_argument, NULL, OPT_NODEID },
	{ "config", required_argument, NULL, OPT_CONFIG },
	{ "log-level", required_argument, NULL, OPT_LOG_LEVEL },
	{ "log-format", required_argument, NULL, OPT_LOG_FORMAT },
	{ "workers", required_argument, NULL, OPT_WORKERS },
	{ "socket-mode", required_argument, NULL, OPT_SOCKET_MODE },
	{ "grace-period", required_argument, NULL, OPT_GRACE },
	{ "state-dir", required_argument, NULL, OPT_STATE_DIR },
	{ "kubelet-dir", required_argument, NULL, OPT_KUBELET_DIR },
	{ "max-volumes-per-node", required_argument, NULL, OPT_MAX_VOLUMES },
	{ "topology", required_argument, NULL, OPT_TOPOLOGY },
	{ "metrics-address", required_argument, NULL, OPT_METRICS },
	{ "ceph-connect-timeout", required_argument, NULL, OPT_CONNECT_TIMEOUT },
	{ "ceph-op-timeout", required_argument, NULL, OPT_OP_TIMEOUT },
	{ "clone-depth-soft", required_argument, NULL, OPT_CLONE_SOFT },
	{ "clone-depth-hard", required_argument, NULL, OPT_CLONE_HARD },
	{ "dry-run", no_argument, NULL, OPT_DRY_RUN },
	{ "max-queued-calls", required_argument, NULL, OPT_MAX_QUEUED },
	{ "max-connections", required_argument, NULL, OPT_MAX_CONNECTIONS },
	{ "max-streams", required_argument, NULL, OPT_MAX_STREAMS },
	{ "grpc-memory-mib", required_argument, NULL, OPT_GRPC_MEMORY },
	{ "connection-idle-timeout", required_argument, NULL, OPT_IDLE_TIMEOUT },
	{ "controller-secrets-dir", required_argument, NULL, OPT_SECRETS_DIR },
	{ "help", no_argument, NULL, OPT_HELP },
	{ "version", no_argument, NULL, OPT_VERSION },
	{ NULL, 0, NULL, 0 },
};

/* Valid topology segment: "key=value", key non-empty, both without spaces. */
static int topology_valid(const char *s)
{
	const char *eq = strchr(s, '=');

	return eq && eq != s && !strpbrk(s, " \t\n") && strlen(s) <= 316 && !strchr(eq + 1, '=');
}

static int absolute_dir_valid(const char *s)
{
	return s[0] == '/' && !strstr(s, "/../") && strlen(s) < PATH_MAX;
}

/* Returns -1 to continue, or an exit code. */
static int parse_argv(int argc, char *argv[], struct plugin_options *o, bool *ret_dry_run)
{
	enum log_level level = LOG_LEVEL_INFO;
	enum log_format format = LOG_FORMAT_TEXT;
	unsigned long v;
	int c;

	*o = (struct plugin_options){
		.mode = PLUGIN_MODE_ALL,
		.endpoint = "unix:///csi/csi.sock",
		.driver_name = "rbdcsi.io",
		.state_dir = "/var/lib/rbdcsi",
		.kubelet_dir = "/var/lib/kubelet",
		.workers = 0, /* default below, by mode */
		.socket_mode = 0660,
		.grace_seconds = 10,
		.ceph_connect_timeout = 10,
		.ceph_op_timeout = 30,
		.clone_depth_soft = 4,
		.clone_depth_hard = 8,
	};
	o->topology = calloc((size_t)argc + 1, sizeof(char *));
	if (!o->topology)
		return EXIT_FAILURE;

	opterr = 0;
	while ((c = getopt_long(argc, argv, "", options, NULL)) >= 0) {
		switch (c) {
		case OPT_MODE:
			if (strcmp(optarg, "controller") == 0)
				o->mode = PLUGIN_MODE_CONTROLLER;
			else if (strcmp(optarg, "node") == 0)
				o->mode = PLUGIN_MODE_NODE;
			else if (strcmp(optarg, "all") == 0)
				o->mode = PLUGIN_MODE_ALL;
			else
				return usage_error("--mode: '%s' is not controller, node or all",
				                   optarg);
			break;
		case OPT_ENDPOINT:
			o->endpoint = optarg;
			break;
		case OPT_DRIVERNAME:
			/* CSI: at most 63 characters, DNS-1123-like, dots allowed. */
			if (isempty(optarg) || strlen(optarg) > 63 ||
			    strspn(optarg, "abcdefghijklmnopqrstuvwxyz0123456789.-") !=
			            strlen(optarg))
				return usage_error(
				        "--drivername: '%s' is not a valid CSI driver name "
				        "(lowercase letters, digits, '.', '-', at most 63)",
				        optarg);
			o->driver_name = optarg;
			break;
		case OPT_NODEID:
			if (isempty(optarg) || strlen(optarg) > 128)
				return usage_error("--nodeid: '%s' must be 1-128 bytes", optarg);
			o->node_id = optarg;
			break;
		case OPT_CONFIG:
			o->config_path = optarg;
			break;
		case OPT_SECRETS_DIR:
			if (optarg[0] != '/')
				return usage_error("--controller-secrets-dir: '%s' is not an "
				                   "absolute path",
				                   optarg);
			o->controller_secrets_dir = optarg;
			break;
		case OPT_LOG_LEVEL:
			level = log_level_from_string(optarg);
			if ((int)level < 0)
				return usage_error(
				        "--log-level: '%s' is not debug, info, warn or error",
				        optarg);
			break;
		case OPT_LOG_FORMAT:
			format = log_format_from_string(optarg);
			if ((int)format < 0)
				return usage_error("--log-format: '%s' is not text or json",
				                   optarg);
			break;
		case OPT_WORKERS:
			if (parse_uint(optarg, 10, 256, &v) < 0 || v == 0)
				return usage_error("--workers: '%s' is not a number from 1 to 256",
				                   optarg);
			o->workers = (unsigned)v;
			break;
		case OPT_MAX_QUEUED:
			if (parse_uint(optarg, 10, 4096, &v) < 0 || v == 0)
				return usage_error("--max-queued-calls: '%s' is not 1-4096",
				                   optarg);
			arg_transport.max_queued = (unsigned)v;
			break;
		case OPT_MAX_CONNECTIONS:
			if (parse_uint(optarg, 10, 65536, &v) < 0 || v == 0)
				return usage_error("--max-connections: '%s' is not 1-65536",
				                   optarg);
			arg_transport.max_connections = (unsigned)v;
			break;
		case OPT_MAX_STREAMS:
			if (parse_uint(optarg, 10, 1024, &v) < 0 || v == 0)
				return usage_error("--max-streams: '%s' is not 1-1024", optarg);
			arg_transport.max_streams = (unsigned)v;
			break;
		case OPT_GRPC_MEMORY:
			if (parse_uint(optarg, 10, 4096, &v) < 0 || v < 8)
				return usage_error("--grpc-memory-mib: '%s' is not 8-4096", optarg);
			arg_transport.memory_bytes = (size_t)v * 1024 * 1024;
			break;
		case OPT_IDLE_TIMEOUT:
			if (parse_uint(optarg, 10, 86400, &v) < 0)
				return usage_error("--connection-idle-timeout: '%s' is not 0-86400 "
				                   "seconds",
				                   optarg);
			arg_transport.idle_ms = (unsigned)v * 1000;
			break;
		case OPT_SOCKET_MODE:
			if (parse_uint(optarg, 8, 0777, &v) < 0)
				return usage_error("--socket-mode: '%s' is not an octal mode",
				                   optarg);
			o->socket_mode = (mode_t)v;
			break;
		case OPT_GRACE:
			if (parse_uint(optarg, 10, 3600, &v) < 0)
				return usage_error("--grace-period: '%s' is not 0-3600 seconds",
				                   optarg);
			o->grace_seconds = (unsigned)v;
			break;
		case OPT_STATE_DIR:
			if (!absolute_dir_valid(optarg))
				return usage_error("--state-dir: '%s' must be an absolute path",
				                   optarg);
			o->state_dir = optarg;
			break;
		case OPT_KUBELET_DIR:
			if (!absolute_dir_valid(optarg))
				return usage_error("--kubelet-dir: '%s' must be an absolute path",
				                   optarg);
			o->kubelet_dir = optarg;
			break;
		case OPT_MAX_VOLUMES:
			if (parse_uint(optarg, 10, INT32_MAX, &v) < 0)
				return usage_error("--max-volumes-per-node: '%s' is not a number",
				                   optarg);
			o->max_volumes_per_node = (int64_t)v;
			break;
		case OPT_TOPOLOGY:
			if (!topology_valid(optarg))
				return usage_error("--topology: '%s' is not KEY=VALUE", optarg);
			o->topology[o->n_topology++] = optarg;
			break;
		case OPT_METRICS:
			if (isempty(optarg) || !strrchr(optarg, ':'))
				return usage_error("--metrics-address: '%s' is not HOST:PORT",
				                   optarg);
			o->metrics_address = optarg;
			break;
		case OPT_CONNECT_TIMEOUT:
		case OPT_OP_TIMEOUT:
			if (parse_uint(optarg, 10, 3600, &v) < 0 || v == 0)
				return usage_error("Ceph timeouts must be 1-3600 seconds, not '%s'",
				                   optarg);
			if (c == OPT_CONNECT_TIMEOUT)
				o->ceph_connect_timeout = (unsigned)v;
			else
				o->ceph_op_timeout = (unsigned)v;
			break;
		case OPT_CLONE_SOFT:
		case OPT_CLONE_HARD:
			if (parse_uint(optarg, 10, 64, &v) < 0 || v == 0)
				return usage_error("clone depths must be 1-64, not '%s'", optarg);
			if (c == OPT_CLONE_SOFT)
				o->clone_depth_soft = (unsigned)v;
			else
				o->clone_depth_hard = (unsigned)v;
			break;
		case OPT_DRY_RUN:
			*ret_dry_run = true;
			break;
		case OPT_HELP:
			help();
			return EXIT_SUCCESS;
		case OPT_VERSION:
			printf("rbdcsi %s\n", RBDCSI_VERSION);
			return EXIT_SUCCESS;
		case '?':
		default:
			if (optopt)
				return usage_error("option '%s' requires no argument or is unknown",
				                   argv[optind - 1]);
			return usage_error("unknown option '%s'", argv[optind - 1]);
		}
	}
	if (optind < argc)
		return usage_error("unexpected argument '%s'", argv[optind]);
	if ((o->mode & PLUGIN_MODE_NODE) && !o->node_id)
		return usage_error("--nodeid is required in %s mode",
		                   o->mode == PLUGIN_MODE_NODE ? "node" : "all");
	if (o->clone_depth_soft > o->clone_depth_hard)
		return usage_error("--clone-depth-soft must not exceed --clone-depth-hard%s", "");
	/* A controller's calls wait on Ceph round trips (a DeleteVolume trims every object), not
	 * on CPU: with 8 workers a burst of 64 provisions ran at 0.67-0.78x of bare librbd doing
	 * the same work, with 16-64 at 0.94-1.07x (make bench, issue 18). 32 covers the 16
	 * streams a sidecar's one connection may have in flight, twice. */
	if (o->workers == 0)
		o->workers = (o->mode & PLUGIN_MODE_CONTROLLER) ? 32 : 8;

	log_set_max_level(level);
	log_set_format(format);
	return -1;
}

static int dry_run(const struct plugin_options *o, struct config *config)
{
	json_object *obj = json_object_new_object();
	json_object *topo = json_object_new_array();

	json_object_object_add(obj, "mode",
	                       json_object_new_string(o->mode == PLUGIN_MODE_ALL ? "all"
	                                              : o->mode == PLUGIN_MODE_NODE
	                                                      ? "node"
	                                                      : "controller"));
	json_object_object_add(obj, "endpoint", json_object_new_string(o->endpoint));
	json_object_object_add(obj, "drivername", json_object_new_string(o->driver_name));
	if (o->node_id)
		json_object_object_add(obj, "nodeid", json_object_new_string(o->node_id));
	json_object_object_add(obj, "workers", json_object_new_int((int)o->workers));
	json_object_object_add(obj, "clusters",
	                       json_object_new_int((int)config_n_clusters(config)));
	json_object_object_add(obj, "state_dir", json_object_new_string(o->state_dir));
	json_object_object_add(obj, "kubelet_dir", json_object_new_string(o->kubelet_dir));
	for (size_t i = 0; i < o->n_topology; i++)
		json_object_array_add(topo, json_object_new_string(o->topology[i]));
	json_object_object_add(obj, "topology", topo);
	capabilities_to_json(o, obj);
	printf("%s\n", json_object_to_json_string_ext(obj, JSON_C_TO_STRING_PLAIN |
	                                                           JSON_C_TO_STRING_NOSLASHESCAPE));
	json_object_put(obj);
	return EXIT_SUCCESS;
}

/* Creates the socket's directory if missing (kubelet usually provides it). */
static int ensure_parent_dir(const char *path)
{
	_cleanup_free_ char *dir = strdup(path);
	char *slash;

	if (!dir)
		return -ENOMEM;
	slash = strrchr(dir, '/');
	if (!slash || slash == dir)
		return 0;
	*slash = 0;
	if (mkdir(dir, 0750) < 0 && errno != EEXIST)
		return -errno;
	return 0;
}

static int serve(struct plugin *p)
{
	_cleanup_free_ char *path = NULL;
	struct transport *t = NULL;
	int lock_fd = -EBADF;
	sigset_t mask;
	int r, sig;

	r = endpoint_parse(p->opt.endpoint, &path);
	if (r == -ENAMETOOLONG)
		return log_error_errno(r,
		                       "--endpoint '%s': the path is longer than a Unix socket "
		                       "path may be (%zu bytes)",
		                       p->opt.endpoint,
		                       sizeof(((struct sockaddr_un *)0)->sun_path) - 1);
	if (r < 0)
		return log_error_errno(r, "--endpoint '%s': expected unix:///absolute/path",
		                       p->opt.endpoint);
	r = ensure_parent_dir(path);
	if (r < 0)
		return log_error_errno(r, "Cannot create the directory of '%s': %m", path);

	/* Signals are taken with sigwait(); block them before gRPC starts its threads. */
	sigemptyset(&mask);
	sigaddset(&mask, SIGTERM);
	sigaddset(&mask, SIGINT);
	pthread_sigmask(SIG_BLOCK, &mask, NULL);
	signal(SIGPIPE, SIG_IGN);

	r = endpoint_lock(path, &lock_fd);
	if (r == -EADDRINUSE)
		return log_error_errno(r,
		                       "Another rbdcsi instance is serving '%s' (its lock "
		                       "'%s.lock' is held); refusing to start",
		                       path, path);
	if (r == -EEXIST)
		return log_error_errno(r, "'%s' exists and is not a socket; refusing to replace it",
		                       path);
	if (r < 0)
		return log_error_errno(r, "Cannot lock '%s.lock': %m", path);

	transport_setup_logging();
	arg_transport.workers = p->opt.workers;
	arg_transport.socket_mode = p->opt.socket_mode;
	r = transport_start(p, path, &arg_transport, &t);
	if (r < 0) {
		endpoint_release(path, lock_fd);
		return log_error_errno(r, "Cannot serve on '%s': %m", path);
	}

	if (p->opt.metrics_address) {
		r = metrics_serve(p->metrics, p, p->opt.metrics_address);
		if (r < 0) {
			transport_shutdown(t, 0);
			transport_free(t);
			endpoint_release(path, lock_fd);
			return log_error_errno(r, "Cannot serve metrics on '%s': %m",
			                       p->opt.metrics_address);
		}
		log_info("Serving metrics on http://%s/metrics", p->opt.metrics_address);
	}

	if (p->opt.mode & PLUGIN_MODE_NODE) {
		/* Every request path is resolved beneath this fd (driver/base/path.h). */
		r = path_root_open(p->opt.kubelet_dir, &p->kubelet_fd);
		if (r < 0)
			log_warning_errno(
			        r, "Cannot open --kubelet-dir '%s' (tried again per call): %m",
			        p->opt.kubelet_dir);
		node_report_staged(p);
	}
	atomic_store(&p->ready, true);
	log_info("Serving %s%s%s as '%s' on '%s' with %u workers",
	         p->opt.mode & PLUGIN_MODE_CONTROLLER ? "controller" : "",
	         p->opt.mode == PLUGIN_MODE_ALL ? "+" : "",
	         p->opt.mode & PLUGIN_MODE_NODE ? "node" : "", p->opt.driver_name, path,
	         p->opt.workers);

	for (;;) {
		struct timespec timeout = { .tv_sec = HOUSEKEEPING_SECONDS };

		sig = sigtimedwait(&mask, NULL, &timeout);
		if (sig == SIGTERM || sig == SIGINT)
			break;
		if (sig < 0 && errno != EAGAIN && errno != EINTR)
			return log_error_errno(errno, "sigtimedwait failed: %m");
		config_refresh(p->config);
		/* Give back what bursts of calls left in the allocator (measured: 3-6 MiB). */
		malloc_trim(0);
		if (p->clusters) {
			unsigned closed = cluster_cache_expire(p->clusters, monotonic_usec());

			if (closed > 0)
				log_debug("Closed %u idle Ceph connection(s)", closed);
		}
	}

	log_info("Received %s, stopping (grace period %us)", sig == SIGTERM ? "SIGTERM" : "SIGINT",
	         p->opt.grace_seconds);
	atomic_store(&p->ready, false);
	r = transport_shutdown(t, p->opt.grace_seconds);
	metrics_stop(p->metrics);
	if (r >= 0)
		t = transport_free(t);
	endpoint_release(path, lock_fd);
	log_info("Stopped");
	return 0;
}

int main(int argc, char *argv[])
{
	struct plugin p = { 0 };
	bool dry = false;
	int r;

	/* A few malloc arenas instead of one per worker thread: the per-thread arenas were most
	 * of the idle RSS growth after load (make bench), and calls here are not allocation-bound.
	 */
	mallopt(M_ARENA_MAX, 2);

	if (argc > 1 && strcmp(argv[1], "doctor") == 0)
		return doctor_main(argc - 1, argv + 1);
	r = parse_argv(argc, argv, &p.opt, &dry);
	if (r >= 0) {
		free(p.opt.topology);
		return r;
	}

	if (p.opt.config_path) {
		char *error = NULL;

		r = config_load(p.opt.config_path, &p.config, &error);
		if (r < 0) {
			if (error)
				fprintf(stderr, "rbdcsi: --config: %s\n", error);
			else {
				errno = -r;
				fprintf(stderr, "rbdcsi: --config: cannot read '%s': %m\n",
				        p.opt.config_path);
			}
			free(error);
			free(p.opt.topology);
			return EXIT_USAGE;
		}
	} else
		p.config = config_new_empty();
	p.locks = locks_new();
	p.kubelet_fd = -1;
	{
		size_t n_methods;

		plugin_methods(&n_methods);
		p.metrics = metrics_new(n_methods);
	}
	p.credentials = credentials_store_new();
	{
		struct cluster_timeouts to = {
			.connect_sec = p.opt.ceph_connect_timeout,
			.mon_op_sec = p.opt.ceph_op_timeout,
			.osd_op_sec = p.opt.ceph_op_timeout,
		};

		if (cluster_cache_new(&to, CLUSTER_IDLE_DEFAULT_USEC, &p.clusters) < 0)
			p.clusters = NULL;
	}
	/* Test-only crash points (RBDCSI_FAILPOINTS): armed once, before any thread starts. */
	if (failpoint_init(secure_getenv("RBDCSI_FAILPOINTS")) < 0) {
		fprintf(stderr, "rbdcsi: RBDCSI_FAILPOINTS is malformed\n");
		return EXIT_USAGE;
	}
	/* LIBMOUNT_FORCE_MOUNT2: set before main() by driver/host/mount.c. */
	if (!p.config || !p.locks || !p.metrics || !p.credentials || !p.clusters) {
		fprintf(stderr, "rbdcsi: out of memory\n");
		return EXIT_FAILURE;
	}

	if (dry)
		r = dry_run(&p.opt, p.config);
	else
		r = serve(&p) < 0 ? EXIT_FAILURE : EXIT_SUCCESS;

	p.clusters = cluster_cache_free(p.clusters);
	p.credentials = credentials_store_free(p.credentials);
	p.metrics = metrics_free(p.metrics);
	p.locks = locks_free(p.locks);
	p.kubelet_fd = safe_close(p.kubelet_fd);
	p.config = config_free(p.config);
	free(p.opt.topology);
	return r;
}
