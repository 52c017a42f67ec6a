/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Libraries loaded at run time instead of linked: the shared mechanism behind
 * driver/ceph/ceph_lib.h (librados, librbd) and plugin/metrics.c (libmicrohttpd). A caller keeps
 * a struct of function pointers and a list of where each named function goes in it.
 */
#pragma once

#include <stddef.h>

/* One function to resolve: its name, and the offset of its pointer in the caller's table. */
struct dlib_symbol {
	const char *name;
	size_t offset;
};

/*
 * Opens soname (RTLD_NOW | RTLD_LOCAL; never closed, so the library stays for the life of the
 * process) and writes the address of each of the n symbols at table + offset. The table may be
 * partly written on failure: resolve into a local copy and publish it on success.
 * Errors: -ELIBACC the library (or one it needs) cannot be loaded; -ELIBBAD a symbol is
 * missing. The reason, naming the file or the symbol, is logged at debug level.
 */
int dlib_resolve(const char *soname, const struct dlib_symbol *syms, size_t n, void *table);
