"""Bounded bookkeeping and the server's fleet membership, without ROS (fake clock): which
robots are served, when one is let go, when a silent one is looked at again."""
from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from mtl_split_core import codec
from mtl_split_core.bounded import BoundedTable
from mtl_split_core.errors import BundleError, CodecError
from mtl_split_core.shards import parse_shard, shard_of
from mtl_split_core.sources import LEFT, SILENT, Membership


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_bounded_table_holds_at_most_max_size_and_forgets_by_age():
    evicted = []
    t = BoundedTable(3, max_age_s=1.0, on_evict=lambda k, v: evicted.append(k))
    for i in range(10):
        t.put(f"k{i}", i, now=0.1 * i)
    assert len(t) == 3 and list(t) == ["k7", "k8", "k9"] and t.evicted == 7 and evicted[:2] == ["k0", "k1"]
    assert t.get("k7", now=0.95) == 7  # touched: now the most recent
    assert t.get("k8", now=1.92) is None and list(t) == ["k7"]  # k8, k9 aged out; k7 touched at 0.95
    assert t.forget(lambda k, v: v == 7) == [7] and len(t) == 0
    zero = BoundedTable(5, max_age_s=0.0)
    zero.put("x", 1, now=1.0)
    assert len(zero) == 0  # window 0: nothing is kept past the moment it is heard
    with pytest.raises(ValueError):
        BoundedTable(0)


def fleet(clock: Clock, shard: str = "0/1", timeout: float = 10.0, max_robots: int = 100) -> Membership:
    return Membership(parse_shard(shard), timeout, max_robots, clock=clock)


def take_on(m: Membership, changes, pinned=()) -> None:
    for topic in changes.serve:
        m.take_on(topic, topic in pinned)
    for topic, _ in changes.release:
        m.let_go(topic)


def test_robots_are_taken_on_and_let_go_when_they_leave_the_graph():
    clock, a, b = Clock(), "/a/mtl_split/features", "/b/mtl_split/features"
    m = fleet(clock)
    changes = m.update({a: frozenset({b"1"}), b: frozenset({b"2"})}, [], discover=True)
    assert changes.serve == [a, b]
    take_on(m, changes)
    assert m.update({a: frozenset({b"1"}), b: frozenset({b"2"})}, [], discover=True).serve == []
    clock.now = 1.0
    changes = m.update({a: frozenset({b"1"})}, [], discover=True)  # b's publisher left
    assert changes.release == [(b, LEFT)]
    take_on(m, changes)
    assert set(m.robots) == {a}
    assert m.update({a: frozenset({b"1"})}, [], discover=False).serve == []  # discovery off: nothing new


def test_a_silent_robot_is_let_go_and_looked_at_again():
    clock, a = Clock(), "/a/mtl_split/features"
    m = fleet(clock, timeout=10.0)
    graph = {a: frozenset({b"1"})}
    take_on(m, m.update(graph, [], True))
    m.heard(m.robots[a], 5.0)
    clock.now = 14.9
    assert m.update(graph, [], True).release == []
    clock.now = 15.0  # 10 s after its last frame
    changes = m.update(graph, [], True)
    assert changes.release == [(a, SILENT)] and changes.serve == []
    take_on(m, changes)
    clock.now = 20.0
    assert m.update(graph, [], True).serve == []  # still dormant: same publisher, not yet timeout_s on
    assert m.update({a: frozenset({b"1", b"2"})}, [], True).serve == [a]  # a new publisher: look again
    clock.now = 25.0
    assert m.update(graph, [], True).serve == [a]  # and anyway after another timeout_s


def test_listed_robots_keep_their_subscription_and_release_only_their_streams():
    clock, a = Clock(), "/a/mtl_split/features"
    m = fleet(clock, timeout=2.0)
    changes = m.update({}, [a], discover=False)  # listed: served before any publisher shows
    assert changes.serve == [a]
    take_on(m, changes, pinned=[a])
    clock.now = 3.0
    changes = m.update({}, [a], False)
    assert changes.release == [] and changes.idle == [(a, LEFT)]
    assert m.update({}, [a], False).idle == []  # released once
    m.heard(m.robots[a], 4.0)
    clock.now = 6.5
    assert m.update({a: frozenset({b"1"})}, [a], False).idle == [(a, SILENT)]


def test_shards_and_max_robots_bound_what_one_server_takes_on():
    clock = Clock()
    topics = [f"/robot_{i}/mtl_split/features" for i in range(40)]
    graph = {t: frozenset({t.encode()}) for t in topics}
    servers = [fleet(clock, f"{i}/3") for i in range(3)]
    served = [set(s.update(graph, [], True).serve) for s in servers]
    assert set().union(*served) == set(topics) and sum(map(len, served)) == len(topics)  # each exactly once
    pinned = topics[0]
    other = next(s for s in servers if pinned not in served[servers.index(s)])
    assert pinned in other.update({}, [pinned], False).other_shard
    small = fleet(clock, max_robots=5)
    changes = small.update(graph, [], True)
    assert len(changes.serve) == 5 and len(changes.refused) == 35
    take_on(small, changes)
    assert len(small.update(graph, [], True).serve) == 0 and shard_of("/robot_0", 1) == 0


def test_a_batch_decodes_like_one_frame_at_a_time_and_refuses_each_bad_one_alone(tiny_bundle):
    """ServerModel.decode_batch (the server's path) against decode (offline): equal features;
    a bad payload, another model, a NaN payload each refused with its own error."""
    from mtl_split.msg import SharedFeatures  # noqa: F401 - skips cleanly without the built messages
    from mtl_split_core.runtime import ServerModel

    server = ServerModel(tiny_bundle)
    shape = server.manifest.features.shape
    rng = np.random.default_rng(3)

    def message(x, dtype, c="none", model=server.manifest.model_id, data=None):
        enc = codec.encode(x, dtype, c)
        msg = codec.to_message(enc if data is None else dataclasses.replace(enc, data=data), SharedFeatures())
        msg.model_fingerprint = np.frombuffer(codec.fingerprint(model), np.uint8)
        return msg
    xs = [rng.standard_normal(shape).astype(np.float32) * 3 for _ in range(5)]
    msgs = [message(xs[0], "float32"), message(xs[1], "int8", "zstd"), message(xs[2], "float16"),
            message(xs[3], "uint8", "lz4"), message(xs[4], "int8", model="mtl-other")]
    truncated = message(xs[0], "float32")
    truncated.data = bytes(truncated.data)[:-8]
    nan = message(xs[0], "float32", data=np.full(shape, np.nan, np.float32).tobytes())
    features, errors = server.decode_batch(msgs + [truncated, nan], [None] * 7)
    assert [type(e) for e in errors] == [type(None)] * 4 + [BundleError, CodecError, CodecError]
    expected = np.stack([server.decode(codec.from_message(m)) for m in msgs[:4]])
    np.testing.assert_array_equal(features, expected)
    assert "NaN" in str(errors[6])
