/* SPDX-License-Identifier: Apache-2.0 */
/* The CSI Controller service. */
#include "csi.pb-c.h"
#include "plugin/capabilities.h"
#include "plugin/controller.h"
#include "plugin/plugin.h"

int controller_get_capabilities(struct call *c, const void *request, void *response)
{
	Csi__V1__ControllerGetCapabilitiesResponse *resp = response;
	const struct capability *caps;
	size_t n = capabilities_controller(&c->plugin->opt, &caps);

	(void)request;
	resp->capabilities = call_alloc(c, (n + 1) * sizeof(*resp->capabilities));
	if (!resp->capabilities)
		return -ENOMEM;
	for (size_t i = 0; i < n; i++) {
		Csi__V1__ControllerServiceCapability *sc = call_alloc(c, sizeof(*sc));
		Csi__V1__ControllerServiceCapability__RPC *rpc = call_alloc(c, sizeof(*rpc));

		if (!sc || !rpc)
			return -ENOMEM;
		csi__v1__controller_service_capability__init(sc);
		csi__v1__controller_service_capability__rpc__init(rpc);
		rpc->type = caps[i].value;
		sc->type_case = CSI__V1__CONTROLLER_SERVICE_CAPABILITY__TYPE_RPC;
		sc->rpc = rpc;
		resp->capabilities[resp->n_capabilities++] = sc;
	}
	return 0;
}
