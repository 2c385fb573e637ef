"""A camera driver in its own process: `python -m mtl_split_bench.camera_publisher ...`.

What `mtl-split bench camera` and the live tests run beside the nodes, so that frames cross
processes the way a robot's camera driver's do. It publishes WIDTHxHEIGHT frames (rgb8 Image
or JPEG-90 CompressedImage) at --rate Hz for --seconds, each stamped with the wall clock at
publish (its results carry the stamp back: end-to-end latency on one host's clock). Frames
are serialized once and only their stamp is patched per frame, as cheap as a C++ driver.

Then it publishes a slow tail (a frame every 0.3 s) until one tail frame is answered on
--results-topic: that frame's sequence number lets the edge count every frame before it.
It writes what it sent (stamps, timing, its own CPU time) to --out as JSON.
"""
from __future__ import annotations

import argparse
import json
import struct
import time
from pathlib import Path

import numpy as np

# Sensor-like noise on the rendered scenes, so a JPEG is as large as a real camera's.
NOISE_SIGMA = 3.0
TAIL_PERIOD_S = 0.3
_STAMP = struct.Struct("<iI")  # header.stamp (sec, nanosec), right after the CDR encapsulation
_STAMP_OFFSET = 4


def scenes(width: int, height: int, count: int, seed: int = 0) -> list[np.ndarray]:
    """`count` rendered scenes as width x height RGB camera frames."""
    import cv2

    from mtl_split_tools.bags import widen

    from .frames import rendered_frames

    side = min(width, height)
    rng = np.random.default_rng(seed)
    out = []
    for scene in rendered_frames(min(side, 480), count):
        frame, _ = widen(cv2.resize(scene, (side, side), interpolation=cv2.INTER_LINEAR), {}, width, height)
        noise = rng.normal(0, NOISE_SIGMA, frame.shape)
        out.append(np.clip(frame + noise, 0, 255).astype(np.uint8))
    return out


def serialized(width: int, height: int, fmt: str, count: int) -> tuple[list[bytearray], str]:
    """`count` distinct frames as CDR (rgb8 Image or JPEG-90 CompressedImage), and the type."""
    from mtl_split_tools.bags import COMPRESSED, IMAGE, TYPESTORE, image_message

    msgtype = COMPRESSED if fmt == "jpeg" else IMAGE
    return [bytearray(TYPESTORE.serialize_cdr(image_message(f, 0, "camera", fmt == "jpeg"), msgtype))
            for f in scenes(width, height, count)], msgtype


class Camera:
    def __init__(self, topic: str, results_topic: str, frames: list[bytearray], msgtype: str) -> None:
        import rclpy
        from rclpy.qos import QoSProfile, ReliabilityPolicy
        from sensor_msgs.msg import CompressedImage, Image

        from mtl_split.msg import MultiTaskResult
        from mtl_split_core.camera_messages import COMPRESSED
        from mtl_split_core.stamps import to_ns

        rclpy.init()
        self.node = rclpy.create_node("bench_camera")
        # Reliable depth 1: matches best-effort and reliable subscriptions alike.
        self.pub = self.node.create_publisher(CompressedImage if msgtype == COMPRESSED else Image, topic,
                                              QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE))
        self.answered: set[int] = set()
        self.node.create_subscription(MultiTaskResult, results_topic,
                                      lambda m: self.answered.add(to_ns(m.header.stamp)),
                                      QoSProfile(depth=100, reliability=ReliabilityPolicy.RELIABLE))
        self.frames = frames
        self.stamps: list[int] = []
        self._last = 0

    def close(self) -> None:
        import rclpy

        self.node.destroy_node()
        rclpy.try_shutdown()

    def spin(self, seconds: float) -> None:
        import rclpy

        end = time.perf_counter() + seconds
        while (left := end - time.perf_counter()) > 0:
            rclpy.spin_once(self.node, timeout_sec=min(left, 0.005))

    def publish(self) -> int:
        stamp = max(time.time_ns(), self._last + 1)
        self._last = stamp
        frame = self.frames[len(self.stamps) % len(self.frames)]
        _STAMP.pack_into(frame, _STAMP_OFFSET, *divmod(stamp, 1_000_000_000))
        self.pub.publish(bytes(frame))
        self.stamps.append(stamp)
        return stamp

    def wait_for_subscriber(self, timeout: float) -> bool:
        end = time.perf_counter() + timeout
        while self.pub.get_subscription_count() < 1 and time.perf_counter() < end:
            self.spin(0.05)
        return self.pub.get_subscription_count() >= 1

    def stream(self, rate: float, seconds: float) -> None:
        t0 = time.perf_counter()
        for i in range(max(1, round(rate * seconds))):
            self.spin(t0 + i / rate - time.perf_counter())
            self.publish()

    def tail(self, timeout: float) -> int:
        """Publish slowly until a tail frame is answered; how many tail frames that took."""
        first, end = len(self.stamps), time.perf_counter() + timeout
        while time.perf_counter() < end:
            self.publish()
            self.spin(TAIL_PERIOD_S)
            if self.answered & set(self.stamps[first:]):
                break
        return len(self.stamps) - first


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--topic", required=True)
    p.add_argument("--results-topic", required=True, help="the pipeline's MultiTaskResult topic (for the tail)")
    p.add_argument("--size", default="1920x1080", help="WIDTHxHEIGHT")
    p.add_argument("--format", default="raw", choices=("raw", "jpeg"))
    p.add_argument("--rate", type=float, default=30.0)
    p.add_argument("--seconds", type=float, default=10.0)
    p.add_argument("--distinct", type=int, default=4, help="distinct frames cycled through")
    p.add_argument("--no-wait", action="store_true", help="publish at once, before the edge is matched")
    p.add_argument("--tail-timeout", type=float, default=20.0, help="longest tail (s)")
    p.add_argument("--out", type=Path, required=True, help="JSON of what was sent")
    args = p.parse_args(argv)
    from mtl_split_tools.bags import parse_size

    width, height = parse_size(args.size)
    frames, msgtype = serialized(width, height, args.format, args.distinct)
    camera = Camera(args.topic, args.results_topic, frames, msgtype)
    if not args.no_wait and not camera.wait_for_subscriber(60.0):
        raise SystemExit(f"no subscriber on {args.topic} within 60 s")
    cpu0, wall0 = time.process_time(), time.time()
    camera.stream(args.rate, args.seconds)
    cpu1, wall1 = time.process_time(), time.time()
    streamed = len(camera.stamps)
    tail = camera.tail(args.tail_timeout)
    args.out.write_text(json.dumps({
        "size": [width, height], "format": args.format, "rate": args.rate, "waited_for_subscriber": not args.no_wait,
        "bytes_per_frame": int(np.median([len(f) for f in frames])), "streamed": streamed, "tail": tail,
        "stamps": camera.stamps, "stream_wall_s": [wall0, wall1], "cpu_s": cpu1 - cpu0}) + "\n")
    camera.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
