/* source_head.c: see source_head.h. */
#include "pipeline/source/source_head.h"

#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pipeline/run/log.h"

struct headsource {
    struct eddy_source base;
    struct eddy_source *inner;
    uint64_t limit, taken;
};

static int next(struct eddy_source *s, struct eddy_event *ev, char *err, size_t errlen)
{
    struct headsource *h = (struct headsource *)s;
    if (h->taken >= h->limit)
        return EDDY_SOURCE_END; /* the rest is never read */
    int rc = h->inner->ops->next(h->inner, ev, err, errlen);
    if (rc == EDDY_SOURCE_RECORD)
        h->taken++;
    return rc;
}

static double done(const struct eddy_source *s, uint64_t resumed_at)
{
    (void)resumed_at;
    const struct headsource *h = (const struct headsource *)s;
    return (double)h->taken / (double)h->limit;
}

static void describe(const struct eddy_source *s, char *buf, size_t len)
{
    const struct headsource *h = (const struct headsource *)s;
    h->inner->ops->describe(h->inner, buf, len);
    size_t used = strlen(buf);
    if (used < len)
        snprintf(buf + used, len - used, ", first %" PRIu64 " events", h->limit);
}

static void head_free(struct eddy_source *s)
{
    struct headsource *h = (struct headsource *)s;
    h->inner->ops->free(h->inner);
    free(h);
}

static const struct eddy_source_ops head_ops = {.next = next, .done = done, .describe = describe,
                                                .free = head_free};

struct eddy_source *headsource_wrap(struct eddy_source *inner, uint64_t n)
{
    struct headsource *h = calloc(1, sizeof *h);
    if (!h) {
        inner->ops->free(inner);
        return NULL;
    }
    *h = (struct headsource){.base.ops = &head_ops, .inner = inner, .limit = n ? n : 1};
    return &h->base;
}

int source_count(struct eddy_source *s, uint64_t *n, char *err, size_t errlen)
{
    struct eddy_event ev;
    int rc;
    *n = 0;
    while ((rc = s->ops->next(s, &ev, err, errlen)) == EDDY_SOURCE_RECORD)
        (*n)++;
    if (rc == EDDY_SOURCE_END)
        return 0;
    return rc < 0 ? -1 : errf(err, errlen, "the source has no end: its records cannot be counted");
}

uint64_t head_of_percent(uint64_t total, double pct)
{
    /* 20% of 1000 is 200 however 0.2 rounds in binary: a hair up first. */
    long double n = floorl((long double)total * (long double)pct / 100.0L + 1e-9L);
    return n >= (long double)total ? total : (uint64_t)n;
}
