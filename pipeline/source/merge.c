#include "pipeline/source/merge.h"

ssize_t merge_next(const void *inputs, size_t n, merge_head_fn *head, struct eddy_event *ev)
{
    ssize_t best = -1;
    const struct eddy_event *best_ev = NULL;
    for (size_t i = 0; i < n; i++) {
        const struct eddy_event *h = head(inputs, i);
        /* Strictly earlier: on a tie the input listed first keeps its place. */
        if (h && (!best_ev || eddy_event_time(h) < eddy_event_time(best_ev))) {
            best = (ssize_t)i;
            best_ev = h;
        }
    }
    if (best_ev)
        *ev = *best_ev;
    return best;
}
