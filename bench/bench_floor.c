/* bench_floor.c: the floor under bench_kafka.py's latency rows.
 *
 * Usage: bench_floor BOOTSTRAP TOPIC OUT
 *
 * A bare librdkafka consumer, in a group of its own, with eddy's latency
 * settings (fetch.wait.max.ms = 1), reads TOPIC from the beginning until
 * SIGTERM or SIGINT, and then writes to OUT one line per record (it prints
 * "assigned" on stdout once the group has given it its partitions):
 * "TIMESTAMP LATENCY", both in ms, where TIMESTAMP is the record's Kafka
 * timestamp (set by the producer's produce call) and LATENCY the wall time
 * it reached this process minus TIMESTAMP. Run beside eddy on the same input
 * in the same run, it tells how much of eddy's latency is the broker's, the
 * machine's and librdkafka's, and how much is eddy's own. */
#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <librdkafka/rdkafka.h>

static volatile sig_atomic_t stopping;

static void on_stop(int sig)
{
    (void)sig;
    stopping = 1;
}

static void die(const char *what, const char *why)
{
    fprintf(stderr, "bench_floor: %s: %s\n", what, why);
    exit(1);
}

static int64_t wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Says when the partitions are ours, so that the producer can start then
 * and not sit in a backlog while the group forms. */
static void on_rebalance(rd_kafka_t *rk, rd_kafka_resp_err_t e,
                         rd_kafka_topic_partition_list_t *partitions, void *opaque)
{
    (void)opaque;
    if (e == RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS) {
        rd_kafka_assign(rk, partitions);
        if (partitions->cnt > 0) {
            printf("assigned\n");
            fflush(stdout);
        }
    } else {
        rd_kafka_assign(rk, NULL);
    }
}

static rd_kafka_t *consumer(const char *bootstrap, const char *topic)
{
    static const char *const settings[][2] = {
        {"group.id", "bench-floor"},
        {"fetch.wait.max.ms", "1"}, /* as bench_kafka.py gives eddy */
        {"auto.offset.reset", "earliest"},
        {"enable.auto.commit", "false"},
    };
    char err[512];
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    if (rd_kafka_conf_set(conf, "bootstrap.servers", bootstrap, err, sizeof err))
        die("bootstrap.servers", err);
    for (size_t i = 0; i < sizeof settings / sizeof *settings; i++)
        if (rd_kafka_conf_set(conf, settings[i][0], settings[i][1], err, sizeof err))
            die(settings[i][0], err);
    rd_kafka_conf_set_rebalance_cb(conf, on_rebalance);
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, err, sizeof err);
    if (!rk)
        die("consumer", err);
    rd_kafka_poll_set_consumer(rk);
    rd_kafka_topic_partition_list_t *topics = rd_kafka_topic_partition_list_new(1);
    rd_kafka_topic_partition_list_add(topics, topic, RD_KAFKA_PARTITION_UA);
    rd_kafka_resp_err_t e = rd_kafka_subscribe(rk, topics);
    rd_kafka_topic_partition_list_destroy(topics);
    if (e)
        die("subscribe", rd_kafka_err2str(e));
    return rk;
}

int main(int argc, char **argv)
{
    if (argc != 4) {
        fprintf(stderr, "usage: bench_floor BOOTSTRAP TOPIC OUT\n");
        return 2;
    }
    signal(SIGTERM, on_stop);
    signal(SIGINT, on_stop);
    rd_kafka_t *rk = consumer(argv[1], argv[2]);
    size_t n = 0, cap = 1 << 16;
    int64_t (*samples)[2] = malloc(cap * sizeof *samples);
    while (!stopping && samples) {
        rd_kafka_message_t *m = rd_kafka_consumer_poll(rk, 100);
        if (!m)
            continue;
        int64_t arrived = wall_ms();
        if (!m->err) {
            if (n == cap)
                samples = realloc(samples, (cap *= 2) * sizeof *samples);
            if (samples) {
                int64_t ts = rd_kafka_message_timestamp(m, NULL);
                samples[n][0] = ts;
                samples[n++][1] = arrived - ts;
            }
        }
        rd_kafka_message_destroy(m);
    }
    if (!samples)
        die("samples", strerror(ENOMEM));
    rd_kafka_consumer_close(rk);
    rd_kafka_destroy(rk);
    FILE *out = fopen(argv[3], "w");
    if (!out)
        die(argv[3], strerror(errno));
    for (size_t i = 0; i < n; i++)
        fprintf(out, "%" PRId64 " %" PRId64 "\n", samples[i][0], samples[i][1]);
    if (fclose(out))
        die(argv[3], strerror(errno));
    free(samples);
    return 0;
}
