/* eventlog.c: Avro Object Container Files of eddy's input records.
 * See eventlog.h for the contract.
 *
 * Records are mapped to and from Avro values by pipeline/codec/avromap.c, which
 * reuses one value per reader or writer, as STYLE.md asks of the hot path. */
#include "pipeline/run/log.h"
#include "pipeline/codec/avromap.h"
#include "pipeline/codec/eventlog.h"

#include <avro.h>
#include <xxhash.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define BLOCK_SIZE (64 * 1024) /* bytes of records per container block */

/* ---- Writing --------------------------------------------------------------- */

static void ocf_put_long(FILE *f, int64_t v)
{
    uint64_t z = ((uint64_t)v << 1) ^ (uint64_t)(v >> 63); /* zigzag */
    do {
        uint8_t b = z & 0x7f;
        z >>= 7;
        fputc(b | (z ? 0x80 : 0), f);
    } while (z);
}

static void ocf_put_bytes(FILE *f, const char *s, size_t len)
{
    ocf_put_long(f, (int64_t)len);
    fwrite(s, 1, len, f);
}

int eventlog_ocf_create(const char *path, enum eddy_record_type type, const char *codec,
                        char *err, size_t errlen)
{
    const char *json = codec_schema_json(type);
    FILE *f = fopen(path, "wb");
    if (!f)
        return errf(err, errlen, "%s: %s", path, strerror(errno));
    fwrite("Obj\x01", 1, 4, f);
    ocf_put_long(f, 2); /* the metadata map: one block of two entries */
    ocf_put_bytes(f, "avro.schema", 11);
    ocf_put_bytes(f, json, strlen(json));
    ocf_put_bytes(f, "avro.codec", 10);
    ocf_put_bytes(f, codec, strlen(codec));
    ocf_put_long(f, 0);
    /* The sync marker is a function of the schema: same input, same bytes. */
    XXH128_hash_t h = XXH3_128bits(json, strlen(json));
    fwrite(&h.low64, 8, 1, f);
    fwrite(&h.high64, 8, 1, f);
    if ((ferror(f) | fclose(f)))
        return errf(err, errlen, "%s: write error: %s", path, strerror(errno));
    return 0;
}

struct eventlog_writer {
    enum eddy_record_type type;
    struct avromap *map;
    avro_file_writer_t fw;
    char *path, *tmp;
};

int eventlog_writer_new(const char *path, enum eddy_record_type type, const char *codec,
                        struct eventlog_writer **out, char *err, size_t errlen)
{
    struct eventlog_writer *w = calloc(1, sizeof *w);
    int rc = -1;

    *out = NULL;
    if (!w)
        return errf(err, errlen, "out of memory");
    if ((unsigned)type > REC_CAMPAIGN) {
        errf(err, errlen, "eventlog: type %d is not an input record", (int)type);
        goto out;
    }
    if (strcmp(codec, "deflate") && strcmp(codec, "snappy") && strcmp(codec, "null")) {
        errf(err, errlen, "unknown Avro codec \"%s\" (deflate, snappy or null)", codec);
        goto out;
    }
    if (!(w->path = strdup(path)) || asprintf(&w->tmp, "%s.tmp", path) < 0) {
        w->tmp = NULL;
        errf(err, errlen, "out of memory");
        goto out;
    }
    w->type = type;
    if (avromap_new(type, &w->map, err, errlen))
        goto out;
    /* Our own header (replacing a stale .tmp), then Avro C appends. */
    if (eventlog_ocf_create(w->tmp, type, codec, err, errlen))
        goto out;
    if (avro_file_writer_open_bs(w->tmp, &w->fw, BLOCK_SIZE)) {
        w->fw = NULL;
        errf(err, errlen, "%s: %s", w->tmp, avro_strerror());
        goto out;
    }
    rc = 0;
out:
    if (rc)
        eventlog_writer_discard(w);
    else
        *out = w;
    return rc;
}

int eventlog_append(struct eventlog_writer *w, const void *record, char *err, size_t errlen)
{
    avro_value_t *value;
    if (avromap_encode(w->map, record, &value) || avro_file_writer_append_value(w->fw, value))
        return errf(err, errlen, "%s: cannot append %s: %s", w->tmp,
                    avromap_record_name(w->type), avro_strerror());
    return 0;
}

static void writer_free(struct eventlog_writer *w)
{
    avromap_free(w->map);
    free(w->path);
    free(w->tmp);
    free(w);
}

/* Flushes and closes Avro's writer; -1 when it reports an error. */
static int writer_close(struct eventlog_writer *w, char *err, size_t errlen)
{
    int rc = 0;
    if (w->fw && (avro_file_writer_flush(w->fw) | avro_file_writer_close(w->fw)))
        rc = errf(err, errlen, "%s: write error: %s", w->tmp, avro_strerror());
    w->fw = NULL;
    return rc;
}

int eventlog_writer_finish(struct eventlog_writer *w, char *err, size_t errlen)
{
    int rc = writer_close(w, err, errlen);
    if (!rc && rename(w->tmp, w->path))
        rc = errf(err, errlen, "rename %s: %s", w->tmp, strerror(errno));
    if (rc)
        remove(w->tmp);
    writer_free(w);
    return rc;
}

void eventlog_writer_discard(struct eventlog_writer *w)
{
    char ignored[8];
    if (!w)
        return;
    if (w->tmp) {
        writer_close(w, ignored, sizeof ignored);
        remove(w->tmp);
    }
    writer_free(w);
}

/* ---- Reading --------------------------------------------------------------- */

struct eventlog_reader {
    enum eddy_record_type type;
    struct avromap *map;
    struct avromap_reader *rd; /* reads the file's schema as eddy's */
    avro_file_reader_t fr;
    FILE *fp;                  /* ours, for the read position (progress ETA) */
    char *path;
    uint64_t n; /* records read so far */
};

/* The record type named by the file's schema; -1 when it is none of ours. */
static int file_type(avro_schema_t ws)
{
    if (!is_avro_record(ws))
        return -1;
    for (int t = REC_CLICK; t <= REC_CAMPAIGN; t++)
        if (!strcmp(avro_schema_name(ws), avromap_record_name(t)))
            return t;
    return -1;
}

/* eddy's schema for the file's type, and a reader of the file's schema as it. */
static int reader_map(struct eventlog_reader *r, avro_schema_t ws, char *err, size_t errlen)
{
    char why[512];
    if (avromap_new(r->type, &r->map, err, errlen))
        return -1;
    if (avromap_reader_new(r->map, ws, &r->rd, why, sizeof why))
        return errf(err, errlen, "%s: %s", r->path, why);
    return 0;
}

int eventlog_reader_new(const char *path, struct eventlog_reader **out, char *err, size_t errlen)
{
    struct eventlog_reader *r = calloc(1, sizeof *r);
    avro_schema_t ws = NULL;
    int rc = -1, type;

    *out = NULL;
    if (!r || !(r->path = strdup(path))) {
        errf(err, errlen, "out of memory");
        goto out;
    }
    if (!(r->fp = fopen(path, "rb"))) {
        errf(err, errlen, "%s: %s", path, strerror(errno));
        goto out;
    }
    if (avro_file_reader_fp(r->fp, path, 0, &r->fr)) {
        r->fr = NULL;
        errf(err, errlen, "%s: not a readable Avro container file: %s", path, avro_strerror());
        goto out;
    }
    ws = avro_file_reader_get_writer_schema(r->fr); /* a new reference */
    if ((type = file_type(ws)) < 0) {
        errf(err, errlen, "%s: holds %s records, not ClickEvent, AdEvent or CampaignBudget",
             path, is_avro_record(ws) ? avro_schema_name(ws) : "non-record");
        goto out;
    }
    r->type = (enum eddy_record_type)type;
    if (reader_map(r, ws, err, errlen))
        goto out;
    rc = 0;
out:
    if (ws)
        avro_schema_decref(ws);
    if (rc)
        eventlog_reader_free(r);
    else
        *out = r;
    return rc;
}

enum eddy_record_type eventlog_reader_type(const struct eventlog_reader *r)
{
    return r->type;
}

int eventlog_next(struct eventlog_reader *r, struct eddy_event *ev, char *err, size_t errlen)
{
    char why[256];
    int rc = avro_file_reader_read_value(r->fr, avromap_reader_value(r->rd));
    if (rc == EOF)
        return 0;
    r->n++;
    if (rc)
        return errf(err, errlen, "%s: record %llu: %s", r->path, (unsigned long long)r->n,
                    avro_strerror());
    if (avromap_read_event(r->rd, ev, why, sizeof why))
        return errf(err, errlen, "%s: record %llu: %s", r->path, (unsigned long long)r->n, why);
    return 1;
}

uint64_t eventlog_reader_offset(const struct eventlog_reader *r)
{
    long off = ftell(r->fp);
    return off > 0 ? (uint64_t)off : 0;
}

void eventlog_reader_free(struct eventlog_reader *r)
{
    if (!r)
        return;
    avromap_reader_free(r->rd);
    avromap_free(r->map);
    if (r->fr)
        avro_file_reader_close(r->fr);
    if (r->fp)
        fclose(r->fp);
    free(r->path);
    free(r);
}
