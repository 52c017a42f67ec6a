/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Integer parsing for values this driver wrote itself (journal fields, state files, sysfs
 * attributes): strict, no locale, no sign, no blanks, no base prefix.
 */
#pragma once

#include <stdint.h>

/*
 * Parses s, one or more decimal digits and nothing else, into *ret (written only on success).
 * Errors: -EINVAL for NULL, "", any other character, or a value above UINT64_MAX.
 */
int parse_u64(const char *s, uint64_t *ret);
