/* fuzz_config.c: libFuzzer target for the configuration parser
 * (pipeline/run/config.c, with inih underneath).
 *
 * Input: the contents of a config file, handed to config_load() through an
 * in-memory file. EDDY_* variables are removed at start-up so that the
 * caller's environment does not change what an input does.
 *
 * Checks: a failure always explains itself in err; a success leaves values
 * that config_each_model_value() can render. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pipeline/run/config.h"
#include "tests/fuzz/fuzz_util.h"

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc, (void)argv;
    fuzz_clear_eddy_env();
    return 0;
}

static void take_value(void *ctx, const char *key, const char *value)
{
    size_t *n = ctx;
    FUZZ_CHECK(key && *key && value);
    *n += strlen(key) + strlen(value);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct eddy_config cfg;
    char err[1024] = "";
    const char *path = fuzz_input_file(data, size);

    if (config_load(&cfg, path, err, sizeof err)) {
        if (!err[0]) {
            fprintf(stderr, "config_load failed without a message\n");
            abort();
        }
        config_free(&cfg); /* documented as harmless after a failure */
        return 0;
    }
    size_t n = 0;
    config_each_model_value(&cfg, take_value, &n);
    FUZZ_CHECK(n > 0);
    config_free(&cfg);
    return 0;
}
