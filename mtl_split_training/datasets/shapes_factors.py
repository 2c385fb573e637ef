"""The six factors of the procedural scenes (values imitate DeepMind 3dshapes' factor grid).

Shared by the procedural renderer and the real 3dshapes.h5 loader, so both label alike.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from mtl_split_core.bundle import TaskSpec


@dataclass(frozen=True)
class Factor:
    name: str
    values: tuple[float, ...]  # the label value of each class, as 3dshapes stores it
    class_names: tuple[str, ...]

    @property
    def size(self) -> int:
        return len(self.values)

    def task(self) -> TaskSpec:
        return TaskSpec(self.name, self.class_names)


def _numeric(name: str, values: np.ndarray, fmt: str) -> Factor:
    vals = tuple(float(v) for v in values)
    return Factor(name, vals, tuple(format(v, fmt) for v in vals))


SHAPE_NAMES = ("cube", "cylinder", "sphere", "capsule")
HUES = np.linspace(0.0, 0.9, 10)
FACTORS: tuple[Factor, ...] = (
    _numeric("floor_hue", HUES, ".1f"),
    _numeric("wall_hue", HUES, ".1f"),
    _numeric("object_hue", HUES, ".1f"),
    _numeric("scale", np.linspace(0.75, 1.25, 8), ".3f"),
    Factor("shape", tuple(float(i) for i in range(len(SHAPE_NAMES))), SHAPE_NAMES),
    _numeric("orientation", np.linspace(-30.0, 30.0, 15), ".1f"),
)
FACTOR_NAMES = tuple(f.name for f in FACTORS)
FACTOR_SIZES = tuple(f.size for f in FACTORS)
NUM_COMBINATIONS = int(np.prod(FACTOR_SIZES))  # 480000, like 3dshapes
