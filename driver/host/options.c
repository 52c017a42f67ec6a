/* SPDX-License-Identifier: Apache-2.0 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "driver/base/exec.h"
#include "driver/base/macro.h"
#include "driver/host/options.h"
#include "driver/host/reason.h"

/* What a short option's value must look like. */
enum value_kind {
	VALUE_NONE,     /* a flag: takes no value */
	VALUE_UINT,     /* 4096 */
	VALUE_DECIMAL,  /* 0.5 */
	VALUE_LABEL,    /* [A-Za-z0-9._-], 1-16 characters */
	VALUE_UUID,     /* hex digits and '-', or clear/random/time */
	VALUE_FEATURES, /* mke2fs -O: [^]feature,... from ext4_features */
	VALUE_SUBOPTS,  /* key[=value],... from the option's list */
	VALUE_ENUM,     /* one word of the option's list */
};

/*
 * Sub-option lists: "name" takes no value, "name=" needs one, "name#" needs a number, "name?"
 * may have one. Values are words of [A-Za-z0-9._:+-] (map options: [A-Za-z0-9._-]), never a
 * path.
 */
struct short_opt {
	char letter;
	enum value_kind kind;
	const char *const *list; /* VALUE_SUBOPTS, VALUE_ENUM; NULL-terminated */
};

static const char *const ext4_extended[] = {
	"stride#",
	"stripe_width#",
	"stripe-width#",
	"resize#",
	"lazy_itable_init?",
	"lazy_journal_init?",
	"packed_meta_blocks?",
	"num_backup_sb#",
	"discard",
	"nodiscard",
	"quotatype=",
	"encoding=",
	"encoding_flags=",
	"orphan_file_size#",
	"mmp_update_interval#",
	"hash_seed=",
	NULL,
};

/* -J: the internal journal's sizes only; device= and location= are refused. */
static const char *const ext4_journal[] = { "size=", "fast_commit_size=", NULL };

static const char *const ext4_errors[] = { "continue", "remount-ro", NULL };

/* mke2fs -O names (ext2fs feature table); journal_dev is left out: it makes no filesystem. */
static const char *const ext4_features[] = {
	"none",        "has_journal",  "ext_attr",      "resize_inode",
	"dir_index",   "filetype",     "extent",        "extents",
	"flex_bg",     "sparse_super", "sparse_super2", "large_file",
	"huge_file",   "uninit_bg",    "uninit_groups", "dir_nlink",
	"extra_isize", "64bit",        "metadata_csum", "metadata_csum_seed",
	"mmp",         "quota",        "project",       "bigalloc",
	"inline_data", "encrypt",      "casefold",      "fname_encoding",
	"ea_inode",    "large_dir",    "stable_inodes", "verity",
	"fast_commit", "orphan_file",  "meta_bg",       NULL,
};

/*
 * mke2fs. Refused, among others: -d (copies a directory or tarball of the node in), -l and -c
 * (bad block list file, badblocks run), -z (writes an undo file), -J device=, -F, -S, -n, -V,
 * -t, -T, -M, -o, -r.
 */
static const struct short_opt ext4_opts[] = {
	{ 'b', VALUE_UINT, NULL },
	{ 'C', VALUE_UINT, NULL },
	{ 'g', VALUE_UINT, NULL },
	{ 'G', VALUE_UINT, NULL },
	{ 'i', VALUE_UINT, NULL },
	{ 'I', VALUE_UINT, NULL },
	{ 'm', VALUE_DECIMAL, NULL },
	{ 'N', VALUE_UINT, NULL },
	{ 'j', VALUE_NONE, NULL },
	{ 'q', VALUE_NONE, NULL },
	{ 'v', VALUE_NONE, NULL },
	{ 'D', VALUE_NONE, NULL },
	{ 'L', VALUE_LABEL, NULL },
	{ 'U', VALUE_UUID, NULL },
	{ 'O', VALUE_FEATURES, NULL },
	{ 'E', VALUE_SUBOPTS, ext4_extended },
	{ 'J', VALUE_SUBOPTS, ext4_journal },
	{ 'e', VALUE_ENUM, ext4_errors },
	{ 0, VALUE_NONE, NULL },
};

static const char *const xfs_block[] = { "size=", NULL };
static const char *const xfs_meta[] = { "crc=",     "finobt=",     "rmapbt=", "reflink=",
	                                "bigtime=", "inobtcount=", "uuid=",   NULL };
/* -d: never file= or name= (a regular file of the node as the data section). */
static const char *const xfs_data[] = { "agcount=", "agsize=", "su=",     "sw=",
	                                "sunit=",   "swidth=", "noalign", NULL };
static const char *const xfs_inode[] = { "size=", "maxpct=",      "align=",   "sparse=",
	                                 "attr=", "projid32bit=", "nrext64=", NULL };
/* -l: the internal log only; never logdev=. */
static const char *const xfs_log[] = { "size=", "su=", "sunit=", "version=", "lazy-count=", NULL };
static const char *const xfs_naming[] = { "size=", "version=", "ftype=", NULL };
static const char *const xfs_sector[] = { "size=", NULL };

/*
 * mkfs.xfs. Refused, among others: -p (protofile: copies files of the node in), -c (reads a
 * config file), -r (realtime device), -f, -N, -V, -C.
 */
static const struct short_opt xfs_opts[] = {
	{ 'b', VALUE_SUBOPTS, xfs_block },
	{ 'm', VALUE_SUBOPTS, xfs_meta },
	{ 'd', VALUE_SUBOPTS, xfs_data },
	{ 'i', VALUE_SUBOPTS, xfs_inode },
	{ 'l', VALUE_SUBOPTS, xfs_log },
	{ 'n', VALUE_SUBOPTS, xfs_naming },
	{ 's', VALUE_SUBOPTS, xfs_sector },
	{ 'L', VALUE_LABEL, NULL },
	{ 'K', VALUE_NONE, NULL },
	{ 'q', VALUE_NONE, NULL },
	{ 0, VALUE_NONE, NULL },
};

static bool only_chars(const char *s, size_t len, const char *set)
{
	for (size_t i = 0; i < len; i++)
		if (!s[i] || !strchr(set, s[i]))
			return false;
	return true;
}

#define ALNUM     "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
#define DIGITS    "0123456789"
#define WORD_SET  ALNUM "._:+-"
#define LABEL_SET ALNUM "._-"

/* Finds name (len bytes) in list; returns the entry, or NULL. */
static const char *list_find(const char *const *list, const char *name, size_t len)
{
	for (; *list; list++) {
		size_t k = strcspn(*list, "=#?");

		if (k == len && strncmp(*list, name, len) == 0)
			return *list;
	}
	return NULL;
}

/* Checks "key[=value],..." against list. */
static int subopts_check(const char *tool, char letter, const char *const *list, const char *v,
                         char **ret_reason)
{
	if (!*v) {
		reason_set(ret_reason, "mkfs option '-%c' needs a value", letter);
		return -EINVAL;
	}
	for (const char *p = v; *p;) {
		const char *comma = strchrnul(p, ','), *eq, *entry;
		size_t len = (size_t)(comma - p), klen;
		char kind;

		eq = memchr(p, '=', len);
		klen = eq ? (size_t)(eq - p) : len;
		entry = klen > 0 ? list_find(list, p, klen) : NULL;
		if (!entry) {
			reason_set(ret_reason, "mkfs option '-%c %.*s' not allowed for %s", letter,
			           (int)MIN(klen, (size_t)64), p, tool);
			return -EINVAL;
		}
		kind = entry[klen];
		if (((kind == '=' || kind == '#') && !eq) || (kind == 0 && eq) ||
		    (eq && (eq + 1 == comma || !only_chars(eq + 1, (size_t)(comma - eq - 1),
		                                           kind == '#' ? DIGITS : WORD_SET)))) {
			reason_set(ret_reason, "mkfs option '-%c %.*s': invalid value", letter,
			           (int)klen, p);
			return -EINVAL;
		}
		p = *comma ? comma + 1 : comma;
	}
	return 0;
}

static int value_check(const char *tool, const struct short_opt *o, const char *v,
                       char **ret_reason)
{
	size_t len = strlen(v);
	bool ok = true;

	/* A value that looks like an option is one to a reader of the StorageClass. */
	if (len == 0 || v[0] == '-') {
		reason_set(ret_reason, "mkfs option '-%c' needs a value", o->letter);
		return -EINVAL;
	}
	switch (o->kind) {
	case VALUE_UINT:
		ok = len <= 20 && only_chars(v, len, DIGITS);
		break;
	case VALUE_DECIMAL:
		ok = len <= 20 && only_chars(v, len, DIGITS ".");
		break;
	case VALUE_LABEL:
		ok = len <= 16 && only_chars(v, len, LABEL_SET);
		break;
	case VALUE_UUID:
		ok = strcmp(v, "clear") == 0 || strcmp(v, "random") == 0 ||
		     strcmp(v, "time") == 0 ||
		     (len <= 36 && only_chars(v, len, "0123456789abcdefABCDEF-"));
		break;
	case VALUE_ENUM:
		ok = list_find(o->list, v, len) != NULL;
		break;
	case VALUE_FEATURES:
		for (const char *p = v; *p && ok;) {
			const char *comma = strchrnul(p, ',');
			const char *name = *p == '^' ? p + 1 : p;

			if (comma == name ||
			    !list_find(ext4_features, name, (size_t)(comma - name))) {
				reason_set(ret_reason,
				           "mkfs option '-O': feature '%.*s' not allowed",
				           (int)MIN((size_t)(comma - p), (size_t)64), p);
				return -EINVAL;
			}
			p = *comma ? comma + 1 : comma;
		}
		break;
	case VALUE_SUBOPTS:
		return subopts_check(tool, o->letter, o->list, v, ret_reason);
	case VALUE_NONE:
		break;
	}
	if (!ok) {
		reason_set(ret_reason, "mkfs option '-%c': invalid value", o->letter);
		return -EINVAL;
	}
	return 0;
}

int options_mkfs_split(const char *fstype, char *s, char **argv, size_t max, size_t *n,
                       char **ret_reason)
{
	const struct short_opt *table;
	const char *tool;
	char *word, *p = s;
	size_t start = *n;

	if (fstype && strcmp(fstype, "ext4") == 0)
		table = ext4_opts, tool = "ext4";
	else if (fstype && strcmp(fstype, "xfs") == 0)
		table = xfs_opts, tool = "xfs";
	else {
		reason_set(ret_reason, "unsupported filesystem type '%s'", strempty(fstype));
		return -EINVAL;
	}

	/* Words first, so that a value after its option can be looked at. */
	for (;;) {
		while (*p == ' ' || *p == '\t')
			p++;
		if (!*p)
			break;
		word = p;
		while (*p && *p != ' ' && *p != '\t')
			p++;
		if (*p)
			*p++ = 0;
		if (*n >= max) {
			reason_set(ret_reason, "too many mkfs options");
			return -EINVAL;
		}
		argv[(*n)++] = word;
	}

	/* Then as getopt(3) reads them: clusters of flags, the last one may take a value,
	 * attached ("-Lname") or as the next word ("-L name"). No long options. */
	for (size_t i = start; i < *n; i++) {
		const char *w = argv[i];

		if (w[0] != '-' || w[1] == 0 || w[1] == '-') {
			/* A bare word is an operand (the device); "--" ends the options. */
			reason_set(ret_reason, "mkfs option '%.64s' not allowed", w);
			return -EINVAL;
		}
		for (const char *c = w + 1; *c; c++) {
			const struct short_opt *o = table;
			const char *v;
			int r;

			while (o->letter && o->letter != *c)
				o++;
			if (!o->letter) {
				/* Named in the reason only when printable. */
				reason_set(ret_reason, "mkfs option '-%c' not allowed for %s%s",
				           *c > ' ' && *c < 0x7f ? *c : '?', tool,
				           strchr(tool[0] == 'e' ? "dlzcFSnVtTMor" : "pcrfNVC", *c)
				                   ? ": it reads or writes files of the node, or "
				                     "does not make a fresh filesystem"
				                   : "");
				return -EINVAL;
			}
			if (o->kind == VALUE_NONE)
				continue;
			if (c[1])
				v = c + 1;
			else if (i + 1 < *n)
				v = argv[++i];
			else {
				reason_set(ret_reason, "mkfs option '-%c' needs a value", *c);
				return -EINVAL;
			}
			r = value_check(tool, o, v, ret_reason);
			if (r < 0)
				return r;
			break;
		}
	}
	return 0;
}

int options_mkfs_check(const char *fstype, const char *options, char **ret_reason)
{
	_cleanup_free_ char *copy = NULL;
	char *argv[OPTIONS_MKFS_ARGS_MAX];
	size_t n = 0;

	if (!fstype || (strcmp(fstype, "ext4") != 0 && strcmp(fstype, "xfs") != 0)) {
		reason_set(ret_reason, "unsupported filesystem type '%s'", strempty(fstype));
		return -EINVAL;
	}
	if (isempty(options))
		return 0;
	copy = strdup(options);
	if (!copy)
		return -ENOMEM;
	return options_mkfs_split(fstype, copy, argv, ELEMENTSOF(argv), &n, ret_reason);
}

/* ---- map and unmap options ---- */

/*
 * krbd, written to /sys/bus/rbd/add_single_major as the kernel parses them (exact names): rbd
 * and libceph options that tune the mapping. Never name=, secret=, key=, fsid=, ip=, _pool_ns=
 * (ours to set), nor ro/rw (the access mode decides).
 */
static const char *const krbd_map[] = {
	"queue_depth#",
	"alloc_size#",
	"lock_timeout#",
	"compression_hint=",
	"ms_mode=",
	"read_from_replica=",
	"osdkeepalive#",
	"osd_idle_ttl#",
	"mount_timeout#",
	"osd_request_timeout#",
	"lock_on_read",
	"exclusive",
	"notrim",
	"rxbounce",
	"noshare",
	"crc",
	"nocrc",
	"tcp_nodelay",
	"notcp_nodelay",
	"cephx_require_signatures",
	"nocephx_require_signatures",
	"cephx_sign_messages",
	"nocephx_sign_messages",
	"abort_on_full",
	NULL,
};

/*
 * rbd-nbd map, spelled with '-' (Ceph's argument parser treats '-' and '_' alike, so both
 * spellings are matched). Never the Ceph config options (conf, keyring, keyfile, id, name,
 * log-file, admin-socket, ...): only these.
 */
static const char *const nbd_map[] = {
	"try-netlink", "exclusive",         "notrim",    "quiesce",   "timeout#",
	"io-timeout#", "reattach-timeout#", "nbds-max#", "max-part#", NULL,
};

static const char *const krbd_unmap[] = { "force", NULL };
static const char *const none[] = { NULL };

/* The map and unmap options each mapper accepts; a mapper not listed accepts none. */
static const struct {
	const char *const *map;
	const char *const *unmap;
	bool dashes; /* Ceph's argument parser: '_' in a name reads as '-' */
} map_lists[_MAPPER_MAX] = {
	[MAPPER_KRBD] = { .map = krbd_map, .unmap = krbd_unmap },
	[MAPPER_NBD] = { .map = nbd_map, .dashes = true },
};

static const char *const *map_list(enum mapper_type t, bool unmap)
{
	const char *const *l = NULL;

	if (t >= 0 && t < _MAPPER_MAX)
		l = unmap ? map_lists[t].unmap : map_lists[t].map;
	return l ? l : none;
}

/* Finds "key" of p (len bytes, '_' read as '-' where the mapper's tool does) in list. */
static const char *map_find(enum mapper_type t, const char *const *list, const char *p, size_t len)
{
	char key[64];

	if (len == 0 || len >= sizeof(key))
		return NULL;
	memcpy(key, p, len);
	key[len] = 0;
	if (t >= 0 && t < _MAPPER_MAX && map_lists[t].dashes)
		for (size_t i = 0; i < len; i++)
			if (key[i] == '_')
				key[i] = '-';
	return list_find(list, key, len);
}

static int map_check(enum mapper_type t, bool unmap, const char *options, char **ret_reason)
{
	const char *const *list = map_list(t, unmap);
	const char *what = unmap ? "unmap" : "map";
	const char *name = mapper_type_to_string(t) ?: "?";

	size_t count = 1;

	if (isempty(options))
		return 0;
	for (const char *p = options; *p; p++)
		count += *p == ',';
	if (count > OPTIONS_MAP_MAX) {
		reason_set(ret_reason, "%s: more than %d %s options", name, OPTIONS_MAP_MAX, what);
		return -EINVAL;
	}
	for (const char *p = options; *p;) {
		const char *comma = strchrnul(p, ','), *eq, *entry;
		size_t len = (size_t)(comma - p), klen;

		eq = memchr(p, '=', len);
		klen = eq ? (size_t)(eq - p) : len;
		entry = map_find(t, list, p, klen);
		if (!entry) {
			reason_set(ret_reason, "%s: %s option '%.*s' is not allowed", name, what,
			           (int)MIN(klen, (size_t)64), p);
			return -EINVAL;
		}
		if ((entry[klen] == '=' || entry[klen] == '#') != (eq != NULL) ||
		    (eq &&
		     (eq + 1 == comma || !only_chars(eq + 1, (size_t)(comma - eq - 1),
		                                     entry[klen] == '#' ? DIGITS : LABEL_SET)))) {
			reason_set(ret_reason, "%s: %s option '%.*s': invalid value", name, what,
			           (int)klen, p);
			return -EINVAL;
		}
		p = *comma ? comma + 1 : comma;
	}
	return 0;
}

int options_map_check(enum mapper_type t, const char *options, char **ret_reason)
{
	return map_check(t, false, options, ret_reason);
}

int options_unmap_check(enum mapper_type t, const char *options, char **ret_reason)
{
	return map_check(t, true, options, ret_reason);
}

int options_map_all_check(const char *all, bool unmap, char **ret_reason)
{
	for (enum mapper_type t = MAPPER_FUSE; t < _MAPPER_MAX; t++) {
		_cleanup_free_ char *part = NULL;
		int r;

		r = mapper_options_for(all, t, &part);
		if (r == -EINVAL) {
			reason_set(ret_reason, "unknown mapper prefix (krbd:, nbd:, fuse:)");
			return r;
		}
		if (r < 0)
			return r;
		r = map_check(t, unmap, part, ret_reason);
		if (r < 0)
			return r;
	}
	return 0;
}

DEFINE_TRIVIAL_CLEANUP_FUNC(char **, exec_strv_free)

int options_nbd_args(const char *options, char ***ret_args, char **ret_reason)
{
	_cleanup_(exec_strv_freep) char **args = NULL;
	size_t n = 0, count = 1;
	int r;

	r = options_map_check(MAPPER_NBD, options, ret_reason);
	if (r < 0)
		return r;
	for (const char *p = options; p && *p; p++)
		count += *p == ',';
	args = calloc(count + 1, sizeof(char *));
	if (!args)
		return -ENOMEM;
	for (const char *p = options; p && *p;) {
		const char *comma = strchrnul(p, ','), *eq;
		size_t klen;
		const char *entry;

		eq = memchr(p, '=', (size_t)(comma - p));
		klen = (size_t)((eq ? eq : comma) - p);
		entry = map_find(MAPPER_NBD, nbd_map, p, klen);
		if (asprintf(&args[n], "--%.*s%s%.*s", (int)klen, entry, eq ? "=" : "",
		             eq ? (int)(comma - eq - 1) : 0, eq ? eq + 1 : "") < 0) {
			args[n] = NULL;
			return -ENOMEM;
		}
		n++;
		p = *comma ? comma + 1 : comma;
	}
	*ret_args = TAKE_PTR(args);
	return 0;
}

/* ---- filesystem mount options ---- */

/*
 * "name" takes no value, "name#" needs a number, "name?" may have one, "name=" needs a size
 * (digits with an optional k/m/g suffix); enumerated values are listed as "name=value".
 */
static const char *const mount_generic[] = {
	"ro",         "rw",          "noatime",       "atime",       "relatime",
	"norelatime", "strictatime", "nostrictatime", "nodiratime",  "diratime",
	"lazytime",   "nolazytime",  "nodev",         "dev",         "nosuid",
	"suid",       "noexec",      "exec",          "nosymfollow", "sync",
	"async",      "dirsync",     "iversion",      "noiversion",  "_netdev",
	"defaults",   NULL,
};

static const char *const mount_ext4[] = {
	"acl",
	"noacl",
	"user_xattr",
	"nouser_xattr",
	"barrier?",
	"nobarrier",
	"commit#",
	"data=journal",
	"data=ordered",
	"data=writeback",
	"data_err=ignore",
	"data_err=abort",
	"discard",
	"nodiscard",
	"errors=continue",
	"errors=remount-ro",
	"stripe#",
	"delalloc",
	"nodelalloc",
	"noinit_itable",
	"init_itable?",
	"auto_da_alloc?",
	"noauto_da_alloc",
	"journal_checksum",
	"nojournal_checksum",
	"journal_async_commit",
	"max_batch_time#",
	"min_batch_time#",
	"journal_ioprio#",
	"dioread_lock",
	"dioread_nolock",
	"nombcache",
	"quota",
	"noquota",
	"usrquota",
	"grpquota",
	"prjquota",
	"resuid#",
	"resgid#",
	"sb#",
	"grpid",
	"bsdgroups",
	"nogrpid",
	"sysvgroups",
	"block_validity",
	"noblock_validity",
	"inode_readahead_blks#",
	"nouid32",
	NULL,
};

static const char *const mount_xfs[] = {
	"allocsize=", "attr2",       "noattr2",    "discard",     "nodiscard",   "grpid",
	"bsdgroups",  "nogrpid",     "sysvgroups", "filestreams", "ikeep",       "noikeep",
	"inode32",    "inode64",     "largeio",    "nolargeio",   "logbufs#",    "logbsize=",
	"noalign",    "nouuid",      "noquota",    "uquota",      "usrquota",    "uqnoenforce",
	"qnoenforce", "quota",       "pquota",     "prjquota",    "pqnoenforce", "gquota",
	"grpquota",   "gqnoenforce", "sunit#",     "swidth#",     "swalloc",     "wsync",
	NULL,
};

#define MOUNT_OPTION_MAX 128
#define MOUNT_VALUE_MAX  32

static bool size_value(const char *v, size_t len)
{
	size_t d = 0;

	while (d < len && v[d] >= '0' && v[d] <= '9')
		d++;
	return d > 0 && (d == len || (d + 1 == len && strchr("kKmMgG", v[d])));
}

/* Whether "name[=value]" (value NULL: none) is allowed by list. */
static bool mount_list_allows(const char *const *list, const char *name, size_t nlen,
                              const char *value, size_t vlen)
{
	for (; *list; list++) {
		const char *e = *list;
		size_t k = strcspn(e, "=#?");

		if (k != nlen || strncmp(e, name, nlen) != 0)
			continue;
		switch (e[k]) {
		case 0:
			if (!value)
				return true;
			break;
		case '#':
		case '?':
			if (!value ? e[k] == '?' : vlen > 0 && only_chars(value, vlen, DIGITS))
				return true;
			break;
		case '=':
			if (!value)
				break;
			if (e[k + 1] ? strlen(e + k + 1) == vlen &&
			                       strncmp(e + k + 1, value, vlen) == 0
			             : size_value(value, vlen))
				return true;
			break;
		default:
			break;
		}
	}
	return false;
}

/* context="user:role:type:level", the form the kubelet passes for seLinuxMount. */
static bool selinux_context(const char *name, size_t nlen, const char *value, size_t vlen)
{
	return nlen == 7 && strncmp(name, "context", 7) == 0 && value && vlen > 2 &&
	       value[0] == '"' && value[vlen - 1] == '"' &&
	       only_chars(value + 1, vlen - 2, ALNUM "._-,:");
}

static bool mount_option_allowed(const char *fstype, const char *name, size_t nlen,
                                 const char *value, size_t vlen)
{
	bool ext4 = !fstype || strcmp(fstype, "ext4") == 0,
	     xfs = !fstype || strcmp(fstype, "xfs") == 0;

	if (vlen > MOUNT_VALUE_MAX && !selinux_context(name, nlen, value, vlen))
		return false;
	return mount_list_allows(mount_generic, name, nlen, value, vlen) ||
	       selinux_context(name, nlen, value, vlen) ||
	       (ext4 && mount_list_allows(mount_ext4, name, nlen, value, vlen)) ||
	       (xfs && mount_list_allows(mount_xfs, name, nlen, value, vlen));
}

int options_mount_check(const char *fstype, const char *options, char **ret_reason)
{
	const char *what = fstype ? fstype : "ext4 or xfs";

	if (isempty(options))
		return 0;
	if (fstype && strcmp(fstype, "ext4") != 0 && strcmp(fstype, "xfs") != 0) {
		reason_set(ret_reason, "mount options: unsupported filesystem type");
		return -EINVAL;
	}
	for (const char *p = options; *p;) {
		const char *end = p, *eq = NULL;
		bool quoted = false;
		size_t len, nlen;

		/* libmount's syntax: commas inside double quotes belong to the value. */
		for (; *end && (quoted || *end != ','); end++) {
			if (*end == '"')
				quoted = !quoted;
			else if (*end == '=' && !eq && !quoted)
				eq = end;
		}
		len = (size_t)(end - p);
		nlen = eq ? (size_t)(eq - p) : len;
		if (quoted || len == 0 || len > MOUNT_OPTION_MAX || nlen == 0 ||
		    !only_chars(p, nlen, ALNUM "_-")) {
			reason_set(ret_reason, "mount options: a malformed option");
			return -EINVAL;
		}
		if (!mount_option_allowed(fstype, p, nlen, eq ? eq + 1 : NULL,
		                          eq ? (size_t)(end - eq - 1) : 0)) {
			reason_set(ret_reason, "mount option '%.*s%s' is not allowed for %s",
			           (int)nlen, p, eq ? "=..." : "", what);
			return -EINVAL;
		}
		p = *end ? end + 1 : end;
	}
	return 0;
}
