/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The one errno -> gRPC status table of rbdcsi. Handlers return negative errno values; this table
 * turns them into the status code the CO sees. Handlers pick a code themselves only for argument
 * validation (INVALID_ARGUMENT, and NOT_FOUND/OUT_OF_RANGE where CSI asks for them on a malformed
 * id or range) and lock conflicts (ABORTED), through call_fail(). Where the CSI spec gives an
 * errno of one operation a meaning of its own, the exception is listed here too (enum status_op)
 * and handlers name the operation (call_fail_errno()), never the code.
 *
 * The numbers are gRPC's (grpc/status.h); they are repeated here so that only transport.c needs to
 * include gRPC headers.
 */
#pragma once

enum status_code {
	STATUS_OK = 0,
	STATUS_CANCELLED = 1,
	STATUS_UNKNOWN = 2,
	STATUS_INVALID_ARGUMENT = 3,
	STATUS_DEADLINE_EXCEEDED = 4,
	STATUS_NOT_FOUND = 5,
	STATUS_ALREADY_EXISTS = 6,
	STATUS_PERMISSION_DENIED = 7,
	STATUS_RESOURCE_EXHAUSTED = 8,
	STATUS_FAILED_PRECONDITION = 9,
	STATUS_ABORTED = 10,
	STATUS_OUT_OF_RANGE = 11,
	STATUS_UNIMPLEMENTED = 12,
	STATUS_INTERNAL = 13,
	STATUS_UNAVAILABLE = 14,
	STATUS_DATA_LOSS = 15,
	STATUS_UNAUTHENTICATED = 16,
	_STATUS_MAX,
};

/* Maps a negative (or positive) errno to a status code; 0 maps to STATUS_OK. */
enum status_code status_from_errno(int error);

/* Operations whose errors CSI reads differently from status_from_errno(). */
enum status_op {
	STATUS_OP_ANY,
	/* Reaching a Ceph cluster: no answer (ETIMEDOUT, ECONNREFUSED, EHOSTUNREACH) is
	 * UNAVAILABLE (the CO retries), not DEADLINE_EXCEEDED. */
	STATUS_OP_CONNECT,
	/* A node call that needs what an earlier call set up (the volume staged, its cluster in
	 * the node's --config): ENOENT is FAILED_PRECONDITION. */
	STATUS_OP_NODE_NEEDS_STAGE,
	/* Creating the publish target: a path in the way (ENOTDIR, EISDIR, EEXIST, ELOOP) is
	 * FAILED_PRECONDITION; too many publications (E2BIG) is RESOURCE_EXHAUSTED. */
	STATUS_OP_NODE_PUBLISH,
	/* Growing a mounted filesystem: the kernel refusing (EPERM) is FAILED_PRECONDITION
	 * (unstage and stage to grow it offline). */
	STATUS_OP_NODE_EXPAND,
};

/* status_from_errno() with the exceptions of op. */
enum status_code status_from_errno_at(enum status_op op, int error);

/* "OK", "INVALID_ARGUMENT", ...; "UNKNOWN" for out-of-range values. */
const char *status_to_string(enum status_code code);
