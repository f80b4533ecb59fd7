/* report.c: report.json (jansson) and report.html (tables + inline SVG).
 *
 * Both writers build the file in "<path>.tmp" and rename() it over path on
 * success; on any failure the temporary file is removed and err says what
 * went wrong, naming the file. */
#include "backtest/report.h"

#include <errno.h>
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include "pipeline/run/log.h"

/* ---------------------------------------------------------------- shared */

static void set_err(char *err, size_t errlen, const char *fmt, const char *path, int e)
{
    if (err && errlen > 0)
        snprintf(err, errlen, fmt, path ? path : "(null)", strerror(e));
}

static double ratio(double a, double b)
{
    if (b == 0.0)
        return 0.0;
    double v = a / b;
    return isfinite(v) ? v : 0.0;
}

static double mean_of(double sum, uint64_t n)
{
    return n == 0 ? 0.0 : ratio(sum, (double)n);
}

static int clamp_slots(int slots)
{
    if (slots < 0)
        return 0;
    if (slots > AUCTION_MAX_SLOTS)
        return AUCTION_MAX_SLOTS;
    return slots;
}

/* The even plan per slot, summed over episodes. */
static double slot_plan(const struct bid_result *b)
{
    int slots = clamp_slots(b->slots);
    if (slots == 0)
        return 0.0;
    return (double)b->episodes * (double)b->episode_budget_micros / (double)slots;
}

static char *tmp_name(const char *path)
{
    size_t n = strlen(path);
    char *t = malloc(n + 5);
    if (t) {
        memcpy(t, path, n);
        memcpy(t + n, ".tmp", 5);
    }
    return t;
}

/* Flushes, syncs and closes f, then renames tmp to path. On failure
 * removes tmp and fills err. f is always closed. */
static int finish_file(FILE *f, const char *tmp, const char *path, char *err, size_t errlen)
{
    int rc = 0;
    if (fflush(f) != 0 || ferror(f)) {
        set_err(err, errlen, "%s: write failed: %s", tmp, errno ? errno : EIO);
        rc = -1;
    } else if (fsync(fileno(f)) != 0 && errno != EINVAL && errno != EROFS) {
        set_err(err, errlen, "%s: fsync failed: %s", tmp, errno);
        rc = -1;
    }
    if (fclose(f) != 0 && rc == 0) {
        set_err(err, errlen, "%s: close failed: %s", tmp, errno);
        rc = -1;
    }
    if (rc == 0 && rename(tmp, path) != 0) {
        int e = errno;
        if (err && errlen > 0)
            snprintf(err, errlen, "%s: rename from %s failed: %s", path, tmp, strerror(e));
        rc = -1;
    }
    if (rc != 0)
        remove(tmp);
    return rc;
}

/* ------------------------------------------------------------------ JSON */

struct jb {
    bool ok;
};

static json_t *jreal(double v)
{
    return isfinite(v) ? json_real(v) : json_null();
}

static json_t *jint(int64_t v)
{
    return json_integer((json_int_t)v);
}

static json_t *juint(uint64_t v)
{
    return json_integer((json_int_t)v);
}

/* A JSON string; bytes that are not valid UTF-8 become '?'. NULL: null. */
static json_t *jstr(const char *s)
{
    if (!s)
        return json_null();
    json_t *v = json_string(s);
    if (v)
        return v;
    size_t n = strlen(s);
    char *c = malloc(n + 1);
    if (!c)
        return NULL;
    for (size_t i = 0; i <= n; i++)
        c[i] = (unsigned char)s[i] >= 0x80 ? '?' : s[i];
    v = json_string(c);
    free(c);
    return v;
}

static void put(struct jb *b, json_t *o, const char *key, json_t *v)
{
    if (!o || !v) {
        b->ok = false;
        json_decref(v);
        return;
    }
    if (json_object_set_new(o, key, v) != 0)
        b->ok = false;
}

static void append(struct jb *b, json_t *a, json_t *v)
{
    if (!a || !v) {
        b->ok = false;
        json_decref(v);
        return;
    }
    if (json_array_append_new(a, v) != 0)
        b->ok = false;
}

/* Object keys must be UTF-8: invalid bytes become '?'. */
static void put_kv(struct jb *b, json_t *o, const char *key, const char *value)
{
    if (!key)
        return;
    json_t *k = jstr(key);
    if (!k) {
        b->ok = false;
        return;
    }
    put(b, o, json_string_value(k), jstr(value));
    json_decref(k);
}

static json_t *kv_json(struct jb *b, const struct report_kv *kv, size_t n)
{
    json_t *o = json_object();
    if (!o) {
        b->ok = false;
        return NULL;
    }
    for (size_t i = 0; kv && i < n; i++)
        put_kv(b, o, kv[i].key, kv[i].value);
    return o;
}

/* A <bid_result> object; id, when not NULL, comes first as "id". */
static json_t *bid_json(struct jb *b, const struct bid_result *r, const char *id)
{
    json_t *o = json_object();
    if (!o) {
        b->ok = false;
        return NULL;
    }
    if (id)
        put(b, o, "id", jstr(id));
    int slots = clamp_slots(r->slots);
    put(b, o, "auctions", juint(r->auctions));
    put(b, o, "wins", juint(r->wins));
    put(b, o, "clicks", juint(r->clicks));
    put(b, o, "conversion_value", jreal(r->value));
    put(b, o, "spend_micros", jint(r->spend_micros));
    put(b, o, "budget_micros", jint(r->budget_micros));
    put(b, o, "episodes", juint(r->episodes));
    put(b, o, "episodes_exhausted", juint(r->episodes_exhausted));
    put(b, o, "first_exhausted_ms", jint(r->first_exhausted_ms));
    put(b, o, "max_overspend_micros", jint(r->max_overspend_micros));
    put(b, o, "episode", juint(r->episode));
    put(b, o, "episode_budget_micros", jint(r->episode_budget_micros));
    put(b, o, "slots", json_integer(r->slots));
    put(b, o, "win_rate", jreal(ratio((double)r->wins, (double)r->auctions)));
    put(b, o, "ecpc_micros",
        r->clicks ? jreal(ratio((double)r->spend_micros, (double)r->clicks)) : json_null());
    put(b, o, "budget_used", jreal(ratio((double)r->spend_micros, (double)r->budget_micros)));
    json_t *a = json_array();
    for (int i = 0; a && i < slots; i++)
        append(b, a, jint(r->slot_spend_micros[i]));
    put(b, o, "slot_spend_micros", a);
    put(b, o, "slot_plan_micros", jreal(slot_plan(r)));
    return o;
}

/* eddy's pre-training, per training episode; null without one. */
static json_t *training_json(struct jb *b, const struct report_training *t)
{
    if (!t || !t->n)
        return json_null();
    json_t *o = json_object(), *clicks = json_array(), *spend = json_array();
    for (size_t i = 0; clicks && spend && i < t->n; i++) {
        append(b, clicks, juint(t->clicks[i]));
        append(b, spend, jint(t->spend_micros[i]));
    }
    put(b, o, "budget_micros", jint(t->budget_micros));
    put(b, o, "clicks", clicks);
    put(b, o, "spend_micros", spend);
    return o;
}

/* The representative episode, per slot; null without one. */
static json_t *episode_json(struct jb *b, const struct report_episode *e)
{
    int slots = e ? clamp_slots(e->slots) : 0;
    if (!slots)
        return json_null();
    json_t *o = json_object(), *spent = json_array(), *m = json_array(), *plan = json_array();
    for (int i = 0; spent && m && plan && i < slots; i++) {
        append(b, spent, e->seen[i] ? jint(e->spent_micros[i]) : json_null());
        append(b, m, e->seen[i] ? jreal(e->multiplier[i]) : json_null());
        append(b, plan, e->seen[i] ? jreal(e->plan_multiplier[i]) : json_null());
    }
    put(b, o, "budget_micros", jint(e->budget_micros));
    put(b, o, "spent_micros", spent);
    put(b, o, "bid_multiplier", m);
    put(b, o, "plan_multiplier", plan);
    return o;
}

static json_t *means_json(struct jb *b, const struct preq_metrics *m, bool events)
{
    json_t *o = json_object();
    if (!o) {
        b->ok = false;
        return NULL;
    }
    if (events)
        put(b, o, "events", juint(m->events));
    put(b, o, "hr", jreal(mean_of(m->hits, m->events)));
    put(b, o, "ndcg", jreal(mean_of(m->ndcg, m->events)));
    put(b, o, "mrr", jreal(mean_of(m->rr, m->events)));
    return o;
}

/* Scored events by the user's prior positives: [{label, min_positives,
 * max_positives (null: no bound), events, eddy, popularity, item_knn}]. */
static json_t *buckets_json(struct jb *b, const struct preq_summary *s)
{
    json_t *a = json_array();
    for (size_t i = 0; a && i < PREQ_BUCKETS; i++) {
        const struct preq_bucket *bk = &s->buckets[i];
        json_t *o = json_object();
        put(b, o, "label", jstr(preq_bucket_label(i)));
        put(b, o, "min_positives", juint(bk->min_positives));
        put(b, o, "max_positives",
            bk->max_positives == UINT64_MAX ? json_null() : juint(bk->max_positives));
        put(b, o, "events", juint(bk->eddy.events));
        put(b, o, "eddy", means_json(b, &bk->eddy, false));
        put(b, o, "popularity", means_json(b, &bk->pop, false));
        put(b, o, "item_knn", means_json(b, &bk->knn, false));
        append(b, a, o);
    }
    if (!a)
        b->ok = false;
    return a;
}

static json_t *rec_json(struct jb *b, const struct preq_summary *s)
{
    json_t *o = json_object();
    if (!o) {
        b->ok = false;
        return NULL;
    }
    put(b, o, "k", json_integer(s->k));
    put(b, o, "users", juint(s->users));
    put(b, o, "catalog_items", juint(s->catalog_items));
    put(b, o, "observed", juint(s->observed));
    json_t *e = means_json(b, &s->eddy, true);
    put(b, e, "coverage",
        jreal(ratio((double)s->eddy_items_recommended, (double)s->catalog_items)));
    put(b, o, "eddy", e);
    json_t *p = means_json(b, &s->pop, true);
    put(b, p, "coverage",
        jreal(ratio((double)s->pop_items_recommended, (double)s->catalog_items)));
    put(b, o, "popularity", p);
    json_t *kn = means_json(b, &s->knn, true);
    put(b, kn, "coverage",
        jreal(ratio((double)s->knn_items_recommended, (double)s->catalog_items)));
    put(b, kn, "history", json_integer(s->knn_history));
    put(b, o, "item_knn", kn);
    put(b, o, "history_buckets", buckets_json(b, s));
    json_t *ws = json_array();
    for (size_t i = 0; ws && s->windows && i < s->n_windows; i++) {
        const struct preq_window *w = &s->windows[i];
        json_t *wo = json_object();
        put(b, wo, "first_ms", jint(w->first_ms));
        put(b, wo, "last_ms", jint(w->last_ms));
        put(b, wo, "events", juint(w->eddy.events));
        put(b, wo, "eddy", means_json(b, &w->eddy, false));
        put(b, wo, "popularity", means_json(b, &w->pop, false));
        put(b, wo, "item_knn", means_json(b, &w->knn, false));
        append(b, ws, wo);
    }
    put(b, o, "windows", ws);
    return o;
}

static json_t *report_json(const struct report *r, struct jb *b)
{
    json_t *root = json_object();
    if (!root) {
        b->ok = false;
        return NULL;
    }
    put(b, root, "title", jstr(r->title ? r->title : ""));
    put(b, root, "config", kv_json(b, r->config, r->n_config));
    put(b, root, "run", kv_json(b, r->run, r->n_run));
    put(b, root, "recommendations", r->rec ? rec_json(b, r->rec) : json_null());

    json_t *cs = json_array();
    for (size_t i = 0; cs && r->campaigns && i < r->n_campaigns; i++) {
        const struct report_campaign *c = &r->campaigns[i];
        json_t *co = bid_json(b, &c->eddy, c->id ? c->id : "");
        json_t *pts = json_array();
        for (size_t j = 0; pts && c->points && j < c->n_points; j++) {
            const struct report_spend_point *p = &c->points[j];
            json_t *t = json_array();
            append(b, t, jint(p->t_ms));
            append(b, t, jint(p->spent_micros));
            append(b, t, jint(p->plan_micros));
            append(b, pts, t);
        }
        put(b, co, "points", pts);
        append(b, cs, co);
    }
    put(b, root, "campaigns", cs);

    json_t *fs = json_array();
    for (size_t i = 0; fs && r->fractions && i < r->n_fractions; i++) {
        const struct report_fraction *f = &r->fractions[i];
        json_t *fo = json_object();
        put(b, fo, "label", jstr(f->label ? f->label : ""));
        put(b, fo, "c0", jreal(f->c0));
        put(b, fo, "lin_b0", jreal(f->lin_b0));
        put(b, fo, "eddy", bid_json(b, &f->eddy, NULL));
        put(b, fo, "lin", bid_json(b, &f->lin, NULL));
        put(b, fo, "oracle", bid_json(b, &f->oracle, NULL));
        put(b, fo, "training", training_json(b, f->train));
        put(b, fo, "episode", episode_json(b, f->shown));
        append(b, fs, fo);
    }
    put(b, root, "fractions", fs);
    return root;
}

int report_write_json(const struct report *r, const char *path, char *err, size_t errlen)
{
    if (!r || !path) {
        set_err(err, errlen, "%s: %s", path, EINVAL);
        return -1;
    }
    struct jb b = {.ok = true};
    json_t *root = report_json(r, &b);
    if (!b.ok || !root) {
        json_decref(root);
        set_err(err, errlen, "%s: building the JSON report: %s", path, ENOMEM);
        return -1;
    }
    char *tmp = tmp_name(path);
    if (!tmp) {
        json_decref(root);
        set_err(err, errlen, "%s: %s", path, ENOMEM);
        return -1;
    }
    FILE *f = fopen(tmp, "w");
    if (!f) {
        set_err(err, errlen, "%s: cannot create: %s", tmp, errno);
        json_decref(root);
        free(tmp);
        return -1;
    }
    int rc = 0;
    errno = 0;
    if (json_dumpf(root, f, JSON_INDENT(1) | JSON_REAL_PRECISION(10)) != 0 ||
        fputc('\n', f) == EOF) {
        set_err(err, errlen, "%s: write failed: %s", tmp, errno ? errno : EIO);
        fclose(f);
        remove(tmp);
        rc = -1;
    } else {
        rc = finish_file(f, tmp, path, err, errlen);
    }
    json_decref(root);
    free(tmp);
    return rc;
}

/* ------------------------------------------------------------------ HTML */

static void esc(FILE *f, const char *s)
{
    if (!s)
        return;
    for (; *s; s++) {
        switch (*s) {
        case '&': fputs("&amp;", f); break;
        case '<': fputs("&lt;", f); break;
        case '>': fputs("&gt;", f); break;
        case '"': fputs("&quot;", f); break;
        case '\'': fputs("&#39;", f); break;
        default: fputc(*s, f);
        }
    }
}

/* A finite number or 0. */
static double fin(double v)
{
    return isfinite(v) ? v : 0.0;
}

static void money(FILE *f, int64_t micros)
{
    fprintf(f, "%.2f", (double)micros / 1e6);
}

static const char *const STYLE =
    "body{font-family:sans-serif;margin:2em;color:#222;max-width:1100px}"
    "table{border-collapse:collapse;margin:0.5em 0 1em}"
    "th,td{border:1px solid #ccc;padding:3px 8px;text-align:right}"
    "th{background:#eef}"
    "td.l,th.l{text-align:left}"
    "h2{border-bottom:2px solid #88a;margin-top:1.5em}"
    "svg{display:block;margin:0.5em 0 1.5em;max-width:660px;background:#fff;"
    "border:1px solid #ddd}"
    ".bar{height:10px;background:#1f77b4;display:inline-block}"
    ".plan{height:10px;background:#aaa;display:inline-block}"
    "p.none{color:#555;font-style:italic}";

static void kv_table(FILE *f, const char *heading, const struct report_kv *kv, size_t n)
{
    fprintf(f, "<h2>");
    esc(f, heading);
    fprintf(f, "</h2>\n");
    if (!kv || n == 0) {
        fprintf(f, "<p class=\"none\">No entries.</p>\n");
        return;
    }
    fprintf(f, "<table>\n<tr><th class=\"l\">key</th><th class=\"l\">value</th></tr>\n");
    for (size_t i = 0; i < n; i++) {
        fprintf(f, "<tr><td class=\"l\">");
        esc(f, kv[i].key);
        fprintf(f, "</td><td class=\"l\">");
        esc(f, kv[i].value);
        fprintf(f, "</td></tr>\n");
    }
    fprintf(f, "</table>\n");
}

/* ---- the one chart helper */

struct svg_series {
    const char *name, *color;
    const double *y;
    bool dashed;
};

enum svg_xkind { SVG_X_TIME, SVG_X_CATEGORY };

#define SVG_W 640.0
#define SVG_H 260.0
#define PL 70.0  /* plot left */
#define PR 620.0 /* plot right */
#define PT 40.0  /* plot top */
#define PB 215.0 /* plot bottom */

static double nice_step(double range)
{
    double raw = range / 4.0;
    if (!(raw > 0) || !isfinite(raw))
        return 1.0;
    double mag = pow(10.0, floor(log10(raw)));
    double r = raw / mag;
    double m = r <= 1.0 ? 1.0 : r <= 2.0 ? 2.0 : r <= 2.5 ? 2.5 : r <= 5.0 ? 5.0 : 10.0;
    return m * mag;
}

/* A line chart: x is event time (ms, x[]) or categories (labels[], evenly
 * spaced); every series has n values; non-finite values are skipped. */
static void svg_line_chart(FILE *f, const char *title, enum svg_xkind xk, const double *x,
                           const char *const *labels, size_t n, const struct svg_series *s,
                           size_t ns)
{
    /* y range: 0..max (or min..max when negative values exist) */
    double ymin = 0.0, ymax = 0.0;
    for (size_t k = 0; k < ns; k++)
        for (size_t i = 0; i < n; i++) {
            double v = s[k].y[i];
            if (!isfinite(v))
                continue;
            if (v > ymax)
                ymax = v;
            if (v < ymin)
                ymin = v;
        }
    double step = nice_step(ymax - ymin);
    double top = ceil(ymax / step) * step, bottom = floor(ymin / step) * step;
    if (!(top > bottom))
        top = bottom + step;
    int decimals = step >= 1.0 ? 0 : (int)ceil(-log10(step) - 1e-9);
    if (decimals > 6)
        decimals = 6;
    if (step == 2.5 * pow(10.0, floor(log10(step))) && step < 10.0)
        decimals++;

    /* x range */
    double xmin = 0.0, xmax = 0.0;
    bool have_x = false;
    if (xk == SVG_X_TIME) {
        for (size_t i = 0; i < n; i++) {
            if (!isfinite(x[i]))
                continue;
            if (!have_x || x[i] < xmin)
                xmin = x[i];
            if (!have_x || x[i] > xmax)
                xmax = x[i];
            have_x = true;
        }
    }

#define XPOS(i)                                                                              \
    (xk == SVG_X_CATEGORY                                                                    \
         ? (n <= 1 ? (PL + PR) / 2.0 : PL + 20.0 + (PR - PL - 40.0) * (double)(i) / (double)(n - 1)) \
         : (xmax > xmin ? PL + (PR - PL) * (x[i] - xmin) / (xmax - xmin) : (PL + PR) / 2.0))
#define YPOS(v) (PB - (PB - PT) * ((v) - bottom) / (top - bottom))

    fprintf(f,
            "<svg xmlns=\"http://www.w3.org/2000/svg\" viewBox=\"0 0 %.0f %.0f\" width=\"%.0f\" "
            "height=\"%.0f\" role=\"img\" aria-label=\"",
            SVG_W, SVG_H, SVG_W, SVG_H);
    esc(f, title);
    fprintf(f, "\" font-family=\"sans-serif\" font-size=\"11\">\n<title>");
    esc(f, title);
    fprintf(f, "</title>\n<text x=\"%.0f\" y=\"18\" font-size=\"13\" font-weight=\"bold\">", PL);
    esc(f, title);
    fprintf(f, "</text>\n");

    /* legend, top right; items narrower when many, so all fit */
    double item = ns ? fmin(110.0, (PR - PL - 200.0) / (double)ns) : 110.0;
    double lx = PR - item * (double)ns;
    if (lx < PL + 200.0)
        lx = PL + 200.0;
    for (size_t k = 0; k < ns; k++) {
        double bx = lx + item * (double)k;
        fprintf(f,
                "<line x1=\"%.1f\" y1=\"14\" x2=\"%.1f\" y2=\"14\" stroke=\"%s\" "
                "stroke-width=\"2.5\"%s/>",
                bx, bx + 20.0, s[k].color, s[k].dashed ? " stroke-dasharray=\"5,3\"" : "");
        fprintf(f, "<text x=\"%.1f\" y=\"18\">", bx + 25.0);
        esc(f, s[k].name);
        fprintf(f, "</text>\n");
    }

    /* y grid and labels */
    for (int t = 0; t < 12; t++) {
        double v = bottom + step * t;
        if (v > top + step * 1e-6)
            break;
        double y = YPOS(v);
        fprintf(f,
                "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"#e3e3e3\"/>"
                "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"end\">%.*f</text>\n",
                PL, y, PR, y, PL - 6.0, y + 4.0, decimals, fabs(v) < step * 1e-9 ? 0.0 : v);
    }
    /* axes */
    fprintf(f,
            "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"#444\"/>"
            "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"#444\"/>\n",
            PL, PT, PL, PB, PL, PB, PR, PB);

    /* x labels */
    if (xk == SVG_X_CATEGORY) {
        size_t every = n > 10 ? (n + 9) / 10 : 1;
        for (size_t i = 0; i < n; i += every) {
            double px = XPOS(i);
            fprintf(f,
                    "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"#444\"/>"
                    "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\">",
                    px, PB, px, PB + 4.0, px, PB + 17.0);
            esc(f, labels && labels[i] ? labels[i] : "");
            fprintf(f, "</text>\n");
        }
    } else if (have_x) {
        double span = xmax - xmin;
        const char *fmt = span < 2.0 * 3600000.0    ? "%H:%M:%S"
                          : span < 2.0 * 86400000.0 ? "%H:%M"
                                                    : "%Y-%m-%d";
        int ticks = xmax > xmin ? 5 : 1;
        for (int t = 0; t < ticks; t++) {
            double v = ticks == 1 ? xmin : xmin + span * t / (ticks - 1);
            double px = ticks == 1 ? (PL + PR) / 2.0 : PL + (PR - PL) * t / (ticks - 1);
            char buf[64];
            fmt_utc(buf, sizeof buf, (int64_t)llround(v), fmt);
            /* The last label ends at its tick, so a long date is not cut. */
            const char *anchor = ticks > 1 && t == ticks - 1 ? "end" : "middle";
            fprintf(f,
                    "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"#444\"/>"
                    "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"%s\">",
                    px, PB, px, PB + 4.0, px, PB + 17.0, anchor);
            esc(f, buf);
            fprintf(f, "</text>\n");
        }
        fprintf(f, "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\" fill=\"#666\">event time (UTC)</text>\n",
                (PL + PR) / 2.0, PB + 36.0);
    }

    /* series */
    for (size_t k = 0; k < ns; k++) {
        fprintf(f, "<polyline fill=\"none\" stroke=\"%s\" stroke-width=\"2\"%s points=\"",
                s[k].color, s[k].dashed ? " stroke-dasharray=\"6,4\"" : "");
        bool first = true;
        for (size_t i = 0; i < n; i++) {
            if (!isfinite(s[k].y[i]) || (xk == SVG_X_TIME && !isfinite(x[i])))
                continue;
            fprintf(f, "%s%.1f,%.1f", first ? "" : " ", XPOS(i), YPOS(s[k].y[i]));
            first = false;
        }
        fprintf(f, "\"/>\n");
        if (n <= 40 && !s[k].dashed) {
            for (size_t i = 0; i < n; i++) {
                if (!isfinite(s[k].y[i]) || (xk == SVG_X_TIME && !isfinite(x[i])))
                    continue;
                fprintf(f, "<circle cx=\"%.1f\" cy=\"%.1f\" r=\"3\" fill=\"%s\"/>", XPOS(i),
                        YPOS(s[k].y[i]), s[k].color);
            }
            fprintf(f, "\n");
        }
    }
#undef XPOS
#undef YPOS
    fprintf(f, "</svg>\n");
}

#define C_EDDY "#1f77b4"
#define C_ALT "#ff7f0e"
#define C_ORACLE "#2ca02c"
#define C_PLAN "#555555"

/* ---- sections */

/* k columns of n doubles for a chart's axes, in one block: free the first.
 * NULL when out of memory. */
static double *chart_columns(size_t n, size_t k)
{
    return malloc(n * k * sizeof(double));
}

static void rec_row(FILE *f, const char *name, const struct preq_metrics *m, uint64_t items,
                    uint64_t catalog)
{
    fprintf(f,
            "<tr><td class=\"l\">%s</td><td>%.4f</td><td>%.4f</td><td>%.4f</td>"
            "<td>%.1f%%</td><td>%llu</td></tr>\n",
            name, fin(mean_of(m->hits, m->events)), fin(mean_of(m->ndcg, m->events)),
            fin(mean_of(m->rr, m->events)), 100.0 * ratio((double)items, (double)catalog),
            (unsigned long long)m->events);
}

/* HR@K, NDCG@K and MRR@K of the three models by the user's positives before
 * the scored event: cold users are where popularity wins and kNN cannot. */
static void bucket_table(FILE *f, const struct preq_summary *s)
{
    fprintf(f, "<h3>By the user's history</h3>\n<table>\n<tr><th class=\"l\" rowspan=\"2\">"
               "prior positives</th><th rowspan=\"2\">scored events</th>"
               "<th colspan=\"3\">HR@%d</th><th colspan=\"3\">NDCG@%d</th>"
               "<th colspan=\"3\">MRR</th></tr>\n<tr>",
            s->k, s->k);
    for (int k = 0; k < 3; k++)
        fprintf(f, "<th>eddy</th><th>popularity</th><th>item-kNN</th>");
    fprintf(f, "</tr>\n");
    for (size_t i = 0; i < PREQ_BUCKETS; i++) {
        const struct preq_bucket *bk = &s->buckets[i];
        const struct preq_metrics *m[3] = {&bk->eddy, &bk->pop, &bk->knn};
        uint64_t n = bk->eddy.events;
        fprintf(f, "<tr><td class=\"l\">");
        esc(f, preq_bucket_label(i));
        fprintf(f, "</td><td>%llu</td>", (unsigned long long)n);
        for (int k = 0; k < 3; k++)
            fprintf(f, "<td>%.4f</td>", fin(mean_of(m[k]->hits, n)));
        for (int k = 0; k < 3; k++)
            fprintf(f, "<td>%.4f</td>", fin(mean_of(m[k]->ndcg, n)));
        for (int k = 0; k < 3; k++)
            fprintf(f, "<td>%.4f</td>", fin(mean_of(m[k]->rr, n)));
        fprintf(f, "</tr>\n");
    }
    fprintf(f, "</table>\n");
}

static int rec_section(FILE *f, const struct preq_summary *s)
{
    fprintf(f, "<h2>Recommendations</h2>\n");
    if (!s || s->eddy.events == 0) {
        fprintf(f, "<p class=\"none\">There were no positive click events to evaluate, so no "
                   "recommendation metrics were computed.</p>\n");
        return 0;
    }
    fprintf(f,
            "<p>Prequential (test-then-train) evaluation of top-%d lists: %llu users, %llu "
            "catalog items, %llu events observed.</p>\n",
            s->k, (unsigned long long)s->users, (unsigned long long)s->catalog_items,
            (unsigned long long)s->observed);
    fprintf(f,
            "<table>\n<tr><th class=\"l\">model</th><th>HR@%d</th><th>NDCG@%d</th><th>MRR</th>"
            "<th>coverage</th><th>scored events</th></tr>\n",
            s->k, s->k);
    rec_row(f, "eddy", &s->eddy, s->eddy_items_recommended, s->catalog_items);
    rec_row(f, "popularity", &s->pop, s->pop_items_recommended, s->catalog_items);
    rec_row(f, "item-kNN", &s->knn, s->knn_items_recommended, s->catalog_items);
    fprintf(f, "</table>\n");
    fprintf(f, "<p>item-kNN: cosine over co-occurrence in the user's last %d positives, "
               "exact; an empty list for a user with no positives yet.</p>\n",
            s->knn_history);

    size_t n = s->windows ? s->n_windows : 0;
    if (n == 0) {
        fprintf(f, "<p class=\"none\">No evaluation windows were closed.</p>\n");
        bucket_table(f, s);
        return 0;
    }
    double *x = chart_columns(n, 4);
    if (!x)
        return -1;
    double *ye = x + n, *yp = x + 2 * n, *yk = x + 3 * n;
    for (size_t i = 0; i < n; i++) {
        x[i] = (double)s->windows[i].last_ms;
        ye[i] = mean_of(s->windows[i].eddy.hits, s->windows[i].eddy.events);
        yp[i] = mean_of(s->windows[i].pop.hits, s->windows[i].pop.events);
        yk[i] = mean_of(s->windows[i].knn.hits, s->windows[i].knn.events);
    }
    char title[64];
    snprintf(title, sizeof title, "HR@%d over time", s->k);
    struct svg_series ser[3] = {
        {"eddy", C_EDDY, ye, false},
        {"popularity", C_ALT, yp, false},
        {"item-kNN", C_ORACLE, yk, false},
    };
    svg_line_chart(f, title, SVG_X_TIME, x, NULL, n, ser, 3);
    free(x);
    bucket_table(f, s);
    return 0;
}

static void ran_out(FILE *f, int64_t ms)
{
    if (ms < 0) {
        fprintf(f, "never");
        return;
    }
    char buf[64];
    fmt_utc(buf, sizeof buf, ms, "%Y-%m-%d %H:%M:%S UTC");
    esc(f, buf);
}

/* A campaign's cumulative spend against its even plan, over event time. */
static int spend_chart(FILE *f, const struct report_campaign *c)
{
    size_t n = c->points ? c->n_points : 0;
    if (n == 0) {
        fprintf(f, "<p class=\"none\">No spend was recorded for this campaign.</p>\n");
        return 0;
    }
    double *x = chart_columns(n, 3);
    if (!x)
        return -1;
    double *ys = x + n, *yp = x + 2 * n;
    for (size_t j = 0; j < n; j++) {
        x[j] = (double)c->points[j].t_ms;
        ys[j] = (double)c->points[j].spent_micros / 1e6;
        yp[j] = (double)c->points[j].plan_micros / 1e6;
    }
    struct svg_series ser[2] = {
        {"spent", C_EDDY, ys, false},
        {"even plan", C_PLAN, yp, true},
    };
    svg_line_chart(f, "cumulative spend vs plan", SVG_X_TIME, x, NULL, n, ser, 2);
    free(x);
    return 0;
}

/* Spend per slot, summed over periods, with bars against the even plan. */
static void slot_table(FILE *f, const struct bid_result *b)
{
    int slots = clamp_slots(b->slots);
    if (slots <= 0)
        return;
    double plan = slot_plan(b);
    double mx = plan;
    for (int k = 0; k < slots; k++)
        if ((double)b->slot_spend_micros[k] > mx)
            mx = (double)b->slot_spend_micros[k];
    fprintf(f, "<details><summary>spend per slot, summed over periods, against the "
               "even plan</summary>\n");
    fprintf(f, "<table>\n<tr><th>slot</th><th>spend</th><th>even plan</th>"
               "<th class=\"l\">spend (blue) vs plan (grey)</th></tr>\n");
    for (int k = 0; k < slots; k++) {
        double sp = (double)b->slot_spend_micros[k];
        fprintf(f, "<tr><td>%d</td><td>", k);
        money(f, b->slot_spend_micros[k]);
        fprintf(f,
                "</td><td>%.2f</td><td class=\"l\"><span class=\"bar\" "
                "style=\"width:%.0fpx\"></span><br><span class=\"plan\" "
                "style=\"width:%.0fpx\"></span></td></tr>\n",
                fin(plan / 1e6), mx > 0 ? fin(200.0 * (sp > 0 ? sp : 0) / mx) : 0.0,
                mx > 0 ? fin(200.0 * (plan > 0 ? plan : 0) / mx) : 0.0);
    }
    fprintf(f, "</table>\n</details>\n");
}

static int campaign_section(FILE *f, const struct report *r)
{
    fprintf(f, "<h2>Campaigns</h2>\n");
    size_t nc = r->campaigns ? r->n_campaigns : 0;
    if (nc == 0) {
        fprintf(f, "<p class=\"none\">No campaigns were paced in this run, so there is no "
                   "spend to show.</p>\n");
        return 0;
    }
    fprintf(f, "<table>\n<tr><th class=\"l\">campaign</th><th>auctions</th><th>wins</th>"
               "<th>win rate</th><th>clicks</th><th>spend</th><th>budget</th>"
               "<th>budget used</th><th>eCPC</th><th>first ran out</th>"
               "<th>max overspend</th><th>conversion value</th></tr>\n");
    for (size_t i = 0; i < nc; i++) {
        const struct report_campaign *c = &r->campaigns[i];
        const struct bid_result *b = &c->eddy;
        fprintf(f, "<tr><td class=\"l\">");
        esc(f, c->id);
        fprintf(f, "</td><td>%llu</td><td>%llu</td><td>%.2f%%</td><td>%llu</td><td>",
                (unsigned long long)b->auctions, (unsigned long long)b->wins,
                100.0 * ratio((double)b->wins, (double)b->auctions),
                (unsigned long long)b->clicks);
        money(f, b->spend_micros);
        fprintf(f, "</td><td>");
        money(f, b->budget_micros);
        fprintf(f, "</td><td>%.1f%%</td><td>",
                100.0 * ratio((double)b->spend_micros, (double)b->budget_micros));
        if (b->clicks)
            fprintf(f, "%.2f", fin(ratio((double)b->spend_micros, (double)b->clicks) / 1e6));
        else
            fprintf(f, "&ndash;");
        fprintf(f, "</td><td>");
        ran_out(f, b->first_exhausted_ms);
        fprintf(f, "</td><td>");
        money(f, b->max_overspend_micros);
        fprintf(f, "</td><td>%.2f</td></tr>\n", fin(b->value));
    }
    fprintf(f, "</table>\n<p>Money in currency units (micros / 10<sup>6</sup>).</p>\n");

    for (size_t i = 0; i < nc; i++) {
        const struct report_campaign *c = &r->campaigns[i];
        fprintf(f, "<h3>Campaign ");
        esc(f, c->id);
        fprintf(f, "</h3>\n");
        if (spend_chart(f, c))
            return -1;
        slot_table(f, &c->eddy);
    }
    return 0;
}

static int fraction_section(FILE *f, const struct report *r)
{
    fprintf(f, "<h2>Budget fractions (Cai et al. protocol)</h2>\n");
    size_t n = r->fractions ? r->n_fractions : 0;
    if (n == 0) {
        fprintf(f, "<p class=\"none\">The budget-fraction protocol was not run (pass "
                   "--budget-fractions).</p>\n");
        return 0;
    }
    fprintf(f,
            "<table>\n<tr><th class=\"l\" rowspan=\"2\">fraction</th><th rowspan=\"2\">c0</th>"
            "<th colspan=\"3\">clicks</th><th colspan=\"3\">spend</th>"
            "<th colspan=\"3\">win rate</th><th rowspan=\"2\">Lin b0</th>"
            "<th rowspan=\"2\">worst episode<br>overspend</th></tr>\n<tr>"
            "<th>eddy</th><th>Lin</th><th>oracle</th><th>eddy</th><th>Lin</th><th>oracle</th>"
            "<th>eddy</th><th>Lin</th><th>oracle</th></tr>\n");
    for (size_t i = 0; i < n; i++) {
        const struct report_fraction *fr = &r->fractions[i];
        const struct bid_result *b[3] = {&fr->eddy, &fr->lin, &fr->oracle};
        fprintf(f, "<tr><td class=\"l\">");
        esc(f, fr->label);
        fprintf(f, "</td><td>%.5g</td>", fin(fr->c0));
        for (int k = 0; k < 3; k++)
            fprintf(f, "<td>%llu</td>", (unsigned long long)b[k]->clicks);
        for (int k = 0; k < 3; k++) {
            fprintf(f, "<td>");
            money(f, b[k]->spend_micros);
            fprintf(f, "</td>");
        }
        for (int k = 0; k < 3; k++)
            fprintf(f, "<td>%.2f%%</td>",
                    100.0 * ratio((double)b[k]->wins, (double)b[k]->auctions));
        int64_t worst = b[0]->max_overspend_micros;
        for (int k = 1; k < 3; k++)
            worst = b[k]->max_overspend_micros > worst ? b[k]->max_overspend_micros : worst;
        fprintf(f, "<td>%.4f</td><td>", fin(fr->lin_b0) / 1e6);
        money(f, worst);
        fprintf(f, "</td></tr>\n");
    }
    fprintf(f, "</table>\n");

    const char **labels = malloc(n * sizeof *labels);
    double *ye = chart_columns(n, 3);
    if (!labels || !ye) {
        free(labels), free(ye);
        return -1;
    }
    double *yl = ye + n, *yo = ye + 2 * n;
    for (size_t i = 0; i < n; i++) {
        labels[i] = r->fractions[i].label;
        ye[i] = (double)r->fractions[i].eddy.clicks;
        yl[i] = (double)r->fractions[i].lin.clicks;
        yo[i] = (double)r->fractions[i].oracle.clicks;
    }
    struct svg_series ser[3] = {
        {"eddy", C_EDDY, ye, false},
        {"Lin", C_ALT, yl, false},
        {"oracle", C_ORACLE, yo, false},
    };
    svg_line_chart(f, "clicks vs budget fraction", SVG_X_CATEGORY, NULL, labels, n, ser, 3);
    free(labels), free(ye);
    return 0;
}

/* One evaluated episode of one c0: spend at each slot's open against the
 * even plan, and the bid multiplier against the market plan's. */
static int episode_charts(FILE *f, const struct report_fraction *fr)
{
    const struct report_episode *e = fr->shown;
    int slots = e ? clamp_slots(e->slots) : 0;
    if (!slots)
        return 0;
    size_t n = (size_t)slots;
    double *ys = chart_columns(n, 4);
    const char **labels = malloc(n * sizeof *labels);
    char (*names)[24] = malloc(n * sizeof *names);
    if (!ys || !labels || !names) {
        free(ys), free(labels), free(names);
        return -1;
    }
    double *yp = ys + n, *ym = ys + 2 * n, *yq = ys + 3 * n;
    for (size_t i = 0; i < n; i++) {
        snprintf(names[i], sizeof names[i], "%zu", i);
        labels[i] = names[i];
        ys[i] = e->seen[i] ? (double)e->spent_micros[i] / 1e6 : NAN;
        yp[i] = (double)e->budget_micros * (double)i / (double)slots / 1e6;
        ym[i] = e->seen[i] ? e->multiplier[i] : NAN;
        yq[i] = e->seen[i] ? e->plan_multiplier[i] : NAN;
    }
    char title[96];
    snprintf(title, sizeof title, "c0 %s: spend at each slot's open vs plan", fr->label);
    struct svg_series spend[2] = {{"spent", C_EDDY, ys, false}, {"even plan", C_PLAN, yp, true}};
    svg_line_chart(f, title, SVG_X_CATEGORY, NULL, labels, n, spend, 2);
    snprintf(title, sizeof title, "c0 %s: bid multiplier by slot", fr->label);
    struct svg_series mult[2] = {{"decision", C_EDDY, ym, false},
                                 {"market plan", C_PLAN, yq, true}};
    svg_line_chart(f, title, SVG_X_CATEGORY, NULL, labels, n, mult, 2);
    free(ys), free(labels), free(names);
    return 0;
}

/* The pre-training's learning curve: clicks per training episode, and the
 * share of the budget spent, each a moving mean over 10 episodes. */
static int learning_charts(FILE *f, const struct report *r)
{
    static const char *const colors[] = {C_EDDY, C_ALT, C_ORACLE, "#d62728", "#9467bd",
                                         "#8c564b", "#e377c2", "#7f7f7f"};
    size_t n = 0, ns = r->n_fractions < 8 ? r->n_fractions : 8;
    for (size_t k = 0; k < ns; k++)
        if (r->fractions[k].train && r->fractions[k].train->n > n)
            n = r->fractions[k].train->n;
    if (!n)
        return 0;
    double *y = chart_columns(n, 2 * ns);
    const char **labels = malloc(n * sizeof *labels);
    char (*names)[24] = malloc(n * sizeof *names);
    struct svg_series *ser = malloc(2 * ns * sizeof *ser);
    if (!y || !labels || !names || !ser) {
        free(y), free(labels), free(names), free(ser);
        return -1;
    }
    for (size_t i = 0; i < n; i++) {
        snprintf(names[i], sizeof names[i], "%zu", i + 1);
        labels[i] = names[i];
    }
    for (size_t k = 0; k < ns; k++) {
        const struct report_training *t = r->fractions[k].train;
        double *clicks = y + 2 * k * n, *used = clicks + n;
        for (size_t i = 0; i < n; i++) {
            double c = 0, sp = 0;
            size_t from = i >= 9 ? i - 9 : 0, m = 0;
            for (size_t j = from; t && j <= i && j < t->n; j++, m++) {
                c += t->clicks[j];
                sp += (double)t->spend_micros[j];
            }
            clicks[i] = m ? c / (double)m : NAN;
            used[i] = m && t->budget_micros ? sp / (double)m / (double)t->budget_micros : NAN;
        }
        ser[k] = (struct svg_series){r->fractions[k].label, colors[k], clicks, false};
        ser[ns + k] = (struct svg_series){r->fractions[k].label, colors[k], used, false};
    }
    fprintf(f, "<h3>Learning curve (pre-training on the tuning log)</h3>\n<p>Per training "
               "episode, each point the mean of the last 10 episodes.</p>\n");
    svg_line_chart(f, "clicks per episode", SVG_X_CATEGORY, NULL, labels, n, ser, ns);
    svg_line_chart(f, "budget used per episode", SVG_X_CATEGORY, NULL, labels, n, ser + ns, ns);
    free(y), free(labels), free(names), free(ser);
    return 0;
}

/* The controller explained: one evaluated episode per c0, the learning
 * curve. */
static int controller_section(FILE *f, const struct report *r)
{
    size_t n = r->fractions ? r->n_fractions : 0;
    if (n == 0)
        return 0;
    fprintf(f, "<h2>The budget controller</h2>\n<p>One evaluated episode per c0 (the "
               "middle one of the evaluated log): spend against the even plan, and the "
               "bid multiplier the controller decided against its market plan.</p>\n");
    for (size_t i = 0; i < n; i++)
        if (episode_charts(f, &r->fractions[i]))
            return -1;
    return learning_charts(f, r);
}

static int write_html(FILE *f, const struct report *r)
{
    const char *title = r->title ? r->title : "";
    fprintf(f, "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
               "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n"
               "<title>");
    esc(f, title);
    fprintf(f, "</title>\n<style>%s</style>\n</head>\n<body>\n<h1>", STYLE);
    esc(f, title);
    fprintf(f, "</h1>\n");
    /* Results first; what produced them last. */
    kv_table(f, "Run", r->run, r->n_run);
    if (rec_section(f, r->rec) != 0 || fraction_section(f, r) != 0 ||
        controller_section(f, r) != 0 || campaign_section(f, r) != 0)
        return -1;
    kv_table(f, "Configuration", r->config, r->n_config);
    fprintf(f, "</body>\n</html>\n");
    return 0;
}

int report_write_html(const struct report *r, const char *path, char *err, size_t errlen)
{
    if (!r || !path) {
        set_err(err, errlen, "%s: %s", path, EINVAL);
        return -1;
    }
    char *tmp = tmp_name(path);
    if (!tmp) {
        set_err(err, errlen, "%s: %s", path, ENOMEM);
        return -1;
    }
    FILE *f = fopen(tmp, "w");
    if (!f) {
        set_err(err, errlen, "%s: cannot create: %s", tmp, errno);
        free(tmp);
        return -1;
    }
    int rc;
    if (write_html(f, r) != 0) {
        set_err(err, errlen, "%s: building the HTML report: %s", path, ENOMEM);
        fclose(f);
        remove(tmp);
        rc = -1;
    } else {
        rc = finish_file(f, tmp, path, err, errlen);
    }
    free(tmp);
    return rc;
}
