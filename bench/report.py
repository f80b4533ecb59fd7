#!/usr/bin/python3
"""Prints `make bench`'s one table from the benches' row files and writes
bench/results.json with every row, the date and the machine.

usage: report.py RESULTS.json ROWS.json..."""
import datetime
import json
import os
import platform
import sys

TARGETS = """Targets. State: RMW ratio >= 10 on the first row (skewed, realistic; the
uniform row is the worst case, shown for honesty); peak RSS ratio <= 1;
restart < 5 s. Pipeline (issue 12, on the sessions traffic: docs/performance.md,
"Bench traffic"): replay >= 500k ev/s end to end with default settings;
refresh >= 50k users/s at 100k and 1M items (reference: retrieval = exact);
latency p99 at 20k ev/s < 5 ms. Kafka end to end >= 0.6 of the bare
consumer; all-cached peak RSS <= 1.5 x raw vector bytes + fixed overhead.
What bounds each row: docs/performance.md."""


def machine():
    model = "unknown CPU"
    try:
        with open("/proc/cpuinfo") as f:
            model = next(l.split(":", 1)[1].strip() for l in f if l.startswith("model name"))
    except (OSError, StopIteration):
        pass
    return f"{model}, {os.cpu_count()} cores, {platform.system()} {platform.release()}"


def num(x):
    if x is None:
        return "-"
    return f"{x:.0f}" if abs(x) >= 100 else f"{x:.3g}"


def main():
    if len(sys.argv) < 3:
        sys.exit(__doc__)
    benches = []
    for path in sys.argv[2:]:
        with open(path) as f:
            benches.append(json.load(f))
    when = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    print(f"eddy bench, {when}, {machine()}")
    print(f"{'scenario':<72} | {'figure':>10} | {'unit':<7} | {'reference':>10} | {'ratio':>6}")
    print(f"{'-' * 72}-|-{'-' * 10}-|-{'-' * 7}-|-{'-' * 10}-|-{'-' * 6}")
    for b in benches:
        for r in b["rows"]:
            print(f"{r['scenario']:<72} | {num(r['figure']):>10} | {r['unit']:<7} | "
                  f"{num(r['reference']):>10} | {num(r['ratio']):>6}")
    print(TARGETS)
    with open(sys.argv[1], "w") as f:
        json.dump({"date": when, "machine": machine(), "benches": benches}, f, indent=1)
        f.write("\n")


if __name__ == "__main__":
    main()
