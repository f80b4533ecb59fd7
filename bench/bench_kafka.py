#!/usr/bin/python3
"""Kafka end-to-end throughput and latency, issue 5's scenarios 2 and 3.

usage: bench_kafka.py ROWS.json EDDY FLOOR   (FLOOR: the bench_floor binary)

`eddy gen` produces N events (80% clicks, 20% ad events; its default 1000
users and 5000 items, eddy's default config) into a fresh `eddy broker`
(librdkafka's mock cluster, 2 partitions a topic) while a consumer that has
already joined its group reads them. Figure: `eddy run`, events per second
from the start of the producer until eddy has taken in all N. Reference,
same run, same producer: a bare librdkafka consumer (kcat in a group on the
same topics) until it has read all N: the ceiling, since the producer bounds
both. Median of 3 each.

Latency: `eddy gen --rate R --wall-time` for a few seconds (each event
stamped with the wall time it is produced; the source batches for at most
1 ms, linger.ms = 1) on the bench's traffic (docs/performance.md, "Bench
traffic": sessions of Zipf-popular users and items, 1M users, 100k items),
into eddy with the refresh debounce at 0, after the campaign budgets; the
first 2 s of event time are warm-up and not counted. eddy's consumer gets
kafka.fetch.wait.max.ms = 1: the mock broker holds every fetch that long
(500 ms by default) even when it has data, where a real broker answers at
once. kcat, in a group, collects the output topics; latency = the output
record's Kafka timestamp (set when eddy produces it) - the output's event
time, which for a recommendation is the click's and for a decision the
start of its slot. So it runs from the event's produce call to the
output's, and leaves out eddy's own linger and the collector's lag. Three
runs at 20k events/s, each percentile the median of the three; one at 100k
(tens of thousands of samples each).

Reference of the recommendations' latency, same runs: a bare librdkafka
consumer (bench_floor) in its own group on the clicks, with eddy's fetch
settings: the time from a click's produce call to its arrival in a process
that does nothing else. It is the floor that the broker, the loopback and
a shared 2-core machine set under eddy; ratio = eddy's / the floor's.

Uses the integration tests' harness to run eddy."""
import json
import os
import subprocess
import sys
import tempfile
import threading
import time

N = 300000
RUNS = 3
RATES = ((20000, 10, 3), (100000, 4, 1))  # events/s, seconds, runs (median)


def produce(broker, eddy, out):
    r = subprocess.run([eddy, "gen", "-b", broker.bootstrap, "-n", str(N)],
                       capture_output=True, text=True, timeout=600)
    out.append(r.returncode)


def timed_producer(broker, eddy, done):
    """Starts the producer; returns N / seconds until done() is true."""
    rc = []
    t = threading.Thread(target=produce, args=(broker, eddy, rc))
    t0 = time.monotonic()
    t.start()
    while not done():
        time.sleep(0.01)
    secs = time.monotonic() - t0
    t.join()
    if rc != [0]:
        sys.exit("bench_kafka: eddy gen failed")
    return N / secs


def kcat_group(broker, group, args, stdout):
    """Starts kcat consuming from the beginning in a group; returns once the
    group has assigned it its partitions."""
    p = subprocess.Popen(["kcat", "-b", broker.bootstrap, "-G", group, "-o", "beginning", *args],
                         stdout=stdout, stderr=subprocess.PIPE, text=True)
    for line in p.stderr:
        if "assigned" in line:
            break
    threading.Thread(target=p.stderr.read, daemon=True).start()
    return p


def bare(harness, eddy):
    broker = harness.Broker(partitions=2)
    try:
        p = kcat_group(broker, "bench-bare",
                       ["-c", str(N + 5), "-f", "x", "clicks", "ad-events", "campaigns"],
                       subprocess.DEVNULL)
        return timed_producer(broker, eddy, lambda: p.poll() is not None)
    finally:
        broker.stop()


def pipeline(harness, eddy, workdir):
    broker = harness.Broker(partitions=2)
    try:
        e = harness.Eddy(broker, workdir, state_dir=tempfile.mkdtemp(dir=workdir))
        with open(e.config) as f:  # the tests' config, with eddy's default refresh
            conf = f.read().replace("refresh.interval.ms = 0\n", "")
        with open(e.config, "w") as f:
            f.write(conf)
        e.start()
        deadline = time.time() + 30  # joined: partitions assigned
        while not e.metrics().get(("eddy_assigned_partitions", frozenset()), 0):
            if time.time() > deadline:
                sys.exit("bench_kafka: eddy got no partitions")
            time.sleep(0.1)
        rate = timed_producer(broker, eddy, lambda: e.consumed() >= N + 5)
        e.stop()
        return rate
    finally:
        broker.stop()


def varint(b, i):
    """An Avro long at b[i:]: (value, next index)."""
    shift = result = 0
    while True:
        byte = b[i]
        i += 1
        result |= (byte & 0x7F) << shift
        if byte < 0x80:
            return (result >> 1) ^ -(result & 1), i
        shift += 7


def skip_string(b, i):
    n, i = varint(b, i)
    return i + n


def event_time(topic, v):
    """The event_time of a Recommendation or BudgetDecision, parsed by hand
    (the Python Avro library is too slow to keep up at 100k/s)."""
    i = skip_string(v, 10)  # single-object header, then the id
    if topic == "recommendations":
        while True:
            n, i = varint(v, i)
            if n == 0:
                break
            if n < 0:  # a block with its byte size
                n = -n
                _, i = varint(v, i)
            for _ in range(n):
                i = skip_string(v, i) + 4  # item id, float score
                branch, i = varint(v, i)  # because: null or string
                if branch == 1:
                    i = skip_string(v, i)
    else:
        _, i = varint(v, i)  # slot
        i += 16  # two doubles
        _, i = varint(v, i)
        _, i = varint(v, i)
    return varint(v, i)[0]


def start_collector(broker, path):
    """kcat in a group reads the output topics into path as `topic
    timestamp size` lines, each followed by the value (kcat, not Python,
    to keep the collector's CPU off a 2-core machine's scale)."""
    with open(path, "wb") as out:
        return kcat_group(broker, "bench-latency",
                          ["-f", "%t %T %S\\n%s", "recommendations", "budget-decisions"], out)


def read_collected(path):
    """{topic: [(event time, latency ms)]} from a collector's file."""
    lat = {"recommendations": [], "budget-decisions": []}
    with open(path, "rb") as f:
        b = f.read()
    i = 0
    while i < len(b):
        nl = b.index(b"\n", i)
        topic, ts, size = b[i:nl].decode().split()
        value = b[nl + 1:nl + 1 + int(size)]
        i = nl + 1 + int(size)
        t = event_time(topic, value)
        lat[topic].append((t, int(ts) - t))
    return lat


WARMUP_MS = 2000
# The bench's traffic, as bench_replay.c's GEN_ARGS (event time is the wall
# time here, so only the draws of users and items matter).
SESSIONS = ("--traffic", "sessions", "--users", "1000000", "--items", "100000",
            "--segments", "10")


def after_warmup(lat):
    """Drops the records whose event time is within WARMUP_MS of the first
    click's: the producer stamps events while it is still connecting, and
    eddy then works off that backlog (up to a second of latency, gone after
    about 1.5 s). Decisions are stamped with their slot's start, which may
    come before the first click, so the clicks set the start."""
    start = min((t for t, _ in lat["recommendations"]), default=0) + WARMUP_MS
    return {topic: [ms for t, ms in samples if t >= start] for topic, samples in lat.items()}


def pct(xs, p):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(len(xs) * p))] if xs else None


def wait_idle(e, timeout=300):
    """Until eddy has no lag and takes in nothing new. Behind a backlog its
    loop may not answer /metrics for seconds: that is retried."""
    deadline, last, stable = time.time() + timeout, -1, 0
    while time.time() < deadline and stable < 5:
        try:
            m = e.metrics()
        except OSError:  # timed out: busy
            stable = 0
            continue
        seen = sum(v for (name, _), v in m.items()
                   if name in ("eddy_events_in_total", "eddy_dlq_total"))
        lag = m.get(("eddy_consumer_lag", frozenset()), -1)
        stable = stable + 1 if lag == 0 and seen == last else 0
        last = seen
        time.sleep(0.3)
    if stable < 5:
        sys.exit("bench_kafka: eddy did not catch up")


def start_floor(floor, broker, path):
    """bench_floor, once the group has given it the clicks' partitions."""
    proc = subprocess.Popen([floor, broker.bootstrap, "clicks", path], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    if proc.stdout.readline().strip() != "assigned":
        sys.exit(f"bench_kafka: bench_floor did not start: {proc.communicate()[1].strip()}")
    return proc


def read_floor(proc, path):
    """[(event time, latency ms)] of the clicks from a bench_floor run."""
    proc.terminate()
    _, err = proc.communicate(timeout=60)  # after its "assigned", stdout is silent
    if proc.returncode:
        sys.exit(f"bench_kafka: bench_floor failed: {err.strip()}")
    with open(path) as f:
        return [tuple(int(x) for x in line.split()) for line in f]


def latency(harness, eddy, floor, workdir, rate, seconds):
    broker = harness.Broker(partitions=2)
    collector = floor_proc = None
    try:
        # The mock broker holds a fetch for fetch.wait.max.ms (500 ms by
        # default) even when data is there; a real broker answers at once.
        e = harness.Eddy(broker, workdir, "[kafka]\nkafka.fetch.wait.max.ms = 1\n",
                         state_dir=tempfile.mkdtemp(dir=workdir)).start()
        harness.gen(broker, "-n", 0)  # the campaign budgets only
        collected = os.path.join(workdir, "collected")
        collector = start_collector(broker, collected)
        floor_path = os.path.join(workdir, "floor")
        floor_proc = start_floor(floor, broker, floor_path)
        time.sleep(1)  # eddy and the floor have joined too
        # A latency-minded source: batches of at most 1 ms, not the default 5.
        gen_conf = os.path.join(workdir, "gen.conf")
        with open(gen_conf, "w") as f:
            f.write("[kafka]\nkafka.linger.ms = 1\n")
        n = rate * seconds
        subprocess.run([eddy, "gen", "-c", gen_conf, "-b", broker.bootstrap, "-n", str(n),
                        "--rate", str(rate), "--wall-time", "--no-budgets", *SESSIONS,
                        "--step-us", str(1000000 // rate)],
                       capture_output=True, check=True, timeout=600)
        # Not a count: past its capacity eddy falls behind, and the mock
        # broker drops what it keeps no longer (a few MB a partition).
        wait_idle(e)
        time.sleep(2)
        collector.terminate()
        collector.wait()
        e.stop()
        lat = read_collected(collected)
        lat["floor"] = read_floor(floor_proc, floor_path)
        return after_warmup(lat)
    finally:
        for proc in (collector, floor_proc):  # left running if the run failed
            if proc and proc.poll() is None:
                proc.kill()
                proc.wait()
        broker.stop()


def median_pct(lats, topic, p):
    """The median over runs of each run's percentile p, and the runs' figures."""
    each = [pct(lat[topic], p) for lat in lats]
    known = sorted(x for x in each if x is not None)
    return (known[len(known) // 2] if known else None), each


def latency_rows(harness, eddy, floor, workdir):
    """Each percentile is the median over the runs at a rate (the machine is
    shared: one run's tail moves by several times from run to run); the row
    says every run's figure."""
    rows = []
    for rate, seconds, runs in RATES:
        lats = []
        for _ in range(runs):
            lats.append(latency(harness, eddy, floor, workdir, rate, seconds))
            print(".", end="", file=sys.stderr, flush=True)
        for topic, name in (("recommendations", "recommendations"),
                            ("budget-decisions", "decisions")):
            samples = sum(len(lat[topic]) for lat in lats) // runs
            for p, label in ((0.5, "p50"), (0.99, "p99"), (0.999, "p99.9")):
                fig, each = median_pct(lats, topic, p)
                ref, ref_each = median_pct(lats, "floor", p) if topic == "recommendations" \
                    else (None, [])
                note = f", runs {'/'.join(str(x) for x in each)}" if runs > 1 else ""
                if ref is not None:
                    note += "; ref: bare consumer of the clicks" + \
                            (f", runs {'/'.join(str(x) for x in ref_each)}" if runs > 1 else "")
                rows.append({"scenario": f"latency at {rate // 1000}k ev/s, {name} {label} "
                                         f"({samples} samples{note})",
                             "unit": "ms", "figure": fig, "reference": ref,
                             "ratio": fig / ref if fig is not None and ref else None})
    return rows


def main():
    if len(sys.argv) != 4:
        sys.exit(__doc__)
    eddy, floor = os.path.abspath(sys.argv[2]), os.path.abspath(sys.argv[3])
    os.environ["EDDY"] = eddy
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests",
                                    "integration"))
    import harness
    print(f"bench_kafka: {N} events through the mock broker ", end="", file=sys.stderr,
          flush=True)
    with tempfile.TemporaryDirectory() as workdir:
        ref, fig = [], []
        for _ in range(RUNS):
            ref.append(bare(harness, eddy))
            fig.append(pipeline(harness, eddy, workdir))
            print(".", end="", file=sys.stderr, flush=True)
        rows = latency_rows(harness, eddy, floor, workdir)
    print(file=sys.stderr)
    f, r = sorted(fig)[RUNS // 2], sorted(ref)[RUNS // 2]
    rows.insert(0, {"scenario": f"Kafka end to end, {N // 1000}k events, mock broker "
                                "(ref: bare consumer)",
                    "unit": "ev/s", "figure": f, "reference": r, "ratio": f / r})
    with open(sys.argv[1], "w") as out:
        json.dump({"bench": "kafka", "events": N, "runs": RUNS, "rows": rows}, out, indent=1)


if __name__ == "__main__":
    main()
