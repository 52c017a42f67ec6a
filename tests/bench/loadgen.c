/* SPDX-License-Identifier: Apache-2.0 */
/*
 * A CSI load generator on the gRPC C core API + protobuf-c (make bench, tests/bench/run.sh).
 * One channel per endpoint shared by all threads (one HTTP/2 connection, as the CSI sidecars
 * use), one pluck completion queue per thread, one 6-op batch per unary call.
 *
 *   loadgen --endpoint unix:///path [options] MODE ...
 *
 *   probe N                       N sequential Probe calls: latency percentiles
 *   calls N C controller|node     N calls on C threads, for the footprint/leak check; the
 *                                 controller rotates Probe, GetPluginInfo,
 *                                 ControllerGetCapabilities, ControllerGetVolume and
 *                                 ValidateVolumeCapabilities (with secrets) of --volume-id; the
 *                                 node Probe, GetPluginInfo, NodeGetInfo, NodeGetCapabilities
 *                                 and NodeGetVolumeStats of an unpublished --target (NOT_FOUND)
 *   provision N C                 N CreateVolume on C threads, then N DeleteVolume
 *                                 (names <--prefix>-NNNNNN, --size bytes); reports both
 *                                 phases' latencies, volumes/s and this client's CPU time
 *   list MAX                      ListVolumes, paginated by MAX, until the last page
 *   create NAME                   one CreateVolume (--size, parameters include mounter=fuse);
 *                                 prints {"volume_id","context":"k=v,..."}
 *   delete VOLUME_ID              one DeleteVolume
 *   stage K                       K cycles of NodeStage + NodePublish + NodeUnpublish +
 *                                 NodeUnstage on --node-endpoint for --volume-id (context from
 *                                 --context k=v,...), at --staging/--target (ext4, mount)
 *   startup K -- ARGV...          K times: start ARGV, time until Probe on --endpoint answers
 *                                 ready (and until the socket exists), SIGTERM, wait for a
 *                                 clean exit
 *
 * Options: --cluster ID (default "test") --pool P (default "rbd") --user U (default "csi")
 * --size BYTES (default 1 GiB) --prefix NAME --name NAME --volume-id ID --context k=v,...
 * --node-endpoint unix:///path --staging DIR --target DIR --timeout SECONDS (default 120)
 * --samples FILE (provision: raw latencies appended, "create|delete <usec>" a line).
 * Modes that send secrets read the cephx key from stdin (one line).
 * Output: one JSON object on stdout; errors on stderr, exit status 1.
 */
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <spawn.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <grpc/byte_buffer.h>
#include <grpc/byte_buffer_reader.h>
#include <grpc/grpc.h>
#include <grpc/grpc_security.h>
#include <grpc/slice.h>
#include <grpc/support/alloc.h>
#include <grpc/support/time.h>

#include "csi.pb-c.h"
#include "tests/bench/bench.h"

extern char **environ;

/* ---- methods ---- */

enum method {
	M_PROBE,
	M_PLUGIN_INFO,
	M_CREATE,
	M_DELETE,
	M_LIST,
	M_GET_VOLUME,
	M_CTRL_CAPS,
	M_VALIDATE,
	M_STAGE,
	M_UNSTAGE,
	M_PUBLISH,
	M_UNPUBLISH,
	M_NODE_INFO,
	M_NODE_CAPS,
	M_NODE_STATS,
	M_MAX,
};

static const struct {
	const char *path;
	const ProtobufCMessageDescriptor *resp;
} methods[M_MAX] = {
	[M_PROBE] = { "/csi.v1.Identity/Probe", &csi__v1__probe_response__descriptor },
	[M_PLUGIN_INFO] = { "/csi.v1.Identity/GetPluginInfo",
	                    &csi__v1__get_plugin_info_response__descriptor },
	[M_CREATE] = { "/csi.v1.Controller/CreateVolume",
	               &csi__v1__create_volume_response__descriptor },
	[M_DELETE] = { "/csi.v1.Controller/DeleteVolume",
	               &csi__v1__delete_volume_response__descriptor },
	[M_LIST] = { "/csi.v1.Controller/ListVolumes",
	             &csi__v1__list_volumes_response__descriptor },
	[M_GET_VOLUME] = { "/csi.v1.Controller/ControllerGetVolume",
	                   &csi__v1__controller_get_volume_response__descriptor },
	[M_CTRL_CAPS] = { "/csi.v1.Controller/ControllerGetCapabilities",
	                  &csi__v1__controller_get_capabilities_response__descriptor },
	[M_VALIDATE] = { "/csi.v1.Controller/ValidateVolumeCapabilities",
	                 &csi__v1__validate_volume_capabilities_response__descriptor },
	[M_STAGE] = { "/csi.v1.Node/NodeStageVolume",
	              &csi__v1__node_stage_volume_response__descriptor },
	[M_UNSTAGE] = { "/csi.v1.Node/NodeUnstageVolume",
	                &csi__v1__node_unstage_volume_response__descriptor },
	[M_PUBLISH] = { "/csi.v1.Node/NodePublishVolume",
	                &csi__v1__node_publish_volume_response__descriptor },
	[M_UNPUBLISH] = { "/csi.v1.Node/NodeUnpublishVolume",
	                  &csi__v1__node_unpublish_volume_response__descriptor },
	[M_NODE_INFO] = { "/csi.v1.Node/NodeGetInfo",
	                  &csi__v1__node_get_info_response__descriptor },
	[M_NODE_CAPS] = { "/csi.v1.Node/NodeGetCapabilities",
	                  &csi__v1__node_get_capabilities_response__descriptor },
	[M_NODE_STATS] = { "/csi.v1.Node/NodeGetVolumeStats",
	                   &csi__v1__node_get_volume_stats_response__descriptor },
};

struct client {
	grpc_channel *ch;
	void *handles[M_MAX];
};

/* Options and shared state of a run. */
struct opts {
	const char *endpoint;
	const char *node_endpoint;
	const char *cluster;
	const char *pool;
	const char *user;
	char *key;
	uint64_t size;
	const char *prefix;
	const char *name;
	const char *volume_id;
	const char *context;
	const char *staging;
	const char *target;
	const char *samples; /* provision: where the raw latencies go (appended) */
	unsigned timeout_sec;
};

static struct client *client_new(const char *endpoint, bool fast_reconnect)
{
	struct client *cl = calloc(1, sizeof(*cl));
	grpc_channel_credentials *cr;
	grpc_arg args[3];
	grpc_channel_args ca = { .num_args = 0, .args = args };

	if (!cl)
		return NULL;
	if (fast_reconnect) {
		/* startup: the socket may refuse for a moment; retry in ms, not gRPC's 1 s. */
		args[0] = (grpc_arg){ .type = GRPC_ARG_INTEGER,
			              .key = (char *)GRPC_ARG_INITIAL_RECONNECT_BACKOFF_MS,
			              .value.integer = 2 };
		args[1] = (grpc_arg){ .type = GRPC_ARG_INTEGER,
			              .key = (char *)GRPC_ARG_MIN_RECONNECT_BACKOFF_MS,
			              .value.integer = 2 };
		args[2] = (grpc_arg){ .type = GRPC_ARG_INTEGER,
			              .key = (char *)GRPC_ARG_MAX_RECONNECT_BACKOFF_MS,
			              .value.integer = 10 };
		ca.num_args = 3;
	}
	cr = grpc_insecure_credentials_create();
	cl->ch = grpc_channel_create(endpoint, cr, &ca);
	grpc_channel_credentials_release(cr);
	for (size_t m = 0; m < M_MAX; m++)
		cl->handles[m] = grpc_channel_register_call(cl->ch, methods[m].path, NULL, NULL);
	return cl;
}

static struct client *client_free(struct client *cl)
{
	if (!cl)
		return NULL;
	grpc_channel_destroy(cl->ch);
	free(cl);
	return NULL;
}

/*
 * One unary call. Returns the gRPC status (GRPC_STATUS_OK = 0) and, when OK and ret_resp is not
 * NULL, the unpacked response (free with protobuf_c_message_free_unpacked). *ret_details (may
 * be NULL) gets the status message when not OK (free).
 */
static int call_unary(struct client *cl, grpc_completion_queue *cq, enum method m,
                      const ProtobufCMessage *req, unsigned timeout_sec, bool wait_for_ready,
                      ProtobufCMessage **ret_resp, char **ret_details)
{
	grpc_metadata_array init_md, trail_md;
	grpc_byte_buffer *send_bb, *recv_bb = NULL;
	grpc_status_code status = GRPC_STATUS_UNKNOWN;
	grpc_slice details = grpc_empty_slice(), s;
	grpc_op ops[6];
	grpc_call *call;
	grpc_event ev;
	gpr_timespec deadline;
	size_t len = protobuf_c_message_get_packed_size(req);
	uint8_t *buf = malloc(len ? len : 1);
	int tag;

	if (!buf)
		return GRPC_STATUS_RESOURCE_EXHAUSTED;
	protobuf_c_message_pack(req, buf);
	s = grpc_slice_new(buf, len, free);
	send_bb = grpc_raw_byte_buffer_create(&s, 1);
	grpc_slice_unref(s);
	grpc_metadata_array_init(&init_md);
	grpc_metadata_array_init(&trail_md);
	deadline = gpr_time_add(gpr_now(GPR_CLOCK_MONOTONIC),
	                        gpr_time_from_seconds(timeout_sec, GPR_TIMESPAN));
	call = grpc_channel_create_registered_call(cl->ch, NULL, GRPC_PROPAGATE_DEFAULTS, cq,
	                                           cl->handles[m], deadline, NULL);
	memset(ops, 0, sizeof(ops));
	ops[0].op = GRPC_OP_SEND_INITIAL_METADATA;
	ops[0].flags = wait_for_ready ? GRPC_INITIAL_METADATA_WAIT_FOR_READY : 0;
	ops[1].op = GRPC_OP_SEND_MESSAGE;
	ops[1].data.send_message.send_message = send_bb;
	ops[2].op = GRPC_OP_SEND_CLOSE_FROM_CLIENT;
	ops[3].op = GRPC_OP_RECV_INITIAL_METADATA;
	ops[3].data.recv_initial_metadata.recv_initial_metadata = &init_md;
	ops[4].op = GRPC_OP_RECV_MESSAGE;
	ops[4].data.recv_message.recv_message = &recv_bb;
	ops[5].op = GRPC_OP_RECV_STATUS_ON_CLIENT;
	ops[5].data.recv_status_on_client.trailing_metadata = &trail_md;
	ops[5].data.recv_status_on_client.status = &status;
	ops[5].data.recv_status_on_client.status_details = &details;
	if (grpc_call_start_batch(call, ops, ELEMENTSOF(ops), &tag, NULL) != GRPC_CALL_OK)
		abort();
	ev = grpc_completion_queue_pluck(cq, &tag, gpr_inf_future(GPR_CLOCK_REALTIME), NULL);
	if (ev.type != GRPC_OP_COMPLETE)
		abort();

	if (status == GRPC_STATUS_OK && ret_resp) {
		grpc_byte_buffer_reader rd;
		grpc_slice all;

		*ret_resp = NULL;
		if (recv_bb && grpc_byte_buffer_reader_init(&rd, recv_bb)) {
			all = grpc_byte_buffer_reader_readall(&rd);
			grpc_byte_buffer_reader_destroy(&rd);
			*ret_resp = protobuf_c_message_unpack(methods[m].resp, NULL,
			                                      GRPC_SLICE_LENGTH(all),
			                                      GRPC_SLICE_START_PTR(all));
			grpc_slice_unref(all);
		}
		if (!*ret_resp)
			status = GRPC_STATUS_DATA_LOSS;
	}
	if (status != GRPC_STATUS_OK && ret_details)
		*ret_details = grpc_slice_to_c_string(details);
	grpc_slice_unref(details);
	grpc_metadata_array_destroy(&init_md);
	grpc_metadata_array_destroy(&trail_md);
	grpc_byte_buffer_destroy(send_bb);
	if (recv_bb)
		grpc_byte_buffer_destroy(recv_bb);
	grpc_call_unref(call);
	return status;
}

/* ---- request building ---- */

/* Every protobuf-c map entry has this layout (base, key, value). */
struct map_entry {
	ProtobufCMessage base;
	char *key;
	char *value;
};

static void map_entry_set(struct map_entry *e, const ProtobufCMessageDescriptor *d, const char *k,
                          const char *v)
{
	*e = (struct map_entry){ .base = PROTOBUF_C_MESSAGE_INIT(d),
		                 .key = (char *)k,
		                 .value = (char *)v };
}

/* A mount (ext4), single-node-writer capability. */
struct capability {
	Csi__V1__VolumeCapability cap;
	Csi__V1__VolumeCapability__MountVolume mount;
	Csi__V1__VolumeCapability__AccessMode mode;
	Csi__V1__VolumeCapability *caps[1];
};

static void capability_init(struct capability *c)
{
	csi__v1__volume_capability__init(&c->cap);
	csi__v1__volume_capability__mount_volume__init(&c->mount);
	csi__v1__volume_capability__access_mode__init(&c->mode);
	c->mount.fs_type = (char *)"ext4";
	c->mode.mode = CSI__V1__VOLUME_CAPABILITY__ACCESS_MODE__MODE__SINGLE_NODE_WRITER;
	c->cap.access_type_case = CSI__V1__VOLUME_CAPABILITY__ACCESS_TYPE_MOUNT;
	c->cap.mount = &c->mount;
	c->cap.access_mode = &c->mode;
	c->caps[0] = &c->cap;
}

static void print_error(const char *what, const char *name, int status, char *details)
{
	fprintf(stderr, "loadgen: %s %s: status %d: %s\n", what, name ? name : "", status,
	        details ? details : "");
	gpr_free(details);
}

/* CreateVolume; on success *ret_resp (may be NULL) gets the response. */
static int create_volume(struct client *cl, grpc_completion_queue *cq, const struct opts *o,
                         const char *name, bool fuse, Csi__V1__CreateVolumeResponse **ret_resp)
{
	Csi__V1__CreateVolumeRequest req = CSI__V1__CREATE_VOLUME_REQUEST__INIT;
	Csi__V1__CapacityRange range = CSI__V1__CAPACITY_RANGE__INIT;
	struct map_entry params[3], secrets[2];
	void *pp[3], *sp[2];
	struct capability cap;
	ProtobufCMessage *resp = NULL;
	char *details = NULL;
	int st;

	capability_init(&cap);
	range.required_bytes = (int64_t)o->size;
	map_entry_set(&params[0], &csi__v1__create_volume_request__parameters_entry__descriptor,
	              "clusterID", o->cluster);
	map_entry_set(&params[1], &csi__v1__create_volume_request__parameters_entry__descriptor,
	              "pool", o->pool);
	map_entry_set(&params[2], &csi__v1__create_volume_request__parameters_entry__descriptor,
	              "mounter", "fuse");
	map_entry_set(&secrets[0], &csi__v1__create_volume_request__secrets_entry__descriptor,
	              "userID", o->user);
	map_entry_set(&secrets[1], &csi__v1__create_volume_request__secrets_entry__descriptor,
	              "userKey", o->key);
	for (size_t i = 0; i < 3; i++)
		pp[i] = &params[i];
	sp[0] = &secrets[0];
	sp[1] = &secrets[1];
	req.name = (char *)name;
	req.capacity_range = &range;
	req.n_volume_capabilities = 1;
	req.volume_capabilities = cap.caps;
	req.n_parameters = fuse ? 3 : 2;
	req.parameters = (Csi__V1__CreateVolumeRequest__ParametersEntry **)pp;
	req.n_secrets = 2;
	req.secrets = (Csi__V1__CreateVolumeRequest__SecretsEntry **)sp;
	st = call_unary(cl, cq, M_CREATE, &req.base, o->timeout_sec, false, &resp, &details);
	if (st != GRPC_STATUS_OK) {
		print_error("CreateVolume", name, st, details);
		return st;
	}
	if (ret_resp)
		*ret_resp = (Csi__V1__CreateVolumeResponse *)resp;
	else
		protobuf_c_message_free_unpacked(resp, NULL);
	return 0;
}

static int delete_volume(struct client *cl, grpc_completion_queue *cq, const struct opts *o,
                         const char *volume_id)
{
	Csi__V1__DeleteVolumeRequest req = CSI__V1__DELETE_VOLUME_REQUEST__INIT;
	struct map_entry secrets[2];
	void *sp[2] = { &secrets[0], &secrets[1] };
	char *details = NULL;
	int st;

	map_entry_set(&secrets[0], &csi__v1__delete_volume_request__secrets_entry__descriptor,
	              "userID", o->user);
	map_entry_set(&secrets[1], &csi__v1__delete_volume_request__secrets_entry__descriptor,
	              "userKey", o->key);
	req.volume_id = (char *)volume_id;
	req.n_secrets = 2;
	req.secrets = (Csi__V1__DeleteVolumeRequest__SecretsEntry **)sp;
	st = call_unary(cl, cq, M_DELETE, &req.base, o->timeout_sec, false, NULL, &details);
	if (st != GRPC_STATUS_OK)
		print_error("DeleteVolume", volume_id, st, details);
	return st;
}

static int empty_call(struct client *cl, grpc_completion_queue *cq, enum method m,
                      const ProtobufCMessageDescriptor *req_desc, unsigned timeout_sec)
{
	ProtobufCMessage req = PROTOBUF_C_MESSAGE_INIT(req_desc);
	char *details = NULL;
	int st;

	/* Every field of these requests is optional: an empty message is valid. */
	st = call_unary(cl, cq, m, &req, timeout_sec, false, NULL, &details);
	if (st != GRPC_STATUS_OK)
		print_error(methods[m].path, NULL, st, details);
	return st;
}

/* ---- probe ---- */

static int mode_probe(const struct opts *o, uint64_t n)
{
	struct client *cl = client_new(o->endpoint, false);
	grpc_completion_queue *cq = grpc_completion_queue_create_for_pluck(NULL);
	struct bench_samples s = { 0 };
	uint64_t t_all = bench_now_usec();
	int r = 0;

	/* One warm-up call: the connection is made on the first call. */
	if (empty_call(cl, cq, M_PROBE, &csi__v1__probe_request__descriptor, o->timeout_sec))
		r = 1;
	for (uint64_t i = 0; r == 0 && i < n; i++) {
		uint64_t t0 = bench_now_usec();

		if (empty_call(cl, cq, M_PROBE, &csi__v1__probe_request__descriptor,
		               o->timeout_sec) != 0)
			r = 1;
		else
			(void)bench_samples_add(&s, bench_now_usec() - t0);
	}
	if (r == 0) {
		printf("{\"secs\":%.3f,", (double)(bench_now_usec() - t_all) / 1e6);
		bench_samples_json(stdout, "probe", &s);
		printf("}\n");
	}
	bench_samples_done(&s);
	grpc_completion_queue_shutdown(cq);
	grpc_completion_queue_destroy(cq);
	client_free(cl);
	return r;
}

/* ---- threaded modes: provision, calls ---- */

struct run {
	const struct opts *o;
	struct client *cl;
	uint64_t n;
	unsigned conc;
	enum { RUN_CREATE, RUN_DELETE, RUN_CALLS_CONTROLLER, RUN_CALLS_NODE } what;
	char **ids; /* volume ids, by index */
	atomic_uint_fast64_t next;
	atomic_int failed;
	pthread_mutex_t lock;
	struct bench_samples samples;
};

static int one_controller_call(struct run *rn, grpc_completion_queue *cq, uint64_t i)
{
	const struct opts *o = rn->o;

	switch (i % 5) {
	case 0:
		return empty_call(rn->cl, cq, M_PROBE, &csi__v1__probe_request__descriptor,
		                  o->timeout_sec);
	case 1:
		return empty_call(rn->cl, cq, M_PLUGIN_INFO,
		                  &csi__v1__get_plugin_info_request__descriptor, o->timeout_sec);
	case 2:
		return empty_call(rn->cl, cq, M_CTRL_CAPS,
		                  &csi__v1__controller_get_capabilities_request__descriptor,
		                  o->timeout_sec);
	case 3: {
		Csi__V1__ControllerGetVolumeRequest req =
		        CSI__V1__CONTROLLER_GET_VOLUME_REQUEST__INIT;
		char *details = NULL;
		int st;

		req.volume_id = (char *)o->volume_id;
		st = call_unary(rn->cl, cq, M_GET_VOLUME, &req.base, o->timeout_sec, false, NULL,
		                &details);
		if (st != 0)
			print_error("ControllerGetVolume", o->volume_id, st, details);
		return st;
	}
	default: {
		/* With secrets: the connection cache lookup, the journal entry, the image. */
		Csi__V1__ValidateVolumeCapabilitiesRequest req =
		        CSI__V1__VALIDATE_VOLUME_CAPABILITIES_REQUEST__INIT;
		struct map_entry secrets[2];
		void *sp[2] = { &secrets[0], &secrets[1] };
		struct capability cap;
		char *details = NULL;
		int st;

		capability_init(&cap);
		map_entry_set(
		        &secrets[0],
		        &csi__v1__validate_volume_capabilities_request__secrets_entry__descriptor,
		        "userID", o->user);
		map_entry_set(
		        &secrets[1],
		        &csi__v1__validate_volume_capabilities_request__secrets_entry__descriptor,
		        "userKey", o->key);
		req.volume_id = (char *)o->volume_id;
		req.n_volume_capabilities = 1;
		req.volume_capabilities = cap.caps;
		req.n_secrets = 2;
		req.secrets = (Csi__V1__ValidateVolumeCapabilitiesRequest__SecretsEntry **)sp;
		st = call_unary(rn->cl, cq, M_VALIDATE, &req.base, o->timeout_sec, false, NULL,
		                &details);
		if (st != 0)
			print_error("ValidateVolumeCapabilities", o->volume_id, st, details);
		return st;
	}
	}
}

static int one_node_call(struct run *rn, grpc_completion_queue *cq, uint64_t i)
{
	const struct opts *o = rn->o;

	switch (i % 5) {
	case 0:
		return empty_call(rn->cl, cq, M_PROBE, &csi__v1__probe_request__descriptor,
		                  o->timeout_sec);
	case 1:
		return empty_call(rn->cl, cq, M_PLUGIN_INFO,
		                  &csi__v1__get_plugin_info_request__descriptor, o->timeout_sec);
	case 2:
		return empty_call(rn->cl, cq, M_NODE_INFO,
		                  &csi__v1__node_get_info_request__descriptor, o->timeout_sec);
	case 3:
		return empty_call(rn->cl, cq, M_NODE_CAPS,
		                  &csi__v1__node_get_capabilities_request__descriptor,
		                  o->timeout_sec);
	default: {
		/* An error path: stats of a volume that is not published there (NOT_FOUND). */
		Csi__V1__NodeGetVolumeStatsRequest req =
		        CSI__V1__NODE_GET_VOLUME_STATS_REQUEST__INIT;
		char *details = NULL;
		int st;

		req.volume_id = (char *)"bench-no-such-volume";
		req.volume_path = (char *)o->target;
		st = call_unary(rn->cl, cq, M_NODE_STATS, &req.base, o->timeout_sec, false, NULL,
		                &details);
		gpr_free(details);
		return st == GRPC_STATUS_NOT_FOUND || st == GRPC_STATUS_OK ? 0 : st;
	}
	}
}

static void *run_worker(void *arg)
{
	struct run *rn = arg;
	grpc_completion_queue *cq = grpc_completion_queue_create_for_pluck(NULL);
	struct bench_samples local = { 0 };

	for (;;) {
		uint64_t i = atomic_fetch_add(&rn->next, 1), t0;
		int st = 0;

		if (i >= rn->n || atomic_load(&rn->failed))
			break;
		t0 = bench_now_usec();
		if (rn->what == RUN_CREATE) {
			Csi__V1__CreateVolumeResponse *resp = NULL;
			char name[128];

			snprintf(name, sizeof(name), "%s-%06" PRIu64, rn->o->prefix, i);
			st = create_volume(rn->cl, cq, rn->o, name, false, &resp);
			if (st == 0) {
				rn->ids[i] = strdup(resp->volume->volume_id);
				protobuf_c_message_free_unpacked(&resp->base, NULL);
			}
		} else if (rn->what == RUN_DELETE) {
			if (rn->ids[i])
				st = delete_volume(rn->cl, cq, rn->o, rn->ids[i]);
			if (st == 0) {
				free(rn->ids[i]);
				rn->ids[i] = NULL;
			}
		} else if (rn->what == RUN_CALLS_CONTROLLER) {
			st = one_controller_call(rn, cq, i);
		} else {
			st = one_node_call(rn, cq, i);
		}
		if (st != 0) {
			atomic_fetch_add(&rn->failed, 1);
			break;
		}
		(void)bench_samples_add(&local, bench_now_usec() - t0);
	}
	pthread_mutex_lock(&rn->lock);
	for (size_t k = 0; k < local.n; k++)
		(void)bench_samples_add(&rn->samples, local.v[k]);
	pthread_mutex_unlock(&rn->lock);
	bench_samples_done(&local);
	grpc_completion_queue_shutdown(cq);
	grpc_completion_queue_destroy(cq);
	return NULL;
}

/* Runs rn->what on rn->conc threads. Returns the wall time in microseconds; failures are
 * counted in rn->failed. */
static uint64_t run_threads(struct run *rn)
{
	pthread_t *th = calloc(rn->conc, sizeof(*th));
	uint64_t t0;

	if (!th)
		abort();
	atomic_store(&rn->next, 0);
	bench_samples_done(&rn->samples);
	t0 = bench_now_usec();
	for (unsigned k = 0; k < rn->conc; k++)
		if (pthread_create(&th[k], NULL, run_worker, rn) != 0)
			abort();
	for (unsigned k = 0; k < rn->conc; k++)
		pthread_join(th[k], NULL);
	free(th);
	return bench_now_usec() - t0;
}

static int mode_provision(const struct opts *o, uint64_t n, unsigned conc)
{
	struct run rn = { .o = o, .n = n, .conc = conc, .lock = PTHREAD_MUTEX_INITIALIZER };
	grpc_completion_queue *cq = grpc_completion_queue_create_for_pluck(NULL);
	uint64_t tc, td;
	double cpu0;
	int r = 0;

	rn.cl = client_new(o->endpoint, false);
	rn.ids = calloc(n, sizeof(*rn.ids));
	if (!rn.ids)
		abort();
	/* Warm-up: the connection (gRPC and Ceph) exists before the clock starts. */
	if (empty_call(rn.cl, cq, M_PROBE, &csi__v1__probe_request__descriptor, o->timeout_sec))
		r = 1;
	rn.what = RUN_CREATE;
	cpu0 = bench_cpu_sec();
	tc = run_threads(&rn);
	printf("{\"n\":%" PRIu64 ",\"conc\":%u,\"create_s\":%.3f,", n, conc, (double)tc / 1e6);
	bench_samples_dump(o->samples, "create", &rn.samples);
	bench_samples_json(stdout, "create", &rn.samples);
	if (atomic_load(&rn.failed))
		r = 1;

	/* Delete whatever exists, also after a failure. */
	atomic_store(&rn.failed, 0);
	rn.what = RUN_DELETE;
	td = run_threads(&rn);
	printf(",\"delete_s\":%.3f,\"vols_per_s\":%.2f,\"cpu_s\":%.3f,", (double)td / 1e6,
	       (double)n / ((double)(tc + td) / 1e6), bench_cpu_sec() - cpu0);
	bench_samples_dump(o->samples, "delete", &rn.samples);
	bench_samples_json(stdout, "delete", &rn.samples);
	printf("}\n");
	if (atomic_load(&rn.failed))
		r = 1;
	for (uint64_t i = 0; i < n; i++)
		if (rn.ids[i]) {
			fprintf(stderr, "loadgen: volume %s was not deleted\n", rn.ids[i]);
			r = 1;
			free(rn.ids[i]);
		}
	free(rn.ids);
	bench_samples_done(&rn.samples);
	grpc_completion_queue_shutdown(cq);
	grpc_completion_queue_destroy(cq);
	client_free(rn.cl);
	return r;
}

static int mode_calls(const struct opts *o, uint64_t n, unsigned conc, const char *kind)
{
	struct run rn = { .o = o, .n = n, .conc = conc, .lock = PTHREAD_MUTEX_INITIALIZER };
	uint64_t t;
	int r = 0;

	if (strcmp(kind, "controller") == 0) {
		if (!o->volume_id)
			return fprintf(stderr, "loadgen: calls controller needs --volume-id\n"), 1;
		rn.what = RUN_CALLS_CONTROLLER;
	} else if (strcmp(kind, "node") == 0) {
		if (!o->target)
			return fprintf(stderr, "loadgen: calls node needs --target\n"), 1;
		rn.what = RUN_CALLS_NODE;
	} else {
		return fprintf(stderr, "loadgen: calls: controller or node\n"), 1;
	}
	rn.cl = client_new(o->endpoint, false);
	t = run_threads(&rn);
	if (atomic_load(&rn.failed))
		r = 1;
	printf("{\"n\":%zu,\"secs\":%.3f,", rn.samples.n, (double)t / 1e6);
	bench_samples_json(stdout, "call", &rn.samples);
	printf("}\n");
	bench_samples_done(&rn.samples);
	client_free(rn.cl);
	return r;
}

/* ---- list ---- */

static int mode_list(const struct opts *o, uint64_t max)
{
	struct client *cl = client_new(o->endpoint, false);
	grpc_completion_queue *cq = grpc_completion_queue_create_for_pluck(NULL);
	struct bench_samples pages = { 0 };
	char *token = NULL;
	uint64_t entries = 0, t_all;
	int r = 0;

	if (empty_call(cl, cq, M_PROBE, &csi__v1__probe_request__descriptor, o->timeout_sec))
		r = 1;
	t_all = bench_now_usec();
	while (r == 0) {
		Csi__V1__ListVolumesRequest req = CSI__V1__LIST_VOLUMES_REQUEST__INIT;
		Csi__V1__ListVolumesResponse *resp = NULL;
		char *details = NULL;
		uint64_t t0 = bench_now_usec();
		int st;

		req.max_entries = (int32_t)max;
		req.starting_token = token ? token : (char *)"";
		st = call_unary(cl, cq, M_LIST, &req.base, o->timeout_sec, false,
		                (ProtobufCMessage **)&resp, &details);
		if (st != GRPC_STATUS_OK) {
			print_error("ListVolumes", token, st, details);
			r = 1;
			break;
		}
		(void)bench_samples_add(&pages, bench_now_usec() - t0);
		entries += resp->n_entries;
		free(token);
		token = isempty(resp->next_token) ? NULL : strdup(resp->next_token);
		protobuf_c_message_free_unpacked(&resp->base, NULL);
		if (!token)
			break;
	}
	if (r == 0) {
		printf("{\"max_entries\":%" PRIu64 ",\"entries\":%" PRIu64 ",\"pages\":%zu,"
		       "\"secs\":%.3f,",
		       max, entries, pages.n, (double)(bench_now_usec() - t_all) / 1e6);
		bench_samples_json(stdout, "page", &pages);
		printf("}\n");
	}
	free(token);
	bench_samples_done(&pages);
	grpc_completion_queue_shutdown(cq);
	grpc_completion_queue_destroy(cq);
	client_free(cl);
	return r;
}

/* ---- single create / delete ---- */

static int mode_create(const struct opts *o, const char *name)
{
	struct client *cl = client_new(o->endpoint, false);
	grpc_completion_queue *cq = grpc_completion_queue_create_for_pluck(NULL);
	Csi__V1__CreateVolumeResponse *resp = NULL;
	int r = 1;

	if (create_volume(cl, cq, o, name, true, &resp) == 0) {
		const Csi__V1__Volume *v = resp->volume;

		printf("{\"volume_id\":\"%s\",\"context\":\"", v->volume_id);
		for (size_t i = 0; i < v->n_volume_context; i++)
			printf("%s%s=%s", i ? "," : "", v->volume_context[i]->key,
			       v->volume_context[i]->value);
		printf("\"}\n");
		protobuf_c_message_free_unpacked(&resp->base, NULL);
		r = 0;
	}
	grpc_completion_queue_shutdown(cq);
	grpc_completion_queue_destroy(cq);
	client_free(cl);
	return r;
}

static int mode_delete(const struct opts *o, const char *volume_id)
{
	struct client *cl = client_new(o->endpoint, false);
	grpc_completion_queue *cq = grpc_completion_queue_create_for_pluck(NULL);
	int r = delete_volume(cl, cq, o, volume_id) == 0 ? 0 : 1;

	grpc_completion_queue_shutdown(cq);
	grpc_completion_queue_destroy(cq);
	client_free(cl);
	return r;
}

/* ---- stage cycles ---- */

/* Splits "k=v,k=v" into map entries of descriptor d (pointers into the copy s). */
static size_t context_parse(char *s, const ProtobufCMessageDescriptor *d, struct map_entry *e,
                            void **ep, size_t max)
{
	size_t n = 0;

	while (s && *s && n < max) {
		char *next = strchr(s, ','), *eq;

		if (next)
			*next++ = 0;
		eq = strchr(s, '=');
		if (eq) {
			*eq = 0;
			map_entry_set(&e[n], d, s, eq + 1);
			ep[n] = &e[n];
			n++;
		}
		s = next;
	}
	return n;
}

static int mode_stage(const struct opts *o, uint64_t k)
{
	struct client *cl;
	grpc_completion_queue *cq;
	struct bench_samples steps[4] = { { 0 } }, cycle = { 0 };
	static const char *const step_names[4] = { "stage", "publish", "unpublish", "unstage" };
	struct map_entry ctx[32], secrets[2];
	void *cp[32], *sp[2] = { &secrets[0], &secrets[1] };
	_cleanup_free_ char *ctx_copy = NULL;
	_cleanup_free_ uint64_t *cycles = calloc(k, sizeof(uint64_t));
	struct capability cap;
	size_t n_ctx;
	int r = 0;

	if (!o->node_endpoint || !o->volume_id || !o->context || !o->staging || !o->target)
		return fprintf(stderr, "loadgen: stage needs --node-endpoint --volume-id "
		                       "--context --staging --target\n"),
		       1;
	ctx_copy = strdup(o->context);
	if (!ctx_copy || !cycles)
		return 1;
	n_ctx = context_parse(ctx_copy,
	                      &csi__v1__node_stage_volume_request__volume_context_entry__descriptor,
	                      ctx, cp, ELEMENTSOF(ctx));
	map_entry_set(&secrets[0], &csi__v1__node_stage_volume_request__secrets_entry__descriptor,
	              "userID", o->user);
	map_entry_set(&secrets[1], &csi__v1__node_stage_volume_request__secrets_entry__descriptor,
	              "userKey", o->key);
	capability_init(&cap);
	cl = client_new(o->node_endpoint, false);
	cq = grpc_completion_queue_create_for_pluck(NULL);
	if (empty_call(cl, cq, M_PROBE, &csi__v1__probe_request__descriptor, o->timeout_sec))
		r = 1;

	for (uint64_t c = 0; r == 0 && c < k; c++) {
		Csi__V1__NodeStageVolumeRequest stage = CSI__V1__NODE_STAGE_VOLUME_REQUEST__INIT;
		Csi__V1__NodePublishVolumeRequest pub = CSI__V1__NODE_PUBLISH_VOLUME_REQUEST__INIT;
		Csi__V1__NodeUnpublishVolumeRequest unpub =
		        CSI__V1__NODE_UNPUBLISH_VOLUME_REQUEST__INIT;
		Csi__V1__NodeUnstageVolumeRequest unstage =
		        CSI__V1__NODE_UNSTAGE_VOLUME_REQUEST__INIT;
		const ProtobufCMessage *reqs[4] = { &stage.base, &pub.base, &unpub.base,
			                            &unstage.base };
		static const enum method ms[4] = { M_STAGE, M_PUBLISH, M_UNPUBLISH, M_UNSTAGE };
		uint64_t t_cycle = bench_now_usec();

		stage.volume_id = (char *)o->volume_id;
		stage.staging_target_path = (char *)o->staging;
		stage.volume_capability = &cap.cap;
		stage.n_volume_context = n_ctx;
		stage.volume_context = (Csi__V1__NodeStageVolumeRequest__VolumeContextEntry **)cp;
		stage.n_secrets = 2;
		stage.secrets = (Csi__V1__NodeStageVolumeRequest__SecretsEntry **)sp;
		pub.volume_id = (char *)o->volume_id;
		pub.staging_target_path = (char *)o->staging;
		pub.target_path = (char *)o->target;
		pub.volume_capability = &cap.cap;
		unpub.volume_id = (char *)o->volume_id;
		unpub.target_path = (char *)o->target;
		unstage.volume_id = (char *)o->volume_id;
		unstage.staging_target_path = (char *)o->staging;

		for (size_t s = 0; s < 4; s++) {
			uint64_t t0 = bench_now_usec();
			char *details = NULL;
			int st = call_unary(cl, cq, ms[s], reqs[s], o->timeout_sec, false, NULL,
			                    &details);

			if (st != GRPC_STATUS_OK) {
				print_error(step_names[s], o->volume_id, st, details);
				r = 1;
				/* Undo what is staged or published, best effort. */
				if (s < 3)
					(void)call_unary(cl, cq, M_UNPUBLISH, &unpub.base,
					                 o->timeout_sec, false, NULL, NULL);
				if (s < 4)
					(void)call_unary(cl, cq, M_UNSTAGE, &unstage.base,
					                 o->timeout_sec, false, NULL, NULL);
				break;
			}
			(void)bench_samples_add(&steps[s], bench_now_usec() - t0);
		}
		if (r == 0) {
			cycles[c] = bench_now_usec() - t_cycle;
			(void)bench_samples_add(&cycle, cycles[c]);
		}
	}
	if (r == 0) {
		printf("{\"cycles_ms\":[");
		for (uint64_t c = 0; c < k; c++)
			printf("%s%.3f", c ? "," : "", (double)cycles[c] / 1000.0);
		printf("],");
		bench_samples_json(stdout, "cycle", &cycle);
		for (size_t s = 0; s < 4; s++) {
			printf(",");
			bench_samples_json(stdout, step_names[s], &steps[s]);
		}
		printf("}\n");
	}
	for (size_t s = 0; s < 4; s++)
		bench_samples_done(&steps[s]);
	bench_samples_done(&cycle);
	grpc_completion_queue_shutdown(cq);
	grpc_completion_queue_destroy(cq);
	client_free(cl);
	return r;
}

/* ---- startup ---- */

static int mode_startup(const struct opts *o, uint64_t k, char **argv)
{
	const char *path = o->endpoint;
	struct bench_samples s = { 0 };
	_cleanup_free_ uint64_t *starts = calloc(k, sizeof(uint64_t));
	_cleanup_free_ uint64_t *sockets = calloc(k, sizeof(uint64_t));
	_cleanup_free_ unsigned *attempts = calloc(k, sizeof(unsigned));
	int r = 0;

	if (!starts || !sockets || !attempts)
		return 1;
	if (strncmp(path, "unix://", 7) == 0)
		path += 7;
	else if (strncmp(path, "unix:", 5) == 0)
		path += 5;

	/* Warm-up of this client (gRPC initialises parts of itself on the first call, which
	 * would be counted against the first start): one call to a socket nobody serves. */
	{
		struct client *cl = client_new("unix:/nonexistent/rbdcsi-bench-warmup", true);
		grpc_completion_queue *cq = grpc_completion_queue_create_for_pluck(NULL);
		Csi__V1__ProbeRequest req = CSI__V1__PROBE_REQUEST__INIT;

		(void)call_unary(cl, cq, M_PROBE, &req.base, 1, false, NULL, NULL);
		grpc_completion_queue_shutdown(cq);
		grpc_completion_queue_destroy(cq);
		client_free(cl);
	}

	for (uint64_t i = 0; r == 0 && i < k; i++) {
		posix_spawn_file_actions_t fa;
		struct client *cl = NULL;
		grpc_completion_queue *cq = NULL;
		uint64_t t0, deadline;
		bool ready = false;
		int status;
		pid_t pid;
		struct stat st;

		posix_spawn_file_actions_init(&fa);
		posix_spawn_file_actions_addopen(&fa, STDIN_FILENO, "/dev/null", O_RDONLY, 0);
		posix_spawn_file_actions_addopen(&fa, STDOUT_FILENO, "/dev/null", O_WRONLY, 0);
		posix_spawn_file_actions_addopen(&fa, STDERR_FILENO, "/dev/null", O_WRONLY, 0);
		t0 = bench_now_usec();
		deadline = t0 + 10000000ULL;
		if (posix_spawn(&pid, argv[0], &fa, NULL, argv, environ) != 0) {
			posix_spawn_file_actions_destroy(&fa);
			fprintf(stderr, "loadgen: cannot start %s\n", argv[0]);
			return 1;
		}
		posix_spawn_file_actions_destroy(&fa);
		/* The socket appears when the server binds it. */
		while (stat(path, &st) < 0 && bench_now_usec() < deadline)
			usleep(100);
		sockets[i] = bench_now_usec() - t0;
		cl = client_new(o->endpoint, true);
		cq = grpc_completion_queue_create_for_pluck(NULL);
		while (!ready && bench_now_usec() < deadline) {
			Csi__V1__ProbeRequest req = CSI__V1__PROBE_REQUEST__INIT;
			Csi__V1__ProbeResponse *resp = NULL;

			attempts[i]++;
			if (call_unary(cl, cq, M_PROBE, &req.base, 5, true,
			               (ProtobufCMessage **)&resp, NULL) == GRPC_STATUS_OK) {
				ready = resp->ready && resp->ready->value;
				protobuf_c_message_free_unpacked(&resp->base, NULL);
			}
			if (!ready)
				usleep(200);
		}
		if (ready) {
			starts[i] = bench_now_usec() - t0;
			(void)bench_samples_add(&s, starts[i]);
		} else {
			fprintf(stderr, "loadgen: %s did not serve a ready Probe within 10 s\n",
			        argv[0]);
			r = 1;
		}
		grpc_completion_queue_shutdown(cq);
		grpc_completion_queue_destroy(cq);
		client_free(cl);
		kill(pid, SIGTERM);
		if (waitpid(pid, &status, 0) < 0 || !WIFEXITED(status) ||
		    WEXITSTATUS(status) != 0) {
			fprintf(stderr, "loadgen: %s did not exit cleanly on SIGTERM\n", argv[0]);
			r = 1;
		}
	}
	if (r == 0) {
		printf("{\"starts_ms\":[");
		for (uint64_t i = 0; i < k; i++)
			printf("%s%.3f", i ? "," : "", (double)starts[i] / 1000.0);
		printf("],\"socket_ms\":[");
		for (uint64_t i = 0; i < k; i++)
			printf("%s%.3f", i ? "," : "", (double)sockets[i] / 1000.0);
		printf("],\"probe_attempts\":[");
		for (uint64_t i = 0; i < k; i++)
			printf("%s%u", i ? "," : "", attempts[i]);
		printf("],");
		bench_samples_json(stdout, "startup", &s);
		printf("}\n");
	}
	bench_samples_done(&s);
	return r;
}

/* ---- main ---- */

static int usage(void)
{
	fprintf(stderr, "usage: loadgen --endpoint unix:///path [options] MODE ...\n"
	                "  probe N | calls N C controller|node | provision N C | list MAX |\n"
	                "  create NAME | delete VOLUME_ID | stage K | startup K -- ARGV...\n");
	return 2;
}

int main(int argc, char **argv)
{
	struct opts o = { .cluster = "test",
		          .pool = "rbd",
		          .user = "csi",
		          .size = 1ULL << 30,
		          .prefix = "bench",
		          .timeout_sec = 120 };
	const char *mode = NULL, *pos[3] = { NULL, NULL, NULL };
	char **rest = NULL;
	size_t npos = 0;
	uint64_t a = 0, b = 0;
	int r;

	for (int i = 1; i < argc; i++) {
		const char *arg = argv[i];
		const char **dst = NULL;

		if (strcmp(arg, "--") == 0) {
			rest = argv + i + 1;
			break;
		}
		if (strcmp(arg, "--endpoint") == 0)
			dst = &o.endpoint;
		else if (strcmp(arg, "--node-endpoint") == 0)
			dst = &o.node_endpoint;
		else if (strcmp(arg, "--cluster") == 0)
			dst = &o.cluster;
		else if (strcmp(arg, "--pool") == 0)
			dst = &o.pool;
		else if (strcmp(arg, "--user") == 0)
			dst = &o.user;
		else if (strcmp(arg, "--prefix") == 0)
			dst = &o.prefix;
		else if (strcmp(arg, "--name") == 0)
			dst = &o.name;
		else if (strcmp(arg, "--volume-id") == 0)
			dst = &o.volume_id;
		else if (strcmp(arg, "--context") == 0)
			dst = &o.context;
		else if (strcmp(arg, "--staging") == 0)
			dst = &o.staging;
		else if (strcmp(arg, "--target") == 0)
			dst = &o.target;
		else if (strcmp(arg, "--samples") == 0)
			dst = &o.samples;
		else if (strcmp(arg, "--size") == 0 || strcmp(arg, "--timeout") == 0) {
			uint64_t v;

			if (i + 1 >= argc ||
			    bench_parse_u64(argv[i + 1], 1, UINT64_MAX / 2, &v) < 0)
				return usage();
			if (strcmp(arg, "--size") == 0)
				o.size = v;
			else
				o.timeout_sec = (unsigned)MIN(v, 3600);
			i++;
			continue;
		} else if (!mode) {
			mode = arg;
			continue;
		} else if (npos < ELEMENTSOF(pos)) {
			pos[npos++] = arg;
			continue;
		} else {
			return usage();
		}
		if (i + 1 >= argc)
			return usage();
		*dst = argv[++i];
	}
	if (!mode || !o.endpoint)
		return usage();

	if (strcmp(mode, "provision") == 0 || strcmp(mode, "create") == 0 ||
	    strcmp(mode, "delete") == 0 || strcmp(mode, "stage") == 0 ||
	    (strcmp(mode, "calls") == 0 && npos == 3 && strcmp(pos[2], "controller") == 0)) {
		o.key = bench_read_key();
		if (!o.key) {
			fprintf(stderr, "loadgen: %s needs the cephx key on stdin\n", mode);
			return 2;
		}
	}

	grpc_init();
	if (strcmp(mode, "probe") == 0 && npos == 1 &&
	    bench_parse_u64(pos[0], 1, 100000000, &a) == 0)
		r = mode_probe(&o, a);
	else if (strcmp(mode, "calls") == 0 && npos == 3 &&
	         bench_parse_u64(pos[0], 1, 100000000, &a) == 0 &&
	         bench_parse_u64(pos[1], 1, 1024, &b) == 0)
		r = mode_calls(&o, a, (unsigned)b, pos[2]);
	else if (strcmp(mode, "provision") == 0 && npos == 2 &&
	         bench_parse_u64(pos[0], 1, 1000000, &a) == 0 &&
	         bench_parse_u64(pos[1], 1, 1024, &b) == 0)
		r = mode_provision(&o, a, (unsigned)b);
	else if (strcmp(mode, "list") == 0 && npos == 1 &&
	         bench_parse_u64(pos[0], 1, 100000, &a) == 0)
		r = mode_list(&o, a);
	else if (strcmp(mode, "create") == 0 && npos == 1)
		r = mode_create(&o, pos[0]);
	else if (strcmp(mode, "delete") == 0 && npos == 1)
		r = mode_delete(&o, pos[0]);
	else if (strcmp(mode, "stage") == 0 && npos == 1 &&
	         bench_parse_u64(pos[0], 1, 10000, &a) == 0)
		r = mode_stage(&o, a);
	else if (strcmp(mode, "startup") == 0 && npos == 1 && rest && rest[0] &&
	         bench_parse_u64(pos[0], 1, 1000, &a) == 0)
		r = mode_startup(&o, a, rest);
	else
		r = usage();
	grpc_shutdown();
	bench_key_free(o.key);
	return r;
}
