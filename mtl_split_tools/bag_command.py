"""`mtl-split make-bag`: a real rosbag2 of camera frames + ground truth from any dataset."""
from __future__ import annotations

import argparse
from pathlib import Path

from mtl_split_core import topics


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("make-bag", help="write a rosbag2 of camera images + ground-truth labels",
                       description=__doc__)
    p.add_argument("--data", default="shapes", help="shapes | h5:PATH | csv:PATH (default: shapes)")
    p.add_argument("--frames", type=int, default=200)
    p.add_argument("--rate", type=float, default=30.0, help="camera rate in Hz (message stamps)")
    p.add_argument("--size", default="224",
                   help="frame size: N (N x N) or WIDTHxHEIGHT, e.g. 1920x1080 (a square frame of the dataset "
                        "at the shorter side, its edges carried on to the full width)")
    p.add_argument("--split", default="test", choices=("train", "val", "test"))
    p.add_argument("--tasks", help="comma-separated tasks to label (default: all of the dataset)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--compressed", action="store_true", help="JPEG CompressedImage instead of raw rgb8")
    p.add_argument("--storage", default="mcap", choices=("mcap", "sqlite3"))
    p.add_argument("--camera-topic", default=topics.DEFAULT_IMAGE_TOPIC)
    p.add_argument("--out", type=Path, required=True)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from itertools import islice

    from tqdm import tqdm

    from mtl_split_training.datasets import DataOptions, open_data

    from .bags import parse_size, widen, write_bag

    tasks = tuple(args.tasks.split(",")) if args.tasks else None
    width, height = parse_size(args.size)
    source = open_data(args.data, DataOptions(size=min(width, height), tasks=tasks, seed=args.seed))
    images = source.split(args.split)
    n = min(args.frames, len(images))
    frames = (widen(*images.sample(i), width, height) for i in range(n))
    classes = {t.name: list(t.classes) for t in source.tasks}
    count = write_bag(args.out, tqdm(islice(frames, n), total=n, desc="make-bag", unit="frame"), classes,
                      args.rate, args.compressed, args.storage, args.camera_topic)
    print(f"wrote {count} frames ({'jpeg' if args.compressed else 'rgb8'} {width}x{height}, "
          f"{args.rate:g} Hz, {args.storage}) + ground truth to {args.out}")
    return 0
