"""The procedural scenes datasets: every factor combination, split by seed.

`shapes`: index i of a split is a fixed factor combination (a seeded permutation of all
480k), so a split is reproducible and rendered on the fly. With ood_hues, combinations
showing a held-out floor or wall hue go only to test (the paper's out-of-distribution split).

`shapes_motion`: the same combinations, each seen from a continuous camera angle and with
the object anywhere in the range a sliding object covers, what the video clips
(shapes_clips) show; the orientation label is the nearest of the 15 angle classes. A model
trained on `shapes` has seen only 15 angles and a centred object, so it scores low on clips
for want of data; trained on `shapes_motion` it has seen every frame a clip can show.
"""
from __future__ import annotations

import numpy as np

from ..errors import TrainingError
from .base import DATASETS, PROCEDURAL_SIZES, SPLITS, DataOptions, DataSource, LabelledImages, select_tasks
from .shapes_factors import FACTOR_NAMES, FACTOR_SIZES, FACTORS, NUM_COMBINATIONS
from .shapes_render import OBJECT_X_RANGE, renderer

_HUE_FACTORS = (FACTOR_NAMES.index("floor_hue"), FACTOR_NAMES.index("wall_hue"))
_ORIENT = FACTOR_NAMES.index("orientation")


class ShapesSplit(LabelledImages):
    def __init__(self, combinations: np.ndarray, task_columns: dict[str, int], size: int,
                 poses: np.ndarray | None = None):
        self.combinations = combinations  # (n, 6) factor class indices
        self.task_columns = task_columns
        self.renderer = renderer(size)
        self.poses = poses  # (n, 2) camera angle (degrees) and object x, or None: the class's angle, centred

    def __len__(self) -> int:
        return len(self.combinations)

    def image(self, index: int) -> np.ndarray:
        if self.poses is None:
            return self.renderer.render(self.combinations[index])
        angle, x = self.poses[index]
        return self.renderer.render(self.combinations[index], angle_deg=float(angle), x=float(x))

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


def continuous_poses(combinations: np.ndarray, seed: int, split: str) -> tuple[np.ndarray, np.ndarray]:
    """A seeded continuous camera angle and object position per sample; the combinations
    with their orientation class set to the angle's nearest class."""
    angles = np.asarray(FACTORS[_ORIENT].values)
    rng = np.random.default_rng((seed, 0x5EED, SPLITS.index(split)))
    angle = rng.uniform(angles.min(), angles.max(), len(combinations))
    x = rng.uniform(*OBJECT_X_RANGE, len(combinations))
    labelled = combinations.copy()
    labelled[:, _ORIENT] = np.abs(angle[:, None] - angles[None, :]).argmin(axis=1)
    return labelled, np.stack([angle, x], axis=1)


@DATASETS.register("shapes", "procedural 3D-Shapes-like scenes rendered on the fly (480k factor combinations, "
                             "6 classification tasks)")
def open_shapes(spec: str, options: DataOptions) -> DataSource:
    return _open(spec, options, motion=False)


@DATASETS.register("shapes_motion", "the shapes scenes at continuous camera angles and object positions "
                                    "(what a moving camera sees: the video clips of bench codecs)")
def open_shapes_motion(spec: str, options: DataOptions) -> DataSource:
    return _open(spec, options, motion=True)


def _open(spec: str, options: DataOptions, motion: bool) -> DataSource:
    tasks = select_tasks([f.task() for f in FACTORS], options.tasks, spec)
    if options.ood_hues:
        hue_tasks = [t.name for t in tasks if t.name in ("floor_hue", "wall_hue")]
        if hue_tasks:
            raise TrainingError(
                f"shapes: the OOD split holds out floor/wall hues, so {', '.join(hue_tasks)} "
                "cannot be a task; drop ood_hues or those tasks"
            )
    columns = {t.name: FACTOR_NAMES.index(t.name) for t in tasks}
    splits = {}
    for name, idx in _split_indices(options).items():
        combinations = np.stack(np.unravel_index(idx, FACTOR_SIZES), axis=1).astype(np.int16)
        poses = None
        if motion:
            combinations, poses = continuous_poses(combinations, options.seed, name)
        splits[name] = ShapesSplit(combinations, columns, options.size, poses)
    return DataSource(spec, tasks, splits, options)
