/* bench_state.c: the state layer's rows of `make bench` (issues 3 and 5).
 *
 * Usage: bench_state ROWS.json [USERS]  (bench/report.py prints the rows)   (USERS defaults to 1M; items are
 * USERS / 10, the cache budget scales with USERS).
 *
 * Every run is a forked child, so each one's peak RSS (VmHWM) is its own.
 * The parent never opens RocksDB: a child forked from a process that had
 * would lack RocksDB's background threads. Each row is the median of 3 runs.
 *
 *   rmw          read-modify-write through the cache: state_get_in(), update
 *                the 64 floats, mark dirty, state_commit() every 1M ops
 *                (eddy's default checkpoint.events) or earlier when
 *                state_commit_due() says the budget needs it, as the
 *                pipeline does. Timed: USERS ops after an untimed warm-up
 *                and commit, so exactly one scheduled commit is timed.
 *                Commits are written behind (state.h): the timed window
 *                starts with the warm-up's write in flight and ends with
 *                its own in flight, one steady-state cycle; waiting for the
 *                previous write, if the ops outran it, is timed.
 *                Zipfian (YCSB's theta 0.99, scrambled so hot keys spread
 *                over the key space) with every user cached, and zipfian and
 *                uniform with a budget (state_options.cache_bytes, 256 bytes
 *                per user) whose entry share holds about 40% of the users.
 *                Reference: raw RocksDB get + put (state/state_raw.h) of a 256-byte
 *                value per op, same keys, same order.
 *   peak RSS     of the uniform rmw run, against budget + item matrix; and
 *                of the all-cached zipf run (1M users and 100k items in
 *                memory, no budget), against the raw bytes of their vectors.
 *   checkpoint   one state_commit() + state_sync() of USERS new dirty users, d=64; reference:
 *                one raw RocksDB WriteBatch of USERS 256-byte values.
 *   restart      state_open() + the first state_get_in() of the state the
 *                checkpoint row wrote (and the rmw rows updated); reference:
 *                opening the same RocksDB bare and one get.
 *
 * The page cache is warm in every run: restart times are for a process
 * restart, not a cold machine. */
#include <errno.h>
#include <ftw.h>
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "bench/bench.h"
#include "operators/budget.h"
#include "operators/users.h"
#include "state/state.h"
#include "state/state_raw.h"

#define DIM 64
#define RAW_VALUE 256           /* DIM floats */
#define COMMIT_EVERY 1000000  /* eddy's default checkpoint.events */
#define ZIPF_THETA 0.99
#define RUNS 3

struct cfg {
    const char *dir;            /* temporary, removed at the end */
    uint32_t users, items;
    size_t cache_bytes;
    uint32_t cache_warm, cache_ops;  /* warm-up fills the cache: not timed */
    uint32_t raw_warm, raw_ops;
};

/* One run's figures, sent from the child to the parent through a pipe. */
struct result {
    double value;
    double bytes;               /* checkpoint: WriteBatch size */
    double peak_rss;            /* bytes */
    double open_rss;            /* all_cached: RSS after open, before any user */
    double user_bytes;          /* all_cached: RSS added per user loaded */
};

enum dist { UNIFORM, ZIPFIAN };

struct run_arg {
    const struct cfg *c;
    enum dist dist;
    bool all_cached;            /* rmw: no budget, every user loaded first */
    int i;                      /* run number, for a run's own directory */
};

typedef void (*run_fn)(const struct run_arg *a, struct result *r);

static void die(const char *what, const char *err)
{
    fprintf(stderr, "bench_state: %s: %s\n", what, err ? err : strerror(errno));
    exit(1);
}

/* A "VmRSS" or "VmHWM" (peak) figure of /proc/self/status, in bytes. */
static double rss(const char *field)
{
    char line[256], name[32];
    double kb = 0;
    FILE *f = fopen("/proc/self/status", "r");
    while (f && fgets(line, sizeof line, f))
        if (sscanf(line, "%31[^:]: %lf kB", name, &kb) == 2 && !strcmp(name, field))
            break;
    if (f)
        fclose(f);
    return kb * 1024;
}

static uint64_t xorshift(uint64_t *s)
{
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    return *s;
}

static double uniform01(uint64_t *s)
{
    return (double)(xorshift(s) >> 11) * 0x1.0p-53;
}

/* "u" and 7 digits (8 for 10M and up): cheaper than snprintf per op. */
static struct eddy_str user_key(char *buf, uint32_t i)
{
    int n = i >= 10000000 ? 9 : 8;
    buf[0] = 'u';
    for (int k = n - 1; k >= 1; k--, i /= 10)
        buf[k] = (char)('0' + i % 10);
    return (struct eddy_str){buf, (size_t)n};
}

/* ---- key sequences -------------------------------------------------------- */

/* Gray et al.'s Zipfian generator, as YCSB uses it: rank 0 is hottest. */
struct zipf {
    uint64_t n;
    double zetan, alpha, eta, half;
};

static void zipf_init(struct zipf *z, uint64_t n, double theta)
{
    double zeta2 = 1 + pow(0.5, theta);
    z->n = n;
    z->zetan = 0;
    for (uint64_t i = 1; i <= n; i++)
        z->zetan += 1 / pow((double)i, theta);
    z->alpha = 1 / (1 - theta);
    z->eta = (1 - pow(2.0 / (double)n, 1 - theta)) / (1 - zeta2 / z->zetan);
    z->half = zeta2;
}

static uint64_t zipf_rank(const struct zipf *z, double u)
{
    double uz = u * z->zetan;
    if (uz < 1)
        return 0;
    if (uz < z->half)
        return 1;
    uint64_t r = (uint64_t)((double)z->n * pow(z->eta * u - z->eta + 1, z->alpha));
    return r < z->n ? r : z->n - 1;
}

/* The user indices of n ops. Generated up front, so the timed loops time
 * state and RocksDB only; the same seed gives both sides the same order. */
static uint32_t *key_sequence(uint32_t users, uint32_t n, enum dist d)
{
    uint32_t *seq = malloc((size_t)n * sizeof *seq);
    uint64_t s = 0x9e3779b97f4a7c15u;
    struct zipf z;
    if (!seq)
        die("key sequence", NULL);
    if (d == ZIPFIAN)
        zipf_init(&z, users, ZIPF_THETA);
    for (uint32_t i = 0; i < n; i++) {
        uint64_t r = d == ZIPFIAN ? zipf_rank(&z, uniform01(&s)) : xorshift(&s) % users;
        /* 2654435761 is prime, so this permutes 0..users-1: hot keys spread */
        seq[i] = (uint32_t)(r * 2654435761u % users);
    }
    return seq;
}

/* ---- state runs ----------------------------------------------------------- */

static void run_dir(char *buf, size_t len, const struct cfg *c, const char *name, int i)
{
    snprintf(buf, len, "%s/%s-%d", c->dir, name, i);
}

static struct eddy_state *open_state(const char *dir, size_t cache_bytes)
{
    /* The stores eddy opens its state with (pipeline/run/chain.c), so that
     * restart opens what eddy's does. */
    static const struct state_codec *const stores[] = {&users_store, &items_store,
                                                       &budget_campaigns, NULL};
    struct state_options o = {.dir = dir, .dim = DIM, .create_if_missing = true,
                              .cache_bytes = cache_bytes, .stores = stores};
    struct eddy_state *st;
    char err[512];
    if (state_open(&o, &st, err, sizeof err))
        die("state_open", err);
    return st;
}

static void commit(struct eddy_state *st)
{
    char err[512];
    if (state_commit(st, err, sizeof err))
        die("state_commit", err);
}

static void fill(float *v, uint32_t seed)
{
    for (int j = 0; j < DIM; j++)
        v[j] = (float)((seed * 31u + (uint32_t)j) % 1000) * 1e-3f - 0.5f;
}

static void add_items(struct eddy_state *st, uint32_t n)
{
    char id[16];
    float v[DIM];
    for (uint32_t i = 0; i < n; i++) {
        snprintf(id, sizeof id, "i%u", i);
        fill(v, i);
        state_rows_add(state_store(st, &items_store), eddy_str_c(id), v);
    }
    commit(st);
}

/* Times one commit of c->users new dirty users into a fresh state. */
static void run_checkpoint(const struct run_arg *a, struct result *r)
{
    char dir[512], key[16];
    run_dir(dir, sizeof dir, a->c, "state", a->i);
    struct eddy_state *st = open_state(dir, 0);
    add_items(st, a->c->items);
    struct state_store *users = state_store(st, &users_store);
    for (uint32_t i = 0; i < a->c->users; i++) {
        struct user_state *u = state_get_in(users, 0, user_key(key, i), true);
        fill(u->vec, i);
        u->n_events = 1;
        state_dirty(users, u);
    }
    double t0 = now_s();
    commit(st);
    char err[512];
    if (state_sync(st, err, sizeof err)) /* the whole write, not just its hand-over */
        die("state_sync", err);
    r->value = now_s() - t0;
    struct state_stats s;
    state_stats(st, &s);
    r->bytes = (double)s.checkpoint_bytes;
    state_close(st);
}

static void update(float *v)
{
    for (int j = 0; j < DIM; j++)
        v[j] = v[j] * 0.999f + 1e-3f;
}

static void cache_ops(struct eddy_state *st, const uint32_t *seq, uint32_t n, uint64_t *ops)
{
    char key[16];
    struct state_store *users = state_store(st, &users_store); /* as embeddings does */
    for (uint32_t i = 0; i < n; i++) {
        struct user_state *u = state_get_in(users, 0, user_key(key, seq[i]), true);
        update(u->vec);
        u->n_events++;
        state_dirty(users, u);
        if (++*ops % COMMIT_EVERY == 0 || state_commit_due(st))
            commit(st);
    }
}

/* Loads users [from, to), in key order (RocksDB reads those fastest). */
static void preload(struct eddy_state *st, uint32_t from, uint32_t to)
{
    char key[16];
    struct state_store *users = state_store(st, &users_store);
    for (uint32_t i = from; i < to; i++)
        state_get_in(users, 0, user_key(key, i), false);
}

/* Warms up with the same distribution (after loading every user, for
 * all_cached), then times cache_ops ops, commits included. */
static void run_rmw_cache(const struct run_arg *a, struct result *r)
{
    const struct cfg *c = a->c;
    char dir[512];
    uint64_t ops = 0;
    uint32_t *seq = key_sequence(c->users, c->cache_warm + c->cache_ops, a->dist);
    run_dir(dir, sizeof dir, c, "state", 0);
    struct eddy_state *st = open_state(dir, a->all_cached ? 0 : c->cache_bytes);
    if (a->all_cached) {
        /* Per user: what the second half of the users adds, so that what
         * loading starts once (RocksDB's block cache and table readers
         * filling) counts as fixed, not per user. */
        r->open_rss = rss("VmRSS");
        preload(st, 0, c->users / 2);
        double half = rss("VmRSS");
        preload(st, c->users / 2, c->users);
        r->user_bytes = (rss("VmRSS") - half) / (c->users - c->users / 2);
        commit(st);
    }
    /* Steady state: one warm-up window with its commit, so the timed commit
     * reuses a WriteBatch that has its size, as in a long-running eddy. */
    cache_ops(st, seq, c->cache_warm, &ops);
    commit(st);
    ops = 0;
    double t0 = now_s();
    cache_ops(st, seq + c->cache_warm, c->cache_ops, &ops);
    commit(st);
    r->value = c->cache_ops / (now_s() - t0);
    state_close(st);
    free(seq);
}

static void run_restart(const struct run_arg *a, struct result *r)
{
    char dir[512], key[16];
    run_dir(dir, sizeof dir, a->c, "state", 0);
    double t0 = now_s();
    struct eddy_state *st = open_state(dir, a->c->cache_bytes);
    if (!state_get_in(state_store(st, &users_store), 0, user_key(key, a->c->users / 2), false))
        die("restart", "the first user is missing");
    r->value = now_s() - t0;
    state_close(st);
}

/* ---- raw RocksDB runs ------------------------------------------------------ */

/* A bare RocksDB with the options state.c uses: bloom filters, WAL on, no
 * fsync (state/state_raw.h). cfs: NULL for "default" alone. */
static struct state_raw *raw_open(const char *dir, const char *const *cfs)
{
    char err[512];
    struct state_raw *db = state_raw_open(dir, cfs, err, sizeof err);
    if (!db)
        die(dir, err);
    return db;
}

/* Times one WriteBatch of c->users 256-byte values into a fresh database. */
static void run_raw_checkpoint(const struct run_arg *a, struct result *r)
{
    char dir[512], key[16], err[512];
    float v[DIM];
    run_dir(dir, sizeof dir, a->c, "raw", a->i);
    struct state_raw *db = raw_open(dir, NULL);
    double t0 = now_s();
    for (uint32_t i = 0; i < a->c->users; i++) {
        struct eddy_str k = user_key(key, i);
        fill(v, i);
        state_raw_batch_put(db, NULL, k.ptr, k.len, v, sizeof v);
    }
    if (state_raw_write(db, err, sizeof err))
        die("raw write", err);
    r->value = now_s() - t0;
    state_raw_close(db);
}

static void raw_ops(struct state_raw *db, const uint32_t *seq, uint32_t n)
{
    char key[16], err[512];
    for (uint32_t i = 0; i < n; i++) {
        struct eddy_str k = user_key(key, seq[i]);
        size_t len;
        char *v = state_raw_get(db, NULL, k.ptr, k.len, &len, err, sizeof err);
        if (!v || len != RAW_VALUE)
            die("raw get", err[0] ? err : "missing or short value");
        update((float *)(void *)v);
        if (state_raw_put(db, NULL, k.ptr, k.len, v, len, err, sizeof err))
            die("raw put", err);
        free(v);
    }
}

static void run_rmw_raw(const struct run_arg *a, struct result *r)
{
    const struct cfg *c = a->c;
    char dir[512];
    uint32_t *seq = key_sequence(c->users, c->raw_warm + c->raw_ops, a->dist);
    run_dir(dir, sizeof dir, c, "raw", 0);
    struct state_raw *db = raw_open(dir, NULL);
    raw_ops(db, seq, c->raw_warm);
    double t0 = now_s();
    raw_ops(db, seq + c->raw_warm, c->raw_ops);
    r->value = c->raw_ops / (now_s() - t0);
    state_raw_close(db);
    free(seq);
}

/* Opens the state's database bare (its column families, no item loading)
 * and reads one user: the floor under state_open(). */
static void run_raw_restart(const struct run_arg *a, struct result *r)
{
    static const char *const cfs[] = {"default", "users", "items", "campaigns", "offsets",
                                      "meta", NULL};
    char dir[512], key[16], err[512];
    run_dir(dir, sizeof dir, a->c, "state", 0);
    double t0 = now_s();
    struct state_raw *db = raw_open(dir, cfs);
    struct eddy_str id = user_key(key, a->c->users / 2);
    char k[4 + sizeof key] = {0}; /* partition 0, then the id (operators/users.h) */
    memcpy(k + 4, id.ptr, id.len);
    size_t len;
    char *v = state_raw_get(db, "users", k, 4 + id.len, &len, err, sizeof err);
    if (!v)
        die("raw restart get", err[0] ? err : "missing user");
    r->value = now_s() - t0;
    free(v);
    state_raw_close(db);
}

/* ---- runs, medians, output ------------------------------------------------- */

static struct result run_child(run_fn fn, const struct run_arg *a)
{
    int fd[2];
    struct result r = {0};
    if (pipe(fd))
        die("pipe", NULL);
    fflush(NULL);
    pid_t pid = fork();
    if (pid < 0)
        die("fork", NULL);
    if (pid == 0) {
        close(fd[0]);
        fn(a, &r);
        r.peak_rss = rss("VmHWM");
        _exit(write(fd[1], &r, sizeof r) == (ssize_t)sizeof r ? 0 : 1);
    }
    close(fd[1]);
    ssize_t n = read(fd[0], &r, sizeof r);
    close(fd[0]);
    int status;
    if (waitpid(pid, &status, 0) != pid || !WIFEXITED(status) || WEXITSTATUS(status) ||
        n != (ssize_t)sizeof r)
        die("a benchmark run failed", "see above");
    return r;
}

static int by_value(const void *x, const void *y)
{
    double a = ((const struct result *)x)->value, b = ((const struct result *)y)->value;
    return (a > b) - (a < b);
}

struct row {
    const char *scenario, *unit;
    double figure, reference, ratio; /* reference and ratio: NAN if none */
};

/* Runs fn RUNS times (run i in its own directory where it makes one). */
static struct result median(run_fn fn, struct run_arg a)
{
    struct result runs[RUNS];
    for (a.i = 0; a.i < RUNS; a.i++) {
        runs[a.i] = run_child(fn, &a);
        fprintf(stderr, ".");
    }
    qsort(runs, RUNS, sizeof *runs, by_value);
    return runs[RUNS / 2];
}

static void json_number(FILE *f, double x)
{
    if (isnan(x))
        fputs("null", f);
    else
        fprintf(f, "%.6g", x);
}

static void write_json(const char *path, const struct cfg *c, const struct row *rows, int n)
{
    FILE *f = fopen(path, "w");
    if (!f)
        die(path, NULL);
    fprintf(f, "{\"bench\": \"state\", \"users\": %u, \"items\": %u, \"dim\": %d, "
            "\"cache_bytes\": %zu, \"runs\": %d, \"rows\": [\n", c->users, c->items, DIM,
            c->cache_bytes, RUNS);
    for (int i = 0; i < n; i++) {
        fprintf(f, "  {\"scenario\": \"%s\", \"unit\": \"%s\", \"figure\": ", rows[i].scenario,
                rows[i].unit);
        json_number(f, rows[i].figure);
        fputs(", \"reference\": ", f);
        json_number(f, rows[i].reference);
        fputs(", \"ratio\": ", f);
        json_number(f, rows[i].ratio);
        fprintf(f, "}%s\n", i + 1 < n ? "," : "");
    }
    fputs("]}\n", f);
    if (fclose(f))
        die(path, NULL);
}

static void set_row(struct row *r, const char *scenario, const char *unit, double figure,
                    double reference)
{
    r->scenario = scenario;
    r->unit = unit;
    r->figure = figure;
    r->reference = reference;
    r->ratio = isnan(reference) ? NAN : figure / reference;
}

/* The later rows use the databases of checkpoint run 0 only. */
static void remove_runs(const struct cfg *c)
{
    char dir[512];
    for (int i = 1; i < RUNS; i++) {
        run_dir(dir, sizeof dir, c, "state", i);
        remove_tree(dir);
        run_dir(dir, sizeof dir, c, "raw", i);
        remove_tree(dir);
    }
}

enum { N_ROWS = 10 };

static void run_all(const struct cfg *c, struct row *rows)
{
    struct run_arg zipf = {.c = c, .dist = ZIPFIAN}, uni = {.c = c, .dist = UNIFORM};
    struct run_arg zipf_all = {.c = c, .dist = ZIPFIAN, .all_cached = true};
    double raw_ckpt = median(run_raw_checkpoint, uni).value;
    struct result ck = median(run_checkpoint, uni);
    remove_runs(c);
    double raw_zipf = median(run_rmw_raw, zipf).value;
    double raw_uni = median(run_rmw_raw, uni).value;
    struct result all = median(run_rmw_cache, zipf_all);
    set_row(&rows[0], "RMW, zipf 0.99, all users cached, commit/1M ops (ref: raw get+put)",
            "ops/s", all.value, raw_zipf);
    set_row(&rows[1], "RMW, zipf 0.99, budget < users, commit/1M ops or due (ref: raw)",
            "ops/s",
            median(run_rmw_cache, zipf).value, raw_zipf);
    struct result m = median(run_rmw_cache, uni);
    set_row(&rows[2], "RMW, uniform, budget < users, commit/1M ops or due (ref: raw)",
            "ops/s",
            m.value, raw_uni);
    set_row(&rows[3], "peak RSS of that run (ref: 1.2 x budget + item matrix)", "MB",
            m.peak_rss / 1e6,
            (1.2 * (double)c->cache_bytes + (double)c->items * DIM * sizeof(float)) / 1e6);
    set_row(&rows[4], "checkpoint of all users, new and dirty (ref: raw batch)", "s",
            ck.value, raw_ckpt);
    set_row(&rows[5], "checkpoint WriteBatch size (ref: raw vector bytes)", "MB",
            ck.bytes / 1e6, (double)c->users * DIM * sizeof(float) / 1e6);
    set_row(&rows[7], "peak RSS, all users and items cached (ref: raw vector bytes)", "MB",
            all.peak_rss / 1e6, (double)(c->users + c->items) * DIM * sizeof(float) / 1e6);
    set_row(&rows[8], "  of which per cached user, second half loaded (ref: its vector)", "B",
            all.user_bytes,
            DIM * sizeof(float));
    set_row(&rows[9], "  of which at open: libraries, RocksDB, items (ref: item vectors)", "MB",
            all.open_rss / 1e6, (double)c->items * DIM * sizeof(float) / 1e6);
    double raw_restart = median(run_raw_restart, uni).value;
    set_row(&rows[6], "restart to first event (ref: bare RocksDB open + get)", "s",
            median(run_restart, uni).value, raw_restart);
}

int main(int argc, char **argv)
{
    if (argc < 2 || argc > 3) {
        fprintf(stderr, "usage: bench_state RESULTS.json [USERS]\n");
        return 2;
    }
    struct cfg c = {.users = argc == 3 ? (uint32_t)strtoul(argv[2], NULL, 10) : 1000000};
    if (c.users < 1000)
        die("USERS", "must be at least 1000");
    c.items = c.users / 10;
    c.cache_bytes = (size_t)c.users * 256; /* 3/4 of it holds about 40% of the users */
    c.cache_warm = c.users / 2;
    c.cache_ops = c.users;
    c.raw_warm = c.users / 10;
    c.raw_ops = c.users / 5;
    char dir[] = "/tmp/eddy-bench-XXXXXX";
    if (!mkdtemp(dir))
        die("mkdtemp", NULL);
    c.dir = dir;
    fprintf(stderr, "bench_state: %u users, %u items, d=%d, cache %.0f MB, in %s ", c.users,
            c.items, DIM, (double)c.cache_bytes / 1e6, dir);
    struct row rows[N_ROWS];
    double t0 = now_s();
    run_all(&c, rows);
    remove_tree(dir);
    fprintf(stderr, " %.0f s\n", now_s() - t0);
    write_json(argv[1], &c, rows, N_ROWS);
    return 0;
}
