#include "pipeline/codec/validate.h"

#include <math.h>

static const char nul_byte[] = "NUL byte";

const char *utf8_invalid(const char *s, size_t len)
{
    if (!len)
        return NULL; /* s may be NULL (an absent optional field) */
    const unsigned char *p = (const unsigned char *)s, *end = p + len;

    while (p < end) {
        unsigned char b = *p++;
        if (b >= 0x01 && b <= 0x7f)
            continue; /* ASCII: the common case, first */
        if (b == 0)
            return nul_byte;
        if (b < 0xc0)
            return "unexpected continuation byte";
        /* The first continuation byte's range depends on the lead byte
         * (Unicode Table 3-7); it is what rules out overlongs, surrogates and
         * code points past U+10FFFF. */
        unsigned char lo = 0x80, hi = 0xbf;
        const char *below = NULL, *above = NULL;
        int n;
        if (b < 0xc2)
            return "overlong encoding"; /* C0, C1: U+0000..U+007F in two bytes */
        else if (b < 0xe0)
            n = 1;
        else if (b < 0xf0) {
            n = 2;
            if (b == 0xe0)
                lo = 0xa0, below = "overlong encoding";
            else if (b == 0xed)
                hi = 0x9f, above = "UTF-16 surrogate";
        } else if (b < 0xf5) {
            n = 3;
            if (b == 0xf0)
                lo = 0x90, below = "overlong encoding";
            else if (b == 0xf4)
                hi = 0x8f, above = "code point above U+10FFFF";
        } else {
            return b < 0xf8 ? "code point above U+10FFFF" : "invalid byte";
        }
        for (int k = 0; k < n; k++, p++) {
            if (p == end || *p < 0x80 || *p > 0xbf)
                return "truncated sequence";
            if (k == 0 && *p < lo)
                return below;
            if (k == 0 && *p > hi)
                return above;
        }
    }
    return NULL;
}

/* A string field's reason, built from the field's name at compile time so
 * event_invalid() can keep returning static text (no buffer to share). */
#define STR_CHECK(s, name)                                                     \
    do {                                                                       \
        const char *why_ = utf8_invalid((s).ptr, (s).len);                    \
        if (why_)                                                              \
            return why_ == nul_byte ? name " contains a NUL byte"              \
                                    : name " is not valid UTF-8";              \
    } while (0)

static const char *click_invalid(const struct click_event *e)
{
    if (!e->user_id.len)
        return "empty user_id";
    if (!e->item_id.len)
        return "empty item_id";
    STR_CHECK(e->user_id, "user_id");
    STR_CHECK(e->item_id, "item_id");
    STR_CHECK(e->session_id, "session_id"); /* len 0 when null */
    if (e->timestamp_ms < 0)
        return "negative timestamp";
    return NULL;
}

static const char *ad_invalid(const struct ad_event *e)
{
    if (!e->campaign_id.len)
        return "empty campaign_id";
    if (e->user_id.ptr && !e->user_id.len)
        return "empty user_id";
    STR_CHECK(e->campaign_id, "campaign_id");
    STR_CHECK(e->user_id, "user_id");
    if (e->timestamp_ms < 0)
        return "negative timestamp";
    if (e->has_pctr && !isfinite(e->pctr))
        return "non-finite pctr";
    if (e->has_pctr && (e->pctr < 0 || e->pctr > 1))
        return "pctr outside [0,1]";
    if (e->has_value && !isfinite(e->value))
        return "non-finite value";
    if (e->has_market_price && e->market_price_micros < 0)
        return "negative market_price_micros";
    if (e->has_cost && e->cost_micros < 0)
        return "negative cost_micros";
    return NULL;
}

static const char *campaign_invalid(const struct campaign_budget *e)
{
    if (!e->campaign_id.len)
        return "empty campaign_id";
    STR_CHECK(e->campaign_id, "campaign_id");
    if (e->budget_micros < 0)
        return "negative budget_micros";
    if (e->period_ms <= 0)
        return "non-positive period_ms";
    if (e->base_bid_micros < 0)
        return "negative base_bid_micros";
    return NULL;
}

const char *event_invalid(const struct eddy_event *ev)
{
    switch (ev->kind) {
    case EV_CLICK: return click_invalid(&ev->u.click);
    case EV_AD: return ad_invalid(&ev->u.ad);
    default: return campaign_invalid(&ev->u.campaign);
    }
}
