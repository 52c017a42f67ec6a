/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The table of CSI methods. Built from protobuf-c's service descriptors, so every method of every
 * CSI service is registered with the transport; the handlers below fill in what is implemented and
 * everything else answers UNIMPLEMENTED with the method's name.
 */
#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include "csi.pb-c.h"
#include "plugin/controller.h"
#include "plugin/group_controller.h"
#include "plugin/modify.h"
#include "plugin/node.h"
#include "plugin/plugin.h"
#include "plugin/snapshot.h"

struct handler_entry {
	const char *path;
	method_handler handler;
	unsigned modes;
	bool quiet;
	bool quick; /* answered without waiting behind slow calls (plugin/transport.h) */
};

#define ANY  PLUGIN_MODE_ALL
#define CTRL PLUGIN_MODE_CONTROLLER
#define NODE PLUGIN_MODE_NODE

static const struct handler_entry handlers[] = {
	{ "/csi.v1.Identity/GetPluginInfo", identity_get_plugin_info, ANY, false, true },
	{ "/csi.v1.Identity/GetPluginCapabilities", identity_get_plugin_capabilities, ANY, false,
	  true },
	{ "/csi.v1.Identity/Probe", identity_probe, ANY, true, true },
	{ "/csi.v1.Controller/CreateVolume", controller_create_volume, CTRL, false, false },
	{ "/csi.v1.Controller/DeleteVolume", controller_delete_volume, CTRL, false, false },
	{ "/csi.v1.Controller/ControllerPublishVolume", controller_publish_volume, CTRL, false,
	  false },
	{ "/csi.v1.Controller/ControllerUnpublishVolume", controller_unpublish_volume, CTRL, false,
	  false },
	{ "/csi.v1.Controller/ValidateVolumeCapabilities", controller_validate_volume_capabilities,
	  CTRL, false, false },
	{ "/csi.v1.Controller/ListVolumes", controller_list_volumes, CTRL, false, false },
	{ "/csi.v1.Controller/GetCapacity", controller_get_capacity, CTRL, false, false },
	{ "/csi.v1.Controller/ControllerGetCapabilities", controller_get_capabilities, CTRL, false,
	  true },
	{ "/csi.v1.Controller/ControllerExpandVolume", controller_expand_volume, CTRL, false,
	  false },
	{ "/csi.v1.Controller/ControllerGetVolume", controller_get_volume, CTRL, false, false },
	{ "/csi.v1.Controller/CreateSnapshot", controller_create_snapshot, CTRL, false, false },
	{ "/csi.v1.Controller/DeleteSnapshot", controller_delete_snapshot, CTRL, false, false },
	{ "/csi.v1.Controller/ListSnapshots", controller_list_snapshots, CTRL, false, false },
	{ "/csi.v1.Controller/GetSnapshot", controller_get_snapshot, CTRL, false, false },
	{ "/csi.v1.GroupController/GroupControllerGetCapabilities",
	  group_controller_get_capabilities, CTRL, false, true },
	{ "/csi.v1.GroupController/CreateVolumeGroupSnapshot",
	  group_controller_create_volume_group_snapshot, CTRL, false, false },
	{ "/csi.v1.GroupController/DeleteVolumeGroupSnapshot",
	  group_controller_delete_volume_group_snapshot, CTRL, false, false },
	{ "/csi.v1.GroupController/GetVolumeGroupSnapshot",
	  group_controller_get_volume_group_snapshot, CTRL, false, false },
	{ "/csi.v1.Controller/ControllerModifyVolume", controller_modify_volume, CTRL, false,
	  false },
	{ "/csi.v1.Node/NodeStageVolume", node_stage_volume, NODE, false, false },
	{ "/csi.v1.Node/NodeUnstageVolume", node_unstage_volume, NODE, false, false },
	{ "/csi.v1.Node/NodePublishVolume", node_publish_volume, NODE, false, false },
	{ "/csi.v1.Node/NodeUnpublishVolume", node_unpublish_volume, NODE, false, false },
	{ "/csi.v1.Node/NodeGetVolumeStats", node_get_volume_stats, NODE, false, false },
	{ "/csi.v1.Node/NodeExpandVolume", node_expand_volume, NODE, false, false },
	{ "/csi.v1.Node/NodeGetCapabilities", node_get_capabilities, NODE, false, true },
	{ "/csi.v1.Node/NodeGetInfo", node_get_info, NODE, false, true },
};

static const ProtobufCServiceDescriptor *const services[] = {
	&csi__v1__identity__descriptor,
	&csi__v1__controller__descriptor,
	&csi__v1__node__descriptor,
	&csi__v1__group_controller__descriptor,
	&csi__v1__snapshot_metadata__descriptor,
};

static struct method *table;
static size_t n_table;
static pthread_once_t table_once = PTHREAD_ONCE_INIT;

static void table_build(void)
{
	size_t n = 0, k = 0;

	for (size_t s = 0; s < ELEMENTSOF(services); s++)
		n += services[s]->n_methods;
	table = calloc(n, sizeof(struct method));
	if (!table)
		return;
	for (size_t s = 0; s < ELEMENTSOF(services); s++)
		for (unsigned i = 0; i < services[s]->n_methods; i++) {
			const ProtobufCMethodDescriptor *md = &services[s]->methods[i];
			struct method *m = &table[k++];
			char *path = NULL;

			if (asprintf(&path, "/%s/%s", services[s]->name, md->name) < 0) {
				k--;
				continue;
			}
			m->path = path;
			m->index = k - 1;
			m->name = md->name;
			m->input = md->input;
			m->output = md->output;
			for (size_t h = 0; h < ELEMENTSOF(handlers); h++)
				if (strcmp(handlers[h].path, path) == 0) {
					m->handler = handlers[h].handler;
					m->modes = handlers[h].modes;
					m->quiet = handlers[h].quiet;
					m->quick = handlers[h].quick;
				}
		}
	n_table = k;
}

const struct method *plugin_methods(size_t *ret_n)
{
	pthread_once(&table_once, table_build);
	*ret_n = n_table;
	return table;
}
