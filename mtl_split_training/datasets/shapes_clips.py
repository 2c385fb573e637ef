"""Temporally coherent clips of the procedural scenes: what a robot camera sends.

Each clip keeps one scene (its labels do not change) and moves continuously: the camera
turns by `deg_per_frame` (the wall/floor edge tilts, light and object faces turn), or the
object slides across the image. Benchmarks of video codecs and of temporal feature coding
run on these; the frames of one clip are consecutive, clips are independent.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .shapes_factors import FACTORS
from .shapes_render import OBJECT_X_RANGE, renderer

MOTIONS = ("camera", "object")
_ORIENT = len(FACTORS) - 1


@dataclass(frozen=True)
class Clip:
    motion: str
    frames: list[np.ndarray]  # HxWx3 uint8 RGB, consecutive
    labels: dict[str, int]  # every factor's class, constant over the clip


def render_clip(size: int, length: int, motion: str, seed: int, deg_per_frame: float = 1.0) -> Clip:
    """One clip: a random scene, then `length` frames of camera or object motion."""
    if motion not in MOTIONS:
        raise ValueError(f"motion must be one of {', '.join(MOTIONS)}, got {motion!r}")
    rng = np.random.default_rng(seed)
    factors = [int(rng.integers(f.size)) for f in FACTORS]
    angles = FACTORS[_ORIENT].values
    lo, hi = min(angles), max(angles)
    start = float(rng.uniform(lo, hi))
    direction = 1.0 if start < (lo + hi) / 2 else -1.0
    r = renderer(size)
    frames = []
    for t in range(length):
        if motion == "camera":  # turning camera: angle drifts, the object stays in view
            frames.append(r.render(factors, angle_deg=float(np.clip(start + direction * deg_per_frame * t, lo, hi))))
        else:  # object sliding by ~0.4% of the width per frame, back and forth around the centre
            centre, swing = sum(OBJECT_X_RANGE) / 2, (OBJECT_X_RANGE[1] - OBJECT_X_RANGE[0]) / 2
            x = centre + swing * np.sin(2 * np.pi * t / max(length, 1) + rng.uniform(0, 2 * np.pi))
            frames.append(r.render(factors, angle_deg=start, x=float(x)))
    labels = {f.name: v for f, v in zip(FACTORS, factors)}
    return Clip(motion, frames, labels)


def render_clips(size: int, clips: int, length: int, seed: int = 0) -> list[Clip]:
    """`clips` clips alternating camera and object motion."""
    return [render_clip(size, length, MOTIONS[i % len(MOTIONS)], seed * 1000 + i) for i in range(clips)]
