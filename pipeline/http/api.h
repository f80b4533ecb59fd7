/* api.h: eddy's HTTP routes.
 *   GET /metrics                       Prometheus text
 *   GET /healthz                       liveness: 200 "ok", or 503 and the reason
 *   GET /readyz                        readiness: 200 "ok", or 503 and the reason
 *   GET /users/{id}/recommendations    JSON, scored from live state
 *   GET /campaigns/{id}                JSON ledger and current decision */
#ifndef EDDY_API_H
#define EDDY_API_H

#include <stdbool.h>
#include <stddef.h>

#include "pipeline/http/http.h"

struct eddy_state;
struct eddy_metrics;

struct api_ctx {
    struct eddy_state *st;           /* NULL until the state is open */
    struct eddy_metrics *metrics;
    int k;
    /* Liveness and readiness: true, or false with the reason written. */
    bool (*live)(void *health_ctx, char *why, size_t n);
    bool (*ready)(void *health_ctx, char *why, size_t n);
    void *health_ctx;
};

void api_handle(void *api_ctx, const char *method, const char *path,
                struct http_response *resp);

#endif
