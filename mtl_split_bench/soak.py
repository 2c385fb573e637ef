"""`mtl-split bench soak`: the live pipeline for a long time at camera rate - does anything
leak, stall, or get lost without being counted?

Starts edge + server as `mtl-split launch pipeline` does (private DDS domain on loopback),
publishes a camera (rgb8, --camera-size) at --rate Hz for --minutes through the Replayer's
node (the one `mtl-split evaluate` uses), samples both nodes' resident memory every
--sample-s seconds and reads their /diagnostics counters. Pass criteria:

- memory: each node's RSS growth after warm-up under 5 % (median of the last minute vs the
  median of the first minute after --warmup-s; the linear slope is reported too);
- accounting: sent = results received + drops the nodes counted (`dropped` and `unheard` of
  edge and server), from the counters' increase over the run - no frame lost uncounted;
- both nodes alive at the end.

Writes reports/bench/soak.json and soak.png (RSS and delivered rate over time); exit status
1 if a criterion fails. A short tail at the end (one frame every 0.3 s until one is answered)
makes the edge see the last sequence number, so frames lost right at the end are counted too.
"""
from __future__ import annotations

import argparse
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .frames import camera_stream
from .output import add_common_arguments, png_path, print_table, progress, pyplot, save_figure, write_result

NAMESPACE = "/mtl_split_soak"
CAMERA = f"{NAMESPACE}/camera/image_raw"
GROWTH_LIMIT = 0.05
WINDOW_S = 60.0  # RSS is compared as medians over windows this long (allocator noise)
COUNTERS = ("frames_in", "frames_out", "dropped", "unheard", "errors")


@dataclass
class Samples:
    """What the run observed over time (seconds since the camera started)."""

    t: list[float] = field(default_factory=list)
    rss_mb: dict[str, list[float]] = field(default_factory=lambda: {"edge": [], "server": []})
    results: list[int] = field(default_factory=list)  # cumulative results received at each sample


def growth(t: list[float], rss: list[float], warmup_s: float) -> dict[str, float | None]:
    """RSS growth after warm-up: median of the last window vs the first window after warm-up,
    and the least-squares slope over everything after warm-up."""
    t_a, r_a = np.asarray(t), np.asarray(rss)
    after = t_a >= warmup_s
    if after.sum() < 4:
        return {"warm_mb": None, "end_mb": None, "growth": None, "slope_mb_per_h": None}
    window = min(WINDOW_S, (t_a[-1] - warmup_s) / 3)  # short runs: windows never overlap
    first = r_a[after & (t_a <= warmup_s + window)]
    last = r_a[t_a >= t_a[-1] - window]
    warm, end = float(np.median(first)), float(np.median(last))
    slope = float(np.polyfit(t_a[after], r_a[after], 1)[0]) * 3600
    return {"warm_mb": round(warm, 2), "end_mb": round(end, 2), "growth": round((end - warm) / warm, 4),
            "slope_mb_per_h": round(slope, 2)}


def accounting(sent: int, received: int, edge: dict[str, int], server: dict[str, int]) -> dict[str, int]:
    """Every frame sent either produced a result or was counted as dropped by a node."""
    counted = edge["dropped"] + edge["unheard"] + server["dropped"] + server["unheard"]
    return {"sent": sent, "received": received, "edge_dropped": edge["dropped"], "edge_unheard": edge["unheard"],
            "server_dropped": server["dropped"], "server_unheard": server["unheard"], "counted_drops": counted,
            "unaccounted": sent - received - counted, "edge_errors": edge["errors"], "server_errors": server["errors"]}


class Soak:
    """The camera, the result/diagnostics listener and the memory sampler of one run."""

    def __init__(self, procs: Any, camera_size: int, rate: float) -> None:
        import psutil
        from rclpy.serialization import deserialize_message
        from sensor_msgs.msg import Image

        from mtl_split_tools.replay import Replayer

        scenes = camera_stream(camera_size, 1.0, rate, CAMERA, distinct=30)
        self.warmup_frame = scenes[0]
        self.msgs = [deserialize_message(f.rawdata, Image) for f in scenes]
        self.replayer = Replayer(NAMESPACE, CAMERA, scenes[0].msgtype)
        self.rate = rate
        # Diagnostics name -> "edge" / "server": only our own nodes count.
        self.nodes = {f"{NAMESPACE}/{n.spec.name}": n.key for n in procs.nodes}
        self.pids = {key.split(":")[0]: psutil.Process(p.pid) for key, p in procs.procs.items()}
        self.samples = Samples()
        self.sent = 0

    def publish(self) -> None:
        self.replayer.publish_now(self.msgs[self.sent % len(self.msgs)])
        self.sent += 1

    def settled_counters(self) -> dict[str, dict[str, int]]:
        """Counters after everything sent so far is counted (two diagnostics periods)."""
        self.replayer.spin_for(2.5)
        counters = self.replayer.log.node_counters
        return {key: {k: int(counters.get(name, {}).get(k, 0)) for k in COUNTERS} for name, key in self.nodes.items()}

    def run(self, seconds: float, sample_s: float, bar: Any) -> None:
        t0 = time.perf_counter()
        next_sample = 0.0
        while (now := time.perf_counter() - t0) < seconds:
            if now >= next_sample:
                self.samples.t.append(round(now, 2))
                for name, proc in self.pids.items():
                    self.samples.rss_mb[name].append(proc.memory_info().rss / 2**20)
                self.samples.results.append(len(self.replayer.log.results))
                next_sample += sample_s
                bar.update(round(now - bar.n))
            self.publish()
            deadline = t0 + self.sent / self.rate
            while time.perf_counter() < deadline:
                self.replayer.spin_once(max(deadline - time.perf_counter(), 0))

    def tail(self, timeout: float = 10.0) -> None:
        """Publish slowly until one frame is answered: the edge's gap count then covers every
        frame before it."""
        first = self.sent
        end = time.perf_counter() + timeout
        while time.perf_counter() < end:
            self.publish()
            self.replayer.spin_for(0.3)
            if any(ns in self.replayer.log.results for ns in list(self.replayer.log.sent_at)[first:]):
                return


def run(bundle: Path, minutes: float, rate: float, camera_size: int, warmup_s: float, sample_s: float,
        log_dir: Path) -> dict[str, Any]:
    from mtl_split_ros.launch_plan import LaunchArgs, plan
    from mtl_split_tools.processes import NodeProcesses
    from mtl_split_tools.replay_stats import replay_stats

    nodes = plan("pipeline", LaunchArgs(
        bundle=str(bundle.resolve()), camera_topic=CAMERA, namespace=NAMESPACE,
        overrides={"server": {"features_topics": [f"{NAMESPACE}/mtl_split/features"], "discover": False}}))
    seconds = minutes * 60
    with NodeProcesses(nodes, log_dir=log_dir) as procs:
        soak = Soak(procs, camera_size, rate)
        try:
            soak.replayer.wait_ready(soak.warmup_frame, timeout=90)
            before = soak.settled_counters()
            with progress(total=int(seconds), desc=f"soak {minutes:g} min @ {rate:g} Hz", unit="s") as bar:
                soak.run(seconds, sample_s, bar)
            soak.tail()
            soak.replayer.spin_for(2.0)  # frames in flight
            after = soak.settled_counters()
            alive = not procs.dead()
            log = soak.replayer.log
        finally:
            soak.replayer.close()
    delta = {node: {k: after[node][k] - before[node][k] for k in COUNTERS} for node in ("edge", "server")}
    stats = replay_stats(log)
    s = soak.samples
    memory = {name: growth(s.t, rss, warmup_s) for name, rss in s.rss_mb.items()}
    frames = accounting(stats["frames"]["sent"], stats["frames"]["received"], delta["edge"], delta["server"])
    checks = {
        "memory_growth_under_5pct": all(m["growth"] is not None and m["growth"] < GROWTH_LIMIT
                                        for m in memory.values()),
        "no_frame_lost_uncounted": frames["unaccounted"] == 0,
        "nodes_alive": alive,
    }
    return {"benchmark": "soak", "bundle": str(bundle), "minutes": minutes, "camera_hz": rate,
            "camera_size": camera_size, "warmup_s": warmup_s, "window_s": WINDOW_S,
            "frames": frames, "node_counters": delta, "memory": memory, "latency_ms": stats["latency_ms"],
            "camera_fps": stats["camera_fps"], "delivered_fps": stats["delivered_fps"], "checks": checks, "passed": all(checks.values()),
            "samples": {"t_s": s.t, "rss_mb": {k: [round(v, 2) for v in r] for k, r in s.rss_mb.items()},
                        "results": s.results},
            "logs": str(log_dir)}


def plot(result: dict[str, Any], path: Path) -> Path:
    plt = pyplot()
    s = result["samples"]
    t = np.asarray(s["t_s"]) / 60
    fig, (ax1, ax2) = plt.subplots(2, 1, figsize=(7.5, 5), sharex=True)
    for name, rss in s["rss_mb"].items():  # relative to the warm median: both nodes on one scale
        m = result["memory"][name]
        if m["warm_mb"]:
            ax1.plot(t, (np.asarray(rss) / m["warm_mb"] - 1) * 100,
                     label=f"{name}: {m['warm_mb']:.0f} MB warm, growth {m['growth'] * 100:+.2f} %")
    ax1.axhline(GROWTH_LIMIT * 100, color="tab:red", ls="--", lw=1, label="limit")
    ax1.axvspan(0, result["warmup_s"] / 60, color="grey", alpha=0.15, label="warm-up")
    ax1.set_ylabel("RSS vs warm (%)")
    ax1.legend(fontsize=7)
    rate = np.diff(s["results"]) / np.maximum(np.diff(s["t_s"]), 1e-9)
    ax2.plot(t[1:], rate, color="tab:green")
    ax2.axhline(result["camera_hz"], color="grey", ls="--", lw=1, label="camera rate")
    ax2.set_ylim(0, result["camera_hz"] * 1.2)
    ax2.set_ylabel("results / s")
    ax2.set_xlabel("minutes")
    ax2.legend(fontsize=7)
    for ax in (ax1, ax2):
        ax.grid(alpha=0.3)
    f = result["frames"]
    fig.suptitle(f"soak: {result['minutes']:g} min at {result['camera_hz']:g} Hz - {f['sent']} sent, "
                 f"{f['received']} results, {f['counted_drops']} counted drops, {f['unaccounted']} unaccounted",
                 fontsize=9)
    return save_figure(fig, path)


def add_arguments(p: argparse.ArgumentParser) -> None:
    add_common_arguments(p, "soak")
    p.add_argument("--bundle", type=Path,
                   help="bundle to run (default: the untrained 224x224 mobilenetv3_small_100 of bench pipeline)")
    p.add_argument("--minutes", type=float, default=10.0, help="camera run length")
    p.add_argument("--rate", type=float, default=30.0, help="camera Hz")
    p.add_argument("--camera-size", type=int, default=224, help="camera frame size (square, rgb8)")
    p.add_argument("--warmup-s", type=float, default=60.0, help="memory growth is measured after this")
    p.add_argument("--sample-s", type=float, default=5.0, help="memory sampling period")


def main(args: argparse.Namespace) -> int:
    from .pipeline import default_bundle

    bundle = args.bundle or default_bundle(args.work)
    result = run(bundle, args.minutes, args.rate, args.camera_size, args.warmup_s, args.sample_s,
                 args.work / "logs" / "soak")
    rows = [{"node": name, **m} for name, m in result["memory"].items()]
    print_table(rows, [("node", "node"), ("warm_mb", "RSS warm MB"), ("end_mb", "RSS end MB"),
                       ("growth", "growth"), ("slope_mb_per_h", "MB/h")])
    print("frames:", ", ".join(f"{k} {v}" for k, v in result["frames"].items()))
    print("checks:", ", ".join(f"{k} {'ok' if v else 'FAILED'}" for k, v in result["checks"].items()))
    write_result(args.out, result)
    plot(result, png_path(args.out))
    return 0 if result["passed"] else 1

