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

/* Copies the holder (method name) and age of up to max held keys; returns how many. */
unsigned locks_ages(struct locks *l, const char **ret_holders, uint64_t *ret_ages_usec,
                    unsigned max);

struct call;

/* An operation lock held by a handler: "<prefix>:<id>" in the plugin's lock table. */
struct op_lock {
	struct locks *locks;
	char *key;
};

/*
 * Takes "<prefix>:<id>" for the call's method, or fails the call with ABORTED naming what is
 * locked (what, e.g. "this volume"), the operation that holds it and for how long.
 * Release with op_lock_release(), which accepts a lock never taken.
 */
int op_lock_take(struct call *c, struct op_lock *l, const char *prefix, const char *id,
                 const char *what);
void op_lock_release(struct op_lock *l);
