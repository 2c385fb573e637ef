"""`mtl-split bench split`: every candidate split point of a backbone, side by side.

One network is cut at every stage boundary of the backbone (timm's feature stages, see
mtl_split_training.backbones): the weights stay the same, only what runs on the edge moves.
So float32 accuracy is identical at every split and any difference comes from the wire
format. Per split we measure edge compute (ONNX Runtime, batch 1), server compute (rest of
the backbone + heads), and per wire format (float32, float16, int8, int8+zstd) the message
bytes, encode/decode time and — for trained weights — every task's accuracy. The image
baseline (JPEG-90 to a server that runs the whole model) and the all-on-edge option are
measured too, so `mtl-split plan` can compare every deployment.

Measurements (one entry each in split.json):
- the backbone at 224 px with random weights (BatchNorm statistics from rendered scenes):
  compute and dense sizes are exact; zstd sizes only indicate, accuracy is not measured;
- the bandwidth benchmark's trained MTL model (64 px; --full 224) re-cut at every split:
  everything, accuracy included. Training a separate model per split does not fit the small
  budget and is not needed: a re-cut model computes the same function.
"""
from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path
from typing import Any

import numpy as np

from mtl_split_core.bundle import MANIFEST_SCHEMA_VERSION
from mtl_split_tools.plan_command import DEFAULT_REPORT

from .bandwidth import add_training_arguments, training_config
from .bundles import cached_dir, random_model, task_classes, trained_run
from .frames import config_frames, rendered_frames
from .image_codecs import decode_image, jpeg
from .message_sizes import feature_message_bytes, image_message_bytes
from .output import add_common_arguments, png_path, print_table, progress, pyplot, save_figure, write_result
from .timing import median_ms, ort_session

CODECS: tuple[tuple[str, str, str], ...] = (("float32", "float32", "none"), ("float16", "float16", "none"),
                                            ("int8", "int8", "none"), ("int8+zstd", "int8", "zstd"))
RUNS = 20


def recut(model: Any, split: int) -> Any:
    """The same network with the edge/server boundary after stage `split` (SplitModel's state
    dict does not depend on the split point)."""
    from mtl_split_training.models import SplitModel

    if model.spec.bottleneck:
        raise ValueError("a bottleneck is trained for one split point; re-cut a plain MTL model")
    new = SplitModel(dataclasses.replace(model.spec, split=split), model.tasks, load_pretrained=False)
    new.load_state_dict(model.state_dict())
    return new.eval()


def split_bundles(work: Path, source: str, backbone: str, size: int) -> list[Path]:
    """One bundle per split point (cached). source: 'random' or a trained run directory."""
    def build(out: Path) -> None:
        from mtl_split_core.bundle import InputSpec
        from mtl_split_training.export import export_bundle
        from mtl_split_training.models import load_model

        from .bandwidth import TASKS

        if source == "random":
            model = random_model(backbone, task_classes(len(TASKS)), size, calibrate=True)
            spec = InputSpec(width=size, height=size)
        else:
            model, spec, _ = load_model(Path(source))
        for k in range(len(model.stage_infos)):
            export_bundle(recut(model, k), out / f"split{k}", input_spec=spec,
                          extra={"mode": "recut", "source": source})

    d = cached_dir(work / "split", {"backbone": backbone, "size": size, "source": source,
                                    "manifest_schema": MANIFEST_SCHEMA_VERSION}, build)
    return sorted((p for p in d.iterdir() if p.name.startswith("split")), key=lambda p: int(p.name[5:]))


def _accuracy(server: Any, features: np.ndarray, labels: dict[str, np.ndarray] | None) -> dict[str, float] | None:
    if labels is None:
        return None
    preds = server.predict(features)
    return {t: round(float(np.mean(np.array([p[t].class_id for p in preds]) == y)), 4) for t, y in labels.items()}


def measure_split(bundle: Path, frames: list[np.ndarray], labels: dict[str, np.ndarray] | None) -> dict[str, Any]:
    from mtl_split_core import codec
    from mtl_split_core.bundle import BACKBONE_FILE, FEATURES_NAME, HEADS_FILE, IMAGE_INPUT, load_manifest
    from mtl_split_core.preprocess import preprocess
    from mtl_split_core.runtime import EdgeModel, ServerModel

    manifest = load_manifest(bundle)
    edge_sess, server_sess = ort_session(bundle / BACKBONE_FILE), ort_session(bundle / HEADS_FILE)
    x = preprocess(frames[:1], manifest.input)
    f = edge_sess.run({IMAGE_INPUT: x}, [FEATURES_NAME])[0]
    row: dict[str, Any] = {
        "split_index": manifest.extra["split_index"], "split_point": manifest.split_point,
        "feature_shape": list(manifest.features.shape),
        "edge_params": manifest.extra["edge_params"], "server_params": manifest.extra["server_params"],
        "edge_ms": round(median_ms(lambda: edge_sess.run({IMAGE_INPUT: x}, [FEATURES_NAME]), RUNS), 3),
        "server_ms": round(median_ms(lambda: server_sess.run({FEATURES_NAME: f}), RUNS), 3),
    }
    features = EdgeModel(bundle, max_batch=32).features(frames)
    server = ServerModel(bundle, max_batch=32)
    row["codecs"] = {}
    for name, dtype, c in CODECS:
        encoded = [codec.encode(v, dtype, c) for v in features]
        decoded = np.stack([codec.decode(e) for e in encoded])
        row["codecs"][name] = {
            "message_bytes": float(np.mean([feature_message_bytes(e, manifest.model_id) for e in encoded])),
            "payload_bytes": float(np.mean([e.wire_bytes for e in encoded])),
            "encode_ms": round(median_ms(lambda: codec.encode(features[0], dtype, c), RUNS), 4),
            "decode_ms": round(median_ms(lambda: codec.decode(encoded[0]), RUNS), 4),
            "accuracy": _accuracy(server, decoded, labels),
        }
    return row


def measure_image(frames: list[np.ndarray], last: dict[str, Any], spec: Any) -> dict[str, Any]:
    """JPEG-90 frames to a server running the whole model; and the whole model on the edge."""
    from mtl_split_core.preprocess import preprocess

    data = [jpeg(f, 90) for f in frames]
    return {
        "preprocess_ms": round(median_ms(lambda: preprocess(frames[:1], spec), RUNS), 4),
        "jpeg90_message_bytes": float(np.mean([image_message_bytes(d, "jpeg") for d in data])),
        "jpeg90_encode_ms": round(median_ms(lambda: jpeg(frames[0], 90), RUNS), 4),
        "jpeg90_decode_ms": round(median_ms(lambda: decode_image(data[0]), RUNS), 4),
        "raw_message_bytes": float(image_message_bytes(frames[0].tobytes(), "rgb8", frames[0].shape)),
        "full_model_ms": round(last["edge_ms"] + last["server_ms"], 3),
    }


def measurement(work: Path, source: str, backbone: str, size: int, frames: list[np.ndarray],
                labels: dict[str, np.ndarray] | None, weights: str) -> dict[str, Any]:
    from mtl_split_core.bundle import load_manifest

    bundles = split_bundles(work, source, backbone, size)
    rows = [measure_split(b, frames, labels) for b in progress(bundles, desc=f"{backbone} {size}px {weights}",
                                                                   unit="split")]
    return {"backbone": backbone, "input_size": size, "weights": weights, "frames": len(frames),
            "accuracy_measured": labels is not None, "tasks": load_manifest(bundles[0]).task_names,
            "rows": rows, "image": measure_image(frames, rows[-1], load_manifest(bundles[0]).input)}


def run(backbones: tuple[str, ...], size: int, trained: dict[str, Any] | None, frames: int,
        work: Path) -> dict[str, Any]:
    """trained: the raw training config of the model to re-cut (None: random weights only)."""
    out = []
    for backbone in backbones:
        out.append(measurement(work, "random", backbone, size, rendered_frames(size, min(frames, 20)), None,
                               "random init, BatchNorm statistics from rendered scenes"))
    if trained:
        run_dir = trained_run(work, trained)
        images, labels = config_frames(trained, frames)
        out.append(measurement(work, str(run_dir), trained["model"]["backbone"], trained["data"]["size"],
                               images, labels,
                               "trained (the bandwidth benchmark's MTL model), re-cut at every split"))
    return {"benchmark": "split", "codecs": [c[0] for c in CODECS], "measurements": out,
            "note": "edge_ms/server_ms: ONNX Runtime CPU batch 1 median on this machine; "
                    "mtl-split plan --server-speedup scales the server side"}


def plot(result: dict[str, Any], path: Path) -> Path:
    plt = pyplot()
    ms = result["measurements"]
    fig, axes = plt.subplots(1, len(ms), figsize=(4.2 * len(ms), 3.4), squeeze=False)
    for ax, m in zip(axes[0], ms):
        idx = [r["split_index"] for r in m["rows"]]
        for name in ("float32", "int8+zstd"):
            ax.plot(idx, [r["codecs"][name]["message_bytes"] for r in m["rows"]], "o-", label=f"{name} bytes")
        ax.axhline(m["image"]["jpeg90_message_bytes"], color="tab:red", ls="--", lw=1, label="JPEG-90 bytes")
        ax.set_yscale("log")
        ax.set_xticks(idx, [r["split_point"] for r in m["rows"]], rotation=30, fontsize=7)
        ax.set_ylabel("bytes/frame")
        twin = ax.twinx()
        twin.bar(idx, [r["edge_ms"] for r in m["rows"]], alpha=0.25, color="grey", label="edge ms")
        twin.set_ylabel("edge compute (ms)")
        ax.set_zorder(twin.get_zorder() + 1)
        ax.patch.set_visible(False)
        ax.set_title(f"{m['backbone']} {m['input_size']}px ({m['weights'].split(',')[0].split(' (')[0]})", fontsize=8)
        ax.legend(fontsize=6, loc="upper right")
    return save_figure(fig, path)


def add_arguments(p: argparse.ArgumentParser) -> None:
    add_common_arguments(p, "split")
    p.set_defaults(out=DEFAULT_REPORT)  # where `mtl-split plan` reads it
    p.add_argument("--backbones", default=None,
                   help="comma-separated (default mobilenetv3_small_100; --full adds efficientnet_b0,vgg16)")
    p.add_argument("--size", type=int, default=224, help="input size of the random-weight measurement")
    p.add_argument("--trained-size", type=int, default=None,
                   help="input size of the trained-model measurement (default 64; --full 224; 0 = skip)")
    p.add_argument("--frames", type=int, default=500, help="test frames for accuracy")
    add_training_arguments(p)


def main(args: argparse.Namespace) -> int:
    backbones = tuple(args.backbones.split(",")) if args.backbones else (
        ("mobilenetv3_small_100", "efficientnet_b0", "vgg16") if args.full else ("mobilenetv3_small_100",))
    trained = args.trained_size if args.trained_size is not None else (224 if args.full else 64)
    result = run(backbones, args.size, training_config(args, trained) if trained else None, args.frames, args.work)
    for m in result["measurements"]:
        print(f"{m['backbone']} at {m['input_size']} px, {m['weights']}:")
        table = [{**r, **{f"{c}_B": r["codecs"][c]["message_bytes"] for c in result["codecs"]},
                  **({f"{c}_acc": float(np.mean(list(r["codecs"][c]["accuracy"].values())))
                      for c in result["codecs"]} if m["accuracy_measured"] else {})} for r in m["rows"]]
        cols = [("split_index", "k"), ("split_point", "split"), ("edge_ms", "edge ms"), ("server_ms", "server ms"),
                *((f"{c}_B", f"{c} B") for c in result["codecs"])]
        if m["accuracy_measured"]:
            cols += [(f"{c}_acc", f"{c} acc") for c in result["codecs"]]
        print_table(table, cols)
    write_result(args.out, result)
    plot(result, png_path(args.out))
    return 0

