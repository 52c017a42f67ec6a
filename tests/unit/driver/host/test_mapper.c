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

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_mapper__type_names),
		cmocka_unit_test(test_mapper__params_validate),
		cmocka_unit_test(test_mapper__options_for),
		cmocka_unit_test(test_mapper__available_with_simulated_root),
		cmocka_unit_test(test_mapper__available_loads_the_module),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
