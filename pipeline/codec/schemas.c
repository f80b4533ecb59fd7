/* schemas.c: eddy's Avro schemas (the .avsc files in schemas/), embedded into the binary.
 *
 * .incbin copies each file verbatim at build time, so the .avsc files stay
 * the single source of truth and nothing has to be found at run time. The
 * assembler resolves the path against its working directory: the Makefile
 * compiles from the repository root (and lists the files as prerequisites of
 * schemas.o). A NUL byte follows each file so it can be used as a C string. */
#include "pipeline/codec/codec.h"

#define EMBED(sym, path)                           \
    __asm__(".pushsection .rodata\n"               \
            ".globl " #sym "\n"                    \
            ".hidden " #sym "\n"                   \
            ".type " #sym ", @object\n" #sym ":\n" \
            ".incbin \"" path "\"\n"               \
            ".byte 0\n"                            \
            ".size " #sym ", . - " #sym "\n"       \
            ".popsection\n");                      \
    extern const char sym[]

EMBED(eddy_schema_click, "schemas/ClickEvent.avsc");
EMBED(eddy_schema_ad, "schemas/AdEvent.avsc");
EMBED(eddy_schema_campaign, "schemas/CampaignBudget.avsc");
EMBED(eddy_schema_recommendation, "schemas/Recommendation.avsc");
EMBED(eddy_schema_decision, "schemas/BudgetDecision.avsc");

const char *codec_schema_json(enum eddy_record_type type)
{
    static const char *const text[REC_TYPE_COUNT] = {
        [REC_CLICK] = eddy_schema_click,       [REC_AD] = eddy_schema_ad,
        [REC_CAMPAIGN] = eddy_schema_campaign, [REC_RECOMMENDATION] = eddy_schema_recommendation,
        [REC_DECISION] = eddy_schema_decision,
    };
    return (unsigned)type < REC_TYPE_COUNT ? text[type] : NULL;
}
