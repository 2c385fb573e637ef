"""One loss per task kind, on the heads' raw outputs (dense_heads.DenseHead.raw):

- classification: cross-entropy;
- segmentation: per-pixel cross-entropy, unlabelled pixels (datasets.base.IGNORE) left out;
- depth: L1 of log depth over pixels with a measurement (a relative error, like AbsRel);
- detection (CenterNet, Zhou et al. 2019): penalty-reduced focal loss on Gaussian centre
  heatmaps, plus GIoU (torchvision) and L1 of log distances for the box at each centre cell.
"""
from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F

from mtl_split_core.bundle import TaskSpec
from mtl_split_core.dense import Boxes

from .datasets.base import IGNORE

GAUSSIAN_ALPHA = 0.54  # heatmap sigma = alpha * box side / 6 (TTFNet's elliptical Gaussians)
BOX_L1_WEIGHT = 0.5


def task_loss(task: TaskSpec, raw: dict[str, torch.Tensor], target: torch.Tensor | Sequence[Boxes],
              input_size: int) -> torch.Tensor:
    if task.kind in ("classification", "segmentation"):
        return F.cross_entropy(raw["logits"], target.long(), ignore_index=IGNORE)
    if task.kind == "depth":
        valid = target > 0
        if not valid.any():
            return raw["log_depth"].sum() * 0.0
        return (raw["log_depth"][:, 0][valid] - torch.log(target[valid])).abs().mean()
    return detection_loss(raw["heatmap"], raw["log_ltrb"], target, task.num_classes, input_size)


def centre_targets(boxes: Sequence[Boxes], num_classes: int, grid: tuple[int, int], stride: tuple[float, float],
                   device: torch.device) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """CenterNet targets of a batch: heatmaps (N, K, h, w) with 1 at each box's centre cell and
    a Gaussian around it; the index (n, y, x) of every centre cell (M, 3); the boxes (M, 4)."""
    h, w = grid
    sx, sy = stride
    heat = torch.zeros(len(boxes), num_classes, h, w, device=device)
    ys = torch.arange(h, device=device, dtype=torch.float32)[:, None]
    xs = torch.arange(w, device=device, dtype=torch.float32)[None, :]
    cells, gt = [], []
    for n, b in enumerate(boxes):
        for (x0, y0, x1, y1), c in zip(b.xyxy.tolist(), b.classes.tolist()):
            if x1 <= x0 or y1 <= y0:
                continue
            j = min(max(int((x0 + x1) / 2 / sx), 0), w - 1)
            i = min(max(int((y0 + y1) / 2 / sy), 0), h - 1)
            sigma_x = max(GAUSSIAN_ALPHA * (x1 - x0) / sx / 6, 0.3)
            sigma_y = max(GAUSSIAN_ALPHA * (y1 - y0) / sy / 6, 0.3)
            g = torch.exp(-((xs - j) ** 2) / (2 * sigma_x ** 2) - ((ys - i) ** 2) / (2 * sigma_y ** 2))
            heat[n, c] = torch.maximum(heat[n, c], g)
            cells.append((n, i, j))
            gt.append((x0, y0, x1, y1))
    return (heat, torch.tensor(cells, dtype=torch.long, device=device).reshape(-1, 3),
            torch.tensor(gt, dtype=torch.float32, device=device).reshape(-1, 4))


def focal_loss(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """CenterNet's penalty-reduced focal loss (alpha 2, beta 4), normalized by the centre count."""
    p = torch.sigmoid(logits).clamp(1e-4, 1 - 1e-4)
    pos = target >= 1.0
    pos_loss = (torch.log(p) * (1 - p) ** 2)[pos].sum()
    neg_loss = (torch.log(1 - p) * p ** 2 * (1 - target) ** 4)[~pos].sum()
    return -(pos_loss + neg_loss) / pos.sum().clamp(min=1)


def detection_loss(heatmap: torch.Tensor, log_ltrb: torch.Tensor, boxes: Sequence[Boxes], num_classes: int,
                   input_size: int) -> torch.Tensor:
    from torchvision.ops import generalized_box_iou_loss

    h, w = heatmap.shape[-2:]
    sx, sy = input_size / w, input_size / h
    heat, cells, gt = centre_targets(boxes, num_classes, (h, w), (sx, sy), heatmap.device)
    loss = focal_loss(heatmap, heat)
    if len(cells):
        k, i, j = cells.unbind(1)
        pred = log_ltrb[k, :, i, j]  # (M, 4) log distances in cells
        cx, cy = (j.float() + 0.5) * sx, (i.float() + 0.5) * sy
        scale = torch.tensor([sx, sy, sx, sy], device=heatmap.device)
        dist = torch.exp(pred) * scale
        boxes_pred = torch.stack([cx - dist[:, 0], cy - dist[:, 1], cx + dist[:, 2], cy + dist[:, 3]], dim=1)
        target = torch.stack([cx - gt[:, 0], cy - gt[:, 1], gt[:, 2] - cx, gt[:, 3] - cy], dim=1)
        target = torch.log(target.clamp(min=0.25 * min(sx, sy)) / scale)
        loss = loss + generalized_box_iou_loss(boxes_pred, gt, reduction="mean") \
            + BOX_L1_WEIGHT * (pred - target).abs().mean()
    return loss

