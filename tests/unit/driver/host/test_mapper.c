/* SPDX-License-Identifier: Apache-2.0 */
/* Tests of driver/host/mapper.c: names, parameter checks, per-mapper options, availability. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <json-c/json.h>

#include <cmocka.h>

#include "driver/base/macro.h"
#include "driver/host/mapper.h"

#define KEY "AQAAAAAAAAAAABAAMDEyMzQ1Njc4OWFiY2RlZg=="

static struct mapper_params params(void)
{
	return (struct mapper_params){
		.monitors = "10.0.0.1:6789",
		.user = "csi",
		.key = KEY,
		.pool = "rbd",
		.image = "csi-vol-1",
	};
}

static void test_mapper__type_names(void **state)
{
	assert_int_equal(mapper_type_from_string(NULL), MAPPER_AUTO);
	assert_int_equal(mapper_type_from_string(""), MAPPER_AUTO);
	assert_int_equal(mapper_type_from_string("fuse"), MAPPER_FUSE);
	assert_int_equal(mapper_type_from_string("rbd-fuse"), MAPPER_FUSE);
	assert_int_equal(mapper_type_from_string("krbd"), MAPPER_KRBD);
	assert_int_equal(mapper_type_from_string("rbd"), MAPPER_KRBD);
	assert_int_equal(mapper_type_from_string("nbd"), MAPPER_NBD);
	assert_int_equal(mapper_type_from_string("rbd-nbd"), MAPPER_NBD);
	assert_int_equal(mapper_type_from_string("iscsi"), _MAPPER_INVALID);
	assert_string_equal(mapper_type_to_string(MAPPER_FUSE), "fuse");
	assert_null(mapper_type_to_string(_MAPPER_MAX));
}

static void test_mapper__params_validate(void **state)
{
	struct mapper_params p = params();
	_cleanup_free_ char *reason = NULL;

	assert_int_equal(mapper_params_validate(&p, &reason), 0);
	assert_null(reason);
	p.rados_namespace = "";
	assert_int_equal(mapper_params_validate(&p, &reason), 0);

	const char *bad_names[] = { "", "a/b", "a b", "a@snap", "..", "tab\there" };
	for (size_t i = 0; i < ELEMENTSOF(bad_names); i++) {
		p = params();
		p.image = bad_names[i];
		assert_int_equal(mapper_params_validate(&p, &reason), -EINVAL);
		assert_string_equal(reason, "invalid image name");
	}
	p = params();
	p.user = "client.admin, x";
	assert_int_equal(mapper_params_validate(&p, &reason), -EINVAL);
	p = params();
	p.monitors = "10.0.0.1:6789 10.0.0.2:6789";
	assert_int_equal(mapper_params_validate(&p, &reason), -EINVAL);

	/* Keys: base64 of a cephx AES CryptoKey only; the reason never quotes them. */
	const char *bad_keys[] = { "", "not base64!", "AQBzZmFrZWtleWZha2VrZXlmYWtla2V5ZmFrZQ==",
		                   "AQAAAAAAAAAAABAAMDEyMzQ1Njc4OWFiY2Rl", "QUFBQQ==" };
	for (size_t i = 0; i < ELEMENTSOF(bad_keys); i++) {
		p = params();
		p.key = bad_keys[i];
		assert_int_equal(mapper_params_validate(&p, &reason), -EINVAL);
		assert_string_equal(reason,
		                    "the cephx key is malformed (not a base64 cephx AES key)");
	}
}

static void test_mapper__options_for(void **state)
{
	char *s = NULL;

	assert_int_equal(mapper_options_for(NULL, MAPPER_KRBD, &s), 0);
	assert_null(s);
	assert_int_equal(mapper_options_for("lock_on_read,queue_depth=1024", MAPPER_KRBD, &s), 0);
	assert_string_equal(s, "lock_on_read,queue_depth=1024");
	free(s);
	assert_int_equal(mapper_options_for("lock_on_read", MAPPER_NBD, &s), 0);
	assert_null(s);
	assert_int_equal(mapper_options_for("krbd:a,b;nbd:try-netlink;krbd:c", MAPPER_KRBD, &s), 0);
	assert_string_equal(s, "a,b,c");
	free(s);
	assert_int_equal(mapper_options_for("krbd:a,b;nbd:try-netlink;krbd:c", MAPPER_NBD, &s), 0);
	assert_string_equal(s, "try-netlink");
	free(s);
	assert_int_equal(mapper_options_for("krbd:force", MAPPER_FUSE, &s), 0);
	assert_null(s);
	assert_int_equal(mapper_options_for("iscsi:x", MAPPER_KRBD, &s), -EINVAL);
}

static void test_mapper__available_with_simulated_root(void **state)
{
	char root[] = "/tmp/rbdcsi-test-mapper-XXXXXX";
	_cleanup_free_ char *reason = NULL, *path = NULL;

	assert_non_null(mkdtemp(root));
	assert_int_equal(mapper_available(MAPPER_KRBD, root, &reason), -ENODEV);
	assert_non_null(strstr(reason, "rbd kernel module not loaded"));
	path = mapper_root_path(root, "/sys/bus/rbd");
	assert_non_null(path);
	assert_true(strncmp(path, root, strlen(root)) == 0);
	free(path);
	path = mapper_root_path("/", "/sys/bus/rbd");
	assert_string_equal(path, "/sys/bus/rbd");
	free(path);
	path = mapper_root_path(NULL, "/dev");
	assert_string_equal(path, "/dev");
	assert_int_equal(rmdir(root), 0);
	assert_int_equal(mapper_available(_MAPPER_MAX, root, NULL), -EINVAL);
}

/* Writes path with text, mode 0755. */
static void write_exec(const char *path, const char *text)
{
	FILE *f = fopen(path, "we");

	assert_non_null(f);
	assert_true(fputs(text, f) >= 0);
	assert_int_equal(fclose(f), 0);
	assert_int_equal(chmod(path, 0755), 0);
}

static size_t count_lines(const char *path)
{
	FILE *f = fopen(path, "re");
	size_t n = 0;
	int ch;

	if (!f)
		return 0;
	while ((ch = fgetc(f)) != EOF)
		n += ch == '\n';
	fclose(f);
	return n;
}

/* krbd and nbd: a module that is not loaded is loaded with modprobe before the mapper is
 * declared unavailable; a failed modprobe is in the reason and is not retried at once. */
static void test_mapper__available_loads_the_module(void **state)
{
	char root[] = "/tmp/rbdcsi-test-mapper-XXXXXX";
	char prog[128], calls[128], script[1024];
	_cleanup_free_ char *reason = NULL;

	(void)state;
	assert_non_null(mkdtemp(root));
	snprintf(prog, sizeof(prog), "%s/modprobe", root);
	snprintf(calls, sizeof(calls), "%s/calls", root);
	/* Like modprobe: "rbd" loads (the bus appears), anything else is not found. */
	snprintf(script, sizeof(script),
	         "#!/bin/sh\n"
	         "echo \"$*\" >>%s\n"
	         "[ \"$1 $2\" = \"-- rbd\" ] || { echo \"modprobe: FATAL: Module $2 not found\" "
	         ">&2; "
	         "exit 1; }\n"
	         "mkdir -p %s/sys/bus/rbd && : >%s/sys/bus/rbd/add_single_major\n",
	         calls, root, root);
	write_exec(prog, script);
	mapper_modprobe_program = prog;

	assert_int_equal(mapper_available(MAPPER_KRBD, root, &reason), 0);
	assert_int_equal(count_lines(calls), 1);
	/* Loaded now: no second modprobe. */
	assert_int_equal(mapper_available(MAPPER_KRBD, root, &reason), 0);
	assert_int_equal(count_lines(calls), 1);

	assert_int_equal(mapper_available(MAPPER_NBD, root, &reason), -ENODEV);
	assert_non_null(strstr(reason, "nbd kernel module not loaded"));
	assert_non_null(strstr(reason, "Module nbd not found"));
	assert_int_equal(count_lines(calls), 2);
	assert_int_equal(mapper_available(MAPPER_NBD, root, &reason), -ENODEV);
	assert_non_null(strstr(reason, "modprobe nbd failed"));
	assert_int_equal(count_lines(calls), 2);

	mapper_modprobe_program = NULL;
	assert_int_equal(unlink(calls), 0);
	assert_int_equal(unlink(prog), 0);
	snprintf(script, sizeof(script), "%s/sys/bus/rbd/add_single_major", root);
	assert_int_equal(unlink(script), 0);
	for (int i = 0; i < 3; i++) {
		*strrchr(script, '/') = 0;
		assert_int_equal(rmdir(script), 0);
	}
	assert_int_equal(rmdir(root), 0);
}

/* Every mapper is in the table with the members stage.c calls, and its state round-trips
 * through the state file's JSON under the same keys. */
static void test_mapper__ops_table(void **state)
{
	(void)state;
	assert_null(mapper_ops_get(MAPPER_AUTO));
	assert_null(mapper_ops_get(_MAPPER_INVALID));
	assert_null(mapper_ops_get(_MAPPER_MAX));
	for (enum mapper_type t = MAPPER_FUSE; t < _MAPPER_MAX; t++) {
		const struct mapper_ops *ops = mapper_ops_get(t);
		void *st = NULL, *back = NULL;
		json_object *o = json_object_new_object();

		assert_non_null(ops);
		assert_int_equal(ops->type, t);
		assert_non_null(ops->available);
		assert_non_null(ops->map);
		assert_non_null(ops->alive);
		assert_non_null(ops->unmap);
		/* state_new/free/save/load come together or not at all. */
		assert_int_equal(!!ops->state_new, !!ops->state_free);
		assert_int_equal(!!ops->state_new, !!ops->state_save);
		assert_int_equal(!!ops->state_new, !!ops->state_load);
		assert_int_equal(!!ops->abort, !!ops->daemon);
		assert_int_equal(!!ops->module, !!ops->module_dir);
		assert_int_equal(mapper_state_new(t, "/tmp", "vol-1", &st), 0);
		assert_int_equal(mapper_state_save(t, st, o), 0);
		assert_int_equal(mapper_state_load(t, o, &back), 0);
		assert_int_equal(!!st, !!back);
		st = mapper_state_free(t, st);
		back = mapper_state_free(t, back);
		assert_null(st);
		json_object_put(o);
	}
	/* The keys of the state file are the format: krbd "krbd_id", rbd-fuse "fuse". */
	{
		json_object *o = json_object_new_object(), *v;
		void *st = NULL;

		assert_int_equal(mapper_state_new(MAPPER_KRBD, "/tmp", "vol-1", &st), 0);
		assert_int_equal(mapper_state_save(MAPPER_KRBD, st, o), 0);
		assert_true(json_object_object_get_ex(o, "krbd_id", &v));
		assert_int_equal(json_object_get_int(v), -1);
		mapper_state_free(MAPPER_KRBD, st);
		assert_int_equal(mapper_state_new(MAPPER_FUSE, "/tmp", "vol-1", &st), 0);
		assert_int_equal(mapper_state_save(MAPPER_FUSE, st, o), 0);
		assert_true(json_object_object_get_ex(o, "fuse", &v));
		assert_true(json_object_object_get_ex(v, "mount_dir", &v));
		assert_non_null(strstr(json_object_get_string(v), "/tmp/fuse/"));
		mapper_state_free(MAPPER_FUSE, st);
		json_object_put(o);
	}
	assert_int_equal(mapper_map(MAPPER_AUTO, NULL, NULL, NULL, NULL, NULL), -EINVAL);
	assert_string_equal(mapper_abort_target(MAPPER_FUSE), "rbd-fuse");
	assert_null(mapper_abort_target(MAPPER_KRBD));
}

/* The head of every Ceph tool's argv: no /etc/ceph, and the key only as /dev/fd/3. */
static void test_mapper__ceph_argv(void **state)
{
	struct mapper_params p = { .monitors = "127.0.0.1:6789", .user = "admin" };
	char *argv[MAPPER_CEPH_ARGV_MAX + 1] = { 0 };
	char *off[MAPPER_CEPH_ARGV_OFFLINE_MAX + 1] = { 0 };
	size_t n;

	(void)state;
	n = mapper_ceph_argv(argv, "rbd-fuse", &p, "--log-file=");
	assert_int_equal(n, MAPPER_CEPH_ARGV_MAX);
	assert_string_equal(argv[1], "-c");
	assert_string_equal(argv[2], "/dev/null");
	assert_string_equal(argv[7], "--keyfile=/dev/fd/3");
	n = mapper_ceph_argv_offline(off, "rbd-nbd");
	assert_int_equal(n, MAPPER_CEPH_ARGV_OFFLINE_MAX);
	assert_string_equal(off[1], "-c");
	assert_string_equal(off[2], "/dev/null");
	assert_string_equal(off[3], "--no-mon-config");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_mapper__type_names),
		cmocka_unit_test(test_mapper__params_validate),
		cmocka_unit_test(test_mapper__options_for),
		cmocka_unit_test(test_mapper__available_with_simulated_root),
		cmocka_unit_test(test_mapper__available_loads_the_module),
		cmocka_unit_test(test_mapper__ops_table),
		cmocka_unit_test(test_mapper__ceph_argv),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
