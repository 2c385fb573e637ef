"""The frames benchmarks feed the models: a training config's held-out frames with their
labels, or rendered scenes."""
from __future__ import annotations

from typing import Any

import numpy as np


def config_frames(raw: dict[str, Any], count: int, split: str = "test"
                  ) -> tuple[list[np.ndarray], dict[str, np.ndarray]]:
    """Up to `count` frames of a config's split (the held-out frames a run trained on `raw` is
    tested on) and their labels per task."""
    from mtl_split_training.config import config_from_dict
    from mtl_split_training.datasets import open_data

    cfg = config_from_dict(raw)
    images = open_data(cfg.data.spec, cfg.data.options(cfg.seed)).split(split)
    samples = [images.sample(i) for i in range(min(count, len(images)))]
    labels = {t: np.array([s[1][t] for s in samples]) for t in samples[0][1]}
    return [s[0] for s in samples], labels


def rendered_frames(size: int, count: int) -> list[np.ndarray]:
    """Rendered scenes for measurements that need realistic images but no labels."""
    return config_frames({"data": {"size": size, "test_size": count}}, count)[0]
