/* test_config.c: defaults, the shipped config/eddy.conf, file and
 * environment overrides, and that every error names where it comes from.
 * Run from the repository root (the shipped file is read as config/eddy.conf). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "operators/budget.h"
#include "operators/embeddings.h"
#include "operators/recommend.h"
#include "pipeline/run/config.h"

#define SHIPPED "config/eddy.conf"

/* Removes every EDDY_* variable, so the developer's environment cannot leak
 * into the expectations. */
static int clear_env(void **state)
{
    (void)state;
    for (;;) {
        char **e = environ;
        while (*e && strncmp(*e, "EDDY_", 5))
            e++;
        if (!*e)
            return 0;
        char *name = strndup(*e, strcspn(*e, "="));
        unsetenv(name);
        free(name);
    }
}

/* Writes text to a fresh temporary file; the caller unlinks and frees the path. */
static char *write_conf(const char *text)
{
    char *path = strdup("/tmp/eddy-test-config-XXXXXX");
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    FILE *f = fdopen(fd, "w");
    assert_non_null(f);
    fputs(text, f);
    assert_int_equal(fclose(f), 0);
    return path;
}

/* config_load of text as a file; returns its result and fills err. */
static int load_text(struct eddy_config *cfg, const char *text, char *path_out, size_t n,
                     char *err, size_t errlen)
{
    char *path = write_conf(text);
    int rc = config_load(cfg, path, err, errlen);
    snprintf(path_out, n, "%s", path);
    unlink(path);
    free(path);
    return rc;
}

static const char *prop(const struct eddy_config *c, const char *key)
{
    for (size_t i = 0; i < c->n_kafka_props; i++)
        if (!strcmp(c->kafka_props[i].key, key))
            return c->kafka_props[i].value;
    return NULL;
}

static void assert_defaults(const struct eddy_config *c)
{
    assert_string_equal(c->bootstrap_servers, "localhost:9092");
    assert_string_equal(c->group_id, "eddy");
    assert_int_equal(c->n_kafka_props, 0);
    assert_string_equal(c->topic_clicks, "clicks");
    assert_string_equal(c->topic_ad_events, "ad-events");
    assert_string_equal(c->topic_campaigns, "campaigns");
    assert_string_equal(c->topic_recommendations, "recommendations");
    assert_string_equal(c->topic_decisions, "budget-decisions");
    assert_string_equal(c->topic_dlq, "eddy-dlq");
    assert_string_equal(c->registry_url, "");
    assert_string_equal(c->writers_dir, "");
    assert_string_equal(c->state_dir, "eddy-state");
    const struct mf_params *mf = config_op_params(c, &eddy_op_embeddings);
    const struct rec_params *rec = config_op_params(c, &eddy_op_recommend);
    const struct bid_params *bid = config_op_params(c, &eddy_op_budget);
    assert_int_equal(mf->dim, 32);
    assert_true(mf->learning_rate == 0.05f && mf->regularization == 0.01f);
    assert_int_equal(mf->negatives, 4);
    assert_true(mf->init_scale == 0.1f);
    assert_true(mf->weight[CLICK_VIEW] == 0.5f && mf->weight[CLICK_CLICK] == 1.0f &&
                mf->weight[CLICK_ADD_TO_CART] == 2.0f && mf->weight[CLICK_PURCHASE] == 4.0f);
    assert_int_equal(rec->k, 10);
    assert_int_equal(rec->refresh_interval_ms, 1000);
    assert_int_equal(rec->batch_users, 128);
    assert_int_equal(bid->slots, 24);
    assert_int_equal(bid->buckets, 4);
    static const double m[] = {0.9, 1.0, 1.1};
    assert_int_equal(bid->n_actions, 3);
    for (int i = 0; i < 3; i++)
        assert_true(bid->multipliers[i] == m[i]);
    assert_true(bid->alpha == 0.1 && bid->gamma == 0.95 && bid->epsilon == 0.05);
    assert_true(bid->overspend_penalty == 1.0);
    assert_int_equal(bid->pacing, PACING_MARKET);
    assert_int_equal(bid->reward, REWARD_CLICKS);
    assert_true(bid->explore_cap == 1.1 && bid->half_life == 10);
    assert_int_equal(bid->seed, 42);
    assert_string_equal(c->http_listen, "127.0.0.1:9464");
}

static void test_defaults(void **state)
{
    (void)state;
    struct eddy_config c;
    char err[512];
    assert_int_equal(config_load(&c, NULL, err, sizeof err), 0);
    assert_defaults(&c);
    config_free(&c);
}

/* Parameters exist only for the operators of the chain. */
static void test_op_params_of_an_operator_outside_the_chain(void **state)
{
    (void)state;
    static const struct eddy_operator stranger = {.name = "stranger"};
    struct eddy_config c;
    char err[512];
    assert_int_equal(config_load(&c, NULL, err, sizeof err), 0);
    assert_null(config_op_params(&c, &stranger));
    config_free(&c);
}

static char *read_all(const char *path)
{
    FILE *f = fopen(path, "r");
    assert_non_null(f);
    char *text = NULL;
    size_t cap = 0;
    ssize_t n = getdelim(&text, &cap, '\0', f);
    fclose(f);
    assert_true(n > 0);
    return text;
}

/* The shipped file loads to exactly the defaults, and below its header it
 * is exactly config_print_keys(): the table and its documentation agree. */
static void test_shipped_config(void **state)
{
    (void)state;
    struct eddy_config c;
    char err[512];
    if (config_load(&c, SHIPPED, err, sizeof err))
        fail_msg("%s", err);
    assert_defaults(&c);
    config_free(&c);

    char *keys = NULL, *file = read_all(SHIPPED);
    size_t len = 0, flen = strlen(file);
    FILE *f = open_memstream(&keys, &len);
    config_print_keys(f);
    fclose(f);
    if (flen < len || strcmp(file + flen - len, keys))
        fail_msg(SHIPPED " does not end with config_print_keys() output: regenerate it");
    free(keys);
    free(file);
}

static void test_file_overrides(void **state)
{
    (void)state;
    struct eddy_config c;
    char err[512], path[128];
    int rc = load_text(&c,
                       "; a comment\n"
                       "# another\n"
                       "[kafka]\n"
                       "bootstrap.servers = b1:9092,b2:9092\n"
                       "[embeddings]\n"
                       "dim = 64 ; inline comment\n"
                       "weight.add_to_cart = 3.5\n"
                       "[recommend]\n"
                       "refresh.interval.ms = 0\n"
                       "[bidding]\n"
                       "multipliers = 1, 2 ,3\n"
                       "seed = 18446744073709551615\n"
                       "[schemas]\n"
                       "registry.url = http://registry:8081\n"
                       "[http]\n"
                       "listen =\n"
                       "[embeddings]\n"
                       "negatives = 0\n",
                       path, sizeof path, err, sizeof err);
    if (rc)
        fail_msg("%s", err);
    assert_string_equal(c.bootstrap_servers, "b1:9092,b2:9092");
    assert_string_equal(c.group_id, "eddy");
    const struct mf_params *mf = config_op_params(&c, &eddy_op_embeddings);
    const struct rec_params *rec = config_op_params(&c, &eddy_op_recommend);
    const struct bid_params *bid = config_op_params(&c, &eddy_op_budget);
    assert_int_equal(mf->dim, 64);
    assert_int_equal(mf->negatives, 0);
    assert_true(mf->weight[CLICK_ADD_TO_CART] == 3.5f);
    assert_int_equal(rec->refresh_interval_ms, 0);
    assert_int_equal(bid->n_actions, 3);
    assert_true(bid->multipliers[0] == 1 && bid->multipliers[1] == 2 &&
                bid->multipliers[2] == 3);
    assert_true(bid->seed == UINT64_MAX);
    assert_string_equal(c.registry_url, "http://registry:8081");
    assert_string_equal(c.http_listen, "");
    config_free(&c);
}

struct bad_case {
    const char *text;
    int line;
    const char *where; /* "[section] key", or NULL */
    const char *why;
};

static const struct bad_case bad_cases[] = {
    {"[embeddings]\ndim = 64\nlearnig_rate = 0.1\n", 3, "[embeddings] learnig_rate", "unknown key"},
    {"[kafka]\ngroup.id = g\n[kafak]\nbootstrap.servers = x\n", 4, "[kafak] bootstrap.servers",
     "unknown section"},
    {"\n[embeddings]\ndim = abc\n", 3, "[embeddings] dim", "\"abc\" is not an integer"},
    {"[embeddings]\ndim = 12x\n", 2, "[embeddings] dim", "\"12x\" is not an integer"},
    {"[embeddings]\ndim =\n", 2, "[embeddings] dim", "\"\" is not an integer"},
    {"[embeddings]\nlearning_rate = 0.1.2\n", 2, "[embeddings] learning_rate",
     "\"0.1.2\" is not a number"},
    {"[embeddings]\ninit_scale = nan\n", 2, "[embeddings] init_scale", "is not a number"},
    {"[embeddings]\ndim = 2000\n", 2, "[embeddings] dim", "\"2000\" must be between 1 and 1024"},
    {"[embeddings]\ndim = 0\n", 2, "[embeddings] dim", "must be between 1 and 1024"},
    {"[embeddings]\nweight.view = -1\n", 2, "[embeddings] weight.view", "must be at least 0"},
    {"[bidding]\nepsilon = 1.5\n", 2, "[bidding] epsilon", "must be between 0 and 1"},
    {"[recommend]\nk = 99999999999999999999\n", 2, "[recommend] k", "is out of range"},
    {"[recommend]\nrefresh.interval.ms = -5\n", 2, "[recommend] refresh.interval.ms",
     "must be at least 0"},
    {"[bidding]\nseed = -1\n", 2, "[bidding] seed", "is not a non-negative integer"},
    {"[bidding]\nmultipliers = 1,,2\n", 2, "[bidding] multipliers",
     "\"1,,2\" is not a comma-separated list of numbers"},
    {"[bidding]\nmultipliers = 1,2,\n", 2, "[bidding] multipliers", "is not a comma-separated"},
    {"[bidding]\nmultipliers = 1;2\n", 2, "[bidding] multipliers", "is not a comma-separated"},
    {"[bidding]\nmultipliers = 0.5,0\n", 2, "[bidding] multipliers", "not > 0"},
    {"[bidding]\nmultipliers = 1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1\n", 2, "[bidding] multipliers",
     "more than 16 values"},
    {"[kafka]\ngroup.id =\n", 2, "[kafka] group.id", "\"\" must not be empty"},
    {"[kafka]\nbootstrap.servers =\n", 2, "[kafka] bootstrap.servers", "must not be empty"},
    {"[topics]\nclicks = c\ndlq =\n", 3, "[topics] dlq", "must not be empty"},
    {"[state]\ndir =\n", 2, "[state] dir", "must not be empty"},
    {"[state]\ndir = a\n\ndir = b\n", 4, "[state] dir", "set more than once (first on line 2)"},
    {"[kafka]\nbootstrap.servers = a:1,\n  b:1\n", 3, "[kafka] bootstrap.servers",
     "set more than once"},
    {"dim = 3\n", 1, "dim", "outside any [section]"},
    {"[kafka]\nkafka.group.id = x\n", 2, "[kafka] kafka.group.id", "set [kafka] group.id"},
    {"[kafka]\nkafka. = x\n", 2, "[kafka] kafka.", "names no librdkafka property"},
    {"[kafka]\nkafka.auto.offset.reset = latest\n", 2, "[kafka] kafka.auto.offset.reset",
     "is set by eddy: use [kafka] offset.reset"},
    {"[kafka]\nkafka.enable.auto.commit = true\n", 2, "[kafka] kafka.enable.auto.commit",
     "is set by eddy: offsets are committed with the state"},
    {"[kafka]\nkafka.enable.partition.eof = false\n", 2, "[kafka] kafka.enable.partition.eof",
     "is set by eddy: budgets are read"},
    {"[kafka]\nthis line has no equals sign\n", 2, NULL, "syntax error"},
    {"[kafka\nbootstrap.servers = x\n", 1, NULL, "syntax error"},
};

static void test_errors_name_file_line_key(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof bad_cases / sizeof bad_cases[0]; i++) {
        const struct bad_case *b = &bad_cases[i];
        struct eddy_config c;
        char err[512], path[128], want[256];
        if (!load_text(&c, b->text, path, sizeof path, err, sizeof err))
            fail_msg("case %zu loaded: %s", i, b->text);
        snprintf(want, sizeof want, "%s:%d: %s%s", path, b->line, b->where ? b->where : "",
                 b->where ? ": " : "");
        if (strncmp(err, want, strlen(want)) || !strstr(err, b->why))
            fail_msg("case %zu: got '%s', want '%s...%s'", i, err, want, b->why);
        /* A failed load leaves nothing to free. */
        assert_null(c.bootstrap_servers);
        assert_null(c.kafka_props);
        assert_null(c.op_params[0]);
        config_free(&c);
    }
}

/* inih would cut a long line in two and parse the tail as a line of its own. */
static void test_long_line_is_an_error(void **state)
{
    (void)state;
    char text[400], err[512], path[128], want[200];
    struct eddy_config c;
    snprintf(text, sizeof text, "[schemas]\nwriters.dir = /%0300d\n", 0);
    assert_int_not_equal(load_text(&c, text, path, sizeof path, err, sizeof err), 0);
    snprintf(want, sizeof want, "%s:2: line longer than", path);
    assert_non_null(strstr(err, want));
}

static void test_missing_file_is_named(void **state)
{
    (void)state;
    struct eddy_config c;
    char err[512];
    assert_int_not_equal(config_load(&c, "/nonexistent/eddy.conf", err, sizeof err), 0);
    assert_string_equal(err, "/nonexistent/eddy.conf: cannot open: No such file or directory");
}

/* fopen() opens a directory; only the read fails. That used to read as an
 * empty file, so `eddy run -c DIR` ran on the built-in defaults. */
static void test_directory_is_an_error(void **state)
{
    (void)state;
    struct eddy_config c;
    char err[512], want[512];
    char dir[] = "/tmp/eddy-test-config-dir-XXXXXX";
    assert_non_null(mkdtemp(dir));
    int rc = config_load(&c, dir, err, sizeof err);
    rmdir(dir);
    assert_int_not_equal(rc, 0);
    snprintf(want, sizeof want, "%s: cannot read: Is a directory", dir);
    assert_string_equal(err, want);
}

/* Loads path in a child that runs as nobody when we are root (root reads
 * any file whatever its mode), and sends back the result and the message. */
static int load_unprivileged(const char *path, char *err, size_t errlen)
{
    int fds[2];
    assert_int_equal(pipe(fds), 0);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        close(fds[0]);
        if (geteuid() == 0 && (setgid(65534) || setuid(65534)))
            _exit(3);
        struct eddy_config c;
        char msg[512] = "";
        int rc = config_load(&c, path, msg, sizeof msg);
        if (rc == 0)
            config_free(&c);
        ssize_t n = write(fds[1], msg, strlen(msg));
        _exit(n < 0 ? 4 : rc ? 1 : 0); /* _exit: the parent owns cmocka's state */
    }
    close(fds[1]);
    ssize_t n = read(fds[0], err, errlen - 1);
    close(fds[0]);
    err[n > 0 ? n : 0] = '\0';
    int status;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status));
    return WEXITSTATUS(status);
}

static void test_unreadable_file_is_named(void **state)
{
    (void)state;
    char err[512], want[512];
    char *path = write_conf("[embeddings]\ndim = 64\n");
    assert_int_equal(chmod(path, 0), 0);
    int rc = load_unprivileged(path, err, sizeof err);
    snprintf(want, sizeof want, "%s: cannot open: Permission denied", path);
    unlink(path);
    free(path);
    if (rc == 3) {
        /* root without the right to become nobody: root itself reads any file */
        print_message("cannot drop root to test an unreadable file: skipped\n");
        skip();
    }
    assert_int_equal(rc, 1);
    assert_string_equal(err, want);
}

static void test_env_overrides_file(void **state)
{
    (void)state;
    struct eddy_config c;
    char err[512], path[128];
    setenv("EDDY_KAFKA_BOOTSTRAP_SERVERS", "env:9092", 1);
    setenv("EDDY_EMBEDDINGS_DIM", "128", 1);
    setenv("EDDY_EMBEDDINGS_WEIGHT_VIEW", "0.25", 1);
    setenv("EDDY_EMBEDDINGS_WEIGHT_ADD_TO_CART", "3", 1);
    setenv("EDDY_BIDDING_MULTIPLIERS", "1,2", 1);
    setenv("EDDY_HTTP_LISTEN", "", 1);
    setenv("EDDY_UNRELATED", "not eddy's", 1); /* outside every section: not ours */
    int rc = load_text(&c, "[kafka]\nbootstrap.servers = file:9092\n[embeddings]\ndim = 64\n",
                       path, sizeof path, err, sizeof err);
    if (rc)
        fail_msg("%s", err);
    assert_string_equal(c.bootstrap_servers, "env:9092");
    const struct mf_params *mf = config_op_params(&c, &eddy_op_embeddings);
    const struct bid_params *bid = config_op_params(&c, &eddy_op_budget);
    assert_int_equal(mf->dim, 128);
    assert_true(mf->weight[CLICK_VIEW] == 0.25f);
    assert_true(mf->weight[CLICK_ADD_TO_CART] == 3.0f);
    assert_int_equal(bid->n_actions, 2);
    assert_string_equal(c.http_listen, "");
    config_free(&c);

    /* Without a file: defaults plus the environment. */
    assert_int_equal(config_load(&c, NULL, err, sizeof err), 0);
    mf = config_op_params(&c, &eddy_op_embeddings);
    assert_int_equal(mf->dim, 128);
    config_free(&c);
}

static void expect_env_error(const char *var, const char *value, const char *want)
{
    struct eddy_config c;
    char err[512];
    clear_env(NULL);
    setenv(var, value, 1);
    assert_int_not_equal(config_load(&c, NULL, err, sizeof err), 0);
    if (strncmp(err, want, strlen(want)))
        fail_msg("%s=%s: got '%s', want '%s'", var, value, err, want);
}

static void test_env_error_names_variable(void **state)
{
    (void)state;
    expect_env_error("EDDY_RECOMMEND_K", "0", "EDDY_RECOMMEND_K: \"0\" must be between 1 and 1000");
    expect_env_error("EDDY_EMBEDDINGS_DIM", " 7", "EDDY_EMBEDDINGS_DIM: \" 7\" is not an integer");
    expect_env_error("EDDY_TOPICS_DLQ", "", "EDDY_TOPICS_DLQ: \"\" must not be empty");
    expect_env_error("EDDY_EMBEDDINGS_DIMM", "3",
                     "EDDY_EMBEDDINGS_DIMM: matches no key of [embeddings]");
    expect_env_error("EDDY_KAFKA_SASL_PASSWORD", "x",
                     "EDDY_KAFKA_SASL_PASSWORD: matches no key of [kafka] (librdkafka "
                     "properties are EDDY_KAFKA_KAFKA_*)");
    expect_env_error("EDDY_KAFKA_KAFKA_GROUP_ID", "x",
                     "EDDY_KAFKA_KAFKA_GROUP_ID: is eddy's own key");
}

static void test_kafka_passthrough(void **state)
{
    (void)state;
    struct eddy_config c;
    char err[512], path[128];
    setenv("EDDY_KAFKA_KAFKA_SASL_PASSWORD", "s3cret", 1);
    setenv("EDDY_KAFKA_KAFKA_SASL_MECHANISM", "SCRAM-SHA-256", 1);
    int rc = load_text(&c,
                       "[kafka]\n"
                       "kafka.security.protocol = SASL_SSL\n"
                       "kafka.sasl.mechanism = PLAIN\n"
                       "group.id = g\n",
                       path, sizeof path, err, sizeof err);
    if (rc)
        fail_msg("%s", err);
    assert_int_equal(c.n_kafka_props, 3);
    assert_string_equal(prop(&c, "security.protocol"), "SASL_SSL");
    assert_string_equal(prop(&c, "sasl.mechanism"), "SCRAM-SHA-256"); /* env wins */
    assert_string_equal(prop(&c, "sasl.password"), "s3cret");
    assert_string_equal(c.group_id, "g");
    config_free(&c);
    assert_int_equal(c.n_kafka_props, 0);
    config_free(&c); /* harmless twice */
}

/* Errors about pass-through keys never quote their values. */
static void test_errors_hide_passthrough_values(void **state)
{
    (void)state;
    struct eddy_config c;
    char err[512], path[128];
    assert_int_not_equal(load_text(&c,
                                   "[kafka]\n"
                                   "kafka.sasl.password = hunter2\n"
                                   "kafka.sasl.password = hunter3\n",
                                   path, sizeof path, err, sizeof err),
                         0);
    assert_non_null(strstr(err, ":3: [kafka] kafka.sasl.password: is set more than once"));
    assert_null(strstr(err, "hunter"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_defaults, clear_env, clear_env),
        cmocka_unit_test_setup_teardown(test_op_params_of_an_operator_outside_the_chain,
                                        clear_env, clear_env),
        cmocka_unit_test_setup_teardown(test_shipped_config, clear_env, clear_env),
        cmocka_unit_test_setup_teardown(test_file_overrides, clear_env, clear_env),
        cmocka_unit_test_setup_teardown(test_errors_name_file_line_key, clear_env, clear_env),
        cmocka_unit_test_setup_teardown(test_long_line_is_an_error, clear_env, clear_env),
        cmocka_unit_test_setup_teardown(test_missing_file_is_named, clear_env, clear_env),
        cmocka_unit_test_setup_teardown(test_directory_is_an_error, clear_env, clear_env),
        cmocka_unit_test_setup_teardown(test_unreadable_file_is_named, clear_env, clear_env),
        cmocka_unit_test_setup_teardown(test_env_overrides_file, clear_env, clear_env),
        cmocka_unit_test_setup_teardown(test_env_error_names_variable, clear_env, clear_env),
        cmocka_unit_test_setup_teardown(test_kafka_passthrough, clear_env, clear_env),
        cmocka_unit_test_setup_teardown(test_errors_hide_passthrough_values, clear_env,
                                        clear_env),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
