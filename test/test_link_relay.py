"""The link emulator's model (no ROS): rate, queue, delay, loss, order."""
from __future__ import annotations

import pytest

from mtl_split_bench.link_relay import Link, LinkProfile


def test_rate_queues_messages_behind_each_other():
    link = Link(LinkProfile(mbps=1.0))  # 1 Mbit/s: 1250 bytes take 10 ms
    assert link.offer(1250, 0.0) == pytest.approx(0.010)
    assert link.offer(1250, 0.0) == pytest.approx(0.020)  # waited for the first
    assert link.offer(1250, 1.0) == pytest.approx(1.010)  # idle link again


def test_full_queue_drops_on_arrival():
    link = Link(LinkProfile(mbps=1.0, max_queue_ms=15))
    arrivals = [link.offer(1250, 0.0) for _ in range(4)]  # waits 0, 10, 20 (> 15: dropped), ...
    assert arrivals[:2] == [pytest.approx(0.010), pytest.approx(0.020)] and arrivals[2] is None
    assert link.stats.queue_dropped == 2 and link.stats.delivered == 2


def test_delay_jitter_keep_order_and_loss_grows_with_size():
    link = Link(LinkProfile(delay_ms=20, jitter_ms=10), seed=1)
    arrivals = [link.offer(100, i * 0.001) for i in range(200)]
    assert arrivals == sorted(arrivals) and min(a - i * 0.001 for i, a in enumerate(arrivals)) >= 0
    small, large = Link(LinkProfile(loss=0.05), seed=2), Link(LinkProfile(loss=0.05), seed=2)
    for _ in range(2000):
        small.offer(1000, 0.0)
        large.offer(15000, 0.0)  # 10 packets
    assert 0.03 < small.stats.lost / 2000 < 0.07
    assert 0.35 < large.stats.lost / 2000 < 0.45  # 1 - 0.95**10 = 0.40


def test_bad_profiles_are_refused():
    for bad in (dict(mbps=0), dict(loss=1.0), dict(delay_ms=-1)):
        with pytest.raises(ValueError):
            LinkProfile(**bad)


def test_reliable_link_resends_instead_of_losing():
    lossy = Link(LinkProfile(mbps=10.0, delay_ms=10, loss=0.05, reliable=True), seed=3)
    clean = Link(LinkProfile(mbps=10.0, delay_ms=10), seed=3)
    late = 0
    for i in range(500):
        a, b = lossy.offer(15000, i * 1.0), clean.offer(15000, i * 1.0)  # idle link each time
        assert a is not None and a >= b - 1e-9
        late += a > b + 0.019  # at least one round trip (2 x 10 ms) later
    assert lossy.stats.lost == 0 and 0.03 < lossy.stats.retransmitted_packets / (500 * 10) < 0.07
    assert 0.3 < late / 500 < 0.5  # messages with a lost packet: 1 - 0.95**10 = 0.40
