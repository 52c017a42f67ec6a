/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Fuzzes the Controller handlers themselves (plugin/controller.c, plugin/snapshot.c, params,
 * ceph_access, status) down to the driver edge, over a FAKE driver/ceph kept in memory
 * (tests/fuzz/fake_ceph_driver.c), so that a request reaches past validation into the
 * create/list/publish/expand/snapshot logic without a cluster.
 *
 * An input is a short session: up to SESSION_MAX records of [method byte][length byte][request
 * bytes], each dispatched in order on a fresh fake cluster (so CreateVolume then
 * ControllerPublishVolume on the id it returned can be found). The method byte picks one of the
 * Controller methods (modulo their number). Whatever the handler answers must be a valid status,
 * with a response that unpacks when the status is OK.
 * RBDCSI_FUZZ_LIST_METHODS=1 prints the method numbers, RBDCSI_FUZZ_TRACE=1 each call's status
 * (to write seeds).
 */
#include <fcntl.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "driver/base/macro.h"
#include "plugin/ceph_access.h"
#include "plugin/config.h"
#include "plugin/locks.h"
#include "plugin/plugin.h"
#include "tests/fuzz/fake_ceph_driver.h"

#define SESSION_MAX 8
#define METHODS_MAX 32

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static struct plugin p;
static const struct method *methods[METHODS_MAX];
static size_t n_methods;
static bool trace;

static void setup(void)
{
	static const char conf[] = "[{\"clusterID\": \"fuzz\", \"monitors\": [\"127.0.0.1:1\"]},"
	                           " {\"clusterID\": \"fuzz-ns\", \"monitors\": [\"127.0.0.1:1\"], "
	                           "\"radosNamespace\": \"ns1\"}]";
	char path[64];
	const struct method *m;
	char *error = NULL;
	size_t n;

	log_set_max_level(LOG_LEVEL_ERROR + 1);
	snprintf(path, sizeof(path), "/dev/shm/rbdcsi-fuzz-controller.%d", (int)getpid());
	{
		_cleanup_close_ int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);

		if (fd < 0 || write(fd, conf, sizeof(conf) - 1) != (ssize_t)(sizeof(conf) - 1))
			abort();
	}
	if (config_load(path, &p.config, &error) < 0)
		abort();
	(void)unlink(path);
	p.opt.mode = PLUGIN_MODE_CONTROLLER;
	p.opt.driver_name = "fuzz.rbdcsi.io";
	p.opt.ceph_connect_timeout = 1;
	p.opt.ceph_op_timeout = 1;
	p.locks = locks_new();
	p.credentials = credentials_store_new();
	if (!p.locks || !p.credentials)
		abort();
	m = plugin_methods(&n);
	for (size_t i = 0; i < n && n_methods < METHODS_MAX; i++)
		if (strncmp(m[i].path, "/csi.v1.Controller/", 19) == 0 && m[i].handler)
			methods[n_methods++] = &m[i];
	trace = getenv("RBDCSI_FUZZ_TRACE");
	if (getenv("RBDCSI_FUZZ_LIST_METHODS"))
		for (size_t i = 0; i < n_methods; i++)
			printf("%zu %s\n", i, methods[i]->name);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	size_t pos = 0;

	if (!p.config)
		setup();
	fake_ceph_reset();
	for (unsigned k = 0; k < SESSION_MAX && pos + 2 <= size; k++) {
		const struct method *m = methods[data[pos] % n_methods];
		size_t len = data[pos + 1];
		uint8_t *resp = NULL;
		size_t resp_len = 0;
		char *message = NULL;
		enum status_code code;

		pos += 2;
		if (len > size - pos)
			len = size - pos;
		code = plugin_dispatch(&p, m, data + pos, len, UINT64_MAX, NULL, &resp, &resp_len,
		                       &message);
		pos += len;
		if (trace)
			printf("%s: %d %s\n", m->name, code, message ?: "");
		if ((unsigned)code > STATUS_UNAUTHENTICATED)
			abort();
		if (code == STATUS_OK) {
			ProtobufCMessage *out =
			        protobuf_c_message_unpack(m->output, NULL, resp_len, resp);

			if (!out)
				abort();
			protobuf_c_message_free_unpacked(out, NULL);
		} else if (code != STATUS_ABORTED && !message) {
			/* every refusal says why (ABORTED by a lock conflict too) */
			abort();
		}
		free(resp);
		free(message);
	}
	return 0;
}
