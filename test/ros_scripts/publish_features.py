"""Publish one SharedFeatures per (dtype, codec, per_channel) case, built by the codec, then
the frames of an entropy-coded clip with temporal coding (frame_id "clip/<i>").

Run as a separate process by test_codec_ros.py: the tensors and tables are regenerated on
both sides, so the subscriber can check it received the identical bytes and tensors.
"""
import sys
import time

import rclpy
from rclpy.qos import QoSProfile, ReliabilityPolicy, HistoryPolicy

from mtl_split.msg import SharedFeatures
from mtl_split_core import codec

sys.path.insert(0, __file__.rsplit("/", 2)[0])
from codec_cases import CASES, case_tensor, clip_encoded  # noqa: E402


def main() -> None:
    topic = sys.argv[1]
    rclpy.init()
    node = rclpy.create_node("codec_case_publisher")
    clip = clip_encoded()
    qos = QoSProfile(depth=len(CASES) + len(clip), reliability=ReliabilityPolicy.RELIABLE, history=HistoryPolicy.KEEP_LAST)
    pub = node.create_publisher(SharedFeatures, topic, qos)
    deadline = time.monotonic() + 30
    while pub.get_subscription_count() == 0 and time.monotonic() < deadline:
        rclpy.spin_once(node, timeout_sec=0.05)
    for i, (dtype, c, per_channel) in enumerate(CASES):
        msg = SharedFeatures()
        msg.header.frame_id = str(i)
        codec.to_message(codec.encode(case_tensor(i), dtype, c, per_channel=per_channel), msg)
        pub.publish(msg)
    for i, enc in enumerate(clip):
        msg = codec.to_message(enc, SharedFeatures())
        msg.header.frame_id = f"clip/{i}"
        pub.publish(msg)
    # Stay up until the subscriber has had time to take everything (reliable delivery).
    end = time.monotonic() + 5
    while time.monotonic() < end:
        rclpy.spin_once(node, timeout_sec=0.05)
    node.destroy_node()
    rclpy.shutdown()


if __name__ == "__main__":
    main()
