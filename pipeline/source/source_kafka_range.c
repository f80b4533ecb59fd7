#include "pipeline/source/source_kafka_range.h"

#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "pipeline/codec/codec.h"
#include "pipeline/kafka/kafka.h"
#include "pipeline/run/log.h"
#include "pipeline/source/merge.h"

#define TIMEOUT_MS 10000
#define STALL_MS 30000 /* no message for this long inside the range: give up */

struct part {
    const char *topic;
    enum eddy_record_type type;
    int32_t partition;
    int64_t begin, end;          /* [begin, end) */
    int64_t from_ms, to_ms;      /* time bounds, checked on message timestamps too */
    bool from_reached;
    rd_kafka_queue_t *q;
    rd_kafka_message_t *head;    /* decoded into ev */
    rd_kafka_message_t **early;  /* fetched before its queue was split off */
    size_t n_early, next_early;
    struct eddy_event ev;
    struct eddy_codec *codec;    /* one each: ev borrows from it */
    bool done;
};

struct kafkasource {
    struct eddy_source base;
    const char *from, *to;       /* as given, for describe() */
    rd_kafka_t *rk;
    struct part *p;
    size_t n;
    ssize_t last;                /* the part whose head was handed out */
    uint64_t size, skipped;
    uint64_t taken;              /* messages handed out */
};

/* ---- bounds ----------------------------------------------------------------- */

/* A time bound: ms since the epoch, or UTC YYYY-MM-DDTHH:MM:SSZ. */
static bool parse_time(const char *s, int64_t *ms)
{
    char *end;
    long long v = strtoll(s, &end, 10);
    if (*s && !*end && v >= 0) {
        *ms = v;
        return true;
    }
    struct tm tm = {0};
    end = strptime(s, "%Y-%m-%dT%H:%M:%SZ", &tm);
    if (!end || *end)
        return false;
    *ms = (int64_t)timegm(&tm) * 1000;
    return true;
}

/* The offset an offsets bound gives this partition: 1 set, 0 not named,
 * -1 malformed. */
static int offset_for(const char *spec, const struct part *p, int64_t *off)
{
    char *copy = strdup(spec), *save = NULL;
    int rc = 0;
    for (char *tok = strtok_r(copy, ",", &save); tok && rc >= 0; tok = strtok_r(NULL, ",", &save)) {
        char *eq = strchr(tok, '='), *colon = strchr(tok, ':'), *end;
        if (!eq) {
            rc = -1;
            break;
        }
        *eq = '\0';
        long long v = strtoll(eq + 1, &end, 10);
        long part = -1;
        if (colon && colon < eq) {
            *colon = '\0';
            part = strtol(colon + 1, &end, 10);
        }
        if (*end || v < 0) {
            rc = -1;
            break;
        }
        if (!strcmp(tok, p->topic) && (part < 0 || part == p->partition)) {
            *off = v;
            rc = 1;
        }
    }
    free(copy);
    return rc;
}

/* Resolves one bound for every partition: a time with offsetsForTimes,
 * offsets from the spec, else the default already in place. */
static int resolve(struct kafkasource *s, const char *spec, bool is_end, char *err, size_t errlen)
{
    int64_t ms;
    if (!spec)
        return 0;
    if (!parse_time(spec, &ms)) {
        for (size_t i = 0; i < s->n; i++) {
            struct part *p = &s->p[i];
            int64_t off = 0;
            int named = offset_for(spec, p, &off);
            if (named < 0)
                return errf(err, errlen, "%s \"%s\": want a time (ms or "
                            "YYYY-MM-DDTHH:MM:SSZ) or topic[:partition]=offset,...",
                            is_end ? "--to" : "--from", spec);
            /* Within the partition's watermarks: no waiting for offsets that
             * do not exist yet, nor for ones already deleted. */
            if (named && is_end)
                p->end = off < p->end ? off : p->end;
            else if (named)
                p->begin = off > p->end ? p->end : off > p->begin ? off : p->begin;
        }
        return 0;
    }
    for (size_t i = 0; i < s->n; i++)
        *(is_end ? &s->p[i].to_ms : &s->p[i].from_ms) = ms;
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new((int)s->n);
    for (size_t i = 0; i < s->n; i++)
        rd_kafka_topic_partition_list_add(l, s->p[i].topic, s->p[i].partition)->offset = ms;
    rd_kafka_resp_err_t e = rd_kafka_offsets_for_times(s->rk, l, TIMEOUT_MS);
    for (size_t i = 0; !e && i < s->n; i++) {
        int64_t off = l->elems[i].offset;
        int64_t *b = is_end ? &s->p[i].end : &s->p[i].begin;
        if (l->elems[i].err)
            e = l->elems[i].err;
        else if (off >= 0) /* -1: none at or after the time, or a broker that */
            *b = off;      /* cannot say (the mock): the timestamps decide */
    }
    rd_kafka_topic_partition_list_destroy(l);
    return e ? errf(err, errlen, "offsetsForTimes: %s", rd_kafka_err2str(e)) : 0;
}

/* ---- set-up ------------------------------------------------------------------- */

static int add_topic(struct kafkasource *s, const rd_kafka_metadata_t *md, const char *topic,
                     enum eddy_record_type type, char *err, size_t errlen)
{
    for (int t = 0; t < md->topic_cnt; t++) {
        const rd_kafka_metadata_topic_t *mt = &md->topics[t];
        if (strcmp(mt->topic, topic))
            continue;
        if (mt->err)
            return errf(err, errlen, "topic %s: %s", topic, rd_kafka_err2str(mt->err));
        for (int i = 0; i < mt->partition_cnt; i++) {
            struct part *p = realloc(s->p, (s->n + 1) * sizeof *p);
            if (!p)
                return errf(err, errlen, "out of memory");
            s->p = p;
            p = &s->p[s->n++];
            *p = (struct part){.topic = topic, .type = type, .partition = mt->partitions[i].id,
                               .from_ms = -1, .to_ms = INT64_MAX};
            rd_kafka_resp_err_t e = rd_kafka_query_watermark_offsets(
                s->rk, topic, p->partition, &p->begin, &p->end, TIMEOUT_MS);
            if (e)
                return errf(err, errlen, "%s[%d]: %s", topic, p->partition, rd_kafka_err2str(e));
        }
        return 0;
    }
    return errf(err, errlen, "topic %s does not exist", topic);
}

static void keep_early(struct kafkasource *s, rd_kafka_message_t *m)
{
    for (size_t i = 0; i < s->n && m->rkt; i++) {
        struct part *p = &s->p[i];
        if (p->partition != m->partition || strcmp(p->topic, rd_kafka_topic_name(m->rkt)))
            continue;
        rd_kafka_message_t **e = realloc(p->early, (p->n_early + 1) * sizeof *e);
        if (e) {
            p->early = e;
            p->early[p->n_early++] = m;
            return;
        }
        break;
    }
    /* Not ours (an error event) or out of memory: the stall check in fill()
     * reports a partition that then misses messages. */
    rd_kafka_message_destroy(m);
}

static int start_partitions(struct kafkasource *s, char *err, size_t errlen)
{
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new((int)s->n);
    struct codec_options co = {0};
    for (size_t i = 0; i < s->n; i++) {
        struct part *p = &s->p[i];
        if (p->begin >= p->end) {
            p->done = true;
            continue;
        }
        s->size += (uint64_t)(p->end - p->begin);
        rd_kafka_topic_partition_list_add(l, p->topic, p->partition)->offset = p->begin;
        if (codec_new(&co, &p->codec, err, errlen)) {
            rd_kafka_topic_partition_list_destroy(l);
            return -1;
        }
    }
    rd_kafka_resp_err_t e = rd_kafka_assign(s->rk, l);
    rd_kafka_topic_partition_list_destroy(l);
    if (e)
        return errf(err, errlen, "assign: %s", rd_kafka_err2str(e));
    for (size_t i = 0; i < s->n; i++)
        if (!s->p[i].done) {
            /* Each partition read on its own, for the merge. */
            s->p[i].q = rd_kafka_queue_get_partition(s->rk, s->p[i].topic, s->p[i].partition);
            rd_kafka_queue_forward(s->p[i].q, NULL);
        }
    /* A fetch that landed between assign() and the split went to the
     * consumer queue: those are the first messages of their partitions. */
    rd_kafka_message_t *m;
    while ((m = rd_kafka_consumer_poll(s->rk, 0)))
        keep_early(s, m);
    return 0;
}

static void source_free(struct eddy_source *src);
static const struct eddy_source_ops range_ops;

int kafkasource_open(const struct eddy_config *cfg, const char *from, const char *to,
                     struct eddy_source **out, char *err, size_t errlen)
{
    static const char *const defaults[][2] = {
        {"enable.auto.commit", "false"}, {"enable.partition.eof", "false"},
        {"group.id", "eddy-replay"}, /* never joined: partitions are assigned */
    };
    struct kafkasource *s = calloc(1, sizeof *s);
    *out = NULL;
    if (!s)
        return errf(err, errlen, "out of memory");
    *s = (struct kafkasource){.base.ops = &range_ops, .from = from, .to = to, .last = -1};
    rd_kafka_conf_t *conf = kafka_conf_new(cfg, defaults, 3, err, errlen);
    if (conf && !(s->rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, err, errlen)))
        rd_kafka_conf_destroy(conf);
    const rd_kafka_metadata_t *md = NULL;
    rd_kafka_resp_err_t e = s->rk ? rd_kafka_metadata(s->rk, 1, NULL, &md, TIMEOUT_MS)
                                  : RD_KAFKA_RESP_ERR__FAIL;
    int rc = !s->rk ? -1 : e ? errf(err, errlen, "metadata: %s", rd_kafka_err2str(e)) : 0;
    if (!rc)
        rc = add_topic(s, md, cfg->topic_campaigns, REC_CAMPAIGN, err, errlen) ||
             add_topic(s, md, cfg->topic_clicks, REC_CLICK, err, errlen) ||
             add_topic(s, md, cfg->topic_ad_events, REC_AD, err, errlen);
    if (md)
        rd_kafka_metadata_destroy(md);
    if (!rc)
        rc = resolve(s, from, false, err, errlen) || resolve(s, to, true, err, errlen) ||
             start_partitions(s, err, errlen);
    if (rc) {
        source_free(&s->base);
        return -1;
    }
    *out = &s->base;
    return 0;
}

/* ---- reading ------------------------------------------------------------------ */

/* Fills p->head with the partition's next decodable message in range. */
static int fill(struct kafkasource *s, struct part *p, char *err, size_t errlen)
{
    int waited = 0;
    while (!p->head && !p->done) {
        rd_kafka_message_t *m = p->next_early < p->n_early ? p->early[p->next_early++]
                                                           : rd_kafka_consume_queue(p->q, 1000);
        if (!m) {
            if ((waited += 1000) >= STALL_MS)
                return errf(err, errlen, "%s[%d]: no message for %d s before the end of the "
                            "range (offset %" PRId64 ")", p->topic, p->partition, STALL_MS / 1000,
                            p->end);
            continue;
        }
        char why[256];
        if (m->err) {
            int rc = errf(err, errlen, "%s[%d]: %s", p->topic, p->partition,
                          rd_kafka_message_errstr(m));
            rd_kafka_message_destroy(m);
            return rc;
        }
        int64_t ts = rd_kafka_message_timestamp(m, NULL);
        if (m->offset >= p->end || (ts >= 0 && ts >= p->to_ms)) {
            p->done = true;
            rd_kafka_message_destroy(m);
        } else if (!p->from_reached && ts >= 0 && ts < p->from_ms) {
            p->done = m->offset + 1 >= p->end; /* before the range */
            rd_kafka_message_destroy(m);
        } else if (codec_decode(p->codec, p->type, m->payload, m->len, &p->ev, why, sizeof why)) {
            s->skipped++;
            log_warn("%s[%d] offset %" PRId64 ": skipped: %s", p->topic, p->partition, m->offset,
                     why);
            p->done = m->offset + 1 >= p->end;
            rd_kafka_message_destroy(m);
        } else {
            p->from_reached = true;
            p->ev.partition = p->partition;
            p->head = m;
        }
    }
    return 0;
}

static const struct eddy_event *part_head(const void *parts, size_t i)
{
    const struct part *p = (const struct part *)parts + i;
    return p->head ? &p->ev : NULL;
}

static int next(struct eddy_source *src, struct eddy_event *ev, char *err, size_t errlen)
{
    struct kafkasource *s = (struct kafkasource *)src;
    if (s->last >= 0) {
        struct part *p = &s->p[s->last];
        p->done = p->head->offset + 1 >= p->end;
        rd_kafka_message_destroy(p->head);
        p->head = NULL;
        s->last = -1;
    }
    for (size_t i = 0; i < s->n; i++)
        if (fill(s, &s->p[i], err, errlen))
            return -1;
    s->last = merge_next(s->p, s->n, part_head, ev);
    s->taken += s->last >= 0;
    return s->last >= 0;
}

/* The range is fixed when opened, so its size is known. */
static double done(const struct eddy_source *src, uint64_t resumed_at)
{
    const struct kafkasource *s = (const struct kafkasource *)src;
    return s->size > resumed_at
               ? (double)(s->taken - resumed_at) / (double)(s->size - resumed_at)
               : -1;
}

static void describe(const struct eddy_source *src, char *buf, size_t len)
{
    const struct kafkasource *s = (const struct kafkasource *)src;
    snprintf(buf, len, "the input topics, from %s to %s (%" PRIu64 " undecodable records skipped)",
             s->from ? s->from : "the start", s->to ? s->to : "the end", s->skipped);
}

static void source_free(struct eddy_source *src)
{
    struct kafkasource *s = (struct kafkasource *)src;
    if (!s)
        return;
    for (size_t i = 0; i < s->n; i++) {
        if (s->p[i].head)
            rd_kafka_message_destroy(s->p[i].head);
        if (s->p[i].q)
            rd_kafka_queue_destroy(s->p[i].q);
        for (size_t j = s->p[i].next_early; j < s->p[i].n_early; j++)
            rd_kafka_message_destroy(s->p[i].early[j]);
        free(s->p[i].early);
        codec_free(s->p[i].codec);
    }
    if (s->rk) {
        rd_kafka_assign(s->rk, NULL);
        rd_kafka_destroy(s->rk);
    }
    free(s->p);
    free(s);
}

static const struct eddy_source_ops range_ops = {.next = next, .done = done, .describe = describe,
                                                 .free = source_free};
