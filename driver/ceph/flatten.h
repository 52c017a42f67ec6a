/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Background flattens: an image whose clone chain got too deep (a snapshot image, a restored or
 * cloned volume) is flattened in a thread of its own, so that a call can stop waiting at its
 * deadline while the flatten goes on, and the retry waits for the same running flatten instead
 * of starting over (after a restart, librbd's flatten skips the blocks already copied). The
 * table of running flattens is process-global by nature, like failpoints: a flatten outlives
 * the call that started it. Used by snapshot.c and volume.c.
 *
 * Failpoint: flatten:slow (tests: the flatten sleeps 3 s first, so it outlasts the call).
 */
#pragma once

#include <stdbool.h>
#include <stdint.h>

#include "driver/ceph/cluster.h"

/* How deep a clone chain may grow before a new image is flattened, unless the caller says
 * otherwise (the plugin's --clone-depth-soft). */
#define SNAPSHOT_CLONE_DEPTH_DEFAULT 4

/*
 * Makes sure the image pool_id/rados_namespace/image has no parent: starts a flatten in a
 * thread of its own unless one is running for it in this process (start false: only joins a
 * running one), and waits for it until deadline_usec (CLOCK_MONOTONIC µs, 0 = no limit).
 * Returns 0 when the image is flat (or gone, or nothing runs and start is false);
 * -EINPROGRESS when the flatten is still running at the deadline (it goes on; call again);
 * -EINVAL; the flatten's error otherwise.
 */
int flatten_join(struct cluster *c, int64_t pool_id, const char *rados_namespace, const char *image,
                 bool start, uint64_t deadline_usec);
