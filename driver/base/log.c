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

void log_context_set_node(const char *node)
{
	if (!current_context)
		return;
	snprintf(current_context->node, sizeof(current_context->node), "%s", strempty(node));
}

/* Room kept at the end of a line for closing it: '"', '}', '\n' and the NUL. */
#define LINE_TAIL 4

/* Appends the n bytes at s if they fit before the tail; all or nothing. */
static bool put(char *buf, size_t size, size_t *pos, const char *s, size_t n)
{
	if (*pos + n + LINE_TAIL > size)
		return false;
	memcpy(buf + *pos, s, n);
	*pos += n;
	buf[*pos] = 0;
	return true;
}

/* Length of the valid UTF-8 sequence at s (1-4), or 0 when s does not start one. */
static size_t utf8_len(const unsigned char *s)
{
	unsigned char c = s[0];
	uint32_t cp;
	size_t n;

	if (c < 0x80)
		return 1;
	if (c >= 0xc2 && c <= 0xdf)
		n = 2, cp = c & 0x1f;
	else if (c >= 0xe0 && c <= 0xef)
		n = 3, cp = c & 0x0f;
	else if (c >= 0xf0 && c <= 0xf4)
		n = 4, cp = c & 0x07;
	else
		return 0;
	for (size_t i = 1; i < n; i++) {
		if ((s[i] & 0xc0) != 0x80) /* also stops at the NUL */
			return 0;
		cp = cp << 6 | (s[i] & 0x3f);
	}
	if ((n == 3 && cp < 0x800) || (n == 4 && (cp < 0x10000 || cp > 0x10ffff)) ||
	    (cp >= 0xd800 && cp <= 0xdfff))
		return 0; /* overlong, out of range, or a surrogate */
	if (cp >= 0x80 && cp <= 0x9f)
		return 0; /* C1 controls (a terminal's CSI): escaped like C0 */
	return n;
}

/*
 * Appends s quoted for the active format (JSON string or logfmt value). Quotes, backslashes and
 * control characters are escaped; bytes that are not valid UTF-8 become \xNN (in JSON "\\xNN",
 * a visible backslash); a value too long for the line is cut at a character boundary and ends
 * in "...".
 */
static void append_quoted(char *buf, size_t size, size_t *pos, const char *s)
{
	const unsigned char *c = (const unsigned char *)s;

	if (!put(buf, size, pos, "\"", 1))
		return;
	while (*c) {
		char esc[16];
		size_t n = utf8_len(c), len;
		const char *out = esc;

		if (*c == '"' || *c == '\\') {
			esc[0] = '\\', esc[1] = (char)*c, len = 2;
			n = 1;
		} else if (*c == '\n') {
			out = "\\n", len = 2;
		} else if (*c == '\t') {
			out = "\\t", len = 2;
		} else if (n == 0) {
			/* Not UTF-8 (or a C1 control as two bytes): each byte shown as \xNN. */
			len = (size_t)snprintf(esc, sizeof(esc), "%s%02x",
			                       log_format == LOG_FORMAT_JSON ? "\\\\x" : "\\x", *c);
			n = 1;
		} else if (*c < 0x20 || *c == 0x7f) {
			len = (size_t)snprintf(esc, sizeof(esc), "\\u%04x", *c);
		} else {
			out = (const char *)c, len = n;
		}
		/* Room for this and for "..." after it, else the value ends here. */
		if (*pos + len + 3 + LINE_TAIL > size) {
			(void)put(buf, size, pos, "...", 3);
			break;
		}
		(void)put(buf, size, pos, out, len);
		c += n;
	}
	/* The tail is reserved for this quote. */
	buf[(*pos)++] = '"';
	buf[*pos] = 0;
}

static void append_field(char *buf, size_t size, size_t *pos, const char *key, const char *value,
                         bool quote)
{
	char sep[128];
	int n;

	if (log_format == LOG_FORMAT_JSON)
		n = snprintf(sep, sizeof(sep), "%s\"%s\":", *pos > 1 ? "," : "", key);
	else
		n = snprintf(sep, sizeof(sep), "%s%s=", *pos > 0 ? " " : "", key);
	if (n < 0 || (size_t)n >= sizeof(sep) || !put(buf, size, pos, sep, (size_t)n))
		return;
	if (quote)
		append_quoted(buf, size, pos, value);
	else
		(void)put(buf, size, pos, value, strlen(value));
}

static int log_va(enum log_level level, int error, const char *file, int line,
                  const struct log_field *fields, size_t n_fields, const char *format, va_list ap)
{
	char msg[2048], out[4096], ts[64], num[48];
	struct log_context *ctx = current_context;
	bool json = log_format == LOG_FORMAT_JSON;
	struct timespec now;
	struct tm tm;
	size_t pos = 0;
	int saved_errno = errno;

	if (error < 0)
		error = -error;
	/* Keep the message for the caller's status even when the line itself is filtered. */
	if (level < max_level && !(ctx && error != 0 && level >= LOG_LEVEL_WARN)) {
		errno = saved_errno;
		return -error;
	}

	errno = error;
	vsnprintf(msg, sizeof(msg), format, ap);

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

	out[0] = 0;
	if (json)
		(void)put(out, sizeof(out), &pos, "{", 1);
	append_field(out, sizeof(out), &pos, "ts", ts, json);
	append_field(out, sizeof(out), &pos, "level", level_names[level], json);
	if (ctx) {
		snprintf(num, sizeof(num), "%llu", (unsigned long long)ctx->request_id);
		append_field(out, sizeof(out), &pos, "req", num, false);
		if (ctx->method)
			append_field(out, sizeof(out), &pos, "method", ctx->method, json);
		if (ctx->volume[0])
			append_field(out, sizeof(out), &pos, "volume", ctx->volume, true);
		if (ctx->node[0])
			append_field(out, sizeof(out), &pos, "node", ctx->node, true);
	}
	append_field(out, sizeof(out), &pos, "msg", msg, true);
	for (size_t i = 0; i < n_fields; i++)
		append_field(out, sizeof(out), &pos, fields[i].key, fields[i].value,
		             json ? !fields[i].number : strpbrk(fields[i].value, " \"=\\") != NULL);
	if (error != 0) {
		snprintf(num, sizeof(num), "%d", error);
		append_field(out, sizeof(out), &pos, "errno", num, json);
	}
	if (max_level == LOG_LEVEL_DEBUG) {
		const char *base = strrchr(file, '/');
		snprintf(num, sizeof(num), "%s:%d", base ? base + 1 : file, line);
		append_field(out, sizeof(out), &pos, "src", num, json);
	}
	/* put() kept LINE_TAIL bytes free for these. */
	if (json)
		out[pos++] = '}';
	out[pos++] = '\n';
	out[pos] = 0;

	/* One write() per line keeps lines from different threads whole. */
	(void)!write(STDERR_FILENO, out, pos);
	errno = saved_errno;
	return -error;
}

int log_internal_fields(enum log_level level, int error, const char *file, int line,
                        const struct log_field *fields, size_t n_fields, const char *format, ...)
{
	va_list ap;
	int r;

	va_start(ap, format);
	r = log_va(level, error, file, line, fields, n_fields, format, ap);
	va_end(ap);
	return r;
}

int log_internal(enum log_level level, int error, const char *file, int line, const char *format,
                 ...)
{
	va_list ap;
	int r;

	va_start(ap, format);
	r = log_va(level, error, file, line, NULL, 0, format, ap);
	va_end(ap);
	return r;
}
