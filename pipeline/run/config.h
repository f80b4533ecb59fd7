/* config.h: eddy's configuration, from an INI file plus EDDY_SECTION_KEY
 * environment overrides. Its keys are those of the table in config.c (the
 * connections, topics, state, time, HTTP and health) and those each operator
 * of the chain declares for its own section (operators/params.h). Each key
 * has its type, default and description; the keys drive parsing,
 * validation, the commented config/eddy.conf and `eddy run --help`. */
#ifndef EDDY_CONFIG_H
#define EDDY_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

#include "pipeline/run/chain.h"

struct kv {
    char *key;
    char *value;
};

struct eddy_config {
    /* [kafka] */
    char *bootstrap_servers;
    char *group_id;
    bool offset_reset_earliest; /* offset.reset: earliest (accept a gap) or fail */
    int64_t shutdown_timeout_ms;
    int64_t budgets_wait_ms;  /* budgets first: longest the other input waits */
    int64_t dlq_max_bytes;    /* a dead letter's key + value are truncated to this */
    struct kv *kafka_props;   /* kafka.* keys, prefix stripped, passed to librdkafka */
    size_t n_kafka_props;
    /* [topics] */
    char *topic_clicks, *topic_ad_events, *topic_campaigns;
    char *topic_recommendations, *topic_decisions, *topic_dlq;
    /* [schemas] */
    char *registry_url;       /* empty: single-object encoding */
    char *writers_dir;        /* empty: only eddy's own schemas */
    /* [state] */
    char *state_dir;
    int64_t checkpoint_interval_ms;
    int64_t checkpoint_events;
    uint64_t cache_bytes;
    /* [time] */
    int64_t lateness_ms;      /* watermarks trail the event time seen by this much */
    /* The parameter struct of each operator, as chain_operators[]: read one
     * with config_op_params(). */
    void *op_params[CHAIN_OPS];
    /* [http] */
    char *http_listen;        /* host:port; empty disables the endpoint */
    int http_max_connections;
    int64_t http_idle_timeout_ms;
    /* [health] */
    int64_t broker_timeout_ms; /* readiness: brokers unreachable this long */
    int64_t stall_timeout_ms;  /* readiness: lag with no progress this long */
    int64_t loop_stall_ms;     /* liveness: the event loop late by this much */
};

/* Fills cfg with defaults, then the file (if path is non-NULL), then the
 * environment. Errors name the file, line and key (or the variable).
 * On failure cfg is left empty: config_free() on it is harmless. */
int config_load(struct eddy_config *cfg, const char *path, char *err, size_t errlen);
void config_free(struct eddy_config *cfg);
/* The parameter struct of op, as loaded, for example
 *   const struct rec_params *rec = config_op_params(cfg, &eddy_op_recommend);
 * NULL if op is not one of chain_operators[]. */
void *config_op_params(const struct eddy_config *cfg, const struct eddy_operator *op);
/* Calls fn with "section.key" and the effective value of every key that
 * shapes results: each operator's section, in chain order, and [state]; not
 * the connection sections, which may carry credentials. For reports. */
void config_each_model_value(const struct eddy_config *cfg,
                             void (*fn)(void *ctx, const char *key, const char *value),
                             void *ctx);
/* Writes every key with its default and description (for --help). */
void config_print_keys(FILE *out);

#endif
