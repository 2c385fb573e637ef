"""`mtl-split bench NAME`: benchmarks that print a table and save JSON (+ PNG) under
reports/bench/. Each lives in its own module exposing `add_arguments(parser)` and
`main(args) -> int`; add one by adding a line to BENCHMARKS. Every benchmark runs on a
private DDS domain on loopback (mtl_split_tools.domain)."""
from __future__ import annotations

import argparse
import importlib

# name -> (module, one-line help)
BENCHMARKS: dict[str, tuple[str, str]] = {
    "codec": ("mtl_split_bench.codec", "SharedFeatures encode/publish/receive/decode over loopback"),
    "codecs": ("mtl_split_bench.codecs", "bytes vs accuracy: features (entropy, temporal) vs JPEG, H.264/H.265 on coherent clips"),
    "memory": ("mtl_split_bench.memory", "edge memory: MTL-Split vs single-task deployments (ONNX Runtime RSS)"),
    "bandwidth": ("mtl_split_bench.bandwidth", "bytes/frame vs accuracy: images, split tensor codecs, learned bottleneck"),
    "split": ("mtl_split_bench.split", "every split point: edge/server compute, bytes, accuracy (feeds mtl-split plan)"),
    "tasks": ("mtl_split_bench.tasks", "1..16 tasks: edge memory, bytes, server compute, latency, MTL vs STL"),
    "video": ("mtl_split_bench.video", "30 Hz camera through the live nodes: FPS, latency, drops, QoS depth 1 vs 10"),
    "network": ("mtl_split_bench.network", "live pipeline over an emulated 3G/4G/Wi-Fi link with loss: latency, FPS"),
    "pipeline": ("mtl_split_bench.pipeline", "end-to-end latency/FPS through the ROS 2 nodes vs in-process, per wire format"),
    "dense": ("mtl_split_bench.dense", "dense split: bytes/frame vs mIoU, AbsRel, mAP for split points and widths, vs JPEG-90"),
    "camera": ("mtl_split_bench.camera", "camera driver in another process, 640x480 to 12 MP, raw and JPEG: results/s, "
                                         "latency, every drop counted, CPU, edge RSS; DDS transports compared"),
    "fleet": ("mtl_split_bench.fleet", "N robots at 30 Hz against 1 and 2 server shards: delivered/offered, latency, CPU"),
    "soak": ("mtl_split_bench.soak", "live pipeline for --minutes at --rate Hz: RSS growth, every frame accounted for"),
}


def register(sub: argparse._SubParsersAction) -> None:
    bench = sub.add_parser("bench", help="benchmarks (JSON + plots under reports/bench/)", description=__doc__)
    names = bench.add_subparsers(dest="bench", metavar="NAME", required=True)
    for name, (module, text) in BENCHMARKS.items():
        p = names.add_parser(name, help=text)
        p.set_defaults(func=_runner(module))
        importlib.import_module(module).add_arguments(p)


def _runner(module: str):
    def run(args: argparse.Namespace) -> int:
        from mtl_split_tools.domain import PrivateDomain

        with PrivateDomain():  # the nodes a benchmark starts never meet another run's
            return importlib.import_module(module).main(args)
    return run
