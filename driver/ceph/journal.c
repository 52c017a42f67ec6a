/* SPDX-License-Identifier: Apache-2.0 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

#include <rados/librados.h>

#include "driver/base/log.h"
#include "driver/base/macro.h"
#include "driver/base/parse.h"
#include "driver/ceph/journal.h"
#include "driver/ceph/ceph_lib.h" /* last: redirects the librados/librbd names */

#define RESERVE_ATTEMPTS 5
#define READ_PAGE        1024 /* omap pairs per read round trip */
#define READ_ATTEMPTS    5
#define LIST_INFLIGHT    32 /* entry reads in flight while listing a page */

struct kind_names {
	const char *directory;
	const char *entry_prefix;
};

static const struct kind_names kind_names[_JOURNAL_KIND_MAX] = {
	[JOURNAL_VOLUME] = { "rbdcsi.volumes", "rbdcsi.volume." },
	[JOURNAL_SNAPSHOT] = { "rbdcsi.snapshots", "rbdcsi.snapshot." },
	[JOURNAL_GROUP_SNAPSHOT] = { "rbdcsi.group-snapshots", "rbdcsi.group-snapshot." },
};

static inline void write_op_releasep(rados_write_op_t *op)
{
	if (*op)
		rados_release_write_op(*op);
}
#define _cleanup_write_op_ _cleanup_(write_op_releasep)

static inline void read_op_releasep(rados_read_op_t *op)
{
	if (*op)
		rados_release_read_op(*op);
}
#define _cleanup_read_op_ _cleanup_(read_op_releasep)

static inline void omap_iter_endp(rados_omap_iter_t *it)
{
	if (*it)
		rados_omap_get_end(*it);
}
#define _cleanup_omap_iter_ _cleanup_(omap_iter_endp)

static bool kind_valid(enum journal_kind kind)
{
	return kind >= 0 && kind < _JOURNAL_KIND_MAX;
}

const char *journal_directory_oid(enum journal_kind kind)
{
	return kind_valid(kind) ? kind_names[kind].directory : NULL;
}

void journal_entry_oid(enum journal_kind kind, const char *uuid, char ret[static JOURNAL_OID_MAX])
{
	snprintf(ret, JOURNAL_OID_MAX, "%s%s",
	         kind_valid(kind) ? kind_names[kind].entry_prefix : "", uuid);
}

int journal_uuid_new(char ret[static JOURNAL_UUID_LEN + 1])
{
	uint8_t b[16];
	size_t got = 0;

	while (got < sizeof(b)) {
		ssize_t k = getrandom(b + got, sizeof(b) - got, 0);
		if (k < 0) {
			if (errno == EINTR)
				continue;
			return negative_errno();
		}
		got += (size_t)k;
	}
	b[6] = (uint8_t)((b[6] & 0x0f) | 0x40); /* version 4 */
	b[8] = (uint8_t)((b[8] & 0x3f) | 0x80); /* RFC 4122 variant */
	snprintf(ret, JOURNAL_UUID_LEN + 1,
	         "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x", b[0], b[1],
	         b[2], b[3], b[4], b[5], b[6], b[7], b[8], b[9], b[10], b[11], b[12], b[13], b[14],
	         b[15]);
	return 0;
}

bool journal_name_valid(const char *name)
{
	size_t n;

	if (!name)
		return false;
	n = strnlen(name, JOURNAL_NAME_MAX + 1);
	return n >= 1 && n <= JOURNAL_NAME_MAX;
}

/* Copies a stored directory value into ret if it is a uuid. */
static int take_uuid(const char *val, size_t len, char ret[static JOURNAL_UUID_LEN + 1])
{
	char buf[JOURNAL_UUID_LEN + 1];

	if (len != JOURNAL_UUID_LEN)
		return -EUCLEAN;
	memcpy(buf, val, JOURNAL_UUID_LEN);
	buf[JOURNAL_UUID_LEN] = 0;
	if (!volume_id_uuid_valid(buf))
		return -EUCLEAN;
	memcpy(ret, buf, JOURNAL_UUID_LEN + 1);
	return 0;
}

int journal_lookup(rados_ioctx_t io, enum journal_kind kind, const char *name,
                   char ret_uuid[static JOURNAL_UUID_LEN + 1])
{
	_cleanup_read_op_ rados_read_op_t op = NULL;
	_cleanup_omap_iter_ rados_omap_iter_t it = NULL;
	const char *keys[] = { name };
	char *key, *val;
	size_t len;
	int r, prval = 0;

	if (!kind_valid(kind) || !journal_name_valid(name))
		return -EINVAL;
	op = rados_create_read_op();
	if (!op)
		return -ENOMEM;
	rados_read_op_omap_get_vals_by_keys(op, keys, 1, &it, &prval);
	r = rados_read_op_operate(op, io, journal_directory_oid(kind), 0);
	if (r < 0)
		return r;
	if (prval < 0)
		return prval;
	for (;;) {
		r = rados_omap_get_next(it, &key, &val, &len);
		if (r < 0)
			return r;
		if (!key)
			return -ENOENT;
		if (strcmp(key, name) == 0)
			return take_uuid(val, len, ret_uuid);
	}
}

int journal_reserve(rados_ioctx_t io, enum journal_kind kind, const char *name, const char *uuid,
                    char ret_uuid[static JOURNAL_UUID_LEN + 1])
{
	if (!kind_valid(kind) || !journal_name_valid(name) || !volume_id_uuid_valid(uuid))
		return -EINVAL;

	for (unsigned attempt = 0; attempt < RESERVE_ATTEMPTS; attempt++) {
		_cleanup_write_op_ rados_write_op_t op = NULL;
		const char *keys[] = { name };
		const char *vals[] = { uuid };
		const size_t lens[] = { JOURNAL_UUID_LEN };
		int r, prval = 0;

		op = rados_create_write_op();
		if (!op)
			return -ENOMEM;
		/* Set the key only if it is absent (a missing key compares equal to ""). */
		rados_write_op_create(op, LIBRADOS_CREATE_IDEMPOTENT, NULL);
		rados_write_op_omap_cmp(op, name, LIBRADOS_CMPXATTR_OP_EQ, "", 0, &prval);
		rados_write_op_omap_set(op, keys, vals, lens, 1);
		r = rados_write_op_operate(op, io, journal_directory_oid(kind), NULL, 0);
		if (r == 0) {
			memcpy(ret_uuid, uuid, JOURNAL_UUID_LEN + 1);
			log_debug("Reserved %s -> %s in %s", name, uuid,
			          journal_directory_oid(kind));
			return 1;
		}
		if (r != -ECANCELED)
			return log_debug_errno(r, "Reserving %s failed: %m", name);

		/* Taken: adopt the winner's uuid. */
		r = journal_lookup(io, kind, name, ret_uuid);
		if (r == 0) {
			log_debug("%s is already reserved as %s", name, ret_uuid);
			return 0;
		}
		if (r != -ENOENT)
			return r;
		/* Removed between our two operations: try again. */
	}
	return -EAGAIN;
}

int journal_unreserve(rados_ioctx_t io, enum journal_kind kind, const char *name, const char *uuid)
{
	_cleanup_write_op_ rados_write_op_t op = NULL;
	const char *keys[] = { name };
	int r, prval = 0;

	if (!kind_valid(kind) || !journal_name_valid(name) || !volume_id_uuid_valid(uuid))
		return -EINVAL;
	op = rados_create_write_op();
	if (!op)
		return -ENOMEM;
	rados_write_op_omap_cmp(op, name, LIBRADOS_CMPXATTR_OP_EQ, uuid, JOURNAL_UUID_LEN, &prval);
	rados_write_op_omap_rm_keys(op, keys, 1);
	r = rados_write_op_operate(op, io, journal_directory_oid(kind), NULL, 0);
	if (r == -ECANCELED || r == -ENOENT) {
		log_debug("%s no longer maps to %s, nothing to unreserve", name, uuid);
		return 0;
	}
	if (r < 0)
		return log_debug_errno(r, "Unreserving %s failed: %m", name);
	log_debug("Unreserved %s (was %s)", name, uuid);
	return 0;
}

/* Builds the parallel arrays omap_set wants. Values must be non-empty strings. */
static int fields_arrays(const struct journal_field *fields, size_t n, const char ***ret_keys,
                         const char ***ret_vals, size_t **ret_lens)
{
	const char **keys = calloc(n + 1, sizeof(*keys));
	const char **vals = calloc(n + 1, sizeof(*vals));
	size_t *lens = calloc(n + 1, sizeof(*lens));

	if (!keys || !vals || !lens) {
		free(keys);
		free(vals);
		free(lens);
		return -ENOMEM;
	}
	for (size_t i = 0; i < n; i++) {
		if (isempty(fields[i].key) || isempty(fields[i].value)) {
			free(keys);
			free(vals);
			free(lens);
			return -EINVAL;
		}
		keys[i] = fields[i].key;
		vals[i] = fields[i].value;
		lens[i] = strlen(fields[i].value);
	}
	*ret_keys = keys;
	*ret_vals = vals;
	*ret_lens = lens;
	return 0;
}

static int field_compare(const void *a, const void *b)
{
	const struct journal_field *x = a, *y = b;

	return strcmp(x->key, y->key); /* omap order: bytewise */
}

/* The entry as journal_entry_read() would return it right after a create at version. */
static int entry_from_fields(enum journal_kind kind, const char *uuid, uint64_t version,
                             const struct journal_field *fields, size_t n_fields,
                             struct journal_entry **ret)
{
	_cleanup_journal_entry_ struct journal_entry *e = NULL;

	e = calloc(1, sizeof(*e));
	if (!e)
		return -ENOMEM;
	e->kind = kind;
	memcpy(e->uuid, uuid, JOURNAL_UUID_LEN + 1);
	e->version = version;
	e->fields = calloc(n_fields + 1, sizeof(*e->fields));
	if (!e->fields)
		return -ENOMEM;
	for (size_t i = 0; i < n_fields; i++) {
		struct journal_field *f = &e->fields[e->n_fields];

		f->key = strdup(fields[i].key);
		f->value = strdup(fields[i].value);
		if (!f->key || !f->value) {
			free(f->key);
			free(f->value);
			return -ENOMEM;
		}
		e->n_fields++;
	}
	qsort(e->fields, e->n_fields, sizeof(*e->fields), field_compare);
	*ret = TAKE_PTR(e);
	return 0;
}

int journal_entry_create(rados_ioctx_t io, enum journal_kind kind, const char *uuid,
                         const struct journal_field *fields, size_t n_fields,
                         struct journal_entry **ret)
{
	_cleanup_write_op_ rados_write_op_t op = NULL;
	_cleanup_free_ const char **keys = NULL;
	_cleanup_free_ const char **vals = NULL;
	_cleanup_free_ size_t *lens = NULL;
	char oid[JOURNAL_OID_MAX];
	int r;

	if (!kind_valid(kind) || !volume_id_uuid_valid(uuid))
		return -EINVAL;
	r = fields_arrays(fields, n_fields, &keys, &vals, &lens);
	if (r < 0)
		return r;
	journal_entry_oid(kind, uuid, oid);
	op = rados_create_write_op();
	if (!op)
		return -ENOMEM;
	rados_write_op_create(op, LIBRADOS_CREATE_EXCLUSIVE, NULL);
	if (n_fields > 0)
		rados_write_op_omap_set(op, keys, vals, lens, n_fields);
	r = rados_write_op_operate(op, io, oid, NULL, 0);
	if (r < 0)
		return log_debug_errno(r, "Creating journal entry %s failed: %m", oid);
	log_debug("Created journal entry %s", oid);
	/* The version the write made, as a read would report it (rados_get_last_version() is
	 * set by writes too). A wrong one would only make the next update fail with -ESTALE,
	 * which callers answer with a read. */
	if (ret)
		return entry_from_fields(kind, uuid, rados_get_last_version(io), fields, n_fields,
		                         ret);
	return 0;
}

struct journal_entry *journal_entry_free(struct journal_entry *e)
{
	if (!e)
		return NULL;
	for (size_t i = 0; i < e->n_fields; i++) {
		free(e->fields[i].key);
		free(e->fields[i].value);
	}
	free(e->fields);
	free(e);
	return NULL;
}

/* Appends the pairs of it to e. Returns the count appended or -errno. */
static int append_pairs(struct journal_entry *e, rados_omap_iter_t it)
{
	int n = 0;

	for (;;) {
		struct journal_field *f;
		char *key, *val;
		size_t klen, vlen;
		int r;

		r = rados_omap_get_next2(it, &key, &val, &klen, &vlen);
		if (r < 0)
			return r;
		if (!key)
			return n;
		f = reallocarray(e->fields, e->n_fields + 1, sizeof(*f));
		if (!f)
			return -ENOMEM;
		e->fields = f;
		f = &e->fields[e->n_fields];
		f->key = strndup(key, klen);
		f->value = strndup(val ? val : "", vlen);
		if (!f->key || !f->value) {
			free(f->key);
			free(f->value);
			return -ENOMEM;
		}
		e->n_fields++;
		n++;
	}
}

int journal_entry_read(rados_ioctx_t io, enum journal_kind kind, const char *uuid,
                       struct journal_entry **ret)
{
	char oid[JOURNAL_OID_MAX];

	if (!kind_valid(kind) || !volume_id_uuid_valid(uuid))
		return -EINVAL;
	journal_entry_oid(kind, uuid, oid);

	/* Normally one round trip. Entries bigger than a page are read in pages; if the object
	 * changes between pages, start over so that the fields and the version agree. */
	for (unsigned attempt = 0; attempt < READ_ATTEMPTS; attempt++) {
		_cleanup_journal_entry_ struct journal_entry *e = NULL;
		uint64_t version = 0;
		bool consistent = true;
		unsigned char more = 1;

		e = calloc(1, sizeof(*e));
		if (!e)
			return -ENOMEM;
		e->kind = kind;
		memcpy(e->uuid, uuid, JOURNAL_UUID_LEN + 1);

		while (more) {
			_cleanup_read_op_ rados_read_op_t op = NULL;
			_cleanup_omap_iter_ rados_omap_iter_t it = NULL;
			_cleanup_free_ char *after = NULL;
			int r, prval = 0;

			if (e->n_fields > 0) {
				after = strdup(e->fields[e->n_fields - 1].key);
				if (!after)
					return -ENOMEM;
			}
			op = rados_create_read_op();
			if (!op)
				return -ENOMEM;
			rados_read_op_omap_get_vals2(op, strempty(after), "", READ_PAGE, &it, &more,
			                             &prval);
			r = rados_read_op_operate(op, io, oid, 0);
			if (r < 0)
				return r == -ENOENT
				               ? -ENOENT
				               : log_debug_errno(r, "Reading %s failed: %m", oid);
			if (prval < 0)
				return prval;
			if (version == 0)
				version = rados_get_last_version(io);
			else if (version != rados_get_last_version(io)) {
				consistent = false;
				break;
			}
			r = append_pairs(e, it);
			if (r < 0)
				return r;
		}
		if (!consistent)
			continue;
		e->version = version;
		*ret = TAKE_PTR(e);
		return 0;
	}
	return -EAGAIN;
}

const char *journal_entry_get(const struct journal_entry *e, const char *key)
{
	for (size_t i = 0; i < e->n_fields; i++)
		if (strcmp(e->fields[i].key, key) == 0)
			return e->fields[i].value;
	return NULL;
}

int journal_entry_get_dup(const struct journal_entry *e, const char *key, char **ret)
{
	const char *v = journal_entry_get(e, key);
	char *s = NULL;

	if (v) {
		s = strdup(v);
		if (!s)
			return -ENOMEM;
	}
	*ret = s;
	return 0;
}

bool journal_entry_stale(const struct journal_entry *e, const char *key, uint64_t max_age_sec)
{
	uint64_t at;

	if (parse_u64(journal_entry_get(e, key), &at) < 0)
		return true;
	return (uint64_t)time(NULL) > at + max_age_sec;
}

static int version_error(int r)
{
	/* assert_version: -ERANGE when the object is newer, -EOVERFLOW when older. */
	return r == -ERANGE || r == -EOVERFLOW ? -ESTALE : r;
}

int journal_entry_update(rados_ioctx_t io, const struct journal_entry *e,
                         const struct journal_field *set, size_t n_set, const char *const *rm,
                         size_t n_rm)
{
	_cleanup_write_op_ rados_write_op_t op = NULL;
	_cleanup_free_ const char **keys = NULL;
	_cleanup_free_ const char **vals = NULL;
	_cleanup_free_ size_t *lens = NULL;
	char oid[JOURNAL_OID_MAX];
	int r;

	if (!e || !kind_valid(e->kind) || e->version == 0)
		return -EINVAL;
	r = fields_arrays(set, n_set, &keys, &vals, &lens);
	if (r < 0)
		return r;
	journal_entry_oid(e->kind, e->uuid, oid);
	op = rados_create_write_op();
	if (!op)
		return -ENOMEM;
	/* assert_exists first: an omap_set alone would recreate a removed object. */
	rados_write_op_assert_exists(op);
	rados_write_op_assert_version(op, e->version);
	if (n_set > 0)
		rados_write_op_omap_set(op, keys, vals, lens, n_set);
	if (n_rm > 0)
		rados_write_op_omap_rm_keys(op, rm, n_rm);
	r = version_error(rados_write_op_operate(op, io, oid, NULL, 0));
	if (r < 0)
		return log_debug_errno(r, "Updating journal entry %s failed: %m", oid);
	return 0;
}

int journal_entry_remove(rados_ioctx_t io, enum journal_kind kind, const char *uuid,
                         uint64_t version)
{
	_cleanup_write_op_ rados_write_op_t op = NULL;
	char oid[JOURNAL_OID_MAX];
	int r;

	if (!kind_valid(kind) || !volume_id_uuid_valid(uuid))
		return -EINVAL;
	journal_entry_oid(kind, uuid, oid);
	op = rados_create_write_op();
	if (!op)
		return -ENOMEM;
	if (version != 0)
		rados_write_op_assert_version(op, version);
	rados_write_op_remove(op);
	r = version_error(rados_write_op_operate(op, io, oid, NULL, 0));
	if (r == -ENOENT) {
		log_debug("Journal entry %s already gone", oid);
		return 0;
	}
	if (r < 0)
		return log_debug_errno(r, "Removing journal entry %s failed: %m", oid);
	log_debug("Removed journal entry %s", oid);
	return 0;
}

void journal_names_free(struct journal_name *names, size_t n)
{
	if (!names)
		return;
	for (size_t i = 0; i < n; i++)
		free(names[i].name);
	free(names);
}

int journal_list(rados_ioctx_t io, enum journal_kind kind, const char *start_after, size_t max,
                 struct journal_name **ret, size_t *ret_n, bool *ret_more)
{
	_cleanup_read_op_ rados_read_op_t op = NULL;
	_cleanup_omap_iter_ rados_omap_iter_t it = NULL;
	struct journal_name *names;
	unsigned char more = 0;
	size_t n = 0;
	int r, prval = 0;

	if (!kind_valid(kind) || max == 0)
		return -EINVAL;
	names = calloc(max, sizeof(*names));
	if (!names)
		return -ENOMEM;
	op = rados_create_read_op();
	if (!op) {
		free(names);
		return -ENOMEM;
	}
	rados_read_op_omap_get_vals2(op, strempty(start_after), "", max, &it, &more, &prval);
	r = rados_read_op_operate(op, io, journal_directory_oid(kind), 0);
	if (r == -ENOENT) {
		*ret = names;
		*ret_n = 0;
		*ret_more = false;
		return 0;
	}
	if (r >= 0 && prval < 0)
		r = prval;
	while (r >= 0 && n < max) {
		char *key, *val;
		size_t klen, vlen;

		r = rados_omap_get_next2(it, &key, &val, &klen, &vlen);
		if (r < 0 || !key)
			break;
		/* A malformed value is listed with an empty uuid: callers skip it but still
		 * page past it. */
		if (take_uuid(val, vlen, names[n].uuid) < 0) {
			log_debug("Directory key with a malformed value");
			names[n].uuid[0] = 0;
		}
		names[n].name = strndup(key, klen);
		if (!names[n].name) {
			r = -ENOMEM;
			break;
		}
		n++;
	}
	if (r < 0) {
		journal_names_free(names, n);
		return log_debug_errno(r, "Listing %s failed: %m", journal_directory_oid(kind));
	}
	*ret = names;
	*ret_n = n;
	*ret_more = more;
	return 0;
}

/* A token back to its directory key; -EAGAIN for anything token_encode() did not produce
 * (odd length, non-hex, NUL bytes, longer than a name). */
static int token_decode(const char *token, char **ret)
{
	size_t n = strnlen(token, 2 * JOURNAL_NAME_MAX + 1);
	char *s;

	if (n == 0 || n % 2 != 0 || n > 2 * JOURNAL_NAME_MAX)
		return -EAGAIN;
	s = malloc(n / 2 + 1);
	if (!s)
		return -ENOMEM;
	for (size_t i = 0; i < n / 2; i++) {
		int v = 0;
		for (size_t j = 0; j < 2; j++) {
			char ch = token[2 * i + j];
			v <<= 4;
			if (ch >= '0' && ch <= '9')
				v |= ch - '0';
			else if (ch >= 'a' && ch <= 'f')
				v |= ch - 'a' + 10;
			else {
				free(s);
				return -EAGAIN;
			}
		}
		if (v == 0) {
			free(s);
			return -EAGAIN;
		}
		s[i] = (char)v;
	}
	s[n / 2] = 0;
	*ret = s;
	return 0;
}

/* A directory key as a list token (lowercase hex). */
static int token_encode(const char *name, char **ret)
{
	static const char hex[] = "0123456789abcdef";
	size_t n = strlen(name);
	char *s = malloc(2 * n + 1);

	if (!s)
		return -ENOMEM;
	for (size_t i = 0; i < n; i++) {
		s[2 * i] = hex[(unsigned char)name[i] >> 4];
		s[2 * i + 1] = hex[(unsigned char)name[i] & 0xf];
	}
	s[2 * n] = 0;
	*ret = s;
	return 0;
}

/* One entry read in flight (list_window). */
struct list_read {
	rados_completion_t c;
	rados_read_op_t op;
	rados_omap_iter_t it;
	unsigned char more;
	int prval;
};

static void list_read_done(struct list_read *lr)
{
	/* Never free what the OSD may still fill. */
	if (lr->c)
		(void)rados_aio_wait_for_complete(lr->c);
	if (lr->it)
		rados_omap_get_end(lr->it);
	if (lr->op)
		rados_release_read_op(lr->op);
	if (lr->c)
		rados_aio_release(lr->c);
	*lr = (struct list_read){};
}

/* The first page of each entry of names[0..n) read at once; each entry in order to fn. An entry
 * bigger than one page is read again by journal_entry_read() (which pages it); one deleted
 * since the directory was read is skipped. */
static int list_window(rados_ioctx_t io, enum journal_kind kind, const struct journal_name *names,
                       size_t n, journal_page_fn fn, void *userdata)
{
	struct list_read lr[LIST_INFLIGHT] = {};
	int r = 0;

	for (size_t i = 0; r >= 0 && i < n; i++) {
		char oid[JOURNAL_OID_MAX];

		if (!names[i].uuid[0])
			continue;
		if (!volume_id_uuid_valid(names[i].uuid)) {
			r = -EINVAL; /* as journal_entry_read() answers */
			break;
		}
		journal_entry_oid(kind, names[i].uuid, oid);
		lr[i].op = rados_create_read_op();
		if (!lr[i].op) {
			r = -ENOMEM;
			break;
		}
		rados_read_op_omap_get_vals2(lr[i].op, "", "", READ_PAGE, &lr[i].it, &lr[i].more,
		                             &lr[i].prval);
		r = rados_aio_create_completion2(NULL, NULL, &lr[i].c);
		if (r < 0)
			break;
		r = rados_aio_read_op_operate(lr[i].op, io, lr[i].c, oid, 0);
		if (r < 0) {
			rados_aio_release(lr[i].c);
			lr[i].c = NULL;
		}
	}
	for (size_t i = 0; r >= 0 && i < n; i++) {
		_cleanup_journal_entry_ struct journal_entry *e = NULL;

		if (!lr[i].c)
			continue;
		(void)rados_aio_wait_for_complete(lr[i].c);
		r = rados_aio_get_return_value(lr[i].c);
		if (r == -ENOENT) {
			r = 0; /* deleted since the directory was read */
			continue;
		}
		if (r < 0) {
			r = log_debug_errno(r, "Reading journal entry %s failed: %m",
			                    names[i].uuid);
			break;
		}
		if (lr[i].prval < 0) {
			r = lr[i].prval;
			break;
		}
		if (lr[i].more) {
			r = journal_entry_read(io, kind, names[i].uuid, &e);
			if (r == -ENOENT) {
				r = 0;
				continue;
			}
		} else {
			e = calloc(1, sizeof(*e));
			if (!e) {
				r = -ENOMEM;
				break;
			}
			e->kind = kind;
			memcpy(e->uuid, names[i].uuid, JOURNAL_UUID_LEN + 1);
			r = append_pairs(e, lr[i].it);
			e->version = rados_aio_get_version(lr[i].c);
		}
		if (r >= 0)
			r = fn(e, &names[i], userdata);
	}
	for (size_t i = 0; i < n; i++)
		list_read_done(&lr[i]);
	return r;
}

int journal_list_page(rados_ioctx_t io, enum journal_kind kind, const char *token, size_t max,
                      journal_page_fn fn, void *userdata, char **ret_next_token)
{
	_cleanup_free_ char *after = NULL;
	_cleanup_free_ char *next = NULL;
	struct journal_name *names = NULL;
	size_t n_names = 0;
	bool more = false;
	int r;

	if (!isempty(token)) {
		r = token_decode(token, &after);
		if (r < 0)
			return log_debug_errno(r, "Malformed list token");
	}
	r = journal_list(io, kind, after, max, &names, &n_names, &more);
	if (r < 0)
		return r;
	/* The entries are read LIST_INFLIGHT at a time (one round trip's wait for the lot, not
	 * one each: a page of 500 took 250-620 ms one at a time, make bench), and handed to fn in
	 * key order. */
	for (size_t from = 0; r >= 0 && from < n_names; from += LIST_INFLIGHT)
		r = list_window(io, kind, names + from, MIN(n_names - from, (size_t)LIST_INFLIGHT),
		                fn, userdata);
	if (r >= 0 && more && n_names > 0)
		r = token_encode(names[n_names - 1].name, &next);
	journal_names_free(names, n_names);
	if (r < 0)
		return r;
	*ret_next_token = TAKE_PTR(next);
	return 0;
}
