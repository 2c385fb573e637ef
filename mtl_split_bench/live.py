"""What the live benchmarks (video, network) share: a private DDS domain, a camera stream as
replayable messages, the nodes of a launch plan as processes, and the numbers of a replay.

The camera is mtl_split_tools.replay's Replayer (the one `mtl-split evaluate` uses): it
publishes frames on their stamps' schedule and times each frame's MultiTaskResult.
"""
from __future__ import annotations

import os
import random
import time
from pathlib import Path
from typing import Any

import numpy as np

from .frames import rendered_frames
from .output import progress


def private_domain() -> int:
    """A DDS domain of our own on loopback: no cross-talk with tests or other runs here.
    MTL_SPLIT_BENCH_DOMAIN_ID picks it (e.g. to watch with ros2 topic echo)."""
    domain = int(os.environ.get("MTL_SPLIT_BENCH_DOMAIN_ID", random.randint(101, 200)))
    os.environ["ROS_DOMAIN_ID"] = str(domain)
    os.environ["ROS_AUTOMATIC_DISCOVERY_RANGE"] = "LOCALHOST"
    return domain


def camera_stream(size: int, seconds: float, rate_hz: float, topic: str, compressed: bool = False,
                  distinct: int = 100) -> list[Any]:
    """seconds x rate_hz frames (Image rgb8, or CompressedImage JPEG-90 with compressed) stamped
    1/rate_hz apart from now, cycling through `distinct` rendered scenes."""
    from mtl_split_tools.bags import COMPRESSED, IMAGE, TYPESTORE, Frame, image_message

    scenes = rendered_frames(size, distinct)
    msgtype = COMPRESSED if compressed else IMAGE
    start, period = time.time_ns(), int(1e9 / rate_hz)
    frames = []
    for i in range(max(2, int(seconds * rate_hz))):
        ns = start + i * period
        msg = image_message(scenes[i % len(scenes)], ns, "camera", compressed)
        frames.append(Frame(ns, "camera", topic, msgtype, bytes(TYPESTORE.serialize_cdr(msg, msgtype)), {}))
    return frames


def replay_stats(log: Any, frames: list[Any]) -> dict[str, Any]:
    """Delivered rate, latency percentiles (publish -> results received) and drops of a replay."""
    from mtl_split_tools.metrics import percentiles

    got = [f.stamp_ns for f in frames if f.stamp_ns in log.results]
    e2e = [(log.received_at[ns] - log.sent_at[ns]) * 1e3 for ns in got]
    sent = [log.sent_at[f.stamp_ns] for f in frames if f.stamp_ns in log.sent_at]
    span = (max(sent) - min(sent)) if len(sent) > 1 else 0.0
    camera_fps = (len(sent) - 1) / span if span > 0 else None
    stage = lambda name: percentiles([getattr(log.results[ns], name) for ns in got])  # noqa: E731
    return {
        "sent": len(sent), "received": len(got), "dropped": len(sent) - len(got),
        "drop_rate": round(1 - len(got) / len(sent), 4) if sent else None,
        # The rate at which results reach their consumer, for this camera rate.
        "delivered_fps": round(camera_fps * len(got) / len(sent), 2) if camera_fps else None,
        "camera_fps": round(camera_fps, 2) if camera_fps else None,
        "latency_ms": percentiles(e2e),
        "stages_ms": {"edge_compute": stage("edge_compute_ms"), "transport": stage("transport_ms"),
                      "server_queue": stage("queue_ms"), "server_compute": stage("server_compute_ms")},
        "payload_bytes": float(np.median(log.payload_bytes)) if log.payload_bytes else None,
        "message_bytes": float(np.median(log.feature_bytes)) if log.feature_bytes else None,
    }


def replay(namespace: str, frames: list[Any], rate: float | None = 1.0, desc: str = "replay",
           ready_timeout: float = 90.0) -> Any:
    """Publish frames into a running pipeline whose results appear in `namespace`; the log."""
    from mtl_split_tools.replay import Replayer

    replayer = Replayer(namespace, frames[0].topic, frames[0].msgtype)
    try:
        replayer.wait_ready(frames[0], timeout=ready_timeout)
        with progress(total=len(frames), desc=desc, unit="frame", leave=False) as bar:
            replayer.replay(frames, rate, progress=bar)
        return replayer.log
    finally:
        replayer.close()


def nodes_running(procs: Any, log_dir: Path) -> None:
    """Raise with the log directory if a node process has died."""
    if procs.dead():
        raise RuntimeError(f"node(s) exited: {procs.dead()}; see the logs in {log_dir}")
