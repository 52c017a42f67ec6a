/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The one clock for deadlines, timeouts and ages in this driver: CLOCK_MONOTONIC in microseconds
 * (not affected by wall-clock changes; does not count a suspend). Every *_usec deadline in
 * driver/ and plugin/ is on this time base.
 */
#pragma once

#include <stdint.h>

/* Now, in microseconds of CLOCK_MONOTONIC. Never fails. */
uint64_t monotonic_usec(void);
