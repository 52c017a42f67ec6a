/* SPDX-License-Identifier: Apache-2.0 */
/*
 * From packed request bytes to packed response bytes: unpack, give the handler a call context,
 * map its errno through the status table, pack. Knows protobuf-c, not gRPC.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "plugin/metrics.h"
#include "plugin/plugin.h"

/* The id a log line should carry: the first of these string fields the request has. */
static const char *request_object_id(const ProtobufCMessage *req)
{
	static const char *const fields[] = { "volume_id", "snapshot_id", "source_volume_id",
		                              "name" };

	for (size_t i = 0; i < ELEMENTSOF(fields); i++) {
		const ProtobufCFieldDescriptor *f =
		        protobuf_c_message_descriptor_get_field_by_name(req->descriptor, fields[i]);
		const char *v;

		if (!f || f->type != PROTOBUF_C_TYPE_STRING ||
		    f->label == PROTOBUF_C_LABEL_REPEATED)
			continue;
		v = *(const char *const *)((const uint8_t *)req + f->offset);
		if (!isempty(v))
			return v;
	}
	return NULL;
}

_printf_(3, 4) static enum status_code
        fail(enum status_code code, char **ret_message, const char *format, ...)
{
	char *msg = NULL;
	va_list ap;

	va_start(ap, format);
	if (vasprintf(&msg, format, ap) < 0)
		msg = NULL;
	va_end(ap);
	log_warning("%s", msg ? msg : format);
	*ret_message = msg;
	return code;
}

enum status_code plugin_dispatch(struct plugin *p, const struct method *m, const uint8_t *data,
                                 size_t len, uint64_t deadline_usec, const volatile int *cancelled,
                                 uint8_t **ret_response, size_t *ret_response_len,
                                 char **ret_message)
{
	struct call c = {
		.plugin = p,
		.method = m,
		.deadline_usec = deadline_usec,
		.cancelled = cancelled,
	};
	ProtobufCMessage *req = NULL, *resp = NULL;
	enum status_code code;
	uint64_t start = now_usec();
	int r;

	c.log.request_id = atomic_fetch_add(&p->next_request_id, 1) + 1;
	c.log.method = m->name;
	log_context_push(&c.log);
	metrics_call_begin(p->metrics, m->index);

	*ret_response = NULL;
	*ret_response_len = 0;
	*ret_message = NULL;

	if (!m->handler || !(m->modes & p->opt.mode)) {
		code = fail(STATUS_UNIMPLEMENTED, ret_message, "method %s not implemented",
		            m->path);
		goto out;
	}

	req = protobuf_c_message_unpack(m->input, NULL, len, data);
	if (!req) {
		code = fail(STATUS_INVALID_ARGUMENT, ret_message,
		            "%s: request is not a valid protobuf message", m->name);
		goto out;
	}
	log_context_set_volume(request_object_id(req));

	resp = call_alloc(&c, m->output->sizeof_message);
	if (!resp) {
		code = fail(STATUS_RESOURCE_EXHAUSTED, ret_message, "%s: out of memory", m->name);
		goto out;
	}
	protobuf_c_message_init(m->output, resp);

	r = m->handler(&c, req, resp);
	if (r < 0) {
		code = c.code != STATUS_OK ? c.code : status_from_errno(r);
		if (c.log.error_message)
			*ret_message = strdup(c.log.error_message);
		else {
			/* The handler failed without describing it: say at least what failed. */
			log_error_errno(r, "%s failed: %m", m->name);
			*ret_message = c.log.error_message ? strdup(c.log.error_message) : NULL;
		}
		log_full_errno(LOG_LEVEL_INFO, 0, "finished code=%s duration_ms=%.3f",
		               status_to_string(code), (now_usec() - start) / 1000.0);
		goto out;
	}

	*ret_response_len = protobuf_c_message_get_packed_size(resp);
	*ret_response = malloc(*ret_response_len ? *ret_response_len : 1);
	if (!*ret_response) {
		code = fail(STATUS_RESOURCE_EXHAUSTED, ret_message, "%s: out of memory", m->name);
		goto out;
	}
	protobuf_c_message_pack(resp, *ret_response);
	code = STATUS_OK;
	log_full_errno(m->quiet ? LOG_LEVEL_DEBUG : LOG_LEVEL_INFO, 0,
	               "finished code=OK duration_ms=%.3f", (now_usec() - start) / 1000.0);
out:
	if (req)
		protobuf_c_message_free_unpacked(req, NULL);
	if (code != STATUS_OK && !*ret_message)
		*ret_message = strdup(status_to_string(code));
	metrics_observe_call(p->metrics, m->index, code, now_usec() - start);
	log_context_push(NULL);
	call_done(&c);
	return code;
}
