/* SPDX-License-Identifier: Apache-2.0 */
#include <errno.h>
#include <signal.h>
#include <string.h>
#include <unistd.h>

#include "driver/base/failpoint.h"
#include "driver/base/log.h"
#include "driver/base/macro.h"

#define FAILPOINT_NAME_MAX 64

/* The armed list, ",name1,name2," so that a lookup is one strstr() of ",name,". */
static char armed[FAILPOINT_SPEC_MAX + 3];

static bool name_char_ok(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == ':' || c == '.' ||
	       c == '_' || c == '-';
}

int failpoint_init(const char *spec)
{
	char buf[sizeof(armed)];
	size_t len, n = 0;

	if (isempty(spec)) {
		armed[0] = 0;
		return 0;
	}
	len = strnlen(spec, FAILPOINT_SPEC_MAX + 1);
	if (len > FAILPOINT_SPEC_MAX)
		return -EINVAL;

	/* Validate: non-empty items of allowed characters, each at most FAILPOINT_NAME_MAX. */
	for (size_t i = 0; i <= len; i++) {
		if (i == len || spec[i] == ',') {
			if (n == 0 || n > FAILPOINT_NAME_MAX)
				return -EINVAL;
			n = 0;
		} else if (!name_char_ok(spec[i]))
			return -EINVAL;
		else
			n++;
	}

	buf[0] = ',';
	memcpy(buf + 1, spec, len);
	buf[len + 1] = ',';
	buf[len + 2] = 0;
	memcpy(armed, buf, len + 3);
	log_debug("Failpoints armed: %s", spec);
	return 0;
}

bool failpoint_armed(const char *name)
{
	char key[FAILPOINT_NAME_MAX + 3];
	size_t n;

	if (!armed[0] || isempty(name))
		return false;
	n = strnlen(name, FAILPOINT_NAME_MAX + 1);
	if (n > FAILPOINT_NAME_MAX)
		return false;
	key[0] = ',';
	memcpy(key + 1, name, n);
	key[n + 1] = ',';
	key[n + 2] = 0;
	return strstr(armed, key) != NULL;
}

void failpoint(const char *name)
{
	if (_likely_(!armed[0]))
		return;
	if (!failpoint_armed(name))
		return;
	log_debug("Failpoint %s reached, killing the process", name);
	/* kill() rather than raise(): SIGKILL to the process, whatever thread we are on. */
	kill(getpid(), SIGKILL);
	/* Not reached; SIGKILL cannot be caught. */
	_exit(137);
}
