/* SPDX-License-Identifier: Apache-2.0 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "plugin/call.h"

uint64_t now_usec(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

static void *arena_keep(struct call *c, void *p)
{
	if (!p)
		return NULL;
	if (c->n_arena == c->arena_cap) {
		size_t cap = c->arena_cap ? c->arena_cap * 2 : 16;
		void **a = realloc(c->arena, cap * sizeof(void *));
		if (!a) {
			free(p);
			return NULL;
		}
		c->arena = a;
		c->arena_cap = cap;
	}
	c->arena[c->n_arena++] = p;
	return p;
}

void *call_alloc(struct call *c, size_t size)
{
	return arena_keep(c, calloc(1, size ? size : 1));
}

char *call_strdup(struct call *c, const char *s)
{
	return arena_keep(c, strdup(strempty(s)));
}

char *call_printf(struct call *c, const char *format, ...)
{
	char *s = NULL;
	va_list ap;
	int r;

	va_start(ap, format);
	r = vasprintf(&s, format, ap);
	va_end(ap);
	if (r < 0)
		return NULL;
	return arena_keep(c, s);
}

void call_done(struct call *c)
{
	if (!c)
		return;
	for (size_t i = 0; i < c->n_arena; i++)
		free(c->arena[i]);
	free(c->arena);
	c->arena = NULL;
	c->n_arena = c->arena_cap = 0;
	log_context_done(&c->log);
}

/* Logs msg as the failure of c with code, returning r. */
static int fail_with(struct call *c, enum status_code code, int r, const char *msg)
{
	c->code = code;
	log_warning_errno(r, "%s", msg);
	/* The status message, also when this thread has no (or another) log context. */
	if (log_context_current() != &c->log) {
		char *copy = strdup(msg);

		if (copy) {
			free(c->log.error_message);
			c->log.error_message = copy;
		}
	}
	return r;
}

int call_fail_errno(struct call *c, enum status_op op, int error, const char *format, ...)
{
	char msg[1024];
	va_list ap;

	va_start(ap, format);
	vsnprintf(msg, sizeof(msg), format, ap);
	va_end(ap);
	return fail_with(c, status_from_errno_at(op, error), error, msg);
}

int call_status(struct call *c, enum status_op op, int error)
{
	c->code = status_from_errno_at(op, error);
	return error;
}

void call_fail_clear(struct call *c)
{
	c->code = STATUS_OK;
	free(c->log.error_message);
	c->log.error_message = NULL;
}

int call_fail(struct call *c, enum status_code code, const char *format, ...)
{
	char msg[1024];
	va_list ap;
	int r;

	va_start(ap, format);
	vsnprintf(msg, sizeof(msg), format, ap);
	va_end(ap);

	switch (code) {
	case STATUS_INVALID_ARGUMENT:
		r = -EINVAL;
		break;
	case STATUS_ABORTED:
		r = -EAGAIN;
		break;
	case STATUS_NOT_FOUND:
		r = -ENOENT;
		break;
	default:
		r = -EIO;
		break;
	}
	return fail_with(c, code, r, msg);
}

uint64_t call_remaining_usec(const struct call *c, uint64_t max_usec)
{
	uint64_t now = now_usec();

	if (c->deadline_usec == UINT64_MAX)
		return max_usec;
	if (c->deadline_usec <= now)
		return 0;
	return MIN(c->deadline_usec - now, max_usec);
}

bool call_is_cancelled(const struct call *c)
{
	if (c->cancelled && *c->cancelled)
		return true;
	return c->deadline_usec != UINT64_MAX && now_usec() >= c->deadline_usec;
}
