/* SPDX-License-Identifier: Apache-2.0 */
/* Unit tests of plugin/volume_topology.c: the topology recorded with a volume and read back. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "csi.pb-c.h"
#include "driver/ceph/volume.h"
#include "plugin/call.h"
#include "plugin/plugin.h"
#include "plugin/volume_topology.h"

static Csi__V1__Topology *topology_of(Csi__V1__Topology__SegmentsEntry *e,
                                      Csi__V1__Topology__SegmentsEntry **ptrs, size_t n,
                                      const char *const *kv, Csi__V1__Topology *t)
{
	csi__v1__topology__init(t);
	for (size_t i = 0; i < n; i++) {
		csi__v1__topology__segments_entry__init(&e[i]);
		e[i].key = (char *)kv[2 * i];
		e[i].value = (char *)kv[2 * i + 1];
		ptrs[i] = &e[i];
	}
	t->segments = ptrs;
	t->n_segments = n;
	return t;
}

/* The segments of v's single accessible topology as "k=v;k=v", or "" when it has none. */
static const char *segments(struct call *c, const Csi__V1__Volume *v)
{
	const char *s = "";

	if (v->n_accessible_topology == 0)
		return s;
	assert_int_equal(v->n_accessible_topology, 1);
	for (size_t i = 0; i < v->accessible_topology[0]->n_segments; i++)
		s = call_printf(c, "%s%s%s=%s", s, i ? ";" : "",
		                v->accessible_topology[0]->segments[i]->key,
		                v->accessible_topology[0]->segments[i]->value);
	return s;
}

static void test_volume_topology__pool_topology_recorded_and_read_back(void **state)
{
	/* Separators a text encoding would trip over, in keys and values. */
	const char *kv[] = { "topology.rbdcsi.io/zone", "a,b=c", "region", "\"east\"" };
	Csi__V1__Topology__SegmentsEntry e[2], *ptrs[2];
	Csi__V1__Topology t;
	struct plugin plugin = { 0 };
	struct call c = { .plugin = &plugin };
	char *own[] = { (char *)"topology.rbdcsi.io/zone=z9", NULL };
	struct volume vol = { 0 };
	Csi__V1__Volume v;
	const char *rec;

	(void)state;
	plugin.opt.topology = own;
	plugin.opt.n_topology = 1;
	assert_int_equal(volume_topology_record(&c, topology_of(e, ptrs, 2, kv, &t), &rec), 0);
	assert_non_null(rec);
	vol.topology = (char *)rec;
	csi__v1__volume__init(&v);
	assert_int_equal(volume_topology_add(&c, &vol, NULL, &v), 0);
	assert_string_equal(segments(&c, &v), "topology.rbdcsi.io/zone=a,b=c;region=\"east\"");
	call_done(&c);
}

static void test_volume_topology__controller_own_or_none(void **state)
{
	struct plugin plugin = { 0 };
	struct call c = { .plugin = &plugin };
	char *own[] = { (char *)"topology.rbdcsi.io/zone=z1", NULL };
	struct volume vol = { 0 };
	Csi__V1__Volume v;
	const char *rec;

	(void)state;
	/* No topology anywhere: nothing recorded, nothing reported. */
	assert_int_equal(volume_topology_record(&c, NULL, &rec), 0);
	assert_null(rec);
	csi__v1__volume__init(&v);
	assert_int_equal(volume_topology_add(&c, &vol, NULL, &v), 0);
	assert_int_equal(v.n_accessible_topology, 0);

	/* The controller's own --topology is what gets recorded without a pool topology. */
	plugin.opt.topology = own;
	plugin.opt.n_topology = 1;
	assert_int_equal(volume_topology_record(&c, NULL, &rec), 0);
	assert_string_equal(rec, "{\"topology.rbdcsi.io/zone\":\"z1\"}");

	/* What was recorded wins over this controller's own. */
	vol.topology = (char *)"{\"topology.rbdcsi.io/zone\":\"b\"}";
	csi__v1__volume__init(&v);
	assert_int_equal(volume_topology_add(&c, &vol, NULL, &v), 0);
	assert_string_equal(segments(&c, &v), "topology.rbdcsi.io/zone=b");
	call_done(&c);
}

static void test_volume_topology__unrecorded_or_bad_falls_back(void **state)
{
	const char *kv[] = { "topology.rbdcsi.io/zone", "pool-zone" };
	const char *bad[] = {
		"", "not json", "[1,2]", "{}", "{\"k\":1}", "{\"k\":\"v\",\"n\":null}"
	};
	Csi__V1__Topology__SegmentsEntry e[1], *ptrs[1];
	Csi__V1__Topology t;
	struct plugin plugin = { 0 };
	struct call c = { .plugin = &plugin };
	char *own[] = { (char *)"topology.rbdcsi.io/zone=z1", NULL };
	struct volume vol = { 0 };
	Csi__V1__Volume v;

	(void)state;
	plugin.opt.topology = own;
	plugin.opt.n_topology = 1;
	/* Not recorded (made before it was): the fallback CreateVolume passes, else the own. */
	csi__v1__volume__init(&v);
	assert_int_equal(volume_topology_add(&c, &vol, topology_of(e, ptrs, 1, kv, &t), &v), 0);
	assert_string_equal(segments(&c, &v), "topology.rbdcsi.io/zone=pool-zone");
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		vol.topology = (char *)bad[i];
		csi__v1__volume__init(&v);
		assert_int_equal(volume_topology_add(&c, &vol, NULL, &v), 0);
		assert_string_equal(segments(&c, &v), "topology.rbdcsi.io/zone=z1");
	}
	call_done(&c);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_volume_topology__pool_topology_recorded_and_read_back),
		cmocka_unit_test(test_volume_topology__controller_own_or_none),
		cmocka_unit_test(test_volume_topology__unrecorded_or_bad_falls_back),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
