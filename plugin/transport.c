/* SPDX-License-Identifier: Apache-2.0 */
/*
 * gRPC C core server. Pattern (see the notes on gRPC C core): one completion queue polled by a
 * few threads; each registered method has one armed request, re-armed as soon as a call arrives;
 * one catch-all request answers unknown methods with UNIMPLEMENTED.
 *
 * Hostile clients (issue 13). Memory: gRPC core's knobs first (concurrent streams per connection,
 * a resource quota, metadata size, message size, optional idle limit), our own accounting second
 * (a cap on connections, since this gRPC has no such knob; a bounded queue of slow calls). Each
 * call also starts a RECV_CLOSE_ON_SERVER batch at once, so a reset stream sets `cancelled`
 * while the call waits or runs; a call without a whole request message, or cancelled before a
 * handler starts, never reaches a handler. Lanes: the quick methods are answered on the
 * completion-queue threads; the others wait in the queue for one of N workers.
 *
 * Connections: we bind and accept ourselves (the socket gets its mode before it is reachable,
 * plugin/endpoint.h) and hand each connection to gRPC (grpc_server_add_channel_from_fd). Over the
 * cap, or at the fd limit (a spare fd is kept for that), a new connection is accepted and closed
 * at once; existing connections are served on. A connection is counted until its fd no longer
 * names the same socket (inode), checked when the cap is reached.
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
/* At most one "refusing connections" warning per this many seconds. */
#define REFUSE_LOG_SECONDS 10

enum tag_kind {
	TAG_REQUEST,
	TAG_FINISH,
	TAG_CLOSE,
	TAG_SHUTDOWN,
};

struct tag {
	enum tag_kind kind;
};

struct conn_slot {
	int fd; /* -1: free */
	ino_t ino;
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
	unsigned long refused;
	time_t refuse_logged;
};

struct call_ctx {
	struct tag tag;       /* first: the completion queue hands this pointer back */
	struct tag close_tag; /* the RECV_CLOSE_ON_SERVER batch */
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

	if (atomic_fetch_sub(&ctx->refs, 1) != 1)
		return;
	ctx_free(ctx);
	pthread_mutex_lock(&t->lock);
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
	ctx->t = t;
	ctx->index = index;
	grpc_metadata_array_init(&ctx->md);
	grpc_call_details_init(&ctx->details);
	if (index < t->n_methods)
		e = grpc_server_request_registered_call(t->server, t->handles[index], &ctx->call,
		                                        &ctx->deadline, &ctx->md, &ctx->req_bb,
		                                        t->cq, t->cq, ctx);
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

/* A call arrived: close-watch it, then answer it here (quick lane) or queue it for a worker. */
static void accept_call(struct transport *t, struct call_ctx *ctx)
{
	grpc_op op;
	bool queued = false;

	if (ctx->index < t->n_methods && !ctx->req_bb) {
		/*
		 * The stream ended (reset, or half-closed) before a whole request message came. No
		 * batch: dropping the call cancels it, the cheapest answer to a flood of resets.
		 */
		log_debug("%s: no request message (stream reset or cut short), not served",
		          t->methods[ctx->index].name);
		atomic_store(&ctx->refs, 1);
		ctx_unref(ctx);
		return;
	}
	atomic_store(&ctx->refs, 1);
	memset(&op, 0, sizeof(op));
	op.op = GRPC_OP_RECV_CLOSE_ON_SERVER;
	op.data.recv_close_on_server.cancelled = (int *)&ctx->cancelled;
	atomic_fetch_add(&ctx->refs, 1);
	if (grpc_call_start_batch(ctx->call, &op, 1, &ctx->close_tag, NULL) != GRPC_CALL_OK)
		atomic_fetch_sub(&ctx->refs, 1);

	if (quick_lane(t, ctx)) {
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
		log_warning("%s refused: %u calls are waiting for a worker already",
		            t->methods[ctx->index].name, t->opt.max_queued);
		finish_status(ctx, STATUS_RESOURCE_EXHAUSTED,
		              "too many calls in progress (%u waiting for %u workers); retry later",
		              t->opt.max_queued, t->opt.workers);
	}
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
			accept_call(t, ctx);
			break;
		}
		case TAG_FINISH:
			ctx_unref((struct call_ctx *)tag);
			break;
		case TAG_CLOSE:
			ctx_unref(ctx_of_close(tag));
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

/* Counts the connections whose fd still names the socket we accepted. */
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

static void refuse(struct transport *t, int fd, const char *why)
{
	time_t now = time(NULL);

	safe_close(fd);
	t->refused++;
	if (now - t->refuse_logged >= REFUSE_LOG_SECONDS) {
		log_warning("Refusing connections: %s (%lu refused so far)", why, t->refused);
		t->refuse_logged = now;
	}
}

static void accept_one(struct transport *t)
{
	struct stat st;
	int fd;

	fd = accept4(t->listen_fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
	if (fd < 0) {
		if (errno != EMFILE && errno != ENFILE) {
			if (errno != EAGAIN && errno != EINTR && errno != ECONNABORTED)
				log_warning_errno(errno, "accept failed: %m");
			return;
		}
		/* Out of fds: use the spare one to take the connection off the backlog and close
		 * it. */
		t->spare_fd = safe_close(t->spare_fd);
		fd = accept4(t->listen_fd, NULL, NULL, SOCK_CLOEXEC);
		if (fd >= 0)
			refuse(t, fd, "out of file descriptors");
		t->spare_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
		return;
	}
	if (t->n_conns >= t->opt.max_connections)
		conns_reconcile(t);
	if (t->n_conns >= t->opt.max_connections) {
		refuse(t, fd, "the connection limit is reached (--max-connections)");
		return;
	}
	if (fstat(fd, &st) < 0) {
		safe_close(fd);
		return;
	}
	for (unsigned i = 0; i < t->opt.max_connections; i++)
		if (t->conns[i].fd < 0 || t->conns[i].fd == fd) {
			/* A slot with the same fd number: that connection is gone (fd reused). */
			if (t->conns[i].fd < 0)
				t->n_conns++;
			t->conns[i] = (struct conn_slot){ fd, st.st_ino };
			break;
		}
	grpc_server_add_channel_from_fd(t->server, fd, t->creds);
}

static void *acceptor(void *arg)
{
	struct transport *t = arg;

	for (;;) {
		struct pollfd pfd[2] = {
			{ .fd = t->listen_fd, .events = POLLIN },
			{ .fd = t->wake_fd, .events = POLLIN },
		};

		if (poll(pfd, 2, -1) < 0) {
			if (errno == EINTR)
				continue;
			log_error_errno(errno, "poll on the listening socket failed: %m");
			break;
		}
		if (pfd[1].revents)
			break;
		if (pfd[0].revents & POLLIN)
			for (int i = 0; i < 64; i++) {
				unsigned long before = t->refused;
				unsigned n = t->n_conns;

				accept_one(t);
				if (t->n_conns == n && t->refused == before)
					break; /* nothing more to accept */
			}
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
	if (rl.rlim_cur < want) {
		rl.rlim_cur = MIN(want, rl.rlim_max);
		(void)setrlimit(RLIMIT_NOFILE, &rl);
		(void)getrlimit(RLIMIT_NOFILE, &rl);
	}
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
		t->handles[i] =
		        grpc_server_register_method(t->server, t->methods[i].path, NULL,
		                                    GRPC_SRM_PAYLOAD_READ_INITIAL_BYTE_BUFFER, 0);
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
