/* SPDX-License-Identifier: Apache-2.0 */
/* Unit tests of plugin/endpoint.c and plugin/locks.c. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cmocka.h>

#include "driver/base/macro.h"
#include "plugin/endpoint.h"
#include "plugin/locks.h"

static void test_endpoint__parse(void **state)
{
	char *p = NULL;
	char longp[200];

	(void)state;
	assert_int_equal(endpoint_parse("unix:///csi/csi.sock", &p), 0);
	assert_string_equal(p, "/csi/csi.sock");
	free(p);
	assert_int_equal(endpoint_parse("unix:/a/b.sock", &p), 0);
	assert_string_equal(p, "/a/b.sock");
	free(p);
	assert_int_equal(endpoint_parse("/a/c.sock", &p), 0);
	free(p);
	assert_int_equal(endpoint_parse("tcp://1.2.3.4:5", &p), -EINVAL);
	assert_int_equal(endpoint_parse("unix://relative", &p), -EINVAL);
	assert_int_equal(endpoint_parse("unix:///a/../b", &p), -EINVAL);
	assert_int_equal(endpoint_parse("", &p), -EINVAL);
	memset(longp, 'a', sizeof(longp));
	longp[0] = '/';
	longp[sizeof(longp) - 1] = 0;
	assert_int_equal(endpoint_parse(longp, &p), -ENAMETOOLONG);
}

static void test_endpoint__lock_excludes_second_holder_and_removes_stale_socket(void **state)
{
	char dir[] = "/tmp/rbdcsi-test-ep.XXXXXX";
	char sock[96], lockp[128];
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	int fd1 = -1, fd2 = -1, s;

	(void)state;
	assert_non_null(mkdtemp(dir));
	snprintf(sock, sizeof(sock), "%s/csi.sock", dir);
	snprintf(lockp, sizeof(lockp), "%s.lock", sock);
	/* A stale socket from a crashed instance. */
	s = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", sock);
	assert_int_equal(bind(s, (struct sockaddr *)&sa, sizeof(sa)), 0);
	close(s);

	assert_int_equal(endpoint_lock(sock, &fd1), 0);
	assert_int_equal(access(sock, F_OK), -1); /* stale socket removed */
	assert_int_equal(endpoint_lock(sock, &fd2), -EADDRINUSE);
	endpoint_release(sock, fd1);
	assert_int_equal(access(lockp, F_OK), -1);

	/* A regular file is never replaced. */
	close(open(sock, O_CREAT | O_WRONLY | O_CLOEXEC, 0600));
	assert_int_equal(endpoint_lock(sock, &fd1), -EEXIST);
	unlink(sock);
	unlink(lockp);
	rmdir(dir);
}

static void test_endpoint__listen_creates_the_socket_with_its_final_mode(void **state)
{
	char dir[] = "/tmp/rbdcsi-test-listen.XXXXXX";
	char path[64];
	struct stat st;
	mode_t old;
	int fd = -1, c, r;
	struct sockaddr_un sa = { .sun_family = AF_UNIX };

	(void)state;
	assert_non_null(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/csi.sock", dir);
	old = umask(0);
	r = endpoint_listen(path, 0640, &fd);
	umask(old);
	assert_int_equal(r, 0);
	assert_int_equal(lstat(path, &st), 0);
	assert_true(S_ISSOCK(st.st_mode));
	assert_int_equal(st.st_mode & 07777, 0640);
	/* It listens under its name, and the private directory is gone. */
	memcpy(sa.sun_path, path, strlen(path) + 1);
	c = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	assert_int_equal(connect(c, (struct sockaddr *)&sa, sizeof(sa)), 0);
	close(c);
	assert_true(fcntl(fd, F_GETFL) & O_NONBLOCK);
	close(fd);
	assert_int_equal(unlink(path), 0);
	assert_int_equal(rmdir(dir), 0); /* fails if anything was left in it */
}

static void test_locks__second_holder_is_refused(void **state)
{
	struct locks *l = locks_new();
	const char *holder = NULL;
	uint64_t age = 0;

	(void)state;
	assert_int_equal(locks_try(l, "volume:a", "CreateVolume", NULL, NULL), 0);
	assert_int_equal(locks_try(l, "volume:a", "DeleteVolume", &holder, &age), -EAGAIN);
	assert_string_equal(holder, "CreateVolume");
	assert_int_equal(locks_try(l, "volume:b", "DeleteVolume", NULL, NULL), 0);
	assert_int_equal(locks_count(l), 2);
	locks_release(l, "volume:a");
	locks_release(l, "volume:zzz");
	assert_int_equal(locks_try(l, "volume:a", "DeleteVolume", NULL, NULL), 0);
	locks_free(l);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_endpoint__parse),
		cmocka_unit_test(
		        test_endpoint__lock_excludes_second_holder_and_removes_stale_socket),
		cmocka_unit_test(test_endpoint__listen_creates_the_socket_with_its_final_mode),
		cmocka_unit_test(test_locks__second_holder_is_refused),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
