"""The dataset contract every source implements (numpy only, so bag writing needs no torch).

A source turns a spec string into task specs and three splits; a split is an indexable set of
(uint8 RGB HxWx3 image at the requested size, {task: label}) samples. A label is what the
task's kind says (TaskSpec.kind): classification a class index, segmentation a uint8 HxW
class-id mask (IGNORE = unlabelled), depth a float32 HxW z-depth in metres (0 = no
measurement), detection a Boxes in pixels of the image.
"""
from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from mtl_split_core.bundle import InputSpec, TaskSpec
from mtl_split_core.dense import Boxes

from ..errors import TrainingError
from ..registry import Registry

SPLITS = ("train", "val", "test")
IGNORE = 255  # segmentation mask value of unlabelled pixels (not scored, not trained on)
Label = int | np.ndarray | Boxes


@dataclass(frozen=True)
class DataOptions:
    """What every source understands; sources ignore what does not apply to them."""

    size: int = 64
    # How file images of another size or aspect become size x size (InputSpec.resize_mode).
    resize_mode: str = "resize"
    tasks: tuple[str, ...] | None = None  # None = every task the source has
    seed: int = 0
    # Images per split. The procedural sources draw this many (unset: PROCEDURAL_SIZES); file
    # sources (h5, csv) keep a seeded sample of this many of a split's images (unset: all).
    train_size: int | None = None
    val_size: int | None = None
    test_size: int | None = None
    # Seeded split fractions for file sources without an explicit split column.
    val_fraction: float = 0.1
    test_fraction: float = 0.1
    # Out-of-distribution split: these floor/wall hue indices appear only in test.
    ood_hues: tuple[int, ...] = ()
    # Salt-and-pepper noise: fraction of pixels flipped to black/white.
    salt_pepper: float = 0.0  # training images (augmentation, fresh every epoch)
    test_salt_pepper: float = 0.0  # val/test images (robustness evaluation, fixed per index)


    def split_sizes(self, defaults: dict[str, int] | None = None) -> dict[str, int | None]:
        """The size asked for per split; unset ones take `defaults` (None: all there is)."""
        asked = {"train": self.train_size, "val": self.val_size, "test": self.test_size}
        bad = {k: v for k, v in asked.items() if v is not None and v < 0}
        if bad:
            raise TrainingError(f"split sizes must not be negative, got {', '.join(f'data.{k}_size {v}' for k, v in bad.items())}")
        return {k: v if v is not None else (defaults or {}).get(k) for k, v in asked.items()}


# What the procedural sources draw when the sizes are unset.
PROCEDURAL_SIZES = {"train": 6000, "val": 1000, "test": 1000}


class LabelledImages(ABC):
    """One split: indexable (image, labels) samples, deterministic per index."""

    @abstractmethod
    def __len__(self) -> int: ...

    @abstractmethod
    def image(self, index: int) -> np.ndarray:
        """uint8 RGB image (size, size, 3)."""

    @abstractmethod
    def labels(self, index: int) -> dict[str, Label]:
        """The label of every task (see the module docstring for each kind's)."""

    def sample(self, index: int) -> tuple[np.ndarray, dict[str, Label]]:
        if not 0 <= index < len(self):
            raise IndexError(index)
        return self.image(index), self.labels(index)


@dataclass(frozen=True)
class DataSource:
    """A dataset opened from a spec string: its tasks and its three splits."""

    spec: str
    tasks: tuple[TaskSpec, ...]
    splits: dict[str, LabelledImages]
    options: DataOptions
    notes: tuple[str, ...] = ()  # what the source decided or found (notices), for the log and run.json
    carved: tuple[str, ...] = ()  # splits the data does not have, cut out of train (csv without val rows)

    @property
    def sizes(self) -> dict[str, int]:
        """The images each split really has."""
        return {name: len(split) for name, split in self.splits.items()}

    def split(self, name: str) -> LabelledImages:
        if name not in self.splits:
            raise TrainingError(f"unknown split {name!r}: use one of {', '.join(SPLITS)}")
        return self.splits[name]


# kind (the spec before the first ':') -> opener(spec, options); a summary shows the spec syntax.
DATASETS: Registry[Callable[[str, DataOptions], DataSource]] = Registry("dataset", "data.spec / --data")


def select_tasks(available: Sequence[TaskSpec], wanted: Sequence[str] | None, spec: str) -> tuple[TaskSpec, ...]:
    """The wanted tasks in the wanted order, or all; a clear error for unknown names."""
    if wanted is None:
        return tuple(available)
    by_name = {t.name: t for t in available}
    unknown = [w for w in wanted if w not in by_name]
    if unknown:
        raise TrainingError(
            f"{spec}: unknown task(s) {', '.join(unknown)}; this dataset has {', '.join(by_name)}"
        )
    if len(set(wanted)) != len(wanted) or not wanted:
        raise TrainingError(f"{spec}: tasks must be a non-empty list without repeats, got {list(wanted)}")
    return tuple(by_name[w] for w in wanted)


def seeded_split_indices(n: int, options: DataOptions) -> dict[str, np.ndarray]:
    """A seeded shuffle of range(n) cut into train/val/test by the option fractions."""
    if not (0 <= options.val_fraction < 1 and 0 <= options.test_fraction < 1
            and options.val_fraction + options.test_fraction < 1):
        raise TrainingError("val_fraction and test_fraction must be in [0, 1) and sum to less than 1")
    order = np.random.default_rng(options.seed).permutation(n)
    n_val = int(round(n * options.val_fraction))
    n_test = int(round(n * options.test_fraction))
    return {
        "test": np.sort(order[:n_test]),
        "val": np.sort(order[n_test:n_test + n_val]),
        "train": np.sort(order[n_test + n_val:]),
    }


def cap_splits(splits: dict[str, np.ndarray], options: DataOptions, what: str
               ) -> tuple[dict[str, np.ndarray], list[str]]:
    """File sources: a seeded sample of each split's rows down to its data.<split>_size, and
    notes saying what was kept (a size above what a split has keeps it whole, and says so)."""
    out, notes = {}, []
    for name, cap in options.split_sizes().items():
        rows = splits[name]
        if cap is not None and cap < len(rows):
            rng = np.random.default_rng((options.seed, SPLITS.index(name)))
            out[name] = np.sort(rng.choice(rows, cap, replace=False))
            notes.append(f"{what}: data.{name}_size {cap}: a seeded sample of {cap} of its {len(rows)} {name} images")
        else:
            out[name] = rows
            if cap is not None and cap > len(rows):
                notes.append(f"{what}: data.{name}_size {cap} is more than its {len(rows)} {name} images; "
                             f"all {len(rows)} are used")
    return out, notes


def salt_and_pepper(image: np.ndarray, amount: float, rng: np.random.Generator) -> np.ndarray:
    """Flip `amount` of the pixels to black or white (the paper's noise augmentation)."""
    if amount <= 0:
        return image
    h, w = image.shape[:2]
    u = rng.random((h, w), dtype=np.float32)
    out = image.copy()
    out[u < amount / 2] = 0
    out[(u >= amount / 2) & (u < amount)] = 255
    return out


def fit_square(image: np.ndarray, options: DataOptions) -> np.ndarray:
    """A file's RGB image -> size x size by the run's resize_mode: the same geometry and area
    filter the edge applies to camera frames (mtl_split_core.preprocess)."""
    from mtl_split_core.preprocess import fit

    return fit(np.ascontiguousarray(image), InputSpec(width=options.size, height=options.size,
                                                      resize_mode=options.resize_mode))
