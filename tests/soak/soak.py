#!/usr/bin/python3
"""soak.py: eddy under a steady stream and rotating broker faults.

usage: soak.py EDDY OUTDIR        (make soak; SOAK_MINUTES=3 make soak)

Runs `eddy broker --brokers 2` (inputs and the group coordinator on broker 1,
outputs on broker 2), `eddy run`, and `eddy gen --wall-time --rate R` for
SOAK_MINUTES, and injects a fault every SOAK_FAULT_EVERY seconds in rotation
through the broker's control channel (docs/reliability.md). eddy is restarted
whenever it exits, as Kubernetes would, with a fresh group.id each time (the
mock holds an old member ~45 s; eddy keeps its offsets in its own state, so
a new group loses nothing). Every SOAK_SAMPLE_S seconds it samples eddy's
RSS, open fds and consumer lag, and the records produced and consumed.

Outputs are read while they are written (kcat, one per topic): the mock keeps
only ~5 MB per partition, so at 20k records/s a topic read at the end would
have lost its start. At the end, after the generator stopped and eddy caught
up, nothing may be lost:
  - offsets: eddy's stored offsets equal the end offsets of every input
    partition (`eddy state stats`);
  - users: with [recommend] refresh.interval.ms = 0 every accepted click
    queues a refresh of its user at its own event time (or is folded into
    one already queued), published once every input partition's watermark
    passes it. So every user with an accepted click has a recommendation;
    and for the users with id % SOAK_CHECK_EVERY == 0, whose
    recommendations are decoded, each click has a recommendation at its
    own event time or provably was folded into an earlier one, and each
    user's last click is covered (check_users() gives the reasoning);
  - dead letters: the distinct source records in eddy-dlq equal the bad
    records gen wrote (every --bad-every'th), and every click this script
    could not decode is among them;
  - and the soak's own readers saw every offset (else it cannot tell).
Clicks produced after the generator stopped (a short tail run that moves the
watermarks past the last real click) are not checked.

Exit status 0 only if nothing was lost, eddy never stalled (no progress for
SOAK_STALL_S with input waiting: it is then killed and restarted), and its RSS
and fd count did not grow more than RSS_TOLERANCE / FD_TOLERANCE over the
second half of its longest incarnation while the generator ran (a restart
resets both, and the first half warms caches up).

Knobs (environment): SOAK_MINUTES (30) of generator; SOAK_RATE (20000)
records/s; SOAK_PARTITIONS (32) per topic; SOAK_USERS (100000);
SOAK_BAD_EVERY (1000): every Nth record bad; SOAK_FAULT_EVERY seconds between
faults (180, fewer in short runs); SOAK_FAULTS=none for a run without faults;
SOAK_SAMPLE_S (10); SOAK_MESSAGE_TIMEOUT_MS (10000): eddy's producer
message.timeout.ms; SOAK_CACHE_BYTES (1 GiB, eddy's default): [state] cache.bytes; SOAK_CHECK_EVERY (8): users whose recommendations are
decoded; SOAK_STALL_S (60).

Writes OUTDIR/soak.md (parameters, the table, the checks), OUTDIR/soak.svg
(RSS, fds and lag over time, fault windows shaded, restarts marked),
OUTDIR/eddy.log, OUTDIR/gen.log, OUTDIR/kcat.log.
"""
import array
import bisect
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "integration"))


def env_num(name, default, kind=int):
    v = os.environ.get(name, "")
    return kind(v) if v.strip() else default


MINUTES = env_num("SOAK_MINUTES", 30.0, float)
RATE = env_num("SOAK_RATE", 20000)
# The mock keeps ~5 MB, about 110k input records, per partition (real Kafka
# keeps by time, days by default): with 32, some 3.5 minutes of clicks. 16
# kept too little; 64 loaded the mock's one thread so much that eddy's
# catch-up slowed down.
PARTITIONS = env_num("SOAK_PARTITIONS", 32)
USERS = env_num("SOAK_USERS", 100000)
BAD_EVERY = env_num("SOAK_BAD_EVERY", 1000)
CHECK_EVERY = env_num("SOAK_CHECK_EVERY", 8)  # users whose recommendations are decoded
SAMPLE_S = env_num("SOAK_SAMPLE_S", 10.0, float)
MSG_TIMEOUT_MS = env_num("SOAK_MESSAGE_TIMEOUT_MS", 10000)
# eddy's state memory budget, its default. A user's seen items are not bounded
# yet, so the state itself grows all run; the growth check judges the memory
# outside the state's budgeted parts (RSS - eddy_state_cache_bytes -
# eddy_state_memtable_bytes - eddy_state_block_cache_bytes), which is where a
# leak would be (run 5 subtracted only the cache). 64 and 256 MiB were
# tried: once the cache was full, eddy's rate fell towards the input's, and
# after faults its lag outran the mock's retention.
CACHE_BYTES = env_num("SOAK_CACHE_BYTES", 1 << 30)
STATE_MEMORY = ("eddy_state_cache_bytes", "eddy_state_memtable_bytes",
                "eddy_state_block_cache_bytes")
# Two parts of "other", for reading where it goes: librdkafka's queues (input
# fetched ahead, outputs not yet acknowledged), and free memory malloc holds.
KAFKA_QUEUES = ("eddy_kafka_consumer_queued_bytes", "eddy_kafka_producer_queued_bytes")
# No progress for this long with input waiting: eddy is stuck, and is killed
# and restarted (and the soak fails) rather than left to hold the run up.
STALL_S = env_num("SOAK_STALL_S", 60.0, float)
FAULTS = os.environ.get("SOAK_FAULTS", "all")  # "none": the same run without faults
WARMUP_S = 20.0
DURATION_S = MINUTES * 60
# A fault every few minutes; a short run squeezes the five of the rotation in.
FAULT_EVERY = env_num("SOAK_FAULT_EVERY", max(30.0, min(180.0, (DURATION_S - WARMUP_S - 10) / 5)),
                      float)
RSS_TOLERANCE = (0.10, 32.0)  # growth allowed in steady state: 10% or 32 MB, the larger
FD_TOLERANCE = 16
# Ad events are keyed by campaign, so campaigns spread them over partitions:
# with 5, 800 ad events/s went to each of five partitions, whose logs then
# kept only 140 s (the soak's runs 3 and 4 ran out of them).
CAMPAIGNS = 64
INPUTS = ("clicks", "ad-events", "campaigns")
OUTPUTS = ("recommendations", "budget-decisions", "eddy-dlq")

if len(sys.argv) != 3:
    sys.exit(__doc__.split("\n\n")[1])
EDDY = os.path.abspath(sys.argv[1])
OUT = os.path.abspath(sys.argv[2])
os.environ["EDDY"] = EDDY
import harness  # noqa: E402  (reads EDDY)
from kafka import KafkaConsumer, TopicPartition  # noqa: E402

T0 = time.time()


def now():
    return time.time() - T0


def log(msg):
    print(f"[{now():7.1f}s] {msg}", flush=True)


# --- Avro: just enough of the two schemas to read the fields checked ---------

CLICK_HDR = b"\xc3\x01" + harness.fingerprint(harness.schema("ClickEvent")).to_bytes(8, "little")
REC_HDR = b"\xc3\x01" + harness.fingerprint(harness.schema("Recommendation")).to_bytes(8, "little")


def _long(b, i):
    shift = r = 0
    while True:
        c = b[i]
        i += 1
        r |= (c & 0x7F) << shift
        if c < 0x80:
            return (r >> 1) ^ -(r & 1), i
        shift += 7
        if shift > 63:
            raise ValueError("varint too long")


def _bytes(b, i):
    n, i = _long(b, i)
    if n < 0 or i + n > len(b):
        raise ValueError("bad length")
    return b[i:i + n], i + n


def decode_click(v):
    """(user, event time) of a ClickEvent that eddy accepts, else None.
    Strict: any trailing or missing byte fails, as eddy's decoder does."""
    if v is None or v[:10] != CLICK_HDR:
        return None
    try:
        user, i = _bytes(v, 10)
        item, i = _bytes(v, i)
        kind, i = _long(v, i)
        ts, i = _long(v, i)
        branch, i = _long(v, i)
        if branch == 1:
            _, i = _bytes(v, i)
        elif branch != 0:
            return None
    except (IndexError, ValueError):
        return None
    if i != len(v) or not user or not item or not 0 <= kind <= 3 or ts < 0:
        return None
    return user.decode(), ts


def rec_event_time(v):
    """event_time of a Recommendation."""
    if v[:10] != REC_HDR:
        raise ValueError("not a Recommendation")
    _, i = _bytes(v, 10)
    while True:
        n, i = _long(v, i)
        if n == 0:
            break
        if n < 0:
            n = -n
            _, i = _long(v, i)  # block size
        for _ in range(n):
            _, i = _bytes(v, i)  # item_id
            i += 4  # score
            branch, i = _long(v, i)  # because: null or string
            if branch:
                _, i = _bytes(v, i)
    return _long(v, i)[0]


def checked_user(user):
    return user[1:].isdigit() and int(user[1:]) % CHECK_EVERY == 0


# --- readers: one kcat per topic, from the beginning, while it is written -----

class Reader(threading.Thread):
    """Consumes one topic with kcat and hands each record to on_record(p, o,
    Kafka timestamp, key, data). mode "value": data is the value; "headers": the headers as
    kcat prints them (n=v,...); "none": None. Tracks, per partition, the next
    offset expected: a jump is a gap, i.e. records that rolled out of the
    mock's log before they were read."""

    # A header line, then (for "value") exactly %S bytes of value, or (for
    # "headers") everything up to a record separator: values are binary.
    FORMATS = {"value": r"%p %o %T %S %k\n%s", "headers": r"%p %o %T -2 %k\n%h\x1e",
               "none": r"%p %o %T -1 %k\n"}

    def __init__(self, bootstrap, topic, mode, on_record, errlog):
        super().__init__(daemon=True, name="read-" + topic)
        self.topic = topic
        self.on_record = on_record
        self.next = {}
        self.count = 0
        self.gaps = 0
        # A short metadata refresh finds moved leaders quickly.
        self.proc = subprocess.Popen(
            ["kcat", "-C", "-b", bootstrap, "-t", topic, "-o", "beginning", "-q",
             "-X", "topic.metadata.refresh.interval.ms=2000", "-f", self.FORMATS[mode]],
            stdout=subprocess.PIPE, stderr=errlog, stdin=subprocess.DEVNULL)

    def run(self):
        f = self.proc.stdout
        while True:
            line = f.readline()
            if not line:
                return
            head = line.rstrip(b"\n").split(b" ", 4)
            p, o, ts, size = int(head[0]), int(head[1]), int(head[2]), int(head[3])
            key = head[4].decode(errors="replace") if len(head) > 4 else ""
            data = None
            if size >= 0:
                data = f.read(size)
            elif size == -2:
                buf = bytearray()
                while (c := f.read(1)) and c != b"\x1e":
                    buf += c
                data = bytes(buf)
            expect = self.next.get(p, 0)
            if o > expect:
                self.gaps += o - expect
            self.next[p] = max(expect, o + 1)
            self.count += 1
            self.on_record(p, o, ts, key, data)

    def seen_to(self, ends):
        """Whether every partition has been read up to its end offset."""
        return all(self.next.get(p, 0) >= e for p, e in ends.items())

    def stop(self):
        """Stops kcat, which flushes its output as it exits, and reads the rest."""
        self.proc.terminate()
        self.proc.wait(timeout=30)
        self.join(timeout=120)


class Observed:
    """What the readers saw. Written by reader threads, read at the end."""

    def __init__(self):
        self.cutoff = None            # clicks: {partition: first offset not checked}
        self.click_users = set()      # users with an accepted click
        self.bad_clicks = set()       # (partition, offset) this script could not decode
        self.clicks_checked = 0
        self.tail_users = set()       # users with a click after the cutoff
        # Checked users: (event time, Kafka timestamp) pairs, flattened.
        self.click_times = {}
        self.rec_users = set()
        self.rec_times = {}
        self.rec_errors = 0
        self.dlq = set()              # distinct (topic, partition, offset) dead-lettered
        self.dlq_records = 0

    def click(self, p, o, ts, key, value):
        d = decode_click(value)
        if self.cutoff is not None and o >= self.cutoff.get(p, 0):
            if d:  # the tail run's: not checked, but see check_users()
                self.tail_users.add(d[0])
            return
        if d is None:
            self.bad_clicks.add((p, o))
            return
        user, t = d
        self.click_users.add(user)
        self.clicks_checked += 1
        if checked_user(user):
            self.click_times.setdefault(user, array.array("q")).extend((t, ts))

    def rec(self, p, o, ts, key, value):
        self.rec_users.add(key)
        if checked_user(key):
            try:
                t = rec_event_time(value)
            except (IndexError, ValueError):
                self.rec_errors += 1
                return
            self.rec_times.setdefault(key, array.array("q")).extend((t, ts))

    HDR = re.compile(rb"eddy\.source\.topic=([^,]*),.*?eddy\.source\.partition=(\d+),"
                     rb".*?eddy\.source\.offset=(\d+)", re.S)

    def dead_letter(self, p, o, ts, key, value):
        self.dlq_records += 1
        m = self.HDR.search(value or b"")
        if m:
            self.dlq.add((m.group(1).decode(), int(m.group(2)), int(m.group(3))))


def check_users(obs):
    """The click-by-click check of the users whose recommendations were
    decoded. Returns (clicks checked, unexplained clicks, users whose last
    click is uncovered, examples).

    With refresh.interval.ms = 0 a click at event time t queues a refresh at
    t. If the user already has one queued (at an earlier click's time) the
    click is folded into it: that refresh is published, then one at the
    latest click seen meanwhile (operators/recommend.c). So a click either
    has a recommendation with event time exactly t, or a refresh at an
    earlier time was still unpublished when eddy read the click, i.e. a
    recommendation with event time < t was produced after the click was:
    its Kafka timestamp (set when eddy produced it) is at or after the
    click's (set when gen produced it, before eddy can read it). A click
    with neither lost its output. Replays after a restart only add
    recommendations, so they can hide a loss but never invent one.

    A user's last click must be covered by a recommendation at or after it,
    unless the user also clicked in the tail run: its last click may then be
    folded into a refresh at a tail click's time, which the end of the
    stream may never let fall due."""
    checked = uncovered = 0
    unexplained, examples = [], []
    for user, flat in obs.click_times.items():
        clicks = sorted(zip(flat[0::2], flat[1::2]))
        rf = obs.rec_times.get(user, array.array("q"))
        recs = sorted(zip(rf[0::2], rf[1::2]))
        exact = {t for t, _ in recs}
        rec_t = [t for t, _ in recs]
        latest = []  # latest Kafka timestamp among recommendations[:i+1]
        for _, ts in recs:
            latest.append(max(ts, latest[-1]) if latest else ts)
        checked += len(clicks)
        if (not recs or rec_t[-1] < clicks[-1][0]) and user not in obs.tail_users:
            uncovered += 1
        for t, ts in clicks:
            if t in exact:
                continue
            i = bisect.bisect_left(rec_t, t)  # recommendations before t: [0, i)
            if i and latest[i - 1] >= ts:
                continue
            unexplained.append((user, t))
            if len(examples) < 5:
                examples.append(f"{user}@{t}")
    return checked, unexplained, uncovered, examples


# --- eddy ----------------------------------------------------------------------

def proc_stats(pid):
    """(RSS in MB, open fds) of a live process, or (None, None)."""
    try:
        with open(f"/proc/{pid}/status") as f:
            rss = next(int(l.split()[1]) for l in f if l.startswith("VmRSS:")) / 1024
        return rss, len(os.listdir(f"/proc/{pid}/fd"))
    except (OSError, StopIteration):
        return None, None


def scrape(port):
    """{metric name: value summed over labels}, or None if eddy does not answer."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=3) as r:
            body = r.read().decode()
    except OSError:
        return None
    out = {}
    for line in body.splitlines():
        if line and not line.startswith("#"):
            name, _, value = line.rpartition(" ")
            name = name.split("{")[0]
            try:
                out[name] = out.get(name, 0) + float(value)
            except ValueError:
                pass
    return out


def health(port):
    """/healthz's status and first line, for the log."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=3) as r:
            return f"{r.status} {r.read().decode(errors='replace').strip()[:200]}"
    except urllib.error.HTTPError as e:
        return f"{e.code} {e.read().decode(errors='replace').strip()[:200]}"
    except OSError as e:
        return str(e)


def has_key(eddy, key):
    r = subprocess.run([eddy, "run", "--help"], capture_output=True, text=True)
    return re.search(rf"^{re.escape(key)} =", r.stdout, re.M) is not None


class Eddy:
    """`eddy run`, restarted on every exit like a Kubernetes pod."""

    def __init__(self, broker, outdir):
        self.broker = broker
        self.port = harness.free_port()
        self.state = os.path.join(outdir, "state")
        self.config = os.path.join(outdir, "eddy.conf")
        self.logpath = os.path.join(outdir, "eddy.log")
        with open(self.config, "w") as f:
            f.write(f"""[kafka]
bootstrap.servers = {broker.bootstrap}
group.id = eddy-soak
# Outputs undeliverable this long make eddy stop (and be restarted).
kafka.message.timeout.ms = {MSG_TIMEOUT_MS}
[state]
dir = {self.state}
cache.bytes = {CACHE_BYTES}
[http]
listen = 127.0.0.1:{self.port}
[recommend]
refresh.interval.ms = 0
""")
        self.proc = None
        self.starts = 0
        self.start_times = []
        self.exits = []        # (time, exit code, group)
        self.done = {}         # last metrics of the incarnations that exited
        self.last = {}         # last metrics of the current one
        self.env = {}
        self.log = open(self.logpath, "a")
        self.offset_reset_key = has_key(EDDY, "offset.reset")

    def start(self):
        group = f"eddy-soak-{self.starts}"
        self.broker.coordinator(group, 1)
        self.log.write(f"\n==== soak: start {self.starts} at {now():.1f}s, group {group}\n")
        self.log.flush()
        self.proc = subprocess.Popen([EDDY, "run", "-c", self.config], stdout=self.log,
                                     stderr=subprocess.STDOUT,
                                     env={**os.environ, "EDDY_KAFKA_GROUP_ID": group, **self.env})
        self.group = group
        self.starts += 1
        self.start_times.append(now())
        self.last = {}
        self.progress, self.progress_t = -1, now()

    def poll(self):
        """Restarts eddy if it exited, or if it made no progress for STALL_S
        seconds while input was waiting (then the exit code is recorded as
        "stalled"); returns the exit code then, else None."""
        rc = self.proc.poll()
        if rc is None:
            m = scrape(self.port)
            if m:
                self.last = m
                progress = m.get("eddy_events_in_total", 0) + m.get("eddy_dlq_total", 0)
                if progress != self.progress or m.get("eddy_consumer_lag", -1) <= 0:
                    self.progress, self.progress_t = progress, now()
            if now() - self.progress_t < STALL_S:
                return None
            log(f"eddy made no progress for {STALL_S:.0f} s with input waiting: killing it; "
                f"/healthz said {health(self.port)}")
            self.proc.kill()
            self.proc.wait()
            rc = "stalled"
        self.exits.append((now(), rc, self.group))
        for k, v in self.last.items():
            self.done[k] = self.done.get(k, 0) + v
        log(f"eddy exited with {rc}; restarting with a fresh group id")
        if rc == 4 and self.offset_reset_key:
            # Input rolled out of the mock before eddy read it: a loss,
            # reported; carry on from the log start rather than loop.
            self.env["EDDY_KAFKA_OFFSET_RESET"] = "earliest"
        time.sleep(1)
        self.start()
        return rc

    def total(self, name):
        return self.done.get(name, 0) + self.last.get(name, 0)

    def stop(self):
        self.proc.send_signal(signal.SIGTERM)
        rc = self.proc.wait(timeout=120)
        self.log.close()
        return rc

    def log_tail(self, n=30):
        with open(self.logpath, errors="replace") as f:
            return "".join(f.readlines()[-n:])


def stored_offsets(state_dir):
    r = subprocess.run([EDDY, "state", "stats", "-d", state_dir], capture_output=True,
                       text=True, timeout=60)
    out = {}
    for m in re.finditer(r"^offset\s+(\S+)\s+(\d+)\s+next\s+(-?\d+)", r.stdout, re.M):
        out[(m.group(1), int(m.group(2)))] = int(m.group(3))
    return out


def end_offsets(bootstrap, topics):
    c = KafkaConsumer(bootstrap_servers=bootstrap, api_version=harness.KAFKA_API,
                      request_timeout_ms=20000)
    try:
        out = {}
        for t in topics:
            tps = [TopicPartition(t, p) for p in sorted(c.partitions_for_topic(t))]
            for tp, off in c.end_offsets(tps).items():
                out[(t, tp.partition)] = off
        return out
    finally:
        c.close()


# --- faults ----------------------------------------------------------------------

def layout(broker, swap=False):
    """Inputs on broker 1 and outputs on broker 2, or the other way round."""
    for t in INPUTS:
        broker.leader(t, "*", 2 if swap else 1)
    for t in OUTPUTS:
        broker.leader(t, "*", 1 if swap else 2)


def fault_rotation(broker):
    """(name, start, hold seconds, end) in rotation."""
    down_s = MSG_TIMEOUT_MS / 1000 + 5
    rounds = {"n": 0}

    def produce_errors():
        broker.errors("produce", 100, "NOT_LEADER_FOR_PARTITION", broker=2)
        broker.errors("produce", 100, "REQUEST_TIMED_OUT", broker=2)
        rounds["n"] += 1
        if rounds["n"] % 2 == 0:
            # Not retriable: the outputs of that request are lost to eddy,
            # which must stop and reprocess rather than skip them.
            broker.errors("produce", 1, "MSG_SIZE_TOO_LARGE", broker=2)

    def fetch_errors():
        # Each costs a fetcher a metadata refresh and a backoff: 200 of
        # them held eddy (and the soak's own readers) up for half a minute.
        broker.errors("fetch", 20, "NOT_LEADER_FOR_PARTITION", broker=1)
        broker.errors("fetch", 20, "LEADER_NOT_AVAILABLE", broker=1)

    def rtt(ms):
        broker.rtt(1, ms)
        broker.rtt(2, ms)

    return [
        ("output broker down", lambda: broker.down(2), down_s, lambda: broker.up(2)),
        ("rtt 200 ms", lambda: rtt(200), 60, lambda: rtt(0)),
        ("produce errors", produce_errors, 30, lambda: None),
        ("fetch errors", fetch_errors, 30, lambda: None),
        ("leaders moved", lambda: layout(broker, swap=True), 60, lambda: layout(broker)),
    ]


# --- report ------------------------------------------------------------------------

COLS = ("time s", "RSS MB", "state MB", "other MB", "kafka MB", "heap free MB", "fds", "lag",
        "produced", "consumed", "restarts", "fault")


def fmt_row(r):
    def f(v, spec):
        return "-" if v is None else format(v, spec)
    return (f"{r['t']:.0f}", f(r["rss"], ".1f"), f(r["state"], ".1f"), f(r["other"], ".1f"),
            f(r["kafka"], ".1f"), f(r["heap_free"], ".1f"), f(r["fds"], "d"), f(r["lag"], ".0f"),
            f(r["produced"], "d"), f(r["consumed"], ".0f"), str(r["restarts"]), r["fault"] or "-")


def compact(v):
    return f"{v / 1e6:.1f}M" if v >= 1e6 else f"{v / 1e3:.0f}k" if v >= 1e4 else f"{v:.0f}"


def svg_chart(rows, faults, restarts, gen_end, path):
    """RSS, fds and lag over time: three panels of hand-written polylines."""
    W, H, L, R, PH, GAP, TOP = 900, 560, 70, 20, 140, 40, 30
    tmax = max([r["t"] for r in rows] + [1])
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" '
             f'font-family="sans-serif" font-size="11">',
             f'<rect width="{W}" height="{H}" fill="white"/>',
             f'<text x="{L}" y="18" font-size="13">eddy soak: {MINUTES:g} min at {RATE} '
             f'records/s; shaded: faults, red: restarts, grey: generator stops</text>']

    def x(t):
        return L + (W - L - R) * t / tmax

    for i, (key, label, colour) in enumerate((("rss", "RSS MB", "#1f77b4"),
                                              ("fds", "open fds", "#2ca02c"),
                                              ("lag", "consumer lag", "#d62728"))):
        top = TOP + i * (PH + GAP)
        vals = [r[key] for r in rows if r[key] is not None]
        vmax = max(vals + [1]) * 1.1
        parts.append(f'<rect x="{L}" y="{top}" width="{W - L - R}" height="{PH}" '
                     f'fill="none" stroke="#999"/>')
        for name, t0, t1 in faults:
            parts.append(f'<rect x="{x(t0):.1f}" y="{top}" width="{max(1, x(t1) - x(t0)):.1f}" '
                         f'height="{PH}" fill="#f4e3b0" opacity="0.6"><title>{name}</title></rect>')
        for t in restarts:
            parts.append(f'<line x1="{x(t):.1f}" x2="{x(t):.1f}" y1="{top}" y2="{top + PH}" '
                         f'stroke="red" stroke-dasharray="3,3"/>')
        parts.append(f'<line x1="{x(gen_end):.1f}" x2="{x(gen_end):.1f}" y1="{top}" '
                     f'y2="{top + PH}" stroke="#777"/>')
        for frac in (0, 0.5, 1):
            y = top + PH - PH * frac
            parts.append(f'<text x="{L - 6}" y="{y + 4:.1f}" text-anchor="end">'
                         f'{compact(vmax * frac)}</text>')
        parts.append(f'<text x="{L + 6}" y="{top + 14}" fill="{colour}" font-size="12">'
                     f'{label}</text>')
        # A gap in the samples (eddy restarting) breaks the line.
        seg = []
        for r in rows + [{"t": None, key: None}]:
            if r[key] is None:
                if len(seg) > 1:
                    parts.append(f'<polyline fill="none" stroke="{colour}" stroke-width="1.5" '
                                 f'points="{" ".join(seg)}"/>')
                seg = []
                continue
            seg.append(f"{x(r['t']):.1f},{top + PH - PH * r[key] / vmax:.1f}")
    bottom = TOP + 3 * (PH + GAP) - GAP
    for frac in (0, 0.25, 0.5, 0.75, 1):
        parts.append(f'<text x="{x(tmax * frac):.1f}" y="{bottom + 14}" text-anchor="middle">'
                     f'{tmax * frac:.0f} s</text>')
    parts.append("</svg>")
    with open(path, "w") as f:
        f.write("\n".join(parts) + "\n")


def growth(rows, key, lo, hi):
    """(first, last, growth) of key over the samples in [lo, hi], comparing
    the means of the first and last fifths; None with fewer than 6 samples."""
    vals = [r[key] for r in rows if lo <= r["t"] <= hi and r[key] is not None]
    if len(vals) < 6:
        return None
    k = max(1, len(vals) // 5)
    first, last = sum(vals[:k]) / k, sum(vals[-k:]) / k
    return first, last, last - first


# --- the run -------------------------------------------------------------------------

def main():
    if os.path.isdir(OUT):
        for name in ("state", "eddy.log", "gen.log", "kcat.log", "soak.md", "soak.svg"):
            p = os.path.join(OUT, name)
            if os.path.isdir(p):
                shutil.rmtree(p)
            elif os.path.exists(p):
                os.remove(p)
    os.makedirs(OUT, exist_ok=True)
    events = int(RATE * DURATION_S)
    log(f"soak: {MINUTES:g} min, {RATE} records/s ({events} events), {PARTITIONS} partitions, "
        f"{USERS} users, a fault every {FAULT_EVERY:.0f} s, eddy {EDDY}")

    broker = harness.Broker(partitions=PARTITIONS, brokers=2)
    layout(broker)
    kcat_log = open(os.path.join(OUT, "kcat.log"), "w")
    obs = Observed()
    ignore = lambda *a: None  # noqa: E731
    readers = {t: Reader(broker.bootstrap, t, mode, fn, kcat_log) for t, mode, fn in (
        ("clicks", "value", obs.click), ("ad-events", "none", ignore),
        ("recommendations", "value", obs.rec), ("budget-decisions", "none", ignore),
        ("eddy-dlq", "headers", obs.dead_letter))}
    for r in readers.values():
        r.start()

    eddy = Eddy(broker, OUT)
    eddy.start()
    deadline = time.time() + 60
    while scrape(eddy.port) is None:
        if eddy.proc.poll() is not None or time.time() > deadline:
            sys.exit("soak: eddy did not start\n" + eddy.log_tail())
        time.sleep(0.2)

    gen_log = open(os.path.join(OUT, "gen.log"), "w")
    gen_args = ["--users", USERS, "--campaigns", CAMPAIGNS, "--bad-every", BAD_EVERY]
    gen = subprocess.Popen([str(a) for a in [EDDY, "gen", "-b", broker.bootstrap, "--wall-time",
                                             "--rate", RATE, "--events", events, *gen_args]],
                           stdout=gen_log, stderr=subprocess.STDOUT)
    gen_t0 = now()
    rotation = fault_rotation(broker)
    fault_log = []        # (name, start, end)
    active = None         # (name, end time, end action)
    next_fault = gen_t0 + WARMUP_S
    k = 0
    rows = []
    next_sample = now()
    gen_rc = None

    def sample():
        m = eddy.last
        rss, fds = proc_stats(eddy.proc.pid) if eddy.proc.poll() is None else (None, None)
        produced = readers["clicks"].count + readers["ad-events"].count
        state = (sum(m.get(k, 0) for k in STATE_MEMORY) / 2**20
                 if m and rss is not None else None)
        row = {"t": now(), "rss": rss, "fds": fds, "state": state,
               "other": rss - state if state is not None else None,
               "kafka": (sum(m.get(k, 0) for k in KAFKA_QUEUES) / 2**20 if m else None),
               "heap_free": m.get("eddy_heap_free_bytes", 0) / 2**20 if m else None,
               "lag": m.get("eddy_consumer_lag") if m else None,
               "produced": produced,
               "consumed": eddy.total("eddy_events_in_total") + eddy.total("eddy_dlq_total"),
               "restarts": eddy.starts - 1, "fault": active[0] if active else None}
        rows.append(row)
        print("  ".join(f"{c}={v}" for c, v in zip(COLS, fmt_row(row))), flush=True)

    def end_fault():
        nonlocal active
        name, _, end = active
        end()
        fault_log[-1] = (name, fault_log[-1][1], now())
        log(f"fault over: {name}")
        active = None

    gen_limit = gen_t0 + DURATION_S * 1.5 + 60
    while gen_rc is None:
        time.sleep(0.5)
        eddy.poll()
        gen_rc = gen.poll()
        t = now()
        if active and t >= active[1]:
            end_fault()
        if not active and t >= next_fault and gen_rc is None and FAULTS != "none":
            name, start, hold, end = rotation[k % len(rotation)]
            hold = min(hold, FAULT_EVERY - 5)
            if t + hold > gen_t0 + DURATION_S:
                next_fault = float("inf")  # it would outlast the generator
                continue
            log(f"fault: {name} for {hold:.0f} s")
            start()
            active = (name, t + hold, end)
            fault_log.append((name, t, t + hold))
            k += 1
            next_fault = t + FAULT_EVERY
        if t >= next_sample:
            sample()
            next_sample += SAMPLE_S
        if time.time() - T0 > gen_limit and gen_rc is None:
            gen.kill()
            gen_rc = gen.wait()
            log("gen did not finish in time: killed")
    gen_end = now()
    if active:
        end_fault()
    gen_log.close()
    with open(os.path.join(OUT, "gen.log")) as f:
        gen_out = f.read()
    m = re.search(r"gen: (\d+) records delivered", gen_out)
    delivered = int(m.group(1)) if m else 0
    log(f"gen exited with {gen_rc}: {delivered} records delivered")

    # Clicks from here on are the tail's: they move every watermark past the
    # last real click, and are not checked themselves.
    obs.cutoff = {p: e for (t, p), e in end_offsets(broker.bootstrap, ["clicks"]).items()}
    tail = subprocess.run([EDDY, "gen", "-b", broker.bootstrap, "--wall-time", "--no-budgets",
                           "--rate", "5000", "--events", str(max(2000, 200 * PARTITIONS)),
                           "--seed", "7", "--users", str(USERS)],
                          capture_output=True, text=True, timeout=300)
    if tail.returncode:
        log("tail gen failed: " + tail.stderr[-500:])

    # Catch up: eddy's stored offsets at the end of every input partition.
    ends = end_offsets(broker.bootstrap, INPUTS)
    caught_up = False
    deadline = time.time() + 300
    while time.time() < deadline:
        eddy.poll()
        if time.time() >= T0 + next_sample:
            sample()
            next_sample += SAMPLE_S
        stored = stored_offsets(eddy.state)
        if all(stored.get(k, 0) >= v for k, v in ends.items()):
            caught_up = True
            break
        time.sleep(2)
    log("eddy caught up" if caught_up else "eddy did NOT catch up within 300 s")
    sample()

    rc_final = eddy.stop()
    # Every topic's end once eddy wrote its last output. kcat's output is
    # block-buffered (unbuffered, the readers cost eddy a third of a core)
    # and flushed when it exits: give it time to fetch, then stop it.
    topic_ends = end_offsets(broker.bootstrap, list(readers))
    time.sleep(5)
    for r in readers.values():
        r.stop()
    unread = {t: sum(max(0, e - r.next.get(p, 0)) for (tt, p), e in topic_ends.items() if tt == t)
              for t, r in readers.items()}
    unread = {t: n for t, n in unread.items() if n}
    broker.stop()

    # --- checks ---
    stored = stored_offsets(eddy.state)
    problems, notes = [], []
    behind = {k: v - stored.get(k, 0) for k, v in ends.items() if stored.get(k, 0) < v}
    lost_offsets = sum(behind.values())
    if lost_offsets:
        problems.append(f"offsets: {lost_offsets} input records past eddy's stored offsets "
                        f"({len(behind)} partitions, e.g. {sorted(behind.items())[:3]})")
    no_rec = obs.click_users - obs.rec_users
    if no_rec:
        problems.append(f"users: {len(no_rec)} of {len(obs.click_users)} users with accepted "
                        f"clicks have no recommendation (e.g. {sorted(no_rec)[:5]})")
    checked_clicks, unexplained, uncovered, examples = check_users(obs)
    if uncovered:
        problems.append(f"users: {uncovered} checked users' last click has no recommendation "
                        f"at or after it")
    if unexplained:
        problems.append(f"users: {len(unexplained)} of {checked_clicks} clicks of checked users "
                        f"have no recommendation of their own and cannot have been folded "
                        f"into another's (e.g. {examples})")
    campaigns_sent = CAMPAIGNS
    events_sent = max(0, delivered - campaigns_sent)
    expected_bad = ((campaigns_sent + events_sent) // BAD_EVERY - campaigns_sent // BAD_EVERY
                    if BAD_EVERY else 0)
    dlq_clicks = {(p, o) for (t, p, o) in obs.dlq if t == "clicks"}
    if len(obs.dlq) != expected_bad:
        problems.append(f"dead letters: {len(obs.dlq)} distinct source records in eddy-dlq, "
                        f"gen wrote {expected_bad} bad records")
    missing_dlq = obs.bad_clicks - dlq_clicks
    if missing_dlq:
        problems.append(f"dead letters: {len(missing_dlq)} undecodable clicks are not in eddy-dlq "
                        f"(e.g. {sorted(missing_dlq)[:3]})")
    gaps = {t: r.gaps for t, r in readers.items() if r.gaps}
    if gaps:
        problems.append(f"unverified: the soak's readers missed records that rolled out of the "
                        f"mock's log before they were read: {gaps}")
    if unread:
        problems.append(f"unverified: the soak's readers did not reach the end of {unread}")
    if gen_rc != 0:
        problems.append(f"gen exited with {gen_rc} ({delivered} records delivered)")
    if not caught_up:
        problems.append("eddy did not catch up with its input")
    if rc_final != 0:
        problems.append(f"eddy's final shutdown exited with {rc_final}")
    stalls = [e for e in eddy.exits if e[1] == "stalled"]
    if stalls:
        problems.append(f"eddy stalled {len(stalls)} times (no progress for {STALL_S:.0f} s with "
                        f"input waiting; killed and restarted) at "
                        f"{[round(t) for t, _, _ in stalls]} s")
    retention = [e for e in eddy.exits if e[1] == 4]
    if retention:
        problems.append(f"{len(retention)} restarts with exit 4: input rolled out of the mock's "
                        f"log before eddy read it")
    gap_metric = sum(v for k, v in eddy.done.items() if k.startswith("eddy_offset_gap"))
    if gap_metric:
        problems.append(f"eddy skipped {gap_metric:.0f} records (offset.reset = earliest)")

    # Growth is judged in steady state: within one incarnation (a restart
    # resets RSS and fds), the one that ran longest while the generator did,
    # over the second half of that span (the first half warms caches up).
    bounds = eddy.start_times + [float("inf")]
    spans = [(max(a, gen_t0), min(b, gen_end)) for a, b in zip(bounds, bounds[1:])]
    lo, hi = max(spans, key=lambda sp: sp[1] - sp[0])
    window = ((lo + hi) / 2, hi)
    rss_g = growth(rows, "other", *window)
    whole_g, state_g = growth(rows, "rss", *window), growth(rows, "state", *window)
    fd_g = growth(rows, "fds", *window)
    rss_allowed = None
    if rss_g:
        rss_allowed = max(RSS_TOLERANCE[0] * rss_g[0], RSS_TOLERANCE[1])
        if rss_g[2] > rss_allowed:
            problems.append(f"RSS outside the state's cache, memtables and block cache grew "
                            f"{rss_g[2]:.1f} MB over the second half "
                            f"({rss_g[0]:.1f} -> {rss_g[1]:.1f}), allowed {rss_allowed:.1f}")
    else:
        notes.append(f"RSS/fd growth not judged: fewer than 6 samples in {window[0]:.0f}-"
                     f"{window[1]:.0f} s, the second half of eddy's longest incarnation while "
                     f"the generator ran")
    if fd_g and fd_g[2] > FD_TOLERANCE:
        problems.append(f"open fds grew {fd_g[2]:.0f} over the second half "
                        f"({fd_g[0]:.0f} -> {fd_g[1]:.0f}), allowed {FD_TOLERANCE}")

    if os.environ.get("SOAK_DUMP"):
        import json
        with open(os.environ["SOAK_DUMP"], "w") as f:
            json.dump({"clicks": {u: list(v) for u, v in obs.click_times.items()},
                       "recs": {u: list(v) for u, v in obs.rec_times.items()},
                       "unexplained": unexplained,
                       "exits": eddy.exits, "faults": fault_log, "t0": T0}, f)

    # --- report ---
    summary = [
        f"- generator: {delivered} records delivered ({events} events asked, exit {gen_rc}); "
        f"{expected_bad} bad records",
        f"- eddy: {eddy.starts - 1} restarts, exits {[(round(t), rc) for t, rc, _ in eddy.exits]}, "
        f"final shutdown exit {rc_final}",
        f"- eddy's counters over all incarnations: "
        f"events in {eddy.total('eddy_events_in_total'):.0f}, "
        f"dead letters {eddy.total('eddy_dlq_total'):.0f}, "
        f"recommendations out {eddy.total('eddy_recommendations_out_total'):.0f}, "
        f"decisions out {eddy.total('eddy_decisions_out_total'):.0f}, "
        f"produce errors {eddy.total('eddy_produce_errors_total'):.0f}, "
        f"rejected {eddy.total('eddy_rejected_total'):.0f} (each incarnation's last scrape, "
        f"every 0.5 s: an incarnation that stops on a delivery failure may not show it)",
        f"- read by the soak: clicks {readers['clicks'].count}, "
        f"ad-events {readers['ad-events'].count}, "
        f"recommendations {readers['recommendations'].count}, "
        f"decisions {readers['budget-decisions'].count}, "
        f"dead letters {obs.dlq_records} ({len(obs.dlq)} distinct)",
        f"- checked: {len(ends)} input partitions' offsets; {len(obs.click_users)} users with "
        f"{obs.clicks_checked} accepted clicks; {len(obs.click_times)} users "
        f"(id % {CHECK_EVERY} == 0) click by click, {checked_clicks} clicks",
        f"- memory in {window[0]:.0f}-{window[1]:.0f} s (second half of eddy's longest "
        f"incarnation while the generator ran): outside the state's cache, memtables and "
        f"block cache "
        + (f"{rss_g[0]:.1f} -> {rss_g[1]:.1f} MB (allowed +{rss_allowed:.1f}); RSS "
           f"{whole_g[0]:.1f} -> {whole_g[1]:.1f} MB; state cache {state_g[0]:.1f} -> "
           f"{state_g[1]:.1f} MB" if rss_g and whole_g and state_g else "n/a")
        + "; fds: " + (f"{fd_g[0]:.0f} -> {fd_g[1]:.0f} (allowed +{FD_TOLERANCE})" if fd_g
                        else "n/a"),
        "- faults: " + "; ".join(f"{n} {a:.0f}-{b:.0f} s" for n, a, b in fault_log),
    ]
    verdict = "PASS" if not problems else "FAIL"
    lines = [f"# eddy soak: {verdict}", "",
             f"{MINUTES:g} minutes at {RATE} records/s, {PARTITIONS} partitions per topic, "
             f"{USERS} users, every {BAD_EVERY}th record bad, message.timeout.ms "
             f"{MSG_TIMEOUT_MS}, a fault every {FAULT_EVERY:.0f} s. "
             f"Tolerances in steady state (the second half of eddy's longest incarnation "
             f"while the generator ran): RSS +{RSS_TOLERANCE[0]:.0%} or "
             f"+{RSS_TOLERANCE[1]:.0f} MB (the larger), fds +{FD_TOLERANCE}.", "",
             "RSS and fds: of the running eddy; state: eddy's state cache, RocksDB's "
             "memtables and block cache (`eddy_state_cache_bytes` + "
             "`eddy_state_memtable_bytes` + `eddy_state_block_cache_bytes`); other: RSS - "
             "state; kafka: librdkafka's queues (`eddy_kafka_consumer_queued_bytes` + "
             "`eddy_kafka_producer_queued_bytes`), part of other; heap free: free memory "
             "inside malloc's heaps (`eddy_heap_free_bytes`), part of other; "
             "lag: `eddy_consumer_lag`; produced: input "
             "records the soak has read so far; consumed: `eddy_events_in_total` + "
             "`eddy_dlq_total` summed over eddy's incarnations (so replays count again); "
             "fault: the one active at the sample.", "",
             "| " + " | ".join(COLS) + " |", "|" + "---|" * len(COLS)]
    lines += ["| " + " | ".join(fmt_row(r)) + " |" for r in rows]
    lines += ["", "## Summary", ""] + summary
    lines += ["", "## Problems", ""] + ([f"- {p}" for p in problems] or ["- none"])
    if notes:
        lines += ["", "## Notes", ""] + [f"- {n}" for n in notes]
    with open(os.path.join(OUT, "soak.md"), "w") as f:
        f.write("\n".join(lines) + "\n")
    svg_chart(rows, fault_log, [t for t, _, _ in eddy.exits], gen_end,
              os.path.join(OUT, "soak.svg"))

    widths = [max(len(c), *(len(fmt_row(r)[i]) for r in rows)) for i, c in enumerate(COLS)]
    print()
    print("  ".join(c.rjust(w) for c, w in zip(COLS, widths)))
    for r in rows:
        print("  ".join(v.rjust(w) for v, w in zip(fmt_row(r), widths)))
    print()
    print("\n".join(summary))
    print()
    for p in problems:
        print("PROBLEM:", p)
    for n in notes:
        print("note:", n)
    print(f"soak: {verdict}; {OUT}/soak.md, {OUT}/soak.svg")
    return 0 if not problems else 1


if __name__ == "__main__":
    sys.exit(main())
