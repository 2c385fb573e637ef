"""`mtl-split bench pipeline`: the whole pipeline through the real ROS 2 nodes over loopback,
against the same models in one process without ROS, measured in the same run.

Per dtype/codec: the edge and server nodes are started the way `mtl-split launch pipeline`
starts them; this process publishes sensor_msgs/Image frames and reads MultiTaskResult.
- latency: closed loop (one frame in flight), publish -> result received, p50/p99, split
  into the stages the result reports (edge compute, features transport, queue, server compute)
  and the rest (image and result transport, executors);
- sustained FPS: `--window` frames in flight (the edge always takes the newest frame, so a
  window keeps both nodes busy without feeding frames to be dropped);
- in-process: image conversion + EdgeModel + encode/decode + ServerModel, frame after frame,
  measured alternately with the ROS runs (REPEATS times, median FPS): load on a shared
  machine drifts, runs side by side in time are what compare;
- transport + codec overhead: features transport (edge publish -> server receipt) p50 plus
  encode and decode time; bytes per frame of the payload.
The node processes and this one share the machine's cores, as they would on one robot.
"""
from __future__ import annotations

import argparse
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from mtl_split_core.bundle import MANIFEST_SCHEMA_VERSION
from mtl_split_tools.metrics import percentiles

from .bundles import cached_dir
from .output import add_common_arguments, png_path, print_table, progress, pyplot, save_figure, write_result
from .timing import median_ms

NAMESPACE = "/mtl_split_bench"
CONFIGS = ("float32/none", "float16/none", "int8/none", "int8/zstd", "int8/lz4")
OVERHEAD_TARGET_MS = 2.0
OVERHEAD_MAX_KB = 32
FPS_TARGET = 0.9
REPEATS = 3  # sustained-FPS runs per wire format, ROS and in-process alternating


def add_arguments(p: argparse.ArgumentParser) -> None:
    add_common_arguments(p, "pipeline")
    p.add_argument("--bundle", type=Path,
                   help="bundle to run (default: an untrained 224x224 mobilenetv3_small_100 built once under --work)")
    p.add_argument("--configs", nargs="+", default=list(CONFIGS), metavar="DTYPE/CODEC",
                   help="wire formats to measure (the first one is the FPS comparison's)")
    p.add_argument("--frames", type=int, help="closed-loop frames per wire format (latency; default 200, --full 1000)")
    p.add_argument("--seconds", type=float,
                   help="sustained-FPS time per wire format and side, in 3 alternating runs (default 6, --full 30)")
    p.add_argument("--window", type=int, default=2, help="frames in flight in the sustained-FPS run")
    p.add_argument("--threads", type=int, default=0, help="ONNX Runtime threads per model (0: its default)")
    p.add_argument("--image-size", type=int, nargs=2, default=(224, 224), metavar=("W", "H"),
                   help="camera frame size (the edge resizes to the bundle's input)")


@dataclass
class Config:
    dtype: str
    codec: str

    @classmethod
    def parse(cls, text: str) -> "Config":
        dtype, _, codec_name = text.partition("/")
        return cls(dtype, codec_name or "none")

    @property
    def label(self) -> str:
        return f"{self.dtype}/{self.codec}"


def default_bundle(work: Path) -> Path:
    def build(out: Path) -> None:
        from mtl_split_training.testing import make_tiny_bundle

        make_tiny_bundle(out, size=224)
    return cached_dir(work / "bundles", {"bench": "pipeline", "backbone": "mobilenetv3_small_100", "size": 224,
                                         "manifest_schema": MANIFEST_SCHEMA_VERSION}, build, is_bundle=True)


def camera_frames(n: int, width: int, height: int, seed: int = 0) -> list[np.ndarray]:
    """Smooth random colour fields: camera-like content (compressible, not white noise)."""
    import cv2

    rng = np.random.default_rng(seed)
    return [cv2.resize(rng.integers(0, 256, (6, 8, 3), dtype=np.uint8), (width, height),
                       interpolation=cv2.INTER_CUBIC) for _ in range(n)]


# --- in process -------------------------------------------------------------------------------

class Local:
    """The same models in this process: image conversion, EdgeModel, encode/decode, ServerModel."""

    def __init__(self, bundle: Path, cfg: Config, threads: int) -> None:
        from mtl_split_core.runtime import EdgeModel, ServerModel

        self.edge = EdgeModel(bundle, threads=threads, dtype=cfg.dtype, codec_name=cfg.codec)
        self.server = ServerModel(bundle, threads=threads)

    def one(self, msg: Any) -> Any:
        enc = self.edge([self.edge_input(msg)])[0]
        self.server.predict(self.server.decode(enc)[None])
        return enc

    def latency(self, msgs: list[Any]) -> dict[str, Any]:
        lat, sizes = [], []
        for m in msgs:
            t = time.perf_counter()
            sizes.append(len(self.one(m).data))
            lat.append((time.perf_counter() - t) * 1e3)
        features = self.edge.features([self.edge_input(msgs[0])])[0]
        enc = self.edge.encode(features)
        return {"latency_ms": percentiles(lat),
                "encode_ms": round(median_ms(lambda: self.edge.encode(features), 50), 4),
                "decode_ms": round(median_ms(lambda: self.server.decode(enc), 50), 4),
                "payload_bytes": int(np.median(sizes)), "raw_bytes": enc.raw_size, "backend": self.edge.backend.name}

    def edge_input(self, msg: Any) -> np.ndarray:
        from mtl_split_core.imaging import to_array

        return to_array(msg, self.edge.manifest.input.encoding)

    def sustained(self, msgs: list[Any], seconds: float) -> tuple[float, int]:
        """(frames per second, frames) over `seconds`."""
        done, start = 0, time.perf_counter()
        while time.perf_counter() - start < seconds:
            self.one(msgs[done % len(msgs)])
            done += 1
        return done / (time.perf_counter() - start), done


# --- through ROS ------------------------------------------------------------------------------

class Driver:
    """The replay node (mtl_split_tools.replay) as this benchmark's camera: closed-loop and
    windowed runs. It does not watch the features: this process's CPU is part of what the
    comparison with the in-process run measures."""

    def __init__(self) -> None:
        from mtl_split_tools.bags import IMAGE
        from mtl_split_tools.replay import Replayer

        self.replayer = Replayer(NAMESPACE, f"{NAMESPACE}/camera/image_raw", IMAGE, watch_features=False)

    def closed_loop(self, msgs: list[Any]) -> dict[str, Any]:
        """One frame in flight: the next goes out when the previous one's result is back (or
        after 2 s without, then it is lost)."""
        from mtl_split_tools.replay import ReplayLog
        from mtl_split_tools.replay_stats import replay_stats

        rp = self.replayer
        rp.log = ReplayLog()
        for m in msgs:
            stamp = rp.publish_now(m)
            rp.spin_until(lambda: stamp in rp.log.results, 2.0)
        stats = replay_stats(rp.log)
        return {"latency_ms": stats["latency_ms"], "lost_closed_loop": stats["frames"]["dropped"]}

    def sustained(self, msgs: list[Any], seconds: float, window: int) -> dict[str, Any]:
        """Keep `window` frames in flight; a frame without result after 1 s counts as lost."""
        results = self.replayer.log.results
        in_flight: dict[int, float] = {}
        done = lost = 0
        start = time.perf_counter()
        i = 0
        while time.perf_counter() - start < seconds:
            now = time.perf_counter()
            for stamp in [s for s in in_flight if s in results or now - in_flight[s] > 1.0]:
                done += stamp in results
                lost += stamp not in results
                del in_flight[stamp]
            while len(in_flight) < window:
                in_flight[self.replayer.publish_now(msgs[i % len(msgs)])] = time.perf_counter()
                i += 1
            self.replayer.spin_once(0.005)
        elapsed = time.perf_counter() - start
        return {"fps": round(done / elapsed, 1), "frames": done, "lost": lost}


def measure(driver: Driver, local: Local, bundle: Path, msgs: list[Any], cfg: Config,
            args: argparse.Namespace) -> tuple[dict[str, Any], dict[str, Any]]:
    """ROS and in-process measurements of one wire format, interleaved (the machine's load
    drifts; runs side by side in time are what can be compared)."""
    from mtl_split_ros.launch_plan import LaunchArgs, plan

    from mtl_split_tools.processes import NodeProcesses

    features = f"{NAMESPACE}/mtl_split/features"
    nodes = plan("pipeline", LaunchArgs(
        bundle=str(bundle.resolve()), camera_topic="camera/image_raw", namespace=NAMESPACE,
        overrides={"edge": {"dtype": cfg.dtype, "codec": cfg.codec, "threads": args.threads},
                   "server": {"features_topics": [features], "discover": False, "threads": args.threads}}))
    log_dir = args.work / "logs" / cfg.label.replace("/", "_")
    started = time.perf_counter()
    with NodeProcesses(nodes, log_dir=log_dir) as procs:
        ready_from = time.perf_counter()
        try:
            driver.replayer.wait_ready(msgs[0])
        except TimeoutError as e:
            raise RuntimeError(f"{cfg.label}: {e} See the logs in {log_dir} (exited: {procs.dead()})") from None
        first_result_s, startup = time.perf_counter() - ready_from, time.perf_counter() - started
        driver.closed_loop(msgs[:20])  # warm-up
        local.latency(msgs[:20])
        live = driver.closed_loop(msgs[: args.frames])
        here = local.latency(msgs[: args.frames])
        runs: dict[str, list[float]] = {"ros": [], "local": []}
        cpu = {"ros": Cpu({"driver": os.getpid(), **{k: p.pid for k, p in procs.procs.items()}}),
               "local": Cpu({"in_process": os.getpid()})}
        lost = 0
        for _ in range(REPEATS):
            with cpu["ros"]:
                r = driver.sustained(msgs, args.seconds / REPEATS, args.window)
            runs["ros"].append(r["fps"])
            cpu["ros"].frames += r["frames"]
            lost += r["lost"]
            with cpu["local"]:
                fps, frames = local.sustained(msgs, args.seconds / REPEATS)
            runs["local"].append(round(fps, 1))
            cpu["local"].frames += frames
    live.update(fps=float(np.median(runs["ros"])), fps_runs=runs["ros"], lost_sustained=lost,
                cpu_ms_per_frame=cpu["ros"].per_frame(), startup_s=round(startup, 2),
                first_result_after_s=round(first_result_s, 2))
    here.update(fps=float(np.median(runs["local"])), fps_runs=runs["local"], cpu_ms_per_frame=cpu["local"].per_frame())
    return here, live


class Cpu:
    """CPU time (user + system, all threads) of some processes while in `with`, per frame:
    on a machine short of cores, throughput follows the CPU each frame costs in total."""

    def __init__(self, pids: dict[str, int]) -> None:
        import psutil

        self.procs = {name: psutil.Process(pid) for name, pid in pids.items()}
        self.used = dict.fromkeys(pids, 0.0)
        self.frames = 0

    def _now(self) -> dict[str, float]:
        return {name: sum(p.cpu_times()[:2]) for name, p in self.procs.items()}

    def __enter__(self) -> None:
        self._start = self._now()

    def __exit__(self, *exc: Any) -> None:
        for name, t in self._now().items():
            self.used[name] += t - self._start[name]

    def per_frame(self) -> dict[str, float]:
        out = {name: round(t / max(self.frames, 1) * 1e3, 3) for name, t in self.used.items()}
        return {**out, "total": round(sum(out.values()), 3)}


def image_messages(frames: list[np.ndarray]) -> list[Any]:
    from sensor_msgs.msg import Image

    msgs = []
    for f in frames:
        msg = Image(height=f.shape[0], width=f.shape[1], encoding="rgb8", step=f.shape[1] * 3)
        msg.data = f.tobytes()
        msg.header.frame_id = "bench_camera"
        msgs.append(msg)
    return msgs


# --- report -----------------------------------------------------------------------------------

def summarize(label: str, local: dict[str, Any], live: dict[str, Any]) -> dict[str, Any]:
    transport = live["latency_ms"]["transport"]["p50"]
    overhead = None if transport is None else round(transport + local["encode_ms"] + local["decode_ms"], 3)
    return {
        "config": label, "payload_kb": round(local["payload_bytes"] / 1024, 1),
        "ros_p50_ms": live["latency_ms"]["end_to_end"]["p50"], "ros_p99_ms": live["latency_ms"]["end_to_end"]["p99"],
        "local_p50_ms": local["latency_ms"]["p50"], "local_p99_ms": local["latency_ms"]["p99"],
        "ros_fps": live["fps"], "local_fps": local["fps"],
        "fps_ratio": round(live["fps"] / local["fps"], 3) if local["fps"] else None,
        "transport_p50_ms": transport, "codec_ms": round(local["encode_ms"] + local["decode_ms"], 3),
        "overhead_p50_ms": overhead, "lost": live["lost_closed_loop"] + live["lost_sustained"],
        "ros_cpu_ms": live["cpu_ms_per_frame"]["total"], "local_cpu_ms": local["cpu_ms_per_frame"]["total"],
    }


def plot(rows: list[dict[str, Any]], out: Path) -> Path:
    plt = pyplot()
    labels = [r["config"] for r in rows]
    x = np.arange(len(rows))
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 3.6))
    for offset, (key, name) in zip((-0.2, 0.2), (("ros", "ROS 2 nodes"), ("local", "in process"))):
        p50 = np.array([r[f"{key}_p50_ms"] or 0 for r in rows])
        p99 = np.array([r[f"{key}_p99_ms"] or 0 for r in rows])
        ax1.bar(x + offset, p50, 0.4, yerr=[np.zeros_like(p50), p99 - p50], capsize=3, label=name)
        ax2.bar(x + offset, [r[f"{key}_fps"] or 0 for r in rows], 0.4, label=name)
    for ax, title in ((ax1, "end-to-end latency, ms (bar p50, whisker p99)"), (ax2, "sustained FPS")):
        ax.set_xticks(x, labels, rotation=20)
        ax.set_title(title, fontsize=10)
        ax.legend(fontsize=8)
    return save_figure(fig, png_path(out))


def main(args: argparse.Namespace) -> int:
    args.frames = args.frames or (1000 if args.full else 200)
    args.seconds = args.seconds or (30.0 if args.full else 6.0)
    bundle = args.bundle or default_bundle(args.work)
    configs = [Config.parse(c) for c in args.configs]
    msgs = image_messages(camera_frames(max(args.frames, 50), *args.image_size))
    driver = Driver()
    load_before = os.getloadavg()
    results, rows = {}, []
    try:
        for cfg in progress(configs, desc="configs", unit="config"):
            local, live = measure(driver, Local(bundle, cfg, args.threads), bundle, msgs, cfg, args)
            results[cfg.label] = {"in_process": local, "ros": live}
            rows.append(summarize(cfg.label, local, live))
    finally:
        driver.replayer.close()
    from mtl_split_core.bundle import load_manifest

    manifest = load_manifest(bundle)
    small = [r for r in rows if r["payload_kb"] <= OVERHEAD_MAX_KB and r["overhead_p50_ms"] is not None]
    targets = {
        "fps_ratio_first_config": rows[0]["fps_ratio"], "fps_ratio_target": FPS_TARGET,
        "fps_target_met": bool(rows[0]["fps_ratio"] and rows[0]["fps_ratio"] >= FPS_TARGET),
        "overhead_p50_ms_max_up_to_32kb": max((r["overhead_p50_ms"] for r in small), default=None),
        "overhead_target_ms": OVERHEAD_TARGET_MS,
        "overhead_target_met": bool(small) and all(r["overhead_p50_ms"] <= OVERHEAD_TARGET_MS for r in small),
    }
    write_result(args.out, {
        "benchmark": "pipeline", "bundle": str(bundle), "model_id": manifest.model_id,
        "backbone": manifest.backbone, "input": [manifest.input.width, manifest.input.height],
        "feature_shape": list(manifest.features.shape), "image_size": list(args.image_size),
        "frames": args.frames, "seconds": args.seconds, "window": args.window, "threads": args.threads,
        "summary": rows, "targets": targets, "configs": results,
        "load_average": {"before": [round(v, 2) for v in load_before], "after": [round(v, 2) for v in os.getloadavg()]},
        "notes": "startup_s includes the ROS wheels' one-time Python re-exec (ros_wheels_bootstrapper) "
                 "and model loading; all processes share this machine's cores",
    })
    plot(rows, args.out)
    print_table(rows, [("config", "wire"), ("payload_kb", "KB"), ("ros_p50_ms", "ROS p50"),
                       ("ros_p99_ms", "ROS p99"), ("local_p50_ms", "local p50"), ("local_p99_ms", "local p99"),
                       ("ros_fps", "ROS FPS"), ("local_fps", "local FPS"), ("fps_ratio", "ratio"),
                       ("transport_p50_ms", "transport p50"), ("codec_ms", "codec"),
                       ("overhead_p50_ms", "overhead p50"), ("ros_cpu_ms", "ROS CPU/frame"),
                       ("local_cpu_ms", "local CPU/frame"), ("lost", "lost")])
    print(f"FPS ROS/in-process ({rows[0]['config']}): {targets['fps_ratio_first_config']} "
          f"(target >= {FPS_TARGET}); transport+codec p50 up to {OVERHEAD_MAX_KB} KB: "
          f"{targets['overhead_p50_ms_max_up_to_32kb']} ms (target <= {OVERHEAD_TARGET_MS} ms)")
    return 0
