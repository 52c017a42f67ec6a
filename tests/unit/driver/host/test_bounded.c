/* SPDX-License-Identifier: Apache-2.0 */
/* Tests of driver/host/bounded.c: a call that blocks is abandoned in time, aborts unblock it. */
#include <fcntl.h>
#include <poll.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "driver/base/exec.h"
#include "driver/base/macro.h"
#include "driver/base/monotonic.h"
#include "driver/host/bounded.h"

struct arg {
	int fd; /* read end: blocks until written or closed */
	int out;
};

static int blocking_read(void *p)
{
	struct arg *a = p;
	char c;
	ssize_t n = read(a->fd, &c, 1);

	a->out = (int)n;
	return n < 0 ? -EIO : 7;
}

static void unblock(void *p)
{
	int *wfd = p;

	(void)!write(*wfd, "x", 1);
}

static void test_bounded__fast_call_returns_result_and_copies_back(void **state)
{
	int fds[2];
	struct arg a;
	bool aborted = true;

	assert_int_equal(pipe2(fds, O_CLOEXEC), 0);
	assert_int_equal(write(fds[1], "x", 1), 1);
	a = (struct arg){ .fd = fds[0], .out = -5 };
	assert_int_equal(
	        bounded_call(blocking_read, &a, sizeof(a), USEC_PER_SEC, NULL, NULL, 0, &aborted),
	        7);
	assert_false(aborted);
	assert_int_equal(a.out, 1);
	close(fds[0]);
	close(fds[1]);
}

static void test_bounded__abort_unblocks(void **state)
{
	int fds[2];
	struct arg a;
	bool aborted = false;
	uint64_t t0 = monotonic_usec();

	assert_int_equal(pipe2(fds, O_CLOEXEC), 0);
	a = (struct arg){ .fd = fds[0] };
	assert_int_equal(bounded_call(blocking_read, &a, sizeof(a), 200 * USEC_PER_MSEC, unblock,
	                              &fds[1], USEC_PER_SEC, &aborted),
	                 7);
	assert_true(aborted);
	assert_true(monotonic_usec() - t0 >= 200 * USEC_PER_MSEC);
	assert_true(monotonic_usec() - t0 < USEC_PER_SEC);
	close(fds[0]);
	close(fds[1]);
}

static void test_bounded__stuck_call_is_abandoned(void **state)
{
	int fds[2];
	struct arg a;
	bool aborted = true;
	uint64_t t0 = monotonic_usec();

	assert_int_equal(pipe2(fds, O_CLOEXEC), 0);
	a = (struct arg){ .fd = fds[0] };
	assert_int_equal(bounded_call(blocking_read, &a, sizeof(a), 100 * USEC_PER_MSEC, NULL, NULL,
	                              100 * USEC_PER_MSEC, &aborted),
	                 -ETIMEDOUT);
	assert_false(aborted);
	assert_true(monotonic_usec() - t0 < USEC_PER_SEC);
	/* Let the abandoned thread finish (it frees its own state). */
	assert_int_equal(write(fds[1], "x", 1), 1);
	usleep(50000);
	close(fds[0]);
	close(fds[1]);
	assert_int_equal(bounded_call(NULL, NULL, 0, 1, NULL, NULL, 0, NULL), -EINVAL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_bounded__fast_call_returns_result_and_copies_back),
		cmocka_unit_test(test_bounded__abort_unblocks),
		cmocka_unit_test(test_bounded__stuck_call_is_abandoned),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
