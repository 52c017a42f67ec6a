/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Corpus replay without libFuzzer (as systemd's fuzz-main.c): runs LLVMFuzzerTestOneInput on
 * every file of the directories or files named on the command line. Used by `make fuzz-replay`
 * inside `make check`; a crash or abort fails the run.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "driver/base/macro.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int run_file(const char *path)
{
	_cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC);
	_cleanup_free_ uint8_t *buf = NULL;
	struct stat st;
	size_t got = 0;

	if (fd < 0 || fstat(fd, &st) < 0)
		return -errno;
	buf = malloc((size_t)st.st_size + 1);
	if (!buf)
		return -ENOMEM;
	while (got < (size_t)st.st_size) {
		ssize_t k = read(fd, buf + got, (size_t)st.st_size - got);
		if (k <= 0)
			break;
		got += (size_t)k;
	}
	LLVMFuzzerTestOneInput(buf, got);
	return 0;
}

int main(int argc, char *argv[])
{
	unsigned n = 0;

	for (int i = 1; i < argc; i++) {
		struct stat st;
		DIR *d;
		struct dirent *de;

		if (stat(argv[i], &st) < 0) {
			fprintf(stderr, "%s: %m\n", argv[i]);
			return EXIT_FAILURE;
		}
		if (!S_ISDIR(st.st_mode)) {
			if (run_file(argv[i]) < 0)
				return EXIT_FAILURE;
			n++;
			continue;
		}
		d = opendir(argv[i]);
		if (!d)
			return EXIT_FAILURE;
		while ((de = readdir(d))) {
			char path[4096];

			if (de->d_name[0] == '.')
				continue;
			snprintf(path, sizeof(path), "%s/%s", argv[i], de->d_name);
			if (run_file(path) < 0) {
				closedir(d);
				return EXIT_FAILURE;
			}
			n++;
		}
		closedir(d);
	}
	printf("          %u inputs replayed\n", n);
	return n > 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
