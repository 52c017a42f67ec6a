/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Tests of driver/base/exec.c (and, for lack of a file of their own, driver/base/fileio.c:
 * the test_fileio__ cases at the end).
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "driver/base/exec.h"
#include "driver/base/fileio.h"
#include "driver/base/macro.h"
#include "driver/base/monotonic.h"

static char tmpdir[256];

static int setup(void **state)
{
	snprintf(tmpdir, sizeof(tmpdir), "/tmp/rbdcsi-test-exec-XXXXXX");
	return mkdtemp(tmpdir) ? 0 : -1;
}

static int teardown(void **state)
{
	char *argv[] = { (char *)"rm", (char *)"-rf", (char *)"--one-file-system", tmpdir, NULL };
	struct exec_result res;

	if (exec_run(argv, NULL, &res) == 0)
		exec_result_done(&res);
	return 0;
}

static void test_exec__captures_stdout_stderr_and_status(void **state)
{
	char *argv[] = { (char *)"sh", (char *)"-c", (char *)"echo out; echo err >&2; exit 3",
		         NULL };
	struct exec_result res;
	char *d;

	assert_int_equal(exec_run(argv, NULL, &res), 0);
	assert_int_equal(res.exit_status, 3);
	assert_int_equal(res.signal, 0);
	assert_string_equal(res.out, "out\n");
	assert_string_equal(res.err, "err\n");
	assert_false(exec_result_ok(&res));
	d = exec_result_describe(&res, "sh");
	assert_string_equal(d, "sh exited with status 3: err");
	free(d);
	exec_result_done(&res);
}

static void test_exec__timeout_kills_process_group(void **state)
{
	char script[512], pidfile[300];
	char *argv[] = { (char *)"sh", (char *)"-c", script, NULL };
	struct exec_options opts = { .timeout_usec = 300 * USEC_PER_MSEC };
	struct exec_result res;
	_cleanup_free_ char *pid_text = NULL;
	uint64_t t0 = monotonic_usec(), elapsed;
	pid_t grandchild;

	snprintf(pidfile, sizeof(pidfile), "%s/grandchild.pid", tmpdir);
	/* A grandchild in the same process group must die with its parent. */
	snprintf(script, sizeof(script), "sleep 30 & echo $! > %s; wait", pidfile);
	assert_int_equal(exec_run(argv, &opts, &res), -ETIMEDOUT);
	elapsed = monotonic_usec() - t0;
	assert_true(elapsed >= 300 * USEC_PER_MSEC);
	assert_true(elapsed < 2 * USEC_PER_SEC);

	assert_int_equal(fileio_read_sysfs(pidfile, &pid_text), 0);
	grandchild = (pid_t)strtol(pid_text, NULL, 10);
	assert_true(grandchild > 0);
	/* It was killed; once init reaps it, it is gone. A zombie has no cmdline. */
	assert_int_equal(exec_pid_wait_exit(grandchild, 5 * USEC_PER_SEC, NULL), 0);
}

static void test_exec__stdin_data(void **state)
{
	char *argv[] = { (char *)"cat", NULL };
	char big[200000];
	struct exec_options opts = { .input = big,
		                     .input_size = sizeof(big),
		                     .output_max = sizeof(big) };
	struct exec_result res;

	for (size_t i = 0; i < sizeof(big); i++)
		big[i] = (char)('a' + i % 26);
	assert_int_equal(exec_run(argv, &opts, &res), 0);
	assert_int_equal(res.exit_status, 0);
	assert_int_equal(res.out_size, sizeof(big));
	assert_memory_equal(res.out, big, sizeof(big));
	exec_result_done(&res);

	/* A child that does not read its input must not hurt us (no SIGPIPE). */
	char *argv2[] = { (char *)"true", NULL };
	assert_int_equal(exec_run(argv2, &opts, &res), 0);
	assert_int_equal(res.exit_status, 0);
	exec_result_done(&res);
}

static void test_exec__output_is_bounded(void **state)
{
	char *argv[] = { (char *)"sh", (char *)"-c",
		         (char *)"head -c 100000 /dev/zero | tr '\\0' x", NULL };
	struct exec_options opts = { .output_max = 1000 };
	struct exec_result res;

	assert_int_equal(exec_run(argv, &opts, &res), 0);
	assert_int_equal(res.exit_status, 0);
	assert_int_equal(res.out_size, 1000);
	assert_true(res.out_truncated);
	assert_int_equal(strlen(res.out), 1000);
	exec_result_done(&res);
}

static void test_exec__extra_fd_memfd_and_no_leaks(void **state)
{
	char *argv[] = { (char *)"sh", (char *)"-c",
		         (char *)"cat /dev/fd/3; echo; ls /proc/self/fd | sort -n | tr '\\n' ' '",
		         NULL };
	_cleanup_close_ int key = -EBADF, leaky = -EBADF;
	struct exec_fd fds[1];
	struct exec_options opts = { .fds = fds, .n_fds = 1 };
	struct exec_result res;

	assert_int_equal(exec_memfd_new("k", "s3cret", 6, &key), 0);
	/* A descriptor the parent forgot to mark O_CLOEXEC must not reach the child. */
	leaky = open("/dev/null", O_RDONLY);
	assert_true(leaky >= 0);
	fds[0] = (struct exec_fd){ .fd = key, .child_fd = 3 };
	assert_int_equal(exec_run(argv, &opts, &res), 0);
	assert_int_equal(res.exit_status, 0);
	/* fd 3 is the memfd; the 4th entry is ls's own directory fd. */
	assert_string_equal(res.out, "s3cret\n0 1 2 3 4 ");
	exec_result_done(&res);

	/* The memfd is sealed: nobody can change the secret behind our back. */
	assert_true(write(key, "x", 1) < 0);
	assert_int_equal(errno, EPERM);
}

static void test_exec__extra_fd_same_number_and_swapped(void **state)
{
	char script[128];
	char *argv[] = { (char *)"sh", (char *)"-c", script, NULL };
	_cleanup_close_ int a = -EBADF, b = -EBADF;
	struct exec_fd fds[2];
	struct exec_options opts = { .fds = fds, .n_fds = 2 };
	struct exec_result res;

	assert_int_equal(exec_memfd_new("a", "A", 1, &a), 0);
	assert_int_equal(exec_memfd_new("b", "B", 1, &b), 0);
	/* Swapped: the parent's a becomes the child's b and the other way round. */
	fds[0] = (struct exec_fd){ .fd = a, .child_fd = b };
	fds[1] = (struct exec_fd){ .fd = b, .child_fd = a };
	snprintf(script, sizeof(script), "cat /dev/fd/%d /dev/fd/%d", b, a);
	assert_int_equal(exec_run(argv, &opts, &res), 0);
	assert_string_equal(res.out, "AB");
	exec_result_done(&res);

	/* Same number in parent and child: it must lose FD_CLOEXEC in the child. */
	fds[0] = (struct exec_fd){ .fd = a, .child_fd = a };
	opts.n_fds = 1;
	snprintf(script, sizeof(script), "cat /dev/fd/%d", a);
	assert_int_equal(exec_run(argv, &opts, &res), 0);
	assert_string_equal(res.out, "A");
	exec_result_done(&res);

	/* Child numbers below 3 or duplicated are refused. */
	fds[0] = (struct exec_fd){ .fd = a, .child_fd = 1 };
	assert_int_equal(exec_run(argv, &opts, &res), -EINVAL);
	fds[0] = (struct exec_fd){ .fd = a, .child_fd = 7 };
	fds[1] = (struct exec_fd){ .fd = b, .child_fd = 7 };
	opts.n_fds = 2;
	assert_int_equal(exec_run(argv, &opts, &res), -EINVAL);
}

static void test_exec__environment_not_inherited(void **state)
{
	char *argv[] = { (char *)"env", NULL };
	char *envp[] = { (char *)EXEC_DEFAULT_PATH, (char *)"ONLY=this", NULL };
	struct exec_options opts = { .envp = envp };
	struct exec_result res;

	setenv("RBDCSI_TEST_LEAK", "leaked", 1);
	assert_int_equal(exec_run(argv, NULL, &res), 0);
	assert_string_equal(res.out, EXEC_DEFAULT_PATH "\n");
	exec_result_done(&res);

	assert_int_equal(exec_run(argv, &opts, &res), 0);
	assert_string_equal(res.out, EXEC_DEFAULT_PATH "\nONLY=this\n");
	exec_result_done(&res);
	unsetenv("RBDCSI_TEST_LEAK");
}

static void test_exec__program_lookup_uses_child_path(void **state)
{
	char *argv[] = { (char *)"no-such-program-rbdcsi", NULL };
	char *argv2[] = { (char *)"true", NULL };
	char *envp[] = { (char *)"PATH=/nonexistent", NULL };
	struct exec_options opts = { .envp = envp };
	struct exec_result res;

	assert_int_equal(exec_run(argv, NULL, &res), -ENOENT);
	/* Not found in the child's PATH, whatever the parent's PATH says. */
	assert_int_equal(exec_run(argv2, &opts, &res), -ENOENT);
	char noexec[300];
	char *argv3[] = { noexec, NULL };
	snprintf(noexec, sizeof(noexec), "%s/noexec", tmpdir);
	assert_int_equal(fileio_write_atomic(noexec, "#!/bin/sh\n", 10, 0644), 0);
	assert_int_equal(exec_run(argv3, NULL, &res), -EACCES);
	unlink(noexec);
}

static void test_exec__signals_reset_in_child(void **state)
{
	char *argv[] = { (char *)"grep", (char *)"-E", (char *)"^Sig(Blk|Ign)",
		         (char *)"/proc/self/status", NULL };
	struct exec_result res;
	sigset_t mask, old;
	struct sigaction sa = { .sa_handler = SIG_IGN }, old_sa;
	const char *ign;

	sigemptyset(&mask);
	sigaddset(&mask, SIGTERM);
	pthread_sigmask(SIG_BLOCK, &mask, &old);
	sigaction(SIGPIPE, &sa, &old_sa);
	assert_int_equal(exec_run(argv, NULL, &res), 0);
	assert_non_null(strstr(res.out, "SigBlk:\t0000000000000000"));
	/* Standard signals (1-31) must be default. glibc's posix_spawn leaves its two internal
	 * real-time signals (32, 33) ignored, which programs do not use. */
	ign = strstr(res.out, "SigIgn:\t");
	assert_non_null(ign);
	assert_int_equal(strtoull(ign + 8, NULL, 16) & 0x7fffffffULL, 0);
	exec_result_done(&res);
	sigaction(SIGPIPE, &old_sa, NULL);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
}

static void test_exec__detached_in_new_session(void **state)
{
	char *argv[] = { (char *)"sleep", (char *)"30", NULL };
	char log[300];
	struct exec_options opts = { .log_path = log };
	char **cmdline = NULL;
	pid_t pid;
	int status;

	snprintf(log, sizeof(log), "%s/detached.log", tmpdir);
	assert_int_equal(exec_spawn_detached(argv, &opts, &pid), 0);
	assert_int_equal(getsid(pid), pid);
	/* Right after exec the kernel shows an empty command line for a moment. */
	for (int i = 0; i < 100; i++) {
		assert_int_equal(exec_pid_cmdline(pid, &cmdline), 0);
		if (cmdline[0])
			break;
		cmdline = exec_strv_free(cmdline);
		usleep(1000);
	}
	assert_non_null(cmdline[0]);
	assert_string_equal(cmdline[0], "sleep");
	assert_string_equal(cmdline[1], "30");
	assert_null(cmdline[2]);
	exec_strv_free(cmdline);
	assert_int_equal(exec_pid_wait_exit(pid, 100 * USEC_PER_MSEC, NULL), -ETIMEDOUT);
	assert_int_equal(kill(pid, SIGKILL), 0);
	assert_int_equal(exec_pid_wait_exit(pid, 5 * USEC_PER_SEC, &status), 0);
	assert_int_equal(status, 128 + SIGKILL);
	/* Reaped: nothing is left. */
	assert_int_equal(exec_pid_cmdline(pid, &cmdline), -ESRCH);
}

struct thread_arg {
	int id;
	int failures;
};

static void *runner(void *p)
{
	struct thread_arg *a = p;

	for (int i = 0; i < 25; i++) {
		char expect[80], arg[64];
		char *argv[] = { (char *)"echo", arg, NULL };
		_cleanup_close_ int key = -EBADF;
		struct exec_fd fds[1];
		struct exec_options opts = { .fds = fds, .n_fds = 1 };
		struct exec_result res;

		snprintf(arg, sizeof(arg), "t%d-%d", a->id, i);
		snprintf(expect, sizeof(expect), "%s\n", arg);
		if (exec_memfd_new("k", arg, strlen(arg), &key) < 0) {
			a->failures++;
			continue;
		}
		fds[0] = (struct exec_fd){ .fd = key, .child_fd = 3 };
		if (exec_run(argv, &opts, &res) < 0) {
			a->failures++;
			continue;
		}
		if (res.exit_status != 0 || strcmp(res.out, expect) != 0)
			a->failures++;
		exec_result_done(&res);
	}
	return NULL;
}

static void test_exec__concurrent_threads(void **state)
{
	pthread_t t[8];
	struct thread_arg a[8];

	for (int i = 0; i < 8; i++) {
		a[i] = (struct thread_arg){ .id = i };
		assert_int_equal(pthread_create(&t[i], NULL, runner, &a[i]), 0);
	}
	for (int i = 0; i < 8; i++) {
		pthread_join(t[i], NULL);
		assert_int_equal(a[i].failures, 0);
	}
}

static void test_fileio__atomic_write_and_read(void **state)
{
	char path[300], dir[280];
	_cleanup_free_ char *data = NULL;
	size_t size;
	struct stat st;

	snprintf(dir, sizeof(dir), "%s/atomic", tmpdir);
	assert_int_equal(fileio_mkdir_p(dir, 0700), 0);
	snprintf(path, sizeof(path), "%s/state.json", dir);
	assert_int_equal(fileio_write_atomic(path, "{\"a\":1}", 7, 0600), 0);
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0600);
	assert_int_equal(fileio_read_full(path, 100, &data, &size), 0);
	assert_int_equal(size, 7);
	assert_string_equal(data, "{\"a\":1}");
	free(data);
	data = NULL;
	assert_int_equal(fileio_write_atomic(path, "x", 1, 0644), 0);
	assert_int_equal(fileio_read_full(path, 100, &data, NULL), 0);
	assert_string_equal(data, "x");
	assert_int_equal(fileio_read_full(path, 0, &data, NULL), -EFBIG);
	assert_int_equal(fileio_read_full("/nonexistent/x", 10, &data, NULL), -ENOENT);
	assert_int_equal(fileio_write_atomic("/nonexistent/x", "x", 1, 0600), -ENOENT);

	/* No temp file left behind. */
	char *argv[] = { (char *)"ls", (char *)"-A", dir, NULL };
	struct exec_result res;
	assert_int_equal(exec_run(argv, NULL, &res), 0);
	assert_string_equal(res.out, "state.json\n");
	exec_result_done(&res);
	unlink(path);
}

static void test_fileio__sysfs_attributes(void **state)
{
	_cleanup_free_ char *v = NULL;
	uint64_t n = 0;
	char path[300];

	assert_int_equal(fileio_read_sysfs("/sys/block/loop0/queue/logical_block_size", &v), 0);
	assert_string_equal(v, "512");
	assert_int_equal(fileio_read_sysfs_u64("/sys/block/loop0/queue/logical_block_size", &n), 0);
	assert_int_equal(n, 512);
	snprintf(path, sizeof(path), "%s/attr", tmpdir);
	assert_int_equal(fileio_write_sysfs(path, "0x1f\n", 5), -ENOENT);
	assert_int_equal(fileio_write_atomic(path, "old-longer-content", 18, 0600), 0);
	assert_int_equal(fileio_write_sysfs(path, "0x1f\n", 5), 0);
	assert_int_equal(fileio_read_sysfs_u64(path, &n), 0);
	assert_int_equal(n, 0x1f);
	unlink(path);
}

static void test_fileio__mkdir_p(void **state)
{
	char path[300];
	struct stat st;

	snprintf(path, sizeof(path), "%s/a/b/c", tmpdir);
	assert_int_equal(fileio_mkdir_p(path, 0700), 0);
	assert_int_equal(fileio_mkdir_p(path, 0700), 0);
	assert_int_equal(stat(path, &st), 0);
	assert_true(S_ISDIR(st.st_mode));
	assert_int_equal(fileio_mkdir_p("/etc/hostname/x", 0700), -ENOTDIR);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_exec__captures_stdout_stderr_and_status),
		cmocka_unit_test(test_exec__timeout_kills_process_group),
		cmocka_unit_test(test_exec__stdin_data),
		cmocka_unit_test(test_exec__output_is_bounded),
		cmocka_unit_test(test_exec__extra_fd_memfd_and_no_leaks),
		cmocka_unit_test(test_exec__extra_fd_same_number_and_swapped),
		cmocka_unit_test(test_exec__environment_not_inherited),
		cmocka_unit_test(test_exec__program_lookup_uses_child_path),
		cmocka_unit_test(test_exec__signals_reset_in_child),
		cmocka_unit_test(test_exec__detached_in_new_session),
		cmocka_unit_test(test_exec__concurrent_threads),
		cmocka_unit_test(test_fileio__atomic_write_and_read),
		cmocka_unit_test(test_fileio__sysfs_attributes),
		cmocka_unit_test(test_fileio__mkdir_p),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
