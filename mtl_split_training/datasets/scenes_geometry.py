"""Ray casting of the dense scenes: a pinhole camera over a floor plane and a wall, with
upright primitives (box, cylinder, sphere, capsule) standing on the floor.

Everything is analytic, so every label is exact: the depth of a pixel is the ray parameter
of the first surface hit (rays are scaled so that parameter is the z-depth along the optical
axis, REP 118's depth-image convention), the class and instance maps say which surface that
was, and occlusion is a per-pixel z-test. numpy only, vectorized over rays.

World frame: X right, Y up, Z away from the camera towards the wall; the floor is Y = 0,
the wall Z = wall_distance. Camera frame: the optical frame (x right, y down, z forward).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

CUBE, CYLINDER, SPHERE, CAPSULE = range(4)  # SHAPE_NAMES order
_MISS = np.inf


@dataclass(frozen=True)
class Camera:
    """A level-mounted camera: fixed height and downward pitch, a yaw per scene."""

    size: int
    height: float = 1.0  # metres above the floor
    pitch_deg: float = 15.0  # downwards
    yaw_deg: float = 0.0
    hfov_deg: float = 60.0

    @property
    def focal(self) -> float:
        """Focal length in pixels (square pixels, principal point at the image centre)."""
        return 0.5 * self.size / math.tan(math.radians(0.5 * self.hfov_deg))

    def rotation(self) -> np.ndarray:
        """Optical frame -> world frame (3x3)."""
        p, y = math.radians(self.pitch_deg), math.radians(self.yaw_deg)
        flip = np.diag([1.0, -1.0, 1.0])  # optical y down -> y up
        pitch = np.array([[1, 0, 0], [0, math.cos(p), -math.sin(p)], [0, math.sin(p), math.cos(p)]])
        yaw = np.array([[math.cos(y), 0, math.sin(y)], [0, 1, 0], [-math.sin(y), 0, math.cos(y)]])
        return yaw @ pitch @ flip

    @property
    def origin(self) -> np.ndarray:
        return np.array([0.0, self.height, 0.0])

    def rays(self, u: np.ndarray, v: np.ndarray) -> np.ndarray:
        """World directions (..., 3) through image points (u, v) in pixels (pixel centres at
        i + 0.5), scaled so that the ray parameter equals z-depth."""
        f, c = self.focal, 0.5 * self.size
        optical = np.stack([(u - c) / f, (v - c) / f, np.ones_like(u)], axis=-1)
        return optical @ self.rotation().T

    def project(self, points: np.ndarray) -> np.ndarray:
        """World points (n, 3) -> (n, 3): pixel u, pixel v, z-depth."""
        cam = (points - self.origin) @ self.rotation()
        z = cam[:, 2]
        f, c = self.focal, 0.5 * self.size
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.stack([c + f * cam[:, 0] / z, c + f * cam[:, 1] / z, z], axis=1)

    def unproject(self, u: np.ndarray, v: np.ndarray, depth: np.ndarray) -> np.ndarray:
        """Pixel centres with z-depth -> world points (..., 3)."""
        return self.origin + self.rays(u, v) * depth[..., None]


@dataclass(frozen=True)
class Primitive:
    """An upright object standing on the floor at (x, z)."""

    shape: int
    x: float
    z: float
    radius: float  # footprint half-width (box: half side; capsule: tube radius)
    yaw: float = 0.0  # radians, about the vertical axis (visible on boxes)

    @property
    def height(self) -> float:
        return self.radius * (2.0, 2.4, 2.0, 4.4)[self.shape]

    @property
    def footprint(self) -> float:
        """Radius of a circle on the floor that contains the object (collision checks)."""
        return self.radius * (math.sqrt(2.0) if self.shape == CUBE else 1.0)

    def corners(self) -> np.ndarray:
        """The 8 corners of a world box containing the object (for image-space culling)."""
        f, h = self.footprint, self.height
        xs, ys, zs = (self.x - f, self.x + f), (0.0, h), (self.z - f, self.z + f)
        return np.array([[x, y, z] for x in xs for y in ys for z in zs])

    def intersect(self, o: np.ndarray, d: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Rays from o (3,) along d (n, 3) -> (t (n,) with inf where missed, normals (n, 3))."""
        local = o - np.array([self.x, 0.0, self.z])
        if self.shape == CUBE:
            return _box(local, d, self.radius, self.height, self.yaw)
        if self.shape == SPHERE:
            return _sphere(local, d, np.array([0.0, self.radius, 0.0]), self.radius)
        if self.shape == CYLINDER:
            return _cylinder(local, d, self.radius, 0.0, self.height, caps=True)
        r = self.radius
        t, n = _cylinder(local, d, r, r, self.height - r, caps=False)
        for cy in (r, self.height - r):
            t, n = _nearest(t, n, *_sphere(local, d, np.array([0.0, cy, 0.0]), r))
        return t, n


def _nearest(t1: np.ndarray, n1: np.ndarray, t2: np.ndarray, n2: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    closer = t2 < t1
    return np.where(closer, t2, t1), np.where(closer[:, None], n2, n1)


def _sphere(o: np.ndarray, d: np.ndarray, c: np.ndarray, r: float) -> tuple[np.ndarray, np.ndarray]:
    oc = o - c
    a = np.einsum("ij,ij->i", d, d)
    b = d @ oc
    disc = b * b - a * (oc @ oc - r * r)
    hit = disc >= 0
    t = np.full(len(d), _MISS)
    t[hit] = (-b[hit] - np.sqrt(disc[hit])) / a[hit]
    t[t <= 0] = _MISS
    n = (o + t[:, None] * d - c) / r
    return t, np.nan_to_num(n)


def _cylinder(o: np.ndarray, d: np.ndarray, r: float, y0: float, y1: float,
              caps: bool) -> tuple[np.ndarray, np.ndarray]:
    """Vertical cylinder about the Y axis between heights y0 and y1, with a top cap."""
    a = d[:, 0] ** 2 + d[:, 2] ** 2
    b = d[:, 0] * o[0] + d[:, 2] * o[2]
    disc = b * b - a * (o[0] ** 2 + o[2] ** 2 - r * r)
    hit = (disc >= 0) & (a > 0)
    t = np.full(len(d), _MISS)
    t[hit] = (-b[hit] - np.sqrt(disc[hit])) / a[hit]
    y = o[1] + t * d[:, 1]
    t[(t <= 0) | (y < y0) | (y > y1)] = _MISS
    p = o + np.where(np.isfinite(t), t, 0.0)[:, None] * d
    n = np.stack([p[:, 0] / r, np.zeros(len(d)), p[:, 2] / r], axis=1)
    if caps:
        with np.errstate(divide="ignore", invalid="ignore"):
            tc = (y1 - o[1]) / d[:, 1]
        pc = o + np.nan_to_num(tc, posinf=0.0, neginf=0.0)[:, None] * d
        inside = (tc > 0) & (pc[:, 0] ** 2 + pc[:, 2] ** 2 <= r * r)
        tc = np.where(inside, tc, _MISS)
        t, n = _nearest(t, n, tc, np.broadcast_to([0.0, 1.0, 0.0], n.shape))
    return t, n


def _box(o: np.ndarray, d: np.ndarray, r: float, h: float, yaw: float) -> tuple[np.ndarray, np.ndarray]:
    """Box of half side r and height h, turned by yaw about Y (slab method in its frame)."""
    c, s = math.cos(yaw), math.sin(yaw)
    rot = np.array([[c, 0, s], [0, 1, 0], [-s, 0, c]])  # box frame -> world
    ol = (o - np.array([0.0, 0.5 * h, 0.0])) @ rot
    dl = d @ rot
    half = np.array([r, 0.5 * h, r])
    with np.errstate(divide="ignore", invalid="ignore"):
        inv = 1.0 / dl
        t1, t2 = (-half - ol) * inv, (half - ol) * inv
    t1, t2 = np.nan_to_num(t1, nan=-np.inf), np.nan_to_num(t2, nan=np.inf)
    lo, hi = np.minimum(t1, t2), np.maximum(t1, t2)
    axis = np.argmax(lo, axis=1)
    t_near, t_far = lo.max(axis=1), hi.min(axis=1)
    t = np.where((t_near <= t_far) & (t_near > 0), t_near, _MISS)
    n_local = np.zeros_like(dl)
    rows = np.arange(len(d))
    n_local[rows, axis] = -np.sign(dl[rows, axis])
    return t, n_local @ rot.T


def plane_depths(camera: Camera, d: np.ndarray, wall_distance: float) -> tuple[np.ndarray, np.ndarray]:
    """(t, is_floor) of the room for rays d (n, 3): the floor Y = 0 or the wall Z = D."""
    with np.errstate(divide="ignore", invalid="ignore"):
        t_floor = np.where(d[:, 1] < 0, -camera.height / d[:, 1], _MISS)
        t_wall = np.where(d[:, 2] > 0, (wall_distance - camera.origin[2]) / d[:, 2], _MISS)
    return np.minimum(t_floor, t_wall), t_floor < t_wall
