/* SPDX-License-Identifier: Apache-2.0 */
/*
 * gRPC C core server. Pattern (see the notes on gRPC C core): one completion queue polled by a
 * few threads; each registered method has one armed request, re-armed as soon as a call arrives;
 * one catch-all request answers unknown methods with UNIMPLEMENTED.
 *
 * Hostile clients (issue 13). Memory: gRPC core's knobs first (concurrent streams per connection,
 * a resource quota, metadata size, message size, an optional idle limit), our own accounting
 * second, since this gRPC has no connection cap and enforces the stream limit only once a client
 * acknowledged it:
 *  - connections: a cap; over it, or at the fd limit (a spare fd is kept for that), a new
 *    connection is accepted and closed at once, existing ones are served on;
 *  - calls: methods are registered without payload, so every call is seen at its headers. Each
 *    starts a RECV_CLOSE_ON_SERVER batch at once (a reset sets `cancelled` while the call waits
 *    or runs) and then waits for its request message, with a limit per lane on calls waiting at
 *    once and a time limit; a call whose message never came whole never reaches a handler;
 *  - per connection: one that has more calls in flight than twice its stream limit (it ignores
 *    our SETTINGS), or resets a flood of calls before their request, is shut down;
 *  - work: the quick methods (identity, capabilities, NodeGetInfo, UNIMPLEMENTED) are answered
 *    on the completion-queue threads and never wait behind slow work; the others wait in a
 *    bounded queue for one of N workers, RESOURCE_EXHAUSTED when it is full.
 *
 * Connections: we bind and accept ourselves (the socket gets its mode before it is reachable,
 * plugin/endpoint.h) and hand each one to gRPC (grpc_server_add_channel_from_fd), whose calls
 * then name it as their peer ("fd:N"). A connection counts until its fd no longer names the same
 * socket (inode), checked when the cap is reached.
 *
 * Shutdown: shutdown_and_notify, wait for the tag (cancelling after the grace period), then wait
 * until no call is left before shutting the completion queue down (starting a batch on a shut-down
 * queue aborts).
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <grpc/byte_buffer_reader.h>
#include <grpc/grpc.h>
#include <grpc/grpc_posix.h>
#include <grpc/grpc_security.h>
#include <grpc/support/alloc.h>
#include <grpc/support/log.h>

#include "plugin/endpoint.h"
#include "plugin/transport.h"

/* Threads polling the completion queue; they also answer the quick methods. */
#define POLLERS 2
/* Fds kept free for everything that is not a connection (Ceph, children, files). */
#define FD_RESERVE 256
/*
 * Connections get fd numbers from a cursor that rotates through [FD_ROTATE_BASE, fd limit): a
 * number comes back only after the cursor went round, so a call's peer ("fd:N") names its own
 * connection even while calls of a just-closed one are still being disposed of.
 */
#define FD_ROTATE_BASE 256
#define FD_LIMIT_WANT  65536
/* At most one "refusing connections/calls" warning per this many seconds. */
#define REFUSE_LOG_SECONDS 10
/*
 * A call's request message must arrive within this, else the call is cancelled; shorter for the
 * quick lane, whose requests are a few bytes sent with the headers.
 */
#define MESSAGE_TIMEOUT_USEC       (10 * 1000000ull)
#define MESSAGE_TIMEOUT_QUICK_USEC (2 * 1000000ull)
/*
 * A connection is closed when it has more calls in flight than twice the streams it may open
 * (+ CONN_SLACK), i.e. it ignores our SETTINGS; or more than CONN_MAX_ABORTED calls without a
 * whole request message (reset or cut short) within CONN_ABORT_WINDOW_USEC: a reset flood.
 */
#define CONN_SLACK 8
/* At the cap, a connection that made no call in this long makes room for a new one. */
#define CONN_UNUSED_USEC       (10 * 1000000ull)
#define CONN_MAX_ABORTED       64
#define CONN_ABORT_WINDOW_USEC (10 * 1000000ull)
/* Calls of the quick lane waiting for their request message at once; more are refused. */
#define MAX_WAITING_QUICK 64

enum tag_kind {
	TAG_REQUEST,
	TAG_FINISH,
	TAG_CLOSE,
	TAG_MESSAGE,
	TAG_SHUTDOWN,
};

struct tag {
	enum tag_kind kind;
};

struct conn_slot {
	int fd; /* -1: free */
	ino_t ino;
	unsigned live;        /* calls of this connection we hold */
	unsigned aborted;     /* calls without a whole request message in this window */
	uint64_t window_usec; /* start of the aborted window */
	uint64_t accepted_usec;
	unsigned long calls; /* calls it made, ever */
	bool closing;
};

struct call_ctx;

struct transport {
	struct plugin *plugin;
	struct transport_options opt;
	grpc_server *server;
	grpc_completion_queue *cq;
	grpc_server_credentials *creds;
	grpc_resource_quota *quota;
	const struct method *methods;
	size_t n_methods;
	void **handles;
	pthread_t pollers[POLLERS];
	unsigned n_pollers;
	pthread_t *workers;
	unsigned n_workers;
	struct tag shutdown_tag;
	pthread_mutex_t lock;
	pthread_cond_t cond;   /* in_flight, shutdown_seen */
	pthread_cond_t queued; /* the slow queue */
	struct call_ctx **queue;
	size_t q_head, q_len;
	unsigned in_flight; /* calls from request to the end of both batches, queued ones too */
	struct call_ctx *waiting;    /* calls whose request message has not arrived yet */
	unsigned n_waiting[2];       /* of them: [0] slow lane, [1] quick lane */
	unsigned long refused_calls; /* over a lane's limit */
	time_t refused_calls_logged;
	uint64_t swept_usec;
	bool shutdown_seen;
	bool stopping;
	bool workers_stop;

	/* The acceptor. */
	int listen_fd;
	int wake_fd;
	int spare_fd;
	pthread_t acceptor;
	bool acceptor_running;
	struct conn_slot *conns;
	unsigned n_conns;
	int fd_cursor;
	int fd_top;
	unsigned long refused;
	time_t refuse_logged;
};

struct call_ctx {
	struct tag tag;               /* first: the completion queue hands this pointer back */
	struct tag close_tag;         /* the RECV_CLOSE_ON_SERVER batch */
	struct tag msg_tag;           /* the RECV_MESSAGE batch */
	struct call_ctx *prev, *next; /* in t->waiting while the message is awaited */
	uint64_t arrived_usec;
	bool quick;
	bool swept;
	int slot; /* in t->conns, -1 when unknown */
	ino_t slot_ino;
	struct transport *t;
	size_t index; /* method index, or n_methods for the catch-all */
	grpc_call *call;
	gpr_timespec deadline;
	grpc_metadata_array md;
	grpc_call_details details;
	grpc_byte_buffer *req_bb;
	grpc_byte_buffer *resp_bb;
	atomic_int refs;        /* the finish batch and the close batch */
	volatile int cancelled; /* written by gRPC when the close batch completes */
};

static struct call_ctx *ctx_of_close(struct tag *tag)
{
	return (struct call_ctx *)((char *)tag - offsetof(struct call_ctx, close_tag));
}

static struct call_ctx *ctx_of_msg(struct tag *tag)
{
	return (struct call_ctx *)((char *)tag - offsetof(struct call_ctx, msg_tag));
}

static void ctx_free(struct call_ctx *ctx)
{
	if (!ctx)
		return;
	if (ctx->req_bb)
		grpc_byte_buffer_destroy(ctx->req_bb);
	if (ctx->resp_bb)
		grpc_byte_buffer_destroy(ctx->resp_bb);
	grpc_metadata_array_destroy(&ctx->md);
	grpc_call_details_destroy(&ctx->details);
	if (ctx->call)
		grpc_call_unref(ctx->call);
	free(ctx);
}

/* Drops one reference of an accepted call; the last one frees it and ends its in-flight count. */
static void ctx_unref(struct call_ctx *ctx)
{
	struct transport *t = ctx->t;
	ino_t ino;
	int slot;

	if (atomic_fetch_sub(&ctx->refs, 1) != 1)
		return;
	slot = ctx->slot;
	ino = ctx->slot_ino;
	ctx_free(ctx);
	pthread_mutex_lock(&t->lock);
	if (slot >= 0 && t->conns[slot].fd >= 0 && t->conns[slot].ino == ino &&
	    t->conns[slot].live > 0)
		t->conns[slot].live--;
	t->in_flight--;
	pthread_cond_broadcast(&t->cond);
	pthread_mutex_unlock(&t->lock);
}

static void arm(struct transport *t, size_t index)
{
	struct call_ctx *ctx = calloc(1, sizeof(*ctx));
	grpc_call_error e;

	if (!ctx) {
		log_error("Out of memory arming a request; the method will not be served");
		return;
	}
	ctx->tag.kind = TAG_REQUEST;
	ctx->close_tag.kind = TAG_CLOSE;
	ctx->msg_tag.kind = TAG_MESSAGE;
	ctx->slot = -1;
	ctx->t = t;
	ctx->index = index;
	grpc_metadata_array_init(&ctx->md);
	grpc_call_details_init(&ctx->details);
	if (index < t->n_methods)
		e = grpc_server_request_registered_call(t->server, t->handles[index], &ctx->call,
		                                        &ctx->deadline, &ctx->md, NULL, t->cq,
		                                        t->cq, ctx);
	else
		e = grpc_server_request_call(t->server, &ctx->call, &ctx->details, &ctx->md, t->cq,
		                             t->cq, ctx);
	if (e != GRPC_CALL_OK) {
		log_debug("Request not armed (%d), server shutting down", (int)e);
		ctx_free(ctx);
	}
}

static uint64_t deadline_to_usec(gpr_timespec deadline)
{
	gpr_timespec now, left;
	int64_t usec;

	if (gpr_time_cmp(deadline, gpr_inf_future(deadline.clock_type)) == 0)
		return UINT64_MAX;
	now = gpr_now(deadline.clock_type);
	left = gpr_time_sub(deadline, now);
	usec = gpr_time_to_millis(left) * 1000;
	if (usec < 0)
		usec = 0;
	return now_usec() + (uint64_t)usec;
}

/* Sends the status (and the response on OK); takes resp and message. */
static void finish(struct call_ctx *ctx, enum status_code code, uint8_t *resp, size_t resp_len,
                   char *message)
{
	grpc_slice details;
	grpc_op ops[3];
	grpc_op *op = ops;
	grpc_call_error e;

	memset(ops, 0, sizeof(ops));
	op->op = GRPC_OP_SEND_INITIAL_METADATA;
	op->data.send_initial_metadata.count = 0;
	op++;
	if (code == STATUS_OK) {
		grpc_slice s = grpc_slice_new(resp, resp_len, free);

		resp = NULL; /* the slice owns it now */
		ctx->resp_bb = grpc_raw_byte_buffer_create(&s, 1);
		grpc_slice_unref(s);
		op->op = GRPC_OP_SEND_MESSAGE;
		op->data.send_message.send_message = ctx->resp_bb;
		op++;
	}
	details = grpc_slice_from_copied_string(message ? message : "");
	op->op = GRPC_OP_SEND_STATUS_FROM_SERVER;
	op->data.send_status_from_server.trailing_metadata_count = 0;
	op->data.send_status_from_server.status = (grpc_status_code)code;
	op->data.send_status_from_server.status_details = code == STATUS_OK ? NULL : &details;
	op++;

	ctx->tag.kind = TAG_FINISH;
	e = grpc_call_start_batch(ctx->call, ops, (size_t)(op - ops), &ctx->tag, NULL);
	grpc_slice_unref(details);
	free(resp);
	free(message);
	if (e != GRPC_CALL_OK) {
		log_error("Failed to send the response (grpc_call_error %d)", (int)e);
		/* The close batch completes once the call is cancelled. */
		grpc_call_cancel(ctx->call, NULL);
		ctx_unref(ctx);
	}
}

_printf_(3, 4) static void finish_status(struct call_ctx *ctx, enum status_code code,
                                         const char *format, ...)
{
	char *message = NULL;
	va_list ap;

	va_start(ap, format);
	if (vasprintf(&message, format, ap) < 0)
		message = NULL;
	va_end(ap);
	finish(ctx, code, NULL, 0, message);
}

/* Runs the handler (or answers UNIMPLEMENTED) and sends the result. */
static void serve(struct transport *t, struct call_ctx *ctx)
{
	uint8_t *resp = NULL;
	size_t resp_len = 0;
	char *message = NULL;
	enum status_code code;

	if (ctx->index < t->n_methods) {
		const struct method *m = &t->methods[ctx->index];
		grpc_slice all = grpc_empty_slice();
		grpc_byte_buffer_reader rd;

		if (ctx->cancelled) {
			/* Reset while it waited: nobody listens for the answer any more. */
			log_debug("%s cancelled by the client before it started", m->name);
			finish_status(ctx, STATUS_CANCELLED, "cancelled before it started");
			return;
		}
		if (deadline_to_usec(ctx->deadline) <= now_usec()) {
			finish_status(ctx, STATUS_DEADLINE_EXCEEDED,
			              "the deadline passed before a worker was free");
			return;
		}
		if (!grpc_byte_buffer_reader_init(&rd, ctx->req_bb)) {
			finish_status(ctx, STATUS_INTERNAL, "cannot read the request");
			return;
		}
		all = grpc_byte_buffer_reader_readall(&rd);
		grpc_byte_buffer_reader_destroy(&rd);
		/* The raw request is no longer needed; free it before the handler runs. */
		grpc_byte_buffer_destroy(ctx->req_bb);
		ctx->req_bb = NULL;
		code = plugin_dispatch(t->plugin, m, GRPC_SLICE_START_PTR(all),
		                       GRPC_SLICE_LENGTH(all), deadline_to_usec(ctx->deadline),
		                       &ctx->cancelled, &resp, &resp_len, &message);
		grpc_slice_unref(all);
	} else {
		char *path = grpc_slice_to_c_string(ctx->details.method);

		code = STATUS_UNIMPLEMENTED;
		if (asprintf(&message, "method %s not implemented", path) < 0)
			message = NULL;
		log_warning("Unknown method '%s' called", path);
		gpr_free(path);
	}
	finish(ctx, code, resp, resp_len, message);
}

/* Quick: never blocks (identity, capabilities, node info, anything answered UNIMPLEMENTED). */
static bool quick_lane(const struct transport *t, const struct call_ctx *ctx)
{
	const struct method *m;

	if (ctx->index >= t->n_methods)
		return true;
	m = &t->methods[ctx->index];
	return m->quick || !m->handler || !(m->modes & t->plugin->opt.mode);
}

/* Shuts the connection of slot down (t->lock held) if its fd still names that socket. */
static void conn_close_locked(struct transport *t, int slot, const char *why)
{
	struct conn_slot *c = &t->conns[slot];
	time_t now = time(NULL);
	struct stat st;

	if (c->closing || c->fd < 0)
		return;
	c->closing = true;
	if (fstat(c->fd, &st) < 0 || st.st_ino != c->ino)
		return;
	(void)shutdown(c->fd, SHUT_RDWR);
	t->refused++;
	if (now - t->refuse_logged >= REFUSE_LOG_SECONDS) {
		log_warning("Closing a connection: %s (%lu connections refused or closed so far)",
		            why, t->refused);
		t->refuse_logged = now;
	}
}

/* Finds the connection of a call ("fd:N" is the peer of a connection from accept_one()). */
static void conn_attach(struct transport *t, struct call_ctx *ctx)
{
	char *peer = grpc_call_get_peer(ctx->call);
	int fd = -1;

	if (peer && strncmp(peer, "fd:", 3) == 0) {
		char *end;
		long v = strtol(peer + 3, &end, 10);

		if (*end == 0 && v >= 0 && v <= INT32_MAX)
			fd = (int)v;
	}
	gpr_free(peer);
	if (fd < 0)
		return;
	for (unsigned i = 0; i < t->opt.max_connections; i++)
		if (t->conns[i].fd == fd) {
			ctx->slot = (int)i;
			ctx->slot_ino = t->conns[i].ino;
			t->conns[i].live++;
			t->conns[i].calls++;
			if (t->conns[i].live > 2 * t->opt.max_streams + CONN_SLACK)
				conn_close_locked(t, (int)i,
				                  "more calls in flight than its stream limit");
			return;
		}
}

/* Counts a call of ctx's connection that ended without a request (t->lock held). */
static void conn_aborted_locked(struct transport *t, struct call_ctx *ctx)
{
	struct conn_slot *c;
	uint64_t now = now_usec();

	if (ctx->slot < 0 || t->conns[ctx->slot].ino != ctx->slot_ino)
		return;
	c = &t->conns[ctx->slot];
	if (now - c->window_usec > CONN_ABORT_WINDOW_USEC) {
		c->window_usec = now;
		c->aborted = 0;
	}
	if (++c->aborted > CONN_MAX_ABORTED)
		conn_close_locked(t, ctx->slot, "a flood of calls reset before their request");
}

/* Logs a refused call, at most once per REFUSE_LOG_SECONDS (a flood must not flood the log). */
static void refused_call(struct transport *t, struct call_ctx *ctx, const char *why)
{
	time_t now = time(NULL);
	unsigned long n;
	bool log;

	pthread_mutex_lock(&t->lock);
	n = ++t->refused_calls;
	log = now - t->refused_calls_logged >= REFUSE_LOG_SECONDS;
	if (log)
		t->refused_calls_logged = now;
	pthread_mutex_unlock(&t->lock);
	if (log)
		log_warning("Refusing calls: %s (%s; %lu refused so far)", why,
		            ctx->index < t->n_methods ? t->methods[ctx->index].name : "unknown", n);
}

/* Ends a call that will not be served: cancelling it completes its close batch. */
static void drop(struct call_ctx *ctx)
{
	grpc_call_cancel(ctx->call, NULL);
	ctx_unref(ctx);
}

/* The request message is here: answer on this thread (quick lane) or queue for a worker. */
static void route(struct transport *t, struct call_ctx *ctx)
{
	bool queued = false;

	if (ctx->quick) {
		serve(t, ctx);
		return;
	}
	pthread_mutex_lock(&t->lock);
	if (t->q_len < t->opt.max_queued) {
		t->queue[(t->q_head + t->q_len) % t->opt.max_queued] = ctx;
		t->q_len++;
		queued = true;
		pthread_cond_signal(&t->queued);
	}
	pthread_mutex_unlock(&t->lock);
	if (!queued) {
		refused_call(t, ctx, "every worker is busy and the queue is full");
		finish_status(ctx, STATUS_RESOURCE_EXHAUSTED,
		              "too many calls in progress (%u waiting for %u workers); retry later",
		              t->opt.max_queued, t->opt.workers);
	}
}

/*
 * A call arrived (headers only): watch for its end (RECV_CLOSE_ON_SERVER), then wait for its
 * request message, unless too many calls of its lane are waiting for theirs already.
 */
static void call_arrived(struct transport *t, struct call_ctx *ctx)
{
	grpc_op op;
	bool full;

	atomic_store(&ctx->refs, 2); /* the finish batch and the close batch */
	memset(&op, 0, sizeof(op));
	op.op = GRPC_OP_RECV_CLOSE_ON_SERVER;
	op.data.recv_close_on_server.cancelled = (int *)&ctx->cancelled;
	if (grpc_call_start_batch(ctx->call, &op, 1, &ctx->close_tag, NULL) != GRPC_CALL_OK)
		atomic_fetch_sub(&ctx->refs, 1);
	if (ctx->index >= t->n_methods) {
		serve(t, ctx); /* UNIMPLEMENTED, the message unread */
		return;
	}

	ctx->quick = quick_lane(t, ctx);
	ctx->arrived_usec = now_usec();
	pthread_mutex_lock(&t->lock);
	conn_attach(t, ctx);
	full = t->n_waiting[ctx->quick] >= (ctx->quick ? MAX_WAITING_QUICK : t->opt.max_waiting);
	if (!full) {
		t->n_waiting[ctx->quick]++;
		ctx->next = t->waiting;
		if (t->waiting)
			t->waiting->prev = ctx;
		t->waiting = ctx;
	}
	pthread_mutex_unlock(&t->lock);
	if (full) {
		refused_call(t, ctx, "too many calls are waiting for their request message");
		finish_status(ctx, STATUS_RESOURCE_EXHAUSTED,
		              "too many calls are waiting for their request message; retry later");
		return;
	}

	memset(&op, 0, sizeof(op));
	op.op = GRPC_OP_RECV_MESSAGE;
	op.data.recv_message.recv_message = &ctx->req_bb;
	if (grpc_call_start_batch(ctx->call, &op, 1, &ctx->msg_tag, NULL) != GRPC_CALL_OK) {
		/* As if it had completed without a message. */
		ctx->req_bb = NULL;
		grpc_call_cancel(ctx->call, NULL);
	}
}

static void message_arrived(struct transport *t, struct call_ctx *ctx)
{
	pthread_mutex_lock(&t->lock);
	t->n_waiting[ctx->quick]--;
	if (ctx->prev)
		ctx->prev->next = ctx->next;
	else
		t->waiting = ctx->next;
	if (ctx->next)
		ctx->next->prev = ctx->prev;
	ctx->prev = ctx->next = NULL;
	if (!ctx->req_bb)
		conn_aborted_locked(t, ctx);
	pthread_mutex_unlock(&t->lock);

	if (!ctx->req_bb) {
		/* The stream ended (reset, cut short, too slow, too big) before a whole message. */
		log_debug("%s: no whole request message (stream reset or cut short), not served",
		          t->methods[ctx->index].name);
		drop(ctx);
		return;
	}
	route(t, ctx);
}

/* Cancels calls whose request message did not come within MESSAGE_TIMEOUT_USEC. */
static void sweep(struct transport *t)
{
	grpc_call *late[64];
	size_t n = 0;
	uint64_t now = now_usec();

	pthread_mutex_lock(&t->lock);
	if (now - t->swept_usec < 500000) {
		pthread_mutex_unlock(&t->lock);
		return;
	}
	t->swept_usec = now;
	for (struct call_ctx *c = t->waiting; c && n < ELEMENTSOF(late); c = c->next)
		if (!c->swept && now - c->arrived_usec > (c->quick ? MESSAGE_TIMEOUT_QUICK_USEC
		                                                   : MESSAGE_TIMEOUT_USEC)) {
			c->swept = true;
			grpc_call_ref(c->call);
			late[n++] = c->call;
		}
	pthread_mutex_unlock(&t->lock);
	for (size_t i = 0; i < n; i++) {
		grpc_call_cancel_with_status(late[i], GRPC_STATUS_RESOURCE_EXHAUSTED,
		                             "the request message did not arrive in time", NULL);
		grpc_call_unref(late[i]);
	}
	if (n > 0)
		log_debug("Cancelled %zu call(s) whose request message did not arrive in time", n);
}

static void *poller(void *arg)
{
	struct transport *t = arg;

	for (;;) {
		grpc_event ev =
		        grpc_completion_queue_next(t->cq, gpr_inf_future(GPR_CLOCK_REALTIME), NULL);
		struct tag *tag;

		if (ev.type == GRPC_QUEUE_SHUTDOWN)
			break;
		if (ev.type != GRPC_OP_COMPLETE)
			continue;
		tag = ev.tag;
		switch (tag->kind) {
		case TAG_SHUTDOWN:
			pthread_mutex_lock(&t->lock);
			t->shutdown_seen = true;
			pthread_cond_broadcast(&t->cond);
			pthread_mutex_unlock(&t->lock);
			break;
		case TAG_REQUEST: {
			struct call_ctx *ctx = (struct call_ctx *)tag;
			bool stopping;

			if (!ev.success) {
				ctx_free(ctx);
				break;
			}
			pthread_mutex_lock(&t->lock);
			t->in_flight++;
			stopping = t->stopping;
			pthread_mutex_unlock(&t->lock);
			if (!stopping)
				arm(t, ctx->index);
			call_arrived(t, ctx);
			break;
		}
		case TAG_FINISH:
			ctx_unref((struct call_ctx *)tag);
			break;
		case TAG_CLOSE:
			ctx_unref(ctx_of_close(tag));
			break;
		case TAG_MESSAGE:
			message_arrived(t, ctx_of_msg(tag));
			break;
		}
	}
	return NULL;
}

static void *worker(void *arg)
{
	struct transport *t = arg;

	for (;;) {
		struct call_ctx *ctx;

		pthread_mutex_lock(&t->lock);
		while (t->q_len == 0 && !t->workers_stop)
			pthread_cond_wait(&t->queued, &t->lock);
		if (t->q_len == 0) {
			pthread_mutex_unlock(&t->lock);
			break;
		}
		ctx = t->queue[t->q_head];
		t->q_head = (t->q_head + 1) % t->opt.max_queued;
		t->q_len--;
		pthread_mutex_unlock(&t->lock);
		serve(t, ctx);
	}
	return NULL;
}

/* Counts the connections whose fd still names the socket we accepted (t->lock held). */
static void conns_reconcile(struct transport *t)
{
	unsigned n = 0;

	for (unsigned i = 0; i < t->opt.max_connections; i++) {
		struct stat st;

		if (t->conns[i].fd < 0)
			continue;
		if (fstat(t->conns[i].fd, &st) < 0 || !S_ISSOCK(st.st_mode) ||
		    st.st_ino != t->conns[i].ino)
			t->conns[i].fd = -1;
		else
			n++;
	}
	t->n_conns = n;
}

/*
 * At the cap: shuts down the oldest connection that never made a call in CONN_UNUSED_USEC (idle
 * or silent; a CSI client calls as soon as it is connected), and frees its slot (t->lock held).
 */
static void conns_evict_unused(struct transport *t)
{
	uint64_t now = now_usec();
	int oldest = -1;

	for (unsigned i = 0; i < t->opt.max_connections; i++) {
		const struct conn_slot *c = &t->conns[i];

		if (c->fd < 0 || c->calls > 0 || c->closing ||
		    now - c->accepted_usec < CONN_UNUSED_USEC)
			continue;
		if (oldest < 0 || c->accepted_usec < t->conns[oldest].accepted_usec)
			oldest = (int)i;
	}
	if (oldest < 0)
		return;
	conn_close_locked(t, oldest, "at the connection limit, closing one that never made a call");
	t->conns[oldest].fd = -1;
	t->n_conns--;
}

/* Closes a new connection at once (t->lock held). */
static void refuse_locked(struct transport *t, int fd, const char *why)
{
	time_t now = time(NULL);

	safe_close(fd);
	t->refused++;
	if (now - t->refuse_logged >= REFUSE_LOG_SECONDS) {
		log_warning("Refusing connections: %s (%lu refused or closed so far)", why,
		            t->refused);
		t->refuse_logged = now;
	}
}

/* Accepts one connection and hands it to gRPC, or closes it. False when there was none. */
static bool accept_one(struct transport *t)
{
	struct stat st;
	int fd;

	fd = accept4(t->listen_fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
	if (fd < 0) {
		if (errno != EMFILE && errno != ENFILE) {
			if (errno != EAGAIN && errno != EINTR && errno != ECONNABORTED)
				log_warning_errno(errno, "accept failed: %m");
			return false;
		}
		/* Out of fds: use the spare one to take the connection off the backlog and close
		 * it. */
		t->spare_fd = safe_close(t->spare_fd);
		fd = accept4(t->listen_fd, NULL, NULL, SOCK_CLOEXEC);
		pthread_mutex_lock(&t->lock);
		if (fd >= 0)
			refuse_locked(t, fd, "out of file descriptors");
		pthread_mutex_unlock(&t->lock);
		t->spare_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
		return fd >= 0;
	}
	if (t->fd_top > FD_ROTATE_BASE) {
		int hi;

		if (t->fd_cursor < FD_ROTATE_BASE || t->fd_cursor >= t->fd_top)
			t->fd_cursor = FD_ROTATE_BASE;
		hi = fcntl(fd, F_DUPFD_CLOEXEC, t->fd_cursor);
		if (hi < 0)
			hi = fcntl(fd, F_DUPFD_CLOEXEC, FD_ROTATE_BASE);
		if (hi >= 0) {
			safe_close(fd);
			fd = hi;
			t->fd_cursor = hi + 1;
		}
	}
	if (fstat(fd, &st) < 0) {
		safe_close(fd);
		return true;
	}
	pthread_mutex_lock(&t->lock);
	if (t->n_conns >= t->opt.max_connections)
		conns_reconcile(t);
	if (t->n_conns >= t->opt.max_connections)
		conns_evict_unused(t);
	if (t->n_conns >= t->opt.max_connections) {
		refuse_locked(t, fd, "the connection limit is reached (--max-connections)");
		pthread_mutex_unlock(&t->lock);
		return true;
	}
	for (unsigned i = 0; i < t->opt.max_connections; i++)
		if (t->conns[i].fd < 0 || t->conns[i].fd == fd) {
			/* A slot with the same fd number: that connection is gone (fd reused). */
			if (t->conns[i].fd < 0)
				t->n_conns++;
			t->conns[i] = (struct conn_slot){ .fd = fd,
				                          .ino = st.st_ino,
				                          .accepted_usec = now_usec() };
			break;
		}
	pthread_mutex_unlock(&t->lock);
	grpc_server_add_channel_from_fd(t->server, fd, t->creds);
	return true;
}

static void *acceptor(void *arg)
{
	struct transport *t = arg;

	for (;;) {
		struct pollfd pfd[2] = {
			{ .fd = t->listen_fd, .events = POLLIN },
			{ .fd = t->wake_fd, .events = POLLIN },
		};

		sweep(t);
		if (poll(pfd, 2, 500) < 0) {
			if (errno == EINTR)
				continue;
			log_error_errno(errno, "poll on the listening socket failed: %m");
			break;
		}
		if (pfd[1].revents)
			break;
		if (pfd[0].revents & POLLIN)
			for (int i = 0; i < 64 && accept_one(t); i++)
				;
	}
	return NULL;
}

/* Fds for the connections, and FD_RESERVE more: raise the soft limit, or lower the cap. */
static void fit_fd_limit(struct transport *t)
{
	struct rlimit rl;
	rlim_t want = (rlim_t)t->opt.max_connections + FD_RESERVE;

	if (getrlimit(RLIMIT_NOFILE, &rl) < 0)
		return;
	/* Room to rotate fd numbers too (FD_ROTATE_BASE). */
	if (rl.rlim_cur < MAX(want, (rlim_t)FD_LIMIT_WANT)) {
		rl.rlim_cur = MIN(MAX(want, (rlim_t)FD_LIMIT_WANT), rl.rlim_max);
		(void)setrlimit(RLIMIT_NOFILE, &rl);
		(void)getrlimit(RLIMIT_NOFILE, &rl);
	}
	t->fd_top = (int)MIN(rl.rlim_cur, (rlim_t)INT32_MAX);
	if (rl.rlim_cur < want) {
		unsigned cap = rl.rlim_cur > 2 * FD_RESERVE ? (unsigned)(rl.rlim_cur - FD_RESERVE)
		                                            : (unsigned)(rl.rlim_cur / 2);

		log_warning("The fd limit (%llu) leaves room for %u connections, not %u",
		            (unsigned long long)rl.rlim_cur, cap, t->opt.max_connections);
		t->opt.max_connections = MAX(cap, 1u);
	}
}

static void gpr_log_to_ours(gpr_log_func_args *args)
{
	enum log_level level =
	        args->severity == GPR_LOG_SEVERITY_ERROR ? LOG_LEVEL_ERROR : LOG_LEVEL_DEBUG;

	/* args->message may quote peer bytes; the logger escapes every field. */
	log_internal(level, 0, args->file, args->line, "grpc: %s", args->message);
}

void transport_setup_logging(void)
{
	gpr_set_log_function(gpr_log_to_ours);
	gpr_set_log_verbosity(GPR_LOG_SEVERITY_ERROR);
}

static void set_int(grpc_arg *a, const char *key, int value)
{
	a->type = GRPC_ARG_INTEGER;
	a->key = (char *)key;
	a->value.integer = value;
}

static void options_defaults(struct transport_options *o)
{
	if (o->workers == 0)
		o->workers = TRANSPORT_DEFAULT_WORKERS;
	if (o->max_queued == 0)
		o->max_queued = TRANSPORT_DEFAULT_MAX_QUEUED;
	if (o->max_waiting == 0)
		o->max_waiting = TRANSPORT_DEFAULT_MAX_WAITING;
	if (o->max_connections == 0)
		o->max_connections = TRANSPORT_DEFAULT_MAX_CONNECTIONS;
	if (o->max_streams == 0)
		o->max_streams = TRANSPORT_DEFAULT_MAX_STREAMS;
	if (o->memory_bytes == 0)
		o->memory_bytes = TRANSPORT_DEFAULT_MEMORY_BYTES;
}

static void transport_release(struct transport *t)
{
	if (t->quota)
		grpc_resource_quota_unref(t->quota);
	if (t->creds)
		grpc_server_credentials_release(t->creds);
	safe_close(t->listen_fd);
	safe_close(t->wake_fd);
	safe_close(t->spare_fd);
	pthread_mutex_destroy(&t->lock);
	pthread_cond_destroy(&t->cond);
	pthread_cond_destroy(&t->queued);
	free(t->handles);
	free(t->workers);
	free(t->queue);
	free(t->conns);
	free(t);
}

int transport_start(struct plugin *p, const char *socket_path, const struct transport_options *o,
                    struct transport **ret)
{
	grpc_arg args[7];
	grpc_channel_args channel_args = { .args = args };
	struct transport *t;
	int r;

	t = calloc(1, sizeof(*t));
	if (!t)
		return -ENOMEM;
	t->plugin = p;
	t->opt = *o;
	options_defaults(&t->opt);
	t->shutdown_tag.kind = TAG_SHUTDOWN;
	t->listen_fd = t->wake_fd = t->spare_fd = -EBADF;
	pthread_mutex_init(&t->lock, NULL);
	pthread_cond_init(&t->cond, NULL);
	pthread_cond_init(&t->queued, NULL);
	fit_fd_limit(t);
	t->methods = plugin_methods(&t->n_methods);
	t->handles = calloc(t->n_methods + 1, sizeof(void *));
	t->workers = calloc(t->opt.workers, sizeof(pthread_t));
	t->queue = calloc(t->opt.max_queued, sizeof(*t->queue));
	t->conns = calloc(t->opt.max_connections, sizeof(*t->conns));
	if (!t->methods || !t->handles || !t->workers || !t->queue || !t->conns) {
		transport_release(t);
		return -ENOMEM;
	}
	for (unsigned i = 0; i < t->opt.max_connections; i++)
		t->conns[i].fd = -1;
	t->wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	t->spare_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
	if (t->wake_fd < 0 || t->spare_fd < 0) {
		r = -errno;
		transport_release(t);
		return r;
	}
	r = endpoint_listen(socket_path, t->opt.socket_mode, &t->listen_fd);
	if (r < 0) {
		transport_release(t);
		return r;
	}

	grpc_init();
	t->quota = grpc_resource_quota_create("rbdcsi");
	grpc_resource_quota_resize(t->quota, t->opt.memory_bytes);
	set_int(&args[channel_args.num_args++], GRPC_ARG_MAX_RECEIVE_MESSAGE_LENGTH,
	        TRANSPORT_MAX_REQUEST_BYTES);
	set_int(&args[channel_args.num_args++], GRPC_ARG_MAX_CONCURRENT_STREAMS,
	        (int)t->opt.max_streams);
	set_int(&args[channel_args.num_args++], GRPC_ARG_MAX_METADATA_SIZE,
	        TRANSPORT_MAX_METADATA_BYTES);
	args[channel_args.num_args].type = GRPC_ARG_POINTER;
	args[channel_args.num_args].key = (char *)GRPC_ARG_RESOURCE_QUOTA;
	args[channel_args.num_args].value.pointer.p = t->quota;
	args[channel_args.num_args].value.pointer.vtable = grpc_resource_quota_arg_vtable();
	channel_args.num_args++;
	if (t->opt.idle_ms > 0)
		set_int(&args[channel_args.num_args++], GRPC_ARG_MAX_CONNECTION_IDLE_MS,
		        (int)MIN(t->opt.idle_ms, (unsigned)INT32_MAX));
	t->creds = grpc_insecure_server_credentials_create();
	t->cq = grpc_completion_queue_create_for_next(NULL);
	t->server = grpc_server_create(&channel_args, NULL);
	grpc_server_register_completion_queue(t->server, t->cq, NULL);
	for (size_t i = 0; i < t->n_methods; i++)
		t->handles[i] = grpc_server_register_method(t->server, t->methods[i].path, NULL,
		                                            GRPC_SRM_PAYLOAD_NONE, 0);
	grpc_server_start(t->server);

	for (size_t i = 0; i <= t->n_methods; i++)
		arm(t, i);
	for (unsigned i = 0; i < POLLERS; i++) {
		if (pthread_create(&t->pollers[i], NULL, poller, t) != 0)
			break;
		t->n_pollers++;
	}
	for (unsigned i = 0; i < t->opt.workers; i++) {
		if (pthread_create(&t->workers[i], NULL, worker, t) != 0)
			break;
		t->n_workers++;
	}
	if (t->n_pollers > 0 && t->n_workers > 0 &&
	    pthread_create(&t->acceptor, NULL, acceptor, t) == 0)
		t->acceptor_running = true;
	if (!t->acceptor_running) {
		log_error("Could not start the server's threads");
		transport_shutdown(t, 0);
		transport_free(t);
		return -EAGAIN;
	}
	*ret = t;
	return 0;
}

/* Waits on t->cond until pred holds or the absolute CLOCK_REALTIME time passes. */
static bool wait_until(struct transport *t, bool (*pred)(struct transport *), time_t until)
{
	struct timespec ts = { .tv_sec = until };
	bool ok;

	pthread_mutex_lock(&t->lock);
	while (!(ok = pred(t)))
		if (pthread_cond_timedwait(&t->cond, &t->lock, &ts) == ETIMEDOUT) {
			ok = pred(t);
			break;
		}
	pthread_mutex_unlock(&t->lock);
	return ok;
}

static bool shutdown_done(struct transport *t)
{
	return t->shutdown_seen;
}

static bool idle(struct transport *t)
{
	return t->in_flight == 0;
}

int transport_shutdown(struct transport *t, unsigned grace_seconds)
{
	time_t start = time(NULL);
	uint64_t one = 1;

	if (t->acceptor_running) {
		(void)!write(t->wake_fd, &one, sizeof(one));
		pthread_join(t->acceptor, NULL);
		t->acceptor_running = false;
	}
	t->listen_fd = safe_close(t->listen_fd);

	pthread_mutex_lock(&t->lock);
	t->stopping = true;
	pthread_mutex_unlock(&t->lock);

	grpc_server_shutdown_and_notify(t->server, t->cq, &t->shutdown_tag);
	if (!wait_until(t, shutdown_done, start + grace_seconds)) {
		log_warning("Calls still running after %us, cancelling them", grace_seconds);
		grpc_server_cancel_all_calls(t->server);
	}
	/* Handlers keep running after a cancel; the queue may only shut down once they are done. */
	if (!wait_until(t, shutdown_done, start + 2 * (time_t)grace_seconds + 1) ||
	    !wait_until(t, idle, start + 2 * (time_t)grace_seconds + 1)) {
		log_error("Handlers still running %us after shutdown began, giving up on a clean "
		          "stop",
		          2 * grace_seconds + 1);
		return -ETIMEDOUT;
	}
	pthread_mutex_lock(&t->lock);
	t->workers_stop = true;
	pthread_cond_broadcast(&t->queued);
	pthread_mutex_unlock(&t->lock);
	for (unsigned i = 0; i < t->n_workers; i++)
		pthread_join(t->workers[i], NULL);
	t->n_workers = 0;
	grpc_completion_queue_shutdown(t->cq);
	for (unsigned i = 0; i < t->n_pollers; i++)
		pthread_join(t->pollers[i], NULL);
	t->n_pollers = 0;
	return 0;
}

struct transport *transport_free(struct transport *t)
{
	if (!t)
		return NULL;
	grpc_server_destroy(t->server);
	grpc_completion_queue_destroy(t->cq);
	if (t->quota)
		grpc_resource_quota_unref(t->quota);
	t->quota = NULL;
	if (t->creds)
		grpc_server_credentials_release(t->creds);
	t->creds = NULL;
	grpc_shutdown();
	transport_release(t);
	return NULL;
}
