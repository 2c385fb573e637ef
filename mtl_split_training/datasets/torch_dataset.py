"""A split as a torch Dataset: normalized CHW float tensor + {task: label}, and the collate
function that batches labels of every kind."""
from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from mtl_split_core.bundle import InputSpec

from mtl_split_core.dense import Boxes

from .base import Label, LabelledImages, salt_and_pepper


def normalize(image: np.ndarray, spec: InputSpec) -> torch.Tensor:
    """uint8 RGB HxWx3 -> float32 3xHxW, scaled to [0,1] then (x - mean) / std per channel."""
    x = torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1).float().div_(255.0)
    mean = torch.tensor(spec.mean).view(3, 1, 1)
    std = torch.tensor(spec.std).view(3, 1, 1)
    return (x - mean) / std


class TorchImages(Dataset):
    """Wraps a split; training splits add salt-and-pepper noise that changes every epoch."""

    def __init__(self, images: LabelledImages, spec: InputSpec, salt_pepper: float = 0.0, seed: int = 0):
        self.images, self.spec = images, spec
        self.salt_pepper, self.seed = salt_pepper, seed
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, dict[str, Label]]:
        image, labels = self.images.sample(index)
        if self.salt_pepper > 0:
            rng = np.random.default_rng((self.seed, self.epoch, index))
            image = salt_and_pepper(image, self.salt_pepper, rng)
        return normalize(image, self.spec), labels


def collate(samples: list[tuple[torch.Tensor, dict[str, Label]]]) -> tuple[torch.Tensor, dict[str, Any]]:
    """A batch: stacked images; per task a tensor of class indices, masks (int64) or depth
    (float32), or for detection the list of Boxes (their count varies per image)."""
    images = torch.stack([image for image, _ in samples])
    labels: dict[str, Any] = {}
    for task in samples[0][1]:
        values = [lab[task] for _, lab in samples]
        if isinstance(values[0], Boxes):
            labels[task] = values
        elif isinstance(values[0], np.ndarray):
            stacked = np.stack(values)
            labels[task] = torch.from_numpy(stacked.astype(np.int64) if stacked.dtype.kind in "ui" else stacked)
        else:
            labels[task] = torch.tensor(values, dtype=torch.int64)
    return images, labels
