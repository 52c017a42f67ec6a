/* SPDX-License-Identifier: Apache-2.0 */
/*
 * One CSI call being served: its log context (request id, method, volume), its deadline, the
 * status a handler chose, and an arena that owns everything the handler allocates for the
 * response. The arena is released after the response is packed, so handlers never free response
 * pieces one by one.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "driver/base/log.h"
#include "plugin/status.h"

struct plugin;
struct method;

struct call {
	struct plugin *plugin;
	const struct method *method;
	struct log_context log;
	uint64_t deadline_usec;        /* CLOCK_MONOTONIC; UINT64_MAX when the client set none */
	const volatile int *cancelled; /* set by the transport when the client went away */
	enum status_code code; /* chosen by call_fail(); STATUS_OK means "derive from errno" */
	void **arena;
	size_t n_arena;
	size_t arena_cap;
};

/* Zeroed memory owned by the call; NULL on allocation failure. */
void *call_alloc(struct call *c, size_t size);
/* Copy of s owned by the call; NULL on allocation failure. */
char *call_strdup(struct call *c, const char *s);
/* printf into memory owned by the call; NULL on failure. */
char *call_printf(struct call *c, const char *format, ...) _printf_(2, 3);
/* Frees the arena and the log context's contents. */
void call_done(struct call *c);

/*
 * Fails the call with an explicit status code (argument validation, lock conflicts): logs the
 * message once at warn level with the call's context and keeps it as the status message.
 * Returns -EINVAL for INVALID_ARGUMENT, -EAGAIN for ABORTED, -ENOENT for NOT_FOUND, -EIO otherwise,
 * so the handler can "return call_fail(...)".
 */
int call_fail(struct call *c, enum status_code code, const char *format, ...) _printf_(3, 4);

/*
 * Fails the call for error (a negative errno from driver/) with the status status.c gives it at
 * op (STATUS_OP_ANY: the plain table), logging the message once at warn level as call_fail()
 * does. Returns error.
 */
int call_fail_errno(struct call *c, enum status_op op, int error, const char *format, ...)
        _printf_(4, 5);

/*
 * Sets the status of a failing call from error at op, for a handler that logs the failure
 * itself (log_error_errno()). Returns error.
 */
int call_status(struct call *c, enum status_op op, int error);

/* Forgets a failure already recorded (status and message): the handler answers after all. */
void call_fail_clear(struct call *c);

/* Microseconds left before the call's deadline (0 when passed), capped at max_usec. */
uint64_t call_remaining_usec(const struct call *c, uint64_t max_usec);

/* True when the client cancelled or the deadline passed. */
bool call_is_cancelled(const struct call *c);

/* CLOCK_MONOTONIC now, in microseconds. */
uint64_t now_usec(void);
