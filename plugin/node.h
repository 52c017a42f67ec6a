/* SPDX-License-Identifier: Apache-2.0 */
/* The CSI Node service handlers (plugin/node.c). */
#pragma once

#include "plugin/call.h"

struct plugin;

int node_stage_volume(struct call *c, const void *request, void *response);
int node_unstage_volume(struct call *c, const void *request, void *response);
int node_publish_volume(struct call *c, const void *request, void *response);
int node_unpublish_volume(struct call *c, const void *request, void *response);
int node_get_volume_stats(struct call *c, const void *request, void *response);
int node_expand_volume(struct call *c, const void *request, void *response);
int node_get_capabilities(struct call *c, const void *request, void *response);
int node_get_info(struct call *c, const void *request, void *response);

/* At start-up: finds the volumes staged before a restart and logs whether they still work. */
void node_report_staged(struct plugin *p);
