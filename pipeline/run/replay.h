/* replay.h: `eddy replay`, the real operators over a historical event log:
 * the driver (pipeline/run/driver.h: driver_run()) from a bounded source (log
 * files, or a Kafka range) to a sink (files, or topics), plus the
 * evaluation and --speed.
 *
 * The log is a list of Avro Object Container Files (pipeline/codec/eventlog.h);
 * a directory stands for the *.avro files in it. The files are merged into
 * one stream in event-time order: CampaignBudget records first (they carry
 * no time), then click and ad events by timestamp, ties in file order, each
 * file in its own order. Every time-based decision is taken on event time,
 * so the same log and config give byte-identical outputs and state, however
 * fast the replay runs and however often it is interrupted.
 *
 * Outputs go to Avro files in out_dir (recommendations.avro, decisions.avro)
 * or, with to_kafka, to the configured output topics. State goes to the
 * configured state directory. Every checkpoint_events events the output
 * files are flushed, their lengths and the log position are committed with
 * the state in one WriteBatch; a replay started again on the same state
 * directory truncates the files to those lengths and resumes after that
 * position: exactly-once files and state after a crash.
 *
 * An evaluation (backtest/) runs in the same pass unless disabled, and
 * writes report.json and report.html into out_dir.
 *
 * With first_n or first_pct only the head of that stream is replayed
 * (pipeline/source/source_head.h): the first N events, or the first P
 * percent of them by count (which takes a counting pass over the input
 * first), then the replay ends as at the end of the log and reports on what
 * it replayed. The budget protocol's auctions are cut the same way.
 *
 * With from_kafka the stream is a bounded range of the input topics
 * (pipeline/source/source_kafka_range.h) instead of files; with speed > 0 the
 * files are produced into the input topics at speed times their original pace, for
 * demos and load tests, and nothing is run. */
#ifndef EDDY_REPLAY_H
#define EDDY_REPLAY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "pipeline/run/config.h"

struct replay_options {
    char *const *logs;          /* files or directories */
    size_t n_logs;
    bool from_kafka;            /* read a bounded range of the input topics instead */
    const char *from, *to;      /* its bounds (pipeline/source/source_kafka_range.h); NULL: default */
    double speed;               /* > 0: produce the logs into the input topics at
                                 * speed x their event-time pace, nothing else */
    const char *out_dir;        /* outputs and report; created if missing */
    bool to_kafka;              /* outputs to the output topics instead of files */
    bool evaluate;              /* prequential + bidding evaluation and report */
    int eval_k;                 /* K of HR@K etc. */
    uint64_t eval_window;       /* scored events per window of the HR@K chart */
    const char *fractions;      /* "1/32,1/16,..." for the Cai et al. protocol; NULL: off */
    char *const *tune_logs;     /* ad logs Lin's b0 is tuned on */
    size_t n_tune_logs;
    uint64_t checkpoint_events;
    int progress;               /* 1 bar, 0 plain lines, -1 quiet */
    /* --first: only the first first_n events of the merged stream, or (when
     * first_pct > 0) the first first_pct percent of them, rounded down; the
     * rest reaches nothing but a count. Both 0: all of them. */
    uint64_t first_n;
    double first_pct;           /* in (0, 100] */
};

/* Runs the replay; 0 on success, non-zero after an error (printed). */
int replay_run(const struct eddy_config *cfg, const struct replay_options *o);

#endif
