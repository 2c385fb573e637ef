"""`mtl-split bench bandwidth`: bytes per frame against accuracy, for every way to ship a frame.

Models are trained (cached under --work): the paper's MTL model (raw split tensor) and the
same model with a learned int8 bottleneck at the split, once per --bottleneck width. On the same held-out frames we
measure, per representation, the serialized ROS message size, the payload size, encode and
decode time, and every task's accuracy:

    images     raw rgb8, PNG, JPEG-75, JPEG-90 (the server decodes and runs the whole MTL model)
    features   float32 (the paper's wire), float16, int8, int8+zstd, per-channel int8+zstd
    bottleneck each bottleneck model's int8 code, with and without zstd

Aim: at least 10x fewer bytes than JPEG-90 of the same frames with at most 1 accuracy
point lost against the float32 split tensor. The result says which way it fell.
"""
from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import numpy as np

from .bundles import trained_bundle
from .frames import config_frames
from .image_codecs import decode_image, jpeg, png
from .message_sizes import feature_message_bytes, image_message_bytes
from .output import add_common_arguments, png_path, print_table, progress, pyplot, save_figure, write_result

TASKS = ("shape", "scale", "object_hue")
BACKBONE = "mobilenetv3_small_100"
# (name, dtype, codec, per_channel) of the raw split tensor, all from the MTL model.
FEATURE_CASES = (
    ("float32", "float32", "none", False),
    ("float16", "float16", "none", False),
    ("int8", "int8", "none", False),
    ("int8+zstd", "int8", "zstd", False),
    ("int8/ch+zstd", "int8", "zstd", True),
)
JPEG_QUALITIES = (75, 90)
AIM_RATIO, AIM_POINTS = 10.0, 1.0


def train_config(size: int, epochs: int, train_size: int, bottleneck: int | None) -> dict[str, Any]:
    """The raw `mtl-split train` config of the benchmark's models (demo-like, smaller)."""
    return {
        "name": f"bench_bandwidth_{'bn' + str(bottleneck) if bottleneck else 'mtl'}", "mode": "mtl", "seed": 0,
        "data": {"spec": "shapes", "size": size, "tasks": list(TASKS), "train_size": train_size,
                 "val_size": 500, "test_size": 1000},
        "model": {"backbone": BACKBONE, "split": -1, "head": "paper", "bottleneck": bottleneck},
        "train": {"epochs": epochs, "batch_size": 64, "lr": 2.0e-3, "weight_decay": 1.0e-2, "schedule": "cosine"},
    }


def add_training_arguments(p: argparse.ArgumentParser) -> None:
    """The training budget options (shared with bench split, which re-cuts this model)."""
    p.add_argument("--epochs", type=int, default=None, help="training epochs per model (default 6; --full 20)")
    p.add_argument("--train-size", type=int, default=None, help="training frames (default 6000; --full 40000)")


def training_config(args: argparse.Namespace, size: int, bottleneck: int | None = None) -> dict[str, Any]:
    """train_config at the budget the arguments ask for."""
    return train_config(size, args.epochs or (20 if args.full else 6),
                        args.train_size or (40000 if args.full else 6000), bottleneck)


def _accuracy(predictions: list[dict[str, Any]], labels: dict[str, np.ndarray]) -> dict[str, float]:
    return {t: round(float(np.mean(np.array([p[t].class_id for p in predictions]) == labels[t])), 4) for t in labels}


def _row(name: str, kind: str, messages: list[int], payloads: list[int], acc: dict[str, float],
         encode_ms: list[float], decode_ms: list[float]) -> dict[str, Any]:
    return {"name": name, "kind": kind, "message_bytes": float(np.mean(messages)),
            "payload_bytes": float(np.mean(payloads)), "accuracy": acc,
            "mean_accuracy": round(float(np.mean(list(acc.values()))), 4),
            "encode_ms": round(float(np.median(encode_ms)), 4), "decode_ms": round(float(np.median(decode_ms)), 4)}


def _timed(fn: Any, *args: Any) -> tuple[Any, float]:
    import time

    t = time.perf_counter()
    out = fn(*args)
    return out, (time.perf_counter() - t) * 1e3


def feature_rows(bundle: Path, frames: list[np.ndarray], labels: dict[str, np.ndarray],
                 cases: tuple[tuple[str, str | None, str | None, bool], ...], kind: str) -> list[dict[str, Any]]:
    """One row per wire format of this bundle's split tensor (None: the bundle's default)."""
    from mtl_split_core.runtime import EdgeModel, ServerModel

    server = ServerModel(bundle, max_batch=64)
    features = EdgeModel(bundle, max_batch=64).features(frames)
    rows = []
    for name, dtype, codec_name, per_channel in cases:
        edge = EdgeModel(bundle, dtype=dtype, codec_name=codec_name, per_channel=per_channel)
        encoded, enc_ms = zip(*(_timed(edge.encode, f) for f in features))
        decoded, dec_ms = zip(*(_timed(server.decode, e) for e in encoded))
        acc = _accuracy(server.predict(np.stack(decoded)), labels)
        model_id = edge.manifest.model_id
        rows.append(_row(name, kind, [feature_message_bytes(e, model_id) for e in encoded],
                         [e.wire_bytes for e in encoded], acc, list(enc_ms), list(dec_ms)))
    return rows


def image_rows(bundle: Path, frames: list[np.ndarray], labels: dict[str, np.ndarray]) -> list[dict[str, Any]]:
    """The frame itself sent to a server that runs the whole MTL model on what it decodes."""
    from mtl_split_core.runtime import EdgeModel, ServerModel

    edge, server = EdgeModel(bundle, max_batch=64), ServerModel(bundle, max_batch=64)
    codecs = {"raw rgb8": None, "PNG": png,
              **{f"JPEG-{q}": (lambda im, q=q: jpeg(im, q)) for q in JPEG_QUALITIES}}
    rows = []
    for name, encode in codecs.items():
        if encode is None:
            data = [(f.tobytes(), 0.0) for f in frames]
            seen, dec_ms = frames, [0.0] * len(frames)
            messages = [image_message_bytes(d, "rgb8", f.shape) for (d, _), f in zip(data, frames)]
        else:
            data = [_timed(encode, f) for f in frames]
            seen, dec_ms = zip(*(_timed(decode_image, d) for d, _ in data))
            messages = [image_message_bytes(d, name.split("-")[0].lower()) for d, _ in data]
        acc = _accuracy(server.predict(edge.features(list(seen))), labels)
        rows.append(_row(name, "image", messages, [len(d) for d, _ in data], acc, [t for _, t in data], list(dec_ms)))
    return rows


def headline(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """The aim, checked on whole serialized messages (what crosses the network) and on
    payloads (tensor vs image bytes, without either message's fixed fields)."""
    by = {r["name"]: r for r in rows}
    ref, jpg = by["float32"], by["JPEG-90"]
    loss = lambda r: 100 * (ref["mean_accuracy"] - r["mean_accuracy"])  # noqa: E731
    compact = [r for r in rows if r["kind"] == "bottleneck"]
    # The smallest code within the accuracy budget; if none is, the most accurate one.
    within = [r for r in compact if loss(r) <= AIM_POINTS]
    bn = min(within, key=lambda r: r["message_bytes"]) if within else min(compact, key=loss)
    points = -loss(bn)
    aim = f">= {AIM_RATIO:g}x fewer bytes than JPEG-90, <= {AIM_POINTS:g} point lost vs float32"
    out: dict[str, Any] = {"compact": bn["name"], "accuracy_points_vs_float32": round(points, 2), "aim": aim}
    for unit in ("message", "payload"):
        ratio = jpg[f"{unit}_bytes"] / bn[f"{unit}_bytes"]
        out[unit] = {"compact_bytes": bn[f"{unit}_bytes"], "jpeg90_bytes": jpg[f"{unit}_bytes"],
                     "float32_bytes": ref[f"{unit}_bytes"], "ratio_vs_jpeg90": round(ratio, 2),
                     "ratio_vs_float32": round(ref[f"{unit}_bytes"] / bn[f"{unit}_bytes"], 2),
                     "aim_met": bool(ratio >= AIM_RATIO and points >= -AIM_POINTS)}
    return out


def run(mtl_cfg: dict[str, Any], bn_cfgs: list[dict[str, Any]], frames: int, work: Path) -> dict[str, Any]:
    configs = {"mtl": mtl_cfg, **{f"bottleneck{c['model']['bottleneck']}": c for c in bn_cfgs}}
    models = {label: trained_bundle(work, cfg)
              for label, cfg in progress(configs.items(), desc="train (cached)", unit="model")}
    images, labels = config_frames(mtl_cfg, frames)
    rows = [*image_rows(models["mtl"], images, labels),
            *feature_rows(models["mtl"], images, labels, FEATURE_CASES, "features")]
    for label in list(models)[1:]:
        rows += feature_rows(models[label], images, labels,
                             ((f"{label}+int8", None, "none", False), (f"{label}+int8+zstd", None, "zstd", False)),
                             "bottleneck")
    return {"benchmark": "bandwidth", "backbone": BACKBONE, "input_size": mtl_cfg["data"]["size"],
            "tasks": list(TASKS), "frames": len(images),
            "bottleneck_channels": [c["model"]["bottleneck"] for c in bn_cfgs],
            "training": configs, "bundles": {k: str(v) for k, v in models.items()},
            "bytes": "message_bytes = serialized ROS message (SharedFeatures / Image / CompressedImage); "
                     "payload_bytes = tensor or image bytes", "rows": rows, "headline": headline(rows)}


def plot(result: dict[str, Any], path: Path) -> Path:
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6.4, 4.0))
    styles = {"image": ("s", "tab:red"), "features": ("o", "tab:blue"), "bottleneck": ("*", "tab:green")}
    for kind, (marker, color) in styles.items():
        rows = [r for r in result["rows"] if r["kind"] == kind]
        ax.scatter([r["message_bytes"] for r in rows], [100 * r["mean_accuracy"] for r in rows], marker=marker,
                   color=color, s=70 if marker == "*" else 36, label=kind, zorder=3)
    # Neighbours in bytes often share an accuracy: alternate their labels above and below.
    for i, r in enumerate(sorted(result["rows"], key=lambda r: r["message_bytes"])):
        ax.annotate(r["name"], (r["message_bytes"], 100 * r["mean_accuracy"]), fontsize=7, rotation=20,
                    xytext=(3, 5 if i % 2 else -12), textcoords="offset points")
    front = _pareto(result["rows"])
    ax.step([r["message_bytes"] for r in front], [100 * r["mean_accuracy"] for r in front], where="post",
            color="grey", alpha=0.5, lw=1, label="Pareto front")
    ax.set_xscale("log")
    ax.margins(x=0.15, y=0.12)
    ax.set_xlabel("bytes per frame on the wire (serialized message, log scale)")
    ax.set_ylabel(f"mean accuracy over {len(result['tasks'])} tasks (%)")
    ax.set_title(f"{result['backbone']} at {result['input_size']} px, {result['frames']} test frames", fontsize=9)
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=7, loc="lower right")
    return save_figure(fig, path)


def _pareto(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Rows no other row beats on both bytes and accuracy, by increasing bytes."""
    front, best = [], -1.0
    for r in sorted(rows, key=lambda r: (r["message_bytes"], -r["mean_accuracy"])):
        if r["mean_accuracy"] > best:
            front.append(r)
            best = r["mean_accuracy"]
    return front


def add_arguments(p: argparse.ArgumentParser) -> None:
    add_common_arguments(p, "bandwidth")
    p.add_argument("--size", type=int, default=None, help="input size (default 64; --full 224)")
    add_training_arguments(p)
    p.add_argument("--bottleneck", default="16,4", help="learned bottleneck widths (channels), comma-separated")
    p.add_argument("--frames", type=int, default=1000, help="test frames (at most the test split's 1000)")


def main(args: argparse.Namespace) -> int:
    size = args.size or (224 if args.full else 64)
    widths = [int(w) for w in args.bottleneck.split(",")]
    result = run(training_config(args, size), [training_config(args, size, w) for w in widths], args.frames, args.work)
    table = [{**r, **{f"acc_{t}": v for t, v in r["accuracy"].items()}} for r in result["rows"]]
    print_table(table, [("name", "representation"), ("message_bytes", "msg B"), ("payload_bytes", "payload B"),
                        *((f"acc_{t}", t) for t in result["tasks"]), ("mean_accuracy", "mean acc"),
                        ("encode_ms", "enc ms"), ("decode_ms", "dec ms")])
    h = result["headline"]
    for unit in ("message", "payload"):
        u = h[unit]
        print(f"{h['compact']} {unit}: {u['compact_bytes']:.0f} B/frame = {u['ratio_vs_jpeg90']}x fewer than JPEG-90, "
              f"{u['ratio_vs_float32']}x fewer than float32; {h['accuracy_points_vs_float32']:+.2f} accuracy points "
              f"vs float32 -> aim {'met' if u['aim_met'] else 'NOT met'}")
    write_result(args.out, result)
    plot(result, png_path(args.out))
    return 0

