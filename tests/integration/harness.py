"""Test harness: real eddy processes against a real (mock) Kafka broker.

Everything here talks to eddy from the outside, the way an operator would:
`eddy broker` for the cluster, `eddy gen` and kafka-python for input,
kafka-python + the Python Avro library for output, HTTP for /metrics.
"""
import io
import json
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
import urllib.request

import avro.io
import avro.schema
from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from prometheus_client.parser import text_string_to_metric_families

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
EDDY = os.environ.get("EDDY", os.path.join(ROOT, "build", "eddy"))
KAFKA_API = (2, 5, 0)


def schema(name):
    with open(os.path.join(ROOT, "schemas", name + ".avsc")) as f:
        return avro.schema.parse(f.read())


# --- CRC-64-AVRO, as the Avro specification defines it ----------------------
_EMPTY = 0xC15D213AA4D7A795
_TABLE = []
for _i in range(256):
    _fp = _i
    for _ in range(8):
        _fp = (_fp >> 1) ^ (_EMPTY & -(_fp & 1))
    _TABLE.append(_fp)


_PRIMITIVES = {"null", "boolean", "int", "long", "float", "double", "bytes", "string"}


def _collapse(node):
    """Python Avro 1.11.1 leaves {"type":"long"} where a logicalType was
    stripped; the specification's PRIMITIVES rule wants plain "long"."""
    if isinstance(node, dict):
        if list(node) == ["type"] and node["type"] in _PRIMITIVES:
            return node["type"]
        return {k: _collapse(v) for k, v in node.items()}
    if isinstance(node, list):
        return [_collapse(v) for v in node]
    return node


def canonical_form(sch):
    return json.dumps(_collapse(json.loads(sch.canonical_form)), separators=(",", ":"))


def fingerprint(sch):
    fp = _EMPTY
    for b in canonical_form(sch).encode():
        fp = (fp >> 8) ^ _TABLE[(fp ^ b) & 0xFF]
    return fp


def single_object(sch, datum):
    buf = io.BytesIO()
    buf.write(b"\xc3\x01" + fingerprint(sch).to_bytes(8, "little"))
    avro.io.DatumWriter(sch).write(datum, avro.io.BinaryEncoder(buf))
    return buf.getvalue()


def decode_single_object(reader, payload):
    """Decodes eddy's output with the Python Avro library (independent of eddy)."""
    assert payload[:2] == b"\xc3\x01", payload[:2]
    assert int.from_bytes(payload[2:10], "little") == fingerprint(reader)
    return avro.io.DatumReader(reader, reader).read(avro.io.BinaryDecoder(io.BytesIO(payload[10:])))


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class ControlError(Exception):
    """`eddy broker` answered a control command with `error: ...`."""


class Broker:
    """`eddy broker`, with its fault-injection channel on stdin/stdout
    (`eddy broker --help`, docs/reliability.md). Broker ids are 1..brokers."""

    def __init__(self, partitions=4, brokers=1):
        self.proc = subprocess.Popen([EDDY, "broker", "--partitions", str(partitions),
                                      "--brokers", str(brokers)],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                                     bufsize=1)
        line = self.proc.stdout.readline().strip()
        assert line.startswith("bootstrap.servers="), line
        self.bootstrap = line.split("=", 1)[1]
        self._lock = threading.Lock()

    def control(self, line):
        """Sends one command; returns the reply line, raises ControlError on `error:`."""
        with self._lock:
            self.proc.stdin.write(line + "\n")
            self.proc.stdin.flush()
            reply = self.proc.stdout.readline().strip()
        if not reply:
            raise ControlError(f"{line!r}: the broker exited (rc {self.proc.poll()})")
        if reply.startswith("error:"):
            raise ControlError(f"{line!r}: {reply}")
        return reply

    def down(self, broker):
        return self.control(f"down {broker}")

    def up(self, broker):
        return self.control(f"up {broker}")

    def rtt(self, broker, ms):
        return self.control(f"rtt {broker} {ms}")

    def errors(self, api, count, err, broker=None):
        return self.control(f"errors {api} {count} {err}" + (f" {broker}" if broker else ""))

    def leader(self, topic, partition, broker):
        """partition "*" moves every partition of the topic."""
        return self.control(f"leader {topic} {partition} {broker}")

    def coordinator(self, group, broker):
        return self.control(f"coordinator group {group} {broker}")

    def produce(self, topic, partition, count, size):
        return self.control(f"produce {topic} {partition} {count} {size}")

    def stop(self):
        self.proc.send_signal(signal.SIGTERM)
        assert self.proc.wait(timeout=30) == 0
        self.proc.stdin.close()
        self.proc.stdout.close()


# Every `eddy run` started, so that a test failing half-way leaves none
# running behind it (conftest.py kills them after each test).
STARTED = []


def kill_leftovers():
    while STARTED:
        proc = STARTED.pop()
        if proc.poll() is None:
            proc.kill()
            proc.wait()


class Eddy:
    """One `eddy run` process with its own config file and state directory."""

    def __init__(self, broker, workdir, extra="", name="eddy", state_dir=None):
        self.broker = broker
        self.workdir = workdir
        self.name = name
        self.port = free_port()
        self.state_dir = state_dir or os.path.join(workdir, "state")
        self.config = os.path.join(workdir, name + ".conf")
        with open(self.config, "w") as f:
            f.write(f"""[kafka]
bootstrap.servers = {broker.bootstrap}
group.id = eddy-test
[state]
dir = {self.state_dir}
[http]
listen = 127.0.0.1:{self.port}
[recommend]
refresh.interval.ms = 0
{extra}
""")
        self.proc = None
        self.log = None

    def start(self, env=None, wait=True):
        self.log = open(os.path.join(self.workdir, self.name + ".log"), "a")
        self.proc = subprocess.Popen([EDDY, "run", "-c", self.config],
                                     stdout=self.log, stderr=subprocess.STDOUT,
                                     env={**os.environ, **(env or {})})
        STARTED.append(self.proc)
        return self.wait_healthy() if wait else self

    def wait_healthy(self, timeout=30):
        deadline = time.time() + timeout
        while time.time() < deadline:
            assert self.proc.poll() is None, self.log_text()
            try:
                if self.get("/readyz")[0] == 200:  # running, not only alive
                    return self
            except OSError:
                pass
            time.sleep(0.1)
        raise AssertionError("eddy did not become healthy\n" + self.log_text())

    def stop(self, sig=signal.SIGTERM):
        self.proc.send_signal(sig)
        rc = self.proc.wait(timeout=60)
        self.log.close()
        return rc

    def log_text(self):
        with open(os.path.join(self.workdir, self.name + ".log")) as f:
            return f.read()

    def log_tail(self, chars=4000):
        """The log's end without the dead-letter lines, which can fill it."""
        return "\n".join(line for line in self.log_text().splitlines()
                         if "dead-lettered" not in line)[-chars:]

    def get(self, path):
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}{path}", timeout=5) as r:
                return r.status, r.read().decode()
        except urllib.error.HTTPError as e:
            return e.code, e.read().decode()

    def wait_caught_up(self, timeout=120):
        """Waits until eddy has no consumer lag and takes in nothing new."""
        deadline = time.time() + timeout
        last, stable = -1, 0
        while time.time() < deadline:
            assert self.proc.poll() is None, self.log_text()
            m = self.metrics()
            seen = self.consumed()
            lag = m.get(("eddy_consumer_lag", frozenset()), -1)
            assigned = m.get(("eddy_assigned_partitions", frozenset()), 0)
            stable = stable + 1 if (assigned and lag == 0 and seen == last) else 0
            if stable >= 5:
                return seen
            last = seen
            time.sleep(0.3)
        raise AssertionError("eddy did not catch up\n" + self.log_text()[-3000:])

    def metrics(self):
        """{(name, frozenset(labels)): value} from /metrics, parsed by prometheus_client."""
        status, body = self.get("/metrics")
        assert status == 200
        out = {}
        for fam in text_string_to_metric_families(body):
            for s in fam.samples:
                out[(s.name, frozenset(s.labels.items()))] = s.value
        return out

    def consumed(self):
        """Records eddy has taken in: decoded events plus dead-lettered ones."""
        m = self.metrics()
        return sum(v for (name, _), v in m.items()
                   if name in ("eddy_events_in_total", "eddy_dlq_total"))

    def wait_consumed(self, n, timeout=120):
        deadline = time.time() + timeout
        got = -1
        while time.time() < deadline:
            assert self.proc.poll() is None, self.log_text()
            got = self.consumed()
            if got >= n:
                return got
            time.sleep(0.2)
        raise AssertionError(f"eddy consumed {got} of {n} records\n" + self.log_tail())


def gen(broker, *args):
    """Runs `eddy gen` to completion; returns the number of records delivered."""
    r = subprocess.run([EDDY, "gen", "-b", broker.bootstrap, *map(str, args)],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    return int(r.stderr.strip().split("gen: ")[-1].split()[0])


def state_cli(*args):
    r = subprocess.run([EDDY, "state", *map(str, args)], capture_output=True, text=True,
                       timeout=120)
    assert r.returncode == 0, r.stderr
    return r.stdout


def end_offsets(broker, topic):
    c = KafkaConsumer(bootstrap_servers=broker.bootstrap, api_version=KAFKA_API)
    parts = [TopicPartition(topic, p) for p in c.partitions_for_topic(topic)]
    ends = {tp.partition: off for tp, off in c.end_offsets(parts).items()}
    c.close()
    return ends


def consume_all(broker, topic, timeout_s=60):
    """Every record the topic holds when called, by partition and offset. It
    reads until it has seen each partition's last record (end offset - 1),
    not until the reads go quiet (a fetch retried on a loaded machine once
    paused a read past its idle limit), nor until the consumer's position
    reaches the end (kafka-python once moved a position there without
    returning the records: "still fetchable -- skipping offset update").
    Either way the test saw an older record as the last."""
    c = KafkaConsumer(bootstrap_servers=broker.bootstrap, api_version=KAFKA_API,
                      enable_auto_commit=False, group_id=None)
    # kafka-python answers None until its first metadata arrives: an empty
    # answer then read as an empty topic (CI: no budget decisions at all).
    deadline = time.time() + timeout_s
    while not c.partitions_for_topic(topic):
        assert time.time() < deadline, f"{topic}: no metadata in {timeout_s} s"
        c.topics()  # fetches metadata
    parts = [TopicPartition(topic, p) for p in sorted(c.partitions_for_topic(topic))]
    c.assign(parts)
    ends = c.end_offsets(parts)
    c.seek_to_beginning(*parts)
    last = {tp: c.beginning_offsets([tp])[tp] - 1 for tp in parts}
    msgs = {}
    while any(last[tp] < ends[tp] - 1 for tp in parts):
        assert time.time() < deadline, f"{topic}: not read to its end in {timeout_s} s"
        for tp in parts:
            if last[tp] < ends[tp] - 1 and c.position(tp) > last[tp] + 1:
                c.seek(tp, last[tp] + 1)  # skipped ahead: read the rest again
        for tp, records in c.poll(timeout_ms=500).items():
            for m in records:
                msgs[(m.partition, m.offset)] = m
                last[tp] = max(last[tp], m.offset)
    c.close()
    return [msgs[k] for k in sorted(msgs)]


def producer(broker):
    return KafkaProducer(bootstrap_servers=broker.bootstrap, api_version=KAFKA_API)


class Workdir:
    def __enter__(self):
        self.path = tempfile.mkdtemp(prefix="eddy-it-")
        return self.path

    def __exit__(self, *exc):
        if os.environ.get("EDDY_KEEP_WORKDIR"):
            print("kept", self.path)
        else:
            shutil.rmtree(self.path, ignore_errors=True)
