#include "pipeline/run/log.h"

#include <stdarg.h>
#include <stdio.h>
#include <time.h>

enum log_level log_threshold = LOG_INFO;

void fmt_utc(char *buf, size_t len, int64_t ms, const char *fmt)
{
    time_t t = (time_t)(ms / 1000 - (ms % 1000 < 0)); /* floor: times before 1970 too */
    struct tm tm;
    if (!gmtime_r(&t, &tm) || strftime(buf, len, fmt, &tm) == 0)
        snprintf(buf, len, "%lld ms", (long long)ms);
}

void eddy_log(enum log_level level, const char *fmt, ...)
{
    static const char *names[] = {"ERROR", "WARN", "INFO", "DEBUG"};
    if (level > log_threshold)
        return;
    struct timespec ts;
    struct tm tm;
    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    char stamp[32];
    strftime(stamp, sizeof stamp, "%Y-%m-%dT%H:%M:%S", &tm);

    va_list ap;
    va_start(ap, fmt);
    flockfile(stderr);
    fprintf(stderr, "%s.%03ldZ eddy %s ", stamp, ts.tv_nsec / 1000000, names[level]);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    funlockfile(stderr);
    va_end(ap);
}

int errf(char *buf, size_t len, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, len, fmt, ap);
    va_end(ap);
    return -1;
}

uint64_t monotonic_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}
