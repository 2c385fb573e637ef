"""Bag -> pipeline -> report: accuracy against ground truth, latency, bytes, FPS.

Live mode replays the bag into real edge and server nodes (started here, or already
running with --attach). Offline mode runs the same bundle on the same frames in this
process through mtl_split_core.runtime, which the nodes use too: with no drops, live and
offline must agree frame for frame.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from mtl_split_core.bundle import Manifest, load_manifest
from mtl_split_core.dense import to_source
from mtl_split_core.errors import MtlSplitError
from mtl_split_core.preprocess import geometry
from mtl_split_core.runtime import DenseResult

from mtl_split_ros.launch_plan import LaunchArgs, plan

from . import metrics, report
from .bags import COMPRESSED, Frame, decode_frame, read_frames
from .processes import NodeProcesses


@dataclass(frozen=True)
class EvalOptions:
    bundle: Path
    bag: Path
    out: Path
    rate: float | None = 1.0  # real-time factor; None = as fast as the pipeline takes it
    compressed: bool = False  # replay raw frames as JPEG CompressedImage
    attach: bool = False  # use a running pipeline instead of starting one
    offline: bool = False
    namespace: str = ""
    edge_params: dict[str, Any] | None = None  # extra edge parameters (dtype, codec, ...)
    limit: int | None = None


# Frames whose own raw/JPEG size is measured (decoded one at a time: HD bags are large).
SIZE_SAMPLE = 20


def _image_sizes(frames: list[Frame]) -> dict[str, int]:
    """Median bytes/frame of the camera image itself, raw and as JPEG: the paper's baseline."""
    from mtl_split_core.imaging import to_array

    picked = frames[:: max(1, len(frames) // SIZE_SAMPLE)][:SIZE_SAMPLE]

    def med(fn) -> int:
        return int(np.median([fn(to_array(decode_frame(f), "rgb8")) for f in picked]))

    jpeg = lambda q: lambda im: len(cv2.imencode(".jpg", cv2.cvtColor(im, cv2.COLOR_RGB2BGR),
                                                 [cv2.IMWRITE_JPEG_QUALITY, q])[1])
    return {"raw_image": med(lambda im: im.nbytes), "jpeg90_image": med(jpeg(90)), "jpeg75_image": med(jpeg(75))}


def _task_report(manifest: Manifest, frames: list[Frame], predicted: dict[int, dict[str, Any]]) -> dict:
    """Per task: accuracy, macro-F1 and confusion (classification), or the dense kind's
    metrics (mtl_split_training.task_metrics, as in training: mIoU, AbsRel/RMSE, COCO mAP),
    over the frames with both a label and a result, in the bag frames' pixels."""
    out = {}
    for task in manifest.tasks:
        pairs = [(f.labels[task.name], predicted[f.stamp_ns][task.name]) for f in frames
                 if task.name in predicted.get(f.stamp_ns, {}) and task.name in f.labels]
        if not pairs:
            continue
        if not task.dense:
            truth, pred = zip(*pairs)
            out[task.name] = metrics.task_metrics(truth, pred, task.classes)
            continue
        try:
            from mtl_split_training.task_metrics import meter_for
        except ImportError as e:
            raise MtlSplitError(f"scoring the dense task {task.name} needs torchmetrics ({e}); install "
                                "requirements/training.txt (make setup)") from e
        meter = meter_for(task)
        sizes = [_label_size(f.labels) for f in frames if task.name in predicted.get(f.stamp_ns, {})
                 and task.name in f.labels]
        for (truth, pred), size in zip(pairs, sizes):
            if task.kind == "detection":
                meter.update(pred, truth, size)
            else:
                meter.update(pred, truth)
        out[task.name] = {"kind": task.kind, **meter.result()}
    return out


def _label_size(labels: dict[str, Any]) -> tuple[int, int]:
    """(width, height) of a frame's dense labels (its image's size)."""
    arrays = [v for v in labels.values() if isinstance(v, np.ndarray)]
    return (arrays[0].shape[1], arrays[0].shape[0]) if arrays else (0, 0)


def _in_frame(manifest: Manifest, value: Any, size: tuple[int, int]) -> Any:
    """A dense result on the model input's grid -> on the bag frame's (width, height)."""
    return to_source(value, geometry(*size, manifest.input), size)


def _check_labels(manifest: Manifest, frames: list[Frame]) -> None:
    labelled = set().union(*(f.labels for f in frames))
    if not labelled & set(manifest.task_names):
        raise MtlSplitError(f"the bag labels {sorted(labelled) or 'nothing'}, the bundle predicts "
                            f"{manifest.task_names}: make the bag with --tasks matching the bundle")


def run_offline(opts: EvalOptions, manifest: Manifest, frames: list[Frame]) -> tuple[dict, dict[int, dict[str, int]]]:
    from mtl_split_core.runtime import EdgeModel, ServerModel

    from mtl_split_core.imaging import decode, frame_size
    from mtl_split_ros.params import EDGE

    edge_kw = {**EDGE.defaults(), **(opts.edge_params or {})}
    edge = EdgeModel(opts.bundle, dtype=edge_kw["dtype"] or None, codec_name=edge_kw["codec"] or None,
                     per_channel=bool(edge_kw["per_channel"]))
    server = ServerModel(opts.bundle)
    reduce_for = manifest.input if edge_kw["jpeg_reduced_decode"] else None
    start = time.perf_counter()
    payload, lat, predicted = [], [], {}
    for f in frames:  # decoded one at a time, as the edge decodes them
        msg = decode_frame(f)
        t = time.perf_counter()
        enc = edge([decode(msg, edge_kw["max_pixels"], reduce_for)])[0]
        pred = server.predict(server.decode(enc)[None])[0]
        lat.append((time.perf_counter() - t) * 1e3)
        payload.append(len(enc.data))
        size = frame_size(msg)
        predicted[f.stamp_ns] = {k: _in_frame(manifest, p.value, size) if isinstance(p, DenseResult) else p.class_id
                                 for k, p in pred.items()}
    elapsed = time.perf_counter() - start
    extra = {"fps": round(len(frames) / elapsed, 2), "latency_ms": {"end_to_end": metrics.percentiles(lat)},
             "bytes_per_frame": {"features_payload": int(np.median(payload))} | _image_sizes(frames),
             "frames": {"sent": len(frames), "received": len(frames), "dropped": 0, "foreign": 0}, "e2e": lat}
    return extra, predicted


def run_live(opts: EvalOptions, manifest: Manifest, frames: list[Frame]) -> tuple[dict, dict[int, dict[str, int]]]:
    """Replay into the user's running pipeline (--attach), or into nodes started here on a
    private DDS domain, so that no other run on this host sees our frames or we theirs."""
    from .domain import PrivateDomain

    if opts.attach:
        return _replay_live(opts, manifest, frames, None)
    with PrivateDomain():
        nodes = plan("pipeline", LaunchArgs(bundle=str(opts.bundle.resolve()), camera_topic=frames[0].topic,
                                            namespace=opts.namespace,
                                            overrides={"edge": dict(opts.edge_params or {})}))
        with NodeProcesses(nodes, log_dir=opts.out / "logs") as procs:
            return _replay_live(opts, manifest, frames, procs)


def _replay_live(opts: EvalOptions, manifest: Manifest, frames: list[Frame], procs: NodeProcesses | None
                 ) -> tuple[dict, dict[int, dict[str, Any]]]:
    import os

    from .replay import replay
    from .replay_stats import end_to_end_ms, replay_stats

    started = time.time()
    dense = [t for t in manifest.tasks if t.dense]
    log = replay(opts.namespace, frames, opts.rate, dense=dense)
    if procs is not None:
        procs.check_alive()
    stats = replay_stats(log)
    stats["bytes_per_frame"] |= _image_sizes(frames)
    extra = {**stats, "ros_domain_id": int(os.environ.get("ROS_DOMAIN_ID", 0)),
             "replay_unix_s": [round(started, 3), round(time.time(), 3)], "e2e": end_to_end_ms(log)}
    predicted = {ns: {p.task: p.class_id for p in r.predictions} for ns, r in log.results.items()}
    if dense:
        from mtl_split_core.imaging import frame_size

        size = frame_size(decode_frame(frames[0]))
        for ns, results in log.dense.items():
            predicted.setdefault(ns, {}).update({t: _in_frame(manifest, v, size) for t, v in results.items()})
    return extra, predicted


def evaluate(opts: EvalOptions) -> dict:
    manifest = load_manifest(opts.bundle)
    frames = read_frames(opts.bag)[: opts.limit]
    _check_labels(manifest, frames)
    if opts.compressed and frames[0].msgtype != COMPRESSED:  # live and offline see the same JPEGs
        from .replay import recompress

        frames = [recompress(f) for f in frames]
    mode = "offline" if opts.offline else "live"
    extra, predicted = (run_offline if opts.offline else run_live)(opts, manifest, frames)
    e2e = extra.pop("e2e")
    result = {
        "mode": mode, "bag": str(opts.bag), "bundle": str(opts.bundle), "model_id": manifest.model_id,
        "rate": "max" if opts.rate is None else opts.rate, "edge_params": opts.edge_params or {},
        "tasks": _task_report(manifest, frames, predicted), **extra,
        "predictions": {str(ns): {t: v for t, v in p.items() if isinstance(v, int)} for ns, p in predicted.items()},
        "machine": report.machine(),
    }
    report.write(opts.out, result, e2e)
    return result
