"""`mtl-split evaluate`: replay a bag through the pipeline (or offline) and write a report."""
from __future__ import annotations

import argparse
from pathlib import Path

from mtl_split_core.errors import MtlSplitError


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("evaluate", help="accuracy, latency, bytes/frame and FPS of a bundle on a bag",
                       description=__doc__)
    p.add_argument("--bundle", type=Path, required=True)
    p.add_argument("--bag", type=Path, required=True)
    p.add_argument("--out", type=Path, required=True, help="report directory")
    p.add_argument("--rate", default="1.0", help="real-time factor of the replay, or 'max' (default 1.0)")
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
                       namespace=args.namespace, edge_params=overrides.get("edge"), limit=args.limit)
    result = evaluate(opts)
    print((args.out / "summary.md").read_text())
    print(f"report: {args.out / 'report.json'} (+ PNG plots, summary.md)")
    return 0 if result["frames"]["received"] else 1
