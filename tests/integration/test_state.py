"""State that survives anything: exact recovery after SIGKILL, standby
takeover of a state directory, refusal of corrupt or incompatible state."""
import json
import os
import random
import signal
import subprocess
import threading
import time

import pytest

from harness import EDDY, Broker, Eddy, Workdir, end_offsets, gen, state_cli


@pytest.fixture
def workdir():
    with Workdir() as w:
        yield w


def export(state_dir):
    return state_cli("export", "--format", "jsonl", "-d", state_dir).splitlines()


def stored_offsets(lines, topic):
    out = {}
    for line in lines:
        rec = json.loads(line)
        if rec["kind"] == "offset" and rec["topic"] == topic:
            out[rec["partition"]] = rec["next_offset"]
    return out


GEN = ["--users", 300, "--items", 3000, "--campaigns", 4, "--ad-fraction", 0.3,
       "--period-ms", 5000, "--seed", 7]


def test_sigkill_at_random_points_gives_the_same_state(workdir):
    """Kill eddy -9 at least five times while traffic flows; after it finishes,
    every vector, Q-table, ledger, offset and blob is bit-identical to an
    uninterrupted run over the same input. One partition per topic, so the
    input order itself is the same for both runs (see docs/state.md)."""
    rnd = random.Random(int(os.environ.get("EDDY_TEST_SEED", time.time())))
    broker = Broker(partitions=1)
    try:
        gen(broker, "--events", 0, *GEN)  # budgets first, as in production
        ref = Eddy(broker, workdir, name="ref", state_dir=os.path.join(workdir, "ref"))
        killed = Eddy(broker, workdir, name="killed", state_dir=os.path.join(workdir, "k"),
                      extra="[state]\ncheckpoint.interval.ms = 50\ncheckpoint.events = 500\n")
        for e in (ref, killed):
            e.start(env={"EDDY_KAFKA_GROUP_ID": e.name}).wait_consumed(4)
            assert e.stop() == 0

        produced = {}
        producer = threading.Thread(target=lambda: produced.update(
            n=gen(broker, "--events", 30000, "--rate", 6000, "--no-budgets", *GEN)))
        producer.start()
        kills = 0
        while producer.is_alive() or kills < 5:
            killed.start(env={"EDDY_KAFKA_GROUP_ID": f"k{kills}"})
            time.sleep(rnd.uniform(0.3, 1.5))
            assert killed.stop(signal.SIGKILL) == -signal.SIGKILL
            kills += 1
        producer.join()
        killed.start(env={"EDDY_KAFKA_GROUP_ID": "k-final"}).wait_caught_up()
        assert killed.stop() == 0

        ref.start(env={"EDDY_KAFKA_GROUP_ID": "ref"}).wait_caught_up()
        assert ref.stop() == 0

        ends = {t: end_offsets(broker, t) for t in ("clicks", "ad-events", "campaigns")}
    finally:
        broker.stop()
    a, b = export(ref.state_dir), export(killed.state_dir)
    for t, e in ends.items():
        assert stored_offsets(a, t) == {p: o for p, o in e.items() if o}, t
    assert len(a) > 3000
    # The budget controller's whole state is in what is compared: ledgers,
    # market histograms and Q-tables.
    campaigns = [json.loads(x) for x in a if '"kind":"campaign"' in x]
    assert len(campaigns) == 4 and all(
        c["market_total"] > 0 and "plan_multiplier" in c and any(c["q"]) for c in campaigns)
    assert a == b, next((x, y) for x, y in zip(a, b) if x != y)


def test_standby_takes_over_a_killed_owner(workdir):
    """Two eddy processes, one state directory, one consumer group. The second
    stands by while the first owns the state; after the first is killed, it
    takes over from the stored offsets and every click is applied exactly
    once (the model version counts applied click events)."""
    broker = Broker(partitions=4)
    try:
        state = os.path.join(workdir, "shared")
        # A killed member leaves the group only when its session times out.
        fast = ("[kafka]\nkafka.session.timeout.ms = 6000\nkafka.heartbeat.interval.ms = 500\n"
                "[state]\ncheckpoint.interval.ms = 200\n")
        first = Eddy(broker, workdir, fast, name="first", state_dir=state).start()
        second = Eddy(broker, workdir, fast, name="second", state_dir=state).start(wait=False)
        time.sleep(1)
        assert "standing by" in second.log_text()

        producer = threading.Thread(target=gen, args=(broker, "--events", 40000, "--rate",
                                                      10000))
        producer.start()
        time.sleep(2)
        assert first.stop(signal.SIGKILL) == -signal.SIGKILL
        second.wait_healthy()
        producer.join()
        second.wait_caught_up()
        assert second.stop() == 0
        clicks = sum(end_offsets(broker, "clicks").values())
        ends = {t: end_offsets(broker, t) for t in ("clicks", "ad-events", "campaigns")}
    finally:
        broker.stop()
    lines = export(state)
    for t, e in ends.items():  # partitions that never held a record have no offset
        assert stored_offsets(lines, t) == {p: o for p, o in e.items() if o}, t
    meta = {r["key"]: r["value"] for r in map(json.loads, lines) if r["kind"] == "meta"}
    assert meta["model_version"] == clicks


def run_eddy(workdir, state_dir, extra=""):
    path = os.path.join(workdir, "x.conf")
    with open(path, "w") as f:
        f.write(f"[kafka]\nbootstrap.servers = 127.0.0.1:1\n[state]\ndir = {state_dir}\n"
                f"[http]\nlisten =\n{extra}")
    return subprocess.run([EDDY, "run", "-c", path], capture_output=True, text=True,
                          timeout=60)


def make_state(workdir):
    state = os.path.join(workdir, "state")
    broker = Broker(partitions=1)
    try:
        e = Eddy(broker, workdir, state_dir=state).start()
        e.wait_consumed(gen(broker, "--events", 2000))
        assert e.stop() == 0
    finally:
        broker.stop()
    return state


def test_corrupt_state_refuses_to_start(workdir):
    state = make_state(workdir)
    with open(os.path.join(state, "CURRENT"), "w") as f:
        f.write("garbage\n")
    r = run_eddy(workdir, state)
    assert r.returncode != 0
    assert state in r.stderr, r.stderr
    # Nothing was reinitialised: the directory still holds the broken file.
    with open(os.path.join(state, "CURRENT")) as f:
        assert f.read() == "garbage\n"


def test_incompatible_state_refuses_to_start(workdir):
    state = make_state(workdir)
    r = run_eddy(workdir, state, "[embeddings]\ndim = 16\n")
    assert r.returncode != 0
    assert state in r.stderr and "dim" in r.stderr, r.stderr
