/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The gRPC server: one completion queue, N worker threads, every CSI method registered, calls
 * handed to plugin_dispatch(). The only file that knows the gRPC core API is transport.c.
 */
#pragma once

#include "plugin/plugin.h"

struct transport;

/* Largest request accepted; bigger ones are refused by gRPC with RESOURCE_EXHAUSTED. */
#define TRANSPORT_MAX_REQUEST_BYTES (1024 * 1024)

/*
 * Starts serving on the Unix socket at socket_path (absolute; the caller holds the endpoint lock).
 * Errors: -EADDRINUSE when the socket cannot be bound, -ENOMEM.
 * Free with transport_free() after transport_shutdown().
 */
int transport_start(struct plugin *p, const char *socket_path, unsigned workers,
                    struct transport **ret);

/*
 * Stops accepting calls, lets in-flight calls finish for up to grace_seconds, then cancels the
 * rest. Returns 0 when everything stopped, -ETIMEDOUT when handlers were still running after a
 * second grace period (the process should then exit without freeing the server).
 */
int transport_shutdown(struct transport *t, unsigned grace_seconds);

/* Frees the server after a successful shutdown. Accepts NULL, returns NULL. */
struct transport *transport_free(struct transport *t);

/* Routes gRPC's own log lines into ours (debug level, errors at error). */
void transport_setup_logging(void);
