/* api.h: eddy's HTTP routes.
 *   GET /metrics                       Prometheus text
 *   GET /healthz                       200 "ok" while the pipeline runs
 *   GET /users/{id}/recommendations    JSON, scored from live state
 *   GET /campaigns/{id}                JSON ledger and current decision */
#ifndef EDDY_API_H
#define EDDY_API_H

#include <stdbool.h>

#include "pipeline/http.h"

struct eddy_state;
struct eddy_metrics;

struct api_ctx {
    struct eddy_state *st;
    struct eddy_metrics *metrics;
    int k;
    bool healthy;
};

void api_handle(void *api_ctx, const char *method, const char *path,
                struct http_response *resp);

#endif
