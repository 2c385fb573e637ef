"""Flood a features topic with another model's SharedFeatures, as fast as one Python process
can, for a few seconds; print how many went out. Run by test_fleet.py (issue 11, failure 7).

    python flood_features.py TOPIC SECONDS SHAPE...
"""
import sys
import time

import numpy as np
import rclpy
from rclpy.qos import QoSProfile, ReliabilityPolicy

from mtl_split.msg import SharedFeatures
from mtl_split_core import codec


def main() -> None:
    topic, seconds, shape = sys.argv[1], float(sys.argv[2]), tuple(int(d) for d in sys.argv[3:])
    rclpy.init()
    node = rclpy.create_node("foreign_flood")
    pub = node.create_publisher(SharedFeatures, topic, QoSProfile(depth=5, reliability=ReliabilityPolicy.RELIABLE))
    msg = codec.to_message(codec.encode(np.zeros(shape, np.float32), "int8"), SharedFeatures())
    msg.model_fingerprint = np.frombuffer(codec.fingerprint("mtl-another-model"), np.uint8)
    msg.header.frame_id = "flood"
    end = time.monotonic() + 30
    while pub.get_subscription_count() == 0 and time.monotonic() < end:
        rclpy.spin_once(node, timeout_sec=0.05)
    print("flooding", flush=True)
    sent, start = 0, time.monotonic()
    while time.monotonic() - start < seconds:
        for _ in range(100):
            msg.sequence = sent % 65536
            pub.publish(msg)
            sent += 1
    print(f"sent {sent} in {time.monotonic() - start:.2f} s", flush=True)
    node.destroy_node()
    rclpy.shutdown()


if __name__ == "__main__":
    main()
