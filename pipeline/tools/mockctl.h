/* mockctl.h: a line protocol for injecting faults into librdkafka's mock
 * cluster (rdkafka_mock.h), so that tests, the soak and the demo can take
 * brokers down, slow them, make requests fail and move leaders while eddy
 * runs against it.
 *
 * One command per line, words separated by blanks; every line gets exactly
 * one reply line, "ok" or "error: <why>":
 *
 *   down B | up B                  take broker B (1..N) down / bring it back
 *   rtt B MS                       add MS ms of round-trip time to broker B
 *   errors API COUNT ERR [B]       the next COUNT requests of API fail with ERR
 *                                  (on any broker, or on broker B only)
 *   leader TOPIC PARTITION|* B     make B the leader of one / every partition
 *   coordinator group|transaction KEY B
 *   produce TOPIC PARTITION COUNT SIZE
 *                                  append COUNT records of SIZE bytes
 *
 * API is one of produce, fetch, listoffsets, metadata, commit, offsetfetch,
 * findcoordinator, joingroup, heartbeat, leavegroup, syncgroup,
 * initproducerid; ERR a Kafka error name (NOT_LEADER_FOR_PARTITION, with or
 * without the RD_KAFKA_RESP_ERR_ prefix) or number. An empty line is a no-op
 * answered "ok" (a ping); '#' starts a comment line, also answered "ok". */
#ifndef EDDY_MOCKCTL_H
#define EDDY_MOCKCTL_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>

/* Longest command line accepted, newline excluded. */
#define MOCKCTL_LINE_MAX 1024

enum mockctl_op {
    MOCKCTL_NOP,
    MOCKCTL_DOWN,
    MOCKCTL_UP,
    MOCKCTL_RTT,
    MOCKCTL_ERRORS,
    MOCKCTL_LEADER,
    MOCKCTL_COORDINATOR,
    MOCKCTL_PRODUCE,
};

/* A parsed command. Fields not used by op are left zero. */
struct mockctl_cmd {
    enum mockctl_op op;
    int32_t broker;          /* 1..N; -1 for "errors" on any broker */
    int rtt_ms;
    int16_t api_key;         /* Kafka protocol ApiKey */
    rd_kafka_resp_err_t err;
    int64_t count;
    int32_t partition;       /* -1: every partition ("*") */
    int64_t size;
    char key_type[16];       /* coordinator: "group" or "transaction" */
    char name[256];          /* topic, or the coordinator's key */
};

/* Parses one line (no newline). Checks syntax, names and ranges but not
 * that brokers, topics or partitions exist. Returns 0, or -1 with err set. */
int mockctl_parse(const char *line, struct mockctl_cmd *cmd, char *err, size_t errlen);

/* Parses and executes one line against mc and writes the reply line,
 * without newline, into reply: "ok" or "error: <why>". Returns 0 for ok,
 * -1 for error. Thread-safe as the mock API is; "leader" and "produce"
 * connect a short-lived client to the cluster, so they need a broker up and
 * may take up to a few seconds ("produce" up to 30 s). */
int mockctl_exec(rd_kafka_mock_cluster_t *mc, const char *line, char *reply, size_t replylen);

/* Serves the protocol on a thread: reads lines from in_fd, writes each
 * reply line to out and flushes it. End of input stops reading, never the
 * cluster. Stop with mockctl_serve_stop() before destroying mc. */
struct mockctl_server;
int mockctl_serve_start(struct mockctl_server **out_srv, rd_kafka_mock_cluster_t *mc, int in_fd,
                        FILE *out, char *err, size_t errlen);
/* Stops reading (waiting for a command in progress to finish) and frees
 * srv. NULL is a no-op. */
void mockctl_serve_stop(struct mockctl_server *srv);

#endif
