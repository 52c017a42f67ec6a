/* SPDX-License-Identifier: Apache-2.0 */
/*
 * librados and librbd, loaded at run time (dlopen) the first time a cluster connection is made,
 * instead of being linked into rbdcsi.
 *
 * Why: loading the two libraries costs about 20 MiB of RSS (16.8 MiB of mapped code and data,
 * 3.8 MiB of heap from their C++ static initializers, measured with make bench), and the node
 * plugin never talks to librados: it maps images through rbd-fuse processes or the krbd sysfs
 * interface. Linked, every node plugin on every host would pay that for nothing. Loaded here,
 * only a process that connects to a cluster (the controller) maps them.
 *
 * How: every librados/librbd function driver/ceph calls is listed once in CEPH_LIB_RADOS /
 * CEPH_LIB_RBD below. ceph_lib_load() fills a table of pointers to them (dlopen of the
 * versioned sonames with RTLD_NOW | RTLD_LOCAL, then dlsym of each name), and the macros at the
 * end of this header redirect each name to its table entry, so that call sites read exactly
 * like plain librados/librbd calls (and stay greppable, and keep their prototypes' type
 * checking: each entry is a __typeof__ of the declaration in the library's header). The build
 * keeps the lists honest: rbdcsi does not link -lrados/-lrbd, so a call to a function missing
 * here fails to link, and a macro without a table entry fails to compile.
 *
 * Use: include this header in every driver/ceph .c file that calls librados/librbd, after the
 * other includes (it includes <rados/librados.h> and <rbd/librbd.h> itself, so that their
 * declarations are never seen after the macros). Headers must not include it. Every path into
 * librados starts with a cluster connection, and cluster_connect() calls ceph_lib_load() first;
 * a function called before a successful load would jump through a NULL pointer. The table is
 * written once (under pthread_once) and only read afterwards; it never changes again, and the
 * libraries are never unloaded. Tests that call librados/librbd themselves (ceph_test_env.h)
 * link them directly and do not include this header; the loader then finds the same, already
 * loaded copy.
 */
#pragma once

#include <rados/librados.h>
#include <rbd/librbd.h>

#define CEPH_LIB_RADOS_SONAME "librados.so.2"
#define CEPH_LIB_RBD_SONAME   "librbd.so.1"

/* The functions driver/ceph uses, by library. */
#define CEPH_LIB_RADOS(X)                      \
	X(rados_aio_create_completion2)        \
	X(rados_aio_get_return_value)          \
	X(rados_aio_get_version)               \
	X(rados_aio_read_op_operate)           \
	X(rados_aio_release)                   \
	X(rados_aio_wait_for_complete)         \
	X(rados_buffer_free)                   \
	X(rados_cluster_stat)                  \
	X(rados_conf_set)                      \
	X(rados_connect)                       \
	X(rados_create2)                       \
	X(rados_create_read_op)                \
	X(rados_create_write_op)               \
	X(rados_get_last_version)              \
	X(rados_ioctx_create2)                 \
	X(rados_ioctx_destroy)                 \
	X(rados_ioctx_get_cluster)             \
	X(rados_ioctx_get_id)                  \
	X(rados_ioctx_get_namespace)           \
	X(rados_ioctx_get_pool_name)           \
	X(rados_ioctx_pool_stat)               \
	X(rados_ioctx_set_namespace)           \
	X(rados_mon_command)                   \
	X(rados_nobjects_list_close)           \
	X(rados_nobjects_list_next)            \
	X(rados_nobjects_list_open)            \
	X(rados_omap_get_end)                  \
	X(rados_omap_get_next)                 \
	X(rados_omap_get_next2)                \
	X(rados_pool_list)                     \
	X(rados_pool_lookup)                   \
	X(rados_read_op_omap_get_vals2)        \
	X(rados_read_op_omap_get_vals_by_keys) \
	X(rados_read_op_operate)               \
	X(rados_release_read_op)               \
	X(rados_release_write_op)              \
	X(rados_shutdown)                      \
	X(rados_wait_for_latest_osdmap)        \
	X(rados_write_op_assert_exists)        \
	X(rados_write_op_assert_version)       \
	X(rados_write_op_create)               \
	X(rados_write_op_omap_cmp)             \
	X(rados_write_op_omap_rm_keys)         \
	X(rados_write_op_omap_set)             \
	X(rados_write_op_operate)              \
	X(rados_write_op_remove)

#define CEPH_LIB_RBD(X)                     \
	X(rbd_clone3)                       \
	X(rbd_close)                        \
	X(rbd_create4)                      \
	X(rbd_diff_iterate2)                \
	X(rbd_flatten_with_progress)        \
	X(rbd_flush)                        \
	X(rbd_get_create_timestamp)         \
	X(rbd_get_data_pool_id)             \
	X(rbd_get_features)                 \
	X(rbd_get_group)                    \
	X(rbd_get_id)                       \
	X(rbd_get_parent)                   \
	X(rbd_get_size)                     \
	X(rbd_group_create)                 \
	X(rbd_group_image_add)              \
	X(rbd_group_image_remove)           \
	X(rbd_group_info_cleanup)           \
	X(rbd_group_remove)                 \
	X(rbd_group_snap_create2)           \
	X(rbd_group_snap_list)              \
	X(rbd_group_snap_list_cleanup)      \
	X(rbd_group_snap_remove)            \
	X(rbd_image_spec_list_cleanup)      \
	X(rbd_image_options_create)         \
	X(rbd_image_options_destroy)        \
	X(rbd_image_options_set_string)     \
	X(rbd_image_options_set_uint64)     \
	X(rbd_linked_image_spec_cleanup)    \
	X(rbd_list2)                        \
	X(rbd_metadata_get)                 \
	X(rbd_metadata_remove)              \
	X(rbd_metadata_set)                 \
	X(rbd_namespace_exists)             \
	X(rbd_open)                         \
	X(rbd_open_by_id_read_only)         \
	X(rbd_open_read_only)               \
	X(rbd_read2)                        \
	X(rbd_rename)                       \
	X(rbd_remove_with_progress)         \
	X(rbd_resize2)                      \
	X(rbd_snap_create2)                 \
	X(rbd_snap_exists)                  \
	X(rbd_snap_get_group_namespace)     \
	X(rbd_snap_get_namespace_type)      \
	X(rbd_snap_get_timestamp)           \
	X(rbd_snap_group_namespace_cleanup) \
	X(rbd_snap_list)                    \
	X(rbd_snap_list_end)                \
	X(rbd_snap_remove2)                 \
	X(rbd_snap_set_by_id)               \
	X(rbd_snap_spec_cleanup)            \
	X(rbd_trash_get)                    \
	X(rbd_trash_get_cleanup)            \
	X(rbd_trash_list)                   \
	X(rbd_trash_list_cleanup)           \
	X(rbd_trash_move)                   \
	X(rbd_trash_remove_with_progress)   \
	X(rbd_watchers_list)                \
	X(rbd_watchers_list_cleanup)        \
	X(rbd_write2)

struct ceph_lib_table {
#define CEPH_LIB_MEMBER_(fn) __typeof__(fn) *fn;
	CEPH_LIB_RADOS(CEPH_LIB_MEMBER_)
	CEPH_LIB_RBD(CEPH_LIB_MEMBER_)
#undef CEPH_LIB_MEMBER_
};

/*
 * Loads librados and librbd and resolves every function of the lists, once per process
 * (thread-safe; later calls return the first call's result at once). Returns 0; -ELIBACC
 * when a library cannot be loaded (not installed, or its own dependencies are missing);
 * -ELIBBAD when a library lacks one of the functions (an older or broken build). The reason,
 * naming the library or the function, is logged at debug level. Both map to INTERNAL at the
 * plugin edge: neither is ENOENT, which callers would read as "no such volume".
 */
int ceph_lib_load(void);

/*
 * What ceph_lib_load() does, without the process-wide table: loads rados_soname and
 * rbd_soname and resolves the lists into *ret (written only on success). Errors as
 * ceph_lib_load(). For tests of the failure paths; a library loaded here stays loaded.
 */
int ceph_lib_resolve(const char *rados_soname, const char *rbd_soname, struct ceph_lib_table *ret);

/* The table filled by ceph_lib_load(); its entries are NULL until a load succeeded. */
extern const struct ceph_lib_table *const ceph_lib;

/* Call sites keep the library's names; each one reads the table. (ceph_lib.c itself names the
 * table's members and so defines CEPH_LIB_IMPLEMENTATION to go without.) */
#ifndef CEPH_LIB_IMPLEMENTATION
#define rados_aio_create_completion2        (ceph_lib->rados_aio_create_completion2)
#define rados_aio_get_return_value          (ceph_lib->rados_aio_get_return_value)
#define rados_aio_get_version               (ceph_lib->rados_aio_get_version)
#define rados_aio_read_op_operate           (ceph_lib->rados_aio_read_op_operate)
#define rados_aio_release                   (ceph_lib->rados_aio_release)
#define rados_aio_wait_for_complete         (ceph_lib->rados_aio_wait_for_complete)
#define rados_buffer_free                   (ceph_lib->rados_buffer_free)
#define rados_cluster_stat                  (ceph_lib->rados_cluster_stat)
#define rados_conf_set                      (ceph_lib->rados_conf_set)
#define rados_connect                       (ceph_lib->rados_connect)
#define rados_create2                       (ceph_lib->rados_create2)
#define rados_create_read_op                (ceph_lib->rados_create_read_op)
#define rados_create_write_op               (ceph_lib->rados_create_write_op)
#define rados_get_last_version              (ceph_lib->rados_get_last_version)
#define rados_ioctx_create2                 (ceph_lib->rados_ioctx_create2)
#define rados_ioctx_destroy                 (ceph_lib->rados_ioctx_destroy)
#define rados_ioctx_get_cluster             (ceph_lib->rados_ioctx_get_cluster)
#define rados_ioctx_get_id                  (ceph_lib->rados_ioctx_get_id)
#define rados_ioctx_get_namespace           (ceph_lib->rados_ioctx_get_namespace)
#define rados_ioctx_get_pool_name           (ceph_lib->rados_ioctx_get_pool_name)
#define rados_ioctx_pool_stat               (ceph_lib->rados_ioctx_pool_stat)
#define rados_ioctx_set_namespace           (ceph_lib->rados_ioctx_set_namespace)
#define rados_mon_command                   (ceph_lib->rados_mon_command)
#define rados_nobjects_list_close           (ceph_lib->rados_nobjects_list_close)
#define rados_nobjects_list_next            (ceph_lib->rados_nobjects_list_next)
#define rados_nobjects_list_open            (ceph_lib->rados_nobjects_list_open)
#define rados_omap_get_end                  (ceph_lib->rados_omap_get_end)
#define rados_omap_get_next                 (ceph_lib->rados_omap_get_next)
#define rados_omap_get_next2                (ceph_lib->rados_omap_get_next2)
#define rados_pool_list                     (ceph_lib->rados_pool_list)
#define rados_pool_lookup                   (ceph_lib->rados_pool_lookup)
#define rados_read_op_omap_get_vals2        (ceph_lib->rados_read_op_omap_get_vals2)
#define rados_read_op_omap_get_vals_by_keys (ceph_lib->rados_read_op_omap_get_vals_by_keys)
#define rados_read_op_operate               (ceph_lib->rados_read_op_operate)
#define rados_release_read_op               (ceph_lib->rados_release_read_op)
#define rados_release_write_op              (ceph_lib->rados_release_write_op)
#define rados_shutdown                      (ceph_lib->rados_shutdown)
#define rados_wait_for_latest_osdmap        (ceph_lib->rados_wait_for_latest_osdmap)
#define rados_write_op_assert_exists        (ceph_lib->rados_write_op_assert_exists)
#define rados_write_op_assert_version       (ceph_lib->rados_write_op_assert_version)
#define rados_write_op_create               (ceph_lib->rados_write_op_create)
#define rados_write_op_omap_cmp             (ceph_lib->rados_write_op_omap_cmp)
#define rados_write_op_omap_rm_keys         (ceph_lib->rados_write_op_omap_rm_keys)
#define rados_write_op_omap_set             (ceph_lib->rados_write_op_omap_set)
#define rados_write_op_operate              (ceph_lib->rados_write_op_operate)
#define rados_write_op_remove               (ceph_lib->rados_write_op_remove)
#define rbd_clone3                          (ceph_lib->rbd_clone3)
#define rbd_close                           (ceph_lib->rbd_close)
#define rbd_create4                         (ceph_lib->rbd_create4)
#define rbd_diff_iterate2                   (ceph_lib->rbd_diff_iterate2)
#define rbd_flatten_with_progress           (ceph_lib->rbd_flatten_with_progress)
#define rbd_flush                           (ceph_lib->rbd_flush)
#define rbd_get_create_timestamp            (ceph_lib->rbd_get_create_timestamp)
#define rbd_get_data_pool_id                (ceph_lib->rbd_get_data_pool_id)
#define rbd_get_features                    (ceph_lib->rbd_get_features)
#define rbd_get_group                       (ceph_lib->rbd_get_group)
#define rbd_get_id                          (ceph_lib->rbd_get_id)
#define rbd_get_parent                      (ceph_lib->rbd_get_parent)
#define rbd_get_size                        (ceph_lib->rbd_get_size)
#define rbd_group_create                    (ceph_lib->rbd_group_create)
#define rbd_group_image_add                 (ceph_lib->rbd_group_image_add)
#define rbd_group_image_remove              (ceph_lib->rbd_group_image_remove)
#define rbd_group_info_cleanup              (ceph_lib->rbd_group_info_cleanup)
#define rbd_group_remove                    (ceph_lib->rbd_group_remove)
#define rbd_group_snap_create2              (ceph_lib->rbd_group_snap_create2)
#define rbd_group_snap_list                 (ceph_lib->rbd_group_snap_list)
#define rbd_group_snap_list_cleanup         (ceph_lib->rbd_group_snap_list_cleanup)
#define rbd_group_snap_remove               (ceph_lib->rbd_group_snap_remove)
#define rbd_image_spec_list_cleanup         (ceph_lib->rbd_image_spec_list_cleanup)
#define rbd_image_options_create            (ceph_lib->rbd_image_options_create)
#define rbd_image_options_destroy           (ceph_lib->rbd_image_options_destroy)
#define rbd_image_options_set_string        (ceph_lib->rbd_image_options_set_string)
#define rbd_image_options_set_uint64        (ceph_lib->rbd_image_options_set_uint64)
#define rbd_linked_image_spec_cleanup       (ceph_lib->rbd_linked_image_spec_cleanup)
#define rbd_list2                           (ceph_lib->rbd_list2)
#define rbd_metadata_get                    (ceph_lib->rbd_metadata_get)
#define rbd_metadata_remove                 (ceph_lib->rbd_metadata_remove)
#define rbd_metadata_set                    (ceph_lib->rbd_metadata_set)
#define rbd_namespace_exists                (ceph_lib->rbd_namespace_exists)
#define rbd_open                            (ceph_lib->rbd_open)
#define rbd_open_by_id_read_only            (ceph_lib->rbd_open_by_id_read_only)
#define rbd_open_read_only                  (ceph_lib->rbd_open_read_only)
#define rbd_read2                           (ceph_lib->rbd_read2)
#define rbd_rename                          (ceph_lib->rbd_rename)
#define rbd_remove_with_progress            (ceph_lib->rbd_remove_with_progress)
#define rbd_resize2                         (ceph_lib->rbd_resize2)
#define rbd_snap_create2                    (ceph_lib->rbd_snap_create2)
#define rbd_snap_exists                     (ceph_lib->rbd_snap_exists)
#define rbd_snap_get_group_namespace        (ceph_lib->rbd_snap_get_group_namespace)
#define rbd_snap_get_namespace_type         (ceph_lib->rbd_snap_get_namespace_type)
#define rbd_snap_get_timestamp              (ceph_lib->rbd_snap_get_timestamp)
#define rbd_snap_group_namespace_cleanup    (ceph_lib->rbd_snap_group_namespace_cleanup)
#define rbd_snap_list                       (ceph_lib->rbd_snap_list)
#define rbd_snap_list_end                   (ceph_lib->rbd_snap_list_end)
#define rbd_snap_remove2                    (ceph_lib->rbd_snap_remove2)
#define rbd_snap_set_by_id                  (ceph_lib->rbd_snap_set_by_id)
#define rbd_snap_spec_cleanup               (ceph_lib->rbd_snap_spec_cleanup)
#define rbd_trash_get                       (ceph_lib->rbd_trash_get)
#define rbd_trash_get_cleanup               (ceph_lib->rbd_trash_get_cleanup)
#define rbd_trash_list                      (ceph_lib->rbd_trash_list)
#define rbd_trash_list_cleanup              (ceph_lib->rbd_trash_list_cleanup)
#define rbd_trash_move                      (ceph_lib->rbd_trash_move)
#define rbd_trash_remove_with_progress      (ceph_lib->rbd_trash_remove_with_progress)
#define rbd_watchers_list                   (ceph_lib->rbd_watchers_list)
#define rbd_watchers_list_cleanup           (ceph_lib->rbd_watchers_list_cleanup)
#define rbd_write2                          (ceph_lib->rbd_write2)
#endif
