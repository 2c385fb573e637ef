"""The procedural scenes dataset (`--data shapes`): every factor combination, split by seed.

Index i of a split is a fixed factor combination (a seeded permutation of all 480k), so a
split is reproducible and rendered on the fly. With ood_hues, combinations showing a held-out
floor or wall hue go only to test (the paper's out-of-distribution split).
"""
from __future__ import annotations

import numpy as np

from ..errors import TrainingError
from .base import DATASETS, PROCEDURAL_SIZES, DataOptions, DataSource, LabelledImages, select_tasks
from .shapes_factors import FACTOR_NAMES, FACTOR_SIZES, FACTORS, NUM_COMBINATIONS
from .shapes_render import renderer

_HUE_FACTORS = (FACTOR_NAMES.index("floor_hue"), FACTOR_NAMES.index("wall_hue"))


class ShapesSplit(LabelledImages):
    def __init__(self, combinations: np.ndarray, task_columns: dict[str, int], size: int):
        self.combinations = combinations  # (n, 6) factor class indices
        self.task_columns = task_columns
        self.renderer = renderer(size)

    def __len__(self) -> int:
        return len(self.combinations)

    def image(self, index: int) -> np.ndarray:
        return self.renderer.render(self.combinations[index])

    def labels(self, index: int) -> dict[str, int]:
        row = self.combinations[index]
        return {task: int(row[col]) for task, col in self.task_columns.items()}


def _split_indices(options: DataOptions) -> dict[str, np.ndarray]:
    """train from the front of the seeded permutation, test (then val) from its back: the test
    set depends only on seed and test_size, so a bag made with default sizes never shows a
    model the images it trained on, whatever train_size the run used."""
    order = np.random.default_rng(options.seed).permutation(NUM_COMBINATIONS)
    n = options.split_sizes(PROCEDURAL_SIZES)
    if options.ood_hues:
        bad = [h for h in options.ood_hues if not 0 <= h < FACTOR_SIZES[_HUE_FACTORS[0]]]
        if bad:
            raise TrainingError(f"ood_hues must be hue indices 0..9, got {bad}")
        factors = np.stack(np.unravel_index(order, FACTOR_SIZES), axis=1)
        held = np.isin(factors[:, _HUE_FACTORS], options.ood_hues).any(axis=1)
        inside, outside = order[~held], order[held]
        need = {"train + val": (n["train"] + n["val"], len(inside)),
                "test": (n["test"], len(outside))}
        splits = {"train": inside[:n["train"]], "val": inside[len(inside) - n["val"]:],
                  "test": outside[len(outside) - n["test"]:]}
    else:
        total = n["train"] + n["val"] + n["test"]
        need = {"train + val + test": (total, NUM_COMBINATIONS)}
        back = NUM_COMBINATIONS - n["test"]
        splits = {"train": order[:n["train"]], "val": order[back - n["val"]:back],
                  "test": order[back:]}
    for name, (wanted, available) in need.items():
        if wanted > available:
            raise TrainingError(f"shapes: {name} asks for {wanted} images but only {available} "
                                "combinations are available there; lower the split sizes")
    return splits


@DATASETS.register("shapes", "procedural 3D-Shapes-like scenes rendered on the fly (480k factor combinations, "
                             "6 classification tasks)")
def open_shapes(spec: str, options: DataOptions) -> DataSource:
    tasks = select_tasks([f.task() for f in FACTORS], options.tasks, spec)
    if options.ood_hues:
        hue_tasks = [t.name for t in tasks if t.name in ("floor_hue", "wall_hue")]
        if hue_tasks:
            raise TrainingError(
                f"shapes: the OOD split holds out floor/wall hues, so {', '.join(hue_tasks)} "
                "cannot be a task; drop ood_hues or those tasks"
            )
    columns = {t.name: FACTOR_NAMES.index(t.name) for t in tasks}
    splits = {
        name: ShapesSplit(np.stack(np.unravel_index(idx, FACTOR_SIZES), axis=1).astype(np.int16),
                          columns, options.size)
        for name, idx in _split_indices(options).items()
    }
    return DataSource(spec, tasks, splits, options)
