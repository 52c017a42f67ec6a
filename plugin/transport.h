/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The gRPC server: one completion queue, every CSI method registered, calls handed to
 * plugin_dispatch(). Two lanes: the completion-queue threads answer the quick methods (Identity,
 * *GetCapabilities, NodeGetInfo) themselves, so they never wait behind slow work; every other call
 * goes to a bounded queue served by N worker threads, and is refused with RESOURCE_EXHAUSTED when
 * the queue is full. The transport accepts connections itself (a cap, clean refusal at the fd
 * limit) and hands them to gRPC. The only file that knows the gRPC core API is transport.c.
 */
#pragma once

#include "plugin/plugin.h"

struct transport;

/* Largest request accepted; bigger ones are refused by gRPC with RESOURCE_EXHAUSTED. */
#define TRANSPORT_MAX_REQUEST_BYTES (1024 * 1024)

/* Limits of the server; 0 in any field means its default below. */
struct transport_options {
	unsigned workers;         /* threads for the slow lane */
	unsigned max_queued;      /* slow calls waiting for a worker; more: RESOURCE_EXHAUSTED */
	unsigned max_waiting;     /* slow calls waiting for their request message; more: ditto */
	unsigned max_connections; /* open connections; more are accepted and closed */
	unsigned max_streams;     /* concurrent streams per connection (HTTP/2 SETTINGS) */
	size_t memory_bytes;      /* gRPC core's resource quota */
	unsigned idle_ms;         /* close connections idle this long; 0: never */
	mode_t socket_mode;
};

#define TRANSPORT_DEFAULT_WORKERS         8
#define TRANSPORT_DEFAULT_MAX_QUEUED      32
#define TRANSPORT_DEFAULT_MAX_WAITING     64
#define TRANSPORT_DEFAULT_MAX_CONNECTIONS 256
#define TRANSPORT_DEFAULT_MAX_STREAMS     16
#define TRANSPORT_DEFAULT_MEMORY_BYTES    (64u * 1024 * 1024)
#define TRANSPORT_MAX_METADATA_BYTES      (16 * 1024)

/*
 * Creates the socket at socket_path (absolute; the caller holds the endpoint lock) with its final
 * mode and starts serving on it. Errors: -EADDRINUSE / -errno when the socket cannot be created,
 * -ENOMEM. Free with transport_free() after transport_shutdown().
 */
int transport_start(struct plugin *p, const char *socket_path, const struct transport_options *o,
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
