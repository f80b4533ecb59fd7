/* fuzz_import_ipinyou.c: libFuzzer target for import_ipinyou() (pipeline/tools/import.c);
 * the harness and its checks are in fuzz_import.h. */
#include "tests/fuzz/fuzz_import.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    return fuzz_import(import_ipinyou, data, size);
}
