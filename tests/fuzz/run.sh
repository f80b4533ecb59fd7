#!/bin/bash
# Runs the libFuzzer targets built in build/fuzz/ (see tests/fuzz/fuzz.mk).
#
# usage: run.sh long|short SECONDS JOBS target...
#
#   long   fuzzes each target for SECONDS; at most JOBS at a time, niced
#   short  first replays every reproducer in tests/fuzz/regressions/<target>/
#          (each must now run clean), then fuzzes each target for SECONDS
#
# Corpus directories of a target T:
#   tests/fuzz/corpus/T/       seeds, kept in git, only read
#   tests/fuzz/regressions/T/  inputs that once crashed; replayed and used as seeds
#   build/fuzz/corpus/T/       what libFuzzer adds (first directory: it writes there)
# A new crash, leak or timeout is written to tests/fuzz/regressions/T/ (libFuzzer's
# crash-*, leak-*, timeout-* files), so that `make fuzz-short` replays it from then on.
# Each run's log is build/fuzz/logs/T.log; its last lines give the stats
# (exec/s, cov:, ft:, corpus size) that docs/reliability.md records.
set -u
mode=$1 secs=$2 jobs=$3
shift 3
B=build/fuzz
mkdir -p "$B/logs"

# libFuzzer options: leak detection on (it is by default under ASan; said
# explicitly because a leak is a failure here), a 25 s timeout per input
# (the HTTP target's server gives up on a client after 10 s), and inputs up
# to 16 KiB (the HTTP server refuses requests above 8 KiB: both sides of it).
opts="-detect_leaks=1 -timeout=25 -max_len=16384 -print_final_stats=1"
export ASAN_OPTIONS="${ASAN_OPTIONS:-}:detect_leaks=1:allocator_may_return_null=1"
export UBSAN_OPTIONS="${UBSAN_OPTIONS:-}:print_stacktrace=1:halt_on_error=1"

replay() {
    t=$1 dir=tests/fuzz/regressions/$1
    files=$(find "$dir" -type f ! -name '.*' 2>/dev/null | sort)
    [ -z "$files" ] && return 0
    # Given files rather than directories, libFuzzer runs each once and stops.
    # shellcheck disable=SC2086
    if ! "$B/fuzz_$t" $opts $files >"$B/logs/$t.replay.log" 2>&1; then
        echo "fuzz $t: a regression input fails again; see $B/logs/$t.replay.log"
        return 1
    fi
    echo "fuzz $t: $(echo "$files" | wc -l) regression input(s) replayed clean"
}

run() {
    t=$1
    mkdir -p "$B/corpus/$t" "tests/fuzz/regressions/$t"
    seeds=tests/fuzz/corpus/$t
    # shellcheck disable=SC2086
    nice -n 10 "$B/fuzz_$t" $opts -max_total_time="$secs" \
        -artifact_prefix="tests/fuzz/regressions/$t/" \
        "$B/corpus/$t" "$seeds" "tests/fuzz/regressions/$t" >"$B/logs/$t.log" 2>&1
    rc=$?
    # The final status line ("#N DONE cov: ... ft: ... corp: ...") and stats.
    done_line=$(grep -E '^#[0-9]+[[:space:]]+(DONE|INITED)' "$B/logs/$t.log" | tail -1)
    eps=$(grep -E '^stat::average_exec_per_sec' "$B/logs/$t.log" | awk '{print $2}')
    if [ $rc -ne 0 ]; then
        echo "fuzz $t: FAILED (exit $rc); see $B/logs/$t.log and tests/fuzz/regressions/$t/"
        return 1
    fi
    echo "fuzz $t: ${secs}s, ${eps:-?} exec/s: $done_line"
}

failed=0
if [ "$mode" = short ]; then
    for t in "$@"; do replay "$t" || failed=1; done
fi

# At most $jobs targets at a time: the machine is shared.
status_dir=$(mktemp -d)
running=0
for t in "$@"; do
    (run "$t" || touch "$status_dir/$t.failed") &
    running=$((running + 1))
    if [ "$running" -ge "$jobs" ]; then
        wait -n
        running=$((running - 1))
    fi
done
wait
[ -n "$(ls "$status_dir")" ] && failed=1
rm -rf "$status_dir"
[ $failed -eq 0 ] && echo "fuzz ($mode): all $# targets clean"
exit $failed
