/* SPDX-License-Identifier: Apache-2.0 */
#include <errno.h>
#include <stdlib.h>

#include "plugin/status.h"

enum status_code status_from_errno(int error)
{
	switch (abs(error)) {
	case 0:
		return STATUS_OK;
	case EINVAL:
	case ENAMETOOLONG:
	case E2BIG:
		return STATUS_INVALID_ARGUMENT;
	case ENOENT:
	case ENXIO:
		return STATUS_NOT_FOUND;
	case EEXIST:
		return STATUS_ALREADY_EXISTS;
	case ERANGE:
	case EFBIG:
		return STATUS_OUT_OF_RANGE;
	case ENOSPC:
	case EDQUOT:
	case EMFILE:
	case ENFILE:
	case ENOMEM:
		return STATUS_RESOURCE_EXHAUSTED;
	case ETIMEDOUT:
		return STATUS_DEADLINE_EXCEEDED;
	case ENOTCONN:
	case ECONNREFUSED:
	case ECONNRESET:
	case EHOSTUNREACH:
	case ENETUNREACH:
	case ESHUTDOWN:
		return STATUS_UNAVAILABLE;
	case EBUSY:
	case EMEDIUMTYPE:
	case ENODEV:
	case EROFS:
	case ENOTEMPTY:
	case ESTALE:
		return STATUS_FAILED_PRECONDITION;
	case EPERM:
	case EACCES:
	case EKEYREJECTED: /* an encrypted volume's key was refused */
		return STATUS_PERMISSION_DENIED;
	case EAGAIN:
	case EALREADY:
		return STATUS_ABORTED;
	case EOPNOTSUPP:
	case ENOSYS:
		return STATUS_UNIMPLEMENTED;
	case ECANCELED:
		return STATUS_CANCELLED;
	default:
		return STATUS_INTERNAL;
	}
}

enum status_code status_from_errno_at(enum status_op op, int error)
{
	int e = abs(error);

	switch (op) {
	case STATUS_OP_CONNECT:
		if (e == ETIMEDOUT || e == ECONNREFUSED || e == EHOSTUNREACH)
			return STATUS_UNAVAILABLE;
		break;
	case STATUS_OP_NODE_NEEDS_STAGE:
		if (e == ENOENT)
			return STATUS_FAILED_PRECONDITION;
		break;
	case STATUS_OP_NODE_PUBLISH:
		if (e == ENOTDIR || e == EISDIR || e == EEXIST || e == ELOOP)
			return STATUS_FAILED_PRECONDITION;
		if (e == E2BIG)
			return STATUS_RESOURCE_EXHAUSTED;
		break;
	case STATUS_OP_NODE_EXPAND:
		if (e == EPERM)
			return STATUS_FAILED_PRECONDITION;
		break;
	case STATUS_OP_ANY:
		break;
	}
	return status_from_errno(error);
}

const char *status_to_string(enum status_code code)
{
	static const char *const names[_STATUS_MAX] = {
		[STATUS_OK] = "OK",
		[STATUS_CANCELLED] = "CANCELLED",
		[STATUS_UNKNOWN] = "UNKNOWN",
		[STATUS_INVALID_ARGUMENT] = "INVALID_ARGUMENT",
		[STATUS_DEADLINE_EXCEEDED] = "DEADLINE_EXCEEDED",
		[STATUS_NOT_FOUND] = "NOT_FOUND",
		[STATUS_ALREADY_EXISTS] = "ALREADY_EXISTS",
		[STATUS_PERMISSION_DENIED] = "PERMISSION_DENIED",
		[STATUS_RESOURCE_EXHAUSTED] = "RESOURCE_EXHAUSTED",
		[STATUS_FAILED_PRECONDITION] = "FAILED_PRECONDITION",
		[STATUS_ABORTED] = "ABORTED",
		[STATUS_OUT_OF_RANGE] = "OUT_OF_RANGE",
		[STATUS_UNIMPLEMENTED] = "UNIMPLEMENTED",
		[STATUS_INTERNAL] = "INTERNAL",
		[STATUS_UNAVAILABLE] = "UNAVAILABLE",
		[STATUS_DATA_LOSS] = "DATA_LOSS",
		[STATUS_UNAUTHENTICATED] = "UNAUTHENTICATED",
	};

	if ((int)code < 0 || code >= _STATUS_MAX)
		return "UNKNOWN";
	return names[code];
}
