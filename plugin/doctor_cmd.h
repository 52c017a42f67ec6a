/* SPDX-License-Identifier: Apache-2.0 */
/*
 * `rbdcsi doctor`: the command line around driver/ceph/doctor.h (cluster mode) and
 * driver/host/node_doctor.h (--node mode). Exit codes: 0 nothing found (or everything found was
 * repaired), 1 findings remain, 2 usage or runtime error.
 */
#pragma once

#define DOCTOR_EXIT_CLEAN    0
#define DOCTOR_EXIT_FINDINGS 1
#define DOCTOR_EXIT_ERROR    2

/* argv[0] is "doctor". Returns the exit code. */
int doctor_main(int argc, char *argv[]);
