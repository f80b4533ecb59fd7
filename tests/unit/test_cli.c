/* test_cli.c: the rules for numbers on the command line (pipeline/cli/cli.h):
 * what each parser takes, what it refuses and why, and that a refused
 * value leaves the option as it was. */
#include <float.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "pipeline/cli/cli.h"

#define UNTOUCHED 4242

static uint64_t u64_ok(const char *s, uint64_t min, uint64_t max)
{
    uint64_t v = UNTOUCHED;
    char why[128] = "";
    if (cli_parse_u64(s, min, max, &v, why, sizeof why))
        fail_msg("\"%s\" refused: %s", s, why);
    return v;
}

/* Asserts that s is refused with a reason containing want, and *out kept. */
static void u64_bad(const char *s, uint64_t min, uint64_t max, const char *want)
{
    uint64_t v = UNTOUCHED;
    char why[128] = "";
    if (!cli_parse_u64(s, min, max, &v, why, sizeof why))
        fail_msg("\"%s\" accepted as %llu", s, (unsigned long long)v);
    if (!strstr(why, want))
        fail_msg("\"%s\": reason \"%s\" lacks \"%s\"", s, why, want);
    assert_int_equal(v, UNTOUCHED);
}

static void test_u64_takes_digits_within_bounds(void **state)
{
    (void)state;
    assert_int_equal(u64_ok("0", 0, 10), 0);
    assert_int_equal(u64_ok("10", 0, 10), 10);
    assert_int_equal(u64_ok("007", 1, 10), 7);
    assert_true(u64_ok("18446744073709551615", 0, UINT64_MAX) == UINT64_MAX);
    assert_int_equal(u64_ok("1", 1, 1), 1);
}

static void test_u64_refuses_signs_blanks_and_garbage(void **state)
{
    (void)state;
    const char *bad[] = {"-1", " -1", "+5", " 5", "5 ", "", "5x", "0x10", "1e3", "1.0", "--2"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        u64_bad(bad[i], 0, UINT64_MAX, "is not an unsigned integer");
}

static void test_u64_reports_range_errors(void **state)
{
    (void)state;
    u64_bad("18446744073709551616", 0, UINT64_MAX, "out of range (0 to 18446744073709551615)");
    u64_bad("99999999999999999999999", 0, UINT64_MAX, "out of range");
    u64_bad("0", 1, 9, "out of range (1 to 9)");
    u64_bad("10", 1, 9, "out of range (1 to 9)");
}

static double double_ok(const char *s, double min, double max)
{
    double v = UNTOUCHED;
    char why[128] = "";
    if (cli_parse_double(s, min, max, &v, why, sizeof why))
        fail_msg("\"%s\" refused: %s", s, why);
    return v;
}

static void double_bad(const char *s, double min, double max, const char *want)
{
    double v = UNTOUCHED;
    char why[128] = "";
    if (!cli_parse_double(s, min, max, &v, why, sizeof why))
        fail_msg("\"%s\" accepted as %g", s, v);
    if (!strstr(why, want))
        fail_msg("\"%s\": reason \"%s\" lacks \"%s\"", s, why, want);
    assert_true(v == UNTOUCHED);
}

static void test_double_takes_numbers_within_bounds(void **state)
{
    (void)state;
    assert_true(double_ok("0", 0, 1) == 0);
    assert_true(double_ok("1", 0, 1) == 1);
    assert_true(double_ok("0.25", 0, 1) == 0.25);
    assert_true(double_ok("2.5e3", 0, DBL_MAX) == 2500);
    assert_true(double_ok("+3", 0, DBL_MAX) == 3);
    assert_true(double_ok("-2", -5, 5) == -2);
}

static void test_double_refuses_what_is_no_finite_number(void **state)
{
    (void)state;
    const char *bad[] = {"", " 1", "1 ", "1x", "nan", "0.5.5", "abc", "1,5"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        double_bad(bad[i], -DBL_MAX, DBL_MAX, "is not a number");
    double_bad("inf", 0, DBL_MAX, "out of range");
    double_bad("-infinity", -DBL_MAX, DBL_MAX, "out of range");
    double_bad("1e999", 0, DBL_MAX, "out of range");
    double_bad("1e-999", 0, DBL_MAX, "out of range");
    double_bad("-0.1", 0, 1, "out of range (0 to 1)");
    double_bad("1.5", 0, 1, "out of range (0 to 1)");
}

static void test_positive_is_above_zero(void **state)
{
    (void)state;
    double v = UNTOUCHED;
    char why[128];
    assert_int_equal(cli_parse_positive("0.5", &v, why, sizeof why), 0);
    assert_true(v == 0.5);
    assert_int_equal(cli_parse_positive("40000", &v, why, sizeof why), 0);
    assert_true(v == 40000);
    const char *bad[] = {"0", "-1", "-0", "inf", "nan", "", "2x"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        v = UNTOUCHED;
        if (!cli_parse_positive(bad[i], &v, why, sizeof why))
            fail_msg("\"%s\" accepted as %g", bad[i], v);
        assert_true(v == UNTOUCHED);
    }
    assert_int_equal(cli_parse_positive("0", &v, why, sizeof why), -1);
    assert_non_null(strstr(why, "above 0"));
}

static void test_fraction_takes_numbers_and_a_over_b(void **state)
{
    (void)state;
    const struct {
        const char *s;
        double want;
    } ok[] = {{"1/8", 0.125}, {"1/32", 1.0 / 32}, {"0.125", 0.125}, {"3", 3},
              {"1.5/3", 0.5}, {"2/0.5", 4},       {"1e-3", 1e-3}};
    for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) {
        double v = UNTOUCHED;
        char why[128] = "";
        if (cli_parse_fraction(ok[i].s, &v, why, sizeof why))
            fail_msg("\"%s\" refused: %s", ok[i].s, why);
        assert_true(v == ok[i].want);
    }
}

static void test_fraction_refuses_what_is_no_positive_ratio(void **state)
{
    (void)state;
    const struct {
        const char *s, *want;
    } bad[] = {
        {"1/0", "neither"},   {"0/8", "neither"},      {"-1/8", "neither"},
        {"1/-8", "neither"},  {"/8", "neither"},       {"1/", "neither"},
        {"1/8/2", "neither"}, {"1/ 8", "neither"},     {" 1/8", "neither"},
        {"1/8 ", "neither"},  {"0", "neither"},        {"", "neither"},
        {"nan", "neither"},   {"1/nan", "neither"},    {"a/b", "neither"},
        {"inf", "out of range"}, {"1/inf", "out of range"}, {"1e999/2", "out of range"},
        {"1e300/1e-300", "out of range"}, {"1e-300/1e300", "out of range"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        double v = UNTOUCHED;
        char why[128] = "";
        if (!cli_parse_fraction(bad[i].s, &v, why, sizeof why))
            fail_msg("\"%s\" accepted as %g", bad[i].s, v);
        if (!strstr(why, bad[i].want))
            fail_msg("\"%s\": reason \"%s\" lacks \"%s\"", bad[i].s, why, bad[i].want);
        assert_true(v == UNTOUCHED);
    }
}

/* The message names the command, the option and the value, and says why. */
static void test_bad_value_message(void **state)
{
    (void)state;
    char buf[512] = "";
    FILE *saved = stderr;
    stderr = fmemopen(buf, sizeof buf, "w");
    assert_non_null(stderr);
    int rc = cli_bad_value("gen", "events", "-1", "is not an unsigned integer");
    fclose(stderr);
    stderr = saved;
    assert_int_equal(rc, 2);
    assert_string_equal(buf, "eddy gen: invalid value \"-1\" for --events: is not an unsigned "
                             "integer (see eddy gen --help)\n");
}

/* --first N|P% (eddy replay): a count from 1, or a percentage in (0, 100]. */
static void test_count_or_percent(void **state)
{
    (void)state;
    uint64_t n = UNTOUCHED;
    double pct = UNTOUCHED;
    char why[128] = "";
    assert_int_equal(cli_parse_count_or_percent("1", &n, &pct, why, sizeof why), 0);
    assert_true(n == 1 && pct == 0);
    assert_int_equal(cli_parse_count_or_percent("20%", &n, &pct, why, sizeof why), 0);
    assert_true(n == 0 && pct == 20);
    assert_int_equal(cli_parse_count_or_percent("12.5%", &n, &pct, why, sizeof why), 0);
    assert_true(pct == 12.5);
    assert_int_equal(cli_parse_count_or_percent("100%", &n, &pct, why, sizeof why), 0);
    assert_true(pct == 100);
    assert_int_equal(cli_parse_count_or_percent("18446744073709551615", &n, &pct, why,
                                                sizeof why), 0);
    assert_true(n == UINT64_MAX && pct == 0);

    static const struct { const char *s, *want; } bad[] = {
        {"0", "out of range (a count of at least 1)"},
        {"0%", "out of range (a percentage above 0% and at most 100%)"},
        {"-5%", "out of range (a percentage"},
        {"100.01%", "out of range (a percentage"},
        {"1e999%", "out of range (a percentage"},
        {"18446744073709551616", "out of range"},
        {"", "is not a count N or a percentage P%"},
        {"%", "is not a count N or a percentage P%"},
        {"abc", "is not a count N or a percentage P%"},
        {"5x", "is not a count N or a percentage P%"},
        {"-3", "is not a count N or a percentage P%"},
        {"1.5", "is not a count N or a percentage P%"},
        {"20 %", "is not a count N or a percentage P%"},
        {"20%%", "is not a count N or a percentage P%"},
        {"nan%", "is not a count N or a percentage P%"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        n = UNTOUCHED, pct = UNTOUCHED;
        why[0] = '\0';
        if (!cli_parse_count_or_percent(bad[i].s, &n, &pct, why, sizeof why))
            fail_msg("\"%s\" accepted", bad[i].s);
        if (!strstr(why, bad[i].want))
            fail_msg("\"%s\": reason \"%s\" lacks \"%s\"", bad[i].s, why, bad[i].want);
        assert_true(n == UNTOUCHED && pct == UNTOUCHED);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_u64_takes_digits_within_bounds),
        cmocka_unit_test(test_u64_refuses_signs_blanks_and_garbage),
        cmocka_unit_test(test_u64_reports_range_errors),
        cmocka_unit_test(test_double_takes_numbers_within_bounds),
        cmocka_unit_test(test_double_refuses_what_is_no_finite_number),
        cmocka_unit_test(test_positive_is_above_zero),
        cmocka_unit_test(test_fraction_takes_numbers_and_a_over_b),
        cmocka_unit_test(test_fraction_refuses_what_is_no_positive_ratio),
        cmocka_unit_test(test_bad_value_message),
        cmocka_unit_test(test_count_or_percent),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
