/* driver.c: see driver.h. */
#include "pipeline/run/driver.h"

#include <inttypes.h>
#include <stdio.h>

#include "pipeline/run/log.h"
#include "state/state.h"

#define POSITION_TOPIC "replay" /* driver_run()'s position, as an offset in the state */

/* ---- the core -------------------------------------------------------------- */

static void emit(struct driver *d, enum eddy_record_type type, struct eddy_str key,
                 const void *record)
{
    if (d->sink->ops->write(d->sink, type, key, record))
        d->failed = true;
}

static void on_recommendation(void *ctx, const struct recommendation *rec)
{
    struct driver *d = ctx;
    if (d->hooks.recommendation)
        d->hooks.recommendation(d->hooks.ctx, rec);
    emit(d, REC_RECOMMENDATION, rec->user_id, rec);
}

static void on_decision(void *ctx, const struct budget_decision *dec)
{
    struct driver *d = ctx;
    if (d->hooks.decision)
        d->hooks.decision(d->hooks.ctx, dec);
    emit(d, REC_DECISION, dec->campaign_id, dec);
}

static void on_rejected(void *ctx, const char *op, const char *reason)
{
    struct driver *d = ctx;
    d->rejected++;
    if (d->hooks.rejected)
        d->hooks.rejected(d->hooks.ctx, op, reason);
    else
        log_warn("%s rejected a record: %s", op, reason);
}

int driver_open(struct driver *d, const struct eddy_config *cfg, struct eddy_state *st,
                struct eddy_sink *sink, const struct driver_hooks *hooks, char *err,
                size_t errlen)
{
    *d = (struct driver){.st = st, .sink = sink, .hooks = *hooks, .wm_click = INT64_MIN,
                         .wm_ad = INT64_MIN, .first_ms = INT64_MIN, .last_ms = INT64_MIN};
    d->position = d->resumed_at = driver_stored_position(st);
    d->emit = (struct eddy_emit){on_recommendation, on_decision, on_rejected, d};
    return chain_create(&d->ops, cfg, st, &d->emit, err, errlen);
}

void driver_process(struct driver *d, const struct eddy_event *ev)
{
    if (d->hooks.process)
        d->hooks.process(d->hooks.ctx, &d->ops, ev);
    else
        chain_process(&d->ops, ev);
}

int driver_commit(struct driver *d, struct eddy_source *source, enum driver_commit_mode mode,
                  char *err, size_t errlen)
{
    if (source->ops->mark)
        source->ops->mark(source, d->st);
    else
        state_offset_set(d->st, POSITION_TOPIC, 0, (int64_t)d->position);
    chain_checkpoint(&d->ops);
    if (d->sink->ops->mark)
        d->sink->ops->mark(d->sink, d->st);
    if (mode == COMMIT_SLICED ? state_commit_begin(d->st, err, errlen)
                              : state_commit(d->st, err, errlen) ||
                                    (mode == COMMIT_DURABLE && state_sync(d->st, err, errlen)))
        return -1;
    if (source->ops->committed)
        source->ops->committed(source, mode == COMMIT_DURABLE);
    d->since_checkpoint = 0;
    return 0;
}

void driver_close(struct driver *d)
{
    chain_destroy(&d->ops);
}

/* ---- taking from a source ----------------------------------------------- */

uint64_t driver_stored_position(struct eddy_state *st)
{
    int64_t pos = state_offset_get(st, POSITION_TOPIC, 0);
    return pos > 0 ? (uint64_t)pos : 0;
}

/* Runs one record through the chain. The driver's own watermarks move per
 * record: a source without a watermarks op hands records out in event-time
 * order. */
static void run_event(struct driver *d, const struct eddy_event *ev)
{
    driver_process(d, ev);
    int64_t t = eddy_event_time(ev);
    if (ev->kind == EV_CLICK && t > d->wm_click)
        d->wm_click = t;
    if (ev->kind == EV_AD && t > d->wm_ad)
        d->wm_ad = t;
    if (t != INT64_MIN) {
        if (d->first_ms == INT64_MIN)
            d->first_ms = t;
        d->last_ms = t;
    }
    d->by_kind[ev->kind]++;
}

static void dead_letter(struct driver *d, const struct eddy_source *source)
{
    const struct dead_letter *dl = source->ops->dead_letter(source);
    if (d->hooks.dead_letter)
        d->hooks.dead_letter(d->hooks.ctx, dl);
    else
        log_warn("%s[%d] offset %lld: dropped: %s", dl->topic, (int)dl->partition,
                 (long long)dl->offset, dl->reason);
}

int driver_batch(struct driver *d, struct eddy_source *source, char *err, size_t errlen)
{
    struct eddy_event ev;
    for (;;) {
        int rc = source->ops->next(source, &ev, err, errlen);
        if (rc == EDDY_SOURCE_RECORD) {
            run_event(d, &ev);
            d->position++;
            d->since_checkpoint++;
            if (source->ops->watermarks)
                continue; /* flushed at the end of the batch */
            chain_flush(&d->ops, d->wm_click, d->wm_ad);
            return EDDY_SOURCE_BATCH_END;
        }
        if (rc == EDDY_SOURCE_DEAD_LETTER) {
            dead_letter(d, source);
            d->since_checkpoint++;
            continue;
        }
        if (rc == EDDY_SOURCE_BATCH_END) {
            int64_t click = d->wm_click, ad = d->wm_ad;
            if (source->ops->watermarks)
                source->ops->watermarks(source, &click, &ad);
            chain_flush(&d->ops, click, ad);
        }
        return rc; /* BATCH_END, END, IDLE or ERROR */
    }
}

static int checkpoint(struct driver *d, struct eddy_source *source, bool durable)
{
    char err[512];
    if (d->sink->ops->barrier(d->sink, SINK_WAIT_FOREVER))
        return -1;
    if (driver_commit(d, source, durable ? COMMIT_DURABLE : COMMIT_BEHIND, err, sizeof err)) {
        log_error("state commit failed: %s", err);
        return -1;
    }
    return 0;
}

/* Resuming: the records up to the stored position were run before. */
static int skip_to_position(struct driver *d, struct eddy_source *source, char *err,
                            size_t errlen)
{
    struct eddy_event ev;
    for (uint64_t i = 0; i < d->position; i++) {
        int rc = source->ops->next(source, &ev, err, errlen);
        if (rc != EDDY_SOURCE_RECORD)
            return rc < 0 ? -1 : errf(err, errlen, "the log has fewer events (%" PRIu64 ") than "
                                      "the state's replay position (%" PRIu64 "): another log?",
                                      i, d->position);
    }
    return 0;
}

int driver_run(struct driver *d, struct eddy_source *source, uint64_t checkpoint_events,
               char *err, size_t errlen)
{
    int rc;
    if (skip_to_position(d, source, err, errlen))
        return -1;
    while ((rc = driver_batch(d, source, err, errlen)) == EDDY_SOURCE_BATCH_END) {
        if (d->failed)
            return errf(err, errlen, "output failed (see above)");
        if (d->since_checkpoint >= checkpoint_events || state_commit_due(d->st))
            if (checkpoint(d, source, false))
                return errf(err, errlen, "checkpoint failed");
        if ((d->position & 1023) == 0 && d->hooks.progress)
            d->hooks.progress(d->hooks.ctx);
    }
    if (rc < 0)
        return -1;
    if (rc != EDDY_SOURCE_END)
        return errf(err, errlen, "the source has no end: it is for an event loop");
    return checkpoint(d, source, true) ? errf(err, errlen, "checkpoint failed") : 0;
}
