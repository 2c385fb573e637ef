"""The batch scheduler over time and arrival orders, on a fake clock (no sleeping, no ROS)."""
from __future__ import annotations

from dataclasses import dataclass, field

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mtl_split_core.batching import BatchPolicy, BatchScheduler

WAIT = 0.010


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def edge(cameras: list[str], clock: FakeClock, wait: float = WAIT) -> BatchScheduler:
    return BatchScheduler(BatchPolicy(max_batch=len(cameras), max_wait_s=wait, newest_only=True),
                          expected=cameras, clock=clock)


def server(clock: FakeClock, max_batch: int = 8, **policy) -> BatchScheduler:
    return BatchScheduler(BatchPolicy(max_batch=max_batch, max_wait_s=WAIT, **policy), clock=clock)


def warm(s: BatchScheduler, clock: FakeClock, streams: list[tuple[str, str]], until: float) -> None:
    """Each stream sends one frame (so all are active), then the clock moves on to `until`."""
    for stream in streams:
        s.add(("warm", stream), stream, stream[0])
    clock.now = until
    s.pop_ready()


def test_one_frame_batches_never_wait():
    clock = FakeClock()
    s = BatchScheduler(BatchPolicy(), clock=clock)
    assert s.add("f1", "cam") == []
    assert s.pop_ready() == [["f1"]] and s.deadline is None and len(s) == 0


def test_edge_waits_for_every_camera_then_runs_at_once():
    clock = FakeClock()
    s = edge(["a", "b", "c"], clock)
    s.add("a1", "a")
    clock.now = 0.004
    s.add("b1", "b")
    assert s.pop_ready() == [] and s.deadline == pytest.approx(WAIT)
    clock.now = 0.006
    s.add("c1", "c")
    assert s.pop_ready() == [["a1", "b1", "c1"]] and s.deadline is None


def test_edge_deadline_runs_what_came():
    clock = FakeClock()
    s = edge(["a", "b"], clock)
    s.add("a1", "a")
    clock.now = WAIT - 1e-6
    assert s.pop_ready() == []
    clock.now = WAIT
    assert s.pop_ready() == [["a1"]]


def test_replacement_is_a_drop_and_keeps_the_deadline():
    """A fast camera replaces its waiting frame (returned: the node counts it dropped), but
    never postpones the batch: its first frame started the wait."""
    clock = FakeClock()
    s = edge(["fast", "dead"], clock)
    s.add("f0", "fast")
    dropped = []
    for i in range(1, 10):
        clock.now = i * 0.001
        dropped += s.add(f"f{i}", "fast")
        assert s.pop_ready() == []
    assert dropped == [f"f{i}" for i in range(9)]
    clock.now = WAIT
    assert s.pop_ready() == [["f9"]]


def test_server_single_stream_never_waits():
    clock = FakeClock()
    s = server(clock)
    for i in range(3):
        clock.now = i * 0.033
        s.add(i, ("/r/f", "cam"), "/r/f")
        assert s.pop_ready() == [[i]]


def test_server_waits_for_active_streams_only_within_the_window():
    clock = FakeClock()
    s = server(clock, active_window_s=1.0)
    a, b = ("/a/f", "cam"), ("/b/f", "cam")
    s.add("a0", a, "/a/f")
    assert s.pop_ready() == [["a0"]]  # b never heard: nothing to wait for
    clock.now = 0.1
    s.add("b0", b, "/b/f")
    assert s.pop_ready() == [] and s.active_streams == 2  # a is active: wait for it
    clock.now = 0.105
    s.add("a1", a, "/a/f")
    assert s.pop_ready() == [["b0", "a1"]]
    clock.now = 1.2  # b silent for more than the window: a stops waiting for it
    s.add("a2", a, "/a/f")
    assert s.pop_ready() == [["a2"]] and s.active_streams == 1


def test_second_frame_of_a_stream_runs_the_batch_without_it():
    clock = FakeClock()
    s = server(clock)
    a, b = ("/a/f", "cam"), ("/b/f", "cam")
    warm(s, clock, [a, b], until=0.5)
    s.add("a1", a, "/a/f")
    assert s.pop_ready() == []
    clock.now = 0.501
    s.add("a2", a, "/a/f")
    assert s.pop_ready() == [["a1"]] and len(s) == 1
    assert s.deadline == pytest.approx(0.501 + WAIT)  # a2 waits from its own arrival


def test_max_batch_caps_a_batch_of_many_streams():
    clock = FakeClock()
    s = server(clock, max_batch=2)
    streams = [(f"/r{i}/f", "cam") for i in range(3)]
    warm(s, clock, streams, until=0.5)
    s.add("x0", streams[0], streams[0][0])
    assert s.pop_ready() == []
    s.add("x1", streams[1], streams[1][0])
    assert s.pop_ready() == [["x0", "x1"]]


def test_several_cameras_of_one_robot_share_a_batch():
    clock = FakeClock()
    s = server(clock)
    left, right = ("/r/f", "left"), ("/r/f", "right")
    warm(s, clock, [left, right], until=0.5)
    s.add("l1", left, "/r/f")
    assert s.pop_ready() == []
    s.add("r1", right, "/r/f")
    assert s.pop_ready() == [["l1", "r1"]]


def test_a_flooding_source_keeps_a_bounded_queue_and_its_turn():
    """A consumer busy for a while (frames pile up): the flooder's queue stays bounded and
    the next batch still holds the quiet robot's frame."""
    clock = FakeClock()
    s = server(clock, max_batch=4, queue_per_source=4)
    dropped = []
    for i in range(100):
        dropped += s.add(f"flood{i}", ("/bad/f", f"cam{i}"), "/bad/f")
    s.add("good", ("/good/f", "cam"), "/good/f")
    assert dropped == [f"flood{i}" for i in range(96)] and len(s) == 5
    batches = s.pop_ready()
    assert len(batches) == 1 and "good" in batches[0] and len(batches[0]) == 4
    clock.now = WAIT
    batches += s.pop_ready()
    assert sorted(x for b in batches for x in b) == sorted(["good"] + [f"flood{i}" for i in range(96, 100)])


def test_round_robin_serves_the_least_recently_served_source_first():
    clock = FakeClock()
    s = server(clock, max_batch=2, queue_per_source=8)
    for source in ("/a/f", "/b/f", "/c/f"):
        for i in range(3):
            s.add(f"{source[1]}{i}", (source, f"cam{i}"), source)
    taken = [s.take() for _ in range(4)]
    assert taken[0] == ["a0", "b0"]
    assert taken[1] == ["c0", "a1"]  # c was not served yet, so it leads
    assert taken[2] == ["b1", "c1"]
    assert taken[3] == ["a2", "b2"]


def test_stream_bookkeeping_is_bounded_in_size_and_age():
    clock = FakeClock()
    s = server(clock, max_batch=1, max_streams=16, active_window_s=1.0)
    for i in range(10_000):  # a hostile publisher inventing a frame_id per frame
        s.add(i, ("/x/f", f"id{i}"), "/x/f")
        s.pop_ready()
    assert s.active_streams == 16
    clock.now = 1.0
    assert s.active_streams == 0


def test_forget_releases_a_departed_source():
    clock = FakeClock()
    s = server(clock)
    a, b = ("/a/f", "cam"), ("/b/f", "cam")
    warm(s, clock, [a, b], until=0.1)
    s.add("b1", b, "/b/f")
    assert s.pop_ready() == []  # waits for a
    assert s.forget("/a/f") == [] and s.active_streams == 1
    assert s.pop_ready() == [["b1"]]
    s.add("b2", b, "/b/f")
    s.pop_ready()
    clock.now = 0.2
    s.add("a1", a, "/a/f")
    assert s.forget("/a/f") == ["a1"] and len(s) == 0 and s.deadline is None


def test_clear_returns_what_waited():
    clock = FakeClock()
    s = edge(["a", "b"], clock)
    s.add("a0", "a")
    assert s.clear() == ["a0"] and s.deadline is None and s.pop_ready() == []


def test_policy_refuses_nonsense():
    for bad in (dict(max_batch=0), dict(max_wait_s=-1), dict(queue_per_source=-1), dict(max_streams=0)):
        with pytest.raises(ValueError):
            BatchPolicy(**bad)


# --- arrival orders: the invariants, and equality with the nodes' previous batchers ---------

@dataclass
class Run:
    """Drive a scheduler like a node does: tick after every arrival and at every deadline."""

    scheduler: BatchScheduler
    clock: FakeClock
    batches: list[tuple[float, list]] = field(default_factory=list)
    dropped: list = field(default_factory=list)

    def advance(self, to: float) -> None:
        while (d := self.scheduler.deadline) is not None and d <= to:
            self.clock.now = max(self.clock.now, d)
            self._tick()
        self.clock.now = to

    def add(self, item, stream, source=None) -> None:
        self.dropped += self.scheduler.add(item, stream, source)
        self._tick()

    def _tick(self) -> None:
        self.batches += [(self.clock.now, b) for b in self.scheduler.pop_ready()]


class OldEdgeBatcher:
    """The edge node's batching before the scheduler existed: newest frame per camera, one
    timer started by the first waiting frame."""

    def __init__(self, n_cameras: int, wait: float) -> None:
        self.n, self.wait = n_cameras, wait
        self.pending: dict = {}
        self.deadline: float | None = None
        self.batches: list[list] = []
        self.dropped = 0

    def add(self, item, topic, now) -> None:
        if topic in self.pending:
            self.dropped += 1
        elif not self.pending:
            self.deadline = now + self.wait
        self.pending[topic] = item
        if len(self.pending) == self.n:
            self.flush()

    def flush(self) -> None:
        self.deadline = None
        if self.pending:
            self.batches.append(list(self.pending.values()))
        self.pending = {}


class OldServerBatcher:
    """The server node's batching before the scheduler: pending list, 1 s active window."""

    def __init__(self, max_batch: int, wait: float) -> None:
        self.max_batch, self.wait = max_batch, wait
        self.pending: list = []
        self.last: dict = {}
        self.deadline: float | None = None
        self.batches: list[list] = []

    def add(self, item, stream, now) -> None:
        self.last[stream] = now
        if any(s == stream for s, _ in self.pending):
            self.flush()
        self.pending.append((stream, item))
        active = sum(1 for t in self.last.values() if now - t < 1.0)
        if len(self.pending) >= min(active, self.max_batch):
            self.flush()
        elif len(self.pending) == 1:
            self.deadline = now + self.wait

    def flush(self) -> None:
        self.deadline = None
        if self.pending:
            self.batches.append([i for _, i in self.pending])
        self.pending = []


def _arrivals(n_streams: int):
    gap = st.floats(min_value=0.0, max_value=0.03, allow_nan=False)
    return st.lists(st.tuples(gap, st.integers(0, n_streams - 1)), min_size=1, max_size=60)


def _drive_old(old, arrivals, add) -> None:
    now = 0.0
    for i, (gap, k) in enumerate(arrivals):
        now += gap
        if old.deadline is not None and old.deadline <= now:
            old.flush()
        add(old, i, k, now)
    old.flush()


@settings(max_examples=200, deadline=None)
@given(cameras=st.integers(1, 4), arrivals=_arrivals(4))
def test_edge_arrival_orders_match_the_old_batcher(cameras, arrivals):
    arrivals = [(gap, k % cameras) for gap, k in arrivals]
    clock = FakeClock()
    run = Run(edge([f"c{i}" for i in range(cameras)], clock), clock)
    for i, (gap, k) in enumerate(arrivals):
        run.advance(clock.now + gap)
        run.add(i, f"c{k}")
    run.batches += [(clock.now, run.scheduler.take())] if len(run.scheduler) else []
    old = OldEdgeBatcher(cameras, WAIT)
    _drive_old(old, arrivals, lambda o, i, k, now: o.add(i, f"c{k}", now))
    assert [sorted(b) for _, b in run.batches] == [sorted(b) for b in old.batches]
    assert len(run.dropped) == old.dropped


@settings(max_examples=200, deadline=None)
@given(max_batch=st.integers(1, 5), arrivals=_arrivals(6))
def test_server_arrival_orders_match_the_old_batcher(max_batch, arrivals):
    clock = FakeClock()
    run = Run(server(clock, max_batch=max_batch), clock)
    stream = {k: (f"/r{k // 2}/f", f"cam{k % 2}") for k in range(6)}  # 3 robots x 2 cameras
    for i, (gap, k) in enumerate(arrivals):
        run.advance(clock.now + gap)
        run.add(i, stream[k], stream[k][0])
    run.batches += [(clock.now, run.scheduler.take())] if len(run.scheduler) else []
    old = OldServerBatcher(max_batch, WAIT)
    _drive_old(old, arrivals, lambda o, i, k, now: o.add(i, stream[k], now))
    assert [sorted(b) for _, b in run.batches] == [sorted(b) for b in old.batches]
    assert run.dropped == []


@settings(max_examples=200, deadline=None)
@given(max_batch=st.integers(1, 5), newest_only=st.booleans(), arrivals=_arrivals(6))
def test_invariants_over_arrival_orders(max_batch, newest_only, arrivals):
    """Nothing lost (each frame runs once or is returned dropped), no batch over max_batch or
    with two frames of a stream, frames of a stream run in order, none waits past max_wait."""
    clock = FakeClock()
    run = Run(server(clock, max_batch=max_batch, newest_only=newest_only), clock)
    arrived: dict[int, tuple[float, tuple]] = {}
    for i, (gap, k) in enumerate(arrivals):
        run.advance(clock.now + gap)
        arrived[i] = (clock.now, (f"/r{k % 3}/f", f"cam{k}"))
        run.add(i, arrived[i][1], arrived[i][1][0])
    run.advance(clock.now + 2 * WAIT)
    ran = [i for _, b in run.batches for i in b]
    assert sorted(ran + run.dropped) == sorted(arrived) and len(set(ran)) == len(ran)
    for at, batch in run.batches:
        assert 1 <= len(batch) <= max_batch
        assert len({arrived[i][1] for i in batch}) == len(batch)
        assert all(at - arrived[i][0] <= WAIT + 1e-9 for i in batch)
    for s in {v[1] for v in arrived.values()}:
        order = [i for i in ran if arrived[i][1] == s]
        assert order == sorted(order)
