"""The robots of `mtl-split bench fleet`, all in one process: N features topics
(/fleet_<i>/mtl_split/features) at --rate Hz each, real SharedFeatures (the bundle's
backbone run on rendered frames, encoded as an edge would), and a subscriber on each
robot's results topic.

    python -m mtl_split_bench.fleet_robots --bundle B --robots 64 --rate 30 --seconds 10 --out stats.json

It waits until every robot's features and results topics are matched (by exactly one
server: a robot two shards both served, or none did, is reported), publishes for
--warmup-s + --seconds, and writes what it measured in the window after the warm-up:
frames sent, results received, latency (publish -> result received, one clock), and its own
CPU time, so the benchmark can tell a saturated server from a saturated publisher.
"""
from __future__ import annotations

import argparse
import json
import struct
import time
from pathlib import Path
from typing import Any

import numpy as np

NAMESPACE = "/fleet_{i}"
FRAME_ID = "cam"
DISTINCT_FRAMES = 8


def namespaces(n: int) -> list[str]:
    return [NAMESPACE.format(i=i) for i in range(n)]


def feature_messages(bundle: Path, dtype: str | None) -> list[Any]:
    """SharedFeatures of DISTINCT_FRAMES rendered scenes, as the bundle's edge sends them."""
    from mtl_split.msg import SharedFeatures
    from mtl_split_core import codec
    from mtl_split_core.runtime import EdgeModel

    from .frames import rendered_frames

    edge = EdgeModel(bundle, dtype=dtype, threads=1)
    size = edge.manifest.input.width
    msgs = []
    for enc in edge(rendered_frames(size, DISTINCT_FRAMES)):
        msg = codec.to_message(enc, SharedFeatures())
        msg.model_fingerprint = np.frombuffer(codec.fingerprint(edge.manifest.model_id), np.uint8)
        msg.header.frame_id = FRAME_ID
        msgs.append(msg)
    return msgs


def _stamp_ns(raw: bytes) -> int:
    """header.stamp of a serialized message whose first field is a std_msgs/Header (CDR:
    4 bytes of encapsulation, then int32 sec, uint32 nanosec)."""
    sec, nsec = struct.unpack_from("<iI", raw, 4)
    return sec * 1_000_000_000 + nsec


class Fleet:
    def __init__(self, n: int, rate: float, msgs: list[Any]) -> None:
        import rclpy
        from rclpy.executors import SingleThreadedExecutor
        from rclpy.qos import QoSProfile, ReliabilityPolicy

        from mtl_split.msg import MultiTaskResult, SharedFeatures
        from mtl_split_core import topics

        rclpy.init()
        self.node = rclpy.create_node("fleet_robots")
        self.executor = SingleThreadedExecutor()
        self.executor.add_node(self.node)
        self.n, self.rate, self.msgs = n, rate, msgs
        from mtl_split_ros.qos import quiet_publisher, quiet_subscription

        # Like the server, no QoS event handlers: this one process holds a whole fleet's topics.
        reliable = QoSProfile(depth=5, reliability=ReliabilityPolicy.RELIABLE)
        self.pubs = [self.node.create_publisher(SharedFeatures, f"{ns}/{topics.FEATURES}", reliable,
                                                event_callbacks=quiet_publisher()) for ns in namespaces(n)]
        self.subs = [self.node.create_subscription(
            MultiTaskResult, f"{ns}/{topics.RESULTS}", lambda raw, i=i: self._on_result(i, raw),
            QoSProfile(depth=50, reliability=ReliabilityPolicy.RELIABLE), raw=True,
            event_callbacks=quiet_subscription()) for i, ns in enumerate(namespaces(n))]
        self.sent: dict[tuple[int, int], float] = {}  # (robot, stamp ns) -> publish time (monotonic)
        self.received: dict[tuple[int, int], float] = {}
        self.count = 0

    def _on_result(self, robot: int, raw: bytes) -> None:
        self.received[(robot, _stamp_ns(raw))] = time.monotonic()

    def matched(self) -> dict[str, list[int]]:
        """Robots whose topics no server, or more than one, has matched."""
        out: dict[str, list[int]] = {"unserved": [], "served_twice": []}
        for i, (pub, sub) in enumerate(zip(self.pubs, self.subs)):
            subs, pubs = pub.get_subscription_count(), sub.get_publisher_count()
            if subs == 0 or pubs == 0:
                out["unserved"].append(i)
            elif subs > 1 or pubs > 1:
                out["served_twice"].append(i)
        return out

    def wait_matched(self, timeout: float) -> dict[str, list[int]]:
        end = time.monotonic() + timeout
        while (state := self.matched())["unserved"] and time.monotonic() < end:
            self.executor.spin_once(timeout_sec=0.05)
        return state

    def publish_for(self, seconds: float) -> list[tuple[int, int, float]]:
        """Publish every robot at `rate`, spread evenly over each period; (robot, stamp, time) of each frame."""
        log = []
        t0 = time.monotonic()
        step = 1.0 / (self.rate * self.n)
        k = 0
        while True:
            due = t0 + k * step
            if due - t0 >= seconds:
                return log
            while (left := due - time.monotonic()) > 0:
                self.executor.spin_once(timeout_sec=left)
            robot = k % self.n
            msg = self.msgs[self.count % len(self.msgs)]
            now_ns = time.time_ns()
            msg.header.stamp.sec, msg.header.stamp.nanosec = divmod(now_ns, 1_000_000_000)
            msg.sequence = (k // self.n) % 65536
            msg.sent_us = (now_ns // 1000) % (1 << 32)
            sent_at = time.monotonic()
            self.pubs[robot].publish(msg)
            log.append((robot, now_ns, sent_at))
            self.count += 1
            k += 1

    def spin_for(self, seconds: float) -> None:
        end = time.monotonic() + seconds
        while (left := end - time.monotonic()) > 0:
            self.executor.spin_once(timeout_sec=min(left, 0.05))


def main(argv: list[str] | None = None) -> int:
    import psutil

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--bundle", type=Path, required=True)
    p.add_argument("--robots", type=int, required=True)
    p.add_argument("--rate", type=float, default=30.0)
    p.add_argument("--seconds", type=float, default=10.0)
    p.add_argument("--warmup-s", type=float, default=3.0)
    p.add_argument("--dtype", default=None)
    p.add_argument("--match-timeout-s", type=float, default=60.0)
    p.add_argument("--out", type=Path, required=True)
    args = p.parse_args(argv)
    fleet = Fleet(args.robots, args.rate, feature_messages(args.bundle, args.dtype))
    matched = fleet.wait_matched(args.match_timeout_s)
    fleet.publish_for(args.warmup_s)
    me = psutil.Process()
    cpu0, t0 = sum(me.cpu_times()[:2]), time.monotonic()
    log = fleet.publish_for(args.seconds)
    cpu1, t1 = sum(me.cpu_times()[:2]), time.monotonic()
    fleet.spin_for(1.0)  # results in flight
    window = t1 - t0
    latency = np.asarray([fleet.received[(r, s)] - at for r, s, at in log if (r, s) in fleet.received]) * 1e3
    per_robot = np.bincount([r for r, s, _ in log if (r, s) in fleet.received], minlength=args.robots)
    stats = {
        "robots": args.robots, "rate_hz": args.rate, "window_s": round(window, 3),
        "frames_per_message": 1, "message_bytes": len(fleet.msgs[0].data),
        "sent": len(log), "received": int(len(latency)),
        "offered_per_s": round(len(log) / window, 2), "delivered_per_s": round(len(latency) / window, 2),
        "latency_ms": {q: round(float(np.percentile(latency, v)), 2) if len(latency) else None
                       for q, v in (("p50", 50), ("p99", 99), ("max", 100))},
        "robots_without_results": int((per_robot == 0).sum()),
        "publisher_cpu_cores": round((cpu1 - cpu0) / window, 3),
        "unserved_at_start": matched["unserved"], "served_twice": fleet.matched()["served_twice"],
    }
    args.out.write_text(json.dumps(stats, indent=2) + "\n")
    fleet.node.destroy_node()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
