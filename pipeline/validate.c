#include "pipeline/validate.h"

#include <math.h>

static const char *click_invalid(const struct click_event *e)
{
    if (!e->user_id.len)
        return "empty user_id";
    if (!e->item_id.len)
        return "empty item_id";
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
