/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Structured logging to stderr, one line per event, logfmt (default) or JSON lines.
 *
 * Every value is quoted and escaped (control bytes, quotes, backslashes, and every byte that is not
 * part of valid UTF-8, shown as \xNN), so bytes from a peer cannot forge fields or lines, and a
 * JSON line is always valid UTF-8 JSON, also when truncated.
 *
 * Each thread may carry a log context (request id, method, volume id) that the plugin sets while
 * serving a call; every line logged on that thread carries it. A failure logged at WARN or above
 * with an error code is also kept in the context (log_context.error_message), so the plugin can
 * return the same text as the gRPC status message: each failure is described once.
 *
 * driver/ code logs at debug level only; plugin/ logs failures. Never pass secrets to the logger.
 */
#pragma once

#include <stdbool.h>
#include <stdint.h>

#include "macro.h"

enum log_level {
	LOG_LEVEL_DEBUG,
	LOG_LEVEL_INFO,
	LOG_LEVEL_WARN,
	LOG_LEVEL_ERROR,
	_LOG_LEVEL_MAX,
	_LOG_LEVEL_INVALID = -EINVAL,
};

enum log_format {
	LOG_FORMAT_TEXT, /* logfmt: ts=... level=info req=12 method=CreateVolume msg="..." */
	LOG_FORMAT_JSON, /* one JSON object per line */
	_LOG_FORMAT_MAX,
	_LOG_FORMAT_INVALID = -EINVAL,
};

struct log_context {
	uint64_t request_id;
	const char *method;  /* borrowed; must outlive the context's use */
	char volume[160];    /* volume or snapshot id, truncated; "" when unknown */
	char node[128];      /* node id the call concerns, truncated; "" when none */
	char *error_message; /* last failure logged on this context; owned, freed by
	                        log_context_done() */
};

/* Parses "debug", "info", "warn"/"warning", "error". Returns the level or -EINVAL. */
enum log_level log_level_from_string(const char *s);
/* Parses "text"/"logfmt" or "json". Returns the format or -EINVAL. */
enum log_format log_format_from_string(const char *s);

void log_set_max_level(enum log_level level);
enum log_level log_get_max_level(void);
void log_set_format(enum log_format format);

/* Installs ctx as this thread's context (NULL clears it). The caller keeps ownership. */
void log_context_push(struct log_context *ctx);
struct log_context *log_context_current(void);
void log_context_set_volume(const char *volume);
void log_context_set_node(const char *node);
/* Frees what the context owns (error_message). */
void log_context_done(struct log_context *ctx);

/*
 * Logs one line. error is an errno value (either sign, 0 for none); "%m" in format prints it.
 * Returns -abs(error), or 0 when error is 0, so callers can "return log_error_errno(r, ...)".
 */
int log_internal(enum log_level level, int error, const char *file, int line, const char *format,
                 ...) _printf_(5, 6);

/* An extra field of one line, after msg: code=OK duration_ms=1.234. */
struct log_field {
	const char *key;
	const char *value;
	bool number; /* value is a decimal number: unquoted in JSON too */
};

/* log_internal() with extra fields (n_fields of them) after the message. */
int log_internal_fields(enum log_level level, int error, const char *file, int line,
                        const struct log_field *fields, size_t n_fields, const char *format, ...)
        _printf_(7, 8);

#define log_full_errno(level, error, ...) \
	log_internal(level, error, __FILE__, __LINE__, __VA_ARGS__)
#define log_debug(...)                log_full_errno(LOG_LEVEL_DEBUG, 0, __VA_ARGS__)
#define log_info(...)                 log_full_errno(LOG_LEVEL_INFO, 0, __VA_ARGS__)
#define log_warning(...)              log_full_errno(LOG_LEVEL_WARN, 0, __VA_ARGS__)
#define log_error(...)                log_full_errno(LOG_LEVEL_ERROR, 0, __VA_ARGS__)
#define log_debug_errno(error, ...)   log_full_errno(LOG_LEVEL_DEBUG, error, __VA_ARGS__)
#define log_warning_errno(error, ...) log_full_errno(LOG_LEVEL_WARN, error, __VA_ARGS__)
#define log_error_errno(error, ...)   log_full_errno(LOG_LEVEL_ERROR, error, __VA_ARGS__)
