/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The running plugin: its options (from flags), the cluster configuration, the per-volume
 * operation locks, and the table of CSI methods with their handlers.
 */
#pragma once

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include <protobuf-c/protobuf-c.h>

#include "plugin/call.h"

enum plugin_mode {
	PLUGIN_MODE_CONTROLLER = 1 << 0,
	PLUGIN_MODE_NODE = 1 << 1,
	PLUGIN_MODE_ALL = PLUGIN_MODE_CONTROLLER | PLUGIN_MODE_NODE,
};

struct plugin_options {
	unsigned mode; /* enum plugin_mode bits */
	const char *endpoint;
	const char *driver_name;
	const char *node_id;
	const char *config_path;
	const char *state_dir;
	const char *kubelet_dir;
	const char *metrics_address;
	unsigned workers;
	mode_t socket_mode;
	unsigned grace_seconds;
	int64_t max_volumes_per_node;
	char **topology; /* "key=value" strings, NULL-terminated */
	size_t n_topology;
	unsigned ceph_connect_timeout; /* seconds */
	unsigned ceph_op_timeout;      /* seconds */
	unsigned clone_depth_soft;
	unsigned clone_depth_hard;
	const char *controller_secrets_dir; /* credentials for calls without secrets, or NULL */
};

struct config;
struct locks;
struct metrics;
struct cluster_cache;
struct credentials_store;

struct plugin {
	struct plugin_options opt;
	struct config *config;
	struct locks *locks;
	struct metrics *metrics;               /* NULL-safe to record into */
	struct cluster_cache *clusters;        /* Ceph connections (controller) */
	struct credentials_store *credentials; /* last good credentials per cluster */
	int kubelet_fd; /* --kubelet-dir as an O_PATH fd (node mode); -1 (or 0): node.c opens it */
	atomic_uint_fast64_t next_request_id;
	atomic_bool ready;
};

/*
 * A handler gets the unpacked request and an initialised response of the method's output type.
 * Returns >= 0 on success, a negative errno (mapped by the status table) or the result of
 * call_fail() on failure.
 */
typedef int (*method_handler)(struct call *c, const void *request, void *response);

struct method {
	const char *path; /* "/csi.v1.Node/NodeStageVolume" */
	const char *name; /* "NodeStageVolume" */
	size_t index;     /* position in plugin_methods() */
	const ProtobufCMessageDescriptor *input;
	const ProtobufCMessageDescriptor *output;
	method_handler handler; /* NULL: not implemented */
	unsigned modes;         /* modes that serve this method */
	bool quiet;             /* log success at debug level only (Probe) */
	bool quick;             /* never blocks: answered on the transport's own threads */
};

/* Every method of the CSI services, built once from the protobuf-c service descriptors. */
const struct method *plugin_methods(size_t *ret_n);

/*
 * Serves one call: unpacks the request (bounded by the transport's size limit), runs the handler
 * with a call context (request id, log context, deadline), packs the response.
 * On STATUS_OK, *ret_response (malloc'd, may be of length 0) is the packed response; otherwise
 * *ret_message (malloc'd) is the status message. Never returns with both unset.
 */
enum status_code plugin_dispatch(struct plugin *p, const struct method *m, const uint8_t *data,
                                 size_t len, uint64_t deadline_usec, const volatile int *cancelled,
                                 uint8_t **ret_response, size_t *ret_response_len,
                                 char **ret_message);

/* Handlers, by service. NULL-safe table lookup lives in methods.c. */
int identity_get_plugin_info(struct call *c, const void *request, void *response);
int identity_get_plugin_capabilities(struct call *c, const void *request, void *response);
int identity_probe(struct call *c, const void *request, void *response);
