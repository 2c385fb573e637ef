"""`mtl-split make-bag`: a real rosbag2 of camera frames + ground truth from any dataset."""
from __future__ import annotations

import argparse
from pathlib import Path

from mtl_split_core import topics
from mtl_split_core.errors import MtlSplitError


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("make-bag", help="write a rosbag2 of camera images + ground-truth labels",
                       description=__doc__)
    p.add_argument("--data", default="shapes", help="dataset spec: shapes | scenes | h5:PATH | csv:PATH")
    p.add_argument("--frames", type=int, default=200, help="frames to write, at most (fewer if the split is smaller)")
    p.add_argument("--rate", type=float, default=30.0, help="camera rate in Hz (message stamps)")
    p.add_argument("--size", default="224",
                   help="frame size: N (N x N) or WIDTHxHEIGHT, e.g. 1920x1080 (a square frame of the dataset "
                        "at the shorter side, its edges carried on to the full width)")
    p.add_argument("--split", default="test", choices=("train", "val", "test"), help="which split's frames")
    p.add_argument("--tasks", help="comma-separated tasks to label (default: all of the dataset)")
    p.add_argument("--seed", type=int, default=0, help="the data seed (a run's `seed`: its test split)")
    p.add_argument("--compressed", action="store_true", help="JPEG CompressedImage instead of raw rgb8")
    p.add_argument("--storage", default="mcap", choices=("mcap", "sqlite3"), help="rosbag2 storage plugin")
    p.add_argument("--camera-topic", default=topics.DEFAULT_IMAGE_TOPIC, help="topic of the camera frames")
    p.add_argument("--out", type=Path, required=True, help="bag directory to create")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from itertools import islice

    from tqdm import tqdm

    from mtl_split_training.datasets import DataOptions, open_data

    from .bags import parse_size, widen, write_bag

    if args.frames < 1:
        raise MtlSplitError(f"--frames {args.frames}: write at least one frame")
    tasks = tuple(args.tasks.split(",")) if args.tasks else None
    width, height = parse_size(args.size)
    source = open_data(args.data, DataOptions(size=min(width, height), tasks=tasks, seed=args.seed))
    images = source.split(args.split)
    if args.split in source.carved:
        raise MtlSplitError(f"{args.data} has no {args.split} rows (training carves its {args.split} split out of "
                            "train, by data.val_fraction and the run's seed); use --split test, or give it val rows")
    if not len(images):
        raise MtlSplitError(f"{args.data} has no {args.split} frames; choose another --split")
    n = min(args.frames, len(images))
    frames = (widen(*images.sample(i), width, height) for i in range(n))
    classes = {t.name: list(t.classes) for t in source.tasks}
    count = write_bag(args.out, tqdm(islice(frames, n), total=n, desc="make-bag", unit="frame"), classes,
                      args.rate, args.compressed, args.storage, args.camera_topic)
    print(f"wrote {count} of the {len(images)} {args.split} frames ({'jpeg' if args.compressed else 'rgb8'} "
          f"{width}x{height}, "
          f"{args.rate:g} Hz, {args.storage}) + ground truth to {args.out}")
    return 0
