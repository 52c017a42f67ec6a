/* SPDX-License-Identifier: Apache-2.0 */
#include <errno.h>

#include "driver/base/macro.h"
#include "driver/base/parse.h"

int parse_u64(const char *s, uint64_t *ret)
{
	uint64_t v = 0;

	if (isempty(s))
		return -EINVAL;
	for (const char *p = s; *p; p++) {
		if (*p < '0' || *p > '9')
			return -EINVAL;
		if (v > (UINT64_MAX - (uint64_t)(*p - '0')) / 10)
			return -EINVAL;
		v = v * 10 + (uint64_t)(*p - '0');
	}
	*ret = v;
	return 0;
}
