/* SPDX-License-Identifier: Apache-2.0 */
/*
 * What every mapper (mapper_krbd.c, mapper_nbd.c, mapper_fuse.c) shares, below them: the mapper
 * types and their names, the parameters of a map request and their validation, per-mapper option
 * strings, the Ceph tool argv and the key memfd, and struct mapper_ops, the table each mapper
 * fills in. The mappers include this header, never mapper.h (the registry above them).
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define MAPPER_TIMEOUT_DEFAULT_USEC (30ULL * 1000000ULL)
#define MAPPER_NAME_MAX             256
#define MAPPER_KEY_MEMFD_NAME       "rbdcsi-key"

enum mapper_type {
	MAPPER_AUTO, /* the first available of krbd, nbd, fuse */
	MAPPER_FUSE, /* rbd-fuse --image=IMAGE, then a loop device on the image file */
	MAPPER_KRBD, /* the rbd kernel module through /sys/bus/rbd */
	MAPPER_NBD,  /* rbd-nbd */
	_MAPPER_MAX,
	_MAPPER_INVALID = -22, /* -EINVAL */
};

/* "auto", "fuse", "krbd", "nbd". */
const char *mapper_type_to_string(enum mapper_type t);
/* Accepts the names above and ceph-csi's "rbd" (krbd), "rbd-nbd", "rbd-fuse"; NULL or "" is
 * auto. Returns _MAPPER_INVALID otherwise. */
enum mapper_type mapper_type_from_string(const char *s);

struct mapper_params {
	/* mon_host: "ip:port,ip:port", or addrvecs "[v2:ip:3300,v1:ip:6789]". rbd-fuse and
	 * rbd-nbd get it verbatim as --mon-host; krbd keeps the v1 addresses only. */
	const char *monitors;
	const char *user; /* cephx id without "client." */
	/* cephx key, base64. SECRET: handed to the kernel (one sysfs write) or to the child on a
	 * sealed memfd read as /dev/fd/3; never in argv, environment, files, logs or reasons. */
	const char *key;
	const char *pool;
	const char *rados_namespace; /* NULL or "" for the default namespace */
	const char *image;
	bool read_only;
	/* Mapper-specific options for THIS mapper (see mapper_options_for()), comma-separated:
	 * krbd "lock_on_read,queue_depth=1024"; nbd "try-netlink,reattach-timeout=300". */
	const char *map_options;
	uint64_t image_size; /* expected size in bytes; 0: unknown (any size > 0 is accepted) */
	/* RBD_FEATURE_* bits of the image; checked against krbd's supported_features. */
	uint64_t image_features;
	bool image_features_known;
	/* Where a helper daemon logs (rbd-nbd); NULL: no log file. rbd-fuse logs next to its
	 * mount dir instead. */
	const char *log_path;
	uint64_t timeout_usec; /* 0: MAPPER_TIMEOUT_DEFAULT_USEC */
};

/*
 * Whether s is a pool, namespace or image name that is safe anywhere a Ceph tool or the kernel
 * reads it: 1-MAPPER_NAME_MAX bytes, not "." or "..", no leading '-' (an option to the tool), no
 * '/', '@', '=', blanks or control characters.
 */
bool mapper_name_valid(const char *s);

/*
 * Checks the parameters: pool/image/namespace are mapper_name_valid() (namespace may be empty);
 * user is [A-Za-z0-9._-]; the key is a well-formed cephx key (base64 of an AES CryptoKey); monitors
 * have no blanks. Errors: -EINVAL with *ret_reason (never quoting the key).
 */
int mapper_params_validate(const struct mapper_params *p, char **ret_reason);

/*
 * Picks the options for one mapper out of a ceph-csi style mapOptions/unmapOptions string:
 * "krbd:lock_on_read,queue_depth=1024;nbd:try-netlink". A part without a prefix is for krbd.
 * *ret is NULL when there is nothing for this mapper. Errors: -EINVAL unknown prefix.
 */
int mapper_options_for(const char *all, enum mapper_type t, char **ret);

/* Joins root and an absolute path ("/" + "/sys/bus/rbd" = "/sys/bus/rbd"). NULL on ENOMEM. */
char *mapper_root_path(const char *root, const char *path);

/*
 * Writes the common head of a Ceph tool's argv at argv[0..]: prog, "-c /dev/null" (no
 * /etc/ceph, no DNS SRV lookup), --mon-host, --id, "--keyfile=/dev/fd/3" (the key on the memfd
 * of mapper_key_fd_new(), given to the child as fd 3), an empty --keyring and --admin-socket,
 * then log_arg ("--log-file=..."). argv must have room for MAPPER_CEPH_ARGV_MAX entries; nothing
 * is copied (argv points into p). Returns the number of entries written.
 */
#define MAPPER_CEPH_ARGV_MAX 11
size_t mapper_ceph_argv(char **argv, const char *prog, const struct mapper_params *p,
                        const char *log_arg);

/*
 * Writes the head of the argv of a Ceph tool that needs no cluster (rbd-nbd unmap): prog,
 * "-c /dev/null", --no-mon-config (no monitor lookup at all, so no DNS SRV query) and an empty
 * --admin-socket. argv must have room for MAPPER_CEPH_ARGV_OFFLINE_MAX entries. Returns the
 * number of entries written.
 */
#define MAPPER_CEPH_ARGV_OFFLINE_MAX 5
size_t mapper_ceph_argv_offline(char **argv, const char *prog);

/*
 * The memfd that carries the key to a Ceph tool (read as /dev/fd/3). Its content cannot be
 * changed, but mapper_key_fd_wipe() empties it: once the tool has read the key (it reads it
 * once, at start-up), the descriptor the long-lived daemon keeps open as fd 3 yields nothing
 * through /proc/PID/fd/3. Errors: -ENOMEM, -EMFILE.
 */
int mapper_key_fd_new(const char *key, int *ret_fd);
/* Empties the key memfd fd. Errors: -EBADF, -EPERM (not one of ours). */
int mapper_key_fd_wipe(int fd);
/*
 * Empties the key memfd that process pid holds as child_fd (pidfd_getfd(2)), when it is one
 * (its name is MAPPER_KEY_MEMFD_NAME): for a daemon whose start-up a killed plugin did not
 * finish. 0 also when there is no such process or fd. Errors: -EPERM.
 */
int mapper_key_wipe_pid(pid_t pid, int child_fd);

struct json_object;

/*
 * One recorded mapping as its mapper sees it (stage.c fills it in from its state file; the
 * strings stay the caller's). state is the mapper's own, from its state_new() or state_load():
 * only that mapper knows what is in it.
 */
struct mapper_mapping {
	const char *sys_root; /* NULL or "/"; tests: a simulated root */
	const char *pool;
	const char *rados_namespace;
	const char *image;
	const char *device;        /* NULL: the map never returned one */
	const char *unmap_options; /* the whole "krbd:force;nbd:..." string, may be NULL */
	void *state;
};

/*
 * What a mapper implements: one const instance per mapper (mapper_krbd_ops, ...), listed in the
 * table of mapper.c, the only place that dispatches on enum mapper_type. Optional members are
 * NULL; mapper.c's mapper_*() wrappers stand in for them. Errors are -errno, as the functions
 * of the mapper's own header that each member wraps.
 */
struct mapper_ops {
	enum mapper_type type;
	/* The helper daemon abort() kills, for messages ("rbd-fuse"); NULL: nothing to abort. */
	const char *daemon;
	/* The kernel module available() needs, loaded with modprobe when module_dir (relative to
	 * the root) is missing; NULL: none. */
	const char *module;
	const char *module_dir;
	/* -ENODEV with *ret_reason when the mapper cannot be used on this host. */
	int (*available)(const char *root, char **ret_reason);
	/* Optional: -ENODEV when this image cannot go through this mapper (krbd: its features). */
	int (*supports)(const char *root, const struct mapper_params *p, char **ret_reason);
	/* Optional (a mapper without state has state NULL throughout): the state of a mapping
	 * about to be made for volume_id, recorded before the map so that a crash can be undone;
	 * state_dir is the caller's absolute state directory. Free with state_free(). */
	int (*state_new)(const char *state_dir, const char *volume_id, void **ret_state);
	void *(*state_free)(void *state);
	/* Adds the state's keys to the state file's JSON object o / reads them back (-EINVAL bad
	 * or missing keys). The keys are the file format: never renamed. */
	int (*state_save)(const void *state, struct json_object *o);
	int (*state_load)(struct json_object *o, void **ret_state);
	/* Maps p (p->map_options is this mapper's part only) and updates state; *ret_device is
	 * the block device (caller frees). On failure nothing is left mapped. */
	int (*map)(const char *root, const struct mapper_params *p, void *state, char **ret_device,
	           char **ret_reason);
	/* Whether the mapping still exists; *why (may be NULL) says what is missing. */
	bool (*alive)(const struct mapper_mapping *m, char **why);
	/* Undoes the mapping; nothing mapped is success. *forced: the mapper had to kill. */
	int (*unmap)(const struct mapper_mapping *m, uint64_t timeout_usec, bool *forced,
	             char **ret_reason);
	/* Optional: makes blocked I/O on the device fail (kills the daemon). */
	void (*abort)(const struct mapper_mapping *m);
	/* Optional: makes the device show the image's new size (new_size 0: unknown) within
	 * timeout_usec. Without it the device follows by itself. */
	int (*refresh_size)(const struct mapper_mapping *m, uint64_t new_size,
	                    uint64_t timeout_usec, char **ret_reason);
	/* Optional: re-finds the mapping's processes after a restart; 1 when state changed (the
	 * caller saves it), 0 when not. */
	int (*refind)(struct mapper_mapping *m);
	/* Optional: a mount point the mapping owns besides the staging path (rbd-fuse's). */
	const char *(*own_mount)(const void *state);
};
