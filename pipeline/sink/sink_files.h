/* sink_files.h: the file sink (pipeline/sink/sink.h): the outputs as Avro Object
 * Container Files in a directory, recommendations.avro and decisions.avro,
 * for `eddy replay`.
 *
 * Exactly once with the state: barrier() flushes the files and mark()
 * stores their lengths and record counts with the checkpoint; a replay
 * resumed on the same state truncates the files back to those lengths, so
 * whatever was written after the last checkpoint goes, and is written again
 * by the events replayed after it. */
#ifndef EDDY_SINK_FILES_H
#define EDDY_SINK_FILES_H

#include <stddef.h>
#include <stdint.h>

#include "pipeline/run/config.h"
#include "pipeline/sink/sink.h"

struct eddy_state;

/* Opens the files in dir (which must exist), new when position is 0, else
 * cut back to their lengths at the state's last checkpoint, the one at
 * `position` of cfg's state: an error when the state holds none (its
 * checkpoints were of a replay to topics). */
int sink_files_open(const struct eddy_config *cfg, const char *dir, struct eddy_state *st,
                    uint64_t position, struct eddy_sink **out, char *err, size_t errlen);

/* Records in the file of `type` (REC_RECOMMENDATION or REC_DECISION). */
uint64_t sink_files_records(const struct eddy_sink *s, enum eddy_record_type type);

#endif
