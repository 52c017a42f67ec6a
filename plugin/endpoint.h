/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The plugin's Unix socket endpoint: parsing "unix://" URLs, and the lock file that keeps a second
 * instance from stealing a live socket.
 */
#pragma once

#include <sys/types.h>

/*
 * Parses "unix:///abs/path", "unix:/abs/path" or "/abs/path" into an absolute path that fits in
 * sockaddr_un.sun_path. Errors: -EINVAL (not unix, not absolute, contains ".."),
 * -ENAMETOOLONG (longer than sun_path). *ret is malloc'd.
 */
int endpoint_parse(const char *endpoint, char **ret_path);

/*
 * Takes an exclusive lock on "<path>.lock" (creating it), then removes a stale socket at path.
 * Errors: -EADDRINUSE when another process holds the lock (another instance serves the socket),
 * -errno of open/flock otherwise. On success *ret_fd is the lock fd, held until endpoint_release().
 */
int endpoint_lock(const char *path, int *ret_fd);

/* Sets the socket's mode (e.g. 0660). */
int endpoint_chmod(const char *path, mode_t mode);

/*
 * Creates the listening socket at path (the caller holds the endpoint lock) with its final mode
 * from the start: bound in a private 0700 directory next to path, chmod'ed there, then renamed
 * into place, so it is never reachable with a wider mode (when the private path would not fit in
 * sun_path, bound under a umask that yields mode instead). The fd is non-blocking and
 * close-on-exec. Errors: -ENAMETOOLONG, -errno of socket/bind/listen/rename.
 */
int endpoint_listen(const char *path, mode_t mode, int *ret_fd);

/* Removes the socket and the lock file, then drops the lock. Returns -EBADF. */
int endpoint_release(const char *path, int lock_fd);
