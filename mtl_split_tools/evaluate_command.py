"""`mtl-split evaluate`: replay any bag's camera frames through the pipeline (or offline) and
write a report: per task what the bundle predicted (and accuracy where the bag or a sidecar
table has labels), latency per stage, bytes/frame, FPS and drops."""
from __future__ import annotations

import argparse
from pathlib import Path

from mtl_split_core.errors import MtlSplitError


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("evaluate", help="predictions, accuracy, latency, bytes/frame and FPS of a bundle on any bag",
                       description=__doc__)
    p.add_argument("--bundle", type=Path, required=True, help="model bundle directory from `mtl-split export`")
    p.add_argument("--bag", type=Path, required=True, help="rosbag2 directory (mcap or sqlite3)")
    p.add_argument("--out", type=Path, required=True, help="report directory")
    p.add_argument("--camera-topic", help="image topic to replay (default: the bag's only Image/CompressedImage "
                                          "topic; with several, the error lists them)")
    p.add_argument("--labels", type=Path, metavar="CSV",
                   help="sidecar labels: a CSV/TSV with a 'frame' (index from 0) or 'stamp' (header stamp, ns or s) "
                        "column and one column of class names per task; overrides the bag's own labels")
    p.add_argument("--record", type=Path, metavar="OUT",
                   help="also write an MCAP bag of what the pipeline said: camera frames, features, results "
                        "(combined, per task, dense), annotated images (the visualization node runs) and the "
                        "bag's labels; Foxglove, ros2 bag and rosbags open it, and evaluate reads it back")
    p.add_argument("--rate", default="1.0", help="real-time factor of the replay, or 'max'")
    p.add_argument("--compressed", action="store_true", help="replay raw frames as JPEG CompressedImage")
    p.add_argument("--attach", action="store_true", help="use a pipeline that is already running")
    p.add_argument("--offline", action="store_true", help="run the bundle in this process, without ROS")
    p.add_argument("--namespace", default="", help="namespace of the pipeline, e.g. /robot_a")
    p.add_argument("--limit", type=int, help="evaluate only the first N frames")
    p.add_argument("-p", "--param", action="append", default=[], metavar="edge.NAME=VALUE",
                   help="edge parameter for this run, e.g. -p edge.dtype=int8 -p edge.codec=zstd")
    p.set_defaults(func=run)


def parse_rate(text: str) -> float | None:
    if text == "max":
        return None
    try:
        rate = float(text)
    except ValueError:
        rate = 0.0
    if rate <= 0:
        raise MtlSplitError(f"--rate {text!r}: use a positive real-time factor (1.0 = recorded timing) or max")
    return rate


def run(args: argparse.Namespace) -> int:
    from .evaluate import EvalOptions, evaluate
    from .launch_command import parse_overrides

    overrides = parse_overrides(args.param)
    if set(overrides) - {"edge"}:
        raise MtlSplitError("evaluate takes edge parameters only (-p edge.NAME=VALUE)")
    opts = EvalOptions(bundle=args.bundle, bag=args.bag, out=args.out, rate=parse_rate(args.rate),
                       compressed=args.compressed, attach=args.attach, offline=args.offline,
                       namespace=args.namespace, edge_params=overrides.get("edge"), limit=args.limit,
                       camera_topic=args.camera_topic, labels=args.labels, record=args.record)
    result = evaluate(opts)
    print((args.out / "summary.md").read_text())
    print(f"report: {args.out / 'report.json'} (+ PNG plots, summary.md)")
    if "recording" in result:
        counts = result["recording"]["messages"]
        print(f"recording: {args.record} ({sum(counts.values())} messages on {len(counts)} topics)")
    return 0 if result["frames"]["received"] else 1
