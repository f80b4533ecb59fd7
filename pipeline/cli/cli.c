#include "pipeline/cli/cli.h"

#include <ctype.h>
#include <getopt.h>
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pipeline/run/config.h"
#include "pipeline/run/log.h"

#define NOT_A_FRACTION "is neither a number above 0 nor a fraction A/B of two such numbers"

/* In order of gravity: a fraction reports the graver of its two sides. */
enum scan { SCAN_OK, SCAN_OUT_OF_RANGE, SCAN_NOT_A_NUMBER };

static bool all_digits(const char *s)
{
    if (!*s)
        return false;
    for (; *s; s++)
        if (!isdigit((unsigned char)*s))
            return false;
    return true;
}

int cli_parse_u64(const char *s, uint64_t min, uint64_t max, uint64_t *out, char *why,
                  size_t whylen)
{
    if (!all_digits(s))
        return errf(why, whylen, "is not an unsigned integer");
    errno = 0;
    unsigned long long v = strtoull(s, NULL, 10);
    if (errno == ERANGE || v < min || v > max)
        return errf(why, whylen, "is out of range (%" PRIu64 " to %" PRIu64 ")", min, max);
    *out = v;
    return 0;
}

/* The finite number strtod reads at the start of s; *end is where it stops. */
static enum scan scan_number(const char *s, double *v, char **end)
{
    errno = 0;
    *v = strtod(s, end);
    if (*end == s || isspace((unsigned char)*s) || isnan(*v))
        return SCAN_NOT_A_NUMBER;
    /* ERANGE: "1e999" (HUGE_VAL), or "1e-999" (underflow to 0 or near it). */
    return errno == ERANGE || isinf(*v) ? SCAN_OUT_OF_RANGE : SCAN_OK;
}

/* A whole value that is a finite number, or why not. */
static int parse_number(const char *s, double *v, char *why, size_t whylen)
{
    char *end;
    enum scan rc = scan_number(s, v, &end);
    if (rc == SCAN_NOT_A_NUMBER || *end)
        return errf(why, whylen, "is not a number");
    return rc == SCAN_OUT_OF_RANGE ? errf(why, whylen, "is out of range") : 0;
}

int cli_parse_double(const char *s, double min, double max, double *out, char *why,
                     size_t whylen)
{
    double v;
    if (parse_number(s, &v, why, whylen))
        return -1;
    if (v < min || v > max)
        return errf(why, whylen, "is out of range (%g to %g)", min, max);
    *out = v;
    return 0;
}

int cli_parse_positive(const char *s, double *out, char *why, size_t whylen)
{
    double v;
    if (parse_number(s, &v, why, whylen))
        return -1;
    if (!(v > 0))
        return errf(why, whylen, "is out of range (must be above 0)");
    *out = v;
    return 0;
}

/* One side of a fraction: a finite number above 0 at the start of s. */
static enum scan scan_positive(const char *s, double *v, char **end)
{
    enum scan rc = scan_number(s, v, end);
    return rc == SCAN_OK && !(*v > 0) ? SCAN_NOT_A_NUMBER : rc;
}

int cli_parse_fraction(const char *s, double *out, char *why, size_t whylen)
{
    double num, den = 1;
    char *end;
    enum scan rc = scan_positive(s, &num, &end);
    if (rc != SCAN_NOT_A_NUMBER && *end == '/') {
        enum scan rc_den = scan_positive(end + 1, &den, &end);
        rc = rc_den > rc ? rc_den : rc;
    }
    if (rc == SCAN_NOT_A_NUMBER || *end)
        return errf(why, whylen, NOT_A_FRACTION);
    double v = num / den;
    if (rc == SCAN_OUT_OF_RANGE || isinf(v) || !(v > 0)) /* 1e300/1e-300, 1e-300/1e300 */
        return errf(why, whylen, "is out of range");
    *out = v;
    return 0;
}

int cli_parse_count_or_percent(const char *s, uint64_t *n, double *pct, char *why, size_t whylen)
{
    size_t len = strlen(s);
    if (len && s[len - 1] == '%') {
        char num[64];
        char *end;
        double v;
        if (len - 1 >= sizeof num)
            return errf(why, whylen, "is not a count N or a percentage P%%");
        memcpy(num, s, len - 1);
        num[len - 1] = '\0';
        enum scan rc = scan_number(num, &v, &end);
        if (rc == SCAN_NOT_A_NUMBER || *end || !num[0])
            return errf(why, whylen, "is not a count N or a percentage P%%");
        if (rc == SCAN_OUT_OF_RANGE || !(v > 0) || v > 100)
            return errf(why, whylen, "is out of range (a percentage above 0%% and at most 100%%)");
        *pct = v;
        *n = 0;
        return 0;
    }
    if (!all_digits(s))
        return errf(why, whylen, "is not a count N or a percentage P%%");
    uint64_t v;
    if (cli_parse_u64(s, 0, UINT64_MAX, &v, why, whylen))
        return -1;
    if (!v)
        return errf(why, whylen, "is out of range (a count of at least 1)");
    *n = v;
    *pct = 0;
    return 0;
}

int cli_bad_value(const char *cmd, const char *opt, const char *value, const char *why)
{
    fprintf(stderr, "eddy %s: invalid value \"%s\" for --%s: %s (see eddy %s --help)\n", cmd,
            value, opt, why, cmd);
    return 2;
}

int cli_parse_int(const char *s, int min, int max, int *out, char *why, size_t whylen)
{
    uint64_t u;
    if (cli_parse_u64(s, (uint64_t)min, (uint64_t)max, &u, why, whylen))
        return -1;
    *out = (int)u;
    return 0;
}

int cli_parse_i64(const char *s, int64_t min, int64_t *out, char *why, size_t whylen)
{
    uint64_t u;
    if (cli_parse_u64(s, (uint64_t)min, INT64_MAX, &u, why, whylen))
        return -1;
    *out = (int64_t)u;
    return 0;
}

const char *cli_long_name(const struct option *opts, int c)
{
    while (opts->name && opts->val != c)
        opts++;
    return opts->name ? opts->name : "?";
}

int cli_load_config(const char *path, struct eddy_config *cfg)
{
    char err[512];
    if (config_load(cfg, path, err, sizeof err)) {
        fprintf(stderr, "eddy: %s\n", err);
        config_free(cfg);
        return -1;
    }
    return 0;
}
