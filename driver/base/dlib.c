/* SPDX-License-Identifier: Apache-2.0 */
#include <dlfcn.h>
#include <errno.h>
#include <string.h>

#include "driver/base/dlib.h"
#include "driver/base/log.h"

int dlib_resolve(const char *soname, const struct dlib_symbol *syms, size_t n, void *table)
{
	void *h = dlopen(soname, RTLD_NOW | RTLD_LOCAL);

	if (!h) {
		/* dlerror() names the file that is missing: the library or one it needs. */
		log_debug("Cannot load %s: %s", soname, dlerror());
		return -ELIBACC;
	}
	for (size_t i = 0; i < n; i++) {
		const char *err;
		void *p;

		dlerror();
		p = dlsym(h, syms[i].name);
		err = dlerror();
		if (!p) {
			log_debug("%s has no function %s: %s", soname, syms[i].name,
			          err ? err : "it resolves to NULL");
			return -ELIBBAD;
		}
		/* POSIX: the object pointer dlsym() returns converts to the function's type;
		 * every slot of a table is one function pointer of that size. */
		memcpy((char *)table + syms[i].offset, &p, sizeof(p));
	}
	return 0;
}
