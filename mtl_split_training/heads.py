"""Task heads on the server's feature pyramid, classification heads registered by name
(`model.head`): the paper's flatten head and a size-agnostic pooled head (on the deepest
level); dense_heads for the dense kinds.

Every head takes the pyramid (finest level first); `raw` is what task_losses reads,
`forward` the bundle's output layout (mtl_split_core.bundle.TASK_KINDS)."""
from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import nn

from mtl_split_core.bundle import TaskSpec

from .dense_heads import DenseHead
from .registry import Registry

HIDDEN = 256


class ClassificationHead(nn.Sequential):
    """A Sequential (so its weights keep their names) on the pyramid's deepest level."""

    def forward(self, pyramid: list[torch.Tensor]) -> torch.Tensor:
        return super().forward(pyramid[-1])

    def raw(self, pyramid: list[torch.Tensor]) -> dict[str, torch.Tensor]:
        return {"logits": self(pyramid)}


# name -> builder(deepest level's shape (C, H, W), number of classes) -> classification head
HEADS: Registry[Callable[[tuple[int, ...], int], ClassificationHead]] = Registry("head", "model.head")


@HEADS.register("paper", "flatten -> Linear 256 -> Dropout 0.1 -> ReLU -> Linear: MTL-Split's head "
                         "(fixes the input size)")
def paper_head(feature_shape: tuple[int, ...], num_classes: int) -> ClassificationHead:
    return ClassificationHead(
        nn.Flatten(), nn.Linear(math.prod(feature_shape), HIDDEN), nn.Dropout(0.1),
        nn.ReLU(inplace=True), nn.Linear(HIDDEN, num_classes),
    )


@HEADS.register("pooled", "global average pool -> Linear 256 -> ReLU -> Linear (any input size)")
def pooled_head(feature_shape: tuple[int, ...], num_classes: int) -> ClassificationHead:
    return ClassificationHead(
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(feature_shape[0], HIDDEN),
        nn.ReLU(inplace=True), nn.Linear(HIDDEN, num_classes),
    )


def make_head(kind: str, feature_shape: tuple[int, ...], num_classes: int) -> ClassificationHead:
    """A registered classification head for a feature map of feature_shape."""
    return HEADS.get(kind)(feature_shape, num_classes)


def make_task_head(task: TaskSpec, kind: str, level_shapes: list[tuple[int, ...]], finest_stride: int,
                   input_size: int, decoder_channels: int) -> nn.Module:
    """The head of one task on a pyramid of level_shapes (C, H, W), finest first."""
    if not task.dense:
        return make_head(kind, level_shapes[-1], task.num_classes)
    return DenseHead(task.kind, [s[0] for s in level_shapes], finest_stride, task.num_classes, input_size,
                     decoder_channels)
