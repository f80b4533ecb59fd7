# tests/soak/soak.mk: `make soak`, included by the Makefile.
#
#   make soak                   30 minutes of eddy at 20k records/s under
#                               rotating broker faults (tests/soak/soak.py)
#   SOAK_MINUTES=3 make soak    a short run, to try the harness
#
# It builds its own optimised eddy (build/soak/eddy: a soak measures the
# binary that would ship, not the sanitizer build) and writes
# build/soak/soak.md and build/soak/soak.svg. Other knobs, read from the
# environment by soak.py (its docstring says what each does): SOAK_RATE,
# SOAK_PARTITIONS, SOAK_USERS, SOAK_BAD_EVERY, SOAK_FAULT_EVERY, SOAK_FAULTS,
# SOAK_SAMPLE_S, SOAK_MESSAGE_TIMEOUT_MS, SOAK_CHECK_EVERY, SOAK_STALL_S.

SOAK_MINUTES ?= 30

.PHONY: soak
soak: deps-test
	$(MAKE) --no-print-directory B=build/soak build/soak/eddy
	SOAK_MINUTES=$(SOAK_MINUTES) $(PY) tests/soak/soak.py build/soak/eddy build/soak
