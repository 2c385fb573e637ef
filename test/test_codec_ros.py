"""SharedFeatures built by the codec cross real DDS between two processes and decode to
the identical tensor, for every dtype/codec."""
from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from codec_cases import CASES, case_tensor
from mtl_split_core import codec

pytestmark = pytest.mark.ros


@pytest.fixture
def ros_context():
    import rclpy

    ctx = rclpy.Context()
    rclpy.init(context=ctx)
    yield ctx
    rclpy.shutdown(context=ctx)


def test_features_cross_processes_intact(ros_context):
    import rclpy
    import rclpy.executors
    from rclpy.qos import QoSProfile, ReliabilityPolicy

    from mtl_split.msg import SharedFeatures

    topic = "/codec_test/features"
    node = rclpy.create_node("codec_case_subscriber", context=ros_context)
    got: dict[int, SharedFeatures] = {}
    node.create_subscription(SharedFeatures, topic, lambda m: got.setdefault(int(m.header.frame_id), m),
                             QoSProfile(depth=len(CASES), reliability=ReliabilityPolicy.RELIABLE))
    script = Path(__file__).parent / "ros_scripts" / "publish_features.py"
    executor = rclpy.executors.SingleThreadedExecutor(context=ros_context)
    executor.add_node(node)
    proc = subprocess.Popen([sys.executable, str(script), topic])
    try:
        deadline = time.monotonic() + 40
        while len(got) < len(CASES) and time.monotonic() < deadline:
            executor.spin_once(timeout_sec=0.1)
    finally:
        proc.wait(timeout=30)
        executor.shutdown()
        node.destroy_node()
    assert proc.returncode == 0
    assert sorted(got) == list(range(len(CASES))), f"missing cases {set(range(len(CASES))) - set(got)}"
    for i, (dtype, c, per_channel) in enumerate(CASES):
        received = codec.decode(codec.from_message(got[i]))
        local = codec.decode(codec.encode(case_tensor(i), dtype, c, per_channel=per_channel))
        assert received.tobytes() == local.tobytes(), (dtype, c, per_channel)
        if dtype == "float32":
            assert received.tobytes() == case_tensor(i).tobytes()
