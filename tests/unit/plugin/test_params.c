/* SPDX-License-Identifier: Apache-2.0 */
/* Unit tests of plugin/params.c: StorageClass parameters, capabilities, capacity ranges. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "plugin/params.h"

#define MiB (1024LL * 1024)

typedef Csi__V1__CreateVolumeRequest__ParametersEntry Entry;

static int parse(const char *const *kv, size_t n, struct volume_params *p, struct call *c)
{
	Entry e[16];
	Entry *ptrs[16];

	for (size_t i = 0; i < n; i++) {
		csi__v1__create_volume_request__parameters_entry__init(&e[i]);
		e[i].key = (char *)kv[2 * i];
		e[i].value = (char *)kv[2 * i + 1];
		ptrs[i] = &e[i];
	}
	return params_parse(c, ptrs, n, p);
}

static void test_params__defaults_and_required(void **state)
{
	const char *ok[] = { "clusterID", "c1", "pool", "rbd", "csi.storage.k8s.io/pvc/name", "x" };
	const char *no_pool[] = { "clusterID", "c1" };
	struct call c = { 0 };
	struct volume_params p;

	(void)state;
	assert_int_equal(parse(ok, 3, &p, &c), 0);
	assert_string_equal(p.cluster_id, "c1");
	assert_string_equal(p.pool, "rbd");
	assert_string_equal(p.image_features, "layering");
	assert_string_equal(p.fs_type, "ext4");
	assert_string_equal(p.mounter, "auto");
	assert_string_equal(p.pvc_name, "x");
	assert_int_equal(parse(no_pool, 1, &p, &c), -EINVAL);
	assert_int_equal(c.code, STATUS_INVALID_ARGUMENT);
	assert_non_null(strstr(c.log.error_message, "pool is required"));
	call_done(&c);
}

static void test_params__unknown_key_is_named(void **state)
{
	const char *kv[] = { "clusterID", "c1", "pool", "rbd", "imageFeaturs", "layering" };
	struct call c = { 0 };
	struct volume_params p;

	(void)state;
	assert_int_equal(parse(kv, 3, &p, &c), -EINVAL);
	assert_non_null(strstr(c.log.error_message, "'imageFeaturs'"));
	call_done(&c);
}

static void test_params__bad_values_rejected(void **state)
{
	const char *cases[][2] = {
		{ "imageFormat", "1" },    { "mounter", "kernel" },    { "fsType", "btrfs" },
		{ "pool", "a/b" },         { "volumeNamePrefix", "" }, { "mapOptions", "a b" },
		{ "clusterID", "bad id" },
	};

	(void)state;
	for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
		const char *kv[] = { "clusterID", "c1", "pool", "rbd", cases[i][0], cases[i][1] };
		struct call c = { 0 };
		struct volume_params p;

		assert_int_equal(parse(kv, 3, &p, &c), -EINVAL);
		assert_non_null(strstr(c.log.error_message, cases[i][0]));
		call_done(&c);
	}
}

/* Options by allowlist and names that a Ceph tool cannot read as options (issue 12). */
static void test_params__options_allowlisted_and_names_checked(void **state)
{
	const char *cases[][3] = {
		{ "mkfsOptions", "-d etc", "mkfsOptions: mkfs option '-d' not allowed" },
		{ "mkfsOptions", "-qdetc", "mkfsOptions: mkfs option '-d' not allowed" },
		{ "mkfsOptions", "-E root_owner=0:0", "'-E root_owner' not allowed" },
		{ "mapOptions", "nbd:log_file=x", "mapOptions: nbd: map option 'log_file'" },
		{ "mapOptions", "nbd:admin_socket=x", "map option 'admin_socket' is not allowed" },
		{ "mapOptions", "krbd:secret=x", "map option 'secret' is not allowed" },
		{ "unmapOptions", "krbd:lazy", "unmapOptions: krbd: unmap option 'lazy'" },
		{ "pool", "-c", "pool '-c'" },
		{ "radosNamespace", "--id", "radosNamespace '--id'" },
		{ "volumeNamePrefix", "-c", "volumeNamePrefix '-c'" },
	};
	const char *ok[] = { "clusterID",   "c1",
		             "pool",        "rbd",
		             "mkfsOptions", "-m0 -L x -E nodiscard",
		             "mapOptions",  "krbd:lock_on_read;nbd:try_netlink,io-timeout=30" };
	const char *xfs[] = { "clusterID", "c1",  "pool",        "rbd",
		              "fsType",    "xfs", "mkfsOptions", "-p proto" };
	struct call c = { 0 };
	struct volume_params p;

	(void)state;
	for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
		const char *kv[] = { "clusterID", "c1", "pool", "rbd", cases[i][0], cases[i][1] };

		c = (struct call){ 0 };
		assert_int_equal(parse(kv, 3, &p, &c), -EINVAL);
		assert_int_equal(c.code, STATUS_INVALID_ARGUMENT);
		if (!strstr(c.log.error_message, cases[i][2]))
			print_message("'%s': %s\n", cases[i][1], c.log.error_message);
		assert_non_null(strstr(c.log.error_message, cases[i][2]));
		call_done(&c);
	}
	c = (struct call){ 0 };
	assert_int_equal(parse(ok, 4, &p, &c), 0);
	assert_int_equal(parse(xfs, 4, &p, &c), -EINVAL);
	assert_non_null(strstr(c.log.error_message, "'-p' not allowed for xfs"));
	call_done(&c);

	/* NodeStageVolume's re-check of a volume context that no CreateVolume saw. */
	c = (struct call){ 0 };
	assert_int_equal(params_check_stage_context(&c, "rbd", NULL, "img", "ext4", "-m0",
	                                            "krbd:lock_on_read", "krbd:force"),
	                 0);
	assert_int_equal(
	        params_check_stage_context(&c, "rbd", "", "img", NULL, "-d etc", NULL, NULL),
	        0); /* block: no mkfs */
	assert_int_equal(
	        params_check_stage_context(&c, "rbd", NULL, "--id=admin", "ext4", NULL, NULL, NULL),
	        -EINVAL);
	assert_non_null(strstr(c.log.error_message, "volume_context: imageName '--id=admin'"));
	call_done(&c);
	c = (struct call){ 0 };
	assert_int_equal(
	        params_check_stage_context(&c, "rbd", NULL, "img", "ext4", "-d etc", NULL, NULL),
	        -EINVAL);
	assert_non_null(strstr(c.log.error_message, "volume_context: mkfsOptions: mkfs option "
	                                            "'-d' not allowed"));
	call_done(&c);
	c = (struct call){ 0 };
	assert_int_equal(params_check_stage_context(&c, "-c", NULL, "img", NULL, NULL, NULL, NULL),
	                 -EINVAL);
	call_done(&c);
	c = (struct call){ 0 };
	assert_int_equal(params_check_stage_context(&c, "rbd", NULL, "img", NULL, NULL,
	                                            "nbd:log_file=x", NULL),
	                 -EINVAL);
	assert_non_null(strstr(c.log.error_message, "volume_context: mapOptions"));
	call_done(&c);
}

static void test_params__fstype_from_provisioner_wins_and_must_agree(void **state)
{
	const char *k8s[] = { "clusterID", "c", "pool", "p", "csi.storage.k8s.io/fstype", "xfs" };
	const char *clash[] = { "clusterID", "c",      "pool", "p", "csi.storage.k8s.io/fstype",
		                "xfs",       "fsType", "ext4" };
	struct call c = { 0 };
	struct volume_params p;

	(void)state;
	assert_int_equal(parse(k8s, 3, &p, &c), 0);
	assert_string_equal(p.fs_type, "xfs");
	assert_int_equal(parse(clash, 4, &p, &c), -EINVAL);
	call_done(&c);
}

static Csi__V1__VolumeCapability *cap(Csi__V1__VolumeCapability *vc,
                                      Csi__V1__VolumeCapability__AccessMode *am,
                                      Csi__V1__VolumeCapability__MountVolume *mv,
                                      Csi__V1__VolumeCapability__BlockVolume *bv, int mode,
                                      bool block)
{
	csi__v1__volume_capability__init(vc);
	csi__v1__volume_capability__access_mode__init(am);
	am->mode = mode;
	vc->access_mode = am;
	if (block) {
		csi__v1__volume_capability__block_volume__init(bv);
		vc->access_type_case = CSI__V1__VOLUME_CAPABILITY__ACCESS_TYPE_BLOCK;
		vc->block = bv;
	} else {
		csi__v1__volume_capability__mount_volume__init(mv);
		vc->access_type_case = CSI__V1__VOLUME_CAPABILITY__ACCESS_TYPE_MOUNT;
		vc->mount = mv;
	}
	return vc;
}

static void test_params__access_modes(void **state)
{
	Csi__V1__VolumeCapability vc;
	Csi__V1__VolumeCapability__AccessMode am;
	Csi__V1__VolumeCapability__MountVolume mv;
	Csi__V1__VolumeCapability__BlockVolume bv;
	Csi__V1__VolumeCapability *list[1] = { &vc };
	struct access_summary a;
	struct call c = { 0 };

	(void)state;
	cap(&vc, &am, &mv, &bv,
	    CSI__V1__VOLUME_CAPABILITY__ACCESS_MODE__MODE__MULTI_NODE_MULTI_WRITER, true);
	assert_int_equal(params_check_capabilities(&c, "volume_capabilities", list, 1, &a), 0);
	assert_true(a.block && a.multi_node && !a.read_only);

	cap(&vc, &am, &mv, &bv,
	    CSI__V1__VOLUME_CAPABILITY__ACCESS_MODE__MODE__MULTI_NODE_MULTI_WRITER, false);
	assert_int_equal(params_check_capabilities(&c, "volume_capabilities", list, 1, &a),
	                 -EINVAL);

	cap(&vc, &am, &mv, &bv,
	    CSI__V1__VOLUME_CAPABILITY__ACCESS_MODE__MODE__MULTI_NODE_READER_ONLY, false);
	assert_int_equal(params_check_capabilities(&c, "volume_capabilities", list, 1, &a), 0);
	assert_true(a.mount && a.read_only);

	cap(&vc, &am, &mv, &bv, CSI__V1__VOLUME_CAPABILITY__ACCESS_MODE__MODE__UNKNOWN, false);
	assert_int_equal(params_check_capabilities(&c, "volume_capabilities", list, 1, &a),
	                 -EINVAL);
	assert_int_equal(params_check_capabilities(&c, "volume_capabilities", list, 0, &a),
	                 -EINVAL);

	cap(&vc, &am, &mv, &bv, CSI__V1__VOLUME_CAPABILITY__ACCESS_MODE__MODE__SINGLE_NODE_WRITER,
	    false);
	mv.fs_type = (char *)"zfs";
	assert_int_equal(params_check_capabilities(&c, "volume_capabilities", list, 1, &a),
	                 -EINVAL);
	assert_non_null(strstr(c.log.error_message, "zfs"));
	call_done(&c);
}

/* seLinuxMount: true on the CSIDriver: the kubelet's context="..." flag is accepted as it is
 * (quotes and the level's commas), any other quoting is not. */
static void test_params__selinux_context_mount_flag(void **state)
{
	Csi__V1__VolumeCapability vc;
	Csi__V1__VolumeCapability__AccessMode am;
	Csi__V1__VolumeCapability__MountVolume mv;
	Csi__V1__VolumeCapability__BlockVolume bv;
	Csi__V1__VolumeCapability *list[1] = { &vc };
	struct access_summary a;
	struct call c = { 0 };
	char *good[] = { (char *)"noatime",
		         (char *)"context=\"system_u:object_r:container_file_t:s0:c12,c345\"" };
	const char *const bad[] = {
		"context=\"system_u:object_r:container_file_t:s0\",nosuid=\"x\"",
		"context=\"a b\"",
		"context=\"\"",
		"context=system_u\"",
		"fscontext=\"system_u:object_r:container_file_t:s0\"",
		"context=\"x;y\"",
	};

	(void)state;
	cap(&vc, &am, &mv, &bv, CSI__V1__VOLUME_CAPABILITY__ACCESS_MODE__MODE__SINGLE_NODE_WRITER,
	    false);
	mv.mount_flags = good;
	mv.n_mount_flags = 2;
	assert_int_equal(params_check_capabilities(&c, "volume_capability", list, 1, &a), 0);
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		char *one[1] = { (char *)bad[i] };

		mv.mount_flags = one;
		mv.n_mount_flags = 1;
		assert_int_equal(params_check_capabilities(&c, "volume_capability", list, 1, &a),
		                 -EINVAL);
	}
	call_done(&c);
}

static void test_params__capacity_rounding_and_limits(void **state)
{
	Csi__V1__CapacityRange r;
	struct call c = { 0 };
	uint64_t size;

	(void)state;
	assert_int_equal(params_capacity(&c, NULL, &size), 0);
	assert_int_equal(size, PARAMS_DEFAULT_SIZE);

	csi__v1__capacity_range__init(&r);
	r.required_bytes = 1;
	assert_int_equal(params_capacity(&c, &r, &size), 0);
	assert_int_equal(size, MiB);

	r.required_bytes = 10 * MiB + 1;
	r.limit_bytes = 11 * MiB;
	assert_int_equal(params_capacity(&c, &r, &size), 0);
	assert_int_equal(size, 11 * MiB);

	r.required_bytes = 10 * MiB + 1;
	r.limit_bytes = 10 * MiB + 100;
	assert_int_equal(params_capacity(&c, &r, &size), -EIO);
	assert_int_equal(c.code, STATUS_OUT_OF_RANGE);

	r.required_bytes = 0;
	r.limit_bytes = 5 * MiB;
	assert_int_equal(params_capacity(&c, &r, &size), 0);
	assert_int_equal(size, 5 * MiB);

	r.required_bytes = 20 * MiB;
	r.limit_bytes = 10 * MiB;
	assert_int_equal(params_capacity(&c, &r, &size), -EINVAL);

	r.required_bytes = -1;
	r.limit_bytes = 0;
	assert_int_equal(params_capacity(&c, &r, &size), -EINVAL);
	call_done(&c);
}

/* Every key of ceph-csi's examples/rbd/storageclass.yaml is implemented or refused with why. */
static void test_params__ceph_csi_keys_never_unknown(void **state)
{
	static const struct {
		const char *key, *value, *want; /* want NULL: accepted */
	} cases[] = {
		{ "stripeUnit", "65536", "stripeUnit and stripeCount must be given together" },
		{ "stripeCount", "4", "stripeUnit and stripeCount must be given together" },
		{ "objectSize", "8388608", NULL },
		{ "objectSize", "3000000", "objectSize '3000000' must be a power of two" },
		{ "objectSize", "67108864", "objectSize" },
		{ "tryOtherMounters", "true", NULL },
		{ "tryOtherMounters", "yes", "tryOtherMounters 'yes'" },
		{ "cephLogStrategy", "remove", NULL },
		{ "cephLogStrategy", "compress", "cephLogStrategy 'compress' is not supported" },
		{ "cephLogStrategy", "preserve", "only 'remove'" },
		{ "cephLogDir", "/var/log/ceph",
		  "'cephLogDir' (a ceph-csi parameter) is not supported" },
		{ "encrypted", "false", NULL },
		{ "encrypted", "true", NULL },
		{ "encrypted", "yes", "encrypted 'yes' is not 'true' or 'false'" },
		{ "encryptionKMSID", "", NULL },
		{ "encryptionKMSID", "metadata", NULL },
		{ "encryptionKMSID", "vault", "encryptionKMSID 'vault' names no KMS" },
		{ "encryptionType", "block", NULL },
		{ "encryptionType", "file", "encryptionType 'file' is not supported" },
		{ "encryptionCipher", "aes-xts-plain64", "the cipher is fixed" },
		{ "encryptionKeySize", "256", "the cipher is fixed" },
		{ "encryptionSectorSize", "4096", "sector size" },
		{ "integrityMode", "hmac-sha512", "dm-integrity" },
		{ "topologyConstrainedPools", "[]", "topologyConstrainedPools is not a JSON list" },
		{ "topologyConstrainedPools",
		  "[{\"poolName\":\"p1\",\"domainSegments\":[{\"domainLabel\":\"zone\","
		  "\"value\":\"a\"}]}]",
		  NULL },
		{ "topologyConstrainedPools", "[{\"poolName\":\"p1\",\"domainSegments\":[]}]",
		  "topologyConstrainedPools[0].domainSegments" },
		{ "topologyConstrainedPools",
		  "[{\"poolName\":\"p/1\",\"domainSegments\":[{\"domainLabel\":\"zone\","
		  "\"value\":\"a\"}]}]",
		  "topologyConstrainedPools[0].poolName 'p/1'" },
		{ "topologyConstrainedPools",
		  "[{\"poolname\":\"p1\",\"domainSegments\":[{\"domainLabel\":\"zone\","
		  "\"value\":\"a\"}]}]",
		  "field 'poolname' that is not poolName" },
		{ "thickProvision", "true", "thick provisioning was removed" },
		{ "mounter", "rbd", NULL },
		{ "mounter", "rbd-nbd", NULL },
	};

	(void)state;
	for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
		const char *kv[] = {
			"clusterID", "c1", "pool", "rbd", cases[i].key, cases[i].value
		};
		struct call c = { 0 };
		struct volume_params p;
		int r = parse(kv, 3, &p, &c);

		if (!cases[i].want) {
			if (r != 0)
				fail_msg("case %zu (%s): %s", i, cases[i].key, c.log.error_message);
		} else {
			assert_int_equal(r, -EINVAL);
			assert_int_equal(c.code, STATUS_INVALID_ARGUMENT);
			if (!strstr(c.log.error_message, cases[i].want))
				fail_msg("case %zu: '%s' does not contain '%s'", i,
				         c.log.error_message, cases[i].want);
			assert_null(strstr(c.log.error_message, "unknown"));
		}
		call_done(&c);
	}
}

/* encrypted and encryptionKMSID reach the parameters (and from there the volume context). */
static void test_params__encrypted(void **state)
{
	const char *on[] = { "clusterID",       "c1",      "pool", "rbd", "encrypted", "true",
		             "encryptionKMSID", "metadata" };
	const char *off[] = { "clusterID", "c1", "pool", "rbd", "encrypted", "false" };
	struct call c = { 0 };
	struct volume_params p;

	(void)state;
	assert_int_equal(parse(on, 4, &p, &c), 0);
	assert_true(p.encrypted);
	assert_string_equal(p.kms_id, "metadata");
	call_done(&c);
	memset(&c, 0, sizeof(c));
	assert_int_equal(parse(off, 3, &p, &c), 0);
	assert_false(p.encrypted);
	call_done(&c);
}

static void test_params__striping_and_mounters(void **state)
{
	const char *striped[] = { "clusterID", "c1",          "pool", "rbd",        "stripeUnit",
		                  "65536",     "stripeCount", "16",   "objectSize", "8388608" };
	const char *bad_unit[] = { "clusterID",  "c1",      "pool",        "rbd",
		                   "stripeUnit", "8388608", "stripeCount", "2" };
	const char *small_unit[] = { "clusterID",  "c1",  "pool",        "rbd",
		                     "stripeUnit", "512", "stripeCount", "2" };
	const char *rbd_fallback[] = { "clusterID",        "c1",  "pool", "rbd", "mounter", "rbd",
		                       "tryOtherMounters", "true" };
	const char *no_fallback[] = {
		"clusterID", "c1", "pool", "rbd", "tryOtherMounters", "false"
	};
	const char *nbd_keeps[] = { "clusterID",        "c1",  "pool", "rbd", "mounter", "rbd-nbd",
		                    "tryOtherMounters", "true" };
	struct call c = { 0 };
	struct volume_params p;

	(void)state;
	assert_int_equal(parse(striped, 5, &p, &c), 0);
	assert_int_equal(p.stripe_unit, 65536);
	assert_int_equal(p.stripe_count, 16);
	assert_int_equal(p.object_size, 8 * MiB);
	/* 8 MiB does not divide the default 4 MiB object. */
	assert_int_equal(parse(bad_unit, 4, &p, &c), -EINVAL);
	assert_non_null(strstr(c.log.error_message, "divides the object size (4194304"));
	call_done(&c);
	assert_int_equal(parse(small_unit, 4, &p, &c), -EINVAL);
	call_done(&c);
	assert_int_equal(parse(rbd_fallback, 4, &p, &c), 0);
	assert_string_equal(p.mounter, "auto");
	assert_int_equal(parse(no_fallback, 3, &p, &c), 0);
	assert_string_equal(p.mounter, "krbd");
	assert_int_equal(parse(nbd_keeps, 4, &p, &c), 0);
	assert_string_equal(p.mounter, "rbd-nbd");
	call_done(&c);
}

static int static_of(const char *handle, const char *const *kv, size_t n, struct static_volume *sv,
                     struct call *c)
{
	Entry e[8];
	void *ptrs[8];

	for (size_t i = 0; i < n; i++) {
		csi__v1__create_volume_request__parameters_entry__init(&e[i]);
		e[i].key = (char *)kv[2 * i];
		e[i].value = (char *)kv[2 * i + 1];
		ptrs[i] = &e[i];
	}
	return params_static_volume(c, handle, ptrs, n, sv);
}

static void test_params__static_volumes(void **state)
{
	const char *cephcsi[] = { "staticVolume", "true", "clusterID", "c1", "pool", "rbd" };
	const char *named[] = { "staticVolume", "true",  "clusterID",      "c1", "pool", "rbd",
		                "imageName",    "img-1", "radosNamespace", "ns" };
	const char *dynamic[] = { "clusterID", "c1", "pool", "rbd", "imageName", "csi-vol-x" };
	const char *bad_image[] = { "staticVolume", "true", "clusterID", "c1",
		                    "pool",         "rbd",  "imageName", "../x" };
	struct call c = { 0 };
	struct static_volume sv;

	(void)state;
	assert_int_equal(static_of("my-image", cephcsi, 3, &sv, &c), 1);
	assert_string_equal(sv.image, "my-image");
	assert_string_equal(sv.pool, "rbd");
	assert_null(sv.rados_namespace);
	assert_int_equal(static_of("handle", named, 5, &sv, &c), 1);
	assert_string_equal(sv.image, "img-1");
	assert_string_equal(sv.rados_namespace, "ns");
	/* rbdcsi's own ids and dynamic volumes are not static. */
	assert_int_equal(static_of("0001-v-02-c1-0000000000000002-00--a010aab6-9632-11ea-a13c-"
	                           "fea68445fd19",
	                           dynamic, 3, &sv, &c),
	                 0);
	assert_int_equal(static_of("c1/rbd/img", NULL, 0, &sv, &c), 1);
	assert_string_equal(sv.cluster_id, "c1");
	assert_string_equal(sv.image, "img");
	assert_null(sv.rados_namespace);
	assert_int_equal(static_of("c1/rbd/ns1/img", NULL, 0, &sv, &c), 1);
	assert_string_equal(sv.rados_namespace, "ns1");
	assert_string_equal(sv.image, "img");
	call_done(&c);
	assert_int_equal(static_of("c1/rbd", NULL, 0, &sv, &c), -EINVAL);
	call_done(&c);
	assert_int_equal(static_of("c1/rbd/-x", NULL, 0, &sv, &c), -EINVAL);
	assert_non_null(strstr(c.log.error_message, "image name '-x'"));
	call_done(&c);
	assert_int_equal(static_of("h", bad_image, 4, &sv, &c), -EINVAL);
	assert_int_equal(c.code, STATUS_INVALID_ARGUMENT);
	call_done(&c);
}

static Csi__V1__Topology *topo(Csi__V1__Topology *t, Csi__V1__Topology__SegmentsEntry *segs,
                               Csi__V1__Topology__SegmentsEntry **ptrs, const char *const *kv,
                               size_t n)
{
	csi__v1__topology__init(t);
	for (size_t i = 0; i < n; i++) {
		csi__v1__topology__segments_entry__init(&segs[i]);
		segs[i].key = (char *)kv[2 * i];
		segs[i].value = (char *)kv[2 * i + 1];
		ptrs[i] = &segs[i];
	}
	t->segments = ptrs;
	t->n_segments = n;
	return t;
}

static void test_params__topology_constrained_pools(void **state)
{
	const char *json = "[{\"poolName\":\"east-a\",\"domainSegments\":["
	                   "{\"domainLabel\":\"region\",\"value\":\"east\"},"
	                   "{\"domainLabel\":\"zone\",\"value\":\"a\"}]},"
	                   "{\"poolName\":\"east-b\",\"dataPool\":\"ec-b\",\"domainSegments\":["
	                   "{\"domainLabel\":\"region\",\"value\":\"east\"},"
	                   "{\"domainLabel\":\"zone\",\"value\":\"b\"}]}]";
	const char *zone_b[] = { "topology.rbdcsi.io/region", "east", "topology.rbdcsi.io/zone",
		                 "b" };
	const char *zone_a[] = { "region", "east", "zone", "a" };
	const char *zone_c[] = { "topology.rbdcsi.io/region", "east", "topology.rbdcsi.io/zone",
		                 "c" };
	Csi__V1__Topology tb, ta, tc, *req_ts[2];
	Csi__V1__Topology__SegmentsEntry sb[2], sa[2], sc[2], *pb[2], *pa[2], *pc[2];
	Csi__V1__TopologyRequirement req;
	struct topology_pool *pools;
	Csi__V1__Topology *got;
	struct call c = { 0 };
	size_t n, pick;

	(void)state;
	assert_int_equal(params_topology_pools(&c, json, &pools, &n), 0);
	assert_int_equal(n, 2);
	assert_string_equal(pools[1].pool, "east-b");
	assert_string_equal(pools[1].data_pool, "ec-b");
	assert_null(pools[0].data_pool);

	/* Requisite a, b; preferred b first: pool east-b, with the node's keys. */
	csi__v1__topology_requirement__init(&req);
	req_ts[0] = topo(&ta, sa, pa, zone_a, 2);
	req_ts[1] = topo(&tb, sb, pb, zone_b, 2);
	req.requisite = req_ts;
	req.n_requisite = 2;
	req.preferred = &req_ts[1];
	req.n_preferred = 1;
	assert_int_equal(params_topology_select(&c, pools, n, &req, &pick, &got), 0);
	assert_int_equal(pick, 1);
	assert_int_equal(got->n_segments, 2);
	assert_string_equal(got->segments[1]->key, "topology.rbdcsi.io/zone");
	assert_string_equal(got->segments[1]->value, "b");
	/* No preference: the first requisite topology that fits (zone a, plain keys). */
	req.n_preferred = 0;
	assert_int_equal(params_topology_select(&c, pools, n, &req, &pick, &got), 0);
	assert_int_equal(pick, 0);
	assert_string_equal(got->segments[1]->key, "zone");
	/* A zone without a pool. */
	req_ts[0] = topo(&tc, sc, pc, zone_c, 2);
	req.n_requisite = 1;
	assert_true(params_topology_select(&c, pools, n, &req, &pick, &got) < 0);
	assert_int_equal(c.code, STATUS_RESOURCE_EXHAUSTED);
	call_done(&c);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_params__defaults_and_required),
		cmocka_unit_test(test_params__unknown_key_is_named),
		cmocka_unit_test(test_params__bad_values_rejected),
		cmocka_unit_test(test_params__fstype_from_provisioner_wins_and_must_agree),
		cmocka_unit_test(test_params__options_allowlisted_and_names_checked),
		cmocka_unit_test(test_params__access_modes),
		cmocka_unit_test(test_params__selinux_context_mount_flag),
		cmocka_unit_test(test_params__capacity_rounding_and_limits),
		cmocka_unit_test(test_params__ceph_csi_keys_never_unknown),
		cmocka_unit_test(test_params__encrypted),
		cmocka_unit_test(test_params__striping_and_mounters),
		cmocka_unit_test(test_params__static_volumes),
		cmocka_unit_test(test_params__topology_constrained_pools),
	};

	log_set_max_level(LOG_LEVEL_ERROR);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
