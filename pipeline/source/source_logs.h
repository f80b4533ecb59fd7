/* source_logs.h: the log-file source (pipeline/source/source.h): several
 * event-log files read as one stream in event-time order (pipeline/source/merge.h;
 * files listed first win ties). */
#ifndef EDDY_SOURCE_LOGS_H
#define EDDY_SOURCE_LOGS_H

#include <stddef.h>
#include <stdint.h>

#include "schemas/records.h"
#include "pipeline/source/source.h"

struct logsource;

/* paths: files, or directories standing for the *.avro files in them (in
 * name order). An empty list of files is an error. */
int logsource_open(char *const *paths, size_t n, struct logsource **out, char *err,
                   size_t errlen);

/* The next event: 1, 0 at the end of every file, -1 on a read error (err
 * names the file and record). ev's strings stay valid until the next call. */
int logsource_next(struct logsource *s, struct eddy_event *ev, char *err, size_t errlen);

/* Total size of the files and how much of it has been read, for progress
 * estimates. */
uint64_t logsource_bytes(const struct logsource *s);
uint64_t logsource_bytes_read(const struct logsource *s);
size_t logsource_files(const struct logsource *s);

/* NULL is a no-op. */
void logsource_free(struct logsource *s);

/* s as a struct eddy_source: its free frees s. */
struct eddy_source *logsource_source(struct logsource *s);

#endif
