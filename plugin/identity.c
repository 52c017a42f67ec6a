/* SPDX-License-Identifier: Apache-2.0 */
/* The CSI Identity service: GetPluginInfo, GetPluginCapabilities, Probe. */
#include "csi.pb-c.h"
#include "plugin/capabilities.h"
#include "plugin/plugin.h"

int identity_get_plugin_info(struct call *c, const void *request, void *response)
{
	Csi__V1__GetPluginInfoResponse *resp = response;

	(void)request;
	resp->name = (char *)c->plugin->opt.driver_name;
	resp->vendor_version = (char *)RBDCSI_VERSION;
	return 0;
}

int identity_get_plugin_capabilities(struct call *c, const void *request, void *response)
{
	Csi__V1__GetPluginCapabilitiesResponse *resp = response;
	const struct plugin_options *o = &c->plugin->opt;
	const struct capability *caps, *expansion;
	size_t n = capabilities_plugin_service(o, &caps);

	(void)request;
	expansion = capabilities_plugin_expansion(o);
	resp->capabilities = call_alloc(c, (n + 1) * sizeof(*resp->capabilities));
	if (!resp->capabilities)
		return -ENOMEM;
	for (size_t i = 0; i < n; i++) {
		Csi__V1__PluginCapability *pc = call_alloc(c, sizeof(*pc));
		Csi__V1__PluginCapability__Service *s = call_alloc(c, sizeof(*s));

		if (!pc || !s)
			return -ENOMEM;
		csi__v1__plugin_capability__init(pc);
		csi__v1__plugin_capability__service__init(s);
		s->type = caps[i].value;
		pc->type_case = CSI__V1__PLUGIN_CAPABILITY__TYPE_SERVICE;
		pc->service = s;
		resp->capabilities[resp->n_capabilities++] = pc;
	}
	if (expansion) {
		Csi__V1__PluginCapability *pc = call_alloc(c, sizeof(*pc));
		Csi__V1__PluginCapability__VolumeExpansion *x = call_alloc(c, sizeof(*x));

		if (!pc || !x)
			return -ENOMEM;
		csi__v1__plugin_capability__init(pc);
		csi__v1__plugin_capability__volume_expansion__init(x);
		x->type = expansion->value;
		pc->type_case = CSI__V1__PLUGIN_CAPABILITY__TYPE_VOLUME_EXPANSION;
		pc->volume_expansion = x;
		resp->capabilities[resp->n_capabilities++] = pc;
	}
	return 0;
}

int identity_probe(struct call *c, const void *request, void *response)
{
	Csi__V1__ProbeResponse *resp = response;
	Google__Protobuf__BoolValue *ready = call_alloc(c, sizeof(*ready));

	(void)request;
	if (!ready)
		return -ENOMEM;
	google__protobuf__bool_value__init(ready);
	ready->value = atomic_load(&c->plugin->ready);
	resp->ready = ready;
	return 0;
}
