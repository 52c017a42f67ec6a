/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The RADOS omap journal behind idempotent, crash-safe CreateVolume/CreateSnapshot, for any
 * kind of entry (volumes now, snapshots next). In one pool and rados namespace (the ioctx's):
 *
 *   directory object  "rbdcsi.volumes"          omap: <request name> -> <uuid>
 *   entry object      "rbdcsi.volume.<uuid>"    omap: field -> value (name, image, size, ...)
 *
 * and "rbdcsi.snapshots" / "rbdcsi.snapshot.<uuid>" for snapshots. Every change is one atomic
 * RADOS write operation, guarded so that several processes (not only threads) can race:
 *
 *   - journal_reserve() sets the directory key only if it is absent, in one op:
 *     create(idempotent) + omap_cmp(key == "") + omap_set. Measured on Ceph 16.2.15: the OSD
 *     compares a missing key as an empty value, so the cmp passes for a missing key and fails
 *     with -ECANCELED for any stored value (we never store empty values). Without the create,
 *     a missing directory object makes the op fail with -ENOENT; with it, the cmp in the same
 *     op sees the new object. A failed cmp applies nothing.
 *   - journal_entry_create() is an exclusive create plus the fields, in one op (-EEXIST if the
 *     object exists).
 *   - journal_entry_update() and journal_entry_remove() are guarded by the object version read
 *     by journal_entry_read() (assert_version: -ERANGE/-EOVERFLOW from the OSD when it moved,
 *     reported as -ESTALE), so read-check-modify sequences are atomic against other writers.
 *   - journal_unreserve() removes the directory key only if it still maps to the given uuid.
 *
 * The ioctx passed in must not be used by another thread at the same time (reads use
 * rados_get_last_version(), which is per ioctx).
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <rados/librados.h>

#include "driver/base/macro.h"
#include "driver/ceph/volume_id.h"

enum journal_kind {
	JOURNAL_VOLUME,
	JOURNAL_SNAPSHOT,
	JOURNAL_GROUP_SNAPSHOT,
	_JOURNAL_KIND_MAX,
};

#define JOURNAL_UUID_LEN VOLUME_ID_UUID_LEN
#define JOURNAL_NAME_MAX 1024 /* longest request name */
#define JOURNAL_OID_MAX  64

struct journal_field {
	char *key;
	char *value;
};

/* One entry object, as read at one version. */
struct journal_entry {
	enum journal_kind kind;
	char uuid[JOURNAL_UUID_LEN + 1];
	uint64_t version; /* RADOS object version when read */
	size_t n_fields;
	struct journal_field *fields; /* sorted by key (omap order) */
};

/* A directory key and its value. */
struct journal_name {
	char *name;
	char uuid[JOURNAL_UUID_LEN + 1];
};

/* Object names: "rbdcsi.volumes", "rbdcsi.volume.<uuid>" (ret has JOURNAL_OID_MAX bytes). */
const char *journal_directory_oid(enum journal_kind kind);
void journal_entry_oid(enum journal_kind kind, const char *uuid, char ret[static JOURNAL_OID_MAX]);

/* A new random (version 4) uuid, lowercase canonical. Returns 0 or -errno of getrandom(). */
int journal_uuid_new(char ret[static JOURNAL_UUID_LEN + 1]);

/* True for a request name the journal accepts: 1..JOURNAL_NAME_MAX bytes. */
bool journal_name_valid(const char *name);

/*
 * Maps name to uuid in the directory unless name is already mapped. Returns 1 when this call
 * reserved it (ret_uuid = uuid); 0 when it was already reserved (ret_uuid = the existing uuid,
 * the winner of any race); -EINVAL for a bad name or uuid; -EUCLEAN when the stored value is
 * not a uuid; -EAGAIN when the key kept changing under us.
 */
int journal_reserve(rados_ioctx_t io, enum journal_kind kind, const char *name, const char *uuid,
                    char ret_uuid[static JOURNAL_UUID_LEN + 1]);

/* Reads the uuid name maps to. Returns 0; -ENOENT; -EUCLEAN for a value that is no uuid. */
int journal_lookup(rados_ioctx_t io, enum journal_kind kind, const char *name,
                   char ret_uuid[static JOURNAL_UUID_LEN + 1]);

/*
 * Removes the directory key name if it maps to uuid. Idempotent: returns 0 also when the key
 * or the directory is absent, or when the key maps to another uuid (which is left alone).
 */
int journal_unreserve(rados_ioctx_t io, enum journal_kind kind, const char *name, const char *uuid);

/*
 * Creates the entry object for uuid holding fields (values must not be empty). ret: NULL, or
 * the entry as journal_entry_read() would return it now (the version this create made), so a
 * journal_entry_update() can follow without a read; free it with journal_entry_free(). Returns
 * 0; -EEXIST when it exists (nothing written). On -ENOMEM with ret, the object may have been
 * created.
 */
int journal_entry_create(rados_ioctx_t io, enum journal_kind kind, const char *uuid,
                         const struct journal_field *fields, size_t n_fields,
                         struct journal_entry **ret);

/* Reads an entry object. Returns 0 and *ret (free with journal_entry_free()); -ENOENT. */
int journal_entry_read(rados_ioctx_t io, enum journal_kind kind, const char *uuid,
                       struct journal_entry **ret);

/* The value of key in e, or NULL. */
const char *journal_entry_get(const struct journal_entry *e, const char *key);

/* A copy of the value of key in e in *ret, NULL when there is none. Errors: -ENOMEM. */
int journal_entry_get_dup(const struct journal_entry *e, const char *key, char **ret);

/*
 * Whether the wall-clock seconds (time(2), decimal) that e holds in key are more than max_age_sec
 * ago; a missing or damaged value is stale too (the remains of a crash are never waited for).
 */
bool journal_entry_stale(const struct journal_entry *e, const char *key, uint64_t max_age_sec);

/*
 * Sets the fields in set and removes the keys in rm, only if the object is still at e's
 * version. Returns 0; -ESTALE when it changed since e was read (re-read and retry); -ENOENT when
 * it is gone.
 */
int journal_entry_update(rados_ioctx_t io, const struct journal_entry *e,
                         const struct journal_field *set, size_t n_set, const char *const *rm,
                         size_t n_rm);

/*
 * Removes the entry object for uuid; when version is not 0, only if it is still at that version
 * (-ESTALE otherwise). Idempotent: an absent object is success.
 */
int journal_entry_remove(rados_ioctx_t io, enum journal_kind kind, const char *uuid,
                         uint64_t version);

/* Frees e. Accepts NULL, returns NULL. */
struct journal_entry *journal_entry_free(struct journal_entry *e);

DEFINE_TRIVIAL_CLEANUP_FUNC(struct journal_entry *, journal_entry_free)
#define _cleanup_journal_entry_ _cleanup_(journal_entry_freep)

/*
 * Lists up to max directory keys that sort after start_after (NULL or "" = from the start), in
 * key order. Returns 0, the array (free with journal_names_free()), its length, and whether
 * more keys follow. An absent directory is an empty list. A key whose value is not a uuid is
 * listed with uuid "" (skip it, but page past it).
 */
int journal_list(rados_ioctx_t io, enum journal_kind kind, const char *start_after, size_t max,
                 struct journal_name **ret, size_t *ret_n, bool *ret_more);

void journal_names_free(struct journal_name *names, size_t n);

/* Called by journal_list_page() for each entry of a page, in key order. */
typedef int (*journal_page_fn)(const struct journal_entry *e, const struct journal_name *jn,
                               void *userdata);

/*
 * One page of a listing (ListVolumes, ListSnapshots): decodes token (NULL or "" = from the
 * start; a token is the page's last directory key as lowercase hex, so it is opaque, printable
 * and survives the deletion of its entry), lists up to max directory keys after it, reads each
 * key's entry and calls fn for each
 * one that exists (keys without a uuid or whose entry is gone are skipped, but paged past).
 * *ret_next_token gets the malloc'ed token of the next page, or NULL after the last.
 * Errors: -EAGAIN a token this did not produce (callers report ABORTED, as CSI wants for a bad
 * starting_token), fn's errors (the walk stops at the first), -ENOMEM,
 * librados errors.
 */
int journal_list_page(rados_ioctx_t io, enum journal_kind kind, const char *token, size_t max,
                      journal_page_fn fn, void *userdata, char **ret_next_token);
