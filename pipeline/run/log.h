/* log.h: one-line log messages to stderr, prefixed with UTC time and level.
 * Never pass secrets (passwords, tokens, URLs with credentials) to these. */
#ifndef EDDY_LOG_H
#define EDDY_LOG_H

#include <stddef.h>
#include <stdint.h>

enum log_level { LOG_ERROR, LOG_WARN, LOG_INFO, LOG_DEBUG };

extern enum log_level log_threshold;

void eddy_log(enum log_level level, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* Formats an error message for a caller's errstr buffer; returns -1, so
 * that `return errf(err, errlen, "...", ...);` reports a failure. */
int errf(char *buf, size_t len, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* Event time ms as UTC, formatted with strftime's fmt; "<ms> ms" when it is
 * out of gmtime's range. */
void fmt_utc(char *buf, size_t len, int64_t ms, const char *fmt);

/* CLOCK_MONOTONIC in milliseconds, for deadlines and intervals. */
uint64_t monotonic_ms(void);

#define log_error(...) eddy_log(LOG_ERROR, __VA_ARGS__)
#define log_warn(...) eddy_log(LOG_WARN, __VA_ARGS__)
#define log_info(...) eddy_log(LOG_INFO, __VA_ARGS__)

#endif
