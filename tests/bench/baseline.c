/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The floor Ceph sets for rbdcsi's controller, measured in the same run (make bench): the bare
 * librbd/librados work of CreateVolume + DeleteVolume, with nothing else.
 *
 *   baseline --monitors M --user U --pool P provision N C [--opens K] [--samples FILE]
 *   baseline --monitors M --user U --pool P fill N C [--images] [--from K]
 *   baseline --monitors M --user U --pool P unfill C [--images]
 *   baseline --monitors M --user U --pool P listscan MAX [--inflight K]
 *   baseline --monitors M --user U --pool P footprint
 *
 * The cephx key is read from stdin (one line). Output: one JSON object on stdout.
 *
 * provision: N volumes created, then deleted, by C threads (one shared connection, like the
 * plugin's connection cache; one ioctx per thread). Per volume, the same image and the same
 * journal writes as driver/ceph/volume.c, each a single RADOS write op of the same shape as in
 * driver/ceph/journal.c, but no reads (the floor needs none):
 *   create: W1 directory reserve (create + omap_cmp + omap_set), W2 entry object (exclusive
 *           create + 7 fields), rbd_create4 (format 2, layering), W3 entry state "created"
 *           (assert_exists + assert_version + omap_set);
 *   delete: W4 entry state "deleting" (assert_exists + omap_set), rbd_remove, W5 directory
 *           key removed (omap_cmp + omap_rm_keys), W6 entry object removed.
 * So 3 journal writes per create and 3 per delete (6 per volume). The objects are
 * "rbdbench.volumes" and "rbdbench.volume.<uuid>" (never the driver's own journal).
 * --opens K (an experiment, not the floor) adds K read-only opens of each new image: what
 * every extra rbd_open costs (librbd builds a whole configuration per open).
 *
 * fill: N volumes that look like rbdcsi's own ("bench-fill-NNNNNN" in rbdcsi.volumes ->
 * rbdcsi.volume.<uuid> with the fields volume_create() writes, state "created"), written by C
 * threads; the directory keys in batches of 500 per op. With --images each also gets its real
 * image csi-vol-<uuid> (rbd_create4, 1 MiB). unfill removes every "bench-fill-" volume again
 * (entry objects, images when --images, directory keys). --from K names them from
 * bench-fill-K on: a later step of a fill made in steps.
 *
 * listscan: what ListVolumes reads for the whole pool: directory pages of MAX keys, then every
 * entry object; one read at a time (volume_list() before issue 18), or K in flight (--inflight
 * K; volume_list() now keeps 32 in flight).
 *
 * footprint: RSS, anonymous memory and threads of this process after one volume's create and
 * delete: what a bare librados + librbd client costs. provision prints the same figures (as
 * "footprint") after its N volumes: the floor for the controller's RSS after a storm.
 */
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include <rados/librados.h>
#include <rbd/librbd.h>

#include "tests/bench/bench.h"

#define UUID_LEN     36
#define FILL_PREFIX  "bench-fill-"
#define DIR_BATCH    500
#define FEATURES     1ULL /* layering, VOLUME_FEATURES_DEFAULT */
#define BENCH_DIR    "rbdbench.volumes"
#define BENCH_ENTRY  "rbdbench.volume."
#define RBDCSI_DIR   "rbdcsi.volumes"
#define RBDCSI_ENTRY "rbdcsi.volume."
#define IMAGE_PREFIX "csi-vol-"

struct ctx {
	rados_t rados;
	const char *pool;
	uint64_t n;
	unsigned conc;
	bool images;
	unsigned opens;      /* provision --opens K: K extra read-only image opens per volume */
	unsigned inflight;   /* listscan --inflight K: entry reads in flight (default 1) */
	uint64_t fill_from;  /* fill --from K: the names start at bench-fill-K (a later step) */
	const char *samples; /* provision --samples FILE: raw latencies appended */
	uint64_t size;
	char (*uuids)[UUID_LEN + 1];
	char **names; /* unfill: the directory keys found */
	atomic_uint_fast64_t next;
	atomic_int failed;
	int first_error;
	pthread_mutex_t lock;
	struct bench_samples create, remove;
};

static void uuid_new(char ret[static UUID_LEN + 1])
{
	uint8_t b[16];

	if (getrandom(b, sizeof(b), 0) != (ssize_t)sizeof(b))
		abort();
	b[6] = (uint8_t)((b[6] & 0x0f) | 0x40);
	b[8] = (uint8_t)((b[8] & 0x3f) | 0x80);
	snprintf(ret, UUID_LEN + 1,
	         "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x", b[0], b[1],
	         b[2], b[3], b[4], b[5], b[6], b[7], b[8], b[9], b[10], b[11], b[12], b[13], b[14],
	         b[15]);
}

static void fail(struct ctx *c, int r, const char *what, const char *obj)
{
	pthread_mutex_lock(&c->lock);
	if (!c->first_error) {
		c->first_error = r;
		fprintf(stderr, "baseline: %s %s: %s\n", what, obj, strerror(-r));
	}
	pthread_mutex_unlock(&c->lock);
	atomic_fetch_add(&c->failed, 1);
}

static int image_opts(rbd_image_options_t *ret)
{
	rbd_image_options_t o;
	int r;

	rbd_image_options_create(&o);
	if ((r = rbd_image_options_set_uint64(o, RBD_IMAGE_OPTION_FORMAT, 2)) < 0 ||
	    (r = rbd_image_options_set_uint64(o, RBD_IMAGE_OPTION_FEATURES, FEATURES)) < 0) {
		rbd_image_options_destroy(o);
		return r;
	}
	*ret = o;
	return 0;
}

/* The entry fields volume_create() writes (entry_create() in driver/ceph/volume.c). */
static int entry_write(rados_ioctx_t io, const char *oid, const char *name, const char *uuid,
                       uint64_t size, const char *state, uint64_t *ret_version)
{
	char image[64], size_str[24], now[24];
	const char *keys[] = { "name",     "image", "req_size",    "size",
		               "features", "state", "reserved_at", "params" };
	const char *vals[ELEMENTSOF(keys)];
	size_t lens[ELEMENTSOF(keys)];
	rados_write_op_t op;
	int r;

	snprintf(image, sizeof(image), IMAGE_PREFIX "%s", uuid);
	snprintf(size_str, sizeof(size_str), "%" PRIu64, size);
	snprintf(now, sizeof(now), "%lld", (long long)time(NULL));
	vals[0] = name;
	vals[1] = image;
	vals[2] = size_str;
	vals[3] = size_str;
	vals[4] = "1";
	vals[5] = state;
	vals[6] = now;
	vals[7] = "mount:1|fs:ext4";
	for (size_t i = 0; i < ELEMENTSOF(keys); i++)
		lens[i] = strlen(vals[i]);
	op = rados_create_write_op();
	if (!op)
		return -ENOMEM;
	rados_write_op_create(op, LIBRADOS_CREATE_EXCLUSIVE, NULL);
	rados_write_op_omap_set(op, keys, vals, lens, ELEMENTSOF(keys));
	r = rados_write_op_operate(op, io, oid, NULL, 0);
	rados_release_write_op(op);
	if (r == 0 && ret_version)
		*ret_version = rados_get_last_version(io);
	return r;
}

/* ---- provision ---- */

static int create_one(struct ctx *c, rados_ioctx_t io, uint64_t i)
{
	const char *uuid = c->uuids[i];
	char name[64], oid[64], image[64];
	const char *keys[1], *vals[1];
	size_t lens[1] = { UUID_LEN };
	rbd_image_options_t opts = NULL;
	rados_write_op_t op;
	uint64_t version = 0;
	int r, prval = 0;

	snprintf(name, sizeof(name), "bench-base-%06" PRIu64, i);
	snprintf(oid, sizeof(oid), BENCH_ENTRY "%s", uuid);
	snprintf(image, sizeof(image), "bench-base-%s", uuid);

	/* W1: the directory reservation, as journal_reserve(). */
	keys[0] = name;
	vals[0] = uuid;
	op = rados_create_write_op();
	if (!op)
		return -ENOMEM;
	rados_write_op_create(op, LIBRADOS_CREATE_IDEMPOTENT, NULL);
	rados_write_op_omap_cmp(op, name, LIBRADOS_CMPXATTR_OP_EQ, "", 0, &prval);
	rados_write_op_omap_set(op, keys, vals, lens, 1);
	r = rados_write_op_operate(op, io, BENCH_DIR, NULL, 0);
	rados_release_write_op(op);
	if (r < 0)
		return fail(c, r, "reserve", name), r;

	/* W2: the entry object. */
	r = entry_write(io, oid, name, uuid, c->size, "reserved", &version);
	if (r < 0)
		return fail(c, r, "entry create", oid), r;

	/* The image. */
	r = image_opts(&opts);
	if (r == 0) {
		r = rbd_create4(io, image, c->size, opts);
		rbd_image_options_destroy(opts);
	}
	if (r < 0)
		return fail(c, r, "rbd_create4", image), r;

	/* What-if experiment (--opens K): the cost of K more image opens per volume. */
	for (unsigned k = 0; k < c->opens; k++) {
		rbd_image_t img;
		uint64_t sz;

		r = rbd_open_read_only(io, image, &img, NULL);
		if (r < 0)
			return fail(c, r, "rbd_open_read_only", image), r;
		(void)rbd_get_size(img, &sz);
		rbd_close(img);
	}

	/* W3: mark created, guarded by the version like journal_entry_update(). */
	keys[0] = "state";
	vals[0] = "created";
	lens[0] = strlen("created");
	op = rados_create_write_op();
	if (!op)
		return -ENOMEM;
	rados_write_op_assert_exists(op);
	if (version)
		rados_write_op_assert_version(op, version);
	rados_write_op_omap_set(op, keys, vals, lens, 1);
	r = rados_write_op_operate(op, io, oid, NULL, 0);
	rados_release_write_op(op);
	if (r < 0)
		return fail(c, r, "mark created", oid), r;
	return 0;
}

static int delete_one(struct ctx *c, rados_ioctx_t io, uint64_t i)
{
	const char *uuid = c->uuids[i];
	char name[64], oid[64], image[64];
	const char *keys[2], *vals[2];
	size_t lens[2];
	rados_write_op_t op;
	int r, prval = 0;

	snprintf(name, sizeof(name), "bench-base-%06" PRIu64, i);
	snprintf(oid, sizeof(oid), BENCH_ENTRY "%s", uuid);
	snprintf(image, sizeof(image), "bench-base-%s", uuid);

	/* W4: mark deleting. */
	keys[0] = "state";
	vals[0] = "deleting";
	keys[1] = "prev_state";
	vals[1] = "created";
	lens[0] = strlen(vals[0]);
	lens[1] = strlen(vals[1]);
	op = rados_create_write_op();
	if (!op)
		return -ENOMEM;
	rados_write_op_assert_exists(op);
	rados_write_op_omap_set(op, keys, vals, lens, 2);
	r = rados_write_op_operate(op, io, oid, NULL, 0);
	rados_release_write_op(op);
	if (r < 0)
		return fail(c, r, "mark deleting", oid), r;

	/* The image. */
	r = rbd_remove(io, image);
	if (r < 0)
		return fail(c, r, "rbd_remove", image), r;

	/* W5: the directory key, only if it still names this uuid (journal_unreserve()). */
	keys[0] = name;
	op = rados_create_write_op();
	if (!op)
		return -ENOMEM;
	rados_write_op_omap_cmp(op, name, LIBRADOS_CMPXATTR_OP_EQ, uuid, UUID_LEN, &prval);
	rados_write_op_omap_rm_keys(op, keys, 1);
	r = rados_write_op_operate(op, io, BENCH_DIR, NULL, 0);
	rados_release_write_op(op);
	if (r < 0)
		return fail(c, r, "unreserve", name), r;

	/* W6: the entry object. */
	op = rados_create_write_op();
	if (!op)
		return -ENOMEM;
	rados_write_op_remove(op);
	r = rados_write_op_operate(op, io, oid, NULL, 0);
	rados_release_write_op(op);
	if (r < 0)
		return fail(c, r, "entry remove", oid), r;
	return 0;
}

enum phase {
	PHASE_CREATE,
	PHASE_DELETE,
	PHASE_FILL_ENTRIES,
	PHASE_FILL_IMAGES,
	PHASE_UNFILL,
};

struct worker {
	struct ctx *c;
	enum phase phase;
};

static int fill_entry(struct ctx *c, rados_ioctx_t io, uint64_t i)
{
	char name[64], oid[64];
	int r;

	snprintf(name, sizeof(name), FILL_PREFIX "%06" PRIu64, c->fill_from + i);
	snprintf(oid, sizeof(oid), RBDCSI_ENTRY "%s", c->uuids[i]);
	r = entry_write(io, oid, name, c->uuids[i], c->size, "created", NULL);
	if (r < 0)
		fail(c, r, "fill entry", oid);
	return r;
}

static int fill_image(struct ctx *c, rados_ioctx_t io, uint64_t i)
{
	rbd_image_options_t opts = NULL;
	char image[64];
	int r;

	snprintf(image, sizeof(image), IMAGE_PREFIX "%s", c->uuids[i]);
	r = image_opts(&opts);
	if (r == 0) {
		r = rbd_create4(io, image, c->size, opts);
		rbd_image_options_destroy(opts);
	}
	if (r < 0)
		fail(c, r, "fill image", image);
	return r;
}

static int unfill_one(struct ctx *c, rados_ioctx_t io, uint64_t i)
{
	char oid[64], image[64];
	rados_write_op_t op;
	int r;

	if (c->images) {
		snprintf(image, sizeof(image), IMAGE_PREFIX "%s", c->uuids[i]);
		r = rbd_remove(io, image);
		if (r < 0 && r != -ENOENT) {
			fail(c, r, "unfill image", image);
			return r;
		}
	}
	snprintf(oid, sizeof(oid), RBDCSI_ENTRY "%s", c->uuids[i]);
	op = rados_create_write_op();
	if (!op)
		return -ENOMEM;
	rados_write_op_remove(op);
	r = rados_write_op_operate(op, io, oid, NULL, 0);
	rados_release_write_op(op);
	if (r < 0 && r != -ENOENT) {
		fail(c, r, "unfill entry", oid);
		return r;
	}
	return 0;
}

static void *worker_main(void *arg)
{
	struct worker *w = arg;
	struct ctx *c = w->c;
	struct bench_samples local = { 0 };
	rados_ioctx_t io = NULL;
	int r;

	r = rados_ioctx_create(c->rados, c->pool, &io);
	if (r < 0) {
		fail(c, r, "ioctx", c->pool);
		return NULL;
	}
	for (;;) {
		uint64_t i = atomic_fetch_add(&c->next, 1);
		uint64_t t0;

		if (i >= c->n || atomic_load(&c->failed))
			break;
		t0 = bench_now_usec();
		switch (w->phase) {
		case PHASE_CREATE:
			r = create_one(c, io, i);
			break;
		case PHASE_DELETE:
			r = delete_one(c, io, i);
			break;
		case PHASE_FILL_ENTRIES:
			r = fill_entry(c, io, i);
			break;
		case PHASE_FILL_IMAGES:
			r = fill_image(c, io, i);
			break;
		case PHASE_UNFILL:
			r = unfill_one(c, io, i);
			break;
		}
		if (r < 0)
			break;
		if (bench_samples_add(&local, bench_now_usec() - t0) < 0)
			break;
	}
	rados_ioctx_destroy(io);
	if (w->phase == PHASE_CREATE || w->phase == PHASE_DELETE) {
		struct bench_samples *s = w->phase == PHASE_CREATE ? &c->create : &c->remove;

		pthread_mutex_lock(&c->lock);
		for (size_t k = 0; k < local.n; k++)
			(void)bench_samples_add(s, local.v[k]);
		pthread_mutex_unlock(&c->lock);
	}
	bench_samples_done(&local);
	return NULL;
}

/* Runs one phase on c->conc threads; returns the wall time in microseconds, or -errno. */
static int64_t run_phase(struct ctx *c, enum phase phase)
{
	pthread_t *th = calloc(c->conc, sizeof(*th));
	struct worker w = { .c = c, .phase = phase };
	uint64_t t0;

	if (!th)
		return -ENOMEM;
	atomic_store(&c->next, 0);
	t0 = bench_now_usec();
	for (unsigned k = 0; k < c->conc; k++)
		if (pthread_create(&th[k], NULL, worker_main, &w) != 0)
			abort();
	for (unsigned k = 0; k < c->conc; k++)
		pthread_join(th[k], NULL);
	free(th);
	if (atomic_load(&c->failed))
		return c->first_error ? c->first_error : -EIO;
	return (int64_t)(bench_now_usec() - t0);
}

/* Removes the (by now empty) rbdbench.volumes directory object: nothing is left behind. */
static void bench_dir_remove(struct ctx *c)
{
	rados_ioctx_t io;

	if (rados_ioctx_create(c->rados, c->pool, &io) < 0)
		return;
	(void)rados_remove(io, BENCH_DIR);
	rados_ioctx_destroy(io);
}

/* ---- the directory, in batches ---- */

static int dir_set_batch(rados_ioctx_t io, struct ctx *c, uint64_t from, uint64_t to)
{
	const char **keys = calloc(to - from, sizeof(*keys));
	const char **vals = calloc(to - from, sizeof(*vals));
	size_t *lens = calloc(to - from, sizeof(*lens));
	char(*names)[32] = calloc(to - from, sizeof(*names));
	rados_write_op_t op = NULL;
	int r = -ENOMEM;

	if (!keys || !vals || !lens || !names)
		goto out;
	for (uint64_t i = from; i < to; i++) {
		snprintf(names[i - from], sizeof(names[0]), FILL_PREFIX "%06" PRIu64,
		         c->fill_from + i);
		keys[i - from] = names[i - from];
		vals[i - from] = c->uuids[i];
		lens[i - from] = UUID_LEN;
	}
	op = rados_create_write_op();
	if (!op)
		goto out;
	rados_write_op_create(op, LIBRADOS_CREATE_IDEMPOTENT, NULL);
	rados_write_op_omap_set(op, keys, vals, lens, to - from);
	r = rados_write_op_operate(op, io, RBDCSI_DIR, NULL, 0);
out:
	if (op)
		rados_release_write_op(op);
	free(keys);
	free(vals);
	free(lens);
	free(names);
	return r;
}

/* Reads every FILL_PREFIX key of the directory into c->names / c->uuids. */
static int dir_read_fill(rados_ioctx_t io, struct ctx *c)
{
	char after[64] = "";
	uint64_t cap = 0;

	c->n = 0;
	for (;;) {
		rados_read_op_t op = rados_create_read_op();
		rados_omap_iter_t it = NULL;
		unsigned char more = 0;
		int r, prval = 0, got = 0;

		if (!op)
			return -ENOMEM;
		rados_read_op_omap_get_vals2(op, after, FILL_PREFIX, 1000, &it, &more, &prval);
		r = rados_read_op_operate(op, io, RBDCSI_DIR, 0);
		if (r == -ENOENT) {
			rados_release_read_op(op);
			return 0;
		}
		if (r >= 0 && prval < 0)
			r = prval;
		while (r >= 0) {
			char *key, *val;
			size_t klen, vlen;

			r = rados_omap_get_next2(it, &key, &val, &klen, &vlen);
			if (r < 0 || !key)
				break;
			got++;
			snprintf(after, sizeof(after), "%.*s", (int)klen, key);
			if (vlen != UUID_LEN)
				continue;
			if (c->n == cap) {
				cap = cap ? cap * 2 : 1024;
				c->names = reallocarray(c->names, cap, sizeof(*c->names));
				c->uuids = reallocarray(c->uuids, cap, sizeof(*c->uuids));
				if (!c->names || !c->uuids)
					abort();
			}
			c->names[c->n] = strndup(key, klen);
			memcpy(c->uuids[c->n], val, UUID_LEN);
			c->uuids[c->n][UUID_LEN] = 0;
			c->n++;
		}
		if (it)
			rados_omap_get_end(it);
		rados_release_read_op(op);
		if (r < 0)
			return r;
		if (!more || got == 0)
			return 0;
	}
}

static int dir_rm_fill(rados_ioctx_t io, struct ctx *c)
{
	for (uint64_t from = 0; from < c->n; from += DIR_BATCH) {
		uint64_t to = MIN(from + DIR_BATCH, c->n);
		rados_write_op_t op = rados_create_write_op();
		int r;

		if (!op)
			return -ENOMEM;
		rados_write_op_omap_rm_keys(op, (const char *const *)&c->names[from], to - from);
		r = rados_write_op_operate(op, io, RBDCSI_DIR, NULL, 0);
		rados_release_write_op(op);
		if (r < 0 && r != -ENOENT)
			return r;
	}
	return 0;
}

/* ---- list floor ---- */

/* One entry read in flight. */
struct entry_read {
	rados_read_op_t op;
	rados_completion_t comp;
	rados_omap_iter_t it;
	unsigned char more;
	int prval;
};

static int entry_read_finish(struct entry_read *e)
{
	int r;

	rados_aio_wait_for_complete(e->comp);
	r = rados_aio_get_return_value(e->comp);
	if (e->it)
		rados_omap_get_end(e->it);
	rados_aio_release(e->comp);
	rados_release_read_op(e->op);
	*e = (struct entry_read){ 0 };
	if (r == -ENOENT)
		return 0;
	return r < 0 ? r : 1;
}

/*
 * Reads the entry objects of uuids[0..n) (all their fields), at most inflight at a time (1: one
 * round trip after the other; volume_list() keeps 32 in flight). Returns how many exist, or -errno.
 */
static int64_t read_entries(rados_ioctx_t io, char (*uuids)[UUID_LEN + 1], size_t n,
                            unsigned inflight)
{
	struct entry_read *win = calloc(inflight, sizeof(*win));
	int64_t found = 0;
	int r = 0;

	if (!win)
		return -ENOMEM;
	for (size_t i = 0; i < n + inflight && r >= 0; i++) {
		struct entry_read *e = &win[i % inflight];
		char oid[64];

		if (e->op) {
			int k = entry_read_finish(e);

			if (k < 0)
				r = k;
			found += k > 0;
		}
		if (i >= n || r < 0)
			continue;
		e->op = rados_create_read_op();
		if (!e->op || rados_aio_create_completion2(NULL, NULL, &e->comp) < 0) {
			r = -ENOMEM;
			break;
		}
		snprintf(oid, sizeof(oid), RBDCSI_ENTRY "%s", uuids[i]);
		rados_read_op_omap_get_vals2(e->op, "", "", 1024, &e->it, &e->more, &e->prval);
		r = rados_aio_read_op_operate(e->op, io, e->comp, oid, 0);
	}
	for (unsigned k = 0; k < inflight; k++)
		if (win[k].op)
			(void)entry_read_finish(&win[k]);
	free(win);
	return r < 0 ? r : found;
}

/*
 * What ListVolumes must read: directory pages of max keys, then each entry object's fields,
 * inflight reads at a time (volume_list() keeps 32 in flight). Returns the entries seen or -errno.
 */
static int64_t list_scan(rados_ioctx_t io, uint64_t max, unsigned inflight, uint64_t *ret_pages)
{
	char after[1100] = "";
	int64_t entries = 0;
	uint64_t pages = 0;

	for (;;) {
		rados_read_op_t op = rados_create_read_op();
		rados_omap_iter_t it = NULL;
		unsigned char more = 0;
		char(*uuids)[UUID_LEN + 1] = calloc(max, sizeof(*uuids));
		size_t n = 0;
		int r, prval = 0;

		if (!op || !uuids)
			return -ENOMEM;
		rados_read_op_omap_get_vals2(op, after, "", max, &it, &more, &prval);
		r = rados_read_op_operate(op, io, RBDCSI_DIR, 0);
		if (r >= 0 && prval < 0)
			r = prval;
		while (r >= 0 && n < max) {
			char *key, *val;
			size_t klen, vlen;

			r = rados_omap_get_next2(it, &key, &val, &klen, &vlen);
			if (r < 0 || !key)
				break;
			snprintf(after, sizeof(after), "%.*s", (int)klen, key);
			if (vlen == UUID_LEN) {
				memcpy(uuids[n], val, UUID_LEN);
				uuids[n][UUID_LEN] = 0;
				n++;
			}
		}
		if (it)
			rados_omap_get_end(it);
		rados_release_read_op(op);
		pages++;
		if (r >= 0) {
			int64_t got = read_entries(io, uuids, n, inflight);

			if (got < 0)
				r = (int)got;
			else
				entries += got;
		}
		free(uuids);
		if (r < 0)
			return r;
		if (!more || n == 0)
			break;
	}
	*ret_pages = pages;
	return entries;
}

/* ---- footprint floor ---- */

/* Prints "VmRSS" and "Threads" of this process, and its anonymous memory, as JSON fields. */
static void print_self_footprint(void)
{
	char line[256];
	long rss = -1, hwm = -1, threads = -1, anon = -1;
	FILE *f = fopen("/proc/self/status", "re");

	while (f && fgets(line, sizeof(line), f)) {
		if (strncmp(line, "VmRSS:", 6) == 0)
			rss = strtol(line + 6, NULL, 10);
		else if (strncmp(line, "VmHWM:", 6) == 0)
			hwm = strtol(line + 6, NULL, 10);
		else if (strncmp(line, "Threads:", 8) == 0)
			threads = strtol(line + 8, NULL, 10);
	}
	if (f)
		fclose(f);
	f = fopen("/proc/self/smaps_rollup", "re");
	while (f && fgets(line, sizeof(line), f))
		if (strncmp(line, "Anonymous:", 10) == 0)
			anon = strtol(line + 10, NULL, 10);
	if (f)
		fclose(f);
	printf("\"rss_kb\":%ld,\"hwm_kb\":%ld,\"anon_kb\":%ld,\"threads\":%ld", rss, hwm, anon,
	       threads);
}

/* ---- main ---- */

static int usage(void)
{
	fprintf(stderr, "usage: baseline --monitors M --user U --pool P\n"
	                "  provision N C [--opens K] | fill N C [--images] [--from K] |\n"
	                "  unfill C [--images] | listscan MAX | footprint\n");
	return 2;
}

static int connect_cluster(const char *monitors, const char *user, rados_t *ret)
{
	char entity[128];
	char *key = bench_read_key();
	rados_t r_;
	int r;

	if (!key) {
		fprintf(stderr, "baseline: no key on stdin\n");
		return -EINVAL;
	}
	snprintf(entity, sizeof(entity), "client.%s", user);
	r = rados_create2(&r_, "ceph", entity, 0);
	if (r < 0) {
		bench_key_free(key);
		return r;
	}
	/* The settings of driver/ceph/cluster.c: no file, no environment, no DNS. */
	if ((r = rados_conf_set(r_, "mon_host", monitors)) < 0 ||
	    (r = rados_conf_set(r_, "key", key)) < 0 ||
	    (r = rados_conf_set(r_, "keyring", "")) < 0 ||
	    (r = rados_conf_set(r_, "admin_socket", "")) < 0 ||
	    (r = rados_conf_set(r_, "log_to_stderr", "false")) < 0 ||
	    (r = rados_conf_set(r_, "err_to_stderr", "false")) < 0 ||
	    (r = rados_conf_set(r_, "log_file", "")) < 0 ||
	    (r = rados_conf_set(r_, "client_mount_timeout", "10")) < 0 ||
	    (r = rados_conf_set(r_, "rados_mon_op_timeout", "30")) < 0 ||
	    (r = rados_conf_set(r_, "rados_osd_op_timeout", "30")) < 0 ||
	    (r = rados_connect(r_)) < 0) {
		bench_key_free(key);
		rados_shutdown(r_);
		return r;
	}
	bench_key_free(key);
	*ret = r_;
	return 0;
}

int main(int argc, char **argv)
{
	const char *monitors = NULL, *user = NULL, *pool = NULL, *mode = NULL;
	const char *pos[2] = { NULL, NULL };
	struct ctx c = { .lock = PTHREAD_MUTEX_INITIALIZER, .size = 1ULL << 30 };
	size_t npos = 0;
	uint64_t v;
	int64_t t;
	int r;

	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--monitors") == 0 && i + 1 < argc)
			monitors = argv[++i];
		else if (strcmp(argv[i], "--user") == 0 && i + 1 < argc)
			user = argv[++i];
		else if (strcmp(argv[i], "--pool") == 0 && i + 1 < argc)
			pool = argv[++i];
		else if (strcmp(argv[i], "--images") == 0)
			c.images = true;
		else if (strcmp(argv[i], "--samples") == 0 && i + 1 < argc)
			c.samples = argv[++i];
		else if (strcmp(argv[i], "--inflight") == 0 && i + 1 < argc) {
			if (bench_parse_u64(argv[++i], 1, 1024, &v) < 0)
				return usage();
			c.inflight = (unsigned)v;
		} else if (strcmp(argv[i], "--from") == 0 && i + 1 < argc) {
			if (bench_parse_u64(argv[++i], 0, 100000000, &c.fill_from) < 0)
				return usage();
		} else if (strcmp(argv[i], "--opens") == 0 && i + 1 < argc) {
			if (bench_parse_u64(argv[++i], 0, 100, &v) < 0)
				return usage();
			c.opens = (unsigned)v;
		} else if (!mode)
			mode = argv[i];
		else if (npos < ELEMENTSOF(pos))
			pos[npos++] = argv[i];
		else
			return usage();
	}
	if (!monitors || !user || !pool || !mode)
		return usage();
	c.pool = pool;
	if (strcmp(mode, "footprint") == 0) {
		if (npos != 0)
			return usage();
		c.n = 1;
		c.conc = 1;
	} else if (strcmp(mode, "unfill") == 0 || strcmp(mode, "listscan") == 0) {
		if (npos != 1 || bench_parse_u64(pos[0], 1, 1024, &v) < 0)
			return usage();
		c.conc = (unsigned)v;
	} else {
		if (npos != 2 || bench_parse_u64(pos[0], 1, 1000000, &c.n) < 0 ||
		    bench_parse_u64(pos[1], 1, 1024, &v) < 0)
			return usage();
		c.conc = (unsigned)v;
	}

	r = connect_cluster(monitors, user, &c.rados);
	if (r < 0) {
		fprintf(stderr, "baseline: cannot connect: %s\n", strerror(-r));
		return 1;
	}

	if (strcmp(mode, "provision") == 0) {
		int64_t tc, td;
		double cpu0 = bench_cpu_sec();

		c.uuids = calloc(c.n, sizeof(*c.uuids));
		if (!c.uuids)
			abort();
		for (uint64_t i = 0; i < c.n; i++)
			uuid_new(c.uuids[i]);
		tc = run_phase(&c, PHASE_CREATE);
		if (tc < 0) {
			/* Whatever was made must go: delete what we can. */
			atomic_store(&c.failed, 0);
			c.first_error = 0;
			(void)run_phase(&c, PHASE_DELETE);
			bench_dir_remove(&c);
			rados_shutdown(c.rados);
			return 1;
		}
		td = run_phase(&c, PHASE_DELETE);
		bench_dir_remove(&c);
		if (td < 0) {
			rados_shutdown(c.rados);
			return 1;
		}
		printf("{\"n\":%" PRIu64 ",\"conc\":%u,\"create_s\":%.3f,\"delete_s\":%.3f,"
		       "\"vols_per_s\":%.2f,\"cpu_s\":%.3f,",
		       c.n, c.conc, (double)tc / 1e6, (double)td / 1e6,
		       (double)c.n / ((double)(tc + td) / 1e6), bench_cpu_sec() - cpu0);
		bench_samples_dump(c.samples, "create", &c.create);
		bench_samples_dump(c.samples, "delete", &c.remove);
		bench_samples_json(stdout, "create", &c.create);
		printf(",");
		bench_samples_json(stdout, "delete", &c.remove);
		/* What this bare client holds after the work (the threads are joined, the
		 * connection is still open): the controller's RSS after the same provisioning is
		 * compared with it. */
		printf(",\"footprint\":{");
		print_self_footprint();
		printf("}}\n");
	} else if (strcmp(mode, "fill") == 0) {
		rados_ioctx_t io;
		int64_t te, ti = 0;
		uint64_t t0 = bench_now_usec(), td;

		c.size = 1ULL << 20;
		c.uuids = calloc(c.n, sizeof(*c.uuids));
		if (!c.uuids)
			abort();
		for (uint64_t i = 0; i < c.n; i++)
			uuid_new(c.uuids[i]);
		r = rados_ioctx_create(c.rados, pool, &io);
		if (r < 0)
			goto fail;
		/* Directory first, as volume_create() does (never an entry nothing points to). */
		for (uint64_t from = 0; from < c.n && r >= 0; from += DIR_BATCH)
			r = dir_set_batch(io, &c, from, MIN(from + DIR_BATCH, c.n));
		rados_ioctx_destroy(io);
		if (r < 0)
			goto fail;
		td = bench_now_usec() - t0;
		te = run_phase(&c, PHASE_FILL_ENTRIES);
		if (te < 0) {
			r = (int)te;
			goto fail;
		}
		if (c.images) {
			ti = run_phase(&c, PHASE_FILL_IMAGES);
			if (ti < 0) {
				r = (int)ti;
				goto fail;
			}
		}
		printf("{\"n\":%" PRIu64 ",\"conc\":%u,\"directory_s\":%.3f,\"entries_s\":%.3f,"
		       "\"images\":%s,\"images_s\":%.3f}\n",
		       c.n, c.conc, (double)td / 1e6, (double)te / 1e6, c.images ? "true" : "false",
		       (double)ti / 1e6);
	} else if (strcmp(mode, "unfill") == 0) {
		rados_ioctx_t io;
		uint64_t t0 = bench_now_usec();

		r = rados_ioctx_create(c.rados, pool, &io);
		if (r < 0)
			goto fail;
		r = dir_read_fill(io, &c);
		if (r >= 0 && c.n > 0) {
			t = run_phase(&c, PHASE_UNFILL);
			r = t < 0 ? (int)t : 0;
		}
		if (r >= 0)
			r = dir_rm_fill(io, &c);
		rados_ioctx_destroy(io);
		if (r < 0)
			goto fail;
		printf("{\"n\":%" PRIu64 ",\"secs\":%.3f}\n", c.n,
		       (double)(bench_now_usec() - t0) / 1e6);
	} else if (strcmp(mode, "listscan") == 0) {
		rados_ioctx_t io;
		uint64_t t0 = bench_now_usec(), pages = 0;
		int64_t n;

		r = rados_ioctx_create(c.rados, pool, &io);
		if (r < 0)
			goto fail;
		n = list_scan(io, c.conc, c.inflight ? c.inflight : 1, &pages);
		rados_ioctx_destroy(io);
		if (n < 0) {
			r = (int)n;
			goto fail;
		}
		printf("{\"max_entries\":%u,\"inflight\":%u,\"entries\":%" PRId64
		       ",\"pages\":%" PRIu64 ",\"secs\":%.3f}\n",
		       c.conc, c.inflight ? c.inflight : 1, n, pages,
		       (double)(bench_now_usec() - t0) / 1e6);
	} else if (strcmp(mode, "footprint") == 0) {
		/* One connection that has done one volume's work: what librados + librbd cost. */
		c.uuids = calloc(1, sizeof(*c.uuids));
		if (!c.uuids)
			abort();
		uuid_new(c.uuids[0]);
		if (run_phase(&c, PHASE_CREATE) < 0 || run_phase(&c, PHASE_DELETE) < 0) {
			r = c.first_error ? c.first_error : -EIO;
			bench_dir_remove(&c);
			goto fail;
		}
		bench_dir_remove(&c);
		printf("{");
		print_self_footprint();
		printf("}\n");
	} else {
		rados_shutdown(c.rados);
		return usage();
	}
	r = 0;
	goto out;
fail:
	fprintf(stderr, "baseline: %s failed: %s\n", mode, strerror(-r));
out:
	rados_shutdown(c.rados);
	bench_samples_done(&c.create);
	bench_samples_done(&c.remove);
	for (uint64_t i = 0; c.names && i < c.n; i++)
		free(c.names[i]);
	free(c.names);
	free(c.uuids);
	return r < 0 ? 1 : 0;
}
