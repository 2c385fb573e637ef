"""`mtl-split bench video`: a 30 Hz camera through the live edge + server nodes.

The paper leaves real-time video open. Here a camera publishes rgb8 frames at 30 Hz for
--seconds (default 20; --full 60) into the real nodes (started as `mtl-split launch
pipeline` starts them, private DDS domain on loopback), once per backbone and edge camera
QoS depth (parameter image_qos_depth, 1 vs 10), side by side in one run. Reported: sustained
delivered FPS, end-to-end latency percentiles (frame published -> results received), frames
dropped, and the per-stage times the results carry.

Two backbones bracket the case: mobilenetv3_small_100 keeps up with 30 Hz on this CPU,
vgg16 does not, which is where the QoS depth matters: depth 1 drops stale frames and keeps
latency at one inference, depth 10 queues them and latency grows. Random weights (accuracy
is not the point here; compute is the same).
"""
from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from .bundles import random_bundle, task_classes
from .frames import camera_stream
from .output import add_common_arguments, png_path, print_table, progress, pyplot, save_figure, write_result

NAMESPACE = "/mtl_split_video"
CAMERA = f"{NAMESPACE}/camera/image_raw"
BACKBONES = ("mobilenetv3_small_100", "vgg16")
DEPTHS = (1, 10)


def run_one(bundle: Path, depth: int, frames: list[Any], log_dir: Path, desc: str) -> dict[str, Any]:
    from mtl_split_ros.launch_plan import LaunchArgs, plan
    from mtl_split_tools.processes import NodeProcesses
    from mtl_split_tools.replay import replay
    from mtl_split_tools.replay_stats import replay_stats

    nodes = plan("pipeline", LaunchArgs(
        bundle=str(bundle.resolve()), camera_topic=CAMERA, namespace=NAMESPACE,
        overrides={"edge": {"image_qos_depth": depth},
                   "server": {"features_topics": [f"{NAMESPACE}/mtl_split/features"], "discover": False}}))
    with NodeProcesses(nodes, log_dir=log_dir) as procs:
        log = replay(NAMESPACE, frames, rate=1.0, desc=desc, ready_timeout=90.0, leave=False)
        procs.check_alive()
    return replay_stats(log)


def run(backbones: tuple[str, ...], depths: tuple[int, ...], seconds: float, rate: float, size: int,
        camera_size: int, work: Path) -> dict[str, Any]:
    tasks = task_classes(3)
    bundles = {b: random_bundle(work, b, tasks, size) for b in progress(backbones, desc="bundles", unit="bundle")}
    rows = []
    for backbone in progress(backbones, desc="bench video", unit="backbone"):
        for depth in depths:
            frames = camera_stream(camera_size, seconds, rate, CAMERA)
            stats = run_one(bundles[backbone], depth, frames, work / "logs" / "video" / f"{backbone}_d{depth}",
                            f"{backbone} depth {depth}")
            rows.append({"backbone": backbone, "image_qos_depth": depth, **stats})
    return {"benchmark": "video", "camera_hz": rate, "seconds": seconds, "input_size": size,
            "camera_size": camera_size, "weights": "random init", "rows": rows,
            "latency": "camera publish -> MultiTaskResult received (same machine, one clock)"}


def plot(result: dict[str, Any], path: Path) -> Path:
    plt = pyplot()
    rows = result["rows"]
    labels = [f"{r['backbone'].split('_')[0]}\ndepth {r['image_qos_depth']}" for r in rows]
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(8.5, 3.3))
    x = range(len(rows))
    ax1.bar(x, [r["delivered_fps"] or 0 for r in rows], color="tab:blue")
    ax1.axhline(result["camera_hz"], color="grey", ls="--", lw=1, label="camera rate")
    ax1.set_title("delivered results per second", fontsize=9)
    ax1.legend(fontsize=7)
    for key, color in (("p50", "tab:green"), ("p90", "tab:orange"), ("p99", "tab:red")):
        ax2.plot(x, [r["latency_ms"]["end_to_end"][key] or 0 for r in rows], "o", color=color, label=key)
    ax2.set_yscale("log")
    ax2.set_title("end-to-end latency (ms)", fontsize=9)
    ax2.legend(fontsize=7)
    for ax in (ax1, ax2):
        ax.set_xticks(list(x), labels, fontsize=7)
        ax.grid(alpha=0.3)
    fig.suptitle(f"{result['camera_hz']:g} Hz camera for {result['seconds']:g} s through the live nodes", fontsize=9)
    return save_figure(fig, path)


def add_arguments(p: argparse.ArgumentParser) -> None:
    add_common_arguments(p, "video")
    p.add_argument("--backbones", default=",".join(BACKBONES), help="comma-separated timm backbones")
    p.add_argument("--depths", default=",".join(map(str, DEPTHS)), help="edge image_qos_depth values")
    p.add_argument("--seconds", type=float, default=None, help="camera run length (default 20; --full 60)")
    p.add_argument("--rate", type=float, default=30.0, help="camera Hz")
    p.add_argument("--size", type=int, default=224, help="model input size")
    p.add_argument("--camera-size", type=int, default=None, help="camera frame size (default 224; --full 480)")


def main(args: argparse.Namespace) -> int:
    result = run(tuple(args.backbones.split(",")), tuple(int(d) for d in args.depths.split(",")),
                 args.seconds or (60.0 if args.full else 20.0), args.rate, args.size,
                 args.camera_size or (480 if args.full else 224), args.work)
    table = [{**r, **r["frames"], **r["latency_ms"]["end_to_end"]} for r in result["rows"]]
    print_table(table, [("backbone", "backbone"), ("image_qos_depth", "depth"), ("camera_fps", "camera Hz"),
                        ("delivered_fps", "delivered FPS"), ("sent", "sent"), ("dropped", "dropped"),
                        ("p50", "p50 ms"), ("p90", "p90 ms"), ("p99", "p99 ms")])
    write_result(args.out, result)
    plot(result, png_path(args.out))
    return 0

