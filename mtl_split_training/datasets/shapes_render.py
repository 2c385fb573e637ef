"""Procedural scene renderer: a wall, a floor and one shaded object, drawn with numpy + OpenCV.

It imitates the factors of DeepMind's 3dshapes (floor/wall/object hue, scale, shape,
orientation) without its data. The camera orientation tilts the wall/floor edge, moves the
cube's front edge, the light's highlight and the shadow, so every factor is visible for every
shape. Background maps are cached per size, the object is a handful of anti-aliased cv2 fills:
thousands of 64x64 frames per second on one core.
"""
from __future__ import annotations

import colorsys
import math
from functools import lru_cache

import cv2
import numpy as np

from .shapes_factors import FACTORS

_SHIFT = 4  # cv2 fixed-point bits: sub-pixel geometry at 64x64
_ONE = 1 << _SHIFT
_FLOOR, _WALL, _OBJECT, _SCALE, _SHAPE, _ORIENT = range(6)
_HORIZON = 0.55  # wall/floor edge height at the image centre (fraction of the height)
_GROUND = 0.80  # where the object stands
_RADIUS = 0.15  # object half-width at scale 1 (fraction of the size)
OBJECT_X_RANGE = (0.38, 0.62)  # where a moving object's centre goes (fraction of the width)


def _palette() -> np.ndarray:
    return np.array(
        [colorsys.hsv_to_rgb(h, 0.75, 0.95) for h in FACTORS[_FLOOR].values], dtype=np.float32
    ) * 255.0


class SceneRenderer:
    """Renders factor-index tuples to uint8 RGB images of one size."""

    def __init__(self, size: int):
        if size < 16:
            raise ValueError(f"scene size must be at least 16 px, got {size}")
        self.size = size
        self.palette = _palette()
        self._y, self._x = np.mgrid[0:size, 0:size].astype(np.float32) / (size - 1)
        self._floor_masks = []
        self._shades = []
        for angle in FACTORS[_ORIENT].values:
            mask, shade = self._background(angle)
            self._floor_masks.append(mask)
            self._shades.append(shade)

    def _background(self, angle_deg: float) -> tuple[np.ndarray, np.ndarray]:
        """Floor mask and shading of the wall/floor for a camera angle."""
        y, x = self._y, self._x
        horizon = _HORIZON + 0.45 * math.tan(math.radians(angle_deg)) * (x - 0.5)
        mask = y > horizon
        shade = np.where(mask, 0.55 + 0.45 * y, 0.70 + 0.25 * (1.0 - y))  # floor brighter near; wall lit from above
        return mask[..., None], shade[..., None]

    def render(self, factors: np.ndarray | tuple[int, ...], angle_deg: float | None = None,
               x: float = 0.5) -> np.ndarray:
        """factors: class indices in FACTORS order -> (size, size, 3) uint8 RGB. angle_deg
        overrides the orientation class with any camera angle and x moves the object across
        the image (fraction of the width): the continuous motion of video clips."""
        f_floor, f_wall, f_obj, f_scale, f_shape, f_orient = (int(v) for v in factors)
        if angle_deg is None:
            mask, shade = self._floor_masks[f_orient], self._shades[f_orient]
            angle = math.radians(FACTORS[_ORIENT].values[f_orient])
        else:
            mask, shade = self._background(angle_deg)
            angle = math.radians(angle_deg)
        base = np.where(mask, self.palette[f_floor], self.palette[f_wall])
        image = (base * shade).astype(np.uint8)
        s = self.size
        r = _RADIUS * s * FACTORS[_SCALE].values[f_scale]
        cx, ground = x * s, _GROUND * s
        turn = math.sin(2.0 * angle)  # -0.87 .. 0.87: where the light comes from
        shadow = tuple(float(c) * 0.45 * (0.55 + 0.45 * _GROUND) for c in self.palette[f_floor])
        _ellipse(image, cx - 0.9 * r * turn, ground, 1.3 * r, 0.28 * r, shadow)
        colour = self.palette[f_obj]
        _SHAPES[f_shape](image, cx, ground, r, (angle / math.radians(60.0)) + 0.5, turn, colour)
        return image


def _pts(*xy: float) -> np.ndarray:
    return (np.asarray(xy, dtype=np.float64).reshape(-1, 2) * _ONE).round().astype(np.int32)


def _fill(image: np.ndarray, points: np.ndarray, colour: tuple[float, ...]) -> None:
    cv2.fillPoly(image, [points], colour, cv2.LINE_AA, _SHIFT)


def _ellipse(image: np.ndarray, x: float, y: float, ax: float, ay: float, colour: tuple[float, ...]) -> None:
    centre = (round(x * _ONE), round(y * _ONE))
    axes = (max(1, round(ax * _ONE)), max(1, round(ay * _ONE)))
    cv2.ellipse(image, centre, axes, 0.0, 0.0, 360.0, colour, -1, cv2.LINE_AA, _SHIFT)


def _circle(image: np.ndarray, x: float, y: float, radius: float, colour: tuple[float, ...]) -> None:
    cv2.circle(image, (round(x * _ONE), round(y * _ONE)), max(1, round(radius * _ONE)),
               colour, -1, cv2.LINE_AA, _SHIFT)


def _shade(colour: np.ndarray, k: float) -> tuple[float, ...]:
    return tuple(float(c) * k for c in colour)


def _cube(image: np.ndarray, cx: float, ground: float, r: float, front: float, turn: float,
          colour: np.ndarray) -> None:
    """Two side faces meeting at a front edge whose position follows the orientation."""
    x0, x1 = cx - r, cx + r
    xm = x0 + 2 * r * (0.15 + 0.7 * front)
    top, drop = ground - 1.7 * r, 0.3 * r
    _fill(image, _pts(x0, top, xm, top + drop, xm, ground + drop, x0, ground), _shade(colour, 0.82 - 0.15 * turn))
    _fill(image, _pts(xm, top + drop, x1, top, x1, ground, xm, ground + drop), _shade(colour, 0.62 + 0.15 * turn))
    _fill(image, _pts(x0, top, xm, top + drop, x1, top, x0 + x1 - xm, top - drop), _shade(colour, 1.0))


def _cylinder(image: np.ndarray, cx: float, ground: float, r: float, front: float, turn: float,
              colour: np.ndarray) -> None:
    top, cap = ground - 1.7 * r, 0.3 * r
    _ellipse(image, cx, ground, r, cap, _shade(colour, 0.7))
    edges = np.linspace(cx - r, cx + r, 5)
    for i, k in enumerate((0.62, 0.8, 0.72, 0.58)):
        _fill(image, _pts(edges[i], top, edges[i + 1], top, edges[i + 1], ground, edges[i], ground),
              _shade(colour, k - 0.1 * turn * (i - 1.5) / 1.5))
    _ellipse(image, cx, top, r, cap, _shade(colour, 1.0))


def _sphere(image: np.ndarray, cx: float, ground: float, r: float, front: float, turn: float,
            colour: np.ndarray) -> None:
    cy = ground - r
    _circle(image, cx, cy, r, _shade(colour, 0.6))
    _circle(image, cx + 0.2 * r * turn, cy - 0.2 * r, 0.72 * r, _shade(colour, 0.8))
    _circle(image, cx + 0.4 * r * turn, cy - 0.38 * r, 0.35 * r, _shade(colour, 1.0))


def _stadium(image: np.ndarray, cx: float, bottom: float, top: float, rc: float, colour: tuple[float, ...]) -> None:
    _circle(image, cx, bottom - rc, rc, colour)
    _circle(image, cx, top + rc, rc, colour)
    _fill(image, _pts(cx - rc, top + rc, cx + rc, top + rc, cx + rc, bottom - rc, cx - rc, bottom - rc), colour)


def _capsule(image: np.ndarray, cx: float, ground: float, r: float, front: float, turn: float,
             colour: np.ndarray) -> None:
    rc, top = 0.72 * r, ground - 2.2 * r
    _stadium(image, cx, ground, top, rc, _shade(colour, 0.72))
    inner = 0.42 * rc
    _stadium(image, cx + 0.4 * rc * turn, ground - 0.5 * rc, top + 0.5 * rc, inner, _shade(colour, 0.95))


_SHAPES = (_cube, _cylinder, _sphere, _capsule)  # SHAPE_NAMES order


@lru_cache(maxsize=8)
def renderer(size: int) -> SceneRenderer:
    """One cached renderer per size (its background maps are the expensive part)."""
    return SceneRenderer(size)
