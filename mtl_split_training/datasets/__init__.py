"""Datasets by spec string: `shapes` (procedural, default), `scenes` (procedural multi-object
scenes with dense labels), `h5:PATH` (DeepMind 3dshapes.h5), `csv:PATH` (labelled image
folder with a CSV/TSV, dense labels too). See docs/training.md.

`open_data(spec, options)` gives task specs and numpy splits; `iter_labelled_images` is the
torch-free iterator for bag writing; `mtl_split_training.datasets.torch_dataset` wraps a
split for training.
"""
from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace

import numpy as np

from mtl_split_core.bundle import RESIZE_MODES
from mtl_split_core.notices import logger

from ..errors import TrainingError
# Each registers its dataset kind; `mtl-split list` shows them in this order.
from . import shapes, scenes, h5_shapes, csv_images  # noqa: F401, I001
from .base import DATASETS, SPLITS, DataOptions, DataSource, Label, LabelledImages, salt_and_pepper

NOTICES = logger("data")


class NoisyImages(LabelledImages):
    """A split with fixed (seeded per index) salt-and-pepper noise: robustness evaluation."""

    def __init__(self, inner: LabelledImages, amount: float, seed: int):
        self.inner, self.amount, self.seed = inner, amount, seed

    def __len__(self) -> int:
        return len(self.inner)

    def image(self, index: int) -> np.ndarray:
        rng = np.random.default_rng((self.seed, 0x5A17, index))
        return salt_and_pepper(self.inner.image(index), self.amount, rng)

    def labels(self, index: int) -> dict[str, Label]:
        return self.inner.labels(index)


def open_data(spec: str, options: DataOptions | None = None) -> DataSource:
    """A registered dataset spec (`shapes`, `scenes`, `h5:PATH`, `csv:PATH`, ...) -> DataSource
    (tasks + train/val/test splits)."""
    options = options or DataOptions()
    opener = DATASETS.get(spec.partition(":")[0])
    if options.size < 16:
        raise TrainingError(f"image size must be at least 16, got {options.size}")
    if options.resize_mode not in RESIZE_MODES:
        raise TrainingError(f"resize_mode {options.resize_mode!r} is not one of {', '.join(RESIZE_MODES)}")
    source = opener(spec, options)
    for note in source.notes:
        NOTICES.info(note)
    if options.test_salt_pepper > 0:
        noisy = {name: NoisyImages(split, options.test_salt_pepper, options.seed)
                 for name, split in source.splits.items() if name != "train"}
        source = replace(source, splits={**source.splits, **noisy})
    return source


def iter_labelled_images(
    spec: str,
    size: int,
    split: str = "test",
    tasks: tuple[str, ...] | None = None,
    limit: int | None = None,
    seed: int = 0,
) -> Iterator[tuple[np.ndarray, dict[str, Label]]]:
    """(uint8 RGB size x size x 3 image, {task: label}) of one split, in order.

    For bag writing and evaluation. With the run's seed (manifest.extra["data"]["seed"]) and
    test size, these are the images the run was tested on, never ones it trained on.
    """
    source = open_data(spec, DataOptions(size=size, tasks=tasks, seed=seed))
    images = source.split(split)
    n = len(images) if limit is None else min(limit, len(images))
    for i in range(n):
        yield images.sample(i)


__all__ = ["DATASETS", "SPLITS", "DataOptions", "DataSource", "Label", "LabelledImages", "open_data",
           "iter_labelled_images"]
