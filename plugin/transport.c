/* SPDX-License-Identifier: Apache-2.0 */
/*
 * gRPC C core server. Pattern (see the notes on gRPC C core): one completion queue shared by N
 * workers; each registered method has one armed request, re-armed as soon as a call arrives; one
 * catch-all request answers unknown methods with UNIMPLEMENTED. Shutdown: shutdown_and_notify,
 * wait for the tag (cancelling after the grace period), then wait until no handler is running
 * before shutting the completion queue down (starting a batch on a shut-down queue aborts).
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <grpc/byte_buffer_reader.h>
#include <grpc/grpc.h>
#include <grpc/grpc_security.h>
#include <grpc/support/alloc.h>
#include <grpc/support/log.h>

#include "plugin/transport.h"

enum tag_kind {
	TAG_REQUEST,
	TAG_FINISH,
	TAG_SHUTDOWN,
};

struct tag {
	enum tag_kind kind;
};

struct transport {
	struct plugin *plugin;
	grpc_server *server;
	grpc_completion_queue *cq;
	const struct method *methods;
	size_t n_methods;
	void **handles;
	pthread_t *threads;
	unsigned n_threads;
	struct tag shutdown_tag;
	pthread_mutex_t lock;
	pthread_cond_t cond;
	unsigned in_flight;
	bool shutdown_seen;
	bool stopping;
};

struct call_ctx {
	struct tag tag; /* first: the completion queue hands this pointer back */
	struct transport *t;
	size_t index; /* method index, or n_methods for the catch-all */
	grpc_call *call;
	gpr_timespec deadline;
	grpc_metadata_array md;
	grpc_call_details details;
	grpc_byte_buffer *req_bb;
	grpc_byte_buffer *resp_bb;
	int cancelled;
};

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

static void arm(struct transport *t, size_t index)
{
	struct call_ctx *ctx = calloc(1, sizeof(*ctx));
	grpc_call_error e;

	if (!ctx) {
		log_error("Out of memory arming a request; the method will not be served");
		return;
	}
	ctx->tag.kind = TAG_REQUEST;
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

static void serve(struct transport *t, struct call_ctx *ctx)
{
	uint8_t *resp = NULL;
	size_t resp_len = 0;
	char *message = NULL;
	enum status_code code;
	grpc_slice details;
	grpc_op ops[4];
	grpc_op *op = ops;
	grpc_call_error e;

	if (ctx->index < t->n_methods) {
		const struct method *m = &t->methods[ctx->index];
		grpc_slice all = grpc_empty_slice();
		bool have = false;

		if (ctx->req_bb) {
			grpc_byte_buffer_reader rd;

			if (grpc_byte_buffer_reader_init(&rd, ctx->req_bb)) {
				all = grpc_byte_buffer_reader_readall(&rd);
				grpc_byte_buffer_reader_destroy(&rd);
				have = true;
			}
		}
		code = plugin_dispatch(t->plugin, m, GRPC_SLICE_START_PTR(all),
		                       GRPC_SLICE_LENGTH(all), deadline_to_usec(ctx->deadline),
		                       &ctx->cancelled, &resp, &resp_len, &message);
		if (have)
			grpc_slice_unref(all);
	} else {
		char *path = grpc_slice_to_c_string(ctx->details.method);

		code = STATUS_UNIMPLEMENTED;
		if (asprintf(&message, "method %s not implemented", path) < 0)
			message = NULL;
		log_warning("Unknown method '%s' called", path);
		gpr_free(path);
	}

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
	op->op = GRPC_OP_RECV_CLOSE_ON_SERVER;
	op->data.recv_close_on_server.cancelled = &ctx->cancelled;
	op++;
	details = grpc_slice_from_copied_string(message ? message : "");
	op->op = GRPC_OP_SEND_STATUS_FROM_SERVER;
	op->data.send_status_from_server.trailing_metadata_count = 0;
	op->data.send_status_from_server.status = (grpc_status_code)code;
	op->data.send_status_from_server.status_details = code == STATUS_OK ? NULL : &details;
	op++;

	ctx->tag.kind = TAG_FINISH;
	e = grpc_call_start_batch(ctx->call, ops, (size_t)(op - ops), ctx, NULL);
	grpc_slice_unref(details);
	free(resp);
	free(message);
	if (e != GRPC_CALL_OK) {
		log_error("Failed to send the response (grpc_call_error %d)", (int)e);
		pthread_mutex_lock(&t->lock);
		t->in_flight--;
		pthread_cond_broadcast(&t->cond);
		pthread_mutex_unlock(&t->lock);
		ctx_free(ctx);
	}
}

static void *worker(void *arg)
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
			serve(t, ctx);
			break;
		}
		case TAG_FINISH:
			ctx_free((struct call_ctx *)tag);
			pthread_mutex_lock(&t->lock);
			t->in_flight--;
			pthread_cond_broadcast(&t->cond);
			pthread_mutex_unlock(&t->lock);
			break;
		}
	}
	return NULL;
}

static void gpr_log_to_ours(gpr_log_func_args *args)
{
	enum log_level level =
	        args->severity == GPR_LOG_SEVERITY_ERROR ? LOG_LEVEL_ERROR : LOG_LEVEL_DEBUG;

	log_internal(level, 0, args->file, args->line, "grpc: %s", args->message);
}

void transport_setup_logging(void)
{
	gpr_set_log_function(gpr_log_to_ours);
	gpr_set_log_verbosity(GPR_LOG_SEVERITY_ERROR);
}

int transport_start(struct plugin *p, const char *socket_path, unsigned workers,
                    struct transport **ret)
{
	grpc_arg args[1];
	grpc_channel_args channel_args = { .num_args = 1, .args = args };
	grpc_server_credentials *creds;
	struct transport *t;
	char *addr = NULL;
	int port;

	t = calloc(1, sizeof(*t));
	if (!t)
		return -ENOMEM;
	t->plugin = p;
	t->shutdown_tag.kind = TAG_SHUTDOWN;
	pthread_mutex_init(&t->lock, NULL);
	pthread_cond_init(&t->cond, NULL);
	t->methods = plugin_methods(&t->n_methods);
	t->handles = calloc(t->n_methods + 1, sizeof(void *));
	t->threads = calloc(workers, sizeof(pthread_t));
	if (!t->methods || !t->handles || !t->threads ||
	    asprintf(&addr, "unix:%s", socket_path) < 0)
		goto fail_nomem;

	grpc_init();
	args[0].type = GRPC_ARG_INTEGER;
	args[0].key = (char *)GRPC_ARG_MAX_RECEIVE_MESSAGE_LENGTH;
	args[0].value.integer = TRANSPORT_MAX_REQUEST_BYTES;
	t->cq = grpc_completion_queue_create_for_next(NULL);
	t->server = grpc_server_create(&channel_args, NULL);
	grpc_server_register_completion_queue(t->server, t->cq, NULL);
	for (size_t i = 0; i < t->n_methods; i++)
		t->handles[i] =
		        grpc_server_register_method(t->server, t->methods[i].path, NULL,
		                                    GRPC_SRM_PAYLOAD_READ_INITIAL_BYTE_BUFFER, 0);

	creds = grpc_insecure_server_credentials_create();
	port = grpc_server_add_http2_port(t->server, addr, creds);
	grpc_server_credentials_release(creds);
	free(addr);
	addr = NULL;
	if (port == 0) {
		grpc_server_destroy(t->server);
		grpc_completion_queue_shutdown(t->cq);
		while (grpc_completion_queue_next(t->cq, gpr_inf_past(GPR_CLOCK_REALTIME), NULL)
		               .type != GRPC_QUEUE_SHUTDOWN)
			;
		grpc_completion_queue_destroy(t->cq);
		grpc_shutdown();
		free(t->handles);
		free(t->threads);
		free(t);
		return -EADDRINUSE;
	}
	grpc_server_start(t->server);

	for (size_t i = 0; i <= t->n_methods; i++)
		arm(t, i);
	for (unsigned i = 0; i < workers; i++) {
		if (pthread_create(&t->threads[i], NULL, worker, t) != 0)
			break;
		t->n_threads++;
	}
	if (t->n_threads == 0) {
		log_error("Could not start any worker thread");
		transport_shutdown(t, 0);
		transport_free(t);
		return -EAGAIN;
	}
	*ret = t;
	return 0;

fail_nomem:
	free(addr);
	free(t->handles);
	free(t->threads);
	free(t);
	return -ENOMEM;
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
	grpc_completion_queue_shutdown(t->cq);
	for (unsigned i = 0; i < t->n_threads; i++)
		pthread_join(t->threads[i], NULL);
	t->n_threads = 0;
	return 0;
}

struct transport *transport_free(struct transport *t)
{
	if (!t)
		return NULL;
	grpc_server_destroy(t->server);
	grpc_completion_queue_destroy(t->cq);
	grpc_shutdown();
	pthread_mutex_destroy(&t->lock);
	pthread_cond_destroy(&t->cond);
	free(t->handles);
	free(t->threads);
	free(t);
	return NULL;
}
