/* state_raw.h: bare RocksDB access, for tests and benchmarks only.
 *
 * Tests plant raw and corrupt bytes where state.c would refuse to write
 * them, and bench/bench_state.c times plain RocksDB as the reference for the
 * state's rows. Everything else reads and writes through state.h: so that no
 * file outside state/ calls RocksDB, this is their one way in. Never link it
 * into eddy itself.
 *
 * A database opened here must not be open as a state at the same time (the
 * RocksDB lock refuses it). Errors are returned as text; a missing value is
 * not an error. */
#ifndef EDDY_STATE_RAW_H
#define EDDY_STATE_RAW_H

#include <stddef.h>

struct state_raw;

/* Opens the RocksDB in dir, creating it (with only "default") if missing,
 * with the options state.c gives its tables (bloom filters; WAL on, no
 * fsync). cfs: the names of every column family it has, NULL-terminated;
 * NULL: "default" alone. NULL and err on failure. */
struct state_raw *state_raw_open(const char *dir, const char *const *cfs, char *err,
                                 size_t errlen);
void state_raw_close(struct state_raw *db);

/* cf: one of the names given to state_raw_open(); NULL is "default". */
int state_raw_put(struct state_raw *db, const char *cf, const void *key, size_t klen,
                  const void *val, size_t vlen, char *err, size_t errlen);
/* The value (free() it) and its length; NULL if absent (err empty) or on
 * an error (err set). */
char *state_raw_get(struct state_raw *db, const char *cf, const void *key, size_t klen,
                    size_t *vlen, char *err, size_t errlen);

/* Adds a put to the database's one pending batch; state_raw_write() writes
 * that batch atomically and empties it. */
void state_raw_batch_put(struct state_raw *db, const char *cf, const void *key, size_t klen,
                         const void *val, size_t vlen);
int state_raw_write(struct state_raw *db, char *err, size_t errlen);

#endif
