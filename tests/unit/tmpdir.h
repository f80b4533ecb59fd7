/* tmpdir.h: removing a test's temporary directory tree. */
#ifndef EDDY_TEST_TMPDIR_H
#define EDDY_TEST_TMPDIR_H

#include <ftw.h>
#include <stdio.h>

static int tmpdir_rm_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb, (void)flag, (void)ftw;
    return remove(path);
}

/* Returns 0 when everything below and including dir is gone. */
static inline int tmpdir_remove(const char *dir)
{
    return nftw(dir, tmpdir_rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

#endif
