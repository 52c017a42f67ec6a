/* SPDX-License-Identifier: Apache-2.0 */
/* The CSI Controller service handlers (plugin/controller.c). */
#pragma once

#include "plugin/call.h"

int controller_create_volume(struct call *c, const void *request, void *response);
int controller_delete_volume(struct call *c, const void *request, void *response);
int controller_publish_volume(struct call *c, const void *request, void *response);
int controller_unpublish_volume(struct call *c, const void *request, void *response);
int controller_validate_volume_capabilities(struct call *c, const void *request, void *response);
int controller_list_volumes(struct call *c, const void *request, void *response);
int controller_get_capacity(struct call *c, const void *request, void *response);
int controller_get_capabilities(struct call *c, const void *request, void *response);
int controller_expand_volume(struct call *c, const void *request, void *response);
int controller_get_volume(struct call *c, const void *request, void *response);
