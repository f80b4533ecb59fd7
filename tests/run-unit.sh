#!/bin/sh
# Runs every cmocka unit test binary given; prints one summary line.
# usage: run-unit.sh DIR test_a test_b ...
dir=$1; shift
passed=0; failed=0
for t in "$@"; do
    if "$dir/$t"; then passed=$((passed + 1)); else failed=$((failed + 1)); echo "FAILED: $t"; fi
done
echo "unit: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
