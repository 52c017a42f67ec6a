/* SPDX-License-Identifier: Apache-2.0 */
#include <errno.h>
#include <string.h>

#include <json-c/json.h>

#include "csi.pb-c.h"
#include "plugin/call.h"
#include "plugin/capabilities.h"

#define CAP(prefix, name)           \
	{                           \
		prefix##name, #name \
	}

static const struct capability plugin_with_topology[] = {
	CAP(CSI__V1__PLUGIN_CAPABILITY__SERVICE__TYPE__, CONTROLLER_SERVICE),
	CAP(CSI__V1__PLUGIN_CAPABILITY__SERVICE__TYPE__, GROUP_CONTROLLER_SERVICE),
	CAP(CSI__V1__PLUGIN_CAPABILITY__SERVICE__TYPE__, VOLUME_ACCESSIBILITY_CONSTRAINTS),
};

static const struct capability plugin_expansion =
        CAP(CSI__V1__PLUGIN_CAPABILITY__VOLUME_EXPANSION__TYPE__, ONLINE);

#define CTRL_CAP(name) CAP(CSI__V1__CONTROLLER_SERVICE_CAPABILITY__RPC__TYPE__, name)

static const struct capability controller[] = {
	CTRL_CAP(CREATE_DELETE_VOLUME),
	CTRL_CAP(PUBLISH_UNPUBLISH_VOLUME),
	CTRL_CAP(LIST_VOLUMES),
	CTRL_CAP(GET_CAPACITY),
	CTRL_CAP(EXPAND_VOLUME),
	CTRL_CAP(LIST_VOLUMES_PUBLISHED_NODES),
	CTRL_CAP(GET_VOLUME),
	CTRL_CAP(VOLUME_CONDITION),
	CTRL_CAP(PUBLISH_READONLY),
	CTRL_CAP(SINGLE_NODE_MULTI_WRITER),
	CTRL_CAP(CREATE_DELETE_SNAPSHOT),
	CTRL_CAP(LIST_SNAPSHOTS),
	/* GetSnapshot is served but GET_SNAPSHOT (alpha in CSI 1.12) is not advertised:
	 * csi-sanity v5.4.0 fails on capabilities it does not know. */
	CTRL_CAP(CLONE_VOLUME),
	CTRL_CAP(MODIFY_VOLUME), /* QoS: plugin/modify.c */
	{ 0, NULL },
};

#define NODE_CAP(name) CAP(CSI__V1__NODE_SERVICE_CAPABILITY__RPC__TYPE__, name)

static const struct capability node[] = {
	NODE_CAP(STAGE_UNSTAGE_VOLUME),
	NODE_CAP(GET_VOLUME_STATS),
	NODE_CAP(EXPAND_VOLUME),
	NODE_CAP(VOLUME_CONDITION),
	NODE_CAP(SINGLE_NODE_MULTI_WRITER), /* SINGLE_NODE_SINGLE_WRITER enforced at publish */
	{ 0, NULL },
};

size_t capabilities_plugin_service(const struct plugin_options *o, const struct capability **ret)
{
	size_t n = 0;

	/* CONTROLLER_SERVICE and GROUP_CONTROLLER_SERVICE only from a process that serves the
	 * controller. */
	*ret = plugin_with_topology;
	if (o->mode & PLUGIN_MODE_CONTROLLER)
		n = 2;
	if (o->n_topology > 0) {
		if (n == 0)
			*ret = plugin_with_topology + 2;
		n++;
	}
	return n;
}

const struct capability *capabilities_plugin_expansion(const struct plugin_options *o)
{
	/* Volumes grow while in use: the image online, the filesystem on the node. */
	return (o->mode & PLUGIN_MODE_CONTROLLER) ? &plugin_expansion : NULL;
}

size_t capabilities_controller(const struct plugin_options *o, const struct capability **ret)
{
	*ret = controller;
	if (!(o->mode & PLUGIN_MODE_CONTROLLER))
		return 0;
	return ELEMENTSOF(controller) - 1;
}

size_t capabilities_node(const struct plugin_options *o, const struct capability **ret)
{
	*ret = node;
	if (!(o->mode & PLUGIN_MODE_NODE))
		return 0;
	return ELEMENTSOF(node) - 1;
}

static json_object *names(const struct capability *c, size_t n)
{
	json_object *a = json_object_new_array();

	for (size_t i = 0; a && i < n; i++)
		json_object_array_add(a, json_object_new_string(c[i].name));
	return a;
}

void capabilities_to_json(const struct plugin_options *o, json_object *obj)
{
	const struct capability *c, *e;
	json_object *a;
	size_t n;

	n = capabilities_plugin_service(o, &c);
	a = names(c, n);
	e = capabilities_plugin_expansion(o);
	if (a && e)
		json_object_array_add(a, json_object_new_string(e->name));
	json_object_object_add(obj, "plugin_capabilities", a);
	n = capabilities_controller(o, &c);
	json_object_object_add(obj, "controller_capabilities", names(c, n));
	n = capabilities_node(o, &c);
	json_object_object_add(obj, "node_capabilities", names(c, n));
}

int capabilities_topology(struct call *c, Csi__V1__Topology **ret)
{
	const struct plugin_options *o = &c->plugin->opt;
	Csi__V1__Topology *t;

	*ret = NULL;
	if (o->n_topology == 0)
		return 0;
	t = call_alloc(c, sizeof(*t));
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
	*ret = t;
	return 0;
}
