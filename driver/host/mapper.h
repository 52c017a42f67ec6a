/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The mappers (rbd-fuse + loop, krbd, rbd-nbd) behind one table: which exist, whether they can
 * be used here, and the calls that reach a mapper through its struct mapper_ops. This is the
 * only place that knows the list; the mappers themselves include mapper_common.h only. Adding a
 * mapper is one file (mapper_<name>.c with its const struct mapper_ops), its enum mapper_type
 * value and name (mapper_common.c), and one entry in the table of mapper.c.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "driver/host/mapper_common.h"

/* The ops of mapper t; NULL for MAPPER_AUTO and invalid values. */
const struct mapper_ops *mapper_ops_get(enum mapper_type t);

/* The i-th mapper that mounter "auto" tries (krbd, nbd, fuse); NULL past the last. */
const struct mapper_ops *mapper_ops_by_preference(size_t i);

/*
 * Whether mapper t can be used on this host. root is "/" except in tests (a directory holding a
 * simulated sys/ and dev/). krbd and nbd: when their kernel module is not loaded, runs
 * `modprobe rbd` / `modprobe nbd` first (the host's /lib/modules; only for root "/" unless
 * mapper_modprobe_program is set; a failure is remembered for 5 minutes). Errors: -ENODEV
 * with *ret_reason, e.g. "krbd: /sys/bus/rbd not present, rbd kernel module not loaded;
 * modprobe exited with status 1: ...".
 */
int mapper_available(enum mapper_type t, const char *root, char **ret_reason);

/* Tests: the modprobe program to run (an absolute path), also for a root other than "/".
 * NULL (the default): "modprobe" from the default PATH, on the real host only. */
extern const char *mapper_modprobe_program;

/* Whether the image of p can go through mapper t here (see mapper_ops.supports). -ENODEV. */
int mapper_supports(enum mapper_type t, const char *root, const struct mapper_params *p,
                    char **ret_reason);

/*
 * The per-mapper state of a mapping (struct mapper_ops, state_*): *ret_state is NULL for a mapper
 * that keeps none. Free with mapper_state_free(), which accepts NULL and returns NULL.
 * Errors: -ENOMEM, -EINVAL (load: bad keys, or t invalid).
 */
int mapper_state_new(enum mapper_type t, const char *state_dir, const char *volume_id,
                     void **ret_state);
void *mapper_state_free(enum mapper_type t, void *state);
int mapper_state_save(enum mapper_type t, const void *state, struct json_object *o);
int mapper_state_load(enum mapper_type t, struct json_object *o, void **ret_state);

/* The calls of struct mapper_ops for mapper t; -EINVAL for an invalid t. */
int mapper_map(enum mapper_type t, const char *root, const struct mapper_params *p, void *state,
               char **ret_device, char **ret_reason);
bool mapper_alive(enum mapper_type t, const struct mapper_mapping *m, char **why);
int mapper_unmap(enum mapper_type t, const struct mapper_mapping *m, uint64_t timeout_usec,
                 bool *forced, char **ret_reason);
/* No-op for a mapper that cannot abort. */
void mapper_abort(enum mapper_type t, const struct mapper_mapping *m);
/* The daemon mapper_abort() kills ("rbd-fuse"), NULL when it kills nothing. */
const char *mapper_abort_target(enum mapper_type t);
/* 0 at once for a mapper whose device follows the image size by itself. */
int mapper_refresh_size(enum mapper_type t, const struct mapper_mapping *m, uint64_t new_size,
                        uint64_t timeout_usec, char **ret_reason);
/* 1 when the state changed (save it), else 0. */
int mapper_refind(enum mapper_type t, struct mapper_mapping *m);
/* A mount point the mapping owns besides the staging path, or NULL. */
const char *mapper_own_mount(enum mapper_type t, const void *state);
