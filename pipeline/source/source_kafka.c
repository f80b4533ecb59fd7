/* source_kafka.c: see source_kafka.h. */
#include "pipeline/source/source_kafka.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "pipeline/codec/codec.h"
#include "pipeline/kafka/kafka.h"
#include "pipeline/run/log.h"
#include "pipeline/run/runtime.h"
#include "state/state.h"

#define BATCH_MAX 2048

struct partition_clock {
    char topic[256];
    int32_t partition;
    int64_t max_ms;
};

/* Consecutive messages of one partition: the per-partition lookups and the
 * offset and clock bookkeeping are done once per run, not per message. */
struct partition_run {
    rd_kafka_topic_t *rkt;       /* NULL: no run open */
    int32_t partition;
    const char *topic;
    int in;                      /* input index; -1: not ours or not assigned */
    enum eddy_record_type type;
    int64_t next_offset;         /* -1: nothing consumed in this run */
    int64_t max_ms;
};

struct source_kafka {
    struct eddy_source base;
    const struct eddy_config *cfg;
    struct eddy_state *st;
    struct eddy_metrics *metrics;
    struct source_kafka_hooks hooks;
    struct eddy_codec *codec;
    rd_kafka_t *consumer;
    rd_kafka_queue_t *q;
    int pipe[2];                                /* q's events */
    rd_kafka_topic_partition_list_t *assigned;  /* our current assignment */
    rd_kafka_topic_partition_list_t *to_commit; /* processed since last checkpoint */
    rd_kafka_topic_partition_list_t *writing;   /* in the state batch being written */
    rd_kafka_topic_partition_list_t *gaps;      /* reset to the log start from .offset */
    /* Budgets first (see budgets_first()): campaigns partitions not yet
     * read to their end, and the other partitions the group gave eddy, not
     * fetched until then (.offset: where each starts). */
    rd_kafka_topic_partition_list_t *loading, *deferred;
    uint64_t loading_until_ms;
    struct partition_clock *clocks;   /* highest event time per input partition */
    size_t n_clocks;
    bool closed;                      /* left the group */
    /* The batch being handed out by next() (n_batch 0: none), its current
     * partition run, and the dead letter handed out last. */
    rd_kafka_message_t *batch[BATCH_MAX];
    ssize_t n_batch, i_batch;
    struct partition_run run;
    struct dead_letter dl;
    char dl_reason[256];
};

static int64_t wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int input_of(const struct source_kafka *s, const char *topic, enum eddy_record_type *type)
{
    static const enum eddy_record_type types[IN_COUNT] = {REC_CLICK, REC_AD, REC_CAMPAIGN};
    for (int i = 0; i < IN_COUNT; i++)
        if (!strcmp(topic, s->metrics->input_topic[i])) {
            *type = types[i];
            return i;
        }
    return -1;
}

/* ---- event-time clocks --------------------------------------------------- */

static struct partition_clock *clock_of(struct source_kafka *s, const char *topic,
                                        int32_t partition)
{
    for (size_t i = 0; i < s->n_clocks; i++)
        if (s->clocks[i].partition == partition && !strcmp(s->clocks[i].topic, topic))
            return &s->clocks[i];
    s->clocks = realloc(s->clocks, (s->n_clocks + 1) * sizeof *s->clocks);
    if (!s->clocks)
        abort();
    struct partition_clock *c = &s->clocks[s->n_clocks++];
    memset(c, 0, sizeof *c); /* saved as raw bytes: no stray padding */
    snprintf(c->topic, sizeof c->topic, "%s", topic);
    c->partition = partition;
    c->max_ms = INT64_MIN;
    return c;
}

/* Partitions are read in order, so (with in-order producers) nothing older
 * than the watermark is still to come. */
static int64_t watermark(const struct source_kafka *s, const char *topic)
{
    int64_t wm = INT64_MAX;
    for (size_t i = 0; i < s->n_clocks; i++) {
        const struct partition_clock *c = &s->clocks[i];
        if (c->max_ms != INT64_MIN && !strcmp(c->topic, topic) &&
            rd_kafka_topic_partition_list_find(s->assigned, topic, c->partition) &&
            c->max_ms < wm)
            wm = c->max_ms;
    }
    return wm == INT64_MAX ? INT64_MIN : wm;
}

#define CLOCKS_BLOB "runtime.clocks"

static int clock_cmp(const void *a, const void *b)
{
    const struct partition_clock *x = a, *y = b;
    int c = strcmp(x->topic, y->topic);
    return c ? c : (x->partition > y->partition) - (x->partition < y->partition);
}

/* The clocks are saved with every checkpoint so that a restart resumes the
 * same event-time watermarks. Layout: per partition, the clock struct, in
 * (topic, partition) order so that equal clocks give equal bytes. */
static void save_clocks(struct source_kafka *s, struct eddy_state *st)
{
    if (s->n_clocks)
        qsort(s->clocks, s->n_clocks, sizeof *s->clocks, clock_cmp);
    state_blob_set(st, CLOCKS_BLOB, s->clocks, s->n_clocks * sizeof *s->clocks);
}

static int restore_clocks(struct source_kafka *s, char *err, size_t errlen)
{
    void *blob;
    size_t len;
    int rc = state_blob_get(s->st, CLOCKS_BLOB, &blob, &len);
    if (rc < 0 || (rc == 0 && len % sizeof *s->clocks)) {
        snprintf(err, errlen, "state %s: unreadable %s", s->cfg->state_dir, CLOCKS_BLOB);
        if (rc == 0)
            free(blob);
        return -1;
    }
    if (rc == 0) {
        s->clocks = blob;
        s->n_clocks = len / sizeof *s->clocks;
    }
    return 0;
}

/* ---- offsets ------------------------------------------------------------- */

static void note_offset(rd_kafka_topic_partition_list_t *list, const char *topic,
                        int32_t partition, int64_t next)
{
    rd_kafka_topic_partition_t *p = rd_kafka_topic_partition_list_find(list, topic, partition);
    if (!p)
        p = rd_kafka_topic_partition_list_add(list, topic, partition);
    p->offset = next;
}

static void end_run(struct source_kafka *s, struct partition_run *r)
{
    if (r->rkt && r->next_offset >= 0) {
        state_offset_set(s->st, r->topic, r->partition, r->next_offset);
        note_offset(s->to_commit, r->topic, r->partition, r->next_offset);
        if (r->max_ms != INT64_MIN) {
            struct partition_clock *c = clock_of(s, r->topic, r->partition);
            if (r->max_ms > c->max_ms)
                c->max_ms = r->max_ms;
        }
    }
    r->rkt = NULL;
}

/* The first record after a reset to the log start tells how many records
 * the reset skipped. */
static void count_gap(struct source_kafka *s, const char *topic, int32_t partition, int64_t first)
{
    rd_kafka_topic_partition_t *g = rd_kafka_topic_partition_list_find(s->gaps, topic, partition);
    if (!g)
        return;
    int64_t gap = first > g->offset ? first - g->offset : 0;
    s->metrics->offset_gap += (uint64_t)gap;
    log_warn("%s[%d]: skipped %lld records (offsets %lld to %lld, gone from the log), as "
             "[kafka] offset.reset = earliest allows", topic, (int)partition, (long long)gap,
             (long long)g->offset, (long long)first - 1);
    rd_kafka_topic_partition_list_del(s->gaps, topic, partition);
}

static void start_run(struct source_kafka *s, struct partition_run *r,
                      const rd_kafka_message_t *m)
{
    *r = (struct partition_run){.rkt = m->rkt, .partition = m->partition,
                                .topic = rd_kafka_topic_name(m->rkt), .next_offset = -1,
                                .max_ms = INT64_MIN};
    /* A message fetched before a revoke belongs to the partition's new owner. */
    r->in = rd_kafka_topic_partition_list_find(s->assigned, r->topic, r->partition)
                ? input_of(s, r->topic, &r->type)
                : -1;
    if (s->gaps->cnt && r->in >= 0)
        count_gap(s, r->topic, r->partition, m->offset);
}

/* Where a partition starts: at the offset stored with the state, or, if the
 * state has seen nothing of it, at the beginning of its log. Kafka's
 * committed offsets are never used: they would skip input the state never
 * saw. */
static int64_t start_offset(struct source_kafka *s, const char *topic, int32_t partition)
{
    int64_t stored = state_offset_get(s->st, topic, partition);
    return stored >= 0 ? stored : RD_KAFKA_OFFSET_BEGINNING;
}

/* Where a partition with no record fetched yet restarts: at the log start
 * if it was reset there already and waits for its first record (its stored
 * offset is out of range: going back to it would make two partitions out of
 * range at once reset each other in turn, for good), else where it starts. */
static int64_t resume_offset(struct source_kafka *s, const char *topic, int32_t partition)
{
    return rd_kafka_topic_partition_list_find(s->gaps, topic, partition)
               ? RD_KAFKA_OFFSET_BEGINNING
               : start_offset(s, topic, partition);
}

static bool cooperative(rd_kafka_t *rk)
{
    return !strcmp(rd_kafka_rebalance_protocol(rk), "COOPERATIVE");
}

static void empty_list(rd_kafka_topic_partition_list_t **list)
{
    rd_kafka_topic_partition_list_destroy(*list);
    *list = rd_kafka_topic_partition_list_new(8);
}

/* Under the eager protocol an assignment is replaced whole: the partitions
 * fetched now (all assigned but the deferred ones) go into the new one at
 * their positions (messages already handed to eddy are not fetched again). */
static rd_kafka_topic_partition_list_t *fetched_at_positions(struct source_kafka *s)
{
    rd_kafka_topic_partition_list_t *parts = rd_kafka_topic_partition_list_copy(s->assigned);
    for (int i = 0; i < s->deferred->cnt; i++)
        rd_kafka_topic_partition_list_del(parts, s->deferred->elems[i].topic,
                                          s->deferred->elems[i].partition);
    rd_kafka_position(s->consumer, parts);
    for (int i = 0; i < parts->cnt; i++) {
        rd_kafka_topic_partition_t *p = &parts->elems[i];
        if (p->offset < 0)
            p->offset = resume_offset(s, p->topic, p->partition);
    }
    return parts;
}

/* librdkafka stops fetching a partition whose offset was out of range and
 * refuses to seek it ("Erroneous state"); assigning it again restarts it.
 * Under the eager protocol that means the whole assignment. */
static int restart_partition_at(struct source_kafka *s, const char *topic, int32_t partition,
                                int64_t offset)
{
    rd_kafka_error_t *e = NULL;
    rd_kafka_topic_partition_list_t *parts;
    if (cooperative(s->consumer)) {
        parts = rd_kafka_topic_partition_list_new(1);
        rd_kafka_topic_partition_list_add(parts, topic, partition)->offset = offset;
        e = rd_kafka_incremental_unassign(s->consumer, parts);
        if (!e)
            e = rd_kafka_incremental_assign(s->consumer, parts);
    } else {
        parts = fetched_at_positions(s);
        rd_kafka_topic_partition_t *p = rd_kafka_topic_partition_list_find(parts, topic, partition);
        if (p)
            p->offset = offset;
        rd_kafka_resp_err_t err = rd_kafka_assign(s->consumer, parts);
        if (err)
            e = rd_kafka_error_new(err, "%s", rd_kafka_err2str(err));
    }
    rd_kafka_topic_partition_list_destroy(parts);
    if (!e)
        return 0;
    log_error("%s[%d]: cannot restart fetching at %lld: %s", topic, (int)partition,
              (long long)offset, rd_kafka_error_string(e));
    rd_kafka_error_destroy(e);
    return -1;
}

/* librdkafka reports a fetch offset outside the partition's log (retention
 * passed it, or the topic was recreated) instead of jumping, because eddy
 * sets auto.offset.reset=error. Under [kafka] offset.reset = fail that stops
 * eddy; under earliest it resumes at the log start, and count_gap() counts
 * what was skipped when the first record arrives: the log's bounds may not
 * be known now (a leader moving, say). */
static void on_offset_out_of_range(struct source_kafka *s, const rd_kafka_message_t *m)
{
    const char *topic = rd_kafka_topic_name(m->rkt);
    char bounds[128];
    int64_t lo, hi;
    rd_kafka_resp_err_t e =
        rd_kafka_query_watermark_offsets(s->consumer, topic, m->partition, &lo, &hi, 5000);
    if (e)
        snprintf(bounds, sizeof bounds, "the log's bounds are unknown (%s)", rd_kafka_err2str(e));
    else
        snprintf(bounds, sizeof bounds, "the log holds offsets %lld to %lld", (long long)lo,
                 (long long)hi - 1);
    if (!s->cfg->offset_reset_earliest) {
        log_error("%s[%d]: offset %lld is out of range: %s; stopping without skipping anything "
                  "(exit %d). To resume at the log start and accept the gap, set [kafka] "
                  "offset.reset = earliest",
                  topic, (int)m->partition, (long long)m->offset, bounds,
                  RUNTIME_OFFSET_OUT_OF_RANGE);
        s->hooks.stop(s->hooks.ctx, RUNTIME_OFFSET_OUT_OF_RANGE);
        return;
    }
    log_warn("%s[%d]: offset %lld is out of range (%s): resuming at the log start, as [kafka] "
             "offset.reset = earliest allows", topic, (int)m->partition, (long long)m->offset,
             bounds);
    if (restart_partition_at(s, topic, m->partition, RD_KAFKA_OFFSET_BEGINNING)) {
        s->hooks.stop(s->hooks.ctx, RUNTIME_ERROR);
        return;
    }
    /* A partition may be reported again before its first record: the log
     * start moved on meanwhile, or librdkafka reports a fetch of the old
     * assignment. It is restarted again, but it is still the same gap,
     * which starts at the first offset reported and is counted once. */
    rd_kafka_topic_partition_t *g =
        rd_kafka_topic_partition_list_find(s->gaps, topic, m->partition);
    if (!g) {
        s->metrics->offset_resets++;
        rd_kafka_topic_partition_list_add(s->gaps, topic, m->partition)->offset = m->offset;
    }
}

/* ---- budgets first --------------------------------------------------------
 *
 * A CampaignBudget has no event time and Kafka orders no two topics: read
 * side by side, a campaign's ad events can come before its budget, and
 * those do not bid (docs/budget.md). So when an assignment holds campaigns
 * partitions, only those are fetched at first; the other partitions are
 * assigned once librdkafka reports each campaigns partition at its end
 * (RD_KAFKA_RESP_ERR__PARTITION_EOF, after its last record was handed
 * out), or after [kafka] budgets.wait.ms if it cannot be read (0: no
 * wait, budgets are read side by side with the rest). The others are
 * deferred rather than paused: the librdkafka of Debian 12 (2.0.2) can skip
 * messages of a partition paused and resumed, a bug fixed in 2.1.0. Nothing
 * here blocks: the HTTP endpoint shares the loop. */
static bool is_campaigns(const struct source_kafka *s, const char *topic)
{
    return !strcmp(topic, s->cfg->topic_campaigns);
}

/* The part of parts to fetch now: all of it, or, while budgets are being
 * read, the campaigns partitions, the others being deferred. */
static rd_kafka_topic_partition_list_t *budgets_first(struct source_kafka *s,
                                                      rd_kafka_topic_partition_list_t *parts)
{
    if (s->cfg->budgets_wait_ms <= 0)
        return parts;
    for (int i = 0; i < parts->cnt; i++)
        if (is_campaigns(s, parts->elems[i].topic))
            rd_kafka_topic_partition_list_add(s->loading, parts->elems[i].topic,
                                              parts->elems[i].partition);
    if (!s->loading->cnt)
        return parts;
    if (!s->loading_until_ms) {
        s->loading_until_ms = monotonic_ms() + (uint64_t)s->cfg->budgets_wait_ms;
        log_info("reading %d campaigns partition(s) to their end before the other input",
                 s->loading->cnt);
    }
    rd_kafka_topic_partition_list_t *now = rd_kafka_topic_partition_list_new(parts->cnt);
    for (int i = 0; i < parts->cnt; i++) {
        const rd_kafka_topic_partition_t *p = &parts->elems[i];
        rd_kafka_topic_partition_list_t *to = is_campaigns(s, p->topic) ? now : s->deferred;
        rd_kafka_topic_partition_list_add(to, p->topic, p->partition)->offset = p->offset;
    }
    return now;
}

/* A partition is at its end: if it is a campaigns partition being read
 * first, its budgets are in. */
static void on_partition_end(struct source_kafka *s, const rd_kafka_message_t *m)
{
    if (m->rkt)
        rd_kafka_topic_partition_list_del(s->loading, rd_kafka_topic_name(m->rkt), m->partition);
}

/* Starts fetching the deferred partitions; false if librdkafka refused. */
static bool fetch_deferred(struct source_kafka *s)
{
    rd_kafka_error_t *e = NULL;
    if (cooperative(s->consumer)) {
        e = rd_kafka_incremental_assign(s->consumer, s->deferred);
    } else {
        rd_kafka_topic_partition_list_t *parts = fetched_at_positions(s);
        for (int i = 0; i < s->deferred->cnt; i++)
            rd_kafka_topic_partition_list_add(parts, s->deferred->elems[i].topic,
                                              s->deferred->elems[i].partition)
                ->offset = s->deferred->elems[i].offset;
        rd_kafka_resp_err_t err = rd_kafka_assign(s->consumer, parts);
        rd_kafka_topic_partition_list_destroy(parts);
        if (err)
            e = rd_kafka_error_new(err, "%s", rd_kafka_err2str(err));
    }
    empty_list(&s->deferred);
    if (!e)
        return true;
    log_error("cannot start fetching the input after the budgets: %s", rd_kafka_error_string(e));
    rd_kafka_error_destroy(e);
    return false;
}

/* Once the budgets are read (or their time is up), the rest is fetched. */
static void maybe_end_budgets_first(struct source_kafka *s)
{
    if (!s->loading_until_ms)
        return;
    int left = s->loading->cnt;
    if (left && monotonic_ms() < s->loading_until_ms)
        return;
    if (left)
        log_warn("%d campaigns partition(s) not read to their end in [kafka] budgets.wait.ms = "
                 "%lld ms: the other input starts anyway, and a campaign's ad events read before "
                 "its budget do not bid", left, (long long)s->cfg->budgets_wait_ms);
    else
        log_info("budgets read: fetching the other %d partition(s)", s->deferred->cnt);
    empty_list(&s->loading);
    s->loading_until_ms = 0;
    if (s->deferred->cnt && !fetch_deferred(s))
        s->hooks.stop(s->hooks.ctx, RUNTIME_ERROR);
}

static void on_consumer_error(struct source_kafka *s, const rd_kafka_message_t *m)
{
    if (m->err == RD_KAFKA_RESP_ERR__AUTO_OFFSET_RESET && m->rkt) {
        on_offset_out_of_range(s, m);
    } else if (m->err == RD_KAFKA_RESP_ERR__FATAL) {
        char why[256];
        rd_kafka_fatal_error(s->consumer, why, sizeof why);
        log_error("consumer: fatal error: %s", why);
        s->hooks.stop(s->hooks.ctx, RUNTIME_ERROR);
    } else if (m->err == RD_KAFKA_RESP_ERR__PARTITION_EOF) {
        on_partition_end(s, m);
    } else {
        log_warn("consumer: %s", rd_kafka_message_errstr(m));
    }
}

/* ---- records ------------------------------------------------------------- */

/* One message of the batch: EDDY_SOURCE_RECORD (decoded into ev),
 * EDDY_SOURCE_DEAD_LETTER (s->dl), or 0 when there is nothing to hand out
 * (an error event, a partition no longer ours, or eddy is stopping). The
 * run's offset and clock move as the input is handed out, and reach the
 * state only when the run ends, in a later call: by then the driver has
 * taken the input whole (run it through the chain, or dead-lettered it). */
static int handle_message(struct source_kafka *s, struct partition_run *r,
                          const rd_kafka_message_t *m, struct eddy_event *ev)
{
    if (m->err) {
        end_run(s, r); /* the offsets processed so far go with any checkpoint it makes */
        on_consumer_error(s, m);
        return 0;
    }
    if (m->rkt != r->rkt || m->partition != r->partition) {
        end_run(s, r);
        start_run(s, r, m);
    }
    if (r->in < 0 || s->hooks.stopping(s->hooks.ctx))
        return 0;

    int rc;
    if (codec_decode(s->codec, r->type, m->payload, m->len, ev, s->dl_reason,
                     sizeof s->dl_reason)) {
        s->dl = (struct dead_letter){.reason = s->dl_reason, .topic = rd_kafka_topic_name(m->rkt),
                                     .partition = m->partition, .offset = m->offset,
                                     .key = m->key, .value = m->payload, .key_len = m->key_len,
                                     .len = m->len};
        s->metrics->dlq[r->in]++;
        rc = EDDY_SOURCE_DEAD_LETTER;
    } else {
        ev->partition = m->partition;
        int64_t t = eddy_event_time(ev);
        if (t > r->max_ms)
            r->max_ms = t;
        s->metrics->events_in[r->in]++;
        rc = EDDY_SOURCE_RECORD;
    }
    r->next_offset = m->offset + 1;
    return rc;
}

/* Every message of the batch is handed out: the runs' offsets and clocks
 * into the state, the latencies observed, the messages freed. */
static void end_batch(struct source_kafka *s)
{
    end_run(s, &s->run);
    int64_t now = wall_ms();
    for (ssize_t i = 0; i < s->n_batch; i++) {
        int64_t ts = rd_kafka_message_timestamp(s->batch[i], NULL);
        if (!s->batch[i]->err && ts > 0 && now >= ts)
            metrics_observe_latency(s->metrics, (double)(now - ts) / 1000.0);
        rd_kafka_message_destroy(s->batch[i]);
    }
    s->n_batch = s->i_batch = 0;
}

/* Takes a batch of what is fetched (rebalances are served meanwhile) and
 * hands its inputs out one by one, then EDDY_SOURCE_BATCH_END;
 * EDDY_SOURCE_IDLE when nothing waited. */
static int next(struct eddy_source *src, struct eddy_event *ev, char *err, size_t errlen)
{
    (void)err, (void)errlen;
    struct source_kafka *s = (struct source_kafka *)src;
    if (!s->n_batch) {
        maybe_end_budgets_first(s);
        ssize_t n = rd_kafka_consume_batch_queue(s->q, 0, s->batch, BATCH_MAX);
        if (n <= 0)
            return EDDY_SOURCE_IDLE;
        s->n_batch = n;
        s->i_batch = 0;
        s->run = (struct partition_run){.rkt = NULL};
    }
    while (s->i_batch < s->n_batch) {
        int rc = handle_message(s, &s->run, s->batch[s->i_batch++], ev);
        if (rc)
            return rc;
    }
    end_batch(s);
    return EDDY_SOURCE_BATCH_END;
}

static const struct dead_letter *last_dead_letter(const struct eddy_source *src)
{
    return &((const struct source_kafka *)src)->dl;
}

static void watermarks(const struct eddy_source *src, int64_t *click, int64_t *ad)
{
    const struct source_kafka *s = (const struct source_kafka *)src;
    *click = watermark(s, s->cfg->topic_clicks);
    *ad = watermark(s, s->cfg->topic_ad_events);
}

/* Tells Kafka the offsets of a list (for lag monitoring only) and empties it. */
static void kafka_commit(struct source_kafka *s, rd_kafka_topic_partition_list_t **list)
{
    if ((*list)->cnt == 0)
        return;
    rd_kafka_resp_err_t e = rd_kafka_commit(s->consumer, *list, 1);
    if (e && e != RD_KAFKA_RESP_ERR__NO_OFFSET)
        log_warn("offset commit to Kafka failed: %s", rd_kafka_err2str(e));
    empty_list(list);
}

/* The offsets are in the state's pending batch already (end_run() put
 * them there as it went): a checkpoint adds the clocks. */
static void mark(struct eddy_source *src, struct eddy_state *st)
{
    save_clocks((struct source_kafka *)src, st);
}

/* Kafka hears of the offsets of the batch before this one (state_commit()
 * waited for that one's write), or, durable, of this one's too. */
static void committed(struct eddy_source *src, bool durable)
{
    struct source_kafka *s = (struct source_kafka *)src;
    kafka_commit(s, &s->writing);
    rd_kafka_topic_partition_list_t *t = s->writing;
    s->writing = s->to_commit;
    s->to_commit = t;
    if (durable)
        kafka_commit(s, &s->writing);
}

/* ---- rebalance ---------------------------------------------------------- */

static void on_assign(struct source_kafka *s, rd_kafka_t *rk,
                      rd_kafka_topic_partition_list_t *parts, bool incremental)
{
    for (int i = 0; i < parts->cnt; i++) {
        rd_kafka_topic_partition_t *p = &parts->elems[i];
        int64_t stored = state_offset_get(s->st, p->topic, p->partition);
        p->offset = start_offset(s, p->topic, p->partition);
        rd_kafka_topic_partition_list_add(s->assigned, p->topic, p->partition);
        log_info("assigned %s[%d] from %s %lld", p->topic, (int)p->partition,
                 stored >= 0 ? "stored offset" : "the beginning", (long long)p->offset);
    }
    rd_kafka_topic_partition_list_t *now = budgets_first(s, parts);
    if (incremental) {
        rd_kafka_error_t *e = rd_kafka_incremental_assign(rk, now);
        if (e) {
            log_error("incremental assign failed: %s", rd_kafka_error_string(e));
            rd_kafka_error_destroy(e);
        }
    } else {
        rd_kafka_assign(rk, now);
    }
    if (now != parts)
        rd_kafka_topic_partition_list_destroy(now);
}

static void on_revoke(struct source_kafka *s, rd_kafka_t *rk,
                      rd_kafka_topic_partition_list_t *parts, bool incremental)
{
    /* The next owner of a revoked partition may change its entries, so the
     * cached ones go (clean, right after the checkpoint). A revoke that
     * cannot checkpoint leaves them dirty: the runtime stops, and the new
     * owner reprocesses from the last checkpoint. */
    bool committed = s->hooks.checkpoint(s->hooks.ctx) == 0;
    /* A deferred partition was never handed to librdkafka: it is not
     * unassigned there. */
    rd_kafka_topic_partition_list_t *fetched = rd_kafka_topic_partition_list_new(parts->cnt);
    for (int i = 0; i < parts->cnt; i++) {
        const char *topic = parts->elems[i].topic;
        int32_t partition = parts->elems[i].partition;
        if (committed && !strcmp(topic, s->cfg->topic_clicks))
            state_drop_partition(s->st, partition);
        rd_kafka_topic_partition_list_del(s->assigned, topic, partition);
        rd_kafka_topic_partition_list_del(s->loading, topic, partition);
        if (!rd_kafka_topic_partition_list_del(s->deferred, topic, partition))
            rd_kafka_topic_partition_list_add(fetched, topic, partition);
        log_info("revoked %s[%d]", topic, (int)partition);
    }
    if (incremental) {
        rd_kafka_error_t *e = rd_kafka_incremental_unassign(rk, fetched);
        if (e)
            rd_kafka_error_destroy(e);
    } else {
        rd_kafka_assign(rk, NULL);
    }
    rd_kafka_topic_partition_list_destroy(fetched);
}

static void on_rebalance(rd_kafka_t *rk, rd_kafka_resp_err_t err,
                         rd_kafka_topic_partition_list_t *parts, void *opaque)
{
    struct source_kafka *s = opaque;
    if (err == RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS) {
        on_assign(s, rk, parts, cooperative(rk));
    } else if (err == RD_KAFKA_RESP_ERR__REVOKE_PARTITIONS) {
        on_revoke(s, rk, parts, cooperative(rk));
    } else {
        log_error("rebalance failed: %s", rd_kafka_err2str(err));
        on_revoke(s, rk, parts, cooperative(rk));
    }
}

/* ---- monitoring ----------------------------------------------------------- */

int64_t source_kafka_lag(struct source_kafka *s)
{
    rd_kafka_topic_partition_list_t *parts = rd_kafka_topic_partition_list_copy(s->assigned);
    rd_kafka_position(s->consumer, parts);
    int64_t lag = 0;
    for (int i = 0; i < parts->cnt; i++) {
        int64_t lo, hi;
        const rd_kafka_topic_partition_t *p = &parts->elems[i];
        if (rd_kafka_get_watermark_offsets(s->consumer, p->topic, p->partition, &lo, &hi) ||
            hi < 0) {
            lag = -1; /* not fetched yet: unknown, not zero */
            break;
        }
        /* Before the first fetch the position is unknown: use where we seek to. */
        int64_t pos = p->offset >= 0 ? p->offset : state_offset_get(s->st, p->topic, p->partition);
        if (pos < 0)
            pos = lo;
        if (hi > pos)
            lag += hi - pos;
    }
    rd_kafka_topic_partition_list_destroy(parts);
    return lag;
}

int source_kafka_assigned(const struct source_kafka *s)
{
    return s->assigned->cnt;
}

/* Statistics of the consumer arrive only while it is served, so a pause
 * changes nothing. */
static int on_stats(rd_kafka_t *rk, char *json, size_t len, void *opaque)
{
    (void)rk;
    struct source_kafka *s = opaque;
    struct kafka_stats k;
    kafka_stats_read(json, len, &k);
    s->hooks.stats(s->hooks.ctx, k.brokers_up, k.queued_bytes);
    return 0; /* librdkafka frees json */
}

/* ---- start and stop ----------------------------------------------------- */

static uint64_t ms_left(uint64_t deadline_ms)
{
    uint64_t now = monotonic_ms();
    return now < deadline_ms ? deadline_ms - now : 0;
}

/* The revoke this triggers arrives as an event on the queue served here
 * (other events, such as messages still fetched, are dropped: nothing more
 * is processed). A consumer that could not close in time (no broker) is
 * destroyed without closing when it is freed: the group then notices
 * its absence by the session timeout. */
void source_kafka_close(struct source_kafka *s, uint64_t deadline_ms)
{
    rd_kafka_queue_t *q = rd_kafka_queue_new(s->consumer);
    rd_kafka_error_t *e = rd_kafka_consumer_close_queue(s->consumer, q);
    if (e) {
        log_warn("consumer close: %s", rd_kafka_error_string(e));
        rd_kafka_error_destroy(e);
    } else {
        while (!rd_kafka_consumer_closed(s->consumer) && ms_left(deadline_ms) > 0) {
            uint64_t left = ms_left(deadline_ms);
            rd_kafka_event_t *ev = rd_kafka_queue_poll(q, (int)(left < 100 ? left : 100));
            if (ev && rd_kafka_event_type(ev) == RD_KAFKA_EVENT_REBALANCE)
                on_rebalance(s->consumer, rd_kafka_event_error(ev),
                             rd_kafka_event_topic_partition_list(ev), s);
            rd_kafka_event_destroy(ev); /* NULL is fine */
        }
        s->closed = rd_kafka_consumer_closed(s->consumer);
        if (!s->closed)
            log_warn("leaving the consumer group timed out after [kafka] "
                     "shutdown.timeout.ms = %lld ms", (long long)s->cfg->shutdown_timeout_ms);
    }
    rd_kafka_queue_destroy(q);
}

static int subscribe(struct source_kafka *s, char *err, size_t errlen)
{
    rd_kafka_topic_partition_list_t *topics = rd_kafka_topic_partition_list_new(IN_COUNT);
    for (int i = 0; i < IN_COUNT; i++)
        rd_kafka_topic_partition_list_add(topics, s->metrics->input_topic[i],
                                          RD_KAFKA_PARTITION_UA);
    rd_kafka_resp_err_t e = rd_kafka_subscribe(s->consumer, topics);
    rd_kafka_topic_partition_list_destroy(topics);
    if (e)
        return errf(err, errlen, "subscribe failed: %s", rd_kafka_err2str(e));
    if (pipe2(s->pipe, O_NONBLOCK | O_CLOEXEC))
        return errf(err, errlen, "pipe: %s", strerror(errno));
    rd_kafka_queue_io_event_enable(s->q, s->pipe[1], "1", 1);
    return 0;
}

static int start_consumer(struct source_kafka *s, char *err, size_t errlen)
{
    static const char *const defaults[][2] = {
        {"enable.auto.commit", "false"},      /* eddy commits after its state */
        {"enable.auto.offset.store", "false"},
        {"enable.partition.eof", "true"}, /* budgets first: on_partition_end() */
        /* Out-of-range offsets come to eddy as errors, never as a silent
         * jump: see on_offset_out_of_range(). */
        {"auto.offset.reset", "error"},
        {"statistics.interval.ms", "1000"}, /* broker reachability for /readyz */
        /* Bounded prefetch. librdkafka checks its limit per partition
         * fetch, against the one consumer queue: each of the 96 partitions
         * of a soak could add a 1 MB fetch past the 64 MB default, so a
         * catch-up held ~200 MB of input. Now at most 16 MB plus 128 KB a
         * partition, still a second or more of input at eddy's catch-up
         * rate (10,000 messages starved it). */
        {"queued.max.messages.kbytes", "16384"},
        {"fetch.message.max.bytes", "131072"},
    };
    rd_kafka_conf_t *conf =
        kafka_conf_new(s->cfg, defaults, sizeof defaults / sizeof defaults[0], err, errlen);
    if (!conf || kafka_conf_set(conf, "group.id", s->cfg->group_id, err, errlen)) {
        if (conf)
            rd_kafka_conf_destroy(conf);
        return -1;
    }
    rd_kafka_conf_set_rebalance_cb(conf, on_rebalance);
    rd_kafka_conf_set_stats_cb(conf, on_stats);
    rd_kafka_conf_set_opaque(conf, s);
    s->consumer = rd_kafka_new(RD_KAFKA_CONSUMER, conf, err, errlen);
    if (!s->consumer) {
        rd_kafka_conf_destroy(conf);
        return -1;
    }
    rd_kafka_poll_set_consumer(s->consumer);
    s->q = rd_kafka_queue_get_consumer(s->consumer);
    return subscribe(s, err, errlen);
}

static void source_free(struct eddy_source *src);
static const struct eddy_source_ops kafka_ops;

int source_kafka_open(const struct eddy_config *cfg, struct eddy_state *st,
                      struct eddy_metrics *metrics, const struct source_kafka_hooks *hooks,
                      struct source_kafka **out, char *err, size_t errlen)
{
    struct source_kafka *s = calloc(1, sizeof *s);
    *out = NULL;
    if (!s)
        return errf(err, errlen, "out of memory");
    *s = (struct source_kafka){.base.ops = &kafka_ops, .cfg = cfg, .st = st, .metrics = metrics,
                               .hooks = *hooks,
                               .pipe = {-1, -1},
                               .assigned = rd_kafka_topic_partition_list_new(16),
                               .to_commit = rd_kafka_topic_partition_list_new(16),
                               .writing = rd_kafka_topic_partition_list_new(16),
                               .gaps = rd_kafka_topic_partition_list_new(4),
                               .loading = rd_kafka_topic_partition_list_new(4),
                               .deferred = rd_kafka_topic_partition_list_new(16)};
    struct codec_options co = {
        .writers_dir = cfg->writers_dir[0] ? cfg->writers_dir : NULL,
        .registry_url = cfg->registry_url[0] ? cfg->registry_url : NULL,
    };
    if (restore_clocks(s, err, errlen) || codec_new(&co, &s->codec, err, errlen) ||
        start_consumer(s, err, errlen)) {
        source_free(&s->base);
        return -1;
    }
    *out = s;
    return 0;
}

/* ---- as a source ---------------------------------------------------------- */

static int events_fd(const struct eddy_source *src)
{
    return ((const struct source_kafka *)src)->pipe[0];
}

/* No end, so no fraction read. */
static double done(const struct eddy_source *src, uint64_t resumed_at)
{
    (void)src, (void)resumed_at;
    return -1;
}

static void describe(const struct eddy_source *src, char *buf, size_t len)
{
    const struct source_kafka *s = (const struct source_kafka *)src;
    snprintf(buf, len, "the input topics, live, as group %s", s->cfg->group_id);
}

static void source_free(struct eddy_source *src)
{
    struct source_kafka *s = (struct source_kafka *)src;
    if (!s)
        return;
    for (ssize_t i = 0; i < s->n_batch; i++)
        rd_kafka_message_destroy(s->batch[i]);
    if (s->consumer) {
        if (s->q)
            rd_kafka_queue_destroy(s->q);
        rd_kafka_destroy_flags(s->consumer, s->closed ? 0 : RD_KAFKA_DESTROY_F_NO_CONSUMER_CLOSE);
    }
    for (int i = 0; i < 2; i++)
        if (s->pipe[i] >= 0)
            close(s->pipe[i]);
    codec_free(s->codec);
    rd_kafka_topic_partition_list_destroy(s->assigned);
    rd_kafka_topic_partition_list_destroy(s->to_commit);
    rd_kafka_topic_partition_list_destroy(s->writing);
    rd_kafka_topic_partition_list_destroy(s->gaps);
    rd_kafka_topic_partition_list_destroy(s->loading);
    rd_kafka_topic_partition_list_destroy(s->deferred);
    free(s->clocks);
    free(s);
}

static const struct eddy_source_ops kafka_ops = {
    .next = next, .done = done, .describe = describe, .free = source_free,
    .events_fd = events_fd, .dead_letter = last_dead_letter, .watermarks = watermarks,
    .mark = mark, .committed = committed,
};

struct eddy_source *source_kafka_source(struct source_kafka *s)
{
    return &s->base;
}
