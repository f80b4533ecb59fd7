"""Backtests: `eddy replay` over event logs is deterministic (also across a
SIGKILL and resume), writes outputs and a report, and on the shared public
data (when present) beats its baselines as the README says."""
import datetime
import json
import os
import random
import re
import signal
import subprocess
import time

import avro.datafile
import avro.io
import avro.schema
import pytest

from harness import (EDDY, ROOT, Broker, Workdir, consume_all, decode_single_object, end_offsets,
                     gen, schema, state_cli)

SHARED = os.path.join(ROOT, "..", "shared", "data")
GEN = ["--events", 30000, "--users", 300, "--items", 800, "--campaigns", 3,
       "--ad-fraction", 0.3, "--period-ms", 20000, "--budget-scale", 0.3, "--seed", 11]


@pytest.fixture
def workdir():
    with Workdir() as w:
        yield w


def eddy(*args, timeout=600):
    r = subprocess.run([EDDY, *map(str, args)], capture_output=True, text=True,
                       timeout=timeout)
    assert r.returncode == 0, r.stderr + r.stdout
    return r


def records(path, reader_schema=None):
    with avro.datafile.DataFileReader(open(path, "rb"),
                                      avro.io.DatumReader(readers_schema=reader_schema)) as r:
        return list(r)


def replay_cmd(workdir, name, log, *extra):
    return [EDDY, "replay", "--state", os.path.join(workdir, name, "state"),
            "-o", os.path.join(workdir, name), "--checkpoint-events", "499", *map(str, extra), log]


def outputs(workdir, name):
    out = os.path.join(workdir, name)
    export = state_cli("export", "--format", "jsonl", "-d", os.path.join(out, "state"))
    files = []
    for name in ("recommendations.avro", "decisions.avro"):
        with open(os.path.join(out, name), "rb") as f:
            files.append(f.read())
    # Records (read by an independent Avro reader), the state, and the bytes.
    return (records(os.path.join(out, "recommendations.avro")),
            records(os.path.join(out, "decisions.avro")), export, files)


# The second: the count-min gate and TTLs short enough (1 s and 2 s of this
# log's event time) that sweeps delete histories, lists and users all along.
@pytest.mark.parametrize("cooccur", [{}, {"EDDY_COOCCUR_MIN_COUNT": "3",
                                          "EDDY_COOCCUR_TTL_MS": "1000",
                                          "EDDY_EMBEDDINGS_TTL_MS": "2000"}],
                         ids=["defaults", "gate-and-ttl"])
def test_replay_is_deterministic_across_runs_and_a_sigkill(workdir, cooccur):
    env = {**os.environ, **cooccur}
    log = os.path.join(workdir, "log")
    eddy("gen", "--out", log, *GEN)
    a, fastest, _ = two_runs(workdir, log, env=env)
    assert a[0] and a[1], "the log must give recommendations and decisions"
    controller_state(a[2])  # compared with everything else in the export
    killed_and_resumed(workdir, log, fastest, a, env=env)


def two_runs(workdir, log, *extra, env=None):
    """Replays log twice, into "a" and "b", and checks that both give the
    same outputs: those, the faster run's time, and each run's stdout."""
    took, stdout = [], []
    for name in ("a", "b"):
        start = time.monotonic()
        r = subprocess.run(replay_cmd(workdir, name, log, *extra), capture_output=True,
                           text=True, timeout=600, env=env)
        took.append(time.monotonic() - start)
        assert r.returncode == 0, r.stderr
        stdout.append(r.stdout)
    a = outputs(workdir, "a")
    assert a == outputs(workdir, "b")
    return a, min(took), stdout


def killed_and_resumed(workdir, log, fastest, expected, *extra, env=None):
    """Replays log into "c", kills it part-way (after some checkpoints),
    resumes it, and checks that it ends with the expected outputs."""
    start = time.monotonic()
    p = subprocess.Popen(replay_cmd(workdir, "c", log, *extra), stdout=subprocess.DEVNULL,
                         stderr=subprocess.PIPE, text=True, env=env)
    state = os.path.join(workdir, "c", "state")
    while not os.path.exists(os.path.join(state, "CURRENT")) and p.poll() is None:
        time.sleep(0.05)
    # Part-way, however fast this build replays: the state appears only
    # once it is whole, then the replay runs for most of a full run's time.
    time.sleep(random.uniform(0.2, 0.6) * fastest)
    p.send_signal(signal.SIGKILL)
    assert p.wait() == -signal.SIGKILL, "the replay ended before the kill: make the log longer"
    r = subprocess.run(replay_cmd(workdir, "c", log, *extra), capture_output=True, text=True,
                       timeout=600, env=env)
    assert r.returncode == 0, r.stderr
    assert "resuming the replay after event" in r.stderr, r.stderr
    assert outputs(workdir, "c") == expected, f"killed after {time.monotonic() - start:.1f} s"


def controller_state(export):
    """The budget controller's state in a state export: every campaign's
    ledger, market histogram and Q-table."""
    campaigns = [json.loads(line) for line in export.splitlines() if '"kind":"campaign"' in line]
    assert campaigns, "the export must hold the campaigns"
    for c in campaigns:
        assert {"plan_multiplier", "market_state", "auctions_per_slot",
                "market_auctions", "market_cost_micros", "market_total", "q"} <= c.keys(), c
    return campaigns


def test_pretrained_protocol_is_deterministic_across_a_sigkill(workdir):
    """The protocol with --tune-on pre-trains the controller inside the first
    event; two runs and a killed-and-resumed one leave the same outputs and
    the same controller state (ledgers, market histograms, Q-tables)."""
    tune, log = os.path.join(workdir, "tune"), os.path.join(workdir, "log")
    one = ["--events", 40000, "--campaigns", 1, "--ad-fraction", 0.5, "--period-ms", 2000]
    eddy("gen", "--out", tune, *one, "--seed", 4)
    eddy("gen", "--out", log, *one, "--seed", 5)
    extra = ["--budget-fractions", "1/8,1/2", "--tune-on", tune]
    a, fastest, stdout = two_runs(workdir, log, *extra)
    for out in stdout:
        assert "no episode overspent" in out, out
    trained = controller_state(a[2])
    assert all(c["market_total"] > 0 and any(c["q"]) for c in trained), trained
    killed_and_resumed(workdir, log, fastest, a, *extra)


def write_log(path, name, recs):
    with open(os.path.join(ROOT, "schemas", name + ".avsc")) as f:
        sch = avro.schema.parse(f.read())
    with avro.datafile.DataFileWriter(open(path, "wb"), avro.io.DatumWriter(), sch) as w:
        for rec in recs:
            w.append(rec)


def test_report_shows_conversion_value(workdir):
    """Conversions with AdEvent.value after won auctions: the report gives
    the campaign's conversion value next to its clicks, and reward = value
    trains on it."""
    log = os.path.join(workdir, "log")
    os.makedirs(log)
    t0 = datetime.datetime(2026, 1, 1, tzinfo=datetime.timezone.utc)
    write_log(os.path.join(log, "campaigns.avro"), "CampaignBudget",
              [{"campaign_id": "v", "budget_micros": 10**9, "period_ms": 24000,
                "base_bid_micros": 10000}])
    ads = []
    for i in range(200):
        ads.append({"campaign_id": "v", "event_type": "AUCTION", "timestamp": t0 + datetime.timedelta(milliseconds=100 * i),
                    "pctr": 0.5, "market_price_micros": 1000})
        if i % 4 == 0:
            ads.append({"campaign_id": "v", "event_type": "CONVERSION",
                        "timestamp": t0 + datetime.timedelta(milliseconds=100 * i),
                        "value": 2.5})
    write_log(os.path.join(log, "ad-events.avro"), "AdEvent", ads)
    out = os.path.join(workdir, "out")
    env = dict(os.environ, EDDY_BIDDING_REWARD="value")
    r = subprocess.run([EDDY, "replay", "-q", "--state", os.path.join(workdir, "state"),
                        "-o", out, log], capture_output=True, text=True, timeout=120, env=env)
    assert r.returncode == 0, r.stderr
    assert "conversion value" in r.stdout, r.stdout
    with open(os.path.join(out, "report.json")) as f:
        camp = json.load(f)["campaigns"][0]
    assert camp["wins"] == 200, camp  # bid 5000 >= price 1000, budget plenty
    assert camp["conversion_value"] == 50 * 2.5, camp
    ledger = [json.loads(line) for line in state_cli(
        "export", "--format", "jsonl", "-d", os.path.join(workdir, "state")).splitlines()
        if '"kind":"campaign"' in line][0]
    assert any(q > 0 for q in ledger["q"]), "reward = value trains on the conversions"


def test_replay_report(workdir):
    log = os.path.join(workdir, "log")
    eddy("gen", "--out", log, *GEN)
    out = os.path.join(workdir, "out")
    r = eddy("replay", "-q", "--state", os.path.join(workdir, "state"), "-o", out, log)
    assert "HR@K" in r.stdout
    with open(os.path.join(out, "report.json")) as f:
        rep = json.load(f)
    rec = rep["recommendations"]
    # The generator plants segments: eddy must beat popularity by far.
    assert rec["eddy"]["hr"] > rec["popularity"]["hr"] > 0, rec
    # The item-kNN baseline scores the same events; the history buckets
    # partition them.
    assert "item-kNN" in r.stdout
    assert rec["item_knn"]["events"] == rec["eddy"]["events"], rec
    assert 0 <= rec["item_knn"]["hr"] <= 1
    buckets = rec["history_buckets"]
    assert [b["label"] for b in buckets] == ["0", "1-5", "6-20", ">20"]
    assert sum(b["events"] for b in buckets) == rec["eddy"]["events"]
    assert all("item_knn" in w for w in rec["windows"])
    assert {c["id"] for c in rep["campaigns"]} == {"c0", "c1", "c2"}
    for c in rep["campaigns"]:
        assert c["spend_micros"] <= c["budget_micros"]
        assert c["max_overspend_micros"] <= 0
    html = os.path.join(out, "report.html")
    check = os.path.join(ROOT, "tests", "integration", "check_report_render.sh")
    r = subprocess.run([check, html, os.path.join(workdir, "shot.png")], capture_output=True,
                       text=True, timeout=180)
    assert r.returncode == 0, r.stdout + r.stderr
    print(r.stdout.strip())


def test_replay_refuses_a_missing_log(workdir):
    r = subprocess.run([EDDY, "replay", "--state", os.path.join(workdir, "s"),
                        os.path.join(workdir, "nope")], capture_output=True, text=True,
                       cwd=workdir)
    assert r.returncode == 1
    assert "nope" in r.stderr
    # Nothing is created for a run that cannot start.
    assert not os.path.exists(os.path.join(workdir, "s"))
    assert not os.path.exists(os.path.join(workdir, "replay-out"))


@pytest.mark.skipif(not os.path.exists(os.path.join(SHARED, "movielens-latest-small")),
                    reason="../shared/data/movielens-latest-small not present")
def test_movielens_beats_popularity(workdir):
    log = os.path.join(workdir, "ml")
    eddy("import", "movielens", os.path.join(SHARED, "movielens-latest-small", "ratings.csv"),
         "-o", log)
    out = os.path.join(workdir, "out")
    r = eddy("replay", "-q", "--state", os.path.join(workdir, "state"), "-o", out, log)
    print(r.stdout)
    with open(os.path.join(out, "report.json")) as f:
        rec = json.load(f)["recommendations"]
    assert rec["eddy"]["hr"] > rec["popularity"]["hr"], rec
    # README: item-kNN reaches about 0.10 HR@10 here.
    assert 0.08 < rec["item_knn"]["hr"] < 0.12, rec["item_knn"]
    assert sum(b["events"] for b in rec["history_buckets"]) == rec["eddy"]["events"]


@pytest.mark.skipif(not os.path.exists(os.path.join(SHARED, "ipinyou-1458")),
                    reason="../shared/data/ipinyou-1458 not present")
def test_ipinyou_protocol(workdir):
    for part in ("train", "test"):
        eddy("import", "ipinyou", os.path.join(SHARED, "ipinyou-1458", part + ".txt"),
             "-o", os.path.join(workdir, part))
    out = os.path.join(workdir, "out")
    r = eddy("replay", "-q", "--state", os.path.join(workdir, "state"), "-o", out,
             "--budget-fractions", "1/32,1/16,1/8,1/4,1/2",
             "--tune-on", os.path.join(workdir, "train"), os.path.join(workdir, "test"))
    print(r.stdout)
    with open(os.path.join(out, "report.json")) as f:
        rep = json.load(f)
    assert [f["label"] for f in rep["fractions"]] == ["1/32", "1/16", "1/8", "1/4", "1/2"]
    for f in rep["fractions"]:
        for policy in ("eddy", "lin", "oracle"):
            res = f[policy]
            assert res["auctions"] > 0, (f["label"], policy)
            assert res["max_overspend_micros"] <= 0, (f["label"], policy)
        assert f["oracle"]["clicks"] >= f["lin"]["clicks"], f
        # README: the controller, pre-trained on train.txt, matches or beats Lin.
        assert f["eddy"]["clicks"] >= f["lin"]["clicks"], f
        assert len(f["training"]["clicks"]) == 100 and f["episode"]["spent_micros"], f
    assert sum(f["eddy"]["clicks"] for f in rep["fractions"]) >= 142


def kafka_replay(broker, workdir, name, *bounds):
    conf = os.path.join(workdir, name + ".conf")
    with open(conf, "w") as f:
        f.write(f"[kafka]\nbootstrap.servers = {broker.bootstrap}\n")
    r = eddy("replay", "-q", "-c", conf, "--state", os.path.join(workdir, name, "state"),
             "-o", os.path.join(workdir, name), "--no-eval", "--kafka", *bounds)
    return int(r.stdout.split("replay: ")[1].split()[0])


def test_kafka_range_replay_processes_exactly_the_range(workdir):
    broker = Broker(partitions=2)
    try:
        first = gen(broker, "--events", 3000, "--campaigns", 2, "--seed", 5)
        time.sleep(1.0)
        cut = int(time.time() * 1000)
        time.sleep(1.0)
        gen(broker, "--events", 2000, "--campaigns", 2, "--seed", 6, "--no-budgets")
        ends = {t: end_offsets(broker, t) for t in ("clicks", "ad-events", "campaigns")}

        # A time bound: --to the cut is exactly the first batch.
        assert kafka_replay(broker, workdir, "t", "--to", cut) == first
        # Offset bounds: clicks[0] from 100 to 400, ad-events up to 50 a
        # partition, everything else whole.
        n = kafka_replay(broker, workdir, "o", "--from", "clicks:0=100",
                         "--to", "clicks:0=400,ad-events=50")
        want = (300 + ends["clicks"][1] + sum(min(50, e) for e in ends["ad-events"].values())
                + sum(ends["campaigns"].values()))
        assert n == want
    finally:
        broker.stop()


def test_speed_produces_the_log_into_the_input_topics_at_its_pace(workdir):
    log = os.path.join(workdir, "log")
    # 3000 events 1 ms apart: 3 s of event time, so 1.5 s at 2x.
    eddy("gen", "--out", log, "--events", 3000, "--campaigns", 2, "--seed", 3)
    broker = Broker(partitions=2)
    try:
        conf = os.path.join(workdir, "speed.conf")
        with open(conf, "w") as f:
            f.write(f"[kafka]\nbootstrap.servers = {broker.bootstrap}\n")
        start = time.monotonic()
        r = eddy("replay", "-q", "-c", conf, "--speed", "2", log)
        took = time.monotonic() - start
        assert "3002 records produced" in r.stdout, r.stdout
        counts = {t: sum(end_offsets(broker, t).values())
                  for t in ("clicks", "ad-events", "campaigns")}
        assert counts["campaigns"] == 2
        assert counts["clicks"] + counts["ad-events"] == 3000
        assert took >= 1.4, f"3 s of event time at 2x took only {took:.2f} s"
    finally:
        broker.stop()


def test_to_kafka_produces_the_same_records_as_the_files(workdir):
    log = os.path.join(workdir, "log")
    eddy("gen", "--out", log, "--events", 4000, "--campaigns", 2, "--seed", 9)
    files = os.path.join(workdir, "files")
    eddy("replay", "-q", "--no-eval", "--state", os.path.join(files, "state"), "-o", files, log)
    broker = Broker(partitions=2)
    try:
        conf = os.path.join(workdir, "k.conf")
        with open(conf, "w") as f:
            f.write(f"[kafka]\nbootstrap.servers = {broker.bootstrap}\n")
        eddy("replay", "-q", "--no-eval", "-c", conf, "--to-kafka",
             "--state", os.path.join(workdir, "k-state"), "-o", os.path.join(workdir, "k"), log)
        for topic, name, sch in (("recommendations", "recommendations.avro", "Recommendation"),
                                 ("budget-decisions", "decisions.avro", "BudgetDecision")):
            want = records(os.path.join(files, name))
            assert want, name
            got = [decode_single_object(schema(sch), m.value) for m in consume_all(broker, topic)]
            # Partitions interleave on the topic: compare as multisets.
            assert sorted(map(repr, got)) == sorted(map(repr, want)), topic
        assert not os.path.exists(os.path.join(workdir, "k", "recommendations.avro"))
    finally:
        broker.stop()


def test_to_kafka_stops_without_a_checkpoint_when_outputs_are_not_delivered(workdir):
    """The output topics' leader is down for longer than message.timeout.ms:
    the replay must not checkpoint past outputs the broker never acknowledged.
    It stops with an error; run again once the broker is back, it delivers
    every output (at least once)."""
    log = os.path.join(workdir, "log")
    eddy("gen", "--out", log, "--events", 3000, "--campaigns", 2, "--seed", 5)
    files = os.path.join(workdir, "files")
    eddy("replay", "-q", "--no-eval", "--state", os.path.join(files, "state"), "-o", files, log)
    broker = Broker(partitions=1, brokers=2)
    try:
        for t in ("recommendations", "budget-decisions"):
            broker.leader(t, "*", 2)
        conf = os.path.join(workdir, "k.conf")
        with open(conf, "w") as f:
            f.write(f"[kafka]\nbootstrap.servers = {broker.bootstrap}\n"
                    "kafka.message.timeout.ms = 2000\n")
        args = [EDDY, "replay", "-q", "--no-eval", "-c", conf, "--to-kafka", "--checkpoint-events",
                500, "--state", os.path.join(workdir, "k-state"), "-o", os.path.join(workdir, "k"),
                log]
        broker.down(2)
        r = subprocess.run(list(map(str, args)), capture_output=True, text=True, timeout=120)
        assert r.returncode != 0, r.stdout + r.stderr
        assert "outputs were not delivered: stopping without a checkpoint" in r.stderr, r.stderr
        # No checkpoint: the replay's position in the state is still 0.
        exported = [json.loads(x) for x in state_cli(
            "export", "-d", os.path.join(workdir, "k-state")).splitlines()]
        assert not [o for o in exported if o["kind"] == "offset" and o["next_offset"] > 0], \
            [o for o in exported if o["kind"] == "offset"]

        broker.up(2)
        r = subprocess.run(list(map(str, args)), capture_output=True, text=True, timeout=300)
        assert r.returncode == 0, r.stdout + r.stderr
        want = records(os.path.join(files, "recommendations.avro"))
        got = {repr(decode_single_object(schema("Recommendation"), m.value))
               for m in consume_all(broker, "recommendations")}
        assert want and {repr(w) for w in want} <= got
    finally:
        broker.stop()


def ms(t):
    """Milliseconds since the epoch of a timestamp-millis value, which the
    Python Avro library reads as an aware datetime."""
    if isinstance(t, int):
        return t
    return (t - datetime.datetime(1970, 1, 1, tzinfo=datetime.timezone.utc)) \
        // datetime.timedelta(milliseconds=1)


def merged_log(log):
    """The log's events in the replay's order (pipeline/source/merge.h), by
    an independent reader: the input whose head is earliest goes first,
    budgets (no time) before any timed event, ties to the file listed first
    (a directory's *.avro files in name order)."""
    import heapq
    files = sorted(f for f in os.listdir(log) if f.endswith(".avro"))
    def timed(recs):
        for r in recs:
            yield (ms(r["timestamp"]) if "timestamp" in r else float("-inf"), r)
    streams = [timed(records(os.path.join(log, f))) for f in files]
    return [r for _, r in heapq.merge(*streams, key=lambda tr: tr[0])]


def kind_counts(events):
    clicks = sum(1 for e in events if "item_id" in e)
    budgets = sum(1 for e in events if "budget_micros" in e)
    return clicks, len(events) - clicks - budgets, budgets


def test_first_replays_exactly_the_head_of_the_log(workdir):
    """--first N and --first P% replay exactly the first events of the
    merged stream: the report counts them, by kind and event time, and no
    output comes from an event after them."""
    log = os.path.join(workdir, "log")
    eddy("gen", "--out", log, *GEN[:1], 6000, *GEN[2:])
    events = merged_log(log)
    total = len(events)
    with open(os.path.join(ROOT, "config", "eddy.conf")) as f:
        refresh_ms = int(re.search(r"^refresh\.interval\.ms\s*=\s*(\d+)", f.read(), re.M)[1])
    for first, n in (("1234", 1234), ("20%", total * 20 // 100)):
        out = os.path.join(workdir, "out-" + first.rstrip("%"))
        r = eddy("replay", "-q", "--state", out + "-state", "-o", out,
                 "--checkpoint-events", 499, "--first", first, log)
        head = events[:n]
        assert f"replay: {n} events" in r.stdout, r.stdout
        with open(os.path.join(out, "report.json")) as f:
            rep = json.load(f)
        run = rep["run"]
        assert run["events"] == str(n)
        clicks, ads, budgets = kind_counts(head)
        assert (run["click events"], run["ad events"], run["campaign budgets"]) == \
            (str(clicks), str(ads), str(budgets))
        assert clicks and ads and budgets, "the head must hold every kind to prove anything"
        times = [ms(e["timestamp"]) for e in head if "timestamp" in e]
        fmt = lambda ms: time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(ms // 1000))
        assert run["event time"] == f"{fmt(min(times))} to {fmt(max(times))} UTC"
        want = f"{n} of {total} (20%)" if first.endswith("%") else str(n)
        assert run["first events (--first)"] == want
        assert rep["config"]["replay --first"] == first
        # Nothing after the head reached the operators: only the head's
        # users get recommendations, and no output is stamped later than the
        # head's last event (decisions carry their slot's start, refreshes
        # the end of the refresh interval the click fell in).
        recs = records(os.path.join(out, "recommendations.avro"))
        decs = records(os.path.join(out, "decisions.avro"))
        assert recs and decs
        assert {x["user_id"] for x in recs} <= {e["user_id"] for e in head if "item_id" in e}
        assert max(ms(x["event_time"]) for x in decs) <= max(times)
        assert max(ms(x["event_time"]) for x in recs) <= max(times) + refresh_ms
        # The evaluation scored only the head's events.
        assert 0 < rep["recommendations"]["eddy"]["events"] < clicks

    # Each item carries "because" (null or an item id); a reader still on the
    # Recommendation schema from before it reads the same records, less that
    # field, by the Python Avro library's schema resolution.
    with open(os.path.join(ROOT, "tests", "data", "Recommendation-v1.avsc")) as f:
        v1 = avro.schema.parse(f.read())
    old = records(os.path.join(out, "recommendations.avro"), v1)
    assert all(set(i) == {"item_id", "score", "because"} for x in recs for i in x["items"])
    assert all(i["because"] is None or isinstance(i["because"], str)
               for x in recs for i in x["items"])
    assert old == [dict(x, items=[{"item_id": i["item_id"], "score": i["score"]}
                                  for i in x["items"]]) for x in recs]

    # A state that replayed further than a later --first asks is refused,
    # before its outputs are touched.
    out = os.path.join(workdir, "out-1234")
    def files():
        return [open(os.path.join(out, f), "rb").read()
                for f in ("recommendations.avro", "decisions.avro")]
    before = files()
    r = subprocess.run([EDDY, "replay", "-q", "--state", out + "-state", "-o", out,
                        "--first", "100", log], capture_output=True, text=True, timeout=120)
    assert r.returncode == 1
    assert "has replayed 1234 events, past --first's 100" in r.stderr, r.stderr
    assert files() == before


@pytest.mark.parametrize("value,why", [
    ("0", "is out of range (a count of at least 1)"),
    ("0%", "is out of range (a percentage above 0% and at most 100%)"),
    ("150%", "is out of range (a percentage above 0% and at most 100%)"),
    ("ten", "is not a count N or a percentage P%"),
    ("-5", "is not a count N or a percentage P%"),
])
def test_first_refuses_bad_values(workdir, value, why):
    r = subprocess.run([EDDY, "replay", "--state", os.path.join(workdir, "s"), "--first", value,
                        os.path.join(workdir, "log")], capture_output=True, text=True,
                       cwd=workdir, timeout=60)
    assert r.returncode == 2
    assert f'invalid value "{value}" for --first: {why}' in r.stderr, r.stderr
    assert not os.path.exists(os.path.join(workdir, "s"))


def test_resume_refuses_an_output_file_of_the_older_recommendation_schema(workdir):
    """A replay resumed on outputs an eddy from before `because` wrote would
    append records of the new schema to a file whose header names the old
    one, which no reader could then read: it is refused, naming the file."""
    log = os.path.join(workdir, "log")
    eddy("gen", "--out", log, *GEN[:1], 6000, *GEN[2:])
    out, state = os.path.join(workdir, "out"), os.path.join(workdir, "state")
    eddy("replay", "-q", "--no-eval", "--state", state, "-o", out, "--first", 3000, log)
    path = os.path.join(out, "recommendations.avro")
    with open(os.path.join(ROOT, "tests", "data", "Recommendation-v1.avsc")) as f:
        v1 = avro.schema.parse(f.read())
    old = records(path, v1)
    assert old
    with avro.datafile.DataFileWriter(open(path, "wb"), avro.io.DatumWriter(), v1,
                                      codec="deflate") as w:
        for rec in old:
            w.append(rec)
    r = subprocess.run([EDDY, "replay", "-q", "--no-eval", "--state", state, "-o", out, log],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 1
    assert f"{path} holds another Recommendation schema than this eddy's" in r.stderr, r.stderr
    assert records(path, v1) == old, "the file must be left as it was"
