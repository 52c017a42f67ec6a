/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Prometheus metrics and /healthz over HTTP (libmicrohttpd), off unless --metrics-address is
 * given. Per-RPC counters by gRPC code and latency histograms, Ceph operation errors, volumes
 * staged on the node, process metrics. Recording is lock-free (atomics) and cheap enough for
 * every call; the text is rendered only when scraped.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "plugin/status.h"

struct plugin;
struct metrics;

/* Registry for n_methods methods (indexes as in plugin_methods()). NULL on allocation failure. */
struct metrics *metrics_new(size_t n_methods);
struct metrics *metrics_free(struct metrics *m);

/* Counts a finished call of method index with its status and duration. NULL-safe. */
void metrics_observe_call(struct metrics *m, size_t method, enum status_code code,
                          uint64_t duration_usec);

/* Counts a call of method index that started (metrics_observe_call() ends it). NULL-safe. */
void metrics_call_begin(struct metrics *m, size_t method);

/* Counts a call of method index refused with ABORTED because the volume's operation lock was
 * held. NULL-safe. */
void metrics_lock_conflict(struct metrics *m, size_t method);

/* Records the result (0 or -errno) of getting a connection to cluster_id. NULL-safe. Keeps the
 * last result of up to 64 clusters. */
void metrics_ceph_connection(struct metrics *m, const char *cluster_id, int result);

/* Counts a failed Ceph operation ("create", "delete", "resize", "connect", ...). NULL-safe. */
void metrics_ceph_error(struct metrics *m, const char *operation);

/* Counts a successful NodeStageVolume of a volume mapped with mapper ("krbd", "nbd", "fuse").
 * NULL-safe. */
void metrics_node_stage(struct metrics *m, const char *mapper);

/* Renders the exposition text (malloc'd) for plugin p. */
int metrics_render(struct metrics *m, struct plugin *p, char **ret_text, size_t *ret_len);

/*
 * Serves /metrics and /healthz on address ("HOST:PORT", "[V6]:PORT", ":PORT" for all
 * addresses); loads libmicrohttpd the first time. Errors: -EINVAL (bad address), -EADDRINUSE
 * or -errno from binding, -ELIBACC/-ELIBBAD libmicrohttpd cannot be loaded.
 */
int metrics_serve(struct metrics *m, struct plugin *p, const char *address);
/* Stops the HTTP server (if running). */
void metrics_stop(struct metrics *m);
