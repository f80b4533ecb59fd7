/* state_raw.c: see state_raw.h. */
#include "state/state_raw.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <rocksdb/c.h>

#define RAW_MAX_CF 16

struct state_raw {
    rocksdb_t *db;
    rocksdb_options_t *opts;
    rocksdb_readoptions_t *ropts;
    rocksdb_writeoptions_t *wopts;
    rocksdb_writebatch_t *batch;
    const char *names[RAW_MAX_CF];
    rocksdb_column_family_handle_t *cf[RAW_MAX_CF];
    int n_cf;
};

/* Reports a RocksDB error (and frees it); 0 if there was none. */
static int took(char *rerr, const char *what, char *err, size_t errlen)
{
    if (!rerr)
        return 0;
    snprintf(err, errlen, "%s: %s", what, rerr);
    rocksdb_free(rerr);
    return -1;
}

/* state.c's table options: a full bloom filter, no compression. */
static rocksdb_options_t *raw_options(void)
{
    rocksdb_options_t *o = rocksdb_options_create();
    rocksdb_options_set_create_if_missing(o, 1);
    rocksdb_block_based_table_options_t *bbo = rocksdb_block_based_options_create();
    rocksdb_block_based_options_set_filter_policy(bbo, rocksdb_filterpolicy_create_bloom_full(10));
    rocksdb_options_set_block_based_table_factory(o, bbo);
    rocksdb_block_based_options_destroy(bbo);
    return o;
}

struct state_raw *state_raw_open(const char *dir, const char *const *cfs, char *err,
                                 size_t errlen)
{
    static const char *const only_default[] = {"default", NULL};
    struct state_raw *r = calloc(1, sizeof *r);
    const rocksdb_options_t *cf_opts[RAW_MAX_CF];
    char *rerr = NULL;
    if (!r) {
        snprintf(err, errlen, "%s: out of memory", dir);
        return NULL;
    }
    r->opts = raw_options();
    for (cfs = cfs ? cfs : only_default; *cfs && r->n_cf < RAW_MAX_CF; cfs++, r->n_cf++) {
        r->names[r->n_cf] = *cfs;
        cf_opts[r->n_cf] = r->opts;
    }
    r->db = rocksdb_open_column_families(r->opts, dir, r->n_cf, r->names, cf_opts, r->cf,
                                         &rerr);
    r->ropts = rocksdb_readoptions_create();
    r->wopts = rocksdb_writeoptions_create();
    r->batch = rocksdb_writebatch_create();
    if (took(rerr, dir, err, errlen)) {
        r->db = NULL;
        state_raw_close(r);
        return NULL;
    }
    return r;
}

void state_raw_close(struct state_raw *r)
{
    if (!r)
        return;
    if (r->db) {
        for (int i = 0; i < r->n_cf; i++)
            rocksdb_column_family_handle_destroy(r->cf[i]);
        rocksdb_close(r->db);
    }
    rocksdb_writebatch_destroy(r->batch);
    rocksdb_writeoptions_destroy(r->wopts);
    rocksdb_readoptions_destroy(r->ropts);
    rocksdb_options_destroy(r->opts);
    free(r);
}

/* The handle of a column family given at open; an unknown name aborts: it
 * is a bug in the test or bench that names it. */
static rocksdb_column_family_handle_t *raw_cf(struct state_raw *r, const char *cf)
{
    for (int i = 0; i < r->n_cf; i++)
        if (!strcmp(r->names[i], cf ? cf : "default"))
            return r->cf[i];
    fprintf(stderr, "state_raw: no column family '%s' was opened\n", cf);
    abort();
}

int state_raw_put(struct state_raw *r, const char *cf, const void *key, size_t klen,
                  const void *val, size_t vlen, char *err, size_t errlen)
{
    char *rerr = NULL;
    rocksdb_put_cf(r->db, r->wopts, raw_cf(r, cf), key, klen, val, vlen, &rerr);
    return took(rerr, "raw put", err, errlen);
}

char *state_raw_get(struct state_raw *r, const char *cf, const void *key, size_t klen,
                    size_t *vlen, char *err, size_t errlen)
{
    char *rerr = NULL;
    if (errlen)
        err[0] = '\0';
    char *v = rocksdb_get_cf(r->db, r->ropts, raw_cf(r, cf), key, klen, vlen, &rerr);
    took(rerr, "raw get", err, errlen);
    return v; /* rocksdb_free() is free() */
}

void state_raw_batch_put(struct state_raw *r, const char *cf, const void *key, size_t klen,
                         const void *val, size_t vlen)
{
    rocksdb_writebatch_put_cf(r->batch, raw_cf(r, cf), key, klen, val, vlen);
}

int state_raw_write(struct state_raw *r, char *err, size_t errlen)
{
    char *rerr = NULL;
    rocksdb_write(r->db, r->wopts, r->batch, &rerr);
    rocksdb_writebatch_clear(r->batch);
    return took(rerr, "raw write", err, errlen);
}
