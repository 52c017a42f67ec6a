/* SPDX-License-Identifier: Apache-2.0 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/pidfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "driver/base/exec.h"
#include "driver/base/log.h"
#include "driver/base/macro.h"
#include "driver/base/monotonic.h"

#define CHILD_FD_MAX  63
#define KILL_GRACE_US (2 * USEC_PER_SEC)

static char *const default_envp[] = { (char *)EXEC_DEFAULT_PATH, NULL };

char **exec_strv_free(char **v)
{
	if (!v)
		return NULL;
	for (char **p = v; *p; p++)
		free(*p);
	free(v);
	return NULL;
}

/* Finds name in the PATH of envp (not the parent's). Returns a malloc'ed path. */
static int find_executable(const char *name, char *const *envp, char **ret)
{
	const char *path = NULL;
	int first_error = -ENOENT;

	if (isempty(name))
		return -EINVAL;
	if (strchr(name, '/')) {
		char *copy;

		if (access(name, X_OK) < 0)
			return negative_errno();
		copy = strdup(name);
		if (!copy)
			return -ENOMEM;
		*ret = copy;
		return 0;
	}
	for (char *const *e = envp; *e; e++)
		if (strncmp(*e, "PATH=", 5) == 0) {
			path = *e + 5;
			break;
		}
	if (!path)
		path = EXEC_DEFAULT_PATH + 5;

	for (const char *p = path; *p;) {
		const char *colon = strchrnul(p, ':');
		size_t len = (size_t)(colon - p);
		_cleanup_free_ char *candidate = NULL;

		if (len > 0 && p[0] == '/' &&
		    asprintf(&candidate, "%.*s/%s", (int)len, p, name) >= 0) {
			struct stat st;

			if (stat(candidate, &st) == 0 && S_ISREG(st.st_mode)) {
				if (access(candidate, X_OK) == 0) {
					*ret = TAKE_PTR(candidate);
					return 0;
				}
				first_error = -EACCES;
			}
		}
		p = *colon ? colon + 1 : colon;
	}
	return first_error;
}

struct spawn_plan {
	posix_spawn_file_actions_t actions;
	posix_spawnattr_t attr;
	bool actions_init;
	bool attr_init;
	int dups[EXEC_FDS_MAX]; /* parent copies at high numbers, closed after the spawn */
	size_t n_dups;
};

static void spawn_plan_done(struct spawn_plan *p)
{
	if (p->actions_init)
		posix_spawn_file_actions_destroy(&p->actions);
	if (p->attr_init)
		posix_spawnattr_destroy(&p->attr);
	for (size_t i = 0; i < p->n_dups; i++)
		safe_close(p->dups[i]);
	p->n_dups = 0;
	p->actions_init = p->attr_init = false;
}

/*
 * Prepares the file actions: stdio from the given fds (or paths), then the extra fds, then
 * closefrom() past the highest fd the child should have. Extra fds are first duplicated in the
 * parent above every target number, so that a source fd equal to another entry's target cannot
 * be clobbered and a source equal to its own target still loses FD_CLOEXEC.
 */
static int spawn_plan_init(struct spawn_plan *p, const struct exec_options *opts, int stdin_fd,
                           int stdout_fd, int stderr_fd, const char *log_path, bool detached)
{
	int max_child = 2;
	short flags = POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF;
	sigset_t mask;
	int r;

	*p = (struct spawn_plan){ 0 };
	if (opts->n_fds > EXEC_FDS_MAX || (opts->n_fds > 0 && !opts->fds))
		return -EINVAL;
	for (size_t i = 0; i < opts->n_fds; i++) {
		if (opts->fds[i].child_fd < 3 || opts->fds[i].child_fd > CHILD_FD_MAX ||
		    opts->fds[i].fd < 0)
			return -EINVAL;
		for (size_t j = 0; j < i; j++)
			if (opts->fds[j].child_fd == opts->fds[i].child_fd)
				return -EINVAL;
		max_child = MAX(max_child, opts->fds[i].child_fd);
	}

	r = -posix_spawn_file_actions_init(&p->actions);
	if (r < 0)
		return r;
	p->actions_init = true;
	r = -posix_spawnattr_init(&p->attr);
	if (r < 0)
		goto out_destroy;
	p->attr_init = true;

	for (size_t i = 0; i < opts->n_fds; i++) {
		int d = fcntl(opts->fds[i].fd, F_DUPFD_CLOEXEC, max_child + 1);

		if (d < 0) {
			r = negative_errno();
			goto out_destroy;
		}
		p->dups[p->n_dups++] = d;
	}

	if (stdin_fd >= 0)
		r = -posix_spawn_file_actions_adddup2(&p->actions, stdin_fd, 0);
	else
		r = -posix_spawn_file_actions_addopen(&p->actions, 0, "/dev/null", O_RDONLY, 0);
	if (r < 0)
		goto out_destroy;
	if (stdout_fd >= 0) {
		r = -posix_spawn_file_actions_adddup2(&p->actions, stdout_fd, 1);
		if (r == 0)
			r = -posix_spawn_file_actions_adddup2(&p->actions, stderr_fd, 2);
	} else {
		const char *out = log_path ? log_path : "/dev/null";
		int oflags = log_path ? O_WRONLY | O_CREAT | O_APPEND | O_NOFOLLOW : O_WRONLY;

		r = -posix_spawn_file_actions_addopen(&p->actions, 1, out, oflags, 0600);
		if (r == 0)
			r = -posix_spawn_file_actions_adddup2(&p->actions, 1, 2);
	}
	if (r < 0)
		goto out_destroy;
	for (size_t i = 0; i < opts->n_fds; i++) {
		r = -posix_spawn_file_actions_adddup2(&p->actions, p->dups[i],
		                                      opts->fds[i].child_fd);
		if (r < 0)
			goto out_destroy;
	}
	/* Gaps below max_child that are not targets: close whatever the parent left there. */
	for (int fd = 3; fd <= max_child; fd++) {
		bool target = false;

		for (size_t i = 0; i < opts->n_fds; i++)
			target = target || opts->fds[i].child_fd == fd;
		if (!target) {
			r = -posix_spawn_file_actions_addclose(&p->actions, fd);
			if (r < 0)
				goto out_destroy;
		}
	}
	r = -posix_spawn_file_actions_addclosefrom_np(&p->actions, max_child + 1);
	if (r < 0)
		goto out_destroy;
	r = -posix_spawn_file_actions_addchdir_np(&p->actions, "/");
	if (r < 0)
		goto out_destroy;

	sigemptyset(&mask);
	r = -posix_spawnattr_setsigmask(&p->attr, &mask);
	if (r < 0)
		goto out_destroy;
	sigfillset(&mask);
	sigdelset(&mask, SIGKILL);
	sigdelset(&mask, SIGSTOP);
	r = -posix_spawnattr_setsigdefault(&p->attr, &mask);
	if (r < 0)
		goto out_destroy;
	if (detached)
		flags |= POSIX_SPAWN_SETSID;
	else {
		/* Own process group, so a timeout kills what the child started too. */
		flags |= POSIX_SPAWN_SETPGROUP;
		r = -posix_spawnattr_setpgroup(&p->attr, 0);
		if (r < 0)
			goto out_destroy;
	}
	r = -posix_spawnattr_setflags(&p->attr, flags);
	if (r < 0)
		goto out_destroy;
	return 0;
out_destroy:
	spawn_plan_done(p);
	return r;
}

static int do_spawn(char *const argv[], const struct exec_options *opts, int stdin_fd,
                    int stdout_fd, int stderr_fd, bool detached, pid_t *ret_pid)
{
	char *const *envp = opts->envp ? opts->envp : default_envp;
	_cleanup_free_ char *path = NULL;
	struct spawn_plan plan;
	pid_t pid;
	int r;

	if (!argv || !argv[0])
		return -EINVAL;
	r = find_executable(argv[0], envp, &path);
	if (r < 0)
		return log_debug_errno(r, "Cannot find program '%s': %m", argv[0]);

	r = spawn_plan_init(&plan, opts, stdin_fd, stdout_fd, stderr_fd, opts->log_path, detached);
	if (r < 0)
		return r;
	r = -posix_spawn(&pid, path, &plan.actions, &plan.attr, argv, envp);
	spawn_plan_done(&plan);
	if (r < 0)
		return log_debug_errno(r, "Failed to spawn '%s': %m", path);
	log_debug("Spawned %s as pid %d%s", path, (int)pid, detached ? " (detached)" : "");
	*ret_pid = pid;
	return 0;
}

struct capture {
	int fd;
	char *buf;
	size_t size;
	size_t max;
	bool truncated;
};

/* Reads what is available. Returns 1 at EOF, 0 otherwise, <0 on error. */
static int capture_read(struct capture *c)
{
	char chunk[4096];

	for (;;) {
		ssize_t n = read(c->fd, chunk, sizeof(chunk));

		if (n < 0) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN)
				return 0;
			return negative_errno();
		}
		if (n == 0)
			return 1;
		if (c->size < c->max) {
			size_t take = MIN((size_t)n, c->max - c->size);

			memcpy(c->buf + c->size, chunk, take);
			c->size += take;
			c->buf[c->size] = 0;
			if (take < (size_t)n)
				c->truncated = true;
		} else
			c->truncated = true;
	}
}

/* Reaps pid in a detached thread: for a child that ignored SIGKILL (D state) past the grace. */
static void *reaper_thread(void *arg)
{
	pid_t pid = (pid_t)(intptr_t)arg;

	while (waitpid(pid, NULL, 0) < 0 && errno == EINTR)
		;
	return NULL;
}

static void reap_in_background(pid_t pid)
{
	pthread_attr_t attr;
	pthread_t t;

	if (pthread_attr_init(&attr) != 0)
		return;
	pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
	if (pthread_create(&t, &attr, reaper_thread, (void *)(intptr_t)pid) != 0)
		log_debug("Cannot start a reaper thread for pid %d, it stays a zombie", (int)pid);
	pthread_attr_destroy(&attr);
}

static int poll_timeout_ms(uint64_t deadline)
{
	uint64_t now;

	if (deadline == UINT64_MAX)
		return -1;
	now = monotonic_usec();
	if (now >= deadline)
		return 0;
	return (int)MIN((deadline - now + 999) / 1000, (uint64_t)INT32_MAX);
}

int exec_find_program(const char *name, char *const *envp, char **ret_path)
{
	return find_executable(name, envp ? envp : default_envp, ret_path);
}

int exec_run(char *const argv[], const struct exec_options *opts, struct exec_result *ret_result)
{
	static const struct exec_options defaults = { 0 };
	_cleanup_close_ int in_parent = -EBADF, in_child = -EBADF;
	_cleanup_close_ int out_parent = -EBADF, out_child = -EBADF;
	_cleanup_close_ int err_parent = -EBADF, err_child = -EBADF;
	_cleanup_close_ int pidfd = -EBADF;
	_cleanup_free_ char *out_buf = NULL, *err_buf = NULL;
	struct capture out, err;
	size_t max, written = 0;
	uint64_t deadline;
	bool exited = false, timed_out = false;
	int status = 0, fds[2], r;
	pid_t pid;

	if (!opts)
		opts = &defaults;
	max = opts->output_max ? opts->output_max : EXEC_OUTPUT_MAX_DEFAULT;
	out_buf = calloc(1, max + 1);
	err_buf = calloc(1, max + 1);
	if (!out_buf || !err_buf)
		return -ENOMEM;

	if (opts->input) {
		if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds) < 0)
			return negative_errno();
		in_parent = fds[0];
		in_child = fds[1];
		if (fcntl(in_parent, F_SETFL, O_NONBLOCK) < 0)
			return negative_errno();
	}
	if (pipe2(fds, O_CLOEXEC) < 0)
		return negative_errno();
	out_parent = fds[0];
	out_child = fds[1];
	if (pipe2(fds, O_CLOEXEC) < 0)
		return negative_errno();
	err_parent = fds[0];
	err_child = fds[1];
	if (fcntl(out_parent, F_SETFL, O_NONBLOCK) < 0 ||
	    fcntl(err_parent, F_SETFL, O_NONBLOCK) < 0)
		return negative_errno();

	r = do_spawn(argv, opts, in_child, out_child, err_child, false, &pid);
	if (r < 0)
		return r;
	in_child = safe_close(in_child);
	out_child = safe_close(out_child);
	err_child = safe_close(err_child);
	if (opts->input && opts->input_size == 0)
		in_parent = safe_close(in_parent);

	pidfd = pidfd_open(pid, 0);
	deadline = opts->timeout_usec ? monotonic_usec() + opts->timeout_usec : UINT64_MAX;
	out = (struct capture){ .fd = out_parent, .buf = out_buf, .max = max };
	err = (struct capture){ .fd = err_parent, .buf = err_buf, .max = max };

	while (!exited) {
		struct pollfd p[4];
		int n = 0, i_in = -1, i_out = -1, i_err = -1, i_pid = -1, timeout;

		if (in_parent >= 0) {
			i_in = n;
			p[n++] = (struct pollfd){ .fd = in_parent, .events = POLLOUT };
		}
		if (out_parent >= 0) {
			i_out = n;
			p[n++] = (struct pollfd){ .fd = out_parent, .events = POLLIN };
		}
		if (err_parent >= 0) {
			i_err = n;
			p[n++] = (struct pollfd){ .fd = err_parent, .events = POLLIN };
		}
		if (pidfd >= 0) {
			i_pid = n;
			p[n++] = (struct pollfd){ .fd = pidfd, .events = POLLIN };
		}
		timeout = poll_timeout_ms(deadline);
		/* Without a pidfd, check the child with waitpid() every 10 ms. */
		if (pidfd < 0 && (timeout < 0 || timeout > 10))
			timeout = 10;
		if (timeout == 0 && deadline != UINT64_MAX && monotonic_usec() >= deadline) {
			timed_out = true;
			break;
		}
		if (poll(p, (nfds_t)n, timeout) < 0) {
			if (errno == EINTR)
				continue;
			r = negative_errno();
			timed_out = true; /* kill it, we cannot watch it */
			break;
		}
		if (i_in >= 0 && p[i_in].revents) {
			ssize_t k = send(in_parent, (const char *)opts->input + written,
			                 opts->input_size - written, MSG_NOSIGNAL | MSG_DONTWAIT);

			if (k > 0)
				written += (size_t)k;
			if ((k < 0 && errno != EAGAIN && errno != EINTR) ||
			    written >= opts->input_size)
				in_parent = safe_close(in_parent);
		}
		if (i_out >= 0 && p[i_out].revents && capture_read(&out) != 0)
			out_parent = safe_close(out_parent);
		if (i_err >= 0 && p[i_err].revents && capture_read(&err) != 0)
			err_parent = safe_close(err_parent);
		if (pidfd < 0 || (i_pid >= 0 && p[i_pid].revents)) {
			pid_t w = waitpid(pid, &status, WNOHANG);

			if (w == pid)
				exited = true;
			else if (w < 0 && errno != EINTR) {
				r = negative_errno();
				return log_debug_errno(r, "waitpid(%d) failed: %m", (int)pid);
			}
		}
	}

	if (timed_out) {
		uint64_t grace = monotonic_usec() + KILL_GRACE_US;

		log_debug("Killing %s (pid %d): timed out", argv[0], (int)pid);
		kill(-pid, SIGKILL);
		kill(pid, SIGKILL);
		for (;;) {
			pid_t w = waitpid(pid, &status, WNOHANG);

			if (w == pid)
				break;
			if (w < 0 && errno != EINTR)
				break;
			if (monotonic_usec() >= grace) {
				/* Stuck in the kernel (D state): let a thread reap it later. */
				reap_in_background(pid);
				break;
			}
			if (pidfd >= 0) {
				struct pollfd p = { .fd = pidfd, .events = POLLIN };

				(void)poll(&p, 1, 100);
			} else
				usleep(10000);
		}
		return r < 0 ? r : -ETIMEDOUT;
	}

	/* The child is gone; take what is left in the pipes without waiting for grandchildren
	 * that may still hold them open. */
	if (out_parent >= 0)
		(void)capture_read(&out);
	if (err_parent >= 0)
		(void)capture_read(&err);

	*ret_result = (struct exec_result){
		.exit_status = WIFEXITED(status) ? WEXITSTATUS(status) : -1,
		.signal = WIFSIGNALED(status) ? WTERMSIG(status) : 0,
		.out = TAKE_PTR(out_buf),
		.out_size = out.size,
		.out_truncated = out.truncated,
		.err = TAKE_PTR(err_buf),
		.err_size = err.size,
		.err_truncated = err.truncated,
	};
	log_debug("%s exited: status %d signal %d", argv[0], ret_result->exit_status,
	          ret_result->signal);
	return 0;
}

void exec_result_done(struct exec_result *r)
{
	if (!r)
		return;
	free(r->out);
	free(r->err);
	*r = (struct exec_result){ 0 };
}

bool exec_result_ok(const struct exec_result *r)
{
	return r && r->exit_status == 0 && r->signal == 0;
}

/* The last non-empty line of s (at most 300 bytes), copied into buf. */
static void last_line(const char *s, size_t size, char *buf, size_t bufsize)
{
	size_t end = size, start;

	buf[0] = 0;
	if (!s)
		return;
	while (end > 0 && (s[end - 1] == '\n' || s[end - 1] == '\r' || s[end - 1] == ' '))
		end--;
	start = end;
	while (start > 0 && s[start - 1] != '\n')
		start--;
	snprintf(buf, bufsize, "%.*s", (int)MIN(end - start, (size_t)300), s + start);
}

char *exec_result_describe(const struct exec_result *r, const char *what)
{
	char line[320];
	char *s = NULL;

	last_line(r->err, r->err_size, line, sizeof(line));
	if (!line[0])
		last_line(r->out, r->out_size, line, sizeof(line));
	if (r->signal)
		(void)!asprintf(&s, "%s killed by signal %d%s%s", what, r->signal,
		                line[0] ? ": " : "", line);
	else
		(void)!asprintf(&s, "%s exited with status %d%s%s", what, r->exit_status,
		                line[0] ? ": " : "", line);
	return s;
}

int exec_spawn_detached(char *const argv[], const struct exec_options *opts, pid_t *ret_pid)
{
	static const struct exec_options defaults = { 0 };
	pid_t pid;
	int r;

	if (!opts)
		opts = &defaults;
	r = do_spawn(argv, opts, -EBADF, -EBADF, -EBADF, true, &pid);
	if (r < 0)
		return r;
	*ret_pid = pid;
	return 0;
}

int exec_memfd_new(const char *name, const void *data, size_t size, int *ret_fd)
{
	_cleanup_close_ int fd = -EBADF;
	size_t done = 0;

	fd = memfd_create(name, MFD_CLOEXEC | MFD_ALLOW_SEALING);
	if (fd < 0)
		return negative_errno();
	while (done < size) {
		ssize_t n = write(fd, (const char *)data + done, size - done);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			return negative_errno();
		}
		done += (size_t)n;
	}
	if (fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE | F_SEAL_SEAL) < 0)
		return negative_errno();
	if (lseek(fd, 0, SEEK_SET) < 0)
		return negative_errno();
	*ret_fd = TAKE_FD(fd);
	return 0;
}

/* Reaps pid if it is our child and has exited; returns the status as documented, or -1. */
static int reap_status(pid_t pid)
{
	int status;
	pid_t w;

	do
		w = waitpid(pid, &status, WNOHANG);
	while (w < 0 && errno == EINTR);
	if (w != pid)
		return -1;
	if (WIFEXITED(status))
		return WEXITSTATUS(status);
	if (WIFSIGNALED(status))
		return 128 + WTERMSIG(status);
	return -1;
}

int exec_pid_wait_exit(pid_t pid, uint64_t timeout_usec, int *ret_status)
{
	_cleanup_close_ int pidfd = -EBADF;
	uint64_t deadline = monotonic_usec() + timeout_usec;

	if (pid <= 0)
		return -EINVAL;
	pidfd = pidfd_open(pid, 0);
	if (pidfd < 0) {
		if (errno == ESRCH) {
			int st = reap_status(pid);

			if (ret_status)
				*ret_status = st;
			return 0;
		}
		return negative_errno();
	}
	for (;;) {
		struct pollfd p = { .fd = pidfd, .events = POLLIN };
		int k = poll(&p, 1, poll_timeout_ms(deadline));

		if (k < 0 && errno != EINTR)
			return negative_errno();
		if (k > 0) {
			/* Exited. Reap it if it is our child (ECHILD otherwise: -1). */
			int st = reap_status(pid);

			if (ret_status)
				*ret_status = st;
			return 0;
		}
		if (monotonic_usec() >= deadline)
			return -ETIMEDOUT;
	}
}

int exec_pid_cmdline(pid_t pid, char ***ret_argv)
{
	char path[64], buf[8192];
	_cleanup_close_ int fd = -EBADF;
	size_t size = 0, n = 0;
	char **v;

	snprintf(path, sizeof(path), "/proc/%d/cmdline", (int)pid);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return errno == ENOENT ? -ESRCH : negative_errno();
	while (size < sizeof(buf) - 1) {
		ssize_t k = read(fd, buf + size, sizeof(buf) - 1 - size);

		if (k < 0) {
			if (errno == EINTR)
				continue;
			return errno == ESRCH ? -ESRCH : negative_errno();
		}
		if (k == 0)
			break;
		size += (size_t)k;
	}
	buf[size] = 0;
	for (size_t i = 0; i < size; i++)
		if (buf[i] == 0)
			n++;
	if (size > 0 && buf[size - 1] != 0)
		n++;
	v = calloc(n + 1, sizeof(char *));
	if (!v)
		return -ENOMEM;
	for (size_t i = 0, k = 0; i < size && k < n; k++) {
		v[k] = strdup(buf + i);
		if (!v[k]) {
			exec_strv_free(v);
			return -ENOMEM;
		}
		i += strlen(buf + i) + 1;
	}
	*ret_argv = v;
	return 0;
}
