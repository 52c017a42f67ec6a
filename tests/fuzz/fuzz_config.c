/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Fuzz target for plugin/config.c: the --config file (a ConfigMap, written by whoever may edit
 * it). The bytes are written to a file and loaded; a malformed file must be refused with a
 * message, an accepted one must give clusters that keep the promises of config.h (valid
 * clusterIDs, at least one monitor, mon_host set).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "driver/base/log.h"
#include "driver/base/macro.h"
#include "plugin/config.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* A file of this process's own in a tmpfs: the loader reads a path. */
static const char *input_path(void)
{
	static char path[64];

	if (!path[0]) {
		snprintf(path, sizeof(path), "/dev/shm/rbdcsi-fuzz-config.%d", (int)getpid());
		log_set_max_level(LOG_LEVEL_ERROR + 1);
	}
	return path;
}

static void write_input(const char *path, const uint8_t *data, size_t size)
{
	_cleanup_close_ int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);

	if (fd < 0 || write(fd, data, size) != (ssize_t)size)
		abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *path = input_path();
	struct config *c = NULL;
	char *error = NULL;
	char ignored[256];
	int r;

	write_input(path, data, size);
	r = config_load(path, &c, &error);
	(void)unlink(path);
	if (r < 0) {
		/* Refused: with a message when the file was malformed, with no config. */
		if (c || (r == -EINVAL && !error))
			abort();
		free(error);
		return 0;
	}
	if (!c || error)
		abort();
	config_ignored_fields(c, ignored, sizeof(ignored));
	/* Every quoted string that names a cluster gives a valid one, with monitors. */
	for (const uint8_t *p = data; (p = memchr(p, '"', (size_t)(data + size - p))); p++) {
		const uint8_t *q = memchr(p + 1, '"', (size_t)(data + size - p - 1));
		struct config_cluster cl = { 0 };
		char id[CONFIG_CLUSTER_ID_MAX + 1];
		size_t n;

		if (!q)
			break;
		n = (size_t)(q - p - 1);
		if (n > CONFIG_CLUSTER_ID_MAX)
			continue;
		memcpy(id, p + 1, n);
		id[n] = 0;
		if (config_get_cluster(c, id, &cl) < 0)
			continue;
		if (!config_cluster_id_valid(cl.cluster_id) || !cl.monitors || !cl.monitors[0] ||
		    !cl.mon_host || !*cl.mon_host)
			abort();
		config_cluster_done(&cl);
	}
	config_free(c);
	return 0;
}
