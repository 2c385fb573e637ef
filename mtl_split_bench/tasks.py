"""`mtl-split bench tasks`: how MTL-Split and single-task models scale from 1 to 16 tasks.

For N tasks (the dataset's six factors, then synthetic 10-class heads: memory, bytes and
compute do not depend on what a head learned) we compare, side by side in one run:

    MTL-Split   one backbone on the edge, one features message per frame, N heads on the server
    STL split   N single-task models: N backbones on the edge, N messages, N one-head servers

per frame: edge memory (peak RSS of a process holding the edge models, as in bench memory),
edge compute, bytes on the wire (float32 as the paper sends, and int8+zstd), server compute,
and end-to-end latency = edge + bytes / link rate + server (the literature's model, every
term measured here except the link, which is --bandwidth). Random init, BatchNorm at its
initial statistics: float32 sizes and compute are exact, int8+zstd sizes only indicative.
"""
from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import numpy as np

from mtl_split_tools.link_model import LINKS_MBPS, transfer_ms

from .bundles import random_bundle, task_classes
from .frames import rendered_frames
from .memory import measure, peak_rss_kb
from .message_sizes import feature_message_bytes
from .output import add_common_arguments, png_path, print_table, progress, pyplot, save_figure, write_result
from .timing import median_ms, ort_session

WIRE = (("float32", "float32", "none"), ("int8+zstd", "int8", "zstd"))
RUNS = 20


def deployment_row(bundles: list[Path], frames: list[np.ndarray], memory: dict[str, Any], mbps: float
                   ) -> dict[str, Any]:
    """Per-frame cost of running every bundle of a deployment for each frame, timed the way
    it runs (all models in turn: timing one model alone keeps its weights in the CPU cache,
    which flatters N separate models)."""
    from mtl_split_core import codec
    from mtl_split_core.bundle import FEATURES_NAME, HEADS_FILE, load_manifest
    from mtl_split_core.runtime import EdgeModel

    edges = [EdgeModel(b) for b in bundles]
    servers = [ort_session(b / HEADS_FILE) for b in bundles]
    features = [e.features(frames) for e in edges]
    row: dict[str, Any] = {
        "edge_rss_mb": memory["peak_rss_mb"], "edge_param_bytes": memory["param_bytes"],
        "edge_ms": median_ms(lambda: [e.features(frames[:1]) for e in edges], RUNS),
        "server_ms": median_ms(lambda: [s.run({FEATURES_NAME: f[:1]}) for s, f in zip(servers, features)], RUNS)}
    for name, dtype, c in WIRE:
        nbytes = sum(np.mean([feature_message_bytes(codec.encode(v, dtype, c), load_manifest(b).model_id)
                              for v in f]) for b, f in zip(bundles, features))
        encode_ms = median_ms(lambda: [codec.encode(f[0], dtype, c) for f in features], RUNS)
        row[f"bytes_{name}"] = float(nbytes)
        row[f"e2e_ms_{name}"] = row["edge_ms"] + encode_ms + transfer_ms(nbytes, mbps) + row["server_ms"]
    return {k: round(v, 4) if isinstance(v, float) else v for k, v in row.items()}


def run(backbone: str, counts: tuple[int, ...], size: int, mbps: float, work: Path) -> dict[str, Any]:
    all_tasks = task_classes(max(counts))
    names = list(all_tasks)
    frames = rendered_frames(size, 8)
    baseline_kb = peak_rss_kb([])
    rows = []
    for n in progress(counts, desc="bench tasks", unit="N"):
        tasks = {t: all_tasks[t] for t in names[:n]}
        mtl = [random_bundle(work, backbone, tasks, size)]
        stl = [random_bundle(work, backbone, {t: all_tasks[t]}, size, seed=1 + i) for i, t in enumerate(names[:n])]
        for dep, bundles in (("mtl_split", mtl), ("stl_split", stl)):
            memory = measure([b / "backbone.onnx" for b in bundles], baseline_kb, 1)
            rows.append({"tasks": n, "deployment": dep, **deployment_row(bundles, frames, memory, mbps)})
    return {"benchmark": "tasks", "backbone": backbone, "input_size": size, "bandwidth_mbps": mbps,
            "weights": "random init", "wire": [w[0] for w in WIRE], "rows": rows,
            "e2e": "edge compute + encode + bytes*8/bandwidth + server compute (all measured except the link)"}


def plot(result: dict[str, Any], path: Path) -> Path:
    plt = pyplot()
    panels = [("edge_rss_mb", "edge peak RSS (MB)"), ("bytes_float32", "bytes/frame (float32)"),
              ("server_ms", "server compute (ms/frame)"),
              ("e2e_ms_float32", f"end-to-end ms @ {result['bandwidth_mbps']} Mbit/s")]
    fig, axes = plt.subplots(1, len(panels), figsize=(3.1 * len(panels), 3.0))
    for ax, (key, label) in zip(axes, panels):
        for dep, style in (("mtl_split", "o-"), ("stl_split", "s--")):
            rows = [r for r in result["rows"] if r["deployment"] == dep]
            ax.plot([r["tasks"] for r in rows], [r[key] for r in rows], style, label=dep)
        ax.set_xlabel("tasks")
        ax.set_title(label, fontsize=8)
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=7)
    fig.suptitle(f"{result['backbone']} at {result['input_size']} px: MTL-Split vs single-task models", fontsize=9)
    return save_figure(fig, path)


def add_arguments(p: argparse.ArgumentParser) -> None:
    add_common_arguments(p, "tasks")
    p.add_argument("--backbone", default="mobilenetv3_small_100", help="timm backbone of every model")
    p.add_argument("--counts", default=None, help="task counts (default 1,2,4,8,16; --full 1..16)")
    p.add_argument("--size", type=int, default=224, help="model input size")
    p.add_argument("--bandwidth", type=float, default=LINKS_MBPS["4g"], help="link Mbit/s for end-to-end latency")


def main(args: argparse.Namespace) -> int:
    counts = tuple(int(n) for n in args.counts.split(",")) if args.counts else (
        tuple(range(1, 17)) if args.full else (1, 2, 4, 8, 16))
    result = run(args.backbone, counts, args.size, args.bandwidth, args.work)
    print_table(result["rows"], [("tasks", "N"), ("deployment", "deployment"), ("edge_rss_mb", "edge RSS MB"),
                                 ("edge_ms", "edge ms"), ("bytes_float32", "B f32"),
                                 ("bytes_int8+zstd", "B int8+zstd"),
                                 ("server_ms", "server ms"), ("e2e_ms_float32", "e2e ms f32"),
                                 ("e2e_ms_int8+zstd", "e2e ms int8+zstd")])
    write_result(args.out, result)
    plot(result, png_path(args.out))
    return 0

