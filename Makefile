# eddy: see README.md. `make test` and `make demo` are the two commands a
# newcomer needs; both install missing Debian packages first (as root).

CC       ?= gcc
B        ?= build
PKGS     := rdkafka avro-c rocksdb openblas libuv inih jansson libcurl libxxhash
OPT      ?= -O2 -g
CFLAGS   += -std=gnu11 -D_GNU_SOURCE -ffp-contract=off $(OPT) -Wall -Wextra -Werror \
            -Wshadow -Wmissing-prototypes -Wstrict-prototypes -I. -MMD -MP \
            $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
LDLIBS   += $(shell pkg-config --libs $(PKGS) 2>/dev/null) -lhttp_parser -lpthread -lm
ifeq ($(SAN),1)
CFLAGS   += -fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer
LDFLAGS  += -fsanitize=address,undefined
endif
# SAN=thread: ThreadSanitizer, for the state writer thread (`make tsan`).
ifeq ($(SAN),thread)
CFLAGS   += -fsanitize=thread -fno-omit-frame-pointer
LDFLAGS  += -fsanitize=thread
endif

# state/state_raw.c is for tests and benchmarks only: not part of eddy.
SRCS      := $(filter-out state/state_raw.c,$(wildcard pipeline/*/*.c operators/*.c state/*.c backtest/*.c))
OBJS      := $(SRCS:%.c=$(B)/%.o)
LIB_OBJS  := $(filter-out $(B)/pipeline/cli/main.o,$(OBJS))

# Debian packages: to build; for the unit tests; for the integration tests.
# OPTIONAL_DEBS only add checks (the report's render in a browser, the
# compose file's syntax): when they cannot be installed, those checks skip.
BUILD_DEBS := build-essential pkg-config librdkafka-dev libavro-dev librocksdb-dev \
              libopenblas-dev libuv1-dev libinih-dev libjansson-dev libcurl4-openssl-dev \
              libhttp-parser-dev uthash-dev libxxhash-dev
UNIT_DEBS  := libcmocka-dev
TEST_DEBS  := python3-pytest python3-kafka python3-avro python3-snappy python3-prometheus-client kcat curl
OPTIONAL_DEBS := docker-compose chromium
PY         := /usr/bin/python3

.PHONY: all deps deps-build deps-unit deps-test deps-optional test unit integration \
        test-one tsan compose-check demo bench clean
.DELETE_ON_ERROR:

all: $(B)/eddy

$(B)/eddy: $(OBJS)
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

$(B)/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -c -o $@ $<

# schemas/*.avsc are embedded into the binary with .incbin.
$(B)/pipeline/codec/schemas.o: $(wildcard schemas/*.avsc)

# --- unit tests (cmocka): each lists the objects it links ----------------
UNIT_TESTS := $(patsubst tests/unit/%.c,%,$(wildcard tests/unit/test_*.c))
# The configuration takes its operators' keys from the chain, which may name
# any operator: every operators/*.c is linked (a new one needs no line here).
CONFIG_OBJS := pipeline/run/config.o pipeline/run/chain.o $(patsubst %.c,%.o,$(wildcard operators/*.c)) \
               state/state.o state/json.o
TEST_OBJS_test_codec      = pipeline/codec/codec.o pipeline/codec/avromap.o pipeline/codec/registry.o pipeline/codec/schemas.o \
                            pipeline/run/log.o pipeline/codec/validate.o
TEST_OBJS_test_config     = $(CONFIG_OBJS)
TEST_OBJS_test_http       = pipeline/http/http.o pipeline/run/metrics.o
# api.o alone: the test stubs chain_query() and the other routes' collaborators.
TEST_OBJS_test_api        = pipeline/http/api.o
TEST_OBJS_test_state      = state/state.o state/state_raw.o state/json.o operators/users.o
TEST_OBJS_test_embeddings = operators/embeddings.o operators/users.o state/state.o state/json.o
TEST_OBJS_test_recommend  = operators/recommend.o operators/blas.o operators/embeddings.o \
                            operators/cooccur.o operators/users.o state/state.o state/json.o
TEST_OBJS_test_cooccur    = operators/cooccur.o operators/embeddings.o operators/users.o \
                            state/state.o state/json.o
TEST_OBJS_test_budget     = operators/budget.o state/state.o state/json.o
TEST_OBJS_test_inspect    = state/inspect.o state/state.o state/json.o operators/budget.o operators/users.o \
                            state/state_raw.o
TEST_OBJS_test_import     = pipeline/tools/import.o pipeline/codec/eventlog.o pipeline/codec/avromap.o pipeline/codec/schemas.o \
                            pipeline/run/log.o pipeline/codec/validate.o
TEST_OBJS_test_prequential = backtest/prequential.o backtest/knn.o
TEST_OBJS_test_auction    = backtest/auction.o
TEST_OBJS_test_report     = backtest/report.o backtest/auction.o backtest/prequential.o backtest/knn.o \
                            pipeline/run/log.o
TEST_OBJS_test_chain      = $(CONFIG_OBJS)
TEST_OBJS_test_mockctl    = pipeline/tools/mockctl.o pipeline/kafka/kafka.o
TEST_OBJS_test_cli       = pipeline/cli/cli.o pipeline/run/log.o $(CONFIG_OBJS)
TEST_OBJS_test_merge      = pipeline/source/merge.o
TEST_OBJS_test_source_head = pipeline/source/source_head.o pipeline/run/log.o
TEST_OBJS_test_driver     = pipeline/run/driver.o pipeline/run/log.o $(CONFIG_OBJS)
TEST_OBJS_test_gen        = pipeline/tools/gen.o pipeline/kafka/kafka.o pipeline/run/log.o $(CONFIG_OBJS) \
                            $(patsubst %.c,%.o,$(wildcard pipeline/codec/*.c))

.SECONDEXPANSION:
$(B)/tests/%: tests/unit/%.c $$(addprefix $(B)/,$$(TEST_OBJS_$$*))
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(LDFLAGS) -o $@ $(filter %.c %.o,$^) $(LDLIBS) -lcmocka

# --- benchmarks: each lists the objects it links -------------------------
BENCH_OBJS_bench_state   = state/state.o state/json.o operators/budget.o operators/users.o \
                           state/state_raw.o
BENCH_OBJS_bench_refresh = $(CONFIG_OBJS) pipeline/tools/gen.o pipeline/kafka/kafka.o pipeline/run/log.o \
                           $(patsubst %.c,%.o,$(wildcard pipeline/codec/*.c))
BENCH_OBJS_bench_budget  = $(CONFIG_OBJS) backtest/auction.o
BENCH_OBJS_bench_replay  = pipeline/source/source_logs.o pipeline/source/merge.o pipeline/codec/eventlog.o \
                           pipeline/codec/avromap.o pipeline/codec/schemas.o pipeline/run/log.o pipeline/codec/validate.o

$(B)/bench/%: bench/%.c $$(addprefix $(B)/,$$(BENCH_OBJS_$$*))
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(LDFLAGS) -o $@ $(filter %.c %.o,$^) $(LDLIBS)

# Installs what is missing of a package list (as root), or says what to run.
# $(call install_debs,WHAT,PACKAGES,OPTIONAL): OPTIONAL=1 warns instead of failing.
define install_debs
	@missing=$$(for p in $(2); do \
	    dpkg-query -W -f='$${Status}\n' $$p 2>/dev/null | grep -q '^install ok installed' || echo $$p; done); \
	if [ -z "$$missing" ]; then echo "deps ($(1)): all present"; \
	elif [ "$$(id -u)" = 0 ] && { [ -n "$$EDDY_APT_UPDATED" ] || apt-get update -qq; } && \
	     echo "deps ($(1)): installing$$(echo $$missing | sed 's/^/ /')" && \
	     DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing; then :; \
	elif [ -n "$(3)" ]; then echo "deps ($(1)): could not install $$(echo $$missing); the checks that need them skip"; \
	else echo "deps ($(1)): missing packages; run as root:"; \
	    echo "  apt-get install -y $$(echo $$missing)"; exit 1; fi
endef

deps: deps-build deps-unit deps-test deps-optional
deps-build:
	$(call install_debs,build,$(BUILD_DEBS))
deps-unit: deps-build
	$(call install_debs,unit tests,$(UNIT_DEBS))
deps-test: deps-build
	$(call install_debs,tests,$(TEST_DEBS))
deps-optional:
	$(call install_debs,optional,$(OPTIONAL_DEBS),1)

# Unit tests and integration tests run on an ASan+UBSan build; leaks fail.
SAN_ENV := ASAN_OPTIONS=detect_leaks=1:abort_on_error=0:halt_on_error=1 \
           LSAN_OPTIONS=suppressions=$(CURDIR)/tests/lsan.supp:print_suppressions=0 \
           UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1

# `make test` is the four below in turn; each also runs on its own.
test: deps
	@$(MAKE) --no-print-directory unit
	@$(MAKE) --no-print-directory integration
	@$(MAKE) --no-print-directory compose-check
	@$(MAKE) --no-print-directory fuzz-short

unit: deps-unit
	$(MAKE) --no-print-directory B=build/san SAN=1 $(addprefix build/san/tests/,$(UNIT_TESTS))
	@$(SAN_ENV) tests/run-unit.sh build/san/tests $(UNIT_TESTS)

integration: deps-test
	$(MAKE) --no-print-directory B=build/san SAN=1 build/san/eddy
	@$(SAN_ENV) EDDY=$(CURDIR)/build/san/eddy PY=$(PY) tests/run-integration.sh

# One test: `make test-one T=test_state` (a unit binary, all its cases), or
# T=test_offsets.py, T=test_offsets.py::test_name (integration, pytest ids).
test-one:
	@test -n "$(T)" || { echo "usage: make test-one T=test_state | T=test_file.py[::test_name]"; exit 2; }
	@case "$(T)" in \
	  *.py*) $(MAKE) --no-print-directory B=build/san SAN=1 build/san/eddy && \
	         $(SAN_ENV) EDDY=$(CURDIR)/build/san/eddy PY=$(PY) tests/run-integration.sh "$(T)" ;; \
	  *) $(MAKE) --no-print-directory B=build/san SAN=1 build/san/tests/$(T) && \
	     $(SAN_ENV) tests/run-unit.sh build/san/tests $(T) ;; esac

# The unit tests under ThreadSanitizer (the state writer thread and its
# callers), in build/tsan. Not test_mockctl: librdkafka starts its threads
# with C11 thrd_create(), which GCC 12's ThreadSanitizer does not intercept,
# so its first allocation on such a thread crashes.
TSAN_TESTS := $(filter-out test_mockctl,$(UNIT_TESTS))
tsan: deps-unit
	$(MAKE) --no-print-directory B=build/tsan SAN=thread $(addprefix build/tsan/tests/,$(TSAN_TESTS))
	@TSAN_OPTIONS=halt_on_error=1:suppressions=$(CURDIR)/tests/tsan.supp \
	    tests/run-unit.sh build/tsan/tests $(TSAN_TESTS)

compose-check:
	@if command -v docker-compose >/dev/null; then \
	    docker-compose -f docker-compose.yml config -q && echo "docker-compose.yml: valid"; \
	else echo "docker-compose not installed: skipping docker-compose.yml check"; fi

demo: deps-build
	$(MAKE) --no-print-directory $(B)/eddy
	$(B)/eddy demo

BENCHES := bench_state bench_refresh bench_replay bench_budget

bench: deps
	$(MAKE) --no-print-directory B=build/bench OPT="-O2 -march=x86-64-v2 -g" build/bench/eddy \
	    $(addprefix build/bench/bench/,$(BENCHES) bench_floor)
	build/bench/bench/bench_state build/bench/bench_state.json
	build/bench/bench/bench_refresh build/bench/bench_refresh.json
	build/bench/bench/bench_replay build/bench/bench_replay.json build/bench/eddy
	build/bench/bench/bench_budget build/bench/bench_budget.json
	$(PY) bench/bench_kafka.py build/bench/bench_kafka.json build/bench/eddy \
	    build/bench/bench/bench_floor
	@$(PY) bench/report.py bench/results.json \
	    $(addprefix build/bench/,$(addsuffix .json,$(BENCHES) bench_kafka))

clean:
	rm -rf build

include tests/fuzz/fuzz.mk
include tests/soak/soak.mk

-include $(shell find $(B) -name '*.d' 2>/dev/null)
