/* SPDX-License-Identifier: Apache-2.0 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

#include "driver/host/reason.h"

void reason_take(char **ret_reason, char *s)
{
	if (!ret_reason) {
		free(s);
		return;
	}
	free(*ret_reason);
	*ret_reason = s;
}

void reason_set(char **ret_reason, const char *format, ...)
{
	char *s = NULL;
	va_list ap;

	if (!ret_reason)
		return;
	va_start(ap, format);
	if (vasprintf(&s, format, ap) < 0)
		s = NULL;
	va_end(ap);
	reason_take(ret_reason, s);
}
