/* SPDX-License-Identifier: Apache-2.0 */
#include <errno.h>
#include <string.h>

#include <json-c/json.h>

#include "driver/host/kms.h"
#include "driver/host/mapper.h"
#include "driver/host/options.h"
#include "plugin/config.h"
#include "plugin/params.h"

#define MiB (1024ULL * 1024)

/* Every key a StorageClass may carry. Anything else is a typo and rejected. */
static const char *const known_keys[] = {
	"clusterID",     "pool",        "dataPool",         "radosNamespace",
	"imageFeatures", "imageFormat", "volumeNamePrefix", "journalPool",
	"fsType",        "mkfsOptions", "mounter",          "mapOptions",
	"unmapOptions",
};

/* ceph-csi's keys that rbdcsi implements (deploy/README.md has the table). */
static const char *const ceph_csi_keys[] = {
	"stripeUnit",
	"stripeCount",
	"objectSize",
	"tryOtherMounters",
	"cephLogStrategy",
	"encrypted",
	"encryptionKMSID", /* "" or "metadata" (driver/host/kms.h) */
	"encryptionType",  /* "block" only */
	"topologyConstrainedPools",
};

/*
 * ceph-csi StorageClass keys that rbdcsi refuses, with the reason (never "unknown": a user coming
 * from ceph-csi learns why). The value-dependent ones (encrypted, cephLogStrategy) are checked
 * in params_parse().
 */
static const struct {
	const char *key;
	const char *why;
} refused_keys[] = {
	{ "encryptionCipher", "the cipher is fixed: aes-xts-plain64 with a 512-bit key" },
	{ "encryptionKeySize", "the cipher is fixed: aes-xts-plain64 with a 512-bit key" },
	{ "encryptionSectorSize", "the LUKS2 sector size is libcryptsetup's default" },
	{ "integrityMode", "volume encryption (dm-integrity) is not supported yet" },
	{ "cephLogDir",
	  "rbd-nbd and rbd-fuse logs are not kept in a log directory: rbd-nbd logs nowhere, "
	  "rbd-fuse logs next to its mount in the node's state directory and the log is removed at "
	  "unstage (cephLogStrategy 'remove')" },
	{ "thickProvision",
	  "thick provisioning was removed from ceph-csi (v3.6); images are thin" },
};

/* Parses a decimal byte count or count: digits only, > 0. */
static int parse_positive(const char *s, uint64_t *ret)
{
	uint64_t v = 0;

	if (isempty(s) || strspn(s, "0123456789") != strlen(s) || strlen(s) > 15)
		return -EINVAL;
	for (const char *p = s; *p; p++)
		v = v * 10 + (uint64_t)(*p - '0');
	if (v == 0)
		return -EINVAL;
	*ret = v;
	return 0;
}

static bool power_of_two(uint64_t v)
{
	return v && (v & (v - 1)) == 0;
}

/*
 * Checks ceph-csi's striping keys as librbd would take them: objectSize a power of two from
 * 4 KiB to 32 MiB; stripeUnit and stripeCount together; the stripe unit a power of two of at
 * least 4 KiB that divides the object size (4 MiB when objectSize is not given).
 */
static int check_layout(struct call *c, const char *su, const char *sc, const char *os,
                        struct volume_params *p)
{
	uint64_t object_size = 4 * MiB;

	if (os) {
		if (parse_positive(os, &p->object_size) < 0 || !power_of_two(p->object_size) ||
		    p->object_size < 4096 || p->object_size > 32 * MiB)
			return call_fail(c, STATUS_INVALID_ARGUMENT,
			                 "parameters: objectSize '%s' must be a power of two from "
			                 "4096 to 33554432 (bytes)",
			                 os);
		object_size = p->object_size;
	}
	if (!su != !sc)
		return call_fail(c, STATUS_INVALID_ARGUMENT,
		                 "parameters: stripeUnit and stripeCount must be given together");
	if (!su)
		return 0;
	if (parse_positive(su, &p->stripe_unit) < 0 || !power_of_two(p->stripe_unit) ||
	    p->stripe_unit < 4096 || object_size % p->stripe_unit != 0)
		return call_fail(c, STATUS_INVALID_ARGUMENT,
		                 "parameters: stripeUnit '%s' must be a power of two of at least "
		                 "4096 that divides the object size (%llu bytes)",
		                 su, (unsigned long long)object_size);
	if (parse_positive(sc, &p->stripe_count) < 0 || p->stripe_count > 4096)
		return call_fail(c, STATUS_INVALID_ARGUMENT,
		                 "parameters: stripeCount '%s' must be an integer from 1 to 4096",
		                 sc);
	return 0;
}

bool params_name_valid(const char *s, size_t max)
{
	size_t n;

	if (isempty(s))
		return false;
	n = strlen(s);
	/* No leading '-': a Ceph tool would read the name as an option. */
	return n <= max && s[0] != '-' &&
	       strspn(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-") == n;
}

const char *params_map_get(void *const *entries, size_t n, const char *key)
{
	/* All protobuf-c string maps share this layout: base, key, value. */
	for (size_t i = 0; i < n; i++) {
		const Csi__V1__CreateVolumeRequest__ParametersEntry *e = entries[i];
		if (e->key && strcmp(e->key, key) == 0)
			return e->value;
	}
	return NULL;
}

/*
 * The one place that checks the Ceph names of a static volume before they reach librbd or an
 * argv (rbd-nbd, rbd-fuse, the krbd sysfs string). Conservative: [A-Za-z0-9._-] for pool,
 * namespace and image, as params_name_valid(). Swap for the shared Ceph-name validator here.
 */
static bool static_name_valid(const char *s, size_t max)
{
	return params_name_valid(s, max) && s[0] != '.' && s[0] != '-';
}

int params_static_volume(struct call *c, const char *volume_id, void *const *context,
                         size_t n_context, struct static_volume *ret)
{
	const char *flag = params_map_get(context, n_context, "staticVolume");
	struct static_volume sv = { 0 };

	if (isempty(volume_id))
		return 0;
	if (flag && strcmp(flag, "true") != 0 && strcmp(flag, "false") != 0)
		return call_fail(c, STATUS_INVALID_ARGUMENT,
		                 "volume_context: staticVolume '%s' is not 'true' or 'false'",
		                 flag);
	if (flag && strcmp(flag, "true") == 0) {
		sv.cluster_id = params_map_get(context, n_context, "clusterID");
		sv.pool = params_map_get(context, n_context, "pool");
		sv.rados_namespace = params_map_get(context, n_context, "radosNamespace");
		sv.image = params_map_get(context, n_context, "imageName");
		if (isempty(sv.image))
			sv.image = volume_id;
		if (isempty(sv.cluster_id) || isempty(sv.pool))
			return call_fail(c, STATUS_INVALID_ARGUMENT,
			                 "volume_context: a static volume (staticVolume 'true') "
			                 "needs clusterID and pool");
	} else if (strchr(volume_id, '/')) {
		/* "<clusterID>/<pool>[/<namespace>]/<image>": rbdcsi's own ids have no '/'. */
		char *copy = call_strdup(c, volume_id), *f[5] = { 0 };
		size_t n = 0;

		if (!copy)
			return -ENOMEM;
		for (char *s = copy; s && n < 5; n++) {
			f[n] = s;
			s = strchr(s, '/');
			if (s)
				*s++ = 0;
		}
		if (n < 3 || n > 4 || f[n - 1] == NULL)
			return call_fail(c, STATUS_INVALID_ARGUMENT,
			                 "volume_id '%s': a static volume handle is "
			                 "<clusterID>/<pool>/<image> or "
			                 "<clusterID>/<pool>/<namespace>/<image>",
			                 volume_id);
		sv.cluster_id = f[0];
		sv.pool = f[1];
		sv.rados_namespace = n == 4 ? f[2] : NULL;
		sv.image = f[n - 1];
	} else
		return 0;
	if (isempty(sv.rados_namespace))
		sv.rados_namespace = NULL;
	if (!config_cluster_id_valid(sv.cluster_id))
		return call_fail(c, STATUS_INVALID_ARGUMENT,
		                 "static volume: clusterID '%s' is not 1-36 characters of "
		                 "[A-Za-z0-9._-]",
		                 sv.cluster_id);
	if (!static_name_valid(sv.pool, PARAMS_MAX_NAME_BYTES))
		return call_fail(c, STATUS_INVALID_ARGUMENT,
		                 "static volume: pool '%s' is not a valid pool name", sv.pool);
	if (sv.rados_namespace && !static_name_valid(sv.rados_namespace, 64))
		return call_fail(c, STATUS_INVALID_ARGUMENT,
		                 "static volume: radosNamespace '%s' is not a valid namespace name",
		                 sv.rados_namespace);
	if (!static_name_valid(sv.image, PARAMS_MAX_NAME_BYTES))
		return call_fail(c, STATUS_INVALID_ARGUMENT,
		                 "static volume: image name '%s' is not 1-128 characters of "
		                 "[A-Za-z0-9._-] (not starting with '.' or '-')",
		                 sv.image);
	*ret = sv;
	return 1;
}

static const char *json_str(json_object *o, const char *key)
{
	json_object *v;

	if (!json_object_object_get_ex(o, key, &v) || !json_object_is_type(v, json_type_string))
		return NULL;
	return json_object_get_string(v);
}

static int topology_entry(struct call *c, json_object *o, size_t i, struct topology_pool *ret)
{
	json_object *segs;
	const char *dp;

	if (!json_object_is_type(o, json_type_object))
		return call_fail(c, STATUS_INVALID_ARGUMENT,
		                 "parameters: topologyConstrainedPools[%zu] is not an object", i);
	json_object_object_foreach(o, key, val)
	{
		(void)val;
		if (strcmp(key, "poolName") != 0 && strcmp(key, "dataPool") != 0 &&
		    strcmp(key, "domainSegments") != 0)
			return call_fail(
			        c, STATUS_INVALID_ARGUMENT,
			        "parameters: topologyConstrainedPools[%zu] has a field '%.64s' "
			        "that is not poolName, dataPool or domainSegments",
			        i, key);
	}
	ret->pool = call_strdup(c, strempty(json_str(o, "poolName")));
	if (!ret->pool)
		return -ENOMEM;
	if (!params_name_valid(ret->pool, PARAMS_MAX_NAME_BYTES))
		return call_fail(c, STATUS_INVALID_ARGUMENT,
		                 "parameters: topologyConstrainedPools[%zu].poolName '%s' is not a "
		                 "valid pool name",
		                 i, ret->pool);
	dp = json_str(o, "dataPool");
	if (!isempty(dp)) {
		if (!params_name_valid(dp, PARAMS_MAX_NAME_BYTES))
			return call_fail(
			        c, STATUS_INVALID_ARGUMENT,
			        "parameters: topologyConstrainedPools[%zu].dataPool '%s' is "
			        "not a valid pool name",
			        i, dp);
		ret->data_pool = call_strdup(c, dp);
		if (!ret->data_pool)
			return -ENOMEM;
	}
	if (!json_object_object_get_ex(o, "domainSegments", &segs) ||
	    !json_object_is_type(segs, json_type_array) || json_object_array_length(segs) == 0 ||
	    json_object_array_length(segs) > PARAMS_TOPOLOGY_SEGMENTS_MAX)
		return call_fail(c, STATUS_INVALID_ARGUMENT,
		                 "parameters: topologyConstrainedPools[%zu].domainSegments must be "
		                 "a list of 1-%d {domainLabel, value} objects",
		                 i, PARAMS_TOPOLOGY_SEGMENTS_MAX);
	for (size_t k = 0; k < json_object_array_length(segs); k++) {
		json_object *seg = json_object_array_get_idx(segs, k);
		const char *label = json_str(seg, "domainLabel"), *value = json_str(seg, "value");

		if (isempty(label) || isempty(value) || strlen(label) > 253 || strlen(value) > 63 ||
		    strpbrk(label, " \t\n=") || strpbrk(value, " \t\n="))
			return call_fail(
			        c, STATUS_INVALID_ARGUMENT,
			        "parameters: topologyConstrainedPools[%zu].domainSegments[%zu] "
			        "needs a domainLabel and a value without spaces or '='",
			        i, k);
		ret->labels[k] = call_strdup(c, label);
		ret->values[k] = call_strdup(c, value);
		if (!ret->labels[k] || !ret->values[k])
			return -ENOMEM;
		ret->n_segments++;
	}
	return 0;
}

int params_topology_pools(struct call *c, const char *json, struct topology_pool **ret,
                          size_t *ret_n)
{
	json_object *root = json_tokener_parse(json);
	struct topology_pool *pools;
	size_t n;
	int r = 0;

	if (!root || !json_object_is_type(root, json_type_array) ||
	    json_object_array_length(root) == 0 || json_object_array_length(root) > 64) {
		json_object_put(root);
		return call_fail(c, STATUS_INVALID_ARGUMENT,
		                 "parameters: topologyConstrainedPools is not a JSON list of 1-64 "
		                 "{poolName, dataPool, domainSegments} objects");
	}
	n = json_object_array_length(root);
	pools = call_alloc(c, n * sizeof(*pools));
	if (!pools) {
		json_object_put(root);
		return -ENOMEM;
	}
	memset(pools, 0, n * sizeof(*pools));
	for (size_t i = 0; i < n && r >= 0; i++)
		r = topology_entry(c, json_object_array_get_idx(root, i), i, &pools[i]);
	json_object_put(root);
	if (r < 0)
		return r;
	*ret = pools;
	*ret_n = n;
	return 0;
}

static bool key_matches_label(const char *key, const char *label)
{
	size_t kn = strlen(key), ln = strlen(label);

	return strcmp(key, label) == 0 ||
	       (kn > ln && key[kn - ln - 1] == '/' && strcmp(key + kn - ln, label) == 0);
}

/* The key of t that names label, NULL when none. */
static const char *topology_key_for(const Csi__V1__Topology *t, const char *label)
{
	for (size_t i = 0; t && i < t->n_segments; i++)
		if (key_matches_label(t->segments[i]->key, label))
			return t->segments[i]->key;
	return NULL;
}

static bool pool_fits(const struct topology_pool *p, const Csi__V1__Topology *t)
{
	for (size_t k = 0; k < p->n_segments; k++) {
		bool found = false;

		for (size_t i = 0; !found && i < t->n_segments; i++)
			found = key_matches_label(t->segments[i]->key, p->labels[k]) &&
			        strcmp(t->segments[i]->value, p->values[k]) == 0;
		if (!found)
			return false;
	}
	return true;
}

static Csi__V1__Topology *topology_build(struct call *c, const struct topology_pool *p,
                                         const Csi__V1__Topology *const *ts, size_t n_ts)
{
	Csi__V1__Topology *t = call_alloc(c, sizeof(*t));

	if (!t)
		return NULL;
	csi__v1__topology__init(t);
	t->segments = call_alloc(c, p->n_segments * sizeof(*t->segments));
	if (!t->segments)
		return NULL;
	for (size_t k = 0; k < p->n_segments; k++) {
		Csi__V1__Topology__SegmentsEntry *e = call_alloc(c, sizeof(*e));
		const char *key = NULL;

		if (!e)
			return NULL;
		for (size_t i = 0; !key && i < n_ts; i++)
			key = topology_key_for(ts[i], p->labels[k]);
		csi__v1__topology__segments_entry__init(e);
		e->key = (char *)(key ? key : p->labels[k]);
		e->value = (char *)p->values[k];
		t->segments[t->n_segments++] = e;
	}
	return t;
}

int params_topology_select(struct call *c, const struct topology_pool *pools, size_t n,
                           const Csi__V1__TopologyRequirement *req, size_t *ret_index,
                           Csi__V1__Topology **ret_topology)
{
	for (int pass = 0; req && pass < 2; pass++) {
		Csi__V1__Topology **ts = pass == 0 ? req->preferred : req->requisite;
		size_t n_ts = pass == 0 ? req->n_preferred : req->n_requisite;

		for (size_t i = 0; i < n_ts; i++)
			for (size_t k = 0; k < n; k++) {
				if (!pool_fits(&pools[k], ts[i]))
					continue;
				*ret_topology = topology_build(
				        c, &pools[k], (const Csi__V1__Topology *const *)&ts[i], 1);
				if (!*ret_topology)
					return -ENOMEM;
				*ret_index = k;
				return 0;
			}
	}
	return call_fail(c, STATUS_RESOURCE_EXHAUSTED,
	                 "parameters: no pool of topologyConstrainedPools matches the "
	                 "accessibility requirements");
}

Csi__V1__Topology *params_topology_of(struct call *c, const struct topology_pool *pool,
                                      const Csi__V1__TopologyRequirement *req)
{
	const Csi__V1__Topology *none[1] = { NULL };

	if (!req)
		return topology_build(c, pool, none, 0);
	if (req->n_preferred > 0)
		return topology_build(c, pool, (const Csi__V1__Topology *const *)req->preferred,
		                      req->n_preferred);
	return topology_build(c, pool, (const Csi__V1__Topology *const *)req->requisite,
	                      req->n_requisite);
}

static bool list_valid(const char *s, const char *extra)
{
	size_t n = strlen(s);
	char allowed[128] = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-,";

	strncat(allowed, extra, sizeof(allowed) - strlen(allowed) - 1);
	return n <= PARAMS_MAX_VALUE_BYTES && strspn(s, allowed) == n;
}

/*
 * An SELinux context mount flag, as the kubelet passes it for a CSIDriver with seLinuxMount:
 * context="user:role:type:level". The quotes keep the commas of a level such as s0:c1,c2
 * inside one option for libmount; nothing else may be quoted.
 */
static bool selinux_context_flag(const char *s)
{
	static const char prefix[] = "context=\"";
	size_t n = strlen(s), p = sizeof(prefix) - 1;

	return n > p + 1 && strncmp(s, prefix, p) == 0 && s[n - 1] == '"' &&
	       strspn(s + p,
	              "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-,:") ==
	               n - p - 1;
}

static bool one_of(const char *s, const char *const *set, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (strcmp(s, set[i]) == 0)
			return true;
	return false;
}

static int options_allowed(struct call *c, const char *where, const char *fstype, const char *mkfs,
                           const char *map, const char *unmap);

int params_parse(struct call *c, Csi__V1__CreateVolumeRequest__ParametersEntry *const *entries,
                 size_t n, struct volume_params *ret)
{
	static const char *const mounters[] = { "krbd", "rbd-nbd", "fuse", "auto" };
	static const char *const fs_types[] = { "ext4", "xfs" };
	struct volume_params p = {
		.image_features = "layering",
		.name_prefix = "csi-vol-",
		.fs_type = "ext4",
		.mounter = "auto",
	};
	const char *fstype_k8s = NULL, *fstype_sc = NULL;
	const char *stripe_unit = NULL, *stripe_count = NULL, *object_size = NULL,
	           *try_other = NULL;
	int r;

	for (size_t i = 0; i < n; i++) {
		const char *k = entries[i]->key, *v = entries[i]->value;

		if (strlen(v) > PARAMS_MAX_VALUE_BYTES)
			return call_fail(c, STATUS_INVALID_ARGUMENT,
			                 "parameters: '%s' is longer than %d bytes", k,
			                 PARAMS_MAX_VALUE_BYTES);
		if (strncmp(k, "csi.storage.k8s.io/", 19) == 0) {
			/* Added by external-provisioner (fstype, --extra-create-metadata, secrets).
			 */
			if (strcmp(k + 19, "fstype") == 0)
				fstype_k8s = v;
			else if (strcmp(k + 19, "pvc/name") == 0)
				p.pvc_name = v;
			else if (strcmp(k + 19, "pvc/namespace") == 0)
				p.pvc_namespace = v;
			else if (strcmp(k + 19, "pv/name") == 0)
				p.pv_name = v;
			continue;
		}
		for (size_t j = 0; j < ELEMENTSOF(refused_keys); j++)
			if (strcmp(k, refused_keys[j].key) == 0)
				return call_fail(c, STATUS_INVALID_ARGUMENT,
				                 "parameters: '%s' (a ceph-csi parameter) is not "
				                 "supported: %s",
				                 k, refused_keys[j].why);
		if (!one_of(k, known_keys, ELEMENTSOF(known_keys)) &&
		    !one_of(k, ceph_csi_keys, ELEMENTSOF(ceph_csi_keys)))
			return call_fail(
			        c, STATUS_INVALID_ARGUMENT,
			        "parameters: unknown parameter '%s' (known: clusterID, pool, "
			        "dataPool, radosNamespace, imageFeatures, imageFormat, "
			        "volumeNamePrefix, journalPool, fsType, mkfsOptions, mounter, "
			        "mapOptions, unmapOptions, csi.storage.k8s.io/*)",
			        k);
		if (strcmp(k, "clusterID") == 0)
			p.cluster_id = v;
		else if (strcmp(k, "pool") == 0)
			p.pool = v;
		else if (strcmp(k, "dataPool") == 0)
			p.data_pool = v;
		else if (strcmp(k, "radosNamespace") == 0)
			p.rados_namespace = v;
		else if (strcmp(k, "imageFeatures") == 0)
			p.image_features = v;
		else if (strcmp(k, "imageFormat") == 0) {
			if (strcmp(v, "2") != 0)
				return call_fail(
				        c, STATUS_INVALID_ARGUMENT,
				        "parameters: imageFormat '%s' is not supported, only "
				        "'2'",
				        v);
		} else if (strcmp(k, "volumeNamePrefix") == 0)
			p.name_prefix = v;
		else if (strcmp(k, "journalPool") == 0)
			p.journal_pool = v;
		else if (strcmp(k, "fsType") == 0)
			fstype_sc = v;
		else if (strcmp(k, "mkfsOptions") == 0)
			p.mkfs_options = v;
		else if (strcmp(k, "mounter") == 0)
			p.mounter = v;
		else if (strcmp(k, "mapOptions") == 0)
			p.map_options = v;
		else if (strcmp(k, "unmapOptions") == 0)
			p.unmap_options = v;
		else if (strcmp(k, "stripeUnit") == 0)
			stripe_unit = v;
		else if (strcmp(k, "stripeCount") == 0)
			stripe_count = v;
		else if (strcmp(k, "objectSize") == 0)
			object_size = v;
		else if (strcmp(k, "tryOtherMounters") == 0)
			try_other = v;
		else if (strcmp(k, "topologyConstrainedPools") == 0)
			p.topology_pools = v;
		else if (strcmp(k, "cephLogStrategy") == 0) {
			if (strcmp(v, "remove") != 0)
				return call_fail(
				        c, STATUS_INVALID_ARGUMENT,
				        "parameters: cephLogStrategy '%s' is not supported: rbdcsi "
				        "removes the rbd-nbd/rbd-fuse log at unstage; only "
				        "'remove' "
				        "is accepted",
				        v);
		} else if (strcmp(k, "encrypted") == 0) {
			p.encrypted = strcmp(v, "true") == 0;
			if (!p.encrypted && strcmp(v, "false") != 0)
				return call_fail(
				        c, STATUS_INVALID_ARGUMENT,
				        "parameters: encrypted '%s' is not 'true' or 'false'", v);
		} else if (strcmp(k, "encryptionKMSID") == 0) {
			if (!kms_id_known(v))
				return call_fail(
				        c, STATUS_INVALID_ARGUMENT,
				        "parameters: encryptionKMSID '%s' names no KMS this "
				        "driver has (only '' or '%s': the encryptionPassphrase "
				        "of the node-stage secret)",
				        v, KMS_TYPE_METADATA);
			p.kms_id = v;
		} else if (strcmp(k, "encryptionType") == 0) {
			if (strcmp(v, "block") != 0)
				return call_fail(
				        c, STATUS_INVALID_ARGUMENT,
				        "parameters: encryptionType '%s' is not supported: "
				        "only 'block' (LUKS2) is, not fscrypt ('file')",
				        v);
		}
	}

	if (isempty(p.cluster_id))
		return call_fail(c, STATUS_INVALID_ARGUMENT, "parameters: clusterID is required");
	if (!config_cluster_id_valid(p.cluster_id))
		return call_fail(c, STATUS_INVALID_ARGUMENT,
		                 "parameters: clusterID '%s' is not 1-36 characters of "
		                 "[A-Za-z0-9._-]",
		                 p.cluster_id);
	if (isempty(p.pool) && !p.topology_pools)
		return call_fail(c, STATUS_INVALID_ARGUMENT, "parameters: pool is required");
	if (p.topology_pools) {
		struct topology_pool *tp;
		size_t ntp;

		r = params_topology_pools(c, p.topology_pools, &tp, &ntp);
		if (r < 0)
			return r;
	}
	if (!isempty(p.pool) && !params_name_valid(p.pool, PARAMS_MAX_NAME_BYTES))
		return call_fail(c, STATUS_INVALID_ARGUMENT,
		                 "parameters: pool '%s' is not a valid pool name", p.pool);
	if (p.data_pool && !params_name_valid(p.data_pool, PARAMS_MAX_NAME_BYTES))
		return call_fail(c, STATUS_INVALID_ARGUMENT,
		                 "parameters: dataPool '%s' is not a valid pool name", p.data_pool);
	if (p.journal_pool && !params_name_valid(p.journal_pool, PARAMS_MAX_NAME_BYTES))
		return call_fail(c, STATUS_INVALID_ARGUMENT,
		                 "parameters: journalPool '%s' is not a valid pool name",
		                 p.journal_pool);
	if (p.rados_namespace && *p.rados_namespace && !params_name_valid(p.rados_namespace, 64))
		return call_fail(c, STATUS_INVALID_ARGUMENT,
		                 "parameters: radosNamespace '%s' is not a valid namespace name",
		                 p.rados_namespace);
	if (!params_name_valid(p.name_prefix, 32))
		return call_fail(c, STATUS_INVALID_ARGUMENT,
		                 "parameters: volumeNamePrefix '%s' must be 1-32 characters of "
		                 "[A-Za-z0-9._-]",
		                 p.name_prefix);
	if (isempty(p.image_features) || !list_valid(p.image_features, ""))
		return call_fail(c, STATUS_INVALID_ARGUMENT,
		                 "parameters: imageFeatures '%s' is not a comma-separated list of "
		                 "feature names",
		                 p.image_features);
	if (fstype_k8s && fstype_sc && strcmp(fstype_k8s, fstype_sc) != 0)
		return call_fail(
		        c, STATUS_INVALID_ARGUMENT,
		        "parameters: fsType '%s' contradicts csi.storage.k8s.io/fstype '%s'",
		        fstype_sc, fstype_k8s);
	if (fstype_k8s && *fstype_k8s)
		p.fs_type = fstype_k8s;
	else if (fstype_sc && *fstype_sc)
		p.fs_type = fstype_sc;
	if (!one_of(p.fs_type, fs_types, ELEMENTSOF(fs_types)))
		return call_fail(c, STATUS_INVALID_ARGUMENT,
		                 "parameters: fsType '%s' is not supported (ext4, xfs)", p.fs_type);
	/* ceph-csi spells krbd "rbd"; its default (no mounter) is krbd without fallback. */
	if (strcmp(p.mounter, "rbd") == 0)
		p.mounter = "krbd";
	if (try_other) {
		if (strcmp(try_other, "true") != 0 && strcmp(try_other, "false") != 0)
			return call_fail(
			        c, STATUS_INVALID_ARGUMENT,
			        "parameters: tryOtherMounters '%s' is not 'true' or 'false'",
			        try_other);
		/* "auto" tries krbd, then (for an image feature krbd lacks, or no krbd) rbd-nbd,
		 * then rbd-fuse: ceph-csi's krbd -> rbd-nbd fallback. */
		if (strcmp(try_other, "true") == 0 && strcmp(p.mounter, "krbd") == 0)
			p.mounter = "auto";
		else if (strcmp(try_other, "false") == 0 && strcmp(p.mounter, "auto") == 0 &&
		         !params_map_get((void *const *)entries, n, "mounter"))
			p.mounter = "krbd";
	}
	r = check_layout(c, stripe_unit, stripe_count, object_size, &p);
	if (r < 0)
		return r;
	if (!one_of(p.mounter, mounters, ELEMENTSOF(mounters)))
		return call_fail(c, STATUS_INVALID_ARGUMENT,
		                 "parameters: mounter '%s' is not krbd, rbd-nbd, fuse or auto",
		                 p.mounter);
	if (p.mkfs_options && !list_valid(p.mkfs_options, " =:/"))
		return call_fail(c, STATUS_INVALID_ARGUMENT,
		                 "parameters: mkfsOptions '%s' has characters other than "
		                 "[A-Za-z0-9._,=:/ -]",
		                 p.mkfs_options);
	if (p.map_options && !list_valid(p.map_options, "=:;"))
		return call_fail(c, STATUS_INVALID_ARGUMENT,
		                 "parameters: mapOptions '%s' is not a comma-separated option list",
		                 p.map_options);
	if (p.unmap_options && !list_valid(p.unmap_options, "=:;"))
		return call_fail(
		        c, STATUS_INVALID_ARGUMENT,
		        "parameters: unmapOptions '%s' is not a comma-separated option list",
		        p.unmap_options);
	r = options_allowed(c, "parameters", p.fs_type, p.mkfs_options, p.map_options,
	                    p.unmap_options);
	if (r < 0)
		return r;
	*ret = p;
	return 0;
}

/* The per-tool allowlists of driver/host/options.h, for the field names of "where". */
static int options_allowed(struct call *c, const char *where, const char *fstype, const char *mkfs,
                           const char *map, const char *unmap)
{
	_cleanup_free_ char *reason = NULL;

	if (fstype && options_mkfs_check(fstype, mkfs, &reason) < 0)
		return call_fail(c, STATUS_INVALID_ARGUMENT, "%s: mkfsOptions: %s", where,
		                 reason ? reason : "not allowed");
	if (options_map_all_check(map, false, &reason) < 0)
		return call_fail(c, STATUS_INVALID_ARGUMENT, "%s: mapOptions: %s", where,
		                 reason ? reason : "not allowed");
	if (options_map_all_check(unmap, true, &reason) < 0)
		return call_fail(c, STATUS_INVALID_ARGUMENT, "%s: unmapOptions: %s", where,
		                 reason ? reason : "not allowed");
	return 0;
}

int params_check_stage_context(struct call *c, const char *pool, const char *rados_namespace,
                               const char *image, const char *fstype, const char *mkfs,
                               const char *map, const char *unmap)
{
	if (!mapper_name_valid(pool))
		return call_fail(c, STATUS_INVALID_ARGUMENT,
		                 "volume_context: pool '%.*s' is not a valid Ceph pool name", 256,
		                 strempty(pool));
	if (!isempty(rados_namespace) && !mapper_name_valid(rados_namespace))
		return call_fail(c, STATUS_INVALID_ARGUMENT,
		                 "volume_context: radosNamespace '%.*s' is not a valid Ceph "
		                 "namespace name",
		                 256, rados_namespace);
	if (!mapper_name_valid(image))
		return call_fail(c, STATUS_INVALID_ARGUMENT,
		                 "volume_context: imageName '%.*s' is not a valid Ceph image name",
		                 256, strempty(image));
	return options_allowed(c, "volume_context", fstype, mkfs, map, unmap);
}

int params_check_capabilities(struct call *c, const char *field,
                              Csi__V1__VolumeCapability *const *caps, size_t n,
                              struct access_summary *ret)
{
	struct access_summary a = { .read_only = true };

	if (n == 0)
		return call_fail(c, STATUS_INVALID_ARGUMENT,
		                 "%s: at least one capability is required", field);
	for (size_t i = 0; i < n; i++) {
		const Csi__V1__VolumeCapability *cap = caps[i];
		int mode;
		bool multi, ro;

		if (!cap)
			return call_fail(c, STATUS_INVALID_ARGUMENT, "%s[%zu]: empty capability",
			                 field, i);
		if (!cap->access_mode)
			return call_fail(c, STATUS_INVALID_ARGUMENT,
			                 "%s[%zu]: access_mode is required", field, i);
		mode = cap->access_mode->mode;
		switch (mode) {
		case CSI__V1__VOLUME_CAPABILITY__ACCESS_MODE__MODE__SINGLE_NODE_WRITER:
		case CSI__V1__VOLUME_CAPABILITY__ACCESS_MODE__MODE__SINGLE_NODE_SINGLE_WRITER:
		case CSI__V1__VOLUME_CAPABILITY__ACCESS_MODE__MODE__SINGLE_NODE_MULTI_WRITER:
			multi = ro = false;
			break;
		case CSI__V1__VOLUME_CAPABILITY__ACCESS_MODE__MODE__SINGLE_NODE_READER_ONLY:
			multi = false;
			ro = true;
			break;
		case CSI__V1__VOLUME_CAPABILITY__ACCESS_MODE__MODE__MULTI_NODE_READER_ONLY:
			multi = ro = true;
			break;
		case CSI__V1__VOLUME_CAPABILITY__ACCESS_MODE__MODE__MULTI_NODE_SINGLE_WRITER:
		case CSI__V1__VOLUME_CAPABILITY__ACCESS_MODE__MODE__MULTI_NODE_MULTI_WRITER:
			multi = true;
			ro = false;
			break;
		default:
			return call_fail(c, STATUS_INVALID_ARGUMENT,
			                 "%s[%zu]: access mode %d is not supported", field, i,
			                 mode);
		}
		if (cap->access_type_case == CSI__V1__VOLUME_CAPABILITY__ACCESS_TYPE_BLOCK) {
			a.block = true;
		} else if (cap->access_type_case == CSI__V1__VOLUME_CAPABILITY__ACCESS_TYPE_MOUNT) {
			const Csi__V1__VolumeCapability__MountVolume *m = cap->mount;

			a.mount = true;
			/* A filesystem cannot be shared between nodes unless nobody writes. */
			if (multi && !ro)
				return call_fail(
				        c, STATUS_INVALID_ARGUMENT,
				        "%s[%zu]: multi-node write access is only supported "
				        "for block volumes, not for a filesystem",
				        field, i);
			if (m && !isempty(m->fs_type)) {
				if (strcmp(m->fs_type, "ext4") != 0 &&
				    strcmp(m->fs_type, "xfs") != 0)
					return call_fail(c, STATUS_INVALID_ARGUMENT,
					                 "%s[%zu]: fs_type '%s' is not supported "
					                 "(ext4, xfs)",
					                 field, i, m->fs_type);
				a.fs_type = m->fs_type;
			}
			for (size_t f = 0; m && f < m->n_mount_flags; f++) {
				_cleanup_free_ char *why = NULL;

				if (!(list_valid(m->mount_flags[f], "=:/") ||
				      selinux_context_flag(m->mount_flags[f])) ||
				    strlen(m->mount_flags[f]) > 128)
					return call_fail(c, STATUS_INVALID_ARGUMENT,
					                 "%s[%zu]: mount flag '%s' is not valid",
					                 field, i, m->mount_flags[f]);
				if (options_mount_check(isempty(m->fs_type) ? NULL : m->fs_type,
				                        m->mount_flags[f], &why) < 0)
					return call_fail(c, STATUS_INVALID_ARGUMENT, "%s[%zu]: %s",
					                 field, i, strempty(why));
			}
		} else
			return call_fail(c, STATUS_INVALID_ARGUMENT,
			                 "%s[%zu]: access_type (mount or block) is required", field,
			                 i);
		a.multi_node |= multi;
		a.read_only &= ro;
	}
	*ret = a;
	return 0;
}

int params_capacity(struct call *c, const Csi__V1__CapacityRange *range, uint64_t *ret_bytes)
{
	uint64_t required, limit, size;

	if (!range || (range->required_bytes == 0 && range->limit_bytes == 0)) {
		*ret_bytes = PARAMS_DEFAULT_SIZE;
		return 0;
	}
	if (range->required_bytes < 0 || range->limit_bytes < 0)
		return call_fail(c, STATUS_INVALID_ARGUMENT,
		                 "capacity_range: required_bytes and limit_bytes must not be "
		                 "negative");
	required = (uint64_t)range->required_bytes;
	limit = (uint64_t)range->limit_bytes;
	if (limit != 0 && required > limit)
		return call_fail(c, STATUS_INVALID_ARGUMENT,
		                 "capacity_range: required_bytes %llu exceeds limit_bytes %llu",
		                 (unsigned long long)required, (unsigned long long)limit);
	if (required == 0)
		required = MIN(PARAMS_DEFAULT_SIZE, limit);
	if (required > PARAMS_MAX_SIZE)
		return call_fail(c, STATUS_OUT_OF_RANGE,
		                 "capacity_range: required_bytes %llu is above the 1 PiB limit",
		                 (unsigned long long)required);
	size = (required + MiB - 1) / MiB * MiB;
	if (limit != 0 && size > limit) {
		/* Rounding up to MiB would cross the limit: take the largest whole MiB below it. */
		size = limit / MiB * MiB;
		if (size < required)
			return call_fail(c, STATUS_OUT_OF_RANGE,
			                 "capacity_range: no whole-MiB size between required_bytes "
			                 "%llu and limit_bytes %llu",
			                 (unsigned long long)required, (unsigned long long)limit);
	}
	*ret_bytes = size;
	return 0;
}
