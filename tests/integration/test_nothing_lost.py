"""Nothing lost, ever: every input record ends with its outputs delivered, in
the DLQ, or with eddy stopped with a clear error before it moves past it.
Faults are injected through `eddy broker`'s control channel."""
import json
import os
import re
import signal
import socket
import threading
import time

import pytest

from harness import (Broker, Eddy, Workdir, consume_all, decode_single_object, end_offsets,
                     fingerprint, gen, producer, schema, state_cli)

OUTPUTS = ("recommendations", "budget-decisions", "eddy-dlq")
INPUTS = ("clicks", "ad-events", "campaigns")
GEN = ["--users", 200, "--items", 2000, "--campaigns", 3, "--ad-fraction", 0.3,
       "--period-ms", 5000, "--seed", 11]


@pytest.fixture
def workdir():
    with Workdir() as w:
        yield w


def state_diff(a, b):
    """The first differing state entry, as its differing fields."""
    for x, y in zip(a, b):
        if x != y:
            x, y = json.loads(x), json.loads(y)
            return {k: (x.get(k), y.get(k)) for k in x.keys() | y.keys() if x.get(k) != y.get(k)}
    return f"{len(a)} entries against {len(b)}"


def export(state_dir):
    return state_cli("export", "--format", "jsonl", "-d", state_dir).splitlines()


def ms(t):
    """Event time as epoch ms (Python Avro decodes timestamp-millis to datetime)."""
    return t if isinstance(t, int) else round(t.timestamp() * 1000)


def dead_lettered(broker):
    """{(topic, partition, offset)} of the input records in the DLQ."""
    out = set()
    for m in consume_all(broker, "eddy-dlq"):
        h = {k: v.decode() for k, v in m.headers}
        out.add((h["eddy.source.topic"], int(h["eddy.source.partition"]),
                 int(h["eddy.source.offset"])))
    return out


def assert_every_click_accounted_for(broker):
    """Every click is in the DLQ or covered by a recommendation for its user
    made at or after its event time (a refresh scores the user's state after
    the click). Returns the DLQ's source coordinates."""
    reader, covered = schema("Recommendation"), {}
    for m in consume_all(broker, "recommendations"):
        r = decode_single_object(reader, m.value)
        covered[r["user_id"]] = max(covered.get(r["user_id"], 0), ms(r["event_time"]))
    dlq, reader, missing, n = dead_lettered(broker), schema("ClickEvent"), 0, 0
    for m in consume_all(broker, "clicks"):
        n += 1
        if ("clicks", m.partition, m.offset) not in dlq:
            c = decode_single_object(reader, m.value)
            missing += covered.get(c["user_id"], -1) < ms(c["timestamp"])
    assert n and not missing, f"{missing} of {n} clicks have no output"
    return dlq


def wait_exit(eddy, timeout):
    try:
        rc = eddy.proc.wait(timeout=timeout)
    except Exception:
        raise AssertionError("eddy did not stop\n" + eddy.log_text()[-3000:])
    eddy.log.close()
    return rc


def test_output_outage_longer_than_message_timeout_loses_nothing(workdir):
    """The output topics' broker goes down for longer than message.timeout.ms.
    eddy must not checkpoint past the undelivered outputs: it stops with exit
    3, and after the broker returns a restart redelivers them. The state then
    equals that of a run that saw no fault."""
    broker = Broker(partitions=1, brokers=2)
    try:
        for t in INPUTS:
            broker.leader(t, "*", 1)
        for t in OUTPUTS:
            broker.leader(t, "*", 2)
        for g in ("f1", "f2", "ref0", "ref"):
            broker.coordinator(g, 1)
        extra = ("[kafka]\nkafka.message.timeout.ms = 3000\n"
                 "[state]\ncheckpoint.interval.ms = 200\n")
        gen(broker, "--events", 0, *GEN)
        faulted = Eddy(broker, workdir, extra=extra, name="faulted",
                       state_dir=os.path.join(workdir, "f"))
        ref = Eddy(broker, workdir, extra=extra, name="ref",
                   state_dir=os.path.join(workdir, "ref"))
        # Both take the budgets before any event, so that the input order of
        # the two runs is the same (one partition a topic: docs/state.md).
        ref.start(env={"EDDY_KAFKA_GROUP_ID": "ref0"}).wait_consumed(3)
        assert ref.stop() == 0
        faulted.start(env={"EDDY_KAFKA_GROUP_ID": "f1"}).wait_consumed(3)
        sent = {}
        source = threading.Thread(target=lambda: sent.update(n=gen(
            broker, "--events", 20000, "--rate", 5000, "--bad-every", 500, "--no-budgets",
            *GEN)))
        source.start()
        faulted.wait_consumed(3000)
        broker.down(2)
        rc = wait_exit(faulted, 60)
        log = faulted.log_text()
        assert rc == 3, log[-3000:]
        assert "stopping without a checkpoint" in log
        assert "state and offsets persisted" not in log.split("output to")[-1]
        source.join()
        broker.up(2)

        faulted.start(env={"EDDY_KAFKA_GROUP_ID": "f2"}).wait_caught_up()
        assert faulted.stop() == 0
        ends = {t: end_offsets(broker, t) for t in INPUTS}
        dlq = assert_every_click_accounted_for(broker)
        assert len(dlq) == sent["n"] // 500  # each bad record, at least once

        ref.start(env={"EDDY_KAFKA_GROUP_ID": "ref"}).wait_caught_up()
        assert ref.stop() == 0
    finally:
        broker.stop()
    a, b = export(ref.state_dir), export(faulted.state_dir)
    offsets = [json.loads(x) for x in b if json.loads(x)["kind"] == "offset"]
    assert {(o["topic"], o["partition"]): o["next_offset"] for o in offsets} == {
        (t, p): e for t, parts in ends.items() for p, e in parts.items() if e}
    assert a == b, state_diff(a, b)


def push_log_start(broker, past, partition=0):
    """Appends records to clicks[partition] until the mock's retention has
    deleted everything before offset `past` (it keeps a few MB a partition)."""
    for _ in range(20):
        broker.produce("clicks", partition, 200, 10000)
        c = __import__("kafka").KafkaConsumer(bootstrap_servers=broker.bootstrap,
                                               api_version=(2, 5, 0))
        tp = __import__("kafka").TopicPartition("clicks", partition)
        start = c.beginning_offsets([tp])[tp]
        end = c.end_offsets([tp])[tp]
        c.close()
        if start > past:
            return start, end
    raise AssertionError("the mock kept the whole log")


@pytest.mark.parametrize("policy", ["fail", "earliest"])
def test_out_of_range_offset_stops_or_is_counted(workdir, policy):
    """Stored offsets that fell out of the log (retention passed them while
    eddy was down), in both partitions of clicks, stop eddy under
    offset.reset = fail, naming the partition, the stored offset and the log
    start; under earliest eddy resumes each at its log start, once, and
    counts the gap. Either way no record is skipped silently."""
    broker = Broker(partitions=2)
    try:
        extra = f"[kafka]\noffset.reset = {policy}\n"
        eddy = Eddy(broker, workdir, extra=extra)
        eddy.start(env={"EDDY_KAFKA_GROUP_ID": "g1"})
        first = gen(broker, "--events", 1000, "--ad-fraction", 0, "--no-budgets")
        eddy.wait_consumed(first)
        assert eddy.stop() == 0
        stored = end_offsets(broker, "clicks")
        assert all(stored.values()), stored  # both partitions have input
        bounds = {p: push_log_start(broker, stored[p], p) for p in stored}

        eddy.start(env={"EDDY_KAFKA_GROUP_ID": "g2"}, wait=False)
        if policy == "fail":
            rc = wait_exit(eddy, 60)
            log = eddy.log_text()
            assert rc == 4, log[-3000:]
            found = re.search(r"clicks\[(\d)\]: offset (\d+) is out of range: the log holds "
                              r"offsets (\d+) to (\d+)", log)
            assert found, log[-3000:]
            p, off, start, last = map(int, found.groups())
            assert (off, start, last + 1) == (stored[p], *bounds[p]), log[-3000:]
            # Nothing was skipped: the stored offsets are where they were.
            offs = [json.loads(x) for x in export(eddy.state_dir)]
            assert {o["partition"]: o["next_offset"] for o in offs
                    if o["kind"] == "offset" and o["topic"] == "clicks"} == stored
            return
        eddy.wait_healthy()
        gap = sum(bounds[p][0] - stored[p] for p in stored)
        kept = sum(bounds[p][1] - bounds[p][0] for p in stored)
        eddy.wait_consumed(kept)
        m = eddy.metrics()
        assert m[("eddy_offset_gap_records_total", frozenset())] == gap
        assert m[("eddy_offset_resets_total", frozenset())] == 2, eddy.log_tail()
        # Accounted for: the gap, plus every record after it (garbage: the DLQ).
        assert eddy.consumed() + gap == sum(bounds[p][1] - stored[p] for p in stored)
        assert eddy.stop() == 0
        for p in stored:
            assert "skipped %d records" % (bounds[p][0] - stored[p]) in eddy.log_text()
    finally:
        broker.stop()


def zigzag(n):
    n = (n << 1) ^ (n >> 63)
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def raw_click(user_id: bytes, item_id: bytes, ts: int) -> bytes:
    """A ClickEvent encoded by hand, so that its strings may be invalid UTF-8."""
    body = (zigzag(len(user_id)) + user_id + zigzag(len(item_id)) + item_id + zigzag(1) +
            zigzag(ts) + zigzag(0))
    return b"\xc3\x01" + fingerprint(schema("ClickEvent")).to_bytes(8, "little") + body


def test_oversized_and_invalid_utf8_records_reach_the_dlq(workdir):
    """A 1.1 MB record cannot go to the DLQ whole (the broker's limit is 1 MB):
    it goes truncated to [kafka] dlq.max.bytes, with its original size and
    source coordinates in headers. A user id that is not UTF-8 is invalid."""
    broker = Broker(partitions=1)
    try:
        eddy = Eddy(broker, workdir).start()
        p = producer(broker)
        p.config["max_request_size"] = 4 << 20
        p._accumulator.config["batch_size"] = 4 << 20
        big = os.urandom(1_100_000)
        good = raw_click(b"u1", b"i1", 1767225600002)
        sent = [p.send("clicks", key=b"k" * 300_000, value=big),
                p.send("clicks", value=raw_click(b"\xff\xfe", b"i1", 1767225600001)),
                p.send("clicks", key=b"u1", value=good)]
        offsets = [f.get(timeout=30).offset for f in sent]
        p.close()
        eddy.wait_consumed(3)
        m = eddy.metrics()
        assert m[("eddy_dlq_truncated_total", frozenset())] == 1
        assert eddy.stop() == 0
        dlq = {int(dict(m.headers)["eddy.source.offset"]): m
               for m in consume_all(broker, "eddy-dlq")}
        assert sorted(dlq) == offsets[:2]
        trunc = dlq[offsets[0]]
        h = {k: v.decode() for k, v in trunc.headers}
        assert h["eddy.original.value.size"] == "1100000"
        assert h["eddy.original.key.size"] == "300000"
        assert (h["eddy.source.topic"], h["eddy.source.partition"]) == ("clicks", "0")
        assert len(trunc.key) + len(trunc.value) == 524288
        assert trunc.value == big[:len(trunc.value)] and trunc.key == b"k" * len(trunc.key)
        h = {k: v.decode() for k, v in dlq[offsets[1]].headers}
        assert "user_id" in h["eddy.reason"] and "UTF-8" in h["eddy.reason"], h["eddy.reason"]
        assert dlq[offsets[1]].value == raw_click(b"\xff\xfe", b"i1", 1767225600001)
    finally:
        broker.stop()


def wait_status(eddy, path, want, timeout):
    deadline, last = time.time() + timeout, None
    while time.time() < deadline:
        last = eddy.get(path)
        if last[0] == want:
            return last[1]
        time.sleep(0.2)
    raise AssertionError(f"{path} stayed {last}\n" + eddy.log_text()[-2000:])


def test_readyz_follows_the_broker_and_shutdown_is_bounded(workdir):
    """/readyz turns 503 (with the reason) within [health] broker.timeout.ms
    of the broker going down and 200 when it returns; /healthz stays 200.
    A SIGTERM while the broker is down exits within shutdown.timeout.ms."""
    broker = Broker(partitions=1)
    try:
        eddy = Eddy(broker, workdir, extra="[health]\nbroker.timeout.ms = 2000\n"
                                            "[kafka]\nshutdown.timeout.ms = 3000\n").start()
        n = gen(broker, "--events", 2000)
        eddy.wait_consumed(n)
        assert eddy.get("/readyz") == (200, "ok\n")
        broker.down(1)
        t0 = time.time()
        body = wait_status(eddy, "/readyz", 503, 20)
        assert "no Kafka broker reachable" in body, body
        assert 2 <= time.time() - t0 + 1.5  # not before the configured time
        assert eddy.get("/healthz") == (200, "ok\n")
        broker.up(1)
        wait_status(eddy, "/readyz", 200, 30)

        broker.down(1)
        wait_status(eddy, "/readyz", 503, 20)
        t0 = time.time()
        eddy.proc.send_signal(signal.SIGTERM)
        rc = wait_exit(eddy, 30)
        took = time.time() - t0
        assert rc == 0, eddy.log_text()[-2000:]  # nothing undelivered: a clean stop
        assert took < 3 + 5, took
        broker.up(1)
    finally:
        broker.stop()


def test_health_and_metrics_answer_with_200_idle_connections(workdir):
    """200 clients connect and send nothing. With [http] max.connections = 50,
    eddy closes the longest idle ones to make room, so probes still answer."""
    broker = Broker(partitions=1)
    idle = []
    try:
        eddy = Eddy(broker, workdir, extra="[http]\nmax.connections = 50\n").start()
        for _ in range(200):
            idle.append(socket.create_connection(("127.0.0.1", eddy.port)))
        for path in ("/healthz", "/metrics", "/readyz") * 3:
            status, _ = eddy.get(path)
            assert status == 200, path
        deadline = time.time() + 10  # the metrics lag by a tick; accepts by the backlog
        while eddy.metrics()[("eddy_http_evicted_total", frozenset())] < 150:
            assert time.time() < deadline, eddy.metrics()
            time.sleep(0.2)
        assert eddy.metrics()[("eddy_http_connections", frozenset())] <= 50 + 16
        assert eddy.stop() == 0
    finally:
        for s in idle:
            s.close()
        broker.stop()
