/* config.c: one table of keys, filled from three sources in order: built-in
 * defaults, the INI file (parsed by inih) and EDDY_* environment variables.
 * The same table validates values and prints the documented key list. */
#include "pipeline/config.h"

#include <ctype.h>
#include <errno.h>
#include <ini.h>
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define OFF(field) offsetof(struct eddy_config, field)
#define PASS_PREFIX "kafka."          /* [kafka] keys handed to librdkafka */
#define ENV_PASS_PREFIX "KAFKA_"      /* the same, after EDDY_KAFKA_ */

struct key_def;
/* Stores value in the field the key points at. On a bad value returns false
 * and writes why, phrased to follow the quoted value ("is not an integer"). */
typedef bool (*key_setter)(const struct key_def *k, void *field, const char *value,
                           char *why, size_t whylen);

struct key_def {
    const char *section, *name;
    key_setter set;
    const char *def;      /* the default, as text: it goes through set() too */
    size_t off;           /* of the field in struct eddy_config */
    double min, max;      /* inclusive range of a number; min == max: none */
    const char *desc;     /* one line, no final period */
};

static bool set_str(const struct key_def *, void *, const char *, char *, size_t);
static bool set_name(const struct key_def *, void *, const char *, char *, size_t);
static bool set_int(const struct key_def *, void *, const char *, char *, size_t);
static bool set_i64(const struct key_def *, void *, const char *, char *, size_t);
static bool set_u64(const struct key_def *, void *, const char *, char *, size_t);
static bool set_float(const struct key_def *, void *, const char *, char *, size_t);
static bool set_double(const struct key_def *, void *, const char *, char *, size_t);
static bool set_multipliers(const struct key_def *, void *, const char *, char *, size_t);
static bool set_offset_reset(const struct key_def *, void *, const char *, char *, size_t);

static const struct {
    const char *name, *desc;
} sections[] = {
    {"kafka", "Kafka connection. Any other key starting \"kafka.\" goes to librdkafka\n"
              "with the prefix stripped, for example:\n"
              "  kafka.security.protocol = SASL_SSL\n"
              "  kafka.socket.timeout.ms = 30000"},
    {"topics", "Topic names."},
    {"schemas", "Avro schemas of the records on the topics."},
    {"state", "Durable state (RocksDB)."},
    {"time", "Event time. Each input topic's watermark is the lowest, over its assigned\n"
             "partitions, of the highest event time read, minus the lateness. It is\n"
             "what moves time on without a campaign's own events: recommendation\n"
             "refreshes fall due on it, and campaigns without ad events of their own\n"
             "close their slots on it. A campaign's own ad event moves its clock at\n"
             "once; one older than its current slot counts in that slot, never dropped\n"
             "(docs/budget.md)."},
    {"embeddings", "Online matrix factorisation of click events."},
    {"recommend", "Top-K recommendations."},
    {"bidding", "Budget pacing by Q-learning (see docs/budget.md)."},
    {"http", "The HTTP endpoint: /metrics, /healthz, /readyz,\n"
             "/users/{id}/recommendations, /campaigns/{id}."},
    {"health", "What /healthz (liveness) and /readyz (readiness) report."},
};

#define INF INFINITY
static const struct key_def keys[] = {
    {"kafka", "bootstrap.servers", set_name, "localhost:9092", OFF(bootstrap_servers), 0, 0,
     "Brokers to bootstrap from: host:port, comma separated"},
    {"kafka", "group.id", set_name, "eddy", OFF(group_id), 0, 0,
     "Consumer group: eddy processes in one group share the input partitions"},
    {"kafka", "offset.reset", set_offset_reset, "fail", OFF(offset_reset_earliest), 0, 0,
     "A stored offset outside a partition's log: fail (stop with an error) or earliest "
     "(resume at the log start, counting the records skipped)"},
    {"kafka", "shutdown.timeout.ms", set_i64, "10000", OFF(shutdown_timeout_ms), 0, INF,
     "Longest a shutdown waits for outputs to be delivered and the group to be left, in ms"},
    {"kafka", "dlq.max.bytes", set_i64, "524288", OFF(dlq_max_bytes), 1024, INF,
     "A dead letter larger than this is truncated to it (headers keep the original "
     "size); keep it below the producer's message.max.bytes"},

    {"topics", "clicks", set_name, "clicks", OFF(topic_clicks), 0, 0,
     "Input: ClickEvent records"},
    {"topics", "ad_events", set_name, "ad-events", OFF(topic_ad_events), 0, 0,
     "Input: AdEvent records: auctions, impressions, clicks, conversions"},
    {"topics", "campaigns", set_name, "campaigns", OFF(topic_campaigns), 0, 0,
     "Input: CampaignBudget records"},
    {"topics", "recommendations", set_name, "recommendations", OFF(topic_recommendations), 0, 0,
     "Output: Recommendation records"},
    {"topics", "decisions", set_name, "budget-decisions", OFF(topic_decisions), 0, 0,
     "Output: BudgetDecision records"},
    {"topics", "dlq", set_name, "eddy-dlq", OFF(topic_dlq), 0, 0,
     "Output: input records that failed to decode or validate, unchanged"},

    {"schemas", "registry.url", set_str, "", OFF(registry_url), 0, 0,
     "Confluent Schema Registry URL; empty: Avro single-object encoding"},
    {"schemas", "writers.dir", set_str, "", OFF(writers_dir), 0, 0,
     "Directory of extra writer schemas (*.avsc) to accept; empty: only eddy's own"},

    {"state", "dir", set_name, "eddy-state", OFF(state_dir), 0, 0,
     "RocksDB directory, created if missing"},
    {"state", "checkpoint.interval.ms", set_i64, "5000", OFF(checkpoint_interval_ms), 1, INF,
     "Wall time between checkpoints of state and offsets, in ms (input since the last "
     "one is read again after a crash)"},
    {"state", "checkpoint.events", set_i64, "1000000", OFF(checkpoint_events), 1, INF,
     "Input records after which a checkpoint is taken sooner"},
    {"state", "cache.bytes", set_u64, "1073741824", OFF(cache_bytes), 0, 0,
     "Memory for state: cached users and campaigns plus RocksDB's memtables and block "
     "cache, in bytes; 0 = unlimited (the item matrix comes on top)"},

    {"embeddings", "dim", set_int, "32", OFF(mf.dim), 1, 1024,
     "Embedding dimension; must match existing state"},
    {"embeddings", "learning_rate", set_float, "0.05", OFF(mf.learning_rate), 0, 1,
     "SGD step size"},
    {"embeddings", "regularization", set_float, "0.01", OFF(mf.regularization), 0, 1,
     "L2 regularisation applied at each step"},
    {"embeddings", "negatives", set_int, "4", OFF(mf.negatives), 0, 64,
     "Negative items sampled per event"},
    {"embeddings", "init_scale", set_float, "0.1", OFF(mf.init_scale), 0, 1,
     "Scale of the pseudo-random initial vectors"},
    {"embeddings", "weight.view", set_float, "0.5", OFF(mf.weight[CLICK_VIEW]), 0, INF,
     "Confidence weight of a VIEW event"},
    {"embeddings", "weight.click", set_float, "1.0", OFF(mf.weight[CLICK_CLICK]), 0, INF,
     "Confidence weight of a CLICK event"},
    {"embeddings", "weight.add_to_cart", set_float, "2.0", OFF(mf.weight[CLICK_ADD_TO_CART]),
     0, INF, "Confidence weight of an ADD_TO_CART event"},
    {"embeddings", "weight.purchase", set_float, "4.0", OFF(mf.weight[CLICK_PURCHASE]), 0, INF,
     "Confidence weight of a PURCHASE event"},

    {"time", "lateness.ms", set_i64, "0", OFF(lateness_ms), 0, 86400000,
     "Out-of-order lateness the watermarks tolerate, in ms of event time"},

    {"recommend", "k", set_int, "10", OFF(rec.k), 1, 1000,
     "Items per recommendation"},
    {"recommend", "refresh.interval.ms", set_i64, "1000", OFF(rec.refresh_interval_ms), 0, INF,
     "Least event time between two recommendations for one user, in ms"},
    {"recommend", "batch.users", set_int, "128", OFF(rec.batch_users), 1, 4096,
     "Users scored together in one matrix product"},

    {"bidding", "slots", set_int, "24", OFF(bid.slots), 1, 1440,
     "Decision slots per budget period"},
    {"bidding", "budget.buckets", set_int, "10", OFF(bid.buckets), 1, 100,
     "Buckets of remaining budget in the Q-state"},
    {"bidding", "multipliers", set_multipliers, "0.5,0.75,1.0,1.25,1.5,2.0", OFF(bid), 0, 0,
     "The actions: bid multipliers, comma separated, 1 to 16 values, each > 0"},
    {"bidding", "alpha", set_double, "0.1", OFF(bid.alpha), 0, 1,
     "Q-learning rate"},
    {"bidding", "gamma", set_double, "0.95", OFF(bid.gamma), 0, 1,
     "Discount of future rewards"},
    {"bidding", "epsilon", set_double, "0.1", OFF(bid.epsilon), 0, 1,
     "Probability of exploring a random action"},
    {"bidding", "overspend.penalty", set_double, "1.0", OFF(bid.overspend_penalty), 0, INF,
     "Reward penalty for spending ahead of an even plan"},
    {"bidding", "seed", set_u64, "42", OFF(bid.seed), 0, 0,
     "Seed of the exploration draws (mixed with event content)"},

    {"http", "listen", set_str, "127.0.0.1:9464", OFF(http_listen), 0, 0,
     "host:port to serve on ([::1]:9464 for IPv6); empty disables the endpoint"},
    {"http", "max.connections", set_int, "1024", OFF(http_max_connections), 1, 65536,
     "Open connections; past it the longest idle one is closed, and if none is idle "
     "the client gets 503 (health and metrics have a small reserve)"},
    {"http", "idle.timeout.ms", set_i64, "60000", OFF(http_idle_timeout_ms), 100, INF,
     "A keep-alive connection idle this long is closed, in ms"},

    {"health", "broker.timeout.ms", set_i64, "30000", OFF(broker_timeout_ms), 0, INF,
     "/readyz fails once no broker has been reachable for this long, in ms"},
    {"health", "stall.timeout.ms", set_i64, "60000", OFF(stall_timeout_ms), 0, INF,
     "/readyz fails once there is consumer lag but no record was processed for this "
     "long, in ms"},
    {"health", "loop.stall.ms", set_i64, "10000", OFF(loop_stall_ms), 100, INF,
     "/healthz fails once the event loop's 100 ms tick is this late, in ms"},
};
#define N_KEYS (sizeof keys / sizeof keys[0])
#define N_SECTIONS (sizeof sections / sizeof sections[0])

/* ---- values ------------------------------------------------------------- */

static void range_text(const struct key_def *k, char *buf, size_t n)
{
    if (isinf(k->max))
        snprintf(buf, n, "at least %g", k->min);
    else
        snprintf(buf, n, "between %g and %g", k->min, k->max);
}

static bool out_of_range(const struct key_def *k, double v, char *why, size_t n)
{
    if (v >= k->min && v <= k->max)
        return false;
    char range[64];
    range_text(k, range, sizeof range);
    snprintf(why, n, "must be %s", range);
    return true;
}

static bool set_offset_reset(const struct key_def *k, void *field, const char *value,
                             char *why, size_t n)
{
    (void)k;
    if (strcmp(value, "fail") && strcmp(value, "earliest")) {
        snprintf(why, n, "must be fail or earliest");
        return false;
    }
    *(bool *)field = !strcmp(value, "earliest");
    return true;
}

static bool set_str(const struct key_def *k, void *field, const char *value, char *why,
                    size_t n)
{
    (void)k;
    char *copy = strdup(value);
    if (!copy) {
        snprintf(why, n, "could not be stored: out of memory");
        return false;
    }
    free(*(char **)field);
    *(char **)field = copy;
    return true;
}

/* A string eddy cannot run without: a broker list, a name, a directory. */
static bool set_name(const struct key_def *k, void *field, const char *value, char *why,
                     size_t n)
{
    if (!*value) {
        snprintf(why, n, "must not be empty");
        return false;
    }
    return set_str(k, field, value, why, n);
}

/* strto* accept leading blanks and report overflow only through errno. */
static bool parse_ll(const char *s, long long *out, char *why, size_t n)
{
    char *end;
    errno = 0;
    *out = strtoll(s, &end, 10);
    if (end == s || *end || isspace((unsigned char)*s)) {
        snprintf(why, n, "is not an integer");
        return false;
    }
    if (errno == ERANGE) {
        snprintf(why, n, "is out of range");
        return false;
    }
    return true;
}

static bool parse_number(const char *s, double *out, char *why, size_t n)
{
    char *end;
    errno = 0;
    *out = strtod(s, &end);
    if (end == s || *end || isspace((unsigned char)*s) || isnan(*out)) {
        snprintf(why, n, "is not a number");
        return false;
    }
    if (errno == ERANGE || isinf(*out)) {
        snprintf(why, n, "is out of range");
        return false;
    }
    return true;
}

static bool set_int(const struct key_def *k, void *field, const char *value, char *why,
                    size_t n)
{
    long long v;
    if (!parse_ll(value, &v, why, n) || out_of_range(k, (double)v, why, n))
        return false;
    *(int *)field = (int)v;
    return true;
}

static bool set_i64(const struct key_def *k, void *field, const char *value, char *why,
                    size_t n)
{
    long long v;
    if (!parse_ll(value, &v, why, n) || out_of_range(k, (double)v, why, n))
        return false;
    *(int64_t *)field = v;
    return true;
}

static bool set_u64(const struct key_def *k, void *field, const char *value, char *why,
                    size_t n)
{
    (void)k;
    char *end;
    errno = 0;
    unsigned long long v = strtoull(value, &end, 10);
    /* strtoull would silently negate "-1" into a huge number. */
    if (!isdigit((unsigned char)*value) || *end) {
        snprintf(why, n, "is not a non-negative integer");
        return false;
    }
    if (errno == ERANGE) {
        snprintf(why, n, "is out of range");
        return false;
    }
    *(uint64_t *)field = v;
    return true;
}

static bool set_float(const struct key_def *k, void *field, const char *value, char *why,
                      size_t n)
{
    double v;
    if (!parse_number(value, &v, why, n) || out_of_range(k, v, why, n))
        return false;
    *(float *)field = (float)v;
    return true;
}

static bool set_double(const struct key_def *k, void *field, const char *value, char *why,
                       size_t n)
{
    double v;
    if (!parse_number(value, &v, why, n) || out_of_range(k, v, why, n))
        return false;
    *(double *)field = v;
    return true;
}

/* "0.5, 1, 2" -> bid->multipliers and bid->n_actions; all or nothing. */
static bool set_multipliers(const struct key_def *k, void *field, const char *value,
                            char *why, size_t n)
{
    (void)k;
    struct bid_params *bid = field;
    double m[BID_MAX_ACTIONS];
    int count = 0;
    const char *p = value;
    for (;;) {
        char *end;
        if (count == BID_MAX_ACTIONS) {
            snprintf(why, n, "has more than %d values", BID_MAX_ACTIONS);
            return false;
        }
        errno = 0;
        double v = strtod(p, &end);
        if (end == p || errno || !isfinite(v)) {
            snprintf(why, n, "is not a comma-separated list of numbers");
            return false;
        }
        if (v <= 0) {
            snprintf(why, n, "has a value that is not > 0");
            return false;
        }
        m[count++] = v;
        p = end + strspn(end, " \t");
        if (!*p)
            break;
        if (*p++ != ',') {
            snprintf(why, n, "is not a comma-separated list of numbers");
            return false;
        }
    }
    memcpy(bid->multipliers, m, sizeof m[0] * (size_t)count);
    bid->n_actions = count;
    return true;
}

/* Values of such keys stay out of error messages and logs. */
static bool is_secret(const char *name)
{
    return strstr(name, "password") || strstr(name, "secret") || strstr(name, "key");
}

static bool key_set(const struct key_def *k, struct eddy_config *cfg, const char *value,
                    char *msg, size_t n)
{
    char why[128];
    if (k->set(k, (char *)cfg + k->off, value, why, sizeof why))
        return true;
    if (is_secret(k->name))
        snprintf(msg, n, "the value %s", why);
    else
        snprintf(msg, n, "\"%s\" %s", value, why);
    return false;
}

/* ---- lookup ------------------------------------------------------------- */

static bool section_known(const char *section)
{
    for (size_t i = 0; i < N_SECTIONS; i++)
        if (!strcmp(sections[i].name, section))
            return true;
    return false;
}

static const struct key_def *key_find(const char *section, const char *name)
{
    for (size_t i = 0; i < N_KEYS; i++)
        if (!strcmp(keys[i].section, section) && !strcmp(keys[i].name, name))
            return &keys[i];
    return NULL;
}

static struct kv *pass_find(struct eddy_config *cfg, const char *key)
{
    for (size_t i = 0; i < cfg->n_kafka_props; i++)
        if (!strcmp(cfg->kafka_props[i].key, key))
            return &cfg->kafka_props[i];
    return NULL;
}

/* Sets a librdkafka property; replace says whether an earlier value may be
 * overridden (the environment over the file) or is a duplicate (in the file). */
static bool pass_set(struct eddy_config *cfg, const char *key, const char *value, bool replace,
                     char *msg, size_t n)
{
    char *k = NULL, *v = NULL;
    if (!*key) {
        snprintf(msg, n, "names no librdkafka property");
        return false;
    }
    if (key_find("kafka", key)) {
        snprintf(msg, n, "is eddy's own key: set [kafka] %s instead", key);
        return false;
    }
    /* librdkafka's reset would jump over records without a trace. */
    if (!strcmp(key, "auto.offset.reset")) {
        snprintf(msg, n, "is set by eddy: use [kafka] offset.reset (fail or earliest)");
        return false;
    }
    struct kv *p = pass_find(cfg, key);
    if (p && !replace) {
        snprintf(msg, n, "is set more than once");
        return false;
    }
    v = strdup(value);
    k = p ? NULL : strdup(key);
    if (!v || (!p && !k))
        goto oom;
    if (!p) {
        struct kv *props = realloc(cfg->kafka_props, (cfg->n_kafka_props + 1) * sizeof *props);
        if (!props)
            goto oom;
        cfg->kafka_props = props;
        p = &props[cfg->n_kafka_props++];
        *p = (struct kv){k, NULL};
    }
    free(p->value);
    p->value = v;
    return true;
oom:
    free(k);
    free(v);
    snprintf(msg, n, "could not be stored: out of memory");
    return false;
}

/* ---- the file ----------------------------------------------------------- */

struct file_ctx {
    struct eddy_config *cfg;
    const char *path;
    FILE *f;
    int line;               /* of the line read last: inih does not tell handlers */
    int set_line[N_KEYS];   /* where each key was set, 0 if not yet */
    int err_line;           /* of the first error, 0 if none */
    int read_errno;         /* of a failed read, 0 if none */
    char *err;
    size_t errlen;
};

static bool file_value(struct file_ctx *c, const char *section, const char *name,
                       const char *value, char *msg, size_t n)
{
    if (!*section) {
        snprintf(msg, n, "is outside any [section]");
        return false;
    }
    if (!section_known(section)) {
        snprintf(msg, n, "unknown section");
        return false;
    }
    if (!strcmp(section, "kafka") && !strncmp(name, PASS_PREFIX, strlen(PASS_PREFIX)))
        return pass_set(c->cfg, name + strlen(PASS_PREFIX), value, false, msg, n);
    const struct key_def *k = key_find(section, name);
    if (!k) {
        snprintf(msg, n, "unknown key");
        return false;
    }
    int *first = &c->set_line[k - keys];
    if (*first) {
        snprintf(msg, n, "is set more than once (first on line %d)", *first);
        return false;
    }
    *first = c->line;
    return key_set(k, c->cfg, value, msg, n);
}

static int on_ini_value(void *user, const char *section, const char *name, const char *value)
{
    struct file_ctx *c = user;
    char msg[384];
    if (c->err_line)
        return 0; /* inih goes on after an error; the first one is reported */
    if (file_value(c, section, name, value, msg, sizeof msg))
        return 1;
    c->err_line = c->line;
    if (*section)
        snprintf(c->err, c->errlen, "%s:%d: [%s] %s: %s", c->path, c->line, section, name, msg);
    else
        snprintf(c->err, c->errlen, "%s:%d: %s: %s", c->path, c->line, name, msg);
    return 0;
}

/* inih's reader callback, counting lines. inih would split a line longer
 * than its buffer and parse the rest as a line of its own: refuse instead. */
static char *read_line(char *buf, int size, void *user)
{
    struct file_ctx *c = user;
    if (c->err_line)
        return NULL;
    errno = 0;
    if (!fgets(buf, size, c->f)) {
        /* fgets says NULL for a read error as for the end: a directory
         * (which fopen opens, read() then fails with EISDIR) or an I/O error
         * would otherwise read as an empty file, i.e. all defaults. */
        if (ferror(c->f))
            c->read_errno = errno ? errno : EIO;
        return NULL;
    }
    c->line++;
    size_t len = strlen(buf);
    if (len + 1 < (size_t)size || buf[len - 1] == '\n')
        return buf;
    int next = getc(c->f);
    if (next == EOF)
        return buf;
    c->err_line = c->line;
    snprintf(c->err, c->errlen, "%s:%d: line longer than %d characters", c->path, c->line,
             size - 2);
    return NULL;
}

static int load_file(struct eddy_config *cfg, const char *path, char *err, size_t errlen)
{
    struct file_ctx c = {.cfg = cfg, .path = path, .err = err, .errlen = errlen};
    c.f = fopen(path, "r");
    if (!c.f) {
        snprintf(err, errlen, "%s: cannot open: %s", path, strerror(errno));
        return -1;
    }
    int rc = ini_parse_stream(read_line, &c, on_ini_value, &c);
    fclose(c.f);
    if (c.read_errno) {
        snprintf(err, errlen, "%s: cannot read: %s", path, strerror(c.read_errno));
        return -1;
    }
    /* rc is the first line inih found wrong, ours included. */
    if (rc > 0 && (!c.err_line || rc < c.err_line)) {
        snprintf(err, errlen, "%s:%d: syntax error: expected [section] or key = value", path,
                 rc);
        return -1;
    }
    return c.err_line || rc ? -1 : 0;
}

/* ---- the environment ---------------------------------------------------- */

/* EDDY_<SECTION>_<KEY>: upper case, '.' -> '_'. */
static void env_name(const char *section, const char *key, char *buf, size_t n)
{
    snprintf(buf, n, "EDDY_%s_%s", section, key);
    for (char *p = buf; *p; p++)
        *p = *p == '.' ? '_' : (char)toupper((unsigned char)*p);
}

/* The reverse for librdkafka keys, which have no '_': SASL_PASSWORD -> sasl.password */
static void pass_key(const char *s, char *buf, size_t n)
{
    snprintf(buf, n, "%s", s);
    for (char *p = buf; *p; p++)
        *p = *p == '_' ? '.' : (char)tolower((unsigned char)*p);
}

/* Applies one EDDY_* variable. Variables outside eddy's sections are not
 * ours; inside one, a name that matches no key is an error (a typo). */
static bool env_value(struct eddy_config *cfg, const char *var, const char *value, char *msg,
                      size_t n)
{
    char want[256];
    for (size_t s = 0; s < N_SECTIONS; s++) {
        env_name(sections[s].name, "", want, sizeof want);
        if (strncmp(var, want, strlen(want)))
            continue;
        const char *rest = var + strlen(want);
        if (!strcmp(sections[s].name, "kafka") &&
            !strncmp(rest, ENV_PASS_PREFIX, strlen(ENV_PASS_PREFIX))) {
            pass_key(rest + strlen(ENV_PASS_PREFIX), want, sizeof want);
            return pass_set(cfg, want, value, true, msg, n);
        }
        for (size_t i = 0; i < N_KEYS; i++) {
            env_name(keys[i].section, keys[i].name, want, sizeof want);
            if (!strcmp(var, want))
                return key_set(&keys[i], cfg, value, msg, n);
        }
        snprintf(msg, n, "matches no key of [%s]%s", sections[s].name,
                 strcmp(sections[s].name, "kafka") ? ""
                                                   : " (librdkafka properties are EDDY_KAFKA_KAFKA_*)");
        return false;
    }
    return true;
}

static int load_env(struct eddy_config *cfg, char *err, size_t errlen)
{
    char msg[384];
    for (char **e = environ; *e; e++) {
        const char *eq = strchr(*e, '=');
        if (strncmp(*e, "EDDY_", 5) || !eq)
            continue;
        char *var = strndup(*e, (size_t)(eq - *e));
        bool ok = var && env_value(cfg, var, eq + 1, msg, sizeof msg);
        if (!ok)
            snprintf(err, errlen, "%s: %s", var ? var : "EDDY_*", var ? msg : "out of memory");
        free(var);
        if (!ok)
            return -1;
    }
    return 0;
}

/* ---- the interface ------------------------------------------------------ */

static int load_defaults(struct eddy_config *cfg, char *err, size_t errlen)
{
    char msg[384];
    for (size_t i = 0; i < N_KEYS; i++)
        if (!key_set(&keys[i], cfg, keys[i].def, msg, sizeof msg)) {
            snprintf(err, errlen, "built-in default of [%s] %s: %s", keys[i].section,
                     keys[i].name, msg);
            return -1;
        }
    return 0;
}

int config_load(struct eddy_config *cfg, const char *path, char *err, size_t errlen)
{
    memset(cfg, 0, sizeof *cfg);
    if (load_defaults(cfg, err, errlen) || (path && load_file(cfg, path, err, errlen)) ||
        load_env(cfg, err, errlen)) {
        config_free(cfg);
        return -1;
    }
    return 0;
}

void config_free(struct eddy_config *cfg)
{
    for (size_t i = 0; i < N_KEYS; i++)
        if (keys[i].set == set_str || keys[i].set == set_name)
            free(*(char **)((char *)cfg + keys[i].off));
    for (size_t i = 0; i < cfg->n_kafka_props; i++) {
        free(cfg->kafka_props[i].key);
        free(cfg->kafka_props[i].value);
    }
    free(cfg->kafka_props);
    memset(cfg, 0, sizeof *cfg);
}

/* Each line of text as a comment. */
static void print_comment(FILE *out, const char *text)
{
    while (*text) {
        size_t len = strcspn(text, "\n");
        fprintf(out, "# %.*s\n", (int)len, text);
        text += len + (text[len] == '\n');
    }
}

static void print_key(FILE *out, const struct key_def *k)
{
    char note[64] = "";
    if (k->set == set_name)
        snprintf(note, sizeof note, " (required)");
    else if (k->min != k->max && isinf(k->max))
        snprintf(note, sizeof note, " (>= %g)", k->min);
    else if (k->min != k->max)
        snprintf(note, sizeof note, " (%g to %g)", k->min, k->max);
    fprintf(out, "# %s%s.\n%s =%s%s\n", k->desc, note, k->name, *k->def ? " " : "", k->def);
}

/* The value of key k in cfg, as text. */
static void format_value(const struct eddy_config *cfg, const struct key_def *k, char *buf,
                         size_t len)
{
    const void *field = (const char *)cfg + k->off;
    if (k->set == set_str || k->set == set_name) {
        const char *v = *(char *const *)field;
        snprintf(buf, len, "%s", v ? v : "");
    } else if (k->set == set_int) {
        snprintf(buf, len, "%d", *(const int *)field);
    } else if (k->set == set_i64) {
        snprintf(buf, len, "%lld", (long long)*(const int64_t *)field);
    } else if (k->set == set_u64) {
        snprintf(buf, len, "%llu", (unsigned long long)*(const uint64_t *)field);
    } else if (k->set == set_float) {
        snprintf(buf, len, "%.7g", (double)*(const float *)field);
    } else if (k->set == set_double) {
        snprintf(buf, len, "%.15g", *(const double *)field);
    } else { /* set_multipliers */
        const struct bid_params *b = field;
        size_t used = 0;
        buf[0] = '\0';
        for (int i = 0; i < b->n_actions && used < len; i++)
            used += (size_t)snprintf(buf + used, len - used, "%s%g", i ? "," : "",
                                     b->multipliers[i]);
    }
}

void config_each_model_value(const struct eddy_config *cfg,
                             void (*fn)(void *ctx, const char *key, const char *value),
                             void *ctx)
{
    static const char *const model_sections[] = {"embeddings", "recommend", "bidding", "state"};
    for (size_t s = 0; s < sizeof model_sections / sizeof model_sections[0]; s++)
        for (size_t i = 0; i < N_KEYS; i++) {
            if (strcmp(keys[i].section, model_sections[s]))
                continue;
            char key[96], value[256];
            snprintf(key, sizeof key, "%s.%s", keys[i].section, keys[i].name);
            format_value(cfg, &keys[i], value, sizeof value);
            fn(ctx, key, value);
        }
}

void config_print_keys(FILE *out)
{
    for (size_t s = 0; s < N_SECTIONS; s++) {
        fprintf(out, "%s[%s]\n", s ? "\n" : "", sections[s].name);
        print_comment(out, sections[s].desc);
        for (size_t i = 0; i < N_KEYS; i++)
            if (!strcmp(keys[i].section, sections[s].name)) {
                fputc('\n', out);
                print_key(out, &keys[i]);
            }
    }
}
