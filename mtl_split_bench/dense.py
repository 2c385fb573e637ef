"""`mtl-split bench dense`: bytes per frame against mIoU / depth AbsRel / mAP@0.5 for split
points, bottleneck widths and rate weights of the dense model (training/configs/dense.yaml),
against the same frames sent as JPEG-90 and as H.264 streams, with the edge's and the server's
compute per frame.

Each (split, bottleneck, rate_lambda) is trained (cached under --work) and run in this process
through mtl_split_core.runtime, the nodes' code path; `evaluate` shows live equals offline.
Bytes are whole serialized messages (what DDS carries) and payloads. The reference is the same
split without a bottleneck (float32 features: the unsplit model's numbers, nothing lost on the
wire); JPEG-90 and H.264 rows run that reference model on what the server decodes. Test
scenes are independent, so the video rows stream them in runs of GOP frames (H.264's best
case is a camera that moves little: `bench codecs` measures that on classification).
Default: a short schedule (3 epochs, 1000 scenes); --full trains dense.yaml's schedule.
"""
from __future__ import annotations

import argparse
import copy
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import yaml

from .image_codecs import VIDEO_GOP, decode_image, jpeg, video
from .message_sizes import feature_message_bytes, image_message_bytes
from .output import add_common_arguments, png_path, print_table, progress, pyplot, save_figure, write_result

CONFIG = Path("training/configs/dense.yaml")


class Wire(NamedTuple):
    """One trained configuration: where the model is split, the bottleneck's channels (None:
    float32 features) and the rate term's weight (None: no entropy model, int8+zstd)."""
    split: str
    bottleneck: int | None = None
    rate_lambda: float | None = None

    @property
    def name(self) -> str:
        code = f"{self.bottleneck}ch" if self.bottleneck else "float32"
        return f"{self.split}/{code}" + (f" λ={self.rate_lambda:g}" if self.rate_lambda is not None else "")


REFERENCE = Wire("layer3")
GRID = (REFERENCE, Wire("layer2", 8), Wire("layer3", 4), Wire("layer3", 8), Wire("layer3", 16), Wire("layer4", 8),
        Wire("layer3", 8, 0.0003), Wire("layer3", 8, 0.001))
VIDEO_CRFS = (23, 28)
METRICS = (("segmentation", "miou"), ("depth", "abs_rel"), ("detection", "map50"))


def add_arguments(p: argparse.ArgumentParser) -> None:
    add_common_arguments(p, "dense")
    p.add_argument("--frames", type=int, default=120, help="test frames scored per configuration")


def _config(wire: Wire, full: bool) -> dict[str, Any]:
    raw = copy.deepcopy(yaml.safe_load(CONFIG.read_text()))
    raw["model"].update(split=wire.split, bottleneck=wire.bottleneck, entropy=wire.rate_lambda is not None)
    raw["train"].pop("rate_lambda", None)
    if wire.rate_lambda is not None:
        raw["train"]["rate_lambda"] = wire.rate_lambda
    raw["name"] = "dense_" + "_".join(str(v) for v in wire if v is not None)
    if not full:
        raw["train"]["epochs"] = 3
        raw["data"].update(train_size=1000, val_size=100)
    return raw


def _models(bundle: Path, **edge_options: Any) -> tuple[Any, Any]:
    """The edge and server halves of a bundle, one thread each (per-frame ms, not throughput)."""
    from mtl_split_core.runtime import EdgeModel, ServerModel

    return EdgeModel(bundle, threads=1, **edge_options), ServerModel(bundle, threads=1)


def score(edge: Any, server: Any, frames: list[np.ndarray], labels: list[dict[str, Any]]
          ) -> tuple[dict[str, float], list[Any]]:
    """The dense metrics of a model on frames (what the edge sees) and each frame's encoding."""
    from mtl_split_training.task_metrics import meter_for

    manifest = edge.manifest
    meters = {t.name: meter_for(t) for t in manifest.tasks if t.dense}
    size = (manifest.input.width, manifest.input.height)
    edge.reset_streams()
    encoded = []
    for image, truth in zip(frames, labels):
        enc = edge([image])[0]
        encoded.append(enc)
        result = server.predict(server.decode(enc)[None])[0]
        for task, meter in meters.items():
            extra = (size,) if manifest.task(task).kind == "detection" else ()
            meter.update(result[task].value, truth[task], *extra)
    metrics = {f"{task}_{k}": round(float(v), 4) for task, m in meters.items() for k, v in m.result().items()
               if k in dict(METRICS).values() or k in ("map", "rmse_m")}
    return metrics, encoded


def measure(bundle: Path, frames: list[np.ndarray], labels: list[dict[str, Any]]) -> dict[str, Any]:
    """One feature row: metrics, median message and payload bytes, edge and server ms per frame.
    Frames are independent scenes: an entropy-coded bundle codes each one alone."""
    from mtl_split_core.bundle import load_manifest

    from .timing import median_ms

    manifest = load_manifest(bundle)
    edge, server = _models(bundle, **({"keyframe_interval": 1} if manifest.features.codec == "entropy" else {}))
    metrics, encoded = score(edge, server, frames, labels)
    return {"kind": "features", "message_bytes": int(np.median([feature_message_bytes(e, manifest.model_id)
                                                                for e in encoded])),
            "payload_bytes": int(np.median([e.wire_bytes for e in encoded])),
            "split_shape": list(manifest.features.shape), "wire": f"{edge.dtype}/{edge.codec}",
            "edge_ms": round(median_ms(lambda: edge([frames[0]]), 20), 3),
            "server_ms": round(median_ms(lambda: server.predict(server.decode(encoded[0])[None]), 20), 3),
            **metrics}


def image_rows(reference: Path, frames: list[np.ndarray], labels: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The frame itself sent as JPEG-90 or H.264 (PyAV, as ffmpeg_image_transport sends it);
    the server decodes it and runs the whole reference model."""
    edge, server = _models(reference)
    rows = []
    data = [jpeg(f, 90) for f in frames]
    metrics, _ = score(edge, server, [decode_image(d) for d in data], labels)
    rows.append({"name": "JPEG-90", "kind": "image", "message_bytes": int(np.median(
        [image_message_bytes(d, "jpeg") for d in data])), "payload_bytes": int(np.median([len(d) for d in data])),
        **metrics})
    runs = [frames[i:i + VIDEO_GOP] for i in range(0, len(frames), VIDEO_GOP)]
    for crf in VIDEO_CRFS:
        packets, seen = [], []
        for run in runs:
            p, d, _, _ = video(run, "libx264", crf)
            packets += p
            seen += d
        metrics, _ = score(edge, server, seen, labels)
        rows.append({"name": f"H.264 CRF {crf}", "kind": "video",
                     "message_bytes": round(sum(image_message_bytes(p, "h264") for p in packets) / len(seen)),
                     "payload_bytes": round(sum(len(p) for p in packets) / len(seen)), **metrics})
    return rows


def plot(rows: list[dict[str, Any]], path: Path) -> Path:
    plt = pyplot()
    fig, axes = plt.subplots(1, 3, figsize=(11, 3.4))
    colors = {"features": "tab:blue", "image": "tab:red", "video": "tab:orange"}
    for ax, (task, metric) in zip(axes, METRICS):
        for r in rows:
            ax.scatter(r["message_bytes"], r[f"{task}_{metric}"], color=colors[r["kind"]], s=14)
            ax.annotate(r["name"], (r["message_bytes"], r[f"{task}_{metric}"]), fontsize=5)
        ax.set_xscale("log")
        ax.set_xlabel("bytes per message")
        ax.set_title(f"{task} {metric}" + (" (lower is better)" if metric == "abs_rel" else ""))
    for kind, color in colors.items():
        axes[0].scatter([], [], color=color, label=kind)
    axes[0].legend(fontsize=7)
    return save_figure(fig, path)


def main(args: argparse.Namespace) -> int:
    from mtl_split_training.datasets import DataOptions, open_data

    from .bundles import trained_bundle

    reference = _config(REFERENCE, args.full)
    source = open_data("scenes", DataOptions(size=reference["data"]["size"], tasks=tuple(reference["data"]["tasks"]),
                                             seed=reference["seed"], test_size=reference["data"]["test_size"]))
    test = source.split("test")
    samples = [test.sample(i) for i in range(min(args.frames, len(test)))]
    frames, labels = [s[0] for s in samples], [s[1] for s in samples]
    bundles = {w: trained_bundle(args.work, _config(w, args.full)) for w in progress(GRID, desc="training")}
    rows = [{"name": w.name, "split": w.split, "bottleneck": w.bottleneck or "float32",
             "rate_lambda": w.rate_lambda, **measure(b, frames, labels)}
            for w, b in progress(bundles.items(), desc="measuring")]
    rows += image_rows(bundles[REFERENCE], frames, labels)
    ref, jpeg90 = rows[0], next(r for r in rows if r["name"] == "JPEG-90")
    for r in rows:
        r["jpeg90_over_message"] = round(jpeg90["message_bytes"] / r["message_bytes"], 2)
        r["miou_points_lost"] = round(100 * (ref["segmentation_miou"] - r["segmentation_miou"]), 2)
        r["map50_points_lost"] = round(100 * (ref["detection_map50"] - r["detection_map50"]), 2)
    print_table(rows, [("name", "wire"), ("message_bytes", "msg B"), ("payload_bytes", "payload B"),
                       ("jpeg90_over_message", "JPEG-90 / msg"), ("segmentation_miou", "mIoU"),
                       ("depth_abs_rel", "AbsRel"), ("detection_map50", "mAP@0.5"), ("edge_ms", "edge ms"),
                       ("server_ms", "server ms")])
    result = {"config": str(CONFIG), "full": args.full, "frames": len(frames), "video_gop": VIDEO_GOP, "rows": rows}
    out = write_result(args.out, result)
    plot(rows, png_path(out))
    return 0
