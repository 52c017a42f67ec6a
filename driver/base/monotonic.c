/* SPDX-License-Identifier: Apache-2.0 */
#include <time.h>

#include "driver/base/monotonic.h"

uint64_t monotonic_usec(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000ULL + (uint64_t)ts.tv_nsec / 1000ULL;
}
