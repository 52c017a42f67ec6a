/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Small-file helpers: read a whole file with a size limit, replace a file atomically, read and
 * write sysfs attributes. Every descriptor is O_CLOEXEC; paths are never followed through a
 * final symlink when writing.
 */
#pragma once

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/*
 * Reads all of path (at most max_size bytes) into a NUL-terminated buffer. *ret_data is owned
 * by the caller; ret_size may be NULL.
 * Errors: -ENOENT, -EACCES, -EFBIG when the file is larger than max_size, -EISDIR.
 */
int fileio_read_full(const char *path, size_t max_size, char **ret_data, size_t *ret_size);

/*
 * Replaces path with data atomically: writes "<dir>/.#<name>.XXXXXX" with the given mode,
 * fsync()s it, renames it over path and fsync()s the directory. A crash leaves either the old
 * or the new content (and possibly the temp file, named so it can be recognised).
 * Errors: -ENOENT (no directory), -EACCES, -ENOSPC, -EIO.
 */
int fileio_write_atomic(const char *path, const void *data, size_t size, mode_t mode);

/*
 * Reads a sysfs attribute (at most 4 KiB) and strips the trailing newline(s).
 * Errors: -ENOENT, -EACCES, -EFBIG.
 */
int fileio_read_sysfs(const char *path, char **ret_value);

/* Reads a sysfs attribute holding an unsigned number (decimal or 0x-hex). Errors: as above, and
 * -EINVAL when it does not parse. */
int fileio_read_sysfs_u64(const char *path, uint64_t *ret_value);

/*
 * Writes value to a sysfs attribute in one write(2) (the kernel acts on the write; its error is
 * returned as is). Errors: whatever the attribute's store() returns, e.g. -ENOENT, -EINVAL,
 * -EBUSY.
 */
int fileio_write_sysfs(const char *path, const char *value, size_t size);

/* Creates path and missing parents with mode (existing directories are left alone).
 * Errors: -ENOTDIR, -EACCES, -EEXIST when a component is not a directory. */
int fileio_mkdir_p(const char *path, mode_t mode);
