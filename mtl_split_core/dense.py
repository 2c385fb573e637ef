"""Dense results as numpy: boxes, and (later) the server's post-processing of dense outputs.

ROS-free and torch-free: the server, the evaluation and the datasets share these types.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass(frozen=True)
class Boxes:
    """2D boxes of one image: [x0, y0, x1, y1] in pixels (x1, y1 exclusive: a box covering
    columns 3..7 is [3, y0, 8, y1]), a class index and a score each (1 for ground truth)."""

    xyxy: np.ndarray  # float32 (n, 4)
    classes: np.ndarray  # int64 (n,)
    scores: np.ndarray = field(default=None)  # float32 (n,)

    def __post_init__(self) -> None:
        xyxy = np.asarray(self.xyxy, np.float32).reshape(-1, 4)
        classes = np.asarray(self.classes, np.int64).reshape(-1)
        scores = np.ones(len(xyxy), np.float32) if self.scores is None else np.asarray(self.scores, np.float32)
        if not len(xyxy) == len(classes) == len(scores.reshape(-1)):
            raise ValueError(f"boxes: {len(xyxy)} boxes, {len(classes)} classes, {len(scores)} scores")
        object.__setattr__(self, "xyxy", xyxy)
        object.__setattr__(self, "classes", classes)
        object.__setattr__(self, "scores", scores.reshape(-1))

    def __len__(self) -> int:
        return len(self.xyxy)

    def scaled(self, sx: float, sy: float) -> "Boxes":
        """The boxes in an image resized by (sx, sy)."""
        return Boxes(self.xyxy * np.array([sx, sy, sx, sy], np.float32), self.classes, self.scores)
