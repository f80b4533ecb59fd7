#include "pipeline/run/runtime.h"

#include <errno.h>
#include <malloc.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <uv.h>

#include "operators/budget.h"
#include "operators/embeddings.h"
#include "operators/recommend.h"
#include "operators/users.h"
#include "pipeline/http/api.h"
#include "pipeline/run/chain.h"
#include "pipeline/codec/codec.h"
#include "pipeline/run/driver.h"
#include "pipeline/http/http.h"
#include "pipeline/run/log.h"
#include "pipeline/sink/sink_kafka.h"
#include "pipeline/source/source_kafka.h"
#include "state/state.h"

#define TICK_MS 100
#define STANDBY_RETRY_MS 500
#define SLICE_MS 20           /* of consuming before the loop serves HTTP and timers */
/* Of encoding a checkpoint per loop iteration (state_commit_step()): what it
 * may add to the latency of the input that waits meanwhile. */
#define ENCODE_SLICE_US 500
/* Outputs waiting for acknowledgement past which consuming pauses: half of
 * librdkafka's default queue.buffering.max.messages, so that a batch's
 * outputs still fit and produce() rarely has to wait in place. */
#define UNACKED_HIGH 50000
/* How often freed heap memory is handed back to the kernel (below). */
#define MEMORY_TRIM_MS 10000

enum { CONSUMER, PRODUCER }; /* the two Kafka clients, for broker reachability */

struct runtime {
    const struct eddy_config *cfg;
    const struct runtime_observer *obs;
    uv_loop_t loop;
    uv_poll_t consumer_poll, producer_poll;
    uv_signal_t sigint, sigterm;
    uv_timer_t tick;
    struct source_kafka *kafka;       /* the input topics ... */
    struct eddy_source *source;       /* ... as the driver's source */
    struct eddy_sink *sink;           /* the output topics and the DLQ (sink_kafka.h) */
    struct eddy_state *st;
    struct http_server *http;
    struct api_ctx api;
    struct eddy_metrics metrics;
    struct driver drv;                /* source to chain to sink, and checkpoints */
    uint64_t last_checkpoint_ms;      /* monotonic */
    uv_timer_t retry_open;            /* standby: waiting for the state's lock */
    uv_idle_t resume;                 /* continues consuming that yielded to the loop */
    uv_idle_t encode;                 /* encodes a sliced checkpoint, a slice an iteration */
    uv_work_t open_work;              /* opens the state off the loop */
    int open_rc;
    char open_err[512];
    bool standby;
    bool started, stopping;
    bool checkpoint_waiting;          /* due, waiting for every output to be acknowledged */
    uint64_t waiting_since_ms;
    uint64_t ack_timeout_ms;          /* see sink_kafka_ack_timeout_ms(); 0: none */
    bool no_checkpoint;               /* outputs or state failed: store nothing more */
    uint64_t shutdown_deadline_ms;    /* monotonic */
    /* Health (monotonic ms; 0: not so) */
    uint64_t last_progress_ms;        /* a record was processed */
    uint64_t last_tick_ms;
    uint64_t last_trim_ms;
    uint64_t loop_stalled_until_ms;   /* /healthz fails until then */
    uint64_t brokers_down_since[2];   /* consumer, producer: none reachable since */
    char state_error[512];            /* the state write that failed, for /healthz */
    int exit_code;
};

static void begin_shutdown(struct runtime *rt, int exit_code);
static void on_retry_open(uv_timer_t *t);

/* ---- output ------------------------------------------------------------ */

/* Outputs handed to the sink that the broker has not yet acknowledged (nor
 * failed): a checkpoint may store input offsets only when this is zero. */
static int outputs_unacked(const struct runtime *rt)
{
    return rt->sink ? sink_kafka_unacked(rt->sink) : 0;
}

/* An output that cannot be delivered: its input must be processed again, so
 * no checkpoint may be stored from now on, and eddy stops (check_failed()
 * begins the shutdown from the loop, outside librdkafka's callbacks). */
static void output_failed(void *ctx, const char *topic, const char *why)
{
    struct runtime *rt = ctx;
    rt->metrics.produce_errors++;
    if (rt->no_checkpoint)
        return; /* the first failure was logged; the count is in the metric */
    rt->no_checkpoint = true;
    log_error("output to %s failed: %s; stopping without a checkpoint (exit %d): a restart "
              "reprocesses the input since the last checkpoint",
              topic, why, RUNTIME_UNDELIVERED);
}

static void check_failed(struct runtime *rt)
{
    if (rt->no_checkpoint && !rt->stopping)
        begin_shutdown(rt, rt->state_error[0] ? RUNTIME_ERROR : RUNTIME_UNDELIVERED);
}

static void on_delivered(void *ctx, enum eddy_record_type type)
{
    struct runtime *rt = ctx;
    if (type == REC_RECOMMENDATION)
        rt->metrics.recommendations_out++;
    else
        rt->metrics.decisions_out++;
}

/* Once nothing more will be checkpointed, outputs are not worth waiting for. */
static bool outputs_given_up(void *ctx)
{
    const struct runtime *rt = ctx;
    return rt->no_checkpoint;
}

static void observe_recommendation(void *ctx, const struct recommendation *rec)
{
    struct runtime *rt = ctx;
    if (rt->obs && rt->obs->recommendation)
        rt->obs->recommendation(rt->obs->ctx, rec);
}

static void observe_decision(void *ctx, const struct budget_decision *dec)
{
    struct runtime *rt = ctx;
    if (rt->obs && rt->obs->decision)
        rt->obs->decision(rt->obs->ctx, dec);
}

static void on_rejected(void *ctx, const char *op, const char *reason)
{
    struct runtime *rt = ctx;
    rt->metrics.rejected++;
    log_warn("%s: ignored a record: %s", op, reason);
}

/* ---- input ------------------------------------------------------------- */

/* A record that did not decode (the driver counts it as input taken). */
static void dead_letter(void *ctx, const struct dead_letter *dl)
{
    struct runtime *rt = ctx;
    if (sink_kafka_dead_letter(rt->sink, dl))
        rt->metrics.dlq_truncated++;
}

static bool is_stopping(void *ctx)
{
    const struct runtime *rt = ctx;
    return rt->stopping;
}

static void stop(void *ctx, int exit_code)
{
    begin_shutdown(ctx, exit_code);
}

/* ---- checkpoints ---------------------------------------------------------- */

static void on_encode(uv_idle_t *h);

/* A failed state write is fatal: carrying on would acknowledge input whose
 * effect is not durable. */
static void state_failed(struct runtime *rt, const char *err)
{
    log_error("state commit failed: %s", err);
    snprintf(rt->state_error, sizeof rt->state_error, "%s", err);
    rt->no_checkpoint = true;
    begin_shutdown(rt, RUNTIME_ERROR);
}

/* Persists state and offsets atomically (see state.h), as mode says: the
 * loop's own checkpoints are sliced (encoded a slice per loop iteration by
 * on_encode(), so that a checkpoint does not stop the input for the
 * 100 ms its encoding takes), a revoke's or a shutdown's durable. Callers
 * first make sure every output is acknowledged (outputs_unacked() == 0), so
 * the offsets stored never pass an input whose outputs could still be lost.
 * driver_commit() stores the source's mark (its offsets and clocks) with
 * the state, and Kafka hears of the offsets only once RocksDB holds them
 * (the source's committed op). */
static int checkpoint(struct runtime *rt, enum driver_commit_mode mode)
{
    char err[512];
    if (rt->no_checkpoint || outputs_unacked(rt) > 0)
        return -1;
    if (driver_commit(&rt->drv, rt->source, mode, err, sizeof err)) {
        state_failed(rt, err);
        return -1;
    }
    if (mode == COMMIT_SLICED)
        uv_idle_start(&rt->encode, on_encode);
    rt->last_checkpoint_ms = monotonic_ms();
    rt->metrics.commits++;
    return 0;
}

static void on_encode(uv_idle_t *h)
{
    struct runtime *rt = h->data;
    char err[512];
    int rc = state_commit_step(rt->st, ENCODE_SLICE_US, err, sizeof err);
    if (rc <= 0)
        uv_idle_stop(h);
    if (rc < 0 && !rt->no_checkpoint)
        state_failed(rt, err);
}

/* Waits up to timeout_ms for every output to be acknowledged, serving
 * delivery reports: before a checkpoint that cannot wait for the loop (a
 * revoke, a shutdown). Returns 0 when all are. */
static int flush_outputs(struct runtime *rt, uint64_t timeout_ms)
{
    return rt->no_checkpoint ? -1 : rt->sink->ops->barrier(rt->sink, timeout_ms);
}

/* Before partitions are given up: a revoke that cannot checkpoint leaves
 * their cached state dirty, and this process must not write it any more, so
 * it stops; the new owner reprocesses from the last checkpoint. */
static int checkpoint_before_revoke(void *ctx)
{
    struct runtime *rt = ctx;
    bool committed = !rt->no_checkpoint &&
                     flush_outputs(rt, (uint64_t)rt->cfg->shutdown_timeout_ms) == 0 &&
                     checkpoint(rt, COMMIT_DURABLE) == 0;
    if (!committed && !rt->no_checkpoint) {
        log_error("revoke: cannot checkpoint before giving up partitions: stopping");
        rt->no_checkpoint = true;
    }
    return committed ? 0 : -1;
}

/* Due by record count or wall time, or sooner when the state's memory
 * budget needs its dirty entries written. */
static bool checkpoint_due(const struct runtime *rt)
{
    uint64_t since = rt->drv.since_checkpoint;
    return since > 0 &&
           (since >= (uint64_t)rt->cfg->checkpoint_events ||
            monotonic_ms() - rt->last_checkpoint_ms >= (uint64_t)rt->cfg->checkpoint_interval_ms ||
            state_commit_due(rt->st));
}

/* A due checkpoint pauses consuming until the outputs of everything
 * consumed so far are acknowledged; the loop serves delivery reports, HTTP
 * and signals meanwhile. finish_checkpoint() writes it once they are. */
static void maybe_checkpoint(struct runtime *rt)
{
    if (!rt->checkpoint_waiting && checkpoint_due(rt)) {
        rt->checkpoint_waiting = true;
        rt->waiting_since_ms = monotonic_ms();
    }
}

/* A checkpoint that has waited past message.timeout.ms (+ a grace) for its
 * acknowledgements will not get them: treated as a failed delivery. */
static void check_ack_timeout(struct runtime *rt)
{
    if (rt->checkpoint_waiting && rt->ack_timeout_ms &&
        monotonic_ms() - rt->waiting_since_ms > rt->ack_timeout_ms) {
        char why[128];
        snprintf(why, sizeof why, "%d outputs not acknowledged within %llu ms",
                 outputs_unacked(rt), (unsigned long long)rt->ack_timeout_ms);
        output_failed(rt, "the output topics", why);
    }
}

static void finish_checkpoint(struct runtime *rt)
{
    if (rt->checkpoint_waiting && !rt->no_checkpoint && outputs_unacked(rt) == 0) {
        rt->checkpoint_waiting = false;
        checkpoint(rt, COMMIT_SLICED);
    }
}

/* A batch of input: run through the chain, then the operators flushed with
 * the watermarks it moved (driver_batch()). True when one was taken, false
 * when nothing waited. */
static bool consume_batch(struct runtime *rt)
{
    char err[512];
    int rc = driver_batch(&rt->drv, rt->source, err, sizeof err);
    if (rc != EDDY_SOURCE_BATCH_END) {
        if (rc == EDDY_SOURCE_ERROR) { /* not from the live source, which has none */
            log_error("input: %s", err);
            begin_shutdown(rt, RUNTIME_ERROR);
        } else if (rc == EDDY_SOURCE_END) { /* nor this */
            log_info("the input ended");
            begin_shutdown(rt, 0);
        }
        return false;
    }
    maybe_checkpoint(rt);
    rt->last_progress_ms = monotonic_ms();
    return true;
}

/* Consuming pauses for a checkpoint that waits for acknowledgements, and
 * while too many outputs wait for theirs (back-pressure). */
static bool may_consume(const struct runtime *rt)
{
    return rt->started && !rt->stopping && !rt->no_checkpoint && !rt->checkpoint_waiting &&
           outputs_unacked(rt) < UNACKED_HIGH;
}

static void on_resume(uv_idle_t *h);

/* Processes what the consumer queue holds, for at most SLICE_MS at a time
 * so that a backlog does not keep HTTP, timers and signals waiting; the
 * idle handle continues it on the next loop iteration. librdkafka signals
 * the queue's fd only when the queue turns non-empty, so whatever stops
 * early must come back here: the idle handle, or the end of a pause. */
static void consume_available(struct runtime *rt)
{
    uint64_t start = monotonic_ms();
    while (may_consume(rt)) {
        if (!consume_batch(rt))
            break;
        if (monotonic_ms() - start >= SLICE_MS && may_consume(rt)) {
            uv_idle_start(&rt->resume, on_resume);
            return;
        }
    }
    uv_idle_stop(&rt->resume);
    finish_checkpoint(rt);
    check_failed(rt);
}

static void on_resume(uv_idle_t *h)
{
    consume_available(h->data);
}

static void drain_pipe(int fd)
{
    char buf[64];
    while (read(fd, buf, sizeof buf) > 0)
        ;
}

static void on_consumer_readable(uv_poll_t *h, int status, int events)
{
    (void)status;
    (void)events;
    struct runtime *rt = h->data;
    drain_pipe(rt->source->ops->events_fd(rt->source));
    consume_available(rt);
}

/* Delivery reports: they may end a checkpoint's wait or a back-pressure
 * pause, and so resume consuming. */
static void on_producer_readable(uv_poll_t *h, int status, int events)
{
    (void)status;
    (void)events;
    struct runtime *rt = h->data;
    drain_pipe(sink_kafka_events_fd(rt->sink));
    sink_kafka_serve(rt->sink);
    finish_checkpoint(rt);
    if (may_consume(rt))
        consume_available(rt);
    check_failed(rt);
}

/* ---- housekeeping ------------------------------------------------------- */

/* Broker reachability for /readyz, from librdkafka's statistics: a client
 * is cut off from Kafka while no broker of its is UP. */
static void note_brokers(struct runtime *rt, int client, int up)
{
    uint64_t *since = &rt->brokers_down_since[client];
    if (up > 0)
        *since = 0;
    else if (up == 0 && !*since)
        *since = monotonic_ms();
}

static void consumer_stats(void *ctx, int brokers_up, int64_t queued_bytes)
{
    struct runtime *rt = ctx;
    note_brokers(rt, CONSUMER, brokers_up);
    rt->metrics.consumer_queued_bytes = (uint64_t)queued_bytes;
}

static void producer_stats(void *ctx, int brokers_up, int64_t queued_bytes)
{
    struct runtime *rt = ctx;
    note_brokers(rt, PRODUCER, brokers_up);
    rt->metrics.producer_queued_bytes = (uint64_t)queued_bytes;
}

/* Cached values (or rows) of one operator's store; 0 if the chain has none. */
static uint64_t store_count(struct eddy_state *st, const struct state_codec *codec)
{
    const struct state_store *s = state_store(st, codec);
    return s ? state_store_count(s) : 0;
}

static void update_state_metrics(struct runtime *rt)
{
    struct state_stats s;
    state_stats(rt->st, &s);
    rt->metrics.state_bytes = s.disk_bytes;
    rt->metrics.state_users = store_count(rt->st, &users_store);
    rt->metrics.state_items = store_count(rt->st, &items_store);
    rt->metrics.state_campaigns = store_count(rt->st, &budget_campaigns);
    rt->metrics.cache_hits = s.cache_hits;
    rt->metrics.cache_misses = s.cache_misses;
    rt->metrics.cache_evictions = s.cache_evictions;
    rt->metrics.cache_bytes = s.cache_bytes;
    rt->metrics.memtable_bytes = s.memtable_bytes;
    rt->metrics.block_cache_bytes = s.block_cache_bytes;
    rt->metrics.dirty_entries = s.dirty;
    rt->metrics.checkpoint_us = s.checkpoint_us;
    rt->metrics.checkpoint_bytes = s.checkpoint_bytes;
    rt->metrics.restore_us = s.restore_us;
}

static void update_http_metrics(struct runtime *rt)
{
    struct http_stats h = {0};
    if (rt->http)
        http_stats(rt->http, &h);
    rt->metrics.http_connections = h.connections;
    rt->metrics.http_rejected = h.rejected;
    rt->metrics.http_evicted = h.evicted;
}

/* A tick that comes much later than TICK_MS means the loop was stuck in
 * something; /healthz reports it for as long again, so that a probe which
 * lands between two stalls still sees them. */
static void note_loop_stall(struct runtime *rt, uint64_t now)
{
    if (rt->last_tick_ms && now - rt->last_tick_ms > (uint64_t)rt->cfg->loop_stall_ms) {
        log_warn("the event loop was stalled for %llu ms",
                 (unsigned long long)(now - rt->last_tick_ms));
        rt->loop_stalled_until_ms = now + (uint64_t)rt->cfg->loop_stall_ms;
    }
    rt->last_tick_ms = now;
}

/* glibc returns freed memory to the kernel only from the top of a heap, and
 * librdkafka's threads allocate in arenas of their own: after a catch-up,
 * freed messages stay resident for good and RSS shows the peak, not what
 * eddy holds. malloc_trim() releases every arena's free pages. */
static void trim_memory(struct runtime *rt, uint64_t now)
{
#ifdef __GLIBC__
    if (now - rt->last_trim_ms < MEMORY_TRIM_MS)
        return;
    rt->last_trim_ms = now;
    malloc_trim(0);
    struct mallinfo2 mi = mallinfo2();
    rt->metrics.heap_in_use_bytes = mi.uordblks + mi.hblkhd;
    rt->metrics.heap_free_bytes = mi.fordblks;
#else
    (void)rt, (void)now;
#endif
}

static void on_tick(uv_timer_t *t)
{
    struct runtime *rt = t->data;
    uint64_t now = monotonic_ms();
    note_loop_stall(rt, now);
    trim_memory(rt, now);
    update_http_metrics(rt);
    if (!rt->started || rt->stopping)
        return;
    update_state_metrics(rt);
    rt->metrics.consumer_lag = source_kafka_lag(rt->kafka);
    rt->metrics.assigned_partitions = (uint64_t)source_kafka_assigned(rt->kafka);
    rt->metrics.outputs_unacked = (uint64_t)outputs_unacked(rt);
    maybe_checkpoint(rt);
    finish_checkpoint(rt);
    check_ack_timeout(rt);
    if (may_consume(rt))
        consume_available(rt);
    check_failed(rt);
    if (rt->obs && rt->obs->should_stop && rt->obs->should_stop(rt->obs->ctx, &rt->metrics))
        begin_shutdown(rt, 0);
}

static void on_signal(uv_signal_t *s, int signum)
{
    log_info("received %s: shutting down", signum == SIGINT ? "SIGINT" : "SIGTERM");
    begin_shutdown(s->data, 0);
}

/* ---- health ------------------------------------------------------------- */

/* Liveness: false (with the reason) when a restart is what would help. */
static bool is_live(void *ctx, char *why, size_t n)
{
    struct runtime *rt = ctx;
    if (rt->state_error[0]) {
        snprintf(why, n, "state writes fail: %s", rt->state_error);
        return false;
    }
    if (monotonic_ms() < rt->loop_stalled_until_ms) {
        snprintf(why, n, "the event loop stalled for more than %lld ms",
                 (long long)rt->cfg->loop_stall_ms);
        return false;
    }
    return true;
}

static bool brokers_down_too_long(const struct runtime *rt, uint64_t now, char *why, size_t n)
{
    static const char *const client[2] = {"consumer", "producer"};
    for (int i = 0; i < 2; i++) {
        uint64_t since = rt->brokers_down_since[i];
        if (since && now - since > (uint64_t)rt->cfg->broker_timeout_ms) {
            snprintf(why, n, "no Kafka broker reachable by the %s for %llu ms", client[i],
                     (unsigned long long)(now - since));
            return true;
        }
    }
    return false;
}

/* Readiness: false (with the reason) while eddy cannot do its work. */
static bool is_ready(void *ctx, char *why, size_t n)
{
    struct runtime *rt = ctx;
    uint64_t now = monotonic_ms();
    if (rt->stopping) {
        snprintf(why, n, "shutting down");
        return false;
    }
    if (!rt->started) {
        snprintf(why, n, "%s %s", rt->standby ? "standing by for the state directory" :
                 "opening the state in", rt->cfg->state_dir);
        return false;
    }
    if (brokers_down_too_long(rt, now, why, n))
        return false;
    if (rt->metrics.consumer_lag > 0 && now - rt->last_progress_ms > (uint64_t)rt->cfg->stall_timeout_ms) {
        snprintf(why, n, "consumer lag %lld with no record processed for %llu ms%s",
                 (long long)rt->metrics.consumer_lag,
                 (unsigned long long)(now - rt->last_progress_ms),
                 rt->checkpoint_waiting ? " (waiting for outputs to be acknowledged)" : "");
        return false;
    }
    return true;
}

/* ---- start and stop ----------------------------------------------------- */

static void close_handle(uv_handle_t *h, void *arg)
{
    (void)arg;
    if (!uv_is_closing(h))
        uv_close(h, NULL);
}

static uint64_t ms_left(const struct runtime *rt)
{
    uint64_t now = monotonic_ms();
    return now < rt->shutdown_deadline_ms ? rt->shutdown_deadline_ms - now : 0;
}

/* Persists state and offsets at a stop, if every output is acknowledged
 * within the deadline; otherwise the stop is an error, and a restart
 * reprocesses from the last checkpoint. */
static void final_checkpoint(struct runtime *rt)
{
    if (rt->no_checkpoint)
        return;
    if (flush_outputs(rt, ms_left(rt)) == 0 && checkpoint(rt, COMMIT_DURABLE) == 0) {
        log_info("state and offsets persisted");
        return;
    }
    rt->no_checkpoint = true;
    if (!rt->exit_code)
        rt->exit_code = RUNTIME_UNDELIVERED;
    log_error("outputs not delivered: state and offsets stay at the last checkpoint, and a "
              "restart reprocesses the input since then (exit %d)", rt->exit_code);
}

/* A stop must end within [kafka] shutdown.timeout.ms even where librdkafka
 * would wait longer for a broker that is gone: destroying a consumer whose
 * leave of the group is pending blocks until its requests time out. By the
 * deadline the final checkpoint is written or known to have failed, so
 * exiting at once is as safe as a crash, which recovery handles exactly.
 * One runtime per process: the exit code lives in a global. */
static atomic_int stuck_exit_code;
static atomic_bool stopped; /* runtime_run() returned: nothing is stuck */

static void *shutdown_watchdog(void *arg)
{
    uint64_t ms = (uint64_t)(uintptr_t)arg;
    struct timespec left = {(time_t)(ms / 1000), (long)(ms % 1000) * 1000000};
    while (nanosleep(&left, &left) && errno == EINTR)
        ;
    if (atomic_load(&stopped))
        return NULL;
    int code = atomic_load(&stuck_exit_code);
    log_error("shutdown took longer than [kafka] shutdown.timeout.ms: exiting now (exit %d)",
              code);
    _exit(code);
    return NULL;
}

static void arm_shutdown_watchdog(struct runtime *rt)
{
    pthread_t t;
    /* Half a second past the deadline: the steps before it use it up. */
    uintptr_t ms = (uintptr_t)rt->cfg->shutdown_timeout_ms + 500;
    atomic_store(&stuck_exit_code, rt->exit_code ? rt->exit_code : RUNTIME_UNDELIVERED);
    if (pthread_create(&t, NULL, shutdown_watchdog, (void *)ms) == 0)
        pthread_detach(t);
}

/* Graceful stop, bounded by [kafka] shutdown.timeout.ms: no more input;
 * wait for outputs; persist state and offsets; then leave the group. Also
 * undoes a start that failed part-way. Runs at most once; the loop ends
 * when every handle is closed. */
static void begin_shutdown(struct runtime *rt, int exit_code)
{
    if (rt->stopping)
        return;
    rt->stopping = true;
    rt->exit_code = exit_code;
    rt->shutdown_deadline_ms = monotonic_ms() + (uint64_t)rt->cfg->shutdown_timeout_ms;
    arm_shutdown_watchdog(rt);
    if (rt->started) {
        uv_poll_stop(&rt->consumer_poll);
        final_checkpoint(rt);
    }
    atomic_store(&stuck_exit_code, rt->exit_code);
    if (rt->kafka)
        source_kafka_close(rt->kafka, rt->shutdown_deadline_ms);
    if (rt->sink)
        sink_kafka_purge(rt->sink);
    if (rt->http)
        http_stop(rt->http);
    uv_walk(&rt->loop, close_handle, NULL);
}

/* Polls a Kafka client's event descriptor on the loop. */
static int poll_events(struct runtime *rt, int fd, uv_poll_t *poll, uv_poll_cb cb)
{
    if (fd < 0)
        return -1;
    uv_poll_init(&rt->loop, poll, fd);
    poll->data = rt;
    return uv_poll_start(poll, UV_READABLE, cb);
}

static int start_consumer(struct runtime *rt, char *err, size_t errlen)
{
    struct source_kafka_hooks hooks = {checkpoint_before_revoke, stop, is_stopping,
                                       consumer_stats, rt};
    if (source_kafka_open(rt->cfg, rt->st, &rt->metrics, &hooks, &rt->kafka, err, errlen))
        return -1;
    rt->source = source_kafka_source(rt->kafka);
    return poll_events(rt, rt->source->ops->events_fd(rt->source), &rt->consumer_poll,
                       on_consumer_readable);
}

static int start_outputs(struct runtime *rt, char *err, size_t errlen)
{
    struct codec_options co = {
        .writers_dir = rt->cfg->writers_dir[0] ? rt->cfg->writers_dir : NULL,
        .registry_url = rt->cfg->registry_url[0] ? rt->cfg->registry_url : NULL,
    };
    struct sink_kafka_hooks hooks = {output_failed, on_delivered, outputs_given_up,
                                     producer_stats, rt};
    if (sink_kafka_open(rt->cfg, &co, &hooks, &rt->sink, err, errlen))
        return -1;
    rt->ack_timeout_ms = sink_kafka_ack_timeout_ms(rt->sink);
    return poll_events(rt, sink_kafka_events_fd(rt->sink), &rt->producer_poll,
                       on_producer_readable);
}

/* Returns 0, -1 or STATE_BUSY (another process owns the state directory). */
static int open_state(struct runtime *rt, char *err, size_t errlen)
{
    const struct mf_params *mf = config_op_params(rt->cfg, &eddy_op_embeddings);
    struct state_options so = {.dir = rt->cfg->state_dir, .dim = mf->dim,
                               .create_if_missing = true, .cache_bytes = rt->cfg->cache_bytes,
                               .stores = chain_stores()};
    return state_open(&so, &rt->st, err, errlen);
}

static int start_operators(struct runtime *rt, char *err, size_t errlen)
{
    struct driver_hooks hooks = {.recommendation = observe_recommendation,
                                 .decision = observe_decision, .rejected = on_rejected,
                                 .dead_letter = dead_letter, .ctx = rt};
    return driver_open(&rt->drv, rt->cfg, rt->st, rt->sink, &hooks, err, errlen);
}

static void start_loop_handles(struct runtime *rt)
{
    uv_signal_init(&rt->loop, &rt->sigint);
    uv_signal_init(&rt->loop, &rt->sigterm);
    rt->sigint.data = rt->sigterm.data = rt;
    uv_signal_start(&rt->sigint, on_signal, SIGINT);
    uv_signal_start(&rt->sigterm, on_signal, SIGTERM);
    uv_timer_init(&rt->loop, &rt->tick);
    uv_timer_init(&rt->loop, &rt->retry_open);
    uv_idle_init(&rt->loop, &rt->resume);
    uv_idle_init(&rt->loop, &rt->encode);
    rt->tick.data = rt->retry_open.data = rt->resume.data = rt->encode.data = rt;
    rt->open_work.data = rt;
    uv_timer_start(&rt->tick, on_tick, TICK_MS, TICK_MS);
}

/* Started before the state opens, so that /healthz answers and /readyz says
 * why eddy is not ready yet while a large state restores. */
static int start_http(struct runtime *rt, char *err, size_t errlen)
{
    static const char *const probes[] = {"/healthz", "/readyz", "/metrics", NULL};
    if (!rt->cfg->http_listen[0])
        return 0;
    const struct rec_params *rec = config_op_params(rt->cfg, &eddy_op_recommend);
    rt->api = (struct api_ctx){.metrics = &rt->metrics, .k = rec->k,
                               .live = is_live, .ready = is_ready, .health_ctx = rt};
    struct http_options ho = {.max_connections = rt->cfg->http_max_connections,
                              .idle_timeout_ms = (uint64_t)rt->cfg->http_idle_timeout_ms,
                              .probe_paths = probes};
    if (http_start(&rt->loop, rt->cfg->http_listen, &ho, api_handle, &rt->api, &rt->http, err,
                   errlen))
        return -1;
    log_info("http: listening on %s", rt->cfg->http_listen);
    return 0;
}

/* Everything after the state is open. */
static void start_pipeline(struct runtime *rt)
{
    char err[512] = "";
    if (start_outputs(rt, err, sizeof err) || start_operators(rt, err, sizeof err) ||
        start_consumer(rt, err, sizeof err)) {
        log_error("%s", err);
        begin_shutdown(rt, RUNTIME_ERROR);
        return;
    }
    rt->api.st = rt->st;
    rt->started = true;
    rt->last_checkpoint_ms = rt->last_progress_ms = monotonic_ms();
    log_info("running: consuming %s, %s, %s from %s as group %s", rt->cfg->topic_clicks,
             rt->cfg->topic_ad_events, rt->cfg->topic_campaigns, rt->cfg->bootstrap_servers,
             rt->cfg->group_id);
}

/* The state opens on a worker thread (restoring a large one takes a while)
 * while the loop serves HTTP and signals. Standby: another eddy process
 * owns the state directory. RocksDB's lock is released when that process
 * exits, however it exits; then this one opens the state, joins the group
 * and resumes from the stored offsets. */
static void open_state_work(uv_work_t *w)
{
    struct runtime *rt = w->data;
    rt->open_rc = open_state(rt, rt->open_err, sizeof rt->open_err);
}

static void on_state_opened(uv_work_t *w, int status)
{
    struct runtime *rt = w->data;
    if (status == UV_ECANCELED || rt->stopping)
        return;
    if (rt->open_rc == STATE_BUSY) {
        if (!rt->standby)
            log_warn("state directory %s is in use by another eddy process: standing by to "
                     "take over when it exits", rt->cfg->state_dir);
        rt->standby = true;
        uv_timer_start(&rt->retry_open, on_retry_open, STANDBY_RETRY_MS, 0);
    } else if (rt->open_rc) {
        log_error("%s", rt->open_err);
        begin_shutdown(rt, RUNTIME_ERROR);
    } else {
        if (rt->standby)
            log_info("state directory %s is free now: taking over", rt->cfg->state_dir);
        start_pipeline(rt);
    }
}

static void open_state_async(struct runtime *rt)
{
    uv_queue_work(&rt->loop, &rt->open_work, open_state_work, on_state_opened);
}

static void on_retry_open(uv_timer_t *t)
{
    open_state_async(t->data);
}

static void runtime_free(struct runtime *rt)
{
    if (rt->source)
        rt->source->ops->free(rt->source);
    if (rt->sink)
        rt->sink->ops->free(rt->sink);
    driver_close(&rt->drv);
    if (rt->st)
        state_close(rt->st);
    uv_loop_close(&rt->loop);
}

/* glibc raises its mmap threshold to the size of each large block freed (up
 * to 32 MB), so RocksDB's 1/8-memtable arena blocks and librdkafka's fetch
 * and batch buffers soon come from the heap instead, and a catch-up's worth
 * of them stays resident after they are freed. A fixed threshold keeps
 * every block of 256 KB or more in its own mapping, returned when freed. */
static void bound_heap(void)
{
#ifdef __GLIBC__
    mallopt(M_MMAP_THRESHOLD, 256 * 1024);
#endif
}

int runtime_run(const struct eddy_config *cfg, const struct runtime_observer *observer)
{
    bound_heap();
    struct runtime rt = {
        .cfg = cfg,
        .obs = observer,
        .metrics.input_topic = {cfg->topic_clicks, cfg->topic_ad_events, cfg->topic_campaigns},
        .metrics.consumer_lag = -1,
    };
    char err[512] = "";
    uv_loop_init(&rt.loop);
    start_loop_handles(&rt);
    if (start_http(&rt, err, sizeof err)) {
        log_error("%s", err);
        begin_shutdown(&rt, RUNTIME_ERROR);
    } else {
        open_state_async(&rt);
    }
    uv_run(&rt.loop, UV_RUN_DEFAULT);
    if (observer && observer->finished)
        observer->finished(observer->ctx, &rt.metrics);
    runtime_free(&rt);
    atomic_store(&stopped, true);
    return rt.exit_code;
}
