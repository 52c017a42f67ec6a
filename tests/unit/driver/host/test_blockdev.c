/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Tests of driver/host/blockdev.c: libblkid probing of files pre-filled with ext4, xfs, swap,
 * a LUKS header, partition tables (GPT via parted, and a hand-made MBR), on image files and on
 * loop devices.
 */
#include "unit/driver/host/host_test.h"
#include "driver/host/blockdev.h"

#define MiB (1024ULL * 1024ULL)

static void expect_types(const char *path, const char *want)
{
	_cleanup_free_ char *types = NULL;

	assert_int_equal(blockdev_probe(path, &types), 0);
	assert_string_equal(types, want);
}

static void test_blockdev__blank_is_none(void **state)
{
	char file[PATH_MAX];

	ht_sparse_file(state, "blank.img", 64 * MiB, file, sizeof(file));
	expect_types(file, "none");
	assert_true(blockdev_types_blank("none"));
	assert_false(blockdev_types_blank("ext4"));
}

static void test_blockdev__ext4(void **state)
{
	char file[PATH_MAX];

	ht_sparse_file(state, "ext4.img", 64 * MiB, file, sizeof(file));
	assert_int_equal(ht_run("mkfs.ext4", "-q", "-F", file, NULL), 0);
	expect_types(file, "ext4");
}

static void test_blockdev__xfs(void **state)
{
	char file[PATH_MAX];

	ht_sparse_file(state, "xfs.img", 320 * MiB, file, sizeof(file));
	assert_int_equal(ht_run("mkfs.xfs", "-q", file, NULL), 0);
	expect_types(file, "xfs");
}

static void test_blockdev__swap(void **state)
{
	char file[PATH_MAX];

	ht_sparse_file(state, "swap.img", 16 * MiB, file, sizeof(file));
	assert_int_equal(ht_run("mkswap", file, NULL), 0);
	expect_types(file, "swap");
}

static void test_blockdev__luks_header(void **state)
{
	/* A LUKS1 header as cryptsetup writes it: magic "LUKS\xba\xbe", version 1, cipher,
	 * mode, hash, payload offset, key bytes, digest, salt, iterations, UUID. libblkid
	 * checks the magic and version only. Written by hand: cryptsetup may be missing. */
	static const unsigned char magic[] = { 'L', 'U', 'K', 'S', 0xba, 0xbe, 0x00, 0x01 };
	char file[PATH_MAX];
	char hdr[592] = { 0 };
	int fd;

	ht_sparse_file(state, "luks.img", 16 * MiB, file, sizeof(file));
	memcpy(hdr, magic, sizeof(magic));
	memcpy(hdr + 8, "aes", 3);
	memcpy(hdr + 40, "xts-plain64", 11);
	memcpy(hdr + 72, "sha256", 6);
	memcpy(hdr + 168, "2d8e3b79-8b4a-4c2f-9b59-8f3b8a0c6f11", 36);
	fd = open(file, O_WRONLY | O_CLOEXEC);
	assert_true(fd >= 0);
	assert_int_equal(pwrite(fd, hdr, sizeof(hdr), 0), (ssize_t)sizeof(hdr));
	close(fd);
	expect_types(file, "crypto_LUKS");
}

static void test_blockdev__luks_by_cryptsetup(void **state)
{
	char file[PATH_MAX], keyfile[PATH_MAX];
	_cleanup_free_ char *path = NULL;

	if (exec_find_program("cryptsetup", NULL, &path) < 0) {
		print_message(
		        "skipped: cryptsetup not installed (the hand-made header is tested)\n");
		skip();
	}
	ht_sparse_file(state, "luks2.img", 32 * MiB, file, sizeof(file));
	snprintf(keyfile, sizeof(keyfile), "%s/pass", ht_dir(state));
	assert_int_equal(fileio_write_atomic(keyfile, "passphrase", 10, 0600), 0);
	assert_int_equal(ht_run("cryptsetup", "luksFormat", "-q", "--type", "luks2", "--pbkdf",
	                        "pbkdf2", "--pbkdf-force-iterations", "1000", "--key-file", keyfile,
	                        file, NULL),
	                 0);
	expect_types(file, "crypto_LUKS");
}

static void test_blockdev__gpt_partition_table(void **state)
{
	char file[PATH_MAX];

	ht_sparse_file(state, "gpt.img", 64 * MiB, file, sizeof(file));
	assert_int_equal(ht_run("parted", "-s", file, "mklabel", "gpt", NULL), 0);
	expect_types(file, "gpt");
	/* A partition in it does not change what the whole device carries. */
	assert_int_equal(
	        ht_run("parted", "-s", file, "mkpart", "p1", "ext4", "1MiB", "32MiB", NULL), 0);
	expect_types(file, "gpt");
}

static void test_blockdev__mbr_by_hand(void **state)
{
	char file[PATH_MAX];
	unsigned char mbr[512] = { 0 };
	int fd;

	ht_sparse_file(state, "mbr.img", 16 * MiB, file, sizeof(file));
	/* One Linux partition from sector 2048, 8192 sectors; boot signature 0x55aa. */
	mbr[446 + 4] = 0x83;
	mbr[446 + 8] = 0x00;
	mbr[446 + 9] = 0x08;  /* LBA start 2048, little endian */
	mbr[446 + 13] = 0x20; /* 8192 sectors */
	mbr[440] = 0x12;      /* disk signature */
	mbr[510] = 0x55;
	mbr[511] = 0xaa;
	fd = open(file, O_WRONLY | O_CLOEXEC);
	assert_true(fd >= 0);
	assert_int_equal(pwrite(fd, mbr, sizeof(mbr), 0), 512);
	close(fd);
	expect_types(file, "dos");
}

static void test_blockdev__loop_device_and_size(void **state)
{
	char file[PATH_MAX];
	_cleanup_free_ char *dev = NULL;
	uint64_t size;

	REQUIRE_ROOT();
	ht_sparse_file(state, "dev.img", 48 * MiB, file, sizeof(file));
	assert_int_equal(loop_attach(file, false, &dev), 0);
	expect_types(dev, "none");
	assert_int_equal(ht_run("mkswap", dev, NULL), 0);
	expect_types(dev, "swap");
	assert_int_equal(blockdev_get_size(dev, &size), 0);
	assert_int_equal(size, 48 * MiB);
	assert_int_equal(blockdev_get_size(file, &size), 0);
	assert_int_equal(size, 48 * MiB);
	assert_int_equal(blockdev_get_size("/dev/null", &size), -ENOTBLK);
	assert_int_equal(blockdev_probe("/nonexistent", &dev), -ENOENT);
	assert_int_equal(loop_detach(dev), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		HOST_TEST(test_blockdev__blank_is_none),
		HOST_TEST(test_blockdev__ext4),
		HOST_TEST(test_blockdev__xfs),
		HOST_TEST(test_blockdev__swap),
		HOST_TEST(test_blockdev__luks_header),
		HOST_TEST(test_blockdev__luks_by_cryptsetup),
		HOST_TEST(test_blockdev__gpt_partition_table),
		HOST_TEST(test_blockdev__mbr_by_hand),
		HOST_TEST(test_blockdev__loop_device_and_size),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
