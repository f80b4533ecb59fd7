#include "pipeline/source/source_logs.h"

#include <dirent.h>
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "pipeline/codec/eventlog.h"
#include "pipeline/run/log.h"
#include "pipeline/source/merge.h"

struct head {
    struct eventlog_reader *r;
    struct eddy_event ev;
    bool has;       /* ev holds the file's next event */
};

struct logsource {
    struct eddy_source base;
    struct head *h;
    size_t n;
    ssize_t last;   /* head handed out last: advanced at the next call */
    uint64_t bytes;
};

static int add_file(struct logsource *s, const char *path, char *err, size_t errlen)
{
    struct stat sb;
    if (stat(path, &sb))
        return errf(err, errlen, "%s: %s", path, strerror(errno));
    struct head *h = realloc(s->h, (s->n + 1) * sizeof *h);
    if (!h)
        return errf(err, errlen, "out of memory");
    s->h = h;
    s->h[s->n] = (struct head){0};
    if (eventlog_reader_new(path, &s->h[s->n].r, err, errlen))
        return -1;
    s->n++;
    s->bytes += (uint64_t)sb.st_size;
    return 0;
}

static int by_name(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static bool is_avro(const char *name)
{
    size_t n = strlen(name);
    return n > 5 && !strcmp(name + n - 5, ".avro") && name[0] != '.';
}

/* The *.avro files of a directory, in name order. */
static int add_dir(struct logsource *s, const char *dir, char *err, size_t errlen)
{
    DIR *d = opendir(dir);
    if (!d)
        return errf(err, errlen, "%s: %s", dir, strerror(errno));
    char **names = NULL;
    size_t n = 0;
    int rc = 0;
    for (struct dirent *e; (e = readdir(d));) {
        if (!is_avro(e->d_name))
            continue;
        char **more = realloc(names, (n + 1) * sizeof *names);
        if (!more || asprintf(&more[n], "%s/%s", dir, e->d_name) < 0) {
            names = more ? more : names;
            rc = errf(err, errlen, "out of memory");
            break;
        }
        names = more;
        n++;
    }
    closedir(d);
    if (n)
        qsort(names, n, sizeof *names, by_name);
    for (size_t i = 0; i < n; i++) {
        if (!rc)
            rc = add_file(s, names[i], err, errlen);
        free(names[i]);
    }
    free(names);
    return rc;
}

int logsource_open(char *const *paths, size_t n, struct logsource **out, char *err,
                   size_t errlen)
{
    struct logsource *s = calloc(1, sizeof *s);
    *out = NULL;
    if (!s)
        return errf(err, errlen, "out of memory");
    s->last = -1;
    for (size_t i = 0; i < n; i++) {
        struct stat sb;
        int rc = stat(paths[i], &sb) ? errf(err, errlen, "%s: %s", paths[i], strerror(errno))
                 : S_ISDIR(sb.st_mode) ? add_dir(s, paths[i], err, errlen)
                                       : add_file(s, paths[i], err, errlen);
        if (rc) {
            logsource_free(s);
            return -1;
        }
    }
    if (!s->n) {
        logsource_free(s);
        return errf(err, errlen, "no event log files (*.avro) given");
    }
    for (size_t i = 0; i < s->n; i++) {
        int rc = eventlog_next(s->h[i].r, &s->h[i].ev, err, errlen);
        if (rc < 0) {
            logsource_free(s);
            return -1;
        }
        s->h[i].has = rc == 1;
    }
    *out = s;
    return 0;
}

static const struct eddy_event *file_head(const void *heads, size_t i)
{
    const struct head *h = (const struct head *)heads + i;
    return h->has ? &h->ev : NULL;
}

int logsource_next(struct logsource *s, struct eddy_event *ev, char *err, size_t errlen)
{
    if (s->last >= 0) { /* the event handed out last may be overwritten now */
        struct head *h = &s->h[s->last];
        int rc = eventlog_next(h->r, &h->ev, err, errlen);
        if (rc < 0)
            return -1;
        h->has = rc == 1;
        s->last = -1;
    }
    s->last = merge_next(s->h, s->n, file_head, ev);
    return s->last >= 0;
}

uint64_t logsource_bytes(const struct logsource *s)
{
    return s->bytes;
}

uint64_t logsource_bytes_read(const struct logsource *s)
{
    uint64_t n = 0;
    for (size_t i = 0; i < s->n; i++)
        n += eventlog_reader_offset(s->h[i].r);
    return n;
}

size_t logsource_files(const struct logsource *s)
{
    return s->n;
}

void logsource_free(struct logsource *s)
{
    if (!s)
        return;
    for (size_t i = 0; i < s->n; i++)
        eventlog_reader_free(s->h[i].r);
    free(s->h);
    free(s);
}

/* ---- as a source ---------------------------------------------------------- */

static int next(struct eddy_source *s, struct eddy_event *ev, char *err, size_t errlen)
{
    return logsource_next((struct logsource *)s, ev, err, errlen);
}

/* A resumed replay reads again what it skips, so that counts as progress. */
static double done(const struct eddy_source *s, uint64_t resumed_at)
{
    (void)resumed_at;
    const struct logsource *l = (const struct logsource *)s;
    return l->bytes ? (double)logsource_bytes_read(l) / (double)l->bytes : -1;
}

static void describe(const struct eddy_source *s, char *buf, size_t len)
{
    snprintf(buf, len, "%zu log files", logsource_files((const struct logsource *)s));
}

static void source_free(struct eddy_source *s)
{
    logsource_free((struct logsource *)s);
}

static const struct eddy_source_ops logs_ops = {.next = next, .done = done, .describe = describe,
                                                .free = source_free};

struct eddy_source *logsource_source(struct logsource *s)
{
    s->base.ops = &logs_ops;
    return &s->base;
}
