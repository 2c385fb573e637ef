"""A camera frame with what the model said drawn on it: each task's class and score as text,
segmentation masks as a translucent overlay, boxes with class and score, depth as a coloured
inset. What the visualization node publishes (plain rgb8, so RViz and Foxglove show it with
no plugin) and what `evaluate --record` writes; ROS-free and torch-free (OpenCV).
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import cv2
import numpy as np

from .dense import UNLABELLED, Boxes

MASK_ALPHA = 0.45  # weight of the class colour over the camera pixel
DEPTH_INSET = 1 / 3  # inset width as a share of the frame's
BOX_SCORE = 0.3  # boxes below this score are not drawn (the published ones go lower)
# Class colours (RGB), by class id modulo their count: distinct, readable on grey and on colour.
PALETTE = np.array([
    (230, 25, 75), (60, 180, 75), (255, 225, 25), (0, 130, 200), (245, 130, 48), (145, 30, 180),
    (70, 240, 240), (240, 50, 230), (210, 245, 60), (250, 190, 212), (0, 128, 128), (220, 190, 255),
    (170, 110, 40), (255, 250, 200), (128, 0, 0), (170, 255, 195), (128, 128, 0), (255, 215, 180),
    (0, 0, 128), (128, 128, 128)], np.uint8)


@dataclass
class Annotations:
    """What to draw on one frame; dense values on the frame's own pixels (DenseResult.in_source)."""

    lines: list[str] = field(default_factory=list)  # e.g. "shape: cube 0.93", one per classification task
    masks: list[np.ndarray] = field(default_factory=list)  # uint8 class ids, UNLABELLED not drawn
    boxes: list[tuple[Boxes, Sequence[str]]] = field(default_factory=list)  # with their class names
    depth: np.ndarray | None = None  # float32 metres, NaN = no reading


def classification_line(task: str, class_name: str, score: float) -> str:
    return f"{task}: {class_name} {score:.2f}"


def _scale_for(width: int, max_width: int) -> float:
    return min(1.0, max_width / width) if max_width > 0 else 1.0


def _text(image: np.ndarray, text: str, org: tuple[int, int], scale: float, colour: tuple[int, int, int]) -> None:
    """Text on a darkened box (readable on any background; OpenCV's thick-stroke outline is not
    aligned with the thin stroke in every build)."""
    thickness = max(1, int(round(scale * 1.5)))
    (w, h), base = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, scale, thickness)
    x, y = org
    x0, y0, x1, y1 = max(x - 2, 0), max(y - h - 2, 0), min(x + w + 2, image.shape[1]), min(y + base + 1, image.shape[0])
    if x1 > x0 and y1 > y0:
        image[y0:y1, x0:x1] = (image[y0:y1, x0:x1] * 0.4).astype(np.uint8)
    cv2.putText(image, text, org, cv2.FONT_HERSHEY_SIMPLEX, scale, colour, thickness, cv2.LINE_AA)


def _overlay_mask(image: np.ndarray, mask: np.ndarray) -> None:
    labelled = mask != UNLABELLED
    colours = PALETTE[mask.astype(np.int64) % len(PALETTE)]
    blend = (image * (1 - MASK_ALPHA) + colours * MASK_ALPHA).astype(np.uint8)
    image[labelled] = blend[labelled]


def _depth_inset(image: np.ndarray, depth: np.ndarray, font: float) -> None:
    h, w = image.shape[:2]
    iw = max(8, int(w * DEPTH_INSET))
    ih = max(8, int(round(iw * depth.shape[0] / depth.shape[1])))
    if ih >= h:
        return
    small = cv2.resize(depth, (iw, ih), interpolation=cv2.INTER_NEAREST)
    seen = np.isfinite(small) & (small > 0)
    far = float(small[seen].max()) if seen.any() else 1.0
    grey = np.where(seen, np.clip(small / far, 0, 1) * 255, 0).astype(np.uint8)
    inset = cv2.cvtColor(cv2.applyColorMap(grey, cv2.COLORMAP_TURBO), cv2.COLOR_BGR2RGB)
    inset[~seen] = 0
    image[h - ih:, w - iw:] = inset
    _text(image, f"depth 0-{far:.1f} m", (w - iw + 3, h - ih + int(14 * font / 0.5)), font, (255, 255, 255))


def annotate(rgb: np.ndarray, notes: Annotations, max_width: int = 0) -> np.ndarray:
    """A new uint8 RGB image: the frame (shrunk to max_width if wider; 0 = never) with notes."""
    h, w = rgb.shape[:2]
    k = _scale_for(w, max_width)
    size = (max(1, int(round(w * k))), max(1, int(round(h * k))))
    image = cv2.resize(rgb, size, interpolation=cv2.INTER_AREA) if k < 1 else rgb.copy()
    font = max(0.4, min(1.2, size[0] / 640))
    for mask in notes.masks:
        _overlay_mask(image, cv2.resize(mask, size, interpolation=cv2.INTER_NEAREST) if k < 1 else mask)
    for boxes, classes in notes.boxes:
        for (x0, y0, x1, y1), c, s in zip(boxes.xyxy * k, boxes.classes, boxes.scores):
            if s < BOX_SCORE:
                continue
            colour = tuple(int(v) for v in PALETTE[int(c) % len(PALETTE)])
            cv2.rectangle(image, (int(x0), int(y0)), (int(x1) - 1, int(y1) - 1), colour, max(1, int(font * 2)))
            _text(image, f"{classes[int(c)]} {s:.2f}", (int(x0) + 2, max(int(y0) - 3, int(12 * font / 0.5))),
                  font * 0.8, colour)
    if notes.depth is not None:
        _depth_inset(image, notes.depth, font * 0.8)
    step = int(round(22 * font / 0.5))
    for i, line in enumerate(notes.lines):
        _text(image, line, (6, step * (i + 1)), font, (255, 255, 255))
    return image
