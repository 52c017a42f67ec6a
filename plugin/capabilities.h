/* SPDX-License-Identifier: Apache-2.0 */
/*
 * What the plugin advertises, in one place: GetPluginCapabilities, ControllerGetCapabilities,
 * NodeGetCapabilities and --dry-run all read these lists, so the manifests' checks and the
 * handlers cannot disagree. Only what is really implemented is listed.
 */
#pragma once

#include <stddef.h>

#include "plugin/plugin.h"

struct capability {
	int value;        /* the CSI enum value */
	const char *name; /* the CSI enum name, e.g. "CREATE_DELETE_VOLUME" */
};

/* PluginCapability.Service types; VolumeExpansion is reported separately. */
size_t capabilities_plugin_service(const struct plugin_options *o, const struct capability **ret);
/* The VolumeExpansion type (ONLINE) or NULL when expansion is not supported. */
const struct capability *capabilities_plugin_expansion(const struct plugin_options *o);
size_t capabilities_controller(const struct plugin_options *o, const struct capability **ret);
size_t capabilities_node(const struct plugin_options *o, const struct capability **ret);

/*
 * The plugin's own topology (--topology KEY=VALUE segments) as a CSI Topology allocated on the
 * call (freed with it) in *ret, or NULL when there is none. Errors: -ENOMEM.
 */
struct call;
struct Csi__V1__Topology;
int capabilities_topology(struct call *c, struct Csi__V1__Topology **ret);

/* Writes the lists as JSON arrays of names into a json-c object (for --dry-run). */
struct json_object;
void capabilities_to_json(const struct plugin_options *o, struct json_object *obj);
