"""Dense procedural scenes: 1-6 objects on a floor in front of a wall, with every label a
dense-perception model needs (semantic mask, instance map, metric depth, 2D boxes) and the
classification factors of the single-object scenes.

A scene is sampled from a seeded generator and ray cast (scenes_geometry), one ray through
each pixel centre, so labels are exact there; a slight Gaussian blur of the colour stands in
for a lens's (and softens the aliased edges). Objects never interpenetrate, and each keeps at least
MIN_VISIBLE of its unoccluded area and MIN_AREA_FRACTION of the image visible (an object
that falls below is removed and the scene re-rendered), so every box is a findable object.
"""
from __future__ import annotations

import colorsys
import math
from dataclasses import dataclass
from functools import lru_cache

import cv2
import numpy as np

from .scenes_geometry import CAPSULE, Camera, Primitive, plane_depths
from .shapes_factors import FACTORS, HUES, SHAPE_NAMES

FLOOR, WALL = 0, 1
SEMANTIC_CLASSES = ("floor", "wall", *SHAPE_NAMES)  # semantic id = 2 + shape for objects
MAX_OBJECTS = 6
BASE_RADIUS = 0.2  # metres at scale 1.0
WALL_RANGE = (3.5, 6.0)  # metres from the camera to the wall
MIN_VISIBLE = 0.3
MIN_AREA_FRACTION = 0.0008
_SCALES = FACTORS[3].values
_ORIENTATIONS = FACTORS[5].values  # camera yaw in degrees
_LIGHT = np.array([-0.45, 1.0, -0.55]) / np.linalg.norm([-0.45, 1.0, -0.55])
_BLUR_SIGMA = 0.6  # pixels


def palette() -> np.ndarray:
    return np.array([colorsys.hsv_to_rgb(h, 0.75, 0.95) for h in HUES], dtype=np.float64) * 255.0


@dataclass(frozen=True)
class Scene:
    floor_hue: int  # class indices of the factor grid
    wall_hue: int
    orientation: int  # camera yaw class
    wall_distance: float
    objects: tuple[Primitive, ...]
    hues: tuple[int, ...]  # per object
    scales: tuple[int, ...]  # per object (scale class)

    def without(self, i: int) -> "Scene":
        keep = [k for k in range(len(self.objects)) if k != i]
        return Scene(self.floor_hue, self.wall_hue, self.orientation, self.wall_distance,
                     tuple(self.objects[k] for k in keep), tuple(self.hues[k] for k in keep),
                     tuple(self.scales[k] for k in keep))

    def camera(self, size: int) -> Camera:
        return Camera(size=size, yaw_deg=_ORIENTATIONS[self.orientation])


@dataclass(frozen=True)
class SceneFrame:
    """One rendered scene at one size. Boxes are [x0, y0, x1, y1) in pixels: the tight bounds
    of each object's visible pixels (x1 = last column + 1), in object order."""

    image: np.ndarray  # uint8 (H, W, 3) RGB
    semantic: np.ndarray  # uint8 (H, W): SEMANTIC_CLASSES index
    instance: np.ndarray  # uint8 (H, W): 0 floor/wall, i + 1 object i
    depth: np.ndarray  # float32 (H, W): z-depth in metres
    boxes: np.ndarray  # float32 (n, 4)
    box_classes: np.ndarray  # int64 (n,): SHAPE_NAMES index
    scene: Scene

    def factors(self) -> dict[str, int]:
        """The classification factors: room and camera, and the nearest object's."""
        s = self.scene
        main = min(range(len(s.objects)), key=lambda i: math.hypot(s.objects[i].x, s.objects[i].z))
        return {"floor_hue": s.floor_hue, "wall_hue": s.wall_hue, "object_hue": s.hues[main],
                "scale": s.scales[main], "shape": s.objects[main].shape, "orientation": s.orientation,
                "count": len(s.objects) - 1}


def sample_scene(rng: np.random.Generator, hue_pairs: np.ndarray) -> Scene:
    """A random scene: floor/wall hues from hue_pairs (allowed (floor, wall) rows), camera yaw,
    wall distance, 1-MAX_OBJECTS non-overlapping objects in view."""
    floor_hue, wall_hue = (int(h) for h in hue_pairs[rng.integers(len(hue_pairs))])
    orientation = int(rng.integers(len(_ORIENTATIONS)))
    wall = float(rng.uniform(*WALL_RANGE))
    yaw = math.radians(_ORIENTATIONS[orientation])
    half_fov = math.radians(Camera(size=1).hfov_deg) / 2
    objects: list[Primitive] = []
    hues: list[int] = []
    scales: list[int] = []
    for _ in range(int(rng.integers(1, MAX_OBJECTS + 1))):
        for _attempt in range(30):
            shape, scale = int(rng.integers(len(SHAPE_NAMES))), int(rng.integers(len(_SCALES)))
            radius = BASE_RADIUS * _SCALES[scale] * (0.75 if shape == CAPSULE else 1.0)
            bearing = yaw + rng.uniform(-0.75, 0.75) * half_fov
            probe = Primitive(shape, 0.0, 0.0, radius)
            far = (wall - probe.footprint - 0.1) / math.cos(bearing)
            distance = rng.uniform(1.6, max(1.7, min(far, 6.0)))
            candidate = Primitive(shape, distance * math.sin(bearing), distance * math.cos(bearing), radius,
                                  yaw=float(rng.uniform(0.0, math.pi / 2)))
            clear = all(math.hypot(candidate.x - o.x, candidate.z - o.z) > candidate.footprint + o.footprint + 0.05
                        for o in objects)
            if clear and candidate.z + candidate.footprint < wall - 0.05:
                hue = int(rng.choice([h for h in range(len(HUES)) if h not in (floor_hue, wall_hue)]))
                objects.append(candidate)
                hues.append(hue)
                scales.append(scale)
                break
    if not objects:  # no placement fitted (a near wall at a wide bearing): draw another scene
        return sample_scene(rng, hue_pairs)
    return Scene(floor_hue, wall_hue, orientation, wall, tuple(objects), tuple(hues), tuple(scales))


class DenseRenderer:
    """Renders Scenes at one size; caches the per-yaw ray grids."""

    def __init__(self, size: int):
        if size < 16:
            raise ValueError(f"scene size must be at least 16 px, got {size}")
        self.size = size
        self.palette = palette()
        self._uv = np.meshgrid(np.arange(size, dtype=np.float64) + 0.5, np.arange(size, dtype=np.float64) + 0.5)
        self._rays: dict[int, np.ndarray] = {}

    def rays(self, camera: Camera, orientation: int) -> np.ndarray:
        """(H, W, 3) world ray directions of a yaw class."""
        if orientation not in self._rays:
            self._rays[orientation] = camera.rays(*self._uv)
        return self._rays[orientation]

    def render(self, scene: Scene) -> SceneFrame:
        """Render, removing objects that end up mostly hidden until every one is findable."""
        while True:
            frame, visible, unoccluded = self._render_once(scene)
            need = np.maximum(MIN_VISIBLE * unoccluded, MIN_AREA_FRACTION * self.size ** 2)
            failing = [i for i in range(len(scene.objects)) if visible[i] < need[i]]
            if not failing or len(scene.objects) == 1:
                return frame
            scene = scene.without(min(failing, key=lambda i: visible[i] / max(unoccluded[i], 1)))

    def _render_once(self, scene: Scene) -> tuple[SceneFrame, np.ndarray, np.ndarray]:
        size = self.size
        camera = scene.camera(size)
        rays = self.rays(camera, scene.orientation)
        t, floor = plane_depths(camera, rays.reshape(-1, 3), scene.wall_distance)
        t = t.reshape(rays.shape[:2])
        instance = np.zeros(rays.shape[:2], np.uint8)
        normal = np.zeros(rays.shape, np.float64)
        unoccluded = np.zeros(len(scene.objects), np.int64)
        for k, obj in enumerate(scene.objects):
            (y0, y1), (x0, x1) = self._extent(camera, obj)
            if y0 >= y1 or x0 >= x1:
                continue
            sub = rays[y0:y1, x0:x1]
            tk, nk = obj.intersect(camera.origin, sub.reshape(-1, 3))
            tk, nk = tk.reshape(sub.shape[:2]), nk.reshape(sub.shape)
            unoccluded[k] = int(np.isfinite(tk).sum())
            closer = tk < t[y0:y1, x0:x1]
            t[y0:y1, x0:x1][closer] = tk[closer]
            instance[y0:y1, x0:x1][closer] = k + 1
            normal[y0:y1, x0:x1][closer] = nk[closer]
        floor = floor.reshape(t.shape) & (instance == 0)
        colour = self._shade(scene, camera, rays, t, floor, instance, normal)
        colour = cv2.GaussianBlur(colour.astype(np.float32), (0, 0), _BLUR_SIGMA)
        image = np.clip(colour, 0, 255).round().astype(np.uint8)
        inst = instance
        shapes = np.array([o.shape for o in scene.objects], np.uint8)
        semantic = np.where(inst > 0, 2 + np.concatenate([[0], shapes])[inst], np.where(floor, FLOOR, WALL))
        visible = np.bincount(inst.ravel(), minlength=len(scene.objects) + 1)[1:]
        boxes = np.zeros((len(scene.objects), 4), np.float32)
        for k in range(len(scene.objects)):
            ys, xs = np.nonzero(inst == k + 1)
            if len(ys):
                boxes[k] = (xs.min(), ys.min(), xs.max() + 1, ys.max() + 1)
        frame = SceneFrame(image, semantic.astype(np.uint8), inst, t.astype(np.float32), boxes,
                           shapes.astype(np.int64), scene)
        return frame, visible, unoccluded

    def _extent(self, camera: Camera, obj: Primitive) -> tuple[tuple[int, int], tuple[int, int]]:
        """Pixel rows and columns that can see the object (its box's projection, clipped)."""
        return self._window(camera.project(obj.corners()))

    def _window(self, uvz: np.ndarray) -> tuple[tuple[int, int], tuple[int, int]]:
        """Rows and columns covering projected points (u, v, z); all of them if any is behind."""
        if (uvz[:, 2] <= 0.05).any():
            return (0, self.size), (0, self.size)
        lo = np.clip(np.floor(uvz[:, :2].min(axis=0) - 1).astype(int), 0, self.size)
        hi = np.clip(np.ceil(uvz[:, :2].max(axis=0) + 1).astype(int), 0, self.size)
        return (lo[1], hi[1]), (lo[0], hi[0])

    def _shade(self, scene: Scene, camera: Camera, rays: np.ndarray, t: np.ndarray, floor: np.ndarray,
               instance: np.ndarray, normal: np.ndarray) -> np.ndarray:
        """RGB per pixel: Lambertian objects, a floor brighter towards the camera with soft
        contact shadows, a wall darker towards the floor."""
        points = (camera.origin + rays * np.where(np.isfinite(t), t, 0.0)[..., None]).astype(np.float32)
        hue = np.concatenate([[scene.wall_hue], scene.hues]).astype(int)[instance]
        hue = np.where(floor, scene.floor_hue, hue)
        shade = np.where(floor, 0.55 + 0.4 * np.exp(-points[..., 2] / 4.0),
                         0.62 + 0.3 * np.clip(points[..., 1] / 2.5, 0, 1)).astype(np.float32)
        for obj in scene.objects:
            lift = 0.5 * obj.height / _LIGHT[1]
            cx, cz, reach = obj.x - _LIGHT[0] * lift, obj.z - _LIGHT[2] * lift, 1.3 * 1.15 * obj.footprint
            corners = np.array([[cx + sx * reach, 0.0, cz + sz * reach] for sx in (-1, 1) for sz in (-1, 1)])
            (y0, y1), (x0, x1) = self._window(camera.project(corners))
            p = points[y0:y1, x0:x1]
            dist = np.sqrt((p[..., 0] - cx) ** 2 + (p[..., 2] - cz) ** 2) / (1.15 * obj.footprint)
            dark = 1.0 - 0.45 * np.clip((1.3 - dist) / 0.5, 0, 1) * floor[y0:y1, x0:x1]
            shade[y0:y1, x0:x1] *= dark
        objects = instance > 0
        shade[objects] = 0.35 + 0.65 * np.clip(normal[objects] @ _LIGHT, 0, 1)
        return self.palette[hue] * shade[..., None]


@lru_cache(maxsize=8)
def dense_renderer(size: int) -> DenseRenderer:
    return DenseRenderer(size)
