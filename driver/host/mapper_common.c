/* SPDX-License-Identifier: Apache-2.0 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/pidfd.h>
#include <unistd.h>

#include "driver/base/exec.h"
#include "driver/base/log.h"
#include "driver/base/macro.h"
#include "driver/host/mapper_common.h"
#include "driver/host/reason.h"

static const char *const type_names[_MAPPER_MAX] = {
	[MAPPER_AUTO] = "auto",
	[MAPPER_FUSE] = "fuse",
	[MAPPER_KRBD] = "krbd",
	[MAPPER_NBD] = "nbd",
};

const char *mapper_type_to_string(enum mapper_type t)
{
	if (t < 0 || t >= _MAPPER_MAX)
		return NULL;
	return type_names[t];
}

enum mapper_type mapper_type_from_string(const char *s)
{
	if (isempty(s))
		return MAPPER_AUTO;
	for (int i = 0; i < _MAPPER_MAX; i++)
		if (strcmp(s, type_names[i]) == 0)
			return (enum mapper_type)i;
	if (strcmp(s, "rbd") == 0)
		return MAPPER_KRBD;
	if (strcmp(s, "rbd-nbd") == 0)
		return MAPPER_NBD;
	if (strcmp(s, "rbd-fuse") == 0)
		return MAPPER_FUSE;
	return _MAPPER_INVALID;
}

bool mapper_name_valid(const char *s)
{
	size_t n;

	if (isempty(s))
		return false;
	n = strlen(s);
	/* A leading '-' would be read as an option by a tool that takes the name as an
	 * argument; '/' and '@' separate pool, namespace, image and snapshot; '=' ends an
	 * option's name; blanks separate the fields of a krbd sysfs write. */
	if (n > MAPPER_NAME_MAX || s[0] == '-' || strcmp(s, ".") == 0 || strcmp(s, "..") == 0)
		return false;
	for (const unsigned char *c = (const unsigned char *)s; *c; c++)
		if (*c <= ' ' || *c == 0x7f || *c == '/' || *c == '@' || *c == '=')
			return false;
	return true;
}

static bool name_ok(const char *s, bool allow_empty)
{
	if (isempty(s))
		return allow_empty;
	return mapper_name_valid(s);
}

static bool user_ok(const char *s)
{
	if (isempty(s) || strlen(s) > MAPPER_NAME_MAX)
		return false;
	for (const char *c = s; *c; c++)
		if (!((*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z') ||
		      (*c >= '0' && *c <= '9') || *c == '.' || *c == '_' || *c == '-'))
			return false;
	return true;
}

static int b64_value(char c)
{
	if (c >= 'A' && c <= 'Z')
		return c - 'A';
	if (c >= 'a' && c <= 'z')
		return c - 'a' + 26;
	if (c >= '0' && c <= '9')
		return c - '0' + 52;
	if (c == '+')
		return 62;
	if (c == '/')
		return 63;
	return -1;
}

/*
 * A cephx key is the base64 of an encoded CryptoKey: le16 type (1 = AES), le32 seconds, le32
 * nanoseconds, le16 length, then the secret (16 bytes). Checked here so that a malformed key
 * is refused before any Ceph tool sees it: Ceph logs keys it cannot decode, verbatim.
 */
static bool key_ok(const char *s)
{
	unsigned char raw[96];
	size_t len = strlen(s), n = 0;
	unsigned bits = 0, acc = 0;
	size_t pad = 0;

	if (len == 0 || len > 128 || len % 4 != 0)
		return false;
	for (size_t i = 0; i < len; i++) {
		int v;

		if (s[i] == '=') {
			if (i < len - 2)
				return false;
			pad++;
			continue;
		}
		if (pad)
			return false;
		v = b64_value(s[i]);
		if (v < 0)
			return false;
		acc = (acc << 6) | (unsigned)v;
		bits += 6;
		if (bits >= 8) {
			bits -= 8;
			if (n >= sizeof(raw))
				return false;
			raw[n++] = (unsigned char)(acc >> bits);
		}
	}
	explicit_bzero(&acc, sizeof(acc));
	if (n < 12 + 16 || raw[0] != 1 || raw[1] != 0 ||
	    (size_t)(raw[10] | raw[11] << 8) != n - 12) {
		explicit_bzero(raw, sizeof(raw));
		return false;
	}
	explicit_bzero(raw, sizeof(raw));
	return true;
}

int mapper_params_validate(const struct mapper_params *p, char **ret_reason)
{
	if (!p)
		return -EINVAL;
	if (!name_ok(p->pool, false)) {
		reason_set(ret_reason, "invalid pool name");
		return -EINVAL;
	}
	if (!name_ok(p->image, false)) {
		reason_set(ret_reason, "invalid image name");
		return -EINVAL;
	}
	if (!name_ok(p->rados_namespace, true)) {
		reason_set(ret_reason, "invalid rados namespace");
		return -EINVAL;
	}
	if (!user_ok(p->user)) {
		reason_set(ret_reason, "invalid cephx user name");
		return -EINVAL;
	}
	if (!key_ok(p->key)) {
		reason_set(ret_reason, "the cephx key is malformed (not a base64 cephx AES key)");
		return -EINVAL;
	}
	if (isempty(p->monitors) || strlen(p->monitors) > 4096 || strpbrk(p->monitors, " \t\n")) {
		reason_set(ret_reason, "invalid monitor list");
		return -EINVAL;
	}
	if (p->map_options && (strlen(p->map_options) > 1024 || strpbrk(p->map_options, " \t\n"))) {
		reason_set(ret_reason, "invalid map options");
		return -EINVAL;
	}
	return 0;
}

int mapper_options_for(const char *all, enum mapper_type t, char **ret)
{
	_cleanup_free_ char *out = NULL;
	size_t out_len = 0;

	if (isempty(all)) {
		*ret = NULL;
		return 0;
	}
	for (const char *p = all; *p;) {
		const char *semi = strchrnul(p, ';'), *body = p, *colon;
		enum mapper_type part = MAPPER_KRBD;
		size_t len;

		colon = memchr(p, ':', (size_t)(semi - p));
		if (colon) {
			size_t plen = (size_t)(colon - p);

			if (plen == 4 && strncmp(p, "krbd", 4) == 0)
				part = MAPPER_KRBD;
			else if (plen == 3 && strncmp(p, "nbd", 3) == 0)
				part = MAPPER_NBD;
			else if (plen == 4 && strncmp(p, "fuse", 4) == 0)
				part = MAPPER_FUSE;
			else
				return -EINVAL;
			body = colon + 1;
		}
		len = (size_t)(semi - body);
		if (part == t && len > 0) {
			char *n = realloc(out, out_len + len + 2);

			if (!n)
				return -ENOMEM;
			out = n;
			if (out_len)
				out[out_len++] = ',';
			memcpy(out + out_len, body, len);
			out_len += len;
			out[out_len] = 0;
		}
		p = *semi ? semi + 1 : semi;
	}
	*ret = TAKE_PTR(out);
	return 0;
}

char *mapper_root_path(const char *root, const char *path)
{
	char *s = NULL;

	if (isempty(root) || strcmp(root, "/") == 0)
		return strdup(path);
	if (asprintf(&s, "%s%s", root, path) < 0)
		return NULL;
	return s;
}

size_t mapper_ceph_argv(char **argv, const char *prog, const struct mapper_params *p,
                        const char *log_arg)
{
	size_t n = 0;

	argv[n++] = (char *)prog;
	argv[n++] = (char *)"-c";
	argv[n++] = (char *)"/dev/null"; /* no /etc/ceph, no DNS SRV lookup */
	argv[n++] = (char *)"--mon-host";
	argv[n++] = (char *)p->monitors;
	argv[n++] = (char *)"--id";
	argv[n++] = (char *)p->user;
	argv[n++] = (char *)"--keyfile=/dev/fd/3";
	argv[n++] = (char *)"--keyring="; /* no keyring search in /etc/ceph */
	argv[n++] = (char *)"--admin-socket=";
	argv[n++] = (char *)log_arg;
	return n;
}

size_t mapper_ceph_argv_offline(char **argv, const char *prog)
{
	size_t n = 0;

	argv[n++] = (char *)prog;
	argv[n++] = (char *)"-c";
	argv[n++] = (char *)"/dev/null"; /* no /etc/ceph */
	argv[n++] = (char *)"--no-mon-config";
	argv[n++] = (char *)"--admin-socket=";
	return n;
}

int mapper_key_fd_new(const char *key, int *ret_fd)
{
	_cleanup_close_ int fd = -EBADF;
	size_t size = strlen(key), done = 0;

	fd = memfd_create(MAPPER_KEY_MEMFD_NAME, MFD_CLOEXEC | MFD_ALLOW_SEALING);
	if (fd < 0)
		return negative_errno();
	while (done < size) {
		ssize_t n = write(fd, key + done, size - done);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			return negative_errno();
		}
		done += (size_t)n;
	}
	/* The child reads exactly the key or, once wiped, nothing: no seal against shrinking. */
	if (fcntl(fd, F_ADD_SEALS, F_SEAL_GROW | F_SEAL_WRITE | F_SEAL_SEAL) < 0)
		return negative_errno();
	if (lseek(fd, 0, SEEK_SET) < 0)
		return negative_errno();
	*ret_fd = TAKE_FD(fd);
	return 0;
}

int mapper_key_fd_wipe(int fd)
{
	if (fd < 0)
		return -EBADF;
	if (ftruncate(fd, 0) < 0)
		return negative_errno();
	return 0;
}

int mapper_key_wipe_pid(pid_t pid, int child_fd)
{
	_cleanup_close_ int pidfd = -EBADF, fd = -EBADF;
	char self[64], target[PATH_MAX];
	ssize_t k;

	if (pid <= 0 || child_fd < 0)
		return -EINVAL;
	pidfd = pidfd_open(pid, 0);
	if (pidfd < 0)
		return errno == ESRCH ? 0 : negative_errno();
	fd = pidfd_getfd(pidfd, child_fd, 0);
	if (fd < 0)
		return errno == EBADF || errno == ESRCH ? 0 : negative_errno();
	/* Only our key's memfd, never whatever else the process has open there. */
	snprintf(self, sizeof(self), "/proc/self/fd/%d", fd);
	k = readlink(self, target, sizeof(target) - 1);
	if (k < 0)
		return negative_errno();
	target[k] = 0;
	if (strncmp(target, "/memfd:" MAPPER_KEY_MEMFD_NAME " ",
	            strlen("/memfd:" MAPPER_KEY_MEMFD_NAME " ")) != 0)
		return 0;
	return mapper_key_fd_wipe(fd);
}
