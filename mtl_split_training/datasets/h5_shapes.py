"""DeepMind's real 3dshapes.h5 (`--data h5:PATH`): 'images' (N,64,64,3) uint8, 'labels' (N,6).

Float labels map to the class indices of shapes_factors by nearest grid value, so a model
trained on the procedural scenes and one trained on the real renders share class names.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from ..errors import TrainingError
from .base import (
    DATASETS,
    DataOptions,
    DataSource,
    LabelledImages,
    cap_splits,
    fit_square,
    seeded_split_indices,
    select_tasks,
)
from .shapes_factors import FACTOR_NAMES, FACTORS


def _class_indices(labels: np.ndarray, path: Path) -> np.ndarray:
    """(N, 6) float factor values -> (N, 6) int16 class indices (nearest value of each grid)."""
    out = np.empty(labels.shape, dtype=np.int16)
    for col, factor in enumerate(FACTORS):
        grid = np.asarray(factor.values)
        distance = np.abs(labels[:, col, None] - grid[None, :])
        out[:, col] = distance.argmin(axis=1)
        step = np.diff(grid).min()
        if distance.min(axis=1).max() > 0.25 * step:
            raise TrainingError(
                f"{path}: label column {col} ({factor.name}) has values off the 3dshapes grid "
                f"{factor.values[0]}..{factor.values[-1]}; is this a 3dshapes.h5 file?"
            )
    return out


class H5Split(LabelledImages):
    def __init__(self, path: Path, rows: np.ndarray, classes: np.ndarray, task_columns: dict[str, int],
                 options: DataOptions):
        self.path, self.rows, self.classes = path, rows, classes
        self.task_columns, self.options = task_columns, options
        self._images = None  # opened lazily, once per process (DataLoader workers fork)

    def __len__(self) -> int:
        return len(self.rows)

    def image(self, index: int) -> np.ndarray:
        if self._images is None:
            import h5py

            self._images = h5py.File(self.path, "r")["images"]
        return fit_square(np.asarray(self._images[int(self.rows[index])]), self.options)

    def labels(self, index: int) -> dict[str, int]:
        row = self.classes[self.rows[index]]
        return {task: int(row[col]) for task, col in self.task_columns.items()}

    def __getstate__(self) -> dict:
        return {**self.__dict__, "_images": None}


@DATASETS.register("h5", "h5:PATH - DeepMind's 3dshapes.h5 (480k 64x64 renders, 6 factors)")
def open_h5(spec: str, options: DataOptions) -> DataSource:
    import h5py

    path = Path(spec.partition(":")[2]).expanduser()
    if not path.is_file():
        raise TrainingError(f"{spec}: no such file {path}")
    try:
        with h5py.File(path, "r") as f:
            images, labels = f["images"], f["labels"]
            if images.ndim != 4 or images.shape[-1] != 3 or labels.shape != (images.shape[0], len(FACTORS)):
                raise TrainingError(
                    f"{path}: expected 'images' (N,H,W,3) and 'labels' (N,{len(FACTORS)}), "
                    f"got {images.shape} and {labels.shape}"
                )
            raw_labels = np.asarray(labels, dtype=np.float64)
    except (OSError, KeyError) as e:
        raise TrainingError(f"{path}: not a readable 3dshapes-style h5 ({e})") from e
    tasks = select_tasks([f.task() for f in FACTORS], options.tasks, spec)
    classes = _class_indices(raw_labels, path)
    columns = {t.name: FACTOR_NAMES.index(t.name) for t in tasks}
    splits = seeded_split_indices(len(classes), options)
    if options.ood_hues:
        held = np.isin(classes[:, [FACTOR_NAMES.index("floor_hue"), FACTOR_NAMES.index("wall_hue")]],
                       options.ood_hues).any(axis=1)
        splits = {name: rows[held[rows] == (name == "test")] for name, rows in splits.items()}
    splits, notes = cap_splits(splits, options, spec)
    return DataSource(spec, tasks, {
        name: H5Split(path, rows, classes, columns, options) for name, rows in splits.items()
    }, options, notes=tuple(notes))
