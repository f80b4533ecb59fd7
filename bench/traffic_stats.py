#!/usr/bin/python3
"""traffic_stats.py: what `eddy gen --out DIR` traffic looks like.

Usage: traffic_stats.py DIR/clicks.avro

Prints the event-type mix, the popularity of users and items (share of
clicks of the top 1% / 10%, and the Zipf exponent fitted on log rank vs
log count over ranks 10-1000 and 1000-10000), the sessions (clicks per session, gaps
within a session, gaps between a user's sessions) and how often two clicks
of one session fall in the same item cluster. docs/performance.md, "Bench
traffic", quotes its output."""
import math
import statistics
import sys
from collections import Counter, defaultdict

import avro.datafile
import avro.io


def fit_zipf(counts, lo, hi):
    c = sorted(counts, reverse=True)
    pts = [(math.log(r + 1), math.log(c[r])) for r in range(lo - 1, min(hi, len(c))) if c[r] > 0]
    if len(pts) < 10:
        return float("nan")
    mx = statistics.fmean(p[0] for p in pts)
    my = statistics.fmean(p[1] for p in pts)
    sxy = sum((x - mx) * (y - my) for x, y in pts)
    sxx = sum((x - mx) ** 2 for x, _ in pts)
    return -sxy / sxx


def top_share(counts, frac):
    c = sorted(counts, reverse=True)
    n = max(1, int(len(c) * frac))
    return sum(c[:n]) / sum(c)


def pct(xs, q):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(q * len(xs)))]


def main():
    users, items, types = Counter(), Counter(), Counter()
    sessions = defaultdict(list)  # id -> [(ts, user, item)]
    with open(sys.argv[1], "rb") as f:
        for r in avro.datafile.DataFileReader(f, avro.io.DatumReader()):
            users[r["user_id"]] += 1
            items[r["item_id"]] += 1
            types[r["event_type"]] += 1
            if r.get("session_id"):
                ts = r["timestamp"]
                if not isinstance(ts, int):  # avro returns timestamp-millis as a datetime
                    ts = int(ts.timestamp() * 1000)
                sessions[r["session_id"]].append((ts, r["user_id"], r["item_id"]))
    n = sum(types.values())
    print(f"clicks {n}, distinct users {len(users)}, distinct items {len(items)}")
    print("types: " + ", ".join(f"{t} {c / n:.1%}" for t, c in types.most_common()))
    for name, c in (("users", users), ("items", items)):
        print(f"{name}: top 1% {top_share(c.values(), 0.01):.1%} of clicks, top 10% "
              f"{top_share(c.values(), 0.10):.1%}, fitted Zipf exponent: ranks 10-1000 "
              f"{fit_zipf(c.values(), 10, 1000):.2f}, 1000-10000 "
              f"{fit_zipf(c.values(), 1000, 10000):.2f}")
    if not sessions:
        return
    lens = [len(s) for s in sessions.values()]
    within = [b[0] - a[0] for s in sessions.values() for a, b in zip(s, s[1:])]
    print(f"sessions {len(sessions)}: clicks per session mean {statistics.fmean(lens):.1f}, "
          f"median {pct(lens, 0.5)}, p90 {pct(lens, 0.9)}")
    if within:
        print(f"gap within a session: median {pct(within, 0.5) / 1000:.1f} s, "
              f"p10 {pct(within, 0.1) / 1000:.1f} s, p90 {pct(within, 0.9) / 1000:.1f} s")
    spans = defaultdict(list)  # user -> [(start, end)]
    for s in sessions.values():
        spans[s[0][1]].append((s[0][0], s[-1][0]))
    between = []
    for v in spans.values():
        v.sort()
        between += [b[0] - a[1] for a, b in zip(v, v[1:])]
    if between:
        print(f"gap between a user's sessions ({len(between)}): median "
              f"{pct(between, 0.5) / 60000:.1f} min, p10 {pct(between, 0.1) / 60000:.1f} min, "
              f"p90 {pct(between, 0.9) / 60000:.1f} min")
    segs = int(sys.argv[2]) if len(sys.argv) > 2 else 10
    same = pairs = 0
    for s in sessions.values():
        for a, b in zip(s, s[1:]):
            pairs += 1
            same += int(a[2][1:]) % segs == int(b[2][1:]) % segs
    if pairs:
        print(f"consecutive clicks of a session in the same cluster: {same / pairs:.1%}")


if __name__ == "__main__":
    main()
