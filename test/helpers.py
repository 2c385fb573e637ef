"""Helpers several test modules share: camera frames and the messages that carry them, and
what a live test sees of the nodes (their /diagnostics counters, results, logs, memory)."""
from __future__ import annotations

import itertools
import struct
import time
import zlib
from collections.abc import Callable
from typing import Any

import cv2
import numpy as np
import psutil

_stamps = itertools.count(1)


def frames(n: int, seed: int) -> list[np.ndarray]:
    """Varied RGB test images: smooth colour fields plus a random rectangle."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        base = cv2.resize(rng.integers(0, 256, (4, 4, 3), dtype=np.uint8), (40, 30), interpolation=cv2.INTER_CUBIC)
        x, y = rng.integers(0, 25), rng.integers(0, 18)
        base[y:y + 12, x:x + 15] = rng.integers(0, 256, 3)
        out.append(base)
    return out


def image_msg(rgb: np.ndarray, frame_id: str, encoding: str = "rgb8"):
    from sensor_msgs.msg import Image

    data = rgb[..., 1] if encoding == "mono8" else rgb
    msg = Image(height=rgb.shape[0], width=rgb.shape[1], encoding=encoding,
                step=rgb.shape[1] * (1 if encoding == "mono8" else 3))
    msg.data = np.ascontiguousarray(data).tobytes()
    return stamp(msg, frame_id)


def compressed_msg(rgb: np.ndarray, frame_id: str, fmt: str = "png"):
    from sensor_msgs.msg import CompressedImage

    msg = CompressedImage(format=fmt)
    msg.data = cv2.imencode("." + fmt, rgb[..., ::-1])[1].tobytes()
    return stamp(msg, frame_id)


def stamp(msg, frame_id: str):
    """A unique stamp per message of this test session, so results are matched exactly."""
    n = next(_stamps)
    msg.header.stamp.sec, msg.header.stamp.nanosec = 1000 + n, n * 1000
    msg.header.frame_id = frame_id
    return msg


def key(header) -> tuple[int, int, str]:
    return header.stamp.sec, header.stamp.nanosec, header.frame_id


def shapes_classes() -> dict[str, list[str]]:
    """Class names of every task of the procedural `shapes` data (what bags of it are labelled with)."""
    from mtl_split_training.datasets import open_data

    return {t.name: list(t.classes) for t in open_data("shapes").tasks}


def png_claiming(width: int, height: int) -> bytes:
    """A small valid PNG whose header claims width x height (a decompression bomb): a few
    rows of zeros, compressed to almost nothing."""
    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))
    rows = zlib.compress(b"".join(b"\0" + bytes(width * 3) for _ in range(100)), 9)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", rows) + chunk(b"IEND", b""))


class Watch:
    """/diagnostics counters of every node and results by stamp, on the module's test node."""

    def __init__(self, ros: Any) -> None:
        from diagnostic_msgs.msg import DiagnosticArray

        self.ros = ros
        self.status: dict[str, dict[str, str]] = {}
        self._results: dict[str, dict[tuple, Any]] = {}
        self.received_at: dict[str, dict[tuple, float]] = {}  # namespace -> stamp -> monotonic time
        ros.node.create_subscription(DiagnosticArray, "/diagnostics", self._on_diagnostics, 100)

    def _on_diagnostics(self, msg: Any) -> None:
        from mtl_split_ros.diagnostics import status_node

        for status in msg.status:
            if (node := status_node(status.name)) is not None:
                self.status[node] = {kv.key: kv.value for kv in status.values}

    def count(self, node: str, name: str) -> int:
        return int(self.status.get(node, {}).get(name, 0))

    def counts(self, node: str, names: tuple[str, ...]) -> dict[str, int]:
        return {n: self.count(node, n) for n in names}

    def results(self, namespace: str) -> dict[tuple, Any]:
        """MultiTaskResults on <namespace>/mtl_split/results, by stamp (subscribed once)."""
        if namespace not in self._results:
            from mtl_split.msg import MultiTaskResult

            got: dict[tuple, Any] = {}
            received_at: dict[tuple, float] = {}

            def on_result(msg: Any) -> None:
                got[key(msg.header)] = msg
                received_at[key(msg.header)] = time.monotonic()
            self.ros.node.create_subscription(MultiTaskResult, f"{namespace}/mtl_split/results", on_result, 100)
            self._results[namespace], self.received_at[namespace] = got, received_at
        return self._results[namespace]

    def settle(self, node: str, name: str, at_least: int, timeout: float = 15.0) -> None:
        """Wait until a node's published counter reaches a value (counters lag a period)."""
        self.ros.wait_for(lambda: self.count(node, name) >= at_least, timeout, f"{node} {name} >= {at_least}")

    def baseline(self, nodes: tuple[str, ...], names: tuple[str, ...]) -> dict[str, dict[str, int]]:
        """Counters once everything sent so far is counted: two diagnostics periods (0.5 s) on."""
        self.ros.spin_for(1.2)
        return {n: self.counts(n, names) for n in nodes}

    def delta(self, before: dict[str, dict[str, int]]) -> dict[str, dict[str, int]]:
        return {n: {k: self.count(n, k) - v for k, v in counts.items()} for n, counts in before.items()}

    def until(self, before: dict[str, dict[str, int]], done: Callable[[dict], bool],
              timeout: float = 15.0) -> dict[str, dict[str, int]]:
        """Counter deltas once done(deltas) holds, or the last ones after timeout (the
        assertions that follow then say what is missing)."""
        end = time.monotonic() + timeout
        while not done(self.delta(before)) and time.monotonic() < end:
            self.ros.spin_for(0.1)
        self.ros.spin_for(0.6)  # one more period: nothing counted twice or late
        return self.delta(before)

    def served(self, namespace: str, publish: Callable[[Any], None], msg: Any, timeout: float = 30.0) -> Any:
        """Publish msg until its result arrives (a path still being discovered loses the first)."""
        results = self.results(namespace)
        return self.ros.wait_for(lambda: results.get(key(msg.header)), timeout,
                                 f"the result of {key(msg.header)} in {namespace}",
                                 tick=lambda: publish(msg), tick_every=0.5)


def log_lines(proc: Any, text: str) -> list[str]:
    return [line for line in proc.log(100_000).splitlines() if text in line]


def rss_mb(proc: Any) -> float:
    return psutil.Process(proc.pid).memory_info().rss / 2**20
