/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The one errno -> gRPC status table of rbdcsi. Handlers return negative errno values; this table
 * turns them into the status code the CO sees. Handlers pick a code themselves only for argument
 * validation (INVALID_ARGUMENT) and lock conflicts (ABORTED), through call_fail().
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

/* "OK", "INVALID_ARGUMENT", ...; "UNKNOWN" for out-of-range values. */
const char *status_to_string(enum status_code code);
