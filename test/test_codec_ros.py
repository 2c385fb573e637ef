"""SharedFeatures built by the codec cross real DDS between two processes and decode to
the identical tensor, for every dtype/codec."""
from __future__ import annotations

import sys
from pathlib import Path

import pytest

from codec_cases import CASES, case_tensor
from mtl_split_core import codec

pytestmark = pytest.mark.ros


def test_features_cross_processes_intact(ros, launcher):
    from rclpy.qos import QoSProfile, ReliabilityPolicy

    from mtl_split.msg import SharedFeatures

    topic = "/codec_test/features"
    got = ros.collect(SharedFeatures, topic, QoSProfile(depth=len(CASES), reliability=ReliabilityPolicy.RELIABLE))
    script = Path(__file__).parent / "ros_scripts" / "publish_features.py"
    proc = launcher.run("publish_features", [sys.executable, str(script), topic])
    ros.wait_for(lambda: len(got) >= len(CASES), 40, f"{len(CASES)} SharedFeatures from the publisher process")
    assert proc.wait(timeout=30) == 0, proc.log()
    by_case = {int(m.header.frame_id): m for m in got}
    assert sorted(by_case) == list(range(len(CASES)))
    for i, (dtype, c, per_channel) in enumerate(CASES):
        received = codec.decode(codec.from_message(by_case[i]))
        local = codec.decode(codec.encode(case_tensor(i), dtype, c, per_channel=per_channel))
        assert received.tobytes() == local.tobytes(), (dtype, c, per_channel)
        if dtype == "float32":
            assert received.tobytes() == case_tensor(i).tobytes()
