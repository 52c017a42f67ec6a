/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Running helper programs: posix_spawn from an argv vector (never a shell), an explicit
 * environment (never the parent's), optional stdin data, extra descriptors passed on purpose
 * (e.g. a sealed memfd at fd 3 carrying a key, read by the child as /dev/fd/3), bounded capture
 * of stdout/stderr, and a timeout after which the child's process group is SIGKILLed.
 *
 * Every descriptor the child gets is listed explicitly: stdin/stdout/stderr, the exec_fd
 * entries, nothing else (the child runs closefrom() on the rest). The child starts in "/" with
 * an empty signal mask and default signal dispositions, in its own process group.
 *
 * All functions are thread-safe. They rely on nobody in the process reaping children with
 * waitpid(-1) or setting SIGCHLD to SIG_IGN.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define EXEC_OUTPUT_MAX_DEFAULT (64U * 1024U)
#define EXEC_FDS_MAX            8
#define EXEC_DEFAULT_PATH       "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

#ifndef USEC_PER_SEC
#define USEC_PER_SEC 1000000ULL
#endif
#ifndef USEC_PER_MSEC
#define USEC_PER_MSEC 1000ULL
#endif

/* A descriptor handed to the child: the parent's fd becomes child_fd (>= 3) in the child. */
struct exec_fd {
	int fd;       /* parent's descriptor; borrowed, the caller keeps and closes it */
	int child_fd; /* its number in the child, 3..63 */
};

struct exec_options {
	/* NULL-terminated "NAME=value" list; NULL means { EXEC_DEFAULT_PATH, NULL }. The program
	 * (argv[0] without a '/') is looked up in this PATH, never the parent's. */
	char *const *envp;
	/* Written to the child's stdin (a socket; EOF after the data). NULL: stdin is /dev/null. */
	const void *input;
	size_t input_size;
	const struct exec_fd *fds;
	size_t n_fds;
	/* Bytes kept per stream (the rest is read and dropped); 0: EXEC_OUTPUT_MAX_DEFAULT. */
	size_t output_max;
	/* exec_run(): SIGKILL the child's process group after this long; 0: no limit. */
	uint64_t timeout_usec;
	/* exec_spawn_detached(): stdout and stderr are appended to this file (created 0600), or
	 * go to /dev/null when NULL. Unused by exec_run(). */
	const char *log_path;
};

struct exec_result {
	int exit_status; /* exit code, or -1 when killed by a signal */
	int signal;      /* terminating signal, or 0 */
	char *out;       /* NUL-terminated, owned; at most output_max bytes */
	size_t out_size;
	bool out_truncated;
	char *err;
	size_t err_size;
	bool err_truncated;
};

/*
 * Runs argv[0] with argv, waits for it (at most opts->timeout_usec) and stores its exit status
 * and output in *ret_result (to be released with exec_result_done()). A non-zero exit status
 * is not an error of this function: check ret_result->exit_status.
 * opts may be NULL (defaults).
 * Errors: -ENOENT program not found, -EACCES not executable, -ETIMEDOUT killed after the
 * timeout, -EINVAL bad arguments, -ENOMEM/-EMFILE resources.
 */
int exec_run(char *const argv[], const struct exec_options *opts, struct exec_result *ret_result);

/*
 * Looks name up like exec_run() does: a name with a '/' is taken as is, else it is searched in
 * the PATH of envp (NULL: the default PATH). *ret_path is owned by the caller.
 * Errors: -ENOENT not found, -EACCES found but not executable.
 */
int exec_find_program(const char *name, char *const *envp, char **ret_path);

/* Frees the buffers of a result filled by exec_run(); accepts NULL and zeroed results. */
void exec_result_done(struct exec_result *r);

/* true when the program exited with status 0. */
bool exec_result_ok(const struct exec_result *r);

/*
 * A one-line human-readable summary for error reasons: "<what> exited with status 1: <last
 * non-empty line of stderr, else stdout>" or "<what> killed by signal 9". Returns a newly
 * allocated string (caller frees) or NULL on allocation failure.
 */
char *exec_result_describe(const struct exec_result *r, const char *what);

/*
 * Starts argv[0] in a new session (setsid) and does not wait: for long-lived helpers that must
 * outlive this process (rbd-fuse). stdin is /dev/null; stdout/stderr go to opts->log_path or
 * /dev/null. The child is ours until we exit: reap it with exec_pid_wait_exit().
 * Errors: as exec_run(), without -ETIMEDOUT.
 */
int exec_spawn_detached(char *const argv[], const struct exec_options *opts, pid_t *ret_pid);

/*
 * Creates a sealed, close-on-exec memfd holding size bytes of data (a secret for a child, read
 * as /dev/fd/N; it never touches a filesystem). Returns the fd in *ret_fd; the caller closes it.
 * Errors: -ENOMEM, -EMFILE, -ENOSYS (no memfd).
 */
int exec_memfd_new(const char *name, const void *data, size_t size, int *ret_fd);

/*
 * Waits at most timeout_usec for process pid to exit (pidfd; works whether or not pid is our
 * child, and reaps it when it is). Returns 0 when it has exited (or never existed),
 * -ETIMEDOUT when it is still running. ret_status (may be NULL) gets the exit code, 128+signal
 * when killed, or -1 when unknown (not our child, or already reaped).
 */
int exec_pid_wait_exit(pid_t pid, uint64_t timeout_usec, int *ret_status);

/*
 * Reads /proc/PID/cmdline as a NULL-terminated vector (caller frees with exec_strv_free()).
 * A zombie or kernel thread has an empty vector. Errors: -ESRCH no such process.
 */
int exec_pid_cmdline(pid_t pid, char ***ret_argv);

/* Frees a NULL-terminated string vector; returns NULL. */
char **exec_strv_free(char **v);
