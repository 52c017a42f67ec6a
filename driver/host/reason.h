/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Human-readable failure reasons for the plugin's status messages ("krbd: /sys/bus/rbd not
 * present, rbd kernel module not loaded"). Functions of driver/host that can fail because of the
 * host take a `char **ret_reason` (may be NULL): on failure they store a malloc'ed sentence in it
 * (replacing and freeing what was there), on success they leave it alone. Reasons never contain
 * secrets.
 */
#pragma once

#include "driver/base/macro.h"

/* Stores a formatted reason in *ret_reason (when ret_reason is not NULL). */
void reason_set(char **ret_reason, const char *format, ...) _printf_(2, 3);

/* Stores s (taking ownership; NULL clears) in *ret_reason, or frees it. */
void reason_take(char **ret_reason, char *s);
