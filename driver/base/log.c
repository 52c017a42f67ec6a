/* SPDX-License-Identifier: Apache-2.0 */
#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "log.h"

static enum log_level max_level = LOG_LEVEL_INFO;
static enum log_format log_format = LOG_FORMAT_TEXT;
static __thread struct log_context *current_context;

static const char *const level_names[_LOG_LEVEL_MAX] = {
	[LOG_LEVEL_DEBUG] = "debug",
	[LOG_LEVEL_INFO] = "info",
	[LOG_LEVEL_WARN] = "warn",
	[LOG_LEVEL_ERROR] = "error",
};

enum log_level log_level_from_string(const char *s)
{
	if (!s)
		return _LOG_LEVEL_INVALID;
	for (int i = 0; i < _LOG_LEVEL_MAX; i++)
		if (strcmp(s, level_names[i]) == 0)
			return (enum log_level)i;
	if (strcmp(s, "warning") == 0)
		return LOG_LEVEL_WARN;
	return _LOG_LEVEL_INVALID;
}

enum log_format log_format_from_string(const char *s)
{
	if (!s)
		return _LOG_FORMAT_INVALID;
	if (strcmp(s, "text") == 0 || strcmp(s, "logfmt") == 0)
		return LOG_FORMAT_TEXT;
	if (strcmp(s, "json") == 0)
		return LOG_FORMAT_JSON;
	return _LOG_FORMAT_INVALID;
}

void log_set_max_level(enum log_level level)
{
	max_level = level;
}

enum log_level log_get_max_level(void)
{
	return max_level;
}

void log_set_format(enum log_format format)
{
	log_format = format;
}

void log_context_push(struct log_context *ctx)
{
	current_context = ctx;
}

struct log_context *log_context_current(void)
{
	return current_context;
}

void log_context_set_volume(const char *volume)
{
	if (!current_context)
		return;
	snprintf(current_context->volume, sizeof(current_context->volume), "%s", strempty(volume));
}

void log_context_done(struct log_context *ctx)
{
	if (!ctx)
		return;
	free(ctx->error_message);
	ctx->error_message = NULL;
}

/* Appends s to the buffer quoted for the active format (JSON string or logfmt value). */
static void append_quoted(char *buf, size_t size, size_t *pos, const char *s)
{
	size_t p = *pos;

#define PUT(c)                          \
	do {                            \
		if (p + 1 < size)       \
			buf[p++] = (c); \
	} while (0)

	PUT('"');
	for (const unsigned char *c = (const unsigned char *)s; *c; c++) {
		if (*c == '"' || *c == '\\') {
			PUT('\\');
			PUT((char)*c);
		} else if (*c == '\n') {
			PUT('\\');
			PUT('n');
		} else if (*c == '\t') {
			PUT('\\');
			PUT('t');
		} else if (*c < 0x20 || *c == 0x7f) {
			char hex[8];
			snprintf(hex, sizeof(hex), "\\u%04x", *c);
			for (char *h = hex; *h; h++)
				PUT(*h);
		} else
			PUT((char)*c);
	}
	PUT('"');
#undef PUT
	buf[p] = 0;
	*pos = p;
}

static void append_field(char *buf, size_t size, size_t *pos, const char *key, const char *value,
                         bool quote)
{
	int n;

	if (*pos >= size)
		return;
	if (log_format == LOG_FORMAT_JSON)
		n = snprintf(buf + *pos, size - *pos, "%s\"%s\":", *pos > 1 ? "," : "", key);
	else
		n = snprintf(buf + *pos, size - *pos, "%s%s=", *pos > 0 ? " " : "", key);
	if (n < 0)
		return;
	*pos = MIN(*pos + (size_t)n, size - 1);
	if (quote || log_format == LOG_FORMAT_JSON)
		append_quoted(buf, size, pos, value);
	else {
		n = snprintf(buf + *pos, size - *pos, "%s", value);
		if (n > 0)
			*pos = MIN(*pos + (size_t)n, size - 1);
	}
}

int log_internal(enum log_level level, int error, const char *file, int line, const char *format,
                 ...)
{
	char msg[2048], out[4096], ts[64], num[48];
	struct log_context *ctx = current_context;
	struct timespec now;
	struct tm tm;
	size_t pos = 0;
	va_list ap;
	int saved_errno = errno;

	if (error < 0)
		error = -error;
	/* Keep the message for the caller's status even when the line itself is filtered. */
	if (level < max_level && !(ctx && error != 0 && level >= LOG_LEVEL_WARN)) {
		errno = saved_errno;
		return -error;
	}

	errno = error;
	va_start(ap, format);
	vsnprintf(msg, sizeof(msg), format, ap);
	va_end(ap);

	if (ctx && error != 0 && level >= LOG_LEVEL_WARN) {
		char *copy = strdup(msg);
		if (copy) {
			free(ctx->error_message);
			ctx->error_message = copy;
		}
	}
	if (level < max_level) {
		errno = saved_errno;
		return -error;
	}

	clock_gettime(CLOCK_REALTIME, &now);
	gmtime_r(&now.tv_sec, &tm);
	snprintf(ts, sizeof(ts), "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900,
	         tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
	         (int)(now.tv_nsec / 1000000));

	if (log_format == LOG_FORMAT_JSON)
		out[pos++] = '{';
	append_field(out, sizeof(out), &pos, "ts", ts, false);
	append_field(out, sizeof(out), &pos, "level", level_names[level], false);
	if (ctx) {
		snprintf(num, sizeof(num), "%llu", (unsigned long long)ctx->request_id);
		append_field(out, sizeof(out), &pos, "req", num, false);
		if (ctx->method)
			append_field(out, sizeof(out), &pos, "method", ctx->method, false);
		if (ctx->volume[0])
			append_field(out, sizeof(out), &pos, "volume", ctx->volume, true);
	}
	append_field(out, sizeof(out), &pos, "msg", msg, true);
	if (error != 0) {
		snprintf(num, sizeof(num), "%d", error);
		append_field(out, sizeof(out), &pos, "errno", num, false);
	}
	if (max_level == LOG_LEVEL_DEBUG) {
		const char *base = strrchr(file, '/');
		snprintf(num, sizeof(num), "%s:%d", base ? base + 1 : file, line);
		append_field(out, sizeof(out), &pos, "src", num, false);
	}
	if (log_format == LOG_FORMAT_JSON && pos + 1 < sizeof(out))
		out[pos++] = '}';
	if (pos + 1 < sizeof(out))
		out[pos++] = '\n';
	else
		out[sizeof(out) - 2] = '\n', pos = sizeof(out) - 1;
	out[pos] = 0;

	/* One write() per line keeps lines from different threads whole. */
	(void)!write(STDERR_FILENO, out, pos);
	errno = saved_errno;
	return -error;
}
