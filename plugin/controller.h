/* SPDX-License-Identifier: Apache-2.0 */
/* The CSI Controller service handlers (plugin/controller.c). */
#pragma once

#include "plugin/call.h"

int controller_get_capabilities(struct call *c, const void *request, void *response);
