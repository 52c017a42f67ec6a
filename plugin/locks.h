/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Per-volume (and per-name) operation locks: a second operation on a key that is being worked on
 * gets -EAGAIN at once (the handler answers ABORTED), never waits. Keys are strings such as
 * "volume:<id>" or "name:<request name>"; the holder's method and age are kept for the message.
 */
#pragma once

#include <stdint.h>

struct locks;

struct locks *locks_new(void);
struct locks *locks_free(struct locks *l);

/*
 * Takes key for holder (a method name, borrowed; must outlive the lock). Errors: -EAGAIN when
 * held (then *ret_holder and *ret_age_usec describe the holder, when non-NULL), -ENOMEM.
 */
int locks_try(struct locks *l, const char *key, const char *holder, const char **ret_holder,
              uint64_t *ret_age_usec);

/* Releases key; releasing a key not held is a no-op. */
void locks_release(struct locks *l, const char *key);

/* Number of keys held (for tests and metrics). */
unsigned locks_count(struct locks *l);
