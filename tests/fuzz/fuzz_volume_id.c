/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Fuzz target for driver/ceph/volume_id.c: volume ids come from the CO (untrusted). Decodes the
 * input; when it is accepted, re-encoding must give back exactly the same bytes (the decoder
 * accepts only canonical encodings), and decoding that again must give the same fields.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "driver/ceph/volume_id.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char in[VOLUME_ID_MAX + 2];
	char out[VOLUME_ID_MAX + 1];
	struct volume_id id, again;
	int n;

	/* Longer inputs are rejected by length alone; still feed a truncated copy through. */
	if (size > VOLUME_ID_MAX + 1)
		size = VOLUME_ID_MAX + 1;
	memcpy(in, data, size);
	in[size] = 0;

	/* Callers hand over C strings: an embedded NUL ends the id there. */
	size = strlen(in);

	if (volume_id_decode(in, &id) < 0)
		return 0;
	n = volume_id_encode(&id, out);
	if (n < 0 || (size_t)n != size || memcmp(out, in, size) != 0)
		abort();
	if (volume_id_decode(out, &again) < 0 || again.kind != id.kind ||
	    again.pool_id != id.pool_id || strcmp(again.cluster_id, id.cluster_id) != 0 ||
	    strcmp(again.rados_namespace, id.rados_namespace) != 0 ||
	    strcmp(again.uuid, id.uuid) != 0)
		abort();
	return 0;
}
