/* SPDX-License-Identifier: Apache-2.0 */
/* The CSI Node service. */
#include <string.h>

#include "csi.pb-c.h"
#include "plugin/capabilities.h"
#include "plugin/node.h"
#include "plugin/plugin.h"

int node_get_capabilities(struct call *c, const void *request, void *response)
{
	Csi__V1__NodeGetCapabilitiesResponse *resp = response;
	const struct capability *caps;
	size_t n = capabilities_node(&c->plugin->opt, &caps);

	(void)request;
	resp->capabilities = call_alloc(c, (n + 1) * sizeof(*resp->capabilities));
	if (!resp->capabilities)
		return -ENOMEM;
	for (size_t i = 0; i < n; i++) {
		Csi__V1__NodeServiceCapability *sc = call_alloc(c, sizeof(*sc));
		Csi__V1__NodeServiceCapability__RPC *rpc = call_alloc(c, sizeof(*rpc));

		if (!sc || !rpc)
			return -ENOMEM;
		csi__v1__node_service_capability__init(sc);
		csi__v1__node_service_capability__rpc__init(rpc);
		rpc->type = caps[i].value;
		sc->type_case = CSI__V1__NODE_SERVICE_CAPABILITY__TYPE_RPC;
		sc->rpc = rpc;
		resp->capabilities[resp->n_capabilities++] = sc;
	}
	return 0;
}

int node_get_info(struct call *c, const void *request, void *response)
{
	Csi__V1__NodeGetInfoResponse *resp = response;
	const struct plugin_options *o = &c->plugin->opt;

	(void)request;
	resp->node_id = (char *)o->node_id;
	resp->max_volumes_per_node = o->max_volumes_per_node;
	if (o->n_topology > 0) {
		Csi__V1__Topology *t = call_alloc(c, sizeof(*t));

		if (!t)
			return -ENOMEM;
		csi__v1__topology__init(t);
		t->segments = call_alloc(c, o->n_topology * sizeof(*t->segments));
		if (!t->segments)
			return -ENOMEM;
		for (size_t i = 0; i < o->n_topology; i++) {
			Csi__V1__Topology__SegmentsEntry *e = call_alloc(c, sizeof(*e));
			const char *eq = strchr(o->topology[i], '=');

			if (!e || !eq)
				return -ENOMEM;
			csi__v1__topology__segments_entry__init(e);
			e->key = call_printf(c, "%.*s", (int)(eq - o->topology[i]), o->topology[i]);
			e->value = (char *)eq + 1;
			if (!e->key)
				return -ENOMEM;
			t->segments[t->n_segments++] = e;
		}
		resp->accessible_topology = t;
	}
	return 0;
}
