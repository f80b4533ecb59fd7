/* config.c: the keys, eddy's own (the table below) and those each operator
 * of the chain declares (operators/params.h), filled from three sources in
 * order: built-in defaults, the INI file (parsed by inih) and EDDY_*
 * environment variables. The same keys validate values and print the
 * documented key list. */
#include "pipeline/run/config.h"

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

struct key;
/* Stores value in the field the key points at. On a bad value returns false
 * and writes why, phrased to follow the quoted value ("is not an integer"). */
typedef bool (*key_setter)(const struct key *k, void *field, const char *value, char *why,
                           size_t whylen);

struct key_def {
    const char *section, *name;
    key_setter set;
    const char *def;      /* the default, as text: it goes through set() too */
    size_t off;           /* of the field in struct eddy_config */
    double min, max;      /* inclusive range of a number; min == max: none */
    const char *desc;     /* one line, no final period */
};

enum { CORE = -1 };

/* A key of the combined list: one of eddy's own, or one an operator
 * declares, described as eddy's own are (off then counts in the operator's
 * parameter struct). */
struct key {
    struct key_def d;
    int op;                         /* CORE, or the operator's index in chain_operators[] */
    const struct eddy_param *param; /* the operator's descriptor; NULL for CORE */
};

static bool set_str(const struct key *, void *, const char *, char *, size_t);
static bool set_name(const struct key *, void *, const char *, char *, size_t);
static bool set_int(const struct key *, void *, const char *, char *, size_t);
static bool set_i64(const struct key *, void *, const char *, char *, size_t);
static bool set_u64(const struct key *, void *, const char *, char *, size_t);
static bool set_float(const struct key *, void *, const char *, char *, size_t);
static bool set_double(const struct key *, void *, const char *, char *, size_t);
static bool set_positive_list(const struct key *, void *, const char *, char *, size_t);
static bool set_offset_reset(const struct key *, void *, const char *, char *, size_t);
static bool set_choice(const struct key *, void *, const char *, char *, size_t);

static const key_setter param_setters[PARAM_TYPES] = {
    [PARAM_INT] = set_int,       [PARAM_INT64] = set_i64,   [PARAM_UINT64] = set_u64,
    [PARAM_FLOAT] = set_float,   [PARAM_DOUBLE] = set_double,
    [PARAM_POSITIVE_LIST] = set_positive_list, [PARAM_CHOICE] = set_choice,
};

struct section {
    const char *name, *desc;
};

/* Eddy's own sections, in the order --help lists them; OPERATOR_SECTIONS
 * marks where the operators' go, in chain order. */
#define OPERATOR_SECTIONS {NULL, NULL}
static const struct section core_sections[] = {
    {"kafka", "Kafka connection. Any other key starting \"kafka.\" goes to librdkafka\n"
              "with the prefix stripped (but for the few that eddy sets itself, an error\n"
              "names them), for example:\n"
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
    OPERATOR_SECTIONS,
    {"http", "The HTTP endpoint: /metrics, /healthz, /readyz,\n"
             "/users/{id}/recommendations, /campaigns/{id}."},
    {"health", "What /healthz (liveness) and /readyz (readiness) report."},
};

#define INF INFINITY
static const struct key_def core_keys[] = {
    {"kafka", "bootstrap.servers", set_name, "localhost:9092", OFF(bootstrap_servers), 0, 0,
     "Brokers to bootstrap from: host:port, comma separated"},
    {"kafka", "group.id", set_name, "eddy", OFF(group_id), 0, 0,
     "Consumer group: eddy processes in one group share the input partitions"},
    {"kafka", "offset.reset", set_offset_reset, "fail", OFF(offset_reset_earliest), 0, 0,
     "A stored offset outside a partition's log: fail (stop with an error) or earliest "
     "(resume at the log start, counting the records skipped)"},
    {"kafka", "shutdown.timeout.ms", set_i64, "10000", OFF(shutdown_timeout_ms), 0, INF,
     "Longest a shutdown waits for outputs to be delivered and the group to be left, in ms"},
    {"kafka", "budgets.wait.ms", set_i64, "30000", OFF(budgets_wait_ms), 0, INF,
     "At an assignment, longest the other input waits for the campaigns partitions to be "
     "read to their end, so that budgets come before ad events, in ms (0: no wait)"},
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

    {"time", "lateness.ms", set_i64, "0", OFF(lateness_ms), 0, 86400000,
     "Out-of-order lateness the watermarks tolerate, in ms of event time"},

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
#define N_CORE_KEYS (sizeof core_keys / sizeof core_keys[0])
#define N_CORE_SECTIONS (sizeof core_sections / sizeof core_sections[0])

/* ---- the combined list -------------------------------------------------- */

static size_t n_keys(void)
{
    size_t n = N_CORE_KEYS;
    for (int i = 0; i < CHAIN_OPS; i++)
        n += chain_operators[i]->n_params;
    return n;
}

/* Key i < n_keys(): eddy's own first, then each operator's in chain order. */
static struct key key_at(size_t i)
{
    if (i < N_CORE_KEYS)
        return (struct key){core_keys[i], CORE, NULL};
    i -= N_CORE_KEYS;
    int op = 0;
    while (i >= chain_operators[op]->n_params)
        i -= chain_operators[op++]->n_params;
    const struct eddy_operator *o = chain_operators[op];
    const struct eddy_param *p = &o->params[i];
    return (struct key){{o->section, p->key, param_setters[p->type], p->def, p->off, p->min,
                         p->max, p->help},
                        op, p};
}

static size_t n_sections(void)
{
    return N_CORE_SECTIONS - 1 + CHAIN_OPS; /* the marker stands for the operators */
}

/* Section i < n_sections(), in the order --help lists them. */
static struct section section_at(size_t i)
{
    size_t ops_at = 0;
    while (core_sections[ops_at].name)
        ops_at++;
    if (i < ops_at)
        return core_sections[i];
    if (i < ops_at + CHAIN_OPS)
        return (struct section){chain_operators[i - ops_at]->section,
                                chain_operators[i - ops_at]->section_help};
    return core_sections[i - CHAIN_OPS + 1];
}

/* The field that holds k's value: in cfg, or in its operator's parameters. */
static void *field_of(const struct eddy_config *cfg, const struct key *k)
{
    char *base = k->op == CORE ? (char *)cfg : cfg->op_params[k->op];
    return base + k->d.off;
}

/* ---- values ------------------------------------------------------------- */

static void range_text(const struct key *k, char *buf, size_t n)
{
    if (isinf(k->d.max))
        snprintf(buf, n, "at least %g", k->d.min);
    else
        snprintf(buf, n, "between %g and %g", k->d.min, k->d.max);
}

static bool out_of_range(const struct key *k, double v, char *why, size_t n)
{
    if (v >= k->d.min && v <= k->d.max)
        return false;
    char range[64];
    range_text(k, range, sizeof range);
    snprintf(why, n, "must be %s", range);
    return true;
}

static bool set_offset_reset(const struct key *k, void *field, const char *value,
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

/* One of the parameter's words, stored as its index. */
static bool set_choice(const struct key *k, void *field, const char *value, char *why,
                       size_t n)
{
    const char *const *c = k->param->choices;
    for (int i = 0; c[i]; i++)
        if (!strcmp(value, c[i])) {
            *(int *)field = i;
            return true;
        }
    size_t used = (size_t)snprintf(why, n, "must be one of:");
    for (int i = 0; c[i] && used < n; i++)
        used += (size_t)snprintf(why + used, n - used, " %s", c[i]);
    return false;
}

static bool set_str(const struct key *k, void *field, const char *value, char *why, size_t n)
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
static bool set_name(const struct key *k, void *field, const char *value, char *why, size_t n)
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

static bool set_int(const struct key *k, void *field, const char *value, char *why, size_t n)
{
    long long v;
    if (!parse_ll(value, &v, why, n) || out_of_range(k, (double)v, why, n))
        return false;
    *(int *)field = (int)v;
    return true;
}

static bool set_i64(const struct key *k, void *field, const char *value, char *why, size_t n)
{
    long long v;
    if (!parse_ll(value, &v, why, n) || out_of_range(k, (double)v, why, n))
        return false;
    *(int64_t *)field = v;
    return true;
}

static bool set_u64(const struct key *k, void *field, const char *value, char *why, size_t n)
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

static bool set_float(const struct key *k, void *field, const char *value, char *why, size_t n)
{
    double v;
    if (!parse_number(value, &v, why, n) || out_of_range(k, v, why, n))
        return false;
    *(float *)field = (float)v;
    return true;
}

static bool set_double(const struct key *k, void *field, const char *value, char *why, size_t n)
{
    double v;
    if (!parse_number(value, &v, why, n) || out_of_range(k, v, why, n))
        return false;
    *(double *)field = v;
    return true;
}

/* The int that holds the number of values of list k, whose values are at
 * field: both are in the same parameter struct. */
static int *list_count(const struct key *k, const void *field)
{
    return (int *)((const char *)field - k->d.off + k->param->count_off);
}

/* "0.5, 1, 2" -> the values and their number. The values are written as
 * they are read: a bad one fails the whole load, so a list cut short is never
 * seen. */
static bool set_positive_list(const struct key *k, void *field, const char *value, char *why,
                              size_t n)
{
    int max_count = k->param->max_count;
    double *values = field;
    int count = 0;
    const char *p = value;
    for (;;) {
        char *end;
        if (count == max_count) {
            snprintf(why, n, "has more than %d values", max_count);
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
        values[count++] = v;
        p = end + strspn(end, " \t");
        if (!*p)
            break;
        if (*p++ != ',') {
            snprintf(why, n, "is not a comma-separated list of numbers");
            return false;
        }
    }
    *list_count(k, field) = count;
    return true;
}

/* Values of such keys stay out of error messages and logs. */
static bool is_secret(const char *name)
{
    return strstr(name, "password") || strstr(name, "secret") || strstr(name, "key");
}

static bool key_set(const struct key *k, struct eddy_config *cfg, const char *value, char *msg,
                    size_t n)
{
    char why[128];
    if (k->d.set(k, field_of(cfg, k), value, why, sizeof why))
        return true;
    if (is_secret(k->d.name))
        snprintf(msg, n, "the value %s", why);
    else
        snprintf(msg, n, "\"%s\" %s", value, why);
    return false;
}

/* ---- lookup ------------------------------------------------------------- */

static bool section_known(const char *section)
{
    for (size_t i = 0; i < n_sections(); i++)
        if (!strcmp(section_at(i).name, section))
            return true;
    return false;
}

/* Finds [section] name: true, and its index in the combined list in *i. */
static bool key_find(const char *section, const char *name, size_t *i)
{
    for (*i = 0; *i < n_keys(); (*i)++) {
        struct key k = key_at(*i);
        if (!strcmp(k.d.section, section) && !strcmp(k.d.name, name))
            return true;
    }
    return false;
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
/* librdkafka properties that eddy's guarantees rest on: a pass-through
 * key may not change them. NULL when key is not one, else why. */
static const char *eddy_owned_property(const char *key)
{
    static const char *const owned[][2] = {
        /* librdkafka's reset would jump over records without a trace. */
        {"auto.offset.reset", "use [kafka] offset.reset (fail or earliest)"},
        /* Offsets are committed with the state they produced, never before. */
        {"enable.auto.commit", "offsets are committed with the state (docs/design.md)"},
        {"enable.auto.offset.store", "offsets are committed with the state (docs/design.md)"},
        {"enable.partition.eof", "budgets are read to the partitions' end first (docs/budget.md)"},
    };
    for (size_t i = 0; i < sizeof owned / sizeof owned[0]; i++)
        if (!strcmp(key, owned[i][0]))
            return owned[i][1];
    return NULL;
}

static bool pass_set(struct eddy_config *cfg, const char *key, const char *value, bool replace,
                     char *msg, size_t n)
{
    char *k = NULL, *v = NULL;
    if (!*key) {
        snprintf(msg, n, "names no librdkafka property");
        return false;
    }
    size_t i;
    if (key_find("kafka", key, &i)) {
        snprintf(msg, n, "is eddy's own key: set [kafka] %s instead", key);
        return false;
    }
    const char *why = eddy_owned_property(key);
    if (why) {
        snprintf(msg, n, "is set by eddy: %s", why);
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
    int *set_line;          /* where each key was set, 0 if not yet; as key_at() */
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
    size_t i;
    if (!key_find(section, name, &i)) {
        snprintf(msg, n, "unknown key");
        return false;
    }
    int *first = &c->set_line[i];
    if (*first) {
        snprintf(msg, n, "is set more than once (first on line %d)", *first);
        return false;
    }
    *first = c->line;
    struct key k = key_at(i);
    return key_set(&k, c->cfg, value, msg, n);
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
    c.set_line = calloc(n_keys(), sizeof *c.set_line);
    if (!c.set_line) {
        fclose(c.f);
        snprintf(err, errlen, "%s: out of memory", path);
        return -1;
    }
    int rc = ini_parse_stream(read_line, &c, on_ini_value, &c);
    fclose(c.f);
    free(c.set_line);
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
    for (size_t s = 0; s < n_sections(); s++) {
        const char *section = section_at(s).name;
        env_name(section, "", want, sizeof want);
        if (strncmp(var, want, strlen(want)))
            continue;
        const char *rest = var + strlen(want);
        if (!strcmp(section, "kafka") &&
            !strncmp(rest, ENV_PASS_PREFIX, strlen(ENV_PASS_PREFIX))) {
            pass_key(rest + strlen(ENV_PASS_PREFIX), want, sizeof want);
            return pass_set(cfg, want, value, true, msg, n);
        }
        for (size_t i = 0; i < n_keys(); i++) {
            struct key k = key_at(i);
            env_name(k.d.section, k.d.name, want, sizeof want);
            if (!strcmp(var, want))
                return key_set(&k, cfg, value, msg, n);
        }
        snprintf(msg, n, "matches no key of [%s]%s", section,
                 strcmp(section, "kafka") ? "" : " (librdkafka properties are EDDY_KAFKA_KAFKA_*)");
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

/* A zeroed parameter struct for each operator, to fill from its keys. */
static int alloc_op_params(struct eddy_config *cfg, char *err, size_t errlen)
{
    for (int i = 0; i < CHAIN_OPS; i++)
        if (!(cfg->op_params[i] = calloc(1, chain_operators[i]->params_size))) {
            snprintf(err, errlen, "parameters of [%s]: out of memory", chain_operators[i]->section);
            return -1;
        }
    return 0;
}

static int load_defaults(struct eddy_config *cfg, char *err, size_t errlen)
{
    char msg[384];
    for (size_t i = 0; i < n_keys(); i++) {
        struct key k = key_at(i);
        if (!key_set(&k, cfg, k.d.def, msg, sizeof msg)) {
            snprintf(err, errlen, "built-in default of [%s] %s: %s", k.d.section, k.d.name, msg);
            return -1;
        }
    }
    return 0;
}

int config_load(struct eddy_config *cfg, const char *path, char *err, size_t errlen)
{
    memset(cfg, 0, sizeof *cfg);
    if (alloc_op_params(cfg, err, errlen) || load_defaults(cfg, err, errlen) ||
        (path && load_file(cfg, path, err, errlen)) || load_env(cfg, err, errlen)) {
        config_free(cfg);
        return -1;
    }
    return 0;
}

/* Operators declare no string keys (params.h): only eddy's own hold memory. */
void config_free(struct eddy_config *cfg)
{
    for (size_t i = 0; i < N_CORE_KEYS; i++)
        if (core_keys[i].set == set_str || core_keys[i].set == set_name)
            free(*(char **)((char *)cfg + core_keys[i].off));
    for (int i = 0; i < CHAIN_OPS; i++)
        free(cfg->op_params[i]);
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
static void format_value(const struct eddy_config *cfg, const struct key *k, char *buf,
                         size_t len)
{
    const void *field = field_of(cfg, k);
    key_setter set = k->d.set;
    if (set == set_str || set == set_name) {
        const char *v = *(char *const *)field;
        snprintf(buf, len, "%s", v ? v : "");
    } else if (set == set_int) {
        snprintf(buf, len, "%d", *(const int *)field);
    } else if (set == set_i64) {
        snprintf(buf, len, "%lld", (long long)*(const int64_t *)field);
    } else if (set == set_u64) {
        snprintf(buf, len, "%llu", (unsigned long long)*(const uint64_t *)field);
    } else if (set == set_float) {
        snprintf(buf, len, "%.7g", (double)*(const float *)field);
    } else if (set == set_double) {
        snprintf(buf, len, "%.15g", *(const double *)field);
    } else if (set == set_choice) {
        snprintf(buf, len, "%s", k->param->choices[*(const int *)field]);
    } else { /* set_positive_list */
        const double *v = field;
        int count = *list_count(k, field);
        size_t used = 0;
        buf[0] = '\0';
        for (int i = 0; i < count && used < len; i++)
            used += (size_t)snprintf(buf + used, len - used, "%s%g", i ? "," : "", v[i]);
    }
}

static void each_value_of(const struct eddy_config *cfg, const char *section,
                          void (*fn)(void *ctx, const char *key, const char *value), void *ctx)
{
    for (size_t i = 0; i < n_keys(); i++) {
        struct key k = key_at(i);
        if (strcmp(k.d.section, section))
            continue;
        char key[96], value[256];
        snprintf(key, sizeof key, "%s.%s", k.d.section, k.d.name);
        format_value(cfg, &k, value, sizeof value);
        fn(ctx, key, value);
    }
}

void config_each_model_value(const struct eddy_config *cfg,
                             void (*fn)(void *ctx, const char *key, const char *value),
                             void *ctx)
{
    for (int i = 0; i < CHAIN_OPS; i++)
        each_value_of(cfg, chain_operators[i]->section, fn, ctx);
    each_value_of(cfg, "state", fn, ctx);
}

void config_print_keys(FILE *out)
{
    for (size_t s = 0; s < n_sections(); s++) {
        struct section sec = section_at(s);
        fprintf(out, "%s[%s]\n", s ? "\n" : "", sec.name);
        print_comment(out, sec.desc);
        for (size_t i = 0; i < n_keys(); i++) {
            struct key k = key_at(i);
            if (!strcmp(k.d.section, sec.name)) {
                fputc('\n', out);
                print_key(out, &k.d);
            }
        }
    }
}

void *config_op_params(const struct eddy_config *cfg, const struct eddy_operator *op)
{
    for (int i = 0; i < CHAIN_OPS; i++)
        if (chain_operators[i] == op)
            return cfg->op_params[i];
    return NULL;
}
