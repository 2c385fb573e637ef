"""Frame-loss accounting from sequence numbers and DDS sample-lost counts (ROS-free): every
frame a publisher sent after the edge knew of it is counted once, with its reason, whatever
order the executor delivers the message and the lost event in."""
from __future__ import annotations

from mtl_split_core.frame_losses import GAP_SETTLE_S, MAX_PUBLISHERS, NEW_PUBLISHER, REPLACED, TRANSPORT, StreamLosses

A, B = b"pub-a", b"pub-b"
LATER = GAP_SETTLE_S + 0.01


def total(*counts: dict[str, int]) -> dict[str, int]:
    out: dict[str, int] = {}
    for c in counts:
        for k, v in c.items():
            out[k] = out.get(k, 0) + v
    return out


def test_gaps_are_replaced_frames_unless_dds_reported_them_lost():
    s = StreamLosses()
    s.settle([A])
    got = [s.on_message(1, A, 0.0), s.on_message(4, A, 0.1)]  # 2 and 3 missing
    got.append(s.on_lost(1, 0.2))  # DDS: one of them never arrived whole
    got.append(s.flush(0.1 + LATER))
    assert total(*got) == {TRANSPORT: 1, REPLACED: 1}


def test_a_lost_event_after_the_message_that_shows_the_gap_is_not_counted_twice():
    s = StreamLosses()
    s.settle([])
    first = s.on_message(10, A, 0.0)  # a new publisher: 9 frames before it
    gap = s.on_message(13, A, 0.05)  # 11, 12 missing
    lost = s.on_lost(2, 0.06)  # the executor ran the message callback first
    assert total(first, gap, lost, s.flush(1.0)) == {NEW_PUBLISHER: 9, TRANSPORT: 2}
    # 9 + 2 frames unseen, the 2 reported lost are the gap just seen: 11 in all, each counted once.


def test_a_camera_that_was_there_first_is_not_blamed_for_its_old_frames():
    s = StreamLosses()
    assert s.on_message(5000, A, 0.0) == {}  # heard before discovery settled
    s.settle([B])  # B was in the graph, silent
    assert total(s.on_message(700, B, 1.0), s.flush(9.0)) == {}
    assert total(s.on_message(3, b"pub-c", 2.0), s.flush(9.0)) == {NEW_PUBLISHER: 2}  # a camera started later


def test_losses_dds_reported_before_a_first_frame_are_not_taken_for_later_replacements():
    s = StreamLosses()
    s.on_lost(3, 0.0)  # frames 1-3 of a camera that was there first, lost in transport
    s.on_message(4, A, 0.0)
    s.settle([A])
    counts = total(s.on_message(6, A, 0.1), s.flush(5.0))  # frame 5 replaced
    assert counts == {REPLACED: 1}


def test_only_dds_knows_about_frames_of_which_none_arrived():
    s = StreamLosses()
    s.settle([])
    assert s.on_lost(28, 0.0) == {TRANSPORT: 28}  # 30 sent, none whole: DDS still saw 28 go missing


def test_publishers_are_forgotten_oldest_first():
    s = StreamLosses()
    for i in range(MAX_PUBLISHERS + 10):
        s.on_message(1, b"gid-%d" % i, 0.0)
    assert len(s._last) == MAX_PUBLISHERS


def test_without_lost_events_gaps_count_at_once():
    s = StreamLosses(gap_settle_s=0.0)
    s.on_message(1, A, 0.0)
    assert s.on_message(5, A, 0.0) == {REPLACED: 3}
