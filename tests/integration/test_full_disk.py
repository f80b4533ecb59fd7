"""A full disk under the state directory: `eddy run` stops with an error that
names the directory and the OS error and exits 1, never aborts (RocksDB
7.8.3 used to trip an assertion on its info LOG there, exit 134), and once
there is room again the state opens, reads and resumes (docs/state.md,
"Full disk").

The disk is a small tmpfs mounted for the test, which needs root with
CAP_SYS_ADMIN: where mounting is refused (an unprivileged container) the
test skips and says why."""
import errno
import os
import subprocess

import pytest

from harness import EDDY, Broker, Eddy, Workdir, end_offsets, gen, state_cli

DISK = "32m"
GEN = ["--campaigns", 3, "--ad-fraction", 0.2, "--seed", 11]


@pytest.fixture
def small_disk():
    with Workdir() as w:
        disk = os.path.join(w, "disk")
        os.mkdir(disk)
        try:
            r = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={DISK}", "tmpfs", disk],
                               capture_output=True, text=True, timeout=30)
            why = (r.stderr.strip().splitlines() or [f"exit {r.returncode}"])[0]
        except OSError as e:  # no mount(8)
            r, why = None, str(e)
        if r is None or r.returncode:
            pytest.skip(f"cannot mount a {DISK} tmpfs to fill (needs root with "
                        f"CAP_SYS_ADMIN): {why}")
        try:
            yield w, disk
        finally:
            subprocess.run(["umount", "-l", disk], timeout=30)


def fill(disk, name):
    """Writes zeros until the filesystem has no room; returns the file."""
    path = os.path.join(disk, name)
    with open(path, "wb", buffering=0) as f:
        for chunk in (b"\0" * (1 << 20), b"\0" * 4096):
            try:
                while True:
                    f.write(chunk)
            except OSError as e:
                if e.errno != errno.ENOSPC:
                    raise
    return path


def stored_offset(state_dir, topic, partition=0):
    for line in state_cli("stats", "-d", state_dir).splitlines():
        f = line.split()
        if f[:3] == ["offset", topic, str(partition)]:
            return int(f[4])
    return None


def assert_stopped_cleanly(rc, log, state_dir):
    """Exit 1 with the error logged: not a signal (Popen's rc < 0), not 134
    (abort through a shell), not a sanitizer's report."""
    assert rc > 0 and rc != 134, f"exit {rc}\n{log[-4000:]}"
    assert "No space left on device" in log, log[-4000:]
    assert f"state {state_dir}" in log, log[-4000:]
    for bad in ("Assertion", "Sanitizer", "runtime error"):
        assert bad not in log, log[-4000:]


# None: the default budget ([state] cache.bytes = 1 GiB, 64 MiB memtables: a
# WAL append fails first); 16 MiB: 1 MiB memtables, flushed as the disk fills.
@pytest.mark.parametrize("cache_bytes", [None, 16 << 20], ids=["default-cache", "16MiB-cache"])
def test_full_disk_stops_with_an_error_and_the_state_survives(small_disk, cache_bytes):
    workdir, disk = small_disk
    state_dir = os.path.join(disk, "state")
    extra = "[state]\ncheckpoint.interval.ms = 100\n"
    if cache_bytes:
        extra += f"cache.bytes = {cache_bytes}\n"
    broker = Broker(partitions=1)
    eddy = Eddy(broker, workdir, extra=extra, state_dir=state_dir)
    try:
        n = gen(broker, "--events", 2000, *GEN)
        eddy.start().wait_consumed(n)
        eddy.wait_caught_up()
        assert stored_offset(state_dir, "clicks") > 0

        filler = fill(disk, "filler")
        # New users keep every checkpoint writing fresh values. How much it
        # takes to hit the full disk depends on what RocksDB had preallocated
        # (its log) and on when a memtable flush falls due, so write in rounds.
        rc = None
        for round_ in range(10):
            gen(broker, "--events", 8000, "--users", 4000, "--no-budgets", *GEN,
                "--seed", 100 + round_)
            try:
                rc = eddy.proc.wait(timeout=30)
                break
            except subprocess.TimeoutExpired:
                pass
        assert rc is not None, "eddy kept running on a full disk: " + eddy.log_text()[-4000:]
        eddy.log.close()
        assert_stopped_cleanly(rc, eddy.log_text(), state_dir)

        # Full again (closing the WAL gave back what its failed append took):
        # opening the state (RocksDB replays its WAL into a table) or the
        # first commit fails, again with an error rather than an abort.
        filler2 = fill(disk, "filler2")
        r = subprocess.run([EDDY, "run", "-c", eddy.config], capture_output=True, text=True,
                           timeout=180)
        assert_stopped_cleanly(r.returncode, r.stdout + r.stderr, state_dir)

        os.remove(filler)
        os.remove(filler2)
        # `eddy state` reads it, and it holds offsets from before the failure
        assert stored_offset(state_dir, "clicks") > 0
        exported = state_cli("export", "-d", state_dir).splitlines()
        assert any('"kind":"user"' in line.replace(" ", "") for line in exported)
        # and eddy resumes from it and stores everything once there is room
        # (in a group of its own, not to wait out the failed runs' sessions:
        # where to start comes from the state anyway)
        eddy.start(env={"EDDY_KAFKA_GROUP_ID": "eddy-resumed"})
        eddy.wait_caught_up()
        assert eddy.stop() == 0
        assert stored_offset(state_dir, "clicks") == end_offsets(broker, "clicks")[0]
    finally:
        if eddy.proc and eddy.proc.poll() is None:
            eddy.proc.kill()
            eddy.proc.wait()
        broker.stop()
