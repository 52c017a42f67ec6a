/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Tests of driver/host/options.c (mkfs, map and unmap option allowlists), of the Ceph name
 * check and the key memfd of driver/host/mapper.c, and of fs_format() refusing what the
 * allowlist refuses before anything runs (root: loop, mkfs).
 */
#include <sys/wait.h>

#include "unit/driver/host/host_test.h"
#include "driver/host/blockdev.h"
#include "driver/host/fs.h"
#include "driver/host/mapper.h"
#include "driver/host/options.h"

#define MiB (1024ULL * 1024ULL)

static void mkfs_ok(const char *fstype, const char *opts)
{
	_cleanup_free_ char *reason = NULL;
	int r = options_mkfs_check(fstype, opts, &reason);

	if (r != 0)
		print_message("%s '%s' refused: %s\n", fstype, opts, strempty(reason));
	assert_int_equal(r, 0);
}

/* Refused, with a reason that contains want. */
static void mkfs_refused(const char *fstype, const char *opts, const char *want)
{
	_cleanup_free_ char *reason = NULL;

	assert_int_equal(options_mkfs_check(fstype, opts, &reason), -EINVAL);
	assert_non_null(reason);
	if (!strstr(reason, want))
		print_message("%s '%s': reason '%s' lacks '%s'\n", fstype, opts, reason, want);
	assert_non_null(strstr(reason, want));
}

static void test_options__mkfs_ext4_allowlist(void **state)
{
	mkfs_ok("ext4", NULL);
	mkfs_ok("ext4", "");
	mkfs_ok("ext4", " -L   mylabel -b 4096 ");
	mkfs_ok("ext4", "-m0 -Lname -qL name -I 256 -i 16384 -N 1000 -j -D -v");
	mkfs_ok("ext4",
	        "-E stride=4,stripe_width=8,nodiscard,lazy_itable_init=1,lazy_journal_init");
	mkfs_ok("ext4", "-O ^has_journal,metadata_csum,64bit -J size=64 -e remount-ro -U random");
	mkfs_ok("ext4", "-Equotatype=usrquota:grpquota -m 0.5 -C 16384 -g 8192 -G 4");

	/* The reported hole: copies the node's /etc (cwd "/") into the volume. */
	mkfs_refused("ext4", "-d etc", "'-d' not allowed");
	mkfs_refused("ext4", "-detc", "'-d' not allowed");
	mkfs_refused("ext4", "-qd etc", "'-d' not allowed"); /* getopt cluster */
	mkfs_refused("ext4", "-L x -d etc", "'-d' not allowed");
	/* Other options that read or write files of the node. */
	mkfs_refused("ext4", "-l badblocks.txt", "'-l' not allowed");
	mkfs_refused("ext4", "-c", "'-c' not allowed");
	mkfs_refused("ext4", "-z undo", "'-z' not allowed");
	mkfs_refused("ext4", "-J device=UUID=abc", "'-J device' not allowed");
	mkfs_refused("ext4", "-J location=100", "'-J location' not allowed");
	mkfs_refused("ext4", "-E root_owner=0:0", "'-E root_owner' not allowed");
	mkfs_refused("ext4", "-E nodiscard,offset=4096", "'-E offset' not allowed");
	mkfs_refused("ext4", "-E android_sparse", "'-E android_sparse' not allowed");
	/* Force, dry run, superblock only, other types. */
	mkfs_refused("ext4", "-F", "'-F' not allowed");
	mkfs_refused("ext4", "-S", "'-S' not allowed");
	mkfs_refused("ext4", "-n", "'-n' not allowed");
	mkfs_refused("ext4", "-t ext2", "'-t' not allowed");
	mkfs_refused("ext4", "-T news", "'-T' not allowed");
	mkfs_refused("ext4", "-O journal_dev", "feature 'journal_dev' not allowed");
	mkfs_refused("ext4", "-e panic", "'-e': invalid value");
	/* Operands and long options. */
	mkfs_refused("ext4", "/dev/vda", "mkfs option '/dev/vda' not allowed");
	mkfs_refused("ext4", "-- x", "mkfs option '--' not allowed");
	mkfs_refused("ext4", "--help", "mkfs option '--help' not allowed");
	mkfs_refused("ext4", "-b 4096 1000", "mkfs option '1000' not allowed"); /* fs-size */
	/* Values. */
	mkfs_refused("ext4", "-L", "'-L' needs a value");
	mkfs_refused("ext4", "-L -d", "'-L' needs a value");
	mkfs_refused("ext4", "-L a/b", "'-L': invalid value");
	mkfs_refused("ext4", "-b 4k", "'-b': invalid value");
	mkfs_refused("ext4", "-E stride", "'-E stride': invalid value");
	mkfs_refused("ext4", "-E stride=../x", "'-E stride': invalid value");
	mkfs_refused("ext4", "-E nodiscard=1", "'-E nodiscard': invalid value");
	/* xfs options are not ext4's. */
	mkfs_refused("ext4", "-K", "'-K' not allowed");
	mkfs_refused("btrfs", "", "unsupported filesystem type 'btrfs'");
}

static void test_options__mkfs_xfs_allowlist(void **state)
{
	mkfs_ok("xfs", "-b size=4096 -m crc=1,reflink=1,finobt=1,bigtime=1 -i size=512");
	mkfs_ok("xfs", "-l size=16m,su=64k -d su=64k,sw=4,agcount=4 -L lbl -K -q -n ftype=1");
	mkfs_ok("xfs", "-dagcount=8 -ssize=4096");

	mkfs_refused("xfs", "-p proto", "'-p' not allowed");
	mkfs_refused("xfs", "-d file=1,name=img", "'-d file' not allowed");
	mkfs_refused("xfs", "-d su=64k,name=img", "'-d name' not allowed");
	mkfs_refused("xfs", "-l logdev=dev", "'-l logdev' not allowed");
	mkfs_refused("xfs", "-c options=cfg", "'-c' not allowed");
	mkfs_refused("xfs", "-r rtdev=dev", "'-r' not allowed");
	mkfs_refused("xfs", "-f", "'-f' not allowed");
	mkfs_refused("xfs", "-N", "'-N' not allowed");
	mkfs_refused("xfs", "-Kf", "'-f' not allowed");
	mkfs_refused("xfs", "-m crc", "'-m crc': invalid value");
	mkfs_refused("xfs", "-E nodiscard", "'-E' not allowed");
}

/* A loop device on a sparse file of size bytes. */
static char *loop_on(void **state, const char *name, uint64_t size)
{
	char file[PATH_MAX];
	char *dev = NULL;

	ht_sparse_file(state, name, size, file, sizeof(file));
	assert_int_equal(loop_attach(file, false, &dev), 0);
	return dev;
}

/* fs_format() refuses before running mkfs: the device stays blank. */
static void test_options__format_refuses_file_options(void **state)
{
	static const char *const bad[][2] = {
		{ "ext4", "-d etc" },     { "ext4", "-qdetc" },      { "ext4", "-z undo" },
		{ "ext4", "-l bad" },     { "xfs", "-p proto" },     { "xfs", "-d name=x" },
		{ "xfs", "-l logdev=x" }, { "xfs", "-c options=x" },
	};
	_cleanup_free_ char *dev = NULL;

	REQUIRE_ROOT();
	dev = loop_on(state, "a.img", 320 * MiB);
	for (size_t i = 0; i < ELEMENTSOF(bad); i++) {
		_cleanup_free_ char *reason = NULL, *types = NULL;

		assert_int_equal(fs_format(dev, bad[i][0], bad[i][1], 0, &reason), -EINVAL);
		assert_non_null(strstr(reason, "not allowed"));
		assert_int_equal(blockdev_probe(dev, &types), 0);
		assert_true(blockdev_types_blank(types));
	}
	assert_int_equal(loop_detach(dev), 0);
}

static void map_refused(enum mapper_type t, const char *opts, const char *want)
{
	_cleanup_free_ char *reason = NULL;

	assert_int_equal(options_map_check(t, opts, &reason), -EINVAL);
	if (!strstr(reason, want))
		print_message("'%s': reason '%s' lacks '%s'\n", opts, reason, want);
	assert_non_null(strstr(reason, want));
}

static void test_options__map_allowlists(void **state)
{
	_cleanup_free_ char *reason = NULL;

	assert_int_equal(options_map_check(MAPPER_KRBD, "lock_on_read,queue_depth=128", NULL), 0);
	assert_int_equal(options_map_check(MAPPER_KRBD, "ms_mode=prefer-crc,notrim", NULL), 0);
	assert_int_equal(options_map_check(MAPPER_NBD, "try-netlink,reattach-timeout=300", NULL),
	                 0);
	assert_int_equal(options_map_check(MAPPER_NBD, "io_timeout=30,exclusive", NULL), 0);
	assert_int_equal(options_map_check(MAPPER_FUSE, NULL, NULL), 0);

	map_refused(MAPPER_KRBD, "secret=other", "krbd: map option 'secret' is not allowed");
	map_refused(MAPPER_KRBD, "name=admin", "'name' is not allowed");
	map_refused(MAPPER_KRBD, "rw", "'rw' is not allowed");
	map_refused(MAPPER_KRBD, "queue_depth", "'queue_depth': invalid value");
	map_refused(MAPPER_KRBD, "queue_depth=1 2", "'queue_depth': invalid value");
	/* rbd-nbd: Ceph's parser reads '_' as '-': both spellings of each are refused. */
	map_refused(MAPPER_NBD, "log_file=x", "nbd: map option 'log_file' is not allowed");
	map_refused(MAPPER_NBD, "log-file=x", "'log-file' is not allowed");
	map_refused(MAPPER_NBD, "admin_socket=x", "'admin_socket' is not allowed");
	map_refused(MAPPER_NBD, "admin-socket=x", "'admin-socket' is not allowed");
	map_refused(MAPPER_NBD, "keyring=x", "'keyring' is not allowed");
	map_refused(MAPPER_NBD, "conf=x", "'conf' is not allowed");
	map_refused(MAPPER_NBD, "id=admin", "'id' is not allowed");
	map_refused(MAPPER_NBD, "device=x", "'device' is not allowed");
	map_refused(MAPPER_NBD, "quiesce-hook=x", "'quiesce-hook' is not allowed");
	map_refused(MAPPER_NBD, "io-timeout=../x", "'io-timeout': invalid value");
	map_refused(MAPPER_NBD, "io_timeout=30admin-socket", "'io_timeout': invalid value");
	map_refused(MAPPER_KRBD, "queue_depth=abc", "'queue_depth': invalid value");
	map_refused(MAPPER_FUSE, "x", "fuse: map option 'x' is not allowed");
	map_refused(MAPPER_KRBD, "a,b,c,d,e,f,g,h,i,j,k,l,m,n,o,p,q", "more than 16");

	assert_int_equal(options_unmap_check(MAPPER_KRBD, "force", NULL), 0);
	assert_int_equal(options_unmap_check(MAPPER_KRBD, "lazy", &reason), -EINVAL);
	assert_string_equal(reason, "krbd: unmap option 'lazy' is not allowed");
	assert_int_equal(options_unmap_check(MAPPER_NBD, "force", NULL), -EINVAL);

	/* Every part of a ceph-csi style value, whatever mapper the volume ends up with. */
	assert_int_equal(options_map_all_check("lock_on_read;nbd:try-netlink", false, NULL), 0);
	assert_int_equal(options_map_all_check("krbd:lock_on_read;nbd:log_file=x", false, &reason),
	                 -EINVAL);
	assert_string_equal(reason, "nbd: map option 'log_file' is not allowed");
	assert_int_equal(options_map_all_check("bogus:x", false, NULL), -EINVAL);
	assert_int_equal(options_map_all_check("krbd:force", true, NULL), 0);
	assert_int_equal(options_map_all_check("fuse:x", true, NULL), -EINVAL);
}

static void test_options__nbd_args_canonical(void **state)
{
	char **args = NULL;

	assert_int_equal(options_nbd_args("io_timeout=30,try_netlink,exclusive", &args, NULL), 0);
	assert_string_equal(args[0], "--io-timeout=30");
	assert_string_equal(args[1], "--try-netlink");
	assert_string_equal(args[2], "--exclusive");
	assert_null(args[3]);
	exec_strv_free(args);
	args = NULL;
	assert_int_equal(options_nbd_args(NULL, &args, NULL), 0);
	assert_null(args[0]);
	exec_strv_free(args);
	assert_int_equal(options_nbd_args("log_file=x", &args, NULL), -EINVAL);
}

static struct mapper_params params(void)
{
	return (struct mapper_params){
		.monitors = "127.0.0.1:6789",
		.user = "csi",
		.key = "AQBzZmFrZWtleWZha2VrZXlmYWtla2V5ZmFrZQ==",
		.pool = "rbd",
		.image = "img",
	};
}

static void test_options__ceph_names(void **state)
{
	static const char *const bad[] = { "--id=admin", "-c", "-", "a=b",  "a b",  "a/b",
		                           "a@s",        "..", ".", "a\tb", "a\nb", "" };
	char longname[MAPPER_NAME_MAX + 2];

	assert_true(mapper_name_valid("rbd"));
	assert_true(mapper_name_valid("csi-vol-0a1b"));
	assert_true(mapper_name_valid("a-"));
	for (size_t i = 0; i < ELEMENTSOF(bad); i++) {
		struct mapper_params p = params();
		_cleanup_free_ char *reason = NULL;

		assert_false(mapper_name_valid(bad[i]));
		p.image = bad[i];
		assert_int_equal(mapper_params_validate(&p, &reason), -EINVAL);
		assert_string_equal(reason, "invalid image name");
		p = params();
		p.pool = bad[i];
		assert_int_equal(mapper_params_validate(&p, NULL), -EINVAL);
	}
	memset(longname, 'a', sizeof(longname) - 1);
	longname[sizeof(longname) - 1] = 0;
	assert_false(mapper_name_valid(longname));
	assert_false(mapper_name_valid(NULL));
}

static void test_options__ceph_argv_has_no_names(void **state)
{
	struct mapper_params p = params();
	char *argv[MAPPER_CEPH_ARGV_MAX + 1];
	size_t n;

	n = mapper_ceph_argv(argv, "rbd-fuse", &p, "--log-file=x");
	assert_int_equal(n, MAPPER_CEPH_ARGV_MAX);
	argv[n] = NULL;
	assert_string_equal(argv[0], "rbd-fuse");
	assert_string_equal(argv[1], "-c");
	assert_string_equal(argv[2], "/dev/null");
	for (size_t i = 0; i < n; i++) {
		assert_null(strstr(argv[i], p.key));
		assert_false(strcmp(argv[i], p.pool) == 0 || strcmp(argv[i], p.image) == 0);
	}
}

static size_t read_all(int fd, char *buf, size_t size)
{
	ssize_t k = pread(fd, buf, size, 0);

	assert_true(k >= 0);
	return (size_t)k;
}

static void test_options__key_memfd_wiped(void **state)
{
	const char *key = "AQBzZmFrZWtleWZha2VrZXlmYWtla2V5ZmFrZQ==";
	_cleanup_close_ int fd = -EBADF, back = -EBADF;
	char buf[128], path[64];
	int pipefd[2], status;
	pid_t pid;

	assert_int_equal(mapper_key_fd_new(key, &fd), 0);
	assert_int_equal(read_all(fd, buf, sizeof(buf)), strlen(key));
	assert_memory_equal(buf, key, strlen(key));
	/* Sealed: nobody changes the key behind the child's back. */
	assert_true(pwrite(fd, "x", 1, 0) < 0);
	assert_int_equal(mapper_key_fd_wipe(fd), 0);
	assert_int_equal(read_all(fd, buf, sizeof(buf)), 0);
	fd = safe_close(fd);

	/* A process that holds the key as fd 3 (a daemon whose start-up a killed plugin left
	 * unfinished): wiped from outside through pidfd_getfd(). */
	assert_int_equal(mapper_key_fd_new(key, &fd), 0);
	assert_int_equal(pipe2(pipefd, O_CLOEXEC), 0);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		char c;

		close(pipefd[1]);
		if (dup2(fd, 3) < 0)
			_exit(1);
		/* Until the test is done. */
		_exit(read(pipefd[0], &c, 1) < 0 ? 1 : 0);
	}
	close(pipefd[0]);
	snprintf(path, sizeof(path), "/proc/%d/fd/3", (int)pid);
	for (int i = 0; i < 1000 && back < 0; i++) {
		back = open(path, O_RDONLY | O_CLOEXEC);
		if (back < 0)
			usleep(1000);
	}
	assert_true(back >= 0);
	fd = safe_close(fd);
	assert_int_equal(read_all(back, buf, sizeof(buf)), strlen(key));
	assert_int_equal(mapper_key_wipe_pid(pid, 3), 0);
	assert_int_equal(read_all(back, buf, sizeof(buf)), 0);
	/* Not a key memfd there: left alone. No such process: nothing to do. */
	assert_int_equal(mapper_key_wipe_pid(pid, 1), 0);
	close(pipefd[1]);
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_int_equal(mapper_key_wipe_pid(pid, 3), 0);
}

static void mount_ok(const char *fstype, const char *opts)
{
	_cleanup_free_ char *reason = NULL;
	int r = options_mount_check(fstype, opts, &reason);

	if (r != 0)
		print_message("%s '%s' refused: %s\n", strempty(fstype), opts, strempty(reason));
	assert_int_equal(r, 0);
}

static void mount_refused(const char *fstype, const char *opts, const char *want)
{
	_cleanup_free_ char *reason = NULL;

	assert_int_equal(options_mount_check(fstype, opts, &reason), -EINVAL);
	assert_non_null(reason);
	if (!strstr(reason, want))
		print_message("'%s': reason '%s' lacks '%s'\n", opts, reason, want);
	assert_non_null(strstr(reason, want));
}

static void test_options__mount_allowlists(void **state)
{
	(void)state;
	mount_ok("ext4", NULL);
	mount_ok("ext4", "");
	mount_ok("ext4", "noatime,nodiratime,data=ordered,errors=remount-ro,commit=30,barrier");
	mount_ok("ext4", "barrier=1,discard,acl,user_xattr,prjquota,stripe=16,nodev,nosuid");
	mount_ok("xfs", "noatime,nouuid,logbufs=8,logbsize=256k,allocsize=64m,inode64,pquota");
	mount_ok("xfs", "context=\"system_u:object_r:container_file_t:s0:c1,c2\",noexec");
	mount_ok(NULL, "data=writeback");
	mount_ok(NULL, "logbsize=32k");
	/* Devices and files of the node: the kernel reads and writes there. */
	mount_refused("ext4", "journal_path=/dev/sda", "'journal_path=...'");
	mount_refused("ext4", "noatime,journal_dev=2049", "'journal_dev=...'");
	mount_refused("ext4", "usrjquota=aquota.user", "'usrjquota=...'");
	mount_refused("xfs", "logdev=/dev/sda", "'logdev=...'");
	mount_refused("xfs", "rtdev=/dev/sdb", "'rtdev=...'");
	mount_refused(NULL, "logdev=/dev/sda", "ext4 or xfs");
	/* The node down, or the journal skipped. */
	mount_refused("ext4", "errors=panic", "'errors=...'");
	mount_refused("ext4", "noload", "'noload'");
	mount_refused("xfs", "norecovery", "'norecovery'");
	/* Another filesystem's options, values that are not what the option takes. */
	mount_refused("xfs", "data=ordered", "for xfs");
	mount_refused("ext4", "nouuid", "for ext4");
	mount_refused("ext4", "commit=x", "'commit=...'");
	mount_refused("ext4", "commit", "'commit'");
	mount_refused("xfs", "logbsize=/x", "'logbsize=...'");
	mount_refused("ext4", "data=journal2", "'data=...'");
	/* What changes what is mounted, or where. */
	mount_refused("ext4", "bind", "'bind'");
	mount_refused("ext4", "rbind", "'rbind'");
	mount_refused("ext4", "remount", "'remount'");
	mount_refused("ext4", "move", "'move'");
	mount_refused("ext4", "shared", "'shared'");
	mount_refused("ext4", "loop", "'loop'");
	mount_refused("ext4", "X-mount.mkdir", "malformed");
	mount_refused("ext4", "x-gvfs-hide", "'x-gvfs-hide'");
	/* Malformed. */
	mount_refused("ext4", "noatime,,nodev", "malformed");
	mount_refused("ext4", "context=\"a,b", "malformed");
	mount_refused("ext4", "context=unquoted", "'context=...'");
	mount_refused("ext4", "context=\"a/b\"", "'context=...'");
	mount_refused("btrfs", "noatime", "unsupported");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_options__mkfs_ext4_allowlist),
		cmocka_unit_test(test_options__mkfs_xfs_allowlist),
		HOST_TEST(test_options__format_refuses_file_options),
		cmocka_unit_test(test_options__map_allowlists),
		cmocka_unit_test(test_options__mount_allowlists),
		cmocka_unit_test(test_options__nbd_args_canonical),
		cmocka_unit_test(test_options__ceph_names),
		cmocka_unit_test(test_options__ceph_argv_has_no_names),
		cmocka_unit_test(test_options__key_memfd_wiped),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
