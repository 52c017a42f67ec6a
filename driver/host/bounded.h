/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Bounded system calls: runs a call that may block in the kernel (umount of a filesystem whose
 * I/O goes to a dead cluster, stat on a FUSE mount whose daemon hangs) in a helper thread, and
 * gives up waiting after a deadline. On timeout an abort callback runs once (e.g. SIGKILL the
 * rbd-fuse daemon, which aborts the FUSE connection and makes the blocked call fail with EIO),
 * then it waits a grace period more. A call still blocked after that is left to finish on its
 * own thread, which frees its state; the caller gets -ETIMEDOUT.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define BOUNDED_ARG_MAX 8192

/*
 * Calls fn(arg copy) on a helper thread; arg (arg_size <= BOUNDED_ARG_MAX bytes) is copied so it
 * may go out of scope if the call is abandoned; it must not point to caller memory that might.
 * When the call completes in time the copy is copied back into arg (results travel that way).
 * abort_fn may be NULL. *aborted (may be NULL) is set on every return after the thread started:
 * whether abort_fn ran (not a ret_ parameter: it matters most when the call failed).
 * Returns fn's result, or -ETIMEDOUT, or -ENOMEM/-EAGAIN when no thread could be started.
 */
int bounded_call(int (*fn)(void *arg), void *arg, size_t arg_size, uint64_t timeout_usec,
                 void (*abort_fn)(void *abort_arg), void *abort_arg, uint64_t grace_usec,
                 bool *aborted);
