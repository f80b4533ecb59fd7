/* test_mockctl.c: the fault-injection protocol. The grammar on its own
 * (mockctl_parse), then every command against a real two-broker mock
 * cluster, then the line server over pipes, including end of input. Also
 * what eddy reads from librdkafka's statistics (pipeline/kafka/kafka.h). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "pipeline/kafka/kafka.h"
#include "pipeline/tools/mockctl.h"

/* --- parsing ---------------------------------------------------------------- */

static struct mockctl_cmd parse_ok(const char *line)
{
    struct mockctl_cmd c;
    char err[512] = "";
    if (mockctl_parse(line, &c, err, sizeof err))
        fail_msg("\"%s\" rejected: %s", line, err);
    return c;
}

/* Asserts that line is rejected with an error containing want. */
static void parse_bad(const char *line, const char *want)
{
    struct mockctl_cmd c;
    char err[512] = "";
    if (!mockctl_parse(line, &c, err, sizeof err))
        fail_msg("\"%s\" accepted", line);
    if (!strstr(err, want))
        fail_msg("\"%s\": error \"%s\" lacks \"%s\"", line, err, want);
}

static void test_parse_commands(void **state)
{
    (void)state;
    struct mockctl_cmd c = parse_ok("");
    assert_int_equal(c.op, MOCKCTL_NOP);
    assert_int_equal(parse_ok("  \t ").op, MOCKCTL_NOP);
    assert_int_equal(parse_ok("# down 1").op, MOCKCTL_NOP);

    c = parse_ok("down 2");
    assert_int_equal(c.op, MOCKCTL_DOWN);
    assert_int_equal(c.broker, 2);
    c = parse_ok("  up\t1 \r");
    assert_int_equal(c.op, MOCKCTL_UP);
    assert_int_equal(c.broker, 1);

    c = parse_ok("rtt 1 250");
    assert_int_equal(c.op, MOCKCTL_RTT);
    assert_int_equal(c.broker, 1);
    assert_int_equal(c.rtt_ms, 250);
    assert_int_equal(parse_ok("rtt 1 0").rtt_ms, 0);

    c = parse_ok("errors produce 5 NOT_LEADER_FOR_PARTITION");
    assert_int_equal(c.op, MOCKCTL_ERRORS);
    assert_int_equal(c.api_key, 0);
    assert_int_equal(c.count, 5);
    assert_int_equal(c.err, RD_KAFKA_RESP_ERR_NOT_LEADER_FOR_PARTITION);
    assert_int_equal(c.broker, -1);
    c = parse_ok("errors FETCH 1 RD_KAFKA_RESP_ERR_REQUEST_TIMED_OUT 2");
    assert_int_equal(c.api_key, 1);
    assert_int_equal(c.err, RD_KAFKA_RESP_ERR_REQUEST_TIMED_OUT);
    assert_int_equal(c.broker, 2);
    assert_int_equal(parse_ok("errors commit 1 not_coordinator").err,
                     RD_KAFKA_RESP_ERR_NOT_COORDINATOR);
    assert_int_equal(parse_ok("errors commit 1 6").err, 6);

    /* Every API and error name the documentation promises. */
    static const struct {
        const char *name;
        int16_t key;
    } apis[] = {{"produce", 0},     {"fetch", 1},           {"listoffsets", 2},
                {"metadata", 3},    {"commit", 8},          {"offsetfetch", 9},
                {"findcoordinator", 10}, {"joingroup", 11}, {"heartbeat", 12}};
    for (size_t i = 0; i < sizeof apis / sizeof apis[0]; i++) {
        char line[128];
        snprintf(line, sizeof line, "errors %s 1 REQUEST_TIMED_OUT", apis[i].name);
        assert_int_equal(parse_ok(line).api_key, apis[i].key);
    }
    static const struct {
        const char *name;
        rd_kafka_resp_err_t err;
    } errs[] = {
        {"NOT_LEADER_FOR_PARTITION", RD_KAFKA_RESP_ERR_NOT_LEADER_FOR_PARTITION},
        {"REQUEST_TIMED_OUT", RD_KAFKA_RESP_ERR_REQUEST_TIMED_OUT},
        {"BROKER_NOT_AVAILABLE", RD_KAFKA_RESP_ERR_BROKER_NOT_AVAILABLE},
        {"LEADER_NOT_AVAILABLE", RD_KAFKA_RESP_ERR_LEADER_NOT_AVAILABLE},
        {"NOT_COORDINATOR", RD_KAFKA_RESP_ERR_NOT_COORDINATOR},
        {"COORDINATOR_NOT_AVAILABLE", RD_KAFKA_RESP_ERR_COORDINATOR_NOT_AVAILABLE},
        {"UNKNOWN_TOPIC_OR_PART", RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART},
        {"MSG_SIZE_TOO_LARGE", RD_KAFKA_RESP_ERR_MSG_SIZE_TOO_LARGE},
    };
    for (size_t i = 0; i < sizeof errs / sizeof errs[0]; i++) {
        char line[128];
        snprintf(line, sizeof line, "errors fetch 1 %s", errs[i].name);
        assert_int_equal(parse_ok(line).err, errs[i].err);
    }

    c = parse_ok("leader clicks 3 2");
    assert_int_equal(c.op, MOCKCTL_LEADER);
    assert_string_equal(c.name, "clicks");
    assert_int_equal(c.partition, 3);
    assert_int_equal(c.broker, 2);
    c = parse_ok("leader budget-decisions * 1");
    assert_string_equal(c.name, "budget-decisions");
    assert_int_equal(c.partition, -1);

    c = parse_ok("coordinator group eddy-soak-3 1");
    assert_int_equal(c.op, MOCKCTL_COORDINATOR);
    assert_string_equal(c.key_type, "group");
    assert_string_equal(c.name, "eddy-soak-3");
    assert_int_equal(c.broker, 1);

    c = parse_ok("produce clicks 0 1000 512");
    assert_int_equal(c.op, MOCKCTL_PRODUCE);
    assert_string_equal(c.name, "clicks");
    assert_int_equal(c.partition, 0);
    assert_int_equal(c.count, 1000);
    assert_int_equal(c.size, 512);
}

static void test_parse_errors(void **state)
{
    (void)state;
    parse_bad("frobnicate 1", "unknown command \"frobnicate\"");
    parse_bad("DOWN 1", "unknown command"); /* commands are lower case */
    parse_bad("down", "usage: down BROKER");
    parse_bad("down 1 2", "usage: down BROKER");
    parse_bad("up", "usage: up BROKER");
    parse_bad("down 0", "bad broker id \"0\"");
    parse_bad("down -1", "bad broker id");
    parse_bad("down one", "bad broker id");
    parse_bad("down 1x", "bad broker id");
    parse_bad("down 99999999999999999999", "bad broker id");
    parse_bad("rtt 1", "usage: rtt BROKER MS");
    parse_bad("rtt 1 -5", "bad round-trip time");
    parse_bad("rtt 1 fast", "bad round-trip time");
    parse_bad("errors produce 5", "usage: errors API COUNT ERROR [BROKER]");
    parse_bad("errors produce 5 REQUEST_TIMED_OUT 1 2", "usage: errors");
    parse_bad("errors produc 5 REQUEST_TIMED_OUT", "unknown API \"produc\"");
    parse_bad("errors produce 0 REQUEST_TIMED_OUT", "bad count \"0\"");
    parse_bad("errors produce 1000001 REQUEST_TIMED_OUT", "bad count");
    parse_bad("errors produce 1 NOT_AN_ERROR", "unknown Kafka error \"NOT_AN_ERROR\"");
    parse_bad("errors produce 1 _TRANSPORT", "not an error a broker sends");
    parse_bad("errors produce 1 RD_KAFKA_RESP_ERR__TIMED_OUT", "not an error a broker sends");
    parse_bad("errors produce 1 -1", "not an error a broker sends");
    parse_bad("errors produce 1 REQUEST_TIMED_OUT zero", "bad broker id");
    parse_bad("leader clicks 0", "usage: leader TOPIC PARTITION|* BROKER");
    parse_bad("leader clicks x 1", "bad partition \"x\"");
    parse_bad("leader clicks -1 1", "bad partition");
    parse_bad("leader cl/icks 0 1", "bad topic name");
    parse_bad("coordinator group g", "usage: coordinator");
    parse_bad("coordinator consumer g 1", "bad coordinator type \"consumer\"");
    parse_bad("produce clicks 0 10", "usage: produce TOPIC PARTITION COUNT SIZE");
    parse_bad("produce clicks 0 0 10", "bad count");
    parse_bad("produce clicks 0 10 2000000", "bad size");
    parse_bad("produce clicks * 10 10", "bad partition");
    parse_bad("down 1 2 3 4 5 6 7 8 9", "usage: down");

    char big[MOCKCTL_LINE_MAX + 16];
    memset(big, 'a', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    parse_bad(big, "line longer than");
}

/* --- execution against a real mock cluster ------------------------------------ */

struct cluster {
    rd_kafka_t *rk;
    rd_kafka_mock_cluster_t *mc;
};

static int cluster_setup(void **state)
{
    struct cluster *c = calloc(1, sizeof *c);
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    char err[256];
    rd_kafka_conf_set(conf, "log_level", "0", NULL, 0);
    c->rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, err, sizeof err);
    assert_non_null(c->rk);
    c->mc = rd_kafka_mock_cluster_new(c->rk, 2);
    assert_non_null(c->mc);
    assert_int_equal(rd_kafka_mock_topic_create(c->mc, "clicks", 3, 2), 0);
    *state = c;
    return 0;
}

static int cluster_teardown(void **state)
{
    struct cluster *c = *state;
    rd_kafka_mock_cluster_destroy(c->mc);
    rd_kafka_destroy(c->rk);
    free(c);
    return 0;
}

static void exec_ok(rd_kafka_mock_cluster_t *mc, const char *line)
{
    char reply[1024];
    if (mockctl_exec(mc, line, reply, sizeof reply))
        fail_msg("\"%s\": %s", line, reply);
    assert_string_equal(reply, "ok");
}

static void exec_bad(rd_kafka_mock_cluster_t *mc, const char *line, const char *want)
{
    char reply[1024];
    if (!mockctl_exec(mc, line, reply, sizeof reply))
        fail_msg("\"%s\" succeeded", line);
    if (strncmp(reply, "error: ", 7) || !strstr(reply, want))
        fail_msg("\"%s\": reply \"%s\" lacks \"error: ...%s\"", line, reply, want);
}

static void test_exec(void **state)
{
    rd_kafka_mock_cluster_t *mc = ((struct cluster *)*state)->mc;
    exec_ok(mc, "");
    exec_ok(mc, "down 2");
    exec_ok(mc, "up 2");
    exec_ok(mc, "rtt 1 100");
    exec_ok(mc, "rtt 1 0");
    exec_bad(mc, "down 3", "no broker 3 (brokers are 1..2)");
    exec_bad(mc, "rtt 9 10", "no broker 9");

    /* Errors aimed at one broker land on that broker's stack. */
    size_t cnt = 99;
    exec_ok(mc, "errors fetch 3 NOT_LEADER_FOR_PARTITION 2");
    assert_int_equal(rd_kafka_mock_broker_error_stack_cnt(mc, 2, 1, &cnt), 0);
    assert_int_equal(cnt, 3);
    cnt = 0; /* left alone when the broker never had a stack for the API */
    assert_int_equal(rd_kafka_mock_broker_error_stack_cnt(mc, 1, 1, &cnt), 0);
    assert_int_equal(cnt, 0);
    exec_ok(mc, "errors produce 2 REQUEST_TIMED_OUT");
    exec_bad(mc, "errors produce 2 REQUEST_TIMED_OUT 3", "no broker 3");
    rd_kafka_mock_clear_request_errors(mc, 0);

    exec_ok(mc, "leader clicks 0 2");
    exec_ok(mc, "leader clicks * 1");
    exec_bad(mc, "leader clicks 3 1", "no partition 3 in topic \"clicks\" (it has 3)");
    exec_bad(mc, "leader clicks 0 4", "no broker 4");
    /* An unknown topic is an error, and asking does not create it. */
    exec_bad(mc, "leader nosuch 0 1", "no topic \"nosuch\"");
    exec_bad(mc, "leader nosuch * 1", "no topic \"nosuch\"");

    exec_ok(mc, "coordinator group g1 2");
    exec_ok(mc, "coordinator transaction t1 1");
    exec_bad(mc, "coordinator group g1 5", "no broker 5");

    exec_ok(mc, "produce clicks 1 200 100");
    exec_ok(mc, "produce clicks 2 3 0");
    exec_bad(mc, "produce clicks 3 1 1", "no partition 3");
    exec_bad(mc, "produce nosuch 0 1 1", "no topic \"nosuch\"");

    exec_bad(mc, "jump 1", "unknown command");
    exec_bad(mc, "down", "usage: down BROKER");
}

/* --- the server --------------------------------------------------------------- */

static void send_line(int fd, const char *s)
{
    size_t n = strlen(s);
    assert_int_equal(write(fd, s, n), (ssize_t)n);
}

static void expect_reply(FILE *in, const char *want)
{
    char line[2048];
    assert_non_null(fgets(line, sizeof line, in));
    if (strncmp(line, want, strlen(want)))
        fail_msg("reply \"%s\", want \"%s...\"", line, want);
    assert_non_null(strchr(line, '\n'));
}

static void test_server(void **state)
{
    rd_kafka_mock_cluster_t *mc = ((struct cluster *)*state)->mc;
    int in[2], out[2];
    assert_int_equal(pipe(in), 0);
    assert_int_equal(pipe(out), 0);
    FILE *w = fdopen(out[1], "w"), *r = fdopen(out[0], "r");
    struct mockctl_server *srv;
    char err[256];
    assert_int_equal(mockctl_serve_start(&srv, mc, in[0], w, err, sizeof err), 0);

    /* Several commands in one write, one split across writes. */
    send_line(in[1], "down 2\nup 2\nbogus\n\nrt");
    expect_reply(r, "ok");
    expect_reply(r, "ok");
    expect_reply(r, "error: unknown command \"bogus\"");
    expect_reply(r, "ok");
    send_line(in[1], "t 1 5\n");
    expect_reply(r, "ok");

    /* An overlong line is one error, and the next line is served. */
    char big[3 * MOCKCTL_LINE_MAX];
    memset(big, 'x', sizeof big);
    assert_int_equal(write(in[1], big, sizeof big), (ssize_t)sizeof big);
    send_line(in[1], "\nrtt 1 0\n");
    expect_reply(r, "error: line longer than");
    expect_reply(r, "ok");

    /* End of input: a last unterminated line is still served, then the
     * thread ends without touching the cluster. */
    send_line(in[1], "down 2");
    close(in[1]);
    expect_reply(r, "ok");
    exec_ok(mc, "up 2");
    mockctl_serve_stop(srv);
    close(in[0]);

    /* Stopping while input is open and idle. */
    assert_int_equal(pipe(in), 0);
    assert_int_equal(mockctl_serve_start(&srv, mc, in[0], w, err, sizeof err), 0);
    send_line(in[1], "rtt 2 0\n");
    expect_reply(r, "ok");
    mockctl_serve_stop(srv);
    mockctl_serve_stop(NULL);
    close(in[0]);
    close(in[1]);
    fclose(w);
    fclose(r);
}

/* --- statistics ------------------------------------------------------------ */

static void test_stats(void **state)
{
    (void)state;
    /* A group consumer's partitions all report the one queue they forward
     * to: the total is that size, not their sum. */
    static const char consumer[] =
        "{\"msg_size\": 0, \"brokers\": {\"a:1/1\": {\"state\": \"UP\"},"
        " \"b:2/2\": {\"state\": \"DOWN\"}, \"c:3/3\": {\"state\": \"UP\"}},"
        " \"topics\": {\"clicks\": {\"partitions\": {\"0\": {\"fetchq_size\": 5000},"
        " \"1\": {\"fetchq_size\": 5000}, \"-1\": {\"fetchq_size\": 0}}},"
        " \"ad-events\": {\"partitions\": {\"0\": {\"fetchq_size\": 5000}}}}}";
    static const char producer[] =
        "{\"msg_size\": 704010, \"brokers\": {\"a:1/1\": {\"state\": \"INIT\"}}, \"topics\": {}}";
    struct kafka_stats k;
    kafka_stats_read(consumer, strlen(consumer), &k);
    assert_int_equal(k.brokers_up, 2);
    assert_int_equal(k.queued_bytes, 5000);
    kafka_stats_read(producer, strlen(producer), &k);
    assert_int_equal(k.brokers_up, 0);
    assert_int_equal(k.queued_bytes, 704010);
    kafka_stats_read("{\"brokers\": ", 12, &k);
    assert_int_equal(k.brokers_up, -1);
    assert_int_equal(k.queued_bytes, 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse_commands),
        cmocka_unit_test(test_parse_errors),
        cmocka_unit_test(test_stats),
        cmocka_unit_test_setup_teardown(test_exec, cluster_setup, cluster_teardown),
        cmocka_unit_test_setup_teardown(test_server, cluster_setup, cluster_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
