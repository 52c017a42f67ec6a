/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Failpoints for crash tests: named places in multi-step operations where a test can make the
 * process die as if the machine had lost power (SIGKILL: no cleanup, no atexit, no unwinding).
 *
 * main() (or a test's child process) calls failpoint_init() once, before any thread starts, with
 * the value of the RBDCSI_FAILPOINTS environment variable: a comma separated list of names such
 * as "volume-create:after-reserve,volume-delete:after-image". Driver code calls failpoint(name)
 * between steps that change state; it does nothing unless that name was listed. Driver code
 * never reads the environment itself.
 *
 * The list is process-global state, written only by failpoint_init(): the one exception to the
 * "no mutable globals" rule, because a failpoint is by nature a process-wide switch.
 */
#pragma once

#include <stdbool.h>

/* Longest accepted spec; names are [a-z0-9:._-], 1-64 chars each. */
#define FAILPOINT_SPEC_MAX 1024

/*
 * Arms the failpoints named in spec (comma separated; NULL or "" disarms all). Replaces any
 * earlier list. Not thread-safe: call before other threads run. Returns 0, or -EINVAL when the
 * spec is too long, has an empty item or a name with other characters (nothing is armed then).
 */
int failpoint_init(const char *spec);

/* True when name is armed. Thread-safe after failpoint_init(). */
bool failpoint_armed(const char *name);

/* Kills the whole process with SIGKILL when name is armed; returns otherwise. */
void failpoint(const char *name);
