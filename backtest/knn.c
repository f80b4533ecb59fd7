/* knn.c: see knn.h.
 *
 * Each item keeps its co-occurrence counts as a dense array of (item, count)
 * pairs in first-seen order, with an open-addressing index over it (slot =
 * pair position + 1, 0 empty, load under 1/2): an update is O(1), and a
 * score walks the contiguous pairs of the user's last KNN_HISTORY items,
 * which is what makes it exact without a neighbour cap and still fast.
 * Scores accumulate in one dense array indexed by item, reset through the
 * list of touched items, so a list costs what the walked pairs hold, not
 * the catalog. The sum is taken as sum_i c[i][j] / sqrt(n[i]), divided by
 * sqrt(n[j]) once per touched item: the same cosine with one division in
 * the inner loop. The seen-check (a hash lookup in the caller) runs only
 * for items that would enter the list. */
#include "backtest/knn.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "backtest/grow.h"

struct pair {
    uint32_t item, count;
};

struct cooc {
    struct pair *pairs;         /* first-seen order */
    uint32_t n, cap_pairs;
    uint32_t *slots;            /* position in pairs + 1; 0 is empty */
    uint32_t cap;               /* of slots, a power of two */
};

struct kitem {
    uint64_t n;                 /* positives */
    struct cooc c;
};

struct kuser {
    uint32_t hist[KNN_HISTORY]; /* most recent first, distinct */
    uint32_t len;
    uint64_t positives;
};

struct knn {
    struct kitem *items;
    size_t cap_items;
    struct kuser *users;
    size_t cap_users;
    double *score;              /* by item; 0 = untouched (scores are > 0) */
    uint32_t *touched;
    size_t n_touched, cap_touched;
};

struct knn *knn_new(void)
{
    return calloc(1, sizeof(struct knn));
}

void knn_free(struct knn *k)
{
    if (!k)
        return;
    for (size_t i = 0; i < k->cap_items; i++) {
        free(k->items[i].c.pairs);
        free(k->items[i].c.slots);
    }
    free(k->items);
    free(k->users);
    free(k->score);
    free(k->touched);
    free(k);
}

static uint32_t slot_of(uint32_t key, uint32_t cap)
{
    return (key * 0x9e3779b1u) & (cap - 1);
}

/* The slot holding item's position, or the empty one where it goes. */
static uint32_t *slot_for(const struct cooc *c, uint32_t item)
{
    uint32_t s = slot_of(item, c->cap);
    while (c->slots[s] && c->pairs[c->slots[s] - 1].item != item)
        s = (s + 1) & (c->cap - 1);
    return &c->slots[s];
}

static bool cooc_rehash(struct cooc *c)
{
    uint32_t cap = c->cap ? 2 * c->cap : 8;
    uint32_t *slots = calloc(cap, sizeof *slots);
    struct pair *pairs = realloc(c->pairs, cap / 2 * sizeof *pairs);
    if (!slots || !pairs) {
        free(slots);
        if (pairs)
            c->pairs = pairs;
        return false;
    }
    free(c->slots);
    *c = (struct cooc){pairs, c->n, cap / 2, slots, cap};
    for (uint32_t p = 0; p < c->n; p++)
        *slot_for(c, c->pairs[p].item) = p + 1;
    return true;
}

static bool cooc_inc(struct cooc *c, uint32_t item)
{
    /* pairs hold cap / 2 entries: the load of slots stays under 1/2 */
    if (c->n == c->cap_pairs && !cooc_rehash(c))
        return false;
    uint32_t *slot = slot_for(c, item);
    if (!*slot) {
        c->pairs[c->n] = (struct pair){item, 0};
        *slot = ++c->n;
    }
    c->pairs[*slot - 1].count++;
    return true;
}

/* Makes items and the score array cover index i, users cover u. */
static bool reserve(struct knn *k, uint32_t u, uint32_t i)
{
    size_t cap_items = k->cap_items, cap_score = k->cap_items;
    if (!array_grow((void **)&k->score, &cap_score, (size_t)i + 1, sizeof *k->score) ||
        !array_grow((void **)&k->items, &cap_items, (size_t)i + 1, sizeof *k->items))
        return false;
    /* score and items grow in step: both double from the same capacity. */
    k->cap_items = cap_items;
    return array_grow((void **)&k->users, &k->cap_users, (size_t)u + 1, sizeof *k->users);
}

/* Moves i to the front of u's history, dropping the oldest when full: a
 * repeat positive refreshes the item rather than taking a second place. */
static void push_history(struct kuser *h, uint32_t i)
{
    uint32_t at = h->len < KNN_HISTORY ? h->len : KNN_HISTORY - 1;
    for (uint32_t r = 0; r < h->len; r++)
        if (h->hist[r] == i)
            at = r;
    memmove(h->hist + 1, h->hist, at * sizeof *h->hist);
    h->hist[0] = i;
    if (h->len < KNN_HISTORY && at == h->len)
        h->len++;
}

bool knn_observe(struct knn *k, uint32_t u, uint32_t i)
{
    if (!reserve(k, u, i))
        return false;
    struct kuser *h = &k->users[u];
    bool ok = true;
    for (uint32_t r = 0; r < h->len; r++) {
        uint32_t prev = h->hist[r];
        if (prev == i)
            continue;
        ok &= cooc_inc(&k->items[prev].c, i);
        ok &= cooc_inc(&k->items[i].c, prev);
    }
    k->items[i].n++;
    h->positives++;
    push_history(h, i);
    return ok;
}

uint64_t knn_positives(const struct knn *k, uint32_t u)
{
    return u < k->cap_users ? k->users[u].positives : 0;
}

/* score[j] += c[i][j] / sqrt(n[i]) for every j that co-occurred with i. */
static bool accumulate(struct knn *k, uint32_t i)
{
    const struct cooc *c = &k->items[i].c;
    double sqrt_ni = sqrt((double)k->items[i].n);
    for (uint32_t p = 0; p < c->n; p++) {
        uint32_t j = c->pairs[p].item;
        if (k->score[j] == 0) {
            if (!array_grow((void **)&k->touched, &k->cap_touched, k->n_touched + 1,
                      sizeof *k->touched))
                return false;
            k->touched[k->n_touched++] = j;
        }
        k->score[j] += (double)c->pairs[p].count / sqrt_ni;
    }
    return true;
}

static bool better(const struct knn *k, uint32_t a, uint32_t b)
{
    return k->score[a] > k->score[b] || (k->score[a] == k->score[b] && a < b);
}

/* Inserts j into out (sorted, len of at most n items). */
static size_t insert_top(const struct knn *k, uint32_t *out, size_t len, size_t n, uint32_t j)
{
    size_t r = len < n ? len++ : n - 1;
    for (; r > 0 && better(k, j, out[r - 1]); r--)
        out[r] = out[r - 1];
    out[r] = j;
    return len;
}

size_t knn_top(struct knn *k, uint32_t u, size_t n, knn_skip_fn skip, void *ctx, uint32_t *out)
{
    if (u >= k->cap_users || n == 0)
        return 0;
    const struct kuser *h = &k->users[u];
    bool ok = true;
    for (uint32_t r = 0; r < h->len && ok; r++)
        ok = accumulate(k, h->hist[r]);
    size_t len = 0;
    for (size_t t = 0; t < k->n_touched && ok; t++) {
        uint32_t j = k->touched[t];
        k->score[j] /= sqrt((double)k->items[j].n);
        if ((len < n || better(k, j, out[n - 1])) && !skip(ctx, j))
            len = insert_top(k, out, len, n, j);
    }
    for (size_t t = 0; t < k->n_touched; t++)
        k->score[k->touched[t]] = 0;
    k->n_touched = 0;
    return len;
}
