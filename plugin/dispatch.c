/* SPDX-License-Identifier: Apache-2.0 */
/*
 * From packed request bytes to packed response bytes: unpack, give the handler a call context,
 * map its errno through the status table, pack. Knows protobuf-c, not gRPC.
 */
#include <errno.h>
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

/* The node a call concerns: the request's node_id, else this node for the Node service. */
static const char *request_node_id(const struct plugin *p, const struct method *m,
                                   const ProtobufCMessage *req)
{
	const ProtobufCFieldDescriptor *f =
	        protobuf_c_message_descriptor_get_field_by_name(req->descriptor, "node_id");

	if (f && f->type == PROTOBUF_C_TYPE_STRING && f->label != PROTOBUF_C_LABEL_REPEATED) {
		const char *v = *(const char *const *)((const uint8_t *)req + f->offset);

		if (!isempty(v))
			return v;
	}
	if (strncmp(m->path, "/csi.v1.Node/", 13) == 0)
		return p->opt.node_id;
	return NULL;
}

/* The line that ends every call: msg=finished code=OK duration_ms=1.234. */
static void log_finished(enum log_level level, enum status_code code, uint64_t start)
{
	char duration[32];
	struct log_field fields[] = {
		{ "code", status_to_string(code), false },
		{ "duration_ms", duration, true },
	};

	snprintf(duration, sizeof(duration), "%.3f", (now_usec() - start) / 1000.0);
	log_internal_fields(level, 0, __FILE__, __LINE__, fields, ELEMENTSOF(fields), "finished");
}

/*
 * Most repeated-field and map elements (and sub-messages) a request may have, counted on the wire
 * before protobuf-c unpacks it: unpacking allocates each one (a 1 MiB map of 524k empty entries
 * became ~60 MB), while CSI requests carry a few dozen.
 */
#define REQUEST_MAX_ELEMENTS 4096
#define REQUEST_MAX_DEPTH    32

static int wire_varint(const uint8_t **p, const uint8_t *end, uint64_t *ret)
{
	uint64_t v = 0;

	for (unsigned shift = 0; shift < 64; shift += 7) {
		if (*p >= end)
			return -EBADMSG;
		v |= (uint64_t)(**p & 0x7f) << shift;
		if (!(*(*p)++ & 0x80)) {
			*ret = v;
			return 0;
		}
	}
	return -EBADMSG;
}

/*
 * Adds the elements of the message d encoded in [p, end) to *count. Errors: -E2BIG past
 * REQUEST_MAX_ELEMENTS or REQUEST_MAX_DEPTH, -EBADMSG for bytes that are no protobuf message.
 */
static int wire_count(const ProtobufCMessageDescriptor *d, const uint8_t *p, const uint8_t *end,
                      unsigned depth, size_t *count)
{
	if (depth > REQUEST_MAX_DEPTH)
		return -E2BIG;
	while (p < end) {
		const ProtobufCFieldDescriptor *f;
		uint64_t tag, len;
		int r;

		r = wire_varint(&p, end, &tag);
		if (r < 0)
			return r;
		f = d ? protobuf_c_message_descriptor_get_field(d, (unsigned)(tag >> 3)) : NULL;
		switch (tag & 7) {
		case 0:
			r = wire_varint(&p, end, &len);
			if (r < 0)
				return r;
			break;
		case 1:
			if (end - p < 8)
				return -EBADMSG;
			p += 8;
			break;
		case 5:
			if (end - p < 4)
				return -EBADMSG;
			p += 4;
			break;
		case 2:
			r = wire_varint(&p, end, &len);
			if (r < 0)
				return r;
			if (len > (uint64_t)(end - p))
				return -EBADMSG;
			if (f && f->type == PROTOBUF_C_TYPE_MESSAGE) {
				r = wire_count(f->descriptor, p, p + len, depth + 1, count);
				if (r < 0)
					return r;
			} else if (f && f->label == PROTOBUF_C_LABEL_REPEATED &&
			           f->type != PROTOBUF_C_TYPE_STRING &&
			           f->type != PROTOBUF_C_TYPE_BYTES)
				*count += len; /* packed scalars: at most one per byte */
			p += len;
			break;
		default:
			return -EBADMSG; /* groups: not in proto3 */
		}
		if (f &&
		    (f->label == PROTOBUF_C_LABEL_REPEATED || f->type == PROTOBUF_C_TYPE_MESSAGE))
			(*count)++;
		if (*count > REQUEST_MAX_ELEMENTS)
			return -E2BIG;
	}
	return 0;
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
	size_t n_elements;
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

	n_elements = 0;
	r = len > 0 ? wire_count(m->input, data, data + len, 0, &n_elements) : 0;
	if (r == -E2BIG) {
		code = fail(STATUS_RESOURCE_EXHAUSTED, ret_message,
		            "%s: request has more than %d repeated or map elements, or is nested "
		            "deeper than %d",
		            m->name, REQUEST_MAX_ELEMENTS, REQUEST_MAX_DEPTH);
		goto out;
	}
	req = r < 0 ? NULL : protobuf_c_message_unpack(m->input, NULL, len, data);
	if (!req) {
		code = fail(STATUS_INVALID_ARGUMENT, ret_message,
		            "%s: request is not a valid protobuf message", m->name);
		goto out;
	}
	log_context_set_volume(request_object_id(req));
	log_context_set_node(request_node_id(p, m, req));

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
		log_finished(LOG_LEVEL_INFO, code, start);
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
	log_finished(m->quiet ? LOG_LEVEL_DEBUG : LOG_LEVEL_INFO, code, start);
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
