/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Tests of driver/host/crypt.c (LUKS2 through libcryptsetup) on a loop device or a plain file.
 * Formatting and key checks need no device-mapper and run everywhere; opening, closing and
 * resizing need dm-crypt (device-mapper in /proc/misc): they skip where it is missing (this host)
 * and run in the check-kernel guest (tests/kernel/guest-run.sh runs this binary there).
 */
#include "unit/driver/host/host_test.h"
#include "driver/host/blockdev.h"
#include "driver/host/crypt.h"

#define MiB (1024ULL * 1024ULL)

static const char key[] = "a-data-key-of-some-length-0123456789abcdef";
static const char wrong[] = "a-data-key-of-some-length-0123456789abcdeX";
static const struct luks_options fast = { .fast_pbkdf = true };

/* Whether the bytes of needle occur anywhere in the file. */
static bool file_contains(const char *path, const void *needle, size_t n)
{
	_cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC);
	static char buf[1 << 20];
	size_t have = 0;
	ssize_t k;

	assert_true(fd >= 0);
	for (;;) {
		k = read(fd, buf + have, sizeof(buf) - have);
		assert_true(k >= 0);
		if (k == 0)
			return false;
		have += (size_t)k;
		if (memmem(buf, have, needle, n))
			return true;
		/* keep the last n - 1 bytes: a match may straddle two reads */
		if (have >= n) {
			memmove(buf, buf + have - (n - 1), n - 1);
			have = n - 1;
		}
	}
}

static void test_crypt__format_only_once_and_check_keys(void **state)
{
	char file[PATH_MAX];
	char magic[6] = { 0 };
	_cleanup_close_ int fd = -EBADF;

	ht_sparse_file(state, "img", 32 * MiB, file, sizeof(file));
	assert_int_equal(luks_is_luks(file), 0);
	assert_int_equal(luks_check_key(file, key, strlen(key)), -EINVAL); /* not LUKS */
	assert_int_equal(luks_format(file, key, 0, &fast), -EINVAL);
	assert_int_equal(luks_format(file, key, strlen(key), &fast), 0);
	assert_int_equal(luks_is_luks(file), 1);
	fd = open(file, O_RDONLY | O_CLOEXEC);
	assert_true(fd >= 0);
	assert_int_equal(read(fd, magic, sizeof(magic)), (ssize_t)sizeof(magic));
	assert_memory_equal(magic, "LUKS\xba\xbe", 6);
	assert_int_equal(magic[5], (char)0xbe);
	/* The header identifies as LUKS2 to libblkid too: stage would never mkfs over it. */
	{
		_cleanup_free_ char *types = NULL;

		assert_int_equal(blockdev_probe(file, &types), 0);
		assert_non_null(strstr(types, "crypto_LUKS"));
	}
	assert_int_equal(luks_check_key(file, key, strlen(key)), 0);
	assert_int_equal(luks_check_key(file, wrong, strlen(wrong)), -EPERM);
	/* Never formatted twice: the keyslot (and the data) stay. */
	assert_int_equal(luks_format(file, wrong, strlen(wrong), &fast), -EEXIST);
	assert_int_equal(luks_check_key(file, key, strlen(key)), 0);
	/* The key itself is nowhere in the header. */
	assert_false(file_contains(file, key, strlen(key)));
}

static void test_crypt__bad_names_refused(void **state)
{
	char *path = NULL;

	(void)state;
	assert_int_equal(luks_open("/nonexistent", "", key, strlen(key), &path), -EINVAL);
	assert_int_equal(luks_open("/nonexistent", "../x", key, strlen(key), &path), -EINVAL);
	assert_int_equal(luks_open("/nonexistent", "a/b", key, strlen(key), &path), -EINVAL);
	assert_int_equal(luks_close("a b"), -EINVAL);
	assert_int_equal(luks_resize("..", key, strlen(key)), -EINVAL);
	assert_null(path);
}

static void test_crypt__open_write_close_reopen_resize(void **state)
{
	char file[PATH_MAX], name[64];
	_cleanup_free_ char *loopdev = NULL, *path = NULL, *path2 = NULL;
	static char data[MiB], back[MiB];
	uint64_t size0 = 0, size1 = 0;
	int fd;

	/* /dev/mapper/control may exist without the driver behind it (this host): ask the
	 * kernel's list of misc devices. */
	if (!file_contains("/proc/misc", "device-mapper", 13)) {
		print_message(
		        "skipped: no device-mapper on this host (runs in make check-kernel)\n");
		skip();
	}
	ht_sparse_file(state, "img", 32 * MiB, file, sizeof(file));
	assert_int_equal(loop_attach(file, false, &loopdev), 0);
	assert_int_equal(luks_format(loopdev, key, strlen(key), &fast), 0);
	snprintf(name, sizeof(name), "rbdcsi-test-%d", (int)getpid());

	assert_int_equal(luks_open(loopdev, name, wrong, strlen(wrong), &path), -EPERM);
	assert_int_equal(luks_open(loopdev, name, key, strlen(key), &path), 0);
	assert_int_equal(luks_open(loopdev, name, key, strlen(key), &path2), 0); /* idempotent */
	assert_string_equal(path, path2);
	assert_int_equal(blockdev_get_size(path, &size0), 0);
	assert_true(size0 > 0 && size0 < 32 * MiB); /* minus the LUKS2 header */

	memset(data, 'P', sizeof(data)); /* a plaintext easy to look for */
	fd = open(path, O_WRONLY | O_CLOEXEC);
	assert_true(fd >= 0);
	assert_int_equal(pwrite(fd, data, sizeof(data), 0), (ssize_t)sizeof(data));
	assert_int_equal(fsync(fd), 0);
	close(fd);

	/* Grow the backing device, then the mapping follows. */
	assert_int_equal(truncate(file, 64 * MiB), 0);
	assert_int_equal(loop_refresh_capacity(loopdev), 0);
	assert_int_equal(luks_resize(name, key, strlen(key)), 0);
	assert_int_equal(blockdev_get_size(path, &size1), 0);
	assert_int_equal(size1, size0 + 32 * MiB);

	assert_int_equal(luks_close(name), 0);
	assert_int_equal(luks_close(name), 0); /* idempotent */
	assert_int_equal(access(path, F_OK), -1);
	/* The raw device holds no plaintext. */
	{
		char block[4096];

		memset(block, 'P', sizeof(block));
		assert_false(file_contains(file, block, sizeof(block)));
	}
	/* Reopened with the key, the data is back. */
	free(path);
	path = NULL;
	assert_int_equal(luks_open(loopdev, name, key, strlen(key), &path), 0);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	assert_true(fd >= 0);
	assert_int_equal(pread(fd, back, sizeof(back), 0), (ssize_t)sizeof(back));
	close(fd);
	assert_memory_equal(back, data, sizeof(data));
	/* Busy: open elsewhere, close refuses and keeps the mapping. */
	fd = open(path, O_RDONLY | O_CLOEXEC);
	assert_true(fd >= 0);
	assert_int_equal(luks_close(name), -EBUSY);
	close(fd);
	assert_int_equal(luks_close(name), 0);
	assert_int_equal(loop_detach(loopdev), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		HOST_TEST(test_crypt__format_only_once_and_check_keys),
		HOST_TEST(test_crypt__bad_names_refused),
		HOST_TEST(test_crypt__open_write_close_reopen_resize),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
