/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Fuzzes what a client controls first: the request bytes. Every CSI method's input type is
 * unpacked from the data, and the Identity methods plus every method in a mode that does not serve
 * it are dispatched for real (those paths touch neither Ceph nor the host).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "plugin/config.h"
#include "plugin/locks.h"
#include "plugin/plugin.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct plugin p;
	const struct method *m;
	size_t n;

	if (!p.config) {
		p.opt.mode = PLUGIN_MODE_CONTROLLER;
		p.opt.driver_name = "fuzz.rbdcsi.io";
		p.config = config_new_empty();
		p.locks = locks_new();
		log_set_max_level(LOG_LEVEL_ERROR + 1);
	}
	m = plugin_methods(&n);
	for (size_t i = 0; i < n; i++) {
		ProtobufCMessage *msg = protobuf_c_message_unpack(m[i].input, NULL, size, data);
		uint8_t *resp = NULL;
		size_t len = 0;
		char *message = NULL;

		if (msg)
			protobuf_c_message_free_unpacked(msg, NULL);
		/* Identity, and node methods the controller-mode plugin refuses before any work. */
		if (strncmp(m[i].path, "/csi.v1.Identity/", 17) == 0 ||
		    strncmp(m[i].path, "/csi.v1.Node/", 13) == 0) {
			plugin_dispatch(&p, &m[i], data, size, UINT64_MAX, NULL, &resp, &len,
			                &message);
			free(resp);
			free(message);
		}
	}
	return 0;
}
