"""SharedFeatures built by the codec cross real DDS between two processes and decode to
the identical tensor, for every dtype/codec; entropy-coded key and delta frames arrive as
the identical bytes and decode to the identical symbols (bit-exact across processes)."""
from __future__ import annotations

import dataclasses
import sys
from pathlib import Path

import numpy as np
import pytest

from codec_cases import CASES, CLIP_SCALE, case_tensor, clip_coders, clip_encoded, clip_features
from mtl_split_core import codec
from mtl_split_core.temporal import TemporalDecoder

pytestmark = pytest.mark.ros


def test_features_cross_processes_intact(ros, launcher):
    from rclpy.qos import QoSProfile, ReliabilityPolicy

    from mtl_split.msg import SharedFeatures

    topic = "/codec_test/features"
    clip = clip_encoded()
    total = len(CASES) + len(clip)
    got = ros.collect(SharedFeatures, topic, QoSProfile(depth=total, reliability=ReliabilityPolicy.RELIABLE))
    script = Path(__file__).parent / "ros_scripts" / "publish_features.py"
    proc = launcher.run("publish_features", [sys.executable, str(script), topic])
    ros.wait_for(lambda: len(got) >= total, 40, f"{total} SharedFeatures from the publisher process")
    assert proc.wait(timeout=30) == 0, proc.log()
    by_case = {int(m.header.frame_id): m for m in got if not m.header.frame_id.startswith("clip/")}
    received_clip = [m for m in got if m.header.frame_id.startswith("clip/")]
    assert sorted(by_case) == list(range(len(CASES)))
    for i, (dtype, c, per_channel) in enumerate(CASES):
        received = codec.decode(codec.from_message(by_case[i]))
        local = codec.decode(codec.encode(case_tensor(i), dtype, c, per_channel=per_channel))
        assert received.tobytes() == local.tobytes(), (dtype, c, per_channel)
        if dtype == "float32":
            assert received.tobytes() == case_tensor(i).tobytes()

    # The clip, in publication order: same bytes as coded here, same symbols after decoding.
    assert [m.header.frame_id for m in received_clip] == [f"clip/{i}" for i in range(len(clip))]
    assert {e.frame for e in clip} == {"key", "delta"}
    decoder = TemporalDecoder(*clip_coders())
    for msg, local, x in zip(received_clip, clip, clip_features()):
        enc = codec.from_message(msg)
        assert bytes(enc.data) == local.data and (enc.frame, enc.sequence) == (local.frame, local.sequence)
        enc = dataclasses.replace(enc, scale=np.array([CLIP_SCALE], np.float32), zero_point=np.zeros(1, np.int32))
        q = decoder.symbols("clip", enc)
        np.testing.assert_array_equal(q, codec.quantize(x, "int8", scale=CLIP_SCALE, zero_point=0)[0])
