"""`mtl-split bench dense`: bytes per frame against mIoU / depth AbsRel / mAP@0.5 for split
points and bottleneck widths of the dense model (training/configs/dense.yaml), against the
same frames as JPEG-90, with the edge's and the server's compute per frame.

Each (split, bottleneck) is trained (cached under --work) and run in this process through
mtl_split_core.runtime, the nodes' code path; `evaluate` shows live equals offline. The
reference is the same split without a bottleneck (float32 features: the unsplit model's
numbers, nothing lost on the wire). Default: a short schedule (3 epochs, 1000 scenes);
--full trains dense.yaml's 8 epochs on 2000.
"""
from __future__ import annotations

import argparse
import copy
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from .output import add_common_arguments, png_path, print_table, progress, pyplot, save_figure, write_result

CONFIG = Path("training/configs/dense.yaml")
# (split point, bottleneck channels); None = float32 features (the reference).
GRID = (("layer3", None), ("layer2", 8), ("layer3", 4), ("layer3", 8), ("layer3", 16), ("layer4", 8))
METRICS = (("segmentation", "miou"), ("depth", "abs_rel"), ("detection", "map50"))


def add_arguments(p: argparse.ArgumentParser) -> None:
    add_common_arguments(p, "dense")
    p.add_argument("--frames", type=int, default=100, help="test frames scored per configuration")


def _config(split: str, bottleneck: int | None, full: bool) -> dict[str, Any]:
    raw = copy.deepcopy(yaml.safe_load(CONFIG.read_text()))
    raw["model"].update(split=split, bottleneck=bottleneck)
    raw["name"] = f"dense_{split}_{bottleneck or 'float32'}"
    if not full:
        raw["train"]["epochs"] = 3
        raw["data"].update(train_size=1000, val_size=100)
    return raw


def measure(bundle: Path, frames: list[np.ndarray], labels: list[dict[str, Any]]) -> dict[str, Any]:
    """Metrics, median wire bytes, edge and server ms per frame of one bundle on the frames."""
    from mtl_split_core.bundle import load_manifest
    from mtl_split_core.runtime import EdgeModel, ServerModel
    from mtl_split_training.task_metrics import meter_for

    from .timing import median_ms

    manifest = load_manifest(bundle)
    edge, server = EdgeModel(bundle, threads=1), ServerModel(bundle, threads=1)
    meters = {t.name: meter_for(t) for t in manifest.tasks if t.dense}
    wire = []
    size = (manifest.input.width, manifest.input.height)
    for image, truth in zip(frames, labels):
        enc = edge([image])[0]
        wire.append(enc.wire_bytes)
        result = server.predict(server.decode(enc)[None])[0]
        for task, meter in meters.items():
            if manifest.task(task).kind == "detection":
                meter.update(result[task].value, truth[task], size)
            else:
                meter.update(result[task].value, truth[task])
    enc = edge([frames[0]])[0]
    return {"bytes_per_frame": int(np.median(wire)), "split_shape": list(manifest.features.shape),
            "wire": f"{edge.dtype}/{edge.codec}",
            "edge_ms": round(median_ms(lambda: edge([frames[0]]), 20), 3),
            "server_ms": round(median_ms(lambda: server.predict(server.decode(enc)[None]), 20), 3),
            **{f"{task}_{k}": round(float(v), 4) for task, m in meters.items() for k, v in m.result().items()
               if k in dict(METRICS).values() or k in ("map", "rmse_m")}}


def main(args: argparse.Namespace) -> int:
    import cv2

    from mtl_split_training.datasets import DataOptions, open_data

    from .bundles import trained_bundle

    reference = _config(*GRID[0], args.full)
    source = open_data("scenes", DataOptions(size=reference["data"]["size"], tasks=tuple(reference["data"]["tasks"]),
                                             seed=reference["seed"], test_size=reference["data"]["test_size"]))
    test = source.split("test")
    samples = [test.sample(i) for i in range(min(args.frames, len(test)))]
    frames, labels = [s[0] for s in samples], [s[1] for s in samples]
    jpeg90 = int(np.median([len(cv2.imencode(".jpg", cv2.cvtColor(f, cv2.COLOR_RGB2BGR),
                                             [cv2.IMWRITE_JPEG_QUALITY, 90])[1]) for f in frames]))
    rows = []
    for split, width in progress(GRID, desc="dense configurations"):
        bundle = trained_bundle(args.work, _config(split, width, args.full))
        rows.append({"split": split, "bottleneck": width or "float32", **measure(bundle, frames, labels)})
    ref = rows[0]
    for r in rows:
        r["jpeg90_over_features"] = round(jpeg90 / r["bytes_per_frame"], 2)
        r["miou_points_lost"] = round(100 * (ref["segmentation_miou"] - r["segmentation_miou"]), 2)
        r["map50_points_lost"] = round(100 * (ref["detection_map50"] - r["detection_map50"]), 2)
    print_table(rows, [("split", "split"), ("bottleneck", "k"), ("bytes_per_frame", "B/frame"),
                       ("jpeg90_over_features", "JPEG-90 / B"), ("segmentation_miou", "mIoU"),
                       ("depth_abs_rel", "AbsRel"), ("detection_map50", "mAP@0.5"), ("edge_ms", "edge ms"),
                       ("server_ms", "server ms")])
    result = {"config": str(CONFIG), "full": args.full, "frames": len(frames), "jpeg90_bytes_per_frame": jpeg90,
              "h264": "not measured here: PyAV is not installed in this environment", "rows": rows}
    out = write_result(args.out, result)
    plt = pyplot()
    fig, axes = plt.subplots(1, 3, figsize=(11, 3.4))
    for ax, (task, metric) in zip(axes, METRICS):
        for r in rows:
            ax.scatter(r["bytes_per_frame"], r[f"{task}_{metric}"], color="tab:blue")
            ax.annotate(f"{r['split']}/{r['bottleneck']}", (r["bytes_per_frame"], r[f"{task}_{metric}"]), fontsize=6)
        ax.axvline(jpeg90, color="tab:red", ls="--", label="JPEG-90 of the frame")
        ax.set_xscale("log")
        ax.set_xlabel("bytes per frame")
        ax.set_title(f"{task} {metric}")
    axes[0].legend(fontsize=7)
    save_figure(fig, png_path(out))
    return 0
