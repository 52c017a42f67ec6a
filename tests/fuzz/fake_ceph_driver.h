/* SPDX-License-Identifier: Apache-2.0 */
/*
 * A FAKE of the driver/ceph calls the controller handlers make (cluster connection, volumes,
 * snapshots), in memory, for fuzz_controller: the handlers run for real down to the driver
 * edge without a cluster. Only for the fuzz target; linked ahead of libdriver.a, whose real
 * definitions it overrides. At most FAKE_CEPH_MAX volumes and as many snapshots; pools "rbd"
 * (id 1) and "rbd2" (id 2) exist.
 */
#pragma once

#define FAKE_CEPH_MAX 16

/* Forgets every volume and snapshot (at the start of each fuzz input). */
void fake_ceph_reset(void);
