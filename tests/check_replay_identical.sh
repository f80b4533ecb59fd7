#!/bin/sh
# Proves that a refactor changed no output: builds eddy at REV (default HEAD)
# in a temporary git worktree and the working tree as it is, runs the README's
# two backtests (a MovieLens-style and an iPinYou-style log, both generated
# here with fixed seeds, so ../shared is not needed) with each binary, and
# compares recommendations.avro, decisions.avro and report.json byte for byte
# (report.json without its "wall time" keys, which time the run).
#
# usage: tests/check_replay_identical.sh [REV]
# Exits 0 when every file is identical, 1 (naming the files) when not.
set -eu
rev=${1:-HEAD}
root=$(cd "$(dirname "$0")/.." && pwd)
work=$(mktemp -d /tmp/eddy-identical.XXXXXX)
cleanup() {
    git -C "$root" worktree remove --force "$work/base" 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT

build() { # tree -> binary
    make -C "$1" --no-print-directory -s B="$work/build-$2" "$work/build-$2/eddy" >/dev/null
    echo "$work/build-$2/eddy"
}

git -C "$root" worktree add --detach -q "$work/base" "$rev"
base=$(build "$work/base" base)
this=$(build "$root" this)

# MovieLens-style ratings: userId,movieId,rating,timestamp (seconds).
/usr/bin/python3 - "$work/ratings.csv" "$work/auctions.txt" <<'EOF'
import random, sys
r = random.Random(7)
with open(sys.argv[1], "w") as f:
    f.write("userId,movieId,rating,timestamp\n")
    t = 1_600_000_000
    for _ in range(20000):
        u = r.randrange(1, 300)
        m = (u % 10) * 40 + r.randrange(40) if r.random() < 0.8 else r.randrange(1, 800)
        t += r.randrange(0, 30)
        f.write(f"{u},{m},{r.choice([1, 2, 3, 3.5, 4, 4.5, 5])},{t}\n")
# iPinYou-style auctions: click, market price, pCTR, exchange.
with open(sys.argv[2], "w") as f:
    for _ in range(30000):
        p = r.betavariate(1, 300)
        f.write(f"{int(r.random() < p * 3)}\t{r.randrange(1, 300)}\t{p:.6f}\t{r.randrange(1, 4)}\n")
EOF

"$this" import movielens "$work/ratings.csv" -o "$work/ml" >/dev/null
"$this" import ipinyou "$work/auctions.txt" -o "$work/ip" >/dev/null
head -n 10000 "$work/auctions.txt" >"$work/auctions-train.txt"
"$this" import ipinyou "$work/auctions-train.txt" -o "$work/ip-train" >/dev/null

# The same state and output paths for both binaries: the report names them.
replay() { # binary run-name extra-args...
    bin=$1; run=$2; shift 2
    rm -rf "$work/state" "$work/out"
    "$bin" replay --state "$work/state" -o "$work/out" "$@" >/dev/null 2>&1
}
# report.json also says how long the run took: that key alone is left out.
canonical() {
    /usr/bin/python3 -c '
import json, sys
def strip(v):
    if isinstance(v, dict):
        return {k: strip(x) for k, x in v.items() if k != "wall time"}
    return [strip(x) for x in v] if isinstance(v, list) else v
print(json.dumps(strip(json.load(open(sys.argv[1]))), indent=1))' "$1"
}

for who in base this; do
    eval bin=\$$who
    replay "$bin" ml "$work/ml"
    mv "$work/out" "$work/$who-ml"
    replay "$bin" ip --budget-fractions 1/32,1/16,1/8,1/4,1/2 --tune-on "$work/ip-train" "$work/ip"
    mv "$work/out" "$work/$who-ip"
    for run in ml ip; do
        canonical "$work/$who-$run/report.json" >"$work/$who-$run/report.canonical.json"
    done
done

status=0
for run in ml ip; do
    for f in recommendations.avro decisions.avro report.canonical.json; do
        if cmp -s "$work/base-$run/$f" "$work/this-$run/$f"; then
            echo "identical: $run/$f"
        else
            echo "DIFFERS:   $run/$f"
            status=1
        fi
    done
done
# Guard against comparing two empty runs.
for f in ml/recommendations.avro ip/decisions.avro; do
    [ "$(wc -c <"$work/this-${f%%/*}/${f#*/}")" -gt 4096 ] || { echo "too small to prove anything: $f"; status=1; }
done
exit $status
