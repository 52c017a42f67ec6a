/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Fuzz target for the node's stage state loader (driver/host/stage.c, stage_load()): a state
 * file is what the node trusts after a restart to decide what to unmap and unmount, so whatever
 * bytes are on disk (a torn write, an older version, an edit) must be refused or give a state
 * that keeps stage.h's promises. The bytes are written as the state file of one volume id in a
 * private directory and loaded; when accepted, stage_find_image() must find it by its image.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "driver/base/log.h"
#include "driver/base/macro.h"
#include "driver/host/stage.h"

#define VOLUME_ID "fuzz-volume-0001"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static char state_dir_path[64];

static void state_dir_remove(void)
{
	(void)rmdir(state_dir_path);
}

static const char *state_dir(void)
{
	if (!state_dir_path[0]) {
		snprintf(state_dir_path, sizeof(state_dir_path), "/dev/shm/rbdcsi-fuzz-stage.%d",
		         (int)getpid());
		if (mkdir(state_dir_path, 0700) < 0 && errno != EEXIST)
			abort();
		atexit(state_dir_remove);
		log_set_max_level(LOG_LEVEL_ERROR + 1);
	}
	return state_dir_path;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *dir = state_dir();
	_cleanup_free_ char *path = NULL, *other = NULL;
	_cleanup_(stage_info_freep) struct stage_info *info = NULL;
	int r;

	if (stage_state_path(dir, VOLUME_ID, &path) < 0)
		abort();
	{
		_cleanup_close_ int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);

		if (fd < 0 || write(fd, data, size) != (ssize_t)size)
			abort();
	}
	r = stage_load(dir, VOLUME_ID, &info);
	if (r == 0) {
		/* An accepted state names this volume, a known mapper and access type. */
		if (!info || !info->volume_id || strcmp(info->volume_id, VOLUME_ID) != 0 ||
		    !info->phase || !info->pool || !info->image || info->mapper <= MAPPER_AUTO ||
		    (info->access != STAGE_ACCESS_MOUNT && info->access != STAGE_ACCESS_BLOCK))
			abort();
		r = stage_find_image(dir, info->cluster_id, info->pool, info->rados_namespace,
		                     info->image, NULL, &other);
		if (r == 0 && strcmp(other, VOLUME_ID) != 0)
			abort();
	} else if (info || (r != -EINVAL && r != -ENOMEM && r != -EFBIG)) {
		abort();
	}
	(void)unlink(path);
	return 0;
}
