/* SPDX-License-Identifier: Apache-2.0 */
#include <errno.h>
#include <pthread.h>
#include <stddef.h>

#define CEPH_LIB_IMPLEMENTATION
#include "driver/base/dlib.h"
#include "driver/base/log.h"
#include "driver/base/macro.h"
#include "driver/ceph/ceph_lib.h"

/* Written once, by load_once() under pthread_once; read-only afterwards. */
static struct ceph_lib_table table;
const struct ceph_lib_table *const ceph_lib = &table;

static pthread_once_t once = PTHREAD_ONCE_INIT;
static int load_result;

/* Where each function of the lists goes in the table, by library. */
static const struct dlib_symbol rados_symbols[] = {
#define SYMBOL_(fn) { #fn, offsetof(struct ceph_lib_table, fn) },
	CEPH_LIB_RADOS(SYMBOL_)
};
static const struct dlib_symbol rbd_symbols[] = { CEPH_LIB_RBD(SYMBOL_)
#undef SYMBOL_
};

/* The table holds nothing but the functions of the lists. */
_Static_assert(sizeof(struct ceph_lib_table) ==
                       (ELEMENTSOF(rados_symbols) + ELEMENTSOF(rbd_symbols)) * sizeof(void *),
               "struct ceph_lib_table and the lists disagree");

int ceph_lib_resolve(const char *rados_soname, const char *rbd_soname, struct ceph_lib_table *ret)
{
	struct ceph_lib_table t = {};
	int r;

	/* librbd needs librados: load that first, so that a missing librados is named as such. */
	r = dlib_resolve(rados_soname, rados_symbols, ELEMENTSOF(rados_symbols), &t);
	if (r < 0)
		return r;
	r = dlib_resolve(rbd_soname, rbd_symbols, ELEMENTSOF(rbd_symbols), &t);
	if (r < 0)
		return r;
	*ret = t;
	return 0;
}

static void load_once(void)
{
	load_result = ceph_lib_resolve(CEPH_LIB_RADOS_SONAME, CEPH_LIB_RBD_SONAME, &table);
	if (load_result == 0)
		log_debug("Loaded %s and %s (%zu functions)", CEPH_LIB_RADOS_SONAME,
		          CEPH_LIB_RBD_SONAME, ELEMENTSOF(rados_symbols) + ELEMENTSOF(rbd_symbols));
}

int ceph_lib_load(void)
{
	int r = pthread_once(&once, load_once);

	if (r != 0)
		return -r;
	return load_result;
}
