/* sink_files.c: see sink_files.h. */
#include "pipeline/sink/sink_files.h"

#include <avro.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "pipeline/codec/codec.h"
#include "pipeline/codec/eventlog.h"
#include "pipeline/run/log.h"
#include "state/state.h"

#define OUTPUTS_BLOB "replay.outputs"
#define BLOCK_SIZE (64 * 1024)

enum { OUT_RECS, OUT_DECS, N_OUT };

static const char *const out_names[N_OUT] = {"recommendations.avro", "decisions.avro"};
static const enum eddy_record_type out_types[N_OUT] = {REC_RECOMMENDATION, REC_DECISION};

/* An output file, appended to and truncated back to its checkpointed
 * length after a crash. */
struct outfile {
    char *path;
    avro_file_writer_t fw;
    uint64_t records;
};

/* The blob: per output file, its length and record count at the checkpoint. */
struct out_mark {
    uint64_t bytes, records;
};

struct files_sink {
    struct eddy_sink base;
    struct eddy_codec *codec;
    struct outfile out[N_OUT];
    struct out_mark marks[N_OUT];  /* at the last barrier */
};

/* A file a replay resumes must hold eddy's schema for its type as it is
 * now: appending bodies of a newer schema (Recommendation gained `because`)
 * to a file whose header names an older one would corrupt it for every
 * reader. Checked before the file is truncated. */
static int same_schema(const char *path, enum eddy_record_type type, char *err, size_t errlen)
{
    const char *json = codec_schema_json(type);
    avro_file_reader_t r;
    avro_schema_t ours;
    struct stat sb;
    if (stat(path, &sb))
        return errf(err, errlen, "%s: cannot resume the outputs: %s", path, strerror(errno));
    if (avro_file_reader(path, &r))
        return errf(err, errlen, "%s: %s", path, avro_strerror());
    if (avro_schema_from_json_length(json, strlen(json), &ours)) {
        avro_file_reader_close(r);
        return errf(err, errlen, "eddy's schema: %s", avro_strerror());
    }
    avro_schema_t theirs = avro_file_reader_get_writer_schema(r); /* a new reference */
    int same = avro_schema_equal(theirs, ours);
    avro_schema_decref(theirs);
    avro_schema_decref(ours);
    avro_file_reader_close(r);
    if (!same)
        return errf(err, errlen,
                    "%s holds another %s schema than this eddy's (an eddy from before a schema "
                    "change?): appending to it would corrupt it; replay into a fresh output and "
                    "state directory",
                    path, type == REC_RECOMMENDATION ? "Recommendation" : "BudgetDecision");
    return 0;
}

static int out_open(struct outfile *f, const char *dir, int i, struct out_mark keep, char *err,
                    size_t errlen)
{
    if (asprintf(&f->path, "%s/%s", dir, out_names[i]) < 0) {
        f->path = NULL;
        return errf(err, errlen, "out of memory");
    }
    f->records = keep.records;
    if (keep.bytes) { /* resume: drop what was written after the checkpoint */
        if (same_schema(f->path, out_types[i], err, errlen))
            return -1;
        if (truncate(f->path, (off_t)keep.bytes))
            return errf(err, errlen, "%s: cannot truncate to the checkpoint: %s", f->path,
                        strerror(errno));
        if (avro_file_writer_open_bs(f->path, &f->fw, BLOCK_SIZE))
            return errf(err, errlen, "%s: %s", f->path, avro_strerror());
        return 0;
    }
    /* snappy, not deflate: Avro C deflates at level 9, which took half of a
     * replay's CPU (docs/performance.md); snappy is a standard Avro codec too. */
    if (eventlog_ocf_create(f->path, out_types[i], "snappy", err, errlen))
        return -1;
    if (avro_file_writer_open_bs(f->path, &f->fw, BLOCK_SIZE))
        return errf(err, errlen, "%s: %s", f->path, avro_strerror());
    return 0;
}

static void out_close(struct outfile *f)
{
    if (f->fw)
        avro_file_writer_close(f->fw);
    free(f->path);
    *f = (struct outfile){0};
}

static int out_index(enum eddy_record_type type)
{
    return type == REC_DECISION ? OUT_DECS : OUT_RECS;
}

/* Appends the record's bare Avro body, as the files hold them. */
static int write_record(struct eddy_sink *s, enum eddy_record_type type, struct eddy_str key,
                        const void *record)
{
    (void)key;
    struct files_sink *fs = (struct files_sink *)s;
    struct outfile *f = &fs->out[out_index(type)];
    const void *buf;
    size_t len;
    char err[256];
    if (codec_encode_body(fs->codec, type, record, &buf, &len, err, sizeof err)) {
        log_error("encode: %s", err);
        return -1;
    }
    if (avro_file_writer_append_encoded(f->fw, buf, (int64_t)len)) {
        log_error("%s: %s", f->path, avro_strerror());
        return -1;
    }
    f->records++;
    return 0;
}

/* Writing the files does not wait: timeout_ms is not needed. */
static int barrier(struct eddy_sink *s, uint64_t timeout_ms)
{
    (void)timeout_ms;
    struct files_sink *fs = (struct files_sink *)s;
    for (int i = 0; i < N_OUT; i++) {
        struct stat sb;
        if (avro_file_writer_flush(fs->out[i].fw) || stat(fs->out[i].path, &sb)) {
            log_error("%s: cannot flush: %s", fs->out[i].path, avro_strerror());
            return -1;
        }
        fs->marks[i] = (struct out_mark){(uint64_t)sb.st_size, fs->out[i].records};
    }
    return 0;
}

static void mark(struct eddy_sink *s, struct eddy_state *st)
{
    struct files_sink *fs = (struct files_sink *)s;
    state_blob_set(st, OUTPUTS_BLOB, fs->marks, sizeof fs->marks);
}

static void sink_free(struct eddy_sink *s)
{
    struct files_sink *fs = (struct files_sink *)s;
    if (!fs)
        return;
    for (int i = 0; i < N_OUT; i++)
        out_close(&fs->out[i]);
    codec_free(fs->codec);
    free(fs);
}

static const struct eddy_sink_ops files_ops = {write_record, barrier, mark, sink_free};

/* The files' lengths at the checkpoint a replay resumes from. */
static int resume_marks(struct files_sink *fs, const struct eddy_config *cfg,
                        struct eddy_state *st, uint64_t position, char *err, size_t errlen)
{
    void *blob;
    size_t len;
    int rc = state_blob_get(st, OUTPUTS_BLOB, &blob, &len);
    if (rc == 0 && len == sizeof fs->marks)
        memcpy(fs->marks, blob, len);
    if (rc == 0)
        free(blob);
    if (rc != 0 || len != sizeof fs->marks)
        return errf(err, errlen, "state %s: replay position %" PRIu64 " but no record of the "
                    "output files: resume with --to-kafka, or use a fresh state directory",
                    cfg->state_dir, position);
    return 0;
}

int sink_files_open(const struct eddy_config *cfg, const char *dir, struct eddy_state *st,
                    uint64_t position, struct eddy_sink **out, char *err, size_t errlen)
{
    struct files_sink *fs = calloc(1, sizeof *fs);
    *out = NULL;
    if (!fs)
        return errf(err, errlen, "out of memory");
    fs->base.ops = &files_ops;
    struct codec_options co = {0};
    int rc = position ? resume_marks(fs, cfg, st, position, err, errlen) : 0;
    if (!rc)
        rc = codec_new(&co, &fs->codec, err, errlen);
    for (int i = 0; i < N_OUT && !rc; i++)
        rc = out_open(&fs->out[i], dir, i, fs->marks[i], err, errlen);
    if (rc) {
        sink_free(&fs->base);
        return -1;
    }
    *out = &fs->base;
    return 0;
}

uint64_t sink_files_records(const struct eddy_sink *s, enum eddy_record_type type)
{
    return ((const struct files_sink *)s)->out[out_index(type)].records;
}
