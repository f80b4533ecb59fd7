# tests/fuzz/fuzz.mk: libFuzzer targets, included by the Makefile.
#
#   make fuzz        every target for FUZZ_SECONDS (default 600), two at a time
#   make fuzz-short  replays tests/fuzz/regressions/, then a short pass of each
#                    target (all together some 20-30 s); part of `make test`
#
# Targets are built with clang (libFuzzer ships only with clang) into
# build/fuzz/, from their own objects: -fsanitize=fuzzer-no-link puts the
# coverage instrumentation into eddy's code too, not just the harness.
# tests/fuzz/run.sh runs them; it documents the corpus directories.

FUZZ_CC      ?= clang
FUZZ_B       := build/fuzz
FUZZ_SECONDS ?= 600
# A short pass per target: libFuzzer overruns it by 1-2 s (start-up, the final
# leak check): two at a time, the seven targets took 27 s on this 2-core
# machine while it was busy with other work (load average 5).
FUZZ_SHORT_SECONDS ?= 2
FUZZ_JOBS    ?= 2
FUZZ_TARGETS := codec config api http import_movielens import_ipinyou import_otto

# The project's flags (warnings and -Werror included), minus any gcc
# sanitizer set of SAN=1, plus libFuzzer's instrumentation.
FUZZ_SAN     := -fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer
FUZZ_CFLAGS   = $(filter-out -fsanitize=% -fno-sanitize-recover=%,$(CFLAGS)) $(FUZZ_SAN)

# clang and its runtime (libFuzzer) on Debian 12, installed by `make deps`.
TEST_DEBS    += clang libclang-rt-14-dev

FUZZ_IMPORT_OBJS := pipeline/tools/import.o pipeline/codec/eventlog.o pipeline/codec/avromap.o pipeline/codec/schemas.o \
                    pipeline/run/log.o pipeline/codec/validate.o
# The registry client is left out of the codec target: the harness stands in
# for it, so Confluent ids resolve without any network.
FUZZ_OBJS_codec  := pipeline/codec/codec.o pipeline/codec/avromap.o pipeline/codec/schemas.o pipeline/run/log.o \
                    pipeline/codec/validate.o
FUZZ_OBJS_config := $(CONFIG_OBJS)
FUZZ_OBJS_api    := pipeline/http/api.o pipeline/run/metrics.o pipeline/codec/validate.o state/inspect.o \
                    $(CONFIG_OBJS)
FUZZ_OBJS_http   := pipeline/http/http.o
FUZZ_OBJS_import_movielens := $(FUZZ_IMPORT_OBJS)
FUZZ_OBJS_import_ipinyou   := $(FUZZ_IMPORT_OBJS)
FUZZ_OBJS_import_otto      := $(FUZZ_IMPORT_OBJS)

FUZZ_BINS := $(addprefix $(FUZZ_B)/fuzz_,$(FUZZ_TARGETS))

.PHONY: fuzz fuzz-short fuzz-build

fuzz-build: $(FUZZ_BINS)

$(FUZZ_B)/obj/%.o: %.c
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(FUZZ_CFLAGS) -fsanitize=fuzzer-no-link -c -o $@ $<

# Objects built by the pattern rule are intermediates to make; keep them.
.PRECIOUS: $(FUZZ_B)/obj/%.o
$(FUZZ_B)/obj/pipeline/codec/schemas.o: $(wildcard schemas/*.avsc)

# .SECONDEXPANSION is on (the Makefile sets it before including this).
$(FUZZ_B)/fuzz_%: tests/fuzz/fuzz_%.c tests/fuzz/fuzz_util.h \
                  $$(addprefix $(FUZZ_B)/obj/,$$(FUZZ_OBJS_$$*))
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(FUZZ_CFLAGS) -fsanitize=fuzzer -o $@ $(filter %.c %.o,$^) $(LDLIBS)

fuzz: $(FUZZ_BINS)
	tests/fuzz/run.sh long $(FUZZ_SECONDS) $(FUZZ_JOBS) $(FUZZ_TARGETS)

fuzz-short: deps-test
	@$(MAKE) --no-print-directory fuzz-build
	@tests/fuzz/run.sh short $(FUZZ_SHORT_SECONDS) $(FUZZ_JOBS) $(FUZZ_TARGETS)

-include $(shell find $(FUZZ_B) -name '*.d' 2>/dev/null)
