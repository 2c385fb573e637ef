"""The visualization node and its core: frames joined with their results by stamp in bounded
memory, drawn, and published as a plain rgb8 Image on mtl_split/annotated; off unless asked."""
from __future__ import annotations

import numpy as np
import pytest

from mtl_split_core.annotate import PALETTE, Annotations, annotate, classification_line
from mtl_split_core.dense import UNLABELLED, Boxes
from mtl_split_core.pairing import StampPairing
from mtl_split_ros.launch_plan import LaunchArgs, plan
from mtl_split_ros.ros2_launch import node_actions

import helpers


def test_pairing_joins_parts_and_stays_bounded():
    pairing = StampPairing({"image", "results"}, max_pending=3, timeout_s=1.0)
    assert pairing.add((1, "cam"), "image", "img1", now=0.0) == (None, [])
    done, evicted = pairing.add((1, "cam"), "results", "res1", now=0.1)
    assert done.parts == {"image": "img1", "results": "res1"} and not evicted and len(pairing) == 0
    for k in range(2, 6):  # results that never come: the oldest frames go first
        done, evicted = pairing.add((k, "cam"), "image", k, now=float(k))
    assert len(pairing) == 3 and [e.key for e in evicted] == [(2, "cam")]
    assert [e.key for e in pairing.expire(now=4.5)] == [(3, "cam")]  # waited 1.5 s > 1 s
    assert [e.key for e in pairing.clear()] == [(4, "cam"), (5, "cam")]
    with pytest.raises(ValueError):
        StampPairing({"image"}, max_pending=0, timeout_s=1.0)


def test_annotate_draws_text_masks_boxes_and_depth_and_shrinks_wide_frames():
    rgb = np.full((120, 200, 3), 90, np.uint8)
    plain = annotate(rgb, Annotations())
    assert np.array_equal(plain, rgb) and plain is not rgb
    text = annotate(rgb, Annotations(lines=[classification_line("shape", "cube", 0.93)]))
    assert (text[:30] != 90).any() and (text[60:] == 90).all()  # text top-left, nothing else
    mask = np.full((120, 200), UNLABELLED, np.uint8)
    mask[60:, 100:] = 3
    drawn = annotate(rgb, Annotations(masks=[mask]))
    assert (drawn[:60] == 90).all()  # unlabelled pixels untouched
    expected = (90 * 0.55 + PALETTE[3] * 0.45).astype(np.uint8)
    assert np.array_equal(drawn[100, 150], expected)
    boxes = Boxes([[20, 40, 80, 100], [0, 0, 5, 5]], [1, 2], [0.9, 0.05])
    framed = annotate(rgb, Annotations(boxes=[(boxes, ["a", "b", "c"])]))
    assert tuple(framed[70, 20]) == tuple(PALETTE[1]) and (framed[2, 2] == 90).all()  # the 0.05 box is not drawn
    depth = np.linspace(1, 5, 120 * 200, dtype=np.float32).reshape(120, 200)
    inset = annotate(rgb, Annotations(depth=depth))
    assert (inset[-10:, -30:] != 90).any() and (inset[:40, :100] == 90).all()
    wide = annotate(np.zeros((1080, 1920, 3), np.uint8), Annotations(lines=["x: y 1.00"]), max_width=640)
    assert wide.shape == (360, 640, 3)


def test_viz_is_off_by_default_and_a_launch_argument_turns_it_on(tmp_path):
    assert [n.key for n in plan("pipeline", LaunchArgs(bundle="b"))] == ["edge", "server"]
    nodes = plan("pipeline", LaunchArgs(bundle="b", camera_topic="/front/image", namespace="/r", viz=True))
    viz = nodes[-1]
    assert [n.key for n in nodes] == ["edge", "server", "viz"] and viz.namespace == "/r"
    assert viz.parameters == {"bundle": "b", "image_topics": ["/front/image"]}
    assert viz.command("python")[:3] == ["python", "-m", "mtl_split_viz"]
    assert [n.key for n in plan("edge", LaunchArgs(bundle="b", viz=True))] == ["edge", "viz"]
    assert [n.key for n in plan("server", LaunchArgs(bundle="b", viz=True))] == ["server"]
    assert [n.key for n in plan("viz", LaunchArgs(bundle="b"))] == ["viz"]
    # ros2 launch: the same through the launch argument (a string there).
    assert [a["executable"] for a in node_actions("pipeline", {"bundle": "b"})] == ["edge_node", "server_node"]
    assert [a["executable"] for a in node_actions("pipeline", {"bundle": "b", "viz": "true"})][-1] == "viz_node"


@pytest.mark.ros
def test_viz_node_publishes_each_frame_with_its_results_drawn(launcher, ros, tiny_bundle):
    from mtl_split.msg import MultiTaskResult
    from rclpy.qos import QoSProfile, ReliabilityPolicy
    from sensor_msgs.msg import Image

    for node in plan("pipeline", LaunchArgs(bundle=str(tiny_bundle), camera_topic="/viz_cam/image_raw",
                                           namespace="/viz_robot", viz=True)):
        launcher.add(node)
    reliable = QoSProfile(depth=50, reliability=ReliabilityPolicy.RELIABLE)
    annotated = ros.collect(Image, "/viz_robot/mtl_split/annotated", reliable)
    results = ros.collect(MultiTaskResult, "/viz_robot/mtl_split/results", reliable)
    pub = ros.node.create_publisher(Image, "/viz_cam/image_raw", reliable)
    frames = helpers.frames(4, seed=3)
    sent: dict = {}  # stamp key -> the frame

    def send() -> None:  # until the nodes are up and frames come back drawn (early ones may be lost)
        if pub.get_subscription_count() >= 2:
            frame = frames[len(sent) % len(frames)]
            msg = helpers.image_msg(frame, "viz_cam")
            pub.publish(msg)
            sent[helpers.key(msg.header)] = frame

    ros.wait_for(lambda: len(annotated) >= 4 and {helpers.key(a.header) for a in annotated} <=
                 {helpers.key(r.header) for r in results}, 60, "annotated images and results", tick=send,
                 tick_every=0.3)
    by_stamp = {helpers.key(r.header): r for r in results}
    for msg in annotated:
        k = helpers.key(msg.header)
        source = sent[k]
        assert msg.encoding == "rgb8" and (msg.width, msg.height) == (40, 30) and msg.step == 120
        got = np.frombuffer(bytes(msg.data), np.uint8).reshape(30, 40, 3)
        lines = [classification_line(p.task, p.class_name, p.score) for p in by_stamp[k].predictions]
        assert len(lines) == 2
        assert np.array_equal(got, annotate(source, Annotations(lines=lines)))  # exactly the core's drawing
