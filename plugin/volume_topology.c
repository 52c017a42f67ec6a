/* SPDX-License-Identifier: Apache-2.0 */
#include <errno.h>
#include <string.h>

#include <json-c/json.h>

#include "csi.pb-c.h"
#include "driver/base/log.h"
#include "driver/base/macro.h"
#include "driver/ceph/volume.h"
#include "plugin/call.h"
#include "plugin/capabilities.h"
#include "plugin/volume_topology.h"

DEFINE_TRIVIAL_CLEANUP_FUNC(json_object *, json_object_put)

int volume_topology_record(struct call *c, const Csi__V1__Topology *pool_topology, const char **ret)
{
	_cleanup_(json_object_putp) json_object *o = NULL;
	const Csi__V1__Topology *t = pool_topology;
	const char *s;
	int r;

	*ret = NULL;
	if (!t) {
		Csi__V1__Topology *own;

		r = capabilities_topology(c, &own);
		if (r < 0)
			return r;
		t = own;
	}
	if (!t || t->n_segments == 0)
		return 0;
	o = json_object_new_object();
	if (!o)
		return -ENOMEM;
	for (size_t i = 0; i < t->n_segments; i++) {
		json_object *v = json_object_new_string(strempty(t->segments[i]->value));

		if (!v || json_object_object_add(o, strempty(t->segments[i]->key), v) < 0) {
			json_object_put(v);
			return -ENOMEM;
		}
	}
	s = json_object_to_json_string_ext(o,
	                                   JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE);
	if (!s)
		return -ENOMEM;
	*ret = call_strdup(c, s);
	return *ret ? 0 : -ENOMEM;
}

/* The recorded form back as a Topology; NULL in *ret when it is not a JSON object of strings. */
static int topology_parse(struct call *c, const char *s, Csi__V1__Topology **ret)
{
	_cleanup_(json_object_putp) json_object *o = json_tokener_parse(s);
	Csi__V1__Topology *t;
	size_t n = 0;

	*ret = NULL;
	if (!o || !json_object_is_type(o, json_type_object) || json_object_object_length(o) == 0)
		return 0;
	t = call_alloc(c, sizeof(*t));
	if (!t)
		return -ENOMEM;
	csi__v1__topology__init(t);
	t->segments = call_alloc(c, (size_t)json_object_object_length(o) * sizeof(*t->segments));
	if (!t->segments)
		return -ENOMEM;
	json_object_object_foreach(o, key, val)
	{
		Csi__V1__Topology__SegmentsEntry *e;

		if (!json_object_is_type(val, json_type_string))
			return 0;
		e = call_alloc(c, sizeof(*e));
		if (!e)
			return -ENOMEM;
		csi__v1__topology__segments_entry__init(e);
		e->key = call_strdup(c, key);
		e->value = call_strdup(c, json_object_get_string(val));
		if (!e->key || !e->value)
			return -ENOMEM;
		t->segments[n++] = e;
	}
	t->n_segments = n;
	*ret = t;
	return 0;
}

int volume_topology_add(struct call *c, const struct volume *vol, Csi__V1__Topology *fallback,
                        Csi__V1__Volume *v)
{
	Csi__V1__Topology *t = NULL;
	int r;

	if (!isempty(vol->topology)) {
		r = topology_parse(c, vol->topology, &t);
		if (r < 0)
			return r;
		if (!t)
			log_warning("Volume '%s' recorded a topology that is no JSON object of "
			            "strings; reporting the controller's own",
			            vol->id);
	}
	if (!t)
		t = fallback;
	if (!t) {
		r = capabilities_topology(c, &t);
		if (r < 0)
			return r;
	}
	if (!t)
		return 0;
	v->accessible_topology = call_alloc(c, sizeof(*v->accessible_topology));
	if (!v->accessible_topology)
		return -ENOMEM;
	v->accessible_topology[0] = t;
	v->n_accessible_topology = 1;
	return 0;
}
