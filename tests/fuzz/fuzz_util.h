/* fuzz_util.h: what the libFuzzer targets share: inputs as files without
 * touching the disk, scratch directories, and a clean environment. */
#ifndef EDDY_FUZZ_UTIL_H
#define EDDY_FUZZ_UTIL_H

#include <errno.h>
#include <ftw.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

extern char **environ;

/* libFuzzer's entry points (it declares none in a header). */
int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Aborts: a harness that cannot set itself up must not report "no bugs". */
#define FUZZ_CHECK(cond)                                                              \
    do {                                                                              \
        if (!(cond)) {                                                                \
            fprintf(stderr, "%s:%d: harness check failed: %s (%s)\n", __FILE__, __LINE__, \
                    #cond, strerror(errno));                                          \
            abort();                                                                  \
        }                                                                             \
    } while (0)

/* Writes the input to an in-memory file, reused across inputs, and returns
 * a path that opens it ("/proc/self/fd/N"): each fopen() gets its own offset. */
static inline const char *fuzz_input_file(const uint8_t *data, size_t size)
{
    static int fd = -1;
    static char path[64];
    if (fd < 0) {
        FUZZ_CHECK((fd = memfd_create("fuzz-input", 0)) >= 0);
        snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
    }
    FUZZ_CHECK(ftruncate(fd, 0) == 0);
    for (size_t off = 0; off < size;) {
        ssize_t n = pwrite(fd, data + off, size - off, (off_t)off);
        FUZZ_CHECK(n > 0);
        off += (size_t)n;
    }
    return path;
}

static int fuzz_rm_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb, (void)flag, (void)ftw;
    return remove(path);
}

static char fuzz_dir[64];

static void fuzz_rm_dir(void)
{
    if (fuzz_dir[0])
        nftw(fuzz_dir, fuzz_rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

/* A scratch directory for the process, in RAM when /dev/shm is there (the
 * importers write files per input), removed at exit. */
static inline const char *fuzz_scratch_dir(void)
{
    if (fuzz_dir[0])
        return fuzz_dir;
    snprintf(fuzz_dir, sizeof fuzz_dir, "%s/eddy-fuzz-XXXXXX",
             access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp");
    FUZZ_CHECK(mkdtemp(fuzz_dir));
    atexit(fuzz_rm_dir);
    return fuzz_dir;
}

/* Drops every EDDY_* variable: config_load() reads them, and a developer's
 * shell must not change what an input does. */
static inline void fuzz_clear_eddy_env(void)
{
    for (char **e = environ; *e;) {
        if (strncmp(*e, "EDDY_", 5) == 0) {
            char name[256];
            snprintf(name, sizeof name, "%.*s", (int)strcspn(*e, "="), *e);
            unsetenv(name); /* environ shifts down: look at *e again */
        } else {
            e++;
        }
    }
}

#endif
