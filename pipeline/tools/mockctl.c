/* mockctl.c: the fault-injection line protocol of mockctl.h, on top of
 * librdkafka's mock API. Parsing is kept apart from execution so the
 * grammar can be tested without a cluster. */
#include "pipeline/tools/mockctl.h"

#include <ctype.h>
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "pipeline/kafka/kafka.h"

#define MAX_WORDS 8
#define MAX_ERRORS 100000        /* "errors" COUNT: each is a pushed entry */
#define MAX_PRODUCE 10000000     /* "produce" COUNT */
#define MAX_RECORD 1000000       /* "produce" SIZE: librdkafka's default message.max.bytes */
#define MAX_RTT_MS 600000
#define MAX_BROKER 1024
#define META_TIMEOUT_MS 5000
#define PRODUCE_TIMEOUT_MS 30000

/* Kafka protocol ApiKeys (the numbers are the protocol's, not librdkafka's:
 * its RD_KAFKAP_* names are in a header it does not install). */
static const struct {
    const char *name;
    int16_t key;
} apis[] = {
    {"produce", 0},         {"fetch", 1},           {"listoffsets", 2},
    {"metadata", 3},        {"commit", 8},          {"offsetcommit", 8},
    {"offsetfetch", 9},     {"findcoordinator", 10}, {"joingroup", 11},
    {"heartbeat", 12},      {"leavegroup", 13},     {"syncgroup", 14},
    {"initproducerid", 22},
};

#define USAGE_DOWN "down BROKER"
#define USAGE_UP "up BROKER"
#define USAGE_RTT "rtt BROKER MS"
#define USAGE_ERRORS "errors API COUNT ERROR [BROKER]"
#define USAGE_LEADER "leader TOPIC PARTITION|* BROKER"
#define USAGE_COORD "coordinator group|transaction KEY BROKER"
#define USAGE_PRODUCE "produce TOPIC PARTITION COUNT SIZE"

/* Splits s in place at blanks. Returns the number of words, or MAX_WORDS + 1
 * when there are more than MAX_WORDS. */
static int split(char *s, char **w)
{
    int n = 0;
    for (;;) {
        while (*s == ' ' || *s == '\t' || *s == '\r')
            s++;
        if (!*s)
            return n;
        if (n == MAX_WORDS)
            return MAX_WORDS + 1;
        w[n++] = s;
        while (*s && *s != ' ' && *s != '\t' && *s != '\r')
            s++;
        if (*s)
            *s++ = '\0';
    }
}

/* A decimal integer in [lo, hi], nothing else. */
static int parse_int(const char *s, long long lo, long long hi, long long *out)
{
    char *end;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (!*s || *end || errno || v < lo || v > hi || !(isdigit((unsigned char)*s) || *s == '-'))
        return -1;
    *out = v;
    return 0;
}

static int parse_broker(const char *s, int32_t *out, char *err, size_t errlen)
{
    long long v;
    if (parse_int(s, 1, MAX_BROKER, &v)) {
        snprintf(err, errlen, "bad broker id \"%s\" (brokers are numbered from 1)", s);
        return -1;
    }
    *out = (int32_t)v;
    return 0;
}

static int parse_api(const char *s, int16_t *out, char *err, size_t errlen)
{
    for (size_t i = 0; i < sizeof apis / sizeof apis[0]; i++)
        if (!strcasecmp(s, apis[i].name)) {
            *out = apis[i].key;
            return 0;
        }
    snprintf(err, errlen,
             "unknown API \"%s\" (produce, fetch, listoffsets, metadata, commit, offsetfetch, "
             "findcoordinator, joingroup, heartbeat, leavegroup, syncgroup, initproducerid)",
             s);
    return -1;
}

/* A Kafka error by librdkafka's name for it (rd_kafka_get_err_descs(),
 * with or without the RD_KAFKA_RESP_ERR_ prefix, any case) or number. Only
 * errors a broker can send: librdkafka's own (negative, "_TRANSPORT" and so
 * on) would go onto the wire as nonsense. */
static int parse_error(const char *s, rd_kafka_resp_err_t *out, char *err, size_t errlen)
{
    static const char prefix[] = "RD_KAFKA_RESP_ERR_";
    const char *name = strncasecmp(s, prefix, sizeof prefix - 1) ? s : s + sizeof prefix - 1;
    long long v;
    bool found = false;
    if (!parse_int(name, -1000000, 1000000, &v)) {
        found = true;
    } else {
        const struct rd_kafka_err_desc *d;
        size_t n;
        rd_kafka_get_err_descs(&d, &n);
        for (size_t i = 0; i < n && !found; i++)
            if (d[i].name && !strcasecmp(d[i].name, name)) {
                v = d[i].code;
                found = true;
            }
    }
    if (!found) {
        snprintf(err, errlen, "unknown Kafka error \"%s\" (e.g. NOT_LEADER_FOR_PARTITION, "
                              "REQUEST_TIMED_OUT, BROKER_NOT_AVAILABLE)", s);
        return -1;
    }
    if (v < 0 || v > INT16_MAX) {
        snprintf(err, errlen, "\"%s\" is not an error a broker sends", s);
        return -1;
    }
    *out = (rd_kafka_resp_err_t)v;
    return 0;
}

/* Kafka's legal topic names: 1-249 of [a-zA-Z0-9._-]. Checked here so that
 * a typo is an error rather than an oddly named topic. */
static int parse_topic(const char *s, char *out, size_t outlen, char *err, size_t errlen)
{
    size_t n = strlen(s);
    bool ok = n >= 1 && n <= 249 && n < outlen;
    for (size_t i = 0; ok && i < n; i++)
        ok = isalnum((unsigned char)s[i]) || s[i] == '.' || s[i] == '_' || s[i] == '-';
    if (!ok) {
        snprintf(err, errlen, "bad topic name \"%.64s\"", s);
        return -1;
    }
    memcpy(out, s, n + 1);
    return 0;
}

static int usage(char *err, size_t errlen, const char *u)
{
    snprintf(err, errlen, "usage: %s", u);
    return -1;
}

int mockctl_parse(const char *line, struct mockctl_cmd *cmd, char *err, size_t errlen)
{
    memset(cmd, 0, sizeof *cmd);
    cmd->broker = -1;
    if (strlen(line) > MOCKCTL_LINE_MAX) {
        snprintf(err, errlen, "line longer than %d bytes", MOCKCTL_LINE_MAX);
        return -1;
    }
    char buf[MOCKCTL_LINE_MAX + 1], *w[MAX_WORDS];
    strcpy(buf, line);
    int n = split(buf, w);
    if (n == 0 || w[0][0] == '#') {
        cmd->op = MOCKCTL_NOP;
        return 0;
    }
    long long v;
    const char *op = w[0];
    if (!strcmp(op, "down") || !strcmp(op, "up")) {
        cmd->op = op[0] == 'd' ? MOCKCTL_DOWN : MOCKCTL_UP;
        if (n != 2)
            return usage(err, errlen, op[0] == 'd' ? USAGE_DOWN : USAGE_UP);
        return parse_broker(w[1], &cmd->broker, err, errlen);
    }
    if (!strcmp(op, "rtt")) {
        cmd->op = MOCKCTL_RTT;
        if (n != 3)
            return usage(err, errlen, USAGE_RTT);
        if (parse_broker(w[1], &cmd->broker, err, errlen))
            return -1;
        if (parse_int(w[2], 0, MAX_RTT_MS, &v)) {
            snprintf(err, errlen, "bad round-trip time \"%s\" (0 to %d ms)", w[2], MAX_RTT_MS);
            return -1;
        }
        cmd->rtt_ms = (int)v;
        return 0;
    }
    if (!strcmp(op, "errors")) {
        cmd->op = MOCKCTL_ERRORS;
        if (n != 4 && n != 5)
            return usage(err, errlen, USAGE_ERRORS);
        if (parse_api(w[1], &cmd->api_key, err, errlen))
            return -1;
        if (parse_int(w[2], 1, MAX_ERRORS, &v)) {
            snprintf(err, errlen, "bad count \"%s\" (1 to %d)", w[2], MAX_ERRORS);
            return -1;
        }
        cmd->count = v;
        if (parse_error(w[3], &cmd->err, err, errlen))
            return -1;
        return n == 5 ? parse_broker(w[4], &cmd->broker, err, errlen) : 0;
    }
    if (!strcmp(op, "leader")) {
        cmd->op = MOCKCTL_LEADER;
        if (n != 4)
            return usage(err, errlen, USAGE_LEADER);
        if (parse_topic(w[1], cmd->name, sizeof cmd->name, err, errlen))
            return -1;
        if (!strcmp(w[2], "*")) {
            cmd->partition = -1;
        } else if (parse_int(w[2], 0, INT32_MAX, &v)) {
            snprintf(err, errlen, "bad partition \"%s\" (a number from 0, or *)", w[2]);
            return -1;
        } else {
            cmd->partition = (int32_t)v;
        }
        return parse_broker(w[3], &cmd->broker, err, errlen);
    }
    if (!strcmp(op, "coordinator")) {
        cmd->op = MOCKCTL_COORDINATOR;
        if (n != 4)
            return usage(err, errlen, USAGE_COORD);
        if (strcmp(w[1], "group") && strcmp(w[1], "transaction")) {
            snprintf(err, errlen, "bad coordinator type \"%.32s\" (group or transaction)", w[1]);
            return -1;
        }
        strcpy(cmd->key_type, w[1]);
        if (strlen(w[2]) >= sizeof cmd->name) {
            snprintf(err, errlen, "%s id longer than %zu bytes", w[1], sizeof cmd->name - 1);
            return -1;
        }
        strcpy(cmd->name, w[2]);
        return parse_broker(w[3], &cmd->broker, err, errlen);
    }
    if (!strcmp(op, "produce")) {
        cmd->op = MOCKCTL_PRODUCE;
        if (n != 5)
            return usage(err, errlen, USAGE_PRODUCE);
        if (parse_topic(w[1], cmd->name, sizeof cmd->name, err, errlen))
            return -1;
        if (parse_int(w[2], 0, INT32_MAX, &v)) {
            snprintf(err, errlen, "bad partition \"%s\"", w[2]);
            return -1;
        }
        cmd->partition = (int32_t)v;
        if (parse_int(w[3], 1, MAX_PRODUCE, &v)) {
            snprintf(err, errlen, "bad count \"%s\" (1 to %d)", w[3], MAX_PRODUCE);
            return -1;
        }
        cmd->count = v;
        if (parse_int(w[4], 0, MAX_RECORD, &v)) {
            snprintf(err, errlen, "bad size \"%s\" (0 to %d bytes)", w[4], MAX_RECORD);
            return -1;
        }
        cmd->size = v;
        return 0;
    }
    snprintf(err, errlen,
             "unknown command \"%.32s\" (down, up, rtt, errors, leader, coordinator, produce)",
             op);
    return -1;
}

/* --- execution ------------------------------------------------------------ */

/* Whether broker id exists. rd_kafka_mock_broker_error_stack_cnt() is the
 * one read-only call that looks a broker up by id; the setters would change
 * it, and rd_kafka_mock_coordinator_set() does not check it at all. */
static bool broker_exists(rd_kafka_mock_cluster_t *mc, int32_t id)
{
    size_t cnt;
    return rd_kafka_mock_broker_error_stack_cnt(mc, id, 0, &cnt) == RD_KAFKA_RESP_ERR_NO_ERROR;
}

static int check_broker(rd_kafka_mock_cluster_t *mc, int32_t id, char *err, size_t errlen)
{
    if (broker_exists(mc, id))
        return 0;
    int32_t n = 0;
    while (n < MAX_BROKER && broker_exists(mc, n + 1))
        n++;
    snprintf(err, errlen, "no broker %d (brokers are 1..%d)", (int)id, (int)n);
    return -1;
}

static int rd_result(rd_kafka_resp_err_t e, char *err, size_t errlen)
{
    if (!e)
        return 0;
    snprintf(err, errlen, "%s", rd_kafka_err2str(e));
    return -1;
}

/* The helper clients' own connection errors (a broker that is down on
 * purpose) would only be noise: failures reach the reply instead. */
static void quiet_log(const rd_kafka_t *rk, int level, const char *fac, const char *buf)
{
    (void)rk, (void)level, (void)fac, (void)buf;
}

struct produce_count {
    int64_t failed;
    rd_kafka_resp_err_t first;
};

static void on_delivery(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque)
{
    (void)rk;
    struct produce_count *pc = opaque;
    if (m->err) {
        if (!pc->failed)
            pc->first = m->err;
        pc->failed++;
    }
}

/* A producer connected to mc, also used for metadata. Caller destroys it. */
static rd_kafka_t *client_new(rd_kafka_mock_cluster_t *mc, struct produce_count *pc, char *err,
                              size_t errlen)
{
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    char size[32];
    snprintf(size, sizeof size, "%d", MAX_RECORD + 100000);
    const char *kv[][2] = {
        {"bootstrap.servers", rd_kafka_mock_cluster_bootstraps(mc)},
        /* A metadata request must not create the topic it asks about. */
        {"allow.auto.create.topics", "false"},
        {"socket.nagle.disable", "true"},
        {"linger.ms", "5"},
        {"message.max.bytes", size},
        {"message.timeout.ms", "25000"},
    };
    for (size_t i = 0; i < sizeof kv / sizeof kv[0]; i++)
        if (rd_kafka_conf_set(conf, kv[i][0], kv[i][1], err, errlen) != RD_KAFKA_CONF_OK) {
            rd_kafka_conf_destroy(conf);
            return NULL;
        }
    rd_kafka_conf_set_log_cb(conf, quiet_log);
    rd_kafka_conf_set_dr_msg_cb(conf, on_delivery);
    rd_kafka_conf_set_opaque(conf, pc);
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, err, errlen);
    if (!rk)
        rd_kafka_conf_destroy(conf); /* rd_kafka_new takes ownership only on success */
    return rk;
}

/* The partition count of topic, from the cluster's metadata of all topics
 * (asking about one topic could create it on the mock). */
static int topic_partitions(rd_kafka_t *rk, const char *topic, int *n, char *err, size_t errlen)
{
    const struct rd_kafka_metadata *md;
    rd_kafka_resp_err_t e = rd_kafka_metadata(rk, 1, NULL, &md, META_TIMEOUT_MS);
    if (e) {
        snprintf(err, errlen, "cannot read the cluster's metadata: %s", rd_kafka_err2str(e));
        return -1;
    }
    *n = -1;
    for (int i = 0; i < md->topic_cnt; i++)
        if (!strcmp(md->topics[i].topic, topic))
            *n = md->topics[i].partition_cnt;
    rd_kafka_metadata_destroy(md);
    if (*n < 0) {
        snprintf(err, errlen, "no topic \"%s\"", topic);
        return -1;
    }
    return 0;
}

static int check_partition(int32_t p, int n, const char *topic, char *err, size_t errlen)
{
    if (p < n)
        return 0;
    snprintf(err, errlen, "no partition %d in topic \"%s\" (it has %d)", (int)p, topic, n);
    return -1;
}

static int run_leader(rd_kafka_mock_cluster_t *mc, const struct mockctl_cmd *c, char *err,
                      size_t errlen)
{
    if (check_broker(mc, c->broker, err, errlen))
        return -1;
    struct produce_count pc = {0, 0};
    rd_kafka_t *rk = client_new(mc, &pc, err, errlen);
    if (!rk)
        return -1;
    int n, rc = topic_partitions(rk, c->name, &n, err, errlen);
    rd_kafka_destroy(rk);
    if (rc || (c->partition >= 0 && check_partition(c->partition, n, c->name, err, errlen)))
        return -1;
    int32_t lo = c->partition < 0 ? 0 : c->partition, hi = c->partition < 0 ? n : lo + 1;
    for (int32_t p = lo; p < hi; p++)
        if (rd_result(rd_kafka_mock_partition_set_leader(mc, c->name, p, c->broker), err, errlen))
            return -1;
    return 0;
}

/* xorshift64*: incompressible enough that records take their full size in
 * the mock's log, cheap enough for millions of records. */
static uint64_t next_random(uint64_t *s)
{
    *s ^= *s >> 12;
    *s ^= *s << 25;
    *s ^= *s >> 27;
    return *s * 0x2545F4914F6CDD1DULL;
}

static int run_produce(rd_kafka_mock_cluster_t *mc, const struct mockctl_cmd *c, char *err,
                       size_t errlen)
{
    struct produce_count pc = {0, 0};
    rd_kafka_t *rk = client_new(mc, &pc, err, errlen);
    if (!rk)
        return -1;
    int rc = -1, n;
    char *buf = malloc((size_t)c->size + 8);
    if (!buf) {
        snprintf(err, errlen, "out of memory");
        goto out;
    }
    if (topic_partitions(rk, c->name, &n, err, errlen) ||
        check_partition(c->partition, n, c->name, err, errlen))
        goto out;
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    uint64_t seed = ((uint64_t)ts.tv_nsec * 2654435761u + (uint64_t)ts.tv_sec) | 1; /* never 0 */
    int64_t i = 0;
    for (; i < c->count; i++) {
        for (int64_t j = 0; j < c->size; j += 8) {
            uint64_t r = next_random(&seed);
            memcpy(buf + j, &r, 8);
        }
        rd_kafka_resp_err_t e =
            kafka_produce_copy(rk, c->name, c->partition, NULL, 0, buf, (size_t)c->size);
        if (e) {
            snprintf(err, errlen, "record %lld of %lld not produced: %s", (long long)i + 1,
                     (long long)c->count, rd_kafka_err2str(e));
            goto out;
        }
        rd_kafka_poll(rk, 0);
    }
    rd_kafka_flush(rk, PRODUCE_TIMEOUT_MS);
    int64_t left = rd_kafka_outq_len(rk);
    if (pc.failed || left) {
        snprintf(err, errlen, "%lld of %lld records not delivered: %s",
                 (long long)(pc.failed + left), (long long)c->count,
                 pc.failed ? rd_kafka_err2str(pc.first) : "timed out");
        goto out;
    }
    rc = 0;
out:
    /* Whatever did not go out in time must not hold rd_kafka_destroy() up. */
    rd_kafka_purge(rk, RD_KAFKA_PURGE_F_QUEUE | RD_KAFKA_PURGE_F_INFLIGHT);
    rd_kafka_poll(rk, 0);
    rd_kafka_destroy(rk);
    free(buf);
    return rc;
}

static int run(rd_kafka_mock_cluster_t *mc, const struct mockctl_cmd *c, char *err, size_t errlen)
{
    switch (c->op) {
    case MOCKCTL_NOP:
        return 0;
    case MOCKCTL_DOWN:
        return check_broker(mc, c->broker, err, errlen) ||
                       rd_result(rd_kafka_mock_broker_set_down(mc, c->broker), err, errlen)
                   ? -1
                   : 0;
    case MOCKCTL_UP:
        return check_broker(mc, c->broker, err, errlen) ||
                       rd_result(rd_kafka_mock_broker_set_up(mc, c->broker), err, errlen)
                   ? -1
                   : 0;
    case MOCKCTL_RTT:
        return check_broker(mc, c->broker, err, errlen) ||
                       rd_result(rd_kafka_mock_broker_set_rtt(mc, c->broker, c->rtt_ms), err,
                                 errlen)
                   ? -1
                   : 0;
    case MOCKCTL_ERRORS:
        if (c->broker < 0) {
            rd_kafka_resp_err_t *errs = malloc((size_t)c->count * sizeof *errs);
            if (!errs) {
                snprintf(err, errlen, "out of memory");
                return -1;
            }
            for (int64_t i = 0; i < c->count; i++)
                errs[i] = c->err;
            rd_kafka_mock_push_request_errors_array(mc, c->api_key, (size_t)c->count, errs);
            free(errs);
            return 0;
        }
        if (check_broker(mc, c->broker, err, errlen))
            return -1;
        /* The per-broker stack takes (error, rtt) pairs as varargs only:
         * push them one at a time. */
        for (int64_t i = 0; i < c->count; i++)
            if (rd_result(rd_kafka_mock_broker_push_request_error_rtts(mc, c->broker, c->api_key,
                                                                      1, c->err, 0),
                          err, errlen))
                return -1;
        return 0;
    case MOCKCTL_LEADER:
        return run_leader(mc, c, err, errlen);
    case MOCKCTL_COORDINATOR:
        return check_broker(mc, c->broker, err, errlen) ||
                       rd_result(rd_kafka_mock_coordinator_set(mc, c->key_type, c->name,
                                                               c->broker),
                                 err, errlen)
                   ? -1
                   : 0;
    case MOCKCTL_PRODUCE:
        return run_produce(mc, c, err, errlen);
    }
    snprintf(err, errlen, "unknown operation");
    return -1;
}

int mockctl_exec(rd_kafka_mock_cluster_t *mc, const char *line, char *reply, size_t replylen)
{
    struct mockctl_cmd cmd;
    char err[512];
    if (mockctl_parse(line, &cmd, err, sizeof err) || run(mc, &cmd, err, sizeof err)) {
        snprintf(reply, replylen, "error: %s", err);
        /* One reply, one line, whatever an error string holds. */
        for (char *p = reply; *p; p++)
            if (*p == '\n' || *p == '\r')
                *p = ' ';
        return -1;
    }
    snprintf(reply, replylen, "ok");
    return 0;
}

/* --- the server thread ------------------------------------------------------ */

struct mockctl_server {
    rd_kafka_mock_cluster_t *mc;
    int in_fd;
    FILE *out;
    int stop[2]; /* a pipe: a byte on it ends the thread's poll() */
    pthread_t thread;
};

static void reply_line(struct mockctl_server *s, const char *reply)
{
    fprintf(s->out, "%s\n", reply);
    fflush(s->out);
}

static void serve_line(struct mockctl_server *s, const char *line)
{
    char reply[1024];
    mockctl_exec(s->mc, line, reply, sizeof reply);
    reply_line(s, reply);
}

/* Reads with poll() and read() rather than stdio, so that stopping never
 * has to interrupt a thread blocked inside getline(). */
static void *serve(void *arg)
{
    struct mockctl_server *s = arg;
    char buf[MOCKCTL_LINE_MAX + 2];
    size_t len = 0;
    bool too_long = false; /* inside a line that overflowed buf: drop it */
    for (;;) {
        struct pollfd p[2] = {{.fd = s->stop[0], .events = POLLIN},
                              {.fd = s->in_fd, .events = POLLIN}};
        if (poll(p, 2, -1) < 0) {
            if (errno == EINTR)
                continue;
            return NULL;
        }
        if (p[0].revents)
            return NULL;
        if (!p[1].revents)
            continue;
        ssize_t n = read(s->in_fd, buf + len, sizeof buf - 1 - len);
        if (n < 0 && (errno == EINTR || errno == EAGAIN))
            continue;
        if (n <= 0) {
            /* End of input: a last line without newline still counts. The
             * cluster keeps running until the process gets its signal. */
            if (len && !too_long) {
                buf[len] = '\0';
                serve_line(s, buf);
            }
            return NULL;
        }
        len += (size_t)n;
        char *start = buf, *nl;
        while ((nl = memchr(start, '\n', len - (size_t)(start - buf)))) {
            *nl = '\0';
            if (too_long) {
                char reply[64];
                snprintf(reply, sizeof reply, "error: line longer than %d bytes",
                         MOCKCTL_LINE_MAX);
                reply_line(s, reply);
                too_long = false;
            } else {
                serve_line(s, start);
            }
            start = nl + 1;
        }
        len -= (size_t)(start - buf);
        memmove(buf, start, len);
        if (len == sizeof buf - 1) {
            too_long = true;
            len = 0;
        }
    }
}

int mockctl_serve_start(struct mockctl_server **out_srv, rd_kafka_mock_cluster_t *mc, int in_fd,
                        FILE *out, char *err, size_t errlen)
{
    struct mockctl_server *s = calloc(1, sizeof *s);
    if (!s) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    s->mc = mc;
    s->in_fd = in_fd;
    s->out = out;
    if (pipe(s->stop)) {
        snprintf(err, errlen, "pipe: %s", strerror(errno));
        free(s);
        return -1;
    }
    int e = pthread_create(&s->thread, NULL, serve, s);
    if (e) {
        snprintf(err, errlen, "cannot start the control thread: %s", strerror(e));
        close(s->stop[0]);
        close(s->stop[1]);
        free(s);
        return -1;
    }
    *out_srv = s;
    return 0;
}

void mockctl_serve_stop(struct mockctl_server *s)
{
    if (!s)
        return;
    /* If the thread already returned (end of input), the byte is never read:
     * harmless, the pipe is closed below. */
    ssize_t w;
    do
        w = write(s->stop[1], "x", 1);
    while (w < 0 && errno == EINTR);
    pthread_join(s->thread, NULL);
    close(s->stop[0]);
    close(s->stop[1]);
    free(s);
}
