/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Fuzz target for driver/host/options.c and mapper_name_valid(): mkfsOptions, mountOptions,
 * mapOptions, unmapOptions and Ceph names come from StorageClasses and volume contexts (untrusted).
 * The first byte picks the parser; whatever is accepted must keep the promises the allowlists make:
 * no word of an accepted mkfs line names a path or is an operand, no accepted rbd-nbd argument
 * touches a file, no accepted name starts with '-' or holds a separator.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "driver/base/exec.h"
#include "driver/host/mapper.h"
#include "driver/host/options.h"

#define INPUT_MAX 1024

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_mkfs(const char *fstype, const char *in)
{
	char copy[INPUT_MAX + 1];
	char *argv[OPTIONS_MKFS_ARGS_MAX];
	size_t n = 0;
	char *reason = NULL;

	memcpy(copy, in, strlen(in) + 1);
	if (options_mkfs_split(fstype, copy, argv, OPTIONS_MKFS_ARGS_MAX, &n, &reason) < 0) {
		if (!reason)
			abort();
		free(reason);
		return;
	}
	if (options_mkfs_check(fstype, in, NULL) != 0)
		abort();
	for (size_t i = 0; i < n; i++) {
		if (strchr(argv[i], '/') || strcmp(argv[i], "--") == 0)
			abort();
		/* A word that is not an option is the value of the option right before it. */
		if (argv[i][0] != '-' && (i == 0 || argv[i - 1][0] != '-'))
			abort();
	}
	/* The file-reading options never pass, attached, separate or clustered. */
	for (size_t i = 0; i < n; i++)
		if (argv[i][0] == '-' && argv[i][1] != '-' &&
		    strspn(argv[i] + 1, "qjvDK") < strlen(argv[i] + 1) &&
		    strchr(strcmp(fstype, "ext4") == 0 ? "dlzcFSn" : "pcrfN",
		           argv[i][1 + strspn(argv[i] + 1, "qjvDK")]))
			abort();
}

static void check_nbd(const char *in)
{
	char **args = NULL;

	if (options_nbd_args(in, &args, NULL) < 0)
		return;
	for (char **a = args; *a; a++)
		if (strncmp(*a, "--", 2) != 0 || strchr(*a, '/') || strstr(*a, "log") ||
		    strstr(*a, "admin") || strstr(*a, "key") || strstr(*a, "conf") ||
		    strstr(*a, "id=") || strstr(*a, "name") || strstr(*a, "device"))
			abort();
	exec_strv_free(args);
}

/* Accepted mount options never name a path or a device, and what one filesystem accepts the
 * "either" check accepts too. */
static void check_mount(const char *in)
{
	static const char *const types[] = { "ext4", "xfs" };

	for (size_t i = 0; i < 2; i++) {
		if (options_mount_check(types[i], in, NULL) < 0)
			continue;
		if (strchr(in, '/') || strstr(in, "dev=") || strstr(in, "journal_path") ||
		    strstr(in, "=panic") || options_mount_check(NULL, in, NULL) < 0)
			abort();
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char in[INPUT_MAX + 1];
	uint8_t mode;

	if (size == 0)
		return 0;
	mode = data[0] % 7;
	data++, size--;
	if (size > INPUT_MAX)
		size = INPUT_MAX;
	memcpy(in, data, size);
	in[size] = 0;

	switch (mode) {
	case 0:
		check_mkfs("ext4", in);
		break;
	case 1:
		check_mkfs("xfs", in);
		break;
	case 2:
		(void)options_map_all_check(in, false, NULL);
		(void)options_map_check(MAPPER_KRBD, in, NULL);
		break;
	case 3:
		(void)options_map_all_check(in, true, NULL);
		break;
	case 4:
		check_nbd(in);
		break;
	case 5:
		if (mapper_name_valid(in) &&
		    (in[0] == '-' || strpbrk(in, "/@= \t\n") || strlen(in) > MAPPER_NAME_MAX))
			abort();
		break;
	case 6:
		check_mount(in);
		break;
	}
	return 0;
}
