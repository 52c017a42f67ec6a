/* SPDX-License-Identifier: Apache-2.0 */
/* The CSI Node service handlers (plugin/node.c). */
#pragma once

#include "plugin/call.h"

int node_get_capabilities(struct call *c, const void *request, void *response);
int node_get_info(struct call *c, const void *request, void *response);
