"""The fault-injection channel of `eddy broker` works for real: each command
is checked by its effect on an independent client (kafka-python), not by
its "ok". The tests of eddy under faults build on these."""
import signal
import time

import pytest
from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from kafka.errors import KafkaError, NotLeaderForPartitionError

from harness import KAFKA_API, Broker, ControlError

TOPIC = "recommendations"


@pytest.fixture
def broker():
    b = Broker(partitions=2, brokers=2)
    yield b
    if b.proc.poll() is None:
        b.stop()


def quick_producer(broker):
    """Gives up fast and never retries, so each fault shows in one send."""
    return KafkaProducer(bootstrap_servers=broker.bootstrap, api_version=KAFKA_API, retries=0,
                         request_timeout_ms=2000, max_block_ms=5000, linger_ms=0,
                         reconnect_backoff_max_ms=200)


def send(p, partition, timeout=10):
    return p.send(TOPIC, b"x" * 10, partition=partition).get(timeout=timeout)


def offsets(broker, topic, partition):
    c = KafkaConsumer(bootstrap_servers=broker.bootstrap, api_version=KAFKA_API)
    tp = TopicPartition(topic, partition)
    lo, hi = c.beginning_offsets([tp])[tp], c.end_offsets([tp])[tp]
    c.close()
    return lo, hi


def test_bad_commands_are_errors_and_the_channel_goes_on(broker):
    for line in ["down 3", "up 0", "frob", "errors produce 1 NO_SUCH_ERROR",
                 "errors bogus 1 REQUEST_TIMED_OUT", "leader nosuch 0 1",
                 f"leader {TOPIC} 2 1", "coordinator group g 9", "rtt 1 -1"]:
        with pytest.raises(ControlError, match="error: "):
            broker.control(line)
    assert broker.control("") == "ok"
    assert broker.control("# a comment") == "ok"
    # Asking about an unknown topic did not create it.
    with pytest.raises(ControlError, match='no topic "nosuch"'):
        broker.leader("nosuch", "*", 1)


def test_output_broker_down_then_up(broker):
    """The soak's main fault: the output topic's leader goes down while the
    rest of the cluster stays up; sends to it fail until it is back."""
    broker.leader(TOPIC, 0, 2)
    broker.leader(TOPIC, 1, 1)
    p = quick_producer(broker)
    send(p, 0)
    send(p, 1)

    broker.down(2)
    t0 = time.time()
    with pytest.raises(KafkaError):
        send(p, 0)
    print(f"send to the downed leader failed after {time.time() - t0:.1f} s")
    send(p, 1)  # partition 1's leader, broker 1, is unaffected

    broker.up(2)
    deadline = time.time() + 15
    while True:
        try:
            send(p, 0)
            break
        except KafkaError:
            assert time.time() < deadline, "broker 2 did not come back"
            time.sleep(0.2)
    p.close()
    lo, hi = offsets(broker, TOPIC, 0)
    assert (lo, hi) == (0, 2)


def test_rtt_and_errors(broker):
    # Leaders move first: this producer never retries, so its first send
    # must already see broker 1 as the leader.
    broker.leader(TOPIC, "*", 1)
    p = quick_producer(broker)
    send(p, 0)
    broker.rtt(1, 400)
    t0 = time.time()
    send(p, 0)
    slow = time.time() - t0
    broker.rtt(1, 0)
    assert slow >= 0.4, slow

    # Errors are served to the next requests of that API, on any broker.
    broker.errors("produce", 1, "NOT_LEADER_FOR_PARTITION")
    with pytest.raises(NotLeaderForPartitionError):
        send(p, 0)
    # Aimed at broker 2, they leave broker 1's requests alone.
    broker.errors("produce", 1, "NOT_LEADER_FOR_PARTITION", broker=2)
    send(p, 0)
    p.close()


def test_produce_pushes_the_log_start_forward(broker):
    assert offsets(broker, TOPIC, 1) == (0, 0)
    broker.produce(TOPIC, 1, 5000, 2000)  # 10 MB: more than the mock keeps
    lo, hi = offsets(broker, TOPIC, 1)
    assert hi == 5000 and lo > 0, (lo, hi)


def test_end_of_stdin_does_not_stop_the_broker(broker):
    broker.proc.stdin.close()
    time.sleep(0.5)
    assert broker.proc.poll() is None
    p = quick_producer(broker)
    send(p, 0)
    p.close()
    broker.proc.send_signal(signal.SIGTERM)
    assert broker.proc.wait(timeout=30) == 0
