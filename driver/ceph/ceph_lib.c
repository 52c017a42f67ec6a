/* SPDX-License-Identifier: Apache-2.0 */
#include <dlfcn.h>
#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <string.h>

#define CEPH_LIB_IMPLEMENTATION
#include "driver/base/log.h"
#include "driver/base/macro.h"
#include "driver/ceph/ceph_lib.h"

/* Written once, by load_once() under pthread_once; read-only afterwards. */
static struct ceph_lib_table table;
const struct ceph_lib_table *const ceph_lib = &table;

static pthread_once_t once = PTHREAD_ONCE_INIT;
static int load_result;

/* Where each function of the lists goes in the table, and which library has it. */
struct entry {
	const char *name;
	size_t offset;
	bool rbd;
};

static const struct entry entries[] = {
#define ENTRY_RADOS_(fn) { #fn, offsetof(struct ceph_lib_table, fn), false },
#define ENTRY_RBD_(fn)   { #fn, offsetof(struct ceph_lib_table, fn), true },
	CEPH_LIB_RADOS(ENTRY_RADOS_) CEPH_LIB_RBD(ENTRY_RBD_)
#undef ENTRY_RBD_
#undef ENTRY_RADOS_
};

/* The table holds nothing but the functions of the lists. */
_Static_assert(sizeof(struct ceph_lib_table) == ELEMENTSOF(entries) * sizeof(void *),
               "struct ceph_lib_table and the lists disagree");

static int library_open(const char *soname, void **ret)
{
	void *h = dlopen(soname, RTLD_NOW | RTLD_LOCAL);

	if (!h) {
		/* dlerror() names the file that is missing: the library or one it needs. */
		log_debug("Cannot load %s: %s", soname, dlerror());
		return -ELIBACC;
	}
	*ret = h;
	return 0;
}

int ceph_lib_resolve(const char *rados_soname, const char *rbd_soname, struct ceph_lib_table *ret)
{
	struct ceph_lib_table t = {};
	void *rados = NULL, *rbd = NULL;
	int r;

	/* librbd needs librados: load that first, so that a missing librados is named as such.
	 * The handles are never closed: the libraries stay for the life of the process (also
	 * after a failure here; loading them again later is then cheap). */
	r = library_open(rados_soname, &rados);
	if (r < 0)
		return r;
	r = library_open(rbd_soname, &rbd);
	if (r < 0)
		return r;

	for (size_t i = 0; i < ELEMENTSOF(entries); i++) {
		const struct entry *e = &entries[i];
		const char *soname = e->rbd ? rbd_soname : rados_soname;
		const char *err;
		void *p;

		dlerror();
		p = dlsym(e->rbd ? rbd : rados, e->name);
		err = dlerror();
		if (!p) {
			log_debug("%s has no function %s: %s", soname, e->name,
			          err ? err : "it resolves to NULL");
			return -ELIBBAD;
		}
		/* POSIX: the object pointer dlsym() returns converts to the function's type;
		 * every slot of the table is one function pointer of that size. */
		memcpy((char *)&t + e->offset, &p, sizeof(p));
	}
	*ret = t;
	return 0;
}

static void load_once(void)
{
	load_result = ceph_lib_resolve(CEPH_LIB_RADOS_SONAME, CEPH_LIB_RBD_SONAME, &table);
	if (load_result == 0)
		log_debug("Loaded %s and %s (%zu functions)", CEPH_LIB_RADOS_SONAME,
		          CEPH_LIB_RBD_SONAME, ELEMENTSOF(entries));
}

int ceph_lib_load(void)
{
	int r = pthread_once(&once, load_once);

	if (r != 0)
		return -r;
	return load_result;
}
