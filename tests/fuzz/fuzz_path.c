/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Fuzz target for driver/base/path.c: request paths come from the CO (untrusted). Each input is
 * resolved beneath a private root (created once: a directory, a file, a symlink to "/" and one
 * to ".."), by openat2 and by the O_PATH walk. Both must agree; an accepted path must be below
 * the root, normalised (no empty, "." or ".." component), and its parent must not be reached
 * through the symlinks.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "driver/base/path.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static char root[64];
static int root_fd = -1;

static void remove_root(void)
{
	static const char *const entries[] = { "d/up", "l", "d/f", "d", "" };
	char p[128];

	close(root_fd);
	for (size_t i = 0; i < sizeof(entries) / sizeof(entries[0]); i++) {
		snprintf(p, sizeof(p), "%s/%s", root, entries[i]);
		if (unlink(p) < 0)
			(void)rmdir(p);
	}
}

static void setup_root(void)
{
	char p[128];

	snprintf(root, sizeof(root), "/tmp/rbdcsi-fuzz-path-XXXXXX");
	if (!mkdtemp(root))
		abort();
	snprintf(p, sizeof(p), "%s/d", root);
	if (mkdir(p, 0700) < 0)
		abort();
	snprintf(p, sizeof(p), "%s/d/f", root);
	if (mkdir(p, 0700) < 0)
		abort();
	snprintf(p, sizeof(p), "%s/l", root);
	if (symlink("/", p) < 0)
		abort();
	snprintf(p, sizeof(p), "%s/d/up", root);
	if (symlink("..", p) < 0)
		abort();
	if (path_root_open(root, &root_fd) < 0)
		abort();
	atexit(remove_root);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct path_resolved a = PATH_RESOLVED_INIT, b = PATH_RESOLVED_INIT;
	char in[600];
	int ra, rb;

	if (root_fd < 0)
		setup_root();
	/* Inputs are relative to the root, so that they mostly land below it. */
	if (size > 500)
		size = 500;
	memcpy(in, root, strlen(root));
	memcpy(in + strlen(root), data, size);
	in[strlen(root) + size] = 0;

	ra = path_resolve(root_fd, root, in, 0, &a);
	rb = path_resolve(root_fd, root, in, PATH_WALK, &b);
	if (ra != rb)
		abort();
	if (ra == 0) {
		size_t n = strlen(root);

		if (strncmp(a.text, root, n) != 0 || a.text[n] != '/' || strstr(a.text, "//") ||
		    strstr(a.text, "/./") || strstr(a.text, "/../") ||
		    strcmp(a.text + strlen(a.text) - 2, "/.") == 0 ||
		    strcmp(a.text + strlen(a.text) - 3, "/..") == 0 || strcmp(a.text, b.text) != 0)
			abort();
		if ((a.fd < 0) != (b.fd < 0))
			abort();
	}
	path_resolved_done(&a);
	path_resolved_done(&b);
	return 0;
}
