/* cli.h: numbers in option values on eddy's command line, read by one set
 * of rules for every command.
 *
 * - The value is the whole argument: no blank before it (strto* would skip
 *   one), nothing after it.
 * - An unsigned integer is decimal digits only: no sign, because strtoull
 *   reads "-1" as 18446744073709551615 without complaint.
 * - A number is what strtod reads ("0.5", "1e-3", "-2"), and finite:
 *   "nan" is no number, "inf" and "1e999" are out of range.
 * - A value outside the option's bounds is out of range, and says which
 *   bounds.
 *
 * Each parser returns 0 and sets *out, or returns -1, leaves *out alone and
 * writes why the value was refused ("is not an unsigned integer") into why,
 * for cli_bad_value(). Config files have their own parsers (config.c): their
 * errors name a file, a line and a key instead. */
#ifndef EDDY_CLI_H
#define EDDY_CLI_H

#include <stddef.h>
#include <stdint.h>

struct option;
struct eddy_config;

/* An unsigned integer in [min, max]. */
int cli_parse_u64(const char *s, uint64_t min, uint64_t max, uint64_t *out, char *why,
                  size_t whylen);

/* A number in [min, max]. */
int cli_parse_double(const char *s, double min, double max, double *out, char *why,
                     size_t whylen);

/* A number above 0: rates, speeds, scales. */
int cli_parse_positive(const char *s, double *out, char *why, size_t whylen);

/* A number above 0, or a fraction A/B of two such numbers ("1/8"). */
int cli_parse_fraction(const char *s, double *out, char *why, size_t whylen);

/* A count N (an unsigned integer from 1) into *n, with *pct = 0; or a
 * percentage "P%" (a number above 0 and at most 100, then '%') into *pct,
 * with *n = 0. */
int cli_parse_count_or_percent(const char *s, uint64_t *n, double *pct, char *why,
                               size_t whylen);

/* Prints `eddy CMD: invalid value "VALUE" for --OPT: WHY (see eddy CMD
 * --help)` to stderr and returns 2, the exit code of a usage error. opt is
 * the option's long name ("events"), also when it was given as a short one. */
int cli_bad_value(const char *cmd, const char *opt, const char *value, const char *why);

/* An int option's value, by the rules above; min and max fit an int. */
int cli_parse_int(const char *s, int min, int max, int *out, char *why, size_t whylen);
/* An int64_t option's value from min up, by the rules above. */
int cli_parse_i64(const char *s, int64_t min, int64_t *out, char *why, size_t whylen);
/* The long name of option c in opts, so that an error names --events also
 * when -n was typed. */
const char *cli_long_name(const struct option *opts, int c);
/* Loads the configuration (path NULL: built-in defaults and EDDY_*
 * variables); on failure prints why and returns -1 with nothing to free. */
int cli_load_config(const char *path, struct eddy_config *cfg);

#endif
