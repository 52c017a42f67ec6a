/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Fuzz target for plugin/params.c: StorageClass parameters, topologyConstrainedPools, volume
 * capabilities, capacity ranges and static volume handles all come from the CO (untrusted).
 * The first byte picks the input form:
 *   0: "key=value" lines, the parameters of a CreateVolume (then their topologyConstrainedPools),
 *   1: a topologyConstrainedPools JSON text,
 *   else: a CreateVolumeRequest in protobuf (parameters, capabilities, capacity, the name as a
 *         static volume handle with the parameters as its volume context).
 * A refusal must be INVALID_ARGUMENT (OUT_OF_RANGE for capacity) with a message; whatever is
 * accepted must keep the promises of params.h (valid Ceph names, sizes within the range).
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "driver/base/macro.h"
#include "plugin/call.h"
#include "plugin/params.h"

#define LINES_MAX 64

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

typedef Csi__V1__CreateVolumeRequest__ParametersEntry Entry;

static void check_refusal(struct call *c, int r, enum status_code code)
{
	if (r != -EINVAL && r != -EIO)
		abort();
	if (c->code != code || !c->log.error_message)
		abort();
}

static void check_params(struct call *c, Entry *const *entries, size_t n)
{
	struct volume_params p;
	struct topology_pool *pools = NULL;
	size_t n_pools = 0;
	int r;

	r = params_parse(c, entries, n, &p);
	if (r < 0) {
		check_refusal(c, r, STATUS_INVALID_ARGUMENT);
		return;
	}
	/* A pool, or topologyConstrainedPools to pick one from (then an empty pool is none). */
	if (!p.cluster_id || (isempty(p.pool) && !p.topology_pools) ||
	    (!isempty(p.pool) && !params_name_valid(p.pool, PARAMS_MAX_NAME_BYTES)) || !p.fs_type ||
	    !p.mounter || !p.image_features || !p.name_prefix)
		abort();
	if (p.topology_pools && params_topology_pools(c, p.topology_pools, &pools, &n_pools) < 0)
		check_refusal(c, -EINVAL, STATUS_INVALID_ARGUMENT);
}

static void check_topology(struct call *c, const char *json)
{
	struct topology_pool *pools = NULL;
	size_t n = 0;
	int r;

	r = params_topology_pools(c, json, &pools, &n);
	if (r < 0) {
		check_refusal(c, r, STATUS_INVALID_ARGUMENT);
		return;
	}
	for (size_t i = 0; i < n; i++) {
		if (!pools[i].pool || pools[i].n_segments > PARAMS_TOPOLOGY_SEGMENTS_MAX)
			abort();
		for (size_t k = 0; k < pools[i].n_segments; k++)
			if (!pools[i].labels[k] || !pools[i].values[k])
				abort();
	}
}

/* Splits text (NUL-terminated, modified) into "key=value" lines. */
static void check_lines(struct call *c, char *text)
{
	Entry e[LINES_MAX];
	Entry *ptrs[LINES_MAX];
	size_t n = 0;
	char *save = NULL;

	for (char *line = strtok_r(text, "\n", &save); line && n < LINES_MAX;
	     line = strtok_r(NULL, "\n", &save)) {
		char *eq = strchr(line, '=');

		csi__v1__create_volume_request__parameters_entry__init(&e[n]);
		if (eq)
			*eq = 0;
		e[n].key = line;
		e[n].value = eq ? eq + 1 : (char *)"";
		ptrs[n] = &e[n];
		n++;
	}
	check_params(c, ptrs, n);
}

static void check_request(struct call *c, const uint8_t *data, size_t size)
{
	Csi__V1__CreateVolumeRequest *req;
	struct access_summary a;
	struct static_volume sv;
	uint64_t bytes;
	int r;

	req = csi__v1__create_volume_request__unpack(NULL, size, data);
	if (!req)
		return;
	check_params(c, req->parameters, req->n_parameters);
	c->code = STATUS_OK;
	r = params_check_capabilities(c, "volume_capabilities", req->volume_capabilities,
	                              req->n_volume_capabilities, &a);
	if (r < 0)
		check_refusal(c, r, STATUS_INVALID_ARGUMENT);
	else if (a.read_only && !a.block && !a.mount)
		abort();
	c->code = STATUS_OK;
	r = params_capacity(c, req->capacity_range, &bytes);
	if (r < 0) {
		if (c->code != STATUS_INVALID_ARGUMENT && c->code != STATUS_OUT_OF_RANGE)
			abort();
	} else if (bytes == 0 || bytes > PARAMS_MAX_SIZE || bytes % (1024 * 1024) != 0 ||
	           (req->capacity_range && req->capacity_range->limit_bytes > 0 &&
	            bytes > (uint64_t)req->capacity_range->limit_bytes)) {
		abort();
	}
	c->code = STATUS_OK;
	r = params_static_volume(c, req->name ?: "", (void *const *)req->parameters,
	                         req->n_parameters, &sv);
	if (r == 1 && (!params_name_valid(sv.pool, PARAMS_MAX_NAME_BYTES) || !sv.image))
		abort();
	if (r < 0)
		check_refusal(c, r, STATUS_INVALID_ARGUMENT);
	csi__v1__create_volume_request__free_unpacked(req, NULL);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct call c = { 0 };
	char *text;

	if (size < 1)
		return 0;
	log_set_max_level(LOG_LEVEL_ERROR + 1);
	if (data[0] > 1) {
		check_request(&c, data + 1, size - 1);
		call_done(&c);
		return 0;
	}
	text = strndup((const char *)data + 1, size - 1);
	if (!text)
		return 0;
	if (data[0] == 0)
		check_lines(&c, text);
	else
		check_topology(&c, text);
	free(text);
	call_done(&c);
	return 0;
}
