"""Per task, what the bundle predicted on a bag's frames, and how well where labels exist.

Every task gets a description of its predictions (a robot's own unlabelled bag still says
what the model sees): classification a class histogram and the mean score; segmentation the
share of pixels per class; depth the median and mean metres; detection boxes per frame, a
class histogram and the mean score. Tasks with labels add their metrics: accuracy, macro-F1
and confusion, or the dense kind's training metrics (mIoU, AbsRel/RMSE, COCO mAP) on the
bag frames' pixels.
"""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Any

import numpy as np

from mtl_split_core.bundle import Manifest, TaskSpec
from mtl_split_core.dense import UNLABELLED, Boxes
from mtl_split_core.errors import MtlSplitError

from . import metrics


@dataclass(frozen=True)
class Classified:
    """A classification result of one frame."""

    class_id: int
    score: float


def _histogram(task: TaskSpec, ids: list[int]) -> dict[str, int]:
    counts = Counter(ids)
    return {task.classes[k]: counts[k] for k in sorted(counts)}


def _predictions(task: TaskSpec, values: list[Any]) -> dict[str, Any]:
    if task.kind == "classification":
        return {"histogram": _histogram(task, [v.class_id for v in values]),
                "mean_score": round(float(np.mean([v.score for v in values])), 4)}
    if task.kind == "segmentation":
        pixels = np.concatenate([v[v != UNLABELLED].ravel() for v in values])
        counts = np.bincount(pixels.astype(np.int64), minlength=task.num_classes)
        return {"pixel_share": {task.classes[k]: round(float(c / max(pixels.size, 1)), 4)
                                for k, c in enumerate(counts) if c}}
    if task.kind == "depth":
        metres = np.concatenate([v[np.isfinite(v)].ravel() for v in values])
        return {"median_m": round(float(np.median(metres)), 3) if metres.size else None,
                "mean_m": round(float(metres.mean()), 3) if metres.size else None}
    boxes: list[Boxes] = values
    scores = np.concatenate([b.scores for b in boxes])
    return {"per_frame": round(float(np.mean([len(b) for b in boxes])), 3),
            "histogram": _histogram(task, [int(c) for b in boxes for c in b.classes]),
            "mean_score": round(float(scores.mean()), 4) if scores.size else None}


def _scores(task: TaskSpec, pairs: list[tuple[Any, Any]], frame_size: tuple[int, int]) -> dict[str, Any]:
    """pairs: (label, prediction)."""
    if task.kind == "classification":
        truth, pred = [p[0] for p in pairs], [p[1].class_id for p in pairs]
        return metrics.task_metrics(truth, pred, task.classes)
    try:
        from mtl_split_training.task_metrics import meter_for
    except ImportError as e:
        raise MtlSplitError(f"scoring the dense task {task.name} needs torchmetrics ({e}); install "
                            "requirements/training.txt (make setup)") from e
    meter = meter_for(task)
    for label, pred in pairs:
        if task.kind == "detection":
            meter.update(pred, label, frame_size)
        else:
            meter.update(pred, label)
    return {"frames": len(pairs), **meter.result()}


def task_report(manifest: Manifest, stamps: list[int], truth: dict[int, dict[str, Any]],
                predicted: dict[int, dict[str, Any]], frame_size: tuple[int, int]) -> dict[str, dict[str, Any]]:
    """stamps: the frames replayed; truth: labels by stamp (labels.Truth.by_stamp);
    predicted: by stamp, a Classified or a dense result on the frame's pixels per task;
    frame_size: the camera frames' (width, height)."""
    out: dict[str, dict[str, Any]] = {}
    for task in manifest.tasks:
        answered = [ns for ns in stamps if task.name in predicted.get(ns, {})]
        labelled = [ns for ns in answered if task.name in truth.get(ns, {})]
        entry: dict[str, Any] = {"kind": task.kind, "predicted_frames": len(answered), "labelled_frames": len(labelled)}
        if answered:
            entry["predictions"] = _predictions(task, [predicted[ns][task.name] for ns in answered])
        if labelled:
            entry.update(_scores(task, [(truth[ns][task.name], predicted[ns][task.name]) for ns in labelled],
                                 frame_size))
        out[task.name] = entry
    return out
