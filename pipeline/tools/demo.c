#include "pipeline/tools/demo.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "pipeline/run/config.h"
#include "pipeline/tools/gen.h"
#include "pipeline/kafka/kafka.h"
#include "pipeline/run/log.h"
#include "pipeline/tools/mockctl.h"
#include "pipeline/run/runtime.h"

#define TRACKED_USERS 3
#define TRACKED_CAMPAIGNS 2

struct demo {
    struct gen_options gen;
    struct eddy_config cfg;
    pthread_t thread;
    volatile bool gen_done, gen_stop;
    uint64_t produced;
    int gen_rc;
    struct timespec t0;
    int max_seconds;
    struct kafka_mock *faulty;   /* --fault: broker 2 leads the outputs */
    int fault_step;                  /* 0 before, 1 during, 2 after the outage */
    struct eddy_metrics last;   /* the pipeline's final counters */
    double last_print[TRACKED_USERS];
    char last_items[TRACKED_USERS][512];
};

static double elapsed(const struct demo *d)
{
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    return (double)(now.tv_sec - d->t0.tv_sec) + (double)(now.tv_nsec - d->t0.tv_nsec) / 1e9;
}

static void *gen_thread(void *arg)
{
    struct demo *d = arg;
    d->gen_rc = gen_to_kafka(&d->gen, &d->cfg, &d->gen_stop, &d->produced);
    d->gen_done = true;
    return NULL;
}

static int tracked_user(struct eddy_str id)
{
    for (int i = 0; i < TRACKED_USERS; i++) {
        char want[8];
        int n = snprintf(want, sizeof want, "u%d", i + 1);
        if (id.len == (size_t)n && !memcmp(id.ptr, want, (size_t)n))
            return i;
    }
    return -1;
}

static void on_recommendation(void *ctx, const struct recommendation *rec)
{
    struct demo *d = ctx;
    int u = tracked_user(rec->user_id);
    if (u < 0 || elapsed(d) - d->last_print[u] < 2.0)
        return;
    int segment = gen_segment_of(rec->user_id, d->gen.segments);
    char items[512] = "";
    size_t off = 0;
    int same = 0;
    for (size_t i = 0; i < rec->n_items && off < sizeof items - 16; i++) {
        off += (size_t)snprintf(items + off, sizeof items - off, "%s%.*s", i ? " " : "",
                                (int)rec->items[i].item_id.len, rec->items[i].item_id.ptr);
        same += gen_segment_of(rec->items[i].item_id, d->gen.segments) == segment;
    }
    if (!strcmp(items, d->last_items[u]))
        return;
    memcpy(d->last_items[u], items, sizeof items);
    d->last_print[u] = elapsed(d);
    printf("[%5.1fs] recommend %.*s (segment %d): %s   (%d/%zu from its segment's items",
           elapsed(d), (int)rec->user_id.len, rec->user_id.ptr, segment, items, same,
           rec->n_items);
    if (rec->n_items && rec->items[0].because.len) /* the explanation, for the first */
        printf("; %.*s because of %.*s", (int)rec->items[0].item_id.len,
               rec->items[0].item_id.ptr, (int)rec->items[0].because.len,
               rec->items[0].because.ptr);
    printf(")\n");
    fflush(stdout);
}

static void on_decision(void *ctx, const struct budget_decision *dec)
{
    struct demo *d = ctx;
    bool tracked = dec->campaign_id.len == 2 && dec->campaign_id.ptr[0] == 'c' &&
                   dec->campaign_id.ptr[1] - '0' < TRACKED_CAMPAIGNS;
    if (!tracked || (dec->slot % 6 != 0 && dec->pacing_rate > 0))
        return;
    printf("[%5.1fs] decision  %.*s slot %2d: bid x%.2f pacing %.2f spent %lld remaining %lld\n",
           elapsed(d), (int)dec->campaign_id.len, dec->campaign_id.ptr, dec->slot,
           dec->bid_multiplier, dec->pacing_rate, (long long)dec->spent_micros,
           (long long)dec->remaining_micros);
    fflush(stdout);
}

static void finished(void *ctx, const struct eddy_metrics *m)
{
    struct demo *d = ctx;
    d->last = *m;
}

/* The fault-injection commands of `eddy broker`'s control channel. */
static void fault(struct demo *d, const char *command, const char *what)
{
    char reply[256];
    mockctl_exec(d->faulty->cluster, command, reply, sizeof reply);
    printf("[%5.1fs] fault     %s: %s\n", elapsed(d), what, reply);
    fflush(stdout);
}

/* --fault: the output broker is down from 3 s to 8 s, shorter than
 * message.timeout.ms: librdkafka retries, eddy's consuming pauses at its
 * next checkpoint, and every output is delivered once it is back. */
static void step_fault(struct demo *d)
{
    if (d->faulty && d->fault_step == 0 && elapsed(d) >= 3) {
        fault(d, "down 2", "output broker 2 down");
        d->fault_step = 1;
    } else if (d->faulty && d->fault_step == 1 && elapsed(d) >= 8) {
        fault(d, "up 2", "output broker 2 back");
        d->fault_step = 2;
    }
}

/* Stops once the pipeline has taken in every record the generator
 * delivered, or at the time limit. */
static bool should_stop(void *ctx, const struct eddy_metrics *m)
{
    struct demo *d = ctx;
    step_fault(d);
    uint64_t seen = 0;
    for (int i = 0; i < IN_COUNT; i++)
        seen += m->events_in[i] + m->dlq[i];
    if (elapsed(d) > d->max_seconds) {
        d->gen_stop = true;
        return true;
    }
    return d->gen_done && seen >= d->produced && d->fault_step != 1;
}

static struct kafka_mock *place_outputs_on_broker_2(struct kafka_mock *mock,
                                                    const struct eddy_config *cfg)
{
    const char *outputs[] = {cfg->topic_recommendations, cfg->topic_decisions, cfg->topic_dlq};
    const char *inputs[] = {cfg->topic_clicks, cfg->topic_ad_events, cfg->topic_campaigns};
    char line[512], reply[256];
    for (int i = 0; i < 3; i++) {
        snprintf(line, sizeof line, "leader %s * 2", outputs[i]);
        mockctl_exec(mock->cluster, line, reply, sizeof reply);
        snprintf(line, sizeof line, "leader %s * 1", inputs[i]);
        mockctl_exec(mock->cluster, line, reply, sizeof reply);
    }
    snprintf(line, sizeof line, "coordinator group %s 1", cfg->group_id);
    mockctl_exec(mock->cluster, line, reply, sizeof reply);
    return mock;
}

int demo_run(const struct demo_options *o)
{
    struct demo d = {.max_seconds = o->max_seconds};
    char err[512];
    struct kafka_mock mock;
    char state_dir[] = "/tmp/eddy-demo-XXXXXX";
    if (config_load(&d.cfg, NULL, err, sizeof err)) {
        log_error("%s", err);
        return 1;
    }
    if (!mkdtemp(state_dir)) {
        log_error("demo: cannot create a state directory under /tmp");
        config_free(&d.cfg);
        return 1;
    }
    if (kafka_mock_new(&mock, &d.cfg, o->fault ? 2 : 1, 4, err, sizeof err)) {
        log_error("demo: %s", err);
        config_free(&d.cfg);
        return 1;
    }
    if (o->fault)
        d.faulty = place_outputs_on_broker_2(&mock, &d.cfg);
    free(d.cfg.bootstrap_servers);
    d.cfg.bootstrap_servers = strdup(kafka_mock_bootstraps(&mock));
    free(d.cfg.state_dir);
    d.cfg.state_dir = strdup(state_dir);
    free(d.cfg.http_listen);
    d.cfg.http_listen = strdup(""); /* the demo does not take a port */

    gen_options_default(&d.gen);
    d.gen.events = o->events;
    d.gen.rate = o->rate;
    d.gen.bad_every = 20000;
    printf("eddy demo: mock Kafka at %s, state in %s\n"
           "generating %llu events at %.0f/s: %d users in %d segments, %d items, %d campaigns\n\n",
           d.cfg.bootstrap_servers, state_dir, (unsigned long long)d.gen.events, d.gen.rate,
           d.gen.users, d.gen.segments, d.gen.items, d.gen.campaigns);
    fflush(stdout);

    clock_gettime(CLOCK_MONOTONIC, &d.t0);
    pthread_create(&d.thread, NULL, gen_thread, &d);
    struct runtime_observer obs = {on_recommendation, on_decision, should_stop, finished, &d};
    int rc = runtime_run(&d.cfg, &obs);
    d.gen_stop = true;
    pthread_join(d.thread, NULL);
    const struct eddy_metrics *m = &d.last;
    printf("\neddy demo: %.1fs, %llu records produced; pipeline consumed %llu clicks, %llu ad "
           "events, %llu budgets; dead-lettered %llu; published %llu recommendations and %llu "
           "budget decisions; %llu outputs undelivered (exit %d). State kept in %s\n",
           elapsed(&d), (unsigned long long)d.produced,
           (unsigned long long)m->events_in[IN_CLICKS], (unsigned long long)m->events_in[IN_AD_EVENTS],
           (unsigned long long)m->events_in[IN_CAMPAIGNS],
           (unsigned long long)(m->dlq[IN_CLICKS] + m->dlq[IN_AD_EVENTS] + m->dlq[IN_CAMPAIGNS]),
           (unsigned long long)m->recommendations_out, (unsigned long long)m->decisions_out,
           (unsigned long long)m->produce_errors, rc,
           state_dir);
    kafka_mock_free(&mock);
    config_free(&d.cfg);
    return rc || d.gen_rc;
}
