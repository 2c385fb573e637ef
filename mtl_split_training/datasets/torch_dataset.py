"""A split as a torch Dataset: normalized CHW float tensor + {task: class index}."""
from __future__ import annotations

import numpy as np
import torch
from torch.utils.data import Dataset

from mtl_split_core.bundle import InputSpec

from .base import LabelledImages, salt_and_pepper


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

    def __getitem__(self, index: int) -> tuple[torch.Tensor, dict[str, int]]:
        image, labels = self.images.sample(index)
        if self.salt_pepper > 0:
            rng = np.random.default_rng((self.seed, self.epoch, index))
            image = salt_and_pepper(image, self.salt_pepper, rng)
        return normalize(image, self.spec), labels
