"""The frames benchmarks feed the models: a training config's held-out frames with their
labels, rendered scenes, or a camera stream of them to replay into live nodes."""
from __future__ import annotations

import time
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


def camera_stream(size: int, seconds: float, rate_hz: float, topic: str, compressed: bool = False,
                  distinct: int = 100) -> list[Any]:
    """A camera as replayable frames (mtl_split_tools.bags.Frame): seconds x rate_hz Image rgb8
    (or CompressedImage JPEG-90) messages stamped 1/rate_hz apart from now, cycling through
    `distinct` rendered scenes."""
    from mtl_split_tools.bags import COMPRESSED, IMAGE, TYPESTORE, Frame, image_message

    scenes = rendered_frames(size, distinct)
    msgtype = COMPRESSED if compressed else IMAGE
    start, period = time.time_ns(), int(1e9 / rate_hz)
    frames = []
    for i in range(max(2, int(seconds * rate_hz))):
        ns = start + i * period
        msg = image_message(scenes[i % len(scenes)], ns, "camera", compressed)
        frames.append(Frame(ns, "camera", topic, msgtype, bytes(TYPESTORE.serialize_cdr(msg, msgtype)), {}))
    return frames
