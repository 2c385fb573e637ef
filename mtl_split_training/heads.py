"""Task heads on the server's feature map: the paper's flatten head and a size-agnostic pooled head."""
from __future__ import annotations

import math

from torch import nn

HEAD_KINDS = ("paper", "pooled")
HIDDEN = 256


def make_head(kind: str, feature_shape: tuple[int, ...], num_classes: int) -> nn.Sequential:
    """paper: flatten -> Linear 256 -> Dropout 0.1 -> ReLU -> Linear (MTL-Split's head; fixes the
    input size). pooled: global average pool -> Linear 256 -> ReLU -> Linear (any input size)."""
    if kind == "paper":
        return nn.Sequential(
            nn.Flatten(), nn.Linear(math.prod(feature_shape), HIDDEN), nn.Dropout(0.1),
            nn.ReLU(inplace=True), nn.Linear(HIDDEN, num_classes),
        )
    if kind == "pooled":
        return nn.Sequential(
            nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(feature_shape[0], HIDDEN),
            nn.ReLU(inplace=True), nn.Linear(HIDDEN, num_classes),
        )
    raise ValueError(f"unknown head {kind!r}: use one of {', '.join(HEAD_KINDS)}")
