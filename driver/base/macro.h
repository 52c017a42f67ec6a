/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Leaf macros used everywhere: cleanup attributes, ownership hand-off, array sizes.
 * Follows the systemd / kernel cleanup.h idiom: a local declared with a cleanup attribute is
 * released when it leaves scope; TAKE_PTR()/TAKE_FD() hand ownership to the caller.
 */
#pragma once

#include <errno.h>
#include <stdlib.h>
#include <unistd.h>

#define _cleanup_(f)   __attribute__((cleanup(f)))
#define _unused_       __attribute__((unused))
#define _printf_(a, b) __attribute__((format(printf, a, b)))
#define _noreturn_     __attribute__((noreturn))
#define _likely_(x)    __builtin_expect(!!(x), 1)
#define _unlikely_(x)  __builtin_expect(!!(x), 0)

#define ELEMENTSOF(x) (sizeof(x) / sizeof((x)[0]))

#define MIN(a, b) ((a) < (b) ? (a) : (b))
#define MAX(a, b) ((a) > (b) ? (a) : (b))

/* Returns the pointer and leaves NULL behind: ownership moves to whoever takes the value. */
#define TAKE_PTR(p)                         \
	({                                  \
		__typeof__(p) _take_ = (p); \
		(p) = NULL;                 \
		_take_;                     \
	})

#define TAKE_FD(fd)                   \
	({                            \
		int _take_fd_ = (fd); \
		(fd) = -EBADF;        \
		_take_fd_;            \
	})

static inline void freep(void *p)
{
	free(*(void **)p);
}
#define _cleanup_free_ _cleanup_(freep)

/* Closes fd if valid, keeps errno, returns -EBADF so callers can write fd = safe_close(fd). */
static inline int safe_close(int fd)
{
	if (fd >= 0) {
		int saved = errno;
		close(fd);
		errno = saved;
	}
	return -EBADF;
}

static inline void closep(int *fd)
{
	safe_close(*fd);
}
#define _cleanup_close_ _cleanup_(closep)

/* Defines type_freep() for a destructor type_free(T *) that accepts NULL. */
#define DEFINE_TRIVIAL_CLEANUP_FUNC(type, func) \
	static inline void func##p(type *p)     \
	{                                       \
		if (*p)                         \
			func(*p);               \
	}

/* Negative errno from the current errno, never 0 (a failing call that forgot errno gives EIO). */
static inline int negative_errno(void)
{
	return errno > 0 ? -errno : -EIO;
}

static inline const char *strempty(const char *s)
{
	return s ? s : "";
}

static inline int isempty(const char *s)
{
	return !s || !*s;
}
