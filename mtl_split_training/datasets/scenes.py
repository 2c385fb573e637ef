"""The dense procedural scenes dataset (`--data scenes`): multi-object rooms with a semantic
mask, metric depth and 2D boxes per frame, plus the classification factors.

Sample i of a split is drawn from a generator seeded with (seed, split, i), so a split is
reproducible at any size and in any order, and test images depend only on the seed. With
ood_hues, a test scene shows a held-out floor or wall hue and train/val scenes never do (the
out-of-distribution split of the single-object scenes). Rendered frames are kept in memory
(about 130 kB each at 128 px), so epochs after the first render nothing.
"""
from __future__ import annotations

import numpy as np

from mtl_split_core.bundle import TaskSpec
from mtl_split_core.dense import Boxes

from ..errors import TrainingError
from .base import DATASETS, PROCEDURAL_SIZES, DataOptions, DataSource, Label, LabelledImages, select_tasks
from .scenes_render import MAX_OBJECTS, SEMANTIC_CLASSES, SceneFrame, dense_renderer, sample_scene
from .shapes_factors import FACTORS, HUES, SHAPE_NAMES

SEGMENTATION, DEPTH, DETECTION = "segmentation", "depth", "detection"
TASKS = (
    *(f.task() for f in FACTORS),
    TaskSpec("count", tuple(str(n) for n in range(1, MAX_OBJECTS + 1))),
    TaskSpec(SEGMENTATION, SEMANTIC_CLASSES, "segmentation"),
    TaskSpec(DEPTH, (), "depth"),
    TaskSpec(DETECTION, SHAPE_NAMES, "detection"),
)
_SPLIT_CODES = {"train": 0, "val": 1, "test": 2}


class SceneSplit(LabelledImages):
    def __init__(self, seed: int, split: str, count: int, hue_pairs: np.ndarray, tasks: tuple[TaskSpec, ...],
                 size: int):
        self.seed, self.code, self.count = seed, _SPLIT_CODES[split], count
        self.hue_pairs, self.tasks = hue_pairs, tasks
        self.renderer = dense_renderer(size)
        self._frames: dict[int, SceneFrame] = {}

    def __len__(self) -> int:
        return self.count

    def frame(self, index: int) -> SceneFrame:
        """The rendered scene with every label (rendered once, then kept)."""
        if not 0 <= index < self.count:
            raise IndexError(index)
        if index not in self._frames:
            rng = np.random.default_rng((self.seed, self.code, index))
            self._frames[index] = self.renderer.render(sample_scene(rng, self.hue_pairs))
        return self._frames[index]

    def image(self, index: int) -> np.ndarray:
        return self.frame(index).image

    def labels(self, index: int) -> dict[str, Label]:
        frame = self.frame(index)
        factors = frame.factors()
        dense: dict[str, Label] = {SEGMENTATION: frame.semantic, DEPTH: frame.depth,
                                   DETECTION: Boxes(frame.boxes, frame.box_classes)}
        return {t.name: dense[t.name] if t.dense else factors[t.name] for t in self.tasks}


def _hue_pairs(ood_hues: tuple[int, ...]) -> dict[str, np.ndarray]:
    """Allowed (floor hue, wall hue) pairs per split."""
    bad = [h for h in ood_hues if not 0 <= h < len(HUES)]
    if bad:
        raise TrainingError(f"ood_hues must be hue indices 0..{len(HUES) - 1}, got {bad}")
    pairs = np.array([(f, w) for f in range(len(HUES)) for w in range(len(HUES))])
    held = np.isin(pairs, ood_hues).any(axis=1)
    if held.all():
        raise TrainingError("ood_hues holds out every hue: nothing is left to train on")
    inside = pairs[~held]
    return {"train": inside, "val": inside, "test": pairs[held] if held.any() else inside}


@DATASETS.register("scenes", "procedural multi-object rooms: semantic mask, metric depth, 2D boxes + the "
                             "classification factors")
def open_scenes(spec: str, options: DataOptions) -> DataSource:
    tasks = select_tasks(TASKS, options.tasks, spec)
    if options.ood_hues:
        hue_tasks = [t.name for t in tasks if t.name in ("floor_hue", "wall_hue")]
        if hue_tasks:
            raise TrainingError(f"scenes: the OOD split holds out floor/wall hues, so {', '.join(hue_tasks)} "
                                "cannot be a task; drop ood_hues or those tasks")
    pairs = _hue_pairs(options.ood_hues)
    sizes = options.split_sizes(PROCEDURAL_SIZES)
    return DataSource(spec, tasks, {
        name: SceneSplit(options.seed, name, sizes[name], pairs[name], tasks, options.size) for name in sizes
    }, options)
