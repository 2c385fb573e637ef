"""Per-task evaluation metrics, accumulated over a split (training validation/test) or a bag
(`mtl-split evaluate`), from maintained libraries where they exist:

- classification: accuracy;
- segmentation: mIoU and per-class IoU (torchmetrics, dataset-level: classes absent from both
  truth and prediction are left out), pixel accuracy; unlabelled pixels are not scored;
- depth: AbsRel (torchmetrics' mean absolute percentage error over measured pixels), RMSE in
  metres (torchmetrics), and delta1 (share of pixels within 1.25x of the truth);
- detection: COCO mAP@[.5:.95] and mAP@0.5 (faster-coco-eval's COCOeval, boxes in pixels).

Meters take post-processed predictions (mtl_split_core.dense.postprocess: masks, metres, boxes),
so training and the live pipeline are scored on the same thing. `score` is each kind's headline
metric; SCORES says which and whether higher is better.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from mtl_split_core.bundle import TaskSpec
from mtl_split_core.dense import Boxes

from .datasets.base import IGNORE

SCORES = {"classification": ("accuracy", True), "segmentation": ("miou", True), "depth": ("abs_rel", False),
          "detection": ("map50", True)}


class ClassificationMeter:
    def __init__(self, task: TaskSpec):
        self.correct = self.count = 0

    def update(self, prediction: int, target: int) -> None:
        self.correct += int(prediction == target)
        self.count += 1

    def result(self) -> dict[str, Any]:
        accuracy = self.correct / self.count if self.count else float("nan")
        return {"score": accuracy, "accuracy": accuracy, "frames": self.count}


class SegmentationMeter:
    def __init__(self, task: TaskSpec):
        from torchmetrics.classification import MulticlassJaccardIndex

        self.task = task
        k = task.num_classes
        self.miou = MulticlassJaccardIndex(num_classes=k, average="macro", ignore_index=IGNORE)
        self.per_class = MulticlassJaccardIndex(num_classes=k, average="none", ignore_index=IGNORE)
        self.present = np.zeros(k, np.int64)
        self.correct = self.labelled = self.count = 0

    def update(self, prediction: np.ndarray, target: np.ndarray) -> None:
        import torch

        if prediction.shape != target.shape:
            raise ValueError(f"{self.task.name}: mask of {prediction.shape[::-1]} for a label of {target.shape[::-1]}")
        p, t = torch.from_numpy(prediction.astype(np.int64))[None], torch.from_numpy(target.astype(np.int64))[None]
        self.miou.update(p, t)
        self.per_class.update(p, t)
        labelled = target != IGNORE
        k = self.task.num_classes
        self.present += np.bincount(target[labelled].ravel(), minlength=k)[:k]
        self.present += np.bincount(np.minimum(prediction[labelled].ravel(), k - 1), minlength=k)[:k]
        self.correct += int((prediction[labelled] == target[labelled]).sum())
        self.labelled += int(labelled.sum())
        self.count += 1

    def result(self) -> dict[str, Any]:
        if not self.count:
            return {"score": float("nan"), "miou": float("nan"), "frames": 0}
        miou = float(self.miou.compute())
        iou = self.per_class.compute().tolist()
        return {"score": miou, "miou": miou, "pixel_accuracy": self.correct / max(self.labelled, 1),
                "iou": {c: (round(v, 4) if n else None) for c, v, n in zip(self.task.classes, iou, self.present)},
                "frames": self.count}


class DepthMeter:
    DELTA = 1.25

    def __init__(self, task: TaskSpec):
        from torchmetrics import MeanMetric
        from torchmetrics.regression import MeanAbsolutePercentageError, MeanSquaredError

        self.task = task
        self.abs_rel, self.rmse = MeanAbsolutePercentageError(), MeanSquaredError(squared=False)
        self.delta1 = MeanMetric()
        self.count = 0

    def update(self, prediction: np.ndarray, target: np.ndarray) -> None:
        import torch

        if prediction.shape != target.shape:
            raise ValueError(f"{self.task.name}: depth of {prediction.shape[::-1]} for a label of {target.shape[::-1]}")
        valid = target > 0
        self.count += 1
        if not valid.any():
            return
        p = torch.from_numpy(np.maximum(prediction[valid], 1e-6).astype(np.float32))
        t = torch.from_numpy(target[valid].astype(np.float32))
        self.abs_rel.update(p, t)
        self.rmse.update(p, t)
        self.delta1.update((torch.maximum(p / t, t / p) < self.DELTA).float())

    def result(self) -> dict[str, Any]:
        if not self.count:
            return {"score": float("nan"), "abs_rel": float("nan"), "frames": 0}
        abs_rel = float(self.abs_rel.compute())
        return {"score": abs_rel, "abs_rel": abs_rel, "rmse_m": float(self.rmse.compute()),
                "delta1": float(self.delta1.compute()), "frames": self.count}


class DetectionMeter:
    def __init__(self, task: TaskSpec):
        self.task = task
        self.truth: list[Boxes] = []
        self.predicted: list[Boxes] = []
        self.sizes: list[tuple[int, int]] = []

    def update(self, prediction: Boxes, target: Boxes, image_size: tuple[int, int]) -> None:
        self.predicted.append(prediction)
        self.truth.append(target)
        self.sizes.append(image_size)

    def result(self) -> dict[str, Any]:
        stats = coco_map(self.truth, self.predicted, self.sizes, self.task.classes)
        return {"score": stats["map50"], **stats, "frames": len(self.truth)}


def coco_map(truth: list[Boxes], predicted: list[Boxes], sizes: list[tuple[int, int]],
             classes: tuple[str, ...]) -> dict[str, float]:
    """COCO box mAP@[.5:.95] and mAP@0.5 with faster-coco-eval (category id = class index + 1)."""
    import contextlib
    import io

    from faster_coco_eval import COCO, COCOeval_faster

    def xywh(b: np.ndarray) -> list[float]:
        return [float(b[0]), float(b[1]), float(b[2] - b[0]), float(b[3] - b[1])]

    images = [{"id": i + 1, "width": w, "height": h} for i, (w, h) in enumerate(sizes)]
    annotations = [{"image_id": i + 1, "category_id": int(c) + 1, "bbox": xywh(b),
                    "area": float((b[2] - b[0]) * (b[3] - b[1])), "iscrowd": 0}
                   for i, boxes in enumerate(truth) for b, c in zip(boxes.xyxy, boxes.classes)]
    for n, a in enumerate(annotations, start=1):
        a["id"] = n
    detections = [{"image_id": i + 1, "category_id": int(c) + 1, "bbox": xywh(b), "score": float(s)}
                  for i, boxes in enumerate(predicted) for b, c, s in zip(boxes.xyxy, boxes.classes, boxes.scores)]
    if not annotations or not detections:
        return {"map": 0.0, "map50": 0.0, "detections": len(detections), "objects": len(annotations)}
    gt = COCO({"images": images, "annotations": annotations,
               "categories": [{"id": k + 1, "name": n} for k, n in enumerate(classes)]})
    with contextlib.redirect_stdout(io.StringIO()):
        evaluator = COCOeval_faster(gt, gt.loadRes(detections), iouType="bbox")
        evaluator.evaluate()
        evaluator.accumulate()
        evaluator.summarize()
    return {"map": max(float(evaluator.stats[0]), 0.0), "map50": max(float(evaluator.stats[1]), 0.0),
            "detections": len(detections), "objects": len(annotations)}


def meter_for(task: TaskSpec) -> ClassificationMeter | SegmentationMeter | DepthMeter | DetectionMeter:
    return {"classification": ClassificationMeter, "segmentation": SegmentationMeter, "depth": DepthMeter,
            "detection": DetectionMeter}[task.kind](task)
